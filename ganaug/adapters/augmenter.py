"""The one core under both ``GANAugment`` adapters: settings, the sample bank, labels, parameters, application.

An adapter converts its library's inputs to tensors or numpy images, calls :meth:`make_params`
where its library draws randomness, and :meth:`apply` (or the per-sample fast path
:meth:`apply_one`) where it transforms.
"""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch

from ganaug._util.images import check_float_values, check_normalization
from ganaug._util.validate import as_labels, label_tensor
from ganaug.adapters.functional import (
    AugmentParams,
    check_mix_ratio,
    check_mode,
    fit_images,
    load_mix_kernel,
    make_params,
    mix,
    params_from_uniforms,
    replace,
)
from ganaug.sampling.sample_bank import BANK_SIZE, REFRESH_EVERY, REFRESH_SIZE, SampleBank
from ganaug.sampling.variant_bank import VARIANTS_PER_IMAGE, VariantBank

__all__ = ["Augmenter"]

_UINT8, _FLOAT32 = np.dtype(np.uint8), np.dtype(np.float32)  # compared with dtypes, not types: a tenth of the cost


class Augmenter:
    """Replace, mix or vary images with samples of a trained model (see :class:`ganaug.albumentations.GANAugment`).

    Args:
        checkpoint: a run directory or exported model; loaded lazily in each process.
        mode: "replace", "mix" or "variant".
        mix_ratio: ``(low, high)`` range of the synthetic weight in "mix".
        bank_size, refresh_every, refresh_size, background, device, bank_seed: the sample bank's
            settings (:class:`ganaug.SampleBank`'s ``size_per_class``, ..., ``seed``).
        variants_per_image: variants :attr:`variants` makes of each image given to its ``add``
            ("variant"); ``bank_seed`` seeds them.
        normalize: ``(mean, std)`` of the chain's normalization when the images given are
            normalized floats (the batch path after ``v2.Normalize``; "replace" and "mix" only):
            the synthetic images are normalized the same way, once per bank fill, on the bank's copy.
    """

    def __init__(self, checkpoint: str | os.PathLike, mode: str = "replace",
                 mix_ratio: tuple[float, float] = (0.3, 0.7), bank_size: int = BANK_SIZE,
                 refresh_every: int | None = REFRESH_EVERY, refresh_size: int = REFRESH_SIZE, background: bool = False,
                 device: str = "auto", bank_seed: int | None = None,
                 variants_per_image: int = VARIANTS_PER_IMAGE, normalize: Any = None):
        self.mode = check_mode(mode)
        self.mix_ratio = check_mix_ratio(mix_ratio)
        self.normalize = check_normalization("normalize", normalize)
        if self.normalize is not None and self.mode == "variant":
            raise ValueError("normalize is for mode 'replace' or 'mix' (their synthetic images come from the bank); "
                             "'variant' reads its images' content: give it images in [0, 1] or uint8, before "
                             "Normalize")
        if self.mode == "mix":
            load_mix_kernel()  # here, so that forked DataLoader workers inherit OpenCV
        # cheap to build: the model loads, and the bank fills, on first use in the process that uses it
        self.bank = SampleBank(checkpoint, size_per_class=bank_size, refresh_every=refresh_every,
                               refresh_size=refresh_size, background=background, device=device, seed=bank_seed)
        # "variant" from known images: filled by the user (variants.add) before the DataLoader starts
        self.variants = VariantBank(self.bank.model, per_image=variants_per_image, seed=bank_seed)
        self._bank_shapes: tuple[dict[str, tuple[tuple[int, ...], ...]], int] | None = None  # see apply_one

    def labels(self, value: Any, num: int, name: str, how: str, tensor: bool = False,
               ) -> list[int] | torch.Tensor | None:
        """The class labels of ``num`` images: required by "replace" and "mix", optional for "variant".

        ``how`` tells the user how to pass them, in the error for a missing label. ``tensor``: as an
        int64 tensor (the batch path) instead of a list.
        """
        if value is None:
            if self.mode == "variant":
                return None
            raise ValueError(f"{name} is required with mode={self.mode!r}: {how}")
        if tensor:
            return label_tensor(value, self.bank.num_classes, num, name)
        return as_labels(value, self.bank.num_classes, num, name)

    def make_params(self, num: int, rng: random.Random | np.random.Generator | torch.Generator | None,
                    ) -> AugmentParams:
        """The random draws for ``num`` images (see :func:`ganaug.adapters.functional.make_params`)."""
        if self.mode != "variant" and not self.bank.filled:
            self.bank.fill()  # before the draws, so that a bank seeded from torch's RNG comes first in its stream
        return make_params(num, self.mode, self.bank.size_per_class, self.mix_ratio, rng)

    def batch_params(self, uniforms: torch.Tensor) -> AugmentParams:
        """The parameters of a batch's chosen images from their float64 (N, 2) uniforms, by the per-sample path's
        rule: tensors of bank positions and mix weights ("replace", "mix"), or "variant"'s lists and seed."""
        if self.mode == "variant":
            return params_from_uniforms(uniforms.tolist(), self.mode, self.bank.size_per_class, self.mix_ratio)
        if not self.bank.filled:
            self.bank.fill()
        return params_from_uniforms(uniforms, self.mode, self.bank.size_per_class, self.mix_ratio)

    def params_one(self, pick: float, weight: float) -> AugmentParams:
        """The parameters of one image from two uniforms the adapter has drawn (with its ``p`` draw, in one call)."""
        if self.mode != "variant" and not self.bank.filled:
            self.bank.fill()
        return params_from_uniforms(((pick, weight),), self.mode, self.bank.size_per_class, self.mix_ratio)

    def apply(self, images: torch.Tensor, labels: list[int] | torch.Tensor | None, params: AugmentParams,
              ) -> torch.Tensor:
        """Augment a batch.

        Args:
            images: uint8 or float (N, C, H, W), C in {1, 3}, on any device; float normalized by
                :attr:`normalize` when it is set.
            labels: N class labels (a list, or an int64 tensor from the batch path), or None
                ("variant": inferred from the images).
            params: from :meth:`make_params`, or :meth:`batch_params` (tensors of positions and
                weights: the bank is indexed once, on the images' device).

        Returns:
            The input's dtype, shape and device.
        """
        channels, height, width = images.shape[1:]
        if isinstance(labels, torch.Tensor) and not isinstance(params.positions, torch.Tensor):
            labels = labels.tolist()
        if self.mode == "variant":
            return replace(images, self._variants(images, labels, params).to(images.device))
        if isinstance(params.positions, torch.Tensor):  # the batch path: a fitted (normalized) copy of the bank
            synthetic = self.bank.draw_batch(torch.as_tensor(labels, dtype=torch.int64), params.positions,
                                             images.device, (channels, height, width), self.normalize)
        else:
            synthetic = fit_images(self.bank.draw(labels, positions=params.positions).to(images.device), channels,
                                   (height, width))
            if self.normalize is not None:
                synthetic = self.normalize.apply(synthetic)
        return mix(images, synthetic, params.weights) if self.mode == "mix" else replace(images, synthetic)

    def _variants(self, images: torch.Tensor, labels: list[int] | None, params: AugmentParams) -> torch.Tensor:
        """Variants at the images' size and channels: from :attr:`variants` where held, else generated now."""
        held, missing = self.variants.find_batch(images, params.positions)
        if held is not None and not missing:
            return held
        if held is None:
            part, part_labels = images, labels
        else:
            part, part_labels = images[missing], None if labels is None else [labels[i] for i in missing]
        live = fit_images(self.bank.variants(part, part_labels, params.seed).to(images.device), images.shape[1],
                          tuple(images.shape[-2:]))
        if held is None:
            return live
        held[missing] = live.cpu()
        return held

    def apply_one(self, image: np.ndarray, label: Any, params: AugmentParams, layout: str = "HWC",
                  ) -> np.ndarray | None:
        """The per-sample fast path of :meth:`apply`, on an image not yet checked, or None where it does not apply.

        It covers "replace" and "mix" from the bank when the image already has the bank's size
        and channels (a pipeline on the data the model was trained on) and ``label`` is a valid
        int, and "variant" for images whose variants :attr:`variants` holds. For a single small
        image every microsecond of checks and small torch calls counts, so this path checks only
        what it needs: an image of the bank's own shape and dtype is valid by construction.
        Where it returns None, the adapter takes its general path, which checks everything and
        reports bad input.

        Args:
            image: a numpy image; it applies to uint8, or float32 in [0, 1], laid out (H, W),
                (H, W, C) ("HWC") or (C, H, W) ("CHW").
            label: its class as given (None: "variant" without a label).
            params: from :meth:`make_params` for one image.
            layout: "HWC" (albumentations, PIL) or "CHW" (a tensor's memory, seen through ``.numpy()``).

        Returns:
            The image's shape and dtype.
        """
        dtype = image.dtype
        if image.ndim not in (2, 3) or (dtype != _UINT8 and dtype != _FLOAT32) or self.normalize is not None:
            return None
        if self.mode == "variant":
            if dtype == _FLOAT32:
                check_float_values("image", image)
            # a miss is counted where the general path (apply) looks the image up again
            found = self.variants.find(image, params.positions[0], layout, count_miss=False)
            return None if found is None else replace(image, found)
        if type(label) is not int:
            if not isinstance(label, np.integer):
                return None
            label = int(label)
        shapes, num_classes = self._bank_shapes or self._read_bank_shapes()
        if params.positions is None or image.shape not in shapes[layout] or not 0 <= label < num_classes:
            return None
        if dtype == _FLOAT32:
            check_float_values("image", image)
        synthetic = self.bank.draw_one(label, position=params.positions[0])
        if layout == "HWC":
            synthetic = synthetic.transpose(1, 2, 0).reshape(image.shape)
        return mix(image, synthetic, params.weights[0]) if self.mode == "mix" else replace(image, synthetic)

    def _read_bank_shapes(self) -> tuple[dict[str, tuple[tuple[int, ...], ...]], int]:
        """The image shapes the bank's images fit as they are, per layout, and the number of classes."""
        channels, height, width = self.bank.image_shape
        hwc = ((height, width, channels), (height, width)) if channels == 1 else ((height, width, channels),)
        self._bank_shapes = {"HWC": hwc, "CHW": ((channels, height, width),)}, self.bank.num_classes
        return self._bank_shapes
