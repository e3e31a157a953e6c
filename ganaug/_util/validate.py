"""Argument checks: one copy of each rule, each error naming the argument, what was expected and what was given.

Kinds of mistake and their errors: a value of the wrong type raises ``TypeError``; a value of the
right type outside its range, or of the wrong length, raises ``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "as_labels",
    "label_tensor",
    "check_betas",
    "check_channels",
    "check_features",
    "check_choice",
    "check_image_size",
    "check_int",
    "check_number",
    "check_pair",
    "check_positive_int",
    "check_probability",
    "check_seed",
    "check_truncation",
    "resolve_device",
]


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]`` (either bound may be None); bools are refused."""
    bounds = " and ".join(filter(None, (f">= {low}" if low is not None else "",
                                        f"<= {high}" if high is not None else "")))
    expected = f"an int {bounds}".strip()
    if not _is_int(value):
        raise (TypeError if not isinstance(value, (int, float, np.number)) else ValueError)(
            f"{name} should be {expected}, got {value!r}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} should be {expected}, got {value!r}")
    return value


def check_positive_int(name: str, value: Any) -> int:
    """``value`` as an int >= 1."""
    if _is_int(value) and value >= 1:
        return int(value)
    raise (TypeError if not isinstance(value, (int, float, np.number)) else ValueError)(
        f"{name} should be a positive int, got {value!r}")


def check_seed(name: str, value: Any, allow_none: bool = False) -> int | None:
    """A non-negative int seed below 2**64, what ``torch.Generator.manual_seed`` takes (or None when ``allow_none``)."""
    if value is None and allow_none:
        return None
    if _is_int(value) and 0 <= value < 2**64:
        return int(value)
    raise ValueError(f"{name} should be a non-negative int below 2**64{' or None' if allow_none else ''}, got "
                     f"{value!r}")


def check_number(name: str, value: Any, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite float inside the interval given by the bounds (open or closed on each side)."""
    if low is None and high is None:
        expected = "a finite number"
    elif high is None:
        expected = f"a number {'>' if low_open else '>='} {low:g}"
    elif low is None:
        expected = f"a number {'<' if high_open else '<='} {high:g}"
    else:
        expected = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{name} should be {expected}, got {value!r}")
    value = float(value)
    outside = (not math.isfinite(value)
               or (low is not None and (value <= low if low_open else value < low))
               or (high is not None and (value >= high if high_open else value > high)))
    if outside:
        raise ValueError(f"{name} should {'lie ' if expected.startswith('in') else 'be '}{expected}, got {value!r}")
    return value


def check_probability(name: str, value: Any) -> float:
    """A probability in [0, 1]."""
    return check_number(name, value, 0.0, 1.0)


def check_truncation(value: Any) -> float:
    """The noise scale of sampling, in (0, 1]."""
    return check_number("truncation", value, 0.0, 1.0, low_open=True)


def check_betas(value: Any) -> tuple[float, float]:
    """Adam's betas: two numbers in [0, 1)."""
    try:
        betas = tuple(value)
    except TypeError:
        betas = ()
    if len(betas) != 2:
        raise ValueError(f"betas should be two numbers in [0, 1), got {value!r}")
    return tuple(check_number("betas", beta, 0.0, 1.0, high_open=True) for beta in betas)


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} should be one of {tuple(choices)}, got {value!r}")
    return value


def check_pair(name: str, value: Any, low: float, high: float, integers: bool = False,
               low_open: bool = False) -> tuple:
    """``(a, b)`` with ``low <= a <= b <= high`` (``low < a`` with ``low_open``), as ints or floats."""
    kind = "ints" if integers else "numbers"
    bound = f"{low:g} {'<' if low_open else '<='} a <= b <= {high:g}"
    try:
        pair = tuple(value)
    except TypeError:
        raise ValueError(f"{name} should be a pair (a, b) of {kind} with {bound}, got {value!r}") from None
    if len(pair) != 2 or not all(_is_int(v) if integers else isinstance(v, (int, float, np.number))
                                 and not isinstance(v, (bool, np.bool_)) for v in pair):
        raise ValueError(f"{name} should be a pair (a, b) of {kind} with {bound}, got {value!r}")
    a, b = (int(v) if integers else float(v) for v in pair)
    if not ((low < a if low_open else low <= a) and a <= b <= high):
        raise ValueError(f"{name} should be a pair (a, b) with {bound}, got {value!r}")
    return a, b


