"""What a pretrained extractor's features are worth, on the embedded Fashion-MNIST subset.

Trains a timm extractor on 1,800 labelled images (the offline path to pretrained weights), loads
it as a frozen FeatureExtractor, and classifies the 1,000 embedded test images by their nearest
training neighbours in three spaces: raw pixels, the same network with random weights, and the
pretrained network. Also writes a grid of nearest neighbours.

    python benchmarks/feature_knn.py            # about 40 s on 2 CPU cores

Prints a table and writes benchmarks/results/feature_knn.json and docs/images/neighbours.png.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ganaug._util.files import atomic_path, save_image_grid
from ganaug._util.rng import seeded
from ganaug.data import ImageDataset, load_fashion_mnist
from ganaug.nets.features import FeatureExtractor
from ganaug.train.pretrain import pretrain_extractor

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class KnnConfig:
    out_dir: Path = ROOT / "benchmarks" / "cache" / "feature_knn"
    model_name: str = "resnet18"
    input_size: int = 32
    epochs: int = 8
    neighbours: int = 5
    seed: int = 0


def run_benchmark(config: KnnConfig, progress: bool = True, echo=print) -> dict:
    """Run the demo, write ``out_dir/{extractor.safetensors, neighbours.png, demo.json}``, return the figures."""
    start = time.monotonic()
    out_dir = Path(config.out_dir)
    train = load_fashion_mnist("train", source="embedded")
    test = load_fashion_mnist("test", source="embedded")
    echo(f"data: {len(train)} train / {len(test)} test images, {train.num_classes} classes, embedded subset")

    echo(f"1/3 pretraining {config.model_name} at {config.input_size} px on the training images ...")
    result = pretrain_extractor(train, out_dir / "extractor.safetensors", progress=progress,
                                model_name=config.model_name, input_size=config.input_size, epochs=config.epochs,
                                seed=config.seed)
    echo(f"    held-out accuracy {result.val_accuracy:.3f} after {result.epochs} epochs ({result.seconds:.0f} s)")

    echo("2/3 loading it as a frozen FeatureExtractor ...")
    extractor = FeatureExtractor(config.model_name, pretrained=result.path)
    maps = extractor(test.images[:1])
    for channels, reduction, feature_map in zip(extractor.channels, extractor.reductions, maps, strict=True):
        echo(f"    stride {reduction:2d}: {channels:3d} channels, map {tuple(feature_map.shape[-2:])}")
    with warnings.catch_warnings(), seeded(config.seed):  # torch's own stream is seeded at random at start-up
        warnings.simplefilter("ignore")
        random_extractor = FeatureExtractor(config.model_name, pretrained=False, input_size=config.input_size)

    echo(f"3/3 {config.neighbours}-nearest-neighbour classification of the {len(test)} test images ...")
    spaces = {
        "raw pixels": (_flatten(train), _flatten(test)),
        f"{config.model_name} random init": (_embed(random_extractor, train), _embed(random_extractor, test)),
        f"{config.model_name} pretrained here": (_embed(extractor, train), _embed(extractor, test)),
    }
    accuracy = {name: _knn_accuracy(*vectors, train.labels, test.labels, config.neighbours)
                for name, vectors in spaces.items()}
    width = max(len(name) for name in accuracy)
    echo(f"    {'feature space':<{width}}  kNN accuracy")
    for name, value in accuracy.items():
        echo(f"    {name:<{width}}  {value:.3f}")

    train_vectors, test_vectors = spaces[f"{config.model_name} pretrained here"]
    grid_path = save_image_grid(_neighbour_grid(train, test, train_vectors, test_vectors, per_row=8),
                                ROOT / "docs" / "images" / "neighbours.png", nrow=8, scale=3)
    figures = {
        "extractor": str(result.path.relative_to(ROOT)),
        "extractor_val_accuracy": result.val_accuracy,
        "knn_accuracy": accuracy,
        "seconds": time.monotonic() - start,
    }
    with atomic_path(ROOT / "benchmarks" / "results" / "feature_knn.json") as tmp:
        tmp.write_text(json.dumps(figures, indent=2))
    echo(f"done in {figures['seconds']:.0f} s. Nearest neighbours (each row: a test image, then its 7 nearest "
         f"training images in feature space): {grid_path}")
    return figures



def _flatten(dataset: ImageDataset) -> torch.Tensor:
    return dataset.images.flatten(1).float()


@torch.no_grad()
def _embed(extractor: FeatureExtractor, dataset: ImageDataset, batch_size: int = 500) -> torch.Tensor:
    return torch.cat([extractor.embed(dataset.images[i:i + batch_size]) for i in range(0, len(dataset), batch_size)])


def _knn_accuracy(train_vectors: torch.Tensor, test_vectors: torch.Tensor, train_labels: torch.Tensor,
                  test_labels: torch.Tensor, k: int) -> float:
    similarity = F.normalize(test_vectors, dim=1) @ F.normalize(train_vectors, dim=1).T
    nearest = similarity.topk(k, dim=1).indices
    votes = F.one_hot(train_labels[nearest], num_classes=int(train_labels.max()) + 1).sum(dim=1)
    return float((votes.argmax(dim=1) == test_labels).float().mean())


def _neighbour_grid(train: ImageDataset, test: ImageDataset, train_vectors: torch.Tensor,
                    test_vectors: torch.Tensor, per_row: int) -> torch.Tensor:
    queries = [int(torch.nonzero(test.labels == label)[0]) for label in range(test.num_classes)]
    similarity = F.normalize(test_vectors[queries], dim=1) @ F.normalize(train_vectors, dim=1).T
    nearest = similarity.topk(per_row - 1, dim=1).indices
    rows = [torch.cat([test.images[q:q + 1], train.images[n]]) for q, n in zip(queries, nearest, strict=True)]
    return torch.cat(rows)


if __name__ == "__main__":
    run_benchmark(KnnConfig())
