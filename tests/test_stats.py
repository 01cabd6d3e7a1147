"""convbook.stats: Wilson and Newcombe intervals against published values and by simulation."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import convbook as cb
from convbook import stats


def test_wilson_matches_newcombes_published_example():
    # Newcombe (1998), Statistics in Medicine 17, 857-872: 81/263 -> 0.2553 to 0.3662.
    low, high = cb.stats.accuracy_interval(81 / 263, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)


def test_wilson_stays_inside_zero_one_at_the_extremes():
    assert cb.stats.accuracy_interval(0.0, 10)[0] == 0.0
    assert cb.stats.accuracy_interval(1.0, 10)[1] == 1.0
    low, high = cb.stats.accuracy_interval(0.0, 10)
    assert high == pytest.approx(0.2775, abs=1e-4)


def test_wilson_covers_the_true_accuracy_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    n, p = 500, 0.9
    counts = rng.binomial(n, p, size=2000)
    covered = [lo <= p <= hi for lo, hi in (cb.stats.accuracy_interval(c / n, n) for c in counts)]
    assert 0.93 <= np.mean(covered) <= 0.97


def test_narrower_for_more_examples():
    wide = cb.stats.accuracy_interval(0.9, 1000)
    narrow = cb.stats.accuracy_interval(0.9, 10000)
    width = lambda iv: iv[1] - iv[0]  # noqa: E731
    assert width(narrow) < width(wide) / 3


def test_difference_matches_newcombes_published_example():
    # Newcombe (1998), method 10: 56/70 - 48/80 = 0.2000, interval 0.0524 to 0.3339.
    low, high = cb.stats.difference_interval(56 / 70, 70, 48 / 80, 80)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)


def test_compare_calls_overlapping_runs_no_measurable_difference():
    text = cb.stats.compare_accuracies(0.910, 6000, 0.915, 6000, names=("MLP", "CNN"))
    assert "no measurable difference" in text
    assert "MLP 0.9100 (95 % CI" in text and "n = 6,000" in text


def test_compare_names_the_higher_one_when_the_difference_is_clear():
    # 0.5555 vs 0.5785 on 6,000 images each: about 2.5 standard errors apart.
    text = cb.stats.compare_accuracies(0.5555, 6000, 0.5785, 6000, names=("val", "test"))
    assert "test is higher" in text and "no measurable" not in text


def test_format_interval():
    assert cb.stats.format_interval(0.915, 6000) == \
        "0.9150 (95 % CI 0.9077–0.9218, n = 6,000)"


@pytest.mark.parametrize("call, message", [
    (lambda: cb.stats.accuracy_interval(0.5, 0), "n must be a positive whole number"),
    (lambda: cb.stats.accuracy_interval(0.5, 10.0), "n must be a positive whole number"),
    (lambda: cb.stats.accuracy_interval(91.5, 6000), r"accuracy must be a fraction in \[0, 1\]"),
])
def test_bad_input_is_refused_with_a_specific_message(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_the_examples_in_the_docstrings_are_what_the_functions_return():
    import doctest
    assert doctest.testmod(cb.stats).failed == 0


def test_paired_interval_by_hand():
    # 30 examples only A gets right, 10 only B, 960 both: difference 0.02,
    # standard error sqrt(40 - 20**2 / 1000) / 1000.
    a = np.array([True] * 30 + [False] * 10 + [True] * 960)
    b = np.array([False] * 30 + [True] * 10 + [True] * 960)
    half = 1.959964 * np.sqrt(40 - 400 / 1000) / 1000
    low, high = cb.stats.paired_difference_interval(a, b)
    assert low == pytest.approx(0.02 - half, abs=1e-6)
    assert high == pytest.approx(0.02 + half, abs=1e-6)
    assert cb.stats.paired_difference_interval(b, a) == pytest.approx((-high, -low))


def test_paired_is_narrower_than_unpaired_for_models_that_mostly_agree():
    rng = np.random.default_rng(0)
    a = rng.random(6000) < 0.85
    b = a.copy()
    b[rng.choice(6000, 150, replace=False)] ^= True        # disagree on 150 images
    paired = cb.stats.paired_difference_interval(a, b)
    unpaired = cb.stats.difference_interval(a.mean(), 6000, b.mean(), 6000)
    assert paired[1] - paired[0] < 0.5 * (unpaired[1] - unpaired[0])


def test_paired_interval_covers_the_true_difference_about_95_percent_of_the_time():
    # Two correlated models: A right with probability 0.80, B agrees with A except on
    # disagreements drawn so that B's accuracy is 0.78.
    rng = np.random.default_rng(1)
    n, runs, covered = 2000, 1000, 0
    for _ in range(runs):
        u = rng.random(n)
        a = u < 0.80
        b = (u < 0.75) | ((u >= 0.80) & (u < 0.83))
        low, high = cb.stats.paired_difference_interval(a, b)
        covered += low <= 0.02 <= high
    assert 0.93 < covered / runs < 0.97


@pytest.mark.parametrize("a, b, message", [
    ([1, 0, 1], [1, 1, 1], "must be a non-empty 1-D sequence of booleans"),
    ([True, False], [True], "must score the same examples"),
    ([], [], "non-empty"),
])
def test_paired_interval_refuses_bad_input(a, b, message):
    with pytest.raises(ValueError, match=message):
        cb.stats.paired_difference_interval(a, b)


def test_confusion_matrix_by_hand():
    cm = stats.confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], num_classes=3)
    assert cm.dtype == torch.int64
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_confusion_matrix_matches_a_naive_loop():
    generator = torch.Generator().manual_seed(0)
    y_true = torch.randint(0, 7, (500,), generator=generator)
    y_pred = torch.randint(0, 7, (500,), generator=generator)
    naive = torch.zeros(7, 7, dtype=torch.int64)
    for t, p in zip(y_true.tolist(), y_pred.tolist()):
        naive[t, p] += 1
    assert torch.equal(stats.confusion_matrix(y_true, y_pred, 7), naive)


@pytest.mark.parametrize("y_true, y_pred, error, message", [
    ([0, 1], [0], ValueError, r"y_true has 2 entries but y_pred has 1"),
    ([0, 3], [0, 1], ValueError, r"y_true must lie in \[0, 3\)"),
    ([0, 1], [-1, 1], ValueError, r"y_pred must lie in \[0, 3\)"),
    ([0.0, 1.0], [0, 1], TypeError, r"y_true must hold integer class indices"),
])
def test_confusion_matrix_rejects_bad_input(y_true, y_pred, error, message):
    with pytest.raises(error, match=message):
        stats.confusion_matrix(y_true, y_pred, 3)


def test_per_class_accuracy_is_each_rows_diagonal_share():
    cm = stats.confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], num_classes=3)
    assert stats.per_class_accuracy(cm).tolist() == pytest.approx([0.5, 1.0, 2 / 3])


def test_per_class_accuracy_rejects_a_class_without_examples():
    with pytest.raises(ValueError, match=r"classes \[1\] have no examples"):
        stats.per_class_accuracy(torch.tensor([[3, 0], [0, 0]]))


def test_a_rounded_accuracy_gives_the_interval_of_its_count():
    exact = cb.stats.accuracy_interval(5490 / 6000, 6000)
    assert cb.stats.accuracy_interval(0.91504, 6000) == exact  # 5490.24 examples: 5490


def test_few_disagreements_get_the_adjusted_interval_that_keeps_its_coverage():
    same = [True] * 50 + [False] * 50
    low, high = cb.stats.paired_difference_interval(same, same)
    assert low < 0 < high and high == pytest.approx(-low)  # no disagreement: centred on 0
    half = 1.96 * math.sqrt(1) / 102  # 1/2 in each discordant cell, n + 2 examples
    assert high == pytest.approx(half, rel=1e-3)
    a = [True] * 8 + [True] * 992
    b = [False] * 8 + [True] * 992
    low, high = cb.stats.paired_difference_interval(a, b)
    assert low == pytest.approx(8 / 1002 - 1.96 * math.sqrt(9 - 64 / 1002) / 1002, rel=1e-3)
    rng = np.random.default_rng(0)
    for right_a, right_b, truth in [  # about 5 disagreements in 1,000: one-sided, balanced
            (lambda u: u < 0.805, lambda u: u < 0.800, 0.005),
            (lambda u: u < 0.8, lambda u: (u < 0.797) | ((u >= 0.8) & (u < 0.802)), 0.001)]:
        covered, runs = 0, 2000
        for _ in range(runs):
            u = rng.random(1000)
            low, high = cb.stats.paired_difference_interval(right_a(u), right_b(u))
            covered += low <= truth <= high
        assert covered / runs > 0.94
