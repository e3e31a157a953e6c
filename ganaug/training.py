"""Training: config, device/precision/distributed setup, the D and G steps, checkpoints and resume.

Reads top to bottom: :class:`TrainConfig`; :func:`train`, which sets up once and runs the loop;
then the pieces it calls. A run directory holds ``config.json``, ``checkpoint.safetensors``
(written atomically), ``metrics.jsonl``, ``samples/`` and, when the extractor was pretrained
here, ``extractor.safetensors``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ganaug._io import atomic_path, save_image_grid
from ganaug.checkpoint import flatten_optimizer, read_checkpoint, strip_prefix, unflatten_optimizer, write_checkpoint
from ganaug.data import ImageDataset, convert_images
from ganaug.diffaugment import diff_augment
from ganaug.distributed import DistributedContext, setup_distributed
from ganaug.environment import package_versions
from ganaug.features import FeatureExtractor
from ganaug.models import SUPPORTED_RESOLUTIONS, Generator, ProjectedDiscriminator, draw_instance_features, to_uint8
from ganaug.weights import WeightsUnavailableError

__all__ = ["TrainConfig", "train"]

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.safetensors"
INSTANCE_FILE = "instance_features.safetensors"


@dataclass
class TrainConfig:
    """Everything that decides a training run. Saved as ``config.json`` in the run directory."""

    # Budget: stop after `steps` optimizer steps or `minutes` of training, whichever comes first.
    steps: int | None = None
    minutes: float | None = None
    # Data: images are resized to `resolution` and converted to `channels` (default: as the dataset).
    resolution: int | None = None
    channels: int | None = None
    # Generator.
    z_dim: int = 64
    embed_dim: int = 64
    g_channels: int = 128  # width of the first, lowest-resolution block; halves per block (CPU cost grows ~square)
    g_min_channels: int = 32
    instance_conditioning: bool = True  # IC-GAN: condition on pooled backbone features of a real image
    instance_neighbours: int = 8  # real images for D come from this many same-class nearest neighbours
    bank_per_class: int = 256  # instance features kept per class for class-conditional sampling
    # Discriminator backbone and heads.
    backbone: str = "resnet10t"  # chosen by benchmarks/sweep.py (docs/benchmarks.md)
    backbone_weights: str = "auto"  # "auto" (hub/cache, else pretrain here), "hub", "pretrain", "random", or a path
    backbone_out_indices: tuple[int, ...] = (1, 2, 3)
    backbone_input_size: int = 32  # the main CPU cost knob
    pretrain_epochs: int = 1  # when the backbone is pretrained on the training data
    mixing_channels: int = 64
    d_channels: int = 64
    pixel_head: bool = True  # a head on raw pixels, so artifacts the frozen features miss are penalized
    # Optimization.
    batch_size: int = 64  # global; split across processes under torchrun
    lr_g: float = 2e-4
    lr_d: float = 8e-4  # two time-scale update rule: D learns 4x faster (benchmarks/results/sweep.json)
    betas: tuple[float, float] = (0.0, 0.99)
    ema_decay: float = 0.999
    diffaugment: str = "color,translation,cutout"
    # Runtime.
    seed: int = 0
    device: str | None = None  # default: cuda when available
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU), fp32, bf16, fp16
    channels_last: bool = True  # on CUDA
    compile: bool = False  # torch.compile the generator and the heads
    checkpoint_every: int = 250  # steps
    sample_every: int = 500  # steps
    log_every: int = 25  # steps
    max_bad_steps: int = 4  # non-finite steps in a row before restoring the last checkpoint
    lr_decay_on_restore: float = 0.5
    max_restores: int = 3  # then training stops with an error instead of looping
    extra: dict = field(default_factory=dict)  # free-form notes recorded with the run

    def __post_init__(self) -> None:
        if self.steps is None and self.minutes is None:
            raise ValueError("TrainConfig needs a budget: steps=N or minutes=M (or both)")
        if self.steps is not None and (not isinstance(self.steps, int) or self.steps < 1):
            raise ValueError(f"steps should be a positive int or None, got {self.steps!r}")
        if self.minutes is not None and self.minutes <= 0:
            raise ValueError(f"minutes should be positive or None, got {self.minutes!r}")
        if self.resolution is not None and self.resolution not in SUPPORTED_RESOLUTIONS:
            raise ValueError(f"resolution should be one of {SUPPORTED_RESOLUTIONS}, got {self.resolution!r}")
        if self.channels not in (None, 1, 3):
            raise ValueError(f"channels should be 1, 3 or None, got {self.channels!r}")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ValueError(f"precision should be auto, fp32, bf16 or fp16, got {self.precision!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 2:
            raise ValueError(f"batch_size should be an int >= 2, got {self.batch_size!r}")
        self.backbone_out_indices = tuple(self.backbone_out_indices)
        self.betas = tuple(self.betas)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown TrainConfig fields: {sorted(unknown)}")
        return cls(**values)


def train(dataset: ImageDataset, config: TrainConfig, run_dir: str | os.PathLike, resume: bool = False,
          progress: bool = True):
    """Train a conditional GAN on ``dataset`` and return the trained :class:`ganaug.GANAug`.

    Runs on CUDA when available (mixed precision, channels_last) and otherwise on the CPU in
    fp32. Under ``torchrun`` it trains data-parallel (nccl on GPUs, gloo on CPUs).

    Args:
        dataset: labelled images; resized to ``config.resolution`` if that is set.
        config: the run's settings; ``config.steps`` and/or ``config.minutes`` set the budget.
        run_dir: where config, checkpoints, samples and metrics go.
        resume: continue the run in ``run_dir`` exactly where its last checkpoint left off.
        progress: show a progress bar (images/s, losses, ETA).
    """
    from ganaug.gan import GANAug

    run_dir = Path(run_dir)
    context = setup_distributed(config.device)
    try:
        trainer = _Trainer(dataset, config, run_dir, context, resume, progress)
        trainer.run(progress=progress)
        if context.is_main:
            return GANAug.from_pretrained(run_dir)
        return None
    finally:
        context.close()


def _saved_config_for_resume(saved: dict, run_dir: Path) -> dict:
    """A run's saved config, completed with the defaults of fields added to TrainConfig since it started.

    A run started by an older ganaug resumes when the fields added since are left at their
    defaults (a non-default value is a change, which the caller reports; a default that changes
    the networks' shape is reported when the checkpoint is loaded). Fields this ganaug does not
    know mean that a newer ganaug started the run.
    """
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(saved) - set(fields))
    if unknown:
        raise ValueError(f"cannot resume {str(run_dir)!r}: its config has fields this ganaug does not know "
                         f"({unknown}); it was started by a newer ganaug")
    added = [name for name in fields if name not in saved]
    if not added:
        return saved
    defaults = TrainConfig(steps=1)  # any budget: only the added fields' defaults are read
    completed = dict(saved)
    for name in added:
        completed[name] = json.loads(json.dumps(getattr(defaults, name)))
    logger.info("run %s predates config fields %s; they take their defaults", run_dir, added)
    return completed


class _Trainer:
    """The state of one run: data, models, optimizers, counters. One method per stage."""

    def __init__(self, dataset: ImageDataset, config: TrainConfig, run_dir: Path, context: DistributedContext,
                 resume: bool, progress: bool = True):
        self.config, self.run_dir, self.context = config, run_dir, context
        self.progress = progress
        self.device = context.device
        if not isinstance(dataset, ImageDataset):
            raise TypeError(f"dataset should be a ganaug ImageDataset, got {type(dataset).__name__}")
        if len(dataset) < config.batch_size:
            raise ValueError(f"dataset has {len(dataset)} images, fewer than batch_size={config.batch_size}")
        if config.batch_size % context.world_size:
            raise ValueError(f"batch_size={config.batch_size} should divide evenly over {context.world_size} "
                             "processes")
        checkpoint_path = run_dir / CHECKPOINT_NAME
        if resume and not checkpoint_path.is_file():
            raise FileNotFoundError(f"cannot resume: {str(checkpoint_path)!r} does not exist")
        if not resume and checkpoint_path.is_file():
            raise FileExistsError(f"run directory {str(run_dir)!r} already holds a run; pass resume=True "
                                  "(--resume) to continue it, or choose a new directory")

        self.images, self.labels, self.classes = _prepare_images(dataset, config)
        self.resolution, self.channels = self.images.shape[-1], self.images.shape[1]
        self.num_classes = len(self.classes)
        self.precision = _resolve_precision(config.precision, self.device)
        torch.manual_seed(config.seed)  # the same initial weights in every process

        self.source = dataset.source
        self.run_info = self._load_or_start_run_info(dataset, resume)
        checkpoint = read_checkpoint(checkpoint_path) if resume else None
        extractor = self._build_extractor(checkpoint)
        self.instance_features, self.neighbours = self._instance_features(extractor)
        self.bank = self._instance_bank()
        instance_dim = extractor.embed_dim if config.instance_conditioning else 0
        self.generator = Generator(self.num_classes, self.resolution, self.channels, z_dim=config.z_dim,
                                   embed_dim=config.embed_dim, instance_dim=instance_dim,
                                   base_channels=config.g_channels, min_channels=config.g_min_channels).to(self.device)
        self.discriminator = ProjectedDiscriminator(
            extractor, self.num_classes, self.channels, self.resolution, instance_dim=instance_dim,
            mixing_channels=config.mixing_channels, head_channels=config.d_channels, embed_dim=config.embed_dim,
            pixel_head=config.pixel_head, seed=config.seed).to(self.device)
        self.generator_ema = copy.deepcopy(self.generator).eval().requires_grad_(False)
        if self.device.type == "cuda" and config.channels_last:
            for module in (self.generator, self.discriminator, self.generator_ema):
                module.to(memory_format=torch.channels_last)
        self.opt_g = torch.optim.Adam([p for p in self.generator.parameters() if p.requires_grad],
                                      lr=config.lr_g, betas=config.betas)
        self.opt_d = torch.optim.Adam([p for p in self.discriminator.parameters() if p.requires_grad],
                                      lr=config.lr_d, betas=config.betas)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision == torch.float16)
        self.step, self.elapsed, self.skipped_steps, self.bad_in_row, self.restores = 0, 0.0, 0, 0, 0
        torch.manual_seed(config.seed + context.rank)  # a different noise and augmentation stream per process
        if checkpoint is not None:
            self._load_checkpoint(checkpoint)
        else:
            self._save_checkpoint()
        self.g_train, self.d_train = self._wrap_for_training()
        sample_generator = torch.Generator().manual_seed(config.seed + 12345)
        self.sample_z = torch.randn(8 * self.num_classes, config.z_dim, generator=sample_generator)
        self.sample_labels = torch.arange(self.num_classes).repeat_interleave(8)
        self.sample_instance = None if not self.bank else draw_instance_features(
            self.bank["bank.features"], self.bank["bank.labels"], self.sample_labels, sample_generator)

    # --- setup -----------------------------------------------------------------------------------

    def _load_or_start_run_info(self, dataset: ImageDataset, resume: bool) -> dict:
        path = self.run_dir / "config.json"
        if resume:
            info = json.loads(path.read_text())
            info["config"] = _saved_config_for_resume(info["config"], self.run_dir)
            current = json.loads(json.dumps(dataclasses.asdict(self.config)))  # as it reads back from JSON
            if info["config"] != current:
                changed = sorted(k for k, v in current.items()
                                 if v != info["config"].get(k) and k not in ("steps", "minutes", "extra"))
                if changed:
                    raise ValueError(f"cannot resume {str(self.run_dir)!r} with a different config: {changed} differ")
                info["config"]["steps"], info["config"]["minutes"] = self.config.steps, self.config.minutes
                if self.context.is_main:
                    self._write_run_info(info)
            return info
        info = {
            "format": "ganaug.run/1",
            "config": dataclasses.asdict(self.config),
            "classes": list(self.classes),
            "resolution": self.resolution,
            "channels": self.channels,
            "data": {"source": str(dataset.source), "num_images": len(dataset), "class_counts": dataset.class_counts()},
            "versions": package_versions(),
            "device": str(self.device),
            "world_size": self.context.world_size,
            "precision": str(self.precision).replace("torch.", ""),
        }
        if self.context.is_main:
            self._write_run_info(info)
        return info

    def _write_run_info(self, info: dict) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.run_dir / "config.json") as tmp:
            tmp.write_text(json.dumps(info, indent=2))

    def _build_extractor(self, checkpoint: tuple[dict, dict] | None) -> FeatureExtractor:
        """The frozen backbone: from the checkpoint when resuming, else from hub/cache weights, a file, or
        pretrained here on the training data."""
        config, backbone = self.config, self.run_info.get("backbone")
        if backbone is None:
            backbone = self._choose_backbone_weights()
            self.run_info["backbone"] = backbone
            if self.context.is_main:
                self._write_run_info(self.run_info)
        if checkpoint is not None:
            tensors, _ = checkpoint
            extractor = FeatureExtractor.from_state_dict(
                config.backbone, strip_prefix(tensors, "extractor"), out_indices=config.backbone_out_indices,
                input_size=config.backbone_input_size, weights_origin=backbone["origin"])
        else:
            weights = backbone["weights"]
            pretrained = {"hub": True, "random": False}.get(weights, weights)
            extractor = FeatureExtractor(config.backbone, pretrained=pretrained,
                                         out_indices=config.backbone_out_indices,
                                         input_size=config.backbone_input_size)
        return extractor.to(self.device)

    def _choose_backbone_weights(self) -> dict:
        config = self.config
        choice = config.backbone_weights
        if choice in ("auto", "hub"):
            try:
                FeatureExtractor(config.backbone, pretrained=True, out_indices=config.backbone_out_indices)
                return {"name": config.backbone, "weights": "hub", "origin": "timm hub (ImageNet)"}
            except WeightsUnavailableError as error:
                if choice == "hub":
                    raise
                logger.warning("no pretrained %s weights here (%s); pretraining it on the training data instead",
                               config.backbone, str(error).split(". ")[0])
            choice = "pretrain"
        if choice == "pretrain":
            return self._pretrain_backbone()
        if choice == "random":
            return {"name": config.backbone, "weights": "random", "origin": "random init"}
        if not Path(choice).is_file():
            raise FileNotFoundError(f"backbone_weights should be auto, hub, pretrain, random or an existing file, "
                                    f"got {choice!r}")
        return {"name": config.backbone, "weights": str(Path(choice).resolve()), "origin": f"file:{choice}"}

    def _pretrain_backbone(self) -> dict:
        from ganaug.pretrain import pretrain_extractor

        path = self.run_dir / "extractor.safetensors"
        summary: dict = {}  # filled on rank 0, which pretrains while the others wait
        if self.context.is_main:
            dataset = ImageDataset(self.images, self.labels, self.classes, source=self.source)
            result = pretrain_extractor(dataset, path, model_name=self.config.backbone,
                                        input_size=self.config.backbone_input_size,
                                        epochs=self.config.pretrain_epochs, seed=self.config.seed,
                                        device=str(self.device), progress=self.progress)
            logger.info("pretrained %s on the training data: held-out accuracy %.3f in %.0f s",
                        self.config.backbone, result.val_accuracy, result.seconds)
            summary = {"val_accuracy": result.val_accuracy, "seconds": result.seconds, "epochs": result.epochs}
        self.context.barrier()
        return {"name": self.config.backbone, "weights": str(path.resolve()),
                "origin": "pretrained here on the training data", "pretrain": summary}

    @torch.no_grad()
    def _instance_features(self, extractor: FeatureExtractor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Pooled backbone features of every training image, and each one's same-class nearest neighbours."""
        if not self.config.instance_conditioning:
            return None, None
        path = self.run_dir / INSTANCE_FILE
        if path.is_file():
            tensors, _ = read_checkpoint(path)
            return tensors["features"].to(self.device), tensors["neighbours"].long()
        features = torch.cat([extractor.embed(self.images[i:i + 512].to(self.device)).float()
                              for i in range(0, len(self.images), 512)])
        neighbours = _same_class_neighbours(features.cpu(), self.labels, self.config.instance_neighbours)
        if self.context.is_main:
            write_checkpoint(path, {"features": features, "neighbours": neighbours.int()}, {"kind": "instances"})
        return features, neighbours

    def _wrap_for_training(self) -> tuple[nn.Module, nn.Module]:
        generator, discriminator = self.generator, self.discriminator
        if self.config.compile:
            generator = torch.compile(generator)
        if self.context.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            generator = DDP(generator, device_ids=ids, broadcast_buffers=False)
            discriminator = DDP(discriminator, device_ids=ids, broadcast_buffers=False)
        return generator, discriminator

    # --- the loop --------------------------------------------------------------------------------

    def run(self, progress: bool) -> None:
        from tqdm.auto import tqdm

        config = self.config
        per_rank = config.batch_size // self.context.world_size
        sampler = _EpochSampler(len(self.images), per_rank, self.context, config.seed)
        bar = tqdm(total=config.steps, initial=self.step, unit="step", desc="train",
                   disable=not (progress and self.context.is_main), dynamic_ncols=True)
        budget = None if config.minutes is None else config.minutes * 60
        window_start, window_images = time.monotonic(), 0
        done = self._budget_spent(budget)
        while not done:
            step_start = time.monotonic()
            index = sampler.batch(self.step)
            losses = self._train_step(index)
            self.elapsed += time.monotonic() - step_start
            if losses is not None:
                self.step += 1
            done = self._budget_spent(budget)
            if losses is None:
                continue
            window_images += config.batch_size
            bar.update(1)
            if self.step % config.log_every == 0 or done:
                now = time.monotonic()
                metrics = {"step": self.step, **losses, "images_per_s": window_images / (now - window_start),
                           "elapsed_s": self.elapsed, "lr_g": self.opt_g.param_groups[0]["lr"],
                           "lr_d": self.opt_d.param_groups[0]["lr"], "skipped_steps": self.skipped_steps}
                window_start, window_images = now, 0
                self._log_metrics(metrics)
                postfix = {"d": f"{losses['loss_d']:.3f}", "g": f"{losses['loss_g']:.3f}",
                           "img/s": f"{metrics['images_per_s']:.0f}"}
                if budget is not None:
                    postfix["left"] = f"{max(0.0, budget - self.elapsed) / 60:.1f}min"
                bar.set_postfix(postfix)
            if self.context.is_main and self.step % config.sample_every == 0:
                self._save_samples()
            if self.step % config.checkpoint_every == 0:
                self._save_checkpoint()
        bar.close()
        self._save_checkpoint()
        if self.context.is_main:
            self._save_samples()

    def _budget_spent(self, budget: float | None) -> bool:
        if self.config.steps is not None and self.step >= self.config.steps:
            return True
        if budget is None:
            return False
        spent = torch.tensor(float(self.elapsed >= budget))
        return bool(self.context.all_reduce_max(spent))

    def _train_step(self, index: torch.Tensor) -> dict | None:
        """One D step and one G step on the batch ``index``; None if a non-finite value skipped it."""
        config, device = self.config, self.device
        labels = self.labels[index].to(device)
        if self.instance_features is not None:
            choice = torch.randint(0, self.neighbours.shape[1], (len(index),))
            real_index = self.neighbours[index, choice]
            instance = self.instance_features[index.to(self.instance_features.device)].to(device)
        else:
            real_index, instance = index, None
        real = self.images[real_index].to(device, non_blocking=True).float() / 127.5 - 1
        if device.type == "cuda" and config.channels_last:
            real = real.contiguous(memory_format=torch.channels_last)
        z = torch.randn(len(index), config.z_dim, device=device)

        with self._autocast():
            fake = self.g_train(z, labels, instance)
            d_module = _unwrap(self.d_train)
            real_aug = diff_augment(real, config.diffaugment)
            fake_aug = diff_augment(fake.detach(), config.diffaugment)
            both = torch.cat([real_aug, fake_aug])
            with torch.no_grad():  # the backbone is frozen: the D step needs no graph through it
                both_features = d_module.features(both)
            both_instance = None if instance is None else torch.cat([instance, instance])
            logits = self.d_train(both, torch.cat([labels, labels]), both_instance, features=both_features)
            loss_d = _d_loss([t[:len(index)] for t in logits], [t[len(index):] for t in logits])
        ok_d = self._backward_and_step(loss_d, self.opt_d)

        with self._autocast():
            # G step through the plain D module: D's weights get no update, so no DDP reduction for them.
            logits_gen = d_module(diff_augment(fake, config.diffaugment), labels, instance)
            loss_g = -sum(logit.float().mean() for logit in logits_gen)
        ok_g = self._backward_and_step(loss_g, self.opt_g)
        self.opt_d.zero_grad(set_to_none=True)
        finite = bool(self.context.all_reduce_max(torch.tensor(float(not (ok_d and ok_g)))) == 0)
        if not finite:
            self._handle_non_finite()
            return None
        self.bad_in_row = 0
        self._update_ema()
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item()}

    def _backward_and_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> bool:
        """Backward and step unless the loss or a gradient is non-finite; returns whether it stepped."""
        optimizer.zero_grad(set_to_none=True)
        if not torch.isfinite(loss):
            return False
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(optimizer)
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(params, float("inf"))
        if not torch.isfinite(norm) and self.precision != torch.float16:
            optimizer.zero_grad(set_to_none=True)
            return False
        self.scaler.step(optimizer)  # with fp16, the scaler itself skips steps with inf gradients
        self.scaler.update()
        return True

    def _handle_non_finite(self) -> None:
        self.skipped_steps += 1
        self.bad_in_row += 1
        logger.warning("non-finite loss or gradient at step %d: step skipped (%d in a row, %d in all)",
                       self.step, self.bad_in_row, self.skipped_steps)
        if self.bad_in_row < self.config.max_bad_steps:
            return
        if self.restores >= self.config.max_restores:
            raise RuntimeError(f"training keeps producing non-finite values: {self.restores} restores with lowered "
                               f"learning rates did not help (step {self.step}); check the data and the config")
        factor = self.config.lr_decay_on_restore
        self._load_checkpoint(keep_counters=True)
        for optimizer in (self.opt_g, self.opt_d):
            for group in optimizer.param_groups:
                group["lr"] *= factor
        self.restores += 1
        self.bad_in_row = 0
        logger.warning("%d non-finite steps in a row: restored the checkpoint of step %d and lowered the learning "
                       "rates by %.2fx (lr_g=%.2e, lr_d=%.2e)", self.config.max_bad_steps, self.step, factor,
                       self.opt_g.param_groups[0]["lr"], self.opt_d.param_groups[0]["lr"])

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = min(self.config.ema_decay, (1 + self.step) / (10 + self.step))
        for ema, live in zip(self.generator_ema.parameters(), self.generator.parameters(), strict=True):
            ema.lerp_(live.detach(), 1 - decay)

    def _autocast(self):
        enabled = self.device.type == "cuda" and self.precision != torch.float32
        return torch.autocast(device_type=self.device.type, dtype=self.precision, enabled=enabled)

    # --- outputs ---------------------------------------------------------------------------------

    def _log_metrics(self, metrics: dict) -> None:
        if self.context.is_main:
            with open(self.run_dir / "metrics.jsonl", "a") as handle:
                handle.write(json.dumps(metrics) + "\n")

    @torch.no_grad()
    def _save_samples(self) -> None:
        instance = None if self.sample_instance is None else self.sample_instance.to(self.device)
        images = self.generator_ema(self.sample_z.to(self.device), self.sample_labels.to(self.device), instance)
        save_image_grid(to_uint8(images), self.run_dir / "samples" / f"step_{self.step:07d}.png", nrow=8,
                        scale=max(1, 64 // self.resolution))

    def _save_checkpoint(self) -> None:
        """Write the checkpoint (rank 0); every rank must call this, since it gathers their RNG states."""
        rng_states = self.context.gather_rng_states()
        if not self.context.is_main:
            self.context.barrier()
            return
        tensors: dict[str, torch.Tensor] = {}
        for prefix, module in (("g", self.generator), ("g_ema", self.generator_ema), ("d", self.discriminator)):
            tensors.update({f"{prefix}.{k}": v for k, v in module.state_dict().items()
                            if not (prefix == "d" and k.startswith("extractor."))})
        opt_g_tensors, opt_g_info = flatten_optimizer(self.opt_g, "opt_g")
        opt_d_tensors, opt_d_info = flatten_optimizer(self.opt_d, "opt_d")
        tensors.update(opt_g_tensors)
        tensors.update(opt_d_tensors)
        for rank, state in enumerate(rng_states):
            tensors[f"rng.{rank}"] = state
        tensors.update(self.bank)
        extractor_state = self.discriminator.extractor.state_dict()
        tensors.update({f"extractor.{k}": v for k, v in extractor_state.items()})
        info = {
            "step": self.step, "elapsed": self.elapsed, "skipped_steps": self.skipped_steps, "restores": self.restores,
            "opt_g": opt_g_info, "opt_d": opt_d_info, "scaler": self.scaler.state_dict(),
            "world_size": self.context.world_size,
        }
        write_checkpoint(self.run_dir / CHECKPOINT_NAME, tensors, info)
        self.context.barrier()  # other ranks may read it (restore after non-finite steps)

    def _instance_bank(self) -> dict[str, torch.Tensor]:
        """Up to ``bank_per_class`` instance features per class, for class-conditional sampling (saved with
        every checkpoint)."""
        if self.instance_features is None:
            return {}
        generator = torch.Generator().manual_seed(self.config.seed)
        keep = []
        for label in range(self.num_classes):
            members = torch.nonzero(self.labels == label).flatten()
            keep.append(members[torch.randperm(len(members), generator=generator)[:self.config.bank_per_class]])
        keep = torch.cat(keep)
        return {"bank.features": self.instance_features[keep.to(self.instance_features.device)].cpu(),
                "bank.labels": self.labels[keep]}

    def _load_checkpoint(self, checkpoint: tuple[dict, dict] | None = None, keep_counters: bool = False) -> None:
        """Load the checkpoint (read from disk unless given) into the models, optimizers and counters."""
        tensors, info = checkpoint if checkpoint is not None else read_checkpoint(self.run_dir / CHECKPOINT_NAME)
        for prefix, module in (("g", self.generator), ("g_ema", self.generator_ema)):
            module.load_state_dict(strip_prefix(tensors, prefix))
        missing, unexpected = self.discriminator.load_state_dict(strip_prefix(tensors, "d"), strict=False)
        if unexpected or any(not k.startswith("extractor.") for k in missing):
            raise ValueError(f"checkpoint does not fit this discriminator: missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]}")
        unflatten_optimizer(self.opt_g, "opt_g", tensors, info["opt_g"])
        unflatten_optimizer(self.opt_d, "opt_d", tensors, info["opt_d"])
        self.scaler.load_state_dict(info["scaler"])
        self.step = info["step"]
        if not keep_counters:  # a resume; a restore after non-finite steps keeps time spent and counters
            self.elapsed = info["elapsed"]
            self.skipped_steps, self.restores = info["skipped_steps"], info["restores"]
            rng = tensors.get(f"rng.{self.context.rank}")
            if rng is not None and info["world_size"] == self.context.world_size:
                self.context.set_rng_state(rng)
        self._truncate_metrics()

    def _truncate_metrics(self) -> None:
        path = self.run_dir / "metrics.jsonl"
        if not self.context.is_main or not path.is_file():
            return
        kept = [line for line in path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= self.step]
        with atomic_path(path) as tmp:
            tmp.write_text("".join(line + "\n" for line in kept))


class _EpochSampler:
    """Deterministic batches: a ``DistributedSampler`` permutation per epoch, sliced by step.

    Batch ``k`` is a pure function of the seed, the rank and ``k``, so a resumed run draws the
    same batches as an uninterrupted one.
    """

    def __init__(self, num_items: int, per_rank: int, context: DistributedContext, seed: int):
        from torch.utils.data import DistributedSampler

        self.sampler = DistributedSampler(range(num_items), num_replicas=context.world_size, rank=context.rank,
                                          shuffle=True, seed=seed, drop_last=True)
        self.per_rank = per_rank
        self.steps_per_epoch = max(1, len(self.sampler) // per_rank)
        self.epoch, self.order = -1, None

    def batch(self, step: int) -> torch.Tensor:
        epoch, offset = divmod(step, self.steps_per_epoch)
        if epoch != self.epoch:
            self.sampler.set_epoch(epoch)
            self.order, self.epoch = torch.tensor(list(iter(self.sampler))), epoch
        return self.order[offset * self.per_rank:(offset + 1) * self.per_rank]


def _d_loss(logits_real: list[torch.Tensor], logits_fake: list[torch.Tensor]) -> torch.Tensor:
    """Hinge loss, averaged over the batch and summed over heads."""
    return sum(F.relu(1 - r.float()).mean() + F.relu(1 + f.float()).mean()
               for r, f in zip(logits_real, logits_fake, strict=True))


def _prepare_images(dataset: ImageDataset, config: TrainConfig) -> tuple[torch.Tensor, torch.Tensor, tuple]:
    height, width = dataset.image_size
    resolution = config.resolution
    if resolution is None:
        if height != width or height not in SUPPORTED_RESOLUTIONS:
            raise ValueError(f"the dataset's images are {height}x{width}; set TrainConfig.resolution to one of "
                             f"{SUPPORTED_RESOLUTIONS}")
        resolution = height
    images = convert_images(dataset.images, image_size=resolution, channels=config.channels or dataset.channels)
    return images, dataset.labels.clone(), dataset.classes


def _same_class_neighbours(features: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """For each item, the indices of its ``k`` most similar items of the same class (itself included)."""
    normalized = F.normalize(features, dim=1)
    neighbours = torch.empty(len(features), k, dtype=torch.long)
    for label in labels.unique().tolist():
        members = torch.nonzero(labels == label).flatten()
        count = min(k, len(members))
        for start in range(0, len(members), 2048):
            chunk = members[start:start + 2048]
            similarity = normalized[chunk] @ normalized[members].T
            top = similarity.topk(count, dim=1).indices
            if count < k:
                top = top[:, torch.arange(k) % count]
            neighbours[chunk] = members[top]
    return neighbours


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

