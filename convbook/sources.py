"""Where the course's dataset files come from, checked before anything reads them.

:mod:`convbook.data` asks :func:`locate` for a folder that ``torchvision.datasets`` opens
with ``download=False``. ``locate`` looks, in order, in

1. the ``root`` you pass,
2. ``$CONVBOOK_DATA`` (torchvision layouts such as ``MNIST/raw/*.gz``, or archives such as
   ``cifar-10-python.tar.gz``),
3. the Debian package folder :data:`DEBIAN_FASHION_MNIST` (Fashion-MNIST only),
4. the cache (:func:`cache_dir`),

and otherwise downloads into the cache from :data:`MIRRORS` (unless ``$CONVBOOK_OFFLINE=1``).
Sources are only read; what is unpacked or downloaded is written through
:func:`atomic_write`, and every file must match its official MD5."""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import os
import tarfile
import tempfile
import urllib.request
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, Callable

from torchvision import datasets
from torchvision.datasets.utils import calculate_md5

try:
    import fcntl
except ImportError:  # Windows: no flock, so exclusive() cannot make writers take turns
    fcntl = None

__all__ = ["DatasetNotFoundError", "CorruptDatasetError", "CacheError", "DEBIAN_FASHION_MNIST",
           "MIRRORS", "cache_dir", "locate", "download"]


class DatasetNotFoundError(FileNotFoundError):
    """No source holds the dataset and downloading it was not allowed or failed."""


class CorruptDatasetError(ValueError):
    """A dataset file exists but is truncated, corrupt or not the file it claims to be."""


class CacheError(OSError):
    """The cache folder cannot be written: read-only, full, or not a folder."""


#: Where ``apt-get install dataset-fashion-mnist`` puts the four Fashion-MNIST files.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

#: Base URLs tried in order for each dataset; a file's URL is base + file name.
MIRRORS: dict[str, list[str]] = {
    "fashion_mnist": [*datasets.FashionMNIST.mirrors,
                      "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/"],
    "mnist": list(datasets.MNIST.mirrors),
    "cifar10": [datasets.CIFAR10.url.rsplit("/", 1)[0] + "/"],
}

# MD5 of the *decompressed* idx files. The Debian package recompresses the official .gz
# files, so their .gz MD5s differ from torchvision's; the content does not.
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
_CIFAR_MD5 = dict(datasets.CIFAR10.train_list + datasets.CIFAR10.test_list
                  + [[datasets.CIFAR10.meta["filename"], datasets.CIFAR10.meta["md5"]]])
#: The sub-folder torchvision opens for each dataset.
_FOLDERS = {"fashion_mnist": "FashionMNIST/raw", "mnist": "MNIST/raw", "cifar10": _CIFAR_DIR}

_CHUNK = 1 << 20
#: Seconds a download may wait for the server (to connect, or for the next bytes).
READ_TIMEOUT_S = 30.0


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


def _folder(name: str) -> str:
    """Where under a source folder torchvision expects ``name``'s files."""
    if name not in _FOLDERS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(_FOLDERS)}")
    return _FOLDERS[name]


# ------------------------------------------------------------- writing atomically


