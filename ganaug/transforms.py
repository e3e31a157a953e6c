"""torchvision.transforms.v2 adapter: ``GANAugment`` as a native v2 transform.

    from torchvision.transforms import v2
    from ganaug.transforms import GANAugment

    transform = v2.Compose([v2.RandomHorizontalFlip(), GANAugment("runs/fmnist", mode="mix", p=0.3)])
    image, label = transform(image, label)           # also dict samples, as v2.MixUp reads them

Per sample it takes PIL images, plain tensors and ``tv_tensors.Image``, and finds the label the
way ``v2.MixUp`` does (the second item of a tuple, or a "label"/"labels" key of a dict; plain
ints are accepted too). After the DataLoader, give it a ``(B, C, H, W)`` batch with a ``(B,)``
label tensor: the whole batch then goes through the generator in one pass, on the batch's
device. Randomness comes from torch's global RNG, which DataLoader seeds per worker.
"""

from __future__ import annotations

import collections.abc
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch
from torch.utils._pytree import tree_flatten, tree_unflatten
from torchvision import tv_tensors
from torchvision.transforms import v2

from ganaug.augment import MIN_IMAGE_SIZE, augment_images, augment_one, check_mix_ratio, check_mode
from ganaug.completion import check_hole_ranges, random_box_masks
from ganaug.lazy_model import DEVICES, LazyGAN
from ganaug.sample_bank import SampleBank, check_labels

__all__ = ["GANAugment", "GANCutoutFill", "find_label"]


def find_label(sample: Any) -> Any:
    """The label of a sample, found as ``v2.MixUp``'s default ``labels_getter`` finds it.

    The second item of a tuple or list; in a dict (or a dict that is that second item), the key
    "labels", else the first key containing "label" (case-insensitive). None when there is none
    (a lone image).
    """
    if isinstance(sample, (tuple, list)):
        if len(sample) < 2:
            return None
        sample = sample[1]
        if not isinstance(sample, collections.abc.Mapping):
            return sample
    if isinstance(sample, collections.abc.Mapping):
        keys = [key for key in sample if isinstance(key, str)]
        key = next((k for k in keys if k.lower() == "labels"), None)
        key = key or next((k for k in keys if "label" in k.lower()), None)
        return None if key is None else sample[key]
    return None  # a lone image


