"""Generative augmentation on tensors: the work behind the albumentations and torchvision transforms.

The adapters only convert layout and dtype; everything here takes and returns (N, C, H, W)
tensors, uint8 in [0, 255] or float in [0, 1], and draws its randomness from the generator it is
given (numpy for albumentations, torch or torch's global RNG for torchvision).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ganaug.completion import match_channels
from ganaug.sample_bank import SampleBank, random_integers

__all__ = ["MIN_IMAGE_SIZE", "MODES", "augment_one", "augment_images", "check_mix_ratio", "check_mode",
           "fit_images"]

MODES = ("replace", "mix", "variant")
MIN_IMAGE_SIZE = 8


def check_mode(mode: object) -> str:
    if mode not in MODES:
        raise ValueError(f"mode should be one of {MODES}, got {mode!r}")
    return mode


def check_mix_ratio(mix_ratio: object) -> tuple[float, float]:
    """``(low, high)`` with ``0 <= low <= high <= 1``: the range of the synthetic image's weight in ``mix``."""
    try:
        low, high = (float(v) for v in mix_ratio)
    except (TypeError, ValueError):
        raise ValueError(f"mix_ratio should be two numbers (low, high), got {mix_ratio!r}") from None
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"mix_ratio should satisfy 0 <= low <= high <= 1, got {mix_ratio!r}")
    return low, high


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


def augment_images(bank: SampleBank, images: torch.Tensor, labels: list[int] | None, mode: str,
                   mix_ratio: tuple[float, float], rng: np.random.Generator | torch.Generator | None,
                   fresh: bool = False, positions: Sequence[int] | None = None,
                   weights: Sequence[float] | None = None, seed: int | None = None) -> torch.Tensor:
    """Replace, mix or vary images with generated ones.

    Args:
        bank: the model and its sample bank.
        images: uint8 in [0, 255] or float32 in [0, 1], (N, C, H, W) with C in {1, 3}.
        labels: N class labels (validated by the caller); required by "replace" and "mix", optional for "variant"
            (inferred from the image's features when None).
        mode: "replace" (a bank sample of the same class), "mix" (a blend of the image and a bank
            sample, the sample's weight uniform in ``mix_ratio``), or "variant" (a sample
            conditioned on this image's own features, so that its look is kept).
        mix_ratio: ``(low, high)``, used by "mix".
        rng: numpy Generator, torch Generator, or None for torch's global RNG.
        fresh: "replace" and "mix" generate new samples in one generator pass instead of
            drawing from the bank (batch mode on a GPU).
        positions, weights, seed: draws made beforehand (bank positions, mix weights, the
            variant seed), used instead of drawing from ``rng``: how an albumentations
            transform makes its parameters replayable.

    Returns:
        The augmented images: the input's dtype, shape and device.
    """
    num, channels, height, width = images.shape
    if mode == "variant":
        seed = int(random_integers(2**62, 1, rng)[0]) if seed is None else seed
        synthetic = bank.variants(images, labels, seed)
    elif fresh:
        seed = int(random_integers(2**62, 1, rng)[0])
        synthetic = bank.gan.sample(num, labels, seed=seed, truncation=bank.truncation, batch_size=max(num, 1))
    else:
        synthetic = bank.draw(labels, rng, positions=positions)
    synthetic = fit_images(synthetic.to(images.device), channels, (height, width))
    if mode != "mix":
        return synthetic if images.dtype == torch.uint8 else synthetic.to(images.dtype) / 255
    weights = (_random_uniform(num, *mix_ratio, rng) if weights is None
               else torch.tensor(weights, dtype=torch.float32)).to(images.device)[:, None, None, None]
    if images.dtype == torch.uint8:  # a convex combination of values in [0, 255]: no clamp needed
        return images.float().lerp_(synthetic.float(), weights).round_().to(torch.uint8)
    return torch.lerp(images, synthetic.to(images.dtype) / 255, weights.to(images.dtype))


def augment_one(bank: SampleBank, image: np.ndarray, label: int, mode: str, mix_ratio: tuple[float, float],
                rng: np.random.Generator | torch.Generator | None, layout: str = "HWC",
                position: int | None = None, weight: float | None = None) -> np.ndarray | None:
    """The per-sample fast path of :func:`augment_images` for one numpy image, or None where it does not apply.

    It covers "replace" and "mix" when the image already has the bank's size and channels
    (the common case: a pipeline on the data the model was trained on). It does in numpy what
    :func:`augment_images` does in torch, because for a single small image a dozen small torch
    calls cost several times more than the work itself.

    Args:
        image: uint8 or float32 in [0, 1], (H, W, C) or (C, H, W) as ``layout`` says.
        label: the class.
        rng: numpy Generator, torch Generator, or None for torch's global RNG.
        layout: "HWC" (albumentations) or "CHW" (a tensor's memory, seen through ``.numpy()``).
        position, weight: the bank position and mix weight drawn beforehand, instead of from ``rng``.

    Returns:
        The image's dtype and shape, or None (use :func:`augment_images`).
    """
    if mode == "variant":
        return None
    channels, height, width = bank.fill().image_shape
    if image.shape != ((height, width, channels) if layout == "HWC" else (channels, height, width)):
        return None
    synthetic = bank.draw_one(label, rng, position=position)
    if layout == "HWC":
        synthetic = synthetic.transpose(1, 2, 0)
    if mode == "replace":
        return np.ascontiguousarray(synthetic) if image.dtype == np.uint8 else synthetic * np.float32(1 / 255)
    low, high = mix_ratio
    if weight is None:
        weight = rng.uniform(low, high) if isinstance(rng, np.random.Generator) else \
            low + (high - low) * torch.rand(1, generator=rng).item()
    if image.dtype == np.uint8:
        mixed = image * np.float32(1 - weight)  # float32 throughout: half the memory traffic of float64
        mixed += synthetic * np.float32(weight)
        return np.rint(mixed, out=mixed).astype(np.uint8)
    return image * np.float32(1 - weight) + synthetic * np.float32(weight / 255)


def _random_uniform(num: int, low: float, high: float, rng: np.random.Generator | torch.Generator | None,
                    ) -> torch.Tensor:
    """float32 (num,) uniform in [low, high]."""
    if isinstance(rng, np.random.Generator):
        return torch.from_numpy(rng.uniform(low, high, num).astype(np.float32))
    return torch.rand(num, generator=rng) * (high - low) + low
