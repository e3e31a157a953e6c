"""The training checkpoint: networks, optimizers, RNG states, counters, and the run's config, in one file.

It holds everything a resume needs to continue exactly (the model, the optimizers, every
process's RNG state, the step, the config), as nanoGPT's checkpoints do, and the description of
the EMA generator that ``GANAug.from_pretrained`` loads. No pickle: optimizer states are
flattened to named tensors plus JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganaug._util.checkpoint_file import read_checkpoint, strip_prefix, write_checkpoint
from ganaug._util.model_files import CHECKPOINT_FORMAT
from ganaug.train.distributed import DistributedContext

__all__ = ["TrainingState", "flatten_optimizer", "load_checkpoint", "read_training_checkpoint", "save_checkpoint",
           "unflatten_optimizer"]


@dataclass
class TrainingState:
    """What a checkpoint saves and a resume restores: the networks, their optimizers and the counters."""

    generator: nn.Module
    generator_ema: nn.Module
    discriminator: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    bank: dict[str, torch.Tensor] = field(default_factory=dict)  # the instance bank (bank.features, bank.labels)
    step: int = 0
    elapsed: float = 0.0  # seconds of training, across resumes
    skipped_steps: int = 0  # non-finite steps skipped
    restores: int = 0  # checkpoint restores after runs of non-finite steps
    bad_in_row: int = 0  # non-finite steps in a row (not saved)


def flatten_optimizer(optimizer: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer's state dict into named tensors and a JSON-serializable rest."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}.{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def unflatten_optimizer(optimizer: torch.optim.Optimizer, prefix: str, tensors: dict[str, torch.Tensor],
                        info: dict) -> None:
    """Load what :func:`flatten_optimizer` produced back into ``optimizer``."""
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in tensors.items():
        if name.startswith(prefix + "."):
            index, key = name[len(prefix) + 1:].split(".", 1)
            state.setdefault(int(index), {})[key] = tensor
    for index, values in info["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": info["param_groups"]})


def save_checkpoint(path: Path, state: TrainingState, context: DistributedContext, run_info: dict[str, Any],
                    model_info: dict[str, Any]) -> None:
    """Write the checkpoint (rank 0); every rank must call this, since it gathers their RNG states.

    The write is atomic, and the checkpoint it replaces is kept as ``checkpoint.prev.safetensors``
    (a hard link: no copy), the way back when the newest is damaged on disk.

    Args:
        path: the checkpoint file.
        state: the training state.
        context: this process's place in the run.
        run_info: the run info (config, classes, data), saved with it.
        model_info: the EMA generator's description, as ``GANAug`` reads it.
    """
    rng_states = context.gather_rng_states()
    if not context.is_main:
        context.barrier()
        return
    tensors: dict[str, torch.Tensor] = {}
    for prefix, module in (("g", state.generator), ("g_ema", state.generator_ema), ("d", state.discriminator)):
        tensors.update({f"{prefix}.{k}": v for k, v in module.state_dict().items()
                        if not (prefix == "d" and k.startswith("extractor."))})
    opt_g_tensors, opt_g_info = flatten_optimizer(state.opt_g, "opt_g")
    opt_d_tensors, opt_d_info = flatten_optimizer(state.opt_d, "opt_d")
    tensors.update(opt_g_tensors)
    tensors.update(opt_d_tensors)
    for rank, rng_state in enumerate(rng_states):
        tensors[f"rng.{rank}"] = rng_state
    tensors.update(state.bank)
    extractor = state.discriminator.extractor.state_dict()
    tensors.update({f"extractor.{k}": v for k, v in extractor.items()})
    info = {
        "step": state.step, "elapsed": state.elapsed, "skipped_steps": state.skipped_steps,
        "restores": state.restores, "opt_g": opt_g_info, "opt_d": opt_d_info, "scaler": state.scaler.state_dict(),
        "world_size": context.world_size, "run": run_info, "model": model_info,
    }
    write_checkpoint(path, tensors, info, CHECKPOINT_FORMAT, keep_previous=True)
    context.barrier()  # other ranks may read it (restore after non-finite steps)


def read_training_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors and info of a training checkpoint."""
    return read_checkpoint(path, CHECKPOINT_FORMAT)


def load_checkpoint(checkpoint: tuple[dict[str, torch.Tensor], dict[str, Any]], state: TrainingState,
                    context: DistributedContext, keep_counters: bool = False) -> None:
    """Load a checkpoint into the training state.

    ``keep_counters``: a restore after non-finite steps, which keeps the time spent, the counters
    and the RNG streams; otherwise (a resume) they are restored too.
    """
    tensors, info = checkpoint
    for prefix, module in (("g", state.generator), ("g_ema", state.generator_ema)):
        module.load_state_dict(strip_prefix(tensors, prefix))
    missing, unexpected = state.discriminator.load_state_dict(strip_prefix(tensors, "d"), strict=False)
    if unexpected or any(not k.startswith("extractor.") for k in missing):
        raise ValueError(f"checkpoint does not fit this discriminator: missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}")
    unflatten_optimizer(state.opt_g, "opt_g", tensors, info["opt_g"])
    unflatten_optimizer(state.opt_d, "opt_d", tensors, info["opt_d"])
    state.scaler.load_state_dict(info["scaler"])
    state.step = info["step"]
    if not keep_counters:
        state.elapsed = info["elapsed"]
        state.skipped_steps, state.restores = info["skipped_steps"], info["restores"]
        rng = tensors.get(f"rng.{context.rank}")
        if rng is not None and info["world_size"] == context.world_size:
            context.set_rng_state(rng)
