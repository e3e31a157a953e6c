"""The evaluation classifier: an independent Fashion-MNIST CNN whose features score generated images.

It is not ganaug's extractor (different architecture, trained separately on all 60k training
images), so a generator cannot game it through the discriminator. Trained once, cached in
benchmarks/cache/ (safetensors).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

CACHE = Path(__file__).parent / "cache"


class EvalCNN(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                                 nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2))

        self.body = nn.Sequential(block(1, 32), block(32, 64), nn.Flatten(), nn.Linear(64 * 7 * 7, 128),
                                  nn.BatchNorm1d(128), nn.ReLU())
        self.head = nn.Linear(128, num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 1, 28, 28) -> float (N, 128)."""
        return self.body(images.float() / 255 - 0.5)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def load_or_train_eval_classifier(train_images, train_labels, test_images, test_labels, epochs: int = 3,
                                  seed: int = 0) -> tuple[EvalCNN, dict]:
    path = CACHE / f"eval_cnn_e{epochs}_s{seed}.safetensors"
    model = EvalCNN()
    if path.is_file():
        model.load_state_dict(load_file(path))
        model.eval()
        return model, {"cached": str(path), "test_accuracy": accuracy(model, test_images, test_labels)}
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = epochs * (len(train_images) // 128)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps)
    start = time.monotonic()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(train_images))
        for i in range(0, len(order) - 127, 128):
            index = order[i:i + 128]
            images = train_images[index]
            shift = torch.randint(-2, 3, (2,))
            images = torch.roll(images, shifts=(int(shift[0]), int(shift[1])), dims=(2, 3))
            loss = F.cross_entropy(model(images), train_labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
    model.eval()
    CACHE.mkdir(parents=True, exist_ok=True)
    save_file(model.state_dict(), str(path))
    return model, {"trained_seconds": time.monotonic() - start,
                   "test_accuracy": accuracy(model, test_images, test_labels)}


@torch.no_grad()
def features(model: EvalCNN, images: torch.Tensor) -> torch.Tensor:
    return torch.cat([model.features(images[i:i + 1000]) for i in range(0, len(images), 1000)])


@torch.no_grad()
def predict(model: EvalCNN, images: torch.Tensor) -> torch.Tensor:
    return torch.cat([model(images[i:i + 1000]).argmax(1) for i in range(0, len(images), 1000)])


def accuracy(model: EvalCNN, images: torch.Tensor, labels: torch.Tensor) -> float:
    return float((predict(model, images) == labels).float().mean())
