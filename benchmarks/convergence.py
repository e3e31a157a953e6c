"""Convergence benchmark: ganaug vs a textbook conditional DCGAN at equal CPU wall-clock time.

Both train on the 60k Fashion-MNIST training images for the same budget (default 10 minutes)
and are scored on the 10k test images, in the feature space of an independent evaluation CNN
(benchmarks/eval_classifier.py): Fréchet distance (FD, lower is better) and the label accuracy
of conditional samples (does the classifier agree with the label G was asked for?). A
high-frequency energy ratio (samples / real) shows whether G prints patterns that real images
lack, the failure in ../shared/FINDINGS.md.

ganaug's extractor is pretrained offline on the training split first; that time is reported on
its own, and ganaug is scored twice: with that time outside its budget, and inside it (the same
run, scored at budget - pretraining time, then resumed to the full budget).

    python benchmarks/convergence.py --minutes 10
    python benchmarks/convergence.py --minutes 3 --tag effnet --backbone efficientnet_b0 --skip-baseline

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
from ganaug.eval.metrics import frechet_distance  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "convergence.json"
IMAGES = ROOT / "docs" / "images"
PER_CLASS = 1000


def high_frequency_energy(images: torch.Tensor) -> float:
    """Mean squared response of a 3x3 Laplacian: large for dot patterns and pixel noise."""
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
    return float(F.conv2d(images.float() / 255, kernel).square().mean())


def score(samples: torch.Tensor, labels: torch.Tensor, evaluator, test_features: torch.Tensor,
          test_hf: float) -> dict:
    return {
        "fd": frechet_distance(features(evaluator, samples), test_features),
        "label_accuracy": float((predict(evaluator, samples) == labels).float().mean()),
        "high_freq_ratio": high_frequency_energy(samples) / test_hf,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget for each model")
    parser.add_argument("--tag", default="default", help="name of this configuration in the JSON")
    parser.add_argument("--backbone", default=ganaug.TrainConfig.backbone)
    parser.add_argument("--input-size", type=int, default=32, help="backbone input size")
    parser.add_argument("--backbone-weights", default="pretrain",
                        help="'pretrain' (on the training split, timed), 'random', or a weights file")
    parser.add_argument("--pretrain-epochs", type=int, default=1)
    parser.add_argument("--config", default="{}", help="JSON of further TrainConfig fields")
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
    real_subset = train.images[torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:10_000]]
    reference = {"fd": frechet_distance(features(evaluator, real_subset), test_features),
                 "label_accuracy": evaluator_info["test_accuracy"],
                 "high_freq_ratio": high_frequency_energy(real_subset) / test_hf}
    budget = args.minutes * 60
    run_dir = args.work_dir / args.tag
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    entry: dict = {"minutes": args.minutes, "backbone": args.backbone, "input_size": args.input_size,
                   "backbone_weights": args.backbone_weights, "evaluator": evaluator_info,
                   "real_train_vs_test": reference, "torch_threads": torch.get_num_threads()}

    # 1. The extractor, pretrained offline on the training split (timed on its own).
    weights = args.backbone_weights
    pretrain_seconds = 0.0
    if weights == "pretrain":
        start = time.monotonic()
        result = ganaug.pretrain_extractor(train, run_dir / "extractor.safetensors", model_name=args.backbone,
                                           input_size=args.input_size, epochs=args.pretrain_epochs, seed=args.seed)
        pretrain_seconds = time.monotonic() - start
        weights = str(result.path)
        entry["pretrain"] = {"seconds": pretrain_seconds, "val_accuracy": result.val_accuracy,
                             "epochs": args.pretrain_epochs}

    # 2. ganaug: first to (budget - pretraining), scored; then resumed to the full budget, scored.
    config_fields = {"backbone": args.backbone, "backbone_input_size": args.input_size, "backbone_weights": weights,
                     "seed": args.seed, "checkpoint_every": 500, "sample_every": 10**9, "log_every": 50,
                     **json.loads(args.config)}
    phases = []
    if pretrain_seconds and budget > pretrain_seconds:
        phases.append(("ganaug_pretrain_inside_budget", (budget - pretrain_seconds) / 60))
    phases.append(("ganaug", args.minutes))
    for index, (name, minutes) in enumerate(phases):
        config = ganaug.TrainConfig(minutes=minutes, **config_fields)
        gan = ganaug.train(train, config, run_dir / "gan", resume=index > 0, progress=False)
        samples = gan.sample(len(labels), labels=labels, seed=args.seed)
        metrics = [json.loads(line) for line in (run_dir / "gan" / "metrics.jsonl").read_text().splitlines()]
        entry[name] = {**score(samples, labels, evaluator, test_features, test_hf), "steps": gan.info["step"],
                       "batch_size": config.batch_size, "train_minutes": minutes,
                       "images_per_s": metrics[-1]["images_per_s"]}
        print(f"{name}: {entry[name]}", flush=True)
    save_image_grid(gan.sample(100, labels=torch.arange(10).repeat_interleave(10), seed=1),
                    IMAGES / f"convergence_{args.tag}_ganaug.png", nrow=10, scale=2)
    entry["config"] = json.loads((run_dir / "gan" / "config.json").read_text())["config"]

    # 3. The baseline, same budget.
    if not args.skip_baseline:
        generator, stats = train_cdcgan(train.images, train.labels, budget, seed=args.seed)
        samples = sample_cdcgan(generator, labels, seed=args.seed)
        entry["baseline_cdcgan"] = {**score(samples, labels, evaluator, test_features, test_hf), **stats}
        save_image_grid(sample_cdcgan(generator, torch.arange(10).repeat_interleave(10), seed=1),
                        IMAGES / f"convergence_{args.tag}_baseline.png", nrow=10, scale=2)
        for name, _ in phases:
            entry[name]["fd_ratio_vs_baseline"] = entry[name]["fd"] / entry["baseline_cdcgan"]["fd"]

    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results[args.tag] = entry
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))

    print(f"\nconvergence [{args.tag}]: {args.minutes:g} min each, 2-core CPU, scored on 10k Fashion-MNIST test images")
    print(f"{'model':<32} {'FD':>8} {'FD/base':>8} {'label acc':>9} {'HF ratio':>8} {'steps x batch':>14}")
    rows = [("real train images (floor)", reference, None)]
    rows += [(name, entry[name], f"{entry[name]['steps']} x {entry[name]['batch_size']}") for name, _ in phases]
    if "baseline_cdcgan" in entry:
        base = entry["baseline_cdcgan"]
        rows.append(("baseline cDCGAN", base, f"{base['steps']} x {base['batch_size']}"))
    for name, values, steps in rows:
        ratio = values.get("fd_ratio_vs_baseline")
        print(f"{name:<32} {values['fd']:>8.2f} {'' if ratio is None else f'{ratio:.2f}':>8} "
              f"{values['label_accuracy']:>9.3f} {values['high_freq_ratio']:>8.2f} {steps or '':>14}")
    if pretrain_seconds:
        accuracy = entry["pretrain"]["val_accuracy"]
        print(f"extractor pretraining: {pretrain_seconds:.0f} s, held-out accuracy {accuracy:.3f}")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
