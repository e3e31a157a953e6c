"""Usefulness benchmark: does ganaug raise a classifier's test accuracy when labelled data is scarce?

Protocol (issue #17):

- Data: for each k in --ks, k labelled Fashion-MNIST training images per class, from --subsets
  seeded subsets (subset s: the first k of each class in a shuffle seeded s). The GAN, its
  in-domain feature network and the classifier see only those images (plus ImageNet weights
  where --backbone-weights says so; the table names the backbone).
- Classifier: timm ``resnet10t`` from scratch (1 channel, 28 px), AdamW lr 2e-3, weight decay
  5e-4, one-cycle schedule, batch 64, the same number of optimizer steps in every arm of a k
  (--steps, per k), tested on all 10k test images. ``--classifier lite0`` fine-tunes
  ``tf_efficientnet_lite0`` from its ImageNet weights (installed package) at 32 px instead.
- Arms (--arms; each a spec: a kind and key=value settings):
  - ``none``: real images, no augmentation;
  - ``standard``: HorizontalFlip + Affine (shift 10%, scale 0.9-1.1, rotate 10 degrees);
  - ``strong``: horizontal flip + torchvision ``v2.TrivialAugmentWide``;
  - ``gan [mode=replace] [p=0.5] [end_real=0] [bank=128] [refresh=4096] [chain=standard]``:
    ``GANAugment`` (defaults unless given; the bank's, 128 images per class refreshed every 4096
    draws, are those of the recorded runs: the library's are 256 and 16384 since 2026-12-04)
    before the standard chain (``chain=strong``: the strong one);
    ``interp=1``: each bank sample's instance condition is a random blend of two same-class
    real images' features (a lever under test, patched in here, not a library option);
    ``end_real=f``: the last fraction f of the steps on the standard arm's data;
  - ``expand [ratio=0.5] [end_real=0] [weight=1]``: ``ExpandedDataset`` with the standard chain;
    ``weight=w``: synthetic items' loss weighted w (``return_is_synthetic=True``); ``soft=1``: their
    target is the softmax of a teacher trained as the standard arm is (same steps and seed);
  - ``cas``: synthetic images only (as many as the real ones), standard chain, tested on real;
  - ``oracle``: standard augmentation on twice as many real images (the first 2k of the same
    shuffle), so a gain can be read as equivalent real images.
- Statistics: each arm's gain over ``standard`` as the mean paired difference (same subset, same
  classifier seed) with a 95% t interval over the pairs.
- Diversity: each GAN's FD, precision/recall/density/coverage and label accuracy in an
  independent CNN's feature space (benchmarks/eval_classifier.py, trained on all 60k, used only
  to score), and the same for the real k images (the ceiling).
- ``--tune``: knobs are chosen on a validation split drawn from the k images, never on the test
  set: subset 0 of each k is split 80/20 per class, the GAN and the classifiers train on the 80%
  and the arms are scored on the 20% (results/usefulness_tuning.json).
- ``--long-tail``: class counts falling geometrically from 500 to 10 (seeded), classifier arms
  plain, oversampling, class-weighted loss and ``ExpandedDataset(balance="equalize")``, scored
  on balanced test accuracy and on the 5 rarest classes (results/usefulness_long_tail.json).

    python benchmarks/usefulness.py --tune --ks 100                 # choose knobs on validation
    python benchmarks/usefulness.py --ks 50 100 500                 # the table (CPU hours)
    python benchmarks/usefulness.py --long-tail

Trained GANs are cached under --cache (delete to retrain). Prints a table, writes --out and
docs/images/usefulness_accuracy.png.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import albumentations as A
import numpy as np
import timm
import torch
import torch.nn.functional as F
from scipy import stats
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from eval_classifier import features, load_or_train_eval_classifier, predict  # noqa: E402

import ganaug  # noqa: E402
from ganaug._util.files import atomic_path, save_image_grid  # noqa: E402
from ganaug.albumentations import GANAugment  # noqa: E402
from ganaug.eval.metrics import frechet_distance, precision_recall_density_coverage  # noqa: E402
from ganaug.nets.weights import resolve_weights  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
IMAGES = ROOT / "docs" / "images"
CACHE = ROOT / "benchmarks" / "cache" / "usefulness"
DEFAULT_ARMS = ("none", "standard", "strong", "gan", "expand", "oracle")
STEPS = {50: 500, 100: 600, 500: 1500}  # per k, the same in every arm
BATCH = 64


# --- data ---------------------------------------------------------------------------------------

def subset_per_class(dataset: ganaug.ImageDataset, k: int, seed: int = 0) -> ganaug.ImageDataset:
    """The first k images of each class in a shuffle seeded ``seed`` (so subset(2k) holds subset(k))."""
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    picks = torch.cat([order[dataset.labels[order] == c][:k] for c in range(dataset.num_classes)])
    return dataset.subset(picks)


def split_per_class(data: ganaug.ImageDataset, fraction: float = 0.8,
                    ) -> tuple[ganaug.ImageDataset, ganaug.ImageDataset]:
    """The first ``fraction`` of each class's images, and the rest (the validation split)."""
    first, rest = [], []
    for c in range(data.num_classes):
        index = torch.nonzero(data.labels == c).flatten()
        cut = round(len(index) * fraction)
        first.append(index[:cut])
        rest.append(index[cut:])
    return data.subset(torch.cat(first)), data.subset(torch.cat(rest))


