"""Labelled image data: Fashion-MNIST from several sources, ImageFolder trees, and in-memory arrays.

Every source becomes an :class:`ImageDataset`, which yields ``(image, label)`` with ``image`` a
``uint8 (C, H, W)`` tensor at the configured size and channel count, and ``label`` an ``int``.
Images are decoded and resized once, when the dataset is built, and kept in memory: a few
thousand images at 28-64 px take a few MB, and training then never waits on decoding.
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import struct
import subprocess
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from ganaug._network import host_reachable

if TYPE_CHECKING:
    import PIL.Image

__all__ = [
    "DEBIAN_FASHION_MNIST_DIR",
    "FASHION_MNIST_CLASSES",
    "DataSource",
    "ImageDataset",
    "find_fashion_mnist_sources",
    "load_dataset",
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
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}


@dataclass(frozen=True)
class DataSource:
    """Where a data set came from: ``kind`` is one of root, debian, download, embedded, folder, arrays."""

    kind: str
    location: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.location}"


class ImageDataset(Dataset):
    """Labelled images held in memory as one ``uint8 (N, C, H, W)`` tensor.

    Build one with :meth:`from_arrays`, :meth:`from_folder`, :func:`load_fashion_mnist` or
    :func:`load_dataset`. Items are ``(image uint8 (C, H, W), label int)``.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: Sequence[str], source: DataSource):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"images should be uint8 (N, C, H, W) with C in (1, 3), got {images.dtype} "
                             f"{tuple(images.shape)}")
        if labels.shape != (images.shape[0],):
            raise ValueError(f"labels should have shape ({images.shape[0]},), got {tuple(labels.shape)}")
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= len(classes)):
            raise ValueError(f"labels should lie in [0, {len(classes)}), "
                             f"got [{int(labels.min())}, {int(labels.max())}]")
        self.images = images.contiguous()
        self.labels = labels.to(torch.int64)
        self.classes = tuple(classes)
        self.source = source

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])

    def __repr__(self) -> str:
        return (f"ImageDataset(num_images={len(self)}, num_classes={self.num_classes}, channels={self.channels}, "
                f"image_size={self.image_size}, source={self.source})")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width)."""
        return (self.images.shape[2], self.images.shape[3])

    def class_counts(self) -> list[int]:
        """Number of images of each class, indexed by label."""
        return torch.bincount(self.labels, minlength=self.num_classes).tolist()

    def subset(self, indices: Sequence[int] | torch.Tensor) -> ImageDataset:
        """A new dataset with the given items, in that order (the images are copied)."""
        index = torch.as_tensor(indices, dtype=torch.int64)
        return ImageDataset(self.images[index], self.labels[index], self.classes, self.source)

    def split(self, fraction: float, seed: int = 0) -> tuple[ImageDataset, ImageDataset]:
        """Split into ``(rest, held_out)``, stratified by class, with ``fraction`` of each class held out.

        Every class with at least two images keeps at least one image on each side.
        """
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"fraction should lie in (0, 1), got {fraction}")
        generator = torch.Generator().manual_seed(seed)
        held_out, rest = [], []
        for label in range(self.num_classes):
            members = torch.nonzero(self.labels == label).flatten()
            members = members[torch.randperm(len(members), generator=generator)]
            count = round(len(members) * fraction)
            if len(members) >= 2:
                count = min(max(count, 1), len(members) - 1)
            held_out.append(members[:count])
            rest.append(members[count:])
        return self.subset(torch.cat(rest).sort().values), self.subset(torch.cat(held_out).sort().values)

    @classmethod
    def from_arrays(
        cls,
        images: np.ndarray | torch.Tensor,
        labels: np.ndarray | torch.Tensor | Sequence[int],
        classes: Sequence[str] | None = None,
        image_size: int | tuple[int, int] | None = None,
        channels: int | None = None,
    ) -> ImageDataset:
        """Wrap in-memory images.

        Args:
            images: (N, H, W) grayscale, or (N, H, W, C) / (N, C, H, W) with C in {1, 3}; the layout is
                read from where the size-1 or size-3 axis is. uint8 in [0, 255] or float in [0, 1].
            labels: N integer class labels in [0, num_classes).
            classes: class names; default ``"0", "1", ...`` up to the largest label.
            image_size: output size, an int for square or (height, width); default: keep.
            channels: 1 or 3; default: keep.
        """
        tensor = _images_to_uint8_nchw(images)
        label_tensor = torch.as_tensor(np.asarray(labels)).to(torch.int64).flatten()
        if len(label_tensor) != tensor.shape[0]:
            raise ValueError(f"labels should have one entry per image ({tensor.shape[0]}), got {len(label_tensor)}")
        if classes is None:
            classes = [str(c) for c in range(int(label_tensor.max()) + 1 if len(label_tensor) else 0)]
        tensor = convert_images(tensor, image_size=image_size, channels=channels)
        return cls(tensor, label_tensor, classes, DataSource("arrays", f"{tuple(tensor.shape)}"))

    @classmethod
    def from_folder(
        cls,
        root: str | os.PathLike,
        image_size: int | tuple[int, int],
        channels: int = 3,
        progress: bool = False,
    ) -> ImageDataset:
        """Read an ImageFolder tree: ``root/<class name>/<image file>``.

        Classes are the subfolders, sorted by name. Each image is resized so that it covers
        ``image_size`` and then centre-cropped to it. Files that are not images, or cannot be
        decoded, are skipped and counted in one warning.

        Args:
            root: the folder holding one subfolder per class.
            image_size: an int for square, or (height, width).
            channels: 1 (grayscale) or 3 (RGB).
            progress: show a progress bar while decoding.
        """
        from PIL import Image, ImageOps, UnidentifiedImageError
        from tqdm.auto import tqdm

        root = Path(root)
        height, width = _check_size("image_size", image_size)
        _check_channels(channels)
        if not root.exists():
            raise FileNotFoundError(f"root folder {str(root)!r} does not exist")
        if not root.is_dir():
            raise NotADirectoryError(f"root should be a folder with one subfolder per class, "
                                     f"got the file {str(root)!r}")
        entries = [p for p in root.iterdir() if not p.name.startswith(".")]
        if not entries:
            raise ValueError(f"root folder {str(root)!r} is empty; expected one subfolder per class")
        class_dirs = sorted((p for p in entries if p.is_dir()), key=lambda p: p.name)
        if not class_dirs:
            raise ValueError(f"root folder {str(root)!r} has no class subfolders; expected root/<class>/<image>, "
                             f"found only files such as {entries[0].name!r}")
        files = [(f, label) for label, d in enumerate(class_dirs) for f in sorted(d.rglob("*"))
                 if f.is_file() and not any(part.startswith(".") for part in f.relative_to(d).parts)]
        mode = "L" if channels == 1 else "RGB"
        images, labels, skipped = [], [], []
        for path, label in tqdm(files, desc=f"reading {root.name}", disable=not progress, unit="img"):
            if path.suffix.lower() not in _IMAGE_SUFFIXES:
                skipped.append(path)
                continue
            try:
                with Image.open(path) as img:
                    img = to_8bit(ImageOps.exif_transpose(img)).convert(mode)
                    img = ImageOps.fit(img, (width, height), method=Image.Resampling.BICUBIC)
                    array = np.asarray(img, dtype=np.uint8)
            except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError, SyntaxError):
                skipped.append(path)
                continue
            images.append(torch.from_numpy(array.reshape(height, width, channels).copy()).permute(2, 0, 1))
            labels.append(label)
        if skipped:
            examples = ", ".join(str(p.relative_to(root)) for p in skipped[:3])
            warnings.warn(f"skipped {len(skipped)} of {len(files)} files under {str(root)!r} that are not readable "
                          f"images (e.g. {examples})", stacklevel=2)
        counts = np.bincount(labels, minlength=len(class_dirs)) if labels else np.zeros(len(class_dirs), int)
        empty = [class_dirs[c].name for c in np.flatnonzero(counts == 0)]
        if empty:
            raise ValueError(f"class folders {empty} under {str(root)!r} hold no readable images")
        source = DataSource("folder", str(root.resolve()))
        logger.info("loaded %d images in %d classes from %s", len(images), len(class_dirs), source)
        return cls(torch.stack(images), torch.tensor(labels), [d.name for d in class_dirs], source)


def convert_images(
    images: torch.Tensor, image_size: int | tuple[int, int] | None = None, channels: int | None = None
) -> torch.Tensor:
    """Resize (cover, then centre-crop) and convert channels of ``uint8 (N, C, H, W)`` images.

    RGB to grayscale uses the ITU-R 601 luma weights, as PIL's ``convert("L")`` does.
    """
    from torchvision.transforms.v2 import functional as TF

    if channels is not None:
        _check_channels(channels)
        if channels == 3 and images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        elif channels == 1 and images.shape[1] == 3:
            weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            images = (images.float() * weights).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    if image_size is not None:
        height, width = _check_size("image_size", image_size)
        if images.shape[-2:] != (height, width):
            scale = max(height / images.shape[-2], width / images.shape[-1])
            cover = (max(height, round(images.shape[-2] * scale)), max(width, round(images.shape[-1] * scale)))
            images = TF.resize(images, list(cover), antialias=True)
            images = TF.center_crop(images, [height, width])
    return images.contiguous()


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


def load_dataset(
    data: str | os.PathLike,
    split: str = "train",
    image_size: int | tuple[int, int] | None = None,
    channels: int | None = None,
    progress: bool = False,
) -> ImageDataset:
    """Load what a command line names: ``fashion-mnist`` (or ``fashion-mnist:<source>``), or a folder.

    ``fashion-mnist:root=DIR`` reads IDX files from DIR. A folder may be an ImageFolder tree
    (read whole, whatever ``split``), or hold split trees (two or more of ``train/``, ``test/``,
    ``val/``...), of which ``split`` picks one. Defaults: 28 px and 1 channel for Fashion-MNIST,
    64 px and 3 channels for folders.
    """
    text = str(data)
    if text == "fashion-mnist" or text.startswith("fashion-mnist:"):
        source, root = text.partition(":")[2] or "auto", None
        if source.startswith("root="):  # fashion-mnist:root=DIR
            source, root = "root", source.partition("=")[2]
        return load_fashion_mnist(split, root=root, source=source, image_size=image_size or 28,
                                  channels=channels or 1)
    folder = Path(text)
    splits = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name in _SPLIT_NAMES) \
        if folder.is_dir() else []
    if len(splits) >= 2 or (splits and (folder / split).is_dir()):  # a folder of split trees
        if not (folder / split).is_dir():
            raise ValueError(f"split {split!r} is not among the split folders of {str(folder)!r}: {splits}")
        folder = folder / split
    elif split != "train":
        logger.warning("%s has no train/ and test/ folders: split %r reads all of its images", folder, split)
    return ImageDataset.from_folder(folder, image_size=image_size or 64, channels=channels or 3, progress=progress)


_SPLIT_NAMES = ("train", "test", "val", "valid", "validation")


def to_8bit(image: PIL.Image.Image) -> PIL.Image.Image:
    """16-bit, 32-bit integer and float images scaled to 8 bits ('L'); others as they are.

    Pillow's ``convert("L")`` clips such images at 255 instead of scaling them. 16-bit modes and
    integer images above 255 are scaled from [0, 65535]; float images from [0, 1] when they lie
    there, else from [0, 255].
    """
    if image.mode not in ("I", "F") and not image.mode.startswith("I;16"):
        return image
    from PIL import Image

    array = np.asarray(image, dtype=np.float64)
    top = float(array.max()) if array.size else 0.0
    if image.mode == "F":
        scale = 1.0 if top <= 1.0 else 255.0
    else:
        scale = 65535.0 if image.mode.startswith("I;16") or top > 255 else 255.0
    return Image.fromarray(np.clip(np.round(array / scale * 255), 0, 255).astype(np.uint8), mode="L")


def default_cache_dir() -> Path:
    """``$GANAUG_CACHE/fashion-mnist``, by default ``~/.cache/ganaug/fashion-mnist``."""
    base = os.environ.get("GANAUG_CACHE") or Path.home() / ".cache" / "ganaug"
    return Path(base) / "fashion-mnist"


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


def _images_to_uint8_nchw(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    tensor = torch.as_tensor(images) if not isinstance(images, torch.Tensor) else images.detach().cpu()
    if tensor.ndim == 3:
        tensor = tensor.unsqueeze(1)
    if tensor.ndim != 4:
        raise ValueError(f"images should be (N, H, W), (N, H, W, C) or (N, C, H, W), got shape {tuple(tensor.shape)}")
    channels_first = tensor.shape[1] in (1, 3) and tensor.shape[3] not in (1, 3)
    if not channels_first:
        if tensor.shape[3] not in (1, 3):
            raise ValueError(f"images should have 1 or 3 channels, first or last, got shape {tuple(tensor.shape)}")
        tensor = tensor.permute(0, 3, 1, 2)
    if tensor.dtype == torch.uint8:
        return tensor.contiguous()
    if tensor.is_floating_point():
        if tensor.numel() and (not torch.isfinite(tensor).all() or tensor.min() < 0 or tensor.max() > 1):
            raise ValueError("float images should hold finite values in [0, 1]; "
                             f"got values in [{float(tensor.min())}, {float(tensor.max())}]")
        return (tensor * 255).round().to(torch.uint8).contiguous()
    raise TypeError(f"images should be uint8 or float, got {tensor.dtype}")


def _check_size(name: str, size: int | tuple[int, int]) -> tuple[int, int]:
    pair = (size, size) if isinstance(size, int) else tuple(size)
    if len(pair) != 2 or not all(isinstance(s, int) and s > 0 for s in pair):
        raise ValueError(f"{name} should be a positive int or a (height, width) pair, got {size!r}")
    return pair


def _check_channels(channels: int) -> None:
    if channels not in (1, 3):
        raise ValueError(f"channels should be 1 or 3, got {channels!r}")
