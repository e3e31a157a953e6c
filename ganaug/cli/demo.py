"""The quick-start demo: train a conditional GAN on Fashion-MNIST in about five CPU minutes.

Uses the real Fashion-MNIST when it is installed (Debian package ``dataset-fashion-mnist``) and
the subset embedded in the package otherwise. Offline there are no ImageNet weights, so it
first pretrains the discriminator's feature network on the training images (ganaug's offline
path), then trains the GAN and writes a per-class sample grid.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ganaug._util.files import save_image_grid
from ganaug._util.model_files import RUN_CHECKPOINT_FILE
from ganaug.data import load_fashion_mnist
from ganaug.train import TrainConfig, pretrain_extractor, train

__all__ = ["DemoConfig", "run_demo"]

# one epoch of the 60k real images, or eight of the 2k embedded ones: about the same few hundred steps
PRETRAIN_EPOCHS = {"full": 1, "embedded": 8}


@dataclass
class DemoConfig:
    """What ``ganaug demo`` does; its options are these fields."""

    out_dir: Path = Path("demo_out")  # output folder
    gan_minutes: float = 3.0  # GAN training minutes
    seed: int = 0  # random seed


def run_demo(config: DemoConfig, progress: bool = True, echo=print) -> Path:
    """Run the demo and return the path of the sample grid."""
    start = time.monotonic()
    out_dir = Path(config.out_dir)
    train_set = load_fashion_mnist("train")
    full = train_set.source.kind != "embedded"
    echo(f"data: {len(train_set)} Fashion-MNIST training images from {train_set.source}")

    epochs = PRETRAIN_EPOCHS["full" if full else "embedded"]
    backbone = TrainConfig.backbone
    echo(f"1/2 pretraining the discriminator's {backbone} on them ({epochs} epoch{'s' * (epochs > 1)}) ...")
    extractor = pretrain_extractor(train_set, out_dir / "extractor.safetensors", model_name=backbone, epochs=epochs,
                                   seed=config.seed, progress=progress)
    echo(f"    held-out accuracy {extractor.val_accuracy:.3f} ({extractor.seconds:.0f} s)")

    echo(f"2/2 training the conditional GAN for {config.gan_minutes:g} minutes ...")
    run_dir = out_dir / "run"
    if (run_dir / RUN_CHECKPOINT_FILE).is_file():
        raise FileExistsError(f"{str(run_dir)!r} already holds a run; remove {str(out_dir)!r} to run the demo again")
    gan_config = TrainConfig(minutes=config.gan_minutes, backbone_weights=str(extractor.path), seed=config.seed)
    gan = train(train_set, gan_config, run_dir, progress=progress)

    labels = torch.arange(gan.num_classes).repeat_interleave(10)
    grid = save_image_grid(gan.sample(len(labels), labels=labels, seed=config.seed), out_dir / "samples.png",
                           nrow=10, scale=2)
    echo(f"done in {(time.monotonic() - start) / 60:.1f} min: {gan.info['step']} GAN steps.")
    echo(f"samples, one row per class ({', '.join(gan.classes)}): {grid}")
    echo(f"the run (checkpoint, config, metrics, samples over time): {run_dir}")
    echo(f"more samples: ganaug sample {run_dir} --num 100 --out grid.png")
    return grid
