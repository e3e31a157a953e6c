"""Sampling from a trained generator: ``GANAug`` (load, sample, export), completion, the sample bank."""

from ganaug.sampling.gan import GANAug
from ganaug.sampling.lazy import LazyGAN
from ganaug.sampling.sample_bank import SampleBank

__all__ = ["GANAug", "LazyGAN", "SampleBank"]