def long_tail_counts(num_classes: int = 10, high: int = 500, low: int = 10) -> list[int]:
    """Class counts falling geometrically from ``high`` to ``low``."""
    return [round(high * (low / high) ** (c / (num_classes - 1))) for c in range(num_classes)]


def long_tail_subset(dataset: ganaug.ImageDataset, counts: list[int], seed: int) -> ganaug.ImageDataset:
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    return dataset.subset(torch.cat([order[dataset.labels[order] == c][:n] for c, n in enumerate(counts)]))


def standard_augmentation() -> list:
    return [A.HorizontalFlip(p=0.5),
            A.Affine(translate_percent=(-0.1, 0.1), scale=(0.9, 1.1), rotate=(-10, 10), border_mode=0, p=0.8)]


def strong_augmentation() -> v2.Compose:
    return v2.Compose([v2.RandomHorizontalFlip(), v2.TrivialAugmentWide()])


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
    """(uint8 tensor CHW, label) items: an albumentations Compose (with class_label) or a v2 transform applied."""

    def __init__(self, base: Dataset, transform: A.Compose | None = None, tensor_transform=None):
        self.base, self.transform, self.tensor_transform = base, transform, tensor_transform

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        image, label, *flag = self.base[index]
        image = np.asarray(image)
        if image.ndim == 2:
            image = image[..., None]
        if self.transform is not None:
            image = self.transform(image=image, class_label=label)["image"]
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
        if self.tensor_transform is not None:
            tensor = self.tensor_transform(tensor)
        return (tensor, label, *flag)


class _NumpyItems(Dataset):
    """SyntheticDataset items (tensor CHW) as numpy HWC."""

    def __init__(self, base: Dataset):
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        image, label = self.base[index]
        return image.permute(1, 2, 0).numpy(), label


# --- arms ---------------------------------------------------------------------------------------

@dataclass
class Arm:
    """A parsed arm spec: ``kind key=value ...``."""

    spec: str
    kind: str
    settings: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: str) -> Arm:
        kind, *pairs = spec.split()
        settings = {}
        for pair in pairs:
            key, _, value = pair.partition("=")
            settings[key] = value
        known = {"none": set(), "standard": set(), "strong": set(), "oracle": set(), "cas": set(),
                 "gan": {"mode", "p", "end_real", "bank", "refresh", "chain", "interp"},
                 "expand": {"ratio", "end_real", "weight", "soft"}}
        if kind not in known or not set(settings) <= known[kind]:
            raise SystemExit(f"arm {spec!r}: kinds and settings are {known}")
        return cls(spec, kind, settings)

    @property
    def end_real(self) -> float:
        return float(self.settings.get("end_real", 0))


