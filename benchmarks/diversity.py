"""Diversity ablation (issue #27): which part of ganaug makes its generator collapse, and what fixes it.

Two kinds of configuration, each trained on the k = 100 Fashion-MNIST subset 0 of the
usefulness benchmark (1,000 images) and scored at each ``--steps`` milestone:

- **mix:...** a small training loop of this file that composes one GAN from parts of either side
  of the bisection between ganaug and the textbook cDCGAN (benchmarks/cdcgan.py), class-only:

  | part    | ganaug side                                   | cDCGAN side                       |
  |---------|-----------------------------------------------|-----------------------------------|
  | g       | ganaug's Generator (conditional group norms)   | the cDCGAN's (BatchNorm, deconv)   |
  | d       | projected: frozen resnet10t@32 pretrained on  | from scratch: the cDCGAN's D       |
  |         | the 1,000 images + pixel head                 |                                   |
  | loss    | hinge                                         | non-saturating (BCE)               |
  | opt     | Adam lr_g 2e-4, lr_d 8e-4, betas (0, 0.99)    | Adam 2e-4 both, betas (0.5, 0.999) |
  | diffaug | color,translation,cutout                      | none                              |
  | ema     | sample the EMA (0.999)                        | sample the live G                  |

  ``mix:ganaug`` is every ganaug part, ``mix:cdcgan`` every cDCGAN part, ``mix:ganaug/d=scratch``
  ganaug with one part swapped (any number of ``/part=value``), batch 64 throughout.
- **train:NAME[;JSON]** ``ganaug.train`` itself with TrainConfig fields from the JSON (the real
  loop, with instance conditioning unless the JSON turns it off): how a user would get it.

Scores, in the feature space of the independent evaluation CNN (benchmarks/eval_classifier.py),
as the usefulness benchmark scores its GANs: FD against the 10k test images; precision, recall,
density, coverage (k = 5) against 5,000 test images, on 500 samples a class; label accuracy;
**z spread**: the eval-feature spread (RMS distance to the mean) of 64 samples that share one
condition (a class, or a class and an instance), over the spread of that condition's real
images (the class's training images, or the instance's 8 nearest same-class training images),
averaged over conditions: near 0 when G ignores z; and **copy ratio**: the median distance from
a sample to its nearest training image over the same median for held-out real images (>= 0.8:
no copying). The same figures for the 1,000 real images are the ceiling.

Runs resume and are cached under benchmarks/cache/diversity/: a milestone already scored is not
trained again, and a longer milestone continues from the last checkpoint.

    python benchmarks/diversity.py --configs mix:ganaug mix:cdcgan --steps 800
    python benchmarks/diversity.py --configs 'train:default' 'train:z_blocks;{"z_per_block": true}' --steps 800 3000

Prints a table; writes benchmarks/results/diversity.json (every scored milestone, merged across
runs) and docs/images/diversity_recall.png (recall against steps), and a sample grid per run and
milestone under the cache folder (docs/images/diversity_<run>.png for the last; diversity_<run>_k<K>_s<S>.png
for other settings than k = 100, subset 0).
"""

from __future__ import annotations

import argparse
import copy
import fcntl
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from cdcgan import CDCGANDiscriminator, CDCGANGenerator  # noqa: E402
from eval_classifier import features, load_or_train_eval_classifier, predict  # noqa: E402
from usefulness import subset_per_class  # noqa: E402  (the usefulness benchmark's subsets, one rule)

import ganaug  # noqa: E402
from ganaug._util.checkpoint_file import read_checkpoint, write_checkpoint  # noqa: E402
from ganaug._util.files import atomic_path, save_image_grid  # noqa: E402
from ganaug.eval.metrics import frechet_distance, precision_recall_density_coverage  # noqa: E402
from ganaug.nets.diffaugment import diff_augment  # noqa: E402
from ganaug.nets.discriminator import ProjectedDiscriminator  # noqa: E402
from ganaug.nets.generator import Generator, to_uint8  # noqa: E402
from ganaug.nets.instances import draw_instance_features  # noqa: E402
from ganaug.train.checkpoint import flatten_optimizer, unflatten_optimizer  # noqa: E402
from ganaug.train.steps import d_loss, g_loss, update_ema  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "diversity.json"
CACHE = ROOT / "benchmarks" / "cache" / "diversity"
IMAGES = ROOT / "docs" / "images"
FORMAT = "ganaug-diversity-benchmark-1"
PER_CLASS = 500  # samples a class for FD and PRDC
SPREAD_SAMPLES = 64  # samples per condition for the z spread
BATCH = 64

