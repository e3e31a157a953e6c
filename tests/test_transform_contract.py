"""The same checks on every transform either adapter exports, found automatically (as albumentations tests its own).

For each transform (and each mode of those that have one), on every input layout its library takes
(albumentations: HW, HWC, a stack of HWC images; torchvision: CHW, NCHW, PIL) and dtype:
shape, dtype and structure are kept; the same seed gives the same output; ``p=0`` is the
identity; it pickles (and albumentations' serialization round-trips); it works in DataLoader
workers.
"""

from __future__ import annotations

import inspect
import pickle

import albumentations as A
import numpy as np
import PIL.Image
import pytest
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

import ganaug.albumentations
import ganaug.transforms

OTHER_SEEDS = (8, 9, 10)
SMALL = {"bank_size": 4, "refresh_every": None, "bank_seed": 0, "device": "cpu", "steps": 0}


def _exported(module, base) -> list[type]:
    return [getattr(module, name) for name in module.__all__
            if isinstance(getattr(module, name), type) and issubclass(getattr(module, name), base)]


def _cases(module, base) -> list:
    """(class, constructor keywords) for every exported transform; one per mode for those with modes."""
    cases = []
    for cls in _exported(module, base):
        parameters = inspect.signature(cls).parameters
        kwargs = {k: v for k, v in SMALL.items() if k in parameters}
        modes = ganaug.adapters.functional.MODES if "mode" in parameters else (None,)
        for mode in modes:
            case_kwargs = kwargs if mode is None else {**kwargs, "mode": mode}
            cases.append(pytest.param(cls, case_kwargs, id=cls.__name__ + (f"-{mode}" if mode else "")))
    return cases


ALBUMENTATIONS = _cases(ganaug.albumentations, A.BasicTransform)
TORCHVISION = _cases(ganaug.transforms, v2.Transform)


def test_every_exported_transform_is_covered():
    assert {case.values[0].__name__ for case in ALBUMENTATIONS} == {"GANAugment", "GANCutoutFill"}
    assert {case.values[0].__name__ for case in TORCHVISION} == {"GANAugment", "GANCutoutFill"}


def _numpy_image(shape: tuple, dtype: type, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, shape, dtype=np.uint8) if dtype == np.uint8 else rng.random(shape, dtype=np.float32)


# --- albumentations ----------------------------------------------------------------------------------

ALBUMENTATIONS_LAYOUTS = {"HW": (28, 28), "HWC gray": (28, 28, 1), "HWC colour": (30, 36, 3), "NHWC": (3, 28, 28, 1)}


def _albumentations_call(cls, kwargs, tiny_run, layout, dtype, seed, p=1.0):
    compose = A.Compose([cls(tiny_run, p=p, **kwargs)], seed=seed)
    image = _numpy_image(ALBUMENTATIONS_LAYOUTS[layout], dtype)
    key = "images" if layout == "NHWC" else "image"
    return image, compose(**{key: image, "class_label": 3})[key]


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("layout", list(ALBUMENTATIONS_LAYOUTS))
@pytest.mark.parametrize(("cls", "kwargs"), ALBUMENTATIONS)
def test_albumentations_keeps_layout_dtype_and_repeats_for_a_seed(tiny_run, cls, kwargs, layout, dtype):
    image, out = _albumentations_call(cls, kwargs, tiny_run, layout, dtype, seed=7)
    assert isinstance(out, np.ndarray) and out.shape == image.shape and out.dtype == image.dtype
    assert not np.array_equal(out, image)
    if dtype == np.float32:
        assert out.min() >= 0.0 and out.max() <= 1.0
    assert np.array_equal(out, _albumentations_call(cls, kwargs, tiny_run, layout, dtype, seed=7)[1])
    assert any(not np.array_equal(out, _albumentations_call(cls, kwargs, tiny_run, layout, dtype, seed=s)[1])
               for s in OTHER_SEEDS)  # (one other seed may pick the same bank image)


@pytest.mark.parametrize(("cls", "kwargs"), ALBUMENTATIONS)
def test_albumentations_p_zero_is_the_identity(tiny_run, cls, kwargs):
    for layout in ALBUMENTATIONS_LAYOUTS:
        image, out = _albumentations_call(cls, kwargs, tiny_run, layout, np.uint8, seed=0, p=0.0)
        assert np.array_equal(out, image)


@pytest.mark.parametrize(("cls", "kwargs"), ALBUMENTATIONS)
def test_albumentations_serialization_and_pickle_round_trip(tiny_run, tmp_path, cls, kwargs):
    compose = A.Compose([cls(tiny_run, p=1.0, **kwargs)], seed=1)
    saved = tmp_path / "pipeline.json"
    A.save(compose, str(saved))
    assert f'"ganaug.albumentations.{cls.__name__}"' in saved.read_text()  # the public name, not the module's
    image = _numpy_image((28, 28), np.uint8)
    outputs = []
    for pipeline in (compose, A.from_dict(A.to_dict(compose)), A.load(str(saved)),
                     pickle.loads(pickle.dumps(compose))):
        pipeline.set_random_seed(5)
        outputs.append(pipeline(image=image, class_label=4)["image"])
    assert all(np.array_equal(outputs[0], other) for other in outputs[1:])


# --- torchvision ---------------------------------------------------------------------------------------

