"""GANAugment in albumentations and torchvision v2 pipelines: layouts, modes, determinism, workers, serialization."""

from __future__ import annotations

import json
import pickle
import random
import types

import albumentations as A
import numpy as np
import PIL.Image
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info
from torchvision import tv_tensors
from torchvision.transforms import v2

from ganaug import albumentations as gan_albumentations
from ganaug import transforms as gan_transforms
from ganaug.adapters import albumentations as albumentations_adapter

MODES = ("replace", "mix", "variant")
SMALL_BANK = dict(bank_size=4, refresh_every=None)


def _image(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, shape, dtype=np.uint8) if dtype == np.uint8 else rng.random(shape, dtype=np.float32)


# --- shared checks, run on both adapters ---------------------------------------------------------

def _albumentations_call(checkpoint, mode, seed, image, label, **kwargs):
    torch.manual_seed(seed)  # the bank's images (bank_seed=None); the Compose seed makes the picks
    transform = A.Compose([gan_albumentations.GANAugment(checkpoint, mode=mode, p=1.0, **SMALL_BANK, **kwargs)],
                          seed=seed)
    return transform(image=image, class_label=label)["image"]


def _torchvision_call(checkpoint, mode, seed, image, label, **kwargs):
    torch.manual_seed(seed)
    transform = v2.Compose([gan_transforms.GANAugment(checkpoint, mode=mode, p=1.0, **SMALL_BANK, **kwargs)])
    return transform(image, label)[0]


ALBUMENTATIONS_INPUTS = [((28, 28), np.uint8), ((28, 28, 1), np.uint8), ((40, 30, 3), np.uint8),
                         ((28, 28), np.float32), ((33, 47, 3), np.float32)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("shape", "dtype"), ALBUMENTATIONS_INPUTS)
def test_albumentations_keeps_shape_dtype_and_is_deterministic(tiny_run, mode, shape, dtype):
    image = _image(shape, dtype)
    out = _albumentations_call(tiny_run, mode, 7, image, 3)
    assert out.shape == image.shape and out.dtype == image.dtype
    assert not np.array_equal(out, image)
    if dtype == np.float32:
        assert out.min() >= 0.0 and out.max() <= 1.0
    assert np.array_equal(out, _albumentations_call(tiny_run, mode, 7, image, 3))


def _torchvision_inputs():
    gray = _image((28, 28), np.uint8)
    rgb = _image((30, 40, 3), np.uint8)
    return [
        ("pil L", PIL.Image.fromarray(gray)),
        ("pil RGB", PIL.Image.fromarray(rgb)),
        ("uint8 tensor", torch.from_numpy(gray)[None]),
        ("float tv Image", tv_tensors.Image(torch.from_numpy(_image((3, 32, 32), np.float32)))),
    ]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("name", "image"), _torchvision_inputs())
def test_torchvision_keeps_type_shape_dtype_and_is_deterministic(tiny_run, mode, name, image):
    out = _torchvision_call(tiny_run, mode, 7, image, 3)
    assert type(out) is type(image)
    if isinstance(image, PIL.Image.Image):
        assert out.mode == image.mode and out.size == image.size
        out, image_array = np.asarray(out), np.asarray(image)
    else:
        assert out.shape == image.shape and out.dtype == image.dtype
        out, image_array = out.numpy(), image.numpy()
    assert not np.array_equal(out, image_array)
    again = _torchvision_call(tiny_run, mode, 7, image, 3)
    assert np.array_equal(out, np.asarray(again) if isinstance(again, PIL.Image.Image) else again.numpy())


@pytest.mark.parametrize("adapter", ["albumentations", "torchvision"])
def test_p_zero_leaves_the_image_alone(tiny_run, adapter):
    image = _image((28, 28), np.uint8)
    if adapter == "albumentations":
        out = A.Compose([gan_albumentations.GANAugment(tiny_run, p=0.0)])(image=image, class_label=1)["image"]
        assert out is image or np.array_equal(out, image)
    else:
        tensor = torch.from_numpy(image)[None]
        assert v2.Compose([gan_transforms.GANAugment(tiny_run, p=0.0)])(tensor, 1)[0] is tensor


