"""ImageFolder trees (``root/<class name>/<image file>``) read into one uint8 tensor, and 8-bit conversion of images."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ganaug._util.validate import check_channels, check_image_size

if TYPE_CHECKING:
    import PIL.Image

__all__ = ["IMAGE_SUFFIXES", "read_image_folder", "to_8bit"]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}


def read_image_folder(root: str | os.PathLike, image_size: int | tuple[int, int], channels: int = 3,
                      progress: bool = False) -> tuple[torch.Tensor, torch.Tensor, list[str], str]:
    """Decode an ImageFolder tree, as :meth:`ganaug.ImageDataset.from_folder` describes.

    Returns:
        images uint8 (N, channels, H, W), labels int64 (N,), the class names (the subfolders,
        sorted by name) and the folder's resolved path.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError
    from tqdm.auto import tqdm

    root = Path(root)
    height, width = check_image_size("image_size", image_size)
    check_channels("channels", channels)
    if not root.exists():
        raise FileNotFoundError(f"root folder {str(root)!r} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"root should be a folder with one subfolder per class, got the file {str(root)!r}")
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
        if path.suffix.lower() not in IMAGE_SUFFIXES:
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
                      f"images (e.g. {examples})", stacklevel=3)
    counts = np.bincount(labels, minlength=len(class_dirs)) if labels else np.zeros(len(class_dirs), int)
    empty = [class_dirs[c].name for c in np.flatnonzero(counts == 0)]
    if empty:
        raise ValueError(f"class folders {empty} under {str(root)!r} hold no readable images")
    location = str(root.resolve())
    logger.info("loaded %d images in %d classes from folder:%s", len(images), len(class_dirs), location)
    return torch.stack(images), torch.tensor(labels), [d.name for d in class_dirs], location


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
