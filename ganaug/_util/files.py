"""Atomic file writes: a reader sees the old file or the complete new one, never a half-written one."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

import torch

__all__ = ["TEMP_SUFFIX", "atomic_path", "cache_root", "remove_stale_temporaries", "save_image_grid", "sha256_of"]


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


TEMP_SUFFIX = ".tmp"  # atomic_path's temporaries: ".<name>.<pid>.<random>.tmp" beside their target


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    ``fsync=False`` skips flushing the file to disk before the rename: still atomic for readers
    and after a killed process, but not after a power loss (cheaper for many small files).

    The temporary file lives in the same directory, so the final ``os.replace`` is atomic. On any
    error the temporary file is removed and ``path`` is left as it was. A process killed with
    SIGKILL cannot remove its temporary: its name holds the process id, so that
    :func:`remove_stale_temporaries` can tell it from a live writer's later.

    The result has the permissions a plain ``open()`` would give it (0666 less the umask). The
    temporary is created with exactly that mode by the kernel, and restored if a writer replaced
    the file with its own (safetensors' ``save_file`` makes 0600): the process umask is never
    changed, so this is safe in threads.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temporary(path)
    mode = stat.S_IMODE(tmp.stat().st_mode)
    try:
        yield tmp
        if stat.S_IMODE(tmp.stat().st_mode) != mode:
            tmp.chmod(mode)
        if fsync:
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _create_temporary(path: Path) -> Path:
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"could not create a temporary file beside {str(path)!r}")


def remove_stale_temporaries(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Remove the temporaries that :func:`atomic_path` left in ``folder`` when its process was killed.

    A temporary is stale when the process named in it no longer runs on this machine. Those of
    live processes (another writer at work) are left alone, as is every other file. Returns the
    files removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for tmp in (folder.rglob if recursive else folder.glob)(f".*{TEMP_SUFFIX}"):
        parts = tmp.name[: -len(TEMP_SUFFIX)].rsplit(".", 2)
        if len(parts) != 3 or not parts[1].isdigit() or _process_alive(int(parts[1])):
            continue
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


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
