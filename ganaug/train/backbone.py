"""The discriminator's frozen backbone: where its weights come from, and building it (scratch or resume).

``backbone_weights="auto"`` takes real pretrained weights when there are any (timm's caches, an
installed weights package, the hub), and otherwise pretrains the backbone on the training
images first (ganaug's offline path); "hub" (any of those three), "pretrain", "random" and a
file path each name one source.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from ganaug._util.checkpoint_file import strip_prefix
from ganaug.data.dataset import ImageDataset
from ganaug.nets.build import build_extractor
from ganaug.nets.features import FeatureExtractor
from ganaug.nets.weights import WeightsUnavailableError
from ganaug.train.config import BACKBONE_WEIGHTS, TrainConfig
from ganaug.train.distributed import DistributedContext
from ganaug.train.pretrain import held_out_text, pretrain_extractor
from ganaug.train.run_dir import EXTRACTOR_FILE

__all__ = ["backbone_extractor", "choose_backbone"]

logger = logging.getLogger(__name__)


def choose_backbone(config: TrainConfig, run_dir: Path, dataset: ImageDataset, context: DistributedContext,
                    progress: bool) -> dict[str, Any]:
    """Decide (and, for "pretrain", make) the backbone's weights: the run info's ``backbone`` entry.

    Args:
        config: the run's config.
        run_dir: where a backbone pretrained here is written.
        dataset: the training images, as the GAN sees them (a backbone pretrained here learns on them).
        context: rank 0 pretrains while the others wait.
        progress: show the pretraining's progress bar.

    Returns:
        ``{"name", "weights", "origin"}`` (plus ``"pretrain"``: its accuracy and time).
    """
    choice = config.backbone_weights
    if choice in ("auto", "hub"):
        try:
            found = FeatureExtractor(config.backbone, pretrained=True, out_indices=config.backbone_out_indices)
            return {"name": config.backbone, "weights": "hub", "origin": found.weights_origin}
        except WeightsUnavailableError as error:
            if choice == "hub":
                raise
            logger.warning("no pretrained %s weights here (%s); pretraining it on the training data instead",
                           config.backbone, str(error).split(". ")[0])
        choice = "pretrain"
    if choice == "pretrain":
        return _pretrain_here(config, run_dir, dataset, context, progress)
    if choice == "random":
        return {"name": config.backbone, "weights": "random", "origin": "random init"}
    if not Path(choice).is_file():
        raise FileNotFoundError(f"backbone_weights should be one of {BACKBONE_WEIGHTS} or an existing file, got "
                                f"{choice!r}")
    return {"name": config.backbone, "weights": str(Path(choice).resolve()), "origin": f"file:{choice}"}


def _pretrain_here(config: TrainConfig, run_dir: Path, dataset: ImageDataset, context: DistributedContext,
                   progress: bool) -> dict[str, Any]:
    path = run_dir / EXTRACTOR_FILE
    summary: dict = {}  # filled on rank 0, which pretrains while the others wait
    if context.is_main:
        result = pretrain_extractor(dataset, path, model_name=config.backbone, input_size=config.backbone_input_size,
                                    epochs=config.pretrain_epochs, min_steps=config.pretrain_min_steps,
                                    max_minutes=config.pretrain_minutes, objective=config.pretrain_objective,
                                    seed=config.seed, device=str(context.device), progress=progress)
        _report_pretraining(config, dataset, result, progress)
        summary = {"val_accuracy": result.val_accuracy, "seconds": result.seconds, "epochs": result.epochs,
                   "steps": result.steps}
    context.barrier()
    return {"name": config.backbone, "weights": str(path.resolve()), "origin": "pretrained here on the training data",
            "pretrain": summary}


NEAR_CHANCE = 2.0  # a held-out accuracy below this many times chance is warned about


def _report_pretraining(config: TrainConfig, dataset: ImageDataset, result: Any, progress: bool) -> None:
    """Say what the pretraining reached, and warn when its features are barely better than chance."""
    from tqdm.auto import tqdm

    message = (f"pretrained {config.backbone} on the training data: {held_out_text(result.val_accuracy)} "
               f"({result.steps} steps, {result.epochs} epochs, {result.seconds:.0f} s)")
    if progress:  # once: on the console beside the progress bars, else in the log
        tqdm.write(message)
    else:
        logger.info(message)
    chance = 1 / dataset.num_classes
    if result.val_accuracy is not None and result.val_accuracy < NEAR_CHANCE * chance:
        logger.warning("the backbone's held-out accuracy %.3f is near chance (%.3f): the discriminator will look "
                       "through features that barely tell the classes apart. Raise pretrain_min_steps or "
                       "pretrain_minutes, or use ImageNet weights (backbone='tf_efficientnet_lite0', pip install "
                       "'ganaug[imagenet]')", result.val_accuracy, chance)


def backbone_extractor(config: TrainConfig, backbone: dict[str, Any],
                       checkpoint_tensors: dict[str, torch.Tensor] | None, device: torch.device) -> FeatureExtractor:
    """The frozen backbone on ``device``: from the checkpoint on a resume, else from the chosen weights."""
    spec = config.backbone_spec(backbone["origin"])
    if checkpoint_tensors is not None:
        extractor = build_extractor(spec, state_dict=strip_prefix(checkpoint_tensors, "extractor"))
    else:
        weights = backbone["weights"]
        extractor = build_extractor(spec, weights={"hub": True, "random": False}.get(weights, weights))
    return extractor.to(device)
