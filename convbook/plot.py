"""The course's figures: each function returns a new titled ``Figure``, at most 9 inches wide
at 100 dpi, and never calls ``plt.show``."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from ._figure import DPI, MAX_WIDTH, WRONG  # noqa: F401 (cb.plot's page constants)
from ._figure import (ANNOTATE_LIMIT, _annotate_cells, _as_tensor, _caption, _captioned_images,
                      _format_number, _grid, _shading, _subplots)
from .models import count_parameters, layer_table
from .opfigures import (animate_corr2d, show_conv1x1, show_conv_volume, show_corr2d_multi_in,
                        show_corr2d_multi_out, show_corr2d_steps, show_pool2d_backward,
                        show_pool2d_steps)

__all__ = [
    "show_matrix", "show_images", "show_feature_maps", "show_panels", "show_kernels",
    "plot_history", "compare_histories", "plot_one_cycle", "plot_confusion_matrix", "plot_architecture",
    "show_channel_stats", "show_attribution",
    # the step-through figures of chapters 2-5, drawn by convbook.opfigures
    "animate_corr2d", "show_conv1x1", "show_conv_volume", "show_corr2d_multi_in",
    "show_corr2d_multi_out", "show_corr2d_steps", "show_pool2d_backward", "show_pool2d_steps",
]


def show_matrix(X, title: str | None = None, annotate: bool = True, *,
                signed: bool = False) -> Figure:
    """A 2-D tensor as a shaded grid with its numbers written in (up to 16 a side), or with
    a colour bar; grey from white (0) to black, or with ``signed`` red positive, blue negative
    (chapters 2, 3, 5)."""
    values = _as_tensor(X, "X", 2, "(rows, columns)")
    h, w = values.shape
    cell = min(0.55, MAX_WIDTH / max(w, 1), 6.0 / max(h, 1))
    fig, axes = _subplots(1, 1, max(2.5, cell * w + 1.2), max(2.0, cell * h + 0.9))
    ax = axes[0, 0]
    image = ax.imshow(values.numpy(), **_shading(values, signed, "Greys"))
    if annotate and max(h, w) <= ANNOTATE_LIMIT:
        _annotate_cells(ax, values, [_format_number(v) for v in values.flatten().tolist()],
                        signed)
    else:
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if max(h, w) <= ANNOTATE_LIMIT:
        ax.set(xticks=range(w), yticks=range(h))
    ax.set(xlabel="column", ylabel="row", title=title or f"{h} × {w} matrix")
    fig.tight_layout()
    return fig


def show_images(images, labels=None, *, class_names: Sequence[str] | None = None,
                predictions=None, ncols: int = 8, title: str | None = None) -> Figure:
    """``(N, C, H, W)`` images (normalised ones rescaled for display) captioned with their
    labels or predictions, wrong ones red with the truth (chapters 1, 6–11, 13)."""
    batch, pixels, labels, predictions = _captioned_images(images, labels, predictions,
                                                           class_names)
    n, channels = batch.shape[:2]
    captions = labels is not None or predictions is not None
    fig, axes = _grid(n, ncols, cell=1.2, row_height=1.45 if captions else 1.05)
    for index, ax in enumerate(axes):
        ax.imshow(pixels[index].squeeze(-1) if channels == 1 else pixels[index],
                  cmap="gray" if channels == 1 else None, vmin=0, vmax=1)
        text, colour = _caption(index, labels, predictions, class_names)
        ax.set_title(text, fontsize=9, color=colour)
        ax.axis("off")
    fig.suptitle(title or f"{n} images")
    fig.tight_layout()
    return fig


def show_feature_maps(maps, title: str | None = None, *, signed: bool = False,
                      shared: bool = False) -> Figure:
    """One example's ``(C, H, W)`` activations side by side, each map on its own colour scale,
    or with ``shared`` all on one scale with a colour bar, so that maps compare (``signed``:
    centred on 0), chapters 2 and 7."""
    values = _as_tensor(maps, "maps", 3, "(C, H, W); for a batch pass maps[0]")
    channels = values.shape[0]
    fig, axes = _grid(channels, 8, cell=1.3, row_height=1.2)
    for index, ax in enumerate(axes):
        shading = _shading(values if shared else values[index], signed, "viridis")
        image = ax.imshow(values[index].numpy(), **shading)
        ax.set_title(f"channel {index}", fontsize=9)
        ax.axis("off")
    fig.suptitle(title or f"{channels} feature maps")
    fig.tight_layout()
    if shared:
        fig.colorbar(image, ax=axes, shrink=0.8, label="activation")
    return fig


def show_panels(panels: Mapping[str, object], title: str, *,
                signed: Sequence[str] = ()) -> Figure:
    """Named 2-D tensors side by side, each on its own scale: grey from white at 0 for values
    that are never negative (pixels, counts), red/blue centred on 0 for the panels named in
    ``signed`` (chapter 2's shifted image and edge maps)."""
    unknown = sorted(set(signed) - set(panels))
    if unknown:
        raise ValueError(f"signed names panels that do not exist: {unknown}; "
                         f"the panels are {list(panels)}")
    fig, axes = _grid(len(panels), len(panels), cell=2.2, row_height=1.1)
    for ax, (name, values) in zip(axes, panels.items()):
        values = _as_tensor(values, f"panel {name!r}", 2, "(rows, columns)")
        ax.imshow(values.numpy(), **_shading(values, name in signed, "Greys"))
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def show_kernels(weight, title: str | None = None) -> Figure:
    """Convolution weights ``(out, in, kh, kw)`` as a grid of small images on one colour scale
    centred on zero (chapters 2, 7)."""
    values = _as_tensor(weight, "weight", 4, "(out_channels, in_channels, kh, kw)")
    n_out, n_in = values.shape[:2]
    cells = [(o, i) for o in range(n_out) for i in range(n_in)]
    ncols = min(len(cells), 8)  # the kernels wrap into rows of up to eight
    nrows = math.ceil(len(cells) / ncols)
    cell = min(0.9, (MAX_WIDTH - 1.4) / ncols, 7.0 / nrows)
    fig, axes = _subplots(nrows, ncols, cell * ncols + 1.4, cell * nrows + 0.8,
                          layout="constrained")
    limit = values.abs().max().item() or 1.0
    for ax, (o, i) in zip(axes.flat, cells):
        image = ax.imshow(values[o, i].numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set(xticks=[], yticks=[])
        ax.set_title(f"out {o}" if n_in == 1 else f"out {o}, in {i}", fontsize=8)
    for ax in axes.flat[len(cells):]:
        fig.delaxes(ax)
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="weight")
    fig.suptitle(title or f"{n_out} × {n_in} kernels of size "
                 f"{values.shape[2]} × {values.shape[3]}")
    return fig


TRAIN_LABEL = "train (running mean over the epoch)"
VAL_LABEL = "validation (end of the epoch)"


def _plot_metric(ax: Axes, history: pd.DataFrame, metric: str, label: str,
                 train_label: str) -> None:
    """Train and (when present) validation curves of one metric on one panel."""
    marker = "o" if len(history) <= 30 else None
    ax.plot(history["epoch"], history[f"train_{metric}"], marker=marker, label=train_label)
    val = f"val_{metric}"
    if val in history and history[val].notna().any():
        ax.plot(history["epoch"], history[val], marker=marker, linestyle="--", label=VAL_LABEL)
    ax.set(xlabel="epoch", ylabel=label, title=label)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)


