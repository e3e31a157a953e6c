"""Usefulness benchmark: does ganaug raise a classifier's test accuracy when labelled data is scarce?

Protocol (issue #17, with issue #29's additions):

- Data: for each k in --ks, k labelled Fashion-MNIST training images per class, from --subsets
  seeded subsets (subset s: the first k of each class in a shuffle seeded s). The GAN, its
  in-domain feature network and the classifier see only those images (plus ImageNet weights
  where the GAN's backbone takes them; the table names the GAN).
- GAN: the library's defaults (``ganaug.TrainConfig``, the generator issue #27 chose) for
  --gan-steps steps (800), one per k and subset, cached under --cache so that a rerun only trains
  classifiers. The k = 100 runs of benchmarks/diversity.py (its ``train:mbstd_drop50_groups``
  setting) are that same GAN, on the same subsets.
- Classifier: timm ``resnet10t`` from scratch (1 channel, 28 px), AdamW lr 2e-3, weight decay
  5e-4, one-cycle schedule, batch 64, the same number of optimizer steps in every arm of a k
  (--steps, per k), tested on all 10k test images. ``--classifier lite0`` fine-tunes
  ``tf_efficientnet_lite0`` from its ImageNet weights (installed package) at 32 px instead.
- Arms (--arms; each a spec: a kind and key=value settings):
  - ``none``: real images, no augmentation;
  - ``standard``: HorizontalFlip + Affine (shift 10%, scale 0.9-1.1, rotate 10 degrees);
  - ``strong``: horizontal flip + torchvision ``v2.TrivialAugmentWide``;
  - ``gan [mode=replace] [p=0.5] [end_real=0] [bank=N] [refresh=N|none] [chain=standard] [source=gan]``:
    ``GANAugment`` before the standard chain (``chain=strong``: before the strong one), with the
    library's defaults unless given (the drop-in: ``gan``);
    ``instance=bank|blend``: the bank's class samples take an instance condition (the default
    model, trained with ``instance_dropout``, samples its classes with the null one): the
    features of a random training image of the class (IC-GAN's sampling), or a random blend of
    two such images' features (a lever patched in here, not a library option; the old
    ``interp=1`` blended a condition that the null-conditioned samples never used: a no-op);
    ``end_real=f``: the last fraction f of the steps on the standard arm's data;
  - ``source=copy`` / ``source=perfect`` (gan and expand arms): the bracketing generators. The same
    transform, bank, mode and p, but the bank draws real images instead of generating: the k
    training images of the class (a copying generator), or unseen training images of the class
    (a perfect generator; the shuffle's images after the first 2k of the class, so none of the
    subset's nor the oracle's). What any generator can add through that way of use lies between.
  - ``filter=q`` (gan and expand arms): each generated image is the best of round(1/q) candidates by
    the confidence of a teacher trained as the standard arm is (about the top q of each class);
  - ``expand [ratio=0.5] [end_real=0] [weight=1] [share=s]``: ``ExpandedDataset`` with the standard chain, its
    synthetic items (``ratio`` x the real count) generated once and cached; ``share=s``: a weighted
    sampler draws synthetic items with total probability s (e.g. ``ratio=10 share=0.5``: a fixed
    set of 10x the real images, half of each batch);
    ``weight=w``: synthetic items' loss weighted w (``return_is_synthetic=True``); ``soft=1``: their
    target is the softmax of a teacher trained as the standard arm is (same steps and seed), ``soft=hard``
    its argmax (pseudo-labels); ``synthetic_chain=flip|none``: a weaker chain on the synthetic items
    (a flip, or nothing) than on the real ones (AdaInf);
  - ``cas``: synthetic images only (as many as the real ones), standard chain, tested on real;
  - ``oracle``: standard augmentation on twice as many real images (the first 2k of the same
    shuffle), so a gain can be read as equivalent real images.
- Statistics: each arm's gain over ``standard`` (and over ``strong`` and the copying generator) as the
  mean paired difference (same subset, same classifier seed) with a 95% t interval over the pairs.
- Diversity: each GAN's FD, precision/recall/density/coverage and label accuracy in an
  independent CNN's feature space (benchmarks/eval_classifier.py, trained on all 60k, used only
  to score), and the same for the real k images (the copying generator) and for 5,000 of the
  unseen ones (the perfect generator).
- Several processes can fill one table (--subset-list, different --ks): the JSON is updated under
  a lock, keyed by k, subset and arm.
- ``--tune``: knobs are chosen on validation, never on the test set: the arms train on subset 0's k
  images per class (with the main table's GAN for that subset) and are scored on --validation
  (200) other training-split images per class, outside the subset and its oracle (the perfect
  generator's pool leaves them out), paired by classifier seed (--seed-list: one process per seed).
  A validation split of the k images themselves (#17's 80/20) was too small to rank levers: 20
  images per class at k = 100 give a standard error of about 2.7 points per accuracy
  (results/usefulness_tuning.json).
- ``gan mode=variant [variants=4]``: GANAugment's "variant" mode, the variants of every training
  image made before the loader (``GANAugment.variant_bank.add``), as docs/pipelines.md recommends.
- ``--gans-only``: train (or resume) the GANs of --ks and --subset-list and record their quality; no arm.
- ``--long-tail``: class counts falling geometrically from 500 to 10 (seeded), classifier arms
  plain, oversampling, class-weighted loss and ``ExpandedDataset(balance="equalize")``, scored
  on balanced test accuracy and on the 5 rarest classes (results/usefulness_long_tail.json).

    python benchmarks/usefulness.py --tune --ks 100 --seed-list 0   # choose knobs on validation
    python benchmarks/usefulness.py --ks 50 100 500                 # the table (CPU hours)
    python benchmarks/usefulness.py --ks 100 --subset-list 1 --threads 1   # one share of it
    python benchmarks/usefulness.py --long-tail

Trained GANs are cached under --cache (delete to retrain). Prints a table, writes --out and
docs/images/{--out's stem}_accuracy.png.

``--reuse TABLE`` runs nothing: it copies into --out the arms of another table that do not depend on
the GAN (none, standard, strong, oracle and the two bracketing sources at the drop-in's settings),
for --ks, once both tables agree on protocol, classifier and classifier steps and their standard
arms agree to the digit on the subsets they share (the runs are deterministic on the CPU). A table
of another GAN (another --gan-steps or --cache) then pairs with them without rerunning them:

    python benchmarks/usefulness.py --ks 100 --gan-steps 2000 --cache benchmarks/cache/usefulness_long \
        --out benchmarks/results/usefulness_long.json --reuse benchmarks/results/usefulness.json
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
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
from ganaug.sampling.lazy import LazyGAN  # noqa: E402
from ganaug.train.checkpoint import read_training_checkpoint  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
IMAGES = ROOT / "docs" / "images"
CACHE = ROOT / "benchmarks" / "cache" / "usefulness"
DEFAULT_ARMS = ("none", "standard", "strong", "gan", "gan source=copy", "gan source=perfect", "gan chain=strong",
                "expand", "oracle")
SOURCES = ("gan", "copy", "perfect")  # where a gan/expand arm's images come from
STEPS = {50: 500, 100: 600, 500: 1500}  # per k, the same in every arm
BATCH = 64
DEFAULT_CONFIG = ganaug.TrainConfig(steps=1).to_dict()
CADENCE = ("steps", "checkpoint_every", "sample_every", "log_every")  # no effect on the weights


# --- data ---------------------------------------------------------------------------------------

def subset_per_class(dataset: ganaug.ImageDataset, k: int, seed: int = 0) -> ganaug.ImageDataset:
    """The first k images of each class in a shuffle seeded ``seed`` (so subset(2k) holds subset(k))."""
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    picks = torch.cat([order[dataset.labels[order] == c][:k] for c in range(dataset.num_classes)])
    return dataset.subset(picks)


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

    def __init__(self, base: Dataset, transform: A.Compose | None = None, tensor_transform=None,
                 synthetic_transform: A.Compose | None = None):
        """``synthetic_transform``: applied instead of ``transform`` to items flagged synthetic."""
        self.base, self.transform, self.tensor_transform = base, transform, tensor_transform
        self.synthetic_transform = synthetic_transform

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        image, label, *flag = self.base[index]
        image = np.asarray(image)
        if image.ndim == 2:
            image = image[..., None]
        transform = self.synthetic_transform if flag and flag[0] and self.synthetic_transform else self.transform
        if transform is not None:
            image = transform(image=image, class_label=label)["image"]
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
                 "gan": {"mode", "p", "end_real", "bank", "refresh", "chain", "instance", "source", "filter",
                         "variants"},
                 "expand": {"ratio", "end_real", "weight", "soft", "source", "share", "filter", "synthetic_chain"}}
        if kind not in known or not set(settings) <= known[kind]:
            raise SystemExit(f"arm {spec!r}: kinds and settings are {known}")
        if settings.get("source", "gan") not in SOURCES:
            raise SystemExit(f"arm {spec!r}: source should be one of {SOURCES}, got {settings['source']!r}")
        return cls(spec, kind, settings)

    @property
    def source(self) -> str:
        return self.settings.get("source", "gan")

    @property
    def end_real(self) -> float:
        return float(self.settings.get("end_real", 0))


class ImagePool(ganaug.GANAug):
    """A stand-in generator for the bracketing arms: its "samples" are real images of the class.

    It has no networks; it answers what the drop-in's machinery asks of a generator (``num_classes``,
    ``classes``, ``device``, ``sample_seeded``), so ``GANAugment``'s bank and ``ExpandedDataset`` draw
    from it exactly as they draw from a GAN: the same bank, refresh, positions, p and labels.
    ``copy``: the k training images of the class; ``perfect``: unseen real images of the class.
    """

    def __init__(self, data: ganaug.ImageDataset):  # no super().__init__: there is no generator to hold
        self.device = torch.device("cpu")
        self.info = {"classes": list(data.classes)}
        self._by_class = [data.images[data.labels == c] for c in range(data.num_classes)]

    @property
    def num_classes(self) -> int:
        return len(self._by_class)

    def sample_seeded(self, labels, seeds, truncation: float = 1.0) -> torch.Tensor:
        picks = []
        for label, seed in zip(torch.as_tensor(labels).tolist(), torch.as_tensor(seeds).tolist(), strict=True):
            pool = self._by_class[label]
            picks.append(pool[torch.randint(len(pool), (1,), generator=torch.Generator().manual_seed(seed))[0]])
        return torch.stack(picks)


class ConfidentGAN(ganaug.GANAug):
    """A GAN whose every sample is the one of ``round(1 / keep)`` candidates that a teacher (a classifier
    trained on the real images) gives the highest probability of the asked class: about the top ``keep``
    share of the generator's images of each class by the teacher's confidence (the published filter keeps
    the top 20%). Same seed, same image."""

    def __init__(self, gan: ganaug.GANAug, teacher: torch.nn.Module, classifier: Classifier, keep: float):
        self.device, self.info = torch.device("cpu"), gan.info
        self._gan, self._teacher, self._classifier = gan, teacher.eval(), classifier
        self._tries = max(1, round(1 / keep))

    @property
    def num_classes(self) -> int:
        return self._gan.num_classes

    @torch.no_grad()
    def sample_seeded(self, labels, seeds, truncation: float = 1.0) -> torch.Tensor:
        labels, seeds = torch.as_tensor(labels).flatten(), torch.as_tensor(seeds, dtype=torch.int64).flatten()
        tries = self._tries
        candidate_seeds = (seeds[:, None] * tries + torch.arange(tries)) % 2**31
        images = self._gan.sample_seeded(labels.repeat_interleave(tries), candidate_seeds.flatten(), truncation)
        probabilities = self._teacher(self._classifier.inputs(images)).softmax(dim=1)
        confidence = probabilities[torch.arange(len(images)), labels.repeat_interleave(tries)].view(-1, tries)
        return images.view(len(labels), tries, *images.shape[1:])[torch.arange(len(labels)), confidence.argmax(1)]


def unseen_per_class(dataset: ganaug.ImageDataset, k: int, seed: int) -> ganaug.ImageDataset:
    """The perfect generator's pool: every image of the shuffle seeded ``seed`` after the first 2k of its class,
    so it shares no image with subset(k) nor with the oracle's subset(2k)."""
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    return dataset.subset(torch.cat([order[dataset.labels[order] == c][2 * k:] for c in range(dataset.num_classes)]))


