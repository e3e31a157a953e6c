"""What this machine offers ganaug: package versions, compute device, data sources and cached weights."""

from __future__ import annotations

import torch

from ganaug._util.versions import package_versions
from ganaug.data import find_fashion_mnist_sources
from ganaug.nets.weight_packages import installed_weight_packages
from ganaug.nets.weights import cached_weights

__all__ = ["environment_report"]


def environment_report() -> dict:
    """Versions, device, Fashion-MNIST sources, cached weights and installed weight packages, as plain data."""
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
        "weight_packages": installed_weight_packages(),
    }
