"""Evaluate a trained model against real images: ``ganaug eval`` and :func:`evaluate`.

Real and generated images are streamed through a feature network in batches; only their
feature vectors are kept (N x D floats), so memory does not grow with the images. In that
space the report gives the Fréchet distance, KID, precision/recall and density/coverage
(:mod:`ganaug.metrics`), and two linear-probe accuracies: the *label accuracy* of conditional
samples (a classifier trained on half the real features labels the samples; does it agree with
the class asked for?) and the *CAS* (a classifier trained on the samples only, tested on the
other half of the real features), beside the real-to-real accuracy of the same probe.

Which feature space (``extractor``):

- ``"run"`` (default): the model's own feature network. Always available, but the
  discriminator looked through it during training, so these scores flatter the model; use an
  independent network to compare models.
- a ``.safetensors`` file written by ``ganaug pretrain-extractor`` (any timm model), e.g. one
  trained on the evaluation data with a different architecture: independent and offline.
- a timm model name (``resnet50``, ``convnext_tiny.fb_in22k``...): its ImageNet weights from the
  local caches or the hub; offline and uncached it fails within seconds, never hangs. Images are
  resized to the size the weights were trained at (e.g. 224).
- ``"inception"`` or ``"inception:FILE"``: FID's Inception-v3 through torch-fidelity (which
  torchmetrics' FID also uses), only from a weights file on disk: ``FILE``, or torch-fidelity's
  file in torch's hub cache. It is never downloaded here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from ganaug._util.files import atomic_path
from ganaug._util.validate import check_int, check_positive_int, check_seed, check_truncation
from ganaug.data.dataset import ImageDataset
from ganaug.eval.metrics import (
    frechet_distance,
    kernel_inception_distance,
    linear_probe_accuracy,
    precision_recall_density_coverage,
)
from ganaug.nets.features import FeatureExtractor
from ganaug.nets.weights import WeightsUnavailableError, read_extractor_metadata, torch_hub_checkpoints

if TYPE_CHECKING:
    from ganaug.sampling.gan import GANAug

__all__ = ["EvalConfig", "evaluate", "format_report", "inception_extractor", "load_eval_extractor", "write_report"]

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's name for FID's Inception


@dataclass
class EvalConfig:
    """Settings of :func:`evaluate`."""

    num: int = 10_000  # generated images; the real set is capped at the same number
    batch_size: int = 256  # images per generator and feature-network pass
    # feature space: "run" (the model's own network; flatters the model), a pretrain-extractor .safetensors file, a timm
    # model name (hub/cached weights), or "inception[:FILE]" (FID's network, local weights only)
    extractor: str = "run"
    kid_subsets: int = 100  # random subsets KID is averaged over
    kid_subset_size: int = 1000  # images per KID subset (from each set)
    nearest_k: int = 5  # neighbours of precision, recall, density and coverage
    probes: bool = True  # label accuracy and CAS by linear probes
    truncation: float = 1.0  # noise scale of the generated images, in (0, 1]
    seed: int = 0  # seeds which real images are used, the generated images and the probes

    def __post_init__(self) -> None:
        for name in ("batch_size", "kid_subsets", "nearest_k"):
            check_positive_int(name, getattr(self, name))
        check_int("num", self.num, low=2 * self.nearest_k + 2)  # PRDC needs k + 1 neighbours in each half
        check_int("kid_subset_size", self.kid_subset_size, low=2)  # KID is unbiased from pairs
        check_seed("seed", self.seed)
        check_truncation(self.truncation)


class _InceptionEmbedder(nn.Module):
    """torch-fidelity's FID Inception-v3 as an ``embed(images) -> (N, 2048)`` network."""

    def __init__(self, weights: Path):
        super().__init__()
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        self.model = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                                 feature_extractor_weights_path=str(weights)).eval()

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8:
            images = (images.clamp(0, 1) * 255).round().to(torch.uint8)
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        return self.model(images)[0].float()