def arm_dataset(arm: Arm, data: ganaug.ImageDataset, oracle: ganaug.ImageDataset | None, sources: dict,
                seed: int) -> Dataset:
    """``sources``: the image source of each ``source=`` name (a run folder or a GANAug for "gan", an ImagePool
    otherwise), and "run": the run folder the transforms are built on."""
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
        options = {"bank_size": int(s["bank"])} if "bank" in s else {}  # else the library's defaults
        if "refresh" in s:
            options["refresh_every"] = None if s["refresh"] == "none" else int(s["refresh"])
        if "variants" in s:
            options["variants_per_image"] = int(s["variants"])
        gan_augment = GANAugment(sources["run"], mode=s.get("mode", "replace"), p=float(s.get("p", 0.5)),
                                 device="cpu", bank_seed=seed, **options)
        if sources[arm.source] is not sources["run"]:  # the same transform and bank, drawing from another source
            gan_augment.bank.model = LazyGAN(sources[arm.source], "cpu")
        if gan_augment.mode == "variant":  # each training image's variants, made before the loader, as the docs say
            gan_augment.variant_bank.add(data)
        if s.get("chain") == "strong":
            return Augmented(real, A.Compose([gan_augment], seed=seed), tensor_transform=strong_augmentation())
        return Augmented(real, A.Compose([gan_augment, *standard_augmentation()], seed=seed))
    if arm.kind == "expand":
        flagged = any(name in arm.settings for name in ("weight", "soft", "synthetic_chain"))
        source = sources[arm.source]
        expanded = ganaug.ExpandedDataset(real, source, synthetic_ratio=float(arm.settings.get("ratio", 0.5)),
                                          seed=seed, device="cpu", return_is_synthetic=flagged)
        expanded.synthetic.materialize()  # generated once, in batches, and cached
        weaker = {"flip": A.Compose([A.HorizontalFlip(p=0.5)], seed=seed), "none": None}
        return Augmented(expanded, standard, synthetic_transform=weaker.get(arm.settings.get("synthetic_chain")))
    if arm.kind == "cas":
        counts = torch.bincount(real.targets, minlength=10).tolist()
        synthetic = ganaug.SyntheticDataset(sources["gan"], class_counts=counts, seed=seed, device="cpu")
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
                     synthetic_weight: float = 1.0, teacher: torch.nn.Module | None = None,
                     hard_teacher: bool = False) -> torch.nn.Module:
    """``steps`` AdamW steps on ``dataset`` (from step ``late_from`` on ``late``), one-cycle schedule.

    Items ``(image, label, is_synthetic)`` weight the synthetic ones' loss by ``synthetic_weight``;
    with a ``teacher``, the synthetic ones' target is the teacher's softmax (``hard_teacher``: its argmax) instead of
    their label.
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
                    if hard_teacher:  # the teacher's class as a one-hot target
                        soft = F.one_hot(soft.argmax(dim=1), soft.shape[1]).float()
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
def instance_sampling(mode: str | None):
    """While ``mode`` is "bank" or "blend", class samples are instance-conditioned: on one same-class bank
    feature, or on a blend ``(1 - l) f_i + l f_j`` of two (l ~ U(0, 1), rescaled to the mean of their norms)."""
    if mode is None:
        yield
        return
    if mode not in ("bank", "blend"):
        raise SystemExit(f"instance should be bank or blend, got {mode!r}")
    import ganaug.sampling.gan as gan_module

    original = gan_module.draw_instance_features
    original_use = gan_module.GANAug.class_samples_use_bank

    def blended(features, feature_labels, labels, rng):
        first = original(features, feature_labels, labels, rng)
        second = original(features, feature_labels, labels, rng)
        lam = torch.rand(len(labels), 1, generator=rng)
        mixed = (1 - lam) * first + lam * second
        norm = (first.norm(dim=1, keepdim=True) + second.norm(dim=1, keepdim=True)) / 2
        return F.normalize(mixed, dim=1) * norm

    gan_module.GANAug.class_samples_use_bank = property(lambda self: self.instance_conditional)
    if mode == "blend":
        gan_module.draw_instance_features = blended
    try:
        yield
    finally:
        gan_module.draw_instance_features = original
        gan_module.GANAug.class_samples_use_bank = original_use


def run_arm(arm: Arm, classifier: Classifier, data, oracle, sources: dict, steps: int, seed: int, test) -> float:
    with instance_sampling(arm.settings.get("instance")):
        return _run_arm(arm, classifier, data, oracle, sources, steps, seed, test)


def _run_arm(arm: Arm, classifier: Classifier, data, oracle, sources: dict, steps: int, seed: int, test) -> float:
    teacher = None
    if "soft" in arm.settings or "filter" in arm.settings:  # a teacher trained as the standard arm is
        teacher = train_classifier(classifier, arm_dataset(Arm.parse("standard"), data, oracle, sources, seed), steps,
                                   seed)
    if "filter" in arm.settings:  # the arm's generator keeps the best of round(1 / filter) candidates per image
        model = ganaug.GANAug.from_pretrained(sources["gan"], device="cpu")
        sources = {**sources, "gan": ConfidentGAN(model, teacher, classifier, float(arm.settings["filter"]))}
    dataset = arm_dataset(arm, data, oracle, sources, seed)
    late = None
    if arm.end_real:
        late = arm_dataset(Arm.parse("standard"), data, oracle, sources, seed)
    if arm.settings.get("soft") not in ("1", "hard"):
        teacher = None  # it only labels where soft= asks
    sampler_weights = None
    if "share" in arm.settings:  # the synthetic items' share of the draws, whatever their number
        share, num_real = float(arm.settings["share"]), dataset.base.num_real
        num_synthetic = len(dataset) - num_real
        sampler_weights = torch.cat([torch.full((num_real,), (1 - share) / num_real),
                                     torch.full((num_synthetic,), share / num_synthetic)])
    model = train_classifier(classifier, dataset, steps, seed, late, round(steps * (1 - arm.end_real)),
                             synthetic_weight=float(arm.settings.get("weight", 1.0)), teacher=teacher,
                             sampler_weights=sampler_weights, hard_teacher=arm.settings.get("soft") == "hard")
    return float((predictions(classifier, model, test) == test.labels).float().mean())


# --- GANs and their quality ---------------------------------------------------------------------

def train_gan(data: ganaug.ImageDataset, run: Path, args: argparse.Namespace) -> dict:
    """The library's default GAN (the one issue #27 chose) for ``args.gan_steps`` steps, unless cached in ``run``.

    Only ``--backbone``, ``--backbone-weights`` and ``--input-size`` change it, where given.
    """
    checkpoint = run / "checkpoint.safetensors"
    step = read_training_checkpoint(checkpoint)[1]["step"] if checkpoint.is_file() else 0
    if step < args.gan_steps:  # none yet, or a run stopped part way: it resumes from its last checkpoint
        given = {"backbone": args.backbone, "backbone_weights": args.backbone_weights,
                 "backbone_input_size": args.input_size}
        cadence = {"checkpoint_every": 250, "sample_every": 10**9, "log_every": 50}
        if step > 0:  # a resumed run keeps its own cadence (the k = 100 runs came from diversity.py with another)
            stored = json.loads((run / "config.json").read_text())["config"]
            cadence = {name: stored.get(name, value) for name, value in cadence.items()}
        config = ganaug.TrainConfig(steps=args.gan_steps, seed=0, **cadence,
                                    **{name: value for name, value in given.items() if value is not None})
        start = time.monotonic()
        ganaug.train(data, config, run, resume=step > 0, progress=False)
        print(f"{run.name}: GAN trained in {time.monotonic() - start:.0f} s", flush=True)
    info = json.loads((run / "config.json").read_text())
    return {"run": str(run.relative_to(ROOT)) if run.is_relative_to(ROOT) else str(run),
            "backbone": info.get("backbone"), "steps": info["config"]["steps"],
            "changed_from_defaults": {name: value for name, value in info["config"].items()
                                      if name not in CADENCE and value != DEFAULT_CONFIG.get(name)}}


def gan_description(args: argparse.Namespace) -> str:
    """What ``train_gan`` trains, for a table's header: the defaults, the steps, and the options given."""
    return f"ganaug.TrainConfig defaults, {args.gan_steps} steps" + "".join(
        f", {name} {getattr(args, name)}" for name in ("backbone", "backbone_weights", "input_size")
        if getattr(args, name))


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


