"""``ganaug expand``: files, manifest, reproducibility, resume after interruption, sharding, WebDataset."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import PIL.Image
import pytest
import torch

from ganaug import GANAug
from ganaug.adapters import expand as expand_module
from ganaug.adapters.expand import checkpoint_hash, expand_dataset
from ganaug.cli import main


def _pngs(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))


def _manifest(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_imagefolder_output_and_manifest(tiny_run, tmp_path):
    result = expand_dataset(tiny_run, tmp_path / "out", num_per_class=3, seed=5, progress=False)
    files = _pngs(tmp_path / "out")
    assert result.written == 30 and result.skipped == 0 and len(files) == 30
    assert "T-shirt_top/00000000.png" in files and "Ankle boot/00000029.png" in files
    entries = _manifest(tmp_path / "out" / "manifest.jsonl")
    assert [e["index"] for e in entries] == list(range(30))
    assert {e["checkpoint_sha256"] for e in entries} == {checkpoint_hash(tiny_run)}
    gan = GANAug.from_pretrained(tiny_run, device="cpu")
    for entry in entries[::7]:
        image = np.asarray(PIL.Image.open(tmp_path / "out" / entry["file"]))
        assert entry["label"] == entry["index"] // 3 and entry["class"] == gan.classes[entry["label"]]
        expected = gan.sample_seeded([entry["label"]], [entry["seed"]])[0, 0].numpy()
        assert np.array_equal(image, expected)
    assert not list((tmp_path / "out").rglob("*.tmp"))


def test_resume_after_interruption_gives_the_same_files(tiny_run, tmp_path, monkeypatch):
    expand_dataset(tiny_run, tmp_path / "clean", num_per_class=4, batch_size=8, progress=False)
    real_write = expand_module._write_png
    calls = []

    def write_then_die(path, image):
        if len(calls) == 13:
            raise KeyboardInterrupt
        calls.append(path)
        real_write(path, image)

    monkeypatch.setattr(expand_module, "_write_png", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        expand_dataset(tiny_run, tmp_path / "resumed", num_per_class=4, batch_size=8, progress=False)
    assert len(_pngs(tmp_path / "resumed")) == 13 and not (tmp_path / "resumed" / "manifest.jsonl").exists()
    monkeypatch.setattr(expand_module, "_write_png", real_write)
    result = expand_dataset(tiny_run, tmp_path / "resumed", num_per_class=4, batch_size=8, progress=False)
    assert result.written == 27 and result.skipped == 13
    assert _pngs(tmp_path / "resumed") == _pngs(tmp_path / "clean")
    for name in _pngs(tmp_path / "clean"):
        assert (tmp_path / "clean" / name).read_bytes() == (tmp_path / "resumed" / name).read_bytes()
    assert (tmp_path / "clean" / "manifest.jsonl").read_text() == (tmp_path / "resumed" / "manifest.jsonl").read_text()


def test_shards_split_the_work_with_no_overlap(tiny_run, tmp_path, monkeypatch):
    whole = expand_dataset(tiny_run, tmp_path / "whole", num_per_class=3, progress=False)
    parts = [expand_dataset(tiny_run, tmp_path / "split", num_per_class=3, num_shards=3, shard_index=i,
                            progress=False) for i in range(3)]
    assert sum(p.written for p in parts) == whole.written == 30
    manifests = [_manifest(p.manifest) for p in parts]
    indices = [e["index"] for m in manifests for e in m]
    assert sorted(indices) == list(range(30)) and len(set(indices)) == 30
    assert _pngs(tmp_path / "split") == _pngs(tmp_path / "whole")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    ranked = expand_dataset(tiny_run, tmp_path / "ranked", num_per_class=1, progress=False)
    assert ranked.manifest.name == "manifest-00001-of-00002.jsonl"
    assert [e["index"] for e in _manifest(ranked.manifest)] == [1, 3, 5, 7, 9]
    with pytest.raises(ValueError, match="shard_index should lie in"):
        expand_dataset(tiny_run, tmp_path / "bad", num_per_class=1, num_shards=2, shard_index=2, progress=False)
    with pytest.raises(ValueError, match="num_shards=4 differs from torchrun's WORLD_SIZE=2: give shard_index"):
        expand_dataset(tiny_run, tmp_path / "bad", num_per_class=1, num_shards=4, progress=False)


def test_webdataset_shards(tiny_run, tmp_path):
    result = expand_dataset(tiny_run, tmp_path / "wds", num_per_class=2, output_format="webdataset", shard_size=8,
                            progress=False)
    tars = sorted(p.name for p in (tmp_path / "wds").glob("*.tar"))
    assert tars == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"] and result.written == 20
    with tarfile.open(tmp_path / "wds" / "shard-000001.tar") as tar:
        names = tar.getnames()
        assert names[:3] == ["00000008.png", "00000008.cls", "00000008.json"] and len(names) == 24
        label = int(tar.extractfile("00000009.cls").read())
        meta = json.loads(tar.extractfile("00000009.json").read())
        image = PIL.Image.open(io.BytesIO(tar.extractfile("00000009.png").read()))
    assert label == 4 == meta["label"] and image.size == (28, 28)
    again = expand_dataset(tiny_run, tmp_path / "wds", num_per_class=2, output_format="webdataset", shard_size=8,
                           progress=False)
    assert again.written == 0 and again.skipped == 20
    assert _manifest(result.manifest)[9]["file"] == "shard-000001.tar#00000009"


def test_expand_cli(tiny_run, tmp_path, capsys):
    assert main(["-q", "expand", str(tiny_run), "--num-per-class", "2", "--out", str(tmp_path / "o")]) == 0
    assert "wrote 20 images" in capsys.readouterr().out and len(_pngs(tmp_path / "o")) == 20
    assert main(["expand", str(tiny_run), "--num-per-class", "0", "--out", str(tmp_path / "o")]) == 2
    assert "num_per_class should be a positive int" in capsys.readouterr().err
    assert main(["expand", str(tmp_path / "missing"), "--num-per-class", "1", "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_png_bytes_round_trip_rgb():
    images = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    data = expand_module._png_bytes(images[0])
    assert np.array_equal(np.asarray(PIL.Image.open(io.BytesIO(data))), images[0].permute(1, 2, 0).numpy())


def test_a_folder_written_with_other_settings_is_refused(tiny_run, tmp_path):
    out = tmp_path / "out"
    expand_dataset(tiny_run, out, num_per_class=2, seed=0, truncation=0.5, progress=False)
    assert json.loads((out / "expand.json").read_text())["seed"] == 0
    entry = _manifest(out / "manifest.jsonl")[3]
    gan = GANAug.from_pretrained(tiny_run, device="cpu")
    regenerated = gan.sample_seeded([entry["label"]], [entry["seed"]], truncation=entry["truncation"])[0, 0]
    assert np.array_equal(np.asarray(PIL.Image.open(out / entry["file"])), regenerated.numpy())
    for overrides, message in (({"seed": 1}, "seed: 0 there, 1 now"),
                               ({"num_per_class": 1}, "num_per_class: 2 there, 1 now"),
                               ({"truncation": 1.0}, "truncation: 0.5 there, 1.0 now")):
        settings = {"num_per_class": 2, "seed": 0, "truncation": 0.5, **overrides}
        with pytest.raises(ValueError, match=message):
            expand_dataset(tiny_run, out, progress=False, **settings)
    again = expand_dataset(tiny_run, out, num_per_class=2, seed=0, truncation=0.5, progress=False)
    assert again.written == 0 and again.skipped == 20
    with pytest.raises(ValueError, match="batch_size should be a positive int"):
        expand_dataset(tiny_run, tmp_path / "other", num_per_class=2, batch_size=0, progress=False)
    assert not (tmp_path / "other").exists()  # checked before any work
