"""The harness of every checker (chapters 2–7): run a learner's function on a list of cases
against a reference, then report the smallest failing case and name a known mistake."""
from __future__ import annotations

import math
import signal
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

MAX_VALUES = 48
TIME_LIMIT = 2.0  # seconds a learner's function may run on one case
WIDTH = 88
NO_BREAK = "\u00a0"


class CheckFailed(AssertionError):
    """A learner's function gave a wrong result; the message says on which case and why."""


@dataclass
class Case:
    """One call of the learner's function: named positional arguments, then options."""

    label: str
    args: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """The values in its tensors or, without tensors, the sum of its size arguments."""
        tensors = [v for v in self.args.values() if isinstance(v, torch.Tensor)]
        if tensors:
            return sum(t.numel() for t in tensors)
        return sum(sum(v) if isinstance(v, tuple) else 0 for v in self.args.values())

    def copy_args(self) -> dict[str, Any]:
        """The arguments with every tensor cloned, so no call can change the case."""
        return {k: v.clone() if isinstance(v, torch.Tensor) else v
                for k, v in self.args.items()}


@dataclass
class Mistake:
    """A common wrong version: ``variant`` returns what it would give; ``hint`` explains."""

    hint: str
    variant: Callable[..., Any]


class _TimeLimit(BaseException):
    """Time is up: a BaseException, so that the learner's ``except Exception`` lets it pass."""


@contextmanager
def _time_limit(seconds: float):
    """Interrupt the block after ``seconds`` with SIGALRM, where there is one to use."""
    main = threading.current_thread() is threading.main_thread()
    if not (main and hasattr(signal, "setitimer")):
        yield
        return

    def on_alarm(signum, frame):
        raise _TimeLimit

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def same(expected: Any, obtained: Any, atol: float = 1e-5) -> bool:
    """Equal type and structure, tensors of equal shape and dtype and close values; an
    ``expected`` of ``...`` matches anything (a mistake that fixes only some parts)."""
    if expected is Ellipsis:
        return True
    if isinstance(expected, torch.Tensor):
        return (isinstance(obtained, torch.Tensor) and obtained.shape == expected.shape
                and obtained.dtype == expected.dtype
                and torch.allclose(obtained.detach().cpu(), expected, rtol=1e-4, atol=atol))
    if isinstance(expected, tuple):
        return (isinstance(obtained, tuple) and len(obtained) == len(expected)
                and all(same(e, o, atol) for e, o in zip(expected, obtained)))
    return type(obtained) is type(expected) and obtained == expected


def _nested(values: Any) -> str:
    """Nested lists of numbers as text: ``19.0`` as ``19``, ``0.333333`` as ``0.3333``."""
    if isinstance(values, list):
        return "[" + ", ".join(_nested(v) for v in values) + "]"
    value = float(values)
    return str(int(value)) if math.isfinite(value) and value == int(value) else f"{value:.4g}"


def describe(value: Any) -> str:
    """A tensor's shape, its values if few, its dtype if not float32; else a short repr."""
    if isinstance(value, torch.Tensor):
        dtype = "" if value.dtype == torch.float32 else f", dtype {value.dtype}"
        text = f"tensor of shape {tuple(value.shape)}{dtype}"
        if 0 < value.numel() <= MAX_VALUES:
            text += ": " + _nested(value.detach().cpu().double().tolist())
        return text
    if isinstance(value, tuple) and any(isinstance(v, torch.Tensor) for v in value):
        return "(" + "; ".join(describe(v) for v in value) + ")"
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


