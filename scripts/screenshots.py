"""Take one screenshot per page of the built book, for a person to look at.

Usage: ``python scripts/screenshots.py _build/html screenshots`` (``make screenshots``).

The browser check (scripts/browser_check.py) finds what can be tested; figure sizes, raw
logs or a giant tensor printed on a page need eyes. This writes ``<out>/<page>.png`` for
every page in ``_toc.yml``, rendered offline by the same headless Chromium
(scripts/headless.py) in a 1280-pixel-wide window, ``--height`` pixels tall (the top of the
page as a reader first sees it on a laptop; ``--height 12000`` captures more of a long page).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import headless
from book_pages import REPO_ROOT, toc_docnames

HEIGHT = 1600


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html_dir", type=Path, help="the built book, e.g. _build/html")
    parser.add_argument("out_dir", type=Path, help="where the PNGs go, e.g. screenshots")
    parser.add_argument("--root", type=Path, default=REPO_ROOT,
                        help="book root holding _toc.yml (default: this repo)")
    parser.add_argument("--height", type=int, default=HEIGHT,
                        help=f"window height in pixels (default: {HEIGHT})")
    args = parser.parse_args(argv)

    args.out_dir.mkdir(parents=True, exist_ok=True)
    missing = []
    driver = headless.open_browser()
    try:
        driver.set_window_size(headless.WINDOW[0], args.height)
        for docname in toc_docnames(args.root):
            html_path = args.html_dir / f"{docname}.html"
            if not html_path.is_file():
                missing.append(str(html_path))
                continue
            png_path = args.out_dir / f"{docname.replace('/', '__')}.png"
            headless.load(driver, html_path.resolve().as_uri())
            driver.save_screenshot(str(png_path))
            print(png_path)
    finally:
        driver.quit()
    if missing:
        print("not built, no screenshot:", *missing, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
