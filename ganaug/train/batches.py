"""What the loop trains on: the dataset's images at the run's resolution, and batches that a resume repeats."""

from __future__ import annotations

import math

import torch
from torch.utils.data import DistributedSampler

from ganaug.data.dataset import ImageDataset, convert_images
from ganaug.nets.generator import SUPPORTED_RESOLUTIONS
from ganaug.nets.layers import minibatch_std_group
from ganaug.train.config import TrainConfig
from ganaug.train.distributed import DistributedContext

__all__ = ["ClassGroups", "EpochSampler", "nearest_resolution", "prepare_images"]


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


class ClassGroups:
    """Batches whose consecutive groups of rows share a class, for the discriminator's minibatch-std layers.

    A minibatch-std layer compares the spread of a group of fakes with that of a group of reals.
    Over a random batch a group holds several classes, and its spread is mostly the difference
    between classes, which a generator that repeats one image per class still shows. With each
    group drawn from one class, the spread is that of images within a class: what a collapsed
    generator lacks (docs/design.md).

    Args:
        labels: int64 (N,) the training images' classes.
    """

    def __init__(self, labels: torch.Tensor):
        self.by_class = torch.argsort(labels, stable=True)
        counts = torch.bincount(labels)
        self.counts, self.starts = counts, torch.cumsum(counts, 0) - counts
        self.labels = labels

    def group(self, index: torch.Tensor) -> torch.Tensor:
        """``index`` with each group's rows after the first replaced by random items of the first row's class.

        The first row of each group (a quarter of the batch for groups of 4) keeps the epoch's order;
        the others are drawn from torch's global RNG (saved with the checkpoint, so a resume repeats them).
        """
        size = minibatch_std_group(len(index))  # the layer's own group size for this batch
        anchors = index[::size].repeat_interleave(size)[:len(index)]
        classes = self.labels[anchors]
        picks = (torch.rand(len(index)) * self.counts[classes]).long().clamp_max_(self.counts[classes] - 1)
        grouped = self.by_class[self.starts[classes] + picks]
        first = torch.arange(len(index)) % size == 0
        return torch.where(first, index, grouped)
