"""Alt text for every figure of the book, written by the figure itself: its titles and labels.

Two halves of one mechanism, so that no description is ever typed twice:

- In the kernel (``make execute`` loads this module as an IPython extension): every
  matplotlib figure a cell shows is saved as PNG with a ``Description`` text chunk built by
  :func:`describe` from the suptitle, each panel's title and its axis labels. Chapters already
  title and label every plot (CONTRIBUTING.md), so a new figure needs no extra work.
- In Sphinx (``_config.yml``'s ``local_extensions``): every image without an ``alt`` gets the
  ``Description`` of its PNG as alt text (or, for the GIF animations of ``convbook.animation``,
  the description in the GIF's comment block). An author can still set ``alt`` by hand with the
  cell metadata ``mystnb: {image: {alt: ...}}``; MyST-NB applies it and it wins.

nbval ignores PNG data, so the chunk changes nothing in ``make test``.
"""
from __future__ import annotations

import re
from pathlib import Path

from docutils import nodes

DESCRIPTION = "Description"  # a standard PNG text keyword
MAX_PANELS = 8
MAX_CHARS = 400
_TEX_SYMBOLS = {r"\times": "×", r"\cdot": "·", r"\to": "→", r"\leq": "≤", r"\geq": "≥",
                r"\alpha": "α", r"\sigma": "σ", r"\mu": "μ", r"\ell": "ℓ"}


def plain(text: str) -> str:
    """Matplotlib label text as a screen reader should say it: no ``$``, no TeX commands."""
    for command, symbol in _TEX_SYMBOLS.items():
        text = text.replace(command, symbol)
    text = re.sub(r"\\[A-Za-z]+", "", text).replace("$", "").replace("{", "").replace("}", "")
    return " ".join(text.split())


def _panel(ax) -> str:
    """One axes as words: its title, then '<y> against <x>' when it has axis labels."""
    title = plain(" ".join(t for t in (ax.get_title("left"), ax.get_title(),
                                       ax.get_title("right")) if t))
    x, y = plain(ax.get_xlabel()), plain(ax.get_ylabel())
    axes = f"{y} against {x}" if x and y else (x or y)
    return f"{title} ({axes})" if title and axes else title or axes


def describe(fig) -> str:
    """What ``fig`` shows, from its suptitle and its panels' titles and labels ('' if none)."""
    suptitle = plain(fig.get_suptitle())
    panels = list(dict.fromkeys(p for p in map(_panel, fig.axes) if p))
    text = "; ".join(panels[:MAX_PANELS])
    if len(panels) > MAX_PANELS:
        text += f"; and {len(panels) - MAX_PANELS} more panels"
    text = f"{suptitle}: {text}" if suptitle and text else suptitle or text
    return text if len(text) <= MAX_CHARS else text[:MAX_CHARS - 1].rstrip() + "…"


# --- kernel side: an IPython extension ---------------------------------------------------

def load_ipython_extension(ipython) -> None:
    """Make the kernel's PNG formatter for figures write :func:`describe` into each PNG.

    ``%matplotlib inline`` (re)installs its formatter when a chapter runs it, so the wrapper
    is put back before and after every cell, ahead of the backend showing the cell's figures.
    """
    from matplotlib.figure import Figure

    def wrap_png_formatter() -> None:
        formatter = ipython.display_formatter.formatters["image/png"]
        try:
            current = formatter.lookup_by_type(Figure)
        except KeyError:
            return
        if getattr(current, "writes_description", False):
            return

        def png_with_description(fig, _show=current):
            description = describe(fig)
            return _show(fig, metadata={DESCRIPTION: description}) if description else _show(fig)

        png_with_description.writes_description = True
        formatter.for_type(Figure, png_with_description)

    ipython.events.register("pre_execute", wrap_png_formatter)
    ipython.events.register("post_execute", wrap_png_formatter)


# --- book side: a Sphinx extension -------------------------------------------------------

def image_description(path: Path) -> str:
    """The description an image file carries ('' if none): a PNG's ``Description`` text
    chunk, or a GIF's comment block (where ``convbook.animation`` describes animations)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            text = getattr(image, "text", {}).get(DESCRIPTION) or image.info.get("comment", "")
    except (OSError, ValueError):
        return ""
    return (text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)).strip()


def _image_file(app, uri: str) -> Path | None:
    """The file an image node points to: an absolute path, or one relative to the source
    folder (how Sphinx's image collector and MyST-NB's ``/…`` URIs name it), or to the page."""
    candidates = [Path(uri)]
    if app is not None:
        candidates += [Path(app.srcdir) / uri.lstrip("/"),
                       Path(app.env.relfn2path(uri, app.env.docname)[1])]
    return next((path for path in candidates if path.is_file()), None)


def fill_alt_text(app, doctree: nodes.document) -> None:
    """Give each image without ``alt`` the description stored in its file."""
    for image in doctree.findall(nodes.image):
        if image.get("alt") or "://" in image["uri"]:
            continue
        path = _image_file(app, image["uri"])
        if path is not None and (description := image_description(path)):
            image["alt"] = description


def setup(app) -> dict:
    app.connect("doctree-read", fill_alt_text)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
