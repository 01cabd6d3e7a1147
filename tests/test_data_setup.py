"""The data step of ``make test`` (scripts/data_setup.py) on a machine without the data.

Each test runs the script in a fresh process with an empty cache and an empty
``CONVBOOK_DATA``. For Fashion-MNIST the Debian package's folder is hidden: the process runs
in a private mount namespace (``unshare --mount``, root only) where an empty folder is
bind-mounted over ``/usr/share/datasets/fashion-mnist``. Mirrors are HTTP servers on
127.0.0.1 started by the test; ``apt-get`` is a stand-in script first on ``PATH``, so the
machine's packages are never touched.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import ROOT

from convbook import sources

DEBIAN = sources.DEBIAN_FASHION_MNIST
SHARED_MNIST = ROOT.parent / "shared" / "data" / "MNIST" / "raw"
FASHION_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _can_hide_debian() -> bool:
    """Root, the package installed, and a private mount namespace allowed here."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or not DEBIAN.is_dir():
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                           capture_output=True)
    return probe.returncode == 0


needs_namespace = pytest.mark.skipif(
    not _can_hide_debian(),
    reason="hiding the Debian folder needs root, unshare, mount namespaces and the package")


@contextmanager
def loopback_mirror(folder: Path):
    """Serve ``folder`` on 127.0.0.1; yields (base URL, list of paths requested)."""
    requested: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            requested.append(self.path)

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/", requested
    finally:
        server.shutdown()
        server.server_close()


def fake_apt(bin_dir: Path, body: str) -> None:
    """An ``apt-get`` on ``PATH`` that runs ``body`` (sh) instead of the real one."""
    bin_dir.mkdir(exist_ok=True)
    apt = bin_dir / "apt-get"
    apt.write_text(f"#!/bin/sh\necho \"$@\" >> {bin_dir}/apt.log\n{body}\n")
    apt.chmod(0o755)


def run_setup(tmp_path: Path, args: list[str], *, hide_debian: bool,
              expect_md5: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run scripts/data_setup.py as ``make test`` would on an empty machine.

    Only the ``--mirror`` URLs given are tried (convbook's public mirrors are emptied), so
    nothing leaves the machine. ``expect_md5`` replaces the archives' expected MD5s
    (torchvision's) for a test mirror that serves other, known archives; the unpacked files
    are still checked against convbook's own MD5s.
    """
    for folder in ("cache", "nodata", "empty"):
        (tmp_path / folder).mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "CONVBOOK_OFFLINE"}
    env.update(CONVBOOK_CACHE=str(tmp_path / "cache"), CONVBOOK_DATA=str(tmp_path / "nodata"),
               PATH=f"{tmp_path / 'bin'}{os.pathsep}{env['PATH']}")
    code = ("import sys; sys.path.insert(0, sys.argv[1])\n"
            "from torchvision import datasets\n"
            "from convbook import sources\n"
            "for name in sources.MIRRORS: sources.MIRRORS[name] = []\n"
            f"md5 = {expect_md5!r}\n"
            "if md5: datasets.FashionMNIST.resources = list(md5.items())\n"
            "import data_setup; sys.exit(data_setup.main(sys.argv[2:]))")
    command = [sys.executable, "-c", code, str(ROOT / "scripts"), *args]
    if hide_debian:
        command = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                   'mount --bind "$1" "$2" && shift 2 && exec "$@"', "sh",
                   str(tmp_path / "empty"), str(DEBIAN), *command]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def cached_fashion(tmp_path: Path) -> list[str]:
    raw = tmp_path / "cache" / "FashionMNIST" / "raw"
    return sorted(f for f in FASHION_FILES if (raw / f).is_file())


@needs_namespace
def test_without_the_debian_package_fashion_mnist_is_downloaded_once_from_a_mirror(tmp_path):
    served = tmp_path / "mirror"
    served.mkdir()
    md5 = {}
    for gz in DEBIAN.glob("*.gz"):
        shutil.copy(gz, served / gz.name)
        md5[gz.name] = hashlib.md5(gz.read_bytes()).hexdigest()
    fake_apt(tmp_path / "bin", 'echo "E: Unable to locate package" >&2; exit 100')
    with loopback_mirror(served) as (url, requested):
        result = run_setup(tmp_path, ["--datasets", "fashion_mnist", "--mirror", url],
                           hide_debian=True, expect_md5=md5)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(requested) == sorted(f"/{name}" for name in md5)
    assert cached_fashion(tmp_path) == sorted(FASHION_FILES)
    assert f"data: fashion_mnist in {tmp_path / 'cache'}" in result.stdout

    again = run_setup(tmp_path, ["--datasets", "fashion_mnist", "--mirror", url],
                      hide_debian=True, expect_md5=md5)
    assert again.returncode == 0, again.stderr
    assert "Downloading" not in again.stdout, "the second run downloaded again"


@needs_namespace
def test_as_root_with_apt_the_debian_package_is_installed(tmp_path):
    # Inside the namespace the Debian folder is the empty mount: the stand-in "installs"
    # the package by copying its files from a copy made here.
    real = tmp_path / "debian-files"
    shutil.copytree(DEBIAN, real)
    fake_apt(tmp_path / "bin", f'[ "$1" = install ] && cp {real}/*.gz {DEBIAN}/')
    result = run_setup(tmp_path, ["--datasets", "fashion_mnist", "--mirror",
                                  "http://127.0.0.1:9/"], hide_debian=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "install -y -qq --reinstall dataset-fashion-mnist" in (
        tmp_path / "bin" / "apt.log").read_text()
    assert "Downloading" not in result.stdout
    assert sorted(p.name for p in (tmp_path / "empty").glob("*.gz")) == sorted(
        f"{f}.gz" for f in FASHION_FILES)


@needs_namespace
def test_when_nothing_works_it_stops_with_one_clear_message(tmp_path):
    fake_apt(tmp_path / "bin", 'echo "E: Unable to locate package" >&2; exit 100')
    result = run_setup(tmp_path, ["--datasets", "fashion_mnist", "--mirror",
                                  "http://127.0.0.1:9/"], hide_debian=True,
                       expect_md5={f"{f}.gz": "0" * 32 for f in FASHION_FILES})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "Data set-up failed: 'fashion_mnist' is not on this machine" in result.stderr
    assert "apt-get install dataset-fashion-mnist failed" in result.stderr
    assert "http://127.0.0.1:9/" in result.stderr and "../shared/data" in result.stderr
    assert cached_fashion(tmp_path) == []


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="needs ../shared/data/MNIST (CI has it)")
def test_mnist_from_a_mirror_is_checked_against_torchvisions_md5s(tmp_path):
    served = tmp_path / "mirror"
    shutil.copytree(SHARED_MNIST, served)
    with loopback_mirror(served) as (url, requested):
        result = run_setup(tmp_path, ["--datasets", "mnist", "--mirror", url],
                           hide_debian=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(requested) == 4
    assert (tmp_path / "cache" / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()
