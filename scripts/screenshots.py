"""Take one screenshot per page of the built book, for a person to look at.

Usage: ``python scripts/screenshots.py _build/html screenshots`` (``make screenshots``).

The browser check (scripts/browser_check.py) finds what can be tested; figure sizes, raw
logs or a giant tensor printed on a page need eyes. This writes ``<out>/<page>.png`` for
every page in ``_toc.yml``, rendered by headless Chromium in a 1280×1600 window (the top
of the page as a reader first sees it on a laptop); ``--height 12000`` captures more of a
long page.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from browser_check import CHROMIUM, CHROMIUM_FLAGS, REPO_ROOT, VIRTUAL_TIME_BUDGET_MS, toc_docnames

WIDTH, HEIGHT = 1280, 1600


def screenshot(html_path: Path, png_path: Path, height: int = HEIGHT) -> None:
    """Render ``html_path`` in headless Chromium and save the window as ``png_path``."""
    with tempfile.TemporaryDirectory(prefix="convbook-chromium-") as profile:
        result = subprocess.run(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
             f"--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}", "--hide-scrollbars",
             f"--window-size={WIDTH},{height}", f"--screenshot={png_path.resolve()}",
             html_path.resolve().as_uri()],
            capture_output=True, text=True, timeout=120,
        )
    if result.returncode != 0 or not png_path.is_file():
        raise RuntimeError(f"chromium could not screenshot {html_path} "
                           f"(exit {result.returncode}):\n{result.stderr[-2000:]}")


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
    for docname in toc_docnames(args.root):
        html_path = args.html_dir / f"{docname}.html"
        if not html_path.is_file():
            missing.append(str(html_path))
            continue
        png_path = args.out_dir / f"{docname.replace('/', '__')}.png"
        screenshot(html_path, png_path, args.height)
        print(f"{png_path}")
    if missing:
        print("not built, no screenshot:", *missing, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
