"""A bounded check that a host can be reached, so offline machines fail in seconds, not minutes."""

from __future__ import annotations

import socket
import threading
from urllib.parse import urlparse

__all__ = ["host_reachable"]


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
