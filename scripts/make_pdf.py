"""Print the single-page build of the book to one PDF with headless Chromium.

Usage: ``python scripts/make_pdf.py _build/singlehtml _build/pdf/convbook.pdf``
(``make pdf`` builds the single page first, then checks the PDF with tests/test_pdf.py).

The page is opened offline in the same browser as the browser check (scripts/headless.py),
MathJax typesets every formula, and Chromium's own print engine writes the PDF: A4 (or US
letter), page numbers in the footer, a bookmark outline from the headings, and each chapter
on a new page (``_static/convbook.css``, print rules). Solutions stay folded, as students
should first try the exercises; ``--solutions`` prints them open, for an instructor's copy.
"""
from __future__ import annotations

import argparse
import base64
import sys
import time
from pathlib import Path

import headless
from book_pages import REPO_ROOT, toc_docnames

PAPER_INCHES = {"a4": (8.27, 11.69), "letter": (8.5, 11.0)}
MARGIN_INCHES = 0.5
FOOTER = ('<div style="font-size:8px; width:100%; text-align:center; color:#555">'
          'ConvBook · <span class="pageNumber"></span> / <span class="totalPages"></span></div>')
OPEN_SOLUTIONS = "document.querySelectorAll('details.sd-dropdown').forEach(d => d.open = true)"
IMAGES_LOADED = ("return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")


def print_to_pdf(html_path: Path, pdf_path: Path, paper: str = "a4",
                 solutions: bool = False) -> int:
    """Write ``html_path`` as printed by Chromium to ``pdf_path``; its size in bytes."""
    driver = headless.open_browser()
    try:
        state = headless.load(driver, html_path.resolve().as_uri())
        if state not in ("ok", "no MathJax"):
            raise RuntimeError(f"{html_path}: {state}")
        # The single-page builder writes no search index; the theme asks for it all the same.
        errors = [e for e in headless.console_errors(driver) if "/searchindex.js " not in e]
        errors += headless.outside_requests(driver)
        if errors:
            raise RuntimeError(f"{html_path}: " + "; ".join(errors[:3]))
        if solutions:
            driver.execute_script(OPEN_SOLUTIONS)
        deadline = time.monotonic() + headless.PAGE_TIMEOUT_S
        while not driver.execute_script(IMAGES_LOADED):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{html_path}: some figures did not load")
            time.sleep(0.2)
        width, height = PAPER_INCHES[paper]
        result = driver.execute_cdp_cmd("Page.printToPDF", {
            "paperWidth": width, "paperHeight": height, "printBackground": True,
            "marginTop": MARGIN_INCHES, "marginBottom": MARGIN_INCHES,
            "marginLeft": MARGIN_INCHES, "marginRight": MARGIN_INCHES,
            "displayHeaderFooter": True, "headerTemplate": "<span></span>",
            "footerTemplate": FOOTER, "generateDocumentOutline": True,
        })
    finally:
        driver.quit()
    pdf = base64.b64decode(result["data"])
    pdf_path.parent.mkdir(parents=True, exist_ok=True)
    pdf_path.write_bytes(pdf)
    return len(pdf)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html_dir", type=Path, help="the single-page build, e.g. _build/singlehtml")
    parser.add_argument("pdf", type=Path, help="where the PDF goes, e.g. _build/pdf/convbook.pdf")
    parser.add_argument("--paper", choices=sorted(PAPER_INCHES), default="a4")
    parser.add_argument("--solutions", action="store_true",
                        help="print the exercise solutions open (an instructor's copy)")
    parser.add_argument("--root", type=Path, default=REPO_ROOT,
                        help="book root holding _toc.yml (default: this repo)")
    args = parser.parse_args(argv)
    html = args.html_dir / f"{toc_docnames(args.root)[0]}.html"
    if not html.is_file():
        parser.error(f"{html} does not exist; build it first (make pdf)")
    started = time.monotonic()
    size = print_to_pdf(html, args.pdf, args.paper, args.solutions)
    print(f"{args.pdf}: {size / 1e6:.1f} MB in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
