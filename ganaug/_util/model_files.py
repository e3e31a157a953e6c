"""Where a trained generator's files are: one rule for "is this a training run or an exported model?".

A training run directory holds ``checkpoint.safetensors`` (the whole training state, its config
included) and ``config.json``; an export written by ``GANAug.save_pretrained`` holds
``model.safetensors`` (the EMA generator, the feature network and the instance bank) and a
``config.json`` for people. A name that is not a folder here but reads as a Hugging Face Hub name
(``org/name`` or ``org/name@revision``) is an export on the Hub: it resolves to its snapshot in the
local Hugging Face cache (see :mod:`ganaug._util.hub`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ganaug._util.checkpoint_file import CONFIG_FILE, CheckpointError
from ganaug._util.hub import HubError, HubName, download_files, parse_hub_name

__all__ = [
    "CHECKPOINT_FORMAT",
    "EXPORT_FORMAT",
    "EXPORT_WEIGHTS_FILE",
    "RUN_CHECKPOINT_FILE",
    "ModelFiles",
    "find_model_files",
    "hub_model_folder",
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
        path: the folder, or a Hub name (``org/name[@revision]``) when no such folder exists.
        name: the argument's name, for errors.

    Raises:
        FileNotFoundError: ``path`` does not exist and cannot be a Hub name.
        HubError: it is not a folder here, and as a Hub name it cannot be had (see :mod:`ganaug._util.hub`).
        CheckpointError: it exists but holds neither kind of model.
    """
    folder = Path(path)
    if not folder.exists():
        hub_name = parse_hub_name(os.fspath(path))
        if hub_name is None:
            raise FileNotFoundError(f"{name} path {str(folder)!r} does not exist")
        folder = hub_model_folder(hub_name, name)
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
    return os.path.abspath(find_model_files(path, name).folder)


def hub_model_folder(hub_name: HubName, name: str = "model") -> Path:
    """The cached snapshot folder of an export on the Hub, its weights downloaded only once it is known to be one.

    A repository whose ``config.json`` is not a ganaug export's fails before its weights are fetched.

    Raises:
        HubError: not a folder here, and the Hub name cannot be had.
        CheckpointError: the repository holds something other than a ganaug model.
    """
    try:
        folder = download_files(hub_name, [CONFIG_FILE])
    except HubError as error:
        raise HubError(f"{name} {str(hub_name)!r} is not a folder here, and as a Hugging Face Hub name: {error}",
                       ) from error
    try:
        file_format = json.loads((folder / CONFIG_FILE).read_text()).get("format")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        file_format = None
    if file_format != EXPORT_FORMAT:
        raise CheckpointError(f"Hub repository {str(hub_name)!r} is not a ganaug model: its {CONFIG_FILE} has format "
                              f"{file_format!r}, not {EXPORT_FORMAT!r} (push one with GANAug.push_to_hub or "
                              "'ganaug push')")
    commit = HubName(hub_name.repo_id, folder.name)  # the snapshot folder is named by its commit: the same files
    return download_files(commit, [CONFIG_FILE, EXPORT_WEIGHTS_FILE])
