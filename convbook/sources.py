"""Where the course's dataset files come from, checked before anything reads them.

Every chapter loads data through :mod:`convbook.data`, which asks :func:`locate` for a
folder that ``torchvision.datasets`` can open with ``download=False``. ``locate`` looks,
in order, in

1. the ``root`` you pass,
2. ``$CONVBOOK_DATA`` (a folder with torchvision layouts such as ``MNIST/raw/*.gz``
   and/or archives such as ``cifar-10-python.tar.gz``),
3. the Debian package folder :data:`DEBIAN_FASHION_MNIST` (Fashion-MNIST only),
4. the cache (:func:`cache_dir`),

and, if none has the files, downloads them into the cache from every mirror in
:data:`MIRRORS` in turn (unless told not to). Sources are only read: anything that must be
decompressed or extracted is written into the cache, through a temporary file and
``os.replace``, so a crash never leaves a half-written file under its final name
(:func:`atomic_write`, which checkpoints and chapter 7's competition folder use too).

Every file is checked against a known MD5 before it is used (MD5 is the one integrity
check: a file that is truncated, too long or not the official one fails it), so a bad copy
raises :class:`CorruptDatasetError` naming the file instead of yielding garbage
tensors. Chapters call only :func:`cache_dir` (chapters 7 and 8); the module is here for
readers who want to know where the bytes come from and for instructors preparing an offline classroom
(copy the files into one folder and point ``$CONVBOOK_DATA`` at it). This docstring is the
code's one description of the search order; README.md's "Data without the network" is the
readers' one, and every other page links there.
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import os
import tarfile
import tempfile
import time
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Callable

from torchvision import datasets
from torchvision.datasets.utils import calculate_md5, check_integrity

try:
    import fcntl
except ImportError:  # Windows: no flock, so only age tells a dead write from a live one
    fcntl = None

__all__ = ["DatasetNotFoundError", "CorruptDatasetError", "CacheError", "DEBIAN_FASHION_MNIST",
           "MIRRORS", "cache_dir", "locate", "download"]


class DatasetNotFoundError(FileNotFoundError):
    """No source holds the dataset and downloading it was not allowed or failed."""


class CorruptDatasetError(ValueError):
    """A dataset file exists but is truncated, corrupt or not the file it claims to be."""


class CacheError(OSError):
    """The cache folder cannot be written: read-only, full, or not a folder."""


def _cache_error(path: Path, err: OSError) -> CacheError:
    reason = err.strerror or str(err) or type(err).__name__
    return CacheError(
        err.errno,
        f"cannot write {path} in the convbook cache {cache_dir()}: {reason}. Free space "
        "there, or choose another folder with CONVBOOK_CACHE=/path/to/writable/folder",
    )


#: Where ``apt-get install dataset-fashion-mnist`` puts the four Fashion-MNIST files.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

#: Base URLs tried in order for each dataset; a file's URL is base + file name.
#: torchvision's own mirrors come first; Fashion-MNIST also has its GitHub repository.
MIRRORS: dict[str, list[str]] = {
    "fashion_mnist": [
        *datasets.FashionMNIST.mirrors,
        "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
    ],
    "mnist": list(datasets.MNIST.mirrors),
    "cifar10": [datasets.CIFAR10.url.rsplit("/", 1)[0] + "/"],
}

# MD5 of the *decompressed* idx files. The Debian package recompresses the official .gz
# files, so their .gz MD5s differ from torchvision's; the content does not. These sums were
# computed once from the decompressed official files (MNIST: the .gz files whose MD5s match
# torchvision's; Fashion-MNIST: the Debian files, byte-identical in content to the release).
_IDX_MD5 = {
    "fashion_mnist": {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
    "mnist": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
}
_CIFAR_DIR = datasets.CIFAR10.base_folder
_CIFAR_MD5 = dict(
    datasets.CIFAR10.train_list
    + datasets.CIFAR10.test_list
    + [[datasets.CIFAR10.meta["filename"], datasets.CIFAR10.meta["md5"]]]
)

_CHUNK = 1 << 20

#: Each file gets this long from a mirror, all reads together; then the next mirror is tried.
DOWNLOAD_DEADLINE_S = 20 * 60.0
#: How long one read may wait for the first byte (``urlopen``'s per-read timeout).
READ_TIMEOUT_S = 30.0
#: Downloads at least this large print their progress as one updating line.
PROGRESS_MIN_BYTES = 10 << 20


#: The sub-folder torchvision opens for each dataset.
_FOLDERS = {"fashion_mnist": "FashionMNIST/raw", "mnist": "MNIST/raw", "cifar10": _CIFAR_DIR}


def cache_dir() -> Path:
    """The folder ``convbook`` writes into: ``$CONVBOOK_CACHE`` or ``~/.cache/convbook``."""
    env = os.environ.get("CONVBOOK_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "convbook"


def env_flag(name: str, unset: str = "") -> bool:
    """Environment variable ``name`` as a switch: ``1`` is on, ``0`` or unset is off, and
    anything else is an error rather than a silent "off" (``unset`` says what unset means)."""
    value = os.environ.get(name, "").strip()
    if value not in ("", "0", "1"):
        raise ValueError(f"{name}={value!r} is not a switch; set it to 1 or 0"
                         + (f" (or leave it unset {unset})" if unset else ""))
    return value == "1"


def _offline() -> bool:
    """``$CONVBOOK_OFFLINE`` as a boolean."""
    return env_flag("CONVBOOK_OFFLINE", "to allow downloads")


def _folder(name: str) -> str:
    """Where under a source folder torchvision expects ``name``'s files."""
    if name not in _FOLDERS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(_FOLDERS)}")
    return _FOLDERS[name]


