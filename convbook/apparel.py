"""Fashion-MNIST in the format of the "Identify the Apparels" practice competition.

Chapter 7 follows a tutorial written for that competition, whose data arrives as one PNG
per image plus CSV files rather than as a torchvision dataset. :func:`write_competition`
recreates that layout from the official Fashion-MNIST files (the competition's images are
Fashion-MNIST), and :func:`score_submission` plays the leaderboard: it scores a
``submission.csv`` against the true test labels.

Layout written under ``folder``::

    train/1.png ... train/60000.png      train.csv              (id,label)
    test/60001.png ... test/70000.png    test.csv               (id)
                                         sample_submission.csv  (id,label; label 0 for all)
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from . import data
from .sources import atomic_write, exclusive

__all__ = ["TEST_FIRST_ID", "write_competition", "score_submission"]

#: Training images have ids 1..60000, test images 60001..70000, as in the competition.
TEST_FIRST_ID = 60_001
_NUM_TEST = 10_000
_NUM_CLASSES = 10
_MARKER = ".complete"  # written last: its presence means every other file is in place
_LOCK = ".lock"  # held while a process checks or writes the folder
_SAMPLE_LABEL = 0


def write_competition(folder: str | Path, *, n_train: int | None = None,
                      n_test: int | None = None) -> Path:
    """Write the competition files into ``folder`` and return it.

    Idempotent: the marker file written last by a finished run records ``n_train`` and
    the size of every file; when it is there and every file still has its recorded size
    (one ``stat`` each, well under a second), nothing is written. Otherwise (first run,
    an interrupted one, or files deleted or truncated since) every file is (re)written
    and the marker goes last. ``n_train`` and ``n_test`` keep only the first images of
    each split (for tests and quick demos); :func:`score_submission` needs the complete
    test set, the default. Writing all 70,000 PNGs takes about 10 s on two CPU cores. Concurrent calls on one folder (chapters 7 and 8 run side by
    side under ``make test``) take turns: each holds an exclusive lock on ``folder/.lock``
    while it checks or writes, so none reads a PNG that another is rewriting.
    """
    folder = Path(folder)
    train_set = data.get_dataset("fashion_mnist", train=True)
    if n_train is None:
        n_train = len(train_set)
    n_test = _NUM_TEST if n_test is None else n_test
    if not 0 < n_train <= len(train_set):
        raise ValueError(f"n_train must be in 1..{len(train_set)}, got {n_train}")
    if not 0 < n_test <= _NUM_TEST:
        raise ValueError(f"n_test must be in 1..{_NUM_TEST}, got {n_test}")
    with exclusive(folder / _LOCK):
        _write_if_incomplete(folder, train_set, n_train, n_test)
    return folder


def _write_if_incomplete(folder: Path, train_set: Any, n_train: int, n_test: int) -> None:
    """Write every competition file unless the marker says the folder is complete."""
    stamp = {"n_train": n_train, "n_test": n_test}
    marker = folder / _MARKER
    if _is_complete(folder, marker, stamp):
        return
    marker.unlink(missing_ok=True)
    test_set = data.get_dataset("fashion_mnist", train=False)

    train_ids = np.arange(1, n_train + 1)
    test_ids = np.arange(TEST_FIRST_ID, TEST_FIRST_ID + n_test)
    _write_pngs(folder / "train", train_ids, train_set.data[:n_train].numpy())
    _write_pngs(folder / "test", test_ids, test_set.data[:n_test].numpy())
    _remove_stale_pngs(folder / "train", train_ids[-1])
    _remove_stale_pngs(folder / "test", test_ids[-1])

    labels = train_set.targets[:n_train].numpy()
    pd.DataFrame({"id": train_ids, "label": labels}).to_csv(folder / "train.csv", index=False)
    pd.DataFrame({"id": test_ids}).to_csv(folder / "test.csv", index=False)
    sample = pd.DataFrame({"id": test_ids, "label": _SAMPLE_LABEL})
    sample.to_csv(folder / "sample_submission.csv", index=False)
    record = json.dumps({**stamp, "sizes": _file_sizes(folder, n_train, n_test)}).encode()
    atomic_write(marker, lambda f: f.write(record), suffix=".tmp")


_CSVS = ("train.csv", "test.csv", "sample_submission.csv")


def _expected_files(folder: Path, n_train: int, n_test: int) -> list[Path]:
    """Every file :func:`write_competition` writes for these sizes, the marker aside."""
    train = [folder / "train" / f"{i}.png" for i in range(1, n_train + 1)]
    test = [folder / "test" / f"{i}.png" for i in range(TEST_FIRST_ID, TEST_FIRST_ID + n_test)]
    return [folder / name for name in _CSVS] + train + test


def _file_sizes(folder: Path, n_train: int, n_test: int) -> list[int] | None:
    """The size in bytes of each expected file, in order; ``None`` if one is missing."""
    try:
        return [path.stat().st_size for path in _expected_files(folder, n_train, n_test)]
    except OSError:
        return None


def _is_complete(folder: Path, marker: Path, stamp: dict) -> bool:
    """Whether the marker is from a run with ``stamp`` and every file has its size."""
    try:
        recorded = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(recorded, dict) or {k: recorded.get(k) for k in stamp} != stamp:
        return False
    sizes = recorded.get("sizes")
    return sizes is not None and _file_sizes(folder, stamp["n_train"], stamp["n_test"]) == sizes


def _write_pngs(folder: Path, ids: np.ndarray, images: np.ndarray) -> None:
    """Save ``images[k]`` as ``folder/<ids[k]>.png``, on every core (PIL releases the GIL)."""
    folder.mkdir(parents=True, exist_ok=True)

    def write(part: range) -> None:
        for k in part:
            Image.fromarray(images[k]).save(folder / f"{ids[k]}.png")

    workers = os.cpu_count() or 1
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(write, [range(w, len(ids), workers) for w in range(workers)]))


def _remove_stale_pngs(folder: Path, last_id: int) -> None:
    """Delete PNGs past ``last_id`` left by an earlier run with more images than this one."""
    for path in folder.glob("*.png"):
        if path.stem.isdigit() and int(path.stem) > last_id:
            path.unlink()


def score_submission(csv_path: str | Path) -> float:
    """Accuracy of a ``submission.csv`` (``id,label``) against the true test labels.

    Every test id (60001..70000) must appear exactly once with an integer label in 0..9;
    anything else raises a ``ValueError`` that says what is wrong, as a leaderboard would
    reject the file rather than score it.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"no submission file at {csv_path}")
    try:
        table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(
            f"{csv_path}: not a readable CSV file with the columns id,label ({err})"
        ) from err
    columns = [str(c).strip() for c in table.columns]
    if sorted(columns) != ["id", "label"]:
        raise ValueError(f"{csv_path}: expected the columns id,label, found {columns}")
    table.columns = columns
    ids = _integers(table["id"], "id", csv_path)
    labels = _integers(table["label"], "label", csv_path)
    _check_ids(ids, csv_path)
    bad = sorted(set(labels[(labels < 0) | (labels >= _NUM_CLASSES)].tolist()))
    if bad:
        raise ValueError(f"{csv_path}: labels must be in 0..{_NUM_CLASSES - 1}, found {bad[:5]}")
    truth = data.get_dataset("fashion_mnist", train=False).targets.numpy()
    predicted = np.empty(_NUM_TEST, dtype=np.int64)
    predicted[ids - TEST_FIRST_ID] = labels
    return float((predicted == truth).mean())


