"""Where a trained generator's files are: one rule for "is this a training run or an exported model?".

A training run directory holds ``checkpoint.safetensors`` (the whole training state, its config
included) and ``config.json``; an export written by ``GANAug.save_pretrained`` holds
``model.safetensors`` (the EMA generator, the feature network and the instance bank) and a
``config.json`` for people.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ganaug._util.checkpoint_file import CONFIG_FILE, CheckpointError

__all__ = [
    "CHECKPOINT_FORMAT",
    "EXPORT_FORMAT",
    "EXPORT_WEIGHTS_FILE",
    "RUN_CHECKPOINT_FILE",
    "ModelFiles",
    "find_model_files",
    "model_path",
]

RUN_CHECKPOINT_FILE = "checkpoint.safetensors"
EXPORT_WEIGHTS_FILE = "model.safetensors"
CHECKPOINT_FORMAT = "ganaug.checkpoint/1"
EXPORT_FORMAT = "ganaug.model/1"


@dataclass(frozen=True)
class ModelFiles:
    """A model folder's kind and files.

    Attributes:
        kind: "export" or "run".
        folder: the folder.
        weights: the file that loading reads (``model.safetensors`` or ``checkpoint.safetensors``).
        file_format: the format tag of ``weights``.
        config: ``config.json`` beside it, or None when it is missing.
    """

    kind: str
    folder: Path
    weights: Path
    file_format: str
    config: Path | None


def find_model_files(path: str | os.PathLike, name: str = "model") -> ModelFiles:
    """Decide whether ``path`` is an exported model or a training run.

    Args:
        path: the folder.
        name: the argument's name, for errors.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: it exists but holds neither kind of model.
    """
    folder = Path(path)
    if not folder.exists():
        raise FileNotFoundError(f"{name} path {str(folder)!r} does not exist")
    config = folder / CONFIG_FILE
    config = config if config.is_file() else None
    if (folder / EXPORT_WEIGHTS_FILE).is_file():
        return ModelFiles("export", folder, folder / EXPORT_WEIGHTS_FILE, EXPORT_FORMAT, config)
    if (folder / RUN_CHECKPOINT_FILE).is_file():
        return ModelFiles("run", folder, folder / RUN_CHECKPOINT_FILE, CHECKPOINT_FORMAT, config)
    raise CheckpointError(f"{name} {str(folder)!r} holds neither {EXPORT_WEIGHTS_FILE} (an exported model) nor "
                          f"{RUN_CHECKPOINT_FILE} (a training run)")


def model_path(path: str | os.PathLike, name: str = "model") -> str:
    """``path`` checked to hold a model (see :func:`find_model_files`), as an absolute path string.

    Transforms and datasets keep this form: it survives pickling into DataLoader workers and
    serialization (``A.save``) and still names the model when read from another directory.
    """
    find_model_files(path, name)
    return os.path.abspath(os.fspath(path))
