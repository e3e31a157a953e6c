"""What a command line names as data: ``fashion-mnist`` (or ``fashion-mnist:<source>``), or a folder."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ganaug.data.dataset import ImageDataset
from ganaug.data.fashion_mnist import load_fashion_mnist

__all__ = ["load_dataset"]

logger = logging.getLogger(__name__)

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
    ``val/``...), of which ``split`` picks one. Defaults: 28 px and 1 channel for Fashion-MNIST;
    for folders, the images' own size and channels (see :func:`ganaug.data.folder.data_format`).
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
    return ImageDataset.from_folder(folder, image_size=image_size, channels=channels, progress=progress)


_SPLIT_NAMES = ("train", "test", "val", "valid", "validation")

