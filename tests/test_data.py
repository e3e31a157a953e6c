from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
import torch
from conftest import debian_present, write_fashion_mnist_idx
from PIL import Image
from torch.utils.data import DataLoader

from ganaug.data import FASHION_MNIST_CLASSES, ImageDataset, load_dataset, load_fashion_mnist, read_fashion_mnist_idx
from ganaug.data import fashion_mnist as data_module


def _check_items(dataset: ImageDataset, channels: int, size: tuple[int, int]) -> None:
    image, label = dataset[0]
    assert image.dtype == torch.uint8
    assert image.shape == (channels, *size)
    assert isinstance(label, int)
    assert 0 <= label < dataset.num_classes


# --- Fashion-MNIST sources -------------------------------------------------------------------


def test_embedded_subset_is_balanced_real_fashion_mnist(embedded_train, embedded_test):
    assert len(embedded_train) == 2000 and len(embedded_test) == 1000
    assert embedded_train.class_counts() == [200] * 10
    assert embedded_test.class_counts() == [100] * 10
    assert embedded_train.classes == FASHION_MNIST_CLASSES
    assert embedded_train.source.kind == "embedded"
    _check_items(embedded_train, 1, (28, 28))
    # Real garments on a black background, not noise: the border is dark, the centre bright.
    images = embedded_train.images.float()
    assert images[:, :, :, 0].mean() < 20 and images[:, :, 10:18, 10:18].mean() > 80


@debian_present
def test_debian_package_source():
    dataset = load_fashion_mnist("test", source="debian")
    assert len(dataset) == 10_000
    assert dataset.source.kind == "debian"
    assert dataset.class_counts() == [1000] * 10
    _check_items(dataset, 1, (28, 28))


@debian_present
def test_embedded_subset_is_drawn_from_the_real_data(embedded_test):
    full = load_fashion_mnist("test", source="debian")
    full_rows = {bytes(row) for row in full.images.flatten(1).numpy()}
    assert all(bytes(row) in full_rows for row in embedded_test.images[:50].flatten(1).numpy())


@pytest.mark.parametrize("layout", ["flat", "torchvision"])
def test_explicit_root_comes_first(tmp_path, layout):
    folder = tmp_path if layout == "flat" else tmp_path / "FashionMNIST" / "raw"
    arrays = write_fashion_mnist_idx(folder)
    dataset = load_fashion_mnist("train", root=tmp_path, image_size=32, channels=3)
    assert dataset.source.kind == "root"
    assert len(dataset) == 30
    _check_items(dataset, 3, (32, 32))
    native = load_fashion_mnist("test", root=tmp_path)
    np.testing.assert_array_equal(native.images[:, 0].numpy(), arrays["test"][0])
    np.testing.assert_array_equal(native.labels.numpy(), arrays["test"][1])


