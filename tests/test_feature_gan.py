"""FeatureGAN on a toy Gaussian mixture, FeatureDataset balancing, feature files and the CLI."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from ganaug import FeatureDataset, FeatureGAN, FeatureGANConfig, extract_features
from ganaug._util.checkpoint_file import CheckpointError, read_checkpoint, write_checkpoint
from ganaug.feature_space.feature_dataset import load_features, save_features
from ganaug.feature_space.feature_gan import (
    FEATURE_GAN_FORMAT,
    FEATURE_GAN_WEIGHTS_FILE,
    _class_moments,
    _squared_mean_distance,
)

DIM, CLASSES = 8, 3


def mixture(per_class: int = 200, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Three well separated Gaussian classes in 8-d: features, labels, class means."""
    generator = torch.Generator().manual_seed(seed)
    means = torch.zeros(CLASSES, DIM)
    means[torch.arange(CLASSES), torch.arange(CLASSES)] = 6.0
    labels = torch.arange(CLASSES).repeat_interleave(per_class)
    features = means[labels] + 0.5 * torch.randn(len(labels), DIM, generator=generator)
    return features, labels, means


SMALL = {"steps": 300, "batch_size": 64, "hidden_dim": 64, "noise_dim": 8, "embed_dim": 8, "lr": 1e-3,
         "betas": (0.5, 0.9), "classifier_steps": 50, "log_every": 50, "device": "cpu"}


@pytest.fixture(scope="module")
def fitted():
    features, labels, means = mixture()
    return FeatureGAN(DIM, CLASSES, FeatureGANConfig(**SMALL)).fit(features, labels), features, labels, means


def test_fit_lowers_a_fresh_critics_wasserstein_estimate(fitted):
    trained, features, labels, _ = fitted
    untrained = FeatureGAN(DIM, CLASSES, FeatureGANConfig(**SMALL))
    untrained.register_stats(trained.mean, trained.std, trained.nonnegative)  # same units, weights untrained
    before = untrained.critic_distance(features, labels, steps=150)
    after = trained.critic_distance(features, labels, steps=150)
    assert before > 0.5
    assert after < 0.5 * before
    assert [entry["step"] for entry in trained.history] == [50, 100, 150, 200, 250, 300]


def test_samples_land_near_their_class_means(fitted):
    trained, _, _, means = fitted
    samples = trained.sample(300, labels=torch.arange(CLASSES).repeat_interleave(100), seed=0)
    assert samples.shape == (300, DIM) and samples.dtype == torch.float32
    nearest = torch.cdist(samples, means).argmin(dim=1)
    assert (nearest == torch.arange(CLASSES).repeat_interleave(100)).float().mean() > 0.95
    distances = torch.cdist(samples.view(CLASSES, 100, DIM).mean(dim=1), means)  # (class means of samples, true)
    own = distances.diagonal()
    others = (distances + torch.eye(CLASSES) * 1e9).min(dim=1).values
    assert (own < 0.25 * others).all()  # the true means lie 8.5 apart
    spread = samples.view(CLASSES, 100, DIM).std(dim=1).mean(dim=1)
    assert ((spread > 0.25) & (spread < 1.0)).all()  # the real spread is 0.5: no collapse, no blow-up


def test_sampling_is_deterministic_and_label_forms(fitted):
    trained = fitted[0]
    assert torch.equal(trained.sample(10, labels=1, seed=3), trained.sample(10, labels=1, seed=3))
    assert not torch.equal(trained.sample(10, labels=1, seed=3), trained.sample(10, labels=1, seed=4))
    assert trained.sample(0).shape == (0, DIM)
    with pytest.raises(ValueError, match=r"labels should lie in \[0, 3\)"):
        trained.sample(2, labels=[0, 3])
    with pytest.raises(ValueError, match="one label per item"):
        trained.sample(3, labels=[0, 1])


def test_save_and_load_round_trip(fitted, tmp_path):
    trained = fitted[0]
    trained.save_pretrained(tmp_path / "fgan")
    loaded = FeatureGAN.from_pretrained(tmp_path / "fgan", device="cpu")
    assert torch.equal(loaded.sample(20, seed=1), trained.sample(20, seed=1))
    assert loaded.config.steps == SMALL["steps"] and loaded.fitted and loaded.history == trained.history
    readable = json.loads((tmp_path / "fgan" / "config.json").read_text())  # for people, as GANAug writes
    assert readable["config"]["steps"] == SMALL["steps"] and readable["feature_dim"] == DIM
    (tmp_path / "other.safetensors").write_bytes(b"not a model")
    with pytest.raises(CheckpointError):
        FeatureGAN.from_pretrained(tmp_path / "other.safetensors")