def arm_dataset(arm: Arm, data: ganaug.ImageDataset, oracle: ganaug.ImageDataset | None, run: Path | None,
                seed: int) -> Dataset:
    real = RealImages(data)
    standard = A.Compose(standard_augmentation(), seed=seed)
    if arm.kind == "none":
        return Augmented(real)
    if arm.kind == "standard":
        return Augmented(real, standard)
    if arm.kind == "strong":
        return Augmented(real, tensor_transform=strong_augmentation())
    if arm.kind == "oracle":
        return Augmented(RealImages(oracle), standard)
    if arm.kind == "gan":
        s = arm.settings
        refresh = s.get("refresh", "4096")
        gan_augment = GANAugment(run, mode=s.get("mode", "replace"), p=float(s.get("p", 0.5)), device="cpu",
                                 bank_seed=seed, bank_size=int(s.get("bank", 128)),
                                 refresh_every=None if refresh == "none" else int(refresh))
        if s.get("chain") == "strong":
            return Augmented(real, A.Compose([gan_augment], seed=seed), tensor_transform=strong_augmentation())
        return Augmented(real, A.Compose([gan_augment, *standard_augmentation()], seed=seed))
    if arm.kind == "expand":
        flagged = "weight" in arm.settings or "soft" in arm.settings
        expanded = ganaug.ExpandedDataset(real, run, synthetic_ratio=float(arm.settings.get("ratio", 0.5)), seed=seed,
                                          device="cpu", return_is_synthetic=flagged)
        return Augmented(expanded, standard)
    if arm.kind == "cas":
        counts = torch.bincount(real.targets, minlength=10).tolist()
        synthetic = ganaug.SyntheticDataset(run, class_counts=counts, seed=seed, device="cpu")
        return Augmented(_NumpyItems(synthetic), standard)
    raise AssertionError(arm)


# --- classifier ---------------------------------------------------------------------------------

