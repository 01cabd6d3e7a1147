"""convbook.reproduce: shifted seeds, the machine line, and claims strict in CI only."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import convbook as cb
from convbook import reproduce


def draws() -> tuple[float, float, list[float]]:
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()


def test_seed_everything_returns_none_and_reproduces_draws(monkeypatch):
    monkeypatch.delenv(reproduce.SEED_SHIFT_ENV, raising=False)
    assert cb.seed_everything(7) is None
    first = draws()
    cb.seed_everything(7)
    assert draws() == first


def test_a_shift_moves_every_seed_to_base_plus_shift(monkeypatch):
    monkeypatch.setenv(reproduce.SEED_SHIFT_ENV, "3")
    assert reproduce.seed(4) == 7
    cb.seed_everything(4)
    shifted = draws()
    monkeypatch.delenv(reproduce.SEED_SHIFT_ENV)
    cb.seed_everything(7)
    assert draws() == shifted
    cb.seed_everything(4)
    assert draws() != shifted


def test_loaders_and_splits_follow_the_shift(monkeypatch):
    images, labels = torch.arange(40.0).reshape(40, 1), torch.arange(40)
    monkeypatch.delenv(reproduce.SEED_SHIFT_ENV, raising=False)
    plain_split = cb.data.train_val_split(images, labels, 0.25, seed=1)[3]
    plain_batch = next(iter(cb.data.TensorLoader(images, labels, 8, shuffle=True, seed=1)))[1]
    monkeypatch.setenv(reproduce.SEED_SHIFT_ENV, "1")
    assert torch.equal(cb.data.train_val_split(images, labels, 0.25, seed=0)[3], plain_split)
    batch = next(iter(cb.data.TensorLoader(images, labels, 8, shuffle=True, seed=0)))[1]
    assert torch.equal(batch, plain_batch)
    assert not torch.equal(cb.data.train_val_split(images, labels, 0.25, seed=1)[3],
                           plain_split)
    assert torch.equal(reproduce.generator(0).get_state(),
                       torch.Generator().manual_seed(1).get_state())


@pytest.mark.parametrize("value", ["one", "1.5"])
def test_a_shift_that_is_not_a_whole_number_is_refused(monkeypatch, value):
    monkeypatch.setenv(reproduce.SEED_SHIFT_ENV, value)
    with pytest.raises(ValueError, match="CONVBOOK_SEED_SHIFT must be a whole number"):
        cb.seed_everything(0)


def test_machine_names_cpu_threads_torch_and_shift(monkeypatch, capsys):
    monkeypatch.setenv(reproduce.SEED_SHIFT_ENV, "2")
    assert cb.machine() is None
    line = capsys.readouterr().out
    assert line.startswith("Computed on ") and line.count("\n") == 1
    assert f"torch {torch.__version__}" in line
    assert f"{torch.get_num_threads()} threads" in line
    assert "seeds shifted by 2" in line
    monkeypatch.delenv(reproduce.SEED_SHIFT_ENV)
    cb.machine()
    assert "shifted" not in capsys.readouterr().out


def test_a_claim_that_holds_prints_nothing_in_either_mode(monkeypatch, capsys):
    for strict in ("1", "0"):
        monkeypatch.setenv(reproduce.STRICT_ENV, strict)
        assert cb.claim(True, "the CNN wins") is None
        cb.claim(np.bool_(True), "the CNN wins")
        cb.claim(torch.tensor(True), "the CNN wins")
    assert capsys.readouterr().out == ""


def test_a_false_claim_fails_a_strict_run_with_the_statement_and_numbers(monkeypatch):
    monkeypatch.setenv(reproduce.STRICT_ENV, "1")
    with pytest.raises(reproduce.ClaimError, match=r"the CNN wins; not in this run "
                                                    r"\(this run: 0\.88 vs 0\.90\)"):
        cb.claim(0.88 > 0.90, "the CNN wins", this_run="0.88 vs 0.90")


def test_a_false_claim_in_a_readers_run_prints_one_line_and_goes_on(monkeypatch, capsys):
    monkeypatch.delenv(reproduce.STRICT_ENV, raising=False)
    assert cb.claim(False, "the CNN wins", this_run="0.88 vs 0.90") is None
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert "the page says the CNN wins" in out and "(this run: 0.88 vs 0.90)" in out
    assert "the chapter goes on" in out


@pytest.mark.parametrize("not_a_bool", ["x > y", 1, 0.5, None, torch.tensor([True, False])])
def test_a_claim_needs_a_bool_so_a_typo_cannot_pass_silently(not_a_bool):
    with pytest.raises((TypeError, RuntimeError)):
        cb.claim(not_a_bool, "something")


def test_a_claim_needs_a_clear_strict_flag(monkeypatch):
    monkeypatch.setenv(reproduce.STRICT_ENV, "maybe")
    with pytest.raises(ValueError, match=r"CONVBOOK_STRICT='maybe'.*1 or 0"):
        cb.claim(False, "the CNN wins")
