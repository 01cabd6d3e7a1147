"""The printed book (``make pdf``): every chapter on its own pages, math typeset, figures in.

Reads ``_build/pdf/convbook.pdf`` (or ``$CONVBOOK_PDF``) with poppler's ``pdftotext``,
``pdfinfo`` and ``pdfimages`` (Debian's poppler-utils). ``make pdf`` runs this file right
after printing, naming the PDF in ``CONVBOOK_PDF``; in ``make test`` the PDF is usually not
built and the tests are skipped, saying so.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

from book_pages import book_pages, heading_title, notebook_png_count
from conftest import ROOT

# make pdf names the PDF it just printed: then a missing file or missing poppler fails.
REQUIRED = "CONVBOOK_PDF" in os.environ
PDF = Path(os.environ.get("CONVBOOK_PDF", ROOT / "_build" / "pdf" / "convbook.pdf"))
PAGES, _ = book_pages(ROOT)
TEX_COMMAND = re.compile(r"\\[A-Za-z]+")
PROSE_MATH = re.compile(r"\$\$(.+?)\$\$|\$([^$\n]+?)\$", re.DOTALL)

pytestmark = pytest.mark.skipif(
    not REQUIRED and (not PDF.is_file() or shutil.which("pdftotext") is None),
    reason=f"no {PDF} or no poppler-utils: `make pdf` builds and checks the PDF")


def normalized(text: str) -> str:
    """Text with every run of whitespace (including no-break spaces) as one space."""
    return " ".join(text.replace("\u00a0", " ").replace("\u202f", " ").split())


def prose_formulas(page_source: Path) -> list[str]:
    """The TeX of every formula written in the page's prose (markdown), as typed."""
    if page_source.suffix == ".ipynb":
        nb = nbformat.read(page_source, as_version=4)
        text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    else:
        text = page_source.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```|`[^`\n]*`", "", text, flags=re.DOTALL)
    return [normalized(a or b) for a, b in PROSE_MATH.findall(text)]


@pytest.fixture(scope="module")
def pdf_pages() -> list[str]:
    """The PDF's text, one normalized string per page."""
    text = subprocess.run(["pdftotext", str(PDF), "-"], capture_output=True, text=True,
                          check=True).stdout
    return [normalized(page) for page in text.split("\f")]


def test_every_chapter_title_starts_a_page(pdf_pages):
    starts = [page[:200] for page in pdf_pages]
    for page in PAGES[1:]:
        title = normalized(heading_title(page.source))
        assert any(start.startswith(title) for start in starts), \
            f"{page.docname}: no page starts with its title {title!r}"


def test_the_book_title_is_on_the_first_page(pdf_pages):
    assert pdf_pages[0].startswith(normalized(heading_title(PAGES[0].source)))


def test_formulas_are_typeset_not_printed_as_tex(pdf_pages):
    text = " ".join(pdf_pages)
    for delimiter in ("\\(", "\\)", "\\[", "\\]", "$$"):
        assert delimiter not in text, f"MathJax delimiter {delimiter!r} printed as text"
    formulas = [f for page in PAGES for f in prose_formulas(page.source)
                if TEX_COMMAND.search(f)]
    leaked = [f for f in formulas if f in text]
    assert not leaked, f"formulas printed as TeX source: {leaked[:3]}"
    if any("\\times" in f for f in formulas):
        assert "×" in text, "no typeset × although the prose uses \\times"


def test_page_count_is_plausible():
    info = subprocess.run(["pdfinfo", str(PDF)], capture_output=True, text=True, check=True)
    pages = int(re.search(r"^Pages:\s+(\d+)", info.stdout, flags=re.MULTILINE).group(1))
    assert 2 * len(PAGES) <= pages <= 40 * len(PAGES), f"{pages} pages for {len(PAGES)} chapters"


def test_every_figure_is_in_the_pdf():
    listing = subprocess.run(["pdfimages", "-list", str(PDF)], capture_output=True, text=True,
                             check=True).stdout.splitlines()[2:]
    figures = sum(notebook_png_count(page.source) for page in PAGES if page.is_notebook)
    assert len(listing) >= figures, f"{len(listing)} images in the PDF, {figures} figures in the book"
