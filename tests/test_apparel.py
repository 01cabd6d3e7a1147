"""convbook.apparel: the competition folder and the leaderboard scorer, on real labels."""
from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from convbook import apparel, data
from convbook.sources import exclusive

N_TRAIN, N_TEST = 120, 30  # a small folder; chapters 8 and 9 write all 70,000 images
LAST_TEST_ID = apparel.TEST_FIRST_ID + N_TEST - 1


@pytest.fixture(scope="module")
def fashion():
    return {
        split: data.get_dataset("fashion_mnist", train=split == "train", download=False)
        for split in ("train", "test")
    }


@pytest.fixture(scope="module")
def competition(tmp_path_factory, fashion):
    return apparel.write_competition(tmp_path_factory.mktemp("apparel"), n_train=N_TRAIN,
                                     n_test=N_TEST)


@pytest.fixture
def truth(fashion) -> pd.DataFrame:
    ids = np.arange(apparel.TEST_FIRST_ID, apparel.TEST_FIRST_ID + 10_000)
    return pd.DataFrame({"id": ids, "label": fashion["test"].targets.numpy()})


def write(table: pd.DataFrame, tmp_path, name="submission.csv"):
    path = tmp_path / name
    table.to_csv(path, index=False)
    return path


# --------------------------------------------------------------------- the folder


def test_layout_and_csvs(competition, fashion):
    train = pd.read_csv(competition / "train.csv")
    test = pd.read_csv(competition / "test.csv")
    sample = pd.read_csv(competition / "sample_submission.csv")
    assert list(train.columns) == ["id", "label"] and list(test.columns) == ["id"]
    assert train["id"].tolist() == list(range(1, N_TRAIN + 1))
    assert train["label"].tolist() == fashion["train"].targets[:N_TRAIN].tolist()
    assert test["id"].tolist() == list(range(60_001, LAST_TEST_ID + 1))
    assert sample["id"].tolist() == test["id"].tolist() and sample["label"].nunique() == 1
    assert len(list((competition / "train").glob("*.png"))) == N_TRAIN
    assert len(list((competition / "test").glob("*.png"))) == N_TEST


@pytest.mark.parametrize(
    "split, id_, index",
    [("train", 1, 0), ("train", N_TRAIN, N_TRAIN - 1), ("test", 60_001, 0),
     ("test", LAST_TEST_ID, N_TEST - 1)],
)
def test_pngs_hold_the_dataset_images(competition, fashion, split, id_, index):
    png = np.array(Image.open(competition / split / f"{id_}.png"))
    assert png.dtype == np.uint8 and png.shape == (28, 28)
    assert np.array_equal(png, fashion[split].data[index].numpy())


def test_second_call_writes_nothing(competition):
    before = {p: p.stat().st_mtime_ns for p in competition.rglob("*")}
    assert apparel.write_competition(competition, n_train=N_TRAIN, n_test=N_TEST) == competition
    assert {p: p.stat().st_mtime_ns for p in competition.rglob("*")} == before


def test_incomplete_folder_is_rewritten(tmp_path, competition):
    folder = tmp_path / "copy"
    folder.mkdir()
    # an interrupted run: some PNGs and the first CSV, but not the last one
    (folder / "train.csv").write_bytes((competition / "train.csv").read_bytes())
    (folder / "train").mkdir()
    (folder / "train" / "1.png").write_bytes(b"half a png")
    (folder / "train" / f"{N_TRAIN + 5}.png").write_bytes(b"left over from a bigger run")
    (folder / "test").mkdir()
    (folder / "test" / f"{LAST_TEST_ID + 1}.png").write_bytes(b"left over from a bigger run")
    apparel.write_competition(folder, n_train=N_TRAIN, n_test=N_TEST)
    assert np.array(Image.open(folder / "train" / "1.png")).shape == (28, 28)
    assert not (folder / "train" / f"{N_TRAIN + 5}.png").exists()
    assert len(list((folder / "test").glob("*.png"))) == N_TEST


