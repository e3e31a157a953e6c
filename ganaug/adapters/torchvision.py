"""torchvision.transforms.v2 adapter: ``GANAugment`` and ``GANCutoutFill`` as native v2 transforms.

    from torchvision.transforms import v2
    from ganaug.transforms import GANAugment

    transform = v2.Compose([v2.RandomHorizontalFlip(), GANAugment("runs/fmnist", mode="mix", p=0.3)])
    image, label = transform(image, label)           # also dict samples, as v2.MixUp reads them

Per sample it takes PIL images, plain tensors and ``tv_tensors.Image``, and finds the label the
way ``v2.MixUp`` does (the second item of a tuple, or a "label"/"labels" key of a dict; plain
ints are accepted too). After the DataLoader, give it a ``(B, C, H, W)`` batch with a ``(B,)``
label tensor: the whole batch then goes through the generator in one pass, on the batch's
device: "replace" and "mix" index the sample bank once for the whole batch (generating nothing),
"variant" runs the generator once. Randomness comes from torch's global RNG, which DataLoader
seeds per worker; ``seed=`` gives the batch path a stream of its own per distributed rank.

The transforms follow v2's structure: ``forward`` is overridden only to decide ``p`` and read the
label as ``v2.MixUp`` does, then v2's own machinery picks the images (``_needs_transform_list``),
``make_params`` draws once per sample and ``transform`` applies the shared core
(:class:`ganaug.adapters.augmenter.Augmenter`) to each image.
"""

from __future__ import annotations

import collections.abc
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import PIL.Image
import torch
from torch.utils._pytree import tree_flatten, tree_unflatten
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2._utils import _find_labels_default_heuristic, _parse_labels_getter, is_pure_tensor

from ganaug._util.images import (
    check_float_values,
    check_image_tensor,
    check_min_size,
    check_normalized_values,
    image_batch,
    pil_array,
)
from ganaug._util.model_files import model_path
from ganaug._util.rng import SEED_SPACE, rank_generator
from ganaug._util.validate import as_labels, check_int, check_probability, check_seed
from ganaug.adapters.augmenter import Augmenter
from ganaug.adapters.functional import check_hole_ranges, random_box_masks
from ganaug.sampling.lazy import LazyGAN
from ganaug.sampling.sample_bank import BANK_SIZE, REFRESH_EVERY, REFRESH_SIZE
from ganaug.sampling.variant_bank import VARIANTS_PER_IMAGE

__all__ = ["GANAugment", "GANCutoutFill", "find_label"]

LABEL_HOW = "pass (image, label) or a dict with a 'label' key"


def find_label(sample: Any) -> Any:
    """The label of a sample, found as ``v2.MixUp``'s default ``labels_getter`` finds it, or None.

    The second item of a tuple or list (any value: an int is accepted too); in a dict (or a dict
    that is that second item), torchvision's rule: the key "labels", else the first key
    containing "label" (case-insensitive). None when there is none (a lone image).
    """
    if isinstance(sample, (tuple, list)):
        if len(sample) < 2:
            return None
        sample = sample[1]
        if not isinstance(sample, collections.abc.Mapping):
            return sample
    if isinstance(sample, collections.abc.Mapping):
        try:
            return _find_labels_default_heuristic(sample)
        except (ValueError, AttributeError):  # no label-like key (AttributeError: keys that are not strings)
            return None
    return None


def _is_plain_image(item: Any) -> bool:
    """A plain tensor that can be an image: v2 takes the first of these when a sample holds no typed image."""
    return is_pure_tensor(item) and item.ndim >= 3


