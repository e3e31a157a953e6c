"""Train a timm network on the user's own labelled images: the offline way to a pretrained extractor.

The saved ``.safetensors`` file holds the whole network (head included) and, in its metadata,
the model name, input size, classes and held-out accuracy. ``FeatureExtractor(model_name,
pretrained=path)`` loads it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from ganaug._util.files import atomic_path
from ganaug._util.rng import seeded
from ganaug._util.validate import (
    check_choice,
    check_int,
    check_number,
    check_positive_int,
    check_seed,
    resolve_device,
)
from ganaug.data.dataset import ImageDataset
from ganaug.nets.features import normalize_images
from ganaug.nets.weights import EXTRACTOR_FORMAT

__all__ = ["OBJECTIVES", "PretrainConfig", "PretrainResult", "contrastive_loss", "pretrain_extractor"]

EVAL_BATCH = 512  # held-out images per forward pass
# What the network learns: to classify (cross-entropy on the labels), to tell each image from every other
# one (SimCLR's contrastive loss on two augmented views, with a linear classifier trained beside it on
# detached features, so the held-out accuracy is still measured), or both losses on the backbone.
OBJECTIVES = ("classify", "contrastive", "classify+contrastive")
PROJECTION_DIM = 64  # output width of the contrastive projection head (discarded after pretraining)


@dataclass
class PretrainConfig:
    """How :func:`pretrain_extractor` trains (AdamW, a linear warm-up, then a cosine schedule).

    ``ganaug pretrain-extractor`` reads its options, help text and defaults from these fields and
    their comments."""

    model_name: str = "resnet18"  # timm model to train
    input_size: int = 32  # side of the square the network sees; on a CPU this sets the cost
    epochs: int = 5  # training epochs (at least; see min_steps)
    # at least this many optimizer steps: small datasets get more epochs, until the held-out accuracy stops rising
    min_steps: int = 0
    patience: int = 5  # epochs without a better held-out accuracy after which the extra epochs of min_steps stop
    batch_size: int = 128  # images per step
    lr: float = 2e-3  # AdamW peak learning rate
    # share of the steps over which the learning rate rises linearly to ``lr`` (then falls as a cosine)
    warmup_fraction: float = 0.1
    weight_decay: float = 0.05  # AdamW weight decay
    label_smoothing: float = 0.1  # label smoothing of the cross-entropy
    val_fraction: float = 0.1  # share of each class held out to measure accuracy
    hflip: bool = True  # random horizontal flips; turn off for data where left and right differ
    max_shift: float = 0.125  # random translation, as a fraction of the image side
    # classify, contrastive (SimCLR: features that tell images of one class apart) or classify+contrastive
    objective: str = "classify"
    temperature: float = 0.2  # temperature of the contrastive loss
    max_minutes: float | None = None  # stop training after this many minutes (checked after every batch)
    seed: int = 0  # seeds the split, the initial weights, the order and the augmentations
    device: str | None = None  # cpu or cuda (default: cuda when available)

    def __post_init__(self) -> None:
        check_int("input_size", self.input_size, low=8)
        check_positive_int("epochs", self.epochs)
        check_int("min_steps", self.min_steps, low=0)
        check_positive_int("patience", self.patience)
        check_positive_int("batch_size", self.batch_size)
        check_number("val_fraction", self.val_fraction, 0.0, 1.0, low_open=True, high_open=True)
        check_number("lr", self.lr, 0.0, low_open=True)
        check_number("warmup_fraction", self.warmup_fraction, 0.0, 1.0)
        check_number("weight_decay", self.weight_decay, 0.0)
        check_number("label_smoothing", self.label_smoothing, 0.0, 1.0, high_open=True)
        check_number("max_shift", self.max_shift, 0.0, 0.5, high_open=True)
        check_choice("objective", self.objective, OBJECTIVES)
        check_number("temperature", self.temperature, 0.0, low_open=True)
        if self.max_minutes is not None:
            check_number("max_minutes", self.max_minutes, 0.0, low_open=True)
        check_seed("seed", self.seed)


@dataclass(frozen=True)
class PretrainResult:
    """What :func:`pretrain_extractor` made.

    Attributes:
        path: the saved ``.safetensors`` file.
        val_accuracy: top-1 accuracy on the held-out images at the end; None when nothing was held
            out (too few images per class for ``val_fraction``).
        epochs: epochs begun (fewer than asked when ``max_minutes`` ran out; the last may be partial).
        steps: optimizer steps taken.
        seconds: training time, held-out evaluation included.
        num_train: training images.
        num_val: held-out images.
        history: per epoch: ``epoch``, ``batches``, ``train_loss``, ``val_accuracy``.
    """

    path: Path
    val_accuracy: float | None
    epochs: int
    seconds: float
    num_train: int
    num_val: int
    history: list[dict]
    steps: int = 0


def held_out_text(val_accuracy: float | None) -> str:
    """How a pretraining's held-out accuracy reads in logs and on the command line."""
    if val_accuracy is None:
        return "no held-out set (too few images per class for val_fraction): accuracy not measured"
    return f"held-out accuracy {val_accuracy:.3f}"


