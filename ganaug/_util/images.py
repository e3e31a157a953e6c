"""Image inputs: which forms ganaug accepts, and the one conversion of each to a ``(N, C, H, W)`` tensor and back.

Accepted: torch tensors ``(C, H, W)`` or ``(N, C, H, W)``, uint8 in [0, 255] or float in [0, 1];
numpy arrays ``(H, W)``, ``(H, W, C)`` or ``(N, H, W, C)``, uint8 or float32 in [0, 1] (the
albumentations convention); PIL images in mode L or RGB. C is 1 or 3.

Float values are checked where images come in from users (:func:`check_float_values`): NaN,
infinities and values outside [0, 1] are refused, not blended. A normalized image (after
``Normalize``) is refused for that reason: ganaug's transforms go before ``Normalize``, except
the batch path after the DataLoader, which is told the chain's mean and std
(:class:`Normalization`) and takes normalized batches as ``v2.MixUp`` does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "IMAGE_CHANNELS",
    "MIN_IMAGE_SIZE",
    "ImageBatch",
    "Normalization",
    "as_image_batch",
    "check_float_values",
    "check_image_tensor",
    "check_min_size",
    "check_normalization",
    "check_normalized_values",
    "fit_images",
    "from_float",
    "hwc_image",
    "image_batch",
    "match_channels",
    "pil_array",
    "to_float",
]

IMAGE_CHANNELS = (1, 3)
MIN_IMAGE_SIZE = 8  # the transforms' smallest side: below it a generated image has nothing to say
PIL_MODES = ("L", "RGB")
FLOAT_TOLERANCE = 1e-3  # float images may stray this far outside [0, 1] (rounding in earlier transforms)


def check_float_values(name: str, images: Any) -> Any:
    """Refuse a float image (numpy or torch, any shape) with NaN, infinite or out-of-[0, 1] values.

    uint8 images and empty arrays pass unchecked. Returns ``images``.
    """
    if isinstance(images, np.ndarray):
        if images.dtype == np.uint8 or images.size == 0 or images.dtype.kind != "f":
            return images
        low, high = float(images.min()), float(images.max())
    elif isinstance(images, torch.Tensor):
        if not images.is_floating_point() or images.numel() == 0:
            return images
        low, high = (float(v) for v in torch.aminmax(images.detach()))
    else:
        return images
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"{name} holds NaN or infinite values (min {low}, max {high}); ganaug takes uint8 images or "
                         "float images with finite values in [0, 1]")
    if low < -FLOAT_TOLERANCE or high > 1 + FLOAT_TOLERANCE:
        raise ValueError(f"{name} is a float image with values in [{low:.4g}, {high:.4g}], but float images should "
                         "lie in [0, 1] (uint8: [0, 255]). A float image in 0..255 needs dividing by 255; a "
                         "normalized one (after Normalize) cannot be blended with generated pixels: put the ganaug "
                         "transform before Normalize, or, on batches after the DataLoader, tell "
                         "ganaug.transforms.GANAugment the normalization (normalize=(mean, std))")
    return images


def check_normalized_values(name: str, images: torch.Tensor, normalization: Normalization) -> torch.Tensor:
    """Refuse what cannot be an image normalized by ``normalization``: a non-float tensor, NaN or infinities."""
    if not images.is_floating_point():
        raise ValueError(f"{name} should be float images normalized by mean {normalization.mean} and std "
                         f"{normalization.std} (normalize= is set), got dtype {images.dtype}: drop normalize= for "
                         "uint8 or [0, 1] images")
    # a NaN or an infinity makes the sum non-finite: one reduction, a tenth of the cost of an elementwise test
    # (checked elementwise only then, so that finite values whose sum overflows pass)
    if images.numel() and not bool(torch.isfinite(images.sum())) and not bool(torch.isfinite(images).all()):
        raise ValueError(f"{name} holds NaN or infinite values")
    return images


def check_image_tensor(name: str, images: Any, batched: bool | None = None) -> torch.Tensor:
    """A uint8 or float tensor ``(C, H, W)`` (``batched`` False), ``(N, C, H, W)`` (True) or either (None).

    Returns it as a plain tensor (a ``tv_tensors.Image`` loses its subclass), batch axis untouched.
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} should be a torch.Tensor, got {type(images).__name__}")
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise TypeError(f"{name} should be a uint8 or float (in [0, 1]) tensor, got dtype {images.dtype}")
    ndims = {None: (3, 4), False: (3,), True: (4,)}[batched]
    shape = {3: "(C, H, W)", 4: "(N, C, H, W)"}
    if images.ndim not in ndims or images.shape[-3] not in IMAGE_CHANNELS:
        expected = " or ".join(shape[n] for n in ndims)
        raise ValueError(f"{name} should be {expected} with C in {IMAGE_CHANNELS}, got shape {tuple(images.shape)}")
    return images.as_subclass(torch.Tensor)