class _SampleTransform(v2.Transform):
    """What both transforms share: ``p`` per sample (per image of a batch), and the label read as MixUp reads it."""

    _transformed_types = (PIL.Image.Image, tv_tensors.Image, _is_plain_image)

    def __init__(self, checkpoint: str | os.PathLike, p: float, labels_getter: str | Callable[[Any], Any] | None):
        super().__init__()
        self.checkpoint = model_path(checkpoint, "checkpoint")
        self.p = check_probability("p", p)
        self._labels_getter = find_label if labels_getter == "default" else _parse_labels_getter(labels_getter)

    def forward(self, *inputs: Any) -> Any:
        sample = inputs if len(inputs) > 1 else inputs[0]
        if not _holds_batch(sample) and torch.rand(1).item() >= self.p:
            return sample  # decided before any parsing: the skipped samples cost almost nothing
        if (self._labels_getter is find_label and isinstance(sample, tuple) and len(sample) == 2
                and _is_single_image(sample[0]) and not _is_plain_image(sample[1])):
            # (image, label), the common sample: what the general path below does, without flattening it
            params = self.make_params([sample[0]])
            params["label"] = find_label(sample)
            return self.transform(sample[0], params), sample[1]
        flat, spec = tree_flatten(sample)
        needs_transform = self._needs_transform_list(flat)
        images = [item for item, needed in zip(flat, needs_transform, strict=True) if needed]
        if not images:
            raise TypeError(f"{type(self).__name__} found no image (PIL image or tensor) in its input")
        params = self.make_params(images)
        params["label"] = self._labels_getter(sample)
        flat = [self.transform(item, params) if needed else item
                for item, needed in zip(flat, needs_transform, strict=True)]
        return tree_unflatten(flat, spec)

    @staticmethod
    def _batch_size(images: list[Any]) -> int | None:
        """The batch size when the images are (B, C, H, W) batches, None when they are single images."""
        batched = [isinstance(item, torch.Tensor) and item.ndim == 4 for item in images]
        if any(batched) and not all(batched):
            raise ValueError("a sample should hold single images or (B, C, H, W) batches, not both")
        return len(images[0]) if batched[0] else None