def pretrain_extractor(
    dataset: ImageDataset,
    out: str | os.PathLike,
    config: PretrainConfig | None = None,
    progress: bool = True,
    **overrides,
) -> PretrainResult:
    """Train ``config.model_name`` on ``dataset`` and save it for :class:`FeatureExtractor`.

    It learns to classify the images, or (``config.objective``) to tell every image from the
    others (contrastive), or both. A stratified ``val_fraction`` of each class is held out, and
    the accuracy on it is reported and stored in the file. Everything random follows ``config.seed``.

    Args:
        dataset: the labelled images (see :mod:`ganaug.data`).
        out: the ``.safetensors`` file to write (atomically).
        config: training settings; keyword ``overrides`` replace single fields.
        progress: show a progress bar.

    Example:
        >>> result = pretrain_extractor(load_fashion_mnist("train"), "fmnist_r18.safetensors", epochs=1)
        >>> extractor = FeatureExtractor("resnet18", pretrained=result.path)
    """
    from tqdm.auto import tqdm

    if not isinstance(dataset, ImageDataset):
        raise TypeError(f"dataset should be a ganaug ImageDataset, got {type(dataset).__name__}")
    out = Path(out)
    if out.suffix != ".safetensors":
        raise ValueError(f"out should be a .safetensors path, got {str(out)!r}")
    unknown = set(overrides) - {f.name for f in dataclasses.fields(PretrainConfig)}
    if unknown:
        raise TypeError(f"unknown PretrainConfig fields: {sorted(unknown)}")
    config = dataclasses.replace(config or PretrainConfig(), **overrides)
    if dataset.num_classes < 2:
        raise ValueError(f"dataset should have at least 2 classes to train a classifier, got {dataset.num_classes}")
    device = resolve_device(config.device)
    # initial weights and any random layers follow the seed, on a stream of their own: the caller's
    # generators are left as they were
    with seeded(config.seed, device):
        generator = torch.Generator().manual_seed(config.seed)
        train_set, val_set = dataset.split(config.val_fraction, seed=config.seed)

        model = timm.create_model(config.model_name, pretrained=False, num_classes=dataset.num_classes).to(device)
        data_config = timm.data.resolve_model_data_config(model)
        mean = torch.tensor(data_config["mean"], device=device)
        std = torch.tensor(data_config["std"], device=device)
        # SimCLR's projection head, for the contrastive objectives: trained with the network, not saved
        projection = None if config.objective == "classify" else nn.Sequential(
            nn.Linear(model.num_features, 2 * PROJECTION_DIM), nn.ReLU(),
            nn.Linear(2 * PROJECTION_DIM, PROJECTION_DIM)).to(device)
        parameters = list(model.parameters()) + ([] if projection is None else list(projection.parameters()))
        optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
        steps_per_epoch = math.ceil(len(train_set) / config.batch_size)
        epochs = max(config.epochs, math.ceil(config.min_steps / steps_per_epoch))
        total_steps = steps_per_epoch * epochs
        schedule = _warmup_cosine(max(1, int(total_steps * config.warmup_fraction)), total_steps)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)

        start = time.monotonic()
        deadline = None if config.max_minutes is None else start + 60 * config.max_minutes
        history: list[dict] = []
        steps = 0
        bar = tqdm(total=total_steps, desc=f"pretrain {config.model_name}", unit="batch", disable=not progress)
        best, since_best = -1.0, 0
        for epoch in range(epochs):
            model.train()
            order = torch.randperm(len(train_set), generator=generator)
            loss_sum, seen, batches = 0.0, 0, 0
            for first in range(0, len(order), config.batch_size):
                if batches and deadline is not None and time.monotonic() > deadline:
                    break
                index = order[first:first + config.batch_size]
                images = normalize_images(train_set.images[index], mean, std, config.input_size)
                labels = train_set.labels[index].to(device)
                loss = _loss(model, projection, images, labels, config, generator)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                loss_sum += loss.item() * len(index)
                seen += len(index)
                batches += 1
                steps += 1
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss_sum / seen:.3f}")
            val_accuracy = _accuracy(model, val_set, mean, std, config)
            history.append({"epoch": epoch + 1, "batches": batches, "train_loss": loss_sum / seen,
                            "val_accuracy": val_accuracy})
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss_sum / seen:.3f}",
                            val_acc="none" if val_accuracy is None else f"{val_accuracy:.3f}")
            if deadline is not None and time.monotonic() > deadline:
                break
            if val_accuracy is not None:
                best, since_best = (val_accuracy, 0) if val_accuracy > best else (best, since_best + 1)
                if epoch + 1 >= config.epochs and since_best >= config.patience:  # the extra epochs stopped helping
                    break
    bar.close()
    seconds = time.monotonic() - start

    metadata = {
        "format": EXTRACTOR_FORMAT,
        "model_name": config.model_name,
        "input_size": str(config.input_size),
        "num_classes": str(dataset.num_classes),
        "classes": json.dumps(list(dataset.classes)),
        "val_accuracy": "none" if history[-1]["val_accuracy"] is None else f"{history[-1]['val_accuracy']:.6f}",
        "epochs": str(len(history)),
        "data_source": str(dataset.source),
        "config": json.dumps(dataclasses.asdict(config)),
    }
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    with atomic_path(out) as tmp:
        save_file(state, str(tmp), metadata=metadata)
    return PretrainResult(path=out, val_accuracy=history[-1]["val_accuracy"], epochs=len(history), seconds=seconds,
                          num_train=len(train_set), num_val=len(val_set), history=history, steps=steps)


