"""convbook.animation — figures played one after another as an animated GIF (chapters 2–5).

Each frame is a matplotlib figure rendered by Agg at a fixed dpi; Pillow writes the frames
as one GIF with a single shared palette and no timestamps, so the same frames always give
the same bytes. A GIF is an ordinary image output: Jupyter and Colab show it, MyST-NB
writes it into the book's HTML page (``image/gif`` is in its render priority), and nbval
compares its bytes exactly on a re-run.
"""
from __future__ import annotations

import base64
import io
from collections.abc import Callable

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

__all__ = ["Animation", "animate"]

FRAME_MS = 700  # how long each frame shows
LAST_MS = 2500  # the finished picture stays longer before the loop restarts
COLOURS = 64  # palette size: enough for anti-aliased text, small files


class Animation:
    """An animated GIF that shows itself in a notebook; ``data`` holds its bytes.

    The notebook output carries ``image/gif`` plus a one-line ``text/plain`` naming the
    animation and its frame count, for readers and tests that only see text.
    """

    def __init__(self, data: bytes, n_frames: int, title: str) -> None:
        self.data, self.n_frames, self.title = data, n_frames, title

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, str]:
        return {"image/gif": base64.b64encode(self.data).decode("ascii"),
                "text/plain": f"Animation: {self.title} ({self.n_frames} frames)"}


def _render(fig: Figure) -> Image.Image:
    """The figure's pixels as an RGB image, drawn by Agg (never shown by pyplot)."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3])


def _figures_to_gif(figures: list[Figure], *, frame_ms: int = FRAME_MS,
                   last_ms: int = LAST_MS, comment: str = "") -> bytes:
    """The figures, all the same size, as the bytes of one looping GIF.

    One palette is computed from all frames together (median cut, no dithering), so
    colours do not flicker between frames and the output is byte-for-byte reproducible.
    ``comment`` goes into the GIF's comment block (``Image.open(...).info["comment"]``),
    where the book can find a description to use as alt text.
    """
    if not figures:
        raise ValueError("figures is empty: an animation needs at least one frame")
    frames = [_render(fig) for fig in figures]
    sizes = {frame.size for frame in frames}
    if len(sizes) != 1:
        raise ValueError(f"all frames must have the same size in pixels, got {sorted(sizes)}")
    width, height = frames[0].size
    sheet = Image.new("RGB", (width, height * len(frames)))
    for index, frame in enumerate(frames):
        sheet.paste(frame, (0, index * height))
    palette = sheet.quantize(COLOURS, method=Image.Quantize.MEDIANCUT,
                             dither=Image.Dither.NONE)
    indexed = [frame.quantize(palette=palette, dither=Image.Dither.NONE) for frame in frames]
    durations = [frame_ms] * (len(frames) - 1) + [last_ms]
    buffer = io.BytesIO()
    indexed[0].save(buffer, format="GIF", save_all=True, append_images=indexed[1:],
                    duration=durations, loop=0, comment=comment.encode("utf-8"))
    return buffer.getvalue()


def animate(draw_frame: Callable[[int], Figure], n_frames: int, title: str, *,
            frame_ms: int = FRAME_MS) -> Animation:
    """Call ``draw_frame(0)``, ..., ``draw_frame(n_frames - 1)`` and play the figures.

    ``draw_frame`` must return a new ``matplotlib.figure.Figure`` (not one made by
    ``pyplot``, which the inline backend would also show) of the same size every time.
    The GIF's comment block describes it: ``"Animation in <n> frames: <title>"``.
    """
    if not isinstance(n_frames, int) or n_frames < 1:
        raise ValueError(f"n_frames must be a positive int, got {n_frames!r}")
    data = _figures_to_gif([draw_frame(i) for i in range(n_frames)], frame_ms=frame_ms,
                          comment=f"Animation in {n_frames} frames: {title}")
    return Animation(data, n_frames, title)
