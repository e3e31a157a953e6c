"""Concurrency: DataLoader workers under fork, spawn and forkserver, and threads sharing one model.

One dataset applies every way of use at once (both adapters, each mode, a bank refreshed every
few draws, and one refreshing in a background thread), so each start method needs one
DataLoader. What it shows:
- the same seed gives the same stream, under every start method (the banks are filled in the
  workers, from the bank seed and the worker's seed, so fork, spawn and forkserver agree);
- a different seed gives a different stream;
- no worker deadlocks (the DataLoader's timeout would fail the test);
- memory stays bounded while the banks refresh (the bank's size is fixed; the workers' resident
  memory stops growing).
"""

from __future__ import annotations

import os
import threading

import albumentations as A
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info
from torchvision.transforms import v2

import ganaug
from ganaug import albumentations as gan_albumentations
from ganaug import transforms as gan_transforms
from ganaug.sampling.sample_bank import SampleBank

MODES = ("replace", "mix", "variant")
BANK = dict(bank_size=3, refresh_every=4, refresh_size=8, bank_seed=7)  # a refresh every 4 draws
WORKERS, ITEMS, EPOCHS = 4, 24, 2


def _resident_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class EveryWayOfUse(Dataset):
    """Each item: the image through each (adapter, mode) pipeline, plus the worker's bank sizes and memory."""

    def __init__(self, checkpoint):
        self.albumentations = {mode: A.Compose([gan_albumentations.GANAugment(checkpoint, mode=mode, p=0.75, **BANK)],
                                               seed=5) for mode in MODES}
        self.torchvision = {mode: v2.Compose([gan_transforms.GANAugment(checkpoint, mode=mode, p=0.75, **BANK)])
                            for mode in MODES}
        # refreshed by a thread: its timing decides which images are drawn, so it is left out of the stream
        self.background = A.Compose([gan_albumentations.GANAugment(checkpoint, mode="replace", p=1.0, background=True,
                                                                   **BANK)], seed=5)
        rng = np.random.default_rng(0)
        self.images = rng.integers(0, 256, (ITEMS, 28, 28), dtype=np.uint8)

    def banks(self):
        yield from (c.transforms[0].bank for c in (*self.albumentations.values(), self.background))
        yield from (c.transforms[0].bank for c in self.torchvision.values())

    def __len__(self):
        return ITEMS

    def __getitem__(self, index):
        image, label = self.images[index], index % 10
        stream = {f"albumentations/{mode}": compose(image=image, class_label=label)["image"]
                  for mode, compose in self.albumentations.items()}
        stream.update({f"torchvision/{mode}": compose(torch.from_numpy(image)[None], label)[0].numpy()[0]
                       for mode, compose in self.torchvision.items()})
        self.background(image=image, class_label=label)
        bank_bytes = sorted({bank._images.nbytes for bank in self.banks() if bank.filled})
        return {"stream": stream, "worker": get_worker_info().id, "bank_bytes": bank_bytes,
                "resident": _resident_bytes()}


def _run(dataset, context, seed):
    loader = DataLoader(dataset, batch_size=None, num_workers=WORKERS, multiprocessing_context=context,
                        worker_init_fn=gan_albumentations.worker_init_fn, persistent_workers=True, timeout=120,
                        generator=torch.Generator().manual_seed(seed))
    epochs = [list(loader) for _ in range(EPOCHS)]  # a deadlocked worker fails here, after the timeout
    return epochs


@pytest.fixture(scope="module")
def runs(tiny_run):
    dataset = EveryWayOfUse(tiny_run)  # the banks are not filled here: each worker fills its own
    return {(context, seed): _run(dataset, context, seed)
            for context, seed in (("fork", 0), ("spawn", 0), ("forkserver", 0), ("fork", 1))}


def _streams(epochs):
    return [{key: item["stream"][key] for key in item["stream"]} for epoch in epochs for item in epoch]


def _same(a, b):
    return all(np.array_equal(x[key], y[key]) for x, y in zip(a, b, strict=True) for key in x)


@pytest.mark.parametrize("context", ["spawn", "forkserver"])
def test_the_same_seed_gives_the_same_stream_under_every_start_method(runs, context):
    assert _same(_streams(runs["fork", 0]), _streams(runs[context, 0]))


def test_a_different_seed_gives_a_different_stream_in_every_way_of_use(runs):
    first, other = _streams(runs["fork", 0]), _streams(runs["fork", 1])
    for key in first[0]:
        assert not all(np.array_equal(a[key], b[key]) for a, b in zip(first, other, strict=True)), key


def test_the_epochs_differ_and_every_worker_served_items(runs):
    for epochs in runs.values():
        assert {item["worker"] for item in epochs[0]} == set(range(WORKERS))
        first, second = _streams(epochs[:1]), _streams(epochs[1:])
        assert not _same(first, second)


def test_memory_stays_bounded_while_the_banks_refresh(runs):
    for (context, _), epochs in runs.items():
        items = [item for epoch in epochs for item in epoch]
        sizes = {size for item in items for size in item["bank_bytes"]}
        assert sizes == {10 * BANK["bank_size"] * 28 * 28}, f"a bank grew as it refreshed: {sizes}"
        for worker in range(WORKERS):
            resident = [item["resident"] for item in items if item["worker"] == worker]
            middle, last = resident[len(resident) // 2], resident[-1]
            # dozens of refreshes between them; growth would show as tens of MB
            assert last - middle < 16 * 2**20, (context, worker, middle, last)


def _in_threads(work, num: int = 8, timeout: float = 120) -> None:
    """Run ``work(i)`` for i in range(num) in threads started together; fail on any error or a thread still alive."""
    start, errors = threading.Barrier(num), []

    def guarded(i):
        try:
            start.wait()
            work(i)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(num)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not errors and not any(thread.is_alive() for thread in threads), errors


def test_threads_sampling_one_model_at_once_get_what_they_would_alone(tiny_run):
    gan = ganaug.GANAug.from_pretrained(tiny_run)
    expected = {seed: gan.sample(12, seed=seed) for seed in range(8)}
    expected_like = gan.sample_like(expected[0][:4], seed=3)
    results = {}

    def work(seed):
        for _ in range(3):
            results[seed] = gan.sample(12, seed=seed)
            results[seed, "like"] = gan.sample_like(expected[0][:4], seed=3)

    _in_threads(work)
    assert all(torch.equal(results[seed], expected[seed]) for seed in range(8))
    assert all(torch.equal(results[seed, "like"], expected_like) for seed in range(8))


def test_threads_calling_one_albumentations_transform_fill_its_bank_once(tiny_run, monkeypatch):
    """The bank is made with the transform and fills under its lock: threads do not each fill their own."""
    generated = []
    real_generate = SampleBank._generate

    def counting(self, slots):
        generated.append(len(slots))
        return real_generate(self, slots)

    monkeypatch.setattr(SampleBank, "_generate", counting)
    augment = gan_albumentations.GANAugment(tiny_run, mode="replace", p=1.0, bank_size=4, refresh_every=None,
                                            refresh_size=8)
    image = np.zeros((28, 28), np.uint8)
    results = []
    _in_threads(lambda seed: results.append(A.Compose([augment], seed=seed)(image=image, class_label=seed % 10)))
    assert len(results) == 8
    assert sum(generated) == 10 * 4  # one bank of 4 per class, not one per thread
