"""A training run's directory: what it holds, its run info, the metrics log and the sample grids.

    RUN/config.json                   the run info (config, classes, data, versions), for people and the CLI
    RUN/checkpoint.safetensors        the training state, the run info included (written atomically)
    RUN/checkpoint.prev.safetensors   the checkpoint before it, kept as a way back if the newest is damaged
    RUN/instance_features.safetensors pooled backbone features of the training images and their neighbours
    RUN/extractor.safetensors         the backbone, when it was pretrained here
    RUN/metrics.jsonl                 one line of losses and speed every ``log_every`` steps
    RUN/samples/step_*.png            a grid of samples every ``sample_every`` steps
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ganaug._util.checkpoint_file import CONFIG_FILE, read_checkpoint_info
from ganaug._util.files import atomic_path, save_image_grid
from ganaug._util.model_files import CHECKPOINT_FORMAT, RUN_CHECKPOINT_FILE
from ganaug._util.versions import package_versions
from ganaug.data.dataset import ImageDataset
from ganaug.train.config import TrainConfig, saved_config_for_resume

__all__ = [
    "EXTRACTOR_FILE",
    "INSTANCE_FILE",
    "METRICS_FILE",
    "RUN_FORMAT",
    "append_metrics",
    "check_run_dir",
    "new_run_info",
    "read_run_info",
    "resumed_run_info",
    "save_samples",
    "truncate_metrics",
    "verify_run",
    "write_run_info",
]

RUN_FORMAT = "ganaug.run/1"
INSTANCE_FILE = "instance_features.safetensors"
EXTRACTOR_FILE = "extractor.safetensors"
METRICS_FILE = "metrics.jsonl"
SAMPLES_DIR = "samples"
GRID_SIDE = 64  # sample grids upscale smaller images to about this many pixels, so they are easy to see
BUDGET_FIELDS = ("steps", "minutes", "extra")  # what a resume may change


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """A new run needs a directory without a checkpoint; a resume needs one with it."""
    checkpoint = run_dir / RUN_CHECKPOINT_FILE
    if resume and not checkpoint.is_file():
        raise FileNotFoundError(f"cannot resume: {str(checkpoint)!r} does not exist")
    if not resume and checkpoint.is_file():
        raise FileExistsError(f"run directory {str(run_dir)!r} already holds a run; pass resume=True (--resume) to "
                              "continue it, or choose a new directory")


def new_run_info(config: TrainConfig, dataset: ImageDataset, images: torch.Tensor, device: torch.device,
                 world_size: int, precision: torch.dtype) -> dict[str, Any]:
    """The run info of a new run: its config, what it trains on, and where."""
    return {
        "format": RUN_FORMAT,
        "config": config.to_dict(),
        "classes": list(dataset.classes),
        "resolution": images.shape[-1],
        "channels": images.shape[1],
        "data": {"source": str(dataset.source), "num_images": len(dataset), "class_counts": dataset.class_counts()},
        "versions": package_versions(),
        "device": str(device),
        "world_size": world_size,
        "precision": str(precision).replace("torch.", ""),
    }


def read_run_info(run_dir: str | Path) -> dict[str, Any]:
    """A run's info: from its checkpoint (which holds it), else from its ``config.json`` (older runs)."""
    run_dir = Path(run_dir)
    checkpoint = run_dir / RUN_CHECKPOINT_FILE
    if checkpoint.is_file():
        info = read_checkpoint_info(checkpoint, CHECKPOINT_FORMAT)
        if "run" in info:
            return info["run"]
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{str(run_dir)!r} holds neither {RUN_CHECKPOINT_FILE} nor {CONFIG_FILE}: it is not "
                                "a ganaug run")
    return json.loads(path.read_text())


