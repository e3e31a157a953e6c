"""Probes behind the feature-generation benchmark: what would fill rare classes better than oversampling?

Same setting as benchmarks/feature_generation.py (long-tailed Fashion-MNIST, 500 → 10 images per
class, frozen resnet10t, linear head, balanced accuracy on the 10k test images), same cached
features. Each probe fills every class up to 500 vectors in its own way; the head and the scores
are the benchmark's. Rows marked *oracle* use the 500-real-per-class reference set that a method
never sees; the others use only the long-tailed training set.

- oracle Gaussians: rare classes drawn from a Gaussian whose mean is the class's sample mean
  (from its 10–500 training vectors) or its true mean (from the reference set), and whose
  covariance is the class's sample covariance, the within-class covariance pooled over all
  classes (variation shared across classes), or its true covariance;
- distribution calibration (Yang et al., 2021): the class's own mean with the covariance of the
  nearest frequent class (>= 200 images; nearest by class mean);
- jitter: oversampling plus Gaussian noise of 0.1 / 0.3 / 0.5 feature standard deviations;
- hallucination (Hariharan & Girshick, 2017, in its simplest form): a rare vector plus ``s`` times
  the difference of two vectors of one frequent class, s = 0.5 / 1;
- augmented views: the embeddings of randomly flipped and shifted copies of the rare classes'
  images (the pretraining augmentation: flips, shifts up to 12.5%), 16 views per image, drawn to
  fill; ``--views-gan`` also fits a FeatureGAN on real + view vectors (about 2 CPU minutes a seed).

    python benchmarks/feature_generation_probes.py                        # about 5 CPU minutes
    python benchmarks/feature_generation_probes.py --extractor-data disjoint \\
        --out benchmarks/results/feature_generation_probes_disjoint.json

Prints a table and writes benchmarks/results/feature_generation_probes.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from feature_generation import fill_classes, load_setting, oversample, per_class_recall, train_head  # noqa: E402

import ganaug  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "feature_generation_probes.json"
FREQUENT = 200  # classes with at least this many images lend their statistics
VIEWS = 16


def gaussian_draws(mean: torch.Tensor, cov: torch.Tensor, need: int, generator: torch.Generator,
                   shrink: float = 0.1) -> torch.Tensor:
    """``need`` draws from N(mean, cov), the covariance shrunk towards its diagonal, clamped at 0 (ReLU features)."""
    cov = cov.double()
    cov = (1 - shrink) * cov + shrink * torch.diag(torch.diag(cov)) + 1e-4 * torch.eye(len(cov), dtype=cov.dtype)
    factor = torch.linalg.cholesky(cov).float()
    return (mean + torch.randn(need, len(mean), generator=generator) @ factor.T).clamp_min(0)


def pooled_covariance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    classes = y.unique()
    scatter = sum(torch.cov(x[y == c].T) * (int((y == c).sum()) - 1) for c in classes)
    return scatter / (len(y) - len(classes))


@torch.no_grad()
def augmented_views(setting, views: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings of ``views`` random flips + shifts (up to 12.5% of the side) of every training image."""
    generator = torch.Generator().manual_seed(seed)
    images = setting.data.images.float() / 255
    out = []
    for _ in range(views):
        for start in range(0, len(images), 512):
            batch = images[start:start + 512]
            theta = torch.zeros(len(batch), 2, 3)
            theta[:, 0, 0] = torch.where(torch.rand(len(batch), generator=generator) < 0.5, -1.0, 1.0)
            theta[:, 1, 1] = 1.0
            theta[:, :, 2] = (torch.rand(len(batch), 2, generator=generator) * 2 - 1) * 0.25
            grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
            shifted = F.grid_sample(batch, grid, mode="bilinear", padding_mode="border", align_corners=False)
            out.append(setting.extractor.embed(shifted).float())
    return torch.cat(out), setting.train_y.repeat(views)


