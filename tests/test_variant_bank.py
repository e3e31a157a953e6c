"""VariantBank: variants of known images made in batches, found by content, and used by GANAugment(mode="variant")."""

from __future__ import annotations

import pickle
import warnings

import albumentations as A
import numpy as np
import PIL.Image
import pytest
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

import ganaug
from ganaug import albumentations as gan_albumentations
from ganaug import transforms as gan_transforms
from ganaug.sampling import variant_bank as variant_bank_module


def _gray(num, seed=0, size=28):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (num, 1, size, size), dtype=np.uint8))


def _no_live_generation(monkeypatch):
    """Make live variant generation fail, so that a test sees whether the bank answered."""
    def refuse(*args, **kwargs):
        raise AssertionError("a variant was generated live")
    monkeypatch.setattr(ganaug.GANAug, "sample_like", refuse)


def test_add_makes_per_image_variants_at_each_images_size_and_channels(tiny_run):
    bank = ganaug.VariantBank(tiny_run, per_image=3, seed=0, device="cpu")
    rgb = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    gray = _gray(2, seed=2, size=40)
    bank.add([rgb, gray[0], gray[1]], labels=[1, 2, 3])
    assert len(bank) == 3 and bank.nbytes == 3 * (20 * 30 * 3) + 2 * 3 * 40 * 40
    found = [bank.find(rgb, pick) for pick in range(3)]
    assert all(v.shape == (20, 30, 3) and v.dtype == np.uint8 for v in found)
    assert not np.array_equal(found[0], found[1])  # per_image distinct variants
    assert np.array_equal(bank.find(rgb, 4), found[1])  # pick is taken modulo per_image
    # the same image is found as (C, H, W) memory (a tensor) and as (H, W, C) (albumentations, PIL)
    chw = bank.find(np.ascontiguousarray(rgb.transpose(2, 0, 1)), 0, layout="CHW")
    assert np.array_equal(chw.transpose(1, 2, 0), found[0])
    assert bank.find(gray[1].numpy(), 0, layout="CHW").shape == (1, 40, 40)
    assert bank.find(gray[1, 0].numpy(), 0).shape == (40, 40)  # (H, W): albumentations' gray layout
    assert bank.find(gray[1, 0].numpy() ^ 1, 0) is None  # one bit off: not held


def test_a_seed_makes_the_variants_reproducible_and_labels_condition_them(tiny_run):
    images = _gray(4)
    first = ganaug.VariantBank(tiny_run, per_image=2, seed=5, device="cpu").add(images, labels=[0, 1, 2, 3])
    again = ganaug.VariantBank(tiny_run, per_image=2, seed=5, device="cpu").add(images, labels=[0, 1, 2, 3])
    other = ganaug.VariantBank(tiny_run, per_image=2, seed=5, device="cpu").add(images, labels=[9, 8, 7, 6])
    image = images[0].numpy()
    assert np.array_equal(first.find(image, 0, "CHW"), again.find(image, 0, "CHW"))
    assert not np.array_equal(first.find(image, 0, "CHW"), other.find(image, 0, "CHW"))


def test_float_images_are_found_by_their_uint8_values(tiny_run):
    images = _gray(2)
    bank = ganaug.VariantBank(tiny_run, per_image=1, seed=0, device="cpu").add(images, labels=[0, 1])
    as_float = images[1, 0].numpy().astype(np.float32) / 255  # what A.ToFloat makes of it
    assert np.array_equal(bank.find(as_float, 0), bank.find(images[1, 0].numpy(), 0))


def test_image_dataset_labels_are_used_and_bad_input_is_named(tiny_run, embedded_train):
    data = embedded_train.subset(torch.arange(6))
    bank = ganaug.VariantBank(tiny_run, per_image=1, seed=0, device="cpu").add(data)
    assert len(bank) == 6 and bank.find(data.images[3].numpy(), 0, "CHW") is not None
    with pytest.raises(ValueError, match="labels"):
        bank.add(data.images, labels=[1, 2])
    with pytest.raises(ValueError, match=r"labels should lie in \[0, 10\)"):
        bank.add(data.images, labels=[0, 1, 2, 3, 4, 10])
    with pytest.raises(TypeError, match="images should be"):
        bank.add(3)
    with pytest.raises(ValueError, match="per_image"):
        ganaug.VariantBank(tiny_run, per_image=0)


def test_albumentations_variant_copies_a_held_variant_and_generates_only_the_unknown(tiny_run, monkeypatch):
    images = _gray(3)
    augment = gan_albumentations.GANAugment(tiny_run, mode="variant", p=1.0, device="cpu", variants_per_image=2,
                                            bank_seed=0)
    augment.variant_bank.add(images, labels=[0, 1, 2])
    compose = A.Compose([augment], seed=0)
    image = images[1, 0].numpy()
    held = [augment.variant_bank.find(image, pick) for pick in range(2)]
    _no_live_generation(monkeypatch)
    outs = [compose(image=image)["image"] for _ in range(8)]
    assert all(any(np.array_equal(out, v) for v in held) for out in outs)
    assert any(np.array_equal(out, held[0]) for out in outs) and any(np.array_equal(out, held[1]) for out in outs)
    as_float = compose(image=image.astype(np.float32) / 255)["image"]
    assert as_float.dtype == np.float32 and any(np.allclose(as_float, v / 255) for v in held)
    monkeypatch.undo()
    unknown = _gray(1, seed=9)[0, 0].numpy()
    assert compose(image=unknown)["image"].shape == (28, 28)  # generated live, as without a bank


