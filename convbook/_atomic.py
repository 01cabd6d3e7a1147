"""Writing files so that a crash or a kill never leaves half a file under its final name.

Used by :mod:`convbook.sources` (dataset files in the cache), :mod:`convbook.train`
(checkpoints) and :mod:`convbook.apparel` (the competition folder). Each write goes to a
hidden temporary file beside the destination, is flushed to disk and renamed into place
with ``os.replace``. While it is written, the temporary file holds an exclusive ``flock``,
so a later run can tell the temporaries of a killed process (unlocked) from those of a
process still writing (locked) and remove only the former. :func:`exclusive` lets
processes that share a folder take turns.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Callable

try:
    import fcntl
except ImportError:  # Windows: no flock, so only age tells a dead write from a live one
    fcntl = None

#: A temporary file younger than this is never removed: its writer may be starting up.
MIN_STALE_AGE_S = 60.0
#: Without ``flock`` (Windows), a temporary file is stale only after this long.
UNLOCKED_STALE_AGE_S = 24 * 3600.0


def atomic_write(dest: Path, write: Callable[[BinaryIO], object], suffix: str) -> Path:
    """Call ``write(file)`` on ``.<dest.name>.<random><suffix>``, then rename it to ``dest``."""
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            if fcntl is not None:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def remove_stale(folder: Path, pattern: str) -> list[Path]:
    """Delete the temporaries matching ``pattern`` in ``folder`` that no live write holds.

    Returns the paths removed. Files that cannot be opened or removed are left alone:
    cleaning up is a courtesy and must never make a run fail.
    """
    removed = []
    now = time.time()
    for path in folder.glob(pattern):
        try:
            age = now - path.stat().st_mtime
            if age < MIN_STALE_AGE_S or (fcntl is None and age < UNLOCKED_STALE_AGE_S):
                continue
            with open(path, "rb") as f:
                if fcntl is not None:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                path.unlink()
            removed.append(path)
        except OSError:  # locked by a live writer, vanished, or not ours to delete
            continue
    return removed


@contextlib.contextmanager
def exclusive(lock: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the file ``lock`` (created if missing) inside the
    block, so that processes sharing a folder take turns (a no-op without ``flock``)."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
