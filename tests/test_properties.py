"""Property-based tests of the public inputs: the transforms of both libraries and GANAug.

For any input hypothesis draws (dtype, layout, size, channels, value range with NaN and inf,
labels of any type, masks, p), the call either works, keeping the input's type, shape, dtype
and structure, or raises ValueError/TypeError whose message names the argument. Never another
exception, never a hang (each example has a deadline).
"""

from __future__ import annotations

import re
from datetime import timedelta

import albumentations as A
import numpy as np
import PIL.Image
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from torchvision import tv_tensors

import ganaug
from ganaug import albumentations as gan_albumentations
from ganaug import transforms as gan_transforms

PROPERTY_SETTINGS = settings(max_examples=60, deadline=timedelta(seconds=20), derandomize=True,
                             suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MODES = ("replace", "mix", "variant")
SMALL_BANK = dict(bank_size=2, refresh_every=5, refresh_size=4)
ARGUMENT = re.compile(r"\b(image|images|class_label|label|labels|mask|masks|num|seed|p|truncation|batch_size|"
                      r"num_per_image|steps|feather|label_candidates)\b")

NUMPY_DTYPES = [np.uint8, np.float32, np.float64, np.float16, np.int16, np.int32, np.bool_]
TORCH_DTYPES = [torch.uint8, torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int16, torch.int64,
                torch.bool]


@st.composite
def values(draw, shape, dtype_is_float: bool):
    """Pixel values: in range, 0..255 as floats, negative (normalized), or with NaN / inf sprinkled in."""
    kind = draw(st.sampled_from(["unit", "unit", "byte", "normalized", "nan", "inf"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if not dtype_is_float:
        return rng.integers(0, 256, shape)
    array = {"unit": rng.random(shape), "byte": rng.random(shape) * 255,
             "normalized": rng.standard_normal(shape) * 2}.get(kind, rng.random(shape))
    if kind in ("nan", "inf") and array.size:
        array.flat[rng.integers(array.size)] = np.nan if kind == "nan" else -np.inf
    return array


@st.composite
def numpy_images(draw):
    if draw(st.booleans()):  # shaped as images are: the values and dtypes then decide
        side = st.integers(8, 40)
        shape = draw(st.sampled_from([(), (1,), (3,)]).map(lambda c: (draw(side), draw(side), *c)))
    else:
        ndim = draw(st.integers(0, 4))
        shape = tuple(draw(st.integers(0, 40)) for _ in range(ndim))
        if ndim == 3:
            shape = shape[:2] + (draw(st.sampled_from([0, 1, 2, 3, 4])),)
    ndim = len(shape)
    dtype = draw(st.sampled_from(NUMPY_DTYPES[:2]) | st.sampled_from(NUMPY_DTYPES))
    array = draw(values(shape, np.issubdtype(dtype, np.floating)))
    if draw(st.booleans()) and ndim >= 2:  # a non-contiguous view
        array = array[::-1]
    return np.asarray(array).astype(dtype, copy=False)


@st.composite
def torch_images(draw, batched: bool | None = None):
    ndim = draw(st.sampled_from([3, 3, 4, 4]) | st.integers(0, 5)) if batched is None else (4 if batched else 3)
    image_like = draw(st.booleans())  # sides from 8 and 1 or 3 channels: the values and dtypes then decide
    shape = [draw(st.integers(8 if image_like else 0, 36)) for _ in range(ndim)]
    if ndim >= 3:
        shape[-3] = draw(st.sampled_from([1, 3] if image_like else [0, 1, 2, 3, 4]))
    if ndim == 4:
        shape[0] = draw(st.integers(0, 6))
    dtype = draw(st.sampled_from(TORCH_DTYPES[:2]) | st.sampled_from(TORCH_DTYPES))
    array = draw(values(tuple(shape), dtype.is_floating_point))
    tensor = torch.from_numpy(np.asarray(array, dtype=np.float64)).to(dtype)
    if draw(st.booleans()) and ndim >= 3:
        tensor = tensor.transpose(-1, -2)  # a non-contiguous view (same shape when square, else another one)
    return tv_tensors.Image(tensor) if draw(st.booleans()) and ndim in (3, 4) else tensor


@st.composite
def pil_images(draw):
    mode = draw(st.sampled_from(["L", "RGB", "RGBA", "F", "1"]))
    size = (draw(st.integers(1, 40)), draw(st.integers(1, 40)))
    return PIL.Image.new(mode, size, color=draw(st.integers(0, 255)) if mode in ("L", "1") else None)


LABELS = st.one_of(st.integers(0, 9), st.integers(0, 9), st.none(), st.integers(-3, 12),
                   st.sampled_from([np.int64(3), np.uint8(2), 1.0, 2.5, "3", True, b"1", [1], (2,), [1, 2]]),
                   st.builds(torch.tensor, st.integers(-2, 11)))


def _check_error(error: Exception) -> None:
    event("refused")
    assert isinstance(error, (ValueError, TypeError)), f"{type(error).__name__}: {error}"
    assert ARGUMENT.search(str(error)), f"the message names no argument: {error}"


@pytest.fixture(scope="module")
def transforms(tiny_run):
    made = {}
    for mode in MODES:
        made["albumentations", mode] = gan_albumentations.GANAugment(tiny_run, mode=mode, p=1.0, **SMALL_BANK)
        made["torchvision", mode] = gan_transforms.GANAugment(tiny_run, mode=mode, p=1.0, **SMALL_BANK)
    return made


@pytest.fixture(scope="module")
def gan(tiny_run):
    return ganaug.GANAug.from_pretrained(tiny_run)


@pytest.mark.parametrize("mode", MODES)
@PROPERTY_SETTINGS
@given(image=numpy_images(), label=LABELS, seed=st.integers(0, 2**31))
def test_albumentations_any_input_works_or_names_the_argument(transforms, mode, image, label, seed):
    compose = A.Compose([transforms["albumentations", mode]], seed=seed)
    before = image.copy()
    try:
        out = compose(image=image, class_label=label)["image"]
    except Exception as error:  # noqa: BLE001 - the property is about which errors come out
        _check_error(error)
        return
    event("worked")
    assert isinstance(out, np.ndarray) and out.shape == image.shape and out.dtype == image.dtype
    assert np.array_equal(image, before, equal_nan=True), "the input was changed in place"
    if out.dtype.kind == "f":
        assert np.isfinite(out).all() and out.min() >= -1e-3 and out.max() <= 1 + 1e-3


@pytest.mark.parametrize("mode", MODES)
@PROPERTY_SETTINGS
@given(image=torch_images() | torch_images() | pil_images() | numpy_images(), label=LABELS,
       structure=st.sampled_from(["tuple", "dict", "image"]), seed=st.integers(0, 2**31))
def test_torchvision_any_input_works_or_names_the_argument(transforms, mode, image, label, structure, seed):
    transform = transforms["torchvision", mode]
    torch.manual_seed(seed)
    sample = {"tuple": (image, label), "dict": {"image": image, "label": label, "id": "x"}, "image": image}[structure]
    try:
        out = transform(*sample) if structure == "tuple" else transform(sample)
    except Exception as error:  # noqa: BLE001
        _check_error(error)
        return
    event("worked")
    out_image = {"tuple": lambda: out[0], "dict": lambda: out["image"], "image": lambda: out}[structure]()
    if structure == "tuple":
        assert isinstance(out, tuple) and len(out) == 2 and out[1] is label
    if structure == "dict":
        assert set(out) == {"image", "label", "id"} and out["label"] is label and out["id"] == "x"
    assert type(out_image) is type(image)
    if isinstance(image, PIL.Image.Image):
        assert out_image.mode == image.mode and out_image.size == image.size
    elif isinstance(image, torch.Tensor):
        assert out_image.shape == image.shape and out_image.dtype == image.dtype
        if out_image.is_floating_point() and out_image.numel():
            assert torch.isfinite(out_image).all() and out_image.min() >= -1e-3 and out_image.max() <= 1 + 1e-3


@pytest.mark.parametrize("mode", MODES)
@PROPERTY_SETTINGS
@given(images=torch_images(batched=True), labels=LABELS | st.builds(lambda n: torch.arange(n) % 10, st.integers(0, 40)),
       p=st.floats(0, 1))
def test_torchvision_batch_mode_any_input_works_or_names_the_argument(tiny_run, mode, images, labels, p):
    transform = gan_transforms.GANAugment(tiny_run, mode=mode, p=p, **SMALL_BANK)
    try:
        out, out_labels = transform(images, labels)
    except Exception as error:  # noqa: BLE001
        _check_error(error)
        return
    event("worked")
    assert type(out) is type(images) and out.shape == images.shape and out.dtype == images.dtype
    assert out_labels is labels


@PROPERTY_SETTINGS
@given(p=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2, 3),
                   st.sampled_from(["0.5", None, True, [0.5]])),
       mode=st.sampled_from([*MODES, "Mix", "", None, 3]),
       mix_ratio=st.sampled_from([(0.3, 0.7), (0.7, 0.3), (0, 1), (-0.1, 0.5), (0.5,), "ab", None,
                                  (0.2, float("nan"))]),
       library=st.sampled_from(["albumentations", "torchvision"]))
def test_transform_settings_are_checked_by_name(tiny_run, p, mode, mix_ratio, library):
    module = gan_albumentations if library == "albumentations" else gan_transforms
    try:
        module.GANAugment(tiny_run, mode=mode, p=p, mix_ratio=mix_ratio, **SMALL_BANK)
    except Exception as error:  # noqa: BLE001
        assert isinstance(error, (ValueError, TypeError)), f"{type(error).__name__}: {error}"
        assert re.search(r"\b(p|mode|mix_ratio)\b", str(error)), str(error)


@PROPERTY_SETTINGS
@given(num=st.one_of(st.integers(-2, 30), st.sampled_from([2.0, "3", None, True])),
       labels=LABELS, seed=st.one_of(st.none(), st.integers(-5, 2**63 + 5), st.sampled_from([1.5, "1"])),
       truncation=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(1.0)),
       batch_size=st.one_of(st.integers(-1, 40), st.just(1)))
def test_gan_sample_any_arguments_work_or_name_the_argument(gan, num, labels, seed, truncation, batch_size):
    try:
        out = gan.sample(num, labels=labels, seed=seed, truncation=truncation, batch_size=batch_size)
    except Exception as error:  # noqa: BLE001
        _check_error(error)
        return
    event("worked")
    assert out.dtype == torch.uint8 and out.shape == (int(num), 1, 28, 28)


@PROPERTY_SETTINGS
@given(images=torch_images() | numpy_images(),
       mask_kind=st.sampled_from(["same", "shared", "bool", "uint8", "float", "wrong", "list", "none"]),
       labels=LABELS, seed=st.integers(0, 2**31))
def test_gan_complete_any_input_works_or_names_the_argument(gan, images, mask_kind, labels, seed):
    shape = tuple(images.shape)
    spatial = shape[-2:] if isinstance(images, torch.Tensor) else (shape[:2] if len(shape) in (2, 3) else shape[1:3])
    rng = np.random.default_rng(seed)
    mask = {"same": lambda: rng.random(spatial) < 0.3, "shared": lambda: rng.random(spatial) < 0.3,
            "bool": lambda: torch.as_tensor(np.asarray(rng.random(spatial) < 0.3)),
            "uint8": lambda: (rng.random(spatial) < 0.3).astype(np.uint8),
            "float": lambda: rng.random(spatial).astype(np.float32),
            "wrong": lambda: np.ones((5, 5), bool), "list": lambda: [[True]], "none": lambda: None}[mask_kind]()
    try:
        out = gan.complete(images, mask, labels=labels, steps=0, seed=seed, label_candidates=1)
    except Exception as error:  # noqa: BLE001
        _check_error(error)
        return
    event("worked")
    assert type(out) is type(images) or isinstance(images, tv_tensors.Image)
    assert tuple(out.shape) == shape and out.dtype == images.dtype


@PROPERTY_SETTINGS
@given(images=torch_images() | numpy_images(), num_per_image=st.integers(-1, 3), labels=LABELS)
def test_gan_sample_like_any_input_works_or_names_the_argument(gan, images, num_per_image, labels):
    try:
        out = gan.sample_like(images, num_per_image=num_per_image, labels=labels, seed=0)
    except Exception as error:  # noqa: BLE001
        _check_error(error)
        return
    event("worked")
    num = 1 if images.ndim == 3 else len(images)
    assert out.dtype == torch.uint8 and out.shape == (num * num_per_image, 1, 28, 28)