@dataclass
class Classifier:
    name: str = "resnet10t"  # or "lite0"

    def make(self) -> torch.nn.Module:
        if self.name == "resnet10t":
            return timm.create_model("resnet10t", pretrained=False, num_classes=10, in_chans=1)
        # ganaug's own lookup (timm's caches, then an installed weights package); timm drops the 1000-class head
        weights = resolve_weights("tf_efficientnet_lite0", True)
        return timm.create_model("tf_efficientnet_lite0", pretrained=True, num_classes=10,
                                 pretrained_cfg_overlay={"file": str(weights.file)} if weights.file else None)

    @property
    def lr(self) -> float:
        return 2e-3 if self.name == "resnet10t" else 1e-3

    def inputs(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 1, 28, 28) -> the network's input."""
        x = images.float() / 255
        if self.name == "resnet10t":
            return x - 0.5
        x = F.interpolate(x, size=32, mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
        return (x - 0.5) / 0.5  # tf_ EfficientNet-Lite: mean and std 0.5


def train_classifier(classifier: Classifier, dataset: Dataset, steps: int, seed: int, late: Dataset | None = None,
                     late_from: int | None = None, class_weights: torch.Tensor | None = None, sampler_weights=None,
                     synthetic_weight: float = 1.0, teacher: torch.nn.Module | None = None) -> torch.nn.Module:
    """``steps`` AdamW steps on ``dataset`` (from step ``late_from`` on ``late``), one-cycle schedule.

    Items ``(image, label, is_synthetic)`` weight the synthetic ones' loss by ``synthetic_weight``;
    with a ``teacher``, the synthetic ones' target is the teacher's softmax instead of their label.
    """
    torch.manual_seed(seed)
    model = classifier.make()
    optimizer = torch.optim.AdamW(model.parameters(), lr=classifier.lr, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=classifier.lr, total_steps=steps)

    def loader(data: Dataset) -> DataLoader:
        generator = torch.Generator().manual_seed(seed)
        if sampler_weights is not None:
            sampler = torch.utils.data.WeightedRandomSampler(sampler_weights, len(data), generator=generator)
            return DataLoader(data, batch_size=BATCH, sampler=sampler, drop_last=True)
        return DataLoader(data, batch_size=BATCH, shuffle=True, drop_last=len(data) > BATCH, generator=generator)

    model.train()
    step, current = 0, loader(dataset)
    while step < steps:
        for images, labels, *flag in current:
            x = classifier.inputs(images)
            logits = model(x)
            losses = F.cross_entropy(logits, labels, weight=class_weights, reduction="none")
            if flag and teacher is not None:
                with torch.no_grad():
                    soft = teacher(x).softmax(dim=1)
                soft_losses = -(soft * logits.log_softmax(dim=1)).sum(dim=1)
                losses = torch.where(flag[0], soft_losses, losses)
            if flag:
                weights = torch.where(flag[0], synthetic_weight, 1.0)
                loss = (losses * weights).sum() / weights.sum()
            elif class_weights is not None:
                loss = losses.sum() / class_weights[labels].sum()
            else:
                loss = losses.mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            if step == steps:
                break
            if late is not None and step == late_from:
                current = loader(late)
                break
    return model.eval()


@torch.no_grad()
def predictions(classifier: Classifier, model: torch.nn.Module, test: ganaug.ImageDataset) -> torch.Tensor:
    return torch.cat([model(classifier.inputs(test.images[i:i + 500])).argmax(1) for i in range(0, len(test), 500)])


@contextlib.contextmanager
def blended_instances(enabled: bool):
    """While enabled, class samples take as instance condition a blend ``(1 - l) f_i + l f_j`` of two
    same-class bank features (l ~ U(0, 1)), rescaled to the mean of their norms."""
    if not enabled:
        yield
        return
    import ganaug.sampling.gan as gan_module

    original = gan_module.draw_instance_features

    def blended(features, feature_labels, labels, rng):
        first = original(features, feature_labels, labels, rng)
        second = original(features, feature_labels, labels, rng)
        lam = torch.rand(len(labels), 1, generator=rng)
        mixed = (1 - lam) * first + lam * second
        norm = (first.norm(dim=1, keepdim=True) + second.norm(dim=1, keepdim=True)) / 2
        return F.normalize(mixed, dim=1) * norm

    gan_module.draw_instance_features = blended
    try:
        yield
    finally:
        gan_module.draw_instance_features = original


def run_arm(arm: Arm, classifier: Classifier, data, oracle, run, steps: int, seed: int, test) -> float:
    with blended_instances(arm.settings.get("interp") == "1"):
        return _run_arm(arm, classifier, data, oracle, run, steps, seed, test)


def _run_arm(arm: Arm, classifier: Classifier, data, oracle, run, steps: int, seed: int, test) -> float:
    dataset = arm_dataset(arm, data, oracle, run, seed)
    late = None
    if arm.end_real:
        late = arm_dataset(Arm.parse("standard"), data, oracle, run, seed)
    teacher = None
    if arm.settings.get("soft") == "1":  # a teacher trained like the standard arm labels the synthetic items
        teacher = train_classifier(classifier, arm_dataset(Arm.parse("standard"), data, oracle, run, seed), steps, seed)
    model = train_classifier(classifier, dataset, steps, seed, late, round(steps * (1 - arm.end_real)),
                             synthetic_weight=float(arm.settings.get("weight", 1.0)), teacher=teacher)
    return float((predictions(classifier, model, test) == test.labels).float().mean())


# --- GANs and their quality ---------------------------------------------------------------------

def train_gan(data: ganaug.ImageDataset, run: Path, args: argparse.Namespace) -> dict:
    if not (run / "checkpoint.safetensors").is_file():
        epochs = max(1, math.ceil(30_000 / len(data)))  # the feature network sees about 30k images, whatever k
        config = ganaug.TrainConfig(steps=args.gan_steps, backbone=args.backbone,
                                    backbone_weights=args.backbone_weights, backbone_input_size=args.input_size,
                                    pretrain_epochs=epochs, pretrain_minutes=10.0, seed=0, checkpoint_every=250,
                                    sample_every=10**9,
                                    log_every=50)
        start = time.monotonic()
        ganaug.train(data, config, run, progress=False)
        print(f"{run.name}: GAN trained in {time.monotonic() - start:.0f} s", flush=True)
    info = json.loads((run / "config.json").read_text())
    return {"run": str(run.relative_to(ROOT)) if run.is_relative_to(ROOT) else str(run),
            "backbone": info.get("backbone"), "steps": info["config"]["steps"]}


def image_quality(images: torch.Tensor, labels: torch.Tensor, evaluator, test_features: torch.Tensor) -> dict:
    """FD, precision/recall/density/coverage against the test set, and label accuracy, in the evaluator's space."""
    found = features(evaluator, images)
    return {"fd": frechet_distance(found, test_features),
            **precision_recall_density_coverage(test_features[:5000], found, k=5).to_dict(),
            "label_accuracy": float((predict(evaluator, images) == labels).float().mean())}


# --- statistics ---------------------------------------------------------------------------------

def paired_gain(values: list[float], base: list[float]) -> dict:
    """Mean paired difference (points) with its 95% t interval."""
    diff = (np.array(values) - np.array(base)) * 100
    mean = float(diff.mean())
    if len(diff) < 2:
        return {"mean": mean, "low": None, "high": None, "n": len(diff)}
    half = float(stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / math.sqrt(len(diff)))
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": len(diff)}


def summarize(arms: dict) -> None:
    base, strong = arms.get("standard"), arms.get("strong")
    for values in arms.values():
        acc = np.array(values["accuracies"])
        values["mean"] = float(acc.mean())
        values["std"] = float(acc.std(ddof=1)) if len(acc) > 1 else 0.0
        if base is not None:
            values["gain_vs_standard"] = paired_gain(values["accuracies"], base["accuracies"])
        if strong is not None:  # the bar a drop-in must also clear
            values["gain_vs_strong"] = paired_gain(values["accuracies"], strong["accuracies"])


def gain_text(gain: dict | None) -> str:
    if gain is None:
        return ""
    if gain["low"] is None:
        return f"{gain['mean']:+.2f}"
    return f"{gain['mean']:+.2f} [{gain['low']:+.2f}, {gain['high']:+.2f}]"


def write(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(results, indent=2))


# --- the three studies --------------------------------------------------------------------------

def main_table(args, train, test, evaluator, test_features, classifier: Classifier) -> dict:
    arms = [Arm.parse(spec) for spec in args.arms]
    results = {"command": " ".join(sys.argv), "classifier": classifier.name, "batch_size": BATCH,
               "gan_backbone": f"{args.backbone} ({args.backbone_weights})", "gan_steps": args.gan_steps,
               "subsets": args.subsets, "settings": {}}
    for k in args.ks:
        steps = args.steps or STEPS[k]
        setting = {"steps": steps, "gans": [], "real_images": [], "arms": {a.spec: {"accuracies": []} for a in arms}}
        results["settings"][str(k)] = setting
        for s in range(args.subsets):
            data, oracle = subset_per_class(train, k, s), subset_per_class(train, 2 * k, s)
            run = None
            if any(a.kind in ("gan", "expand", "cas") for a in arms):
                run = args.cache / f"k{k}_s{s}"
                gan = train_gan(data, run, args)
                model = ganaug.GANAug.from_pretrained(run, device="cpu")
                gan.update(image_quality_of_model(model, evaluator, test_features))
                setting["gans"].append(gan)
                print(f"k={k} s={s}: GAN FD {gan['fd']:.2f} recall {gan['recall']:.3f} coverage "
                      f"{gan['coverage']:.3f} label acc {gan['label_accuracy']:.3f}", flush=True)
                if s == 0:
                    sample_grid(data, model, IMAGES / f"usefulness_k{k}_samples.png")
            setting["real_images"].append(image_quality(data.images, data.labels, evaluator, test_features))
            for arm in arms:
                start = time.monotonic()
                accuracy = run_arm(arm, classifier, data, oracle, run, steps, s, test)
                setting["arms"][arm.spec]["accuracies"].append(accuracy)
                print(f"k={k} s={s} {arm.spec:<40} {accuracy:.4f} ({time.monotonic() - start:.0f} s)", flush=True)
            summarize(setting["arms"])
            write(results, args.out)
    return results


def image_quality_of_model(gan: ganaug.GANAug, evaluator, test_features) -> dict:
    labels = torch.arange(10).repeat_interleave(500)
    return image_quality(gan.sample(len(labels), labels=labels, seed=1), labels, evaluator, test_features)


def sample_grid(data: ganaug.ImageDataset, gan: ganaug.GANAug, path: Path) -> None:
    save_image_grid(torch.cat([data.images[data.labels == c][:5] for c in range(10)]
                              + [gan.sample(50, labels=torch.arange(10).repeat_interleave(5), seed=2)]),
                    path, nrow=10, scale=2)


def tune(args, train, classifier: Classifier) -> dict:
    """Arms scored on a validation split of subset 0 (80/20 per class); the test set is not touched."""
    arms = [Arm.parse(spec) for spec in args.arms]
    results = {"command": " ".join(sys.argv), "classifier": classifier.name, "gan_steps": args.gan_steps,
               "seeds": args.seeds, "settings": {}}
    for k in args.ks:
        fit, validation = split_per_class(subset_per_class(train, k, 0))
        run = args.cache / f"tune_k{k}"
        gan = train_gan(fit, run, args)
        steps = args.steps or STEPS[k]
        setting = {"steps": steps, "train": len(fit), "validation": len(validation), "gan": gan,
                   "arms": {a.spec: {"accuracies": []} for a in arms}}
        results["settings"][str(k)] = setting
        for seed in range(args.seeds):
            for arm in arms:
                start = time.monotonic()
                accuracy = run_arm(arm, classifier, fit, None, run, steps, seed, validation)
                setting["arms"][arm.spec]["accuracies"].append(accuracy)
                print(f"tune k={k} seed {seed} {arm.spec:<40} {accuracy:.4f} ({time.monotonic() - start:.0f} s)",
                      flush=True)
            summarize(setting["arms"])
            write(results, args.out)
    return results


def long_tail(args, train, test, classifier: Classifier) -> dict:
    """Balancing a long-tailed set: plain, oversampling, class-weighted loss, ExpandedDataset(balance="equalize")."""
    counts = long_tail_counts()
    data = long_tail_subset(train, counts, 0)
    run = args.cache / "long_tail"
    gan = train_gan(data, run, args)
    steps = args.steps or 1500
    count = torch.tensor(counts, dtype=torch.float)
    standard = lambda seed: A.Compose(standard_augmentation(), seed=seed)  # noqa: E731
    arms = {
        "plain": lambda seed: (Augmented(RealImages(data), standard(seed)), {}),
        "oversampling": lambda seed: (Augmented(RealImages(data), standard(seed)),
                                      {"sampler_weights": (1 / count)[data.labels]}),
        "class-weighted loss": lambda seed: (Augmented(RealImages(data), standard(seed)),
                                             {"class_weights": count.sum() / (len(count) * count)}),
        'ExpandedDataset(balance="equalize")': lambda seed: (Augmented(ganaug.ExpandedDataset(
            RealImages(data), run, synthetic_ratio=None, balance="equalize", seed=seed, device="cpu"),
            standard(seed)), {}),
    }
    rare = torch.arange(5, 10)
    results = {"command": " ".join(sys.argv), "classifier": classifier.name, "counts": counts, "steps": steps,
               "gan": gan, "seeds": args.seeds, "arms": {}}
    for name, make in arms.items():
        entry = results["arms"][name] = {"balanced": [], "rare": []}
        for seed in range(args.seeds):
            dataset, extra = make(seed)
            model = train_classifier(classifier, dataset, steps, seed, **extra)
            found = predictions(classifier, model, test)
            per_class = torch.stack([(found[test.labels == c] == c).float().mean() for c in range(10)])
            entry["balanced"].append(float(per_class.mean()))
            entry["rare"].append(float(per_class[rare].mean()))
            print(f"long tail {name:<36} seed {seed}: balanced {entry['balanced'][-1]:.4f} "
                  f"rare {entry['rare'][-1]:.4f}", flush=True)
        write(results, args.out)
    base = results["arms"]["oversampling"]
    for entry in results["arms"].values():
        entry["gain_vs_oversampling"] = paired_gain(entry["balanced"], base["balanced"])
        entry["rare_gain_vs_oversampling"] = paired_gain(entry["rare"], base["rare"])
    write(results, args.out)
    print("\n| arm | balanced acc (%) | gain vs oversampling | 5 rarest (%) | gain |\n|---|---|---|---|---|")
    for name, entry in results["arms"].items():
        print(f"| {name} | {np.mean(entry['balanced']) * 100:.2f} | {gain_text(entry['gain_vs_oversampling'])} | "
              f"{np.mean(entry['rare']) * 100:.2f} | {gain_text(entry['rare_gain_vs_oversampling'])} |")
    return results


def print_table(results: dict) -> None:
    print(f"\nusefulness: {results['classifier']} classifier, GAN backbone {results.get('gan_backbone', '')}; "
          "accuracy mean ± std, gain vs standard = mean paired difference [95% interval], points")
    print("| k | arm | accuracy (%) | gain vs standard | gain vs strong |\n|---|---|---|---|---|")
    for k, setting in results["settings"].items():
        for arm, values in setting["arms"].items():
            print(f"| {k} | {arm} | {values['mean'] * 100:.2f} ± {values['std'] * 100:.2f} | "
                  f"{gain_text(values.get('gain_vs_standard'))} | {gain_text(values.get('gain_vs_strong'))} |")
    if any(setting.get("gans") for setting in results["settings"].values()):
        print("\n| k | subset | FD | precision | recall | coverage | label acc |\n|---|---|---|---|---|---|---|")
        for k, setting in results["settings"].items():
            for s, (q, r) in enumerate(zip(setting["gans"], setting["real_images"], strict=False)):
                print(f"| {k} | {s} | {q['fd']:.2f} | {q['precision']:.3f} | {q['recall']:.3f} | {q['coverage']:.3f} "
                      f"| {q['label_accuracy']:.3f} |")
                print(f"| {k} | {s}, real images | {r['fd']:.2f} | {r['precision']:.3f} | {r['recall']:.3f} | "
                      f"{r['coverage']:.3f} | {r['label_accuracy']:.3f} |")


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = list(results["settings"])
    arms = [a for a in results["settings"][ks[0]]["arms"] if a != "standard"]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    width = 0.8 / len(arms)
    for i, arm in enumerate(arms):
        gains = [results["settings"][k]["arms"][arm]["gain_vs_standard"] for k in ks]
        means = np.array([g["mean"] for g in gains])
        errors = np.array([[g["mean"] - (g["low"] if g["low"] is not None else g["mean"]),
                            (g["high"] if g["high"] is not None else g["mean"]) - g["mean"]] for g in gains]).T
        ax.bar(np.arange(len(ks)) + (i - (len(arms) - 1) / 2) * width, means, width, yerr=errors, capsize=2,
               label=arm)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(np.arange(len(ks)), [f"k = {k} per class" for k in ks])
    ax.set_ylabel("gain over standard augmentation (points)")
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    ax.set_title(f"Fashion-MNIST, {results['classifier']}: paired gain, 95% interval over subsets")
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ks", type=int, nargs="+", default=[50, 100, 500])
    parser.add_argument("--subsets", type=int, default=3, help="seeded subsets per k (classifier seed = subset)")
    parser.add_argument("--seeds", type=int, default=2, help="classifier seeds in --tune and --long-tail")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"classifier steps in every arm (default per k: {STEPS})")
    parser.add_argument("--gan-steps", type=int, default=800)
    parser.add_argument("--arms", nargs="+", default=list(DEFAULT_ARMS),
                        help="arm specs, e.g. 'gan p=0.25 interp=1'")
    parser.add_argument("--classifier", choices=("resnet10t", "lite0"), default="resnet10t")
    parser.add_argument("--tune", action="store_true", help="score the arms on a validation split of subset 0")
    parser.add_argument("--long-tail", action="store_true", help="the long-tailed balancing study")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--cache", type=Path, default=CACHE, help="where trained GANs are kept")
    parser.add_argument("--backbone", default="resnet10t", help="the discriminator's backbone")
    parser.add_argument("--backbone-weights", default="pretrain",
                        help="'pretrain' (on the k x 10 images only), or 'auto'/'hub' (e.g. ImageNet weights)")
    parser.add_argument("--input-size", type=int, default=32, help="the backbone's input size")
    args = parser.parse_args()
    study = "tuning" if args.tune else "long_tail" if args.long_tail else ""
    suffix = "_".join(filter(None, [study, "" if args.classifier == "resnet10t" else args.classifier]))
    args.out = args.out or RESULTS / f"usefulness{'_' + suffix if suffix else ''}.json"

    if not (args.tune or args.long_tail):  # the table ends on a plot: fail now, not after an hour
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise SystemExit("the plot needs matplotlib: pip install -e '.[bench]'") from None
    train, test = ganaug.load_fashion_mnist("train"), ganaug.load_fashion_mnist("test")
    if train.source.kind == "embedded":
        raise SystemExit("the full Fashion-MNIST is missing: apt-get install dataset-fashion-mnist")
    classifier = Classifier(args.classifier)
    if args.tune:
        print_table(tune(args, train, classifier))
    elif args.long_tail:
        long_tail(args, train, test, classifier)
    else:
        evaluator, _ = load_or_train_eval_classifier(train.images, train.labels, test.images, test.labels)
        results = main_table(args, train, test, evaluator, features(evaluator, test.images), classifier)
        print_table(results)
        if args.subsets > 1 and "standard" in results["settings"][str(args.ks[0])]["arms"]:
            tag = "" if args.classifier == "resnet10t" else f"_{args.classifier}"
            plot(results, IMAGES / f"usefulness_accuracy{tag}.png")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
