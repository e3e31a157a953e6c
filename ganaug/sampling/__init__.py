"""Sampling from a trained generator: ``GANAug`` (load, sample, export), completion, the sample and variant banks."""

from ganaug.sampling.gan import GANAug
from ganaug.sampling.lazy import LazyGAN
from ganaug.sampling.sample_bank import SampleBank
from ganaug.sampling.variant_bank import VariantBank

__all__ = ["GANAug", "LazyGAN", "SampleBank", "VariantBank"]
