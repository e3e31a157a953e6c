"""albumentations adapter: ``GANAugment`` as a native albumentations 2.0 transform.

    import albumentations as A
    from ganaug.albumentations import GANAugment, worker_init_fn

    transform = A.Compose([A.HorizontalFlip(), GANAugment("runs/fmnist", mode="mix", p=0.3)])
    out = transform(image=image, class_label=label)["image"]

The class label comes in as ``class_label`` (``targets_as_params``). Use
:func:`worker_init_fn` in your DataLoader: albumentations 2.0.8 does not re-seed a ``Compose``'s
own RNG in DataLoader workers, so without it every worker draws the same augmentations.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import albumentations as A
import numpy as np
import torch
from albumentations.core.composition import BaseCompose
from albumentations.core.transforms_interface import BaseTransformInitSchema
from pydantic import Field, field_validator, model_validator
from torch.utils.data import get_worker_info

from ganaug.augment import MIN_IMAGE_SIZE, augment_images, augment_one, check_mix_ratio
from ganaug.completion import check_hole_ranges, random_box_masks
from ganaug.lazy_model import LazyGAN
from ganaug.sample_bank import SampleBank, check_labels

__all__ = ["GANAugment", "GANCutoutFill", "worker_init_fn"]


def _existing_checkpoint(value: Any) -> str:
    """InitSchema check of ``checkpoint``: a path (str or PathLike) that exists, stored as a str."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise TypeError(f"checkpoint should be a path, got {type(value).__name__}")
    if not Path(value).exists():
        raise ValueError(f"checkpoint {value!r} does not exist")
    return value


class GANAugment(A.ImageOnlyTransform):
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

        _checkpoint_exists = field_validator("checkpoint", mode="before")(_existing_checkpoint)

        @field_validator("mix_ratio", mode="before")
        @classmethod
        def _mix_ratio_range(cls, value: Any) -> tuple[float, float]:
            return check_mix_ratio(value)

    def __init__(self, checkpoint: str | os.PathLike, mode: Literal["replace", "mix", "variant"] = "replace",
                 mix_ratio: tuple[float, float] = (0.3, 0.7), bank_size: int = 128, refresh_every: int | None = 4096,
                 refresh_size: int = 64, background: bool = False,
                 device: Literal["cpu", "cuda", "auto"] = "auto", bank_seed: int | None = None, p: float = 0.5):
        super().__init__(p=p)
        self.checkpoint = checkpoint
        self.mode = mode
        self.mix_ratio = mix_ratio
        self.bank_size = bank_size
        self.refresh_every = refresh_every
        self.refresh_size = refresh_size
        self.background = background
        self.device = device
        self.bank_seed = bank_seed
        self._bank: SampleBank | None = None

    @property
    def bank(self) -> SampleBank:
        """The sample bank (made on first use; the model loads lazily in the process that uses it)."""
        if self._bank is None:
            self._bank = SampleBank(self.checkpoint, size_per_class=self.bank_size, refresh_every=self.refresh_every,
                                    refresh_size=self.refresh_size, background=self.background, device=self.device,
                                    seed=self.bank_seed)
        return self._bank

    @property
    def targets_as_params(self) -> list[str]:
        return [] if self.mode == "variant" else ["class_label"]

    @property
    def available_keys(self) -> set[str]:
        return super().available_keys | {"class_label"}  # accepted in every mode, also under Compose(strict=True)

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        # Every random draw is made here, as albumentations expects, so that ReplayCompose replays
        # it and additional image targets get the same augmentation: bank positions and mix
        # weights (one per image of an ``images`` target), or the variant seed.
        rng = self.random_generator
        images = data.get("images")
        num = len(images) if images is not None and "image" not in data else 1
        drawn: dict[str, Any] = {"class_label": data.get("class_label")}
        if self.mode == "variant":
            drawn["seed"] = int(rng.integers(2**62))
        elif num == 1:  # scalar draws: a per-sample transform pays for every microsecond
            drawn["positions"] = [int(rng.integers(self.bank_size))]
            if self.mode == "mix":
                drawn["weights"] = [float(rng.uniform(self.mix_ratio[0], self.mix_ratio[1]))]
        else:
            drawn["positions"] = rng.integers(0, self.bank_size, num).tolist()
            if self.mode == "mix":
                drawn["weights"] = rng.uniform(self.mix_ratio[0], self.mix_ratio[1], num).tolist()
        return drawn

    def apply(self, img: np.ndarray, class_label: Any = None, positions: list[int] | None = None,
              weights: list[float] | None = None, seed: int | None = None, **params: Any) -> np.ndarray:
        images = _to_batch(img, "image")
        labels = self._labels(class_label, 1)
        if labels is not None:
            fast = augment_one(self.bank, images[0], labels[0], self.mode, tuple(self.mix_ratio),
                               self.random_generator, position=positions[0] if positions else None,
                               weight=weights[0] if weights else None)
            if fast is not None:
                return _from_batch(fast[None], img)[0]
        return _from_batch(self._augment(images, labels, positions, weights, seed), img)[0]

    def apply_to_images(self, images: np.ndarray, class_label: Any = None, positions: list[int] | None = None,
                        weights: list[float] | None = None, seed: int | None = None, **params: Any) -> np.ndarray:
        if images.ndim not in (3, 4):
            raise ValueError(f"images should be (N, H, W) or (N, H, W, C), got shape {images.shape}")
        batch = np.concatenate([_to_batch(image, "images") for image in images]) if len(images) else None
        if batch is None:
            return images
        labels = self._labels(class_label, len(images))
        if positions is not None and len(positions) != len(images):  # params drawn for another count
            positions = weights = None
        return _from_batch(self._augment(batch, labels, positions, weights, seed), images[0]).reshape(images.shape)

    def _augment(self, images: np.ndarray, labels: torch.Tensor | None, positions: list[int] | None = None,
                 weights: list[float] | None = None, seed: int | None = None) -> np.ndarray:
        tensor = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
        out = augment_images(self.bank, tensor, labels, self.mode, tuple(self.mix_ratio), self.random_generator,
                             positions=positions, weights=weights, seed=seed)
        return out.permute(0, 2, 3, 1).numpy()

    def _labels(self, class_label: Any, num: int) -> list[int] | None:
        if class_label is None:
            if self.mode == "variant":
                return None
            raise ValueError(f"class_label is required with mode={self.mode!r}: call the pipeline as "
                             "transform(image=image, class_label=label)")
        if isinstance(class_label, (int, np.integer)) and not isinstance(class_label, (bool, np.bool_)):
            labels = [int(class_label)] * num
        else:
            array = np.asarray(class_label)
            if array.dtype == bool or not np.issubdtype(array.dtype, np.integer) or array.size not in (1, num):
                raise TypeError(f"class_label should be an int (or one int per image), got {class_label!r}")
            labels = np.broadcast_to(array.reshape(-1), (num,)).tolist()
        check_labels(labels, self.bank.num_classes, "class_label")
        return labels