def test_load_files_written_by_older_and_newer_versions(fitted, tmp_path):
    """A config field added since the file was written takes its default; an unknown one is refused by name."""
    trained = fitted[0]
    file = trained.save_pretrained(tmp_path / "fgan") / FEATURE_GAN_WEIGHTS_FILE
    tensors, info = read_checkpoint(file, file_format=FEATURE_GAN_FORMAT)
    del info["config"]["moment_samples"]  # as written before the field existed
    write_checkpoint(file, tensors, info, file_format=FEATURE_GAN_FORMAT)
    loaded = FeatureGAN.from_pretrained(file)
    assert loaded.config.moment_samples == FeatureGANConfig().moment_samples
    assert torch.equal(loaded.sample(5, seed=0), trained.sample(5, seed=0))
    info["config"]["from_the_future"] = 1
    write_checkpoint(file, tensors, info, file_format=FEATURE_GAN_FORMAT)
    with pytest.raises(ValueError, match=r"does not know \(\['from_the_future'\]\).*newer ganaug"):
        FeatureGAN.from_pretrained(file)


def test_nonnegative_features_give_nonnegative_samples(tmp_path):
    features, labels, _ = mixture(per_class=50)
    gan = FeatureGAN(DIM, CLASSES, FeatureGANConfig(**{**SMALL, "steps": 5})).fit(features.abs(), labels)
    assert gan.nonnegative and (gan.sample(100, seed=0) >= 0).all()
    loaded = FeatureGAN.from_pretrained(gan.save_pretrained(tmp_path / "fgan"))
    assert loaded.nonnegative and loaded.class_counts == [50, 50, 50]
    assert torch.equal(loaded.sample(100, seed=0), gan.sample(100, seed=0))


@pytest.mark.parametrize("features, labels, message", [
    (torch.ones(4, DIM), torch.zeros(3, dtype=torch.long), "one label per feature vector"),
    (torch.ones(4, DIM), torch.tensor([0, 1, 2, 3]), r"labels should lie in \[0, 3\)"),
    (torch.tensor([[float("nan")] * DIM] * 4), torch.zeros(4, dtype=torch.long), "NaN or infinite values in 4 rows"),
    (torch.ones(4, 5), torch.zeros(4, dtype=torch.long), "should have 8 dimensions"),
    (torch.ones(4, DIM), torch.zeros(4), "labels should hold integer class indices"),
])
def test_fit_rejects_bad_inputs(features, labels, message):
    with pytest.raises((ValueError, TypeError), match=message):
        FeatureGAN(DIM, CLASSES, FeatureGANConfig(**SMALL)).fit(features, labels)


def test_config_and_constructor_checks():
    with pytest.raises(ValueError, match="steps should be a positive int"):
        FeatureGANConfig(steps=0)
    with pytest.raises(ValueError, match="num_classes should be an int >= 2"):
        FeatureGAN(DIM, 1)
    with pytest.raises(ValueError, match="moment_weight should be a number >= 0"):
        FeatureGANConfig(moment_weight=-1.0)
    with pytest.raises(ValueError, match="moment_samples should be an int >= 2"):
        FeatureGANConfig(moment_samples=1)


def test_moment_matching_pulls_class_means_and_spreads_to_the_real_ones():
    features, labels, means = mixture()
    errors = {}
    for weight in (0.0, 1.0):
        config = FeatureGANConfig(**{**SMALL, "steps": 100, "moment_weight": weight, "moment_samples": 16})
        samples = FeatureGAN(DIM, CLASSES, config).fit(features, labels).sample(
            600, labels=torch.arange(CLASSES).repeat_interleave(200), seed=0).view(CLASSES, 200, DIM)
        errors[weight] = ((samples.mean(dim=1) - means).norm(dim=1).mean().item(),
                          (samples.std(dim=1) - 0.5).abs().mean().item())
    # after 100 steps the adversarial loss alone is still off (measured: means 0.86 off, spreads
    # 0.36); with the moment term both are much closer (0.30, 0.05)
    assert errors[1.0][0] < 0.6 * errors[0.0][0], errors
    assert errors[1.0][1] < 0.5 * errors[0.0][1], errors


