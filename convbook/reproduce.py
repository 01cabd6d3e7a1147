"""convbook.reproduce: seeds, the machine a page was computed on, and checked claims:
``CONVBOOK_SEED_SHIFT=N`` adds ``N`` to every seed of the course; ``CONVBOOK_STRICT=1`` (set
by ``make test``) turns a claim that does not hold into an error (CONTRIBUTING.md)."""
from __future__ import annotations

import contextlib
import datetime
import os
import platform
import random

import numpy as np
import torch

from .sources import env_flag

SEED_SHIFT_ENV = "CONVBOOK_SEED_SHIFT"
STRICT_ENV = "CONVBOOK_STRICT"


class ClaimError(AssertionError):
    """A claim of the page does not hold in a strict run (``make test``)."""


def seed_shift() -> int:
    """The shift ``$CONVBOOK_SEED_SHIFT`` asks for (0 when unset)."""
    value = os.environ.get(SEED_SHIFT_ENV, "").strip()
    if not value:
        return 0
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"${SEED_SHIFT_ENV} must be a whole number, got {value!r}") from None


def seed(base: int) -> int:
    """``base`` plus ``$CONVBOOK_SEED_SHIFT``: every seed of the course goes through here."""
    return base + seed_shift()


def seed_everything(base: int) -> None:
    """Seed Python's, NumPy's and PyTorch's (CPU and CUDA) generators with :func:`seed`;
    returns None, so a chapter's seeding cell prints nothing."""
    value = seed(base)
    random.seed(value)
    np.random.seed(value % 2**32)
    torch.manual_seed(value)
    torch.cuda.manual_seed_all(value)


def generator(base: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`seed` (for draws a chapter makes itself)."""
    return torch.Generator().manual_seed(seed(base))


def cpu_model() -> str:
    """The CPU's model name as the operating system reports it."""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def machine() -> None:
    """Print one line saying what computed the outputs below it (every chapter's top)."""
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else cpu_model()
    shift = seed_shift()
    print(f"Computed on {device} with {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, {datetime.date.today():%Y-%m-%d}"
          + (f", seeds shifted by {shift}" if shift else "") + ".")


def claim(holds: bool, statement: str, *, this_run: str = "") -> None:
    """Check ``statement``, what the page says about a trained result: if not ``holds``,
    raise :class:`ClaimError` in a strict run, else print one line with ``this_run``."""
    if isinstance(holds, torch.Tensor) and holds.numel() == 1:
        holds = holds.item()
    if not isinstance(holds, (bool, np.bool_)):
        raise TypeError(f"claim needs a bool to check, got {type(holds).__name__}")
    if holds:
        return
    numbers = f" (this run: {this_run})" if this_run else ""
    if env_flag(STRICT_ENV, "for a reader's run"):
        raise ClaimError(f"the page says: {statement}; not in this run{numbers}")
    print(f"Note: the page says {statement}, but not in this run{numbers}. Training "
          "rounds differently on other machines and seeds, so trained numbers can move "
          "by a point or more; the chapter goes on.")
