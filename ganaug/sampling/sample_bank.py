"""A bank of pre-generated samples per class, which augmentation transforms draw from.

Generating one image per augmented sample would make a data pipeline as slow as the generator;
the bank amortizes it. It holds ``size_per_class`` images for every class (bounded memory), made
in batches from the EMA generator, and replaces ``refresh_size`` of them, oldest first, every
``refresh_every`` draws: in the calling thread, or in a background thread that swaps the new
images in when they are ready.

It is built for DataLoader workers. The model is loaded lazily from a path, in the process that
uses it, so the bank (and a transform holding it) pickles as a few strings and numbers plus the
bank images. A bank filled before the workers start is shared with them (copy-on-write under
fork, shared memory under spawn). Each process draws refresh seeds from its own stream, derived
from ``seed`` and the DataLoader worker's seed, so workers never regenerate identical images and
a seeded DataLoader run is reproducible. ``device="auto"`` generates on the GPU in the main
process and on the CPU inside workers (CUDA cannot run in a forked worker).
"""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import get_worker_info

from ganaug._util.images import Normalization, fit_images
from ganaug._util.rng import SEED_SPACE, random_integers
from ganaug._util.validate import as_labels, check_positive_int, check_seed, check_truncation
from ganaug.sampling.gan import GANAug
from ganaug.sampling.lazy import LazyGAN

__all__ = ["BANK_SIZE", "REFRESH_EVERY", "REFRESH_SIZE", "SampleBank"]

# The defaults, for the bank and for the transforms that hold one. Over a run of 100k draws they show
# about as many distinct images as 128 per class refreshed every 4096 draws did (3,000 for 10 classes
# on 2 workers), at a quarter of the refresh cost per draw: about 4 us on a CPU worker at 28 px.
BANK_SIZE = 256
REFRESH_EVERY = 16384
REFRESH_SIZE = 64


