"""The one core under both ``GANAugment`` adapters: settings, the sample bank, labels, parameters, application.

An adapter converts its library's inputs to tensors or numpy images, calls :meth:`make_params`
where its library draws randomness, and :meth:`apply` (or the per-sample fast path
:meth:`apply_one`) where it transforms.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from ganaug._util.validate import as_labels
from ganaug.adapters.functional import AugmentParams, check_mix_ratio, check_mode, fit_images, make_params, mix, replace
from ganaug.sampling.sample_bank import SampleBank

__all__ = ["Augmenter"]


class Augmenter:
    """Replace, mix or vary images with samples of a trained model (see :class:`ganaug.albumentations.GANAugment`).

    Args:
        checkpoint: a run directory or exported model; loaded lazily in each process.
        mode: "replace", "mix" or "variant".
        mix_ratio: ``(low, high)`` range of the synthetic weight in "mix".
        bank_size, refresh_every, refresh_size, background, device, bank_seed: the sample bank's
            settings (:class:`ganaug.SampleBank`'s ``size_per_class``, ..., ``seed``).
    """

    def __init__(self, checkpoint: str | os.PathLike, mode: str = "replace",
                 mix_ratio: tuple[float, float] = (0.3, 0.7), bank_size: int = 128,
                 refresh_every: int | None = 4096, refresh_size: int = 64, background: bool = False,
                 device: str = "auto", bank_seed: int | None = None):
        self.mode = check_mode(mode)
        self.mix_ratio = check_mix_ratio(mix_ratio)
        # cheap to build: the model loads, and the bank fills, on first use in the process that uses it
        self.bank = SampleBank(checkpoint, size_per_class=bank_size, refresh_every=refresh_every,
                               refresh_size=refresh_size, background=background, device=device, seed=bank_seed)

    def labels(self, value: Any, num: int, name: str, how: str) -> list[int] | None:
        """The class labels of ``num`` images: required by "replace" and "mix", optional for "variant".

        ``how`` tells the user how to pass them, in the error for a missing label.
        """
        if value is None:
            if self.mode == "variant":
                return None
            raise ValueError(f"{name} is required with mode={self.mode!r}: {how}")
        return as_labels(value, self.bank.num_classes, num, name)

    def make_params(self, num: int, rng: np.random.Generator | torch.Generator | None,
                    fresh: bool = False) -> AugmentParams:
        """The random draws for ``num`` images (see :func:`ganaug.adapters.functional.make_params`)."""
        if self.mode != "variant" and not fresh:
            self.bank.fill()  # before the draws, so that a bank seeded from torch's RNG comes first in its stream
        return make_params(num, self.mode, self.bank.size_per_class, self.mix_ratio, rng, fresh)

    def apply(self, images: torch.Tensor, labels: list[int] | None, params: AugmentParams) -> torch.Tensor:
        """Augment a batch.

        Args:
            images: uint8 or float (N, C, H, W), C in {1, 3}, on any device.
            labels: N class labels, or None ("variant": inferred from the images).
            params: from :meth:`make_params`; without ``positions`` the samples are generated for
                this call from ``params.seed`` (batch mode) instead of drawn from the bank.

        Returns:
            The input's dtype, shape and device.
        """
        num, channels, height, width = images.shape
        if self.mode == "variant":
            synthetic = self.bank.variants(images, labels, params.seed)
        elif params.positions is None:
            synthetic = self.bank.gan.sample(num, labels, seed=params.seed, truncation=self.bank.truncation,
                                             batch_size=max(num, 1))
        else:
            synthetic = self.bank.draw(labels, positions=params.positions)
        synthetic = fit_images(synthetic.to(images.device), channels, (height, width))
        return mix(images, synthetic, params.weights) if self.mode == "mix" else replace(images, synthetic)

    def apply_one(self, image: np.ndarray, label: int, params: AugmentParams, layout: str = "HWC",
                  ) -> np.ndarray | None:
        """The per-sample fast path of :meth:`apply`, in numpy, or None where it does not apply.

        It covers "replace" and "mix" from the bank when the image already has the bank's size
        and channels (a pipeline on the data the model was trained on): for a single small image
        a dozen small torch calls cost several times more than the work itself.

        Args:
            image: uint8 or float32 in [0, 1], (H, W, C) or (C, H, W) as ``layout`` says.
            label: its class.
            params: from :meth:`make_params` for one image.
            layout: "HWC" (albumentations) or "CHW" (a tensor's memory, seen through ``.numpy()``).
        """
        if self.mode == "variant" or params.positions is None:
            return None
        channels, height, width = self.bank.image_shape
        if image.shape != ((height, width, channels) if layout == "HWC" else (channels, height, width)):
            return None
        synthetic = self.bank.draw_one(label, position=params.positions[0])
        if layout == "HWC":
            synthetic = synthetic.transpose(1, 2, 0)
        return mix(image, synthetic, params.weights[0]) if self.mode == "mix" else replace(image, synthetic)
