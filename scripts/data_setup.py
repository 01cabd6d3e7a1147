"""Make sure every dataset the chapters use is on this machine, before tests run offline.

Usage: ``python scripts/data_setup.py [--datasets NAME ...] [--mirror URL ...]``; ``make test``,
``make unit`` and ``make execute`` run it first. For each dataset it takes, in order, an
offline copy that ``convbook.sources.locate`` finds (its docstring gives the places); for
Fashion-MNIST as root with apt, the Debian package; else one download into the cache,
trying each ``--mirror URL`` (e.g. a classroom server) before ``convbook``'s mirrors. When
none works it says what was tried and how to fix it, and exits 1, so ``make`` stops.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

from convbook import sources

DATASETS = ("fashion_mnist", "mnist", "cifar10")
APT_PACKAGE = {"fashion_mnist": "dataset-fashion-mnist"}
APT_TIMEOUT_S = 900


def find_offline(name: str) -> str | None:
    """Where ``locate`` finds ``name`` without downloading, or ``None``."""
    try:
        return str(sources.locate(name, download=False))
    except sources.DatasetNotFoundError:
        return None


def install_with_apt(package: str) -> str:
    """Install a Debian package (as root, with apt); '' on success, else why it failed."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return "not root with apt-get"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # --reinstall also brings back the files of a package that is installed but emptied.
    install = ["apt-get", "install", "-y", "-qq", "--reinstall", package]
    for commands in ([install], [["apt-get", "update", "-qq"], install]):
        try:
            results = [subprocess.run(c, env=env, capture_output=True, text=True,
                                      timeout=APT_TIMEOUT_S) for c in commands]
        except subprocess.TimeoutExpired:
            return f"apt-get timed out after {APT_TIMEOUT_S} s"
        if results[-1].returncode == 0:
            return ""
    last = (results[-1].stderr or results[-1].stdout).strip().splitlines()
    return f"apt-get install {package} failed: {last[-1] if last else 'no output'}"


def set_up(name: str, mirrors: list[str]) -> tuple[str | None, list[str]]:
    """Make ``name`` available; (where it is, or ``None``) and the steps that failed."""
    if (place := find_offline(name)) is not None:
        return place, []
    failed = []
    if name in APT_PACKAGE:
        if not (why := install_with_apt(APT_PACKAGE[name])):
            if (place := find_offline(name)) is not None:
                return place, []
            why = f"apt-get installed {APT_PACKAGE[name]} but its files are not there"
        failed.append(f"Debian package: {why}")
    try:
        return str(sources.locate(name, mirrors=mirrors)), failed
    except (sources.DatasetNotFoundError, sources.CorruptDatasetError, sources.CacheError) as err:
        return None, [*failed, str(err)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--mirror", action="append", default=[], metavar="URL",
                        help="a base URL (ending in /) to try before convbook's mirrors")
    args = parser.parse_args(argv)
    for name in args.datasets:
        place, failed = set_up(name, args.mirror)
        if place is None:
            print(f"\nData set-up failed: {name!r} is not on this machine and could not be "
                  "fetched. What was tried:", *failed, sep="\n", file=sys.stderr)
            print("\nFix one of these, then run the command again: install the Debian package "
                  "(sudo apt-get install dataset-fashion-mnist, for Fashion-MNIST); put the "
                  "course's data folder beside the checkout as ../shared/data or name it in "
                  "CONVBOOK_DATA; or connect to the network once, without CONVBOOK_OFFLINE=1, "
                  "so the files are downloaded into the cache.", file=sys.stderr)
            return 1
        print(f"data: {name} in {place}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
