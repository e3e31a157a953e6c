"""Random streams: seeded ``torch.Generator`` objects, and blocks of code that leave the caller's RNGs alone."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from ganaug._util.validate import check_seed

__all__ = ["SEED_SPACE", "process_rank", "random_integers", "rank_generator", "seeded", "torch_generator"]

SEED_SPACE = 2**62  # seeds drawn for sub-streams lie in [0, SEED_SPACE): positive in an int64, any platform


def torch_generator(seed: int | None, name: str = "seed") -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed`` (checked, as the argument ``name``); None seeds it from the
    operating system's entropy."""
    seed = check_seed(name, seed, allow_none=True)
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


def process_rank() -> int:
    """This process's rank in a ``torch.distributed`` job (``RANK`` before the group is set up); 0 alone."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def rank_generator(seed: int, name: str = "seed") -> torch.Generator:
    """A CPU ``torch.Generator`` for this process's own stream of ``seed``: rank r of a distributed job draws the
    stream ``(seed, r)``, so ranks never draw alike, and the same seed and rank give the same draws."""
    seed = check_seed(name, seed)
    state = np.random.SeedSequence(seed, spawn_key=(process_rank(),)).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state) % SEED_SPACE)


def random_integers(high: int, size: int, rng: np.random.Generator | torch.Generator | None) -> np.ndarray:
    """``size`` integers in ``[0, high)`` from a numpy or torch generator (None: torch's global RNG)."""
    if isinstance(rng, np.random.Generator):
        return rng.integers(0, high, size=size, dtype=np.int64)
    return torch.randint(high, (size,), generator=rng).numpy()


@contextmanager
def seeded(seed: int | None, device: torch.device | str | None = None) -> Iterator[None]:
    """Run a block on its own stream: the CPU generator (and ``device``'s, when it is a CUDA device).

    Those generators are seeded with ``seed`` (None leaves them as they are) and restored when the
    block ends. Unlike ``torch.manual_seed``, no other CUDA generator is touched.
    """
    device = torch.device(device) if device is not None else torch.device("cpu")
    cuda = []
    if device.type == "cuda":
        cuda = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=cuda):
        if seed is not None:
            torch.random.default_generator.manual_seed(seed)
            for index in cuda:
                with torch.cuda.device(index):
                    torch.cuda.manual_seed(seed)
        yield
