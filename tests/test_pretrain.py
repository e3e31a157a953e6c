from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from ganaug import FeatureExtractor, PretrainConfig, pretrain_extractor
from ganaug.data import ImageDataset


def test_pretrain_learns_the_embedded_subset_and_loads_as_extractor(embedded_train, embedded_test, tmp_path):
    path = tmp_path / "extractor.safetensors"
    result = pretrain_extractor(embedded_train, path, epochs=3, input_size=32, progress=False, seed=0)
    assert result.path == path and path.is_file()
    assert result.num_train == 1800 and result.num_val == 200
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    # Chance is 0.10; three epochs on 1,800 images reach about 0.7.
    assert result.val_accuracy >= 0.6, result.history

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    assert metadata["model_name"] == "resnet18" and metadata["input_size"] == "32"
    assert json.loads(metadata["classes"])[0] == "T-shirt/top"
    assert float(metadata["val_accuracy"]) == pytest.approx(result.val_accuracy, abs=1e-6)

    extractor = FeatureExtractor("resnet18", pretrained=path, out_indices=(1, 2, 3))
    assert extractor.input_size == 32  # taken from the file
    # The loaded features separate the classes: a nearest-class-mean rule on held-out test images.
    with torch.no_grad():
        train_vectors = extractor.embed(embedded_train.images)
        test_vectors = extractor.embed(embedded_test.images)
    means = torch.stack([train_vectors[embedded_train.labels == c].mean(0) for c in range(10)])
    predictions = torch.cdist(test_vectors, means).argmin(1)
    assert (predictions == embedded_test.labels).float().mean() > 0.5

    with pytest.raises(ValueError, match="holds a 'resnet18' network, but model_name is 'resnet34'"):
        FeatureExtractor("resnet34", pretrained=path)


def test_pretrain_is_deterministic_for_a_seed(tmp_path):
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (40, 3, 16, 16), dtype=torch.uint8, generator=generator)
    dataset = ImageDataset.from_arrays(images, torch.arange(40) % 2)
    config = PretrainConfig(model_name="resnet10t", input_size=16, epochs=1, batch_size=16)
    torch.manual_seed(11)
    state = torch.get_rng_state()
    first = pretrain_extractor(dataset, tmp_path / "a.safetensors", config, progress=False)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's stream is left as it was
    torch.manual_seed(12)  # and the result does not depend on it
    second = pretrain_extractor(dataset, tmp_path / "b.safetensors", config, progress=False)
    assert first.history == second.history
    weights_a, weights_b = load_file(tmp_path / "a.safetensors"), load_file(tmp_path / "b.safetensors")
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)


def test_pretrain_rejects_bad_arguments(embedded_train, tmp_path):
    with pytest.raises(ValueError, match="out should be a .safetensors path"):
        pretrain_extractor(embedded_train, tmp_path / "x.pth", progress=False)
    with pytest.raises(TypeError, match=r"unknown PretrainConfig fields: \['epoch'\]"):
        pretrain_extractor(embedded_train, tmp_path / "x.safetensors", epoch=2)
    with pytest.raises(ValueError, match="epochs should be a positive int"):
        PretrainConfig(epochs=0)
    with pytest.raises(TypeError, match="should be a ganaug ImageDataset"):
        pretrain_extractor([(torch.zeros(1, 8, 8), 0)], tmp_path / "x.safetensors")
    assert not list(tmp_path.iterdir()), "nothing is written when the arguments are bad"


def test_min_steps_adds_epochs_on_small_data_until_accuracy_stops_rising(embedded_train, tmp_path, monkeypatch):
    from ganaug.train import pretrain

    small = embedded_train.subset(torch.arange(0, 2000, 40))  # 50 images: 40 to train on, 3 steps of 16 an epoch
    result = pretrain.pretrain_extractor(small, tmp_path / "a.safetensors", model_name="resnet10t", input_size=16,
                                         epochs=1, batch_size=16, min_steps=12, patience=100, progress=False)
    assert (result.epochs, result.steps) == (4, 12)
    monkeypatch.setattr(pretrain, "_accuracy", lambda *args: 0.5)  # held-out accuracy that never rises
    flat = pretrain.pretrain_extractor(small, tmp_path / "b.safetensors", model_name="resnet10t", input_size=16,
                                       epochs=1, batch_size=16, min_steps=30, patience=2, progress=False)
    assert (flat.epochs, flat.steps) == (3, 9)  # best at epoch 1, then two epochs without a better one


def test_a_backbone_pretrained_to_near_chance_is_warned_about(embedded_train, caplog):
    import logging
    import types

    from ganaug import TrainConfig
    from ganaug.train import backbone

    result = types.SimpleNamespace(val_accuracy=0.12, steps=8, epochs=1, seconds=3.0)
    with caplog.at_level(logging.INFO, logger=backbone.logger.name):
        backbone._report_pretraining(TrainConfig(steps=1), embedded_train, result, progress=False)
    assert "held-out accuracy 0.120 (8 steps, 1 epochs" in caplog.text
    assert "near chance (0.100)" in caplog.text
    caplog.clear()
    backbone._report_pretraining(TrainConfig(steps=1), embedded_train, types.SimpleNamespace(
        val_accuracy=0.8, steps=8, epochs=1, seconds=3.0), progress=False)
    assert "near chance" not in caplog.text


def test_contrastive_loss_rewards_matching_views_only():
    import math

    from ganaug.train.pretrain import contrastive_loss

    same = torch.ones(6, 4)
    # All 12 rows alike: each positive is one of 11 equal candidates.
    assert contrastive_loss(same, same, 0.5).item() == pytest.approx(math.log(11), rel=1e-5)
    distinct = torch.eye(6)
    assert contrastive_loss(distinct, distinct, 0.05).item() < 1e-3  # each view finds its own twin
    swapped = distinct[torch.tensor([1, 0, 2, 3, 4, 5])]
    assert contrastive_loss(distinct, swapped, 0.05).item() > 1.0  # two views matched to the wrong image


@pytest.mark.parametrize("objective", ["contrastive", "classify+contrastive"])
def test_contrastive_pretraining_learns_and_records_its_objective(embedded_train, tmp_path, objective):
    small = embedded_train.subset(torch.arange(0, 2000, 4))  # 500 images, 50 a class
    config = PretrainConfig(model_name="resnet10t", input_size=16, epochs=4, batch_size=64, objective=objective)
    first = pretrain_extractor(small, tmp_path / "a.safetensors", config, progress=False)
    second = pretrain_extractor(small, tmp_path / "b.safetensors", config, progress=False)
    assert first.history == second.history  # deterministic for a seed, the views included
    assert first.history[-1]["train_loss"] < first.history[0]["train_loss"]
    # The classifier (an online probe on detached features for "contrastive") is measured: above chance (0.1).
    assert first.val_accuracy > 0.25, first.history
    import timm

    with safe_open(str(first.path), framework="pt") as handle:
        metadata = handle.metadata()
        saved = set(handle.keys())
    assert saved == set(timm.create_model("resnet10t", num_classes=10).state_dict())  # the SimCLR head is not saved
    assert json.loads(metadata["config"])["objective"] == objective
    extractor = FeatureExtractor("resnet10t", pretrained=first.path, out_indices=(1, 2))
    assert extractor.embed(small.images[:4]).shape[0] == 4


def test_pretrain_objective_is_checked():
    from ganaug import TrainConfig

    with pytest.raises(ValueError, match="objective should be one of"):
        PretrainConfig(objective="simclr")
    with pytest.raises(ValueError, match="pretrain_objective should be one of"):
        TrainConfig(steps=1, pretrain_objective="simclr")
