"""Fault tests for training: kill -9 at random moments, NaN in a batch and in a weight, a checkpoint damaged on disk.

What a run promises (docs/reliability.md): after any kill, the run folder holds a loadable
checkpoint and no damaged file; a resume continues from that checkpoint, its step never goes
back, and it removes what the killed process left half-written.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import ganaug
from ganaug._util.checkpoint_file import CheckpointError
from ganaug._util.files import TEMP_SUFFIX
from ganaug.train.checkpoint import read_training_checkpoint
from ganaug.train.run_dir import verify_run

sys.path.insert(0, os.path.dirname(__file__))
from test_training import tiny_config  # noqa: E402

SUBSET = "torch.arange(0, 2000, 10)"  # 200 embedded images, 20 per class


@pytest.fixture(scope="module")
def small_data(embedded_train):
    return embedded_train.subset(torch.arange(0, 2000, 10))


def _start(run: Path, extractor_file: Path, resume: bool) -> subprocess.Popen:
    script = textwrap.dedent(f"""
        import sys, torch
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        import ganaug
        from test_training import tiny_config
        data = ganaug.load_fashion_mnist("train", source="embedded").subset({SUBSET})
        ganaug.train(data, tiny_config(steps=100000, checkpoint_every=1, sample_every=1,
                                       backbone_weights={str(extractor_file)!r}),
                     {str(run)!r}, resume={resume}, progress=False)
    """)
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _checkpoint_step(run: Path) -> int:
    return read_training_checkpoint(run / "checkpoint.safetensors")[1]["step"]


def _kill_at_a_random_moment(process: subprocess.Popen, run: Path, rng: random.Random, after_step: int) -> None:
    """Wait until the run has checkpointed past ``after_step``, then SIGKILL it a random fraction of a second later."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if _checkpoint_step(run) > after_step:
                break
        except (CheckpointError, FileNotFoundError):
            pass
        time.sleep(0.05)
    assert process.poll() is None, process.stderr.read().decode()[-3000:]
    time.sleep(rng.uniform(0.0, 1.0))  # anywhere in a step: forward passes, checkpoint, samples, metrics
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL


def _check_run_files(run: Path, after_kill: bool) -> list[int]:
    """Every file a run keeps is whole (a kill may leave a torn metrics line and a temporary, which a resume
    repairs); returns the metrics' steps."""
    repaired_by_resume = ("torn line", "temporary left by a killed writer")
    problems = [p for p in verify_run(run) if not (after_kill and any(r in p for r in repaired_by_resume))]
    assert problems == []
    lines = (run / "metrics.jsonl").read_text().splitlines()
    steps = []
    for line in lines:
        try:
            steps.append(json.loads(line)["step"])
        except json.JSONDecodeError:
            assert after_kill and line is lines[-1]
    return steps


def test_repeated_kill_minus_nine_then_resume(extractor_file, tmp_path):
    run, rng = tmp_path / "run", random.Random(18)
    steps_seen = []
    process = _start(run, extractor_file, resume=False)
    for kill in range(3):
        _kill_at_a_random_moment(process, run, rng, after_step=steps_seen[-1] if steps_seen else 1)
        steps_seen.append(_checkpoint_step(run))
        _check_run_files(run, after_kill=True)
        if kill < 2:
            process = _start(run, extractor_file, resume=True)
    assert steps_seen == sorted(steps_seen) and steps_seen[-1] > steps_seen[0], steps_seen  # never backwards

    final = ganaug.train(ganaug.load_fashion_mnist("train", source="embedded").subset(torch.arange(0, 2000, 10)),
                         tiny_config(steps=steps_seen[-1] + 2, checkpoint_every=1, sample_every=1,
                                     backbone_weights=str(extractor_file)), run, resume=True, progress=False)
    assert final.info["step"] == steps_seen[-1] + 2
    metrics_steps = _check_run_files(run, after_kill=False)
    assert metrics_steps == sorted(set(metrics_steps)), "a resume left steps from after its checkpoint"
    assert metrics_steps[-1] == steps_seen[-1] + 2
    assert not list(run.rglob(f"*{TEMP_SUFFIX}")), "a resume removes what a killed process left half-written"
    assert verify_run(run) == []
    loaded = ganaug.GANAug.from_pretrained(run)
    assert loaded.info["step"] == steps_seen[-1] + 2
    assert loaded.sample(4, seed=0).shape == (4, 1, 28, 28)


