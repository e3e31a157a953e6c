"""Device and process-group setup, done once at the top of training.

Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) a process group is started: nccl
when the process has a GPU, gloo on CPUs. Alone, everything here is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ganaug._util.validate import resolve_device

__all__ = ["DistributedContext", "setup_distributed"]


@dataclass
class DistributedContext:
    """This process's place in the run: device, rank, world size, and the collectives training uses."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def all_reduce_max(self, value: torch.Tensor) -> float:
        """The largest ``value`` over all processes (the value itself when alone)."""
        if self.world_size == 1:
            return float(value)
        tensor = value.detach().float().reshape(1).to(self._collective_device())
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return float(tensor)

    def gather_rng_states(self) -> list[torch.Tensor]:
        """Every process's torch RNG state (CPU, then CUDA when used), as uint8 tensors, rank order."""
        state = torch.get_rng_state()
        if self.device.type == "cuda":
            state = torch.cat([state, torch.cuda.get_rng_state(self.device)])
        if self.world_size == 1:
            return [state]
        gathered: list = [None] * self.world_size
        dist.all_gather_object(gathered, state.tolist())
        return [torch.tensor(s, dtype=torch.uint8) for s in gathered]

    def set_rng_state(self, state: torch.Tensor) -> None:
        cpu_size = torch.get_rng_state().numel()
        torch.set_rng_state(state[:cpu_size].clone())
        if self.device.type == "cuda" and state.numel() > cpu_size:
            torch.cuda.set_rng_state(state[cpu_size:].clone(), self.device)

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()

    def _collective_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")


def setup_distributed(device: str | None = None) -> DistributedContext:
    """Pick the device and, under torchrun, join the process group."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    target = resolve_device(device)
    if world_size <= 1:
        return DistributedContext(device=target)
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if target.type == "cuda":
        torch.cuda.set_device(local_rank)
        target = torch.device("cuda", local_rank)
        backend = "nccl"
    else:
        backend = "gloo"
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend=backend)
    return DistributedContext(device=target, rank=rank, world_size=world_size, owns_group=owns)
