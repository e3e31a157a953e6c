"""The Python half of scripts/gpu_check.sh: GPU timings of sampling and the batch transforms, and the one JSON.

    python scripts/gpu_check.py time --runs RUNS       # RUNS/timings.json, from the run trained in RUNS/defaults
    python scripts/gpu_check.py summary --runs RUNS --out benchmarks/results/gpu_check.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

BATCH = 128  # images per batch of the batch-path timing (the pipeline benchmark's batch size)


def timed(function, seconds: float = 3.0) -> float:
    """Seconds per call of ``function`` (CUDA synchronized), after two warm-up calls."""
    for _ in range(2):
        function()
    torch.cuda.synchronize()
    start, count = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        function()
        count += 1
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / count


def timings(runs: Path) -> dict:
    from ganaug import GANAug
    from ganaug.transforms import GANAugment

    model = runs / "defaults"
    gan = GANAug.from_pretrained(model, device="cuda")
    result = {"model": str(model), "resolution": gan.resolution, "sample_images_per_s": {}}
    for batch in (256, 1024):
        per_call = timed(lambda batch=batch: gan.sample(batch, seed=0, batch_size=batch))
        result["sample_images_per_s"][str(batch)] = batch / per_call
    images = torch.randint(0, 256, (BATCH, gan.channels, gan.resolution, gan.resolution), dtype=torch.uint8)
    labels = torch.arange(BATCH) % gan.num_classes
    result["batch_path_us_per_batch"] = {}
    for mode in ("replace", "mix", "variant"):
        transform = GANAugment(model, mode=mode, p=0.5, seed=0, device="cuda")
        if mode != "variant":
            transform.bank.fill()
        for device in ("cuda", "cpu"):
            batch, batch_labels = images.to(device), labels.to(device)
            per_call = timed(lambda t=transform, b=batch, y=batch_labels: t(b, y))
            result["batch_path_us_per_batch"][f"{mode}/{device}"] = per_call * 1e6
    return result


def summary(runs: Path, out: Path) -> dict:
    steps = [json.loads(line) for line in (runs / "steps.jsonl").read_text().splitlines() if line.strip()]
    report = {"steps": steps, "ok": all(step["rc"] == 0 for step in steps),
              "machine": {"gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                          "torch": torch.__version__, "cuda": torch.version.cuda, "platform": platform.platform()}}
    for name in ("defaults", "lite1"):
        metrics = runs / name / "metrics.jsonl"
        if metrics.is_file():
            lines = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
            config = json.loads((runs / name / "config.json").read_text())
            report[f"train_{name}"] = {"last": lines[-1] if lines else None, "backbone": config.get("backbone"),
                                       "precision": config.get("precision"), "device": config.get("device"),
                                       "backbone_input_size": config["config"].get("backbone_input_size")}
    if (runs / "timings.json").is_file():
        report["timings"] = json.loads((runs / "timings.json").read_text())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "steps"}, indent=2))
    done = ", ".join(f"{step['step']} rc={step['rc']} {step['seconds']:.0f}s" for step in steps)
    print(f"\nsteps: {done}\nwrote {out}")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["time", "summary"])
    parser.add_argument("--runs", type=Path, required=True, help="gpu_check.sh's working folder")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu_check.json"))
    args = parser.parse_args()
    if args.what == "time":
        (args.runs / "timings.json").write_text(json.dumps(timings(args.runs), indent=2))
    else:
        summary(args.runs, args.out)


if __name__ == "__main__":
    main()
