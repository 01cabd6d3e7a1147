"""Open every page of the built book in a real browser, offline, and check what a reader gets.

Usage: ``python scripts/browser_check.py _build/html`` (``make browser-test`` builds first).

Selenium drives Debian's headless Chromium (scripts/headless.py) with every request outside
``file://`` blocked. For every page of ``_toc.yml`` (read by sphinx_external_toc):

- it asks the network for nothing (the first such request fails the page, named);
- no console errors (failed scripts, missing files);
- the page title contains the H1; the sidebar lists every page; no stray pages were built;
- every formula is typeset: each ``.math`` element holds a MathJax container, and no raw
  ``\\(``, ``\\[`` or TeX command is left in the text (math included, not stripped);
- no error, traceback or stderr output is shown;
- every figure is present and loaded (``naturalWidth > 0``) and has alt text that says what
  it shows (not empty, not its file name); a notebook with PNGs shows them on the page;
- axe-core (scripts/vendor/axe-core) finds no serious or critical accessibility violation;

and for notebook chapters the Colab link and the download link. Then it does what a reader
does (scripts/reader_actions.py): opens a solution, searches, opens the launch menu,
downloads a notebook, and switches to dark mode, saving a screenshot in each mode.

It prints one line per page and exits 1 with the list of failures.
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import yaml
from bs4 import BeautifulSoup

import headless
import reader_actions
from book_pages import (REPO_ROOT, Page, book_pages, heading_title, notebook_png_count,
                        source_of, stray_pages, toc_docnames)

# tests/test_book.py reads the table of contents and parses pages through this module.
__all__ = ["BeautifulSoup", "leaked_latex", "source_of", "toc_docnames", "main"]

AXE_JS = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
# preload: false keeps axe from fetching stylesheets with XHR, which file:// pages forbid.
RUN_AXE = """
const done = arguments[arguments.length - 1];
axe.run(document, {resultTypes: ["violations"], preload: false}).then(
  (r) => done(r.violations.filter((v) => ["serious", "critical"].includes(v.impact)).map(
    (v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.length}x, e.g. ${v.nodes[0].target})`)),
  (e) => done([`axe failed: ${e}`]));
"""
LATEX = re.compile(r"\\[A-Za-z]{2,}|\\[(\[]|\$\$")
GENERIC_ALT = re.compile(r"^(image|figure|fig|png|plot|output|graph|chart)?\s*\d*$", re.I)


def leaked_latex(soup: BeautifulSoup) -> list[str]:
    """One snippet per text block of the rendered page that still shows TeX source.

    Code and cell outputs are skipped; math is not: once MathJax has typeset a formula its
    element holds glyphs, so any ``\\(`` or ``\\times`` left there was never typeset.
    """
    main = BeautifulSoup(str(soup.select_one("main") or soup), "html.parser")
    for element in main.select("pre, code, script, style, .cell_output"):
        element.decompose()
    snippets = []
    for block in main.select("p, li, td, th, dt, dd, h1, h2, h3, h4, h5, h6, div.math"):
        if block.find(["p", "li"]):
            continue
        text = " ".join(block.get_text(" ").split())
        if match := LATEX.search(text):
            snippets.append(text[max(match.start() - 40, 0):match.end() + 40])
    return snippets


def math_problems(soup: BeautifulSoup, mathjax_state: str) -> list[str]:
    """Formulas MathJax did not typeset, and TeX left as text."""
    formulas = soup.select("main .math")
    problems = [] if not formulas or mathjax_state == "ok" else [f"MathJax: {mathjax_state}"]
    untyped = [f for f in formulas if f.find("mjx-container") is None]
    if untyped:
        problems.append(f"{len(untyped)} of {len(formulas)} formulas not typeset, e.g. "
                        f"{untyped[0].get_text()[:60]!r}")
    return problems + [f"TeX shown as text: {s!r}" for s in leaked_latex(soup)]


def _local_target(page_url: str, href: str) -> Path | None:
    """The file a relative link on a ``file://`` page points to (``None`` for web links)."""
    url = urlparse(urljoin(page_url, href))
    return Path(unquote(url.path)) if url.scheme == "file" else None


def output_problems(soup: BeautifulSoup) -> list[str]:
    """Errors, tracebacks or stderr shown in cell outputs."""
    problems = []
    for output in soup.select(".cell_output .traceback, .cell_output .stderr, .cell_output .error"):
        kind = "stderr" if "stderr" in output.get("class", []) else "error/traceback"
        text = (output.select_one("pre") or output).get_text(" ", strip=True)
        problems.append(f"{kind} output shown: {text[:120]!r}")
    return problems


FIGURES_JS = """
return Array.from(document.querySelectorAll("main img")).map((img) => ({
  src: img.getAttribute("src"), alt: img.getAttribute("alt"), loaded: img.complete,
  width: img.naturalWidth, output: img.closest(".cell_output") !== null}));
"""


def figure_problems(figures: list[dict]) -> list[str]:
    """Figures that did not load, or whose alt text is missing or says nothing."""
    problems = []
    for fig in figures:
        name = fig["src"] or "?"
        if not fig["loaded"] or fig["width"] == 0:
            problems.append(f"figure {name!r} did not load (naturalWidth 0)")
        alt = (fig["alt"] or "").strip()
        if not alt or GENERIC_ALT.match(alt) or Path(alt).name == Path(name).name:
            problems.append(f"figure {Path(name).name!r} has no alt text saying what it shows "
                            f"(alt={alt!r}); re-run the chapter with `make execute` "
                            "(figures take it from their titles) or set mystnb image alt")
    return problems


def sidebar_problems(soup: BeautifulSoup, page: Page, html_dir: Path, page_url: str,
                     docnames: list[str]) -> list[str]:
    """Pages of ``_toc.yml`` that the sidebar does not link to."""
    nav = soup.select_one("nav.bd-docs-nav")
    if nav is None:
        return ["no sidebar (nav.bd-docs-nav)"]
    listed = set()
    for a in nav.select("a[href]"):
        href = a["href"]
        target = html_dir / page.html_name if href.startswith("#") else _local_target(page_url, href)
        if target is not None:
            listed.add(target.resolve())
    missing = [d for d in docnames if (html_dir / f"{d}.html").resolve() not in listed]
    return [f"sidebar does not list: {', '.join(missing)}"] if missing else []


def notebook_problems(page: Page, soup: BeautifulSoup, page_url: str, n_figures: int,
                      colab_url: str) -> list[str]:
    """The notebook's figures all on the page; the Colab link and a working download link."""
    problems = []
    if n_figures < (expected := notebook_png_count(page.source)):
        problems.append(f"the notebook has {expected} PNG figures but the page shows {n_figures}")
    ipynb = page.docname + ".ipynb"
    hrefs = [a["href"] for a in soup.select("a[href]")]
    if not any(h.startswith(colab_url) and h.endswith(ipynb) for h in hrefs):
        problems.append(f"no Colab link ({colab_url}…/{ipynb})")
    downloads = [h for h in hrefs if h.endswith(Path(ipynb).name) and not h.startswith("http")]
    if not downloads:
        problems.append(f"no download link for {Path(ipynb).name}")
    for href in downloads:
        target = _local_target(page_url, href)
        if target is not None and not target.is_file():
            problems.append(f"download link {href!r} points to a missing file")
    return problems


def check_page(driver, page: Page, html_dir: Path, docnames: list[str],
               colab_url: str) -> tuple[list[str], str]:
    """Open one page offline; the problems found and a short description of what was seen."""
    page_url = (html_dir / page.html_name).resolve().as_uri()
    mathjax_state = headless.load(driver, page_url)
    problems = [f"asked the network for {url}" for url in headless.outside_requests(driver)[:1]]
    problems += [f"console error: {e}" for e in headless.console_errors(driver)]
    soup = BeautifulSoup(driver.page_source, "html.parser")
    title = heading_title(page.source)
    if title not in driver.title:
        problems.append(f"page title {driver.title!r} does not contain the H1 {title!r}")
    problems += math_problems(soup, mathjax_state)
    problems += output_problems(soup)
    figures = driver.execute_script(FIGURES_JS)
    problems += figure_problems(figures)
    problems += sidebar_problems(soup, page, html_dir, page_url, docnames)
    n_figures = sum(f["output"] for f in figures)
    if page.is_notebook:
        problems += notebook_problems(page, soup, page_url, n_figures, colab_url)
    problems += axe_violations(driver)
    n_math = len(soup.select("main .math"))
    return problems, f"title={title!r} formulas={n_math} figures={n_figures}"


def axe_violations(driver) -> list[str]:
    """Serious and critical accessibility violations axe-core finds on the open page."""
    driver.execute_script(AXE_JS.read_text(encoding="utf-8"))
    return [f"axe: {v}" for v in driver.execute_async_script(RUN_AXE)]


def colab_prefix(root: Path) -> str:
    """The start of every chapter's Colab URL, from ``_config.yml``."""
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    repo = urlparse(config["repository"]["url"]).path.strip("/")
    return f"{config['launch_buttons']['colab_url'].rstrip('/')}/github/{repo}/"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html_dir", type=Path, help="the built book, e.g. _build/html")
    parser.add_argument("--root", type=Path, default=REPO_ROOT,
                        help="book root holding _toc.yml and _config.yml (default: this repo)")
    parser.add_argument("--screenshots", type=Path, default=Path("_build/browser"),
                        help="where the light and dark screenshots go (default: _build/browser)")
    args = parser.parse_args(argv)
    if not (args.html_dir / "index.html").is_file():
        parser.error(f"{args.html_dir} has no index.html; build the book first (make book)")

    started = time.monotonic()
    colab_url = colab_prefix(args.root)
    docnames = toc_docnames(args.root)
    pages, missing = book_pages(args.root)
    failures = [f"{d}: in _toc.yml but no {d}.md or {d}.ipynb" for d in missing]
    failures += [f"{p}: built although not in _toc.yml" for p in stray_pages(args.html_dir, docnames)]
    with tempfile.TemporaryDirectory(prefix="convbook-downloads-") as downloads:
        driver = headless.open_browser(Path(downloads))
        try:
            for page in pages:
                if not (args.html_dir / page.html_name).is_file():
                    failures.append(f"{page.docname}: {page.html_name} was not built")
                    continue
                problems, seen = check_page(driver, page, args.html_dir, docnames, colab_url)
                print(f"{'ok  ' if not problems else 'FAIL'} {page.html_name}: {seen}", flush=True)
                failures += [f"{page.docname}: {p}" for p in problems]
            failures += reader_actions.run_all(driver, args.html_dir, pages, colab_url,
                                               Path(downloads), args.screenshots, axe_violations)
        finally:
            driver.quit()

    if failures:
        print(f"\n{len(failures)} problem(s):", *failures, sep="\n  ", file=sys.stderr)
        return 1
    print(f"all {len(pages)} pages ok, reader actions ok ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