# --- what each mode does -------------------------------------------------------------------------

@pytest.mark.parametrize("rng", [random.Random(0), np.random.default_rng(0), torch.Generator().manual_seed(0)],
                         ids=["python", "numpy", "torch"])
def test_every_rng_draws_through_one_rule(rng):
    """Positions in the bank, weights in mix_ratio, and "variant" picks whose low bits vary (taken modulo a count)."""
    from ganaug.adapters.functional import make_params

    mixed = make_params(400, "mix", 5, (0.2, 0.6), rng)
    assert sorted(set(mixed.positions)) == [0, 1, 2, 3, 4] and mixed.seed is None
    assert all(0.2 <= w < 0.6 for w in mixed.weights) and max(mixed.weights) - min(mixed.weights) > 0.3
    variant = make_params(400, "variant", 5, (0.2, 0.6), rng)
    assert {pick % 4 for pick in variant.positions} == {0, 1, 2, 3} and variant.weights is None
    assert 0 <= variant.seed < 2**62


@pytest.mark.parametrize("mode", ["replace", "mix", "variant"])
def test_one_image_parameters_follow_the_one_rule(tiny_run, mode):
    """The per-sample shortcut (two uniforms drawn with p) gives what the general rule gives for one image."""
    from ganaug.adapters.augmenter import Augmenter
    from ganaug.adapters.functional import params_from_uniforms

    core = Augmenter(tiny_run, mode=mode, mix_ratio=(0.2, 0.6), device="cpu", **SMALL_BANK)
    for pick, weight in [(0.0, 0.0), (0.37, 0.81), (1 - 2**-53, 0.5)]:
        assert core.params_one(pick, weight) == params_from_uniforms(((pick, weight),), mode, 4, (0.2, 0.6))
        general = params_from_uniforms(((pick, weight), (0.5, 0.5)), mode, 4, (0.2, 0.6))  # the loops' case
        one = core.params_one(pick, weight)
        assert one.positions == general.positions[:1] and one.weights == (general.weights and general.weights[:1])
    assert core.params_one(1 - 2**-53, 0.0).positions == ([3] if mode != "variant" else [2**31 - 1])


def test_mix_per_sample_and_batch_paths_agree_to_one_level():
    """One definition of mix: the per-sample numpy path (OpenCV's one-pass blend on uint8) and the torch batch."""
    from ganaug.adapters.functional import mix

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 3, 20, 24), dtype=np.uint8)
    synthetic = rng.integers(0, 256, (64, 3, 20, 24), dtype=np.uint8)
    weights = rng.uniform(0, 1, 64).tolist()
    batch = mix(torch.from_numpy(images), torch.from_numpy(synthetic), weights).numpy()
    for layout in ("CHW", "HWC"):
        order = (0, 1, 2) if layout == "CHW" else (1, 2, 0)
        singles = np.stack([mix(np.ascontiguousarray(images[i].transpose(order)),
                                np.ascontiguousarray(synthetic[i].transpose(order)), weights[i]).transpose(
                                    np.argsort(order)) for i in range(64)])
        difference = np.abs(singles.astype(int) - batch.astype(int))
        assert singles.dtype == np.uint8 and difference.max() <= 1 and (difference == 0).mean() > 0.999
    floats = images.astype(np.float32) / 255
    batch = mix(torch.from_numpy(floats), torch.from_numpy(synthetic), weights).numpy()
    assert all(np.array_equal(mix(floats[i], synthetic[i], weights[i]), batch[i]) for i in range(64))


