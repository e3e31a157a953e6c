"""ganaug's file format for tensors: one safetensors file, with a format tag and a JSON info block in its header.

No pickle anywhere: everything that is not a tensor travels as JSON in the header. Writes are
atomic, so a reader (or a resume after kill -9) sees the previous file or the new one. Every
model ganaug saves (training checkpoints, exported generators, FeatureGANs, instance features)
uses it; :func:`write_model_folder` adds the human-readable ``config.json`` beside the weights.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import zlib
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ganaug._util.files import atomic_path

__all__ = [
    "CONFIG_FILE",
    "CheckpointError",
    "previous_path",
    "read_checkpoint",
    "read_checkpoint_info",
    "strip_prefix",
    "tensors_checksum",
    "write_checkpoint",
    "write_model_folder",
]

CHECKSUM_KEY = "tensors_crc32"  # in the header: see tensors_checksum
CONFIG_FILE = "config.json"  # beside a model's weights: the same information as the header, for people


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, or not one of ganaug's."""


def write_checkpoint(path: str | os.PathLike, tensors: dict[str, torch.Tensor], info: dict[str, Any],
                     file_format: str, keep_previous: bool = False) -> Path:
    """Atomically write ``tensors`` and the JSON-serializable ``info`` to ``path``, tagged ``file_format``.

    ``keep_previous``: the file being replaced stays readable as :func:`previous_path` (a hard
    link where the file system allows it, else a copy), so that a checkpoint damaged on disk later
    has a way back. ``path`` itself is never missing while this runs.
    """
    path = Path(path)
    contiguous = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    metadata = {"format": file_format, "info": json.dumps(info), CHECKSUM_KEY: tensors_checksum(contiguous)}
    with atomic_path(path) as tmp:
        save_file(contiguous, str(tmp), metadata=metadata)
        if keep_previous and path.is_file():
            _keep_copy(path, previous_path(path))
    return path


def tensors_checksum(tensors: dict[str, torch.Tensor]) -> str:
    """CRC-32 of the tensors' names, dtypes, shapes and bytes, in name order: catches a file damaged on disk."""
    crc = 0
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        crc = zlib.crc32(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode(), crc)
        if tensor.numel():
            crc = zlib.crc32(tensor.reshape(-1).view(torch.uint8).numpy(), crc)
    return f"{crc:08x}"


def previous_path(path: str | os.PathLike) -> Path:
    """Where :func:`write_checkpoint` keeps the file it replaced: ``name.safetensors`` -> ``name.prev.safetensors``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def _keep_copy(source: Path, target: Path) -> None:
    with atomic_path(target, fsync=False) as tmp:
        tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError:  # no hard links here (some network and FAT file systems)
            shutil.copy2(source, tmp)


def write_model_folder(folder: str | os.PathLike, weights_name: str, tensors: dict[str, torch.Tensor],
                       info: dict[str, Any], file_format: str) -> Path:
    """A model as a folder: ``folder/weights_name`` (what loading reads) and ``folder/config.json`` (for people)."""
    folder = Path(folder)
    write_checkpoint(folder / weights_name, tensors, info, file_format)
    with atomic_path(folder / CONFIG_FILE) as tmp:
        tmp.write_text(json.dumps({"format": file_format, **info}, indent=2))
    return folder


def read_checkpoint(path: str | os.PathLike, file_format: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a file written by :func:`write_checkpoint`; raise :class:`CheckpointError` on anything else."""
    return _read(path, file_format, with_tensors=True)


def read_checkpoint_info(path: str | os.PathLike, file_format: str) -> dict[str, Any]:
    """Only the info block of a file written by :func:`write_checkpoint` (no tensor is read)."""
    return _read(path, file_format, with_tensors=False)[1]


def _read(path: str | os.PathLike, file_format: str, with_tensors: bool,
          ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            if metadata.get("format") != file_format:
                raise CheckpointError(f"{str(path)!r} is not a ganaug {file_format} file (its format is "
                                      f"{metadata.get('format')!r}); was it written by another program?")
            tensors = {name: handle.get_tensor(name) for name in handle.keys()} if with_tensors else {}  # noqa: SIM118
    except CheckpointError:
        raise
    except Exception as error:  # safetensors raises its own types for damaged files
        raise CheckpointError(f"checkpoint {str(path)!r} is truncated or damaged: {error}.{_way_back(path)}",
                              ) from error
    expected = metadata.get(CHECKSUM_KEY)  # absent in files written before it was kept
    if with_tensors and expected is not None and tensors_checksum(tensors) != expected:
        raise CheckpointError(f"checkpoint {str(path)!r} is damaged: its tensors do not match the checksum written "
                              f"with them.{_way_back(path)}")
    try:
        info = json.loads(metadata["info"])
    except (KeyError, json.JSONDecodeError) as error:
        raise CheckpointError(f"checkpoint {str(path)!r} has no readable info block.{_way_back(path)}") from error
    return tensors, info


def _way_back(path: Path) -> str:
    """The hint in a damaged checkpoint's error: the previous checkpoint, when one is kept."""
    previous = previous_path(path)
    if not previous.is_file():
        return ""
    return (f" The previous checkpoint is kept as {str(previous)!r}: to go back to it, replace the damaged file "
            f"with it (mv {shlex.quote(str(previous))} {shlex.quote(str(path))}).")


def strip_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors named ``prefix.<rest>``, keyed by ``<rest>``."""
    start = len(prefix) + 1
    return {name[start:]: t for name, t in tensors.items() if name.startswith(prefix + ".")}