def inception_extractor(weights: str | os.PathLike | None = None) -> nn.Module:
    """FID's Inception-v3 (torch-fidelity's port) from a local weights file; never downloads.

    Args:
        weights: the ``.pth`` file; default: torch-fidelity's file in torch's hub cache
            (``$TORCH_HOME/hub/checkpoints/weights-inception-2015-12-05-6726825d.pth``).

    Raises:
        ImportError: torch-fidelity is not installed.
        WeightsUnavailableError: no weights file was found.
    """
    try:
        import torch_fidelity  # noqa: F401
    except ImportError:
        raise ImportError("extractor 'inception' needs torch-fidelity (pip install torch-fidelity) and its "
                          f"weights file {INCEPTION_FILE} on disk") from None
    path = Path(weights) if weights is not None else torch_hub_checkpoints() / INCEPTION_FILE
    if not path.is_file():
        raise WeightsUnavailableError(
            f"FID Inception weights not found at {str(path)!r}; ganaug never downloads them. Copy "
            f"{INCEPTION_FILE} there (torch-fidelity fetches it on a machine with internet), pass "
            "'inception:FILE', or evaluate in another feature space (a pretrain-extractor file)")
    return _InceptionEmbedder(path)


def load_eval_extractor(spec: str, gan: GANAug | None = None, device: torch.device | str = "cpu") -> nn.Module:
    """The network named by ``EvalConfig.extractor`` (see the module docs); it has an ``embed`` method."""
    if spec == "run":
        if gan is None or gan.extractor is None:
            raise ValueError("extractor 'run' needs a model with a feature network; name another extractor")
        return gan.extractor
    if spec == "inception" or spec.startswith("inception:"):
        return inception_extractor(spec.partition(":")[2] or None).to(device)
    path = Path(spec)
    if path.suffix in (".safetensors", ".pth", ".pt", ".bin"):
        if not path.is_file():
            raise FileNotFoundError(f"extractor file {spec!r} does not exist")
        metadata = read_extractor_metadata(path)
        if "model_name" not in metadata:
            raise ValueError(f"extractor file {spec!r} does not record its timm model (write it with "
                             "'ganaug pretrain-extractor'), so its architecture is unknown")
        return FeatureExtractor(metadata["model_name"], pretrained=path).to(device)
    extractor = FeatureExtractor(spec, pretrained=True)
    extractor.input_size = extractor.pretrained_input_size  # a hub network sees images at its training size
    return extractor.to(device)


@torch.no_grad()
def _embed(network: nn.Module, images: torch.Tensor, device: torch.device) -> torch.Tensor:
    return network.embed(images.to(device)).float().cpu()


