"""Sample-quality metrics in a feature space: Fréchet distance, KID, precision/recall, density/coverage.

Every function here takes feature vectors, float (N, D), so any network can supply them: a
:class:`ganaug.FeatureExtractor` (``extractor.embed``), an independent classifier's penultimate
layer, or Inception when its weights are on disk (:func:`ganaug.evaluation.inception_extractor`).
They run in chunks, so memory stays bounded by the feature sets themselves, never by N x N.

- Fréchet distance (FID's formula): distance between Gaussians fitted to the two sets.
- KID (Bińkowski et al., 2018): unbiased MMD² with the cubic polynomial kernel, averaged over
  random subsets; unbiased, so it is ≈ 0 (and may be slightly negative) for one distribution.
- Precision / recall (Kynkäänniemi et al., 2019) and density / coverage (Naeem et al., 2020):
  k-nearest-neighbour balls around real (and fake) features.
- :func:`linear_probe_accuracy`: train a softmax classifier on one labelled feature set and test it
  on another; with synthetic training features and real test features this is a feature-space
  Classification Accuracy Score (Ravuri & Vinyals, 2019).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from ganaug._util.rng import seeded
from ganaug._util.validate import check_features

__all__ = [
    "PRDC",
    "RunningGaussian",
    "frechet_distance",
    "frechet_distance_from_stats",
    "gaussian_stats",
    "kernel_inception_distance",
    "linear_probe_accuracy",
    "precision_recall_density_coverage",
]

_CHUNK = 1024  # rows of a distance matrix computed at once


def _check_widths(features_a: torch.Tensor, features_b: torch.Tensor) -> None:
    if features_a.shape[1] != features_b.shape[1]:
        raise ValueError(f"feature widths differ: {features_a.shape[1]} and {features_b.shape[1]}")


def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and covariance (D, D) of float (N, D) features, in float64."""
    features = check_features("features", features).double()
    mean = features.mean(dim=0)
    centered = features - mean
    return mean, centered.T @ centered / (features.shape[0] - 1)


