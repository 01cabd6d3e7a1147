"""convbook.check — instant feedback on the operations a learner writes (chapters 2–6).

Call a checker on your own function, e.g. ``cb.check.corr2d(my_corr2d)``. It runs the
chapter's worked example first, then random and edge cases (non-square inputs and kernels,
1×1 kernels, a kernel as large as the input, several channels) against the answer that
``torch.nn.functional`` gives. On success it prints one line; on failure it raises
:class:`CheckFailed` (an ``AssertionError``) showing the smallest failing case, the expected
and the obtained result, and a hint when the mistake is a common one. Each call has a time
limit (``time_limit`` seconds), and the check stops at the first failure.
``convbook.check_runner`` runs the cases; this module says what to run and what to hint.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

from .check_runner import Case, CheckFailed, Mistake, ints, keep, randint, run, tensor_hint

__all__ = [
    "CheckFailed",
    "conv_output_shape",
    "corr2d",
]

AS_IS = f"cross-correlation uses K as it is: {keep('Y[i, j] = (X[i:i+h, j:j+w] * K).sum()')}."
FLIPPED = f"Your output is the true convolution (kernel rotated by 180°), but {AS_IS}"
CORR2D_RULE = (f"An (H, W) input and an (h, w) kernel give an {keep('(H - h + 1, W - w + 1)')} "
               f"output: the window fits at {keep('H - h + 1')} vertical positions, "
               f"{keep('range(H - h + 1)')}.")
EXTENT = keep("d(k - 1) + 1")
SHAPE_FORMULA = keep("floor((n + 2p - d(k - 1) - 1) / s) + 1")


def _corr2d_reference(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    return F.conv2d(X[None, None], K[None, None])[0, 0]


def _corr2d_cases() -> list[Case]:
    """Chapter 2's 3×3 example and edge detector, then edge cases, then random shapes."""
    gen = torch.Generator().manual_seed(0)
    band = torch.ones(6, 8)
    band[:, 2:6] = 0
    cases = [
        Case("chapter 2's worked example", {"X": torch.arange(9.0).reshape(3, 3),
                                            "K": torch.tensor([[0.0, 1.0], [2.0, 3.0]])}),
        Case("chapter 2's edge detector", {"X": band, "K": torch.tensor([[1.0, -1.0]])}),
    ]
    edges = [("1×1 kernel", (3, 4), (1, 1)), ("kernel as large as the input", (3, 4), (3, 4)),
             ("one-row input", (1, 5), (1, 2)), ("one-column input", (5, 1), (2, 1)),
             ("non-square input and kernel", (4, 7), (3, 2))]
    cases += [Case(label, {"X": ints(gen, *x), "K": ints(gen, *k)})
              for label, x, k in edges]
    for number in range(1, 9):
        h, w = randint(gen, 1, 4), randint(gen, 1, 4)
        x_shape = (randint(gen, h, 7), randint(gen, w, 8))
        cases.append(Case(f"random shapes {number}",
                          {"X": ints(gen, *x_shape), "K": ints(gen, h, w)}))
    cases.append(Case("fractional values", {"X": torch.randn(5, 6, generator=gen),
                                            "K": torch.randn(2, 3, generator=gen)}))
    return cases


def corr2d(fn: Callable, *, time_limit: float = 2.0) -> None:
    """Check a learner's ``corr2d(X, K)``, 2-D cross-correlation (chapter 2).

    ``fn`` gets an ``(H, W)`` float32 ``X`` and an ``(h, w)`` ``K`` and must return the
    ``(H - h + 1, W - w + 1)`` float32 tensor ``F.conv2d`` gives, without changing X or K.
    """
    run("corr2d", fn, _corr2d_cases(), reference=_corr2d_reference,
        what="F.conv2d (chapter 2's examples, edge and random cases)",
        signature="corr2d(X, K) with X of shape (H, W) and K of shape (h, w)",
        mistakes=[Mistake(FLIPPED, lambda X, K: _corr2d_reference(X, K.flip(0, 1))),
                  Mistake(f"The kernel is flipped upside down, but {AS_IS}",
                          lambda X, K: _corr2d_reference(X, K.flip(0))),
                  Mistake(f"The kernel is flipped left to right, but {AS_IS}",
                          lambda X, K: _corr2d_reference(X, K.flip(1)))],
        generic_hint=partial(tensor_hint, rule=CORR2D_RULE), time_limit=time_limit)


def _shape_reference(input_hw, kernel, padding, stride, dilation) -> tuple[int, int]:
    """The output size that ``F.conv2d`` really produces."""
    weight = torch.zeros(1, 1, *kernel)
    out = F.conv2d(torch.zeros(1, 1, *input_hw), weight, padding=padding, stride=stride,
                   dilation=dilation)
    return tuple(int(n) for n in out.shape[-2:])


def _per_dimension(rule: Callable[..., int]) -> Callable[..., tuple[int, int]]:
    """Turn a one-dimension formula ``rule(n, k, p, s, d)`` into a wrong version of
    ``conv_output_shape`` (used to recognise a learner's mistake)."""
    return lambda *pairs: tuple(rule(*dim) for dim in zip(*pairs))


