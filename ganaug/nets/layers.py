"""Small layers shared by the generator and the discriminator."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MINIBATCH_STD_GROUP", "NORMS", "ConditionalBatchNorm", "ConditionalGroupNorm", "MinibatchStd",
           "conditional_norm", "minibatch_std_group", "unit_rms", "upsample_nearest_2x"]

NORMS = ("group", "batch")  # the generator's normalization: per image (GroupNorm) or over the batch (BatchNorm)
MINIBATCH_STD_GROUP = 4  # samples per group of the discriminator's minibatch-std layers (StyleGAN's)


def minibatch_std_group(count: int, group_size: int = MINIBATCH_STD_GROUP) -> int:
    """The group size a minibatch-std layer uses on ``count`` rows: the largest divisor of both."""
    return math.gcd(group_size, count)


def unit_rms(vectors: torch.Tensor) -> torch.Tensor:
    """Scale each row to a root-mean-square of 1, so that features of any width enter at the scale of z."""
    return F.normalize(vectors, dim=1) * math.sqrt(vectors.shape[1])


class MinibatchStd(nn.Module):
    """Append the mean standard deviation over groups of samples as a channel (StyleGAN).

    Lets D see how varied a batch is, which penalizes a collapsed G. Groups are contiguous, so a
    batch of reals followed by a batch of fakes never mixes the two when its halves are
    multiples of the group size.
    """

    def __init__(self, group_size: int = MINIBATCH_STD_GROUP):
        super().__init__()
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        count, channels, height, width = x.shape
        group = minibatch_std_group(count, self.group_size)
        grouped = x.view(count // group, group, channels, height, width).float()  # contiguous groups
        spread = grouped.std(dim=1, unbiased=False).mean(dim=(1, 2, 3)).to(x.dtype)  # (count // group,)
        spread = spread.repeat_interleave(group).view(count, 1, 1, 1).expand(count, 1, height, width)
        return torch.cat([x, spread], dim=1)


def upsample_nearest_2x(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour 2x upsampling of float (N, C, H, W), equal to ``F.interpolate(x, scale_factor=2)``.

    One broadcast copy, in the input's memory format (a channels_last input stays channels_last,
    so the next convolution needs no layout conversion), and on the CPU much faster than
    ``F.interpolate``'s nearest kernel at the generator's batch sizes (docs/benchmarks.md).
    """
    n, c, h, w = x.shape
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        nhwc = x.permute(0, 2, 3, 1)[:, :, None, :, None, :].expand(n, h, 2, w, 2, c)
        return nhwc.reshape(n, 2 * h, 2 * w, c).permute(0, 3, 1, 2)
    return x[:, :, :, None, :, None].expand(n, c, h, 2, w, 2).reshape(n, c, 2 * h, 2 * w)


def _modulation(cond_dim: int, channels: int) -> nn.Linear:
    """A conditional norm's scale or shift map, zero at first so that the norm starts as a plain one."""
    layer = nn.Linear(cond_dim, channels)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class ConditionalGroupNorm(nn.Module):
    """GroupNorm without its own affine, scaled and shifted by linear maps of a conditioning vector."""

    def __init__(self, channels: int, cond_dim: int):
        super().__init__()
        self.norm = nn.GroupNorm(min(32, channels // 4), channels, affine=False)
        self.scale, self.shift = _modulation(cond_dim, channels), _modulation(cond_dim, channels)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = 1 + self.scale(cond), self.shift(cond)
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            return self._forward_channels_last(x, scale, shift)
        return torch.addcmul(shift[:, :, None, None], self.norm(x), scale[:, :, None, None])

    def _forward_channels_last(self, x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        """The same function for channels_last inputs (inference), folded into one multiply-add per element.

        PyTorch's CPU GroupNorm is slow on channels_last input, and so is a (N, C, 1, 1) operand
        broadcast against channels_last. Here the group statistics come from per-channel means of
        x and x² over the (N, HW, C) view, and the normalization, scale and shift become one
        ``addcmul`` with channels_last-strided operands (timings in docs/benchmarks.md).
        """
        n, c, h, w = x.shape
        groups = self.norm.num_groups
        pixels = x.permute(0, 2, 3, 1).reshape(n, h * w, c)
        mean = pixels.mean(dim=1).view(n, groups, -1).mean(dim=2)
        mean_square = pixels.square().mean(dim=1).view(n, groups, -1).mean(dim=2)
        rstd = torch.rsqrt((mean_square - mean.square()).clamp_min(0) + self.norm.eps)
        multiplier = scale.view(n, groups, -1) * rstd[:, :, None]
        offset = shift.view(n, groups, -1) - mean[:, :, None] * multiplier
        return torch.addcmul(offset.view(n, 1, 1, c).permute(0, 3, 1, 2), x,
                             multiplier.reshape(n, 1, 1, c).permute(0, 3, 1, 2))


class ConditionalBatchNorm(nn.Module):
    """BatchNorm without its own affine, scaled and shifted by linear maps of a conditioning vector (BigGAN).

    In training it normalizes each channel over the batch, so a channel only carries signal
    where the images of a batch differ: a generator whose batch is one image repeated has
    nothing left to draw with. In eval mode (sampling) it uses the running statistics.
    """

    def __init__(self, channels: int, cond_dim: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.scale, self.shift = _modulation(cond_dim, channels), _modulation(cond_dim, channels)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.shift(cond)[:, :, None, None], self.norm(x), 1 + self.scale(cond)[:, :, None, None])


def conditional_norm(kind: str, channels: int, cond_dim: int) -> nn.Module:
    """The generator's conditional normalization of ``kind`` (one of :data:`NORMS`)."""
    if kind == "batch":
        return ConditionalBatchNorm(channels, cond_dim)
    if kind == "group":
        return ConditionalGroupNorm(channels, cond_dim)
    raise ValueError(f"norm should be one of {NORMS}, got {kind!r}")
