"""The kernels of the transforms: plain functions on image arrays and tensors, and the draws of their parameters.

Nothing here knows a library's conventions or holds a model: the adapters convert layouts and
dtypes, and :class:`ganaug.adapters.augmenter.Augmenter` supplies the synthetic images. Images
are uint8 in [0, 255] or float in [0, 1]; synthetic images are uint8.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from ganaug._util.images import fit_images
from ganaug._util.rng import SEED_SPACE
from ganaug._util.validate import check_choice, check_pair

__all__ = [
    "MODES",
    "AugmentParams",
    "bank_position",
    "check_hole_ranges",
    "check_mix_ratio",
    "check_mode",
    "fit_images",
    "load_mix_kernel",
    "make_params",
    "mix",
    "mix_weight",
    "params_from_uniforms",
    "random_box_masks",
    "replace",
]

MODES = ("replace", "mix", "variant")
PICK_SPACE = 2**31  # "variant" picks among an image's held variants: every bit random, whatever their number


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
        positions: bank positions, one per image ("replace" and "mix" from the bank); for
            "variant", which of each image's held variants (see :class:`ganaug.VariantBank`).
            The batch path after the DataLoader holds an int64 tensor.
        weights: the synthetic image's weight, one per image ("mix"); a float64 tensor in the batch path.
        seed: the generation seed ("variant" in batch mode).
    """

    positions: list[int] | torch.Tensor | None = None
    weights: list[float] | torch.Tensor | None = None
    seed: int | None = None


def make_params(num: int, mode: str, bank_size: int, mix_ratio: tuple[float, float],
                rng: random.Random | np.random.Generator | torch.Generator | None) -> AugmentParams:
    """Draw the parameters of ``num`` images: two uniforms each, made into parameters by :func:`params_from_uniforms`.

    Args:
        num: images.
        mode: "replace", "mix" or "variant".
        bank_size: bank images per class (positions are drawn in ``[0, bank_size)``).
        mix_ratio: the range of the mix weights.
        rng: a Python ``random.Random`` (albumentations' ``py_random``: a tenth of a microsecond
            a draw, which a per-sample transform feels), a numpy Generator, a torch Generator, or
            None for torch's global RNG (torchvision).
    """
    if isinstance(rng, random.Random):
        uniforms = [(rng.random(), rng.random()) for _ in range(num)]
    elif isinstance(rng, np.random.Generator):
        uniforms = rng.random((num, 2)).tolist()
    else:
        uniforms = torch.rand(num, 2, dtype=torch.float64, generator=rng).tolist()
    return params_from_uniforms(uniforms, mode, bank_size, mix_ratio)


def params_from_uniforms(uniforms: Sequence[Sequence[float]] | torch.Tensor, mode: str, bank_size: int,
                         mix_ratio: tuple[float, float]) -> AugmentParams:
    """The parameters of ``len(uniforms)`` images from two uniforms in [0, 1) each: the one rule of every draw.

    The first uniform picks the image's bank position ("replace", "mix") or which of its held
    variants ("variant", in ``[0, 2**31)``: taken modulo their number); the second is the mix
    weight, uniform in ``mix_ratio``. The call's generation seed ("variant") comes from the first
    image's second uniform, which nothing else uses there.

    A float64 ``(N, 2)`` tensor of uniforms ("replace" and "mix" from the bank: the batch path
    after the DataLoader) gives tensors of positions and weights, by the same two formulas.
    """
    if isinstance(uniforms, torch.Tensor):
        if mode == "variant":
            raise ValueError("a tensor of uniforms draws bank positions and mix weights: 'replace' or 'mix', not "
                             "'variant'")
        return AugmentParams(bank_position(uniforms[:, 0], bank_size),
                             mix_weight(uniforms[:, 1], mix_ratio) if mode == "mix" else None)
    if len(uniforms) == 1 and mode != "variant":  # one image from the bank: the per-sample path's case
        pick, weight = uniforms[0]
        return AugmentParams([bank_position(pick, bank_size)],
                             [mix_weight(weight, mix_ratio)] if mode == "mix" else None)
    seed = positions = weights = None
    if mode == "variant":
        seed = int(uniforms[0][1] * SEED_SPACE) if len(uniforms) else 0
        positions = [int(pick * PICK_SPACE) for pick, _ in uniforms]
    else:
        positions = [bank_position(pick, bank_size) for pick, _ in uniforms]
    if mode == "mix":
        weights = [mix_weight(weight, mix_ratio) for _, weight in uniforms]
    return AugmentParams(positions=positions, weights=weights, seed=seed)