def _call(fn: Callable, case: Case, signature: str) -> tuple[Any, tuple[str, str] | None]:
    """``fn``'s result on a copy of the case, and ``(problem, hint)`` if it raised, ran
    past the time limit or changed an input."""
    args = case.copy_args()
    start = time.perf_counter()
    slow = ("The cases are small, so this is an endless loop or far too much work: "
            "loop over the output positions only, once each.")
    try:
        with _time_limit(TIME_LIMIT):
            result = fn(*args.values(), **case.options)
    except _TimeLimit:
        return None, (f"it was still running after {TIME_LIMIT:.1f} s, the time limit", slow)
    except Exception as error:  # the learner's code may raise anything: report it
        return None, (f"it raised {type(error).__name__}: {error}",
                      f"The check calls {signature}; make sure your function accepts "
                      "this call and these shapes.")
    if time.perf_counter() - start > TIME_LIMIT:
        return None, (f"it took longer than {TIME_LIMIT:.1f} s, the time limit", slow)
    for name, value in args.items():
        if isinstance(value, torch.Tensor) and not torch.equal(value, case.args[name]):
            return None, (f"it changed its input {name} in place",
                          f"Do not modify {name} (no {name} -= ..., {name}[...] = ..., "
                          f"{name}.add_(...)): compute a new tensor and return it.")
    return result, None


def _diagnose(case: Case, expected: Any, obtained: Any, mistakes: Sequence[Mistake],
              generic_hint: Callable[[Case, Any, Any], str], atol: float) -> str:
    """The hint of the first mistake that gives exactly ``obtained``, else the generic one."""
    for mistake in mistakes:
        try:
            wrong = mistake.variant(*case.copy_args().values(), **case.options)
        except Exception:  # a mistake that cannot apply to this case
            continue
        if same(wrong, obtained, atol):
            return mistake.hint
    return generic_hint(case, expected, obtained)


def _failure(name: str, case: Case, problem: str, hint: str, details: str) -> CheckFailed:
    """The exception a learner reads: which case, what went wrong, and a hint."""
    lines = [f"{name} failed: {problem}.", f"Smallest failing case ({case.label}):"]
    lines += [f"  {k} = {describe(v)}" for k, v in case.args.items()]
    if case.options:
        lines.append("  options: " + ", ".join(f"{k}={v!r}" for k, v in case.options.items()))
    lines += details.splitlines() + [f"Hint: {hint}"]
    return CheckFailed(wrap(lines))


def wrap(lines: Sequence[str]) -> str:
    """Join the lines, each wrapped to a notebook's width, never inside :func:`nobreak` text."""
    wrapped = [textwrap.fill(line, WIDTH, subsequent_indent="    ", break_on_hyphens=False)
               for line in lines]
    return "\n".join(wrapped).replace(NO_BREAK, " ")


def run(name: str, fn: Callable, cases: Sequence[Case], *, reference: Callable,
        what: str, signature: str, mistakes: Sequence[Mistake] = (),
        generic_hint: Callable[[Case, Any, Any], str], atol: float = 1e-5) -> None:
    """Check ``fn`` on ``cases`` against ``reference``; after a wrong result, the smaller
    cases not yet run are tried too, smallest first, to report the smallest failing one."""
    if not callable(fn):
        raise CheckFailed(wrap([f"{name} needs a function, got {type(fn).__name__}: pass "
                                "the function itself, without calling it"]))

    def failure(case: Case) -> CheckFailed | None:
        expected = reference(*case.copy_args().values(), **case.options)
        obtained, problem = _call(fn, case, signature)
        if problem is not None:
            return _failure(name, case, *problem, details="")
        if same(expected, obtained, atol):
            return None
        hint = _diagnose(case, expected, obtained, mistakes, generic_hint, atol)
        details = f"Expected: {describe(expected)}\nObtained: {describe(obtained)}"
        return _failure(name, case, "wrong result", hint, details)

    for index, case in enumerate(cases):
        first = failure(case)
        if first is None:
            continue
        if "time limit" not in str(first):  # do not run a slow function again and again
            smaller = [c for c in cases[index + 1:] if c.size < case.size]
            for small in sorted(smaller, key=lambda c: c.size):
                found = failure(small)
                if found is not None:
                    raise found
        raise first
    print(f"{name}: all {len(cases)} cases match {what}.")


