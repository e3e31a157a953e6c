"""Pre-generated variants of known images, found by their content: what makes ``mode="variant"`` cheap.

A variant is generated from the image's own features (:meth:`ganaug.GANAug.sample_like`), so
making one per augmented sample costs a feature-network and a generator pass, about 1 ms per
image on a CPU core. The training set of a small-data run is small, though: its variants can be
generated once, in batches, before the DataLoader starts. :meth:`VariantBank.add` makes
``per_image`` variants of every image, already at that image's size and channels, and files them
under a digest of the image's bytes; a transform then finds an image's variants by hashing it
and copies one (a few microseconds), and generates live only for images it has not seen.

Images are found by their exact bytes, as the transform receives them: add the images as they
come out of the dataset, and put the transform before anything that changes them (flips, crops,
colour changes). :meth:`VariantBank.find` counts what it misses and warns once per process when
most images are not in the bank.

Memory is ``N * per_image * C * H * W`` bytes for N images. The variants are tensors, so a bank
filled before the workers start is shared with them: copy-on-write pages under fork, shared
memory under spawn.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ganaug._util.images import check_float_values, check_image_tensor, check_min_size, fit_images, image_batch
from ganaug._util.rng import SEED_SPACE, torch_generator
from ganaug._util.validate import as_labels, check_positive_int, check_seed
from ganaug.sampling.gan import GANAug
from ganaug.sampling.lazy import LazyGAN

__all__ = ["VARIANTS_PER_IMAGE", "VariantBank"]

LAYOUTS = ("HWC", "CHW")
MISS_CHECK_AFTER = 256  # lookups before the hit rate is judged (once per process)
VARIANTS_PER_IMAGE = 4  # the default, for the bank and the transforms that hold one


class VariantBank:
    """Variants of given images, generated once in batches and looked up by the images' content.

    Args:
        model: a run directory or exported model (loaded lazily), a loaded :class:`GANAug`, or
            the :class:`~ganaug.sampling.lazy.LazyGAN` a transform already holds (one model load).
        per_image: variants kept per image.
        seed: makes the variants reproducible; None: unseeded.
        device: "cpu", "cuda" or "auto" (see :class:`ganaug.SampleBank`), where :meth:`add` generates.
    """

    def __init__(self, model: str | os.PathLike | GANAug | LazyGAN, per_image: int = VARIANTS_PER_IMAGE,
                 seed: int | None = None, device: str = "auto"):
        self.per_image = check_positive_int("per_image", per_image)
        self.seed = check_seed("seed", seed, allow_none=True)
        self.model = model if isinstance(model, LazyGAN) else LazyGAN(model, device)
        self._groups: list[torch.Tensor] = []  # uint8 (M, per_image, C, H, W), one tensor per image shape
        self._index: dict[bytes, tuple[int, int]] = {}  # digest -> (group, row)
        self._seeds: torch.Generator | None = None
        self._init_process_state()

    def _init_process_state(self) -> None:
        self._pid = os.getpid()
        self._numpy: list[np.ndarray] = []  # numpy views of _groups, made in the process that reads them
        self._lookups = self._misses = 0
        self._judged = False

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items()
                if k not in ("_pid", "_numpy", "_lookups", "_misses", "_judged")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._init_process_state()

    def __len__(self) -> int:
        """Images whose variants are held."""
        return len(set(self._index.values()))

    @property
    def nbytes(self) -> int:
        """Bytes held by the variants."""
        return sum(group.numel() for group in self._groups)

    # --- filling --------------------------------------------------------------------------------

    def add(self, images: Any, labels: Any = None, batch_size: int = 256, progress: bool = False) -> VariantBank:
        """Generate ``per_image`` variants of every image now, and file them under the image's content.

        Args:
            images: what the transform will receive: a uint8 or float tensor (N, C, H, W); a numpy
                array (N, H, W) or (N, H, W, C); a :class:`ganaug.ImageDataset` (its labels are
                used); or a sequence of single images (PIL, (H, W[, C]) arrays, (C, H, W)
                tensors), which may differ in size. C is 1 or 3.
            labels: the images' classes (N ints); None infers them from the images' features.
            batch_size: images per generator pass.
            progress: show a progress bar.

        Returns:
            self. Adding an image again replaces its variants.
        """
        from tqdm.auto import tqdm

        batch_size = check_positive_int("batch_size", batch_size)
        if labels is None and hasattr(images, "labels") and hasattr(images, "images"):  # an ImageDataset
            labels = images.labels
        singles = _single_images(images)
        gan = self.model.gan
        labels = None if labels is None else as_labels(labels, gan.num_classes, num=len(singles), name="labels")
        shapes: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(singles):
            shapes.setdefault(tuple(image.shape), []).append(i)
        with tqdm(total=len(singles), desc="generating variants", unit="img", disable=not progress) as bar:
            for shape, members in shapes.items():
                rows = []
                for start in range(0, len(members), batch_size):
                    part = members[start:start + batch_size]
                    batch = torch.stack([singles[i] for i in part])
                    made = gan.sample_like(batch, self.per_image, seed=self._next_seed(),
                                           labels=None if labels is None else [labels[i] for i in part],
                                           batch_size=batch_size)
                    # kept on the CPU, where the transforms read them, whichever device generated them
                    rows.append(fit_images(made, shape[0], shape[1:]).cpu().view(len(part), self.per_image, *shape))
                    bar.update(len(part))
                group = len(self._groups)
                self._groups.append(torch.cat(rows))
                for row, i in enumerate(members):
                    for key in _keys(singles[i]):
                        self._index[key] = (group, row)
        self._numpy = []
        return self

    def _next_seed(self) -> int:
        if self._seeds is None:
            self._seeds = torch_generator(self.seed)
        return int(torch.randint(SEED_SPACE, (1,), generator=self._seeds))

    # --- lookup ---------------------------------------------------------------------------------

    def find(self, image: np.ndarray, pick: int, layout: str = "HWC", count_miss: bool = True) -> np.ndarray | None:
        """A copy of one variant of ``image``, in the image's layout, shape and uint8; None when it is not held.

        Args:
            image: uint8, or float32 in [0, 1]; (H, W), (H, W, C) ("HWC") or (C, H, W) ("CHW").
            pick: which of the image's variants (modulo ``per_image``).
            layout: how ``image`` is laid out.
            count_miss: count a miss towards the warning; False where the caller looks the image up
                again on a miss (a fast path before the general one), so that each image counts once.
        """
        if not self._index:
            return None
        if os.getpid() != self._pid:
            self._init_process_state()
        key = _digest(_as_uint8(image), layout)
        found = self._index.get(key)
        if found is None:
            if count_miss:
                self._lookups += 1
                self._misses += 1
                self._judge()
            return None
        self._lookups += 1
        if not self._numpy:
            self._numpy = [group.numpy() for group in self._groups]
        group, row = found
        variant = self._numpy[group][row, pick % self.per_image]  # (C, H, W)
        if layout == "HWC":
            return np.ascontiguousarray(variant.transpose(1, 2, 0)).reshape(image.shape)
        return variant.copy()

    def find_batch(self, images: torch.Tensor, picks: Sequence[int]) -> tuple[torch.Tensor | None, list[int]]:
        """Variants of a CPU batch (N, C, H, W) where they are held: (uint8 (N, C, H, W) or None, missing indices).

        ``picks``: one per image, as :meth:`find` takes it. The rows of missing images are left
        unset, to be generated by the caller.
        """
        if not self._index or images.device.type != "cpu":
            return None, list(range(len(images)))
        out = torch.empty(images.shape, dtype=torch.uint8)
        missing = []
        for i, image in enumerate(images.numpy()):
            found = self.find(image, picks[i], layout="CHW")
            if found is None:
                missing.append(i)
            else:
                out[i] = torch.from_numpy(found)
        return out, missing

    def _judge(self) -> None:
        if self._judged or self._lookups < MISS_CHECK_AFTER:
            return
        self._judged = True
        if self._misses * 2 > self._lookups:
            warnings.warn(
                f"GANAugment(mode='variant'): {self._misses} of the first {self._lookups} images were not among the "
                f"{len(self)} whose variants were generated in advance, so they are generated live (about 1 ms "
                "each on a CPU). Put GANAugment before the transforms that change an image (flips, crops, colour), "
                "and add() the images as the dataset gives them", stacklevel=4)

    def __repr__(self) -> str:
        return f"VariantBank({self.model!r}, per_image={self.per_image}, images={len(self)})"


def _single_images(images: Any) -> list[torch.Tensor]:
    """Every image of an accepted input as a (C, H, W) tensor in its own dtype, checked."""
    if hasattr(images, "images") and isinstance(images.images, torch.Tensor):  # an ImageDataset
        images = images.images
    if isinstance(images, torch.Tensor):
        batch = check_float_values("images", check_image_tensor("images", images))
        check_min_size("images", batch.shape[-2], batch.shape[-1])
        return list(batch[None] if batch.ndim == 3 else batch)
    if isinstance(images, np.ndarray):
        if images.ndim not in (3, 4):
            raise ValueError(f"images should be a numpy array (N, H, W) or (N, H, W, C), got shape {images.shape}")
        return list(image_batch(images[..., None] if images.ndim == 3 else images, "images", min_size=True).images)
    if isinstance(images, Sequence) and not isinstance(images, (str, bytes)):
        if len(images) == 0:
            raise ValueError("images is empty")
        return [image_batch(image, f"images[{i}]", min_size=True).images[0] for i, image in enumerate(images)]
    raise TypeError(f"images should be a tensor (N, C, H, W), a numpy array (N, H, W[, C]), an ImageDataset or a "
                    f"sequence of images, got {type(images).__name__}")


def _as_uint8(image: np.ndarray) -> np.ndarray:
    """The uint8 form an image is filed under: uint8 as it is, float in [0, 1] scaled and rounded."""
    if image.dtype == np.uint8:
        return image
    return np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8)


def _digest(image: np.ndarray, layout: str) -> bytes:
    """16 bytes naming an image's content: its layout-free shape (C, H, W) and its bytes in ``layout``.

    A one-channel image has the same bytes in both layouts, so it is named alike in both.
    """
    if layout == "HWC":
        shape = (image.shape[2] if image.ndim == 3 else 1, image.shape[0], image.shape[1])
    elif layout == "CHW":
        shape = tuple(image.shape)
    else:
        raise ValueError(f"layout should be one of {LAYOUTS}, got {layout!r}")
    if shape[0] == 1:
        layout = "CHW"
    digest = hashlib.blake2b(f"{layout}{shape}".encode(), digest_size=16)
    digest.update(np.ascontiguousarray(image).data)
    return digest.digest()


def _keys(image: torch.Tensor) -> set[bytes]:
    """The digests an image (C, H, W) is found under: as (H, W, C) numpy (albumentations, PIL) and as (C, H, W)."""
    chw = _as_uint8(image.numpy())
    return {_digest(chw, "CHW"), _digest(chw.transpose(1, 2, 0), "HWC")}