def bank_position(uniform: float | torch.Tensor, bank_size: int) -> int | torch.Tensor:
    """The bank position a uniform in [0, 1) picks: uniform in ``[0, bank_size)``.

    A float64 tensor of uniforms gives an int64 tensor of positions: the same truncation toward
    zero, the same clamp (for a uniform that rounds up to 1 in the product).
    """
    if isinstance(uniform, torch.Tensor):
        return (uniform * bank_size).to(torch.int64).clamp_(max=bank_size - 1)
    return min(int(uniform * bank_size), bank_size - 1)


def mix_weight(uniform: float | torch.Tensor, mix_ratio: tuple[float, float]) -> float | torch.Tensor:
    """The synthetic image's weight a uniform in [0, 1) draws: uniform in ``mix_ratio`` (a tensor gives a tensor)."""
    low, high = mix_ratio
    return low + (high - low) * uniform


def replace(images: np.ndarray | torch.Tensor, synthetic: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """The synthetic images in the images' dtype: uint8 as they are, float scaled to [0, 1].

    Args:
        images: the images replaced (only their dtype is read).
        synthetic: uint8, the images' shape; or a float torch batch already in the images' scale
            (normalized by the chain's mean and std: the batch path), taken as it is.
    """
    if isinstance(synthetic, torch.Tensor) and synthetic.is_floating_point():
        return synthetic.to(images.dtype)
    if isinstance(images, np.ndarray):
        return np.ascontiguousarray(synthetic) if images.dtype == np.uint8 else synthetic * np.float32(1 / 255)
    return synthetic if images.dtype == torch.uint8 else synthetic * torch.tensor(1 / 255, dtype=images.dtype)


def mix(images: np.ndarray | torch.Tensor, synthetic: np.ndarray | torch.Tensor,
        weights: float | Sequence[float]) -> np.ndarray | torch.Tensor:
    """Blend images with synthetic ones: ``(1 - w) * image + w * synthetic``, in float32 arithmetic.

    The same formula for a numpy image and a torch batch. A uint8 numpy image (the per-sample
    path) is blended by OpenCV's ``addWeighted`` in one pass, a quarter of the cost of the numpy
    expression; its float32 arithmetic may round a pixel that lies within a rounding error of a
    half the other way, so the two paths agree to within one level (exactly in almost every pixel).

    Args:
        images: uint8 in [0, 255] or float in [0, 1]: one numpy image (any layout), or a torch
            batch (N, C, H, W).
        synthetic: uint8, the images' shape; or, for a float torch batch, float in the images' own
            scale (normalized by the chain's mean and std: the batch path).
        weights: the synthetic share, a float for a numpy image, one per image for a batch (a
            sequence, or a float64 tensor: the batch path).

    Returns:
        The images' dtype and shape; uint8 results are rounded to nearest (half to even).
    """
    if isinstance(images, np.ndarray):
        if images.dtype == np.uint8 and images.size:
            import cv2  # here, not at the top: importing ganaug does not load OpenCV

            rows = images.shape[0]  # 2-D views: OpenCV reads a third axis as channels, of which it allows 512
            return cv2.addWeighted(images.reshape(rows, -1), 1.0 - weights, synthetic.reshape(rows, -1), weights,
                                   0.0).reshape(images.shape)
        uint8 = images.dtype == np.uint8
        keep, take = np.float32(1 - weights), np.float32(weights if uint8 else weights / 255)
    else:
        uint8 = images.dtype == torch.uint8
        scaled = uint8 or synthetic.is_floating_point()  # synthetic already in the images' scale
        weights = torch.as_tensor(weights, dtype=torch.float64)  # the float64 of Python floats, then float32
        keep = (1 - weights).to(torch.float32).to(images.device).view(-1, 1, 1, 1)
        take = (weights if scaled else weights / 255).to(torch.float32).to(images.device).view(-1, 1, 1, 1)
    mixed = images * keep  # float32 throughout: half the memory traffic of float64
    mixed += synthetic * take
    if not uint8:
        return mixed
    if isinstance(mixed, np.ndarray):
        return np.rint(mixed, out=mixed).astype(np.uint8)
    return mixed.round_().to(torch.uint8)


def load_mix_kernel() -> None:
    """Import OpenCV, which :func:`mix` blends uint8 numpy images with, now.

    A transform in "mix" mode calls this when it is built, in the main process, so that forked
    DataLoader workers inherit the module instead of each importing it (a quarter of a second)
    on its first sample; ``import ganaug`` itself does not load OpenCV.
    """
    import cv2  # noqa: F401


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
