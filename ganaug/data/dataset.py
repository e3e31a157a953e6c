"""The dataset type every source becomes: labelled images held in memory as one ``uint8 (N, C, H, W)`` tensor.

An :class:`ImageDataset` yields ``(image, label)`` with ``image`` a ``uint8 (C, H, W)`` tensor at
the configured size and channel count, and ``label`` an ``int``. Images are decoded and resized
once, when the dataset is built, and kept in memory: a few thousand images at 28-64 px take a few
MB, and training then never waits on decoding.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from ganaug._util.images import match_channels
from ganaug._util.validate import as_labels, check_channels, check_image_size
from ganaug.data.folder import read_image_folder
from ganaug.data.torch_dataset import read_torch_dataset

__all__ = ["DataSource", "ImageDataset", "convert_images"]

@dataclass(frozen=True)
class DataSource:
    """Where a data set came from: ``kind`` is one of root, debian, download, embedded, folder, arrays, dataset."""

    kind: str
    location: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.location}"


class ImageDataset(Dataset):
    """Labelled images held in memory as one ``uint8 (N, C, H, W)`` tensor.

    Build one with :meth:`from_arrays`, :meth:`from_folder`, :meth:`from_dataset`, :func:`load_fashion_mnist` or
    :func:`load_dataset`. Items are ``(image uint8 (C, H, W), label int)``.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: Sequence[str], source: DataSource):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"images should be uint8 (N, C, H, W) with C in (1, 3), got {images.dtype} "
                             f"{tuple(images.shape)}")
        if labels.shape != (images.shape[0],):
            raise ValueError(f"labels should have shape ({images.shape[0]},), got {tuple(labels.shape)}")
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= len(classes)):
            raise ValueError(f"labels should lie in [0, {len(classes)}), "
                             f"got [{int(labels.min())}, {int(labels.max())}]")
        self.images = images.contiguous()
        self.labels = labels.to(torch.int64)
        self.classes = tuple(classes)
        self.source = source

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])

    def __repr__(self) -> str:
        return (f"ImageDataset(num_images={len(self)}, num_classes={self.num_classes}, channels={self.channels}, "
                f"image_size={self.image_size}, source={self.source})")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width)."""
        return (self.images.shape[2], self.images.shape[3])

    def class_counts(self) -> list[int]:
        """Number of images of each class, indexed by label."""
        return torch.bincount(self.labels, minlength=self.num_classes).tolist()

    def subset(self, indices: Sequence[int] | torch.Tensor) -> ImageDataset:
        """A new dataset with the given items, in that order (the images are copied)."""
        index = torch.as_tensor(indices, dtype=torch.int64)
        return ImageDataset(self.images[index], self.labels[index], self.classes, self.source)

    def split(self, fraction: float, seed: int = 0) -> tuple[ImageDataset, ImageDataset]:
        """Split into ``(rest, held_out)``, stratified by class, with ``fraction`` of each class held out.

        Every class with at least two images keeps at least one image on each side.
        """
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"fraction should lie in (0, 1), got {fraction}")
        generator = torch.Generator().manual_seed(seed)
        held_out, rest = [], []
        for label in range(self.num_classes):
            members = torch.nonzero(self.labels == label).flatten()
            members = members[torch.randperm(len(members), generator=generator)]
            count = round(len(members) * fraction)
            if len(members) >= 2:
                count = min(max(count, 1), len(members) - 1)
            held_out.append(members[:count])
            rest.append(members[count:])
        return self.subset(torch.cat(rest).sort().values), self.subset(torch.cat(held_out).sort().values)

    @classmethod
    def from_arrays(
        cls,
        images: np.ndarray | torch.Tensor,
        labels: np.ndarray | torch.Tensor | Sequence[int],
        classes: Sequence[str] | None = None,
        image_size: int | tuple[int, int] | None = None,
        channels: int | None = None,
    ) -> ImageDataset:
        """Wrap in-memory images.

        Args:
            images: (N, H, W) grayscale, or (N, H, W, C) / (N, C, H, W) with C in {1, 3}; the layout is
                read from where the size-1 or size-3 axis is. uint8 in [0, 255] or float in [0, 1].
            labels: N integer class labels in [0, num_classes).
            classes: class names; default ``"0", "1", ...`` up to the largest label.
            image_size: output size, an int for square or (height, width); default: keep.
            channels: 1 or 3; default: keep.
        """
        tensor = _images_to_uint8_nchw(images)
        label_tensor = torch.tensor(as_labels(labels, name="labels"), dtype=torch.int64)
        if len(label_tensor) != tensor.shape[0]:
            raise ValueError(f"labels should have one entry per image ({tensor.shape[0]}), got {len(label_tensor)}")
        if classes is None:
            classes = [str(c) for c in range(int(label_tensor.max()) + 1 if len(label_tensor) else 0)]
        tensor = convert_images(tensor, image_size=image_size, channels=channels)
        return cls(tensor, label_tensor, classes, DataSource("arrays", f"{tuple(tensor.shape)}"))

    @classmethod
    def from_dataset(
        cls,
        dataset: Dataset,
        image_size: int | tuple[int, int] | None = None,
        channels: int | None = None,
        progress: bool = True,
    ) -> ImageDataset:
        """Read a map-style PyTorch dataset of ``(image, label)`` once, into memory.

        torchvision datasets, ``ImageFolder``, ``TensorDataset`` and your own datasets work;
        images may be PIL images, tensors or numpy arrays (see
        :mod:`ganaug.data.torch_dataset`). Give them without random transforms: each item is
        read once.

        Args:
            dataset: has ``__len__`` and ``__getitem__`` returning ``(image, label, ...)``.
            image_size: an int for square, or (height, width); None: the images' own size when
                they share one, else a square of their median side.
            channels: 1 or 3; None: 1 when no image has colour, else 3.
            progress: show a progress bar while reading.
        """
        images, labels, classes, name, size, channels = read_torch_dataset(dataset, image_size, channels, progress)
        stacked = torch.cat([convert_images(image[None], image_size=size, channels=channels) for image in images])
        return cls(stacked, labels, classes, DataSource("dataset", name))

    @classmethod
    def from_folder(
        cls,
        root: str | os.PathLike,
        image_size: int | tuple[int, int] | None = None,
        channels: int | None = None,
        progress: bool = False,
    ) -> ImageDataset:
        """Read an ImageFolder tree: ``root/<class name>/<image file>``.

        Classes are the subfolders, sorted by name. Each image is resized so that it covers
        ``image_size`` and then centre-cropped to it. Transparent pixels are composited over
        white; 16-bit and float images are scaled to 8 bits. Files that are not images, or
        cannot be decoded, are skipped and counted in one warning.

        Args:
            root: the folder holding one subfolder per class.
            image_size: an int for square, or (height, width); None: the images' own size when
                they share one, else a square of their median side.
            channels: 1 (grayscale) or 3 (RGB); None: 1 when no image has colour, else 3.
            progress: show a progress bar while decoding.
        """
        images, labels, classes, location = read_image_folder(root, image_size, channels, progress)
        return cls(images, labels, classes, DataSource("folder", location))


def convert_images(
    images: torch.Tensor, image_size: int | tuple[int, int] | None = None, channels: int | None = None
) -> torch.Tensor:
    """Resize (cover, then centre-crop) and convert channels of ``uint8 (N, C, H, W)`` images.

    RGB to grayscale uses the ITU-R 601 luma weights, as PIL's ``convert("L")`` does.
    """
    from torchvision.transforms.v2 import functional as TF

    if channels is not None:
        check_channels("channels", channels)
        if channels == 3 and images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        elif channels == 1 and images.shape[1] == 3:
            images = match_channels(images.float(), 1).round().clamp(0, 255).to(torch.uint8)
    if image_size is not None:
        height, width = check_image_size("image_size", image_size)
        if images.shape[-2:] != (height, width):
            scale = max(height / images.shape[-2], width / images.shape[-1])
            cover = (max(height, round(images.shape[-2] * scale)), max(width, round(images.shape[-1] * scale)))
            images = TF.resize(images, list(cover), antialias=True)
            images = TF.center_crop(images, [height, width])
    return images.contiguous()



def _images_to_uint8_nchw(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    tensor = torch.as_tensor(images) if not isinstance(images, torch.Tensor) else images.detach().cpu()
    if tensor.ndim == 3:
        tensor = tensor.unsqueeze(1)
    if tensor.ndim != 4:
        raise ValueError(f"images should be (N, H, W), (N, H, W, C) or (N, C, H, W), got shape {tuple(tensor.shape)}")
    channels_first = tensor.shape[1] in (1, 3) and tensor.shape[3] not in (1, 3)
    if not channels_first:
        if tensor.shape[3] not in (1, 3):
            raise ValueError(f"images should have 1 or 3 channels, first or last, got shape {tuple(tensor.shape)}")
        tensor = tensor.permute(0, 3, 1, 2)
    if tensor.dtype == torch.uint8:
        return tensor.contiguous()
    if tensor.is_floating_point():
        if tensor.numel() and (not torch.isfinite(tensor).all() or tensor.min() < 0 or tensor.max() > 1):
            raise ValueError("float images should hold finite values in [0, 1]; "
                             f"got values in [{float(tensor.min())}, {float(tensor.max())}]")
        return (tensor * 255).round().to(torch.uint8).contiguous()
    raise TypeError(f"images should be uint8 or float, got {tensor.dtype}")


