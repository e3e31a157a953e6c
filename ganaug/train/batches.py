"""What the loop trains on: the dataset's images at the run's resolution, and batches that a resume repeats."""

from __future__ import annotations

import math

import torch
from torch.utils.data import DistributedSampler

from ganaug.data.dataset import ImageDataset, convert_images
from ganaug.nets.generator import SUPPORTED_RESOLUTIONS
from ganaug.train.config import TrainConfig
from ganaug.train.distributed import DistributedContext

__all__ = ["EpochSampler", "nearest_resolution", "prepare_images"]


def nearest_resolution(height: int, width: int) -> int:
    """The supported resolution nearest the images' size (their geometric-mean side, compared on a log scale)."""
    side = math.sqrt(height * width)
    return min(SUPPORTED_RESOLUTIONS, key=lambda r: (abs(math.log(r / side)), r))


def prepare_images(dataset: ImageDataset, config: TrainConfig) -> torch.Tensor:
    """The dataset's images at ``config.resolution`` and ``config.channels``: uint8 (N, C, R, R).

    Defaults: the supported resolution nearest the images' size (:func:`nearest_resolution`;
    28x28 stays 28, 16-256 px icons of median side 48 become 64) and the dataset's channels.
    """
    height, width = dataset.image_size
    resolution = config.resolution or nearest_resolution(height, width)
    return convert_images(dataset.images, image_size=resolution, channels=config.channels or dataset.channels)


class EpochSampler:
    """Deterministic batches: a ``DistributedSampler`` permutation per epoch, sliced by step.

    Batch ``k`` is a pure function of the seed, the rank and ``k``, so a resumed run draws the
    same batches as an uninterrupted one.
    """

    def __init__(self, num_items: int, per_rank: int, context: DistributedContext, seed: int):
        self.sampler = DistributedSampler(range(num_items), num_replicas=context.world_size, rank=context.rank,
                                          shuffle=True, seed=seed, drop_last=True)
        self.per_rank = per_rank
        self.steps_per_epoch = max(1, len(self.sampler) // per_rank)
        self.epoch, self.order = -1, None

    def batch(self, step: int) -> torch.Tensor:
        """int64 (per_rank,) item indices of step ``step``'s batch on this rank."""
        epoch, offset = divmod(step, self.steps_per_epoch)
        if epoch != self.epoch:
            self.sampler.set_epoch(epoch)
            self.order, self.epoch = torch.tensor(list(iter(self.sampler))), epoch
        return self.order[offset * self.per_rank:(offset + 1) * self.per_rank]