class RunningGaussian:
    """Mean and covariance of feature batches seen one at a time (float64 sums; memory O(D²)).

    Example:
        >>> stats = RunningGaussian()
        >>> for batch in loader: stats.update(extractor.embed(batch))
        >>> mean, cov = stats.compute()
    """

    def __init__(self) -> None:
        self.count = 0
        self._sum: torch.Tensor | None = None
        self._outer: torch.Tensor | None = None
        self._shift: torch.Tensor | None = None  # the first batch's mean, subtracted for numerical stability

    def update(self, features: torch.Tensor) -> None:
        features = check_features("features", features, min_rows=1).detach().double().cpu()
        if self._shift is None:
            self._shift = features.mean(dim=0)
            self._sum = torch.zeros_like(self._shift)
            self._outer = torch.zeros(len(self._shift), len(self._shift), dtype=torch.float64)
        elif features.shape[1] != len(self._shift):
            raise ValueError(f"features should have width {len(self._shift)}, got {features.shape[1]}")
        centered = features - self._shift
        self._sum += centered.sum(dim=0)
        self._outer += centered.T @ centered
        self.count += len(features)

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean (D,) and unbiased covariance (D, D), float64."""
        if self.count < 2:
            raise ValueError(f"RunningGaussian needs at least 2 feature vectors, got {self.count}")
        mean_shifted = self._sum / self.count
        cov = (self._outer - self.count * torch.outer(mean_shifted, mean_shifted)) / (self.count - 1)
        return mean_shifted + self._shift, cov


def frechet_distance_from_stats(mean_a: torch.Tensor, cov_a: torch.Tensor, mean_b: torch.Tensor,
                                cov_b: torch.Tensor) -> float:
    """``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` for fitted Gaussians.

    The trace of the matrix square root is computed from the eigenvalues of
    ``S_a^(1/2) S_b S_a^(1/2)``, which is symmetric positive semi-definite.
    """
    for name, mean, cov in (("a", mean_a, cov_a), ("b", mean_b, cov_b)):
        if mean.ndim != 1 or cov.shape != (len(mean), len(mean)):
            raise ValueError(f"mean_{name} should be (D,) and cov_{name} (D, D), got {tuple(mean.shape)} and "
                             f"{tuple(cov.shape)}")
    if mean_a.shape != mean_b.shape:
        raise ValueError(f"statistics differ in width: {tuple(mean_a.shape)} and {tuple(mean_b.shape)}")
    mean_a, cov_a, mean_b, cov_b = (t.double() for t in (mean_a, cov_a, mean_b, cov_b))
    eigenvalues, eigenvectors = torch.linalg.eigh(cov_a)
    sqrt_a = eigenvectors @ torch.diag(eigenvalues.clamp(min=0).sqrt()) @ eigenvectors.T
    middle = sqrt_a @ cov_b @ sqrt_a
    trace_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    distance = (mean_a - mean_b).square().sum() + torch.trace(cov_a) + torch.trace(cov_b) - 2 * trace_sqrt
    return float(distance.clamp(min=0))


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (FID when the features are Inception's)."""
    _check_widths(check_features("features_a", features_a), check_features("features_b", features_b))
    return frechet_distance_from_stats(*gaussian_stats(features_a), *gaussian_stats(features_b))


def kernel_inception_distance(features_a: torch.Tensor, features_b: torch.Tensor, subsets: int = 100,
                              subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """KID: the unbiased MMD² between two feature sets under ``k(x, y) = (x·y / D + 1)^3``.

    Computed on ``subsets`` random subsets of ``subset_size`` from each set (fewer when a set is
    smaller), as in Bińkowski et al. and torch-fidelity.

    Returns:
        (mean, standard deviation) over the subsets. Multiply by 1000 for the usual "KID x 10³".
    """
    _check_widths(check_features("features_a", features_a), check_features("features_b", features_b))
    if not isinstance(subsets, int) or subsets < 1:
        raise ValueError(f"subsets should be an int >= 1, got {subsets!r}")
    if not isinstance(subset_size, int) or subset_size < 2:
        raise ValueError(f"subset_size should be an int >= 2, got {subset_size!r}")
    size = min(subset_size, len(features_a), len(features_b))
    width = features_a.shape[1]
    generator = torch.Generator().manual_seed(seed)
    a, b = features_a.double(), features_b.double()
    values = []
    off_diagonal = size * (size - 1)
    for _ in range(subsets):
        x = a[torch.randperm(len(a), generator=generator)[:size]]
        y = b[torch.randperm(len(b), generator=generator)[:size]]
        k_xx = (x @ x.T / width + 1) ** 3
        k_yy = (y @ y.T / width + 1) ** 3
        k_xy = (x @ y.T / width + 1) ** 3
        mmd = ((k_xx.sum() - k_xx.diagonal().sum()) / off_diagonal + (k_yy.sum() - k_yy.diagonal().sum())
               / off_diagonal - 2 * k_xy.mean())
        values.append(float(mmd))
    values_t = torch.tensor(values, dtype=torch.float64)
    return float(values_t.mean()), float(values_t.std()) if len(values) > 1 else 0.0


@dataclass(frozen=True)
class PRDC:
    """Precision, recall, density and coverage of fake features against real ones (each in [0, 1], density >= 0)."""

    precision: float
    recall: float
    density: float
    coverage: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _kth_neighbour_radii(features: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each row to its k-th nearest other row."""
    radii = []
    for start in range(0, len(features), _CHUNK):
        distances = torch.cdist(features[start:start + _CHUNK], features)
        radii.append(distances.kthvalue(k + 1, dim=1).values)  # +1: the row itself is at distance 0
    return torch.cat(radii)


def precision_recall_density_coverage(real_features: torch.Tensor, fake_features: torch.Tensor,
                                      k: int = 5) -> PRDC:
    """PRDC of Naeem et al. (2020), with precision/recall as in Kynkäänniemi et al. (2019).

    Around every real feature lies a ball reaching to its k-th nearest real neighbour (and the
    same for fakes). Precision: the share of fakes inside some real ball. Recall: the share of
    reals inside some fake ball. Density: how many real balls hold each fake, over k, averaged
    (1 on average when fakes are distributed as the reals). Coverage: the share of real balls
    that hold at least one fake.

    Ties follow the reference code: precision and recall count a point on a ball's edge as
    inside (Kynkäänniemi et al.: ``<=``), density and coverage do not (Naeem et al.: ``<``).
    """
    real = check_features("real_features", real_features).float()
    fake = check_features("fake_features", fake_features).float()
    _check_widths(real, fake)
    center = real.mean(dim=0)  # distances do not change; float32 cdist loses precision far from 0
    real, fake = real - center, fake - center
    if not isinstance(k, int) or not 1 <= k < min(len(real), len(fake)):
        raise ValueError(f"k should be an int in [1, {min(len(real), len(fake)) - 1}], got {k!r}")
    real_radii = _kth_neighbour_radii(real, k)
    fake_radii = _kth_neighbour_radii(fake, k)
    in_real_balls = torch.zeros(len(fake))  # per fake: how many real balls hold it, edge included (precision)
    strictly_in = torch.zeros(len(fake))  # the same, edge excluded (density)
    real_covered = torch.zeros(len(real), dtype=torch.bool)  # per real: its ball holds some fake
    real_recalled = torch.zeros(len(real), dtype=torch.bool)  # per real: inside some fake ball
    for start in range(0, len(real), _CHUNK):
        distances = torch.cdist(real[start:start + _CHUNK], fake)  # (chunk, fakes)
        inside = distances <= real_radii[start:start + _CHUNK, None]
        in_real_balls += inside.sum(dim=0)
        strictly_in += (distances < real_radii[start:start + _CHUNK, None]).sum(dim=0)
        real_covered[start:start + _CHUNK] = distances.min(dim=1).values < real_radii[start:start + _CHUNK]
        real_recalled[start:start + _CHUNK] = (distances <= fake_radii[None, :]).any(dim=1)
    return PRDC(precision=float((in_real_balls > 0).float().mean()), recall=float(real_recalled.float().mean()),
                density=float(strictly_in.mean() / k), coverage=float(real_covered.float().mean()))


def linear_probe_accuracy(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
                          test_labels: torch.Tensor, num_classes: int | None = None, epochs: int = 100,
                          weight_decay: float = 1e-4, seed: int = 0) -> float:
    """Accuracy on the test set of a softmax classifier trained on the train features.

    The features are standardized with the training set's statistics; the classifier is trained
    full-batch with L-BFGS (``epochs`` iterations), deterministic for a seed. Train on synthetic
    features and test on real ones for a feature-space Classification Accuracy Score.
    """
    train_features = check_features("train_features", train_features, min_rows=1).float()
    test_features = check_features("test_features", test_features, min_rows=1).float()
    _check_widths(train_features, test_features)
    for name, features, labels in (("train_labels", train_features, train_labels),
                                   ("test_labels", test_features, test_labels)):
        if not isinstance(labels, torch.Tensor) or labels.shape != (len(features),):
            raise ValueError(f"{name} should be a tensor of shape ({len(features)},), got "
                             f"{getattr(labels, 'shape', type(labels).__name__)}")
    num_classes = num_classes or int(max(train_labels.max(), test_labels.max())) + 1
    for name, labels in (("train_labels", train_labels), ("test_labels", test_labels)):
        if labels.is_floating_point() or int(labels.min()) < 0 or int(labels.max()) >= num_classes:
            raise ValueError(f"{name} should be integers in [0, {num_classes}), got {labels.dtype} values in "
                             f"[{labels.min().item()}, {labels.max().item()}]")
    mean = train_features.mean(dim=0)
    std = train_features.std(dim=0).clamp_min(1e-6) if len(train_features) > 1 else torch.ones_like(mean)
    x_train, x_test = (train_features - mean) / std, (test_features - mean) / std
    with seeded(seed):  # the initial weights follow the seed, not the caller's RNG
        head = torch.nn.Linear(x_train.shape[1], num_classes)
    optimizer = torch.optim.LBFGS(head.parameters(), lr=1, max_iter=epochs, history_size=20,
                                  line_search_fn="strong_wolfe")
    targets = train_labels.long()

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(head(x_train), targets) + weight_decay * head.weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():
        return float((head(x_test).argmax(dim=1) == test_labels.long()).float().mean())
