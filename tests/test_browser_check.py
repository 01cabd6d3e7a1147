"""The browser check's judgements on rendered markup, and the offline browser it drives.

scripts/browser_check.py decides from the DOM Chromium rendered; the first tests feed it
small pieces of such DOM and check what it reports. The last ones open small pages in the
real headless browser (scripts/headless.py): requests outside ``file://`` are named, and
the vendored MathJax typesets a formula with no network.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

import browser_check
import headless
from conftest import ROOT

TYPESET = "<span class='math'><mjx-container class='MathJax'>k × k</mjx-container></span>"


def _soup(html: str) -> BeautifulSoup:
    return BeautifulSoup(f"<main>{html}</main>", "html.parser")


def test_typeset_math_passes():
    assert browser_check.math_problems(_soup(f"<p>Size {TYPESET}.</p>"), "ok") == []


def test_untypeset_math_is_reported_with_its_tex_and_not_hidden_by_stripping_math():
    problems = browser_check.math_problems(
        _soup("<p>Size <span class='math'>\\(k \\times k\\)</span>.</p>"), "ok")
    assert problems[0].startswith("1 of 1 formulas not typeset")
    assert any("TeX shown as text" in p and "\\times" in p for p in problems)


def test_display_math_left_raw_is_reported():
    problems = browser_check.math_problems(
        _soup("<div class='math'>\\[Y = X \\star K\\]</div>"), "ok")
    assert any("TeX shown as text" in p for p in problems)


def test_mathjax_failure_is_reported_only_on_pages_with_math():
    assert browser_check.math_problems(_soup("<p>No math.</p>"), "no MathJax") == []
    assert "MathJax: no MathJax" in browser_check.math_problems(_soup(f"<p>{TYPESET}</p>"),
                                                                "no MathJax")


def test_code_and_outputs_may_show_backslashes():
    html = "<p><code>\\newline</code></p><div class='cell_output'><pre>\\alpha</pre></div>"
    assert browser_check.math_problems(_soup(html), "ok") == []


def _figure(alt, width=640, src="../_images/3f9a0c.png"):
    return {"src": src, "alt": alt, "loaded": True, "width": width, "output": True}


def test_a_figure_with_a_description_passes():
    assert browser_check.figure_problems([_figure("Training loss against epoch")]) == []


def test_missing_generic_or_file_name_alt_text_is_reported():
    for alt in (None, "", "image", "Figure 2", "../_images/3f9a0c.png"):
        problems = browser_check.figure_problems([_figure(alt)])
        assert len(problems) == 1 and "no alt text" in problems[0], alt


def test_a_figure_that_did_not_load_is_reported():
    problems = browser_check.figure_problems([_figure("Kernels", width=0)])
    assert problems == ["figure '../_images/3f9a0c.png' did not load (naturalWidth 0)"]


# --- with the real browser (Debian's chromium and chromium-driver) -----------------------

needs_browser = pytest.mark.skipif(
    shutil.which("chromedriver") is None or shutil.which("chromium") is None,
    reason="needs the Debian packages chromium and chromium-driver (make system-deps)")
MATHJAX = (ROOT / "_static" / "mathjax" / "tex-chtml.js").as_uri()


@pytest.fixture(scope="module")
def driver():
    browser = headless.open_browser()
    yield browser
    browser.quit()


def _page(tmp_path: Path, head: str, body: str) -> str:
    path = tmp_path / "page.html"
    path.write_text(f"<html><head><title>t</title>{head}</head><body><main>{body}</main>"
                    "</body></html>", encoding="utf-8")
    return path.as_uri()


@needs_browser
def test_the_browser_names_every_request_outside_file_urls(driver, tmp_path):
    url = _page(tmp_path, '<script src="https://cdn.example.org/mathjax.js"></script>',
                '<img src="http://127.0.0.1:9/figure.png" alt="A figure">')
    headless.load(driver, url)
    assert headless.outside_requests(driver) == ["https://cdn.example.org/mathjax.js",
                                                 "http://127.0.0.1:9/figure.png"]


@needs_browser
def test_the_vendored_mathjax_typesets_offline_and_its_absence_is_caught(driver, tmp_path):
    formula = "<p>Size <span class='math'>\\(k \\times k\\)</span>.</p>"
    state = headless.load(driver, _page(tmp_path, f'<script src="{MATHJAX}"></script>', formula))
    soup = BeautifulSoup(driver.page_source, "html.parser")
    assert browser_check.math_problems(soup, state) == []
    assert headless.outside_requests(driver) == [] and headless.console_errors(driver) == []

    state = headless.load(driver, _page(tmp_path, "", formula))
    problems = browser_check.math_problems(BeautifulSoup(driver.page_source, "html.parser"), state)
    assert "MathJax: no MathJax" in problems and any("not typeset" in p for p in problems)
