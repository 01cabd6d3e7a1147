"""tests/nbval_approx.py: trained numbers pass within tolerance, regressions still fail."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import nbval_approx
from conftest import ROOT

TAGS = ("nbval-approx", "nbval-ignore-output")


@pytest.mark.parametrize("got, expected", [
    ("val_acc 0.9234", "val_acc 0.9222"),          # cross-CPU drift in the third decimal
    ("loss 2.301  acc 71.9%", "loss 2.210  acc 71.3%"),
    ("wrong: 523 of 10,000", "wrong: 470 of 10,000"),
    ("  0.9350   12\n", "  0.95 12\n"),          # re-aligned columns, numbers inside bounds
])
def test_drift_inside_the_tolerance_matches(got, expected):
    assert nbval_approx.compare_text(got, expected) == (True, [])


@pytest.mark.parametrize("got, expected, moved", [
    ("val_acc 0.6600", "val_acc 0.7133", "0.6600 vs committed 0.7133 (allowed ±0.02)"),
    ("acc 68.0%", "acc 71.3%", "68.0% vs committed 71.3% (allowed ±2)"),
    ("loss 2.9", "loss 2.3", "2.9 vs committed 2.3 (allowed ±0.345)"),
])
def test_drift_beyond_the_tolerance_is_reported(got, expected, moved):
    matches, drifts = nbval_approx.compare_text(got, expected)
    assert not matches and [str(d) for d in drifts] == [moved]


def test_words_must_still_match_exactly():
    assert nbval_approx.compare_text("val_acc 0.9222", "test_acc 0.9222") == (False, [])
    assert nbval_approx.compare_text("epoch 1\nepoch 2", "epoch 1") == (False, [])


def test_numbers_inside_names_are_words_not_numbers():
    assert nbval_approx.compare_text("conv1 0.5", "conv2 0.5") == (False, [])


def _chapter_line() -> str:
    """A printed line with an accuracy from a committed chapter's trained cell."""
    for path in sorted((ROOT / "chapters").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "code" or not set(TAGS) & set(cell.metadata.get("tags", [])):
                continue
            for output in cell.outputs:
                for line in output.get("text", "").splitlines():
                    if re.search(r"acc\w*\W+0\.\d{3}", line):
                        return line
    raise AssertionError("no chapter prints an accuracy in a trained cell")


def _run_nbval(tmp_path: Path, printed: str, committed: str, tag: str) -> subprocess.CompletedProcess:
    """nbval, with this plugin, on a one-cell notebook printing ``printed``."""
    cell = nbformat.v4.new_code_cell(f"print({printed!r})", execution_count=1)
    cell.metadata["tags"] = [tag]
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=committed + "\n")]
    nb = nbformat.v4.new_notebook(cells=[cell])
    nbformat.write(nb, tmp_path / "chapter_copy.ipynb")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "nbval_approx",
         "--nbval", "--nbval-current-env", "chapter_copy.ipynb"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def _move_first_accuracy(line: str, by: float) -> str:
    match = re.search(r"(acc\w*\W+)(0\.\d+)", line)
    value = float(match.group(2)) + by
    return line[:match.start(2)] + f"{value:.{len(match.group(2)) - 2}f}" + line[match.end(2):]


def test_a_chapter_line_passes_with_cross_cpu_drift_and_fails_beyond_it(tmp_path):
    line = _chapter_line()
    drifted = _move_first_accuracy(line, 0.004)
    assert _run_nbval(tmp_path, drifted, line, "nbval-approx").returncode == 0

    regressed = _move_first_accuracy(line, -0.03)
    result = _run_nbval(tmp_path, regressed, line, "nbval-approx")
    assert result.returncode == 1, result.stdout
    assert "nbval-approx: numbers beyond tolerance" in result.stdout


def test_untagged_cells_are_still_compared_digit_by_digit(tmp_path):
    line = _chapter_line()
    result = _run_nbval(tmp_path, _move_first_accuracy(line, 0.004), line, "untagged")
    assert result.returncode == 1, result.stdout
