"""One way to build each network from a plain description (a spec), in training and when loading a model.

A spec is a frozen dataclass of plain values. Training derives the specs from its config, saves
them with every checkpoint and export, and loading rebuilds the same networks from them.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import torch

from ganaug.nets.discriminator import ProjectedDiscriminator
from ganaug.nets.features import FeatureExtractor
from ganaug.nets.generator import Generator

__all__ = [
    "BackboneSpec",
    "DiscriminatorSpec",
    "GeneratorSpec",
    "build_discriminator",
    "build_extractor",
    "build_generator",
]


@dataclass(frozen=True)
class GeneratorSpec:
    """The arguments of :class:`ganaug.nets.generator.Generator`."""

    num_classes: int
    resolution: int
    channels: int
    z_dim: int = 64
    embed_dim: int = 64
    instance_dim: int = 0
    base_channels: int = 256
    min_channels: int = 64

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class BackboneSpec:
    """The frozen feature network: timm model name, feature stages, input side and where its weights came from."""

    name: str
    out_indices: tuple[int, ...]
    input_size: int | None
    origin: str = "state_dict"

    def __post_init__(self) -> None:
        object.__setattr__(self, "out_indices", tuple(self.out_indices))

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "out_indices": list(self.out_indices)}


@dataclass(frozen=True)
class DiscriminatorSpec:
    """The trainable parts of :class:`ganaug.nets.discriminator.ProjectedDiscriminator`."""

    num_classes: int
    image_channels: int
    resolution: int
    instance_dim: int = 0
    mixing_channels: int = 64
    head_channels: int = 64
    embed_dim: int = 64
    pixel_head: bool = True
    seed: int = 0


def build_generator(spec: GeneratorSpec) -> Generator:
    """A generator with freshly initialized weights (from torch's global RNG)."""
    return Generator(**spec.to_dict())


def build_extractor(spec: BackboneSpec, weights: bool | str | os.PathLike | None = None,
                    state_dict: dict[str, torch.Tensor] | None = None) -> FeatureExtractor:
    """The frozen feature network, from ``weights`` (see :class:`FeatureExtractor`'s ``pretrained``) or a state dict.

    Give exactly one of ``weights`` and ``state_dict``.
    """
    if (weights is None) == (state_dict is None):
        raise ValueError("give exactly one of weights and state_dict")
    if state_dict is not None:
        return FeatureExtractor.from_state_dict(spec.name, state_dict, out_indices=spec.out_indices,
                                                input_size=spec.input_size, weights_origin=spec.origin)
    return FeatureExtractor(spec.name, pretrained=weights, out_indices=spec.out_indices, input_size=spec.input_size)


def build_discriminator(extractor: FeatureExtractor, spec: DiscriminatorSpec) -> ProjectedDiscriminator:
    """A projected discriminator looking through ``extractor``, with freshly initialized heads."""
    return ProjectedDiscriminator(extractor, **dataclasses.asdict(spec))
