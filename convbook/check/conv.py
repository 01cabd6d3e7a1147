"""The convolution checkers of chapters 2–4: a learner's function against ``F.conv2d`` on
the chapter's worked example, then edge and random cases."""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

from ._runner import Case, Mistake, ints, nobreak, randint, run, tensor_hint

AS_IS = ("cross-correlation uses K as it is: "
         f"{nobreak('Y[i, j] = (X[i:i+h, j:j+w] * K).sum()')}.")
FLIPPED = f"Your output is the true convolution (kernel rotated by 180°), but {AS_IS}"
CORR2D_RULE = ("An (H, W) input and an (h, w) kernel give an "
               f"{nobreak('(H - h + 1, W - w + 1)')} "
               f"output: the window fits at {nobreak('H - h + 1')} vertical positions, "
               f"{nobreak('range(H - h + 1)')}.")
EXTENT = nobreak("d(k - 1) + 1")
SHAPE_FORMULA = nobreak("floor((n + 2p - d(k - 1) - 1) / s) + 1")
# chapter 4's worked example: a 2-channel 3×3 input and a 2-channel 2×2 kernel
CHAPTER4_X = torch.stack([torch.arange(0.0, 9.0), torch.arange(1.0, 10.0)]).reshape(2, 3, 3)
CHAPTER4_K = torch.tensor([[[0.0, 1.0], [2.0, 3.0]], [[1.0, 2.0], [3.0, 4.0]]])


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
    cases += [Case(label, {"X": ints(gen, *x), "K": ints(gen, *k)}) for label, x, k in edges]
    for number in range(1, 9):
        h, w = randint(gen, 1, 4), randint(gen, 1, 4)
        x_shape = (randint(gen, h, 7), randint(gen, w, 8))
        cases.append(Case(f"random shapes {number}",
                          {"X": ints(gen, *x_shape), "K": ints(gen, h, w)}))
    cases.append(Case("fractional values", {"X": torch.randn(5, 6, generator=gen),
                                            "K": torch.randn(2, 3, generator=gen)}))
    return cases


def corr2d(fn: Callable) -> None:
    """Check a learner's ``corr2d(X, K)`` against ``F.conv2d`` (chapter 2)."""
    run("corr2d", fn, _corr2d_cases(), reference=_corr2d_reference,
        what="F.conv2d (chapter 2's examples, edge and random cases)",
        signature="corr2d(X, K) with X of shape (H, W) and K of shape (h, w)",
        mistakes=[Mistake(FLIPPED, lambda X, K: _corr2d_reference(X, K.flip(0, 1))),
                  Mistake(f"The kernel is flipped upside down, but {AS_IS}",
                          lambda X, K: _corr2d_reference(X, K.flip(0))),
                  Mistake(f"The kernel is flipped left to right, but {AS_IS}",
                          lambda X, K: _corr2d_reference(X, K.flip(1)))],
        generic_hint=partial(tensor_hint, rule=CORR2D_RULE))


def _shape_reference(input_hw, kernel, padding, stride, dilation) -> tuple[int, int]:
    """The output size that ``F.conv2d`` really produces."""
    weight = torch.zeros(1, 1, *kernel)
    out = F.conv2d(torch.zeros(1, 1, *input_hw), weight, padding=padding, stride=stride,
                   dilation=dilation)
    return tuple(int(n) for n in out.shape[-2:])


def _extent(k: int, d: int) -> int:
    return d * (k - 1) + 1


def _per_dimension(rule: Callable[..., int]) -> Callable[..., tuple[int, int]]:
    """A wrong ``conv_output_shape`` from a one-dimension formula ``rule(n, k, p, s, d)``."""
    return lambda *pairs: tuple(rule(*dim) for dim in zip(*pairs))