def runs_of(values: dict) -> dict | None:
    """An arm's accuracies keyed by what pairs them: the subset (the table) or the classifier seed (tuning)."""
    return values.get("by_subset", values.get("by_seed"))


def summarize(arms: dict) -> None:
    """Means, and gains paired by subset over the subsets each pair of arms shares (several processes may fill
    different subsets of one table)."""
    base, strong, copy = arms.get("standard"), arms.get("strong"), arms.get("gan source=copy")
    for values in arms.values():
        by_subset = runs_of(values)
        if by_subset is not None:
            values["accuracies"] = [by_subset[s] for s in sorted(by_subset, key=int)]
        acc = np.array(values["accuracies"])
        values["mean"] = float(acc.mean())
        values["std"] = float(acc.std(ddof=1)) if len(acc) > 1 else 0.0
        for name, other in (("gain_vs_standard", base), ("gain_vs_strong", strong), ("gain_vs_copy", copy)):
            if other is None:  # strong and the copying generator: the bars a drop-in must also clear
                continue
            if by_subset is None:
                values[name] = paired_gain(values["accuracies"], other["accuracies"])
                continue
            others = runs_of(other)
            shared = sorted(set(by_subset) & set(others), key=int)
            values[name] = paired_gain([by_subset[s] for s in shared], [others[s] for s in shared]) \
                if shared else None


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


