"""Small markup fixes for screen readers, found by axe-core in the browser check.

Sphinx 7.4 writes the References page's entries as ``<div role="doc-biblioentry">`` inside a
``<div role="list">``: ``doc-biblioentry`` is deprecated and not a list item, so axe reports
``aria-required-children`` (critical) and screen readers announce an empty list. Each entry
becomes a ``listitem``.

MyST-NB names the "Show code cell source" toggle ``aria-label="Toggle hidden content"``,
which is not the text a reader sees (axe: ``label-content-name-mismatch``, serious); without
the label its name is the visible text. The theme's search and colour-mode buttons had the
same fault and are fixed in ``_templates/``.
"""
from __future__ import annotations

from sphinx.application import Sphinx

REPLACEMENTS = {
    'role="doc-biblioentry"': 'role="listitem"',
    '<summary aria-label="Toggle hidden content">': "<summary>",
}


def fix_body(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """Apply :data:`REPLACEMENTS` to the page's body."""
    body = context.get("body", "")
    for faulty, fixed in REPLACEMENTS.items():
        body = body.replace(faulty, fixed)
    context["body"] = body


def setup(app: Sphinx) -> dict:
    app.connect("html-page-context", fix_body)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