@pytest.mark.parametrize("adapter", ["albumentations", "torchvision"])
def test_replace_gives_a_bank_image_of_the_class_and_mix_blends_it(tiny_run, adapter):
    image = np.zeros((28, 28), np.uint8)
    if adapter == "albumentations":
        replace = gan_albumentations.GANAugment(tiny_run, mode="replace", p=1.0, **SMALL_BANK)
        mix = gan_albumentations.GANAugment(tiny_run, mode="mix", mix_ratio=(0.5, 0.5), p=1.0, **SMALL_BANK)
        replaced = A.Compose([replace], seed=0)(image=image, class_label=6)["image"]
        mixed = A.Compose([mix], seed=0)(image=image, class_label=6)["image"]
    else:
        replace = gan_transforms.GANAugment(tiny_run, mode="replace", p=1.0, **SMALL_BANK)
        mix = gan_transforms.GANAugment(tiny_run, mode="mix", mix_ratio=(0.5, 0.5), p=1.0, **SMALL_BANK)
        replaced = replace(torch.from_numpy(image)[None], 6)[0][0].numpy()
        mixed = mix(torch.from_numpy(image)[None], 6)[0][0].numpy()
    bank_images = replace.bank.images[6, :, 0].numpy()
    assert any(np.array_equal(replaced, candidate) for candidate in bank_images)
    halves = [np.round(candidate.astype(np.float32) * 0.5).astype(np.uint8) for candidate in mix.bank.images[6, :, 0]
              .numpy()]
    assert any(np.array_equal(mixed, half) for half in halves)


def test_variant_follows_the_image_and_needs_no_label(tiny_run):
    augment = gan_albumentations.GANAugment(tiny_run, mode="variant", p=1.0)
    compose = A.Compose([augment], seed=0, strict=True)
    first, second = _image((28, 28), np.uint8, seed=1), _image((28, 28), np.uint8, seed=2)
    out_first = compose(image=first)["image"]
    compose.set_random_seed(0)
    out_second = compose(image=second)["image"]
    assert out_first.shape == (28, 28) and not np.array_equal(out_first, out_second)  # same seed, other image
    compose.set_random_seed(0)
    labelled = compose(image=first, class_label=2)["image"]
    compose.set_random_seed(0)
    assert not np.array_equal(labelled, compose(image=first, class_label=7)["image"])  # the given label is used


# --- serialization ---------------------------------------------------------------------------------

def test_albumentations_serialization_round_trips(tiny_run, tmp_path):
    augment = gan_albumentations.GANAugment(tiny_run, mode="mix", mix_ratio=(0.2, 0.4), bank_size=3,
                                            refresh_every=100, refresh_size=8, device="cpu", bank_seed=4, p=0.7)
    compose = A.Compose([A.HorizontalFlip(p=0.5), augment], seed=1)
    restored = A.from_dict(A.to_dict(compose))
    args = restored.transforms[1].to_dict()["transform"]
    assert args == augment.to_dict()["transform"]
    assert args["checkpoint"] == str(tiny_run) and args["bank_seed"] == 4 and args["mix_ratio"] == (0.2, 0.4)
    A.save(compose, str(tmp_path / "pipeline.json"))
    loaded = A.load(str(tmp_path / "pipeline.json"))
    assert json.loads((tmp_path / "pipeline.json").read_text())["transform"]["transforms"][1]["mode"] == "mix"
    image = _image((28, 28), np.uint8)
    outputs = []
    for pipeline in (compose, restored, loaded):
        pipeline.set_random_seed(5)
        outputs.append(pipeline(image=image, class_label=4)["image"])
    assert np.array_equal(outputs[0], outputs[1]) and np.array_equal(outputs[0], outputs[2])


