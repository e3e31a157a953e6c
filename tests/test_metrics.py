"""ganaug.metrics on toy Gaussians, where the right answers are known."""

import numpy as np
import pytest
import torch
from scipy import linalg

from ganaug.eval.metrics import (
    RunningGaussian,
    frechet_distance,
    gaussian_stats,
    kernel_inception_distance,
    linear_probe_accuracy,
    precision_recall_density_coverage,
)


def gaussian(n: int, dim: int = 8, shift: float = 0.0, scale: float = 1.0, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)) * scale + shift


def test_frechet_distance_of_identical_sets_is_zero_and_grows_with_a_shift():
    a = gaussian(2000)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    distances = [frechet_distance(a, gaussian(2000, shift=s, seed=1)) for s in (0.0, 0.5, 1.0, 2.0)]
    assert distances == sorted(distances)
    # Equal covariances: the distance is |mu_a - mu_b|^2 = dim * shift^2 (plus sampling noise).
    assert distances[2] == pytest.approx(8 * 1.0**2, rel=0.1)
    assert distances[0] < 0.1


def test_frechet_distance_matches_scipy_sqrtm():
    a, b = gaussian(500, dim=6, seed=2), gaussian(500, dim=6, scale=1.5, shift=0.3, seed=3)
    mu_a, cov_a = (t.numpy() for t in gaussian_stats(a))
    mu_b, cov_b = (t.numpy() for t in gaussian_stats(b))
    expected = np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * linalg.sqrtm(cov_a @ cov_b).real)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


def test_running_gaussian_matches_batch_statistics():
    a = gaussian(1000, shift=100.0)  # a large offset: the running sums must stay accurate
    stats = RunningGaussian()
    for chunk in a.split(97):
        stats.update(chunk)
    mean, cov = stats.compute()
    expected_mean, expected_cov = gaussian_stats(a)
    assert torch.allclose(mean, expected_mean, atol=1e-9)
    assert torch.allclose(cov, expected_cov, atol=1e-9)
    with pytest.raises(ValueError, match="width 8"):
        stats.update(gaussian(4, dim=3))


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
    a, b = gaussian(1500, seed=0), gaussian(1500, seed=1)
    same, same_std = kernel_inception_distance(a, b, subsets=20, subset_size=500)
    shifted, _ = kernel_inception_distance(a, gaussian(1500, shift=1.0, seed=1), subsets=20, subset_size=500)
    assert abs(same) < 3 * same_std + 1e-3
    assert shifted > 20 * max(abs(same), same_std)


def test_kid_is_deterministic_for_a_seed():
    a, b = gaussian(300, seed=0), gaussian(300, shift=0.2, seed=1)
    assert kernel_inception_distance(a, b, 5, 100, seed=3) == kernel_inception_distance(a, b, 5, 100, seed=3)


def test_prdc_of_one_distribution():
    prdc = precision_recall_density_coverage(gaussian(1500, dim=4, seed=0), gaussian(1500, dim=4, seed=1), k=5)
    assert prdc.precision > 0.85 and prdc.recall > 0.85
    assert prdc.density == pytest.approx(1.0, abs=0.15)
    assert prdc.coverage > 0.9


def test_prdc_of_a_collapsed_generator_has_precision_without_recall():
    real = gaussian(1500, dim=4, seed=0)
    collapsed = gaussian(1500, dim=4, scale=0.1, seed=1)  # every fake near the mode
    prdc = precision_recall_density_coverage(real, collapsed, k=5)
    assert prdc.precision > 0.95
    assert prdc.recall < 0.2
    assert prdc.coverage < 0.3
    assert prdc.density > 0.5  # unlike precision, density counts how many real balls hold each fake


def test_prdc_of_a_shifted_generator_loses_precision_and_coverage():
    real = gaussian(1500, dim=4, seed=0)
    prdc = precision_recall_density_coverage(real, gaussian(1500, dim=4, shift=3.0, seed=1), k=5)
    assert prdc.precision < 0.1 and prdc.recall < 0.1 and prdc.coverage < 0.1 and prdc.density < 0.1