# --------------------------------------------------------------------------- checksums

def _check_md5(path: Path, expected: str) -> None:
    actual = calculate_md5(path)
    if actual != expected:
        raise CorruptDatasetError(
            f"{path}: MD5 {actual} does not match the official {expected}; the file is corrupt "
            "or not the official release. Delete it and load the dataset again."
        )


# ------------------------------------------------------------- writing atomically


#: A temporary file younger than this is never removed: its writer may be starting up.
MIN_STALE_AGE_S = 60.0
#: Without ``flock`` (Windows), a temporary file is stale only after this long.
UNLOCKED_STALE_AGE_S = 24 * 3600.0


def atomic_write(dest: Path, write: Callable[[BinaryIO], object], suffix: str) -> Path:
    """Call ``write(file)`` on ``.<dest.name>.<random><suffix>``, then rename it to ``dest``.

    The temporary file is flushed to disk before the rename and holds an exclusive
    ``flock`` while it is written, so :func:`remove_stale` can tell a killed write from a
    live one.
    """
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


def _cache_write(dest: Path, write: Callable[[BinaryIO], object]) -> Path:
    """:func:`atomic_write` into the cache, whose ``OSError`` becomes a :class:`CacheError`.

    ``write`` must not let the ``OSError`` of a *source* escape (wrap it).
    """
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write(dest, write, suffix=".part")
    except OSError as err:
        raise _cache_error(dest, err) from err


def _remove_stale_parts(cache: Path) -> None:
    """Delete the ``.part`` files of killed runs from the cache and its dataset folders."""
    for folder in (cache, *(cache / sub for sub in _FOLDERS.values())):
        remove_stale(folder, ".*.part")


def _unpack_verified(source: BinaryIO, dest: Path, md5: str, archive: Path, kind: str) -> None:
    """Copy the decompressed ``source`` to ``dest`` in the cache, hashing as it goes.

    Only bytes with the official ``md5`` are renamed to ``dest``. A ``source`` that cannot
    be read or holds other bytes raises :class:`CorruptDatasetError` naming ``archive``
    (not a kind of ``OSError``, so it is never taken for the cache's fault).
    """
    def write(out: BinaryIO) -> None:
        digest = hashlib.md5()
        while True:
            try:
                chunk = source.read(_CHUNK)
            except (OSError, EOFError, zlib.error) as err:
                raise CorruptDatasetError(f"{archive}: not a valid {kind} ({err})") from err
            if not chunk:
                break
            digest.update(chunk)
            out.write(chunk)
        if digest.hexdigest() != md5:
            raise CorruptDatasetError(
                f"{archive}: {dest.name} has MD5 {digest.hexdigest()}, not the official "
                f"{md5}; the file is corrupt or not the official release"
            )
    _cache_write(dest, write)


