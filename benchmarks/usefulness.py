"""Usefulness benchmark: does ganaug raise a classifier's test accuracy when labelled data is scarce?

For each k in --ks, k labelled Fashion-MNIST training images per class are drawn (seed 0) and
are all the data of that setting:

1. Feature network: by default timm ``resnet10t`` pretrained by ganaug's offline path on those
   k x 10 images only (no ImageNet weights, no other Fashion-MNIST images; see
   docs/benchmarks.md); ``--backbone tf_efficientnet_lite0 --backbone-weights auto --input-size 48``
   gives the GAN ImageNet features instead (from the installed weight package).
2. GAN: ``ganaug.train`` on the same images for --gan-minutes of CPU time.
3. Classifier recipe, fixed for every arm: timm ``resnet10t`` (1 input channel, 28 px), AdamW
   lr 2e-3, weight decay 5e-4, one-cycle schedule, batch 64, --steps optimizer steps (the same in
   every arm, so an arm with more data does not train longer), tested on all 10k test images.
   Arms:
   - none: real images only, no augmentation;
   - standard: HorizontalFlip + Affine (shift 10%, scale 0.9-1.1, rotate 10 degrees);
   - standard + GANAugment(replace, p=--replace-p) before the standard chain;
   - standard + GANAugment(variant, p=--variant-p) before the standard chain;
   - standard + ExpandedDataset(synthetic_ratio=--expand-ratio);
   - synthetic only (CAS, Ravuri & Vinyals): trained on SyntheticDataset images only (--cas-ratio
     times as many as the real set, fixed items), standard augmentation, tested on real images.
   Each arm runs with --seeds seeds; the GAN and the data subset stay fixed.
4. Sample quality of each GAN in the independent evaluation CNN's feature space
   (benchmarks/eval_classifier.py; trained on all 60k, used only to score): FD, KID,
   precision/recall/density/coverage against the test set, and that CNN's label accuracy; the
   same for the k x 10 real images, the ceiling.

    python benchmarks/usefulness.py                         # k = 50, 100, 500; about 70 CPU minutes
    python benchmarks/usefulness.py --ks 100 --seeds 1 --steps 100 --gan-minutes 1   # quick look

Trained GANs are cached in benchmarks/cache/usefulness/ (delete to retrain). Prints a table,
writes benchmarks/results/usefulness.json, docs/images/usefulness_accuracy.png and a sample
grid per k.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import albumentations as A
import numpy as np
import timm
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from eval_classifier import features, load_or_train_eval_classifier, predict  # noqa: E402

import ganaug  # noqa: E402
from ganaug._util.files import save_image_grid  # noqa: E402
from ganaug.albumentations import GANAugment  # noqa: E402
from ganaug.eval.metrics import (  # noqa: E402
    frechet_distance,
    kernel_inception_distance,
    precision_recall_density_coverage,
)

RESULTS = ROOT / "benchmarks" / "results" / "usefulness.json"
IMAGES = ROOT / "docs" / "images"
CACHE = ROOT / "benchmarks" / "cache" / "usefulness"
ARMS = ("none", "standard", "standard + GANAugment replace", "standard + GANAugment variant",
        "standard + ExpandedDataset", "synthetic only (CAS)")
EXTRA_ARMS = ("standard + GANAugment mix",)  # tried with --arms; not in the default table
BATCH = 64


def subset_per_class(dataset: ganaug.ImageDataset, k: int, seed: int = 0) -> ganaug.ImageDataset:
    """The first k images of each class in a seeded shuffle."""
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    picks = torch.cat([order[dataset.labels[order] == c][:k] for c in range(dataset.num_classes)])
    return dataset.subset(picks)


def standard_augmentation() -> list:
    return [A.HorizontalFlip(p=0.5),
            A.Affine(translate_percent=(-0.1, 0.1), scale=(0.9, 1.1), rotate=(-10, 10), border_mode=0, p=0.8)]


class RealImages(Dataset):
    """(numpy (28, 28, 1) uint8, label) items of an ImageDataset."""

    def __init__(self, dataset: ganaug.ImageDataset):
        self.images = dataset.images.permute(0, 2, 3, 1).numpy()
        self.targets = dataset.labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.images[index], int(self.targets[index])


class Augmented(Dataset):
    """Applies an albumentations Compose (with class_label) to (numpy image, label) items."""

    def __init__(self, base: Dataset, transform: A.Compose | None):
        self.base, self.transform = base, transform

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        image, label = self.base[index]
        image = np.asarray(image)
        if image.ndim == 2:
            image = image[..., None]
        if self.transform is not None:
            image = self.transform(image=image, class_label=label)["image"]
        return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1), label


def make_classifier() -> torch.nn.Module:
    return timm.create_model("resnet10t", pretrained=False, num_classes=10, in_chans=1)


def train_classifier(dataset: Dataset, steps: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = make_classifier()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps)
    loader = DataLoader(dataset, batch_size=BATCH, shuffle=True, drop_last=len(dataset) > BATCH,
                        generator=torch.Generator().manual_seed(seed))
    model.train()
    step = 0
    while step < steps:
        for images, labels in loader:
            loss = F.cross_entropy(model(images.float() / 255 - 0.5), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            if step == steps:
                break
    return model.eval()


@torch.no_grad()
def test_accuracy(model: torch.nn.Module, test: ganaug.ImageDataset) -> float:
    correct = 0
    for i in range(0, len(test), 1000):
        logits = model(test.images[i:i + 1000].float() / 255 - 0.5)
        correct += int((logits.argmax(1) == test.labels[i:i + 1000]).sum())
    return correct / len(test)


def train_gan(data: ganaug.ImageDataset, k: int, minutes: float, cache: Path, backbone: str, backbone_weights: str,
              input_size: int) -> tuple[Path, dict]:
    run = cache / f"k{k}" / "gan"
    if not (run / "checkpoint.safetensors").is_file():
        # Enough pretraining epochs that the feature network sees about 30k images, whatever k.
        epochs = max(1, math.ceil(30_000 / len(data)))
        config = ganaug.TrainConfig(minutes=minutes, backbone=backbone, backbone_weights=backbone_weights,
                                    backbone_input_size=input_size, pretrain_epochs=epochs, seed=0,
                                    checkpoint_every=250, sample_every=10**9, log_every=50)
        start = time.monotonic()
        ganaug.train(data, config, run, progress=False)
        print(f"k={k}: GAN trained in {time.monotonic() - start:.0f} s", flush=True)
    info = json.loads((run / "config.json").read_text())
    name = str(run.relative_to(ROOT)) if run.is_relative_to(ROOT) else str(run)
    return run, {"run": name, "backbone": info.get("backbone"), "minutes": info["config"]["minutes"]}


def image_quality(images: torch.Tensor, labels: torch.Tensor, evaluator, test_features: torch.Tensor) -> dict:
    """FD, precision/recall/density/coverage against the test set, and label accuracy, in the evaluator's space."""
    found = features(evaluator, images)
    return {"fd": frechet_distance(found, test_features),
            **precision_recall_density_coverage(test_features[:5000], found, k=5).to_dict(),
            "label_accuracy": float((predict(evaluator, images) == labels).float().mean())}


