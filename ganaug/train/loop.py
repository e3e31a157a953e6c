"""``train``: the training loop, in nanoGPT's shape.

It reads top to bottom: the run directory and config; device, precision and process group; the
data; the models, built from scratch or from the checkpoint; the optimizers; then the loop (a D
step and a G step per batch, logging, samples, checkpoints). The steps themselves are in
:mod:`ganaug.train.steps`, the checkpoint in :mod:`ganaug.train.checkpoint`.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from contextlib import AbstractContextManager
from pathlib import Path

import torch
from torch import nn

from ganaug._util.files import remove_stale_temporaries
from ganaug._util.model_files import RUN_CHECKPOINT_FILE
from ganaug.data.dataset import ImageDataset
from ganaug.nets.build import build_discriminator, build_generator
from ganaug.nets.generator import to_uint8
from ganaug.nets.instances import draw_instance_features
from ganaug.nets.layers import minibatch_std_group
from ganaug.sampling.gan import GANAug, model_info
from ganaug.train.backbone import backbone_extractor, choose_backbone
from ganaug.train.batches import ClassGroups, EpochSampler, prepare_images
from ganaug.train.checkpoint import TrainingState, load_checkpoint, read_training_checkpoint, save_checkpoint
from ganaug.train.config import TrainConfig
from ganaug.train.distributed import DistributedContext, setup_distributed
from ganaug.train.instances import InstanceConditions, instance_conditions
from ganaug.train.run_dir import (
    append_metrics,
    check_run_dir,
    new_run_info,
    read_run_info,
    resumed_run_info,
    save_samples,
    truncate_metrics,
    write_run_info,
)
from ganaug.train.steps import d_step, g_step, update_ema

__all__ = ["train"]

logger = logging.getLogger(__name__)

SAMPLE_SEED_OFFSET = 12345  # the sample grids' fixed noise comes from seed + this, apart from the training stream


def train(dataset: ImageDataset, config: TrainConfig, run_dir: str | os.PathLike, resume: bool = False,
          progress: bool = True) -> GANAug | None:
    """Train a conditional GAN on ``dataset`` and return the trained :class:`ganaug.GANAug`.

    Runs on CUDA when available (mixed precision, channels_last) and otherwise on the CPU in
    fp32. Under ``torchrun`` it trains data-parallel (nccl on GPUs, gloo on CPUs) and returns the
    model on rank 0 only (None elsewhere).

    Args:
        dataset: labelled images: an :class:`ImageDataset`, or any map-style dataset of
            ``(image, label)`` (a torchvision dataset, ``ImageFolder``, ``TensorDataset``...), read
            once into memory (:meth:`ImageDataset.from_dataset`). Trained at ``config.resolution``,
            by default the supported resolution nearest the images' size, and in their channels.
        config: the run's settings; ``config.steps`` and/or ``config.minutes`` set the budget.
        run_dir: where config, checkpoints, samples and metrics go.
        resume: continue the run in ``run_dir`` exactly where its last checkpoint left off.
        progress: show a progress bar (images/s, losses, ETA).
    """
    # --- the run directory and the config --------------------------------------------------------
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config should be a TrainConfig, got {type(config).__name__}")
    if not isinstance(dataset, ImageDataset):  # a torchvision or other map-style dataset: read once, into memory
        dataset = ImageDataset.from_dataset(dataset, channels=config.channels, progress=progress)
    if len(dataset) < config.batch_size:
        raise ValueError(f"dataset has {len(dataset)} images, fewer than batch_size={config.batch_size}")
    run_dir = Path(run_dir)
    check_run_dir(run_dir, resume)

    # --- device, precision, process group ----------------------------------------------------------
    context = setup_distributed(config.device)
    try:
        device = context.device
        if context.is_main:
            remove_stale_temporaries(run_dir, recursive=True)  # left by a process killed while writing
        if config.batch_size % context.world_size:
            raise ValueError(f"batch_size={config.batch_size} should divide evenly over {context.world_size} "
                             "processes")
        config = config.with_device_defaults(device.type, read_run_info(run_dir)["config"] if resume else None)
        precision = _resolve_precision(config.precision, device)
        autocast = torch.autocast(device_type=device.type, dtype=precision,
                                  enabled=device.type == "cuda" and precision != torch.float32)
        channels_last = device.type == "cuda" and config.channels_last

        # --- data ------------------------------------------------------------------------------------
        images, labels, classes = prepare_images(dataset, config), dataset.labels.clone(), dataset.classes
        resolution, channels, num_classes = images.shape[-1], images.shape[1], len(classes)
        if context.is_main and not resume:
            _announce_data(dataset, config, resolution, channels, progress)
        torch.manual_seed(config.seed)  # the same initial weights in every process
        if resume:
            run_info, changed = resumed_run_info(run_dir, config)
        else:
            run_info, changed = new_run_info(config, dataset, images, device, context.world_size, precision), True
        if changed and context.is_main:
            write_run_info(run_dir, run_info)
        checkpoint = read_training_checkpoint(run_dir / RUN_CHECKPOINT_FILE) if resume else None

        # --- models: from scratch or from the checkpoint -------------------------------------------------
        if "backbone" not in run_info:
            prepared = ImageDataset(images, labels, classes, source=dataset.source)
            run_info["backbone"] = choose_backbone(config, run_dir, prepared, context, progress)
            if context.is_main:
                write_run_info(run_dir, run_info)
        extractor = backbone_extractor(config, run_info["backbone"], None if checkpoint is None else checkpoint[0],
                                       device)
        instances = instance_conditions(config, run_dir, extractor, images, labels, num_classes, device,
                                        context.is_main)
        instance_dim = extractor.embed_dim if instances is not None else 0
        generator_spec = config.generator_spec(num_classes, resolution, channels, instance_dim)
        generator = build_generator(generator_spec).to(device)
        discriminator = build_discriminator(
            extractor, config.discriminator_spec(num_classes, resolution, channels, instance_dim)).to(device)
        generator_ema = copy.deepcopy(generator).eval().requires_grad_(False)
        if channels_last:
            for module in (generator, discriminator, generator_ema):
                module.to(memory_format=torch.channels_last)

        def describe(step: int) -> dict:  # the EMA generator, as GANAug loads it from the checkpoint
            return model_info(generator_spec, config.backbone_spec(run_info["backbone"]["origin"]), classes, step,
                              run_info["data"], run_info["versions"])

        # --- optimizers -------------------------------------------------------------------------------
        state = TrainingState(
            generator, generator_ema, discriminator,
            opt_g=torch.optim.Adam([p for p in generator.parameters() if p.requires_grad], lr=config.lr_g,
                                   betas=config.betas),
            opt_d=torch.optim.Adam([p for p in discriminator.parameters() if p.requires_grad], lr=config.lr_d,
                                   betas=config.betas),
            scaler=torch.amp.GradScaler("cuda", enabled=precision == torch.float16),
            bank={} if instances is None else instances.bank)
        torch.manual_seed(config.seed + context.rank)  # a different noise and augmentation stream per process
        if checkpoint is not None:
            load_checkpoint(checkpoint, state, context)
            if context.is_main:
                truncate_metrics(run_dir, state.step)
        else:
            save_checkpoint(run_dir / RUN_CHECKPOINT_FILE, state, context, run_info, describe(state.step))
        saved_step = state.step  # the checkpoint on disk holds this step
        g_train, d_train = _wrap_for_training(generator, discriminator, config.compile, context)

        # --- the loop ---------------------------------------------------------------------------------
        from tqdm.auto import tqdm

        per_rank = config.batch_size // context.world_size
        sampler = EpochSampler(len(images), per_rank, context, config.seed)
        groups = ClassGroups(labels) if config.class_grouped_batches else None
        grid = _sample_grid_inputs(config, num_classes, instances)
        bar = tqdm(total=config.steps, initial=state.step, unit="step", desc="train",
                   disable=not (progress and context.is_main), dynamic_ncols=True)
        budget = None if config.minutes is None else config.minutes * 60
        window_start, window_images = time.monotonic(), 0
        done = _budget_spent(config, state, budget, context)
        while not done:
            step_start = time.monotonic()
            index = sampler.batch(state.step)
            losses = _train_step(index if groups is None else groups.group(index), images, labels, instances,
                                 g_train, d_train, state, config, context, autocast, channels_last)
            if losses is None:
                _handle_non_finite(run_dir, state, config, context)
            else:
                state.bad_in_row = 0
                update_ema(generator_ema, generator, state.step, config.ema_decay, config.ema_warmup)
            state.elapsed += time.monotonic() - step_start
            if losses is None:
                done = _budget_spent(config, state, budget, context)
                continue
            state.step += 1
            done = _budget_spent(config, state, budget, context)
            window_images += config.batch_size
            bar.update(1)
            if state.step % config.log_every == 0 or done:
                now = time.monotonic()
                metrics = {"step": state.step, **losses, "images_per_s": window_images / (now - window_start),
                           "elapsed_s": state.elapsed, "lr_g": state.opt_g.param_groups[0]["lr"],
                           "lr_d": state.opt_d.param_groups[0]["lr"], "skipped_steps": state.skipped_steps}
                window_start, window_images = now, 0
                if context.is_main:
                    append_metrics(run_dir, metrics)
                bar.set_postfix(_progress_postfix(metrics, budget, state))
            if context.is_main and state.step % config.sample_every == 0:
                save_samples(run_dir, _samples(generator_ema, grid, device), state.step, config.samples_per_class)
            if state.step % config.checkpoint_every == 0:
                save_checkpoint(run_dir / RUN_CHECKPOINT_FILE, state, context, run_info, describe(state.step))
                saved_step = state.step
        bar.close()
        if saved_step != state.step:  # so that checkpoint.prev.safetensors is the step before, not a copy
            save_checkpoint(run_dir / RUN_CHECKPOINT_FILE, state, context, run_info, describe(state.step))
        if context.is_main:
            save_samples(run_dir, _samples(generator_ema, grid, device), state.step, config.samples_per_class)
            return GANAug.from_pretrained(run_dir)
        return None
    finally:
        context.close()


def _announce_data(dataset: ImageDataset, config: TrainConfig, resolution: int, channels: int, progress: bool) -> None:
    """Say what the run trains on, and where its size and channels came from (also in the run's config.json)."""
    from tqdm.auto import tqdm

    size = "TrainConfig.resolution" if config.resolution else f"nearest to the images' {dataset.image_size[0]}x" \
        f"{dataset.image_size[1]}"
    colour = "TrainConfig.channels" if config.channels else "the data's"
    message = (f"training on {len(dataset)} images in {dataset.num_classes} classes at {resolution}x{resolution} "
               f"({size}), {channels} channel{'s' if channels > 1 else ''} ({colour}); set resolution= and "
               "channels= (--resolution, --channels) to change them")
    if progress:  # once: on the console beside the progress bars, else in the log
        tqdm.write(message)
    else:
        logger.info(message)


def _train_step(index: torch.Tensor, images: torch.Tensor, labels: torch.Tensor,
                instances: InstanceConditions | None, g_train: nn.Module, d_train: nn.Module, state: TrainingState,
                config: TrainConfig, context: DistributedContext, autocast: AbstractContextManager,
                channels_last: bool) -> dict[str, float] | None:
    """One D step and one G step on the batch ``index``; None if a non-finite value (in any process) spoiled it."""
    device = context.device
    conditions = index
    if config.mode_seeking > 0:  # the second half repeats the first half's conditions, with other noise
        conditions = torch.cat([index[:len(index) // 2], index[:len(index) - len(index) // 2]])
    batch_labels = labels[conditions].to(device)
    if instances is not None:  # IC-GAN: the real image shown to D is a same-class neighbour of the instance
        choice = torch.randint(0, instances.neighbours.shape[1], (len(index),))
        real_index = instances.neighbours[conditions, choice]
        instance = instances.features[conditions.to(instances.features.device)].to(device)
        # the null condition: a zero feature row, with any real image of the class (mode seeking: in both halves)
        dropped = _null_rows(len(index), config.instance_dropout, 2 if config.mode_seeking > 0 else 1)
        instance[dropped.to(instance.device)] = 0
        real_index[dropped] = conditions[dropped]
    else:  # class-only: the real images are those of the conditions, so their labels are batch_labels
        real_index, instance = conditions, None
    real = images[real_index].to(device, non_blocking=True).float() / 127.5 - 1
    if channels_last:
        real = real.contiguous(memory_format=torch.channels_last)
    z = torch.randn(len(index), config.z_dim, device=device)
    with autocast:
        fake = g_train(z, batch_labels, instance)
    d_module = _unwrap(d_train)
    loss_d, ok_d = d_step(d_train, d_module, real, fake, batch_labels, instance, config.diffaugment, state.opt_d,
                          state.scaler, autocast, loss=config.loss)
    loss_g, ok_g = g_step(d_module, fake, batch_labels, instance, config.diffaugment, state.opt_g, state.scaler,
                          autocast, z=z, mode_seeking=config.mode_seeking, loss=config.loss)
    state.opt_d.zero_grad(set_to_none=True)  # the G step's gradients for D's weights
    if context.all_reduce_max(torch.tensor(float(not (ok_d and ok_g)))) != 0:
        return None
    return {"loss_d": loss_d.item(), "loss_g": loss_g.item()}


def _null_rows(batch: int, share: float, parts: int = 1) -> torch.Tensor:
    """Which rows of a batch go without an instance: bool (batch,), the leading ``share`` of each of ``parts`` equal
    parts (mode seeking's two halves share their conditions), in whole groups of D's minibatch-std layers, so that
    no group mixes the null condition with instances."""
    size = batch // parts
    group = minibatch_std_group(size)  # the layer's own group size for this batch
    count = min(size, group * round(size * share / group)) if share > 0 else 0
    rows = torch.zeros(batch, dtype=torch.bool)
    for part in range(parts):
        rows[part * size:part * size + count] = True
    return rows


def _handle_non_finite(run_dir: Path, state: TrainingState, config: TrainConfig, context: DistributedContext) -> None:
    """Count a skipped step; after ``max_bad_steps`` in a row, restore the last checkpoint at lower learning rates."""
    state.skipped_steps += 1
    state.bad_in_row += 1
    logger.warning("non-finite loss or gradient at step %d: step skipped (%d in a row, %d in all)", state.step,
                   state.bad_in_row, state.skipped_steps)
    if state.bad_in_row < config.max_bad_steps:
        return
    if state.restores >= config.max_restores:
        raise RuntimeError(f"training keeps producing non-finite values: {state.restores} restores with lowered "
                           f"learning rates did not help (step {state.step}); check the data and the config")
    load_checkpoint(read_training_checkpoint(run_dir / RUN_CHECKPOINT_FILE), state, context, keep_counters=True)
    if context.is_main:
        truncate_metrics(run_dir, state.step)
    factor = config.lr_decay_on_restore
    for optimizer in (state.opt_g, state.opt_d):
        for group in optimizer.param_groups:
            group["lr"] *= factor
    state.restores += 1
    state.bad_in_row = 0
    logger.warning("%d non-finite steps in a row: restored the checkpoint of step %d and lowered the learning rates "
                   "by %.2fx (lr_g=%.2e, lr_d=%.2e)", config.max_bad_steps, state.step, factor,
                   state.opt_g.param_groups[0]["lr"], state.opt_d.param_groups[0]["lr"])


def _budget_spent(config: TrainConfig, state: TrainingState, budget: float | None,
                  context: DistributedContext) -> bool:
    if config.steps is not None and state.step >= config.steps:
        return True
    if budget is None:
        return False
    return bool(context.all_reduce_max(torch.tensor(float(state.elapsed >= budget))))


def _progress_postfix(metrics: dict, budget: float | None, state: TrainingState) -> dict[str, str]:
    postfix = {"d": f"{metrics['loss_d']:.3f}", "g": f"{metrics['loss_g']:.3f}",
               "img/s": f"{metrics['images_per_s']:.0f}"}
    if budget is not None:
        postfix["left"] = f"{max(0.0, budget - state.elapsed) / 60:.1f}min"
    return postfix


def _sample_grid_inputs(config: TrainConfig, num_classes: int, instances: InstanceConditions | None,
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Fixed noise, labels and instance features of the sample grids: one row of each class."""
    rng = torch.Generator().manual_seed(config.seed + SAMPLE_SEED_OFFSET)
    z = torch.randn(config.samples_per_class * num_classes, config.z_dim, generator=rng)
    grid_labels = torch.arange(num_classes).repeat_interleave(config.samples_per_class)
    instance = None if instances is None or config.instance_dropout > 0 else draw_instance_features(
        instances.bank["bank.features"], instances.bank["bank.labels"], grid_labels, rng)
    return z, grid_labels, instance


@torch.no_grad()
def _samples(generator_ema: nn.Module, grid: tuple, device: torch.device) -> torch.Tensor:
    z, grid_labels, instance = grid
    return to_uint8(generator_ema(z.to(device), grid_labels.to(device),
                                  None if instance is None else instance.to(device)))


def _wrap_for_training(generator: nn.Module, discriminator: nn.Module, compile_generator: bool,
                       context: DistributedContext) -> tuple[nn.Module, nn.Module]:
    if compile_generator:
        generator = torch.compile(generator)
    if context.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [context.device.index] if context.device.type == "cuda" else None
        generator = DDP(generator, device_ids=ids, broadcast_buffers=False)
        discriminator = DDP(discriminator, device_ids=ids, broadcast_buffers=False)
    return generator, discriminator


def _resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    if device.type != "cuda" or precision == "fp32":
        return torch.float32
    if precision == "fp16":
        return torch.float16
    if precision == "auto" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def _unwrap(module: nn.Module) -> nn.Module:
    return module.module if hasattr(module, "module") else module