def feedback(checker: Callable[[Callable], None], fn: Callable) -> str:
    """The message ``checker`` gives about a wrong ``fn`` (chapters 2–7 print one); an
    ``AssertionError`` if the checker accepts ``fn``."""
    try:
        checker(fn)
    except CheckFailed as failure:
        return str(failure)
    raise AssertionError(f"{checker.__name__} accepted {getattr(fn, '__name__', fn)!r}, "
                         "which it should have rejected")


def nobreak(text: str) -> str:
    """``text`` that a failure message never breaks across lines (a formula, code)."""
    return text.replace(" ", NO_BREAK)


def ints(gen: torch.Generator, *shape: int) -> torch.Tensor:
    """Small random integers as float32, so expected outputs are exact and readable."""
    return torch.randint(-3, 4, shape, generator=gen).float()


def randint(gen: torch.Generator, low: int, high: int) -> int:
    """A random int in [low, high]."""
    return int(torch.randint(low, high + 1, (1,), generator=gen))


def _largest_difference(expected: torch.Tensor, obtained: torch.Tensor) -> str:
    """Where two same-shape tensors differ most, e.g. ``index (0, 1): expected 3, ...``."""
    gap = (obtained.detach().cpu().double() - expected.double()).abs().nan_to_num(math.inf)
    index = tuple(int(i) for i in torch.unravel_index(gap.argmax(), gap.shape))
    return (f"largest difference at index {index}: expected {expected[index].item():.4g}, "
            f"obtained {obtained[index].item():.4g}")


def _shape_hint(expected: tuple[int, ...], obtained: tuple[int, ...], rule: str) -> str:
    """Name an off-by-one, swapped or otherwise wrong output shape."""
    if len(obtained) != len(expected):
        return (f"The output should have {len(expected)} dimensions, shape {expected}, "
                f"but has shape {obtained}. {rule}")
    if obtained == expected[:-2] + expected[-2:][::-1]:
        return f"Height and width are swapped. {rule}"
    names = (["channel"] * (len(expected) - 2) + ["row", "column"] if len(expected) >= 2
             else ["entry"])
    diffs = [(o - e, n) for o, e, n in zip(obtained, expected, names) if o != e]
    if all(abs(d) == 1 for d, _ in diffs):
        words = " and ".join(f"one {n} too {'many' if d > 0 else 'few'}"
                             for d, n in diffs)
        return f"The output has {words}: an off-by-one in the output size. {rule}"
    return f"The output should have shape {expected}, not {obtained}. {rule}"


def _unfilled(expected: torch.Tensor, obtained: torch.Tensor) -> str:
    """A hint when only the last row and/or column differ and were left at zero."""
    if expected.dim() < 2:
        return ""
    wrong = ~torch.isclose(obtained.detach().cpu(), expected, rtol=1e-4, atol=1e-5)
    rows, cols = wrong.any(dim=-1), wrong.any(dim=-2)
    last_row = not rows[..., :-1].any() and bool(rows[..., -1].any())
    last_col = not cols[..., :-1].any() and bool(cols[..., -1].any())
    if (last_row or last_col) and (obtained.detach().cpu()[wrong] == 0).all():
        edge = "last row" if last_row else "last column"
        return (f"The {edge} was never filled in: the loop stops one position early. "
                "Loop over every output position, range(Y.shape[0]) and range(Y.shape[1]).")
    return ""


def tensor_hint(case: Case, expected: Any, obtained: Any, *, rule: str) -> str:
    """What can be said about a wrong tensor result: its type, shape, dtype or values."""
    if not isinstance(obtained, torch.Tensor):
        missing = " (a function without a return statement returns None)"
        return (f"Return a torch.Tensor, not {type(obtained).__name__}"
                f"{missing if obtained is None else ''}.")
    if obtained.shape != expected.shape:
        return _shape_hint(tuple(expected.shape), tuple(obtained.shape), rule)
    if obtained.dtype != expected.dtype:
        return (f"Return a {expected.dtype} tensor like the input, not {obtained.dtype}: "
                "create the output with torch.zeros(..., dtype=X.dtype).")
    return _unfilled(expected, obtained) or (
        f"The shape is right but not every value: {_largest_difference(expected, obtained)}. "
        "Work out that output cell by hand.")
