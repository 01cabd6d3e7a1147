"""Figures played one after another as a reproducible animated GIF (chapters 2–5): one
palette for all frames and no timestamps, so the same frames always give the same bytes
(nbval compares them); the GIF's comment block describes it, for the book's alt text."""
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
    """A GIF (``data``) that a notebook shows, with a one-line ``text/plain`` naming it."""

    def __init__(self, data: bytes, n_frames: int, title: str) -> None:
        self.data, self.n_frames, self.title = data, n_frames, title

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, str]:
        return {"image/gif": base64.b64encode(self.data).decode("ascii"),
                "text/plain": f"Animation: {self.title} ({self.n_frames} frames)"}


def animate(draw_frame: Callable[[int], Figure], n_frames: int, title: str) -> Animation:
    """Play the figures ``draw_frame(0)``, ..., ``draw_frame(n_frames - 1)`` (new ``Figure``
    objects, not pyplot's, all the same size) as a looping GIF."""
    frames = []
    for i in range(n_frames):
        canvas = FigureCanvasAgg(draw_frame(i))  # drawn by Agg, never shown by pyplot
        canvas.draw()
        frames.append(Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3]))
    width, height = frames[0].size
    sheet = Image.new("RGB", (width, height * len(frames)))
    for index, frame in enumerate(frames):
        sheet.paste(frame, (0, index * height))
    palette = sheet.quantize(COLOURS, method=Image.Quantize.MEDIANCUT,
                             dither=Image.Dither.NONE)
    indexed = [frame.quantize(palette=palette, dither=Image.Dither.NONE) for frame in frames]
    buffer = io.BytesIO()
    indexed[0].save(buffer, format="GIF", save_all=True, append_images=indexed[1:],
                    duration=[FRAME_MS] * (n_frames - 1) + [LAST_MS], loop=0,
                    comment=f"Animation in {n_frames} frames: {title}".encode("utf-8"))
    return Animation(buffer.getvalue(), n_frames, title)