class GANAugment(_SampleTransform):
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
        variants_per_image: variants made of each image given to ``variant_bank.add`` ("variant";
            see :attr:`variant_bank`).
        labels_getter: "default" (see :func:`find_label`), a callable taking the sample, or None
            (no labels: "variant" only).
        seed: seeds the batch path's draws (which images, bank positions, mix weights) from a
            stream of its own, different on every ``torch.distributed`` rank; None: torch's global
            RNG, as ``v2.MixUp`` draws. Per-sample calls always use the global RNG.
        normalize: ``(mean, std)`` of the chain's ``v2.Normalize`` (per channel, or one value),
            when the images given are already normalized, as ``v2.MixUp`` takes them after the
            DataLoader ("replace" and "mix"). The bank's images are normalized the same way once,
            so a batch costs one gather and one select or blend. None: images are uint8 or in [0, 1].

    Images: PIL (L or RGB), uint8 tensors, or float tensors in [0, 1]; (C, H, W), or a batch
    (B, C, H, W) with a (B,) int label tensor (the batch path, after the DataLoader, as
    ``v2.MixUp`` is used). C is 1 or 3. Output types, shapes and dtypes are the input's. In a
    batch each image is picked with probability ``p`` and gets the per-sample path's parameters
    by the same rule; "replace" and "mix" then draw all their synthetic images from the sample
    bank in one indexing operation on the batch's device (a copy of the bank is kept there; no
    generator runs), and "variant" generates its images in one pass on the device the bank
    resolves to ("auto": the GPU when there is one). All images of one sample get the same draws,
    as in v2.
    """

    def __init__(self, checkpoint: str | os.PathLike, mode: str = "replace", p: float = 0.5,
                 mix_ratio: tuple[float, float] = (0.3, 0.7), bank_size: int = BANK_SIZE,
                 refresh_every: int | None = REFRESH_EVERY,
                 refresh_size: int = REFRESH_SIZE, background: bool = False, device: str = "auto",
                 bank_seed: int | None = None, labels_getter: str | Callable[[Any], Any] | None = "default",
                 variants_per_image: int = VARIANTS_PER_IMAGE, seed: int | None = None, normalize: Any = None):
        super().__init__(checkpoint, p, labels_getter)
        self.core = Augmenter(self.checkpoint, mode, mix_ratio, bank_size, refresh_every, refresh_size, background,
                              device, bank_seed, variants_per_image, normalize)
        self.normalize = self.core.normalize
        self.mode, self.mix_ratio = self.core.mode, self.core.mix_ratio
        self.seed = check_seed("seed", seed, allow_none=True)
        self._batch_rng: torch.Generator | None = None  # made on first use: the rank is known by then

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_batch_rng": None}  # a copy (a pickled one, a worker's) starts its stream afresh

    @property
    def bank(self) -> Any:
        """The sample bank (:class:`ganaug.SampleBank`); the model loads lazily in the process that uses it."""
        return self.core.bank

    def forward(self, *inputs: Any) -> Any:
        sample = inputs if len(inputs) > 1 else inputs[0]
        if type(sample) is tuple and len(sample) == 2 and self._labels_getter is find_label:
            image, label = sample
            if (type(image) is torch.Tensor and image.ndim == 3
                    and not (type(label) is torch.Tensor and label.ndim >= 3)):
                # a plain (C, H, W) tensor and its label, the common sample, as the general path takes it, with
                # one draw for p and the parameters: each torch call costs microseconds that a pipeline feels
                coin, pick, weight = torch.rand(3, dtype=torch.float64).tolist()
                if coin >= self.p:
                    return sample
                drawn = self.core.params_one(pick, weight)
                label_value = label if type(label) is int else find_label(sample)
                fast = self._tensor_fast(image, label_value, drawn)  # straight away: no params dict, no dispatch
                if fast is not None:
                    return fast, label
                return self._transform_checked(image, label_value, drawn), label
        return super().forward(*inputs)

    @property
    def variant_bank(self) -> Any:
        """Variants of known images for "variant" (:class:`ganaug.VariantBank`): ``variant_bank.add(images)``
        before the DataLoader starts makes them in batches, and the transform then copies one instead of
        generating it."""
        return self.core.variants

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        batch_size = self._batch_size(flat_inputs)
        if batch_size is None:
            return {"drawn": self.core.make_params(1, None)}
        self._check_values("images", check_image_tensor("images", flat_inputs[0], batched=True))
        if self.seed is not None and self._batch_rng is None:
            self._batch_rng = rank_generator(self.seed)
        # per image, as the per-sample path draws one sample: the p coin, then the parameters' two uniforms
        uniforms = torch.rand(batch_size, 3, dtype=torch.float64, generator=self._batch_rng)
        picked = uniforms[:, 0] < self.p
        return {"batch_size": batch_size, "chosen": torch.nonzero(picked).flatten(),
                "drawn": self.core.batch_params(uniforms[picked, 1:])}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if "chosen" in params:
            return self._transform_batch(inpt, params)
        drawn, label = params["drawn"], params["label"]
        fast = self._transform_fast(inpt, label, drawn)
        return fast if fast is not None else self._transform_checked(inpt, label, drawn)

    def _transform_checked(self, inpt: Any, label: Any, drawn: Any) -> Any:
        """The general path for one image, where the fast path does not apply: checks everything, any size."""
        labels = self.core.labels(label, 1, "label", LABEL_HOW)
        if isinstance(inpt, PIL.Image.Image):
            if self.normalize is not None:
                raise TypeError("normalize= is set, so images should be normalized float tensors, got a PIL image")
            batch = image_batch(inpt, "image", min_size=True)
            return batch.restore(self.core.apply(batch.images, labels, drawn))
        tensor = self._check_values("image", check_image_tensor("image", inpt, batched=False))
        check_min_size("image", tensor.shape[-2], tensor.shape[-1])
        out = self.core.apply(tensor[None], labels, drawn)[0]
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else out

    def _check_values(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        """Pixel values as this transform takes them: in [0, 1] (or uint8), or normalized by :attr:`normalize`."""
        if self.normalize is None:
            return check_float_values(name, tensor)
        return check_normalized_values(name, tensor, self.normalize)

    def _transform_fast(self, inpt: Any, label: Any, drawn: Any) -> Any:
        """The core's numpy fast path (:meth:`Augmenter.apply_one`) on a PIL image or a CPU tensor, or None."""
        if isinstance(inpt, PIL.Image.Image):
            if inpt.mode not in ("L", "RGB"):
                return None
            fast = self.core.apply_one(np.asarray(inpt), label, drawn)
            return None if fast is None else PIL.Image.fromarray(fast)
        if not isinstance(inpt, torch.Tensor):
            return None
        if type(inpt) is torch.Tensor:
            return self._tensor_fast(inpt, label, drawn)
        fast = self._tensor_fast(inpt.as_subclass(torch.Tensor), label, drawn)
        return None if fast is None else tv_tensors.wrap(fast, like=inpt)

    def _tensor_fast(self, tensor: torch.Tensor, label: Any, drawn: Any) -> torch.Tensor | None:
        """:meth:`_transform_fast` on a plain tensor: a uint8 or float32 CPU tensor, seen as a numpy (C, H, W) image."""
        if not tensor.is_cpu or (tensor.dtype is not torch.uint8
                                 and (tensor.dtype is not torch.float32 or tensor.requires_grad)):
            return None
        fast = self.core.apply_one(tensor.numpy(), label, drawn, layout="CHW")
        return None if fast is None else torch.from_numpy(fast)

    def _transform_batch(self, images: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
        labels = self.core.labels(params["label"], params["batch_size"], "label", LABEL_HOW, tensor=True)
        chosen = params["chosen"]
        if len(chosen) == 0:
            return images
        part = None if labels is None else labels[chosen]
        out = torch.Tensor.clone(images.as_subclass(torch.Tensor))
        chosen = chosen.to(images.device)
        out[chosen] = self.core.apply(out.index_select(0, chosen), part, params["drawn"])
        return tv_tensors.wrap(out, like=images) if isinstance(images, tv_tensors.TVTensor) else out

    def extra_repr(self) -> str:
        return (f"checkpoint={self.checkpoint!r}, mode={self.mode!r}, p={self.p}, mix_ratio={self.mix_ratio}, "
                f"bank_size={self.bank.size_per_class}, device={self.bank.model.device!r}, seed={self.seed}"
                + ("" if self.normalize is None else f", normalize=({self.normalize.mean}, {self.normalize.std})"))


class GANCutoutFill(_SampleTransform):
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
        labels_getter: "default" (see :func:`find_label`), a callable taking the sample, or None.
    """

    def __init__(self, checkpoint: str | os.PathLike, p: float = 0.5, num_holes_range: tuple[int, int] = (1, 2),
                 hole_height_range: tuple[float, float] = (0.2, 0.4),
                 hole_width_range: tuple[float, float] = (0.2, 0.4), steps: int = 0, feather: int = 2,
                 device: str = "auto", labels_getter: str | Callable[[Any], Any] | None = "default"):
        super().__init__(checkpoint, p, labels_getter)
        self.steps, self.feather = check_int("steps", steps, low=0), check_int("feather", feather, low=0)
        self.num_holes_range, self.hole_height_range, self.hole_width_range = check_hole_ranges(
            num_holes_range, hole_height_range, hole_width_range)
        self.model = LazyGAN(self.checkpoint, device)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        batch_size = self._batch_size(flat_inputs)
        first = flat_inputs[0]
        height, width = (first.height, first.width) if isinstance(first, PIL.Image.Image) else first.shape[-2:]
        rng = np.random.default_rng(int(torch.randint(SEED_SPACE, (1,))))
        masks = random_box_masks(batch_size or 1, height, width, self.num_holes_range, self.hole_height_range,
                                 self.hole_width_range, rng)
        if batch_size is not None:
            masks[~(torch.rand(batch_size) < self.p)] = False
        return {"batched": batch_size is not None, "masks": masks, "seed": int(torch.randint(SEED_SPACE, (1,)))}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        gan = self.model.gan
        masks, batched = params["masks"], params["batched"]
        label = params["label"]
        if isinstance(inpt, PIL.Image.Image):
            array = pil_array("image", inpt)
            labels = None if label is None else as_labels(label, gan.num_classes, 1, "label")
            return PIL.Image.fromarray(gan.complete(array, masks[0], labels=labels, **self._args(params)))
        tensor = check_float_values("images" if batched else "image",
                                    check_image_tensor("images" if batched else "image", inpt, batched=batched))
        check_min_size("images" if batched else "image", tensor.shape[-2], tensor.shape[-1])
        images = tensor if batched else tensor[None]
        labels = None if label is None else as_labels(label, gan.num_classes, len(images), "label")
        out = gan.complete(images, masks, labels=labels, **self._args(params))
        out = out if batched else out[0]
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else out

    def _args(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"steps": self.steps, "feather": self.feather, "label_candidates": 1, "seed": params["seed"]}

    def extra_repr(self) -> str:
        return (f"checkpoint={self.checkpoint!r}, p={self.p}, num_holes_range={self.num_holes_range}, "
                f"hole_height_range={self.hole_height_range}, hole_width_range={self.hole_width_range}, "
                f"steps={self.steps}")


def _is_single_image(item: Any) -> bool:
    """A PIL image, or a (C, H, W) ``tv_tensors.Image`` or plain tensor: the image of an (image, label) sample."""
    return isinstance(item, PIL.Image.Image) or (isinstance(item, torch.Tensor) and item.ndim == 3 and (
        isinstance(item, tv_tensors.Image) or is_pure_tensor(item)))


def _holds_batch(sample: Any) -> bool:
    """Whether the images at a sample's top level are (B, C, H, W) batches (batch mode), before ``p`` is drawn.

    Only what v2's rule would take as images counts (see ``_SampleTransform._transformed_types``):
    a 4-D mask, video or other tensor beside a single image does not make a batch.
    """
    items = sample.values() if isinstance(sample, collections.abc.Mapping) else (
        sample if isinstance(sample, (tuple, list)) else (sample,))
    first_plain = None  # one pass, as cheap as it can be: this runs for every sample, applied or not
    for item in items:
        if isinstance(item, (PIL.Image.Image, tv_tensors.Image, tv_tensors.Video)):
            return any(isinstance(i, tv_tensors.Image) and i.ndim == 4 for i in items)
        if first_plain is None and _is_plain_image(item):
            first_plain = item
    return first_plain is not None and first_plain.ndim == 4
