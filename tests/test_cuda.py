"""The CUDA paths: mixed precision, channels_last, torch.compile of G, nccl DDP, the 256 px backbone rule, and the
batch path on the GPU. Marked ``cuda``: skipped with a reason on machines without a GPU (CI), run by
scripts/gpu_check.sh where there is one."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from ganaug import GANAug, TrainConfig, train
from ganaug.transforms import GANAugment

pytestmark = pytest.mark.cuda

TINY = dict(steps=6, batch_size=8, g_channels=32, g_min_channels=16, mixing_channels=16, d_channels=16, z_dim=16,
            embed_dim=16, instance_neighbours=3, bank_per_class=5, checkpoint_every=6, sample_every=6, log_every=2,
            seed=0)


@pytest.fixture(scope="module")
def small_data(embedded_train):
    return embedded_train.subset(torch.arange(0, 2000, 10))


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("compile_g", [False, True], ids=["eager", "compiled"])
def test_training_on_cuda_runs_in_mixed_precision(small_data, extractor_file, tmp_path, precision, compile_g):
    config = TrainConfig(**TINY, device="cuda", precision=precision, channels_last=True, compile=compile_g,
                         backbone_weights=str(extractor_file), backbone_input_size=32)
    gan = train(small_data, config, tmp_path / "run", progress=False)
    assert gan.info["step"] == TINY["steps"] and gan.device.type == "cuda"
    images = gan.sample(20, seed=0)
    assert images.dtype == torch.uint8 and images.float().std() > 0  # not a constant image: no NaN collapse
    assert torch.equal(GANAug.from_pretrained(tmp_path / "run", device="cuda").sample(20, seed=0), images)


def test_the_cuda_default_backbone_input_is_256(small_data, extractor_file, tmp_path):
    config = TrainConfig(**{**TINY, "steps": 2}, device="cuda", backbone_weights=str(extractor_file))
    assert config.with_device_defaults("cuda").backbone_input_size == 256
    gan = train(small_data, config, tmp_path / "run", progress=False)
    assert gan.info["backbone"]["input_size"] == 256


def test_nccl_ddp_trains(tmp_path, extractor_file):
    """torchrun over every GPU here (one is enough to run the nccl path end to end)."""
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={torch.cuda.device_count()}",
               "--master_addr=127.0.0.1", "--master_port=29533", "-m", "ganaug", "-q", "train", "--data",
               "fashion-mnist", "--out", str(tmp_path / "run"), "--steps", "4", "--batch-size", "8",
               "--backbone-weights", str(extractor_file), "--backbone-input-size", "32", "--device", "cuda"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ})
    assert result.returncode == 0, result.stderr[-3000:]
    assert GANAug.from_pretrained(tmp_path / "run").info["step"] == 4


@pytest.mark.parametrize("mode", ["replace", "mix"])
def test_the_batch_path_on_the_gpu_matches_the_cpu(tiny_run, mode):
    images = torch.randint(0, 256, (128, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(128) % 10
    outs = {}
    for device in ("cpu", "cuda"):
        transform = GANAugment(tiny_run, mode=mode, p=0.5, seed=3, bank_size=8, refresh_every=None, bank_seed=0,
                               device="cpu")  # the same bank images; only the batch's device differs
        outs[device] = transform(images.to(device), labels.to(device))[0]
    assert outs["cuda"].device.type == "cuda"
    difference = (outs["cuda"].cpu().int() - outs["cpu"].int()).abs().max()
    assert difference == 0 if mode == "replace" else difference <= 1  # float32 rounding may differ by one level