def update_results(path: Path, header: dict, change) -> dict:
    """Read the table's JSON, apply ``change(results)``, summarize and write it back, under a lock: processes that
    run different ks or subsets (``--subset-list``) fill one table. A file of another protocol or classifier is
    started afresh (the old one stays in git's history)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = json.loads(path.read_text()) if path.is_file() else {}
        if any(results.get(key) != value for key, value in header.items() if key != "commands"):
            results = {}
        commands = results.get("commands", [])
        results.update(header, commands=commands + [c for c in header["commands"] if c not in commands])
        results.setdefault("settings", {})
        change(results)
        for setting in results["settings"].values():
            summarize(setting["arms"])
        write(results, path)
    return results


def table_header(args: argparse.Namespace, classifier: Classifier) -> dict:
    """What a table's JSON must agree on for processes to fill it together, and the commands that did."""
    return {"protocol": "issue #29", "classifier": classifier.name, "batch_size": BATCH, "gan": gan_description(args),
            "commands": [" ".join(sys.argv)]}


def independent_of_gan(spec: str) -> bool:
    """Whether an arm's accuracy is the same whatever the GAN: no synthetic image, or a bracketing source at the
    drop-in's settings."""
    arm = Arm.parse(spec)
    return arm.kind in ("none", "standard", "strong", "oracle") or (
        arm.kind == "gan" and arm.source != "gan" and set(arm.settings) == {"source"})


