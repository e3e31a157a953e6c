"""The torchvision.transforms.v2 adapter's public home: ``from ganaug.transforms import GANAugment``.

The classes live in :mod:`ganaug.adapters.torchvision`.
"""

from ganaug.adapters.torchvision import GANAugment, GANCutoutFill, find_label

__all__ = ["GANAugment", "GANCutoutFill", "find_label"]