def as_image_batch(images: Any, name: str = "images") -> torch.Tensor:
    """A ``(C, H, W)`` or ``(N, C, H, W)`` image tensor (checked) with a batch axis: ``(N, C, H, W)``."""
    images = check_image_tensor(name, images)
    return images.unsqueeze(0) if images.ndim == 3 else images


def hwc_image(name: str, image: Any, min_size: bool = False) -> np.ndarray:
    """A numpy image (H, W) or (H, W, C), uint8 or float32, checked and viewed as (H, W, C)."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} should be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8 and image.dtype != np.float32:
        raise TypeError(f"{name} should be uint8 or float32 (in [0, 1]), got dtype {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in IMAGE_CHANNELS:
        raise ValueError(f"{name} should be (H, W) or (H, W, C) with C in {IMAGE_CHANNELS}, got shape {image.shape}")
    if min_size:
        check_min_size(name, image.shape[0], image.shape[1])
    return check_float_values(name, image)


def pil_array(name: str, image: Any) -> np.ndarray:
    """A PIL image in mode L or RGB as a read-only uint8 numpy view, (H, W) or (H, W, 3)."""
    if image.mode not in PIL_MODES:
        raise ValueError(f"{name} should be a PIL image in mode 'L' or 'RGB', got mode {image.mode!r}")
    return np.asarray(image)


def check_min_size(name: str, height: int, width: int) -> None:
    """Refuse images smaller than :data:`MIN_IMAGE_SIZE` on a side."""
    if min(height, width) < MIN_IMAGE_SIZE:
        raise ValueError(f"{name} should be at least {MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE} pixels, got {height}x{width}")


@dataclass
class ImageBatch:
    """Images as one ``(N, C, H, W)`` tensor in their own dtype, and the way back to the form they came in.

    Attributes:
        images: (N, C, H, W), uint8 or float, on the CPU (numpy, PIL) or the input's device.
        restore: maps a tensor of the same shape and dtype back to the input's type and layout.
    """

    images: torch.Tensor
    restore: Callable[[torch.Tensor], Any]


def image_batch(images: Any, name: str = "images", min_size: bool = False) -> ImageBatch:
    """Convert any accepted image input (see the module docs) to an :class:`ImageBatch`.

    Args:
        images: a tensor, numpy array or PIL image.
        name: the argument's name, for errors.
        min_size: also refuse sides below :data:`MIN_IMAGE_SIZE`.
    """
    import PIL.Image

    if isinstance(images, PIL.Image.Image):
        mode = images.mode
        batch = image_batch(pil_array(name, images), name, min_size).images

        def restore_pil(out: torch.Tensor) -> PIL.Image.Image:
            pixels = out[0].permute(1, 2, 0).numpy()
            return PIL.Image.fromarray(pixels[:, :, 0] if mode == "L" else pixels)

        return ImageBatch(batch, restore_pil)
    if isinstance(images, np.ndarray):
        shape = images.shape
        if images.ndim == 4 and len(images):  # a batch of (H, W, C) images: the first one stands for all
            hwc_image(name, images[0], min_size)
            nhwc = check_float_values(name, images)
        elif images.ndim == 4:
            raise ValueError(f"{name} should hold at least one image, got shape {shape}")
        else:
            nhwc = hwc_image(name, images, min_size)[None]
        # (N, C, H, W) in contiguous memory, the layout convolutions see from tensors; a copy, so read-only
        # arrays (from PIL) are fine
        batch = torch.from_numpy(np.array(nhwc.transpose(0, 3, 1, 2), order="C"))

        def restore_numpy(out: torch.Tensor) -> np.ndarray:
            return out.permute(0, 2, 3, 1).numpy().reshape(shape)

        return ImageBatch(batch, restore_numpy)
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} should be a torch.Tensor, a numpy array or a PIL image, got "
                        f"{type(images).__name__}")
    tensor = check_float_values(name, check_image_tensor(name, images))
    if min_size:
        check_min_size(name, tensor.shape[-2], tensor.shape[-1])
    shape, device = tensor.shape, tensor.device

    def restore_tensor(out: torch.Tensor) -> torch.Tensor:
        return out.reshape(shape).to(device)

    return ImageBatch(tensor.unsqueeze(0) if tensor.ndim == 3 else tensor, restore_tensor)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images in [0, 255] or float images in [0, 1], as float32 in [0, 1]."""
    return images.float() / 255 if images.dtype == torch.uint8 else images.float()