def test_moment_term_estimates_the_mean_distance_without_a_spread_bias():
    # 4,000 groups of 4 draws from N(mu, I) in 8-d, target mu + delta with |delta|^2 = 2: the
    # U-statistic averages 2; the squared distance of the group means averages 2 + 8 / 4 = 4
    generator = torch.Generator().manual_seed(0)
    mu = torch.randn(DIM, generator=generator)
    delta = torch.zeros(DIM)
    delta[:2] = 1.0
    samples = mu + torch.randn(4000, 4, DIM, generator=generator)
    target = (mu + delta).expand(4000, DIM)
    unbiased = _squared_mean_distance(samples, target).mean().item()
    plain = (samples.mean(dim=1) - target).square().sum(dim=1).mean().item()
    assert abs(unbiased - 2.0) < 0.15
    assert abs(plain - 4.0) < 0.15
    with pytest.raises(ValueError, match="at least 2 vectors per group"):
        _squared_mean_distance(samples[:, :1], target)


def test_class_moments_match_per_class_statistics():
    features, labels, _ = mixture(per_class=20)
    keep = labels != 1  # class 1 absent
    mean, std, present = _class_moments(features[keep], labels[keep], CLASSES)
    assert present.tolist() == [True, False, True]
    for c in (0, 2):
        members = features[labels == c]
        torch.testing.assert_close(mean[c], members.mean(dim=0))
        torch.testing.assert_close(std[c], members.std(dim=0))


def test_feature_dataset_balances_to_requested_counts(fitted):
    trained, features, labels, _ = fitted
    keep = torch.cat([torch.arange(0, 100), torch.arange(200, 230), torch.arange(400, 405)])  # 100 / 30 / 5
    dataset = FeatureDataset(features[keep], labels[keep], trained, balance="equalize", seed=0)
    assert dataset.class_counts() == [100, 100, 100]
    assert int(dataset.is_synthetic.sum()) == 70 + 95
    assert torch.equal(dataset.features[:len(keep)], features[keep])  # real vectors first, unchanged
    feature, label = dataset[len(keep)]
    assert label == 1 and feature.shape == (DIM,)
    targets = FeatureDataset(features[keep], labels[keep], trained, balance={1: 60, 2: 40}, return_is_synthetic=True)
    assert targets.class_counts() == [100, 60, 40]
    assert targets[0][2] is False and targets[len(targets) - 1][2] is True
    assert FeatureDataset(features[keep], labels[keep], balance=None).class_counts() == [100, 30, 5]
    same = FeatureDataset(features[keep], labels[keep], trained, seed=0)
    assert torch.equal(same.features, dataset.features)
    reseeded = FeatureDataset(features[keep], labels[keep], trained, seed=1)
    assert torch.equal(reseeded.features[:len(keep)], dataset.features[:len(keep)])  # the real ones unchanged
    assert not torch.equal(reseeded.features, dataset.features)


def test_feature_dataset_rejects_bad_inputs(fitted):
    trained, features, labels, _ = fitted
    with pytest.raises(ValueError, match="give a feature_gan"):
        FeatureDataset(features[:250], labels[:250], None, balance="equalize")
    with pytest.raises(ValueError, match="one label per feature vector"):
        FeatureDataset(features, labels[:10], trained)
    with pytest.raises(ValueError, match=r"balance keys should be class indices"):
        FeatureDataset(features, labels, trained, balance={7: 10})
    with pytest.raises(ValueError, match="balance should be"):
        FeatureDataset(features, labels, trained, balance="oversample")
    with pytest.raises(ValueError, match="NaN"):
        FeatureDataset(torch.full((3, DIM), float("inf")), torch.zeros(3, dtype=torch.long), trained)


