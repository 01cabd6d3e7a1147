"""convbook.attribution — attribution maps drawn over their images (chapter 9).

``show_attribution`` shows each image above the same image with a map from
:mod:`convbook.explain` (saliency, occlusion) laid over it, captioned with the true and
predicted class. It is re-exported as ``convbook.plot.show_attribution``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from matplotlib.figure import Figure

from ._figure import _as_tensor, _caption, _captioned_images, _subplots

__all__ = ["show_attribution"]

OVERLAY_ALPHA = 0.6


def _overlay_limits(values: torch.Tensor) -> tuple[str, float, float]:
    """Colour map and range: 0..max for a map that is never negative, else ±max|value|."""
    top = values.abs().max().item() or 1.0
    return ("inferno", 0.0, top) if values.min() >= 0 else ("RdBu_r", -top, top)


def show_attribution(images, maps, *, labels=None, predictions=None,
                     class_names: Sequence[str] | None = None, map_name: str = "attribution",
                     ncols: int = 8, title: str | None = None) -> Figure:
    """Each image, and below it the image with its attribution map laid over (chapter 9).

    ``images`` is ``(N, C, H, W)`` (C 1 or 3) and ``maps`` ``(N, H, W)``, e.g. from
    ``cb.explain.saliency`` or ``cb.explain.occlusion``. Each map gets its own colour
    scale: ``inferno`` from 0 to its maximum, or red (positive) / blue (negative) around 0
    when it has negative values, as occlusion maps can. Captions name the prediction, in
    red with the true class when it is wrong (as in :func:`convbook.plot.show_images`).
    """
    batch, pixels, labels, predictions = _captioned_images(
        images, labels, predictions, class_names, ncols)
    values = _as_tensor(maps, "maps", 3, "(N, H, W)")
    n, channels, h, w = batch.shape
    if tuple(values.shape) != (n, h, w):
        raise ValueError(f"maps must be (N, H, W) = {(n, h, w)} to match images, got "
                         f"{tuple(values.shape)}")
    ncols = min(ncols, n)
    groups = math.ceil(n / ncols)
    cell = min(1.3, 7.0 / ncols)
    fig, axes = _subplots(2 * groups, ncols, cell * ncols, groups * 2 * cell * 1.15 + 0.5)
    for k in range(groups * ncols):
        top, bottom = axes[2 * (k // ncols), k % ncols], axes[2 * (k // ncols) + 1, k % ncols]
        if k >= n:
            fig.delaxes(top)
            fig.delaxes(bottom)
            continue
        picture = pixels[k].squeeze(-1) if channels == 1 else pixels[k]
        cmap, low, high = _overlay_limits(values[k])
        for ax in (top, bottom):
            ax.imshow(picture, cmap="gray" if channels == 1 else None, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        bottom.imshow(values[k].numpy(), cmap=cmap, vmin=low, vmax=high, alpha=OVERLAY_ALPHA)
        text, colour = _caption(None if labels is None else labels[k],
                                None if predictions is None else predictions[k], class_names)
        top.set_title(text, fontsize=8, color=colour)
        if k % ncols == 0:
            top.set_ylabel("image", fontsize=8)
            bottom.set_ylabel(map_name, fontsize=8)
    fig.suptitle(title or f"{map_name.capitalize()} maps of {n} images")
    fig.tight_layout()
    return fig
