"""Distances between image sets in a feature space."""

from __future__ import annotations

import torch

__all__ = ["frechet_distance", "gaussian_stats"]


def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and covariance (D, D) of float (N, D) features, in float64."""
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"features should be (N, D) with N >= 2, got {tuple(features.shape)}")
    features = features.double()
    mean = features.mean(dim=0)
    centered = features - mean
    return mean, centered.T @ centered / (features.shape[0] - 1)


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (FID when the features are Inception's).

    ``d = |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))``; the trace of the matrix square
    root is computed from the eigenvalues of ``S_a^(1/2) S_b S_a^(1/2)``, which is symmetric.
    """
    if features_a.shape[1] != features_b.shape[1]:
        raise ValueError(f"feature widths differ: {features_a.shape[1]} and {features_b.shape[1]}")
    mean_a, cov_a = gaussian_stats(features_a)
    mean_b, cov_b = gaussian_stats(features_b)
    eigenvalues, eigenvectors = torch.linalg.eigh(cov_a)
    sqrt_a = eigenvectors @ torch.diag(eigenvalues.clamp(min=0).sqrt()) @ eigenvectors.T
    middle = sqrt_a @ cov_b @ sqrt_a
    trace_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    distance = (mean_a - mean_b).square().sum() + torch.trace(cov_a) + torch.trace(cov_b) - 2 * trace_sqrt
    return float(distance.clamp(min=0))
