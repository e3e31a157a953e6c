"""Checkpoints as one safetensors file: tensors for weights, optimizer and RNG state; JSON metadata for the rest.

No pickle anywhere: optimizer states are flattened to named tensors, and everything that is not
a tensor (step, hyper-parameters, counters) travels as JSON in the safetensors header. Writes
are atomic, so a reader (or a resume after kill -9) sees the previous checkpoint or the new one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ganaug._io import atomic_path

__all__ = [
    "CHECKPOINT_FORMAT",
    "MODEL_FORMAT",
    "CheckpointError",
    "flatten_optimizer",
    "read_checkpoint",
    "read_checkpoint_info",
    "strip_prefix",
    "unflatten_optimizer",
    "write_checkpoint",
]

CHECKPOINT_FORMAT = "ganaug.checkpoint/1"
MODEL_FORMAT = "ganaug.model/1"


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, or not one of ganaug's."""


def write_checkpoint(path: str | os.PathLike, tensors: dict[str, torch.Tensor], info: dict[str, Any],
                     file_format: str = CHECKPOINT_FORMAT) -> Path:
    """Atomically write ``tensors`` and the JSON-serializable ``info`` to ``path``."""
    path = Path(path)
    contiguous = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    metadata = {"format": file_format, "info": json.dumps(info)}
    with atomic_path(path) as tmp:
        save_file(contiguous, str(tmp), metadata=metadata)
    return path


def read_checkpoint(path: str | os.PathLike, file_format: str = CHECKPOINT_FORMAT,
                    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a file written by :func:`write_checkpoint`; raise :class:`CheckpointError` on anything else."""
    return _read(path, file_format, with_tensors=True)


def read_checkpoint_info(path: str | os.PathLike, file_format: str = CHECKPOINT_FORMAT) -> dict[str, Any]:
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
        raise CheckpointError(f"checkpoint {str(path)!r} is truncated or damaged: {error}") from error
    try:
        info = json.loads(metadata["info"])
    except (KeyError, json.JSONDecodeError) as error:
        raise CheckpointError(f"checkpoint {str(path)!r} has no readable info block") from error
    return tensors, info


def flatten_optimizer(optimizer: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer's state dict into named tensors and a JSON-serializable rest."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}.{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def unflatten_optimizer(optimizer: torch.optim.Optimizer, prefix: str, tensors: dict[str, torch.Tensor],
                        info: dict) -> None:
    """Load what :func:`flatten_optimizer` produced back into ``optimizer``."""
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in tensors.items():
        if name.startswith(prefix + "."):
            index, key = name[len(prefix) + 1:].split(".", 1)
            state.setdefault(int(index), {})[key] = tensor
    for index, values in info["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": info["param_groups"]})


def strip_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors named ``prefix.<rest>``, keyed by ``<rest>``."""
    start = len(prefix) + 1
    return {name[start:]: t for name, t in tensors.items() if name.startswith(prefix + ".")}