SHAPE_MISTAKES = [  # wrong output-size formulas learners write
    Mistake("Padding p is added on each side, so the padded size is "
            f"{nobreak('n + 2p')}, not {nobreak('n + p')}: {SHAPE_FORMULA}.",
            _per_dimension(lambda n, k, p, s, d: (n + p - _extent(k, d)) // s + 1)),
    Mistake("Off by one: the first window position counts too, add 1 after dividing: "
            f"{SHAPE_FORMULA}.",
            _per_dimension(lambda n, k, p, s, d: (n + 2 * p - _extent(k, d)) // s)),
    Mistake(f"A dilated kernel spans {EXTENT} pixels, not k: use that extent in "
            f"place of k, {SHAPE_FORMULA}.",
            _per_dimension(lambda n, k, p, s, d: (n + 2 * p - k) // s + 1)),
    Mistake(f"A dilated kernel spans {EXTENT} pixels, not d·k: the gaps are only "
            f"between its taps, {SHAPE_FORMULA}.",
            _per_dimension(lambda n, k, p, s, d: (n + 2 * p - d * k) // s + 1)),
    Mistake("Round down, not up: a window that does not fit entirely inside the padded "
            f"input is dropped, {SHAPE_FORMULA}.",
            _per_dimension(lambda n, k, p, s, d: -(-(n + 2 * p - _extent(k, d)) // s) + 1)),
    Mistake(f"Divide by the stride: the window moves s pixels at a time, {SHAPE_FORMULA}.",
            _per_dimension(lambda n, k, p, s, d: n + 2 * p - _extent(k, d) + 1)),
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
        if all(_extent(k, d) <= n + 2 * p for n, k, p, s, d in dims):
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


def conv_output_shape(fn: Callable) -> None:
    """Check a learner's ``conv_output_shape`` against ``F.conv2d``'s output sizes (chapter 3)."""
    run("conv_output_shape", fn, _shape_cases(), reference=_shape_reference,
        what="F.conv2d (chapter 3's examples, edge and random cases)",
        signature="conv_output_shape(input_hw, kernel, padding, stride, dilation), "
                  "each a (height, width) pair",
        mistakes=SHAPE_MISTAKES, generic_hint=_shape_hint_generic)


def _conv_reference(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """``F.conv2d`` of one ``(C_in, H, W)`` image with ``(C_out, C_in, h, w)`` kernels."""
    return F.conv2d(X[None], K)[0]


def _per_channel(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """``corr2d(X[c], K[c])`` for each channel c, stacked: the maps before their sum."""
    return F.conv2d(X[None], K[:, None], groups=X.shape[0])[0]


def _channel_cases(out_channels: bool, one_by_one: bool = False) -> list[Case]:
    """Chapter 4's edge and random cases: kernels ``(C_out, C_in, h, w)``, or ``(C, h, w)``
    without ``out_channels``; ``1×1`` kernels only with ``one_by_one``."""
    gen = torch.Generator().manual_seed(4)
    shapes = [("one input channel", 1, 2, (3, 4), (2, 2)),
              ("one output channel", 3, 1, (3, 3), (2, 1)),
              ("1×1 kernel, several channels", 3, 2, (3, 4), (1, 1)),
              ("kernel as large as the input", 2, 2, (3, 4), (3, 4)),
              ("non-square, four channels", 4, 3, (4, 6), (2, 3))]
    for number in range(1, 7):
        h, w = randint(gen, 1, 3), randint(gen, 1, 3)
        shapes.append((f"random shapes {number}", randint(gen, 1, 4), randint(gen, 1, 3),
                       (randint(gen, h, 6), randint(gen, w, 6)), (h, w)))
    cases = []
    for label, c_in, c_out, x_shape, k_shape in shapes:
        k_shape = (1, 1) if one_by_one else k_shape
        if one_by_one and "kernel as large" in label:
            continue
        K = ints(gen, c_out, c_in, *k_shape)
        cases.append(Case(label, {"X": ints(gen, c_in, *x_shape),
                                  "K": K if out_channels else K[0]}))
    return cases


MULTI_IN_MISTAKES = [  # where learners put the channel sum wrong in corr2d_multi_in
    Mistake(FLIPPED, lambda X, K: _conv_reference(X, K.flip(-2, -1)[None])[0]),
    Mistake("Add up the per-channel results: the output is one channel, the sum over c "
            "of corr2d(X[c], K[c]), not one map per input channel.", _per_channel),
    Mistake("You summed the channels before correlating: correlate each channel X[c] "
            "with its own kernel K[c], then add the results.",
            lambda X, K: _conv_reference(X.sum(0, keepdim=True), K.sum(0)[None, None])[0]),
    Mistake("Only channel 0 is used: loop over every channel, e.g. zip(X, K).",
            lambda X, K: _conv_reference(X[:1], K[None, :1])[0]),
    Mistake("Each input channel has its own kernel: channel c uses K[c], not K[0].",
            lambda X, K: _per_channel(X, K[:1].expand_as(K)).sum(0)),
    Mistake("Add the per-channel results; do not average them.",
            lambda X, K: _conv_reference(X, K[None])[0] / X.shape[0]),
]


def corr2d_multi_in(fn: Callable) -> None:
    """Check a learner's ``corr2d_multi_in(X, K)`` against ``F.conv2d`` (chapter 4)."""
    cases = [Case("chapter 4's worked example", {"X": CHAPTER4_X, "K": CHAPTER4_K})]
    cases += _channel_cases(out_channels=False)
    rule = (f"A (C, H, W) input and a (C, h, w) kernel give one "
            f"{nobreak('(H - h + 1, W - w + 1)')} output channel.")
    run("corr2d_multi_in", fn, cases, reference=lambda X, K: _conv_reference(X, K[None])[0],
        what="F.conv2d (chapter 4's example, edge and random cases)",
        signature="corr2d_multi_in(X, K) with X of shape (C, H, W) and K of shape (C, h, w)",
        mistakes=MULTI_IN_MISTAKES, generic_hint=partial(tensor_hint, rule=rule))


MULTI_IN_OUT_MISTAKES = [  # the stacking or the channel sum wrong in corr2d_multi_in_out
    Mistake(FLIPPED, lambda X, K: _conv_reference(X, K.flip(-2, -1))),
    Mistake("Stack one output channel per kernel K[o] (torch.stack(..., dim=0)); do "
            "not add the output channels together.",
            lambda X, K: _conv_reference(X, K).sum(0)),
    Mistake("Stack the output channels along dim 0: the output is (C_out, H', W').",
            lambda X, K: _conv_reference(X, K).permute(1, 2, 0)),
    Mistake("Sum over the input channels for each output: output o is "
            "corr2d_multi_in(X, K[o]), one (H', W') map.",
            lambda X, K: torch.stack([_per_channel(X, k) for k in K])),
]


def corr2d_multi_in_out(fn: Callable) -> None:
    """Check a learner's ``corr2d_multi_in_out(X, K)`` against ``F.conv2d`` (chapter 4)."""
    K = torch.stack([CHAPTER4_K, CHAPTER4_K + 1, CHAPTER4_K + 2])
    cases = [Case("chapter 4's worked example", {"X": CHAPTER4_X, "K": K})]
    cases += _channel_cases(out_channels=True)
    rule = (f"A (C_in, H, W) input and (C_out, C_in, h, w) kernels give a "
            f"{nobreak('(C_out, H - h + 1, W - w + 1)')} output.")
    run("corr2d_multi_in_out", fn, cases, reference=_conv_reference,
        what="F.conv2d (chapter 4's example, edge and random cases)",
        signature="corr2d_multi_in_out(X, K) with X of shape (C_in, H, W) and K of shape "
                  "(C_out, C_in, h, w)",
        mistakes=MULTI_IN_OUT_MISTAKES, generic_hint=partial(tensor_hint, rule=rule))


def _one_by_one_mistakes() -> list[Mistake]:
    """Reshapes and products learners get wrong in ``corr2d_multi_in_out_1x1``."""
    def matmul(X, K, pixels_first=False, k_transposed=False, product_reversed=False):
        c_in, h, w = X.shape
        Xm = X.reshape(h * w, c_in).T if pixels_first else X.reshape(c_in, h * w)
        Km = K.reshape(c_in, -1).T if k_transposed else K.reshape(-1, c_in)
        Y = (Xm.T @ Km.T) if product_reversed else Km @ Xm
        return Y.reshape(K.shape[0], h, w)
    return [
        Mistake(f"Reshape X to {nobreak('(C_in, H * W)')}, each column one pixel's channel "
                f"values: {nobreak('X.reshape(H * W, C_in)')} mixes pixels and channels up.",
                partial(matmul, pixels_first=True)),
        Mistake("K reshapes to (C_out, C_in) with K.reshape(C_out, C_in), row o holding "
                "output o's weights.", partial(matmul, k_transposed=True)),
        Mistake(f"Multiply {nobreak('K (C_out, C_in) @ X (C_in, H * W)')}, or transpose the "
                f"{nobreak('(H * W, C_out)')} result back before reshaping it to "
                "(C_out, H, W).", partial(matmul, product_reversed=True)),
    ]


def corr2d_multi_in_out_1x1(fn: Callable) -> None:
    """Check a learner's 1×1 convolution as a matrix product against ``F.conv2d`` (chapter 4)."""
    gen = torch.Generator().manual_seed(1)
    cases = [Case("chapter 4's shapes", {"X": ints(gen, 3, 3, 3), "K": ints(gen, 2, 3, 1, 1)})]
    cases += _channel_cases(out_channels=True, one_by_one=True)
    rule = ("A 1×1 kernel keeps the height and width: (C_in, H, W) with "
            "(C_out, C_in, 1, 1) kernels gives (C_out, H, W).")
    run("corr2d_multi_in_out_1x1", fn, cases, reference=_conv_reference,
        what="F.conv2d (chapter 4's shapes, edge and random cases)",
        signature="corr2d_multi_in_out_1x1(X, K) with X of shape (C_in, H, W) and K of "
                  "shape (C_out, C_in, 1, 1)",
        mistakes=_one_by_one_mistakes(), generic_hint=partial(tensor_hint, rule=rule))
