"""The scripts each page loads: only the book's own, none from the network.

- Jupyter Book adds every ``.js`` file under ``_static/`` to every page. The vendored MathJax
  (``_static/mathjax/``, see scripts/vendor_js.sh) is loaded once, through Sphinx's
  ``mathjax_path``; its TeX extensions are fetched by MathJax's own loader only when a formula
  needs them, so they are taken out of that list.
- Jupyter Book always loads ``sphinx_thebe``, which adds a script naming
  ``https://unpkg.com/thebe@…``, the ``sphinx-thebe`` JS and CSS, and a thebe configuration
  block. The book has no live code cells (readers run chapters in Colab or locally, see
  intro.md), so all of it goes; under Sphinx 7.4 its config script was also written twice and
  threw a console error. The Colab launch button comes from the theme and stays.
"""
from __future__ import annotations

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.config import Config

VENDORED_MATHJAX = "mathjax/"


def keep_mathjax_components_off_pages(app: Sphinx, config: Config) -> None:
    """Drop the vendored MathJax files from ``html_js_files`` (Jupyter Book globbed them)."""
    config.html_js_files = [
        entry for entry in config.html_js_files
        if not (entry[0] if isinstance(entry, tuple) else entry).startswith(VENDORED_MATHJAX)
    ]


def _is_thebe(asset) -> bool:
    """Whether a page's script or stylesheet entry is one of sphinx-thebe's."""
    filename = getattr(asset, "filename", None) or str(asset)
    body = getattr(asset, "attributes", {}).get("body", "")
    return "thebe" in filename or "THEBE_JS_URL" in body


def drop_thebe_assets(app: Sphinx, pagename: str, templatename: str, context: dict,
                      doctree) -> None:
    """Remove thebe's scripts and stylesheet from the page about to be written."""
    for key in ("script_files", "css_files"):
        if key in context:
            context[key] = [asset for asset in context[key] if not _is_thebe(asset)]


def drop_thebe_config(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """Remove the ``text/x-thebe-config`` block sphinx-thebe puts into every page."""
    for node in list(doctree.findall(nodes.raw)):
        if "x-thebe-config" in node.astext():
            node.parent.remove(node)


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", keep_mathjax_components_off_pages)
    app.connect("html-page-context", drop_thebe_assets, priority=900)
    app.connect("doctree-resolved", drop_thebe_config, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
