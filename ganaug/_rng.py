"""Random streams that belong to one block of code, so that library calls leave the caller's RNGs as they were."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["seeded"]


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
