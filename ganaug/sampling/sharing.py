"""Sharing a trained generator on the Hugging Face Hub: what a push uploads, and the model card.

A push is one commit of four files: the export (``model.safetensors`` and ``config.json``, as
:meth:`GANAug.save_pretrained` writes them), a sample grid (``samples.png``, one row per class)
and a model card (``README.md``) whose YAML header the Hub reads (``library_name: ganaug``, tags,
licence, the data, classes, resolution, training step) and whose text says how to use the model
in both pipelines, with the ``ganaug eval`` figures when they are given. Loading it back is
``GANAug.from_pretrained("org/name")`` (:mod:`ganaug._util.model_files`).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ganaug._util.checkpoint_file import CONFIG_FILE
from ganaug._util.files import save_image_grid
from ganaug._util.hub import render_card, upload_files
from ganaug._util.model_files import EXPORT_WEIGHTS_FILE
from ganaug.data.fashion_mnist import FASHION_MNIST_CLASSES

if TYPE_CHECKING:
    from ganaug.sampling.gan import GANAug

__all__ = ["CARD_FILE", "DEFAULT_LICENSE", "GRID_FILE", "GRID_PER_CLASS", "model_card", "push_to_hub",
           "read_evaluation"]

CARD_FILE = "README.md"
GRID_FILE = "samples.png"
GRID_PER_CLASS = 8  # images per class (one row each) in the pushed sample grid
GRID_SEED = 0
DEFAULT_LICENSE = "other"  # the weights derive from the training data, whose licence only the user knows
_FASHION_MNIST_ON_HUB = "zalando-datasets/fashion_mnist"
_KID_SCALE = 1000  # KID is shown x 10^3, as 'ganaug eval' prints it


def push_to_hub(gan: GANAug, repo_id: str, private: bool | None = None, token: str | bool | None = None,
                license: str = DEFAULT_LICENSE, evaluation: dict[str, Any] | str | os.PathLike | None = None,
                commit_message: str | None = None) -> str:
    """Upload ``gan`` to the Hub model repository ``repo_id`` (created when missing) in one commit.

    Args:
        gan: the model.
        repo_id: ``org/name``.
        private: make a new repository private (an existing one keeps its visibility).
        token: a Hub token with write access; None: ``HF_TOKEN`` or the saved login.
        license: the card's licence (a Hub licence id such as "mit" or "apache-2.0"); the default,
            "other", says that the training data's licence applies.
        evaluation: a report of :func:`ganaug.evaluate` (or the JSON file ``ganaug eval --out``
            writes): its figures go into the card.
        commit_message: default: "Upload ganaug model (step N)".

    Returns:
        The commit's URL.

    Raises:
        ganaug._util.hub.HubError: the Hub cannot be reached, or refuses the upload.
    """
    report = read_evaluation(evaluation)
    with tempfile.TemporaryDirectory(prefix="ganaug-push-") as folder:
        folder = Path(folder)
        gan.save_pretrained(folder)
        labels = torch.arange(gan.num_classes).repeat_interleave(GRID_PER_CLASS)
        save_image_grid(gan.sample(len(labels), labels=labels, seed=GRID_SEED), folder / GRID_FILE,
                        nrow=GRID_PER_CLASS, scale=max(1, 64 // gan.resolution))
        (folder / CARD_FILE).write_text(model_card(gan.info, repo_id, license=license, evaluation=report))
        files = {name: folder / name for name in (EXPORT_WEIGHTS_FILE, CONFIG_FILE, GRID_FILE, CARD_FILE)}
        message = commit_message or f"Upload ganaug model (step {gan.info.get('step')})"
        return upload_files(repo_id, files, message, private=private, token=token)


def read_evaluation(evaluation: dict[str, Any] | str | os.PathLike | None) -> dict[str, Any] | None:
    """An evaluation report: as given, or read from the JSON file ``ganaug eval --out`` wrote (None stays None)."""
    if evaluation is None or isinstance(evaluation, dict):
        report = evaluation
    elif isinstance(evaluation, (str, os.PathLike)):
        path = Path(evaluation)
        if not path.is_file():
            raise FileNotFoundError(f"evaluation file {str(path)!r} does not exist (write one with 'ganaug eval RUN "
                                    "--data DATA --out FILE')")
        try:
            report = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"evaluation file {str(path)!r} is not JSON: {error}") from error
    else:
        raise TypeError("evaluation should be a report dict, a JSON file's path or None, got "
                        f"{type(evaluation).__name__}")
    if report is not None and not isinstance(report.get("metrics"), dict):
        raise ValueError("evaluation should be a 'ganaug eval' report, with a 'metrics' mapping; got keys "
                         f"{sorted(report)}")
    return report


def model_card(info: dict[str, Any], repo_id: str, license: str = DEFAULT_LICENSE,
               evaluation: dict[str, Any] | None = None) -> str:
    """The ``README.md`` of a pushed model: Hub metadata in YAML, then what the model is and how to use it.

    Args:
        info: the model's description (``GANAug.info``).
        repo_id: where it is pushed (the usage examples load it by this name).
        license: a Hub licence id.
        evaluation: a ``ganaug eval`` report, or None.
    """
    classes = list(info["classes"])
    generator, data = info["generator"], info.get("data") or {}
    resolution, channels = generator["resolution"], generator["channels"]
    metadata: dict[str, Any] = {
        "library_name": "ganaug",
        "license": license,
        "tags": ["ganaug", "gan", "conditional-image-generation", "data-augmentation", "image-generation"],
        "pipeline_tag": "unconditional-image-generation",
        "ganaug": {"classes": classes, "resolution": resolution, "channels": channels, "step": info.get("step"),
                   "instance_conditional": generator.get("instance_dim", 0) > 0,
                   "data": data.get("source"), "backbone": info.get("backbone", {}).get("name")},
    }
    if tuple(classes) == FASHION_MNIST_CLASSES:
        metadata["datasets"] = [_FASHION_MNIST_ON_HUB]
    if evaluation is not None:
        metadata["ganaug"]["evaluation"] = {key: float(value) for key, value in evaluation["metrics"].items()}
    colour = "grayscale" if channels == 1 else "RGB"
    counts = data.get("class_counts")
    trained_on = f"{data.get('num_images', '?')} images from `{data.get('source', 'unknown')}`"
    lines = [
        f"# {repo_id.split('/')[-1]}",
        "",
        f"A class-conditional GAN trained with ganaug to make new {colour} "
        f"{resolution}x{resolution} training images of {len(classes)} classes, for data augmentation.",
        "",
        "| | |",
        "|---|---|",
        f"| data | {trained_on} |",
        f"| classes | {', '.join(f'{i}: {name}' for i, name in enumerate(classes))} |",
        f"| resolution | {resolution}x{resolution}, {channels} channel{'s' if channels > 1 else ''} |",
        f"| training steps | {info.get('step')} |",
        f"| discriminator features | {info.get('backbone', {}).get('name')} |",
        f"| instance-conditional (`variant` mode) | {'yes' if generator.get('instance_dim', 0) else 'no'} |",
        f"| ganaug | {info.get('versions', {}).get('ganaug')} (torch {info.get('versions', {}).get('torch')}) |",
    ]
    if counts:
        lines.append(f"| images per class | {', '.join(str(c) for c in counts)} |")
    lines += ["", f"![samples, one row per class]({GRID_FILE})", "", "## Evaluation", ""]
    if evaluation is None:
        lines.append("Not evaluated at push time: `ganaug eval " + repo_id + " --data DATA` measures FD, KID, "
                     "precision/recall, density/coverage and label accuracy.")
    else:
        lines += [f"`ganaug eval` on {evaluation.get('data', 'the real images')}: {evaluation.get('num_generated')} "
                  f"generated vs {evaluation.get('num_real')} real images, in the features of "
                  f"{(evaluation.get('extractor') or {}).get('model', 'its feature network')}.", "",
                  "| metric | value |", "|---|---|"]
        lines += [f"| {key}{' (x 10^3)' if key.startswith('kid') else ''} | "
                  f"{float(value) * (_KID_SCALE if key.startswith('kid') else 1):.4f} |"
                  for key, value in evaluation["metrics"].items()]
    lines += [
        "", "## Use", "", "```bash", "pip install ganaug", "```", "", "```python", "import ganaug", "",
        f'gan = ganaug.GANAug.from_pretrained("{repo_id}")        # cached: later loads need no network',
        "images = gan.sample(64, labels=0, seed=0)                    # uint8 (64, C, H, W) of class 0",
        "```", "", "albumentations (the label comes in as `class_label`):", "", "```python",
        "import albumentations as A", "from ganaug.albumentations import GANAugment", "",
        f'transform = A.Compose([A.HorizontalFlip(), GANAugment("{repo_id}", mode="mix", p=0.3)])',
        'out = transform(image=image, class_label=label)["image"]', "```", "",
        "torchvision.transforms.v2, per sample or after the DataLoader on a batch:", "", "```python",
        "from torchvision.transforms import v2", "from ganaug.transforms import GANAugment", "",
        f'transform = v2.Compose([v2.RandomHorizontalFlip(), GANAugment("{repo_id}", mode="replace", p=0.3)])',
        "image, label = transform(image, label)", "```", "",
        "The weights are safetensors and the config JSON: loading unpickles nothing. The weights derive from the "
        "training data; its licence applies"
        + ("." if license == DEFAULT_LICENSE else f" beside the card's ({license})."),
    ]
    return render_card(metadata, "\n".join(lines))
