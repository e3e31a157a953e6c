"""Differentiable augmentation (DiffAugment, Zhao et al. 2020) applied to real and fake images inside D.

Each function takes float images ``(N, C, H, W)`` in [-1, 1] and returns a tensor of the same
shape, differentiable in the input. Randomness comes from the global torch RNG, which the
training loop seeds and checkpoints.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["POLICIES", "diff_augment"]


def _brightness(images: torch.Tensor) -> torch.Tensor:
    return images + (torch.rand(images.shape[0], 1, 1, 1, device=images.device, dtype=images.dtype) - 0.5)


def _saturation(images: torch.Tensor) -> torch.Tensor:
    mean = images.mean(dim=1, keepdim=True)
    factor = torch.rand(images.shape[0], 1, 1, 1, device=images.device, dtype=images.dtype) * 2
    return (images - mean) * factor + mean


def _contrast(images: torch.Tensor) -> torch.Tensor:
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    factor = torch.rand(images.shape[0], 1, 1, 1, device=images.device, dtype=images.dtype) + 0.5
    return (images - mean) * factor + mean


def _translation(images: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ``ratio`` of its side, filling with zeros."""
    count, _, height, width = images.shape
    shift_y, shift_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    ty = torch.randint(-shift_y, shift_y + 1, (count, 1, 1), device=images.device)
    tx = torch.randint(-shift_x, shift_x + 1, (count, 1, 1), device=images.device)
    batch, rows, cols = torch.meshgrid(
        torch.arange(count, device=images.device),
        torch.arange(height, device=images.device),
        torch.arange(width, device=images.device),
        indexing="ij",
    )
    rows = torch.clamp(rows + ty + 1, 0, height + 1)
    cols = torch.clamp(cols + tx + 1, 0, width + 1)
    padded = F.pad(images, [1, 1, 1, 1])
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()


def _cutout(images: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero one random square of ``ratio`` of the side per image."""
    count, _, height, width = images.shape
    cut_h, cut_w = int(height * ratio + 0.5), int(width * ratio + 0.5)
    offset_y = torch.randint(0, height + (1 - cut_h % 2), (count, 1, 1), device=images.device)
    offset_x = torch.randint(0, width + (1 - cut_w % 2), (count, 1, 1), device=images.device)
    top, left = offset_y - cut_h // 2, offset_x - cut_w // 2
    rows = torch.arange(height, device=images.device).view(1, -1, 1)
    cols = torch.arange(width, device=images.device).view(1, 1, -1)
    inside = (rows >= top) & (rows < top + cut_h) & (cols >= left) & (cols < left + cut_w)
    return images * (~inside).unsqueeze(1).to(images.dtype)


POLICIES = {
    "color": (_brightness, _saturation, _contrast),
    "translation": (_translation,),
    "cutout": (_cutout,),
}


def diff_augment(images: torch.Tensor, policy: str) -> torch.Tensor:
    """Apply the comma-separated ``policy`` (any of color, translation, cutout) to ``images``.

    Args:
        images: float (N, C, H, W) in [-1, 1].
        policy: e.g. ``"color,translation,cutout"``; an empty string does nothing.
    """
    for name in filter(None, (p.strip() for p in policy.split(","))):
        if name not in POLICIES:
            raise ValueError(f"diffaugment policy should name some of {sorted(POLICIES)}, got {name!r}")
        for function in POLICIES[name]:
            images = function(images)
    return images