def _torchvision_input(layout: str, dtype: type):
    if layout == "PIL L":
        return PIL.Image.fromarray(_numpy_image((28, 28), np.uint8))
    if layout == "PIL RGB":
        return PIL.Image.fromarray(_numpy_image((30, 36, 3), np.uint8))
    shape = {"CHW gray": (1, 28, 28), "CHW colour": (3, 30, 36), "NCHW": (4, 1, 28, 28)}[layout]
    return torch.from_numpy(_numpy_image(shape, dtype))


TORCHVISION_INPUTS = [("PIL L", np.uint8), ("PIL RGB", np.uint8)] + [
    (layout, dtype) for layout in ("CHW gray", "CHW colour", "NCHW") for dtype in (np.uint8, np.float32)]


def _as_array(image) -> np.ndarray:
    return np.asarray(image) if isinstance(image, PIL.Image.Image) else image.numpy()


def _torchvision_call(cls, kwargs, tiny_run, image, structure, seed, p=1.0):
    transform = cls(tiny_run, p=p, **kwargs)
    label = torch.tensor([3, 1, 4, 1]) if isinstance(image, torch.Tensor) and image.ndim == 4 else 3
    torch.manual_seed(seed)
    if structure == "tuple":
        out = transform(image, label)
        assert isinstance(out, tuple) and len(out) == 2 and out[1] is label
        return out[0]
    out = transform({"image": image, "label": label, "name": "x"})
    assert isinstance(out, dict) and set(out) == {"image", "label", "name"} and out["label"] is label
    return out["image"]


@pytest.mark.parametrize("structure", ["tuple", "dict"])
@pytest.mark.parametrize(("layout", "dtype"), TORCHVISION_INPUTS)
@pytest.mark.parametrize(("cls", "kwargs"), TORCHVISION)
def test_torchvision_keeps_type_layout_dtype_structure_and_repeats_for_a_seed(tiny_run, cls, kwargs, layout, dtype,
                                                                              structure):
    image = _torchvision_input(layout, dtype)
    out = _torchvision_call(cls, kwargs, tiny_run, image, structure, seed=7)
    assert type(out) is type(image)
    if isinstance(image, PIL.Image.Image):
        assert out.mode == image.mode and out.size == image.size
    else:
        assert out.shape == image.shape and out.dtype == image.dtype
    assert not np.array_equal(_as_array(out), _as_array(image))
    assert np.array_equal(_as_array(out), _as_array(_torchvision_call(cls, kwargs, tiny_run, image, structure, 7)))
    assert any(not np.array_equal(_as_array(out), _as_array(_torchvision_call(cls, kwargs, tiny_run, image, structure,
                                                                             s))) for s in OTHER_SEEDS)


@pytest.mark.parametrize(("cls", "kwargs"), TORCHVISION)
def test_torchvision_p_zero_is_the_identity(tiny_run, cls, kwargs):
    for layout, dtype in TORCHVISION_INPUTS:
        image = _torchvision_input(layout, dtype)
        out = _torchvision_call(cls, kwargs, tiny_run, image, "tuple", seed=0, p=0.0)
        assert np.array_equal(_as_array(out), _as_array(image))


@pytest.mark.parametrize(("cls", "kwargs"), TORCHVISION)
def test_torchvision_pickle_round_trip(tiny_run, cls, kwargs):
    transform = cls(tiny_run, p=1.0, **kwargs)
    image = _torchvision_input("CHW gray", np.uint8)
    torch.manual_seed(2)
    expected = transform(image, 3)[0]
    clone = pickle.loads(pickle.dumps(transform))
    torch.manual_seed(2)
    assert torch.equal(clone(image, 3)[0], expected)


# --- DataLoader workers ------------------------------------------------------------------------------

class _Augmented(Dataset):
    """The same image at every index, through one transform."""

    def __init__(self, transform, library: str):
        self.transform, self.library = transform, library
        self.image = _numpy_image((28, 28), np.uint8)

    def __len__(self) -> int:
        return 6

    def __getitem__(self, index: int) -> np.ndarray:
        if self.library == "albumentations":
            return self.transform(image=self.image, class_label=2)["image"]
        return self.transform(torch.from_numpy(self.image)[None], 2)[0].numpy()


def _stream(dataset, seed: int) -> list[np.ndarray]:
    loader = DataLoader(dataset, batch_size=None, num_workers=2, multiprocessing_context="fork",
                        worker_init_fn=ganaug.albumentations.worker_init_fn if dataset.library == "albumentations"
                        else None, generator=torch.Generator().manual_seed(seed))
    return [np.asarray(item) for item in loader]


@pytest.mark.parametrize(("library", "cls", "kwargs"), [("albumentations", *case.values) for case in ALBUMENTATIONS]
                         + [("torchvision", *case.values) for case in TORCHVISION],
                         ids=[f"albumentations-{case.id}" for case in ALBUMENTATIONS]
                         + [f"torchvision-{case.id}" for case in TORCHVISION])
def test_works_in_dataloader_workers_and_repeats_for_a_seed(tiny_run, library, cls, kwargs):
    transform = cls(tiny_run, p=1.0, **kwargs)
    dataset = _Augmented(A.Compose([transform]) if library == "albumentations" else transform, library)
    first, again = _stream(dataset, 0), _stream(dataset, 0)
    assert len(first) == 6 and all(item.shape == (28, 28) or item.shape == (1, 28, 28) for item in first)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, _stream(dataset, 1), strict=True))