def evaluate(gan: GANAug, real: ImageDataset, config: EvalConfig | None = None,
             classifier: Callable[[torch.Tensor], torch.Tensor] | None = None, progress: bool = False) -> dict:
    """Score a model's samples against real labelled images.

    Args:
        gan: the model.
        real: labelled real images, ideally held out from training; at most ``config.num`` are
            used (a seeded random subset).
        config: see :class:`EvalConfig`.
        classifier: optional; a callable mapping uint8 (N, C, H, W) images to logits (N, classes),
            e.g. your own trained classifier. Adds ``classifier_label_accuracy``: how often it
            gives generated images the class they were generated for.
        progress: show progress bars.

    Returns:
        A JSON-ready dict: ``metrics`` (fd, kid_mean, kid_std, precision, recall, density,
        coverage, and with probes: label_accuracy, cas, real_probe_accuracy), the counts, the
        extractor used and the config.
    """
    from tqdm.auto import tqdm

    config = config or EvalConfig()
    if not isinstance(real, ImageDataset):
        raise TypeError(f"real should be a ganaug ImageDataset, got {type(real).__name__}")
    if real.num_classes != gan.num_classes:
        raise ValueError(f"real has {real.num_classes} classes but the model was trained on {gan.num_classes}")
    if len(real) < 2 * config.nearest_k + 2:
        raise ValueError(f"real should hold at least {2 * config.nearest_k + 2} images, got {len(real)}")
    device = gan.device
    network = load_eval_extractor(config.extractor, gan, device)
    order = torch.randperm(len(real), generator=torch.Generator().manual_seed(config.seed))[:config.num]
    real_labels = real.labels[order]

    real_features = []
    for start in tqdm(range(0, len(order), config.batch_size), desc="real features", disable=not progress):
        index = order[start:start + config.batch_size]
        real_features.append(_embed(network, real.images[index], device))
    real_features = torch.cat(real_features)

    # Generated labels follow the real images' class frequencies; image i depends only on (seed, i).
    fake_labels = real_labels[torch.arange(config.num) % len(real_labels)]
    fake_features, agreements = [], []
    for start in tqdm(range(0, config.num, config.batch_size), desc="generated features", disable=not progress):
        labels = fake_labels[start:start + config.batch_size]
        seeds = config.seed * 1_000_003 + torch.arange(start, start + len(labels))
        images = gan.sample_seeded(labels, seeds, truncation=config.truncation)
        fake_features.append(_embed(network, images, device))
        if classifier is not None:
            with torch.no_grad():
                agreements.append((classifier(images).argmax(dim=1).cpu() == labels).float())
    fake_features = torch.cat(fake_features)

    kid_mean, kid_std = kernel_inception_distance(real_features, fake_features, subsets=config.kid_subsets,
                                                  subset_size=config.kid_subset_size, seed=config.seed)
    prdc = precision_recall_density_coverage(real_features, fake_features, k=config.nearest_k)
    metrics: dict[str, float] = {"fd": frechet_distance(real_features, fake_features), "kid_mean": kid_mean,
                                 "kid_std": kid_std, **prdc.to_dict()}
    if config.probes:
        half = len(real_features) // 2  # probe training reals | test reals
        classes = gan.num_classes
        metrics["label_accuracy"] = linear_probe_accuracy(real_features[:half], real_labels[:half], fake_features,
                                                          fake_labels, classes, seed=config.seed)
        metrics["cas"] = linear_probe_accuracy(fake_features, fake_labels, real_features[half:],
                                               real_labels[half:], classes, seed=config.seed)
        metrics["real_probe_accuracy"] = linear_probe_accuracy(real_features[:half], real_labels[:half],
                                                               real_features[half:], real_labels[half:], classes,
                                                               seed=config.seed)
    if classifier is not None:
        metrics["classifier_label_accuracy"] = float(torch.cat(agreements).mean())
    name = getattr(network, "model_name", type(network).__name__)
    return {"metrics": metrics, "num_generated": config.num, "num_real": len(real_features),
            "feature_dim": real_features.shape[1],
            "extractor": {"spec": config.extractor, "model": name,
                          "weights": getattr(network, "weights_origin", None)},
            "model_step": gan.info.get("step"), "config": asdict(config)}


METRIC_NAMES = {
    "fd": "Fréchet distance", "kid_mean": "KID (x 10^3)", "kid_std": "KID std (x 10^3)", "precision": "precision",
    "recall": "recall", "density": "density", "coverage": "coverage", "label_accuracy": "label accuracy (probe)",
    "cas": "CAS (probe)", "real_probe_accuracy": "real-to-real probe accuracy",
    "classifier_label_accuracy": "label accuracy (classifier)",
}


def format_report(report: dict) -> str:
    """A two-column table of a report's metrics."""
    lines = [f"{'metric':<30} value", f"{'-' * 30} -----"]
    for key, value in report["metrics"].items():
        shown = value * 1000 if key.startswith("kid") else value
        lines.append(f"{METRIC_NAMES.get(key, key):<30} {shown:.4f}")
    extractor = report["extractor"]
    lines.append(f"({report['num_generated']} generated vs {report['num_real']} real images, features: "
                 f"{extractor['model']} [{extractor['spec']}], {report['feature_dim']} dims)")
    return "\n".join(lines)


def write_report(report: dict, path: str | os.PathLike) -> Path:
    """Write a report as JSON, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(report, indent=2))
    return path