GANAUG_SIDE = {"g": "ganaug", "d": "projected", "loss": "hinge", "opt": "ganaug", "diffaug": "on", "ema": "on",
               "feat": "pretrain", "mbstd": "pixel"}
CDCGAN_SIDE = {"g": "dcgan", "d": "scratch", "loss": "ns", "opt": "dcgan", "diffaug": "off", "ema": "off",
               "feat": "pretrain", "mbstd": "pixel"}
CHOICES = {part: tuple(dict.fromkeys((GANAUG_SIDE[part], CDCGAN_SIDE[part]))) for part in GANAUG_SIDE}
# ganaug's generator with conditional BatchNorm (Generator(norm="batch")), with z fed to every block
# (z_to_blocks=True), or both
CHOICES["g"] += ("ganaug-bn", "ganaug-zblocks", "ganaug-bn-zblocks")
# the projected D's frozen features: resnet10t@32 pretrained on the 1,000 images (ganaug's offline default), the
# same network at random init, or ImageNet tf_efficientnet_lite0@32 (installed weights package)
# the same network pretrained contrastively (SimCLR, with an online linear probe) or with both losses
# (PretrainConfig.objective)
CHOICES["feat"] += ("random", "lite0", "contrastive", "classify+contrastive")
# minibatch standard deviation in the pixel head only, or in every feature head too
CHOICES["mbstd"] += ("all",)
# DiffAugment by policy: diffaug=translation, diffaug=color+cutout ("+" for the policy's ",")
CHOICES["diffaug"] += ("color", "translation", "cutout", "color+translation", "translation+cutout", "color+cutout")


# --- configurations -------------------------------------------------------------------------------

def parse_config(text: str) -> dict:
    """``mix:ganaug/d=scratch`` or ``train:NAME[;JSON]`` as a dict with a file-safe ``name``."""
    kind, _, rest = text.partition(":")
    if kind == "mix":
        base, *swaps = rest.split("/")
        if base not in ("ganaug", "cdcgan"):
            raise SystemExit(f"mix configurations start from ganaug or cdcgan, got {base!r}")
        parts = dict(GANAUG_SIDE if base == "ganaug" else CDCGAN_SIDE)
        for swap in swaps:
            part, _, value = swap.partition("=")
            if part not in CHOICES or value not in CHOICES[part]:
                raise SystemExit(f"a swap should be part=value with part in {sorted(CHOICES)} and value one of its "
                                 f"sides' ({CHOICES}), got {swap!r}")
            parts[part] = value
        name = "mix_" + "_".join([base] + [s.replace("=", "-").replace("+", "") for s in swaps])
        return {"kind": "mix", "name": name, "text": text, "parts": parts}
    if kind == "train":
        name, _, fields = rest.partition(";")
        if not name.replace("_", "").replace("-", "").isalnum():
            raise SystemExit(f"a train configuration's name should be letters, digits, - and _, got {name!r}")
        return {"kind": "train", "name": "train_" + name, "text": text, "fields": json.loads(fields or "{}")}
    raise SystemExit(f"a configuration should start with mix: or train:, got {text!r}")


# --- the composed GAN (mix) -----------------------------------------------------------------------

class ScratchD(nn.Module):
    """The cDCGAN's discriminator, answering as ganaug's does: a list of logit tensors."""

    def __init__(self):
        super().__init__()
        self.net = CDCGANDiscriminator()

    def forward(self, images: torch.Tensor, labels: torch.Tensor, with_grad_to_features: bool = True):
        return [self.net(images, labels)[:, None]]


class ProjectedD(nn.Module):
    """ganaug's projected discriminator (class-only), its frozen features run without a graph in the D step."""

    def __init__(self, extractor: ganaug.FeatureExtractor, seed: int, feature_minibatch_std: bool = False):
        super().__init__()
        self.net = ProjectedDiscriminator(extractor, num_classes=10, image_channels=1, resolution=28, seed=seed,
                                          feature_minibatch_std=feature_minibatch_std)

    def forward(self, images: torch.Tensor, labels: torch.Tensor, with_grad_to_features: bool = True):
        if with_grad_to_features:
            return self.net(images, labels)
        with torch.no_grad():
            found = self.net.features(images)
        return self.net(images, labels, features=found)