def from_float(images: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Float images in [0, 1] as ``dtype``: uint8 rounded and clamped to [0, 255], floats as they are."""
    if dtype == torch.uint8:
        return (images * 255).round().clamp(0, 255).to(torch.uint8)
    return images.to(dtype)


def match_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Float (N, C, H, W) to ``channels`` channels: gray repeated, or ITU-R BT.601 luma (as PIL's convert("L"))."""
    if images.shape[1] == channels:
        return images
    if channels == 3:
        return images.expand(-1, 3, -1, -1)
    luma = torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype, device=images.device)
    return (images * luma[None, :, None, None]).sum(dim=1, keepdim=True)


def fit_images(images: torch.Tensor, channels: int, size: tuple[int, int]) -> torch.Tensor:
    """Resize and convert generated images to a target's channels and size.

    Args:
        images: uint8 (N, C, R, R), C in {1, 3}.
        channels: 1 or 3; 1 -> 3 repeats the gray channel, 3 -> 1 takes BT.601 luma.
        size: (H, W).

    Returns:
        uint8 (N, channels, H, W).
    """
    out = images
    if out.shape[1] != channels:
        out = (out.expand(-1, 3, -1, -1) if channels == 3 else
               match_channels(out.float(), 1).round().clamp(0, 255).to(torch.uint8))
    if tuple(out.shape[-2:]) != tuple(size):
        antialias = size[0] < out.shape[-2] or size[1] < out.shape[-1]
        out = F.interpolate(out.float(), size=size, mode="bilinear", align_corners=False, antialias=antialias)
        out = out.round().clamp(0, 255).to(torch.uint8)
    return out.contiguous()


@dataclass(frozen=True)
class Normalization:
    """A chain's per-channel normalization, ``(x / 255 - mean) / std`` of uint8 images (``v2.Normalize`` after
    ``v2.ToDtype(scale=True)``, or ``A.Normalize`` with ``max_pixel_value=255``). Hashable: a key of cached copies.

    Attributes:
        mean, std: one value per channel (or one for all channels).
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def apply(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, C, H, W) images as float32 normalized ones; the values must fit C (1 or C of them)."""
        channels = images.shape[1]
        if len(self.mean) not in (1, channels):
            raise ValueError(f"normalize has {len(self.mean)} mean and std values; images have {channels} channels "
                             "(give 1 value, or 1 per channel)")
        mean = torch.tensor(self.mean, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
        return (images.float() / 255 - mean) / std


def check_normalization(name: str, value: Any) -> Normalization | None:
    """``value`` as a :class:`Normalization`: None, or a ``(mean, std)`` pair of numbers or equal-length sequences
    of numbers (as ``v2.Normalize`` takes them), every std positive."""
    if value is None:
        return None
    if isinstance(value, Normalization):
        return value
    expected = f"{name} should be None or (mean, std), each a number or a sequence of 1 or 3 numbers, std > 0"
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{expected}; got {value!r}")
    parts = []
    for part in value:
        values = (part,) if isinstance(part, (int, float)) else part
        try:
            values = tuple(float(v) for v in values)
        except (TypeError, ValueError):
            raise ValueError(f"{expected}; got {value!r}") from None
        if len(values) not in IMAGE_CHANNELS or not all(math.isfinite(v) for v in values):
            raise ValueError(f"{expected}; got {value!r}")
        parts.append(values)
    mean, std = parts
    if len(mean) != len(std) or min(std) <= 0:
        raise ValueError(f"{expected}; got {value!r}")
    return Normalization(mean, std)