def atomic_write(dest: Path, write: Callable[[BinaryIO], object], suffix: str) -> Path:
    """Call ``write(file)`` on ``.<dest.name>.<random><suffix>``, flush it to disk, then
    rename it to ``dest``: a reader sees the whole file or none (checkpoints use it too)."""
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


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
    """:func:`atomic_write` into the cache; its ``OSError`` becomes a :class:`CacheError`
    (so ``write`` must turn the errors of its source into another kind)."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write(dest, write, suffix=".part")
    except OSError as err:
        raise CacheError(err.errno, f"cannot write {dest} in the convbook cache {cache_dir()}: "
                         f"{err.strerror or err}. Free space there, or choose another folder "
                         "with CONVBOOK_CACHE=/path/to/folder") from err


def _copy_hashed(source: BinaryIO, out: BinaryIO, source_error: Callable[[str], Exception]) -> str:
    """Copy ``source`` into ``out`` in chunks and return the MD5 of the bytes copied;
    a failing read of ``source`` raises ``source_error``."""
    digest = hashlib.md5()
    while True:
        try:
            chunk = source.read(_CHUNK)
        except (OSError, EOFError, zlib.error, http.client.HTTPException) as err:
            raise source_error(str(err)) from err
        if not chunk:
            return digest.hexdigest()
        digest.update(chunk)
        out.write(chunk)


def _unpack_verified(source: BinaryIO, dest: Path, md5: str, archive: Path, kind: str) -> None:
    """Copy the decompressed ``source`` to ``dest`` in the cache if its MD5 is ``md5``;
    otherwise raise :class:`CorruptDatasetError` naming ``archive``."""
    def unreadable(reason: str) -> CorruptDatasetError:
        return CorruptDatasetError(f"{archive}: not a valid {kind} ({reason})")

    def write(out: BinaryIO) -> None:
        actual = _copy_hashed(source, out, unreadable)
        if actual != md5:
            raise CorruptDatasetError(f"{archive}: {dest.name} has MD5 {actual}, not the "
                                      f"official {md5}; the file is corrupt or not the official "
                                      "release")
    _cache_write(dest, write)


def _extract_cifar(archive: Path, dest_root: Path) -> None:
    """Copy the CIFAR-10 batch files out of ``archive`` into ``dest_root``, verified."""
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
    """True when torchvision can open ``name`` under ``folder``; files there with the wrong
    MD5 raise :class:`CorruptDatasetError`."""
    sums = _CIFAR_MD5 if name == "cifar10" else _IDX_MD5[name]
    files = {folder / _folder(name) / base: md5 for base, md5 in sums.items()}
    if not all(path.is_file() for path in files):
        return False
    for path, md5 in files.items():
        actual = calculate_md5(path)
        if actual != md5:
            raise CorruptDatasetError(f"{path}: MD5 {actual} does not match the official "
                                      f"{md5}; the file is corrupt or not the official release. "
                                      "Delete it and load the dataset again.")
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


def _unpack_into_cache(name: str, archives: list[Path], cache: Path) -> Path:
    if name == "cifar10":
        _extract_cifar(archives[0], cache)
    else:
        for gz in archives:  # gz.stem: the file's name without .gz
            with gzip.open(gz, "rb") as source:
                _unpack_verified(source, cache / _folder(name) / gz.stem, _IDX_MD5[name][gz.stem],
                                 gz, "gzip file")
    return cache


def _sources(name: str, root: str | Path | None) -> list[tuple[str, Path]]:
    places = [("root argument", root), ("$CONVBOOK_DATA", os.environ.get("CONVBOOK_DATA") or None),
              ("Debian package", DEBIAN_FASHION_MNIST if name == "fashion_mnist" else None),
              ("cache", cache_dir())]
    return [(label, Path(folder).expanduser()) for label, folder in places if folder is not None]


def locate(name: str, root: str | Path | None = None, download: bool | None = None,
           mirrors: Sequence[str] = ()) -> Path:
    """A folder from which ``torchvision.datasets`` opens ``name`` (``"fashion_mnist"``,
    ``"mnist"``, ``"cifar10"``) with ``download=False``. ``download=None`` downloads unless
    ``$CONVBOOK_OFFLINE=1``, trying the base URLs ``mirrors`` before :data:`MIRRORS`."""
    _folder(name)  # an unknown name fails here
    cache = cache_dir()
    looked = []
    for label, folder in _sources(name, root):
        if _ready(name, folder):
            return folder
        archives = _archives(name, folder)
        if archives is not None:
            with contextlib.suppress(CorruptDatasetError):  # a bad cached copy is unpacked again
                if folder != cache and _ready(name, cache):
                    return cache
            return _unpack_into_cache(name, archives, cache)
        expected = (f"{_CIFAR_DIR}/ or {datasets.CIFAR10.filename}" if name == "cifar10"
                    else f"{_folder(name)}/*-ubyte[.gz] or *-ubyte.gz")
        looked.append(f"{label}: {folder} (no {expected})")
    if download is None:
        download = not env_flag("CONVBOOK_OFFLINE", "to allow downloads")
    if not download:
        raise DatasetNotFoundError(_not_found_message(name, looked, None))
    try:
        archives = _download_archives(name, cache, [*mirrors, *MIRRORS[name]])
    except DatasetNotFoundError as err:
        raise DatasetNotFoundError(_not_found_message(name, looked, str(err))) from err
    return _unpack_into_cache(name, archives, cache)


def _not_found_message(name: str, looked: list[str], download_error: str | None) -> str:
    lines = [f"Dataset {name!r} not found. Looked in:", *(f"  - {place}" for place in looked),
             "Fixes:"]
    if name == "fashion_mnist":
        lines.append("  - install the Debian package: sudo apt-get install dataset-fashion-mnist")
    lines.append("  - set CONVBOOK_DATA=/path/to/data, a folder holding torchvision's layout "
                 f"({_folder(name)}/...) or the original archives")
    lines.append("  - allow downloading: pass download=True, or unset CONVBOOK_OFFLINE"
                 if download_error is None else f"Downloading failed too:\n{download_error}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- download


def _download_archives(name: str, cache: Path, mirrors: list[str]) -> list[Path]:
    if name == "cifar10":
        dest = cache / datasets.CIFAR10.filename
        return [download([base + dest.name for base in mirrors], dest, datasets.CIFAR10.tgz_md5)]
    resources = (datasets.FashionMNIST if name == "fashion_mnist" else datasets.MNIST).resources
    raw = cache / _folder(name)
    return [download([base + file for base in mirrors], raw / file, md5)
            for file, md5 in resources]


def download(url_list: list[str], dest: str | Path, md5: str) -> Path:
    """Fetch ``dest`` from the first URL in ``url_list`` that serves bytes with ``md5``; when
    every URL fails, :class:`DatasetNotFoundError` lists each URL and why."""
    dest = Path(dest)
    failures = []
    for url in url_list:
        print(f"Downloading {dest.name} from {url}", flush=True)
        try:
            return _cache_write(dest, lambda f: _fetch_verified(url, f, md5))
        except _MirrorError as err:
            failures.append(f"  - {url}: {err}")
    raise DatasetNotFoundError(f"could not download {dest.name}; every mirror failed:\n"
                               + "\n".join(failures))


class _MirrorError(Exception):
    """One mirror failed (network error, timeout, wrong MD5): try the next one."""


def _fetch_verified(url: str, out: BinaryIO, md5: str) -> None:
    """Stream ``url`` into ``out``; a failure of the mirror raises :class:`_MirrorError`."""
    request = urllib.request.Request(url, headers={"User-Agent": "convbook"})
    try:
        response = urllib.request.urlopen(request, timeout=READ_TIMEOUT_S)
    except (OSError, ValueError, http.client.HTTPException) as err:
        raise _MirrorError(str(err)) from err
    with response:
        actual = _copy_hashed(response, out, _MirrorError)
    if actual != md5:
        raise _MirrorError(f"MD5 {actual} does not match the expected {md5}")
