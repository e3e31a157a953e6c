"""The albumentations adapter's public home: ``from ganaug.albumentations import GANAugment, worker_init_fn``.

The classes live in :mod:`ganaug.adapters.albumentations`; they serialize (``A.save``,
``A.to_dict``) under this module's name.
"""

from ganaug.adapters.albumentations import GANAugment, GANCutoutFill, worker_init_fn

__all__ = ["GANAugment", "GANCutoutFill", "worker_init_fn"]
