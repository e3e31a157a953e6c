"""What this machine offers ganaug: package versions, compute device, data sources and cached weights."""

from __future__ import annotations

import platform
from importlib import metadata

import torch

from ganaug.data import find_fashion_mnist_sources
from ganaug.weights import cached_weights

__all__ = ["environment_report", "package_versions"]

_PACKAGES = ("ganaug", "torch", "torchvision", "timm", "albumentations", "numpy", "safetensors", "huggingface_hub")


def package_versions() -> dict[str, str | None]:
    """Versions of Python and of the packages ganaug runs on (None when not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def environment_report() -> dict:
    """Versions, device, Fashion-MNIST sources and cached weights, as plain data (JSON-serializable)."""
    versions = package_versions()
    if torch.cuda.is_available():
        device = {"type": "cuda", "count": torch.cuda.device_count(),
                  "names": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]}
    else:
        device = {"type": "cpu", "threads": torch.get_num_threads()}
    return {
        "versions": versions,
        "device": device,
        "fashion_mnist_sources": find_fashion_mnist_sources(),
        "cached_weights": cached_weights(),
    }