def reuse_arms(args: argparse.Namespace, classifier: Classifier) -> dict:
    """Copy the GAN-independent arms of the table ``args.reuse`` into ``args.out`` (see the module's docstring)."""
    source = json.loads(args.reuse.read_text())
    header = table_header(args, classifier)
    for key in ("protocol", "classifier", "batch_size"):
        if source.get(key) != header[key]:
            raise SystemExit(f"--reuse {args.reuse}: its {key} is {source.get(key)!r}, this table's {header[key]!r}")

    def copy(results: dict) -> None:
        for k in map(str, args.ks):
            theirs = source["settings"].get(k)
            ours = results["settings"].get(k)
            if theirs is None or ours is None:
                raise SystemExit(f"--reuse: k={k} should be in both {args.reuse} and {args.out}")
            if theirs["steps"] != ours["steps"]:
                raise SystemExit(f"--reuse: k={k} has {theirs['steps']} classifier steps there, {ours['steps']} here")
            mine = ours["arms"].get("standard", {}).get("by_subset", {})
            their_standard = theirs["arms"].get("standard", {}).get("by_subset", {})
            shared = set(mine) & set(their_standard)
            if not shared or any(mine[s] != their_standard[s] for s in shared):
                raise SystemExit(f"--reuse: k={k}: the standard arms should agree on the subsets both ran, got "
                                 f"{mine} here and {their_standard} there")
            for spec, values in theirs["arms"].items():
                if independent_of_gan(spec) and spec not in ours["arms"]:
                    ours["arms"][spec] = {"by_subset": dict(values["by_subset"]), "reused_from": str(args.reuse)}

    return update_results(args.out, header, copy)