def contrastive_loss(first: torch.Tensor, second: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent loss: each row of ``first`` should match the same row of ``second`` among all 2N rows.

    Args:
        first, second: float (N, D) projections of two views of the same N images.
        temperature: the softmax temperature of the cosine similarities.
    """
    rows = F.normalize(torch.cat([first, second]).float(), dim=1)
    similarity = rows @ rows.T / temperature
    similarity.fill_diagonal_(float("-inf"))  # a view is not its own positive
    count = len(first)
    targets = torch.cat([torch.arange(count, 2 * count), torch.arange(count)]).to(rows.device)
    return F.cross_entropy(similarity, targets)


def _loss(model: nn.Module, projection: nn.Module | None, images: torch.Tensor, labels: torch.Tensor,
          config: PretrainConfig, generator: torch.Generator) -> torch.Tensor:
    """The pretraining loss of ``config.objective`` on one batch of normalized images."""
    if config.objective == "classify":
        return F.cross_entropy(model(_augment(images, config, generator)), labels,
                               label_smoothing=config.label_smoothing)
    views = torch.cat([_contrastive_view(images, config, generator), _contrastive_view(images, config, generator)])
    pooled = model.forward_head(model.forward_features(views), pre_logits=True)
    first, second = projection(pooled).chunk(2)
    loss = contrastive_loss(first, second, config.temperature)
    # The classifier learns beside the backbone: from the features themselves for classify+contrastive,
    # from detached features (an online linear probe, so the held-out accuracy still means something) otherwise.
    classified = pooled if config.objective == "classify+contrastive" else pooled.detach()
    return loss + F.cross_entropy(model.get_classifier()(classified), torch.cat([labels, labels]),
                                  label_smoothing=config.label_smoothing)


def _contrastive_view(images: torch.Tensor, config: PretrainConfig, generator: torch.Generator) -> torch.Tensor:
    """One random view for the contrastive loss: a random crop (60-100% of the side), a shift, flips, and
    random brightness and contrast."""
    count = images.shape[0]
    side = 0.6 + 0.4 * torch.rand(count, generator=generator)
    theta = torch.zeros(count, 2, 3)
    theta[:, 0, 0] = side
    theta[:, 1, 1] = side
    if config.hflip:
        theta[torch.rand(count, generator=generator) < 0.5, 0, 0] *= -1
    reach = (1 - side)[:, None] + 2 * config.max_shift
    theta[:, :, 2] = (torch.rand(count, 2, generator=generator) * 2 - 1) * reach
    grid = F.affine_grid(theta.to(images.device), list(images.shape), align_corners=False)
    views = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    contrast = (1 + 0.4 * (torch.rand(count, 1, 1, 1, generator=generator) * 2 - 1)).to(images.device)
    brightness = (0.4 * (torch.rand(count, 1, 1, 1, generator=generator) * 2 - 1)).to(images.device)
    mean = views.mean(dim=(1, 2, 3), keepdim=True)
    return (views - mean) * contrast + mean + brightness


def _warmup_cosine(warmup_steps: int, total_steps: int):
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _augment(images: torch.Tensor, config: PretrainConfig, generator: torch.Generator) -> torch.Tensor:
    """Random translation (edge pixels repeated) and horizontal flips, per image."""
    count = images.shape[0]
    theta = torch.zeros(count, 2, 3)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    if config.hflip:
        flips = torch.rand(count, generator=generator) < 0.5
        theta[flips, 0, 0] = -1.0
    theta[:, :, 2] = (torch.rand(count, 2, generator=generator) * 2 - 1) * 2 * config.max_shift
    grid = F.affine_grid(theta.to(images.device), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


@torch.no_grad()
def _accuracy(model: nn.Module, dataset: ImageDataset, mean: torch.Tensor, std: torch.Tensor,
              config: PretrainConfig) -> float | None:
    """Top-1 accuracy on ``dataset``; None when it is empty (there is no held-out set to measure on)."""
    if len(dataset) == 0:
        return None
    model.eval()
    correct = 0
    for first in range(0, len(dataset), EVAL_BATCH):
        images = normalize_images(dataset.images[first:first + EVAL_BATCH], mean, std, config.input_size)
        predictions = model(images).argmax(dim=1).cpu()
        correct += int((predictions == dataset.labels[first:first + EVAL_BATCH]).sum())
    return correct / len(dataset)
