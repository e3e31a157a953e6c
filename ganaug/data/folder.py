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

__all__ = ["ALPHA_BACKGROUND", "IMAGE_SUFFIXES", "data_format", "is_gray", "read_image_folder", "to_8bit",
           "to_channels"]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}


GRAY_MODES = {"1", "L", "LA", "La", "I", "F"}  # and every "I;16..." mode: images without colour
EXIF_ORIENTATION = 0x0112
ALPHA_BACKGROUND = 255  # transparent pixels are composited over white (icons, cut-out photos)


def is_gray(mode: str) -> bool:
    """Whether a PIL mode holds no colour."""
    return mode in GRAY_MODES or mode.startswith("I;16")


def data_format(sizes: list[tuple[int, int]], modes: list[str]) -> tuple[tuple[int, int], int]:
    """The one rule for the size and channels of images read without being told: the data's own.

    Args:
        sizes: every image's (height, width).
        modes: every image's PIL mode (for tensors and arrays: "L" for 1 channel, "RGB" else).

    Returns:
        ``(height, width)``: the images' size when they all share one, else a square of the
        median side (the geometric mean of height and width, rounded); and 1 channel when no
        image has colour, else 3.
    """
    if not sizes:
        raise ValueError("there are no images to read a size from")
    if len(set(sizes)) == 1:
        size = sizes[0]
    else:
        side = int(round(float(np.median([np.sqrt(h * w) for h, w in sizes]))))
        size = (side, side)
    return size, 1 if all(is_gray(m) for m in modes) else 3


def to_channels(image: PIL.Image.Image, channels: int) -> PIL.Image.Image:
    """A decoded PIL image as 8-bit 'L' or 'RGB': high bit depths scaled, transparency composited over white."""
    from PIL import Image

    image = to_8bit(image)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (ALPHA_BACKGROUND,) * 3 + (255,))
        image = Image.alpha_composite(background, rgba)
    return image.convert("L" if channels == 1 else "RGB")


def read_image_folder(root: str | os.PathLike, image_size: int | tuple[int, int] | None = None,
                      channels: int | None = None, progress: bool = False,
                      ) -> tuple[torch.Tensor, torch.Tensor, list[str], str]:
    """Decode an ImageFolder tree, as :meth:`ganaug.ImageDataset.from_folder` describes.

    ``image_size`` and ``channels`` None take the data's own (see :func:`data_format`): the file
    headers are read first, then each image is decoded once.

    Returns:
        images uint8 (N, channels, H, W), labels int64 (N,), the class names (the subfolders,
        sorted by name) and the folder's resolved path.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError
    from tqdm.auto import tqdm

    root = Path(root)
    if image_size is not None:
        image_size = check_image_size("image_size", image_size)
    if channels is not None:
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
    total = len(files)
    skipped = [path for path, _ in files if path.suffix.lower() not in IMAGE_SUFFIXES]
    files = [(path, label) for path, label in files if path.suffix.lower() in IMAGE_SUFFIXES]
    if image_size is None or channels is None:  # the headers only: sizes and modes, no pixels decoded
        sizes, modes = [], []
        for path, _ in files:
            try:
                with Image.open(path) as img:
                    width, height = img.size
                    if img.getexif().get(EXIF_ORIENTATION) in (5, 6, 7, 8):  # turned a quarter: exif_transpose swaps
                        width, height = height, width
                    sizes.append((height, width))
                    modes.append(img.mode)
            except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError, SyntaxError):
                continue
        if sizes:
            found_size, found_channels = data_format(sizes, modes)
            image_size = image_size or found_size
            channels = channels or found_channels
        else:  # not one header could be read: nothing to decode either
            skipped += [path for path, _ in files]
            files = []
    images, labels = [], []
    height, width = image_size or (0, 0)
    for path, label in tqdm(files, desc=f"reading {root.name}", disable=not progress, unit="img"):
        try:
            with Image.open(path) as img:
                img = to_channels(ImageOps.exif_transpose(img), channels)
                img = ImageOps.fit(img, (width, height), method=Image.Resampling.BICUBIC)
                array = np.asarray(img, dtype=np.uint8)
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError, SyntaxError):
            skipped.append(path)
            continue
        images.append(torch.from_numpy(array.reshape(height, width, channels).copy()).permute(2, 0, 1))
        labels.append(label)
    if skipped:
        examples = ", ".join(str(p.relative_to(root)) for p in skipped[:3])
        warnings.warn(f"skipped {len(skipped)} of {total} files under {str(root)!r} that are not readable images "
                      f"(e.g. {examples})", stacklevel=3)
    counts = np.bincount(labels, minlength=len(class_dirs)) if labels else np.zeros(len(class_dirs), int)
    empty = [class_dirs[c].name for c in np.flatnonzero(counts == 0)]
    if empty:
        raise ValueError(f"class folders {empty} under {str(root)!r} hold no readable images")
    location = str(root.resolve())
    logger.info("loaded %d images in %d classes from folder:%s at %dx%d, %d channel(s)", len(images),
                len(class_dirs), location, image_size[0], image_size[1], channels)
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