def resumed_run_info(run_dir: Path, config: TrainConfig) -> tuple[dict[str, Any], bool]:
    """The run info of a run being resumed with ``config``, and whether it changed (the budget).

    Only ``steps``, ``minutes`` and ``extra`` may differ from the saved config.
    """
    info = read_run_info(run_dir)
    info["config"] = saved_config_for_resume(info["config"], str(run_dir))
    current = config.to_dict()
    if info["config"] == current:
        return info, False
    changed = sorted(k for k, v in current.items() if v != info["config"].get(k) and k not in BUDGET_FIELDS)
    if changed:
        raise ValueError(f"cannot resume {str(run_dir)!r} with a different config: {changed} differ")
    info["config"]["steps"], info["config"]["minutes"] = config.steps, config.minutes
    return info, True


def write_run_info(run_dir: Path, info: dict[str, Any]) -> None:
    """Write ``config.json`` atomically."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(run_dir / CONFIG_FILE) as tmp:
        tmp.write_text(json.dumps(info, indent=2))


def append_metrics(run_dir: Path, metrics: dict[str, Any]) -> None:
    """Add one line to ``metrics.jsonl``."""
    with open(run_dir / METRICS_FILE, "a") as handle:
        handle.write(json.dumps(metrics) + "\n")


def truncate_metrics(run_dir: Path, step: int) -> None:
    """Drop the lines of steps after ``step`` (a resume or a restore goes back to it), and any torn line."""
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return
    kept = [line for line in path.read_text().splitlines()
            if (line_step := _metrics_step(line)) is not None and line_step <= step]
    with atomic_path(path) as tmp:
        tmp.write_text("".join(line + "\n" for line in kept))


def _metrics_step(line: str) -> int | None:
    """The step of a metrics line; None for a blank or torn one (a process killed while appending it)."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    return record.get("step", 0) if isinstance(record, dict) else None


def save_samples(run_dir: Path, images: torch.Tensor, step: int, per_row: int) -> Path:
    """Write a grid of uint8 (N, C, R, R) samples as ``samples/step_<step>.png``, ``per_row`` per row."""
    scale = max(1, GRID_SIDE // images.shape[-1])
    return save_image_grid(images, run_dir / SAMPLES_DIR / f"step_{step:07d}.png", nrow=per_row, scale=scale)


def verify_run(run_dir: str | Path) -> list[str]:
    """Check that every file of a run is whole; returns the problems found (none: an empty list).

    Reads every checkpoint's tensors (checking their CRC-32), ``config.json``, the sample grids
    and the metrics; a torn last metrics line (a kill while appending) and the temporaries of a
    killed writer are reported too, though a resume repairs both.
    """
    from PIL import Image

    from ganaug._util.checkpoint_file import CheckpointError, previous_path, read_checkpoint
    from ganaug._util.files import TEMP_SUFFIX

    run_dir = Path(run_dir)
    problems: list[str] = []
    checkpoint = run_dir / RUN_CHECKPOINT_FILE
    for path in (checkpoint, previous_path(checkpoint), run_dir / INSTANCE_FILE):
        if path.is_file() or path == checkpoint:
            try:
                read_checkpoint(path, CHECKPOINT_FORMAT)
            except CheckpointError as error:
                problems.append(str(error))
    try:
        json.loads((run_dir / CONFIG_FILE).read_text())
    except (OSError, json.JSONDecodeError) as error:
        problems.append(f"{CONFIG_FILE}: {error}")
    for grid in sorted((run_dir / SAMPLES_DIR).glob("*.png")):
        try:
            with Image.open(grid) as image:
                image.verify()
        except Exception as error:  # noqa: BLE001 - PIL raises many types for damaged files
            problems.append(f"{grid.name}: {error}")
    lines = (run_dir / METRICS_FILE).read_text().splitlines() if (run_dir / METRICS_FILE).is_file() else []
    steps = [_metrics_step(line) for line in lines]
    if any(step is None for step in steps):
        problems.append(f"{METRICS_FILE}: {sum(step is None for step in steps)} torn line(s)")
    whole = [step for step in steps if step is not None]
    if whole != sorted(set(whole)):
        problems.append(f"{METRICS_FILE}: steps repeat or go back")
    problems.extend(f"temporary left by a killed writer: {tmp.relative_to(run_dir)}"
                    for tmp in run_dir.rglob(f".*{TEMP_SUFFIX}"))
    return problems
