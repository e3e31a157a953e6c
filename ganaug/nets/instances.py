"""IC-GAN instance conditions: features of real images, their same-class neighbourhoods, and the per-class bank.

At training time the condition of a fake is the pooled backbone feature of a real training image,
and the discriminator sees one of that image's nearest same-class neighbours as the matching
real. At sampling time a class sample draws its condition from a bank of real features of the
class, kept with the model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ganaug.nets.features import FeatureExtractor

__all__ = ["draw_instance_features", "embed_images", "same_class_neighbours", "select_bank"]

EMBED_BATCH = 512  # images per feature-network pass when embedding a whole dataset
NEIGHBOUR_CHUNK = 2048  # rows of a class's similarity matrix computed at once (bounds memory)


@torch.no_grad()
def embed_images(extractor: FeatureExtractor, images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Pooled features of uint8 (N, C, H, W) images, in passes of ``EMBED_BATCH``: float (N, D) on ``device``."""
    return torch.cat([extractor.embed(images[i:i + EMBED_BATCH].to(device)).float()
                      for i in range(0, len(images), EMBED_BATCH)])


def same_class_neighbours(features: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """For each item, the indices of its ``k`` most similar items of the same class (itself included).

    Args:
        features: float (N, D).
        labels: int64 (N,).
        k: neighbours per item; a class with fewer items repeats them.

    Returns:
        int64 (N, k), by cosine similarity.
    """
    normalized = F.normalize(features, dim=1)
    neighbours = torch.empty(len(features), k, dtype=torch.long)
    for label in labels.unique().tolist():
        members = torch.nonzero(labels == label).flatten()
        count = min(k, len(members))
        for start in range(0, len(members), NEIGHBOUR_CHUNK):
            chunk = members[start:start + NEIGHBOUR_CHUNK]
            similarity = normalized[chunk] @ normalized[members].T
            top = similarity.topk(count, dim=1).indices
            if count < k:
                top = top[:, torch.arange(k) % count]
            neighbours[chunk] = members[top]
    return neighbours


def select_bank(labels: torch.Tensor, num_classes: int, per_class: int, seed: int) -> torch.Tensor:
    """Which items go into the instance bank: up to ``per_class`` random items of each class, class by class.

    Returns:
        int64 (M,) item indices, class 0's first.
    """
    rng = torch.Generator().manual_seed(seed)
    keep = []
    for label in range(num_classes):
        members = torch.nonzero(labels == label).flatten()
        keep.append(members[torch.randperm(len(members), generator=rng)[:per_class]])
    return torch.cat(keep)


def draw_instance_features(features: torch.Tensor, feature_labels: torch.Tensor, labels: torch.Tensor,
                           rng: torch.Generator) -> torch.Tensor:
    """For each label, one random row of ``features`` whose label matches: the instance condition of a class sample.

    Args:
        features: float (M, D) instance features, e.g. a model's instance bank.
        feature_labels: int64 (M,) their classes.
        labels: int64 (N,) the classes to draw for.
        rng: the source of randomness.

    Returns:
        float (N, D) on the CPU.
    """
    out = torch.empty(len(labels), features.shape[1])
    for label in labels.unique().tolist():
        rows = torch.nonzero(feature_labels == label).flatten()
        where = torch.nonzero(labels == label).flatten()
        picks = rows[torch.randint(len(rows), (len(where),), generator=rng)]
        out[where] = features[picks.to(features.device)].float().cpu()
    return out