def gan_quality(run: Path, evaluator, test: ganaug.ImageDataset, test_features: torch.Tensor) -> dict:
    gan = ganaug.GANAug.from_pretrained(run, device="cpu")
    labels = torch.arange(10).repeat_interleave(500)
    samples = gan.sample(len(labels), labels=labels, seed=1)
    kid, kid_std = kernel_inception_distance(test_features, features(evaluator, samples), subsets=50,
                                             subset_size=1000)
    return {**image_quality(samples, labels, evaluator, test_features), "kid": kid, "kid_std": kid_std,
            "step": gan.info["step"]}


def arm_dataset(arm: str, real: RealImages, run: Path, args: argparse.Namespace, seed: int) -> Dataset:
    standard = standard_augmentation()
    if arm == "none":
        return Augmented(real, None)
    if arm == "standard":
        return Augmented(real, A.Compose(standard, seed=seed))
    if arm.startswith("standard + GANAugment"):
        mode = arm.rsplit(" ", 1)[1]
        p = {"replace": args.replace_p, "variant": args.variant_p, "mix": args.mix_p}[mode]
        gan_augment = GANAugment(run, mode=mode, p=p, device="cpu", bank_seed=seed)
        return Augmented(real, A.Compose([gan_augment, *standard], seed=seed))
    if arm == "standard + ExpandedDataset":
        expanded = ganaug.ExpandedDataset(real, run, synthetic_ratio=args.expand_ratio, seed=seed, device="cpu")
        return Augmented(expanded, A.Compose(standard, seed=seed))
    if arm == "synthetic only (CAS)":
        counts = torch.bincount(real.targets, minlength=10).mul(args.cas_ratio).tolist()
        synthetic = ganaug.SyntheticDataset(run, class_counts=counts, seed=seed, device="cpu")
        return Augmented(_NumpyItems(synthetic), A.Compose(standard, seed=seed))
    raise ValueError(arm)