# ---------------------------------------------------------------------- scoring


def test_one_label_for_all_as_the_sample_submission_scores_one_tenth(competition, truth,
                                                                     tmp_path):
    label = pd.read_csv(competition / "sample_submission.csv")["label"].unique().item()
    path = write(truth.assign(label=label), tmp_path)  # each class is a tenth of the test set
    assert apparel.score_submission(path) == pytest.approx(0.1)


def test_perfect_and_imperfect_submissions(truth, tmp_path):
    assert apparel.score_submission(write(truth.sample(frac=1, random_state=0), tmp_path)) == 1.0
    wrong = truth.copy()
    wrong.loc[:249, "label"] = (wrong.loc[:249, "label"] + 1) % 10
    assert apparel.score_submission(write(wrong, tmp_path)) == pytest.approx(0.975)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.iloc[:-1], "1 test ids are missing, e.g. \\[70000\\]"),
        (lambda t: pd.concat([t, t.iloc[:2]]), "2 duplicate ids"),
        (lambda t: t.assign(id=t["id"].replace(60_001, 5)), "not test ids .* e.g. \\[5\\]"),
        (lambda t: t.assign(label=t["label"] + 0.5), "'label' must hold integers; row 2: '9.5'"),
        (lambda t: t.assign(label="shirt"), "'label' must hold integers; row 2: 'shirt'"),
        (lambda t: t.assign(label=10), "labels must be in 0..9, found \\[10\\]"),
        (lambda t: t.assign(label=-1), "labels must be in 0..9"),
        (lambda t: t.rename(columns={"label": "class"}), "expected the columns id,label"),
        (lambda t: t.assign(extra=1), "expected the columns id,label"),
    ],
    ids=[
        "missing", "duplicate", "extra", "float", "text",
        "too-big", "negative", "renamed", "extra-column",
    ],
)
def test_bad_submissions_are_rejected(truth, tmp_path, change, message):
    path = write(change(truth), tmp_path)
    with pytest.raises(ValueError, match=message) as caught:
        apparel.score_submission(path)
    assert str(path) in str(caught.value)


def test_missing_submission_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no submission file"):
        apparel.score_submission(tmp_path / "nope.csv")


# ------------------------------------------------------- hostile folders and files


def test_a_folder_written_for_other_sizes_is_rewritten(tmp_path, fashion):
    folder = apparel.write_competition(tmp_path / "comp", n_train=20, n_test=N_TEST)
    assert apparel.write_competition(folder, n_train=10, n_test=N_TEST) == folder
    assert pd.read_csv(folder / "train.csv")["id"].tolist() == list(range(1, 11))
    assert sorted(int(p.stem) for p in (folder / "train").glob("*.png")) == list(range(1, 11))
    assert np.array_equal(np.array(Image.open(folder / "train" / "7.png")),
                          fashion["train"].data[6].numpy())


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\x00"],
                         ids=["empty", "binary"])
def test_unreadable_submission_files_are_named(tmp_path, content):
    path = tmp_path / "submission.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not a readable CSV") as caught:
        apparel.score_submission(path)
    assert str(path) in str(caught.value)


def test_a_second_writer_waits_for_the_first(tmp_path):
    """Chapters 8 and 9 may call write_competition at once (make test runs them side by
    side): the second must not check or rewrite the folder while the first holds it."""
    folder = tmp_path / "comp"
    done = threading.Event()
    with exclusive(folder / ".lock"):         # as a first writer still at work
        writer = threading.Thread(
            target=lambda: (apparel.write_competition(folder, n_train=20, n_test=N_TEST),
                            done.set()))
        writer.start()
        assert not done.wait(0.5), "the second writer did not wait for the lock"
        assert not (folder / "train").exists(), "it wrote while the first held the lock"
    writer.join(timeout=120)
    assert done.is_set() and (folder / "sample_submission.csv").exists()
    assert pd.read_csv(folder / "train.csv")["id"].tolist() == list(range(1, 21))