@pytest.mark.filterwarnings("ignore:.*could work incorrectly in ReplayMode")  # its params read class_label
@pytest.mark.parametrize("mode", MODES)
def test_albumentations_draws_in_params_so_replay_and_extra_targets_agree(tiny_run, mode):
    """ReplayCompose replays the same augmentation; an additional image target gets the same one."""
    def augment():  # one instance per pipeline, as albumentations wants
        return gan_albumentations.GANAugment(tiny_run, mode=mode, p=1.0, bank_seed=0, **SMALL_BANK)

    image = _image((28, 28), np.uint8)
    replay = A.ReplayCompose([augment()])
    replay.set_random_seed(3)
    first = replay(image=image, class_label=4)
    for _ in range(3):
        again = A.ReplayCompose.replay(first["replay"], image=image, class_label=4)
        assert np.array_equal(again["image"], first["image"])
    paired = A.Compose([augment()], additional_targets={"image2": "image"}, seed=3)
    out = paired(image=image, image2=image.copy(), class_label=4)
    assert np.array_equal(out["image"], out["image2"])
    stacked = A.Compose([augment()], seed=3)(images=np.stack([image] * 8), class_label=4)["images"]
    # each image its own draw: with 4 bank images, 8 equal draws would have a chance of 4 ** -7
    assert stacked.shape == (8, 28, 28) and (mode == "variant" or len({s.tobytes() for s in stacked}) > 1)


@pytest.mark.parametrize("adapter", ["albumentations", "torchvision"])
def test_transforms_pickle_without_the_model(tiny_run, adapter):
    if adapter == "albumentations":
        transform = gan_albumentations.GANAugment(tiny_run, p=1.0, **SMALL_BANK)
        A.Compose([transform], seed=0)(image=_image((28, 28), np.uint8), class_label=0)
    else:
        transform = gan_transforms.GANAugment(tiny_run, p=1.0, **SMALL_BANK)
        transform(torch.zeros(1, 28, 28, dtype=torch.uint8), 0)
    assert transform.bank.model.loaded
    clone = pickle.loads(pickle.dumps(transform))
    assert not clone.bank.model.loaded and torch.equal(clone.bank.images, transform.bank.images)


def test_albumentations_init_schema(tiny_run, tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint"):  # as in the torchvision adapter
        gan_albumentations.GANAugment(tmp_path / "missing")
    bad = [dict(mode="swap"), dict(mix_ratio=(0.8, 0.2)), dict(bank_size=0), dict(refresh_every=0), dict(device="tpu"),
           dict(p=1.5), dict(bank_seed=-1)]
    for kwargs in bad:
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            gan_albumentations.GANAugment(**{"checkpoint": tiny_run, **kwargs})
    path_given = gan_albumentations.GANAugment(tiny_run)
    assert isinstance(path_given.checkpoint, str)


def test_torchvision_argument_checks(tiny_run, tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        gan_transforms.GANAugment(tmp_path / "missing")
    for kwargs, pattern in ((dict(mode="swap"), "mode"), (dict(mix_ratio=(0.8, 0.2)), "mix_ratio"),
                            (dict(p=-0.1), "p should"), (dict(bank_size=0), "size_per_class"),
                            (dict(device="tpu"), "device"), (dict(labels_getter=3), "labels_getter")):
        with pytest.raises(ValueError, match=pattern):
            gan_transforms.GANAugment(tiny_run, **kwargs)


# --- bad inputs --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("image", "label", "error", "pattern"), [
    (np.zeros((28, 28), np.int32), 1, TypeError, "image should be uint8 or float32"),
    (np.zeros((28, 28, 4), np.uint8), 1, ValueError, r"image should be \(H, W\) or \(H, W, C\) with C in \(1, 3\)"),
    (np.zeros((5, 28), np.uint8), 1, ValueError, "at least 8x8"),
    (np.zeros((28, 28), np.uint8), 10, ValueError, r"class_label should lie in \[0, 10\)"),
    (np.zeros((28, 28), np.uint8), -1, ValueError, "class_label should lie"),
    (np.zeros((28, 28), np.uint8), 1.5, TypeError, "class_label should be an int"),
])
def test_albumentations_bad_inputs(tiny_run, image, label, error, pattern):
    compose = A.Compose([gan_albumentations.GANAugment(tiny_run, p=1.0, **SMALL_BANK)])
    with pytest.raises(error, match=pattern):
        compose(image=image, class_label=label)


