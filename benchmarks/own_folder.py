"""A newcomer's own folder, end to end: real RGBA icons of 16-256 px in 8 imbalanced classes, through the CLI.

The folder is built from the Oxygen icon theme (Debian ``oxygen-icon-theme``, LGPL-3; real icons,
colour and transparency): one class per icon context, counts falling from 700 to 20, each icon
at a size drawn from 16-256 px. It is trained the way a user would, ``ganaug train --data DIR``
with no size or channel given, and scored per class in an independent feature space (ImageNet
EfficientNet-Lite0 from its PyPI package, at 224 px): precision, recall and coverage of each
class's samples against that class's real icons, and the samples' spread (mean pairwise feature
distance) as a share of the real icons' spread. A collapsed class shows a low recall and
spread. What the run chose (resolution, channels) and the sample grid (one row per class,
``docs/images/icons_samples.png``) are recorded too.

    sudo apt-get install oxygen-icon-theme
    python benchmarks/own_folder.py --minutes 10

Prints a table and writes benchmarks/results/own_folder.json. CPU minutes; compare runs only on
one machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "own_folder.json"
GRID = ROOT / "docs" / "images" / "icons_samples.png"
OXYGEN = Path("/usr/share/icons/oxygen/base")
CLASSES = {"actions": 700, "mimetypes": 500, "apps": 300, "status": 200, "places": 120, "devices": 80,
           "emblems": 40, "emotes": 20}
SIZES = ("16x16", "22x22", "32x32", "48x48", "64x64", "128x128", "256x256")


def build_folder(out: Path, seed: int) -> dict[str, int]:
    """Copy icons into out/<context>/<name>.png, each at a random size of those the theme has for it."""
    if not OXYGEN.is_dir():
        raise SystemExit(f"{OXYGEN} is missing: sudo apt-get install oxygen-icon-theme")
    rng = np.random.default_rng(seed)
    if out.exists():
        shutil.rmtree(out)
    counts = {}
    for context, count in CLASSES.items():
        by_name: dict[str, list[Path]] = {}
        for size in SIZES:
            for path in sorted((OXYGEN / size / context).glob("*.png")):
                by_name.setdefault(path.name, []).append(path)
        names = sorted(by_name)
        chosen = rng.choice(len(names), size=min(count, len(names)), replace=False)
        (out / context).mkdir(parents=True)
        for index in sorted(chosen.tolist()):
            versions = by_name[names[index]]
            shutil.copy(versions[int(rng.integers(len(versions)))], out / context / names[index])
        counts[context] = len(chosen)
    return counts


def spread(features: torch.Tensor) -> float:
    """Mean pairwise Euclidean distance between the rows."""
    distances = torch.cdist(features, features)
    return float(distances.sum() / (len(features) * (len(features) - 1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="GAN training budget")
    parser.add_argument("--samples-per-class", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "cache" / "own_folder")
    args = parser.parse_args()

    import ganaug
    from ganaug._util.files import save_image_grid
    from ganaug.eval.metrics import precision_recall_density_coverage
    from ganaug.nets.features import FeatureExtractor

    folder, run = args.work / "icons", args.work / "run"
    counts = build_folder(folder, args.seed)
    if run.exists():
        shutil.rmtree(run)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "ganaug", "train", "--data", str(folder), "--out", str(run),
                             "--minutes", str(args.minutes), "--seed", str(args.seed)],
                            capture_output=True, text=True, check=True)
    train_seconds = time.perf_counter() - started
    said = [line for line in (result.stdout + result.stderr).replace("\r", "\n").splitlines()
            if line.startswith(("training on", "pretrained ")) or "WARNING" in line]
    print("\n".join(said))

    gan = ganaug.GANAug.from_pretrained(run)
    real = ganaug.ImageDataset.from_folder(folder, image_size=gan.resolution, channels=gan.channels)
    evaluator = FeatureExtractor("tf_efficientnet_lite0", pretrained=True, input_size=224)
    real_features = torch.cat([evaluator.embed(real.images[i:i + 128]) for i in range(0, len(real), 128)])
    rows = []
    for label, name in enumerate(real.classes):
        samples = gan.sample(args.samples_per_class, labels=label, seed=args.seed + label)
        fake = torch.cat([evaluator.embed(samples[i:i + 128]) for i in range(0, len(samples), 128)])
        own = real_features[real.labels == label]
        k = min(5, len(own) - 1)
        prdc = precision_recall_density_coverage(own, fake, k=k)
        rows.append({"class": name, "real": counts[name], "precision": prdc.precision, "recall": prdc.recall,
                     "coverage": prdc.coverage, "spread_ratio": spread(fake) / spread(own)})
    per_row = 10
    labels = torch.arange(gan.num_classes).repeat_interleave(per_row)
    save_image_grid(gan.sample(len(labels), labels=labels, seed=args.seed), GRID, nrow=per_row,
                    scale=max(1, 64 // gan.resolution))

    print(f"\n{'class':<10} {'real':>5} {'P':>6} {'R':>6} {'C':>6} {'spread':>7}")
    for row in rows:
        print(f"{row['class']:<10} {row['real']:5d} {row['precision']:6.3f} {row['recall']:6.3f} "
              f"{row['coverage']:6.3f} {row['spread_ratio']:7.2f}")
    info = gan.info
    print(f"\ntrained at {gan.resolution}x{gan.resolution}, {gan.channels} channels, {info['step']} steps in "
          f"{args.minutes:g} min ({train_seconds:.0f} s with pretraining); grid: {GRID.relative_to(ROOT)}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "command": "benchmarks/own_folder.py " + " ".join(sys.argv[1:]), "classes": counts,
        "sizes": list(SIZES), "minutes": args.minutes, "train_seconds": train_seconds,
        "resolution": gan.resolution, "channels": gan.channels, "steps": info["step"], "said": said,
        "evaluator": "tf_efficientnet_lite0 ImageNet (package), 224 px", "per_class": rows,
        "machine": platform.platform(), "torch_threads": torch.get_num_threads(),
    }, indent=2))


if __name__ == "__main__":
    main()