class MixGAN:
    """One composed GAN: its networks, optimizers and step, saved to and loaded from one safetensors file."""

    def __init__(self, parts: dict, extractor_path: Path, seed: int = 0):
        self.parts = parts
        torch.manual_seed(seed)
        if parts["g"] == "dcgan":
            self.generator: nn.Module = CDCGANGenerator()
        else:
            self.generator = Generator(10, 28, 1, base_channels=128, min_channels=32,
                                       norm="batch" if "-bn" in parts["g"] else "group",
                                       z_to_blocks="zblocks" in parts["g"])
        if parts["d"] == "projected":
            if parts["feat"] == "lite0":
                extractor = ganaug.FeatureExtractor("tf_efficientnet_lite0", pretrained=True, out_indices=(1, 2, 3),
                                                    input_size=32)
            else:
                extractor = ganaug.FeatureExtractor("resnet10t", out_indices=(1, 2, 3), input_size=32,
                                                    pretrained=False if parts["feat"] == "random" else extractor_path)
            self.discriminator: nn.Module = ProjectedD(extractor, seed, parts["mbstd"] == "all")
        else:
            self.discriminator = ScratchD()
        self.ema = copy.deepcopy(self.generator).eval().requires_grad_(False)
        lr_d, betas = (8e-4, (0.0, 0.99)) if parts["opt"] == "ganaug" else (2e-4, (0.5, 0.999))
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=2e-4, betas=betas)
        self.opt_d = torch.optim.Adam([p for p in self.discriminator.parameters() if p.requires_grad], lr=lr_d,
                                      betas=betas)
        self.policy = {"on": "color,translation,cutout", "off": ""}.get(parts["diffaug"],
                                                                        parts["diffaug"].replace("+", ","))
        self.step = 0
        self.seconds = 0.0

    def train_step(self, real: torch.Tensor, labels: torch.Tensor) -> None:
        self.generator.train()
        z = torch.randn(len(labels), self.generator.z_dim)
        fake = self.generator(z, labels)
        d = self.discriminator
        kind = "hinge" if self.parts["loss"] == "hinge" else "non_saturating"
        loss = d_loss(d(diff_augment(real, self.policy), labels, False),
                      d(diff_augment(fake.detach(), self.policy), labels, False), kind)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        loss = g_loss(d(diff_augment(fake, self.policy), labels, True), kind)
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        self.opt_d.zero_grad(set_to_none=True)
        update_ema(self.ema, self.generator, self.step, 0.999, 10)
        self.step += 1

    def sampler(self) -> nn.Module:
        return (self.ema if self.parts["ema"] == "on" else self.generator).eval()

    def save(self, path: Path) -> None:
        tensors = {f"g.{k}": v for k, v in self.generator.state_dict().items()}
        tensors.update({f"ema.{k}": v for k, v in self.ema.state_dict().items()})
        tensors.update({f"d.{k}": v for k, v in self.discriminator.state_dict().items()})
        info = {"step": self.step, "seconds": self.seconds, "parts": self.parts}
        for prefix, optimizer in (("opt_g", self.opt_g), ("opt_d", self.opt_d)):
            found, rest = flatten_optimizer(optimizer, prefix)
            tensors.update(found)
            info[prefix] = rest
        tensors["rng"] = torch.get_rng_state()
        write_checkpoint(path, tensors, info, FORMAT)

    def load(self, path: Path) -> None:
        tensors, info = read_checkpoint(path, FORMAT)
        for prefix, module in (("g", self.generator), ("ema", self.ema), ("d", self.discriminator)):
            module.load_state_dict({k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")})
        for prefix, optimizer in (("opt_g", self.opt_g), ("opt_d", self.opt_d)):
            unflatten_optimizer(optimizer, prefix, tensors, info[prefix])
        torch.set_rng_state(tensors["rng"])
        self.step, self.seconds = info["step"], info["seconds"]


def extractor_for(data: ganaug.ImageDataset, work: Path, feat: str = "pretrain") -> Path:
    """resnet10t@32 pretrained on the training images as ganaug.train's default does offline (cached), with the
    objective that ``feat`` names ("pretrain": classify)."""
    objective = "classify" if feat in ("pretrain", "random", "lite0") else feat
    path = work / ("extractor_resnet10t_32.safetensors" if objective == "classify" else
                   f"extractor_resnet10t_32_{objective.replace('+', '_')}.safetensors")
    if not path.is_file():
        defaults = ganaug.TrainConfig(steps=1)
        # The default's time cap, except for the other objectives, which are made while other runs share the CPU:
        # they take their steps (min_steps, or until the held-out accuracy stops rising) whatever the clock says.
        minutes = defaults.pretrain_minutes if objective == "classify" else None
        ganaug.pretrain_extractor(data, path, model_name="resnet10t", input_size=32, epochs=defaults.pretrain_epochs,
                                  min_steps=defaults.pretrain_min_steps, max_minutes=minutes, seed=0,
                                  objective=objective, progress=False)
    return path


def run_mix(config: dict, data: ganaug.ImageDataset, milestone: int, work: Path) -> tuple[dict, Sampler]:
    """Train (or resume) a composed GAN to ``milestone`` steps; returns its training facts and its sampler."""
    # The ema part only decides which generator is sampled: both share one training run.
    folder = work / config["name"].replace("_ema-off", "").replace("_ema-on", "")
    folder.mkdir(parents=True, exist_ok=True)
    parts = config["parts"]
    gan = MixGAN(parts, extractor_for(data, work, parts["feat"]) if parts["d"] == "projected" else Path())
    checkpoint = folder / "checkpoint.safetensors"
    if checkpoint.is_file():
        gan.load(checkpoint)
    images = data.images.float() / 127.5 - 1
    rng = torch.Generator().manual_seed(gan.step)  # batches: a pure function of the step where a resume starts
    while gan.step < milestone:
        start = time.monotonic()
        index = torch.randint(0, len(images), (BATCH,), generator=rng)
        gan.train_step(images[index], data.labels[index])
        gan.seconds += time.monotonic() - start
        if gan.step % 250 == 0 or gan.step == milestone:
            gan.save(checkpoint)
    generator = gan.sampler()

    @torch.no_grad()
    def sample(labels: torch.Tensor, z: torch.Tensor, instance: torch.Tensor | None = None) -> torch.Tensor:
        return torch.cat([to_uint8(generator(z[i:i + 500], labels[i:i + 500])) for i in range(0, len(z), 500)])

    return {"steps": gan.step, "batch_size": BATCH, "train_seconds": gan.seconds}, Sampler(sample, generator.z_dim)


# --- ganaug.train itself (train) ------------------------------------------------------------------

def run_train(config: dict, data: ganaug.ImageDataset, milestone: int, work: Path) -> tuple[dict, Sampler]:
    folder = work / config["name"]
    resume = (folder / "checkpoint.safetensors").is_file()
    fields = {"seed": 0, "checkpoint_every": 250, "sample_every": 500, "log_every": 50, **config["fields"]}
    start = time.monotonic()
    gan = ganaug.train(data, ganaug.TrainConfig(steps=milestone, **fields), folder, resume=resume, progress=False)
    metrics = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    generator = gan.generator

    @torch.no_grad()
    def sample(labels: torch.Tensor, z: torch.Tensor, instance: torch.Tensor | None = None) -> torch.Tensor:
        if gan.class_samples_use_bank and instance is None:  # as GANAug.sample draws class samples
            instance = draw_instance_features(gan.bank_features, gan.bank_labels, labels,
                                              torch.Generator().manual_seed(7))
        return gan._generate(z, labels, instance, 500)

    uses_bank = gan.class_samples_use_bank  # else one condition per class (class-only, or instance dropout)
    sampler = Sampler(sample, generator.z_dim, gan.bank_features if uses_bank else None,
                      gan.bank_labels if uses_bank else None)
    return {"steps": gan.info["step"], "batch_size": fields.get("batch_size", 64),
            "train_seconds": metrics[-1]["elapsed_s"], "wall_seconds_this_call": time.monotonic() - start}, sampler


class Sampler:
    """How a configuration makes images: ``sample(labels, z, instance)``, and its instance bank if it has one."""

    def __init__(self, sample, z_dim: int, bank_features: torch.Tensor | None = None,
                 bank_labels: torch.Tensor | None = None):
        self.sample, self.z_dim = sample, z_dim
        self.bank_features, self.bank_labels = bank_features, bank_labels


# --- scores ---------------------------------------------------------------------------------------

def spread(found: torch.Tensor) -> float:
    """RMS distance of feature rows to their mean."""
    return float((found - found.mean(0)).square().sum(1).mean().sqrt())


def z_spread(sampler: Sampler, data: ganaug.ImageDataset, evaluator, train_features: torch.Tensor) -> float:
    """Mean over conditions of (spread across z of one condition's samples) / (spread of its real images)."""
    rng = torch.Generator().manual_seed(3)
    ratios = []
    for c in range(10):
        in_class = torch.nonzero(data.labels == c).flatten()
        if sampler.bank_features is None:  # one condition: the class
            conditions = [(None, in_class)]
        else:  # two instances of the class, each with its 8 nearest same-class training images
            conditions = []
            for pick in in_class[torch.randperm(len(in_class), generator=rng)[:2]]:
                distances = torch.cdist(train_features[pick][None], train_features[in_class])[0]
                neighbours = in_class[distances.argsort()[:8]]
                bank_rows = torch.nonzero(sampler.bank_labels == c).flatten()
                row = bank_rows[torch.randint(len(bank_rows), (1,), generator=rng)]
                conditions.append((sampler.bank_features[row].float().cpu().expand(SPREAD_SAMPLES, -1), neighbours))
        for instance, real_rows in conditions:
            z = torch.randn(SPREAD_SAMPLES, sampler.z_dim, generator=rng)
            images = sampler.sample(torch.full((SPREAD_SAMPLES,), c), z, instance)
            ratios.append(spread(features(evaluator, images)) / spread(train_features[real_rows]))
    return sum(ratios) / len(ratios)


def copy_ratio(found: torch.Tensor, train_features: torch.Tensor, held_out_features: torch.Tensor) -> float:
    """Median nearest-training-image distance of samples over that of held-out real images."""
    def median_nearest(rows: torch.Tensor) -> float:
        return float(torch.cat([torch.cdist(rows[i:i + 1000], train_features).min(1).values
                                for i in range(0, len(rows), 1000)]).median())
    return median_nearest(found) / median_nearest(held_out_features)


def image_scores(images: torch.Tensor, labels: torch.Tensor, reference: dict) -> dict:
    found = features(reference["evaluator"], images)
    return {"fd": frechet_distance(found, reference["test_features"]),
            **precision_recall_density_coverage(reference["test_features"][:5000], found, k=5).to_dict(),
            "label_accuracy": float((predict(reference["evaluator"], images) == labels).float().mean()),
            "copy_ratio": copy_ratio(found, reference["train_features"], reference["held_out_features"])}


def score(sampler: Sampler, data: ganaug.ImageDataset, reference: dict) -> tuple[dict, torch.Tensor]:
    labels = torch.arange(10).repeat_interleave(PER_CLASS)
    z = torch.randn(len(labels), sampler.z_dim, generator=torch.Generator().manual_seed(1))
    images = sampler.sample(labels, z)
    scores = image_scores(images, labels, reference)
    scores["z_spread"] = z_spread(sampler, data, reference["evaluator"], reference["train_features"])
    return scores, images


def grid(images: torch.Tensor, data: ganaug.ImageDataset, train_features: torch.Tensor, evaluator,
         path: Path) -> None:
    """Rows of 8 samples per class, and under each class's row the nearest training image of each sample."""
    rows = []
    for c in range(10):
        picks = images[c * PER_CLASS:c * PER_CLASS + 8]
        nearest = torch.cdist(features(evaluator, picks), train_features).argmin(1)
        rows += [picks, data.images[nearest]]
    save_image_grid(torch.cat(rows), path, nrow=8, scale=2)


# --- main -----------------------------------------------------------------------------------------

def load_results() -> dict:
    return json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"runs": {}}


def write_results(results: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(RESULTS) as tmp:
        tmp.write_text(json.dumps(results, indent=2))


def update_results(change) -> dict:
    """Read the JSON, apply ``change(results)`` and write it back, under a lock: several processes (one per
    configuration) write the one file, and a read-modify-write without the lock can drop another's entry."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = load_results()
        change(results)
        write_results(results)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["mix:ganaug", "mix:cdcgan"])
    parser.add_argument("--steps", nargs="+", type=int, default=[800, 3000, 10000], help="milestones to score at")
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--subset", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--work-dir", type=Path, default=CACHE)
    parser.add_argument("--rescore", action="store_true", help="score milestones again that the JSON already has")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    configs = [parse_config(text) for text in args.configs]

    train = ganaug.load_fashion_mnist("train")
    test = ganaug.load_fashion_mnist("test")
    if train.source.kind == "embedded":
        raise SystemExit("the full Fashion-MNIST is missing: apt-get install dataset-fashion-mnist")
    data = subset_per_class(train, args.k, args.subset)
    work = args.work_dir / f"k{args.k}_s{args.subset}"
    work.mkdir(parents=True, exist_ok=True)
    evaluator, evaluator_info = load_or_train_eval_classifier(train.images, train.labels, test.images, test.labels)
    reference = {"evaluator": evaluator, "test_features": features(evaluator, test.images),
                 "train_features": features(evaluator, data.images)}
    reference["held_out_features"] = reference["test_features"][5000:6000]  # not among PRDC's 5,000
    setting = f"k{args.k}_s{args.subset}"
    results = load_results()
    runs = results["runs"].setdefault(setting, {})
    if "real_images" not in results.get("ceiling", {}).get(setting, {}) or args.rescore:
        ceiling = {"real_images": {**image_scores(data.images, data.labels, reference),
                                   "note": "the training images themselves (copy ratio 0 by definition)"}}
        update_results(lambda results: results.setdefault("ceiling", {}).__setitem__(setting, ceiling))

    for config in configs:
        for milestone in sorted(args.steps):
            entry = runs.setdefault(config["name"], {"config": config, "milestones": {}})
            if str(milestone) in entry["milestones"] and not args.rescore:
                continue
            run = run_mix if config["kind"] == "mix" else run_train
            facts, sampler = run(config, data, milestone, work)
            scores, images = score(sampler, data, reference)
            entry["config"] = config
            entry["milestones"][str(milestone)] = {**facts, **scores}
            (work / config["name"]).mkdir(parents=True, exist_ok=True)
            grid(images, data, reference["train_features"], evaluator, work / config["name"] / f"grid_{milestone}.png")
            suffix = "" if setting == "k100_s0" else f"_{setting}"  # subset 0 at k = 100 keeps the docs' names
            grid(images, data, reference["train_features"], evaluator,
                 IMAGES / f"diversity_{config['name']}{suffix}.png")
            print(f"{config['name']} @ {milestone}: " + ", ".join(
                f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in entry["milestones"][str(milestone)]
                .items()), flush=True)
            def record(results: dict, entry: dict = entry) -> None:  # other processes may have written meanwhile
                results["runs"].setdefault(setting, {})[entry["config"]["name"]] = entry
                results["evaluator"] = evaluator_info

            update_results(record)
    print_table(load_results(), setting)
    plot(load_results(), setting)


def print_table(results: dict, setting: str) -> None:
    print(f"\ndiversity [{setting}], eval CNN space; z spread and copy ratio: see the docstring")
    print(f"{'configuration':<44} {'steps':>6} {'FD':>7} {'prec':>6} {'recall':>6} {'dens':>6} {'cover':>6} "
          f"{'label':>6} {'z spr':>6} {'copy':>6} {'train s':>8}")
    real = results.get("ceiling", {}).get(setting, {}).get("real_images")
    if real:
        print(f"{'real training images (ceiling)':<44} {'':>6} {real['fd']:>7.2f} {real['precision']:>6.3f} "
              f"{real['recall']:>6.3f} {real['density']:>6.3f} {real['coverage']:>6.3f} {real['label_accuracy']:>6.3f}")
    for name, entry in sorted(results["runs"].get(setting, {}).items()):
        for milestone, m in sorted(entry["milestones"].items(), key=lambda item: int(item[0])):
            print(f"{name:<44} {milestone:>6} {m['fd']:>7.2f} {m['precision']:>6.3f} {m['recall']:>6.3f} "
                  f"{m['density']:>6.3f} {m['coverage']:>6.3f} {m['label_accuracy']:>6.3f} {m['z_spread']:>6.3f} "
                  f"{m['copy_ratio']:>6.3f} {m['train_seconds']:>8.0f}")


def plot(results: dict, setting: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is missing (pip install ganaug[bench]): no plot", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, entry in sorted(results["runs"].get(setting, {}).items()):
        points = sorted((int(s), m["recall"]) for s, m in entry["milestones"].items())
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name)
    real = results.get("ceiling", {}).get(setting, {}).get("real_images")
    if real:
        ax.axhline(real["recall"], color="grey", linestyle="--", label="real images")
    ax.set_xscale("log")
    ax.set_xlabel("GAN steps")
    ax.set_ylabel("recall (eval CNN space)")
    ax.set_title(f"diversity ablation, {setting}")
    ax.legend(fontsize=6)
    fig.tight_layout()
    with atomic_path(IMAGES / "diversity_recall.png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