def test_extract_features_streams_and_caches(embedded_test, random_extractor, tmp_path):
    data = embedded_test.subset(torch.arange(40))
    cache = tmp_path / "features.safetensors"
    features, labels = extract_features(data, random_extractor, batch_size=16, cache=cache, progress=False)
    assert features.shape == (40, random_extractor.embed_dim) and torch.equal(labels, data.labels)
    assert torch.allclose(features[:5], random_extractor.embed(data.images[:5]), atol=1e-5)
    stored, stored_labels, metadata = load_features(cache)
    assert torch.equal(stored, features) and metadata["num"] == "40"

    def explode(images):
        raise AssertionError("the network ran")

    same = copy.deepcopy(random_extractor)
    same.embed = explode  # a cache hit must not run the network
    again, _ = extract_features(data, same, cache=cache, progress=False)
    assert torch.equal(again, features)
    changed = copy.deepcopy(random_extractor)  # same name and origin, other weights: not a hit
    with torch.no_grad():
        next(changed.parameters()).add_(0.5)
    changed.embed = explode
    with pytest.raises(AssertionError, match="the network ran"):
        extract_features(data, changed, cache=cache, progress=False)
    with pytest.raises(ValueError, match=r"cache should end in \.safetensors"):  # before any image is embedded
        extract_features(data, changed, cache=tmp_path / "features.pt", progress=False)
    other = embedded_test.subset(torch.arange(39, -1, -1))  # same length and extractor, other labels: recomputed
    fresh, fresh_labels = extract_features(other, random_extractor, cache=cache, progress=False)
    assert torch.equal(fresh_labels, other.labels) and not torch.equal(fresh, features)
    numpy_items = [(image[0].numpy(), int(label)) for image, label in zip(data.images[:6], data.labels[:6],
                                                                           strict=True)]
    from_numpy, _ = extract_features(numpy_items, random_extractor, batch_size=4, progress=False)
    assert torch.allclose(from_numpy, features[:6], atol=1e-5)
    mixed = [(np.zeros((8, 8), np.uint8), 0), (np.zeros((8, 8, 3), np.uint8), 1)]  # an L and an RGB image
    with pytest.raises(ValueError, match=r"one shape .* got \[\(1, 8, 8\), \(3, 8, 8\)\]"):
        extract_features(mixed, random_extractor, progress=False)
    with pytest.raises(ValueError, match=r"\.safetensors"):
        save_features(tmp_path / "x.pt", features, labels)
    save_features(tmp_path / "new" / "folder" / "x.safetensors", features, labels)  # missing folders are made


def test_extract_features_runs_a_module_in_eval_mode_and_restores_its_mode():
    class BatchNormEmbedder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = torch.nn.BatchNorm1d(4)

        def embed(self, images):
            return self.norm(images.float().flatten(1)[:, :4])

    items = [(torch.rand(1, 2, 2, generator=torch.Generator().manual_seed(i)), i % 2) for i in range(16)]
    extractor = BatchNormEmbedder().train()
    before = extractor.norm.running_mean.clone()
    small, _ = extract_features(items, extractor, batch_size=4, progress=False)
    large, _ = extract_features(items, extractor, batch_size=16, progress=False)
    assert torch.equal(extractor.norm.running_mean, before)  # no running-statistics updates
    assert torch.allclose(small, large)  # no batch statistics: the batch size does not matter
    assert extractor.training


def test_fit_is_reproducible_and_leaves_the_callers_generators_alone(monkeypatch):
    features, labels, _ = mixture(per_class=30)
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    reseeded = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: reseeded.append(seed))
    monkeypatch.setattr(torch.cuda, "manual_seed", lambda seed: reseeded.append(seed))
    config = FeatureGANConfig(**{**SMALL, "steps": 20})
    first = FeatureGAN(DIM, CLASSES, config).fit(features, labels)
    first.critic_distance(features, labels, steps=5)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's CPU stream is untouched
    assert reseeded == []  # and no CUDA generator was reseeded
    second = FeatureGAN(DIM, CLASSES, config).fit(features, labels)
    assert torch.equal(first.sample(50, seed=3), second.sample(50, seed=3))
    refit = FeatureGAN(DIM, CLASSES, config).fit(features[::2], labels[::2]).fit(features, labels)
    assert torch.equal(refit.sample(50, seed=3), first.sample(50, seed=3))  # fit starts afresh
    other = FeatureGAN(DIM, CLASSES, FeatureGANConfig(**{**SMALL, "steps": 20, "seed": 1})).fit(features, labels)
    assert not torch.equal(first.sample(50, seed=3), other.sample(50, seed=3))


