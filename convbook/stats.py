"""convbook.stats: 95 % intervals for accuracies measured on n examples, and for their
differences (chapters 1 and 6–13), with Wilson's score interval, which stays in [0, 1]."""
from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np
import torch

__all__ = ["accuracy_interval", "format_interval", "difference_interval",
           "paired_difference_interval", "compare_accuracies", "confusion_matrix",
           "per_class_accuracy"]


#: The two-sided 95 % standard-normal quantile, 1.96: every interval here is a 95 % one.
Z = NormalDist().inv_cdf(0.975)


def accuracy_interval(accuracy: float, n: int) -> tuple[float, float]:
    """Wilson's 95 % score interval ``(low, high)`` for an accuracy measured on ``n`` examples.

    >>> low, high = accuracy_interval(0.915, 1000)
    >>> round(low, 4), round(high, 4)
    (0.8961, 0.9307)
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive whole number of examples, got {n!r}")
    accuracy = float(accuracy)
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"accuracy must be a fraction in [0, 1], got {accuracy!r}")
    correct = round(accuracy * n)  # back to a count, so a rounded accuracy gives the same
    p = correct / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z / (1 + Z * Z / n) * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    # At 0 or n correct the bounds are exactly 0 or 1; floating point would leave 1e-17.
    low = 0.0 if correct == 0 else centre - half
    high = 1.0 if correct == n else centre + half
    return low, high


def format_interval(accuracy: float, n: int) -> str:
    """``'0.9150 (95 % CI 0.9077–0.9218, n = 6,000)'``: an accuracy with its interval."""
    low, high = accuracy_interval(accuracy, n)
    return f"{accuracy:.4f} (95 % CI {low:.4f}–{high:.4f}, n = {n:,})"


def difference_interval(acc_a: float, n_a: int, acc_b: float, n_b: int) -> tuple[float, float]:
    """Interval ``(low, high)`` for ``acc_a - acc_b`` on independent samples (Newcombe's
    method); on the same examples it errs towards "no measurable difference"."""
    low_a, high_a = accuracy_interval(acc_a, n_a)
    low_b, high_b = accuracy_interval(acc_b, n_b)
    diff = acc_a - acc_b
    return (diff - math.hypot(acc_a - low_a, high_b - acc_b),
            diff + math.hypot(high_a - acc_a, acc_b - low_b))


#: Fewer disagreements than this and the paired normal (Wald) interval is too narrow to
#: trust; ``paired_difference_interval`` then adds 1/2 to each cell of the 2×2 table.
MIN_DISAGREEMENTS = 10


def _correctness(values: Sequence[bool] | np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype != np.bool_ or array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of booleans (prediction == "
                         f"label per example), got dtype {array.dtype} and shape {array.shape}")
    return array


def paired_difference_interval(correct_a: Sequence[bool] | np.ndarray,
                               correct_b: Sequence[bool] | np.ndarray) -> tuple[float, float]:
    """Interval ``(low, high)`` for ``acc_a - acc_b`` scored on the same examples, from the
    examples only one model gets right (the Wald interval behind McNemar's test). Two
    networks that disagree on fewer than ``MIN_DISAGREEMENTS`` examples get Agresti and
    Min's adjusted interval instead (1/2 added to each cell of the 2×2 table): its coverage
    stays near 95 % with a handful of disagreements, and it exists with none, so that a
    reader's run never stops here.

    ``correct_a[i]`` says whether model A got example ``i`` right (``predictions == labels``).

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
        only_a, only_b, n = only_a + 0.5, only_b + 0.5, n + 2
    difference = (only_a - only_b) / n
    half = Z * math.sqrt(only_a + only_b - (only_a - only_b) ** 2 / n) / n
    return difference - half, difference + half


def compare_accuracies(acc_a: float, n_a: int, acc_b: float, n_b: int,
                       names: tuple[str, str] = ("A", "B")) -> str:
    """One sentence: each accuracy with its interval, then "no measurable difference" when
    the difference's interval contains 0, or which one is higher and by how much."""
    name_a, name_b = names
    low, high = difference_interval(acc_a, n_a, acc_b, n_b)
    both = f"{name_a} {format_interval(acc_a, n_a)}, {name_b} {format_interval(acc_b, n_b)}"
    span = f"difference {acc_a - acc_b:+.4f}, 95 % CI {low:+.4f} to {high:+.4f}"
    if low <= 0 <= high:
        return f"{both}: no measurable difference ({span})."
    higher = name_a if low > 0 else name_b
    return f"{both}: {higher} is higher ({span})."


def confusion_matrix(y_true, y_pred, num_classes: int) -> torch.Tensor:
    """Counts of (true class, predicted class) pairs, an int64 ``(num_classes, num_classes)``
    whose diagonal counts the correct predictions (chapters 9–11)."""
    true, pred = torch.as_tensor(y_true).cpu(), torch.as_tensor(y_pred).cpu()
    for name, t in (("y_true", true), ("y_pred", pred)):
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
    """Each class's accuracy (its recall), ``cm.diag() / cm.sum(1)`` (chapters 9–11); a class
    without examples is an error, not a silent ``nan``."""
    counts = cm.sum(dim=1)
    if (counts == 0).any():
        empty = (counts == 0).nonzero().flatten().tolist()
        raise ValueError(f"classes {empty} have no examples, so no accuracy")
    return cm.diag().double() / counts
