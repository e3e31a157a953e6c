"""Per-call cost of GANAugment in both adapters: microseconds per 28x28 sample, without a DataLoader.

A DataLoader's throughput varies by 10-20% from run to run on our machines, which hides a few
microseconds per sample; this times the transforms alone (best of 5 rounds of 3,000 calls, one
thread), for applied calls (p=1, each mode's numpy fast path) and skipped ones (p=0). To compare
two versions of the code, run it with each on PYTHONPATH, in turn, on one machine:

    python benchmarks/transform_call_cost.py --model RUN --label new
    PYTHONPATH=/path/to/old/checkout python benchmarks/transform_call_cost.py --model RUN --label old

Prints a table and adds the run to benchmarks/results/transform_call_cost.json.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import albumentations as A
import numpy as np
import torch

import ganaug
from ganaug import albumentations as gan_albumentations
from ganaug import transforms as gan_transforms

RESULTS = Path(__file__).resolve().parent / "results" / "transform_call_cost.json"


def best_microseconds(call, rounds: int = 5, calls: int = 3000) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        best = min(best, (time.perf_counter() - start) / calls * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="run directory or export")
    parser.add_argument("--label", default="", help="a name for this run in the JSON (e.g. the commit)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    image = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    tensor = torch.from_numpy(image)[None]
    settings = dict(bank_seed=0, device="cpu", refresh_every=None)
    row = {}
    for mode in ("replace", "mix"):
        compose = A.Compose([gan_albumentations.GANAugment(args.model, mode=mode, p=1.0, **settings)], seed=0)
        torchvision_applied = gan_transforms.GANAugment(args.model, mode=mode, p=1.0, **settings)
        torchvision_skipped = gan_transforms.GANAugment(args.model, mode=mode, p=0.0, **settings)
        compose(image=image, class_label=1)  # fills the bank
        torchvision_applied(tensor, 1)
        row[f"albumentations {mode}"] = best_microseconds(lambda c=compose: c(image=image, class_label=1))
        row[f"torchvision {mode}"] = best_microseconds(lambda t=torchvision_applied: t(tensor, 1))
        row[f"torchvision {mode}, p=0"] = best_microseconds(lambda t=torchvision_skipped: t(tensor, 1))
    print(f"ganaug from {Path(ganaug.__file__).parent} ({args.label or 'no label'})")
    for name, value in row.items():
        print(f"{name:<28} {value:7.2f} us")
    runs = json.loads(RESULTS.read_text()) if RESULTS.is_file() else []
    runs.append({"label": args.label, "ganaug": str(Path(ganaug.__file__).parent), "microseconds": row})
    RESULTS.write_text(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()
