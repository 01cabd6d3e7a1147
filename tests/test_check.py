"""convbook.check: each checker passes the course's own operations and fails, with the
right hint, on a catalogue of the wrong versions learners typically write (chapters 2–6).

Every failure test asserts the message: the hint, and where it matters the case shown.
"""
import math
import time

import numpy as np
import pytest
import torch

import convbook as cb
from convbook import ops


def failure(checker, fn, **options) -> str:
    """The CheckFailed message ``checker`` raises on ``fn`` (the test fails if none)."""
    with pytest.raises(cb.check.CheckFailed) as info:
        checker(fn, **options)
    assert isinstance(info.value, AssertionError)
    return str(info.value)


# --- corr2d (chapter 2) -------------------------------------------------------------------

def corr2d_loop(X, K, rows_extra=0, cols_extra=0, stop_early=0):
    """A learner's double loop, with knobs for the classic off-by-one mistakes."""
    h, w = K.shape
    Y = torch.zeros(X.shape[0] - h + 1 + rows_extra, X.shape[1] - w + 1 + cols_extra)
    for i in range(min(Y.shape[0], X.shape[0] - h + 1) - stop_early):
        for j in range(min(Y.shape[1], X.shape[1] - w + 1)):
            Y[i, j] = (X[i:i + h, j:j + w] * K).sum()
    return Y


def test_corr2d_passes_the_course_implementations(capsys):
    for fn in (ops.corr2d, ops.corr2d_fast, corr2d_loop):
        cb.check.corr2d(fn)
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["corr2d: all 16 cases match F.conv2d (chapter 2's examples, "
                     "edge and random cases)."] * 3


def test_corr2d_flipped_kernel_is_named_true_convolution_on_the_smallest_case():
    message = failure(cb.check.corr2d, lambda X, K: ops.corr2d(X, K.flip(0, 1)))
    assert "true convolution (kernel rotated by 180°)" in message
    assert "Smallest failing case (one-row input):" in message
    assert "X = tensor of shape (1, 5)" in message
    assert "Expected: tensor of shape (1, 4)" in message
    assert "Obtained: tensor of shape (1, 4)" in message
    # On a one-column kernel flipping upside down is the 180° rotation; skip those.
    upside_down = failure(cb.check.corr2d, lambda X, K: ops.corr2d(
        X, K.flip(0) if K.shape[1] > 1 else K))
    assert "The kernel is flipped upside down" in upside_down


@pytest.mark.parametrize("knobs, words", [
    ({"rows_extra": -1, "cols_extra": -1}, "one row too few and one column too few"),
    ({"rows_extra": 1}, "one row too many"),
    ({"stop_early": 1}, "The last row was never filled in"),
])
def test_corr2d_off_by_one_shapes_and_loops(knobs, words):
    message = failure(cb.check.corr2d, lambda X, K: corr2d_loop(X, K, **knobs))
    assert words in message and "wrong result" in message


def test_corr2d_in_place_modification_is_reported():
    def zeroes_input(X, K):
        Y = ops.corr2d(X, K)
        X.zero_()
        return Y

    message = failure(cb.check.corr2d, zeroes_input)
    assert "it changed its input X in place" in message
    assert "Do not modify the inputs" in message


@pytest.mark.parametrize("wrong, words", [
    (lambda X, K: ops.corr2d(X, K).long(), "Return a torch.float32 tensor like the input, "
                                          "not torch.int64"),
    (lambda X, K: ops.corr2d(X, K)[None], "should have 2 dimensions"),
    (lambda X, K: ops.corr2d(X, K).T, "Height and width are swapped"),
    (lambda X, K: ops.corr2d(X, K).tolist(), "Return a torch.Tensor, not list"),
    (lambda X, K: None, "not NoneType (a function without a return statement"),
])
def test_corr2d_wrong_type_dtype_or_shape(wrong, words):
    assert words in failure(cb.check.corr2d, wrong)


