"""Helpers of the figure modules ``plot`` and ``opfigures``: page-sized subplots, tensor checks,
captions."""
from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ._torch import check_labels

MAX_WIDTH = 9.0  # inches; at DPI this is the widest figure the book page shows well
DPI = 100
WRONG = "#c62828"  # caption colour of a wrong prediction
ANNOTATE_LIMIT = 16  # show_matrix writes numbers only into matrices up to this size


def _subplots(nrows: int, ncols: int, width: float, height: float, **kwargs):
    """``plt.subplots`` at the book's dpi, never wider than ``MAX_WIDTH``."""
    return plt.subplots(nrows, ncols, figsize=(min(width, MAX_WIDTH), height), dpi=DPI,
                        squeeze=False, **kwargs)


def _as_tensor(x, name: str, ndim: int, layout: str) -> torch.Tensor:
    """``x`` as a detached CPU float tensor with ``ndim`` dimensions, or a ValueError."""
    tensor = torch.as_tensor(x).detach().cpu()
    if tensor.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D {layout}, got shape {tuple(tensor.shape)}")
    if tensor.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(tensor.shape)}): nothing to show")
    return tensor.float()


def _format_number(value: float) -> str:
    """Integers without '.0'; other numbers with at most two decimals."""
    if float(value).is_integer():
        return str(int(value))
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _annotate_cells(ax: Axes, values: torch.Tensor, labels: Sequence[str],
                    signed: bool = False) -> None:
    """Write ``labels`` (row-major) into the cells of an ``imshow``, legible on any shade:
    white beyond the middle of the colour scale, which starts at 0 as ``_shading``'s does."""
    if signed:  # the diverging map is dark at both ends
        values = values.abs()
    low, high = min(values.min().item(), 0.0), values.max().item()
    middle = (low + high) / 2
    h, w = values.shape
    for (i, j), text in zip(((i, j) for i in range(h) for j in range(w)), labels):
        dark = high > low and values[i, j].item() > middle
        ax.text(j, i, text, ha="center", va="center", fontsize=10,
                color="white" if dark else "black")


def _shading(values: torch.Tensor, signed: bool, default: str) -> dict:
    """``imshow`` colours: ``default`` from 0 (values that are never negative start at the
    lightest shade), or with ``signed`` ``RdBu_r`` centred on 0."""
    if not signed:
        return {"cmap": default, "vmin": min(values.min().item(), 0.0),
                "vmax": values.max().item()}
    limit = values.abs().max().item() or 1.0
    return {"cmap": "RdBu_r", "vmin": -limit, "vmax": limit}


def _grid(n: int, ncols: int, cell: float, row_height: float) -> tuple[Figure, list[Axes]]:
    """A figure with ``n`` square panels in rows of ``ncols``; unused grid cells removed."""
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    cell = min(cell, MAX_WIDTH / ncols)
    fig, axes = _subplots(nrows, ncols, cell * ncols, nrows * cell * row_height + 0.4)
    for ax in axes.flat[n:]:
        fig.delaxes(ax)
    return fig, list(axes.flat[:n])


def _display_range(images: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] unchanged; normalised ones min–max rescaled per image for display."""
    if images.min() >= 0 and images.max() <= 1:
        return images
    low, high = (v.view(-1, 1, 1, 1) for v in torch.aminmax(images.flatten(1), dim=1))
    return (images - low) / (high - low).clamp_min(1e-12)


def _captioned_images(images, labels, predictions, class_names):
    """The checked ``(N, C, H, W)`` images, their ``(N, H, W, C)`` pixels for ``imshow`` and
    the labels and predictions as lists (or None): show_images, show_attribution."""
    batch = _as_tensor(images, "images", 4, "(N, C, H, W)")
    n, channels = batch.shape[:2]
    if channels not in (1, 3):
        raise ValueError(f"images must be (N, C, H, W) with C 1 or 3, "
                         f"got shape {tuple(batch.shape)}")
    k = None if class_names is None else len(class_names)
    labels, predictions = (None if v is None else check_labels(v, k, name=name, count=n).tolist()
                           for v, name in ((labels, "labels"), (predictions, "predictions")))
    pixels = _display_range(batch).permute(0, 2, 3, 1).numpy()
    return batch, pixels, labels, predictions


def _class_name(index: int, class_names: Sequence[str] | None) -> str:
    return class_names[index] if class_names is not None else str(index)


def _caption(k: int, labels, predictions, class_names) -> tuple[str, str]:
    """Caption text and colour of image ``k``: the prediction, red with the truth when wrong."""
    label = None if labels is None else labels[k]
    prediction = None if predictions is None else predictions[k]
    if prediction is None:
        return ("" if label is None else _class_name(label, class_names)), "black"
    text = _class_name(prediction, class_names)
    if label is None or label == prediction:
        return text, "black"
    return f"{text}\n(true: {_class_name(label, class_names)})", WRONG
