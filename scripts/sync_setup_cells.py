"""Write the shared setup cell into every chapter, or check that it is there.

Every chapter's first code cell installs ``convbook`` when it is missing, which is what makes
the "open in Colab" button work (see "Three ways to run it" in intro.md). The cell's text is
``SETUP_CELL_TEMPLATE`` below (its one source); the repository it installs from is defined once, as
``repository.url`` in ``_config.yml``. This script derives the cell from that URL and

- rewrites it into each chapter (``python scripts/sync_setup_cells.py``): the first code cell
  is replaced when it is a setup cell, otherwise a setup cell is inserted before it; its
  outputs are cleared, since on a local run the cell prints nothing, and it is tagged
  ``hide-input`` so that the book folds it away (Colab ignores the tag and shows it);
- with ``--check``, changes nothing and exits 1 listing every chapter whose setup cell
  differs (tests/test_book.py runs this).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
import yaml

from book_pages import REPO_ROOT

SETUP_CELL_TEMPLATE = """\
# Setup: on Colab, or anywhere convbook is missing, install it from the course repository.
import importlib.util, os, subprocess, sys

if importlib.util.find_spec("convbook") is None:
    source = os.environ.get("CONVBOOK_SOURCE", "git+{url}")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", source], check=True)"""

SETUP_CELL_MARKER = "# Setup:"
HIDE_TAG = "hide-input"


def repository_url(config_path: Path) -> str:
    """The ``repository.url`` of the book's ``_config.yml``, without a trailing slash."""
    config = yaml.safe_load(Path(config_path).read_text(encoding="utf-8")) or {}
    url = (config.get("repository") or {}).get("url")
    if not isinstance(url, str) or not url.startswith("https://"):
        raise ValueError(
            f"{config_path}: repository.url must be an https:// URL, got {url!r}"
        )
    return url.rstrip("/")


def setup_cell_source(url: str) -> str:
    """The setup cell every chapter starts with, installing from ``git+<url>``."""
    return SETUP_CELL_TEMPLATE.format(url=url)


def chapter_paths(root: Path = REPO_ROOT) -> list[Path]:
    """Every chapter notebook, in file-name (= reading) order."""
    return sorted((Path(root) / "chapters").glob("*.ipynb"))


def _first_code_cell(nb: nbformat.NotebookNode) -> int | None:
    return next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), None)


def setup_cell_problem(nb: nbformat.NotebookNode, expected: str) -> str | None:
    """Why the notebook's setup cell is not ``expected`` with empty outputs, or ``None``."""
    index = _first_code_cell(nb)
    if index is None:
        return "has no code cell"
    cell = nb.cells[index]
    if cell.source != expected:
        if not cell.source.startswith(SETUP_CELL_MARKER):
            return "first code cell is not the setup cell"
        return "setup cell text differs from the one generated from _config.yml"
    if cell.outputs:
        return "setup cell has outputs (it must print nothing)"
    if HIDE_TAG not in cell.metadata.get("tags", []):
        return f"setup cell is not tagged {HIDE_TAG!r}"
    return None


def sync_notebook(nb: nbformat.NotebookNode, expected: str) -> bool:
    """Put the setup cell into ``nb`` in place; return whether anything changed."""
    if setup_cell_problem(nb, expected) is None:
        return False
    index = _first_code_cell(nb)
    if index is None or not nb.cells[index].source.startswith(SETUP_CELL_MARKER):
        index = min(1, len(nb.cells)) if index is None else index
        nb.cells.insert(index, nbformat.v4.new_code_cell(expected))
    cell = nb.cells[index]
    cell.source = expected
    cell.outputs = []
    tags = cell.metadata.setdefault("tags", [])
    if HIDE_TAG not in tags:
        tags.append(HIDE_TAG)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 listing chapters that differ")
    parser.add_argument("--root", type=Path, default=REPO_ROOT,
                        help="book root holding _config.yml and chapters/ (default: this repo)")
    args = parser.parse_args(argv)

    expected = setup_cell_source(repository_url(args.root / "_config.yml"))
    problems = []
    for path in chapter_paths(args.root):
        nb = nbformat.read(path, as_version=4)
        problem = setup_cell_problem(nb, expected)
        if problem is None:
            continue
        if args.check:
            problems.append(f"{path.relative_to(args.root)}: {problem}")
        else:
            sync_notebook(nb, expected)
            nbformat.write(nb, path)
            print(f"updated {path.relative_to(args.root)} ({problem})")
    if problems:
        print("Setup cells out of date (fix: python scripts/sync_setup_cells.py):",
              *problems, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