def test_torchvision_variant_uses_the_bank_per_sample_and_in_batch_mode(tiny_run, monkeypatch):
    images = _gray(4)
    augment = gan_transforms.GANAugment(tiny_run, mode="variant", p=1.0, device="cpu", variants_per_image=2,
                                        bank_seed=0)
    augment.variant_bank.add(images, labels=[0, 1, 2, 3])
    held = {i: [augment.variant_bank.find(images[i].numpy(), pick, "CHW") for pick in range(2)] for i in range(4)}
    _no_live_generation(monkeypatch)
    out, label = augment(images[2], 2)
    assert label == 2 and any(np.array_equal(out.numpy(), v) for v in held[2])
    pil = augment(PIL.Image.fromarray(images[3, 0].numpy()), 3)[0]
    assert pil.mode == "L" and any(np.array_equal(np.asarray(pil), v[0]) for v in held[3])
    batch, _ = augment(images, torch.arange(4))
    assert all(any(np.array_equal(batch[i].numpy(), v) for v in held[i]) for i in range(4))
    monkeypatch.undo()
    mixed = torch.cat([images[:2], _gray(1, seed=9)])  # the last one is not held: generated live
    batch, _ = augment(mixed, torch.tensor([0, 1, 5]))
    assert all(any(np.array_equal(batch[i].numpy(), v) for v in held[i]) for i in range(2))
    assert not any(np.array_equal(batch[2].numpy(), v) for vs in held.values() for v in vs)


class _Images(Dataset):
    def __init__(self, images, transform):
        self.images, self.transform = images, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return self.transform(image=self.images[index, 0].numpy())["image"]


def test_a_bank_filled_before_the_dataloader_serves_its_workers(tiny_run, monkeypatch):
    images = _gray(8)
    augment = gan_albumentations.GANAugment(tiny_run, mode="variant", p=1.0, device="cpu", variants_per_image=2)
    augment.variant_bank.add(images)
    held = [{augment.variant_bank.find(images[i, 0].numpy(), pick).tobytes() for pick in range(2)} for i in range(8)]
    _no_live_generation(monkeypatch)  # inherited by forked workers: a live variant would fail the batch
    dataset = _Images(images, A.Compose([augment], seed=0))
    loader = DataLoader(dataset, batch_size=4, num_workers=2, worker_init_fn=gan_albumentations.worker_init_fn,
                        multiprocessing_context="fork")
    outs = torch.cat(list(loader))
    assert all(outs[i].numpy().tobytes() in held[i] for i in range(8))


def test_the_bank_pickles_with_its_variants(tiny_run):
    images = _gray(2)
    augment = gan_transforms.GANAugment(tiny_run, mode="variant", p=1.0, device="cpu", variants_per_image=1)
    augment.variant_bank.add(images, labels=[0, 1])
    copied = pickle.loads(pickle.dumps(augment))
    assert len(copied.variant_bank) == 2
    assert np.array_equal(copied.variant_bank.find(images[0].numpy(), 0, "CHW"),
                          augment.variant_bank.find(images[0].numpy(), 0, "CHW"))


def test_it_warns_once_when_most_images_are_not_held(tiny_run, monkeypatch):
    monkeypatch.setattr(variant_bank_module, "MISS_CHECK_AFTER", 4)
    bank = ganaug.VariantBank(tiny_run, per_image=1, seed=0, device="cpu").add(_gray(1), labels=[0])
    unknown = _gray(6, seed=3)
    with pytest.warns(UserWarning, match="not among the 1 whose variants"):
        for image in unknown[:4]:
            assert bank.find(image.numpy(), 0, "CHW") is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per process
        for image in unknown[4:]:
            bank.find(image.numpy(), 0, "CHW")


@pytest.mark.parametrize("adapter", ["albumentations", "torchvision"])
def test_each_image_a_transform_sees_is_counted_once(tiny_run, adapter):
    """A miss of the fast path is looked up again by the general path: the warning's counts see it once."""
    images = _gray(2)
    library = gan_albumentations if adapter == "albumentations" else gan_transforms
    augment = library.GANAugment(tiny_run, mode="variant", p=1.0, device="cpu", variants_per_image=1, bank_seed=0)
    augment.variant_bank.add(images, labels=[0, 1])
    held, unknown = images[0], _gray(1, seed=7)[0]
    for image in (held, unknown):
        if adapter == "albumentations":
            A.Compose([augment], seed=0)(image=image[0].numpy())
        else:
            augment(image, 0)
    assert (augment.variant_bank._lookups, augment.variant_bank._misses) == (2, 1)


def test_no_warning_when_the_images_are_held(tiny_run, monkeypatch):
    monkeypatch.setattr(variant_bank_module, "MISS_CHECK_AFTER", 4)
    images = _gray(4)
    bank = ganaug.VariantBank(tiny_run, per_image=1, seed=0, device="cpu").add(images, labels=[0, 1, 2, 3])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for image in images:
            assert bank.find(image.numpy(), 0, "CHW") is not None
        assert bank.find(_gray(1, seed=5)[0].numpy(), 0, "CHW") is None


def test_variants_per_image_is_validated_and_serialized_by_albumentations(tiny_run):
    with pytest.raises(ValueError, match="variants_per_image"):
        gan_albumentations.GANAugment(tiny_run, mode="variant", variants_per_image=0)
    augment = gan_albumentations.GANAugment(tiny_run, mode="variant", variants_per_image=3)
    restored = A.from_dict(A.to_dict(A.Compose([augment])))
    assert restored.transforms[0].variants_per_image == 3 and restored.transforms[0].variant_bank.per_image == 3
    assert isinstance(v2.Compose([gan_transforms.GANAugment(tiny_run, mode="variant", variants_per_image=2)]),
                      v2.Compose)