def test_albumentations_missing_label_is_named(tiny_run):
    compose = A.Compose([gan_albumentations.GANAugment(tiny_run, p=1.0)])
    with pytest.raises(ValueError, match="class_label"):
        compose(image=np.zeros((28, 28), np.uint8))


@pytest.mark.parametrize(("sample", "error", "pattern"), [
    ((torch.zeros(1, 28, 28, dtype=torch.int32), 1), TypeError, "image should be a uint8 or float"),
    ((torch.zeros(4, 28, 28, dtype=torch.uint8), 1), ValueError, r"C in \(1, 3\)"),
    ((PIL.Image.new("RGBA", (28, 28)), 1), ValueError, "mode 'L' or 'RGB'"),
    ((torch.zeros(1, 6, 6, dtype=torch.uint8), 1), ValueError, "at least 8x8"),
    ((torch.zeros(1, 28, 28, dtype=torch.uint8), 12), ValueError, r"label should lie in \[0, 10\)"),
    ((torch.zeros(1, 28, 28, dtype=torch.uint8),), ValueError, "label is required"),
    ({"image": torch.zeros(1, 28, 28, dtype=torch.uint8)}, ValueError, "label is required"),
    ((torch.zeros(4, 1, 28, 28), torch.zeros(4, 10)), TypeError, "before MixUp/CutMix"),
    ((torch.zeros(4, 1, 28, 28), torch.zeros(3, dtype=torch.long)), ValueError, r"one label per item \(4\)"),
])
def test_torchvision_bad_inputs(tiny_run, sample, error, pattern):
    transform = gan_transforms.GANAugment(tiny_run, p=1.0, **SMALL_BANK)
    with pytest.raises(error, match=pattern):
        transform(*sample) if isinstance(sample, tuple) else transform(sample)


# --- torchvision structures and batch mode -------------------------------------------------------------

def test_torchvision_keeps_sample_structure(tiny_run):
    transform = gan_transforms.GANAugment(tiny_run, p=1.0, **SMALL_BANK)
    image = torch.zeros(1, 28, 28, dtype=torch.uint8)
    mask = tv_tensors.Mask(torch.ones(28, 28, dtype=torch.uint8))
    out = transform({"image": image, "mask": mask, "label": 2, "id": "x"})
    assert set(out) == {"image", "mask", "label", "id"} and out["label"] == 2 and out["id"] == "x"
    assert out["mask"] is mask and not torch.equal(out["image"], image)
    out = transform(image, {"labels": torch.tensor(5), "boxes": None})
    assert isinstance(out, tuple) and int(out[1]["labels"]) == 5
    assert gan_transforms.find_label((image, 3)) == 3
    assert gan_transforms.find_label({"img": image, "class_label": 4}) == 4
    assert gan_transforms.find_label(image) is None


def test_torchvision_changes_only_what_v2_takes_for_images(tiny_run):
    transform = gan_transforms.GANAugment(tiny_run, mode="replace", p=1.0, **SMALL_BANK)
    image, depth = torch.zeros(1, 28, 28, dtype=torch.uint8), torch.zeros(1, 28, 28, dtype=torch.uint8)
    out = transform({"image": image, "depth": depth, "label": 2})  # plain tensors: only the first is the image
    assert not torch.equal(out["image"], image) and out["depth"] is depth
    typed = tv_tensors.Image(image.clone())
    out = transform({"image": typed, "weights": depth, "label": 2})  # beside a tv_tensors.Image: none
    assert not torch.equal(out["image"], typed) and out["weights"] is depth
    cutout = gan_transforms.GANCutoutFill(tiny_run, p=1.0, device="cpu")
    out = cutout({"image": torch.full((1, 28, 28), 128, dtype=torch.uint8), "depth": depth, "label": 2})
    assert out["depth"] is depth


