from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import timm
import torch
from safetensors.torch import save_file

from ganaug import FeatureExtractor
from ganaug.nets.features import normalize_images

FAMILIES = ["resnet18", "efficientnet_b0", "convnext_atto", "vit_tiny_patch16_224"]


def _random_extractor(name: str, **kwargs) -> FeatureExtractor:
    with pytest.warns(UserWarning, match="random weights"):
        return FeatureExtractor(name, pretrained=False, **kwargs)


@pytest.mark.parametrize("name", FAMILIES)
def test_shapes_for_timm_families(name, embedded_train):
    extractor = _random_extractor(name, input_size=32)
    images = embedded_train.images[:3]
    maps = extractor(images)
    assert len(maps) == len(extractor.channels) == len(extractor.reductions)
    for feature_map, channels, reduction in zip(maps, extractor.channels, extractor.reductions, strict=True):
        assert feature_map.shape[:2] == (3, channels)
        assert feature_map.shape[-1] == -(-32 // reduction)
    assert extractor.embed(images).shape == (3, extractor.embed_dim)


def test_vit_takes_sides_that_are_not_a_multiple_of_its_patch(embedded_train):
    extractor = _random_extractor("vit_tiny_patch16_224")  # 28 px images, patches of 16
    assert extractor.embed(embedded_train.images[:2]).shape == (2, extractor.embed_dim)


def test_building_from_a_weights_file_leaves_the_callers_rng_alone(extractor_file):
    torch.manual_seed(5)
    state = torch.get_rng_state()
    FeatureExtractor("resnet10t", pretrained=extractor_file)
    assert torch.equal(torch.get_rng_state(), state)


def test_eval_extractor_from_a_timm_name_sees_images_at_its_training_size(monkeypatch, embedded_train):
    from ganaug.eval import evaluation
    from ganaug.nets import features
    from ganaug.nets.weights import ResolvedWeights

    monkeypatch.setattr(features, "resolve_weights", lambda name, pretrained: ResolvedWeights(origin="hub"))
    extractor = evaluation.load_eval_extractor("convnext_atto")  # random weights stand in for the hub's
    assert extractor.input_size == extractor.pretrained_input_size == 224
    assert extractor.embed(embedded_train.images[:2]).shape == (2, extractor.embed_dim)  # 28 px data works


def test_out_indices_pick_stages():
    extractor = _random_extractor("resnet18", out_indices=(1, 2, 3), input_size=32)
    assert extractor.channels == [64, 128, 256]
    assert extractor.reductions == [4, 8, 16]
    assert extractor.embed_dim == 256


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("size", [(28, 28), (45, 33)])
def test_accepts_channels_dtypes_and_any_size(channels, dtype, size):
    extractor = _random_extractor("resnet18", out_indices=(1, 2))
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(2, channels, *size, generator=generator)
    if dtype == torch.uint8:
        images = (images * 255).to(torch.uint8)
    maps = extractor(images)
    assert maps[0].shape[-2:] == (-(-size[0] // 4), -(-size[1] // 4))
    resized = _random_extractor("resnet18", out_indices=(1, 2), input_size=32)(images)
    assert resized[0].shape[-2:] == (8, 8)


def test_uint8_and_float_inputs_agree_and_gray_equals_replicated_rgb():
    extractor = _random_extractor("resnet18", input_size=32)
    images = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8)
    as_uint8 = extractor.embed(images)
    torch.testing.assert_close(extractor.embed(images.float() / 255), as_uint8)
    torch.testing.assert_close(extractor.embed(images.expand(-1, 3, -1, -1)), as_uint8)


def test_bad_inputs_are_named():
    extractor = _random_extractor("resnet18")
    with pytest.raises(ValueError, match=r"C in \(1, 3\), got shape \(2, 4, 28, 28\)"):
        extractor(torch.zeros(2, 4, 28, 28))
    with pytest.raises(TypeError, match="uint8 or float.*got dtype torch.int32"):
        extractor(torch.zeros(2, 3, 28, 28, dtype=torch.int32))
    with pytest.raises(ValueError, match="is not a timm model"):
        FeatureExtractor("no_such_net", pretrained=False)
    with pytest.raises(ValueError, match="input_size should be"):
        FeatureExtractor("resnet18", pretrained=False, input_size=2)
    with pytest.raises(TypeError, match="pretrained should be True, False or a path"):
        FeatureExtractor("resnet18", pretrained=3)


def test_frozen_network_passes_gradients_to_images():
    extractor = _random_extractor("resnet18", out_indices=(1, 2, 3), input_size=32)
    assert not any(p.requires_grad for p in extractor.parameters())
    extractor.train()
    assert extractor.training and not any(m.training for m in extractor.model.modules())
    stats_before = {k: v.clone() for k, v in extractor.model.state_dict().items()}
    images = torch.rand(4, 1, 28, 28, requires_grad=True)
    loss = sum(feature_map.square().mean() for feature_map in extractor(images))
    loss.backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert all(p.grad is None for p in extractor.parameters())
    for key, value in extractor.model.state_dict().items():
        assert torch.equal(value, stats_before[key]), f"{key} changed in a forward pass"


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_local_weights_round_trip(tmp_path, suffix):
    torch.manual_seed(0)
    model = timm.create_model("resnet18", num_classes=7)
    for module in model.modules():  # non-default BN statistics, so that a silent re-init would show
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    state = model.state_dict()
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    extractor = FeatureExtractor("resnet18", pretrained=path, out_indices=(1, 2, 3), input_size=32)
    assert extractor.weights_origin == f"file:{path.resolve()}"
    reference = timm.create_model("resnet18", features_only=True, out_indices=(1, 2, 3)).eval()
    reference.load_state_dict({k: v for k, v in state.items() if k in reference.state_dict()})
    images = torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8)
    expected = reference(normalize_images(images, extractor.mean, extractor.std, 32))
    for got, want in zip(extractor(images), expected, strict=True):
        torch.testing.assert_close(got, want)


def test_weights_file_that_does_not_fit(tmp_path):
    path = tmp_path / "effnet.safetensors"
    save_file(timm.create_model("efficientnet_b0", num_classes=3).state_dict(), str(path))
    with pytest.raises(ValueError, match="does not fit timm model 'resnet18'"):
        FeatureExtractor("resnet18", pretrained=path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        FeatureExtractor("resnet18", pretrained=tmp_path / "missing.safetensors")
    (tmp_path / "weights.txt").write_text("x")
    with pytest.raises(ValueError, match="should be a .safetensors"):
        FeatureExtractor("resnet18", pretrained=tmp_path / "weights.txt")
    (tmp_path / "garbage.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        FeatureExtractor("resnet18", pretrained=tmp_path / "garbage.safetensors")


def _run_python(code: str, env_updates: dict) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_updates}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                          timeout=300)


def test_offline_without_cached_weights_fails_with_both_ways_out(tmp_path):
    result = _run_python(
        """
        from ganaug import FeatureExtractor, WeightsUnavailableError
        try:
            FeatureExtractor("resnet18", pretrained=True)
        except WeightsUnavailableError as error:
            print("ERROR:", error)
        """,
        {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "TORCH_HOME": str(tmp_path / "torch")},
    )
    assert result.returncode == 0, result.stderr
    assert "ERROR:" in result.stdout and "HF_HUB_OFFLINE is set" in result.stdout
    assert "pretrained='path/to/weights.safetensors'" in result.stdout
    assert "ganaug pretrain-extractor" in result.stdout


def test_unreachable_hub_fails_without_retries(tmp_path):
    # Port 9 on loopback refuses at once; the check must not wait for huggingface_hub's retries.
    result = _run_python(
        """
        from ganaug import FeatureExtractor, WeightsUnavailableError
        try:
            FeatureExtractor("resnet18", pretrained=True)
        except WeightsUnavailableError as error:
            print("ERROR:", error)
        """,
        {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf"),
         "TORCH_HOME": str(tmp_path / "torch")},
    )
    assert result.returncode == 0, result.stderr
    assert "http://127.0.0.1:9 cannot be reached" in result.stdout


def test_pretrained_true_uses_the_local_hf_cache(tmp_path):
    """Weights placed in the Hugging Face cache layout load offline, with no network at all."""
    from timm.models import get_pretrained_cfg

    repo_id = get_pretrained_cfg("resnet18").hf_hub_id
    snapshot = tmp_path / "hub" / f"models--{repo_id.replace('/', '--')}" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (tmp_path / "hub" / f"models--{repo_id.replace('/', '--')}" / "refs").mkdir()
    (tmp_path / "hub" / f"models--{repo_id.replace('/', '--')}" / "refs" / "main").write_text("0123abcd")
    torch.manual_seed(1)
    state = timm.create_model("resnet18").state_dict()
    save_file(state, str(snapshot / "model.safetensors"))
    torch.save(state["conv1.weight"], tmp_path / "stem.pt")
    result = _run_python(
        f"""
        import torch
        from ganaug import FeatureExtractor
        from ganaug.nets.weights import cached_weights
        extractor = FeatureExtractor("resnet18", pretrained=True, out_indices=(1,))
        print(extractor.weights_origin)
        print(cached_weights())
        expected = torch.load({str(tmp_path / 'stem.pt')!r}, weights_only=True)
        print("same:", torch.equal(extractor.model.conv1.weight, expected))
        """,
        {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub"), "TORCH_HOME": str(tmp_path / "torch")},
    )
    assert result.returncode == 0, result.stderr
    assert f"hub-cache:{repo_id}" in result.stdout
    assert f"hf:{repo_id}" in result.stdout
    assert "same: True" in result.stdout