def test_classes_absent_from_fit_are_not_generated(fitted):
    features, labels, _ = mixture(per_class=30)
    seen = labels < 2  # class 2 has no vectors
    gan = FeatureGAN(DIM, CLASSES, FeatureGANConfig(**{**SMALL, "steps": 5})).fit(features[seen], labels[seen])
    assert gan.class_counts == [30, 30, 0] and gan.trained_classes == [0, 1]
    with pytest.raises(ValueError, match=r"labels \[2\] name classes with no vectors"):
        gan.sample(4, labels=2)
    assert gan.sample(6, seed=0).shape == (6, DIM)  # no labels: the trained classes in turn
    keep = torch.cat([torch.arange(0, 30), torch.arange(30, 35)])  # 30 of class 0, 5 of class 1, none of 2
    dataset = FeatureDataset(features[keep], labels[keep], gan, balance="equalize")
    assert dataset.class_counts() == [30, 30, 0]
    with pytest.raises(ValueError, match="no vectors"):
        FeatureDataset(features[keep], labels[keep], gan, balance={2: 10})


def test_sample_label_forms(fitted):
    trained = fitted[0]
    expected = trained.sample(4, labels=1, seed=0)
    assert torch.equal(trained.sample(4, labels=np.int64(1), seed=0), expected)
    assert torch.equal(trained.sample(4, labels=torch.tensor(1), seed=0), expected)
    assert torch.equal(trained.sample(4, labels=np.array([1, 1, 1, 1]), seed=0), expected)
    with pytest.raises(TypeError, match="labels should hold integer class indices"):
        trained.sample(2, labels=[0.9, 2.7])
    with pytest.raises(ValueError, match="batch_size should be a positive int"):
        trained.sample(2, batch_size=0)
    with pytest.raises(ValueError, match="features should have 8 dimensions"):
        trained.critic_distance(torch.ones(4, 5), torch.zeros(4, dtype=torch.long))


@pytest.mark.parametrize("overrides, error, message", [
    ({"betas": (2.0, 0.9)}, ValueError, r"betas should lie in \[0, 1\)"),
    ({"betas": (0.5,)}, ValueError, "betas should be two numbers"),
    ({"seed": "a"}, TypeError, "seed should be an int"),
    ({"class_balanced": 1}, ValueError, "class_balanced should be True or False"),
    ({"steps": 0}, ValueError, "steps should be a positive int"),
])
def test_config_rejects_bad_values(overrides, error, message):
    with pytest.raises(error, match=message):
        FeatureGANConfig(**overrides)


def test_features_cli_extract_train_sample(tmp_path, extractor_file, capsys):
    from ganaug.cli import main

    feats = tmp_path / "train.safetensors"
    assert main(["-q", "features", "extract", "--data", "fashion-mnist:embedded", "--extractor", str(extractor_file),
                 "--out", str(feats), "--batch-size", "128"]) == 0
    features, labels, _ = load_features(feats)
    assert features.shape[0] == 2000 and labels.max() == 9
    assert main(["-q", "features", "train", str(feats), "--out", str(tmp_path / "fgan"), "--steps", "3",
                 "--lr", "2e-4", "--moment-weight", "0.5"]) == 0
    config = FeatureGAN.from_pretrained(tmp_path / "fgan").config
    assert (config.lr, config.moment_weight) == (2e-4, 0.5)
    out = tmp_path / "synthetic.safetensors"
    assert main(["-q", "features", "sample", str(tmp_path / "fgan"), "--num-per-class", "7", "--out", str(out)]) == 0
    synthetic, synthetic_labels, _ = load_features(out)
    assert synthetic.shape == (70, features.shape[1]) and torch.bincount(synthetic_labels).tolist() == [7] * 10
    assert "wrote 70" in capsys.readouterr().out
    assert main(["-q", "features", "train", str(tmp_path / "missing.safetensors"), "--out", str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["-q", "features", "train", str(feats), "--out", str(out), "--steps", "3"]) == 2  # a file
    assert "is a file; give a folder" in capsys.readouterr().err
    assert main(["-q", "features", "extract", "--data", "fashion-mnist:embedded", "--extractor", str(extractor_file),
                 "--out", str(out / "f.safetensors")]) == 2  # under a file: no folder can be made
    assert "is a file, so no folder can be made there" in capsys.readouterr().err
    assert main(["-q", "features", "sample", str(tmp_path / "fgan"), "--num-per-class", "2", "--out",
                 str(tmp_path / "s.pt")]) == 2
    assert "--out should end in .safetensors" in capsys.readouterr().err