def _extract_cifar(archive: Path, dest_root: Path) -> None:
    """Copy the CIFAR-10 batch files out of ``archive`` into ``dest_root``, verified.

    Errors reading the archive blame the archive; errors writing blame the cache.
    """
    found = set()
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and base in _CIFAR_MD5:
                    _unpack_verified(tar.extractfile(member), dest_root / _CIFAR_DIR / base,
                                     _CIFAR_MD5[base], archive, "tar archive")
                    found.add(base)
    except CacheError:
        raise
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise CorruptDatasetError(f"{archive}: not a valid tar archive ({err})") from err
    missing = sorted(set(_CIFAR_MD5) - found)
    if missing:
        raise CorruptDatasetError(f"{archive}: the archive lacks {missing}")


# ------------------------------------------------------------------- finding the files


def _ready(name: str, folder: Path) -> bool:
    """True when torchvision can open ``name`` under ``folder`` (files verified).

    Raises CorruptDatasetError when the files are there but wrong.
    """
    sums = _CIFAR_MD5 if name == "cifar10" else _IDX_MD5[name]
    files = {folder / _folder(name) / base: md5 for base, md5 in sums.items()}
    if not all(path.is_file() for path in files):
        return False
    for path, md5 in files.items():
        _check_md5(path, md5)
    return True


def _archives(name: str, folder: Path) -> list[Path] | None:
    """The compressed files for ``name`` directly in ``folder`` or in torchvision's layout."""
    if name == "cifar10":
        archive = folder / datasets.CIFAR10.filename
        return [archive] if archive.is_file() else None
    for base in (folder / _folder(name), folder):
        paths = [base / f"{f}.gz" for f in _IDX_MD5[name]]
        if all(p.is_file() for p in paths):
            return paths
    return None


def _cache_ready(name: str, cache: Path) -> bool:
    """Whether the cache already holds a good copy; a bad one is simply unpacked again."""
    try:
        return _ready(name, cache)
    except CorruptDatasetError:
        return False


def _expected_files(name: str) -> str:
    if name == "cifar10":
        return f"{_CIFAR_DIR}/ or {datasets.CIFAR10.filename}"
    return f"{_folder(name)}/*-ubyte[.gz] or *-ubyte.gz"


def _unpack_into_cache(name: str, archives: list[Path], cache: Path) -> Path:
    if name == "cifar10":
        _extract_cifar(archives[0], cache)
    else:
        for gz in archives:
            file = gz.name[: -len(".gz")]
            with gzip.open(gz, "rb") as source:
                _unpack_verified(source, cache / _folder(name) / file, _IDX_MD5[name][file], gz,
                                 "gzip file")
    return cache


def _sources(name: str, root: str | Path | None) -> list[tuple[str, Path]]:
    places = []
    if root is not None:
        places.append(("root argument", Path(root).expanduser()))
    if os.environ.get("CONVBOOK_DATA"):
        places.append(("$CONVBOOK_DATA", Path(os.environ["CONVBOOK_DATA"]).expanduser()))
    if name == "fashion_mnist":
        places.append(("Debian package", DEBIAN_FASHION_MNIST))
    places.append(("cache", cache_dir()))
    return places


def locate(name: str, root: str | Path | None = None, download: bool | None = None) -> Path:
    """A folder from which ``torchvision.datasets`` opens ``name`` with ``download=False``.

    ``name`` is ``"fashion_mnist"``, ``"mnist"`` or ``"cifar10"``. ``download=None``
    downloads when no offline copy exists unless ``$CONVBOOK_OFFLINE=1``; ``False``
    never downloads; ``True`` always may. See the module docstring for the search order.
    """
    _folder(name)  # an unknown name fails here
    cache = cache_dir()
    _remove_stale_parts(cache)
    looked = []
    for label, folder in _sources(name, root):
        if _ready(name, folder):
            return folder
        archives = _archives(name, folder)
        if archives is not None:
            if folder != cache and _cache_ready(name, cache):
                return cache
            return _unpack_into_cache(name, archives, cache)
        looked.append(f"{label}: {folder} (no {_expected_files(name)})")
    allowed = (not _offline()) if download is None else download
    if not allowed:
        raise DatasetNotFoundError(_not_found_message(name, looked, None))
    try:
        return _unpack_into_cache(name, _download_archives(name, cache), cache)
    except DatasetNotFoundError as err:
        raise DatasetNotFoundError(_not_found_message(name, looked, str(err))) from err