# --- the three studies --------------------------------------------------------------------------

def main_table(args, train, test, evaluator, test_features, classifier: Classifier) -> dict:
    arms = [Arm.parse(spec) for spec in args.arms]
    header = table_header(args, classifier)
    results = {}
    for k in args.ks:
        steps = args.steps or STEPS[k]

        def setting_of(results: dict, k=k, steps=steps) -> dict:
            setting = results["settings"].setdefault(str(k), {"steps": steps, "gans": {}, "real_images": {},
                                                              "unseen_images": {}, "arms": {}})
            if setting["steps"] != steps:
                raise SystemExit(f"k={k}: the table holds {setting['steps']} classifier steps, this run {steps}")
            return setting

        for s in args.subset_list:
            data, oracle = subset_per_class(train, k, s), subset_per_class(train, 2 * k, s)
            unseen = unseen_per_class(train, k, s)
            sources = {"copy": ImagePool(data), "perfect": ImagePool(unseen)}
            facts = {"real_images": image_quality(data.images, data.labels, evaluator, test_features)}
            picks = torch.randperm(len(unseen), generator=torch.Generator().manual_seed(s))[:5000]
            facts["unseen_images"] = image_quality(unseen.images[picks], unseen.labels[picks], evaluator,
                                                   test_features)
            if args.gans_only or any(a.kind in ("gan", "expand", "cas") for a in arms):  # GANAugment is built on
                run = sources["gan"] = sources["run"] = args.cache / f"k{k}_s{s}"  # a run, whatever its source
                gan = train_gan(data, run, args)
                model = ganaug.GANAug.from_pretrained(run, device="cpu")
                facts["gans"] = {**gan, **image_quality_of_model(model, evaluator, test_features)}
                print(f"k={k} s={s}: GAN FD {facts['gans']['fd']:.2f} recall {facts['gans']['recall']:.3f} coverage "
                      f"{facts['gans']['coverage']:.3f} label acc {facts['gans']['label_accuracy']:.3f}", flush=True)
                if s == 0:
                    sample_grid(data, model, IMAGES / f"{args.out.stem}_k{k}_samples.png")

            def record(results: dict, s=s, facts=facts) -> None:
                setting = setting_of(results)
                for name, value in facts.items():
                    setting[name][str(s)] = value

            results = update_results(args.out, header, record)
            for arm in [] if args.gans_only else arms:
                start = time.monotonic()
                accuracy = run_arm(arm, classifier, data, oracle, sources, steps, s, test)

                def add(results: dict, s=s, arm=arm, accuracy=accuracy) -> None:
                    entry = setting_of(results)["arms"].setdefault(arm.spec, {"by_subset": {}})
                    entry["by_subset"][str(s)] = accuracy

                results = update_results(args.out, header, add)
                print(f"k={k} s={s} {arm.spec:<40} {accuracy:.4f} ({time.monotonic() - start:.0f} s)", flush=True)
    return results


