"""Any map-style PyTorch dataset of ``(image, label)`` read once into memory: torchvision datasets, ImageFolder,
TensorDataset, your own.

Items are read in order, once, with a progress bar. Images may be PIL images (any mode: high bit
depths are scaled, transparency is composited over white), tensors ``(C, H, W)`` or ``(H, W)``,
or numpy arrays ``(H, W)`` or ``(H, W, C)``, uint8 or float in [0, 1], with 1, 3 or 4 (RGBA)
channels. Labels are ints (Python, numpy or 0-d tensors). Size and channels follow the data (see
:func:`ganaug.data.folder.data_format`) unless they are given.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ganaug._util.images import check_float_values
from ganaug._util.validate import as_labels, check_channels, check_image_size
from ganaug.data.folder import ALPHA_BACKGROUND, data_format, is_gray, to_channels

__all__ = ["read_torch_dataset"]

logger = logging.getLogger(__name__)


def read_torch_dataset(dataset: Any, image_size: int | tuple[int, int] | None = None, channels: int | None = None,
                       progress: bool = True,
                       ) -> tuple[list[torch.Tensor], torch.Tensor, list[str], str, tuple[int, int], int]:
    """Read every ``(image, label)`` item of a map-style dataset.

    Returns:
        the images as uint8 (C, H, W) at their own size and channels, labels int64 (N,), the class
        names (``dataset.classes`` when it names every label, else "0", "1", ...), a description
        of the source, and the (height, width) and channels to convert them to.
    """
    from tqdm.auto import tqdm

    if not (hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
        raise TypeError(f"dataset should be a map-style dataset of (image, label) items (with __len__ and "
                        f"__getitem__), got {type(dataset).__name__}")
    if image_size is not None:
        image_size = check_image_size("image_size", image_size)
    if channels is not None:
        check_channels("channels", channels)
    name = type(dataset).__name__
    if len(dataset) == 0:
        raise ValueError(f"dataset ({name}) is empty")
    images, labels = [], []
    for index in tqdm(range(len(dataset)), desc=f"reading {name}", unit="img", disable=not progress):
        item = dataset[index]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            what = f"a {type(item).__name__} of {len(item)}" if isinstance(item, (tuple, list)) else \
                f"a {type(item).__name__}"
            raise TypeError(f"dataset items should be (image, label) pairs; item {index} of {name} is {what}")
        images.append(_chw_uint8(item[0], f"the image of item {index}"))
        labels.append(as_labels(item[1], num=1, name=f"the label of item {index}")[0])
    if min(labels) < 0:
        raise ValueError(f"labels should be non-negative class indices, got {min(labels)}")
    found_size, found_channels = data_format([tuple(t.shape[1:]) for t in images],
                                             ["L" if t.shape[0] == 1 else "RGB" for t in images])
    image_size, channels = image_size or found_size, channels or found_channels
    classes = _class_names(getattr(dataset, "classes", None), max(labels) + 1)
    logger.info("read %d images in %d classes from %s, to be held at %dx%d, %d channel(s)", len(images), len(classes),
                name, image_size[0], image_size[1], channels)
    return (images, torch.tensor(labels, dtype=torch.int64), classes, f"{name}({len(images)} items)", image_size,
            channels)


def _class_names(names: Any, num_classes: int) -> list[str]:
    if isinstance(names, Sequence) and not isinstance(names, str) and len(names) >= num_classes and all(
            isinstance(n, str) for n in names):
        return list(names)
    return [str(c) for c in range(num_classes)]


def _chw_uint8(image: Any, name: str) -> torch.Tensor:
    """One image as uint8 (C, H, W), C in {1, 3}."""
    import PIL.Image

    if isinstance(image, PIL.Image.Image):
        converted = to_channels(image, 1 if is_gray(image.mode) else 3)
        array = np.asarray(converted, dtype=np.uint8)
        return torch.from_numpy(array.reshape(array.shape[0], array.shape[1], -1).copy()).permute(2, 0, 1)
    if isinstance(image, np.ndarray):
        if image.ndim == 2:
            image = image[:, :, None]
        if image.ndim != 3:
            raise ValueError(f"{name} should be (H, W) or (H, W, C), got shape {image.shape}")
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    elif isinstance(image, torch.Tensor):
        tensor = image.detach().cpu().as_subclass(torch.Tensor)
        if tensor.ndim == 2:
            tensor = tensor[None]
        if tensor.ndim != 3:
            raise ValueError(f"{name} should be (C, H, W) or (H, W), got shape {tuple(tensor.shape)}")
    else:
        raise TypeError(f"{name} should be a PIL image, a tensor or a numpy array, got {type(image).__name__}")
    if tensor.shape[0] not in (1, 3, 4):
        raise ValueError(f"{name} should have 1, 3 or 4 (RGBA) channels, got shape {tuple(tensor.shape)}")
    if tensor.dtype == torch.uint8:
        if tensor.shape[0] != 4:
            return tensor.contiguous()
        tensor = tensor.float() / 255
    elif tensor.is_floating_point():
        check_float_values(name, tensor)
        tensor = tensor.float().clamp(0, 1)
    else:
        raise TypeError(f"{name} should be uint8, or float in [0, 1], got dtype {tensor.dtype}")
    if tensor.shape[0] == 4:  # composited over the background, as the folder reader does
        tensor = tensor[:3] * tensor[3:] + (ALPHA_BACKGROUND / 255) * (1 - tensor[3:])
    return (tensor * 255).round().to(torch.uint8)
