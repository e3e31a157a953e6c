"""The projected discriminator (Projected GAN): frozen timm features, fixed random mixing, conditional heads.

A frozen timm ``FeatureExtractor`` gives multi-scale feature maps; fixed random 1x1 convolutions
mix channels (CCM) and scales (CSM); one small spectral-normalized head per scale scores them. A
further head looks at the raw pixels, so that artifacts the frozen features cannot see (the dot
pattern of docs/design.md) are still penalized. Every head is conditioned by projection on the
class embedding, plus the instance embedding when one is used.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ganaug.nets.features import FeatureExtractor
from ganaug.nets.layers import MinibatchStd, unit_rms

__all__ = ["ProjectedDiscriminator", "ProjectionHead"]


class ProjectionHead(nn.Module):
    """A small spectral-normalized conv net on one feature map, with a projection-conditioned score.

    Strided 4x4 convolutions halve the map down to at most 4 x 4; the features are then summed
    over space (as in SNGAN/BigGAN projection discriminators: a sum, not a mean, so the
    Lipschitz-bounded layers can still reach the hinge margin) and scored by a linear layer plus
    the dot product with a projection of the condition.
    """

    def __init__(self, in_channels: int, channels: int, size: int, cond_dim: int, minibatch_std: bool = False):
        super().__init__()
        layers: list[nn.Module] = [spectral_norm(nn.Conv2d(in_channels, channels, 3, padding=1)), nn.LeakyReLU(0.2)]
        while size > 4:
            layers += [spectral_norm(nn.Conv2d(channels, channels, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            size = (size + 1) // 2
        if minibatch_std:
            layers += [MinibatchStd(), spectral_norm(nn.Conv2d(channels + 1, channels, 3, padding=1)),
                       nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*layers)
        self.score = spectral_norm(nn.Linear(channels, 1))
        self.project = spectral_norm(nn.Linear(cond_dim, channels, bias=False))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        pooled = self.body(x).sum(dim=(2, 3))
        return self.score(pooled) + (pooled * self.project(cond)).sum(dim=1, keepdim=True)


class ProjectedDiscriminator(nn.Module):
    """Frozen timm features, fixed random channel and scale mixing, and conditional heads.

    Args:
        extractor: the frozen multi-scale feature network.
        num_classes: number of class labels.
        image_channels: channels of the images D judges.
        resolution: side of the images D judges (for the pixel head).
        instance_dim: width of instance features; 0 for class-only conditioning.
        mixing_channels: output channels of the fixed random 1x1 mixing per scale.
        head_channels: width of each head.
        embed_dim: width of the conditioning embedding.
        pixel_head: add a head on the raw pixels (guards against artifacts the features miss).
        seed: seed of the fixed random mixing weights.
        feature_minibatch_std: a minibatch-std layer in every feature head too, not only in the pixel
            head, so that each head sees how varied a batch is (docs/benchmarks.md, "Diversity").
    """

    def __init__(self, extractor: FeatureExtractor, num_classes: int, image_channels: int, resolution: int,
                 instance_dim: int = 0, mixing_channels: int = 64, head_channels: int = 64, embed_dim: int = 64,
                 pixel_head: bool = True, seed: int = 0, feature_minibatch_std: bool = False):
        super().__init__()
        self.extractor = extractor
        generator = torch.Generator().manual_seed(seed)
        feature_channels = extractor.channels
        # Fixed random mixing (not trained): buffers, so they are saved but never optimized.
        for i, channels in enumerate(feature_channels):
            self.register_buffer(f"ccm_{i}", _random_conv1x1(channels, mixing_channels, generator))
        for i in range(len(feature_channels) - 1):
            self.register_buffer(f"csm_{i}", _random_conv1x1(mixing_channels, mixing_channels, generator))
        probe = torch.zeros(1, image_channels, resolution, resolution)
        with torch.no_grad():
            sizes = [m.shape[-1] for m in extractor(probe)]
        self.class_embed = nn.Embedding(num_classes, embed_dim)
        self.instance_proj = nn.Linear(instance_dim, embed_dim) if instance_dim else None
        self.heads = nn.ModuleList(ProjectionHead(mixing_channels, head_channels, s, embed_dim,
                                                   minibatch_std=feature_minibatch_std) for s in sizes)
        self.pixel = ProjectionHead(image_channels, head_channels // 2, resolution, embed_dim,
                                    minibatch_std=True) if pixel_head else None
        self.num_scales = len(feature_channels)

    def condition(self, labels: torch.Tensor, instance: torch.Tensor | None) -> torch.Tensor:
        cond = self.class_embed(labels)
        if self.instance_proj is not None and instance is not None:
            cond = cond + self.instance_proj(unit_rms(instance))
        return cond

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Mixed multi-scale features of images in [-1, 1] (the frozen, untrained part of D)."""
        maps = self.extractor((images + 1) / 2)
        mixed = [F.conv2d(m, getattr(self, f"ccm_{i}")) for i, m in enumerate(maps)]
        # Cross-scale mixing, top-down as in a feature pyramid.
        for i in range(self.num_scales - 2, -1, -1):
            upper = F.interpolate(mixed[i + 1], size=mixed[i].shape[-2:], mode="bilinear", align_corners=False)
            mixed[i] = mixed[i] + F.conv2d(upper, getattr(self, f"csm_{i}"))
        return mixed

    def forward(self, images: torch.Tensor, labels: torch.Tensor, instance: torch.Tensor | None = None,
                features: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """Per-head logits.

        Args:
            images: float (N, C, R, R) in [-1, 1].
            labels: int64 (N,).
            instance: float (N, instance_dim) or None.
            features: ``self.features(images)`` when already computed (e.g. without grad).

        Returns:
            one float (N, L_i) tensor of location logits per head (feature scales, then pixels).
        """
        cond = self.condition(labels, instance)
        features = self.features(images) if features is None else features
        logits = [head(f, cond) for head, f in zip(self.heads, features, strict=True)]
        if self.pixel is not None:
            logits.append(self.pixel(images, cond))
        return logits


def _random_conv1x1(in_channels: int, out_channels: int, generator: torch.Generator) -> torch.Tensor:
    weight = torch.randn(out_channels, in_channels, 1, 1, generator=generator)
    return weight / math.sqrt(in_channels)
