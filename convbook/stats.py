"""How sure is an accuracy? Confidence intervals for accuracies measured on n examples.

An accuracy of 0.9150 on 6,000 test images is one draw: another 6,000 images from the same
distribution would give a slightly different number. Every chapter that compares two
accuracies (chapter 1's MLP and CNN, chapter 6's ablation, chapters 8 and 10's augmentation
runs) prints their 95 % intervals with these helpers, and calls a difference whose own
interval contains zero "no measurable difference" rather than a win.

The interval is Wilson's score interval: unlike the textbook ``p ± 1.96·sqrt(p(1-p)/n)``,
it stays inside [0, 1] and keeps its coverage for accuracies near 0 or 1.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np
import torch

__all__ = [
    "wilson_interval", "accuracy_interval", "format_interval", "difference_interval",
    "paired_difference_interval", "compare_accuracies", "confusion_matrix", "per_class_accuracy",
]


def _z(confidence: float) -> float:
    """The two-sided standard-normal quantile: 1.96 for ``confidence=0.95``."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence!r}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def _check_count(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive whole number of examples, got {n!r}")
    return n


def wilson_interval(correct: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval ``(low, high)`` for ``correct`` successes out of ``n`` trials.

    >>> low, high = wilson_interval(915, 1000)
    >>> round(low, 4), round(high, 4)
    (0.8961, 0.9307)
    """
    n = _check_count(n)
    if isinstance(correct, bool) or not isinstance(correct, int) or not 0 <= correct <= n:
        raise ValueError(f"correct must be a whole number from 0 to n={n}, got {correct!r}")
    z = _z(confidence)
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # At 0 or n correct the bounds are exactly 0 or 1; floating point would leave 1e-17.
    low = 0.0 if correct == 0 else centre - half
    high = 1.0 if correct == n else centre + half
    return low, high


def accuracy_interval(accuracy: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson interval of an accuracy given as a fraction of ``n`` examples.

    The fraction is turned back into a count, ``round(accuracy * n)``, so an accuracy
    printed to four decimals gives the same interval as the exact one.
    """
    n = _check_count(n)
    accuracy = float(accuracy)
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"accuracy must be a fraction in [0, 1], got {accuracy!r}")
    return wilson_interval(round(accuracy * n), n, confidence)


def format_interval(accuracy: float, n: int, confidence: float = 0.95) -> str:
    """``'0.9150 (95 % CI 0.9077–0.9218, n = 6,000)'``: an accuracy with its interval."""
    low, high = accuracy_interval(accuracy, n, confidence)
    return f"{accuracy:.4f} ({confidence * 100:g} % CI {low:.4f}–{high:.4f}, n = {n:,})"


def difference_interval(acc_a: float, n_a: int, acc_b: float, n_b: int,
                        confidence: float = 0.95) -> tuple[float, float]:
    """Interval ``(low, high)`` for ``acc_a - acc_b`` (Newcombe's method, from two Wilson intervals).

    It treats the two accuracies as measured on independent samples. Two models scored on
    the *same* test images make correlated errors, which narrows the true interval, so for
    them this one errs on the side of "no measurable difference".
    """
    low_a, high_a = accuracy_interval(acc_a, n_a, confidence)
    low_b, high_b = accuracy_interval(acc_b, n_b, confidence)
    diff = acc_a - acc_b
    return (diff - math.hypot(acc_a - low_a, high_b - acc_b),
            diff + math.hypot(high_a - acc_a, acc_b - low_b))


#: Fewer disagreements than this and the paired normal interval is too narrow to trust.
MIN_DISAGREEMENTS = 10