def _all_finite(run: Path) -> bool:
    tensors, _ = read_training_checkpoint(run / "checkpoint.safetensors")
    return all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())


def test_a_nan_in_one_batch_is_skipped(small_data, extractor_file, tmp_path, monkeypatch):
    import importlib

    loop = importlib.import_module("ganaug.train.loop")
    real_d_step, calls = loop.d_step, {"n": 0}

    def poisoned_batch(d_train, d_module, real, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            real = torch.full_like(real, float("nan"))
        return real_d_step(d_train, d_module, real, *args, **kwargs)

    monkeypatch.setattr(loop, "d_step", poisoned_batch)
    gan = ganaug.train(small_data, tiny_config(steps=5, backbone_weights=str(extractor_file)), tmp_path / "run",
                       progress=False)
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert gan.info["step"] == 5 and metrics[-1]["skipped_steps"] == 1
    assert _all_finite(tmp_path / "run")


def test_a_nan_in_a_weight_is_undone_by_restoring_the_checkpoint(small_data, extractor_file, tmp_path, monkeypatch,
                                                                   caplog):
    import importlib
    import logging

    loop = importlib.import_module("ganaug.train.loop")
    real_update, calls = loop.update_ema, {"n": 0}

    def poisoning_update(generator_ema, generator, *args):
        real_update(generator_ema, generator, *args)
        calls["n"] += 1
        if calls["n"] == 3:  # after step 3's update: from now on every generator output is NaN
            with torch.no_grad():
                next(generator.parameters()).fill_(float("nan"))

    monkeypatch.setattr(loop, "update_ema", poisoning_update)
    config = tiny_config(steps=6, checkpoint_every=2, max_bad_steps=2, backbone_weights=str(extractor_file))
    with caplog.at_level(logging.WARNING, logger=loop.logger.name):
        gan = ganaug.train(small_data, config, tmp_path / "run", progress=False)
    assert "restored the checkpoint of step 2" in caplog.text
    assert gan.info["step"] == 6 and _all_finite(tmp_path / "run")
    assert torch.isfinite(next(gan.generator.parameters())).all()
    samples = gan.sample(10, seed=0)
    assert samples.float().std() > 0


def test_a_damaged_checkpoint_names_the_file_and_the_way_back(small_data, extractor_file, tmp_path):
    run = tmp_path / "run"
    config = tiny_config(steps=4, checkpoint_every=2, backbone_weights=str(extractor_file))
    ganaug.train(small_data, config, run, progress=False)
    checkpoint, previous = run / "checkpoint.safetensors", run / "checkpoint.prev.safetensors"
    assert read_training_checkpoint(previous)[1]["step"] < 4  # the one before the last

    data = bytearray(checkpoint.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(64)  # bit rot inside the tensors: the header still reads
    checkpoint.write_bytes(bytes(data))
    resume = tiny_config(steps=6, checkpoint_every=2, backbone_weights=str(extractor_file))
    with pytest.raises(CheckpointError) as raised:
        ganaug.train(small_data, resume, run, resume=True, progress=False)
    message = str(raised.value)
    assert str(checkpoint) in message and "do not match the checksum" in message
    assert f"mv {previous} {checkpoint}" in message

    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])  # truncated
    with pytest.raises(CheckpointError, match="truncated or damaged.*previous checkpoint is kept"):
        ganaug.train(small_data, resume, run, resume=True, progress=False)
    with pytest.raises(CheckpointError, match="previous checkpoint is kept"):
        ganaug.GANAug.from_pretrained(run)

    previous.replace(checkpoint)  # the way out the message gives
    resumed = ganaug.train(small_data, resume, run, resume=True, progress=False)
    assert resumed.info["step"] == 6