def test_torchvision_p_holds_for_a_single_image_beside_a_4d_mask(tiny_run):
    image = tv_tensors.Image(torch.zeros(1, 28, 28, dtype=torch.uint8))
    masks = tv_tensors.Mask(torch.zeros(1, 3, 28, 28, dtype=torch.uint8))  # one-hot masks: 4-D, not a batch
    for transform in (gan_transforms.GANAugment(tiny_run, mode="replace", p=0.0, **SMALL_BANK),
                      gan_transforms.GANCutoutFill(tiny_run, p=0.0, device="cpu")):
        out = transform({"image": image, "masks": masks, "label": 1})
        assert torch.equal(out["image"], image) and out["masks"] is masks


def test_torchvision_takes_numpy_integer_labels(tiny_run):
    image = torch.zeros(1, 28, 28, dtype=torch.uint8)
    torch.manual_seed(0)
    expected = gan_transforms.GANAugment(tiny_run, mode="replace", p=1.0, bank_seed=0, **SMALL_BANK)(image, 2)[0]
    for label in (np.int64(2), np.array(2), np.array([2])):
        torch.manual_seed(0)
        transform = gan_transforms.GANAugment(tiny_run, mode="replace", p=1.0, bank_seed=0, **SMALL_BANK)
        assert torch.equal(transform(image, label)[0], expected)
    cutout = gan_transforms.GANCutoutFill(tiny_run, p=1.0, device="cpu")
    assert cutout(torch.full((1, 28, 28), 128, dtype=torch.uint8), np.int64(2))[0].shape == (1, 28, 28)


def test_torchvision_batch_mode_generates_nothing_for_replace_and_mix_and_once_for_variant(tiny_run):
    """After the loader, "replace" and "mix" draw from the filled bank (tests/test_batch_path.py); "variant" is one
    generator pass."""
    transform = gan_transforms.GANAugment(tiny_run, mode="mix", p=1.0, device="cpu")
    transform.bank.fill()
    calls = []
    handle = transform.bank.gan.generator.register_forward_hook(lambda *args: calls.append(1))
    images = torch.rand(16, 3, 40, 40)
    labels = torch.arange(16) % 10
    out, out_labels = transform(images, labels)
    handle.remove()
    assert len(calls) == 0 and out.shape == images.shape and out.dtype == images.dtype and out_labels is labels
    variant = gan_transforms.GANAugment(tiny_run, mode="variant", p=1.0, device="cpu")
    handle = variant.bank.gan.generator.register_forward_hook(lambda *args: calls.append(1))
    variant(images[:8], labels[:8])
    handle.remove()
    assert len(calls) == 1
    assert not torch.isclose(out, images).all(dim=(1, 2, 3)).any()  # every image changed
    half = gan_transforms.GANAugment(tiny_run, mode="replace", p=0.5, device="cpu")
    torch.manual_seed(0)
    batch = tv_tensors.Image(torch.zeros(64, 1, 28, 28, dtype=torch.uint8))
    out = half(batch, labels.repeat(4))[0]
    changed = int((out != 0).flatten(1).any(dim=1).sum())
    assert isinstance(out, tv_tensors.Image) and 16 < changed < 48


# --- DataLoader workers ------------------------------------------------------------------------------

class AlbumentationsProbe(Dataset):
    """The same image and label at every index, so any difference between items is the augmentation's."""

    def __init__(self, checkpoint, size: int = 8):
        self.size = size
        self.transform = A.Compose([A.HorizontalFlip(p=0.5),
                                    gan_albumentations.GANAugment(checkpoint, mode="mix", p=0.5, **SMALL_BANK)],
                                   seed=3)
        self.image = _image((28, 28), np.uint8)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int):
        return get_worker_info().id, self.transform(image=self.image, class_label=1)["image"]