class GANAugment(v2.Transform):
    """Replace, blend or vary images with GAN samples of their class.

    Args:
        checkpoint: a ganaug run directory or exported model; loaded lazily in each process.
        mode: "replace", "mix" or "variant"; see :class:`ganaug.albumentations.GANAugment`.
        p: probability of applying, per sample (also per image of a batch).
        mix_ratio: ``(low, high)`` range of the synthetic weight in "mix".
        bank_size: pre-generated samples held per class ("replace" and "mix").
        refresh_every: draws between refreshes of ``refresh_size`` bank images; None never refreshes.
        refresh_size: images regenerated per refresh.
        background: refresh the bank in a background thread.
        device: "cpu", "cuda" or "auto" (the GPU in the main process, the CPU in DataLoader workers).
        bank_seed: seeds the bank's generation.
        labels_getter: "default" (see :func:`find_label`), or a callable taking the sample.

    Images: PIL (L or RGB), uint8 tensors, or float tensors in [0, 1]; (C, H, W), or a batch
    (B, C, H, W) with a (B,) int label tensor. C is 1 or 3. Output types, shapes and dtypes
    are the input's. A batch goes through the generator in one pass with fresh samples (no bank),
    on the device the bank resolves to ("auto": the GPU when there is one).
    """

    def __init__(self, checkpoint: str | os.PathLike, mode: str = "replace", p: float = 0.5,
                 mix_ratio: tuple[float, float] = (0.3, 0.7), bank_size: int = 128, refresh_every: int | None = 4096,
                 refresh_size: int = 64, background: bool = False, device: str = "auto",
                 bank_seed: int | None = None, labels_getter: str | Callable[[Any], Any] = "default"):
        super().__init__()
        checkpoint = os.fspath(checkpoint)
        if not Path(checkpoint).exists():
            raise FileNotFoundError(f"checkpoint {checkpoint!r} does not exist")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p should lie in [0, 1], got {p!r}")
        if device not in DEVICES:
            raise ValueError(f"device should be one of {DEVICES}, got {device!r}")
        if labels_getter != "default" and not callable(labels_getter):
            raise ValueError(f"labels_getter should be 'default' or a callable, got {labels_getter!r}")
        self.checkpoint = checkpoint
        self.mode = check_mode(mode)
        self.p = p
        self.mix_ratio = check_mix_ratio(mix_ratio)
        self.labels_getter = labels_getter
        # Cheap to build: the model loads, and the bank fills, on first use in the process that uses it.
        self.bank = SampleBank(checkpoint, size_per_class=bank_size, refresh_every=refresh_every,
                               refresh_size=refresh_size, background=background, device=device, seed=bank_seed)

    def forward(self, *inputs: Any) -> Any:
        sample = inputs if len(inputs) > 1 else inputs[0]
        batch = _holds_batch(sample)
        if not batch and torch.rand(1).item() >= self.p:
            return sample  # decided before any parsing: the skipped half of the samples costs almost nothing
        if (not batch and isinstance(sample, tuple) and len(sample) == 2 and self.labels_getter == "default"
                and _is_image(sample[0]) and isinstance(sample[1], (int, np.integer, torch.Tensor))):
            return self._transform_single(sample[0], self._labels(sample[1], 1)), sample[1]  # (image, label)
        flat, spec = tree_flatten(sample)
        label = find_label(sample) if self.labels_getter == "default" else self.labels_getter(sample)
        image_positions = _image_positions(flat, label)
        if not image_positions:
            raise TypeError(f"{type(self).__name__} found no image (PIL image or tensor) in its input")
        batched = [i for i in image_positions if _ndim(flat[i]) == 4]
        if batched:
            if len(batched) != len(image_positions):
                raise ValueError("a sample should hold single images or (B, C, H, W) batches, not both")
            outputs = {i: self._transform_batch(flat[i], label) for i in batched}
        else:
            labels = self._labels(label, 1)
            outputs = {i: self._transform_single(flat[i], labels) for i in image_positions}
        flat = [outputs.get(i, item) for i, item in enumerate(flat)]
        return tree_unflatten(flat, spec)

    def _transform_single(self, image: Any, labels: list[int] | None) -> Any:
        if isinstance(image, PIL.Image.Image):
            if image.mode not in ("L", "RGB"):
                raise ValueError(f"image should be a PIL image in mode 'L' or 'RGB', got mode {image.mode!r}")
            _check_tensor(torch.empty(len(image.getbands()), image.height, image.width, dtype=torch.uint8), "image")
            array = np.asarray(image)
            out = self._augment_hwc(array[:, :, None] if array.ndim == 2 else array, labels)
            return PIL.Image.fromarray(out[:, :, 0] if image.mode == "L" else out)
        tensor = _check_tensor(image, "image")
        fast = None
        if labels is not None and tensor.device.type == "cpu" and tensor.dtype in (torch.uint8, torch.float32):
            fast = augment_one(self.bank, tensor.numpy(), labels[0], self.mode, self.mix_ratio, None, layout="CHW")
        if fast is not None:
            out = torch.from_numpy(fast)
        else:
            out = augment_images(self.bank, tensor[None], labels, self.mode, self.mix_ratio, None)[0]
        return tv_tensors.wrap(out, like=image) if isinstance(image, tv_tensors.TVTensor) else out

    def _augment_hwc(self, image: np.ndarray, labels: list[int] | None) -> np.ndarray:
        """One uint8/float32 (H, W, C) image: the numpy fast path where it applies, else the torch path."""
        if labels is not None:
            fast = augment_one(self.bank, image, labels[0], self.mode, self.mix_ratio, None)
            if fast is not None:
                return fast
        tensor = torch.from_numpy(image.transpose(2, 0, 1).copy())[None]  # PIL arrays are read-only
        return augment_images(self.bank, tensor, labels, self.mode, self.mix_ratio, None)[0].permute(1, 2, 0).numpy()

    def _transform_batch(self, images: torch.Tensor, label: Any) -> torch.Tensor:
        _check_tensor(images[0], "images")
        labels = self._labels(label, len(images))
        chosen = torch.nonzero(torch.rand(len(images)) < self.p).flatten()
        if len(chosen) == 0:
            return images
        part = None if labels is None else [labels[i] for i in chosen.tolist()]
        out = torch.Tensor.clone(images.as_subclass(torch.Tensor))
        chosen = chosen.to(images.device)
        out[chosen] = augment_images(self.bank, out[chosen], part, self.mode, self.mix_ratio, None, fresh=True)
        return tv_tensors.wrap(out, like=images) if isinstance(images, tv_tensors.TVTensor) else out

    def _labels(self, label: Any, num: int) -> list[int] | None:
        if label is None:
            if self.mode == "variant":
                return None
            raise ValueError(f"a label is required with mode={self.mode!r}: pass (image, label) or a dict with a "
                             "'label' key")
        if isinstance(label, torch.Tensor):
            if label.is_floating_point() or label.dtype == torch.bool:
                raise TypeError(f"label should hold integer class indices, got a {label.dtype} tensor; "
                                "apply GANAugment before MixUp/CutMix")
            labels = label.flatten().tolist()
        elif isinstance(label, (int, np.integer)) and not isinstance(label, (bool, np.bool_)):
            labels = [int(label)]
        elif isinstance(label, np.ndarray) and label.dtype.kind in "iu":
            labels = label.flatten().tolist()
        else:
            raise TypeError(f"label should be an int, an int tensor or an int numpy array, got "
                            f"{type(label).__name__}")
        if len(labels) == 1 and num > 1:
            labels = labels * num
        if len(labels) != num:
            raise ValueError(f"label should hold one class per image ({num}), got {len(labels)}")
        check_labels(labels, self.bank.num_classes, "label")
        return labels

    def extra_repr(self) -> str:
        return (f"checkpoint={self.checkpoint!r}, mode={self.mode!r}, p={self.p}, mix_ratio={self.mix_ratio}, "
                f"bank_size={self.bank.size_per_class}, device={self.bank.model.device!r}")


