"""Fashion-MNIST, found offline first: a root folder, the Debian package, a download, the embedded subset."""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import struct
import subprocess
import zlib
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ganaug._util.files import cache_root
from ganaug._util.network import host_reachable
from ganaug.data.dataset import DataSource, ImageDataset, convert_images

__all__ = [
    "DEBIAN_FASHION_MNIST_DIR",
    "DEBIAN_FASHION_MNIST_PACKAGE",
    "FASHION_MNIST_CLASSES",
    "default_cache_dir",
    "find_fashion_mnist_sources",
    "load_fashion_mnist",
    "read_fashion_mnist_idx",
]

logger = logging.getLogger(__name__)

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
DEBIAN_FASHION_MNIST_PACKAGE = "dataset-fashion-mnist"
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
EMBEDDED_SUBSET = "fashion_mnist_subset.npz"
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_SOURCES = ("auto", "root", "debian", "download", "embedded")


def read_fashion_mnist_idx(root: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one split of Fashion-MNIST from IDX files (gzipped or not) under ``root``.

    ``root`` may hold the files directly, or in torchvision's ``FashionMNIST/raw`` layout.

    Returns:
        images uint8 (N, 28, 28) and labels uint8 (N,).
    """
    if split not in _IDX_FILES:
        raise ValueError(f"split should be 'train' or 'test', got {split!r}")
    folder = _idx_folder(Path(root), split)
    if folder is None:
        raise FileNotFoundError(f"no Fashion-MNIST {split} IDX files ({', '.join(_IDX_FILES[split])}, optionally "
                                f".gz) under {str(root)!r} or {str(Path(root) / 'FashionMNIST' / 'raw')!r}")
    image_name, label_name = _IDX_FILES[split]
    images = _read_idx(_idx_file(folder, image_name))
    labels = _read_idx(_idx_file(folder, label_name))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"IDX files under {str(folder)!r} do not hold matching images (N, H, W) and labels (N,): "
                         f"got {images.shape} and {labels.shape}")
    return images, labels


def find_fashion_mnist_sources(root: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
                               ) -> dict[str, str | None]:
    """Which Fashion-MNIST sources are present on this machine, without using the network.

    Returns a dict from source kind (root, debian, download, embedded) to its location, or None.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    debian = _debian_data_dir()
    return {
        "root": str(root) if root is not None and _idx_folder(Path(root), "train") else None,
        "debian": str(debian) if debian else None,
        "download": str(cache) if _idx_folder(cache, "train") else None,
        "embedded": str(resources.files("ganaug") / "assets" / EMBEDDED_SUBSET),
    }


def load_fashion_mnist(
    split: str = "train",
    root: str | os.PathLike | None = None,
    source: str = "auto",
    image_size: int | tuple[int, int] = 28,
    channels: int = 1,
    cache_dir: str | os.PathLike | None = None,
) -> ImageDataset:
    """Load Fashion-MNIST, finding it offline first.

    With ``source="auto"`` the first of these that works is used, and the choice is logged:
    1. ``root``, when given: a folder with the IDX files (or torchvision's ``FashionMNIST/raw``);
    2. the Debian package ``dataset-fashion-mnist`` (``apt-get install dataset-fashion-mnist``);
    3. torchvision's copy in ``cache_dir``, downloaded first if missing and the network works;
    4. the embedded subset shipped with ganaug (200 train / 100 test images per class).
    Name a ``source`` ("root", "debian", "download", "embedded") to use only that one; then a
    missing source is an error, and "download" fails within seconds when offline.

    Args:
        split: "train" (60k images; 2k embedded) or "test" (10k; 1k embedded).
        root: folder with the IDX files.
        source: "auto" or one source kind.
        image_size: output size; Fashion-MNIST is 28 x 28.
        channels: 1 or 3.
        cache_dir: where torchvision downloads to; default ``$GANAUG_CACHE/fashion-mnist``
            (``~/.cache/ganaug/fashion-mnist``).
    """
    if split not in _IDX_FILES:
        raise ValueError(f"split should be 'train' or 'test', got {split!r}")
    if source not in _SOURCES:
        raise ValueError(f"source should be one of {_SOURCES}, got {source!r}")
    if source == "root" and root is None:
        raise ValueError("source='root' needs root=<folder with the Fashion-MNIST IDX files>")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    images, labels, origin = _find_fashion_mnist(split, root, source, cache)
    logger.info("Fashion-MNIST %s split: %d images from %s", split, len(images), origin)
    if origin.kind == "embedded" and source == "auto":
        logger.warning("using ganaug's embedded Fashion-MNIST subset (%d %s images); install the full data set "
                       "with 'apt-get install %s'", len(images), split, DEBIAN_FASHION_MNIST_PACKAGE)
    tensor = convert_images(torch.from_numpy(images).unsqueeze(1), image_size=image_size, channels=channels)
    return ImageDataset(tensor, torch.from_numpy(labels.astype(np.int64)), FASHION_MNIST_CLASSES, origin)



def default_cache_dir() -> Path:
    """``$GANAUG_CACHE/fashion-mnist``, by default ``~/.cache/ganaug/fashion-mnist``."""
    return cache_root() / "fashion-mnist"


def _find_fashion_mnist(split: str, root: str | os.PathLike | None, source: str, cache: Path,
                        ) -> tuple[np.ndarray, np.ndarray, DataSource]:
    if source in ("auto", "root") and root is not None:
        images, labels = read_fashion_mnist_idx(root, split)
        return images, labels, DataSource("root", str(root))
    if source in ("auto", "debian"):
        debian = _debian_data_dir()
        if debian is not None:
            images, labels = read_fashion_mnist_idx(debian, split)
            return images, labels, DataSource("debian", str(debian))
        if source == "debian":
            raise FileNotFoundError(f"the Debian package {DEBIAN_FASHION_MNIST_PACKAGE} is not installed; run "
                                    f"'apt-get install {DEBIAN_FASHION_MNIST_PACKAGE}' or use another source")
    if source in ("auto", "download"):
        if _idx_folder(cache, split) is None:
            _download_fashion_mnist(cache, required=source == "download")
        if _idx_folder(cache, split) is not None:
            images, labels = read_fashion_mnist_idx(cache, split)
            return images, labels, DataSource("download", str(cache))
    with resources.files("ganaug").joinpath("assets", EMBEDDED_SUBSET).open("rb") as handle, np.load(handle) as npz:
        images, labels = npz[f"{split}_images"], npz[f"{split}_labels"]
    return images, labels, DataSource("embedded", EMBEDDED_SUBSET)


def _download_fashion_mnist(cache: Path, required: bool) -> None:
    """Download with torchvision into ``cache``, after checking within seconds that a mirror answers."""
    from torchvision.datasets import FashionMNIST

    mirror = next((m for m in FashionMNIST.mirrors if host_reachable(m)), None)
    if mirror is None:
        message = (f"cannot download Fashion-MNIST: none of torchvision's mirrors ({', '.join(FashionMNIST.mirrors)})"
                   f" can be reached. Install it offline with 'apt-get install {DEBIAN_FASHION_MNIST_PACKAGE}', or "
                   f"pass root=<folder with the IDX files>")
        if required:
            raise ConnectionError(message)
        logger.info("%s; trying the next source", message)
        return
    logger.info("downloading Fashion-MNIST into %s", cache)
    for train in (True, False):
        FashionMNIST(root=str(cache), train=train, download=True)


def _debian_data_dir() -> Path | None:
    """The Debian package's data folder, as ``dpkg -L`` lists it, or None."""
    if _idx_folder(DEBIAN_FASHION_MNIST_DIR, "train") is not None:
        return DEBIAN_FASHION_MNIST_DIR
    if shutil.which("dpkg") is None:
        return None
    try:
        listing = subprocess.run(["dpkg", "-L", DEBIAN_FASHION_MNIST_PACKAGE], capture_output=True, text=True,
                                 timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in listing.splitlines():
        if line.endswith("train-images-idx3-ubyte.gz"):
            return Path(line).parent
    return None


def _idx_folder(root: Path, split: str) -> Path | None:
    for folder in (root, root / "FashionMNIST" / "raw"):
        if all(_idx_file(folder, name) is not None for name in _IDX_FILES[split]):
            return folder
    return None


def _idx_file(folder: Path, name: str) -> Path | None:
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:  # e.g. an interrupted download
        raise ValueError(f"{str(path)!r} is truncated or damaged ({error}); delete it to have it fetched "
                         "again") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{str(path)!r} is not an IDX file of unsigned bytes")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    array = np.frombuffer(bytearray(data), dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{str(path)!r} is truncated: its header says {shape}, it holds {array.size} values")
    return array.reshape(shape)