def image_quality_of_model(gan: ganaug.GANAug, evaluator, test_features) -> dict:
    labels = torch.arange(10).repeat_interleave(500)
    return image_quality(gan.sample(len(labels), labels=labels, seed=1), labels, evaluator, test_features)


def sample_grid(data: ganaug.ImageDataset, gan: ganaug.GANAug, path: Path) -> None:
    save_image_grid(torch.cat([data.images[data.labels == c][:5] for c in range(10)]
                              + [gan.sample(50, labels=torch.arange(10).repeat_interleave(5), seed=2)]),
                    path, nrow=10, scale=2)


def validation_split(unseen: ganaug.ImageDataset, per_class: int, seed: int) -> tuple[ganaug.ImageDataset,
                                                                                       ganaug.ImageDataset]:
    """``per_class`` images of each class of ``unseen`` (images outside the subset and its oracle) as a validation
    set, and the rest (the perfect generator's pool while tuning, so that it never draws a validation image)."""
    order = torch.randperm(len(unseen), generator=torch.Generator().manual_seed(seed))
    picks = [order[unseen.labels[order] == c] for c in range(unseen.num_classes)]
    return (unseen.subset(torch.cat([p[:per_class] for p in picks])),
            unseen.subset(torch.cat([p[per_class:] for p in picks])))