def plot_history(history: pd.DataFrame, title: str | None = None, *,
                 train_label: str = TRAIN_LABEL) -> Figure:
    """Loss and accuracy per epoch from ``convbook.train.fit``'s DataFrame, validation dashed
    (chapters 6–11); the legend below the panels says what each curve measures."""
    if not isinstance(history, pd.DataFrame):
        raise TypeError(f"history must be a pandas DataFrame, got {type(history).__name__}")
    missing = [c for c in ("epoch", "train_loss", "train_acc") if c not in history]
    if missing or history.empty:
        raise ValueError(f"history needs rows and the columns epoch, train_loss, train_acc; "
                         f"missing columns {missing}, {len(history)} rows")
    fig, axes = _subplots(1, 2, 8.5, 3.6)
    _plot_metric(axes[0, 0], history, "loss", "loss", train_label)
    _plot_metric(axes[0, 1], history, "acc", "accuracy", train_label)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(handles), fontsize=8)
    fig.suptitle(title or "Training history")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


METRIC_LABELS = {"train_loss": "training loss", "train_acc": "training accuracy",
                 "val_loss": "validation loss", "val_acc": "validation accuracy"}


def compare_histories(histories: Mapping[str, pd.DataFrame], title: str, *,
                      metric: str = "val_acc") -> Figure:
    """One ``metric`` of several ``convbook.train.fit`` histories on one shared axis, a line
    per named run, so that runs compare epoch by epoch at a glance (chapter 7's ablation)."""
    if not histories:
        raise ValueError("histories is empty: pass at least one named run")
    for name, history in histories.items():
        if not isinstance(history, pd.DataFrame) or history.empty:
            raise ValueError(f"history {name!r} must be fit's DataFrame with rows")
        if "epoch" not in history or metric not in history:
            raise ValueError(f"history {name!r} needs the columns epoch and {metric}, "
                             f"has {list(history.columns)}")
    fig, axes = _subplots(1, 1, 8.5, 3.6)
    ax = axes[0, 0]
    for name, history in histories.items():
        ax.plot(history["epoch"], history[metric], marker="o", label=name)
    label = METRIC_LABELS.get(metric, metric)
    ax.set(xlabel="epoch", ylabel=label, title=label)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_confusion_matrix(cm, class_names: Sequence[str], title: str | None = None) -> Figure:
    """A confusion matrix of counts or fractions as a heat map with its numbers (chapters
    8–10)."""
    counts = _as_tensor(cm, "cm", 2, "(num_classes, num_classes)")
    k = counts.shape[0]
    if counts.shape[1] != k or len(class_names) != k:
        raise ValueError(f"cm must be square with one row per class name, got shape "
                         f"{tuple(counts.shape)} and {len(class_names)} class names")
    if not torch.isfinite(counts).all():
        raise ValueError("cm must hold finite values, found NaN or infinity")
    integers = torch.equal(counts, counts.round())
    labels = [str(int(v)) if integers else f"{v:.2f}" for v in counts.flatten().tolist()]
    fig, axes = _subplots(1, 1, 1.6 + 0.62 * k, 1.4 + 0.55 * k)
    ax = axes[0, 0]
    image = ax.imshow(counts.numpy(), **_shading(counts, False, "Blues"))
    _annotate_cells(ax, counts, labels)
    ax.set_xticks(range(k), class_names, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(k), class_names)
    ax.set(xlabel="predicted class", ylabel="true class", title=title or "Confusion matrix")
    fig.colorbar(image, ax=ax, label="examples" if integers else "fraction")
    fig.tight_layout()
    return fig