class _NumpyItems(Dataset):
    """SyntheticDataset items (tensor CHW) as numpy HWC."""

    def __init__(self, base: Dataset):
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        image, label = self.base[index]
        return image.permute(1, 2, 0).numpy(), label


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = sorted(int(k) for k in results["settings"])
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    width = 0.8 / len(ARMS)
    for i, arm in enumerate(ARMS):
        means = [results["settings"][str(k)]["arms"][arm]["mean"] * 100 for k in ks]
        stds = [results["settings"][str(k)]["arms"][arm]["std"] * 100 for k in ks]
        ax.bar(np.arange(len(ks)) + (i - (len(ARMS) - 1) / 2) * width, means, width, yerr=stds, capsize=2,
               label=arm)
    ax.set_xticks(np.arange(len(ks)), [f"k = {k} per class" for k in ks])
    ax.set_ylabel("test accuracy (%), 10k images")
    low = min(results["settings"][str(k)]["arms"][a]["mean"] for k in ks for a in ARMS) * 100
    ax.set_ylim(max(0, low - 5), 100)
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    ax.set_title("Fashion-MNIST, resnet10t classifier, mean ± std over seeds")
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ks", type=int, nargs="+", default=[50, 100, 500])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=500, help="classifier optimizer steps in every arm")
    parser.add_argument("--gan-minutes", type=float, default=6.0)
    parser.add_argument("--replace-p", type=float, default=0.3)
    parser.add_argument("--variant-p", type=float, default=0.5)
    parser.add_argument("--mix-p", type=float, default=0.5)
    parser.add_argument("--expand-ratio", type=float, default=1.0)
    parser.add_argument("--cas-ratio", type=int, default=1, help="synthetic images per real one in the CAS arm")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS + EXTRA_ARMS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--cache", type=Path, default=CACHE, help="where trained GANs are kept")
    parser.add_argument("--backbone", default="resnet10t", help="the discriminator's backbone")
    parser.add_argument("--backbone-weights", default="pretrain",
                        help="'pretrain' (on the k x 10 images only), or 'auto'/'hub' (e.g. ImageNet weights from an "
                             "installed package)")
    parser.add_argument("--input-size", type=int, default=32, help="the backbone's input size")
    args = parser.parse_args()

    train, test = ganaug.load_fashion_mnist("train"), ganaug.load_fashion_mnist("test")
    if train.source.kind == "embedded":
        raise SystemExit("the full Fashion-MNIST is missing: apt-get install dataset-fashion-mnist")
    evaluator, evaluator_info = load_or_train_eval_classifier(train.images, train.labels, test.images, test.labels)
    test_features = features(evaluator, test.images)
    results: dict = {"command": " ".join(sys.argv), "steps": args.steps, "batch_size": BATCH, "seeds": args.seeds,
                     "replace_p": args.replace_p, "variant_p": args.variant_p, "mix_p": args.mix_p,
                     "expand_ratio": args.expand_ratio, "cas_ratio": args.cas_ratio, "evaluator": evaluator_info,
                     "torch_threads": torch.get_num_threads(), "settings": {}}
    suffix = "" if (args.backbone, args.backbone_weights) == ("resnet10t", "pretrain") else f"_{args.backbone}"
    for k in args.ks:
        data = subset_per_class(train, k)
        run, gan_info = train_gan(data, k, args.gan_minutes, args.cache, args.backbone, args.backbone_weights,
                                  args.input_size)
        quality = gan_quality(run, evaluator, test, test_features)
        ceiling = image_quality(data.images, data.labels, evaluator, test_features)  # the real k x 10: the ceiling
        print(f"k={k}: GAN step {quality['step']}, FD {quality['fd']:.2f}, label acc {quality['label_accuracy']:.3f}",
              flush=True)
        gan = ganaug.GANAug.from_pretrained(run, device="cpu")
        save_image_grid(torch.cat([data.images[data.labels == c][:5] for c in range(10)]
                                  + [gan.sample(50, labels=torch.arange(10).repeat_interleave(5), seed=2)]),
                        IMAGES / f"usefulness_k{k}_samples{suffix}.png", nrow=10, scale=2)
        real = RealImages(data)
        setting = {"gan": {**gan_info, **quality}, "real_images": ceiling, "arms": {}}
        for arm in args.arms:
            accuracies, seconds = [], []
            for seed in range(args.seeds):
                start = time.monotonic()
                model = train_classifier(arm_dataset(arm, real, run, args, seed), args.steps, seed)
                accuracies.append(test_accuracy(model, test))
                seconds.append(time.monotonic() - start)
                print(f"k={k} {arm:<32} seed {seed}: {accuracies[-1]:.4f} ({seconds[-1]:.0f} s)", flush=True)
            values = np.array(accuracies)
            setting["arms"][arm] = {"accuracies": accuracies, "mean": float(values.mean()),
                                    "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                                    "seconds": float(np.mean(seconds))}
        base = setting["arms"].get("standard")
        for values in setting["arms"].values():
            if base is not None:
                values["gain_vs_standard"] = values["mean"] - base["mean"]
        results["settings"][str(k)] = setting
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))

    print(f"\nusefulness: resnet10t classifier, GAN backbone {args.backbone} ({args.backbone_weights}), "
          f"{args.steps} steps x {BATCH}, mean ± std test accuracy over {args.seeds} seeds "
          "(10k test images); gain vs standard augmentation in points")
    print("| k | arm | accuracy (%) | gain (points) |\n|---|---|---|---|")
    for k, setting in results["settings"].items():
        for arm, values in setting["arms"].items():
            gain = values.get("gain_vs_standard")
            print(f"| {k} | {arm} | {values['mean'] * 100:.2f} ± {values['std'] * 100:.2f} | "
                  f"{'' if gain is None else f'{gain * 100:+.2f}'} |")
    print("\n| k | GAN steps | FD | KID x 10^3 | precision | recall | density | coverage | label acc |")
    print("|---|---|---|---|---|---|---|---|---|")
    for k, setting in results["settings"].items():
        q, r = setting["gan"], setting["real_images"]
        print(f"| {k} | {q['step']} | {q['fd']:.2f} | {q['kid'] * 1000:.2f} | {q['precision']:.3f} | "
              f"{q['recall']:.3f} | {q['density']:.3f} | {q['coverage']:.3f} | {q['label_accuracy']:.3f} |")
        print(f"| {k}, the k x 10 real images (ceiling) | | {r['fd']:.2f} | | {r['precision']:.3f} | "
              f"{r['recall']:.3f} | {r['density']:.3f} | {r['coverage']:.3f} | {r['label_accuracy']:.3f} |")
    if all(arm in setting["arms"] for setting in results["settings"].values() for arm in ARMS):
        plot(results, IMAGES / "usefulness_accuracy.png")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
