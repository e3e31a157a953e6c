"""The quick-start demo: train a conditional GAN on Fashion-MNIST in about five CPU minutes.

Uses the real Fashion-MNIST when it is installed (Debian package ``dataset-fashion-mnist``) and
the subset embedded in the package otherwise. The discriminator's default backbone takes real
pretrained weights where there are any (``backbone_weights="auto"``); offline there are none for
it, so training first pretrains it on the training images (ganaug's offline path), then trains
the GAN and writes a per-class sample grid.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ganaug._util.files import save_image_grid
from ganaug._util.model_files import RUN_CHECKPOINT_FILE
from ganaug.data import load_fashion_mnist
from ganaug.train import TrainConfig, train
from ganaug.train.pretrain import held_out_text
from ganaug.train.run_dir import read_run_info

__all__ = ["DemoConfig", "run_demo"]

# without pretrained weights: one pretraining epoch of the 60k real images, or eight of the 2k
# embedded ones (about the same few hundred steps)
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

    echo(f"training the conditional GAN for {config.gan_minutes:g} minutes (where no pretrained weights for its "
         "backbone are found, the backbone is first pretrained on these images) ...")
    run_dir = out_dir / "run"
    if (run_dir / RUN_CHECKPOINT_FILE).is_file():
        raise FileExistsError(f"{str(run_dir)!r} already holds a run; remove {str(out_dir)!r} to run the demo again")
    epochs = PRETRAIN_EPOCHS["full" if full else "embedded"]
    gan_config = TrainConfig(minutes=config.gan_minutes, backbone_weights="auto", pretrain_epochs=epochs,
                             seed=config.seed)
    gan = train(train_set, gan_config, run_dir, progress=progress)
    backbone = read_run_info(run_dir)["backbone"]  # where auto found the backbone's weights
    echo(f"the discriminator looked through {backbone['name']} ({backbone['origin']})")
    if backbone.get("pretrain"):
        echo(f"    pretrained here: {held_out_text(backbone['pretrain']['val_accuracy'])} "
             f"({backbone['pretrain']['seconds']:.0f} s)")

    labels = torch.arange(gan.num_classes).repeat_interleave(10)
    grid = save_image_grid(gan.sample(len(labels), labels=labels, seed=config.seed), out_dir / "samples.png",
                           nrow=10, scale=2)
    echo(f"done in {(time.monotonic() - start) / 60:.1f} min: {gan.info['step']} GAN steps.")
    echo(f"samples, one row per class ({', '.join(gan.classes)}): {grid}")
    echo(f"the run (checkpoint, config, metrics, samples over time): {run_dir}")
    echo(f"more samples: ganaug sample {run_dir} --num 100 --out grid.png")
    return grid