def _shape_mistakes() -> list[Mistake]:
    """Wrong output-size formulas learners write, each with its hint."""
    def extent(k, d):
        return d * (k - 1) + 1
    return [
        Mistake(f"Padding p is added on each side, so the padded size is {keep('n + 2p')}, "
                f"not {keep('n + p')}: {SHAPE_FORMULA}.",
                _per_dimension(lambda n, k, p, s, d: (n + p - extent(k, d)) // s + 1)),
        Mistake("Off by one: the first window position counts too, add 1 after dividing: "
                f"{SHAPE_FORMULA}.",
                _per_dimension(lambda n, k, p, s, d: (n + 2 * p - extent(k, d)) // s)),
        Mistake(f"A dilated kernel spans {EXTENT} pixels, not k: use that extent in "
                f"place of k, {SHAPE_FORMULA}.",
                _per_dimension(lambda n, k, p, s, d: (n + 2 * p - k) // s + 1)),
        Mistake(f"A dilated kernel spans {EXTENT} pixels, not d·k: the gaps are only "
                f"between its taps, {SHAPE_FORMULA}.",
                _per_dimension(lambda n, k, p, s, d: (n + 2 * p - d * k) // s + 1)),
        Mistake("Round down, not up: a window that does not fit entirely inside the padded "
                f"input is dropped, {SHAPE_FORMULA}.",
                _per_dimension(lambda n, k, p, s, d: -(-(n + 2 * p - extent(k, d)) // s) + 1)),
        Mistake("Divide by the stride: the window moves s pixels at a time, "
                f"{SHAPE_FORMULA}.",
                _per_dimension(lambda n, k, p, s, d: n + 2 * p - extent(k, d) + 1)),
        Mistake("Return (height, width) in that order, each from its own size, kernel, "
                "padding, stride and dilation.",
                lambda *pairs: _shape_reference(*pairs)[::-1]),
        Mistake("Compute height and width separately: each has its own input size, kernel, "
                "padding, stride and dilation (index [0] for height, [1] for width).",
                lambda *pairs: _shape_reference(*[(p[0], p[0]) for p in pairs])),
    ]


def _shape_hint_generic(case: Case, expected: Any, obtained: Any) -> str:
    """What can be said about a wrong ``conv_output_shape`` result without a known mistake."""
    if not isinstance(obtained, tuple) or len(obtained) != 2:
        return ("Return a tuple (height, width) of two ints, e.g. return (h, w), not "
                f"{type(obtained).__name__} {obtained!r}.")
    if any(isinstance(v, float) for v in obtained):
        return ("Use integer division (//): an output size is a whole number of window "
                f"positions, {SHAPE_FORMULA}.")
    if not all(type(v) is int for v in obtained):
        kinds = ", ".join(type(v).__name__ for v in obtained)
        return f"Return Python ints (wrap each in int(...)), not {kinds}."
    if all(abs(o - e) <= 1 for o, e in zip(obtained, expected)):
        return f"Off by one in at least one dimension; per dimension: {SHAPE_FORMULA}."
    return (f"Per dimension, with input n, kernel k, padding p on each side, stride s and "
            f"dilation d, the output size is {SHAPE_FORMULA}.")


def _shape_case(label: str, input_hw, kernel, padding=(0, 0), stride=(1, 1),
                dilation=(1, 1)) -> Case:
    return Case(label, {"input_hw": input_hw, "kernel": kernel, "padding": padding,
                        "stride": stride, "dilation": dilation})


def _random_shape_case(gen: torch.Generator, number: int) -> Case:
    """A random valid configuration: every dimension's padded input holds the kernel."""
    while True:
        dims = [(randint(gen, 1, 32), randint(gen, 1, 7), randint(gen, 0, 3),
                 randint(gen, 1, 4), randint(gen, 1, 3)) for _ in range(2)]
        if all(d * (k - 1) + 1 <= n + 2 * p for n, k, p, s, d in dims):
            return _shape_case(f"random {number}", *zip(*dims))


def _shape_cases() -> list[Case]:
    """Chapter 3's examples, then edge cases, then random configurations."""
    gen = torch.Generator().manual_seed(0)
    cases = [
        _shape_case("chapter 3: 28 × 28 input, 3 × 3 kernel", (28, 28), (3, 3)),
        _shape_case("chapter 3: padding 1 keeps 8 × 8", (8, 8), (3, 3), (1, 1)),
        _shape_case("chapter 3: 5 × 3 kernel, padding (2, 1)", (8, 8), (5, 3), (2, 1)),
        _shape_case("chapter 3: stride 2 halves 8 × 8", (8, 8), (3, 3), (1, 1), (2, 2)),
        _shape_case("chapter 3: kernel (3, 5), padding (0, 1), stride (3, 4)",
                    (8, 8), (3, 5), (0, 1), (3, 4)),
        _shape_case("kernel as large as the input", (5, 7), (5, 7)),
        _shape_case("1×1 kernel", (4, 6), (1, 1)),
        _shape_case("stride larger than the input", (3, 5), (1, 1), (0, 0), (4, 6)),
        _shape_case("dilation", (7, 9), (3, 3), (0, 0), (1, 1), (2, 3)),
        _shape_case("dilation, padding and stride", (10, 12), (3, 2), (2, 1), (2, 3), (2, 2)),
    ]
    return cases + [_random_shape_case(gen, number) for number in range(1, 11)]


def conv_output_shape(fn: Callable, *, time_limit: float = 2.0) -> None:
    """Check a learner's ``conv_output_shape(input_hw, kernel, padding, stride, dilation)``
    (chapter 3) against the output sizes ``F.conv2d`` really produces.

    Every argument is passed as a ``(height, width)`` pair of ints, positionally in that
    order; ``fn`` must return a tuple of two ints ``(height, width)``.
    """
    run("conv_output_shape", fn, _shape_cases(), reference=_shape_reference,
        what="F.conv2d (chapter 3's examples, edge and random cases)",
        signature="conv_output_shape(input_hw, kernel, padding, stride, dilation), "
                  "each a (height, width) pair",
        mistakes=_shape_mistakes(), generic_hint=_shape_hint_generic,
        time_limit=time_limit)
