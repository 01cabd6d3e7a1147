"""Shared fixtures: a throw-away dataset cache, so no test depends on ``~/.cache``."""
from __future__ import annotations

import os
from pathlib import Path

import pytest


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