class TorchvisionProbe(Dataset):
    def __init__(self, checkpoint, size: int = 8):
        self.size = size
        self.transform = v2.Compose([gan_transforms.GANAugment(checkpoint, mode="mix", p=0.5, **SMALL_BANK)])
        self.image = torch.from_numpy(_image((28, 28), np.uint8))[None]

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int):
        return get_worker_info().id, self.transform(self.image, 1)[0]


def _worker_streams(dataset, context, seed, worker_init_fn):
    loader = DataLoader(dataset, batch_size=None, num_workers=2, multiprocessing_context=context,
                        worker_init_fn=worker_init_fn, generator=torch.Generator().manual_seed(seed))
    streams = {0: [], 1: []}
    for worker, image in loader:
        streams[int(worker)].append(np.asarray(image))
    return streams


@pytest.mark.parametrize("context", ["fork"])  # spawn and forkserver: tests/test_concurrency.py
@pytest.mark.parametrize("adapter", ["albumentations", "torchvision"])
def test_dataloader_workers_are_seeded_and_differ(tiny_run, context, adapter):
    if adapter == "albumentations":
        dataset, init = AlbumentationsProbe(tiny_run), gan_albumentations.worker_init_fn
        # one bank, filled here and shared by both workers: only the Compose RNG can make them differ, and
        # without worker_init_fn it would not (see the test below)
        dataset.transform.transforms[1].bank.fill()
    else:
        dataset, init = TorchvisionProbe(tiny_run), None
    first = _worker_streams(dataset, context, 0, init)
    again = _worker_streams(dataset, context, 0, init)
    other = _worker_streams(dataset, context, 1, init)
    assert all(np.array_equal(a, b) for w in (0, 1) for a, b in zip(first[w], again[w], strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first[0], first[1], strict=True))  # workers differ
    assert not all(np.array_equal(a, b) for w in (0, 1) for a, b in zip(first[w], other[w], strict=True))


class _Wrapped(Dataset):
    """A dataset whose albumentations pipeline hides in a closure, as `transform=lambda x: compose(...)` does."""

    def __init__(self, transform):
        self.transform = transform
        self.image = _image((28, 28), np.uint8)

    def __len__(self) -> int:
        return 6

    def __getitem__(self, index: int):
        return get_worker_info().id, self.transform(self.image)


def test_worker_init_fn_finds_lone_transforms_and_closures_and_warns_when_there_is_none(tiny_run, monkeypatch):
    augment = gan_albumentations.GANAugment(tiny_run, mode="mix", p=1.0, bank_seed=0, **SMALL_BANK)
    augment.bank.fill()  # shared by the forked workers: only the transform's RNG can make them differ
    compose = A.Compose([gan_albumentations.GANAugment(tiny_run, mode="mix", p=1.0, bank_seed=0, **SMALL_BANK)])
    compose.transforms[0].bank.fill()
    for transform in (lambda image: augment(image=image, class_label=2)["image"],  # a lone transform
                      lambda image: compose(image=image, class_label=2)["image"]):  # a Compose in a closure
        streams = _worker_streams(_Wrapped(transform), "fork", 0, gan_albumentations.worker_init_fn)
        assert not all(np.array_equal(a, b) for a, b in zip(streams[0], streams[1], strict=True))
    worker = types.SimpleNamespace(seed=1, dataset=_Wrapped(lambda image: image))  # as a worker sees it
    monkeypatch.setattr(albumentations_adapter, "get_worker_info", lambda: worker)
    with pytest.warns(UserWarning, match="found no albumentations"):
        gan_albumentations.worker_init_fn(0)


def test_without_worker_init_fn_albumentations_workers_repeat_each_other(tiny_run):
    """The albumentations 2.0.8 defect that worker_init_fn works around (if this fails, upstream fixed it)."""
    probe = AlbumentationsProbe(tiny_run)
    probe.transform.transforms[1].bank.fill()  # one bank, shared by both forked workers: only the Compose RNG differs
    streams = _worker_streams(probe, "fork", 0, None)
    assert all(np.array_equal(a, b) for a, b in zip(streams[0], streams[1], strict=True))