class GANCutoutFill(A.ImageOnlyTransform):
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

        _checkpoint_exists = field_validator("checkpoint", mode="before")(_existing_checkpoint)

        @model_validator(mode="after")
        def _hole_ranges(self) -> GANCutoutFill.InitSchema:
            check_hole_ranges(self.num_holes_range, self.hole_height_range, self.hole_width_range)
            return self

    def __init__(self, checkpoint: str | os.PathLike, num_holes_range: tuple[int, int] = (1, 2),
                 hole_height_range: tuple[float, float] = (0.2, 0.4),
                 hole_width_range: tuple[float, float] = (0.2, 0.4), steps: int = 0, feather: int = 2,
                 device: Literal["cpu", "cuda", "auto"] = "auto", p: float = 0.5):
        super().__init__(p=p)
        self.checkpoint = checkpoint
        self.num_holes_range = num_holes_range
        self.hole_height_range = hole_height_range
        self.hole_width_range = hole_width_range
        self.steps = steps
        self.feather = feather
        self.device = device
        self._model: LazyGAN | None = None

    @property
    def model(self) -> LazyGAN:
        if self._model is None:
            self._model = LazyGAN(self.checkpoint, self.device)
        return self._model

    @property
    def available_keys(self) -> set[str]:
        return super().available_keys | {"class_label"}

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        image = data["image"] if "image" in data else data["images"][0]
        mask = random_box_masks(1, image.shape[0], image.shape[1], self.num_holes_range, self.hole_height_range,
                                self.hole_width_range, self.random_generator)[0]
        return {"hole_mask": mask, "fill_seed": int(self.random_generator.integers(2**62)),
                "class_label": data.get("class_label")}

    def apply(self, img: np.ndarray, hole_mask: torch.Tensor, fill_seed: int, class_label: Any = None,
              **params: Any) -> np.ndarray:
        _to_batch(img, "image")
        gan = self.model.gan
        labels = None
        if class_label is not None:
            labels = [int(class_label)] if isinstance(class_label, (int, np.integer)) else None
            if labels is None:
                raise TypeError(f"class_label should be an int, got {class_label!r}")
            check_labels(labels, gan.num_classes, "class_label")
        return gan.complete(img, hole_mask, labels=labels, steps=self.steps, seed=fill_seed, feather=self.feather,
                            label_candidates=1)


def _to_batch(image: np.ndarray, name: str) -> np.ndarray:
    """Check an albumentations image and return it as (1, H, W, C)."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} should be a numpy array, got {type(image).__name__}")
    if image.dtype not in (np.uint8, np.float32):
        raise TypeError(f"{name} should be uint8 or float32 (in [0, 1]), got dtype {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3):
        raise ValueError(f"{name} should be (H, W), (H, W, 1) or (H, W, 3), got shape {image.shape}")
    if min(image.shape[:2]) < MIN_IMAGE_SIZE:
        raise ValueError(f"{name} should be at least {MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE} pixels, "
                         f"got {image.shape[0]}x{image.shape[1]}")
    return image[None]


def _from_batch(batch: np.ndarray, like: np.ndarray) -> np.ndarray:
    """(N, H, W, C) back to the layout of ``like``: (N, H, W) when it was a 2-D grayscale image."""
    return batch[..., 0] if like.ndim == 2 else batch


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
