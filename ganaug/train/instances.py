"""The run's IC-GAN instance conditions: every training image's features and neighbours, and the instance bank.

Computed once per run and kept in ``instance_features.safetensors``, so a resume reuses them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ganaug._util.checkpoint_file import read_checkpoint, write_checkpoint
from ganaug._util.model_files import CHECKPOINT_FORMAT
from ganaug.nets.features import FeatureExtractor
from ganaug.nets.instances import embed_images, same_class_neighbours, select_bank
from ganaug.train.config import TrainConfig
from ganaug.train.run_dir import INSTANCE_FILE

__all__ = ["InstanceConditions", "instance_conditions"]


@dataclass
class InstanceConditions:
    """Attributes:
        features: float (N, D) pooled backbone features of the training images, on the device.
        neighbours: int64 (N, k) each image's same-class nearest neighbours (itself included).
        bank: ``bank.features`` float (M, D) and ``bank.labels`` int64 (M,) on the CPU: what the
            model keeps for class-conditional sampling.
    """

    features: torch.Tensor
    neighbours: torch.Tensor
    bank: dict[str, torch.Tensor]


def instance_conditions(config: TrainConfig, run_dir: Path, extractor: FeatureExtractor, images: torch.Tensor,
                        labels: torch.Tensor, num_classes: int, device: torch.device, is_main: bool,
                        ) -> InstanceConditions | None:
    """The run's instance conditions (None for a class-only run), read from the run directory when it has them."""
    if not config.instance_conditioning:
        return None
    path = run_dir / INSTANCE_FILE
    if path.is_file():
        tensors, _ = read_checkpoint(path, CHECKPOINT_FORMAT)
        features, neighbours = tensors["features"].to(device), tensors["neighbours"].long()
    else:
        features = embed_images(extractor, images, device)
        neighbours = same_class_neighbours(features.cpu(), labels, config.instance_neighbours)
        if is_main:
            write_checkpoint(path, {"features": features, "neighbours": neighbours.int()}, {"kind": "instances"},
                             CHECKPOINT_FORMAT)
    keep = select_bank(labels, num_classes, config.bank_per_class, config.seed)
    bank = {"bank.features": features[keep.to(features.device)].cpu(), "bank.labels": labels[keep]}
    return InstanceConditions(features, neighbours, bank)
