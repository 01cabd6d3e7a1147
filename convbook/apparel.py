"""Fashion-MNIST as the "Identify the Apparels" competition that chapter 8's tutorial uses:
:func:`write_competition` writes its layout, :func:`score_submission` plays the leaderboard
(chapter 9). Layout written under ``folder``::

    train/1.png ... train/60000.png      train.csv              (id,label)
    test/60001.png ... test/70000.png    test.csv               (id)
                                         sample_submission.csv  (id,label; label 0 for all)
"""
from __future__ import annotations

import os
import shutil
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
_CSVS = ("train.csv", "test.csv", "sample_submission.csv")  # written last, in this order


def write_competition(folder: str | Path, *, n_train: int | None = None,
                      n_test: int | None = None) -> Path:
    """Write the competition files into ``folder`` unless a finished run left them there;
    ``n_train`` and ``n_test`` keep the first images of each split (for the tests).
    Concurrent calls take turns."""
    folder = Path(folder)
    train_set = data.get_dataset("fashion_mnist", train=True)
    n_train = len(train_set) if n_train is None else n_train
    n_test = _NUM_TEST if n_test is None else n_test
    with exclusive(folder / ".lock"):
        if _rows(folder) != [n_train, n_test, n_test]:
            _write(folder, train_set, n_train, n_test)
    return folder


def _rows(folder: Path) -> list[int] | None:
    """The number of rows of each CSV in ``folder``, or ``None`` if one is missing."""
    try:
        return [len(pd.read_csv(folder / name)) for name in _CSVS]
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None


def _write(folder: Path, train_set: Any, n_train: int, n_test: int) -> None:
    """Write every file; the CSVs go last, each atomically, so they mark a finished run."""
    for name in _CSVS:
        (folder / name).unlink(missing_ok=True)
    test_set = data.get_dataset("fashion_mnist", train=False)
    train_ids = np.arange(1, n_train + 1)
    test_ids = np.arange(TEST_FIRST_ID, TEST_FIRST_ID + n_test)
    _write_pngs(folder / "train", train_ids, train_set.data[:n_train].numpy())
    _write_pngs(folder / "test", test_ids, test_set.data[:n_test].numpy())
    tables = (pd.DataFrame({"id": train_ids, "label": train_set.targets[:n_train].numpy()}),
              pd.DataFrame({"id": test_ids}), pd.DataFrame({"id": test_ids, "label": 0}))
    for name, table in zip(_CSVS, tables):
        text = table.to_csv(index=False).encode()
        atomic_write(folder / name, lambda f: f.write(text), suffix=".tmp")


def _write_pngs(folder: Path, ids: np.ndarray, images: np.ndarray) -> None:
    """Save ``images[k]`` as ``folder/<ids[k]>.png`` (replacing the folder), on every core."""
    shutil.rmtree(folder, ignore_errors=True)  # PNGs of an earlier run, perhaps a bigger one
    folder.mkdir(parents=True)

    def write(part: range) -> None:
        for k in part:
            Image.fromarray(images[k]).save(folder / f"{ids[k]}.png")

    workers = os.cpu_count() or 1
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(write, [range(w, len(ids), workers) for w in range(workers)]))


def score_submission(csv_path: str | Path) -> float:
    """Accuracy of a ``submission.csv`` (``id,label``) against the true test labels; a file
    without every test id once with a label in 0..9 is rejected, as a leaderboard would."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"no submission file at {csv_path}")
    try:
        table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(f"{csv_path}: not a readable CSV file with the columns id,label "
                         f"({err})") from err
    columns = [str(c).strip() for c in table.columns]
    if sorted(columns) != ["id", "label"]:
        raise ValueError(f"{csv_path}: expected the columns id,label, found {columns}")
    table.columns = columns
    ids, labels = (_integers(table[name], name, csv_path) for name in ("id", "label"))
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
    for wrong, what in ((values[counts > 1], "duplicate ids"),
                        (np.setdiff1d(values, expected),
                         f"ids are not test ids ({TEST_FIRST_ID}..{expected[-1]})"),
                        (np.setdiff1d(expected, values), "test ids are missing")):
        if len(wrong):
            raise ValueError(f"{csv_path}: {len(wrong)} {what}, e.g. {wrong[:5].tolist()}")
