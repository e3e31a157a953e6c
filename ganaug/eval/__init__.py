"""Evaluation: sample quality in a feature space (FD, KID, precision/recall, density/coverage, probes)."""

from ganaug.eval.evaluation import EvalConfig, evaluate, format_report, load_eval_extractor, write_report
from ganaug.eval.metrics import (
    PRDC,
    frechet_distance,
    kernel_inception_distance,
    linear_probe_accuracy,
    precision_recall_density_coverage,
)

__all__ = [
    "PRDC",
    "EvalConfig",
    "evaluate",
    "format_report",
    "frechet_distance",
    "kernel_inception_distance",
    "linear_probe_accuracy",
    "load_eval_extractor",
    "precision_recall_density_coverage",
    "write_report",
]
