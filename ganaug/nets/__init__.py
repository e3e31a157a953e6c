"""Networks: where weights come from, the frozen timm feature networks, the generator and the discriminator.

``build`` turns a plain spec into each network, the same way in training and in loading.
"""

from ganaug.nets.build import (
    BackboneSpec,
    DiscriminatorSpec,
    GeneratorSpec,
    build_discriminator,
    build_extractor,
    build_generator,
)
from ganaug.nets.diffaugment import diff_augment
from ganaug.nets.discriminator import ProjectedDiscriminator
from ganaug.nets.features import FeatureExtractor, normalize_images
from ganaug.nets.generator import SUPPORTED_RESOLUTIONS, Generator
from ganaug.nets.weights import WeightsUnavailableError, resolve_weights

__all__ = [
    "SUPPORTED_RESOLUTIONS",
    "BackboneSpec",
    "DiscriminatorSpec",
    "FeatureExtractor",
    "Generator",
    "GeneratorSpec",
    "ProjectedDiscriminator",
    "WeightsUnavailableError",
    "build_discriminator",
    "build_extractor",
    "build_generator",
    "diff_augment",
    "normalize_images",
    "resolve_weights",
]