class SampleBank:
    """Per-class synthetic images for augmentation, refreshed as they are drawn.

    Args:
        model: a run directory or an exported model (loaded lazily, in each process that uses
            it), or a loaded :class:`GANAug`.
        size_per_class: images held per class; memory is
            ``num_classes * size_per_class * C * H * W`` bytes.
        refresh_every: draws between refreshes; None keeps the first images for good.
        refresh_size: images regenerated per refresh (one generator batch).
        background: refresh in a background thread instead of inside :meth:`draw`.
        device: "cpu", "cuda", or "auto" (the GPU in the main process when there is one, the
            CPU in DataLoader workers).
        seed: makes the bank's images reproducible. Inside DataLoader workers it is combined
            with the worker's seed, so workers (and epochs) differ and a DataLoader with a seeded
            ``generator`` is reproducible. None: drawn from torch's global RNG.
        truncation: in (0, 1]; noise scale of the samples.
    """

    def __init__(self, model: str | os.PathLike | GANAug, size_per_class: int = BANK_SIZE,
                 refresh_every: int | None = REFRESH_EVERY, refresh_size: int = REFRESH_SIZE, background: bool = False,
                 device: str = "auto", seed: int | None = None, truncation: float = 1.0):
        self.size_per_class = check_positive_int("size_per_class", size_per_class)
        self.refresh_every = None if refresh_every is None else check_positive_int("refresh_every", refresh_every)
        self.refresh_size = check_positive_int("refresh_size", refresh_size)
        self.seed = check_seed("seed", seed, allow_none=True)
        self.truncation = check_truncation(truncation)
        self.model = LazyGAN(model, device)
        self.background = background
        self._images: torch.Tensor | None = None  # uint8 (num_classes, size_per_class, C, H, W)
        self._next_slot = 0  # the oldest slot, refreshed next (slot-major: every class in turn)
        self._draws = 0
        self._version = 0  # counts changes of the images: draw_batch's copies on other devices follow it
        self._init_process_state()

    # --- per-process state (locks, threads and RNG streams do not cross fork or pickle) --------

    def _init_process_state(self) -> None:
        self._pid = os.getpid()
        self._owns_images = False  # a bank that came by fork or pickle may be shared: copied on first write
        self._lock = threading.RLock()
        self._seeds: torch.Generator | None = None
        self._thread: threading.Thread | None = None
        self._wanted = threading.Event()
        self._stop = threading.Event()
        self._numpy: np.ndarray | None = None  # draw_one's view of _images (see there)
        self._numpy_of: torch.Tensor | None = None
        self._copies: dict[tuple, tuple[int, torch.Tensor]] = {}  # draw_batch's (version, images) per request

    def _check_process(self) -> None:
        if os.getpid() != self._pid:  # forked: the parent's lock, thread and seed stream are not ours
            self._init_process_state()

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items()
                if k not in ("_lock", "_seeds", "_thread", "_wanted", "_stop", "_pid", "_owns_images", "_numpy",
                             "_numpy_of", "_copies")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._init_process_state()

    def close(self) -> None:
        """Stop the background thread, if any."""
        self._stop.set()
        self._wanted.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._thread = None

    @property
    def gan(self) -> GANAug:
        """The generator, loaded on first use in this process."""
        self._check_process()
        return self.model.gan

    # --- seeds ----------------------------------------------------------------------------------

    def _next_seeds(self, num: int) -> torch.Tensor:
        """Per-image generation seeds from this process's stream."""
        if self._seeds is None:
            info = get_worker_info()
            if info is not None:  # DataLoader gives each worker (and each epoch) its own seed
                # the bank's seed as a spawn key: seed 0 and no seed give different streams
                key = () if self.seed is None else (self.seed,)
                base = int(np.random.SeedSequence(info.seed, spawn_key=key).generate_state(1, np.uint64)[0])
            elif self.seed is not None:
                base = self.seed
            else:
                base = int(torch.randint(SEED_SPACE, (1,)).item())
            self._seeds = torch.Generator().manual_seed(base % SEED_SPACE)
        return torch.randint(SEED_SPACE, (num,), generator=self._seeds)

    def _generate(self, slots: torch.Tensor) -> torch.Tensor:
        """Fresh images for flat slot numbers (slot-major): uint8 (len(slots), C, H, W)."""
        gan = self.gan
        labels = slots % gan.num_classes
        return gan.sample_seeded(labels, self._next_seeds(len(slots)), truncation=self.truncation)

    # --- filling and drawing --------------------------------------------------------------------

    @property
    def filled(self) -> bool:
        return self._images is not None

    def fill(self) -> SampleBank:
        """Generate the whole bank now (it is otherwise made on the first draw). Returns self."""
        if self._images is not None:
            return self
        self._check_process()
        with self._lock:
            if self._images is None:
                gan = self.gan
                total = gan.num_classes * self.size_per_class
                images = torch.cat([self._generate(torch.arange(i, min(i + self.refresh_size, total)))
                                    for i in range(0, total, self.refresh_size)])
                # slot-major order: flat slot s holds class s % num_classes, position s // num_classes
                self._images = images.view(self.size_per_class, gan.num_classes, *images.shape[1:]).transpose(0, 1)
                self._images = self._images.contiguous()
                self._owns_images = True
        return self

    @property
    def images(self) -> torch.Tensor:
        """The bank (filled first if it is not): uint8 (num_classes, size_per_class, C, H, W). Do not write into it."""
        return self.fill()._images

    @property
    def background_running(self) -> bool:
        """Whether this process's background refresh thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the bank's images (the model's output)."""
        return tuple(self.fill()._images.shape[2:])

    @property
    def num_classes(self) -> int:
        return self._images.shape[0] if self._images is not None else self.gan.num_classes

    def draw(self, labels: Sequence[int] | torch.Tensor, rng: np.random.Generator | torch.Generator | None = None,
             positions: Sequence[int] | None = None,
             ) -> torch.Tensor:
        """Random bank images of the given classes: uint8 (N, C, H, W).

        Args:
            labels: N class labels.
            rng: picks the images: a numpy Generator (albumentations), a torch Generator, or None
                for torch's global RNG (torchvision).
        """
        # Plain Python on purpose: a per-sample transform calls this for one image, where each
        # small torch op would cost more than the copy itself.
        self._check_process()
        self.fill()
        labels = as_labels(labels, self._images.shape[0])
        if positions is None:
            positions = random_integers(self.size_per_class, len(labels), rng).tolist()
        else:
            positions = [int(position) % self.size_per_class for position in positions]
            if len(positions) != len(labels):
                raise ValueError(f"positions should hold one bank position per label ({len(labels)}), "
                                 f"got {len(positions)}")
        with self._lock:
            picked = [self._images[label, position] for label, position in zip(labels, positions, strict=True)]
            images = torch.stack(picked) if picked else self._images[:0, 0].clone()
        self._count_draws(len(labels))
        return images

    def draw_one(self, label: int, rng: np.random.Generator | torch.Generator | None = None,
                 position: int | None = None) -> np.ndarray:
        """One random bank image of class ``label`` as a numpy uint8 (C, H, W) copy: the per-sample fast path.

        ``position`` picks the image (modulo ``size_per_class``) instead of ``rng``.
        """
        # A few microseconds in all: a per-sample transform calls this for every augmented image.
        if os.getpid() != self._pid:
            self._init_process_state()
        if self._images is None:
            self.fill()
        if not 0 <= label < self._images.shape[0]:
            as_labels(label, self._images.shape[0], name="label")
        if position is not None:
            position = int(position) % self.size_per_class
        elif isinstance(rng, np.random.Generator):
            position = int(rng.integers(self.size_per_class))
        else:
            position = int(torch.randint(self.size_per_class, (1,), generator=rng))
        with self._lock:
            images = self._images
            if self._numpy_of is not images:  # a numpy view of the bank, made again when the bank is replaced
                self._numpy, self._numpy_of = images.numpy(), images
            image = self._numpy[label, position].copy()
            due = self._tick(1)
        if due:
            self._refresh_due()
        return image

    def draw_batch(self, labels: torch.Tensor, positions: torch.Tensor, device: torch.device | str | None = None,
                   shape: tuple[int, int, int] | None = None, normalize: Normalization | None = None,
                   ) -> torch.Tensor:
        """Bank images by class and position, in one indexing operation: the batch path after the DataLoader.

        Args:
            labels: int64 (N,) class labels, checked by the caller.
            positions: int64 (N,) bank positions in ``[0, size_per_class)``.
            device: where the images are wanted.
            shape: ``(C, H, W)`` wanted, when it is not the bank's (:func:`fit_images`).
            normalize: the chain's normalization, to draw float32 normalized images.

        A copy of the bank as asked for (on ``device``, fitted, normalized) is kept and made again
        after a refresh changes the images, so each batch costs one gather; uint8 at the bank's
        own shape on the CPU indexes the bank itself.

        Returns:
            uint8 (N, C, H, W) on ``device``, or float32 with ``normalize``.
        """
        self._check_process()
        self.fill()
        device = torch.device("cpu") if device is None else torch.device(device)
        with self._lock:
            if shape is not None and tuple(shape) == tuple(self._images.shape[2:]):
                shape = None
            if device.type == "cpu" and shape is None and normalize is None:
                images = self._images.flatten(0, 1)
            else:
                key = (device, shape, normalize)
                version, images = self._copies.get(key, (None, None))
                if version != self._version:  # flat (classes * size_per_class, C, H, W), class-major
                    images = self._images.to(device).flatten(0, 1)
                    if shape is not None:
                        images = fit_images(images, shape[0], tuple(shape[1:]))
                    if normalize is not None:
                        images = normalize.apply(images)
                    self._copies[key] = (self._version, images)
            # one flat index: a quarter of the cost of indexing by (class, position) tensors
            picked = images.index_select(0, (labels * self.size_per_class + positions).to(images.device))
        self._count_draws(len(labels))
        return picked

    def _count_draws(self, num: int) -> None:
        """Count draws; refresh (now, or by waking the background thread) when ``refresh_every`` is reached."""
        with self._lock:
            due = self._tick(num)
        if due:
            self._refresh_due()

    def _tick(self, num: int) -> bool:
        """Count ``num`` draws (the caller holds the lock); whether a refresh is due now."""
        self._draws += num
        if self.refresh_every is not None and self._draws >= self.refresh_every:
            self._draws = 0
            return True
        return False

    def _refresh_due(self) -> None:
        if self.background:
            self._ensure_thread()
            self._wanted.set()
        else:
            self.refresh()

    def refresh(self) -> None:
        """Replace the ``refresh_size`` oldest images with new ones (in this process's copy of the bank)."""
        self._check_process()
        self.fill()
        with self._lock:
            total = self._images.shape[0] * self.size_per_class
            slots = (self._next_slot + torch.arange(min(self.refresh_size, total))) % total
            self._next_slot = int(slots[-1] + 1) % total
        fresh = self._generate(slots)  # outside the lock: draws go on meanwhile
        with self._lock:
            if not self._owns_images or self._images.is_shared():
                # the images may be shared with other processes (shared memory under spawn, pages under
                # fork): write into a copy of our own, so that no process changes what another draws
                self._images = self._images.clone()
                self._owns_images = True
            num_classes = self._images.shape[0]
            self._images[slots % num_classes, slots // num_classes] = fresh
            self._version += 1

    def _ensure_thread(self) -> None:
        self._check_process()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._refresh_loop, name="ganaug-sample-bank", daemon=True)
                _stop_at_exit(self)
                self._thread.start()

    def _refresh_loop(self) -> None:
        while not self._stop.is_set():
            self._wanted.wait()
            self._wanted.clear()
            if self._stop.is_set():
                return
            self.refresh()

    # --- variants -------------------------------------------------------------------------------

    def variants(self, images: torch.Tensor, labels: Sequence[int] | None, seed: int) -> torch.Tensor:
        """Instance-conditioned variants of ``images`` (uint8 or float (N, C, H, W)): uint8 (N, C', R, R).

        ``labels`` None: inferred from the images' features.
        """
        return self.gan.sample_like(images, seed=seed, labels=labels)

    def __repr__(self) -> str:
        return (f"SampleBank({self.model!r}, size_per_class={self.size_per_class}, refresh_every={self.refresh_every}, "
                f"refresh_size={self.refresh_size}, background={self.background}, device={self.model.device!r})")



# Background threads are stopped before the process exits. A daemon thread still inside a generator
# pass while the interpreter shuts down can abort the process (spawned DataLoader workers finalize
# fully when they end), and the DataLoader then reports a worker "killed by signal: Aborted".
_RUNNING: weakref.WeakSet[SampleBank] = weakref.WeakSet()
_EXIT_HOOK_PID: list[int] = []  # the process whose exit hook is registered


def _stop_at_exit(bank: SampleBank) -> None:
    _RUNNING.add(bank)
    if os.getpid() not in _EXIT_HOOK_PID:
        _EXIT_HOOK_PID[:] = [os.getpid()]
        try:  # runs in threading's shutdown, before the interpreter finalizes (also in multiprocessing children)
            threading._register_atexit(_stop_running)
        except (AttributeError, RuntimeError):  # another Python, or shutting down already
            atexit.register(_stop_running)


def _stop_running() -> None:
    for bank in list(_RUNNING):
        if bank._pid == os.getpid():
            bank.close()
