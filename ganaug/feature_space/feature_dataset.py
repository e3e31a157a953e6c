"""Feature vectors as data: :func:`extract_features` (computed once, cached) and :class:`FeatureDataset`.

For heads trained on a frozen backbone, the images are needed once: embed them, keep the
vectors, and train on those. ``FeatureDataset`` then balances rare classes with vectors from a
:class:`ganaug.FeatureGAN`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import DataLoader, Dataset

from ganaug._util.files import atomic_path
from ganaug._util.images import image_batch
from ganaug._util.validate import check_positive_int
from ganaug.feature_space.feature_gan import FeatureGAN, check_labelled_features

__all__ = ["FeatureDataset", "extract_features", "load_features", "save_features"]

FEATURES_FORMAT = "ganaug.features/1"


def _item_image(image: Any) -> torch.Tensor:
    """A dataset item's image (PIL, numpy (H, W[, C]) or tensor (C, H, W)) as a (C, H, W) tensor, uint8 or float."""
    if isinstance(image, torch.Tensor) and image.ndim == 2:
        image = image[None]
    return image_batch(image, "dataset images").images[0]


def _collate(items: list) -> tuple[torch.Tensor, torch.Tensor]:
    tensors = [_item_image(item[0]) for item in items]
    shapes = sorted({tuple(t.shape) for t in tensors})
    if len(shapes) > 1:
        raise ValueError(f"dataset images should all have one shape (C, H, W) and mode, got {shapes} in one batch; "
                         "convert them (e.g. to 'RGB' and one size) in the dataset's transform")
    images = torch.stack(tensors)
    labels = torch.tensor([int(item[1]) for item in items], dtype=torch.int64)
    return images, labels


def check_output_file(path: str | os.PathLike, name: str) -> Path:
    """A ``.safetensors`` path that can be written: checked before any work that would be lost."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"{name} should end in .safetensors, got {str(path)!r}")
    if path.is_dir():
        raise ValueError(f"{name} {str(path)!r} is a directory; give a .safetensors file path")
    existing = next(parent for parent in path.parents if parent.exists())  # missing folders are created
    if not existing.is_dir():
        raise NotADirectoryError(f"{name} {str(path)!r}: {str(existing)!r} is a file, so no folder can be made there")
    return path


def extractor_key(extractor: object) -> str:
    """What identifies an extractor's features: its model, weights origin, settings and a hash of its weights."""
    parts = [str(getattr(extractor, "model_name", type(extractor).__name__)),
             str(getattr(extractor, "weights_origin", ""))]
    parts += [f"{attr}={getattr(extractor, attr)}" for attr in ("out_indices", "input_size")
              if hasattr(extractor, attr)]
    if isinstance(extractor, torch.nn.Module):
        digest = hashlib.sha256()
        for name, tensor in sorted(extractor.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        parts.append(f"weights={digest.hexdigest()[:16]}")
    return "|".join(parts)


def save_features(path: str | os.PathLike, features: torch.Tensor, labels: torch.Tensor,
                  metadata: Mapping[str, str] | None = None) -> Path:
    """Write features and labels to a ``.safetensors`` file, atomically."""
    path = check_output_file(path, "path")
    features, labels = check_labelled_features(features, labels)
    with atomic_path(path) as tmp:
        save_file({"features": features.contiguous(), "labels": labels.contiguous()}, str(tmp),
                  metadata={**(metadata or {}), "format": FEATURES_FORMAT})
    return path


def load_features(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor, dict[str, str]]:
    """Read a file written by :func:`save_features` or :func:`extract_features`: features, labels, metadata."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"features file {str(path)!r} does not exist")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
            if metadata.get("format") != FEATURES_FORMAT:
                raise ValueError(f"{str(path)!r} is not a ganaug features file (format {metadata.get('format')!r})")
            return handle.get_tensor("features"), handle.get_tensor("labels"), metadata
    except ValueError:
        raise
    except Exception as error:  # safetensors raises its own types for damaged files
        raise ValueError(f"features file {str(path)!r} is truncated or damaged: {error}") from error


@torch.no_grad()
def extract_features(dataset: Dataset, extractor: torch.nn.Module, batch_size: int = 256,
                     cache: str | os.PathLike | None = None, num_workers: int = 0, progress: bool = True,
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Embed every image of a labelled dataset once: float (N, D) features and int64 (N,) labels.

    Images are streamed in batches through ``extractor.embed`` (e.g. a
    :class:`ganaug.FeatureExtractor`), so memory holds one batch of images at a time.

    Args:
        dataset: map-style, items ``(image, label)``; images as PIL, numpy (H, W[, C]) or tensors
            (C, H, W), uint8 or float in [0, 1] (a :class:`ganaug.ImageDataset` works as is).
        extractor: has ``embed(images) -> (N, D)``; it runs on its own device, in eval mode
            while embedding (a module's train mode is restored afterwards).
        batch_size: images per pass.
        cache: a ``.safetensors`` path: read from it when it holds this dataset's features
            (same length; same extractor: model, weights origin, ``out_indices``, ``input_size``
            and a hash of its weights; and the same labels when the dataset exposes ``labels``
            or ``targets``), else computed and written there atomically. A file there that is
            not a features file raises ValueError rather than being overwritten.
        num_workers: DataLoader workers that decode the images.
        progress: show a progress bar.
    """
    from tqdm.auto import tqdm

    if not hasattr(extractor, "embed"):
        raise TypeError(f"extractor should have an embed(images) method, got {type(extractor).__name__}")
    check_positive_int("batch_size", batch_size)
    if cache is not None:
        cache = check_output_file(cache, "cache")
    name = extractor_key(extractor)
    if cache is not None and cache.is_file():
        features, labels, metadata = load_features(cache)
        known = getattr(dataset, "labels", getattr(dataset, "targets", None))
        same_labels = known is None or torch.equal(torch.as_tensor(known, dtype=torch.int64).flatten(), labels)
        if metadata.get("extractor") == name and len(features) == len(dataset) and same_labels:
            return features, labels
    device = next((p.device for p in extractor.parameters()), torch.device("cpu")) if isinstance(
        extractor, torch.nn.Module) else torch.device("cpu")
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=_collate)
    features, labels = [], []
    was_training = isinstance(extractor, torch.nn.Module) and extractor.training
    if was_training:
        extractor.eval()  # frozen: no batch statistics, no running-stat updates
    try:
        for images, batch_labels in tqdm(loader, desc="extract features", unit="batch", disable=not progress):
            features.append(extractor.embed(images.to(device)).float().cpu())
            labels.append(batch_labels)
    finally:
        if was_training:
            extractor.train()
    if not features:
        raise ValueError("dataset should not be empty")
    features, labels = torch.cat(features), torch.cat(labels)
    if cache is not None:
        save_features(cache, features, labels, {"extractor": name, "num": str(len(features))})
    return features, labels


