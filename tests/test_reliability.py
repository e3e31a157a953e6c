"""Regression tests for reliability defects: each failed (or hung) before its fix.

Downloads that stall, budgets that overran, an empty held-out set, locks across fork, float
images out of range, relative paths in saved pipelines, a model moved under its owner, and a
run folder whose config.json is someone else's.
"""

from __future__ import annotations

import http.server
import json
import shutil
import threading
import time
import types

import albumentations as A
import numpy as np
import pytest
import torch
from torchvision.transforms import v2

import ganaug
from ganaug import albumentations as gan_albumentations
from ganaug import transforms as gan_transforms
from ganaug._util.checkpoint_file import CheckpointError, read_checkpoint, write_checkpoint
from ganaug._util.model_files import CHECKPOINT_FORMAT
from ganaug._util.network import DownloadError, download_file
from ganaug.sampling.lazy import LazyGAN

# --- downloads that stall --------------------------------------------------------------------------


class _Server:
    """A local HTTP server whose handler sends ``body``, then, if ``stall``, the headers of a longer file and
    nothing more (a server that hangs mid-download)."""

    def __init__(self, body: bytes, stall: bool):
        release = self.release = threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the standard library's name
                self.send_response(200)
                self.send_header("Content-Length", str(len(body) + (1 << 20 if stall else 0)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                if stall:
                    release.wait(30)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/weights"

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def stalled_server():
    server = _Server(b"x" * 1000, stall=True)
    yield server
    server.close()


def test_a_stalled_download_fails_after_its_timeout_and_saves_nothing(stalled_server, tmp_path):
    target = tmp_path / "weights.pth"
    started = time.monotonic()
    with pytest.raises(DownloadError, match="stalled: nothing arrived for 0.5 s"):
        download_file(stalled_server.url, target, timeout=0.5)
    assert time.monotonic() - started < 20  # not the 30 s the server would hang for
    assert list(tmp_path.iterdir()) == []  # no file, no temporary


def test_a_download_is_checked_against_the_hash_in_its_name(tmp_path):
    import hashlib

    body = b"some weights"
    server = _Server(body, stall=False)
    try:
        good = tmp_path / f"net-{hashlib.sha256(body).hexdigest()[:8]}.pth"
        assert download_file(server.url, good).read_bytes() == body
        with pytest.raises(DownloadError, match="does not match"):
            download_file(server.url, tmp_path / "net-00000000.pth")
        assert not (tmp_path / "net-00000000.pth").exists()
    finally:
        server.close()


def test_url_only_hub_weights_download_with_a_read_timeout(stalled_server, tmp_path, monkeypatch):
    """timm's own URL download (torch.hub) has no read timeout; ganaug's resolution downloads such weights itself."""
    import timm.models

    from ganaug.nets import weights

    config = types.SimpleNamespace(hf_hub_id=None, url=stalled_server.url + "/net.pth", file=None)
    monkeypatch.setattr(timm.models, "get_pretrained_cfg", lambda name: config)
    monkeypatch.setattr(weights, "package_weights", lambda name: None)
    monkeypatch.setattr(weights, "DOWNLOAD_TIMEOUT", 0.5)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(weights.WeightsUnavailableError, match="stalled"):
        weights.resolve_weights("some_url_only_net", True)
    assert not (tmp_path / "torch" / "hub" / "checkpoints" / "net.pth").exists()


# --- budgets and held-out sets of extractor pretraining ----------------------------------------------


def test_pretrain_max_minutes_stops_inside_an_epoch(embedded_train, tmp_path, monkeypatch):
    from ganaug.train import pretrain

    clock = {"now": 0.0}

    def ticking() -> float:  # every look at the clock costs a second: the budget runs out after a few batches
        clock["now"] += 1.0
        return clock["now"]

    monkeypatch.setattr(pretrain.time, "monotonic", ticking)
    result = pretrain.pretrain_extractor(embedded_train, tmp_path / "e.safetensors", model_name="resnet10t",
                                         input_size=16, epochs=3, batch_size=16, max_minutes=5 / 60, progress=False)
    steps_per_epoch = -(-result.num_train // 16)
    assert 1 <= result.steps <= 6 < steps_per_epoch
    assert result.epochs == 1 and result.history[0]["batches"] == result.steps


def test_pretrain_without_a_held_out_set_says_so(embedded_train, tmp_path):
    from ganaug.nets.weights import read_extractor_metadata
    from ganaug.train.pretrain import held_out_text, pretrain_extractor

    one_each = embedded_train.subset(torch.tensor([int(torch.nonzero(embedded_train.labels == c)[0]) for c in (0, 1)]))
    result = pretrain_extractor(one_each, tmp_path / "e.safetensors", model_name="resnet10t", input_size=16, epochs=1,
                                batch_size=2, progress=False)
    assert result.num_val == 0
    assert result.val_accuracy is None  # was 0.0, as if the network had got every image wrong
    assert read_extractor_metadata(result.path)["val_accuracy"] == "none"
    assert "no held-out set" in held_out_text(result.val_accuracy)


# --- locks and threads ----------------------------------------------------------------------------


class _LazyProbe(torch.utils.data.Dataset):
    def __init__(self, lazy):
        self.lazy = lazy

    def __len__(self):
        return 2

    def __getitem__(self, index):
        return self.lazy.gan.num_classes


def test_a_lazy_model_works_in_workers_forked_while_its_lock_was_held(tiny_run):
    lazy = LazyGAN(tiny_run, device="cpu")
    loader = torch.utils.data.DataLoader(_LazyProbe(lazy), batch_size=None, num_workers=1,
                                         multiprocessing_context="fork", timeout=60)
    with lazy._lock:  # as when another thread of the parent is loading the model at the moment of fork
        iterator = iter(loader)  # the worker forks here
    assert list(iterator) == [10, 10]  # before the fix: the worker waited on its copy of the held lock


# --- float images out of range ---------------------------------------------------------------------

BAD_FLOATS = [
    (np.full((28, 28), 200.0, np.float32), "values in \\[200, 200\\]"),  # float in 0..255
    (np.full((28, 28), np.nan, np.float32), "NaN or infinite"),
    (np.where(np.eye(28, dtype=bool), np.inf, 0.5).astype(np.float32), "NaN or infinite"),
    (np.full((28, 28), -1.8, np.float32), "before Normalize"),  # what Normalize makes
]


@pytest.mark.parametrize("mode", ["replace", "mix"])
@pytest.mark.parametrize(("image", "pattern"), BAD_FLOATS)
def test_float_images_out_of_range_are_refused_not_blended(tiny_run, mode, image, pattern):
    augment = A.Compose([gan_albumentations.GANAugment(tiny_run, mode=mode, p=1.0, bank_size=2, refresh_every=None)])
    with pytest.raises(ValueError, match=f"^image .*{pattern}"):
        augment(image=image, class_label=1)
    tv = v2.Compose([gan_transforms.GANAugment(tiny_run, mode=mode, p=1.0, bank_size=2, refresh_every=None)])
    tensor = torch.from_numpy(image)[None]
    with pytest.raises(ValueError, match=f"^image .*{pattern}"):
        tv(tensor, 1)
    with pytest.raises(ValueError, match=f"^images .*{pattern}"):
        tv(tensor[None].repeat(3, 1, 1, 1), torch.tensor([1, 2, 3]))  # batch mode
    with pytest.raises(ValueError, match=f"^images .*{pattern}"):
        ganaug.GANAug.from_pretrained(tiny_run).embed(tensor)


def test_float_images_in_range_still_work_with_rounding_slack(tiny_run):
    augment = A.Compose([gan_albumentations.GANAugment(tiny_run, mode="mix", p=1.0, bank_size=2, refresh_every=None)])
    image = np.full((28, 28), 1.0005, np.float32)
    out = augment(image=image, class_label=1)["image"]
    assert out.dtype == np.float32 and out.shape == (28, 28)


# --- saved pipelines and given models --------------------------------------------------------------


def test_a_saved_albumentations_pipeline_loads_from_another_directory(tiny_run, tmp_path, monkeypatch):
    shutil.copytree(tiny_run, tmp_path / "project" / "run")
    monkeypatch.chdir(tmp_path / "project")
    pipeline = A.Compose([gan_albumentations.GANAugment("run", mode="mix", p=1.0, bank_size=2, refresh_every=None)])
    A.save(pipeline, str(tmp_path / "pipeline.json"))
    assert json.loads((tmp_path / "pipeline.json").read_text())["transform"]["transforms"][0]["checkpoint"] == str(
        tmp_path / "project" / "run")
    monkeypatch.chdir(tmp_path)
    loaded = A.load(str(tmp_path / "pipeline.json"))
    assert loaded(image=np.zeros((28, 28), np.uint8), class_label=3)["image"].shape == (28, 28)
    assert gan_transforms.GANAugment(tmp_path / "project" / "run").checkpoint == str(tmp_path / "project" / "run")


def test_a_given_model_is_not_moved_by_the_datasets_that_use_it(tiny_run, monkeypatch):
    gan = ganaug.GANAug.from_pretrained(tiny_run)
    monkeypatch.setattr(LazyGAN, "resolved_device", lambda self: torch.device("meta"))
    dataset = ganaug.SyntheticDataset(gan, num_per_class=1)
    used = dataset.model.gan
    assert used.device == torch.device("meta") and next(used.generator.parameters()).is_meta
    assert gan.device == torch.device("cpu") and not next(gan.generator.parameters()).is_meta  # the caller's own
    assert dataset.model.gan is used  # moved once, then kept


# --- a run folder whose config.json is not ganaug's -----------------------------------------------------


def test_a_foreign_config_json_gets_a_clear_error(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    tensors, info = read_checkpoint(run / "checkpoint.safetensors", CHECKPOINT_FORMAT)
    info.pop("model")  # as in runs saved before the checkpoint described its model: config.json is read
    info.pop("run")
    write_checkpoint(run / "checkpoint.safetensors", tensors, info, CHECKPOINT_FORMAT)
    (run / "config.json").write_text(json.dumps({"this": "is not a ganaug config"}))
    with pytest.raises(CheckpointError, match="config.json' is not a ganaug run's config"):
        ganaug.GANAug.from_pretrained(run)
    (run / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="is not a ganaug run's config"):
        ganaug.GANAug.from_pretrained(run)


def test_train_config_refuses_bad_learning_rates():
    for field in ("lr_g", "lr_d"):
        for value in (-1.0, 0.0, float("nan"), "1e-3"):
            with pytest.raises((ValueError, TypeError), match=field):
                ganaug.TrainConfig(steps=1, **{field: value})
