"""Rebuild ganaug/assets/fashion_mnist_subset.npz from the real Fashion-MNIST.

The embedded default data set is a fixed, class-balanced subset of Fashion-MNIST: 200 training
and 100 test images per class, drawn with a fixed seed from the official splits.

Usage: python scripts/make_embedded_subset.py [--root DIR]   (default: the Debian package's directory)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ganaug.data import DEBIAN_FASHION_MNIST_DIR, read_fashion_mnist_idx

TRAIN_PER_CLASS = 200
TEST_PER_CLASS = 100
SEED = 20170825  # Fashion-MNIST's release date; any fixed value works.


def _balanced_subset(images: np.ndarray, labels: np.ndarray, per_class: int, rng: np.random.Generator):
    chosen = [rng.choice(np.flatnonzero(labels == c), size=per_class, replace=False) for c in range(10)]
    index = np.sort(np.concatenate(chosen))
    return images[index], labels[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=DEBIAN_FASHION_MNIST_DIR)
    default_out = Path(__file__).parents[1] / "ganaug" / "assets" / "fashion_mnist_subset.npz"
    parser.add_argument("--out", type=Path, default=default_out)
    args = parser.parse_args()
    rng = np.random.default_rng(SEED)
    train_images, train_labels = _balanced_subset(*read_fashion_mnist_idx(args.root, "train"), TRAIN_PER_CLASS, rng)
    test_images, test_labels = _balanced_subset(*read_fashion_mnist_idx(args.root, "test"), TEST_PER_CLASS, rng)
    np.savez_compressed(
        args.out,
        train_images=train_images,
        train_labels=train_labels.astype(np.uint8),
        test_images=test_images,
        test_labels=test_labels.astype(np.uint8),
    )
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