def test_prdc_is_independent_of_the_chunking():
    import ganaug.eval.metrics as metrics

    real, fake = gaussian(300, dim=4, seed=0), gaussian(250, dim=4, shift=0.5, seed=1)
    whole = precision_recall_density_coverage(real, fake, k=3)
    chunk, metrics._CHUNK = metrics._CHUNK, 64
    try:
        chunked = precision_recall_density_coverage(real, fake, k=3)
    finally:
        metrics._CHUNK = chunk
    assert chunked == whole


def test_linear_probe_separates_classes_and_fails_on_swapped_labels():
    centres = torch.eye(8)[:4] * 4
    labels = torch.arange(4).repeat(200)
    train = centres[labels] + gaussian(800, seed=0)
    test = centres[labels] + gaussian(800, seed=1)
    assert linear_probe_accuracy(train, labels, test, labels) > 0.95
    swapped = (labels + 1) % 4  # a "generator" whose classes are mislabelled
    assert linear_probe_accuracy(train, swapped, test, labels) < 0.1
    assert linear_probe_accuracy(train, labels, test, labels, seed=1) == linear_probe_accuracy(
        train, labels, test, labels, seed=1)


@pytest.mark.parametrize("bad, message", [
    (torch.ones(5), r"\(N, D\)"),
    (torch.full((5, 8), float("nan")), "NaN"),
    (torch.ones(5, 3), "widths differ"),
])
def test_metrics_reject_bad_features(bad, message):
    with pytest.raises(ValueError, match=message):
        frechet_distance(gaussian(10), bad)


def test_prdc_rejects_a_k_too_large():
    with pytest.raises(ValueError, match="k should be"):
        precision_recall_density_coverage(gaussian(5), gaussian(5), k=5)


def test_prdc_counts_ties_as_the_reference_code_does():
    """Quantized features: precision/recall count a ball's edge as inside (<=), density and coverage do not (<)."""
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    fake = torch.tensor([[0.0], [1.0], [2.0], [3.0]])  # every fake sits on real points and on ball edges
    prdc = precision_recall_density_coverage(real, fake, k=1)
    # real radii (1-NN): all 1. Fake 0.0 lies strictly inside real 0's ball only; on the edge of real 1's ball.
    assert prdc.precision == 1.0 and prdc.recall == 1.0
    assert prdc.density == pytest.approx(1.0)  # strictly inside: each fake in exactly its own real ball
    assert prdc.coverage == 1.0


def test_prdc_far_from_the_origin_matches_float64():
    real, fake = gaussian(300, dim=16, seed=1) + 300.0, gaussian(300, dim=16, shift=0.3, seed=2) + 300.0
    far = precision_recall_density_coverage(real, fake, k=3)
    near = precision_recall_density_coverage(real - 300.0, fake - 300.0, k=3)
    assert far.to_dict() == pytest.approx(near.to_dict(), abs=1e-3)


def test_frechet_stats_and_probe_labels_are_checked():
    from ganaug.eval.metrics import frechet_distance_from_stats

    with pytest.raises(ValueError, match=r"mean_a should be \(D,\) and cov_a \(D, D\), got \(3,\) and \(4, 4\)"):
        frechet_distance_from_stats(torch.zeros(3), torch.eye(4), torch.zeros(3), torch.eye(4))
    x = gaussian(20, dim=4)
    with pytest.raises(ValueError, match=r"train_labels should be integers in \[0, 2\)"):
        linear_probe_accuracy(x, torch.tensor([0, 1] * 9 + [-1, 1]), x, torch.tensor([0, 1] * 10))
    with pytest.raises(ValueError, match=r"test_labels should be integers in \[0, 2\)"):
        linear_probe_accuracy(x, torch.tensor([0, 1] * 10), x, torch.tensor([0, 1] * 9 + [0, 3]), num_classes=2)