def probes(setting, seed: int, views_gan: bool) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    x, y, counts = setting.train_x, setting.train_y, setting.counts
    rx, ry = setting.reference_x, setting.reference_y
    target = max(counts)
    generator = torch.Generator().manual_seed(seed)
    class_mean = torch.stack([x[y == c].mean(dim=0) for c in range(len(counts))])
    frequent = [c for c, n in enumerate(counts) if n >= FREQUENT]
    pooled = pooled_covariance(x, y)
    rows = {"oversampling": oversample(x, y, target, generator)}

    for mean_from in ("sample", "true"):
        for cov_from in ("sample", "pooled", "true"):
            def draw(members, need, mean_from=mean_from, cov_from=cov_from):
                c = int(y[members[0]])
                own, true = x[members], rx[ry == c]
                mean = own.mean(dim=0) if mean_from == "sample" else true.mean(dim=0)
                cov = {"sample": lambda: torch.cov(own.T), "pooled": lambda: pooled,
                       "true": lambda: torch.cov(true.T)}[cov_from]()
                return gaussian_draws(mean, cov, need, generator)
            rows[f"oracle Gaussian: {mean_from} mean, {cov_from} covariance"] = fill_classes(x, y, target, draw)

    def calibrated(members, need):
        c = int(y[members[0]])
        donors = [k for k in frequent if k != c]
        nearest = min(donors, key=lambda k: float((class_mean[k] - class_mean[c]).norm()))
        return gaussian_draws(class_mean[c], torch.cov(x[y == nearest].T), need, generator)
    rows["distribution calibration (nearest frequent class's covariance)"] = fill_classes(x, y, target, calibrated)

    std = x.std(dim=0)
    for scale in (0.1, 0.3, 0.5):
        def jitter(members, need, scale=scale):
            picks = x[members[torch.arange(need) % len(members)]]
            return (picks + scale * std * torch.randn(picks.shape, generator=generator)).clamp_min(0)
        rows[f"oversampling + jitter {scale} std"] = fill_classes(x, y, target, jitter)

    donor_x = [x[y == k] for k in frequent]
    for s in (0.5, 1.0):
        def hallucinate(members, need, s=s):
            seeds = x[members[torch.randint(0, len(members), (need,), generator=generator)]]
            donor = torch.randint(0, len(donor_x), (need,), generator=generator)
            delta = torch.stack([donor_x[d][torch.randint(0, len(donor_x[d]), (2,), generator=generator)]
                                 .diff(dim=0)[0] for d in donor.tolist()])
            return (seeds + s * delta).clamp_min(0)
        rows[f"hallucination: + {s} x frequent-class delta"] = fill_classes(x, y, target, hallucinate)

    view_x, view_y = augmented_views(setting, VIEWS, seed)

    def from_views(members, need):
        pool = view_x[view_y == y[members[0]]]
        return pool[torch.randint(0, len(pool), (need,), generator=generator)]
    rows[f"augmented views ({VIEWS} per image)"] = fill_classes(x, y, target, from_views)
    if views_gan:
        config = ganaug.FeatureGANConfig(seed=seed, device="cpu")
        gan = ganaug.FeatureGAN(x.shape[1], len(counts), config).fit(torch.cat([x, view_x]), torch.cat([y, view_y]))
        filled = ganaug.FeatureDataset(x, y, gan, balance="equalize", seed=seed)
        rows["FeatureGAN fitted on real + augmented views"] = (filled.features, filled.labels)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--head-steps", type=int, default=3000)
    parser.add_argument("--extractor-data", choices=("long-tailed", "disjoint"), default="long-tailed")
    parser.add_argument("--views-gan", action="store_true", help="also fit a FeatureGAN on augmented views")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    setting = load_setting(args.extractor_data)
    mean, std = setting.train_x.mean(dim=0), setting.train_x.std(dim=0).clamp_min(1e-6)
    scores: dict[str, list[list[float]]] = {}
    for seed in range(args.seeds):
        for name, (x, y) in probes(setting, seed, args.views_gan).items():
            head = train_head(x, y, mean, std, args.head_steps, seed)
            recalls = per_class_recall(head, setting.test_x, setting.test_y, mean, std)
            scores.setdefault(name, []).append(recalls)
            print(f"seed {seed} {name:<66} balanced acc {np.mean(recalls):.4f}", flush=True)

    base = float(np.mean(scores["oversampling"]))
    results = {"command": " ".join(sys.argv), "extractor": setting.extractor_info, "counts": setting.counts,
               "seeds": args.seeds, "head_steps": args.head_steps, "probes": {}}
    print(f"\nprobes: long-tailed Fashion-MNIST {setting.counts}, {args.extractor_data} extractor, linear head, "
          f"{args.seeds} seeds, 10k test images")
    print("| probe | balanced accuracy (%) | rare classes 7-9 (%) | vs oversampling (points) |")
    print("|---|---|---|---|")
    for name, runs in scores.items():
        recalls = np.array(runs)
        balanced, rare = recalls.mean(axis=1), recalls[:, 7:].mean(axis=1)
        spread = float(balanced.std(ddof=1)) if len(balanced) > 1 else 0.0
        results["probes"][name] = {"balanced_accuracy": float(balanced.mean()), "balanced_accuracy_std": spread,
                                   "rare_accuracy": float(rare.mean()), "gain_vs_oversampling":
                                   float(balanced.mean()) - base, "per_class_recall": recalls.mean(axis=0).tolist()}
        print(f"| {name} | {balanced.mean() * 100:.2f} ± {spread * 100:.2f} | {rare.mean() * 100:.2f} | "
              f"{(balanced.mean() - base) * 100:+.2f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
