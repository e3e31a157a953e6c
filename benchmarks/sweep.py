"""Short GAN runs over a list of TrainConfig variants, scored like the convergence benchmark.

Used to choose ganaug's defaults (backbone, input size, learning rates, widths): every variant
trains for the same wall-clock minutes on the full Fashion-MNIST training set with the same
pretrained extractor, and is scored on the test set by the independent evaluation CNN.

    python benchmarks/sweep.py --minutes 2 --variants '{"base": {}, "lr_d_1e-3": {"lr_d": 1e-3}}'

Prints a table and merges the results into benchmarks/results/sweep.json under --name.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from convergence import high_frequency_energy, score  # noqa: E402
from eval_classifier import features, load_or_train_eval_classifier  # noqa: E402

import ganaug  # noqa: E402
from ganaug._util.files import save_image_grid  # noqa: E402
from ganaug.train.config import default_backbone_input_size  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "sweep.json"
CACHE = ROOT / "benchmarks" / "cache"


def extractor_for(train, backbone: str, input_size: int, epochs: int) -> tuple[Path, dict]:
    path = CACHE / f"extractor_{backbone}_{input_size}px_e{epochs}.safetensors"
    if path.is_file():
        return path, {"cached": True}
    start = time.monotonic()
    result = ganaug.pretrain_extractor(train, path, model_name=backbone, input_size=input_size, epochs=epochs,
                                       progress=False)
    return path, {"seconds": time.monotonic() - start, "val_accuracy": result.val_accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--variants", required=True, help="JSON object: name -> TrainConfig overrides")
    parser.add_argument("--name", default="sweep")
    parser.add_argument("--samples-per-class", type=int, default=500)
    args = parser.parse_args()
    train = ganaug.load_fashion_mnist("train")
    test = ganaug.load_fashion_mnist("test")
    evaluator, _ = load_or_train_eval_classifier(train.images, train.labels, test.images, test.labels)
    test_features = features(evaluator, test.images)
    test_hf = high_frequency_energy(test.images)
    labels = torch.arange(10).repeat_interleave(args.samples_per_class)
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    table = results.setdefault(args.name, {})
    for name, overrides in json.loads(args.variants).items():
        backbone = overrides.get("backbone", ganaug.TrainConfig.backbone)
        input_size = overrides.get("backbone_input_size", default_backbone_input_size("cpu"))
        if "backbone_weights" in overrides:  # e.g. "random", for the dot-pattern ablation
            extractor_info = {"weights": overrides["backbone_weights"]}
            overrides_with_weights = dict(overrides)
        else:
            weights, extractor_info = extractor_for(train, backbone, input_size, overrides.pop("pretrain_epochs", 1))
            overrides_with_weights = {**overrides, "backbone_weights": str(weights)}
        config = ganaug.TrainConfig(minutes=args.minutes, checkpoint_every=10**9, sample_every=10**9, log_every=50,
                                    **overrides_with_weights)
        run_dir = CACHE / "sweep" / name
        shutil.rmtree(run_dir, ignore_errors=True)
        gan = ganaug.train(train, config, run_dir, progress=False)
        samples = gan.sample(len(labels), labels=labels, seed=0)
        metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        table[name] = {**score(samples, labels, evaluator, test_features, test_hf), "steps": gan.info["step"],
                       "images_per_s": metrics[-1]["images_per_s"], "overrides": overrides,
                       "extractor": extractor_info, "minutes": args.minutes}
        save_image_grid(gan.sample(80, labels=torch.arange(10).repeat_interleave(8), seed=1),
                        CACHE / "sweep" / f"{name}.png", nrow=8, scale=2)
        print(f"{name:<24} FD {table[name]['fd']:7.2f}  label acc {table[name]['label_accuracy']:.3f}  "
              f"HF {table[name]['high_freq_ratio']:.2f}  steps {table[name]['steps']}  "
              f"{table[name]['images_per_s']:.0f} img/s", flush=True)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