def test_corr2d_exceptions_are_reported_with_the_case_and_the_call():
    message = failure(cb.check.corr2d, lambda X, K: 1 / 0)
    assert "it raised ZeroDivisionError: division by zero" in message
    assert "The check calls corr2d(X, K) with X of shape (H, W)" in message
    assert message.count("Smallest failing case") == 1


def endless(X, K):
    """Never returns, and even swallows ordinary exceptions."""
    while True:
        try:
            time.sleep(0.01)
        except Exception:
            pass


@pytest.mark.parametrize("slow", [endless, lambda X, K: time.sleep(5)])
def test_corr2d_too_slow_is_stopped_at_the_time_limit(slow):
    start = time.perf_counter()
    message = failure(cb.check.corr2d, slow, time_limit=0.2)
    assert time.perf_counter() - start < 3
    assert "it was still running after 0.2 s, the time limit" in message
    assert "endless loop" in message


def test_corr2d_needs_a_function():
    X = torch.ones(3, 3)
    message = failure(cb.check.corr2d, ops.corr2d(X, X[:2, :2]))
    assert "needs a function, got Tensor" in message


# --- conv_output_shape (chapter 3) --------------------------------------------------------

def shape_formula(rule):
    """A learner's conv_output_shape from a one-dimension formula rule(n, k, p, s, d)."""
    return lambda *pairs: tuple(rule(*dim) for dim in zip(*pairs))


def test_conv_output_shape_passes_the_course_implementation(capsys):
    cb.check.conv_output_shape(ops.conv_output_shape)
    cb.check.conv_output_shape(
        shape_formula(lambda n, k, p, s, d: (n + 2 * p - d * (k - 1) - 1) // s + 1))
    assert capsys.readouterr().out.splitlines() == [
        "conv_output_shape: all 20 cases match F.conv2d (chapter 3's examples, edge "
        "and random cases)."] * 2


@pytest.mark.parametrize("rule, words", [
    (lambda n, k, p, s, d: (n + p - d * (k - 1) - 1) // s + 1, "added on each side"),
    (lambda n, k, p, s, d: (n + 2 * p - d * (k - 1) - 1) // s, "Off by one"),
    (lambda n, k, p, s, d: (n + 2 * p - k) // s + 1, "spans d(k - 1) + 1 pixels, not k"),
    (lambda n, k, p, s, d: (n + 2 * p - d * k) // s + 1, "not d·k"),
    (lambda n, k, p, s, d: math.ceil((n + 2 * p - d * (k - 1) - 1) / s) + 1, "Round down"),
    (lambda n, k, p, s, d: n + 2 * p - d * (k - 1), "Divide by the stride"),
    (lambda n, k, p, s, d: (n + 2 * p - d * (k - 1) - 1) / s + 1, "integer division (//)"),
    (lambda n, k, p, s, d: np.int64((n + 2 * p - d * (k - 1) - 1) // s + 1),
     "Return Python ints"),
])
def test_conv_output_shape_formula_mistakes(rule, words):
    message = failure(cb.check.conv_output_shape, shape_formula(rule))
    assert words in message
    assert "floor((n + 2p - d(k - 1) - 1) / s) + 1" in message or "Python ints" in message
    assert "Expected: (" in message and "Obtained: (" in message


def test_conv_output_shape_swapped_list_and_int_only_versions():
    swapped = failure(cb.check.conv_output_shape,
                      lambda *pairs: ops.conv_output_shape(*pairs)[::-1])
    assert "Return (height, width) in that order" in swapped
    as_list = failure(cb.check.conv_output_shape,
                      lambda *pairs: list(ops.conv_output_shape(*pairs)))
    assert "Return a tuple (height, width) of two ints" in as_list
    ints_only = failure(cb.check.conv_output_shape,
                        lambda n, k, p=0, s=1, d=1: (n + 2 * p - k) // s + 1)
    assert "it raised TypeError" in ints_only
    assert "each a (height, width) pair" in ints_only
    assert "input_hw = (" in ints_only and "dilation = (" in ints_only
