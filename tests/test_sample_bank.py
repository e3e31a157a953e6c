"""SampleBank: filling, refreshing (in place and in the background), pickling, and per-process seeds."""

from __future__ import annotations

import hashlib
import pickle
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from ganaug import GANAug
from ganaug.nets.layers import upsample_nearest_2x
from ganaug.sampling.sample_bank import SampleBank


def test_upsample_matches_interpolate():
    x = torch.randn(3, 5, 7, 6)
    assert torch.equal(upsample_nearest_2x(x), F.interpolate(x, scale_factor=2.0, mode="nearest"))


def test_sample_seeded_depends_only_on_label_and_seed(tiny_run):
    gan = GANAug.from_pretrained(tiny_run, device="cpu")
    labels, seeds = [3, 1, 4, 1, 5], [10, 11, 12, 13, 14]
    together = gan.sample_seeded(labels, seeds)
    alone = torch.cat([gan.sample_seeded([label], [seed]) for label, seed in zip(labels, seeds, strict=True)])
    reversed_order = gan.sample_seeded(labels[::-1], seeds[::-1])
    crowd = gan.sample_seeded([0] * 30 + labels, list(range(100, 130)) + seeds)  # across pass boundaries
    assert torch.equal(together, alone)
    assert torch.equal(together, reversed_order.flip(0))
    assert torch.equal(together, crowd[30:])
    assert not torch.equal(together[1], together[3])  # same class, other seed
    with pytest.raises(ValueError, match="seeds should be non-negative"):
        gan.sample_seeded([0], [-1])


def test_fill_and_draw(tiny_run):
    bank = SampleBank(tiny_run, size_per_class=6, refresh_every=None, device="cpu", seed=0)
    assert not bank.filled
    images = bank.draw([2, 2, 7], np.random.default_rng(0))
    assert bank.filled and images.shape == (3, 1, 28, 28) and images.dtype == torch.uint8
    held = bank.images
    assert held.shape == (10, 6, 1, 28, 28)
    for image, label in zip(images, [2, 2, 7], strict=True):
        assert any(torch.equal(image, candidate) for candidate in held[label])
    with pytest.raises(ValueError, match=r"labels should lie in \[0, 10\)"):
        bank.draw([10])


def test_same_seed_same_bank_other_seed_other_bank(tiny_run):
    first = SampleBank(tiny_run, size_per_class=3, device="cpu", seed=5).fill().images
    again = SampleBank(tiny_run, size_per_class=3, device="cpu", seed=5).fill().images
    other = SampleBank(tiny_run, size_per_class=3, device="cpu", seed=6).fill().images
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_refresh_replaces_the_oldest_images_and_keeps_memory_bounded(tiny_run):
    bank = SampleBank(tiny_run, size_per_class=4, refresh_every=5, refresh_size=12, device="cpu", seed=0).fill()
    before = bank.images.clone()
    bank.draw([0, 1, 2, 3], torch.Generator().manual_seed(0))  # 4 draws: not due yet
    assert torch.equal(bank.images, before)
    bank.draw([0], torch.Generator().manual_seed(0))  # the 5th draw refreshes 12 slots: slot-major, all 10 classes
    changed = (bank.images != before).flatten(2).any(dim=2)  # (classes, positions)
    assert bank.images.shape == before.shape
    assert changed[:, 0].all() and changed[:2, 1].all() and not changed[2:, 1].any() and not changed[:, 2:].any()


def test_background_refresh(tiny_run):
    bank = SampleBank(tiny_run, size_per_class=2, refresh_every=1, refresh_size=20, background=True, device="cpu",
                      seed=0).fill()
    before = bank.images.clone()
    bank.draw([0])
    deadline = time.monotonic() + 60
    while torch.equal(bank.images, before) and time.monotonic() < deadline:
        time.sleep(0.05)
    bank.close()
    assert not torch.equal(bank.images, before)
    assert not bank.background_running


def test_pickles_without_the_model_but_with_the_images(tiny_run):
    bank = SampleBank(tiny_run, size_per_class=2, device="cpu", seed=0).fill()
    assert bank.model.loaded
    payload = pickle.dumps(bank)
    clone = pickle.loads(payload)
    assert not clone.model.loaded and torch.equal(clone.images, bank.images)
    assert len(payload) < 10 * bank.images.numel() + 100_000  # no weights inside
    assert clone.draw([1], np.random.default_rng(0)).shape == (1, 1, 28, 28)  # reloads lazily


