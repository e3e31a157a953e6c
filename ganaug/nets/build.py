"""One way to build each network from a plain description (a spec), in training and when loading a model.

A spec is a frozen dataclass of plain values. Training derives the specs from its config, saves
them with every checkpoint and export, and loading rebuilds the same networks from them.
"""

from __future__ import annotations

import dataclasses
import inspect
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


def _spec_of(network: type, name: str, skip: tuple[str, ...] = ()) -> type:
    """A frozen dataclass whose fields are ``network``'s constructor arguments (but ``skip``), with their defaults.

    Made from the signature, so a spec cannot drift from the network it builds.
    """
    fields = []
    for parameter in list(inspect.signature(network.__init__).parameters.values())[1:]:
        if parameter.name in skip:
            continue
        default = {} if parameter.default is inspect.Parameter.empty else {"default": parameter.default}
        fields.append((parameter.name, parameter.annotation, dataclasses.field(**default)))
    spec = dataclasses.make_dataclass(name, fields, frozen=True, namespace={
        "__doc__": f"The arguments of :class:`{network.__module__}.{network.__name__}`.",
        "to_dict": lambda self: dataclasses.asdict(self)})
    spec.__module__ = __name__
    return spec


GeneratorSpec = _spec_of(Generator, "GeneratorSpec")
DiscriminatorSpec = _spec_of(ProjectedDiscriminator, "DiscriminatorSpec", skip=("extractor",))


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
