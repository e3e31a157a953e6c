"""Versions of Python and of the packages ganaug runs on, as recorded with every run."""

from __future__ import annotations

import platform
from importlib import metadata

__all__ = ["PACKAGES", "__version__", "package_versions"]

__version__ = "0.1.0"  # ganaug's own; pyproject.toml reads it from here

PACKAGES = ("ganaug", "torch", "torchvision", "timm", "albumentations", "numpy", "safetensors", "huggingface_hub")


def package_versions() -> dict[str, str | None]:
    """Versions of Python and of :data:`PACKAGES` (None when not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions
