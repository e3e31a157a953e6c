"""What the discriminator's frozen backbone costs per training step, for several backbones and input sizes.

The backbone runs in every D step (forward on the real and fake batch, without a graph) and in
every G step (forward and backward to the fake images). This times, in one process on batches of
64 Fashion-MNIST images at 28 px: a whole training step (D step + G step, as ``ganaug.train`` runs
them), and the backbone's part of it (the same two passes through the frozen network alone). The
share is the second over the first; steps in 10 minutes is 600 s over the step time, and each
step time is also given as a ratio to the first candidate's, measured in the same run.

    python benchmarks/backbone_cost.py
    python benchmarks/backbone_cost.py --candidates tf_efficientnet_lite0@32,tf_efficientnet_lite0@64

Prints a table and writes benchmarks/results/backbone_cost.json. Weights do not change the cost:
every candidate uses random weights here.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import torch

import ganaug
from ganaug.nets.build import build_discriminator, build_generator
from ganaug.nets.diffaugment import diff_augment
from ganaug.train.steps import d_step, g_step

RESULTS = Path(__file__).resolve().parent / "results" / "backbone_cost.json"
DEFAULT_CANDIDATES = ("resnet10t@32,tf_efficientnet_lite0@32,tf_efficientnet_lite0@48,tf_efficientnet_lite0@64,"
                      "tf_efficientnet_lite1@32,tf_efficientnet_lite1@64")


def seconds_per_call(call, repeats: int) -> float:
    call()  # warm-up (allocations, kernel choice)
    start = time.perf_counter()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - start) / repeats


def measure(name: str, size: int, images: torch.Tensor, labels: torch.Tensor, repeats: int) -> dict:
    config = ganaug.TrainConfig(steps=1, backbone=name, backbone_input_size=size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        extractor = ganaug.FeatureExtractor(name, pretrained=False, out_indices=config.backbone_out_indices,
                                            input_size=size)
    instance_dim = extractor.embed_dim
    generator = build_generator(config.generator_spec(10, 28, 1, instance_dim))
    discriminator = build_discriminator(extractor, config.discriminator_spec(10, 28, 1, instance_dim))
    opt_g = torch.optim.Adam(generator.parameters(), lr=config.lr_g, betas=config.betas)
    opt_d = torch.optim.Adam([p for p in discriminator.parameters() if p.requires_grad], lr=config.lr_d,
                             betas=config.betas)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    autocast = torch.autocast("cpu", enabled=False)
    real = images.float() / 127.5 - 1
    instance = torch.randn(len(labels), instance_dim)

    def step() -> None:
        fake = generator(torch.randn(len(labels), config.z_dim), labels, instance)
        d_step(discriminator, discriminator, real, fake, labels, instance, config.diffaugment, opt_d, scaler,
               autocast)
        g_step(discriminator, fake, labels, instance, config.diffaugment, opt_g, scaler, autocast)

    def backbone_passes() -> None:
        with torch.no_grad():
            discriminator.features(torch.cat([real, real]))
        fake = real.clone().requires_grad_(True)
        sum(m.sum() for m in discriminator.features(diff_augment(fake, config.diffaugment))).backward()

    step_seconds = seconds_per_call(step, repeats)
    backbone_seconds = seconds_per_call(backbone_passes, repeats)
    return {"backbone": name, "input_size": size, "step_ms": 1000 * step_seconds,
            "backbone_ms": 1000 * backbone_seconds, "backbone_share": backbone_seconds / step_seconds,
            "steps_in_10_min": 600 / step_seconds, "feature_channels": extractor.channels}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", default=DEFAULT_CANDIDATES, help="comma-separated model@input_size")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.manual_seed(0)
    data = ganaug.load_fashion_mnist("train")
    images, labels = data.images[:64], data.labels[:64]
    rows = []
    for candidate in args.candidates.split(","):
        name, _, size = candidate.partition("@")
        row = measure(name, int(size), images, labels, args.repeats)
        row["step_time_vs_first"] = row["step_ms"] / (rows[0] if rows else row)["step_ms"]
        rows.append(row)
        print(f"{name:<24} {row['input_size']:>4} px  step {row['step_ms']:7.1f} ms "
              f"({row['step_time_vs_first']:.2f}x the first)  backbone {row['backbone_ms']:7.1f} ms  "
              f"share {row['backbone_share']:.2f}  steps in 10 min {row['steps_in_10_min']:6.0f}", flush=True)
    RESULTS.write_text(json.dumps({"threads": torch.get_num_threads(), "batch": 64, "rows": rows}, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
