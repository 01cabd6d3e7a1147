"""Shared by every test: the repository root, a throw-away dataset cache (so no test
depends on ``~/.cache``) and figures that are closed after each test."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent  # test modules: from conftest import ROOT


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache folder for the whole run: each dataset is unpacked into it once."""
    return tmp_path_factory.mktemp("convbook-cache")


@pytest.fixture(autouse=True)
def _isolated_cache(session_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point ``CONVBOOK_CACHE`` at the session cache for every unit test.

    Function-scoped on purpose: monkeypatch undoes it after each test, so the chapters
    that nbval executes later in the same run still use the reader's normal cache.
    """
    monkeypatch.setenv("CONVBOOK_CACHE", str(session_cache))


@pytest.fixture(scope="session")
def offline_data() -> Path:
    """``$CONVBOOK_DATA``, the folder holding the MNIST and CIFAR-10 archives."""
    folder = os.environ.get("CONVBOOK_DATA")
    if not folder or not Path(folder).is_dir():
        pytest.fail(
            "CONVBOOK_DATA must name the offline data folder (e.g. ../shared/data); "
            "`make test` sets it when that folder exists"
        )
    return Path(folder)


@pytest.fixture(autouse=True)
def _headless_figures(monkeypatch: pytest.MonkeyPatch):
    """Fail any test whose figure code calls ``plt.show`` (convbook returns figures, the
    notebook shows them); close every figure afterwards. Tests that never draw do not
    import matplotlib for it."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        def refuse(*args, **kwargs):
            raise AssertionError("convbook must return figures, never call plt.show")
        monkeypatch.setattr(plt, "show", refuse)
    yield
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        plt.close("all")