SCHEDULE_LABELS = {"lr": "learning rate", "momentum": "momentum", "beta1": "Adam's β₁"}


def plot_one_cycle(trace: pd.DataFrame, title: str, *,
                   steps_per_epoch: int | None = None) -> Figure:
    """The learning rate and the momentum (or Adam's beta1) of
    ``convbook.train.trace_one_cycle`` side by side, against the step or, given
    ``steps_per_epoch``, the epoch (chapters 7, 9, 11)."""
    if not isinstance(trace, pd.DataFrame) or trace.empty or "lr" not in trace:
        raise ValueError("trace must be trace_one_cycle's DataFrame: rows and an lr column")
    x = trace.index if steps_per_epoch is None else trace.index / steps_per_epoch
    fig, axes = _subplots(1, len(trace.columns), 8.5, 3)
    for ax, column in zip(axes.flat, trace.columns):
        label = SCHEDULE_LABELS.get(column, column)
        ax.plot(x, trace[column])
        ax.set(xlabel="step (batch)" if steps_per_epoch is None else "epoch", ylabel=label,
               title=label)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


LAYER_COLOURS = {  # a layer's box colour, by the kind its class name says it is
    "Conv": "#90caf9", "Linear": "#ef9a9a", "Pool": "#a5d6a7", "Norm": "#ce93d8",
    "ReLU": "#ffe082", "Sigmoid": "#ffe082", "Tanh": "#ffe082", "Dropout": "#e0e0e0",
}


def _shape_text(shape: tuple[int, ...]) -> str:
    """An output shape without its batch dimension, e.g. ``6 × 28 × 28``."""
    return " × ".join(str(n) for n in shape[1:]) or "scalar"


def plot_architecture(model, input_shape: Sequence[int], title: str | None = None) -> Figure:
    """A box per row of :func:`convbook.models.layer_table`, with its output shape and
    parameters (chapters 6, 11)."""
    table = layer_table(model, input_shape)
    shape = tuple(input_shape) if len(input_shape) != 3 else (1, *input_shape)
    rows = [("input", _shape_text(shape), "", "#ffffff")] + [
        (layer, _shape_text(out), f"{params:,}" if params else "",
         next((c for key, c in LAYER_COLOURS.items() if key in layer), "#eeeeee"))
        for layer, out, params in zip(table["layer"], table["output shape"], table["parameters"])]
    fig, axes = _subplots(1, 1, 5.6, 0.42 * len(rows) + 0.8)
    ax = axes[0, 0]
    for i, (layer, shape_text, params, colour) in enumerate(rows):
        ax.add_patch(FancyBboxPatch((0.05, -i - 0.32), 0.9, 0.64, facecolor=colour,
                                    edgecolor="#455a64", boxstyle="round,pad=0.02"))
        ax.text(0.5, -i, layer, ha="center", va="center", fontsize=10, fontweight="bold")
        ax.text(1.1, -i, shape_text, ha="left", va="center", fontsize=10)
        ax.text(2.0, -i, params, ha="left", va="center", fontsize=9, color="#455a64")
        if i:
            ax.annotate("", xy=(0.5, -i + 0.34), xytext=(0.5, -i + 0.66),
                        arrowprops={"arrowstyle": "->", "color": "#455a64"})
    ax.text(1.1, 0.75, "output shape", fontsize=9, style="italic")
    ax.text(2.0, 0.75, "parameters", fontsize=9, style="italic")
    ax.set(xlim=(0, 2.55), ylim=(-len(rows) + 0.4, 1.1))
    ax.axis("off")
    ax.set_title(title or f"{type(model).__name__}: {count_parameters(model):,} parameters")
    fig.tight_layout()
    return fig