def test_arguments_are_checked(tiny_run, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SampleBank(tmp_path / "missing")
    for name, value in (("size_per_class", 0), ("refresh_every", 0), ("refresh_size", -1)):
        with pytest.raises(ValueError, match=name):
            SampleBank(tiny_run, **{name: value})
    with pytest.raises(ValueError, match="device should be one of"):
        SampleBank(tiny_run, device="tpu")
    with pytest.raises(ValueError, match="truncation"):
        SampleBank(tiny_run, truncation=0.0)


class _WorkerProbe(Dataset):
    """Each item reports the worker it ran in, the device the bank resolves to there, and what a refresh made."""

    def __init__(self, bank: SampleBank):
        self.bank = bank

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int):
        from torch.utils.data import get_worker_info

        self.bank.refresh()  # new images from this process's seed stream
        refreshed = hashlib.sha256(self.bank.images.numpy().tobytes()).hexdigest()
        return get_worker_info().id, str(self.bank.model.resolved_device()), refreshed


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_workers_get_cpu_and_their_own_seed_streams(tiny_run, context):
    bank = SampleBank(tiny_run, size_per_class=2, device="auto", seed=3)

    def run(seed):
        loader = DataLoader(_WorkerProbe(bank), batch_size=None, num_workers=2, multiprocessing_context=context,
                            generator=torch.Generator().manual_seed(seed))
        return sorted(loader)

    first, again, other = run(0), run(0), run(1)
    unseeded = SampleBank(tiny_run, size_per_class=2, device="auto", seed=None)
    assert sorted(DataLoader(_WorkerProbe(unseeded), batch_size=None, num_workers=2, multiprocessing_context=context,
                             generator=torch.Generator().manual_seed(0))) != sorted(
        DataLoader(_WorkerProbe(SampleBank(tiny_run, size_per_class=2, device="auto", seed=0)), batch_size=None,
                   num_workers=2, multiprocessing_context=context, generator=torch.Generator().manual_seed(0)))
    assert {device for _, device, _ in first} == {"cpu"}
    seeds_by_worker = {worker: [s for w, _, s in first if w == worker] for worker in (0, 1)}
    assert seeds_by_worker[0] != seeds_by_worker[1]
    assert first == again and first != other


class _RefreshingProbe(Dataset):
    """Every item draws from a bank that refreshes every 3 draws, in whichever process it runs."""

    def __init__(self, bank: SampleBank):
        self.bank = bank

    def __len__(self) -> int:
        return 12

    def __getitem__(self, index: int):
        return self.bank.draw([index % 10], np.random.default_rng(index))[0]


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_worker_refreshes_stay_in_their_worker(tiny_run, context):
    """A bank filled in the parent is shared with the workers; their refreshes must not write into it."""
    bank = SampleBank(tiny_run, size_per_class=2, refresh_every=3, refresh_size=4, device="cpu", seed=5).fill()
    before = bank.images.clone()

    def run():
        loader = DataLoader(_RefreshingProbe(bank), batch_size=None, num_workers=2, multiprocessing_context=context,
                            generator=torch.Generator().manual_seed(0))
        return torch.stack(list(loader))

    first, again = run(), run()
    assert torch.equal(bank.images, before)  # the parent's bank is as it was
    assert torch.equal(first, again)  # so a seeded run repeats


def test_channels_last_inference_matches_the_training_layout():
    from ganaug.nets.generator import Generator

    torch.manual_seed(0)
    generator = Generator(10, 28, 3, instance_dim=8, base_channels=64, min_channels=16).eval()
    for parameter in generator.parameters():  # non-trivial conditional norms
        parameter.data.normal_(0, 0.2)
    z, labels, instance = torch.randn(5, 64), torch.arange(5), torch.randn(5, 8)
    with torch.no_grad():
        contiguous = generator(z, labels, instance)
        generator.to(memory_format=torch.channels_last)
        channels_last = generator(z, labels, instance)
    assert torch.allclose(contiguous, channels_last, atol=1e-4)
    assert not torch.equal(contiguous[0], contiguous[1])


def test_draws_from_many_threads_while_refreshing(tiny_run):
    from concurrent.futures import ThreadPoolExecutor

    bank = SampleBank(tiny_run, size_per_class=3, refresh_every=7, refresh_size=5, device="cpu", seed=0).fill()

    def draw_many(worker: int):
        rng = np.random.default_rng(worker)
        return [bank.draw_one(int(rng.integers(10)), rng).shape for _ in range(40)] + \
            [tuple(bank.draw([worker % 10, 3], rng).shape) for _ in range(10)]

    with ThreadPoolExecutor(4) as pool:
        shapes = [shape for result in pool.map(draw_many, range(4)) for shape in result]
    assert shapes.count((1, 28, 28)) == 160 and shapes.count((2, 1, 28, 28)) == 40
    assert bank.images.shape == (10, 3, 1, 28, 28)


def test_loading_a_model_leaves_the_global_rng_alone(tiny_run):
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    GANAug.from_pretrained(tiny_run, device="cpu")
    assert torch.equal(torch.rand(3), expected)
