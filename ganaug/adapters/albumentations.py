"""albumentations adapter: ``GANAugment`` and ``GANCutoutFill`` as native albumentations 2.0 transforms.

    import albumentations as A
    from ganaug.albumentations import GANAugment, worker_init_fn

    transform = A.Compose([A.HorizontalFlip(), GANAugment("runs/fmnist", mode="mix", p=0.3)])
    out = transform(image=image, class_label=label)["image"]

The class label comes in as ``class_label`` (``targets_as_params``). Use
:func:`worker_init_fn` in your DataLoader: albumentations 2.0.8 does not re-seed a ``Compose``'s
own RNG in DataLoader workers, so without it every worker draws the same augmentations.

The classes only convert albumentations' HWC numpy images and call the shared core
(:class:`ganaug.adapters.augmenter.Augmenter`); they are registered for ``A.from_dict`` under
their public names, ``ganaug.albumentations.GANAugment`` and ``ganaug.albumentations.GANCutoutFill``.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Iterator
from typing import Any, Literal

import albumentations as A
import numpy as np
import torch
from albumentations.core.composition import BaseCompose
from albumentations.core.transforms_interface import BaseTransformInitSchema
from pydantic import Field, field_validator, model_validator
from torch.utils.data import get_worker_info

from ganaug._util.images import hwc_image, image_batch
from ganaug._util.model_files import model_path
from ganaug._util.rng import SEED_SPACE
from ganaug._util.validate import as_labels
from ganaug.adapters.augmenter import Augmenter
from ganaug.adapters.functional import AugmentParams, check_hole_ranges, check_mix_ratio, random_box_masks
from ganaug.sampling.lazy import LazyGAN
from ganaug.sampling.sample_bank import BANK_SIZE, REFRESH_EVERY, REFRESH_SIZE
from ganaug.sampling.variant_bank import VARIANTS_PER_IMAGE

__all__ = ["GANAugment", "GANCutoutFill", "worker_init_fn"]

PUBLIC_MODULE = "ganaug.albumentations"  # where users import these classes from; their serialized name
LABEL_HOW = "call the pipeline as transform(image=image, class_label=label)"
_CLASS_LABEL = ["class_label"]  # targets_as_params, read twice per call: not a new list each time


def _checkpoint_path(value: Any) -> str:
    """InitSchema conversion of ``checkpoint``: a str or PathLike, stored as a str.

    Whether it holds a model is checked in ``__init__``, so that a missing
    folder raises FileNotFoundError here as in the torchvision adapter: albumentations turns an
    InitSchema error into a ValueError.
    """
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise ValueError(f"checkpoint should be a path, got {type(value).__name__}")  # pydantic reports ValueErrors
    return value


class _ModelTransform(A.ImageOnlyTransform):
    """What both transforms share: a model folder, their settings kept under their own names (albumentations
    serializes a transform by reading its arguments back), their public name, and the ``class_label`` key."""

    def __init__(self, checkpoint: str | os.PathLike, p: float, **settings: Any):
        super().__init__(p=p)
        self.checkpoint = model_path(checkpoint, "checkpoint")  # absolute: A.save output loads from anywhere
        for name, value in settings.items():
            setattr(self, name, value)

    @classmethod
    def get_class_fullname(cls) -> str:
        return f"{PUBLIC_MODULE}.{cls.__name__}"

    @property
    def available_keys(self) -> set[str]:
        return super().available_keys | {"class_label"}  # accepted in every mode, also under Compose(strict=True)


class GANAugment(_ModelTransform):
    """Replace, blend or vary an image with GAN samples of its class.

    Args:
        checkpoint: a ganaug run directory or exported model; loaded lazily in each process.
        mode: "replace" swaps the image for a synthetic one of the same class; "mix" blends
            it with one (the synthetic image's weight uniform in ``mix_ratio``); "variant"
            generates a sample conditioned on this image's own features, so its look is kept.
        mix_ratio: ``(low, high)`` range of the synthetic weight in "mix".
        bank_size: pre-generated samples held per class ("replace" and "mix").
        refresh_every: draws between refreshes of ``refresh_size`` bank images; None never refreshes.
        refresh_size: images regenerated per refresh.
        background: refresh the bank in a background thread.
        device: "cpu", "cuda" or "auto" (GPU in the main process, CPU in DataLoader workers).
        bank_seed: seeds the bank's images; None: torch's global RNG. Which bank image an
            image gets, and the mix weights, come from the Compose RNG.
        variants_per_image: variants made of each image given to ``variant_bank.add``
            ("variant"; see :attr:`variant_bank`).
        p: probability of applying the transform.

    Targets: image (uint8, or float32 in [0, 1]; (H, W), (H, W, 1) or (H, W, 3)); the output has
    the input's shape and dtype. Data key ``class_label``: the image's class, required by
    "replace" and "mix", optional for "variant" (inferred from the image when absent).
    """

    class InitSchema(BaseTransformInitSchema):
        checkpoint: str
        mode: Literal["replace", "mix", "variant"]
        mix_ratio: tuple[float, float]
        bank_size: int = Field(ge=1)
        refresh_every: int | None = Field(ge=1)
        refresh_size: int = Field(ge=1)
        background: bool
        device: Literal["cpu", "cuda", "auto"]
        bank_seed: int | None = Field(ge=0)
        variants_per_image: int = Field(ge=1)

        _checkpoint_path = field_validator("checkpoint", mode="before")(_checkpoint_path)

        @field_validator("mix_ratio", mode="before")
        @classmethod
        def _mix_ratio_range(cls, value: Any) -> tuple[float, float]:
            return check_mix_ratio(value)

    def __init__(self, checkpoint: str | os.PathLike, mode: Literal["replace", "mix", "variant"] = "replace",
                 mix_ratio: tuple[float, float] = (0.3, 0.7), bank_size: int = BANK_SIZE,
                 refresh_every: int | None = REFRESH_EVERY,
                 refresh_size: int = REFRESH_SIZE, background: bool = False,
                 device: Literal["cpu", "cuda", "auto"] = "auto", bank_seed: int | None = None,
                 variants_per_image: int = VARIANTS_PER_IMAGE, p: float = 0.5):
        super().__init__(checkpoint, p, mode=mode, mix_ratio=mix_ratio, bank_size=bank_size,
                         refresh_every=refresh_every, refresh_size=refresh_size, background=background, device=device,
                         bank_seed=bank_seed, variants_per_image=variants_per_image)
        self.core = Augmenter(self.checkpoint, mode, mix_ratio, bank_size, refresh_every, refresh_size, background,
                              device, bank_seed, variants_per_image)

    @property
    def bank(self) -> Any:
        """The sample bank (:class:`ganaug.SampleBank`); the model loads lazily in the process that uses it."""
        return self.core.bank

    @property
    def variant_bank(self) -> Any:
        """Variants of known images for "variant" (:class:`ganaug.VariantBank`): ``variant_bank.add(images)``
        before the DataLoader starts makes them in batches, and the transform then copies one instead of
        generating it. Not serialized by ``A.to_dict``: it is a cache, filled again where it is used."""
        return self.core.variants

    @property
    def targets_as_params(self) -> list[str]:
        return [] if self.mode == "variant" else _CLASS_LABEL

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        # Every random draw is made here, as albumentations expects, so that ReplayCompose replays
        # it and additional image targets get the same augmentation.
        images = data.get("images")
        num = len(images) if images is not None and "image" not in data else 1
        drawn = self.core.make_params(num, self.py_random)
        return {"class_label": data.get("class_label"), "positions": drawn.positions, "weights": drawn.weights,
                "seed": drawn.seed}

    def apply(self, img: np.ndarray, class_label: Any = None, positions: list[int] | None = None,
              weights: list[float] | None = None, seed: int | None = None, **params: Any) -> np.ndarray:
        drawn = AugmentParams(positions, weights, seed)
        if isinstance(img, np.ndarray):  # the fast path checks what it takes, and leaves the rest to the checks below
            fast = self.core.apply_one(img, class_label, drawn)
            if fast is not None:
                return fast
        image = hwc_image("image", img, min_size=True)
        labels = self.core.labels(class_label, 1, "class_label", LABEL_HOW)
        batch = image_batch(image, "image")
        return batch.restore(self.core.apply(batch.images, labels, drawn)).reshape(img.shape)

    def apply_to_images(self, images: np.ndarray, class_label: Any = None, positions: list[int] | None = None,
                        weights: list[float] | None = None, seed: int | None = None, **params: Any) -> np.ndarray:
        if not isinstance(images, np.ndarray) or images.ndim not in (3, 4):
            raise ValueError(f"images should be (N, H, W) or (N, H, W, C), got shape {getattr(images, 'shape', None)}")
        if len(images) == 0:
            return images
        batch = image_batch(images[..., None] if images.ndim == 3 else images, "images", min_size=True)
        labels = self.core.labels(class_label, len(images), "class_label", LABEL_HOW)
        if positions is not None and len(positions) != len(images):  # params drawn for another count
            drawn = self.core.make_params(len(images), self.py_random)
        else:
            drawn = AugmentParams(positions, weights, seed)
        return batch.restore(self.core.apply(batch.images, labels, drawn)).reshape(images.shape)


class GANCutoutFill(_ModelTransform):
    """Cut random rectangles out of the image, like CoarseDropout, and fill them with generated content.

    The fill comes from :meth:`ganaug.GANAug.complete`: generated from the features of the visible
    part, so it is consistent with the rest of the image, and blended over ``feather`` pixels.

    Args:
        checkpoint: a ganaug run directory or exported model; loaded lazily in each process.
        num_holes_range: (low, high) number of rectangles per image.
        hole_height_range, hole_width_range: (low, high) hole side as a fraction of the image's.
        steps: latent optimization steps of the completion (0, the default, is fast: one
            feature-network and one generator pass per image).
        feather: blend band outside the holes, in pixels.
        device: "cpu", "cuda" or "auto" (GPU in the main process, CPU in DataLoader workers).
        p: probability of applying the transform.

    Targets: image (as :class:`GANAugment`). Data key ``class_label`` (optional): the class to
    generate; without it the class is inferred from the visible part.
    """

    class InitSchema(BaseTransformInitSchema):
        checkpoint: str
        num_holes_range: tuple[int, int]
        hole_height_range: tuple[float, float]
        hole_width_range: tuple[float, float]
        steps: int = Field(ge=0)
        feather: int = Field(ge=0)
        device: Literal["cpu", "cuda", "auto"]

        _checkpoint_path = field_validator("checkpoint", mode="before")(_checkpoint_path)

        @model_validator(mode="after")
        def _hole_ranges(self) -> GANCutoutFill.InitSchema:
            check_hole_ranges(self.num_holes_range, self.hole_height_range, self.hole_width_range)
            return self

    def __init__(self, checkpoint: str | os.PathLike, num_holes_range: tuple[int, int] = (1, 2),
                 hole_height_range: tuple[float, float] = (0.2, 0.4),
                 hole_width_range: tuple[float, float] = (0.2, 0.4), steps: int = 0, feather: int = 2,
                 device: Literal["cpu", "cuda", "auto"] = "auto", p: float = 0.5):
        super().__init__(checkpoint, p, num_holes_range=num_holes_range, hole_height_range=hole_height_range,
                         hole_width_range=hole_width_range, steps=steps, feather=feather, device=device)
        self.model = LazyGAN(self.checkpoint, device)

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        image = data["image"] if "image" in data else data["images"][0]
        mask = random_box_masks(1, image.shape[0], image.shape[1], self.num_holes_range, self.hole_height_range,
                                self.hole_width_range, self.random_generator)[0]
        return {"hole_mask": mask, "fill_seed": int(self.random_generator.integers(SEED_SPACE)),
                "class_label": data.get("class_label")}

    def apply(self, img: np.ndarray, hole_mask: torch.Tensor, fill_seed: int, class_label: Any = None,
              **params: Any) -> np.ndarray:
        hwc_image("image", img, min_size=True)
        gan = self.model.gan
        labels = None if class_label is None else as_labels(class_label, gan.num_classes, 1, "class_label")
        return gan.complete(img, hole_mask, labels=labels, steps=self.steps, seed=fill_seed, feather=self.feather,
                            label_candidates=1)


_MAX_CHILDREN = 256  # longer lists and dicts are data (file lists, samples), not pipelines: not searched


def _seedables(obj: Any, depth: int = 4) -> Iterator[BaseCompose | A.BasicTransform]:
    """albumentations pipelines held by a dataset (or a wrapper of one), a few levels deep.

    A Compose, or a transform used without one; found in attributes, short lists, tuples and
    dicts, and in the closures and ``functools.partial`` arguments of callables.
    """
    if isinstance(obj, (BaseCompose, A.BasicTransform)):
        yield obj
        return
    if depth == 0 or isinstance(obj, (str, bytes, int, float, np.ndarray, torch.Tensor)):
        return
    if isinstance(obj, (list, tuple)):
        children = obj if len(obj) <= _MAX_CHILDREN else ()
    elif isinstance(obj, dict):
        children = obj.values() if len(obj) <= _MAX_CHILDREN else ()
    elif isinstance(obj, functools.partial):
        children = [obj.func, *obj.args, *obj.keywords.values()]
    elif callable(obj) and getattr(obj, "__closure__", None):  # a lambda or closure wrapping a pipeline
        children = [cell.cell_contents for cell in obj.__closure__ if cell.cell_contents is not obj]
    elif hasattr(obj, "__dict__"):
        children = vars(obj).values()
    else:
        return
    for child in children:
        yield from _seedables(child, depth - 1)


def worker_init_fn(worker_id: int) -> None:
    """Seed every albumentations ``Compose`` (or transform used alone) of the worker's dataset from the worker's seed.

    It finds them in the dataset's attributes, short lists and dicts, and in the closures and
    ``functools.partial`` arguments of callables, a few levels deep; it warns when it finds none.

    Pass it as ``DataLoader(..., worker_init_fn=worker_init_fn)``. Each worker (and each epoch)
    then draws its own augmentations, and a DataLoader with a seeded ``generator`` repeats them
    exactly. A Compose's own ``seed`` is mixed in, so two differently seeded pipelines differ.
    """
    info = get_worker_info()
    if info is None:
        return
    seen: set[int] = set()
    for pipeline in _seedables(info.dataset):
        if id(pipeline) in seen:
            continue
        seen.add(id(pipeline))
        own = getattr(pipeline, "seed", None)
        entropy = [info.seed] if own is None else [info.seed, own]
        pipeline.set_random_seed(int(np.random.SeedSequence(entropy).generate_state(1)[0]))
    if not seen:
        warnings.warn("worker_init_fn found no albumentations Compose or transform in the DataLoader's dataset "
                      "(searched its attributes, short lists and dicts, closures and partials, a few levels "
                      "deep), so the workers may repeat each other's augmentations; call "
                      "compose.set_random_seed(...) in your own worker_init_fn", stacklevel=2)
