"""The generator: a ResNet-style upsampling network conditioned on noise, class and instance features.

Its group norms are modulated by a conditioning vector made from the noise, the class embedding
and (optionally) an instance feature vector, i.e. the pooled ``FeatureExtractor.embed`` of a real
image, as in IC-GAN.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ganaug._util.validate import check_channels, check_choice
from ganaug.nets.layers import NORMS, conditional_norm, unit_rms, upsample_nearest_2x

__all__ = ["SUPPORTED_RESOLUTIONS", "Generator", "initial_size", "to_uint8"]

SUPPORTED_RESOLUTIONS = (28, 32, 64, 128, 256)


def initial_size(resolution: int) -> int:
    """The generator's first feature-map side: ``resolution`` halved while even and above 7."""
    size = resolution
    while size % 2 == 0 and size > 7:
        size //= 2
    return size


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Generator output, float in [-1, 1], as uint8 images in [0, 255] on the CPU."""
    return ((images.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).cpu()


class UpBlock(nn.Module):
    """Nearest 2x upsampling, two 3x3 convolutions with conditional norms, and a 1x1 skip."""

    def __init__(self, in_channels: int, out_channels: int, cond_dim: int, norm: str = "group"):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm1 = conditional_norm(norm, out_channels, cond_dim)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.norm2 = conditional_norm(norm, out_channels, cond_dim)
        self.skip = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = upsample_nearest_2x(x)
        h = F.leaky_relu_(self.norm1(self.conv1(x), cond), 0.2)
        h = F.leaky_relu_(self.norm2(self.conv2(h), cond), 0.2)
        return (h + self.skip(x)).mul_(1 / math.sqrt(2))


class Generator(nn.Module):
    """Class- and instance-conditional generator.

    Args:
        num_classes: number of class labels.
        resolution: output side, one of 28, 32, 64, 128, 256.
        channels: output channels, 1 or 3.
        z_dim: noise width.
        embed_dim: width of the class embedding and of the projected instance feature.
        instance_dim: width of instance feature vectors; 0 for a class-only generator.
        base_channels: channels at the first (lowest-resolution) block; halved each block,
            down to ``min_channels``.
        min_channels: narrowest block.
        norm: "group" (GroupNorm, per image) or "batch" (BatchNorm over the batch, as BigGAN and
            DCGAN; sampling then uses its running statistics), each modulated by the condition.
        z_to_blocks: feed z to every norm directly, beside the mapped condition (BigGAN's skip-z),
            so that z is not diluted by the class path in the unit-RMS mapping output.
        instance_optional: an instance-conditional generator also trained without instances
            (``TrainConfig.instance_dropout``): ``instance=None`` then means the null condition,
            a zero feature row, and gives class-only samples.
    """

    def __init__(self, num_classes: int, resolution: int, channels: int, z_dim: int = 64, embed_dim: int = 64,
                 instance_dim: int = 0, base_channels: int = 256, min_channels: int = 64, norm: str = "group",
                 z_to_blocks: bool = False, instance_optional: bool = False):
        super().__init__()
        check_choice("resolution", resolution, SUPPORTED_RESOLUTIONS)
        check_choice("norm", norm, NORMS)
        check_channels("channels", channels)
        self.num_classes, self.resolution, self.channels = num_classes, resolution, channels
        self.z_dim, self.instance_dim = z_dim, instance_dim
        self.instance_optional = bool(instance_optional and instance_dim)
        self.class_embed = nn.Embedding(num_classes, embed_dim)
        self.instance_proj = nn.Linear(instance_dim, embed_dim) if instance_dim else None
        cond_in = z_dim + embed_dim * (2 if instance_dim else 1)
        cond_dim = 256
        self.z_to_blocks = z_to_blocks
        norm_dim = cond_dim + (z_dim if z_to_blocks else 0)
        self.mapping = nn.Sequential(nn.Linear(cond_in, cond_dim), nn.LeakyReLU(0.2),
                                     nn.Linear(cond_dim, cond_dim), nn.LeakyReLU(0.2))
        self.start_size = initial_size(resolution)
        num_blocks = int(math.log2(resolution // self.start_size))
        widths = [max(min_channels, base_channels // 2**i) for i in range(num_blocks + 1)]
        # The first map comes straight from noise and embeddings (as in BigGAN), so that z shapes
        # it; a first layer fed only through the mapping let a shared bias dominate, and G
        # ignored z.
        self.start = nn.Linear(cond_in, widths[0] * self.start_size**2)
        self.start_norm = conditional_norm(norm, widths[0], norm_dim)
        self.blocks = nn.ModuleList(UpBlock(widths[i], widths[i + 1], norm_dim, norm) for i in range(num_blocks))
        self.to_image = nn.Conv2d(widths[-1], channels, 3, padding=1)

    def inputs(self, z: torch.Tensor, labels: torch.Tensor, instance: torch.Tensor | None) -> torch.Tensor:
        """Noise, class embedding and projected instance feature, concatenated: float (N, cond_in)."""
        parts = [z, self.class_embed(labels)]
        if self.instance_proj is not None:
            if instance is None:
                if not self.instance_optional:
                    raise ValueError("this generator is instance-conditional: instance features are required")
                instance = z.new_zeros(len(z), self.instance_dim)  # the null condition (unit_rms keeps it zero)
            parts.append(self.instance_proj(unit_rms(instance)))
        elif instance is not None:
            raise ValueError("this generator is class-only: instance should be None")
        return torch.cat(parts, dim=1)

    def forward(self, z: torch.Tensor, labels: torch.Tensor, instance: torch.Tensor | None = None) -> torch.Tensor:
        """Generate images.

        Args:
            z: float (N, z_dim) noise.
            labels: int64 (N,) class labels.
            instance: float (N, instance_dim) instance features (a zero row: the null condition), or None
                for a class-only generator or the null condition of an ``instance_optional`` one.

        Returns:
            float (N, channels, resolution, resolution) in [-1, 1].
        """
        inputs = self.inputs(z, labels, instance)
        cond = self.mapping(inputs)
        cond = cond * torch.rsqrt(cond.square().mean(dim=1, keepdim=True) + 1e-8)  # unit RMS for the norms
        if self.z_to_blocks:
            cond = torch.cat([cond, z], dim=1)
        x = self.start(inputs).view(z.shape[0], -1, self.start_size, self.start_size)
        weight = self.to_image.weight
        if weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous():
            x = x.contiguous(memory_format=torch.channels_last)  # channels_last weights (GANAug): stay in that layout
        x = F.leaky_relu(self.start_norm(x, cond), 0.2)
        for block in self.blocks:
            x = block(x, cond)
        return torch.tanh(self.to_image(x))
