"""Join consecutive stream outputs of a cell into one, in the committed notebooks.

Usage: ``python scripts/merge_streams.py chapters/02_cross_correlation.ipynb ...``
(``make execute`` runs it after executing each chapter).

A busy kernel can flush a ``print`` between its text and its newline, so one printed line
arrives as two stdout messages. The book joins them with a line break of its own, and the
reader sees a blank line in the middle of a tensor (``tests/test_book.py`` checks for it).
nbval joins streams itself before comparing, so merging them in the file changes nothing it
compares; it only makes the committed outputs independent of the machine's load.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import nbformat


def merged(outputs: list) -> list:
    """``outputs`` with each run of same-named stream outputs joined into the first."""
    result: list = []
    for output in outputs:
        previous = result[-1] if result else None
        if (previous is not None and output.output_type == "stream"
                and previous.output_type == "stream" and previous.name == output.name):
            previous.text += output.text
        else:
            result.append(output)
    return result


def merge_notebook(path: Path) -> bool:
    """Merge the streams of every code cell of ``path`` in place; True if anything changed."""
    nb = nbformat.read(path, as_version=4)
    changed = False
    for cell in nb.cells:
        if cell.cell_type == "code":
            joined = merged(cell.outputs)
            changed |= len(joined) != len(cell.outputs)
            cell.outputs = joined
    if changed:
        nbformat.write(nb, path)
    return changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    for path in parser.parse_args().notebooks:
        if merge_notebook(path):
            print(f"{path}: joined split stream outputs")


if __name__ == "__main__":
    main()