class FeatureDataset(Dataset):
    """Real feature vectors, plus synthetic ones from a FeatureGAN that balance the classes.

    Items are ``(feature, label)`` (or ``(feature, label, is_synthetic)``): the real ones first,
    then the synthetic ones ordered by class. The synthetic vectors are generated once, when the
    dataset is made, from ``seed``.

    Args:
        real_features: float (N, D).
        labels: int (N,).
        feature_gan: the generator of synthetic vectors; needed whenever ``balance`` asks for some.
        balance: "equalize" (every class that has real vectors up to the largest), a dict
            ``{class: target count}`` (classes not named get none), or None (real vectors only).
        seed: seeds the synthetic vectors.
        return_is_synthetic: items become ``(feature, label, is_synthetic)``.
    """

    def __init__(self, real_features: torch.Tensor, labels: torch.Tensor | Sequence[int],
                 feature_gan: FeatureGAN | None = None, balance: str | Mapping[int, int] | None = "equalize",
                 seed: int = 0, return_is_synthetic: bool = False):
        num_classes = feature_gan.num_classes if feature_gan is not None else None
        real_features, labels = check_labelled_features(real_features, labels, num_classes,
                                               names=("real_features", "labels"))
        if feature_gan is not None and real_features.shape[1] != feature_gan.feature_dim:
            raise ValueError(f"real_features have {real_features.shape[1]} dimensions but feature_gan makes "
                             f"{feature_gan.feature_dim}")
        num_classes = num_classes or int(labels.max()) + 1
        real_counts = torch.bincount(labels, minlength=num_classes)
        targets = _target_counts(balance, real_counts)
        extra = (targets - real_counts).clamp_min(0)
        if int(extra.sum()) and feature_gan is None:
            raise ValueError(f"balance={balance!r} asks for {int(extra.sum())} synthetic vectors: give a feature_gan")
        synthetic_labels = torch.repeat_interleave(torch.arange(num_classes), extra)
        synthetic = (feature_gan.sample(len(synthetic_labels), synthetic_labels, seed=seed) if len(synthetic_labels)
                     else torch.empty(0, real_features.shape[1]))
        self.features = torch.cat([real_features, synthetic.float()])
        self.labels = torch.cat([labels, synthetic_labels])
        self.is_synthetic = torch.cat([torch.zeros(len(labels), dtype=torch.bool),
                                       torch.ones(len(synthetic_labels), dtype=torch.bool)])
        self.targets = self.labels
        self.num_classes = num_classes
        self.return_is_synthetic = return_is_synthetic

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int):
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is out of range for {len(self)} items")
        item = (self.features[index], int(self.labels[index]))
        return (*item, bool(self.is_synthetic[index])) if self.return_is_synthetic else item

    def class_counts(self) -> list[int]:
        """Items per class, real and synthetic together."""
        return torch.bincount(self.labels, minlength=self.num_classes).tolist()

    def __repr__(self) -> str:
        return (f"FeatureDataset({len(self)} vectors, {int(self.is_synthetic.sum())} synthetic, "
                f"counts={self.class_counts()})")


def _target_counts(balance: str | Mapping[int, int] | None, real_counts: torch.Tensor) -> torch.Tensor:
    if balance is None:
        return real_counts.clone()
    if balance == "equalize":  # classes with no real vectors stay empty, as in ExpandedDataset
        return torch.where(real_counts > 0, real_counts.max(), real_counts)
    if isinstance(balance, Mapping):
        targets = real_counts.clone()
        for label, count in balance.items():
            if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(real_counts):
                raise ValueError(f"balance keys should be class indices in [0, {len(real_counts)}), got {label!r}")
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ValueError(f"balance[{label}] should be a non-negative int count, got {count!r}")
            targets[label] = max(count, int(real_counts[label]))
        return targets
    raise ValueError(f"balance should be 'equalize', a dict {{class: count}} or None, got {balance!r}")
