from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from ganaug.cli import main

SUBCOMMANDS = ["info", "pretrain-extractor", "train", "sample", "complete", "expand", "eval", "features", "demo"]


def test_console_script_help():
    result = subprocess.run([sys.executable, "-m", "ganaug.cli", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0
    for name in SUBCOMMANDS:
        assert name in result.stdout


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    assert "usage: ganaug " + name in capsys.readouterr().out


def test_info_reports_versions_device_sources_and_weights(capsys):
    assert main(["info", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["versions"]["torch"] and report["versions"]["timm"]
    assert report["device"]["type"] in ("cpu", "cuda")
    assert report["fashion_mnist_sources"]["embedded"].endswith("fashion_mnist_subset.npz")
    assert isinstance(report["cached_weights"], list)
    assert main(["info"]) == 0
    text = capsys.readouterr().out
    assert "device:" in text and "Fashion-MNIST sources" in text and "cached pretrained weights" in text


def test_pretrain_extractor_command_on_an_image_folder(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for label, name in enumerate(["dark", "light"]):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(12):
            base = 40 if label == 0 else 200
            array = np.clip(base + rng.normal(0, 20, (20, 20, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(array).save(tmp_path / "data" / name / f"{i}.png")
    out = tmp_path / "ext.safetensors"
    code = main(["-q", "pretrain-extractor", "--data", str(tmp_path / "data"), "--image-size", "16",
                 "--model", "resnet10t", "--input-size", "16", "--epochs", "2", "--batch-size", "8",
                 "--val-fraction", "0.25", "--out", str(out)])
    assert code == 0 and out.is_file()
    printed = capsys.readouterr().out
    assert "held-out accuracy" in printed and "FeatureExtractor('resnet10t'" in printed


def test_cli_errors_name_the_problem(tmp_path, capsys):
    code = main(["pretrain-extractor", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.safetensors")])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err


def test_train_resume_and_sample_commands(tmp_path, extractor_file, capsys):
    run = tmp_path / "run"
    common = ["--batch-size", "8", "--backbone-weights", str(extractor_file)]
    assert main(["-q", "train", "--data", "fashion-mnist:embedded", "--out", str(run), "--steps", "2", *common]) == 0
    assert main(["-q", "train", "--resume", str(run), "--steps", "3"]) == 0
    assert "trained to step 3" in capsys.readouterr().out
    assert main(["-q", "train", "--resume", str(run), "--steps", "4", "--batch-size", "4"]) == 2
    assert "only --minutes/--steps may change" in capsys.readouterr().err

    assert main(["sample", str(run), "--num", "20", "--out", str(tmp_path / "grid.png")]) == 0
    with Image.open(tmp_path / "grid.png") as grid:  # 10 rows (one per class) of 2, each 28 px upscaled to 56
        assert grid.size == (2 * 58 + 2, 10 * 58 + 2)
    assert main(["sample", str(run), "--num", "8", "--class", "Sandal", "--out", str(tmp_path / "sandal.png")]) == 0
    assert main(["sample", str(run), "--class", "Hat", "--out", str(tmp_path / "x.png")]) == 2
    assert "--class should be a class index or one of" in capsys.readouterr().err
    assert main(["sample", str(run), "--num", "0", "--out", str(tmp_path / "x.png")]) == 2
    assert "--num should be a positive int, got 0" in capsys.readouterr().err
    assert main(["train", "--data", "fashion-mnist:embedded", "--out", str(tmp_path / "x")]) == 2
    assert "needs a budget" in capsys.readouterr().err