def _correctness(values: Sequence[bool] | np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype != np.bool_ or array.ndim != 1 or array.size == 0:
        raise ValueError(
            f"{name} must be a non-empty 1-D sequence of booleans (prediction == label per "
            f"example), got dtype {array.dtype} and shape {array.shape}"
        )
    return array


def paired_difference_interval(correct_a: Sequence[bool] | np.ndarray,
                               correct_b: Sequence[bool] | np.ndarray,
                               confidence: float = 0.95) -> tuple[float, float]:
    """Interval ``(low, high)`` for ``acc_a - acc_b`` when both were scored on the same examples.

    ``correct_a[i]`` says whether model A got example ``i`` right (a bool tensor or array,
    e.g. ``predictions == labels``). Two models scored on the same images mostly agree, and
    only the examples where they disagree carry information about their difference: ``b``
    that only A gets right, ``c`` that only B does. The difference is ``(b - c) / n`` with
    standard error ``sqrt(b + c - (b - c)**2 / n) / n`` (the Wald interval for paired
    proportions, the interval behind McNemar's test). It is much narrower than
    :func:`difference_interval`, which treats the two accuracies as independent samples.
    Chapter 8 compares two training recipes this way on one validation set. With fewer
    than ``MIN_DISAGREEMENTS`` disagreements the normal approximation is too narrow to
    trust, so that raises a ``ValueError``.

    >>> a = [True] * 30 + [False] * 10 + [True] * 960
    >>> b = [False] * 30 + [True] * 10 + [True] * 960
    >>> [round(x, 4) for x in paired_difference_interval(a, b)]
    [0.0077, 0.0323]
    """
    a, b = _correctness(correct_a, "correct_a"), _correctness(correct_b, "correct_b")
    if a.shape != b.shape:
        raise ValueError(f"correct_a and correct_b must score the same examples, "
                         f"got {a.size} and {b.size}")
    n = a.size
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    if only_a + only_b < MIN_DISAGREEMENTS:
        raise ValueError(
            f"the two models disagree on only {only_a + only_b} of {n} examples; the paired "
            f"interval needs at least {MIN_DISAGREEMENTS}"
        )
    difference = (only_a - only_b) / n
    half = _z(confidence) * math.sqrt(only_a + only_b - (only_a - only_b) ** 2 / n) / n
    return difference - half, difference + half


def compare_accuracies(acc_a: float, n_a: int, acc_b: float, n_b: int,
                       names: tuple[str, str] = ("A", "B"), confidence: float = 0.95) -> str:
    """One sentence comparing two accuracies: each with its interval, then the verdict.

    The verdict reads the interval of the difference: when it contains 0 the run shows
    "no measurable difference"; otherwise it names the higher one and by how much.
    """
    name_a, name_b = names
    low, high = difference_interval(acc_a, n_a, acc_b, n_b, confidence)
    both = (f"{name_a} {format_interval(acc_a, n_a, confidence)}, "
            f"{name_b} {format_interval(acc_b, n_b, confidence)}")
    span = f"difference {acc_a - acc_b:+.4f}, {confidence * 100:g} % CI {low:+.4f} to {high:+.4f}"
    if low <= 0 <= high:
        return f"{both}: no measurable difference ({span})."
    higher = name_a if low > 0 else name_b
    return f"{both}: {higher} is higher ({span})."


def confusion_matrix(y_true, y_pred, num_classes: int) -> torch.Tensor:
    """Counts of (true class, predicted class) pairs: an int64 ``(num_classes, num_classes)``.

    Row ``i`` holds the examples whose true class is ``i``; column ``j`` those predicted as
    ``j``, so the diagonal counts correct predictions (chapters 8–10).
    """
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    true, pred = torch.as_tensor(y_true).cpu(), torch.as_tensor(y_pred).cpu()
    for name, t in (("y_true", true), ("y_pred", pred)):
        if t.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {tuple(t.shape)}")
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise TypeError(f"{name} must hold integer class indices, got dtype {t.dtype}")
        if t.numel() and (t.min() < 0 or t.max() >= num_classes):
            raise ValueError(f"{name} must lie in [0, {num_classes}), "
                             f"got values from {t.min().item()} to {t.max().item()}")
    if len(true) != len(pred):
        raise ValueError(f"y_true has {len(true)} entries but y_pred has {len(pred)}")
    pairs = true.long() * num_classes + pred.long()
    return torch.bincount(pairs, minlength=num_classes**2).reshape(num_classes, num_classes)


def per_class_accuracy(cm: torch.Tensor) -> torch.Tensor:
    """Each class's accuracy (its recall) from a confusion matrix: ``cm.diag() / cm.sum(1)``.

    Row ``i`` of ``cm`` holds the examples whose true class is ``i``, so its diagonal entry
    over its row sum is the share of class ``i`` predicted correctly (chapters 8–10). A class
    with no examples has no accuracy: that is an error, not a silent ``nan``.
    """
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"cm must be a square matrix, got shape {tuple(cm.shape)}")
    counts = cm.sum(dim=1)
    if (counts == 0).any():
        empty = (counts == 0).nonzero().flatten().tolist()
        raise ValueError(f"classes {empty} have no examples, so no accuracy")
    return cm.diag().double() / counts
