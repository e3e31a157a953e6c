"""Atomic file writes: a reader sees the old file or the complete new one, never a half-written one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch

__all__ = ["atomic_path", "cache_root", "save_image_grid", "sha256_of"]


def cache_root() -> Path:
    """Where ganaug keeps what it downloads or converts: ``$GANAUG_CACHE``, by default ``~/.cache/ganaug``."""
    return Path(os.environ.get("GANAUG_CACHE") or Path.home() / ".cache" / "ganaug")


def sha256_of(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    ``fsync=False`` skips flushing the file to disk before the rename: still atomic for readers
    and after a killed process, but not after a power loss (cheaper for many small files).

    The temporary file lives in the same directory, so the final ``os.replace`` is atomic. On any
    error the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield tmp
        # mkstemp makes 0600, and so do some writers that replace the file (safetensors' save_file):
        # give the result the permissions a plain open() would.
        tmp.chmod(0o666 & ~umask)
        if fsync:
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_image_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int = 8, padding: int = 2, scale: int = 1,
                    ) -> Path:
    """Write a grid of images as a PNG, atomically.

    Args:
        images: uint8 (N, C, H, W) with C in {1, 3}.
        path: where the PNG goes.
        nrow: images per row.
        padding: pixels between images.
        scale: integer upscaling (nearest neighbour), so that small images are easy to see.
    """
    from PIL import Image
    from torchvision.utils import make_grid

    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(
            f"images should be uint8 (N, C, H, W) with C in (1, 3), got {images.dtype} {tuple(images.shape)}"
        )
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale should be a positive int, got {scale!r}")
    if scale > 1:
        images = images.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
    grid = make_grid(images, nrow=nrow, padding=padding, pad_value=255)
    if images.shape[1] == 1:
        grid = grid[:1]
    array = grid.permute(1, 2, 0).squeeze(-1).cpu().numpy()
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")
    return path
