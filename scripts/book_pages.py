"""The pages of the book as ``_toc.yml`` lists them, and what their sources say.

Shared by the browser check, the screenshots and the PDF build (scripts/), and by
tests/test_book.py. ``_toc.yml`` is read with ``sphinx_external_toc``, the parser Jupyter
Book itself uses, so the pages checked are exactly the pages built.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
import yaml
from sphinx_external_toc.api import Document, GlobItem, UrlItem
from sphinx_external_toc.parsing import parse_toc_data

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Page:
    """One page of the book: its docname in _toc.yml and the source it is built from."""

    docname: str
    source: Path

    @property
    def is_notebook(self) -> bool:
        return self.source.suffix == ".ipynb"

    @property
    def html_name(self) -> str:
        return self.docname + ".html"


def toc_docnames(root: Path = REPO_ROOT) -> list[str]:
    """Every docname of ``_toc.yml`` in reading order, the root page first.

    A ``_toc.yml`` without ``format`` is read as ``jb-book``, as Jupyter Book does.
    """
    data = yaml.safe_load((Path(root) / "_toc.yml").read_text(encoding="utf-8"))
    data.setdefault("format", "jb-book")
    site = parse_toc_data(data)
    names: list[str] = []

    def walk(document: Document) -> None:
        names.append(re.sub(r"\.(md|ipynb)$", "", document.docname))
        for subtree in document.subtrees:
            for item in subtree.items:
                if not isinstance(item, (GlobItem, UrlItem)):
                    walk(site[item])

    walk(site.root)
    return names


def source_of(docname: str, root: Path = REPO_ROOT) -> Path | None:
    """The ``.ipynb`` or ``.md`` file a docname is built from, or ``None`` if missing."""
    for suffix in (".ipynb", ".md"):
        path = Path(root) / (docname + suffix)
        if path.exists():
            return path
    return None


def book_pages(root: Path = REPO_ROOT) -> tuple[list[Page], list[str]]:
    """The pages of ``_toc.yml`` whose sources exist, and the docnames that have none."""
    pages, missing = [], []
    for docname in toc_docnames(root):
        source = source_of(docname, root)
        if source is None:
            missing.append(docname)
        else:
            pages.append(Page(docname, source))
    return pages, missing


def heading_title(source: Path) -> str:
    """The page's H1 as plain text (the first ``# `` line, markdown marks removed)."""
    if source.suffix == ".ipynb":
        nb = nbformat.read(source, as_version=4)
        text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    else:
        text = source.read_text(encoding="utf-8")
    match = re.search(r"^# (.+)$", text, flags=re.MULTILINE)
    if match is None:
        raise ValueError(f"{source}: no '# Title' line")
    title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", match.group(1))
    return re.sub(r"[`*]", "", title).strip()


def notebook_png_count(source: Path) -> int:
    """How many PNG figures the committed notebook shows."""
    nb = nbformat.read(source, as_version=4)
    return sum("image/png" in out.get("data", {})
               for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs)


def stray_pages(html_dir: Path, docnames: list[str]) -> list[str]:
    """Built pages that are not in ``_toc.yml`` (Sphinx's own index and search aside)."""
    expected = {f"{d}.html" for d in docnames} | {"index.html", "genindex.html", "search.html"}
    built = {p.relative_to(html_dir).as_posix() for p in html_dir.rglob("*.html")
             if not p.relative_to(html_dir).parts[0].startswith("_")}
    return sorted(built - expected)
