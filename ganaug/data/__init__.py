"""Data: every source of labelled images (Fashion-MNIST, ImageFolder trees, arrays) becomes an ``ImageDataset``."""

from ganaug.data.dataset import DataSource, ImageDataset, convert_images
from ganaug.data.fashion_mnist import (
    DEBIAN_FASHION_MNIST_DIR,
    FASHION_MNIST_CLASSES,
    find_fashion_mnist_sources,
    load_fashion_mnist,
    read_fashion_mnist_idx,
)
from ganaug.data.folder import to_8bit
from ganaug.data.load import load_dataset

__all__ = [
    "DEBIAN_FASHION_MNIST_DIR",
    "FASHION_MNIST_CLASSES",
    "DataSource",
    "ImageDataset",
    "convert_images",
    "find_fashion_mnist_sources",
    "load_dataset",
    "load_fashion_mnist",
    "read_fashion_mnist_idx",
    "to_8bit",
]
