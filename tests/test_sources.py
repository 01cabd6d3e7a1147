"""convbook.sources: finding, verifying, unpacking and downloading the dataset files."""
from __future__ import annotations

import gzip
import hashlib
import random
import struct
import tarfile
from pathlib import Path

import pytest
from torchvision import datasets

from convbook import sources
from convbook.sources import CorruptDatasetError, DatasetNotFoundError

FASHION_FILES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]
DEBIAN = sources.DEBIAN_FASHION_MNIST  # the real package folder, before any monkeypatch


@pytest.fixture
def nowhere(tmp_path, monkeypatch) -> Path:
    """No offline source at all: empty CONVBOOK_DATA and cache, no Debian package."""
    for sub in ("data", "cache"):
        (tmp_path / sub).mkdir()
    monkeypatch.setenv("CONVBOOK_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("CONVBOOK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(sources, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    return tmp_path


def fashion_source(folder: Path, replace: dict[str, bytes] | None = None) -> Path:
    """A Debian-style folder of the four Fashion-MNIST .gz files, some replaced by bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in FASHION_FILES:
        target = folder / f"{name}.gz"
        if replace and name in replace:
            target.write_bytes(replace[name])
        else:
            target.symlink_to(DEBIAN / f"{name}.gz")
    return folder


def tree(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.lstat().st_mtime_ns for p in folder.rglob("*")}


# ------------------------------------------------------------------------- locating


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVBOOK_CACHE", str(tmp_path / "c"))
    assert sources.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("CONVBOOK_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert sources.cache_dir() == tmp_path / ".cache" / "convbook"


@pytest.mark.parametrize(
    "name, cls", [("fashion_mnist", datasets.FashionMNIST), ("mnist", datasets.MNIST)]
)
def test_locate_gives_a_folder_torchvision_opens_offline(name, cls):
    folder = sources.locate(name, download=False)
    assert len(cls(folder, train=False, download=False)) == 10_000


def test_locate_cifar10_extracts_the_archive_into_the_cache(session_cache):
    folder = sources.locate("cifar10", download=False)
    assert folder == session_cache
    assert len(datasets.CIFAR10(folder, train=False, download=False)) == 10_000


def test_locate_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        sources.locate("imagenet")


def test_source_is_never_written_and_unpacks_into_the_cache(tmp_path, monkeypatch):
    src = fashion_source(tmp_path / "src" / "FashionMNIST" / "raw").parents[1]
    cache = tmp_path / "cache"
    monkeypatch.setenv("CONVBOOK_CACHE", str(cache))
    monkeypatch.setattr(sources, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    before = tree(src)
    assert sources.locate("fashion_mnist", root=src, download=False) == cache
    assert tree(src) == before
    unpacked = sorted(p.name for p in (cache / "FashionMNIST" / "raw").iterdir())
    assert unpacked == sorted(FASHION_FILES)


def test_a_ready_root_is_used_in_place(nowhere, offline_data):
    unpacked = sources.locate("mnist", root=offline_data, download=False)
    assert unpacked == nowhere / "cache"
    assert sources.locate("mnist", root=unpacked, download=False) == unpacked


def test_a_corrupt_cache_copy_is_unpacked_again(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("CONVBOOK_CACHE", str(cache))
    sources.locate("fashion_mnist", download=False)
    labels = cache / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte"
    good = labels.read_bytes()
    labels.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    assert sources.locate("fashion_mnist", download=False) == cache
    assert labels.read_bytes() == good


# ---------------------------------------------------------------- missing and corrupt


@pytest.mark.parametrize("name", ["fashion_mnist", "mnist", "cifar10"])
def test_missing_dataset_lists_every_place_and_the_fixes(name, nowhere, tmp_path):
    with pytest.raises(DatasetNotFoundError) as caught:
        sources.locate(name, root=tmp_path / "mine", download=False)
    message = str(caught.value)
    for place in ("mine", "data", "cache"):
        assert str(tmp_path / place) in message
    assert "CONVBOOK_DATA=" in message
    assert "download=True" in message and "CONVBOOK_OFFLINE" in message
    if name == "fashion_mnist":
        assert str(tmp_path / "no-debian") in message
        assert "apt-get install dataset-fashion-mnist" in message


def test_offline_mode_never_downloads(nowhere, monkeypatch, offline_data):
    monkeypatch.setitem(sources.MIRRORS, "mnist", [(offline_data / "MNIST" / "raw").as_uri() + "/"])
    monkeypatch.setenv("CONVBOOK_OFFLINE", "1")
    with pytest.raises(DatasetNotFoundError, match="CONVBOOK_OFFLINE"):
        sources.locate("mnist")
    assert not any((nowhere / "cache").iterdir())


def idx(magic: int, shape: tuple[int, ...], payload: bytes) -> bytes:
    return struct.pack(f">I{len(shape)}I", magic, *shape) + payload


@pytest.mark.parametrize(
    "content, message",
    [
        (lambda: b"not gzip at all", "not a valid gzip"),
        (lambda: gzip.compress(random.Random(0).randbytes(5000))[:2000], "not a valid gzip"),
        (lambda: gzip.compress(idx(0x803, (60000, 28, 28), b"\0" * 1000)), "MD5"),
        (lambda: gzip.compress(idx(0x803, (60000, 28, 28), b"\0" * 47_040_000), 1), "MD5"),
    ],
    ids=["not-gzip", "truncated-gzip", "too-short", "wrong-md5"],
)
def test_corrupt_archive_names_the_file(content, message, nowhere):
    src = fashion_source(nowhere / "src", {"train-images-idx3-ubyte": content()})
    with pytest.raises(CorruptDatasetError, match=message) as caught:
        sources.locate("fashion_mnist", root=src, download=False)
    assert str(src / "train-images-idx3-ubyte.gz") in str(caught.value)
    assert not (nowhere / "cache" / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").exists()


def test_corrupt_ready_file_names_the_file(nowhere, offline_data):
    raw = sources.locate("mnist", root=offline_data, download=False) / "MNIST" / "raw"
    labels = raw / "train-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:-1] + b"\x09")
    with pytest.raises(CorruptDatasetError, match="MD5") as caught:
        sources.locate("mnist", root=nowhere / "cache", download=False)
    assert str(labels) in str(caught.value)


def test_bad_cifar_archive_names_the_file(nowhere):
    archive = nowhere / "data" / "cifar-10-python.tar.gz"
    archive.write_bytes(gzip.compress(b"this is no tar archive" * 100))
    with pytest.raises(CorruptDatasetError, match="not a valid tar") as caught:
        sources.locate("cifar10", download=False)
    assert str(archive) in str(caught.value)


def test_cifar_archive_with_a_corrupt_batch_is_rejected(nowhere):
    folder = nowhere / "batches" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = datasets.CIFAR10.train_list + datasets.CIFAR10.test_list
    for base in [name for name, _ in batches] + ["batches.meta"]:
        (folder / base).write_bytes(b"not the real batch")
    archive = nowhere / "data" / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    with pytest.raises(CorruptDatasetError, match="MD5") as caught:
        sources.locate("cifar10", download=False)
    assert str(archive) in str(caught.value)


# ------------------------------------------------------------------------- downloads


@pytest.fixture
def mirror(tmp_path) -> dict:
    """A good file, a corrupt copy and a missing one, each served by a file:// URL."""
    good = tmp_path / "good" / "blob.bin"
    bad = tmp_path / "bad" / "blob.bin"
    for path, content in ((good, b"convbook" * 4096), (bad, b"corrupt!" * 4096)):
        path.parent.mkdir()
        path.write_bytes(content)
    return {
        "good": good.as_uri(),
        "bad": bad.as_uri(),
        "missing": (tmp_path / "missing" / "blob.bin").as_uri(),
        "md5": hashlib.md5(good.read_bytes()).hexdigest(),
        "dest": tmp_path / "out" / "blob.bin",
    }


def test_download_falls_back_past_missing_and_corrupt_mirrors(mirror, capsys):
    urls = [mirror["missing"], mirror["bad"], mirror["good"]]
    dest = sources.download(urls, mirror["dest"], mirror["md5"])
    assert dest == mirror["dest"]
    assert hashlib.md5(dest.read_bytes()).hexdigest() == mirror["md5"]
    assert [p.name for p in dest.parent.iterdir()] == ["blob.bin"]
    printed = capsys.readouterr().out.splitlines()
    assert printed == [f"Downloading blob.bin from {url}" for url in urls]


def test_download_that_fails_everywhere_lists_each_url_and_leaves_nothing(mirror):
    urls = [mirror["missing"], mirror["bad"]]
    with pytest.raises(DatasetNotFoundError) as caught:
        sources.download(urls, mirror["dest"], mirror["md5"])
    for url in urls:
        assert url in str(caught.value)
    assert "does not match" in str(caught.value)
    assert list(mirror["dest"].parent.iterdir()) == []


def test_locate_downloads_from_the_next_mirror(nowhere, monkeypatch, offline_data):
    good = (offline_data / "MNIST" / "raw").as_uri() + "/"
    monkeypatch.setitem(sources.MIRRORS, "mnist", [(nowhere / "gone").as_uri() + "/", good])
    folder = sources.locate("mnist", download=True)
    assert folder == nowhere / "cache"
    assert datasets.MNIST(folder, train=False).targets[:5].tolist() == [7, 2, 1, 0, 4]


def test_locate_reports_the_failed_download_and_where_it_looked(nowhere, monkeypatch):
    gone = (nowhere / "gone").as_uri() + "/"
    monkeypatch.setitem(sources.MIRRORS, "fashion_mnist", [gone])
    with pytest.raises(DatasetNotFoundError) as caught:
        sources.locate("fashion_mnist", download=True)
    message = str(caught.value)
    assert gone + "train-images-idx3-ubyte.gz" in message
    assert str(nowhere / "no-debian") in message
    assert not list((nowhere / "cache").rglob("*.gz"))


# --------------------------------------------------- hostile caches, mirrors and files


@pytest.fixture
def cifar_source(nowhere, offline_data) -> Path:
    """$CONVBOOK_DATA holding the real CIFAR-10 archive, the cache empty."""
    archive = nowhere / "data" / "cifar-10-python.tar.gz"
    archive.symlink_to(offline_data / "cifar-10-python.tar.gz")
    return archive


@pytest.mark.parametrize("error", [
    PermissionError(13, "Permission denied"), OSError(28, "No space left on device"),
], ids=["read-only", "disk-full"])
def test_cifar_into_an_unwritable_cache_blames_the_cache(cifar_source, nowhere, monkeypatch,
                                                         error):
    def refuse(*args, **kwargs):
        raise error

    monkeypatch.setattr(sources.tempfile, "mkstemp", refuse)
    with pytest.raises(sources.CacheError) as caught:
        sources.locate("cifar10", download=False)
    message = str(caught.value)
    assert "not a valid tar" not in message
    assert str(nowhere / "cache") in message and "CONVBOOK_CACHE" in message
    assert error.strerror in message


def test_a_cache_that_is_not_a_folder_is_named(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.write_text("a file, not a folder")
    monkeypatch.setenv("CONVBOOK_CACHE", str(cache))
    monkeypatch.setattr(sources, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    src = fashion_source(tmp_path / "src")
    with pytest.raises(sources.CacheError, match="CONVBOOK_CACHE") as caught:
        sources.locate("fashion_mnist", root=src, download=False)
    assert str(cache) in str(caught.value)
    assert isinstance(caught.value, OSError)


def test_a_full_disk_during_download_is_not_a_mirror_failure(mirror, monkeypatch):
    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sources.os, "fsync", full)
    with pytest.raises(sources.CacheError, match="No space left on device.*CONVBOOK_CACHE"):
        sources.download([mirror["good"], mirror["good"]], mirror["dest"], mirror["md5"])


@pytest.mark.parametrize("value, on", [("1", True), ("0", False), ("", False)])
def test_a_switch_is_on_for_1_only(value, on, monkeypatch):
    monkeypatch.setenv("CONVBOOK_OFFLINE", value)
    assert sources.env_flag("CONVBOOK_OFFLINE") is on


@pytest.mark.parametrize("value", ["true", "yes", "maybe"])
def test_offline_rejects_other_values_instead_of_reading_them_as_off(value, nowhere,
                                                                     monkeypatch):
    monkeypatch.setenv("CONVBOOK_OFFLINE", value)
    with pytest.raises(ValueError, match=rf"CONVBOOK_OFFLINE='{value}'.*1 or 0"):
        sources.locate("mnist")


class Stall(__import__("http.server").server.BaseHTTPRequestHandler):
    """Promises 1 MB, sends 10 bytes, then goes silent for 5 s."""

    def do_GET(self):
        import time

        self.send_response(200)
        self.send_header("Content-Length", str(1 << 20))
        self.end_headers()
        self.wfile.write(b"x" * 10)
        self.wfile.flush()
        time.sleep(5)

    def log_message(self, *args):
        pass


@pytest.fixture
def stalled_url():
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stall)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/blob.bin"
    server.shutdown()
    server.server_close()


def test_a_silent_mirror_times_out_and_the_next_one_is_tried(mirror, stalled_url,
                                                             monkeypatch):
    import time

    monkeypatch.setattr(sources, "READ_TIMEOUT_S", 0.5)
    start = time.monotonic()
    dest = sources.download([stalled_url, mirror["good"]], mirror["dest"], mirror["md5"])
    assert time.monotonic() - start < 4
    assert hashlib.md5(dest.read_bytes()).hexdigest() == mirror["md5"]
    with pytest.raises(DatasetNotFoundError, match="timed out"):
        sources.download([stalled_url], mirror["dest"].with_name("other.bin"), mirror["md5"])
    assert [p.name for p in mirror["dest"].parent.iterdir()] == ["blob.bin"]
