"""Datasets of synthetic images: on their own (``SyntheticDataset``) or added to a real one (``ExpandedDataset``).

Every synthetic item has a fixed label and seed, so item ``i`` is always the same image, in any
process and in any order; the model loads lazily in the process that reads the items, so both
datasets work with DataLoader workers under fork and spawn.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import PIL.Image
import torch
from torch.utils.data import Dataset

from ganaug._util.validate import as_labels, check_choice, check_image_size, check_int, check_number, check_seed
from ganaug.adapters.functional import fit_images
from ganaug.sampling.gan import GANAug, read_model_info
from ganaug.sampling.lazy import LazyGAN

__all__ = ["BALANCE_MODES", "ExpandedDataset", "SyntheticDataset", "item_seed", "synthetic_class_counts"]

BALANCE_MODES = (None, "equalize")


def item_seed(seed: int, index: int) -> int:
    """The generation seed of item ``index`` of a synthetic set with base ``seed`` (a 62-bit int)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0] >> np.uint64(2))


class SyntheticDataset(Dataset):
    """Class-conditional GAN samples as a map-style dataset of ``(image, label)``.

    Items are ordered by class: the first ``class_counts[0]`` are class 0, and so on.

    Args:
        gan: a run directory or exported model (loaded lazily per process), or a loaded GANAug.
        num_per_class: the same number of items for every class; or
        class_counts: items per class (one count per class of the model).
        seed: base seed; item ``i`` is generated from ``item_seed(seed, i)``.
        image_size: (H, W) (or one int for a square) to resize to; default the model's resolution.
        transform: applied to each image (a uint8 (C, H, W) tensor).
        device: "cpu", "cuda" or "auto" (see :class:`ganaug.lazy_model.LazyGAN`).
        cache: keep generated images in memory (uint8, ``len * C * H * W`` bytes), so that a
            second epoch costs nothing.
    """

    def __init__(self, gan: str | os.PathLike | GANAug, num_per_class: int | None = None,
                 class_counts: Sequence[int] | None = None, seed: int = 0, image_size: tuple[int, int] | None = None,
                 transform: Callable[[torch.Tensor], Any] | None = None, device: str = "auto", cache: bool = True):
        if (num_per_class is None) == (class_counts is None):
            raise ValueError("give exactly one of num_per_class and class_counts")
        self.seed = check_seed("seed", seed)
        self.model = LazyGAN(gan, device)
        num_classes = _num_classes(self.model)
        if num_per_class is not None:
            class_counts = [check_int("num_per_class", num_per_class, low=0)] * num_classes
        try:
            counts = [check_int("class_counts", c, low=0) for c in class_counts]
        except (TypeError, ValueError):
            counts = None
        if counts is None or len(counts) != num_classes:
            raise ValueError(f"class_counts should hold {num_classes} non-negative int counts (one per class), "
                             f"got {class_counts!r}")
        self.class_counts = counts
        self.image_size = None if image_size is None else check_image_size("image_size", image_size)
        self.transform = transform
        self.cache = cache
        self.targets = torch.repeat_interleave(torch.arange(num_classes), torch.tensor(counts, dtype=torch.long))
        self._images: torch.Tensor | None = None
        self._done: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.model.gan.classes

    def generate(self, indices: Sequence[int] | torch.Tensor) -> torch.Tensor:
        """The images of items ``indices``: uint8 (N, C, H, W)."""
        indices = torch.as_tensor(indices, dtype=torch.int64).flatten()
        if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= len(self)):
            raise IndexError(f"index out of range for a dataset of {len(self)} items")
        gan = self.model.gan
        seeds = [item_seed(self.seed, int(i)) for i in indices]
        images = gan.sample_seeded(self.targets[indices], seeds).cpu()
        if self.image_size is not None:
            images = fit_images(images, images.shape[1], self.image_size)
        return images

    def materialize(self, batch_size: int = 256) -> SyntheticDataset:
        """Generate every item not yet cached, in batches (much faster than item by item). Returns self."""
        if not self.cache:
            raise ValueError("materialize needs cache=True")
        missing = torch.arange(len(self)) if self._done is None else torch.nonzero(~self._done).flatten()
        for start in range(0, len(missing), batch_size):
            self._store(missing[start:start + batch_size], self.generate(missing[start:start + batch_size]))
        return self

    def _store(self, indices: torch.Tensor, images: torch.Tensor) -> None:
        if self._images is None:
            self._images = torch.zeros(len(self), *images.shape[1:], dtype=torch.uint8)
            self._done = torch.zeros(len(self), dtype=torch.bool)
        self._images[indices] = images
        self._done[indices] = True

    def image(self, index: int) -> torch.Tensor:
        """Item ``index``'s image before ``transform``: uint8 (C, H, W)."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} items")
        index = index % len(self)
        if self._done is not None and self._done[index]:
            return self._images[index]
        image = self.generate([index])
        if self.cache:
            self._store(torch.tensor([index]), image)
        return image[0]

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = self.image(index)
        return (image if self.transform is None else self.transform(image)), int(self.targets[index])

    def __repr__(self) -> str:
        return f"SyntheticDataset({self.model!r}, class_counts={self.class_counts}, seed={self.seed})"


def synthetic_class_counts(real_counts: Sequence[int], synthetic_ratio: float | None,
                           balance: str | None) -> list[int]:
    """How many synthetic items each class gets.

    Args:
        real_counts: real items per class.
        synthetic_ratio: synthetic items as a fraction of the real ones (0.5 adds 50%); None
            (only with ``balance="equalize"``) adds exactly what brings every class to the
            largest class's count.
        balance: None spreads the synthetic items in proportion to the real class counts;
            "equalize" gives them to the smallest classes first, levelling the counts.

    A class with no real items gets no synthetic ones: it is taken to be absent from the
    dataset, not rare.
    """
    check_choice("balance", balance, BALANCE_MODES)
    all_counts = np.asarray(real_counts, dtype=np.int64)
    if synthetic_ratio is None and balance != "equalize":
        raise ValueError("synthetic_ratio=None needs balance='equalize' (fill every class up to the largest)")
    if synthetic_ratio is not None:
        check_number("synthetic_ratio", synthetic_ratio, 0.0)
    present = all_counts > 0
    result = np.zeros_like(all_counts)
    if present.any():
        result[present] = _spread(all_counts[present], synthetic_ratio, balance)
    return result.tolist()


def _spread(counts: np.ndarray, synthetic_ratio: float | None, balance: str | None) -> np.ndarray:
    """Synthetic items per class for classes that all have real items (see synthetic_class_counts)."""
    if synthetic_ratio is None:
        return counts.max() - counts
    total = round(synthetic_ratio * counts.sum())
    if balance is None:
        shares = counts / max(counts.sum(), 1) * total
        extra = np.floor(shares).astype(np.int64)
        remainder = total - extra.sum()
        extra[np.argsort(-(shares - extra), kind="stable")[:remainder]] += 1  # largest remainders
        return extra
    # water-filling: the highest common level L that the lowest classes can be raised to with
    # `total` items, then one more item each for as many classes at level L as are left over
    low, high = int(counts.min()), int(counts.max()) + total
    while low < high:
        level = (low + high + 1) // 2
        if np.maximum(level - counts, 0).sum() <= total:
            low = level
        else:
            high = level - 1
    extra = np.maximum(low - counts, 0)
    at_level = np.flatnonzero(counts + extra == low)
    extra[at_level[:total - extra.sum()]] += 1
    return extra


class ExpandedDataset(Dataset):
    """A real dataset followed by synthetic items of its classes, optionally rebalancing them.

    Items ``0 .. len(base) - 1`` are the real ones, unchanged; the rest are synthetic, ordered
    by class. A synthetic image takes the type, size, channels and dtype of the first real image
    (PIL, numpy HWC or tensor CHW), so both kinds go through the same transform.

    Args:
        base: a map-style dataset of ``(image, label)``, best without random transforms.
        gan: a run directory or exported model (loaded lazily per process), or a GANAug. Its
            classes are taken to be the base dataset's label indices.
        synthetic_ratio: synthetic items as a fraction of ``len(base)``; None with
            ``balance="equalize"`` adds what brings every class to the largest one.
        balance: None (synthetic counts in proportion to the real ones) or "equalize".
        seed: base seed of the synthetic items.
        labels: the base dataset's labels; default ``base.targets`` or ``base.labels``, else
            read item by item once.
        transform: applied to every image, real and synthetic.
        return_is_synthetic: items become ``(image, label, is_synthetic)``, e.g. to weight the loss.
        device: "cpu", "cuda" or "auto".
        cache: keep generated images in memory.
    """

    def __init__(self, base: Dataset, gan: str | os.PathLike | GANAug, synthetic_ratio: float | None = 0.5,
                 balance: str | None = None, seed: int = 0, labels: Sequence[int] | torch.Tensor | None = None,
                 transform: Callable[[Any], Any] | None = None, return_is_synthetic: bool = False,
                 device: str = "auto", cache: bool = True):
        if len(base) == 0:
            raise ValueError("base should be a non-empty dataset")
        self.base = base
        model = LazyGAN(gan, device)
        num_classes = _num_classes(model)
        real_labels = as_labels(_base_labels(base) if labels is None else labels, num_classes, name="base labels")
        if len(real_labels) != len(base):
            raise ValueError(f"labels should hold one label per base item ({len(base)}), got {len(real_labels)}")
        real_labels = torch.tensor(real_labels, dtype=torch.int64)
        real_counts = torch.bincount(real_labels, minlength=num_classes).tolist()
        counts = synthetic_class_counts(real_counts, synthetic_ratio, balance)
        self.example = _first_image(base)
        size = _image_size(self.example)
        self.synthetic = SyntheticDataset(gan if isinstance(gan, GANAug) else model.path, class_counts=counts,
                                          seed=seed, image_size=size, device=device, cache=cache)
        self.synthetic_ratio = synthetic_ratio
        self.balance = balance
        self.transform = transform
        self.return_is_synthetic = return_is_synthetic
        self.real_labels = real_labels
        self.targets = torch.cat([real_labels, self.synthetic.targets])

    def __len__(self) -> int:
        return len(self.base) + len(self.synthetic)

    @property
    def num_real(self) -> int:
        return len(self.base)

    @property
    def num_synthetic(self) -> int:
        return len(self.synthetic)

    @property
    def synthetic_mask(self) -> torch.Tensor:
        """bool (len,): True for synthetic items."""
        return torch.arange(len(self)) >= len(self.base)

    def is_synthetic(self, index: int) -> bool:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} items")
        return (index % len(self)) >= len(self.base)

    def class_counts(self) -> dict[str, list[int]]:
        """Real, synthetic and total items per class."""
        real = torch.bincount(self.real_labels, minlength=len(self.synthetic.class_counts)).tolist()
        return {"real": real, "synthetic": list(self.synthetic.class_counts),
                "total": [r + s for r, s in zip(real, self.synthetic.class_counts, strict=True)]}

    def __getitem__(self, index: int) -> tuple:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} items")
        index = index % len(self)
        if index < len(self.base):
            image = self.base[index][0]
            label, synthetic = int(self.real_labels[index]), False  # ints for both kinds, so batches collate
        else:
            image = _like(self.synthetic.image(index - len(self.base)), self.example)
            label, synthetic = int(self.targets[index]), True
        if self.transform is not None:
            image = self.transform(image)
        return (image, label, synthetic) if self.return_is_synthetic else (image, label)

    def __repr__(self) -> str:
        return (f"ExpandedDataset(real={self.num_real}, synthetic={self.num_synthetic}, "
                f"synthetic_ratio={self.synthetic_ratio}, balance={self.balance!r})")


def _num_classes(model: LazyGAN) -> int:
    """The number of classes of a model, without loading a saved one."""
    return model.gan.num_classes if model.loaded or model.path is None else len(read_model_info(model.path)["classes"])


def _base_labels(base: Dataset) -> list[int]:
    for name in ("targets", "labels"):
        labels = getattr(base, name, None)
        if labels is not None and len(labels) == len(base):
            return torch.as_tensor(labels).tolist()
    return [int(base[i][1]) for i in range(len(base))]


def _first_image(base: Dataset) -> Any:
    item = base[0]
    if not isinstance(item, (tuple, list)) or len(item) < 2:
        raise TypeError(f"base items should be (image, label) pairs, got {type(item).__name__}")
    return item[0]


def _image_size(example: Any) -> tuple[int, int]:
    if isinstance(example, PIL.Image.Image):
        return example.height, example.width
    if isinstance(example, np.ndarray) and example.ndim in (2, 3):
        return example.shape[0], example.shape[1]
    if isinstance(example, torch.Tensor) and example.ndim == 3:
        return example.shape[1], example.shape[2]
    raise TypeError("base images should be PIL images, numpy (H, W[, C]) arrays or (C, H, W) tensors, got "
                    f"{type(example).__name__} of shape {getattr(example, 'shape', None)}")


def _like(image: torch.Tensor, example: Any) -> Any:
    """A uint8 (C, H, W) synthetic image in the form of a real example image (type, channels, dtype)."""
    if isinstance(example, PIL.Image.Image):
        mode = example.mode
        gray = mode in ("L", "1", "I", "F", "LA", "La") or mode.startswith("I;16")
        array = _channels(image, 1 if gray else 3).permute(1, 2, 0).numpy()
        picture = PIL.Image.fromarray(array[:, :, 0] if gray else array)
        if mode in ("L", "RGB"):
            return picture
        if mode.startswith("I;16"):  # 16-bit: the full range, as the real images have it
            return PIL.Image.fromarray(array[:, :, 0].astype(np.uint16) * 257).convert(mode)
        if mode == "I":
            return PIL.Image.fromarray(array[:, :, 0].astype(np.int32) * 257)
        if mode == "F":
            return PIL.Image.fromarray(array[:, :, 0].astype(np.float32) / 255)
        return picture.convert(mode)  # RGBA/LA (opaque), P (a palette), 1, CMYK, ...
    if isinstance(example, np.ndarray):
        channels = 1 if example.ndim == 2 else example.shape[2]
        out = _channels(image, channels).permute(1, 2, 0).numpy()
        out = out[:, :, 0] if example.ndim == 2 else out
        if example.dtype == np.uint8:
            return out
        if np.issubdtype(example.dtype, np.integer):  # e.g. uint16: scaled to the dtype's range
            return np.round(out.astype(np.float64) / 255 * np.iinfo(example.dtype).max).astype(example.dtype)
        return out.astype(example.dtype) / 255
    out = _channels(image, example.shape[0])
    if example.dtype == torch.uint8:
        return out
    return out.to(example.dtype) / 255


def _channels(image: torch.Tensor, channels: int) -> torch.Tensor:
    return fit_images(image[None], channels, tuple(image.shape[-2:]))[0]