def _not_found_message(name: str, looked: list[str], download_error: str | None) -> str:
    lines = [f"Dataset {name!r} not found. Looked in:"]
    lines += [f"  - {place}" for place in looked]
    lines.append("Fixes:")
    if name == "fashion_mnist":
        lines.append("  - install the Debian package: sudo apt-get install dataset-fashion-mnist")
    lines.append(
        "  - set CONVBOOK_DATA=/path/to/data, a folder holding torchvision's layout "
        f"({_folder(name)}/...) or the original archives"
    )
    if download_error is None:
        lines.append("  - allow downloading: pass download=True, or unset CONVBOOK_OFFLINE")
    else:
        lines.append(f"Downloading failed too:\n{download_error}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- download


def _download_archives(name: str, cache: Path) -> list[Path]:
    if name == "cifar10":
        dest = cache / datasets.CIFAR10.filename
        urls = [base + dest.name for base in MIRRORS[name]]
        return [download(urls, dest, datasets.CIFAR10.tgz_md5)]
    resources = (datasets.FashionMNIST if name == "fashion_mnist" else datasets.MNIST).resources
    raw = cache / _folder(name)
    return [
        download([base + file for base in MIRRORS[name]], raw / file, md5)
        for file, md5 in resources
    ]


def download(url_list: list[str], dest: str | Path, md5: str) -> Path:
    """Fetch ``dest`` from the first URL in ``url_list`` that serves bytes with ``md5``.

    Each try streams into a temporary file beside ``dest``; only a verified file is
    renamed to ``dest``. A failed try leaves nothing behind. A mirror that is slower than
    :data:`DOWNLOAD_DEADLINE_S` for the whole file is given up for the next one. Files of
    :data:`PROGRESS_MIN_BYTES` or more show their progress as one line on stdout, updated
    with a carriage return (which terminals, Jupyter and Colab all render in place).
    When every URL fails, :class:`DatasetNotFoundError` lists each URL and why it failed;
    a cache that cannot be written raises :class:`CacheError` at once.
    """
    dest = Path(dest)
    if not url_list:
        raise ValueError(f"no URLs given to download {dest.name}")
    if check_integrity(dest, md5):
        return dest
    failures = []
    for url in url_list:
        try:
            _cache_write(dest, lambda f: _fetch_verified(url, f, md5, dest.name))
            print(f"Downloaded {dest.name} from {url}")
            return dest
        except _MirrorError as err:
            failures.append(f"  - {url}: {err}")
    raise DatasetNotFoundError(
        f"could not download {dest.name}; every mirror failed:\n" + "\n".join(failures)
    )


class _MirrorError(Exception):
    """One mirror failed (network error, deadline, wrong MD5): try the next one."""


def _fetch_verified(url: str, out: BinaryIO, md5: str, name: str) -> None:
    """Stream ``url`` into ``out`` within the deadline; source errors become _MirrorError."""
    digest = hashlib.md5()
    deadline = time.monotonic() + DOWNLOAD_DEADLINE_S
    request = urllib.request.Request(url, headers={"User-Agent": "convbook"})
    try:
        response = urllib.request.urlopen(request, timeout=READ_TIMEOUT_S)
    except (OSError, ValueError, http.client.HTTPException) as err:
        raise _MirrorError(str(err)) from err
    with response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else 0
        done, shown = 0, -1  # bytes received; the percentage on the progress line
        read = getattr(response, "read1", response.read)  # returns what has arrived
        try:
            while True:
                if time.monotonic() > deadline:
                    raise _MirrorError(
                        f"gave up after the deadline of {DOWNLOAD_DEADLINE_S:g} s with "
                        f"{done:,} bytes received (convbook.sources.DOWNLOAD_DEADLINE_S)"
                    )
                try:
                    chunk = read(_CHUNK)
                except (OSError, http.client.HTTPException) as err:
                    raise _MirrorError(str(err)) from err
                if not chunk:
                    break
                digest.update(chunk)
                out.write(chunk)
                done += len(chunk)
                if total >= PROGRESS_MIN_BYTES and min(100, 100 * done // total) > shown:
                    shown = min(100, 100 * done // total)  # one redraw per percent
                    print(f"\rDownloading {name}: {done / 1e6:.2f} / {total / 1e6:.2f} MB "
                          f"({shown} %)", end="", flush=True)
        finally:
            if shown >= 0:
                print(flush=True)
    if digest.hexdigest() != md5:
        raise _MirrorError(f"MD5 {digest.hexdigest()} does not match the expected {md5}")