def _integers(column: pd.Series, name: str, csv_path: Path) -> np.ndarray:
    text = column.str.strip()
    bad = text[~text.str.fullmatch(r"-?\d+")]
    if len(bad):
        rows = ", ".join(f"row {i + 2}: {v!r}" for i, v in bad.head(5).items())
        raise ValueError(f"{csv_path}: column {name!r} must hold integers; {rows}")
    return text.astype(np.int64).to_numpy()


def _check_ids(ids: np.ndarray, csv_path: Path) -> None:
    expected = np.arange(TEST_FIRST_ID, TEST_FIRST_ID + _NUM_TEST)
    values, counts = np.unique(ids, return_counts=True)
    duplicated = values[counts > 1]
    if len(duplicated):
        raise ValueError(
            f"{csv_path}: {len(duplicated)} duplicate ids, e.g. {duplicated[:5].tolist()}"
        )
    extra = np.setdiff1d(values, expected)
    if len(extra):
        raise ValueError(
            f"{csv_path}: {len(extra)} ids are not test ids "
            f"({TEST_FIRST_ID}..{expected[-1]}), e.g. {extra[:5].tolist()}"
        )
    missing = np.setdiff1d(expected, values)
    if len(missing):
        raise ValueError(
            f"{csv_path}: {len(missing)} test ids are missing, e.g. {missing[:5].tolist()}"
        )
