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
    with pytest.raises(SystemExit) as exit_info:  # refused by argparse, before any work
        main(["sample", str(run), "--num", "0", "--out", str(tmp_path / "x.png")])
    assert exit_info.value.code == 2 and "argument --num: should be a positive int, got '0'" in capsys.readouterr().err
    assert main(["train", "--data", "fashion-mnist:embedded", "--out", str(tmp_path / "x")]) == 2
    assert "needs a budget" in capsys.readouterr().err


def test_python_dash_m_ganaug_runs_the_command():
    result = subprocess.run([sys.executable, "-m", "ganaug", "--version"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("ganaug ")


CONFIG_COMMANDS = [  # (arguments that reach the config, the config class, the fields it does not expose)
    (["train", "--data", "x", "--out", "y"], "ganaug.train.config.TrainConfig", {"extra"}),
    (["pretrain-extractor", "--data", "x", "--out", "y"], "ganaug.train.pretrain.PretrainConfig", set()),
    (["eval", "run", "--data", "x"], "ganaug.eval.evaluation.EvalConfig", set()),
    (["features", "train", "f.safetensors", "--out", "y"], "ganaug.feature_space.feature_gan.FeatureGANConfig", set()),
    (["demo"], "ganaug.cli.demo.DemoConfig", set()),
]


def _config_class(path: str):
    import importlib

    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize(("argv", "config", "hidden"), CONFIG_COMMANDS,
                         ids=[c[1].rsplit(".", 1)[1] for c in CONFIG_COMMANDS])
def test_config_options_come_from_the_fields(argv, config, hidden, monkeypatch, capsys):
    """Every field is an option; left out, it keeps the dataclass default; its help is the field's docstring."""
    import dataclasses

    from ganaug.cli.commands import build_parser
    from ganaug.cli.options import field_docs, given

    cls = _config_class(config)
    args = build_parser().parse_args(argv)
    names = [f.name for f in dataclasses.fields(cls) if f.name not in hidden]
    assert given(args, names) == {}  # nothing given, so every default is the dataclass's own
    monkeypatch.setenv("COLUMNS", "1000")  # one line per option
    with pytest.raises(SystemExit):
        main([*argv[:2 if argv[0] == "features" else 1], "--help"])
    entries = []  # one per option: its line, and the help argparse put on the next line when the flags are long
    for line in capsys.readouterr().out.splitlines():
        if line.lstrip().startswith("-") or not entries:
            entries.append(line.strip())
        else:
            entries[-1] += " " + line.strip()
    docs = field_docs(cls)
    for field in dataclasses.fields(cls):
        if field.name in hidden:
            continue
        assert docs.get(field.name), f"{cls.__name__}.{field.name} has no docstring"
        option = f"--{field.name.replace('_', '-')}"
        line = next(entry for entry in entries if entry.startswith(option + " ") or entry.startswith(option + ","))
        assert docs[field.name].rstrip(".") in line, field.name
        if field.default not in (None, dataclasses.MISSING) and not isinstance(field.default, (bool, tuple)):
            shown = "''" if field.default == "" else field.default
            assert f"(default: {shown})" in line, field.name


def test_train_options_reach_the_config_and_keep_the_old_names():
    from ganaug.cli.commands import build_parser
    from ganaug.cli.options import config_from_args

    args = build_parser().parse_args(["train", "--data", "x", "--out", "y", "--steps", "5", "--image-size", "32",
                                      "--no-instance", "--betas", "0.5", "0.9", "--backbone-out-indices", "1", "2",
                                      "--no-pixel-head"])
    from ganaug.train.config import TrainConfig

    config = config_from_args(TrainConfig, args)
    assert (config.steps, config.resolution, config.instance_conditioning, config.betas, config.backbone_out_indices,
            config.pixel_head) == (5, 32, False, (0.5, 0.9), (1, 2), False)
    assert config.backbone == TrainConfig.backbone  # the default the help text shows


def test_shared_options_are_declared_once():
    from pathlib import Path

    import ganaug

    root = Path(ganaug.__file__).parent
    for option in ('"--device"', '"--seed"', '"--data"'):
        where = [p.relative_to(root).as_posix() for p in root.rglob("*.py") if option in p.read_text()]
        assert where == ["cli/options.py"], (option, where)