class GANCutoutFill(v2.Transform):
    """Erase random rectangles, like ``v2.RandomErasing``, and fill them with generated content.

    The fill comes from :meth:`ganaug.GANAug.complete`: generated from the features of the visible
    part (and from the sample's label when one is found, as :class:`GANAugment` finds it), so it
    is consistent with the rest of the image. Per sample it takes PIL images, tensors and
    ``tv_tensors.Image``; a ``(B, C, H, W)`` batch is completed in one call, on the GPU when there
    is one (``device="auto"``). Randomness comes from torch's global RNG.

    Args:
        checkpoint: a ganaug run directory or exported model; loaded lazily in each process.
        p: probability of applying, per sample (per image of a batch).
        num_holes_range: (low, high) number of rectangles per image.
        hole_height_range, hole_width_range: (low, high) hole side as a fraction of the image's.
        steps: latent optimization steps of the completion (0: one pass, fast).
        feather: blend band outside the holes, in pixels.
        device: "cpu", "cuda" or "auto".
    """

    def __init__(self, checkpoint: str | os.PathLike, p: float = 0.5, num_holes_range: tuple[int, int] = (1, 2),
                 hole_height_range: tuple[float, float] = (0.2, 0.4),
                 hole_width_range: tuple[float, float] = (0.2, 0.4), steps: int = 0, feather: int = 2,
                 device: str = "auto"):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p should lie in [0, 1], got {p!r}")
        for name, value in (("steps", steps), ("feather", feather)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} should be a non-negative int, got {value!r}")
        self.model = LazyGAN(checkpoint, device)
        self.p = p
        self.num_holes_range, self.hole_height_range, self.hole_width_range = check_hole_ranges(
            num_holes_range, hole_height_range, hole_width_range)
        self.steps, self.feather = steps, feather

    def forward(self, *inputs: Any) -> Any:
        sample = inputs if len(inputs) > 1 else inputs[0]
        batch = _holds_batch(sample)
        if not batch and torch.rand(1).item() >= self.p:
            return sample
        flat, spec = tree_flatten(sample)
        label = find_label(sample)
        positions = _image_positions(flat, label)
        if not positions:
            raise TypeError(f"{type(self).__name__} found no image (PIL image or tensor) in its input")
        for i in positions:
            flat[i] = self._fill(flat[i], label, batch)
        return tree_unflatten(flat, spec)

    def _fill(self, image: Any, label: Any, batch: bool) -> Any:
        gan = self.model.gan
        if isinstance(image, PIL.Image.Image):
            if image.mode not in ("L", "RGB"):
                raise ValueError(f"image should be a PIL image in mode 'L' or 'RGB', got mode {image.mode!r}")
            array = np.asarray(image)
            masks = self._masks(1, *array.shape[:2])
            filled = gan.complete(array, masks[0], labels=self._labels(label, 1, gan), **self._args())
            return PIL.Image.fromarray(filled)
        tensor = _check_tensor(image[0] if batch else image, "images" if batch else "image")
        images = image.as_subclass(torch.Tensor) if batch else tensor[None]
        masks = self._masks(len(images), *images.shape[-2:])
        chosen = torch.rand(len(images)) < self.p if batch else torch.ones(1, dtype=torch.bool)
        masks[~chosen] = False
        out = gan.complete(images, masks, labels=self._labels(label, len(images), gan), **self._args())
        out = out if batch else out[0]
        return tv_tensors.wrap(out, like=image) if isinstance(image, tv_tensors.TVTensor) else out

    def _masks(self, num: int, height: int, width: int) -> torch.Tensor:
        rng = np.random.default_rng(int(torch.randint(2**62, (1,))))
        return random_box_masks(num, height, width, self.num_holes_range, self.hole_height_range,
                                self.hole_width_range, rng)

    def _labels(self, label: Any, num: int, gan: Any) -> list[int] | None:
        if label is None:
            return None
        if isinstance(label, (torch.Tensor, np.ndarray)):
            labels = label.flatten().tolist()
        else:
            labels = [int(label) if isinstance(label, np.integer) else label]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in labels) or len(labels) not in (1, num):
            raise TypeError(f"label should be an int or one int per image, got {label!r}")
        check_labels(labels, gan.num_classes, "label")
        return labels * num if len(labels) == 1 else labels

    def _args(self) -> dict:
        return {"steps": self.steps, "feather": self.feather, "label_candidates": 1,
                "seed": int(torch.randint(2**62, (1,)))}

    def extra_repr(self) -> str:
        return (f"checkpoint={self.model!r}, p={self.p}, num_holes_range={self.num_holes_range}, "
                f"hole_height_range={self.hole_height_range}, hole_width_range={self.hole_width_range}, "
                f"steps={self.steps}")