def show_channel_stats(activations: Mapping[str, torch.Tensor],
                       title: str | None = None) -> Figure:
    """Each channel's mean ± standard deviation over the batch, one panel per ``{title:
    (N, C[, H, W]) tensor}`` entry, on a shared y-axis (chapter 7)."""
    stats = {}
    for name, values in activations.items():
        tensor = torch.as_tensor(values).detach().cpu().float()
        if tensor.ndim not in (2, 4) or tensor.shape[0] * tensor[0, 0].numel() < 2:
            raise ValueError(f"activations[{name!r}] must be (N, C) or (N, C, H, W) with at "
                             f"least two values per channel, got shape {tuple(tensor.shape)}")
        per_channel = tensor.transpose(0, 1).reshape(tensor.shape[1], -1)
        stats[name] = (per_channel.mean(dim=1), per_channel.std(dim=1, correction=0))
    fig, axes = _subplots(1, len(stats), 3.0 * len(stats) + 0.6, 3.4, sharey=True)
    for ax, (name, (mean, std)) in zip(axes[0], stats.items()):
        channels = list(range(len(mean)))
        ax.errorbar(channels, mean.numpy(), yerr=std.numpy(), fmt="o", markersize=3,
                    capsize=2)
        ax.axhline(0, color="gray", linewidth=0.8, linestyle=":")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("channel")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("mean ± standard deviation")
    fig.suptitle(title or "Activations per channel")
    fig.tight_layout()
    return fig


def show_attribution(images, maps, *, labels=None, predictions=None,
                     class_names: Sequence[str] | None = None, map_name: str = "attribution",
                     title: str | None = None) -> Figure:
    """Each image above its ``(N, H, W)`` maps from :mod:`convbook.explain` (or ``{name:
    maps}``), one shared colour scale per kind of map (chapter 10)."""
    batch, pixels, labels, predictions = _captioned_images(images, labels, predictions,
                                                           class_names)
    n, channels, h, w = batch.shape
    rows = dict(maps) if isinstance(maps, Mapping) else {map_name: maps}
    scales = {}  # one colour scale per kind: 0..max in viridis, RdBu_r about 0 when negative
    for name, values in rows.items():
        rows[name] = _as_tensor(values, f"maps[{name!r}]", 3, "(N, H, W)")
        if tuple(rows[name].shape) != (n, h, w):
            raise ValueError(f"maps must be (N, H, W) = {(n, h, w)} to match images, got "
                             f"{tuple(rows[name].shape)} for {name!r}")
        top = rows[name].abs().max().item() or 1.0
        signed = bool(rows[name].min() < 0)
        scales[name] = {"cmap": "RdBu_r" if signed else "viridis",
                        "vmin": -top if signed else 0.0, "vmax": top}
    cell = min(1.1, (MAX_WIDTH - 1.6) / n)
    fig, axes = _subplots(len(rows) + 1, n, cell * n + 1.6, (len(rows) + 1) * cell * 1.2 + 0.6,
                          layout="constrained")
    for ax in axes.flat:
        ax.set(xticks=[], yticks=[])
    for k in range(n):
        axes[0, k].imshow(pixels[k].squeeze(-1) if channels == 1 else pixels[k],
                          cmap="gray" if channels == 1 else None, vmin=0, vmax=1)
        text, colour = _caption(k, labels, predictions, class_names)
        axes[0, k].set_title(text, fontsize=8, color=colour)
        for r, (name, values) in enumerate(rows.items(), start=1):
            axes[r, k].imshow(values[k].numpy(), **scales[name])
            if channels == 1:  # the strokes' outline, so the map reads against the image
                axes[r, k].contour(pixels[k][..., 0], levels=[0.5], colors="grey",
                                   linewidths=0.6)
    for r, name in enumerate(["image", *rows]):
        axes[r, 0].set_ylabel(name, fontsize=8)
        if r:
            fig.colorbar(axes[r, 0].images[0], ax=list(axes[r]), shrink=0.9, label=name)
    names = " and ".join(rows)
    fig.suptitle(title or f"{names[0].upper()}{names[1:]} maps of {n} images")
    return fig
