"""ganaug.evaluation and ``ganaug eval`` on a tiny trained run."""

from __future__ import annotations

import json

import pytest
import torch

from ganaug import GANAug
from ganaug.eval.evaluation import EvalConfig, evaluate, inception_extractor, load_eval_extractor
from ganaug.nets.weights import WeightsUnavailableError

SMALL = {"num": 40, "batch_size": 16, "kid_subsets": 5, "kid_subset_size": 20, "nearest_k": 3}


@pytest.fixture(scope="module")
def gan(tiny_run):
    return GANAug.from_pretrained(tiny_run, device="cpu")


def test_evaluate_reports_every_metric_and_is_deterministic(gan, embedded_test):
    report = evaluate(gan, embedded_test, EvalConfig(**SMALL))
    metrics = report["metrics"]
    assert set(metrics) == {"fd", "kid_mean", "kid_std", "precision", "recall", "density", "coverage",
                            "label_accuracy", "cas", "real_probe_accuracy"}
    assert metrics["fd"] > 0
    for name in ("precision", "recall", "coverage", "label_accuracy", "cas", "real_probe_accuracy"):
        assert 0.0 <= metrics[name] <= 1.0, name
    assert report["num_generated"] == 40 and report["num_real"] == 40
    assert report["feature_dim"] == gan.extractor.embed_dim
    assert evaluate(gan, embedded_test, EvalConfig(**SMALL))["metrics"] == metrics
    assert evaluate(gan, embedded_test, EvalConfig(**SMALL, seed=1))["metrics"] != metrics


def test_real_images_score_better_than_the_barely_trained_model(gan, embedded_test, embedded_train):
    """The metrics must tell real images from a 4-step generator: use real images as the 'model'."""

    class RealAsModel:  # duck-types what evaluate needs from a GANAug
        num_classes, device, info, extractor = gan.num_classes, gan.device, {}, gan.extractor

        @staticmethod
        def sample_seeded(labels, seeds, truncation=1.0, batch_size=256):
            picks = [torch.nonzero(embedded_train.labels == int(c)).flatten()[int(s) % 100] for c, s in
                     zip(labels, seeds, strict=True)]
            return embedded_train.images[torch.stack(picks)]

    config = EvalConfig(**{**SMALL, "num": 100, "kid_subset_size": 50})
    real = evaluate(RealAsModel(), embedded_test, config)["metrics"]
    fake = evaluate(gan, embedded_test, config)["metrics"]
    assert real["fd"] < fake["fd"]
    assert real["kid_mean"] < fake["kid_mean"]
    assert real["cas"] > fake["cas"]


def test_classifier_label_accuracy(gan, embedded_test):
    def always_zero(images):
        return torch.eye(gan.num_classes)[torch.zeros(len(images), dtype=torch.long)]

    report = evaluate(gan, embedded_test, EvalConfig(**SMALL, probes=False), classifier=always_zero)
    order = torch.randperm(len(embedded_test), generator=torch.Generator().manual_seed(0))[:40]
    expected = float((embedded_test.labels[order] == 0).float().mean())
    assert report["metrics"]["classifier_label_accuracy"] == pytest.approx(expected)
    assert "cas" not in report["metrics"]


def test_an_independent_extractor_file(gan, embedded_test, extractor_file):
    network = load_eval_extractor(str(extractor_file))
    assert network is not gan.extractor and network.weights_origin.startswith("file")
    report = evaluate(gan, embedded_test, EvalConfig(**SMALL, extractor=str(extractor_file), probes=False))
    assert report["extractor"]["weights"].startswith("file")


def test_inception_is_never_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    try:
        import torch_fidelity  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install torch-fidelity"):
            inception_extractor()
    else:
        with pytest.raises(WeightsUnavailableError, match="never downloads"):
            inception_extractor(tmp_path / "missing.pth")


def test_bad_arguments(gan, embedded_test, tmp_path):
    with pytest.raises(ValueError, match="num should be"):
        EvalConfig(num=0)
    with pytest.raises(ValueError, match="truncation"):
        EvalConfig(truncation=0)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_eval_extractor(str(tmp_path / "nothing.safetensors"))
    with pytest.raises(TypeError, match="ImageDataset"):
        evaluate(gan, embedded_test.images, EvalConfig(**SMALL))
    with pytest.raises(ValueError, match="classes"):
        evaluate(gan, embedded_test.subset(torch.nonzero(embedded_test.labels < 5).flatten()).__class__(
            embedded_test.images[:50], embedded_test.labels[:50] % 5, embedded_test.classes[:5],
            embedded_test.source), EvalConfig(**SMALL))


def test_eval_cli_prints_a_table_and_writes_json(tiny_run, tmp_path, capsys):
    from ganaug.cli import main

    out = tmp_path / "report.json"
    assert main(["-q", "eval", str(tiny_run), "--data", "fashion-mnist:embedded", "--num", "30", "--batch-size",
                 "16", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Fréchet distance" in printed and "CAS (probe)" in printed
    report = json.loads(out.read_text())
    assert report["num_generated"] == 30 and report["data"] == "fashion-mnist:embedded (test)"
    assert main(["-q", "eval", str(tiny_run), "--data", "fashion-mnist:embedded", "--extractor",
                 str(tmp_path / "no.safetensors")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("overrides, message", [
    ({"kid_subset_size": 1}, "kid_subset_size should be an int >= 2"),
    ({"seed": -1}, "seed should be a non-negative int"),
    ({"seed": True}, "seed should be a non-negative int"),
    ({"nearest_k": 0}, "nearest_k should be a positive int"),
])
def test_eval_config_rejects_bad_values_before_any_work(overrides, message):
    with pytest.raises(ValueError, match=message):
        EvalConfig(**overrides)