def _holds_batch(sample: Any) -> bool:
    """Whether the images at a sample's top level are (B, C, H, W) batches (batch mode).

    Only what :func:`_image_positions` would take as images counts: a 4-D mask, video or other
    tensor beside a single image does not make a batch.
    """
    items = sample.values() if isinstance(sample, collections.abc.Mapping) else (
        sample if isinstance(sample, (tuple, list)) else (sample,))
    first_plain = None  # one pass, as cheap as it can be: this runs for every sample, applied or not
    for item in items:
        if isinstance(item, (PIL.Image.Image, tv_tensors.Image, tv_tensors.Video)):
            return any(isinstance(i, tv_tensors.Image) and i.ndim == 4 for i in items)
        if (first_plain is None and isinstance(item, torch.Tensor) and not isinstance(item, tv_tensors.TVTensor)
                and item.ndim >= 3):
            first_plain = item
    return first_plain is not None and first_plain.ndim == 4


def _image_positions(flat: list, label: Any) -> list[int]:
    """Which items are images, by torchvision v2's rule.

    ``tv_tensors.Image`` and PIL images; when a sample holds none of those (nor a
    ``tv_tensors.Video``), its first plain tensor of 3 or more dimensions, and no other: a second
    plain tensor (a depth map, a weight map) is left alone, as v2's own transforms leave it.
    """
    typed = [i for i, item in enumerate(flat) if isinstance(item, (PIL.Image.Image, tv_tensors.Image))]
    if typed or any(isinstance(item, tv_tensors.Video) for item in flat):
        return typed
    plain = (i for i, item in enumerate(flat) if _is_image(item) and item is not label)
    first = next(plain, None)
    return [] if first is None else [first]


def _is_image(item: Any) -> bool:
    if isinstance(item, (PIL.Image.Image, tv_tensors.Image)):
        return True
    return isinstance(item, torch.Tensor) and not isinstance(item, tv_tensors.TVTensor) and item.ndim >= 3


def _ndim(item: Any) -> int:
    return item.ndim if isinstance(item, torch.Tensor) else 3


def _check_tensor(image: torch.Tensor, name: str) -> torch.Tensor:
    """Check a (C, H, W) image tensor: uint8 or float in [0, 1], 1 or 3 channels, at least 8 px; a plain tensor."""
    if image.dtype != torch.uint8 and not image.is_floating_point():
        raise TypeError(f"{name} should be a uint8 or float (in [0, 1]) tensor, got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"{name} should be (C, H, W) with C in (1, 3), got shape {tuple(image.shape)}")
    if min(image.shape[-2:]) < MIN_IMAGE_SIZE:
        raise ValueError(f"{name} should be at least {MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE} pixels, "
                         f"got {image.shape[-2]}x{image.shape[-1]}")
    return image.as_subclass(torch.Tensor)
