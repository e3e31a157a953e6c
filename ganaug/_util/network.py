"""Bounded network access: a check that a host can be reached, and a download that cannot hang.

Offline machines fail in seconds, not minutes; a server that stops sending mid-file fails after
``timeout`` seconds of silence instead of hanging a training job.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

from ganaug._util.files import atomic_path

__all__ = ["DownloadError", "download_file", "host_reachable"]

_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,})\.")  # torch.hub's convention: name-<sha256 prefix>.pth


class DownloadError(OSError):
    """A download failed, stalled or delivered other bytes than its file name promises."""


def download_file(url: str, dest: str | os.PathLike, timeout: float = 30.0, chunk: int = 1 << 20) -> Path:
    """Download ``url`` to ``dest`` atomically; every connect and read is bounded by ``timeout`` seconds.

    When the file name holds a SHA-256 prefix (torch.hub's ``name-<hash>.pth``), the bytes are
    checked against it. On any failure ``dest`` is left as it was and :class:`DownloadError` says
    what happened.
    """
    from urllib.request import urlopen

    dest = Path(dest)
    expected = _HASH_IN_NAME.search(dest.name)
    digest = hashlib.sha256()
    try:
        with atomic_path(dest) as tmp, urlopen(url, timeout=timeout) as response, open(tmp, "wb") as handle:
            for block in iter(lambda: response.read(chunk), b""):
                digest.update(block)
                handle.write(block)
            handle.flush()
            if expected and not digest.hexdigest().startswith(expected.group(1)):
                raise DownloadError(f"{url} delivered a file whose SHA-256 ({digest.hexdigest()[:16]}...) does not "
                                    f"match the {expected.group(1)!r} in its name; nothing was saved")
    except DownloadError:
        raise
    except TimeoutError as error:
        raise DownloadError(f"downloading {url} stalled: nothing arrived for {timeout:g} s; nothing was saved"
                            ) from error
    except OSError as error:  # URLError, connection resets, HTTP errors
        raise DownloadError(f"downloading {url} failed: {error}; nothing was saved") from error
    return dest


def host_reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the host of ``url`` opens within ``timeout`` seconds.

    Name resolution has no timeout of its own in the standard library, so the whole attempt runs
    in a daemon thread that is abandoned when the time is up.
    """
    parsed = urlparse(url)
    host = parsed.hostname
    if not host:
        raise ValueError(f"url should name a host, got {url!r}")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    result: list[bool] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=attempt, daemon=True, name="ganaug-reachability")
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])
