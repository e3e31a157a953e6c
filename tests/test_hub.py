"""Sharing models through the Hugging Face Hub, with no network: a fake Hub on 127.0.0.1 that the real
``huggingface_hub`` client talks to (tests/fake_hub.py), and a Hugging Face cache in a temporary folder."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import socket
import time
from pathlib import Path

import huggingface_hub
import pytest
import safetensors.torch
import torch
from fake_hub import FakeHub
from PIL import Image

from ganaug import GANAug, HubError, SyntheticDataset
from ganaug._util.checkpoint_file import CheckpointError
from ganaug._util.hub import HubName, parse_hub_name
from ganaug.cli import main
from ganaug.sampling.sharing import GRID_PER_CLASS, model_card
from ganaug.transforms import GANAugment

OFFLINE_FAILS_WITHIN = 10.0  # seconds: "fails in seconds", with room for a slow shared machine


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache of the test's own (the client reads its location once, at import)."""
    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return cache


@pytest.fixture
def hub(hf_cache, monkeypatch):
    """A fake Hub at HF_ENDPOINT, with HF_TOKEN set to its write token."""
    with FakeHub() as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.endpoint)
        monkeypatch.setenv("HF_TOKEN", fake.token)
        yield fake
        assert fake.unknown == []  # the client asked for nothing the fake does not know