def test_auto_falls_back_to_embedded_and_logs_it(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(data_module, "_debian_data_dir", lambda: None)
    monkeypatch.setattr(data_module, "host_reachable", lambda url, timeout=3.0: False)
    with caplog.at_level(logging.INFO, logger="ganaug.data"):
        dataset = load_fashion_mnist("train", cache_dir=tmp_path / "cache")
    assert dataset.source.kind == "embedded"
    assert "embedded" in caplog.text and "apt-get install dataset-fashion-mnist" in caplog.text


def test_auto_uses_download_cache_before_embedded(tmp_path, monkeypatch):
    monkeypatch.setattr(data_module, "_debian_data_dir", lambda: None)
    monkeypatch.setattr(data_module, "host_reachable", lambda url, timeout=3.0: False)
    write_fashion_mnist_idx(tmp_path / "FashionMNIST" / "raw")
    dataset = load_fashion_mnist("train", cache_dir=tmp_path)
    assert dataset.source.kind == "download" and len(dataset) == 30


def test_download_goes_through_torchvision_when_a_mirror_answers(tmp_path, monkeypatch):
    import torchvision.datasets

    calls = []

    class FakeFashionMNIST:
        mirrors = ["https://mirror.invalid/"]

        def __init__(self, root, train, download):
            calls.append((root, train, download))
            write_fashion_mnist_idx(torch_root / "FashionMNIST" / "raw")

    torch_root = tmp_path / "cache"
    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", FakeFashionMNIST)
    monkeypatch.setattr(data_module, "host_reachable", lambda url, timeout=3.0: True)
    dataset = load_fashion_mnist("train", source="download", cache_dir=torch_root)
    assert dataset.source.kind == "download"
    assert calls == [(str(torch_root), True, True), (str(torch_root), False, True)]


def test_download_fails_fast_offline(tmp_path):
    # A real attempt: this machine (and CI) has no route to torchvision's mirrors.
    from torchvision.datasets import FashionMNIST

    if any(data_module.host_reachable(m, timeout=2.0) for m in FashionMNIST.mirrors):
        pytest.skip("a Fashion-MNIST mirror is reachable from here")
    with pytest.raises(ConnectionError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist("train", source="download", cache_dir=tmp_path)


def test_named_source_that_is_missing_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(data_module, "_debian_data_dir", lambda: None)
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        load_fashion_mnist("train", source="debian")
    with pytest.raises(ValueError, match="source should be one of"):
        load_fashion_mnist("train", source="internet")
    with pytest.raises(ValueError, match="split should be"):
        load_fashion_mnist("validation")
    with pytest.raises(FileNotFoundError, match="no Fashion-MNIST train IDX files"):
        read_fashion_mnist_idx(tmp_path, "train")


def test_truncated_idx_file_is_reported(tmp_path):
    write_fashion_mnist_idx(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    import gzip

    content = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(content[:-100]))
    with pytest.raises(ValueError, match="truncated"):
        read_fashion_mnist_idx(tmp_path, "train")
    stream = gzip.compress(content)
    path.write_bytes(stream[:len(stream) // 2])  # what an interrupted download leaves: a cut gzip stream
    with pytest.raises(ValueError, match=r"truncated or damaged .*delete it"):
        read_fashion_mnist_idx(tmp_path, "train")


# --- ImageFolder -------------------------------------------------------------------------------


def _make_folder(root, rng):
    root.mkdir()
    for name in ("cat", "dog", "eel"):
        (root / name).mkdir()
        for i in range(4):
            size = (int(rng.integers(20, 60)), int(rng.integers(20, 60)))
            array = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
            mode = ["RGB", "L", "RGBA", "P"][i]
            Image.fromarray(array).convert(mode).save(root / name / f"{i}.png")
        Image.fromarray(rng.integers(0, 256, size=(40, 30, 3), dtype=np.uint8)).save(root / name / "photo.jpg")
    return root


def test_image_folder_skips_corrupt_and_non_image_files(tmp_path):
    rng = np.random.default_rng(0)
    root = _make_folder(tmp_path / "pets", rng)
    (root / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(rng.integers(0, 256, 200, np.uint8)))
    jpeg = (root / "dog" / "photo.jpg").read_bytes()
    (root / "dog" / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (root / "eel" / "notes.txt").write_text("not an image")
    with pytest.warns(UserWarning, match=r"skipped 3 of 18 files"):
        dataset = ImageDataset.from_folder(root, image_size=32, channels=3)
    assert dataset.classes == ("cat", "dog", "eel")
    assert dataset.class_counts() == [5, 5, 5]
    assert dataset.source.kind == "folder"
    _check_items(dataset, 3, (32, 32))


def test_image_folder_grayscale_and_rectangular_size(tmp_path):
    root = _make_folder(tmp_path / "pets", np.random.default_rng(1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dataset = ImageDataset.from_folder(root, image_size=(24, 40), channels=1)
    _check_items(dataset, 1, (24, 40))
    assert dataset.image_size == (24, 40)


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageDataset.from_folder(tmp_path / "missing", image_size=32)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="is empty"):
        ImageDataset.from_folder(tmp_path / "empty", image_size=32)
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("RGB", (8, 8)).save(flat / "a.png")
    with pytest.raises(ValueError, match="no class subfolders"):
        ImageDataset.from_folder(flat, image_size=32)
    bad_class = tmp_path / "bad"
    (bad_class / "ok").mkdir(parents=True)
    (bad_class / "junk").mkdir()
    Image.new("RGB", (8, 8)).save(bad_class / "ok" / "a.png")
    (bad_class / "junk" / "a.png").write_bytes(b"nope")
    with pytest.warns(UserWarning, match="skipped 1"), pytest.raises(ValueError, match=r"\['junk'\].*no readable"):
        ImageDataset.from_folder(bad_class, image_size=32)
    with pytest.raises(ValueError, match="channels should be 1 or 3"):
        ImageDataset.from_folder(flat, image_size=32, channels=4)
    with pytest.raises(ValueError, match="image_size should be"):
        ImageDataset.from_folder(flat, image_size=0)


def test_load_dataset_picks_split_folders(tmp_path, caplog):
    rng = np.random.default_rng(2)
    _make_folder(tmp_path / "train", rng)
    _make_folder(tmp_path / "test", rng)
    train = load_dataset(tmp_path, split="train", image_size=16)
    assert len(train) == 15 and train.channels == 3 and train.image_size == (16, 16)
    assert str(tmp_path / "train") in train.source.location
    embedded = load_dataset("fashion-mnist:embedded", split="test")
    assert len(embedded) == 1000 and embedded.channels == 1
    other = tmp_path / "tv"  # train/ and val/: a split layout, not two classes
    _make_folder(other, rng)
    (other / "cat").rename(other / "train")
    (other / "dog").rename(other / "val")
    for name in ("train", "val"):
        (other / name / "x").mkdir()
        for image in list((other / name).glob("*.*")):
            image.rename(other / name / "x" / image.name)
    assert load_dataset(other, split="train", image_size=16).classes == ("x",)
    with pytest.raises(ValueError, match=r"split 'test' is not among the split folders .*\['train', 'val'\]"):
        load_dataset(other, split="test", image_size=16)
    with caplog.at_level(logging.WARNING, logger="ganaug.data"):
        plain = load_dataset(tmp_path / "train", split="test", image_size=16)
    assert len(plain) == 15 and "split 'test' reads all of its images" in caplog.text


def test_load_dataset_fashion_mnist_from_a_folder(tmp_path):
    write_fashion_mnist_idx(tmp_path)
    dataset = load_dataset(f"fashion-mnist:root={tmp_path}", split="train")
    assert dataset.source.kind == "root" and len(dataset) > 0


def test_image_folder_scales_16_bit_images_and_skips_hidden_folders(tmp_path):
    root = tmp_path / "data"
    for name in ("a", "b"):
        (root / name / ".ipynb_checkpoints").mkdir(parents=True)
        Image.new("L", (8, 8), 10).save(root / name / ".ipynb_checkpoints" / "copy.png")
    Image.fromarray(np.full((8, 8), 32896, np.uint16)).save(root / "a" / "wide.png")  # 16-bit, half range
    Image.new("L", (8, 8), 200).save(root / "b" / "plain.png")
    dataset = ImageDataset.from_folder(root, image_size=8, channels=1)
    assert dataset.class_counts() == [1, 1]  # the checkpoint copies are not images of the classes
    assert int(dataset.images[0].float().mean()) == 128 and int(dataset.images[1].float().mean()) == 200


# --- in-memory arrays --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda rng: rng.integers(0, 256, (6, 20, 20), dtype=np.uint8),  # N, H, W
        lambda rng: rng.integers(0, 256, (6, 20, 20, 3), dtype=np.uint8),  # N, H, W, C numpy
        lambda rng: torch.from_numpy(rng.integers(0, 256, (6, 1, 20, 20), dtype=np.uint8)),  # N, C, H, W
        lambda rng: rng.random((6, 20, 20, 1), dtype=np.float32),  # float in [0, 1]
    ],
)
@pytest.mark.parametrize("channels", [1, 3])
def test_from_arrays_layouts(make, channels):
    images = make(np.random.default_rng(0))
    dataset = ImageDataset.from_arrays(images, [0, 1, 2, 0, 1, 2], image_size=28, channels=channels)
    assert len(dataset) == 6 and dataset.classes == ("0", "1", "2")
    _check_items(dataset, channels, (28, 28))


def test_from_arrays_keeps_values_without_resizing():
    images = np.random.default_rng(0).integers(0, 256, (4, 10, 12, 3), dtype=np.uint8)
    dataset = ImageDataset.from_arrays(images, [0, 1, 0, 1], classes=["a", "b"])
    np.testing.assert_array_equal(dataset.images.permute(0, 2, 3, 1).numpy(), images)
    gray = ImageDataset.from_arrays(images, [0, 1, 0, 1], channels=1)
    expected = np.round(images @ np.array([0.299, 0.587, 0.114]))
    np.testing.assert_allclose(gray.images[:, 0].numpy(), expected, atol=1)


def test_from_arrays_errors():
    good = np.zeros((3, 8, 8), np.uint8)
    with pytest.raises(ValueError, match="one entry per image"):
        ImageDataset.from_arrays(good, [0, 1])
    with pytest.raises(ValueError, match=r"float images should hold finite values in \[0, 1\]"):
        ImageDataset.from_arrays(np.full((3, 8, 8), 2.0), [0, 1, 0])
    with pytest.raises(ValueError, match="1 or 3 channels"):
        ImageDataset.from_arrays(np.zeros((3, 8, 8, 4), np.uint8), [0, 1, 0])
    with pytest.raises(ValueError, match="labels should lie in"):
        ImageDataset.from_arrays(good, [0, 1, 5], classes=["a", "b"])
    with pytest.raises(TypeError, match="uint8 or float"):
        ImageDataset.from_arrays(np.zeros((3, 8, 8), np.int32), [0, 1, 0])


# --- the dataset type --------------------------------------------------------------------------


def test_split_is_stratified_and_disjoint(embedded_train):
    rest, held_out = embedded_train.split(0.1, seed=3)
    assert held_out.class_counts() == [20] * 10 and rest.class_counts() == [180] * 10
    rows = {bytes(r) for r in rest.images.flatten(1).numpy()}
    assert not any(bytes(r) in rows for r in held_out.images.flatten(1).numpy())
    again, _ = embedded_train.split(0.1, seed=3)
    assert torch.equal(again.images, rest.images)


def test_dataloader_with_workers(embedded_train):
    loader = DataLoader(embedded_train, batch_size=64, num_workers=2, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    images, labels = next(iter(loader))
    assert images.shape == (64, 1, 28, 28) and images.dtype == torch.uint8
    assert labels.dtype == torch.int64
