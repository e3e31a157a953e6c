"""Kill-and-resume soak: a training run killed with SIGKILL many times at random moments, resumed after each kill.

After every kill the run folder is checked (``ganaug.train.run_dir.verify_run``: every
checkpoint's tensors against their CRC-32, config.json, the sample grids, the metrics), the
checkpoint's step must not have gone back, and the run is resumed from the command line. At
the end the run is resumed to completion and loaded. tests/test_faults.py does three kills; this
does as many as ``--cycles``, with checkpoints, samples and metrics written every step so that
kills land inside writes.

    python benchmarks/soak.py --cycles 20

Prints a table and writes benchmarks/results/soak.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "soak.json"
TRAIN = ["--data", "fashion-mnist:embedded", "--batch-size", "16", "--g-channels", "32", "--g-min-channels", "16",
         "--mixing-channels", "16", "--d-channels", "16", "--z-dim", "16", "--embed-dim", "16",
         "--checkpoint-every", "1", "--sample-every", "1", "--log-every", "1", "--pretrain-min-steps", "1",
         "--seed", "0"]


def command(run: Path, steps: int, resume: bool) -> list[str]:
    base = [sys.executable, "-m", "ganaug", "-q", "train", "--steps", str(steps)]
    return base + (["--resume", str(run)] if resume else [*TRAIN, "--out", str(run)])


def checkpoint_step(run: Path) -> int | None:
    from ganaug._util.checkpoint_file import CheckpointError
    from ganaug.train.checkpoint import read_training_checkpoint

    try:
        return read_training_checkpoint(run / "checkpoint.safetensors")[1]["step"]
    except (CheckpointError, FileNotFoundError):
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=12, help="kills (each followed by a resume)")
    parser.add_argument("--max-delay", type=float, default=2.0, help="a kill lands up to this many seconds after "
                                                                     "the run has checkpointed a new step")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from ganaug import GANAug
    from ganaug.train.run_dir import verify_run

    rng = random.Random(args.seed)
    repaired_by_resume = ("torn line", "temporary left by a killed writer")
    started = time.perf_counter()
    rows, failures = [], []
    with tempfile.TemporaryDirectory() as folder:
        run = Path(folder) / "run"
        previous = 0
        for cycle in range(args.cycles):
            process = subprocess.Popen(command(run, 10**6, resume=cycle > 0), stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE)
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and process.poll() is None:
                step = checkpoint_step(run)
                if step is not None and step > previous:
                    break
                time.sleep(0.05)
            if process.poll() is not None:
                raise SystemExit(f"cycle {cycle}: the run ended by itself: {process.stderr.read().decode()[-2000:]}")
            delay = rng.uniform(0.0, args.max_delay)
            time.sleep(delay)
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            step = checkpoint_step(run)
            problems = verify_run(run)
            lasting = [p for p in problems if not any(r in p for r in repaired_by_resume)]
            went_back = step is None or step < previous
            rows.append({"cycle": cycle, "delay_s": round(delay, 3), "checkpoint_step": step,
                         "repaired_on_resume": [p for p in problems if p not in lasting], "problems": lasting,
                         "went_back": went_back})
            print(f"kill {cycle:3d}  after {delay:4.2f} s  step {step}  "
                  f"{'OK' if not lasting and not went_back else 'FAIL ' + '; '.join(lasting)}", flush=True)
            if lasting or went_back:
                failures.append(cycle)
            previous = step or previous
        final_steps = previous + 2
        subprocess.run(command(run, final_steps, resume=True), check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        final_problems = verify_run(run)
        loaded = GANAug.from_pretrained(run)
        final_ok = loaded.info["step"] == final_steps and not final_problems
    seconds = time.perf_counter() - started
    print(f"\n{args.cycles} kills, {len(failures)} with a damaged file or a step that went back; final resume to "
          f"step {final_steps}: {'loads, every file whole' if final_ok else final_problems}  ({seconds:.0f} s)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "command": "benchmarks/soak.py " + " ".join(sys.argv[1:]), "cycles": args.cycles, "seed": args.seed,
        "max_delay_s": args.max_delay, "failures": failures, "final_step": final_steps, "final_ok": final_ok,
        "final_problems": final_problems, "seconds": seconds, "machine": platform.platform(), "kills": rows,
    }, indent=2))
    if failures or not final_ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