@pytest.fixture
def dead_endpoint(monkeypatch):
    """HF_ENDPOINT at a port on 127.0.0.1 where nothing listens: a machine with no way to the Hub."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    return endpoint


@pytest.fixture(scope="module")
def tiny_gan(tiny_run):
    return GANAug.from_pretrained(tiny_run)


def _weights_gets(hub: FakeHub) -> list[str]:
    return [path for method, path in hub.requests if method == "GET" and path.endswith("/model.safetensors")]


def test_hub_names_are_told_from_local_paths():
    assert parse_hub_name("org/name") == HubName("org/name", None)
    assert parse_hub_name("org/name@v1.0") == HubName("org/name", "v1.0")
    assert parse_hub_name("org/name@refs/pr/1") == HubName("org/name", "refs/pr/1")
    for local in ("/abs/run", "runs", "a/b/c", "../run", "./run", "org/", "org/name@", ".hidden/x"):
        assert parse_hub_name(local) is None, local


def test_a_pushed_model_loads_back_bit_for_bit(tiny_gan, hub, tmp_path):
    url = tiny_gan.push_to_hub("org/tiny")
    assert url.startswith(f"{hub.endpoint}/org/tiny/commit/")
    sha, files = hub.repos["org/tiny"].commits[-1]
    assert sorted(files) == ["README.md", "config.json", "model.safetensors", "samples.png"]
    local = safetensors.torch.load_file(tiny_gan.save_pretrained(tmp_path / "export") / "model.safetensors")
    pushed = safetensors.torch.load(files["model.safetensors"])
    assert sorted(pushed) == sorted(local) and all(torch.equal(pushed[name], local[name]) for name in local)

    loaded = GANAug.from_pretrained("org/tiny")
    for name, tensor in tiny_gan.generator.state_dict().items():
        assert torch.equal(loaded.generator.state_dict()[name], tensor), name
    assert torch.equal(loaded.bank_features, tiny_gan.bank_features)
    assert loaded.info == tiny_gan.info
    assert torch.equal(loaded.sample(20, seed=3), tiny_gan.sample(20, seed=3))
    # only what a model needs came down: no card, no grid
    snapshot = Path(huggingface_hub.constants.HF_HUB_CACHE, "models--org--tiny", "snapshots", sha)
    assert sorted(p.name for p in snapshot.iterdir()) == ["config.json", "model.safetensors"]
    assert (snapshot / "model.safetensors").read_bytes() == files["model.safetensors"]


def test_the_model_card_is_valid_hub_metadata(tiny_gan, hub, tmp_path):
    report = {"metrics": {"fd": 2.5, "kid_mean": 0.0012, "recall": 0.25}, "num_generated": 100, "num_real": 100,
              "extractor": {"model": "resnet10t"}, "data": "fashion-mnist (test)"}
    (tmp_path / "eval.json").write_text(json.dumps(report))
    tiny_gan.push_to_hub("org/carded", license="mit", evaluation=tmp_path / "eval.json")
    files = hub.repos["org/carded"].commits[-1][1]
    (tmp_path / "README.md").write_bytes(files["README.md"])
    card = huggingface_hub.ModelCard.load(tmp_path / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "ganaug"
    assert data["license"] == "mit"
    assert "ganaug" in data["tags"] and "data-augmentation" in data["tags"]
    assert data["datasets"] == ["zalando-datasets/fashion_mnist"]  # the tiny run trained on Fashion-MNIST
    own = data["ganaug"]
    assert own["classes"] == list(tiny_gan.classes)
    assert (own["resolution"], own["channels"], own["step"]) == (28, 1, tiny_gan.info["step"])
    assert own["evaluation"] == report["metrics"]
    assert "| fd | 2.5000 |" in card.text and "| kid_mean (x 10^3) | 1.2000 |" in card.text
    for usage in ('GANAug.from_pretrained("org/carded")', 'from ganaug.albumentations import GANAugment',
                  'from ganaug.transforms import GANAugment', 'GANAugment("org/carded"'):
        assert usage in card.text, usage
    (tmp_path / "grid.png").write_bytes(files["samples.png"])
    with Image.open(tmp_path / "grid.png") as grid:
        side = 2 * 28 + 2  # scaled to at least 64 px, plus make_grid's padding
        assert grid.size == (GRID_PER_CLASS * side + 2, tiny_gan.num_classes * side + 2)  # one row per class


def test_a_card_without_evaluation_says_how_to_get_one(tiny_gan):
    text = model_card(tiny_gan.info, "org/plain")
    assert "license: other" in text and "ganaug eval org/plain" in text


def test_a_cached_model_loads_with_no_network(tiny_gan, hub, monkeypatch, dead_endpoint):
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    tiny_gan.push_to_hub("org/cached")
    first = GANAug.from_pretrained("org/cached")
    hub.stop()
    for offline in ("", "1"):  # the Hub unreachable, and HF_HUB_OFFLINE set
        monkeypatch.setenv("HF_ENDPOINT", dead_endpoint)
        monkeypatch.setenv("HF_HUB_OFFLINE", offline)
        start = time.monotonic()
        again = GANAug.from_pretrained("org/cached")
        assert time.monotonic() - start < OFFLINE_FAILS_WITHIN
        assert torch.equal(again.sample(8, seed=1), first.sample(8, seed=1))


def test_offline_without_the_model_fails_in_seconds_naming_the_ways_out(hf_cache, dead_endpoint, monkeypatch):
    for offline in ("", "1"):
        monkeypatch.setenv("HF_HUB_OFFLINE", offline)
        start = time.monotonic()
        with pytest.raises(HubError) as caught:
            GANAug.from_pretrained("org/never-downloaded")
        assert time.monotonic() - start < OFFLINE_FAILS_WITHIN
        message = str(caught.value)
        assert "'org/never-downloaded' is not a folder here" in message
        assert ("HF_HUB_OFFLINE is set" if offline else f"{dead_endpoint} cannot be reached") in message
        for way_out in ("unset HF_HUB_OFFLINE", "save_pretrained", "hf download org/never-downloaded", "HF_HUB_CACHE"):
            assert way_out in message, way_out


def test_hf_hub_offline_sends_nothing(tiny_gan, hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubError, match="HF_HUB_OFFLINE is set"):
        GANAug.from_pretrained("org/tiny")
    with pytest.raises(HubError, match="HF_HUB_OFFLINE is set"):
        tiny_gan.push_to_hub("org/tiny")
    assert hub.requests == []


def test_a_missing_repo_or_revision_fails_clearly(hub, tiny_gan):
    with pytest.raises(HubError, match="'org/missing' does not exist at .*private or gated.*HF_TOKEN"):
        GANAug.from_pretrained("org/missing")
    tiny_gan.push_to_hub("org/tiny")
    with pytest.raises(HubError, match="'org/tiny' has no revision 'v9'"):
        GANAug.from_pretrained("org/tiny@v9")
    with pytest.raises(FileNotFoundError, match="does not exist"):  # cannot be a Hub name: a plain missing path
        GANAug.from_pretrained("no/such/run")


def test_a_foreign_repo_fails_before_its_weights_download(hub):
    weights = b"\0" * 200_000  # whatever a transformers model holds
    hub.commit("org/bert", {"config.json": json.dumps({"model_type": "bert"}).encode(), "model.safetensors": weights})
    with pytest.raises(CheckpointError, match="'org/bert' is not a ganaug model: its config.json has format None"):
        GANAug.from_pretrained("org/bert")
    hub.commit("org/notes", {"README.md": b"# notes"})
    with pytest.raises(HubError, match=r"'org/notes' is not a ganaug model: it lacks config.json \(it holds README"):
        GANAug.from_pretrained("org/notes")
    assert _weights_gets(hub) == []


def test_a_revision_pins_a_version(tiny_run, hub):
    first = GANAug.from_pretrained(tiny_run)
    first.push_to_hub("org/versions")
    old_sha = hub.repos["org/versions"].commits[-1][0]
    second = GANAug.from_pretrained(tiny_run)
    with torch.no_grad():
        for parameter in second.generator.parameters():
            parameter.add_(0.5)
    second.push_to_hub("org/versions", commit_message="second")
    assert torch.equal(GANAug.from_pretrained("org/versions").sample(4, seed=0), second.sample(4, seed=0))
    assert torch.equal(GANAug.from_pretrained(f"org/versions@{old_sha}").sample(4, seed=0), first.sample(4, seed=0))


def test_a_push_without_write_access_fails_clearly(tiny_gan, hub, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", "/nonexistent/token")
    with pytest.raises(HubError, match="pushing to Hub repository 'org/denied' failed.*HF_TOKEN"):
        tiny_gan.push_to_hub("org/denied", token=False)
    with pytest.raises(ValueError, match="repo_id should be a Hub repository 'org/name', got 'just-a-name'"):
        tiny_gan.push_to_hub("just-a-name")


def test_a_private_repo_needs_a_token_to_load(tiny_gan, hub, monkeypatch):
    tiny_gan.push_to_hub("org/secret", private=True)
    assert hub.repos["org/secret"].private
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", "/nonexistent/token")
    with pytest.raises(HubError, match="private or gated"):
        GANAug.from_pretrained("org/secret")


def test_transforms_datasets_and_commands_take_hub_names(tiny_run, tiny_gan, hub, tmp_path, capsys):
    assert main(["push", str(tiny_run), "org/cli", "--license", "apache-2.0", "-m", "from the command line"]) == 0
    assert "pushed" in capsys.readouterr().out
    assert hub.repos["org/cli"].commits[-1][1]["README.md"].startswith(b"---\n")
    assert b"license: apache-2.0" in hub.repos["org/cli"].commits[-1][1]["README.md"]

    transform = GANAugment("org/cli", mode="replace", p=1.0, bank_seed=0)
    image = torch.zeros(1, 28, 28, dtype=torch.uint8)
    out, label = transform(image, 3)
    assert out.shape == image.shape and label == 3 and not torch.equal(out, image)
    dataset = SyntheticDataset("org/cli", num_per_class=2, seed=0)
    assert torch.equal(dataset[5][0], SyntheticDataset(tiny_run, num_per_class=2, seed=0)[5][0])

    assert main(["sample", "org/cli", "--num", "10", "--out", str(tmp_path / "grid.png")]) == 0
    assert (tmp_path / "grid.png").is_file()
    assert main(["sample", "org/absent", "--num", "10", "--out", str(tmp_path / "x.png")]) == 2
    assert "'org/absent' does not exist" in capsys.readouterr().err


def test_push_reads_the_runs_evaluation(tiny_run, hub, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "eval.json").write_text(json.dumps({"metrics": {"fd": 7.25}, "num_generated": 10, "num_real": 10}))
    assert main(["push", str(run), "org/evaluated"]) == 0
    assert b"| fd | 7.2500 |" in hub.repos["org/evaluated"].commits[-1][1]["README.md"]
    (run / "eval.json").write_text("{}")
    assert main(["push", str(run), "org/evaluated"]) == 2  # a file that is not a report is refused


def test_the_weights_on_the_hub_are_the_export_and_nothing_is_unpickled(tiny_gan, hub, monkeypatch):
    tiny_gan.push_to_hub("org/safe")
    weights = hub.repos["org/safe"].commits[-1][1]["model.safetensors"]
    header_size = int.from_bytes(weights[:8], "little")  # safetensors: a JSON header, then raw tensor bytes
    assert json.loads(weights[8:8 + header_size])["__metadata__"]["format"] == "ganaug.model/1"

    def refuse(*args, **kwargs):
        raise AssertionError("something was unpickled")

    for module, name in ((torch, "load"), (pickle, "load"), (pickle, "loads")):
        monkeypatch.setattr(module, name, refuse)
    loaded = GANAug.from_pretrained("org/safe")
    assert hashlib.sha256(weights).hexdigest() == hashlib.sha256(
        Path(huggingface_hub.constants.HF_HUB_CACHE, "models--org--safe", "snapshots",
             hub.repos["org/safe"].commits[-1][0], "model.safetensors").read_bytes()).hexdigest()
    assert loaded.num_classes == tiny_gan.num_classes