def as_labels(labels: Any, num_classes: int | None = None, num: int | None = None, name: str = "labels",
              ) -> list[int]:
    """Class labels as a list of Python ints.

    Args:
        labels: an int (Python or numpy), or a sequence, numpy array or tensor of ints (any
            shape; flattened). Bools and floats are refused.
        num_classes: when given, every label must lie in ``[0, num_classes)``.
        num: when given, the number of labels wanted: one label is repeated ``num`` times,
            any other count must equal ``num``.
        name: the argument's name, for errors.
    """
    if type(labels) is int and (num is None or num == 1) and (num_classes is None or 0 <= labels < num_classes):
        return [labels]  # the one label of a per-sample transform: checked in a fraction of a microsecond
    if _is_int(labels):
        values = [int(labels)]
    elif isinstance(labels, torch.Tensor):
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise TypeError(f"{name} should hold integer class indices, got a {labels.dtype} tensor; soft labels "
                            "cannot condition a generator: apply ganaug before MixUp/CutMix")
        values = labels.flatten().tolist()
    elif isinstance(labels, np.ndarray):
        if labels.dtype.kind not in "iu":
            raise TypeError(f"{name} should hold integer class indices, got a {labels.dtype} array")
        values = labels.ravel().tolist()
    elif isinstance(labels, Sequence) and not isinstance(labels, (str, bytes)):
        if not all(_is_int(v) for v in labels):
            raise TypeError(f"{name} should hold integer class indices, got {list(labels)[:8]!r}")
        values = [int(v) for v in labels]
    else:
        raise TypeError(f"{name} should be an int class index, or a sequence, array or tensor of them; got "
                        f"{type(labels).__name__}")
    if num is not None and len(values) != num:
        if len(values) != 1:
            raise ValueError(f"{name} should hold one label per item ({num}) or a single label, got {len(values)}")
        values = values * num
    if num_classes is not None and values:
        _check_label_range(min(values), max(values), num_classes, name)
    return values


def label_tensor(labels: Any, num_classes: int | None = None, num: int | None = None, name: str = "labels",
                 ) -> torch.Tensor:
    """Class labels as an int64 CPU tensor, by :func:`as_labels`'s rules.

    An integer tensor of ``num`` labels (a batch's labels after the DataLoader) is checked in a
    few vectorized operations, without a round trip through Python ints.
    """
    if (isinstance(labels, torch.Tensor) and labels.ndim == 1 and len(labels) and (num is None or len(labels) == num)
            and labels.dtype in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)):
        values = labels.to("cpu", torch.int64)
        if num_classes is not None:
            low, high = values.aminmax()
            _check_label_range(int(low), int(high), num_classes, name)
        return values
    return torch.tensor(as_labels(labels, num_classes, num, name), dtype=torch.int64)


def _check_label_range(low: int, high: int, num_classes: int, name: str) -> None:
    if low < 0 or high >= num_classes:
        raise ValueError(f"{name} should lie in [0, {num_classes}) for this model, got values in [{low}, {high}]")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The device to run on: ``device``, or CUDA when it is available and ``device`` is None, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device should name a torch device such as 'cpu', 'cuda' or 'cuda:1', got "
                         f"{device!r}") from error


def check_channels(name: str, value: Any) -> int:
    """An image channel count: 1 (grayscale) or 3 (RGB)."""
    if value not in (1, 3) or isinstance(value, bool):
        raise ValueError(f"{name} should be 1 or 3, got {value!r}")
    return int(value)


def check_image_size(name: str, size: Any) -> tuple[int, int]:
    """An image size: a positive int (a square) or a ``(height, width)`` pair of them."""
    pair = (size, size) if _is_int(size) else tuple(size) if isinstance(size, Sequence) else (size,)
    if len(pair) != 2 or not all(_is_int(s) and s > 0 for s in pair):
        raise ValueError(f"{name} should be a positive int or a (height, width) pair, got {size!r}")
    return int(pair[0]), int(pair[1])


def check_features(name: str, features: Any, min_rows: int = 2) -> torch.Tensor:
    """Feature vectors: a finite tensor (N, D) with N >= ``min_rows`` and D >= 1."""
    if not isinstance(features, torch.Tensor):
        raise TypeError(f"{name} should be a torch.Tensor of shape (N, D), got {type(features).__name__}")
    if features.ndim != 2 or features.shape[0] < min_rows or features.shape[1] < 1:
        raise ValueError(f"{name} should be (N, D) with N >= {min_rows} and D >= 1, got {tuple(features.shape)}")
    if not torch.isfinite(features).all():
        bad = int((~torch.isfinite(features)).any(dim=1).sum())
        raise ValueError(f"{name} should be finite, got NaN or infinite values in {bad} rows")
    return features
