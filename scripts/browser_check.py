"""Load every page of the built book in headless Chromium and check what a reader sees.

Usage: ``python scripts/browser_check.py _build/html`` (``make browser-test`` builds first).

The HTML on disk is what Sphinx wrote; the page a reader sees is what the browser made of
it after the theme's scripts ran. This script asks a real browser for that rendered DOM
(``--dump-dom``) and checks, for every page in ``_toc.yml``:

- the page title contains the chapter's H1;
- no error, traceback or stderr output is shown, and no script failed (browser console);
- no LaTeX leaked into the prose (``$x \cdot y$`` that MyST did not parse as math, e.g.
  because a line inside it starts with ``+ `` and became a list item);
- every image in a cell output points to a file that exists;
- the sidebar lists every page of ``_toc.yml``, and no other page was built (README.md and
  CONTRIBUTING.md stay out: ``only_build_toc_files``);

and for every notebook chapter also:

- at least one figure, when the committed notebook has ``image/png`` outputs;
- an "open in Colab" link ending in ``chapters/<name>.ipynb`` and a download link to the
  ``.ipynb`` (the ways to run a chapter described in intro.md).

It prints one line per page and exits 1 with the list of failures.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import nbformat
import yaml
from bs4 import BeautifulSoup

REPO_ROOT = Path(__file__).resolve().parent.parent

CHROMIUM = "chromium"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--enable-logging=stderr", "--v=0",
)
# Long enough for the theme's scripts to run; virtual time, so it costs little real time.
VIRTUAL_TIME_BUDGET_MS = 5000
PAGE_TIMEOUT_S = 120

CONSOLE_ERROR = re.compile(r'CONSOLE.*"(Uncaught [^"]*)"')
# sphinx-thebe 0.3.1 under Sphinx 7.4 writes its inline config script twice, so the second
# `const` declaration throws. It only affects live code cells (thebe), which the book does
# not use; every other script error fails the check.
KNOWN_CONSOLE_ERRORS = (
    "Uncaught SyntaxError: Identifier 'THEBE_JS_URL' has already been declared",
)


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
    """Every docname of ``_toc.yml`` in reading order, the root page first."""
    toc = yaml.safe_load((Path(root) / "_toc.yml").read_text(encoding="utf-8"))
    names = [toc["root"]]

    def walk(entries: list[dict]) -> None:
        for entry in entries:
            if "file" in entry:
                names.append(entry["file"])
            for key in ("parts", "chapters", "sections"):
                walk(entry.get(key, []))

    walk([toc])
    return [re.sub(r"\.(md|ipynb)$", "", name) for name in names]


def source_of(docname: str, root: Path = REPO_ROOT) -> Path | None:
    """The ``.ipynb`` or ``.md`` file a docname is built from, or ``None`` if missing."""
    for suffix in (".ipynb", ".md"):
        path = Path(root) / (docname + suffix)
        if path.exists():
            return path
    return None


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


def notebook_has_png(source: Path) -> bool:
    """Whether the committed notebook shows at least one PNG figure."""
    nb = nbformat.read(source, as_version=4)
    return any("image/png" in out.get("data", {})
               for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs)


def render(html_path: Path) -> tuple[str, list[str]]:
    """The DOM of ``html_path`` after Chromium ran its scripts, and the script errors."""
    with tempfile.TemporaryDirectory(prefix="convbook-chromium-") as profile:
        result = subprocess.run(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
             f"--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}", "--dump-dom",
             html_path.resolve().as_uri()],
            capture_output=True, text=True, timeout=PAGE_TIMEOUT_S,
        )
    if result.returncode != 0 or "<html" not in result.stdout:
        raise RuntimeError(f"chromium failed on {html_path} (exit {result.returncode}):\n"
                           f"{result.stderr[-2000:]}")
    errors = [m.group(1) for m in CONSOLE_ERROR.finditer(result.stderr)
              if m.group(1) not in KNOWN_CONSOLE_ERRORS]
    return result.stdout, errors


LATEX_COMMAND = re.compile(r"\\[A-Za-z]{2,}")


def leaked_latex(soup: BeautifulSoup) -> list[str]:
    """One snippet per paragraph whose prose still has a LaTeX command outside math and code."""
    main = BeautifulSoup(str(soup.select_one("main") or soup), "html.parser")
    for element in main.select("pre, code, script, style, .math, .cell_output, mjx-container"):
        element.decompose()
    snippets = []
    for block in main.select("p, li, td, th, dt, h1, h2, h3, h4, h5, h6"):
        if block.find("p"):
            continue
        text = " ".join(block.get_text(" ").split())
        if match := LATEX_COMMAND.search(text):
            snippets.append(text[max(match.start() - 40, 0):match.end() + 40])
    return snippets


def _local_target(page_url: str, href: str) -> Path | None:
    """The file a relative link on a ``file://`` page points to (``None`` for web links)."""
    url = urlparse(urljoin(page_url, href))
    return Path(unquote(url.path)) if url.scheme == "file" else None