def tune(args, train, classifier: Classifier) -> dict:
    """Arms trained on subset 0's k images per class and scored on a validation set of --validation images per class
    from the rest of the training split (never the test set), paired by classifier seed (--seed-list: processes
    running different seeds fill one table). The GAN is the main table's for subset 0.

    The validation set is drawn outside the subset because a split of the k images is too small to rank levers:
    20 images per class at k = 100 give a standard error of about 2.7 points per accuracy.
    """
    arms = [Arm.parse(spec) for spec in args.arms]
    header = {**table_header(args, classifier), "protocol": "issue #29 tuning",
              "validation": f"{args.validation} training-split images per class outside the subset and its oracle"}
    results = {}
    for k in args.ks:
        steps = args.steps or STEPS[k]
        data, oracle = subset_per_class(train, k, 0), subset_per_class(train, 2 * k, 0)
        validation, pool = validation_split(unseen_per_class(train, k, 0), args.validation, seed=1)
        run = args.cache / f"k{k}_s0"
        gan = train_gan(data, run, args)
        sources = {"gan": run, "run": run, "copy": ImagePool(data), "perfect": ImagePool(pool)}
        for seed in args.seed_list:
            for arm in arms:
                start = time.monotonic()
                accuracy = run_arm(arm, classifier, data, oracle, sources, steps, seed, validation)

                def add(results: dict, k=k, steps=steps, gan=gan, seed=seed, arm=arm, accuracy=accuracy) -> None:
                    setting = results["settings"].setdefault(str(k), {"steps": steps, "gan": gan, "arms": {}})
                    setting["arms"].setdefault(arm.spec, {"by_seed": {}})["by_seed"][str(seed)] = accuracy

                results = update_results(args.out, header, add)
                print(f"tune k={k} seed {seed} {arm.spec:<40} {accuracy:.4f} ({time.monotonic() - start:.0f} s)",
                      flush=True)
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
    print(f"\nusefulness: {results['classifier']} classifier, GAN: {results.get('gan', '')}; "
          "accuracy mean ± std, gain = mean paired difference [95% interval], points")
    print("| k | arm | runs | accuracy (%) | gain vs standard | gain vs strong | gain vs copy |\n" + "|---" * 7 + "|")
    for k, setting in results["settings"].items():
        for arm, values in setting["arms"].items():
            print(f"| {k} | {arm} | {len(values['accuracies'])} | "
                  f"{values['mean'] * 100:.2f} ± {values['std'] * 100:.2f} | "
                  f"{gain_text(values.get('gain_vs_standard'))} | {gain_text(values.get('gain_vs_strong'))} | "
                  f"{gain_text(values.get('gain_vs_copy'))} |")
    print("\n| k | subset | images | FD | precision | recall | coverage | label acc |\n" + "|---" * 8 + "|")
    for k, setting in results["settings"].items():
        for name, kind in (("gans", "GAN"), ("real_images", "the k real (copy)"), ("unseen_images", "unseen real")):
            for s, q in sorted(setting.get(name, {}).items()):
                print(f"| {k} | {s} | {kind} | {q['fd']:.2f} | {q['precision']:.3f} | {q['recall']:.3f} "
                      f"| {q['coverage']:.3f} | {q['label_accuracy']:.3f} |")


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = list(results["settings"])
    arms = list(dict.fromkeys(a for k in ks for a in results["settings"][k]["arms"] if a != "standard"))
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    width = 0.8 / len(arms)
    nothing = {"mean": float("nan"), "low": None, "high": None}
    for i, arm in enumerate(arms):
        gains = [results["settings"][k]["arms"].get(arm, {}).get("gain_vs_standard") or nothing for k in ks]
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
    parser.add_argument("--subset-list", type=int, nargs="+", default=None,
                        help="run only these subsets (processes running different ones fill one table)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--seeds", type=int, default=3, help="classifier seeds in --tune and --long-tail")
    parser.add_argument("--seed-list", type=int, nargs="+", default=None,
                        help="--tune: only these classifier seeds (processes running different ones fill one table)")
    parser.add_argument("--validation", type=int, default=200,
                        help="--tune: validation images per class, from the training split outside the subset")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"classifier steps in every arm (default per k: {STEPS})")
    parser.add_argument("--gan-steps", type=int, default=800)
    parser.add_argument("--arms", nargs="+", default=list(DEFAULT_ARMS),
                        help="arm specs, e.g. 'gan p=0.25 instance=blend'")
    parser.add_argument("--gans-only", action="store_true",
                        help="train (or resume) each subset's GAN and record its quality; run no arm")
    parser.add_argument("--classifier", choices=("resnet10t", "lite0"), default="resnet10t")
    parser.add_argument("--tune", action="store_true", help="score the arms on a validation split of subset 0")
    parser.add_argument("--long-tail", action="store_true", help="the long-tailed balancing study")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--cache", type=Path, default=CACHE, help="where trained GANs are kept")
    parser.add_argument("--reuse", type=Path, default=None,
                        help="copy the GAN-independent arms of this table into --out; run nothing")
    parser.add_argument("--backbone", default=None, help="the discriminator's backbone (default: the library's)")
    parser.add_argument("--backbone-weights", default=None,
                        help="'pretrain' (on the k x 10 images only), or 'auto'/'hub' (default: the library's)")
    parser.add_argument("--input-size", type=int, default=None,
                        help="the backbone's input size (default: the library's)")
    args = parser.parse_args()
    args.subset_list = args.subset_list if args.subset_list is not None else list(range(args.subsets))
    args.seed_list = args.seed_list if args.seed_list is not None else list(range(args.seeds))
    if args.threads:
        torch.set_num_threads(args.threads)
    study = "tuning" if args.tune else "long_tail" if args.long_tail else ""
    suffix = "_".join(filter(None, [study, "" if args.classifier == "resnet10t" else args.classifier]))
    args.out = args.out or RESULTS / f"usefulness{'_' + suffix if suffix else ''}.json"

    if not (args.tune or args.long_tail):  # the table ends on a plot: fail now, not after an hour
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise SystemExit("the plot needs matplotlib: pip install -e '.[bench]'") from None
    classifier = Classifier(args.classifier)
    if args.reuse:  # reads two tables, no data
        show_table(reuse_arms(args, classifier), args)
    else:
        train, test = ganaug.load_fashion_mnist("train"), ganaug.load_fashion_mnist("test")
        if train.source.kind == "embedded":
            raise SystemExit("the full Fashion-MNIST is missing: apt-get install dataset-fashion-mnist")
        if args.tune:
            print_table(tune(args, train, classifier))
        elif args.long_tail:
            long_tail(args, train, test, classifier)
        else:
            evaluator, _ = load_or_train_eval_classifier(train.images, train.labels, test.images, test.labels)
            show_table(main_table(args, train, test, evaluator, features(evaluator, test.images), classifier), args)
    print(f"wrote {args.out}")


def show_table(results: dict, args: argparse.Namespace) -> None:
    """Print a main table, and plot it once it has the standard arm the gains are taken against."""
    print_table(results)
    if "standard" in results["settings"][str(args.ks[0])]["arms"]:
        plot(results, IMAGES / f"{args.out.stem}_accuracy.png")


if __name__ == "__main__":
    main()
