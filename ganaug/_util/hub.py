"""The Hugging Face Hub as a home for models: Hub names, downloads that fail in seconds offline, one-commit uploads.

A Hub name is ``org/name`` or ``org/name@revision`` (a branch, a tag or a commit). A name resolves
to a snapshot folder in the local Hugging Face cache (``HF_HUB_CACHE``), so that what loads a
folder loads a Hub name too, and DataLoader workers read the cached files without the network.

When the Hub (``HF_ENDPOINT``, default https://huggingface.co) can be reached, a branch or tag is
resolved there and missing files are downloaded; when ``HF_HUB_OFFLINE`` is set, or the Hub cannot
be reached within :data:`REACH_TIMEOUT` seconds, the cached snapshot is used, and a name that is
not cached fails at once with :class:`HubError` naming the ways out (instead of the client's own
minute of retries). Nothing downloaded is unpickled: the callers read safetensors and JSON.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganaug._util.network import host_reachable

__all__ = ["REACH_TIMEOUT", "HubError", "HubName", "download_files", "hub_endpoint", "hub_offline",
           "parse_hub_name", "render_card", "upload_files"]

REACH_TIMEOUT = 3.0  # seconds a reachability check of the Hub may take before the cache is used instead
_PART = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
_NAME = re.compile(rf"(?P<repo>{_PART}/{_PART})(?:@(?P<revision>[A-Za-z0-9_./-]+))?")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_WRITE_TOKEN_HOW = "pass token= (a token with write access), set HF_TOKEN, or log in once with 'hf auth login'"
_READ_TOKEN_HOW = "for a private repository, set HF_TOKEN or log in once with 'hf auth login'"


class HubError(OSError):
    """A model could not be had from, or sent to, the Hugging Face Hub; the message says why and what to do."""


@dataclass(frozen=True)
class HubName:
    """A model on the Hub: ``repo_id`` (``org/name``) at ``revision`` (None: the default branch)."""

    repo_id: str
    revision: str | None = None

    def __str__(self) -> str:
        return self.repo_id if self.revision is None else f"{self.repo_id}@{self.revision}"


def parse_hub_name(value: str | os.PathLike) -> HubName | None:
    """``value`` as a Hub name (``org/name`` or ``org/name@revision``), or None when it cannot be one."""
    if not isinstance(value, str):
        return None
    match = _NAME.fullmatch(value)
    if match is None or ".." in match.group("repo"):
        return None
    return HubName(match.group("repo"), match.group("revision"))


def hub_endpoint() -> str:
    """The Hub's address: ``HF_ENDPOINT``, read at each call (the client reads it once, at import)."""
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` asks for no network, read at each call."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def download_files(name: HubName, files: Sequence[str], token: str | bool | None = None) -> Path:
    """The snapshot folder of ``name`` in the local Hugging Face cache, holding ``files``.

    Online, a branch or tag is resolved to its commit and the files missing from the cache are
    downloaded (only those); offline (``HF_HUB_OFFLINE``, or the Hub unreachable within
    :data:`REACH_TIMEOUT` s) the cached snapshot is used.

    Raises:
        HubError: the repository or revision does not exist (or is private), it lacks one of
            ``files``, or it is not cached and the Hub cannot be reached.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    endpoint = hub_endpoint()
    online = not hub_offline() and not _cached_commit(name, files) and host_reachable(endpoint, REACH_TIMEOUT)
    if online:
        _check_online(name, files, endpoint, token)
        try:  # by the name's own revision, so that the cache records where a branch or tag points (used offline)
            return Path(snapshot_download(name.repo_id, revision=name.revision, allow_patterns=list(files),
                                          endpoint=endpoint, token=token))
        except Exception as error:  # noqa: BLE001 - the client raises many types; each is reported the same way
            raise HubError(f"downloading {', '.join(files)} of Hub model {str(name)!r} from {endpoint} failed: "
                           f"{type(error).__name__}: {_one_line(error)}") from error
    try:
        return Path(snapshot_download(name.repo_id, revision=name.revision, allow_patterns=list(files),
                                      local_files_only=True))
    except (LocalEntryNotFoundError, OSError) as error:
        why = "HF_HUB_OFFLINE is set" if hub_offline() else f"{endpoint} cannot be reached"
        raise HubError(
            f"Hub model {str(name)!r} is not in the local Hugging Face cache ({_cache_dir()}) and {why}. Either "
            "connect to the Hub and try again (unset HF_HUB_OFFLINE); or copy the model to this machine as a folder "
            f"(GANAug.save_pretrained, or 'hf download {name.repo_id} --local-dir DIR' where the Hub can be reached) "
            "and pass that folder's path; or point HF_HUB_CACHE at a Hugging Face cache that holds it.") from error


def upload_files(repo_id: str, files: Mapping[str, Path], message: str, private: bool | None = None,
                 token: str | bool | None = None) -> str:
    """Upload ``files`` (name in the repository -> local file) to the model repository ``repo_id`` in one commit.

    The repository is created when it does not exist (``private`` applies then). Returns the
    commit's URL.

    Raises:
        HubError: the Hub cannot be reached, or refuses (no token, a token without write access).
    """
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    name = parse_hub_name(repo_id)
    if name is None or name.revision is not None:
        raise ValueError(f"repo_id should be a Hub repository 'org/name', got {repo_id!r}")
    endpoint = hub_endpoint()
    if hub_offline() or not host_reachable(endpoint, REACH_TIMEOUT):
        why = "HF_HUB_OFFLINE is set" if hub_offline() else f"{endpoint} cannot be reached"
        raise HubError(f"cannot push to {repo_id!r}: {why}. Save the model with GANAug.save_pretrained (or keep the "
                       "run) and push it from a machine that reaches the Hub.")
    api = HfApi(endpoint=endpoint, token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        operations = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=str(local))
                      for path, local in files.items()]
        return str(api.create_commit(repo_id, operations=operations, commit_message=message).commit_url)
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else None
        how = f"; {_WRITE_TOKEN_HOW}" if status in (401, 403) else ""
        raise HubError(f"pushing to Hub repository {repo_id!r} failed: {_one_line(error)}{how}") from error


def render_card(metadata: dict[str, Any], body: str) -> str:
    """A model card (``README.md``): ``metadata`` as the Hub's YAML header, then the markdown ``body``."""
    from huggingface_hub import ModelCardData

    return f"---\n{ModelCardData(**metadata).to_yaml()}\n---\n\n{body.strip()}\n"


def _check_online(name: HubName, files: Sequence[str], endpoint: str, token: str | bool | None) -> None:
    """Check on the Hub that ``name`` exists and holds ``files``, with an error that says what is wrong."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        info = HfApi(endpoint=endpoint, token=token).model_info(name.repo_id, revision=name.revision)
    except RevisionNotFoundError as error:
        raise HubError(f"Hub repository {name.repo_id!r} has no revision {name.revision!r} (a branch, tag or commit "
                       "it holds)") from error
    except (RepositoryNotFoundError, GatedRepoError) as error:
        raise HubError(f"Hub repository {name.repo_id!r} does not exist at {endpoint}, or it is private or gated "
                       f"and no token with access was given ({_READ_TOKEN_HOW})") from error
    except HfHubHTTPError as error:
        raise HubError(f"the Hub at {endpoint} refused to describe {str(name)!r}: {_one_line(error)}") from error
    held = {sibling.rfilename for sibling in info.siblings or ()}
    missing = [file for file in files if file not in held]
    if missing:
        shown = ", ".join(sorted(held)[:12]) or "nothing"
        raise HubError(f"Hub repository {str(name)!r} is not a ganaug model: it lacks {', '.join(missing)} (it holds "
                       f"{shown})")


def _cached_commit(name: HubName, files: Sequence[str]) -> bool:
    """Whether ``name`` names a commit whose ``files`` are all cached: a commit never changes, so no network."""
    if name.revision is None or not _COMMIT.fullmatch(name.revision):
        return False
    from huggingface_hub import try_to_load_from_cache

    return all(isinstance(try_to_load_from_cache(name.repo_id, file, revision=name.revision), str) for file in files)


def _one_line(error: Exception) -> str:
    """The client's error message (several lines, with a documentation link) on one line."""
    return " ".join(str(error).split())


def _cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)