def check_page(page: Page, dom: str, html_dir: Path, docnames: list[str],
               colab_url: str) -> tuple[list[str], str]:
    """Problems found in one rendered page, and a short description of what was seen."""
    soup = BeautifulSoup(dom, "html.parser")
    page_url = (html_dir / page.html_name).resolve().as_uri()
    title = heading_title(page.source)
    shown = soup.title.get_text(" ", strip=True) if soup.title else ""
    problems = [] if title in shown else [f"page title {shown!r} does not contain the H1 {title!r}"]
    problems += _output_problems(soup, page_url)
    problems += [f"LaTeX shown as text, not math: {s!r}" for s in leaked_latex(soup)]
    problems += _sidebar_problems(soup, page, html_dir, page_url, docnames)

    n_images = len(soup.select(".cell_output img"))
    seen = f"title={title!r} figures={n_images}"
    if page.is_notebook:
        problems += _check_notebook_page(page, soup, page_url, n_images, colab_url)
        seen += " (notebook: Colab and download links checked)"
    return problems, seen


def _output_problems(soup: BeautifulSoup, page_url: str) -> list[str]:
    """Errors or stderr shown in cell outputs, and output images missing from the build."""
    problems = []
    for output in soup.select(".cell_output .traceback, .cell_output .stderr, .cell_output .error"):
        kind = "stderr" if "stderr" in output.get("class", []) else "error/traceback"
        text = (output.select_one("pre") or output).get_text(" ", strip=True)
        problems.append(f"{kind} output shown: {text[:120]!r}")
    for img in soup.select(".cell_output img"):
        target = _local_target(page_url, img.get("src", ""))
        if target is not None and not target.is_file():
            problems.append(f"figure {img.get('src')!r} is missing from the build")
    return problems


def _sidebar_problems(soup: BeautifulSoup, page: Page, html_dir: Path, page_url: str,
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


def _check_notebook_page(page: Page, soup: BeautifulSoup, page_url: str, n_images: int,
                         colab_url: str) -> list[str]:
    """A figure when the notebook has PNGs; the Colab link and a working download link."""
    problems = []
    if n_images == 0 and notebook_has_png(page.source):
        problems.append("the notebook has PNG figures but the page shows none")
    ipynb = page.docname + ".ipynb"
    hrefs = [a["href"] for a in soup.select("a[href]")]
    if not any(h.startswith(colab_url) and h.endswith(ipynb) for h in hrefs):
        problems.append(f"no Colab link ({colab_url}/…/{ipynb})")
    downloads = [h for h in hrefs if h.endswith(Path(ipynb).name) and not h.startswith("http")]
    if not downloads:
        problems.append(f"no download link for {Path(ipynb).name}")
    for href in downloads:
        target = _local_target(page_url, href)
        if target is not None and not target.is_file():
            problems.append(f"download link {href!r} points to a missing file")
    return problems


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


def stray_pages(html_dir: Path, docnames: list[str]) -> list[str]:
    """Built pages that are not in ``_toc.yml`` (Sphinx's own index and search aside)."""
    expected = {f"{d}.html" for d in docnames} | {"index.html", "genindex.html", "search.html"}
    built = {p.relative_to(html_dir).as_posix() for p in html_dir.rglob("*.html")
             if not p.relative_to(html_dir).parts[0].startswith("_")}
    return sorted(built - expected)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html_dir", type=Path, help="the built book, e.g. _build/html")
    parser.add_argument("--root", type=Path, default=REPO_ROOT,
                        help="book root holding _toc.yml and _config.yml (default: this repo)")
    args = parser.parse_args(argv)
    if not (args.html_dir / "index.html").is_file():
        parser.error(f"{args.html_dir} has no index.html; build the book first (make book)")

    config = yaml.safe_load((args.root / "_config.yml").read_text(encoding="utf-8"))
    repo = urlparse(config["repository"]["url"]).path.strip("/")
    colab_url = f"{config['launch_buttons']['colab_url'].rstrip('/')}/github/{repo}/"
    docnames = toc_docnames(args.root)
    pages, missing = book_pages(args.root)
    failures = [f"{d}: in _toc.yml but no {d}.md or {d}.ipynb" for d in missing]
    failures += [f"{p}: built although not in _toc.yml" for p in stray_pages(args.html_dir, docnames)]

    for page in pages:
        html_path = args.html_dir / page.html_name
        if not html_path.is_file():
            failures.append(f"{page.docname}: {html_path} was not built")
            continue
        dom, script_errors = render(html_path)
        problems, seen = check_page(page, dom, args.html_dir, docnames, colab_url)
        problems += [f"script error: {e}" for e in script_errors]
        print(f"{'ok  ' if not problems else 'FAIL'} {page.html_name}: {seen}")
        failures += [f"{page.docname}: {p}" for p in problems]

    if failures:
        print(f"\n{len(failures)} problem(s):", *failures, sep="\n  ", file=sys.stderr)
        return 1
    print(f"all {len(pages)} pages ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
