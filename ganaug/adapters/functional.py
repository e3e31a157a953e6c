"""The kernels of the transforms: plain functions on image arrays and tensors, and the draws of their parameters.

Nothing here knows a library's conventions or holds a model: the adapters convert layouts and
dtypes, and :class:`ganaug.adapters.augmenter.Augmenter` supplies the synthetic images. Images
are uint8 in [0, 255] or float in [0, 1]; synthetic images are uint8.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ganaug._util.images import match_channels
from ganaug._util.rng import SEED_SPACE
from ganaug._util.validate import check_choice, check_pair

__all__ = [
    "MODES",
    "AugmentParams",
    "check_hole_ranges",
    "check_mix_ratio",
    "check_mode",
    "fit_images",
    "make_params",
    "mix",
    "random_box_masks",
    "replace",
]

MODES = ("replace", "mix", "variant")


def check_mode(mode: object) -> str:
    """One of :data:`MODES`."""
    return check_choice("mode", mode, MODES)


def check_mix_ratio(mix_ratio: object) -> tuple[float, float]:
    """``(low, high)`` with ``0 <= low <= high <= 1``: the range of the synthetic image's weight in "mix"."""
    return check_pair("mix_ratio", mix_ratio, 0.0, 1.0)


def check_hole_ranges(num_holes_range: object, hole_height_range: object, hole_width_range: object,
                      ) -> tuple[tuple[int, int], tuple[float, float], tuple[float, float]]:
    """Cutout arguments: ``1 <= holes_low <= holes_high``; hole sides as fractions ``0 < low <= high <= 1``."""
    return (check_pair("num_holes_range", num_holes_range, 1, float("inf"), integers=True),
            check_pair("hole_height_range", hole_height_range, 0.0, 1.0, low_open=True),
            check_pair("hole_width_range", hole_width_range, 0.0, 1.0, low_open=True))


class AugmentParams(NamedTuple):
    """The random draws of one call, made before the images are touched (so they can be replayed).

    A named tuple, not a dataclass: a per-sample transform makes two a call, and this is cheaper.

    Attributes:
        positions: bank positions, one per image ("replace" and "mix" from the bank).
        weights: the synthetic image's weight, one per image ("mix").
        seed: the generation seed ("variant", and fresh samples in batch mode).
    """

    positions: list[int] | None = None
    weights: list[float] | None = None
    seed: int | None = None


def make_params(num: int, mode: str, bank_size: int, mix_ratio: tuple[float, float],
                rng: np.random.Generator | torch.Generator | None, fresh: bool = False) -> AugmentParams:
    """Draw the parameters of ``num`` images.

    Args:
        num: images.
        mode: "replace", "mix" or "variant".
        bank_size: bank images per class (positions are drawn in ``[0, bank_size)``).
        mix_ratio: the range of the mix weights.
        rng: a numpy Generator (albumentations), a torch Generator, or None for torch's global
            RNG (torchvision).
        fresh: samples are generated for this call (one seed), not drawn from the bank.
    """
    low, high = mix_ratio
    seed = positions = weights = None
    if isinstance(rng, np.random.Generator):
        if mode == "variant" or fresh:
            seed = int(rng.integers(SEED_SPACE))
        if mode != "variant" and not fresh:  # scalar draws for one image: a per-sample transform pays for each µs
            positions = [int(rng.integers(bank_size))] if num == 1 else rng.integers(0, bank_size, num).tolist()
        if mode == "mix":
            weights = [float(rng.uniform(low, high))] if num == 1 else rng.uniform(low, high, num).tolist()
    else:  # the same draws, and values, as tensors of num, made as scalars when num is 1
        if mode == "variant" or fresh:
            seed = int(torch.randint(SEED_SPACE, (1,), generator=rng))
        if mode != "variant" and not fresh:
            positions = ([int(torch.randint(bank_size, (1,), generator=rng))] if num == 1
                         else torch.randint(bank_size, (num,), generator=rng).tolist())
        if mode == "mix":
            weights = ([low + (high - low) * torch.rand(1, generator=rng).item()] if num == 1
                       else (torch.rand(num, generator=rng).double() * (high - low) + low).tolist())
    return AugmentParams(positions=positions, weights=weights, seed=seed)


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


def replace(images: np.ndarray | torch.Tensor, synthetic: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """The synthetic images in the images' dtype: uint8 as they are, float scaled to [0, 1].

    Args:
        images: the images replaced (only their dtype is read).
        synthetic: uint8, the images' shape.
    """
    if isinstance(images, np.ndarray):
        return np.ascontiguousarray(synthetic) if images.dtype == np.uint8 else synthetic * np.float32(1 / 255)
    return synthetic if images.dtype == torch.uint8 else synthetic * torch.tensor(1 / 255, dtype=images.dtype)


def mix(images: np.ndarray | torch.Tensor, synthetic: np.ndarray | torch.Tensor,
        weights: float | Sequence[float]) -> np.ndarray | torch.Tensor:
    """Blend images with synthetic ones: ``(1 - w) * image + w * synthetic``, in float32 arithmetic.

    The same formula for a numpy image and a torch batch, so that both give the same bytes.

    Args:
        images: uint8 in [0, 255] or float in [0, 1]: one numpy image (any layout), or a torch
            batch (N, C, H, W).
        synthetic: uint8, the images' shape.
        weights: the synthetic share, a float for a numpy image, one per image for a batch.

    Returns:
        The images' dtype and shape; uint8 results are rounded half to even.
    """
    if isinstance(images, np.ndarray):
        uint8 = images.dtype == np.uint8
        keep, take = np.float32(1 - weights), np.float32(weights if uint8 else weights / 255)
    else:
        uint8 = images.dtype == torch.uint8
        keep = torch.tensor([1 - w for w in weights], dtype=torch.float32, device=images.device).view(-1, 1, 1, 1)
        take = torch.tensor([w if uint8 else w / 255 for w in weights], dtype=torch.float32,
                            device=images.device).view(-1, 1, 1, 1)
    mixed = images * keep  # float32 throughout: half the memory traffic of float64
    mixed += synthetic * take
    if not uint8:
        return mixed
    if isinstance(mixed, np.ndarray):
        return np.rint(mixed, out=mixed).astype(np.uint8)
    return mixed.round_().to(torch.uint8)


def random_box_masks(num: int, height: int, width: int, num_holes_range: tuple[int, int],
                     hole_height_range: tuple[float, float], hole_width_range: tuple[float, float],
                     rng: np.random.Generator) -> torch.Tensor:
    """Random rectangular holes, as CoarseDropout draws them: bool (num, height, width), True = missing.

    Each image gets a number of holes uniform in ``num_holes_range``; each hole's height and width
    are uniform fractions of the image's in the given ranges (at least 1 pixel).
    """
    masks = torch.zeros(num, height, width, dtype=torch.bool)
    for i in range(num):
        for _ in range(int(rng.integers(num_holes_range[0], num_holes_range[1] + 1))):
            hole_h = max(1, round(height * rng.uniform(*hole_height_range)))
            hole_w = max(1, round(width * rng.uniform(*hole_width_range)))
            top = int(rng.integers(0, height - hole_h + 1))
            left = int(rng.integers(0, width - hole_w + 1))
            masks[i, top:top + hole_h, left:left + hole_w] = True
    return masks
