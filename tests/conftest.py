from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from ganaug.data import DEBIAN_FASHION_MNIST_DIR, load_fashion_mnist


@pytest.fixture(scope="session")
def embedded_train():
    return load_fashion_mnist("train", source="embedded")


@pytest.fixture(scope="session")
def embedded_test():
    return load_fashion_mnist("test", source="embedded")


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as a gzipped IDX file, the format Fashion-MNIST ships in."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def write_fashion_mnist_idx(folder: Path, num_train: int = 30, num_test: int = 20, seed: int = 0) -> dict:
    """A tiny stand-in Fashion-MNIST in IDX files; returns the arrays written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, prefix, count in (("train", "train", num_train), ("test", "t10k", num_test)):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = (np.arange(count) % 10).astype(np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
        arrays[split] = (images, labels)
    return arrays


debian_present = pytest.mark.skipif(
    not (DEBIAN_FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian package dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)",
)


@pytest.fixture(scope="session")
def random_extractor():
    import warnings

    from ganaug import FeatureExtractor

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return FeatureExtractor("resnet18", pretrained=False, out_indices=(1, 2, 3), input_size=32)


@pytest.fixture(scope="session")
def extractor_file(tmp_path_factory, embedded_train):
    """The default GAN backbone, pretrained for one epoch on the embedded subset (a few seconds)."""
    from ganaug import TrainConfig, pretrain_extractor

    backbone = TrainConfig.backbone
    path = tmp_path_factory.mktemp("extractor") / f"{backbone}.safetensors"
    pretrain_extractor(embedded_train, path, model_name=backbone, epochs=1, input_size=32, progress=False)
    return path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, embedded_train, extractor_file):
    """A tiny instance-conditional GAN trained for 4 steps on 200 embedded images: a real run directory."""
    import torch

    from ganaug import TrainConfig, train

    data = embedded_train.subset(torch.arange(0, 2000, 10))
    config = TrainConfig(steps=4, batch_size=8, g_channels=32, g_min_channels=16, mixing_channels=16, d_channels=16,
                         z_dim=16, embed_dim=16, instance_neighbours=3, bank_per_class=5, checkpoint_every=4,
                         sample_every=4, log_every=4, seed=0, backbone_weights=str(extractor_file))
    run = tmp_path_factory.mktemp("tiny") / "run"
    train(data, config, run, progress=False)
    return run


# --- CUDA-marked tests: run by scripts/gpu_check.sh on a GPU machine, skipped with a reason elsewhere ---------------

CUDA_SKIP_REASON = "needs a CUDA GPU, and this machine has none (scripts/gpu_check.sh runs these on a GPU machine)"


def pytest_configure(config):
    config.addinivalue_line("markers", f"cuda: {CUDA_SKIP_REASON}")


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason=CUDA_SKIP_REASON)
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)
