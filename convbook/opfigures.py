"""Step-through figures and GIFs of chapters 2–5's operations, published as ``cb.plot.*``:
numbers from ``torch.nn.functional``, each cell tagged ``gid="<grid>:<role>:<row>,<col>"``."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Polygon, Rectangle

from .animation import Animation, animate
from ._args import IntOrPair, pair, pool_geometry
from ._figure import DPI, _as_tensor, _format_number, _subplots

__all__ = ["show_corr2d_steps", "animate_corr2d", "show_pool2d_steps", "show_pool2d_backward",
           "show_corr2d_multi_in", "show_corr2d_multi_out", "show_conv1x1", "show_conv_volume"]

CELL = 0.3  # inches per grid cell
WIDTH = 7.0  # inches: the widest operation figure
GAP = 1.3  # cells between two grids, where the operator sign goes
CHAR = 0.24  # cells taken by one character of a caption
MIN_CELL = 0.24  # inches: smaller cells would make the numbers unreadable
MAX_PANELS = 16  # a step figure with more output positions should be an animation
MAX_FRAMES = 64  # keeps a GIF small (well under 300 KB)
STYLE = {  # role -> (face colour, hatch)
    "cell": ("#e3f2fd", None), "kernel": ("#fff3e0", None), "padding": ("#e0e0e0", "///"),
    "skipped": ("#ffebee", "xx"), "done": ("#e8f5e9", None), "current": ("#ffb74d", None),
    "pending": ("#ffffff", None)}
WINDOW = "#e65100"  # outline of the cells a window reads
MAXIMUM = "#c62828"  # ring around the value max pooling keeps
NEG_INF = "−∞"


def _windows(padded: torch.Tensor, size: IntOrPair, stride: IntOrPair,
             dilation: IntOrPair = 1) -> list[list[tuple[int, int]]]:
    """The ``(row, column)`` cells of ``padded`` that each window reads, in kernel order, one
    list per output position (row-major): the blocks ``F.unfold`` cuts out."""
    h, w = padded.shape
    index = torch.arange(float(h * w)).reshape(1, 1, h, w)
    blocks = F.unfold(index, size, dilation=dilation, stride=stride)[0].T
    return [[divmod(int(n), w) for n in block.tolist()] for block in blocks]


@dataclass
class _Grid:
    """One grid of a panel: its tag ``name``, a label above it and the text of each cell."""

    name: str
    label: str
    texts: list[list[str]]
    roles: dict[tuple[int, int], str] = field(default_factory=dict)
    default: str = "cell"
    window: Sequence[tuple[int, int]] = ()
    marks: Sequence[tuple[int, int]] = ()
    blocks: tuple[tuple[int, int], tuple[int, int]] | None = None  # (window, rows × cols tiled)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.texts), len(self.texts[0])


def _text(value: float) -> str:
    """A cell's text: integers without '.0', ``-inf`` as ``−∞``."""
    return NEG_INF if value == float("-inf") else _format_number(value)


def _texts(values: torch.Tensor) -> list[list[str]]:
    return [[_text(v) for v in row] for row in values.tolist()]


def _draw_grid(ax: Axes, grid: _Grid, left: float, top: float) -> None:
    """Draw ``grid`` with its top-left cell's corner at ``(left, top)``, one unit a cell."""
    longest = max(len(text) for row in grid.texts for text in row)
    size = 9 if longest <= 2 else 8 if longest <= 3 else 7 if longest <= 4 else 6
    h, w = grid.shape
    for i in range(h):
        for j in range(w):
            role = grid.roles.get((i, j), grid.default)
            face, hatch = STYLE[role]
            ax.add_artist(Rectangle((left + j, top + i), 1, 1, facecolor=face, hatch=hatch,
                                    edgecolor="#90a4ae", linewidth=0.8,
                                    gid=f"{grid.name}:{role}:{i},{j}"))
            if grid.texts[i][j]:
                ax.text(left + j + 0.5, top + i + 0.5, grid.texts[i][j], ha="center",
                        va="center", fontsize=size, gid=f"{grid.name}:value:{i},{j}")
    for role, cells, colour, inset in (("window", grid.window, WINDOW, 0.04),
                                       ("max", grid.marks, MAXIMUM, 0.14)):
        for i, j in cells:
            ax.add_artist(Rectangle((left + j + inset, top + i + inset), 1 - 2 * inset,
                                    1 - 2 * inset, fill=False, edgecolor=colour,
                                    linewidth=2.2, gid=f"{grid.name}:{role}:{i},{j}"))
    ax.text(left + w / 2, top - 0.35, grid.label, ha="center", va="bottom", fontsize=8,
            gid=f"{grid.name}:label")
    if grid.blocks:
        (bh, bw), (rows, cols) = grid.blocks
        for r in range(0, rows + 1, bh):
            ax.plot([left, left + cols], [top + r] * 2, color="black", linewidth=2,
                    gid=f"{grid.name}:boundary:row{r}")
        for c in range(0, cols + 1, bw):
            ax.plot([left + c] * 2, [top, top + rows], color="black", linewidth=2,
                    gid=f"{grid.name}:boundary:col{c}")


def _extent(parts: Sequence[_Grid | str], caption: str = "") -> tuple[float, float]:
    """Width and height, in cells, of a row of grids and signs with its caption."""
    width = sum(p.shape[1] if isinstance(p, _Grid) else GAP for p in parts)
    height = max(p.shape[0] for p in parts if isinstance(p, _Grid))
    lines = caption.split("\n") if caption else []
    text_width = max((len(line) * CHAR for line in lines), default=0.0)
    return max(width, text_width), 1.0 + height + 0.6 * len(lines) + 0.6


def _draw_row(ax: Axes, parts: Sequence[_Grid | str], top: float, caption: str = "",
              width: float | None = None) -> float:
    """Draw grids left to right with signs between, centred in ``width`` (default: their
    own), the caption below; return the bottom y."""
    own_width, height = _extent(parts, caption)
    width = own_width if width is None else width
    tallest = max(p.shape[0] for p in parts if isinstance(p, _Grid))
    x = (width - _extent(parts)[0]) / 2
    for part in parts:
        if isinstance(part, _Grid):
            _draw_grid(ax, part, x, top + 1.0 + (tallest - part.shape[0]) / 2)
            x += part.shape[1]
        else:
            ax.text(x + GAP / 2, top + 1.0 + tallest / 2, part, ha="center", va="center",
                    fontsize=24 if part in ("⋆", "·") else 13)
            x += GAP
    if caption:
        ax.text(width / 2, top + 1.3 + tallest, caption, ha="center", va="top", fontsize=9,
                linespacing=1.4, gid="caption")
    return top + height


def _joined(grids: list[_Grid], sep: str = " ") -> list[_Grid | str]:
    """``grids`` with ``sep`` between each two, as a row for :func:`_draw_row`."""
    return [part for grid in grids for part in (sep, grid)][1:]


def _finish_axes(ax: Axes, width: float, height: float, title: str) -> None:
    ax.set(xlim=(-0.1, width + 0.1), ylim=(height, -0.1), aspect="equal")
    ax.axis("off")
    if title:
        ax.text(0.5, 1.0, title, transform=ax.transAxes, ha="center", va="bottom",
                fontsize=9, gid="title")


def _wrap(terms: list[str], per_line: int, sep: str = " + ") -> str:
    """Terms joined by ``sep``, ``per_line`` to a line once there are more than four."""
    if len(terms) <= 4:
        return sep.join(terms)
    lines = [sep.join(terms[k:k + per_line]) for k in range(0, len(terms), per_line)]
    joiner = "\n+ " if sep == " + " else sep.rstrip() + "\n"
    return joiner.join(lines)


def _factor(value: float) -> str:
    text = _text(value)
    return f"({text})" if text.startswith(("-", NEG_INF)) else text


@dataclass
class _StepCase:
    """A single-channel sliding-window operation, ready to draw step by step."""

    padded: torch.Tensor  # the input with its padding, as the windows see it
    padding: tuple[int, int]
    original: tuple[int, int]  # height and width before padding
    size: tuple[int, int]  # the window's height and width
    windows: list[list[tuple[int, int]]]  # the cells each output position reads
    output: torch.Tensor
    kernel: torch.Tensor | None = None  # None for pooling
    maxima: list[tuple[int, int]] | None = None  # max pooling: the cell each window keeps

    def input_roles(self) -> dict[tuple[int, int], str]:
        """Padding cells, and real cells that no window reads (left out by the stride)."""
        (ph, pw), (h, w) = self.padding, self.original
        real = {(ph + r, pw + c) for r in range(h) for c in range(w)}
        read = real & {cell for window in self.windows for cell in window}
        return {(r, c): "skipped" if (r, c) in real else "padding"
                for r in range(self.padded.shape[0]) for c in range(self.padded.shape[1])
                if (r, c) not in read}

    def caption(self, k: int) -> str:
        """What output ``k`` computes, written with the numbers its window reads."""
        values = [self.padded[r, c].item() for r, c in self.windows[k]]
        if self.kernel is not None:
            weights = self.kernel.flatten().tolist()
            terms = [f"{_factor(x)}×{_factor(w)}" for x, w in zip(values, weights)]
            total = _format_number(sum(x * w for x, w in zip(values, weights)))
            return f"{_wrap(terms, self.size[1])} = {total}"
        items = _wrap([_text(v) for v in values], self.size[1], ", ")
        return f"max({items}) = {_format_number(self.output.flatten()[k].item())}"

    def parts(self, k: int) -> list[_Grid | str]:
        """Input with window ``k``, kernel (for a correlation), output filled up to ``k``."""
        roles = self.input_roles()
        marks = [self.maxima[k]] if self.maxima is not None else []
        label = "input (padded)" if max(self.padding) else "input"
        parts: list[_Grid | str] = [_Grid("X", label, _texts(self.padded), roles,
                                          window=self.windows[k], marks=marks)]
        if self.kernel is not None:
            parts += ["⋆", _Grid("K", "kernel", _texts(self.kernel), default="kernel")]
        w = self.output.shape[1]
        out_texts = [[text if i * w + j <= k else "" for j, text in enumerate(row)]
                     for i, row in enumerate(_texts(self.output))]
        out_roles = {divmod(n, w): "done" if n < k else "current" if n == k else "pending"
                     for n in range(len(self.windows))}
        return parts + ["=" if self.kernel is not None else "→",
                        _Grid("Y", "output", out_texts, out_roles)]

    def extent(self) -> tuple[float, float]:
        """Room for the widest step, so that every panel and frame has the same layout."""
        sizes = [_extent(self.parts(k), self.caption(k)) for k in range(len(self.windows))]
        return max(w for w, _ in sizes), max(h for _, h in sizes)

    def draw(self, ax: Axes, k: int, extent: tuple[float, float]) -> None:
        width, height = extent
        _draw_row(ax, self.parts(k), 0.0, self.caption(k), width)
        i, j = divmod(k, self.output.shape[1])
        _finish_axes(ax, width, height, f"output ({i}, {j})")


def _title_width(title: str) -> float:
    """Inches a suptitle needs (about 0.1 inch a character), capped at the page width."""
    return min(WIDTH, 0.1 * len(title) + 0.4)


def _matrix(x, name: str) -> torch.Tensor:
    return _as_tensor(x, name, 2, "(height, width)")


def _corr_case(X, K, padding: IntOrPair, stride: IntOrPair,
               dilation: IntOrPair) -> _StepCase:
    """Compute the output with F.conv2d (and its errors), pad ``X`` with zeros."""
    X, K = _matrix(X, "X"), _matrix(K, "K")
    pad = pair(padding, "padding")
    output = F.conv2d(X[None, None], K[None, None], padding=pad, stride=stride,
                      dilation=dilation)[0, 0]
    padded = F.pad(X, (pad[1], pad[1], pad[0], pad[0]))
    return _StepCase(padded, pad, tuple(X.shape), tuple(K.shape),
                     _windows(padded, tuple(K.shape), stride, dilation), output, kernel=K)


def _pool_case(X, pool_size: IntOrPair, padding: IntOrPair,
               stride: IntOrPair | None) -> _StepCase:
    """Pad ``X`` with −∞ as max pooling does and pool it with F.max_pool2d."""
    X = _matrix(X, "X")
    size, pad, step = pool_geometry(pool_size, padding, stride)
    padded = F.pad(X, (pad[1], pad[1], pad[0], pad[0]), value=float("-inf"))
    output, index = F.max_pool2d(X[None, None], size, step, pad, return_indices=True)
    width = X.shape[1]
    maxima = [(n // width + pad[0], n % width + pad[1]) for n in index.flatten().tolist()]
    return _StepCase(padded, pad, tuple(X.shape), size, _windows(padded, size, step),
                     output[0, 0], maxima=maxima)


def _settings(padding: IntOrPair, stride, dilation: IntOrPair = 1) -> str:
    """', padding 1, stride 2' — the settings that differ from the defaults."""
    named = [("padding", padding, 0), ("stride", stride, 1), ("dilation", dilation, 1)]
    return "".join(f", {name} {value}" for name, value, default in named
                   if value is not None and value != default)


def _steps_figure(case: _StepCase, steps: Sequence[int] | None, title: str) -> Figure:
    """One panel per chosen output position (all by default), in rows of up to ``W_out``."""
    n = len(case.windows)
    steps = list(range(n)) if steps is None else list(steps)
    if not steps or any(not isinstance(k, int) or not 0 <= k < n for k in steps):
        raise ValueError(f"steps must be indices of output positions in [0, {n}), "
                         f"got {steps!r}")
    if len(steps) > MAX_PANELS:
        raise ValueError(f"{len(steps)} steps asked for; a step figure shows at most "
                         f"{MAX_PANELS} panels: pass steps=... or use the animate_ function")
    width, height = case.extent()
    fit = int(WIDTH // (width * MIN_CELL))
    ncols = max(1, min(case.output.shape[1], len(steps), fit))
    nrows = math.ceil(len(steps) / ncols)
    scale = min(CELL, WIDTH / (width * ncols))
    fig, axes = _subplots(nrows, ncols, max(scale * width * ncols, _title_width(title)),
                          (scale * height + 0.25) * nrows + 0.5)
    for ax, k in zip(axes.flat, steps):
        case.draw(ax, k, (width, height))
    for ax in axes.flat[len(steps):]:
        fig.delaxes(ax)
    fig.suptitle(title, wrap=True)
    fig.tight_layout()
    return fig


def _animation(case: _StepCase, title: str) -> Animation:
    """The step panels as GIF frames, each drawn on a fresh figure of the same size."""
    n = len(case.windows)
    if n > MAX_FRAMES:
        raise ValueError(f"the output has {n} positions; an animation has at most "
                         f"{MAX_FRAMES} frames to stay small, so use a smaller input")
    width, height = case.extent()
    scale = min(CELL, (WIDTH - 0.4) / width)

    def frame(k: int) -> Figure:
        fig = Figure(figsize=(width * scale + 0.4, height * scale + 0.8), dpi=DPI)
        ax = fig.add_axes((0.02, 0.02, 0.96, 0.96 - 0.45 / (height * scale + 0.8)))
        case.draw(ax, k, (width, height))
        fig.suptitle(title, fontsize=11)
        return fig

    return animate(frame, n, title)


def show_corr2d_steps(X, K, *, padding: IntOrPair = 0, stride: IntOrPair = 1,
                      dilation: IntOrPair = 1, steps: Sequence[int] | None = None,
                      title: str | None = None) -> Figure:
    """Cross-correlation one output position at a time, padding hatched grey and cells the
    stride skips hatched red (chapters 2, 3); ``steps`` picks panels (at most 16)."""
    case = _corr_case(X, K, padding, stride, dilation)
    (h, w), (kh, kw) = case.original, case.kernel.shape
    default = f"Cross-correlation step by step: {h} × {w} input, {kh} × {kw} kernel"
    return _steps_figure(case, steps, title or default + _settings(padding, stride, dilation))


def animate_corr2d(X, K, *, padding: IntOrPair = 0, stride: IntOrPair = 1,
                   dilation: IntOrPair = 1, title: str | None = None) -> Animation:
    """The panels of :func:`show_corr2d_steps`, one per output position (at most 64), as a
    GIF (chapters 2, 3)."""
    case = _corr_case(X, K, padding, stride, dilation)
    (h, w), (kh, kw) = case.original, case.kernel.shape
    default = f"A {kh} × {kw} kernel sliding over a {h} × {w} input"
    return _animation(case, title or default + _settings(padding, stride, dilation))


def show_pool2d_steps(X, pool_size: IntOrPair, *, padding: IntOrPair = 0,
                      stride: IntOrPair | None = None, steps: Sequence[int] | None = None,
                      title: str | None = None) -> Figure:
    """Max pooling one window at a time, the kept maximum ringed red and padding ``−∞``
    (chapter 5)."""
    case = _pool_case(X, pool_size, padding, stride)
    (h, w), (kh, kw) = case.original, case.size
    default = f"Max pooling step by step: {h} × {w} input, {kh} × {kw} window"
    return _steps_figure(case, steps, title or default + _settings(padding, stride))


def show_pool2d_backward(X, pool_size: IntOrPair, grad_output) -> Figure:
    """Non-overlapping max pooling forward, and the gradient autograd sends back to ``X``
    from ``grad_output`` (chapter 5)."""
    case = _pool_case(X, pool_size, 0, None)  # checks the arguments, finds the maxima
    size = case.size
    x = case.padded.clone().requires_grad_()
    upstream = _matrix(grad_output, "grad_output")
    (grad,) = torch.autograd.grad(F.max_pool2d(x[None, None], size)[0, 0], x, upstream)
    received = {(i, j): "current" for i, j in grad.nonzero().tolist()}
    blocks = (size, (case.output.shape[0] * size[0], case.output.shape[1] * size[1]))
    rows = [([_Grid("X", "input X", _texts(case.padded), marks=case.maxima, blocks=blocks),
              "→", _Grid("Y", "max-pooled Y", _texts(case.output), default="done")],
             "forward: each window keeps its maximum"),
            ([_Grid("dX", "gradient for X", _texts(grad), received, "pending", blocks=blocks),
              "←", _Grid("dY", "gradient for Y", _texts(upstream), default="done")],
             "backward: all of a window's gradient goes to its maximum")]
    return _rows_figure(rows, f"Max pooling, {size[0]} × {size[1]} windows: forward and "
                              "backward")


def _position(position: tuple[int, int], shape: torch.Size) -> tuple[int, int]:
    i, j = pair(position, "position")
    if not (0 <= i < shape[0] and 0 <= j < shape[1]):
        raise ValueError(f"position {(i, j)} is outside the {shape[0]} × {shape[1]} output")
    return i, j


def _rows_figure(rows: list[tuple[list[_Grid | str], str]], title: str) -> Figure:
    """Several rows of grids drawn one under the other on one set of axes."""
    extents = [_extent(parts, caption) for parts, caption in rows]
    width, height = max(w for w, _ in extents), sum(h for _, h in extents)
    scale = min(CELL, WIDTH / width)
    fig, axes = _subplots(1, 1, max(width * scale + 0.3, _title_width(title)),
                          height * scale + 0.6)
    ax, top = axes[0, 0], 0.0
    for parts, caption in rows:
        top = _draw_row(ax, parts, top, caption)
    _finish_axes(ax, width, height, "")
    fig.suptitle(title, wrap=True)
    fig.tight_layout()
    return fig


def show_corr2d_multi_in(X, K, *, position: tuple[int, int] = (0, 0)) -> Figure:
    """``X[c] ⋆ K[c]`` for each input channel, then their sum, with the window and output
    cell at ``position`` highlighted (chapter 4)."""
    X = _as_tensor(X, "X", 3, "(channels, height, width)")
    K = _as_tensor(K, "K", 3, "(channels, height, width)")
    total = F.conv2d(X[None], K[None])[0, 0]
    partial = F.conv2d(X[None], K[:, None], groups=X.shape[0])[0]
    i, j = _position(position, total.shape)
    window = [(i + a, j + b) for a in range(K.shape[1]) for b in range(K.shape[2])]
    here = {(i, j): "current"}  # the output cell; the others are "done"
    rows = [([_Grid(f"X{c}", f"input channel {c}", _texts(X[c]), window=window), "⋆",
              _Grid(f"K{c}", f"kernel {c}", _texts(K[c]), default="kernel"), "=",
              _Grid(f"P{c}", f"channel {c} result", _texts(partial[c]), here, "done")], "")
            for c in range(X.shape[0])]
    sums = _joined([_Grid(f"S{c}", f"channel {c}", _texts(partial[c]), here, "done")
                    for c in range(X.shape[0])], "+")
    sums += ["=", _Grid("Y", "output", _texts(total), here, "done")]
    values = " + ".join(_factor(v) for v in partial[:, i, j].tolist())
    rows.append((sums, f"output ({i}, {j}) = {values} = {_format_number(total[i, j].item())}"))
    return _rows_figure(rows, f"{X.shape[0]} input channels: correlate each, then add")


def show_corr2d_multi_out(X, K, *, title: str | None = None) -> Figure:
    """The input, then one row per output channel ``o``: kernel stack ``K[o]`` and output
    channel ``Y[o]`` (chapter 4)."""
    X = _as_tensor(X, "X", 3, "(channels, height, width)")
    K = _as_tensor(K, "K", 4, "(out_channels, in_channels, height, width)")
    Y = F.conv2d(X[None], K)[0]
    rows = [(_joined([_Grid(f"X{c}", f"input channel {c}", _texts(X[c]))
                      for c in range(X.shape[0])]), "")]
    for o in range(K.shape[0]):
        stack = _joined([_Grid(f"K{o},{c}", f"K[{o}, {c}]", _texts(K[o, c]), default="kernel")
                         for c in range(K.shape[1])])
        stack += ["→", _Grid(f"Y{o}", f"output channel {o}", _texts(Y[o]), default="done")]
        terms = " + ".join(f"X[{c}] ⋆ K[{o}, {c}]" for c in range(K.shape[1]))
        rows.append((stack, f"output channel {o} = {terms}"))
    return _rows_figure(rows, title or f"{K.shape[0]} output channels: one stack of "
                                       f"{K.shape[1]} kernels each")


def show_conv1x1(X, K, *, position: tuple[int, int] = (0, 0)) -> Figure:
    """A 1×1 convolution as the matrix ``W = K[:, :, 0, 0]`` applied to the channel vector
    at ``position``, and at every other pixel (chapter 4)."""
    X = _as_tensor(X, "X", 3, "(channels, height, width)")
    K = _as_tensor(K, "K", 4, "(out_channels, in_channels, 1, 1)")
    if K.shape[2:] != (1, 1) or X.shape[0] != K.shape[1]:
        raise ValueError(f"K must be (C_out, {X.shape[0]}, 1, 1) for X of shape "
                         f"{tuple(X.shape)}, got {tuple(K.shape)}")
    Y = F.conv2d(X[None], K)[0]
    i, j = _position(position, X.shape[1:])
    inputs = _joined([_Grid(f"X{c}", f"input channel {c}", _texts(X[c]), window=[(i, j)])
                      for c in range(X.shape[0])])
    product = [_Grid("W", "W", _texts(K[:, :, 0, 0]), default="kernel"), "·",
               _Grid("x", "x", _texts(X[:, i, j, None])), "=",
               _Grid("y", "y", _texts(Y[:, i, j, None]), default="current")]
    outputs = _joined([_Grid(f"Y{o}", f"output channel {o}", _texts(Y[o]), {(i, j): "current"},
                             "done") for o in range(Y.shape[0])])
    h, w = X.shape[1:]
    rows = [(inputs, ""),
            (product, f"x = X[:, {i}, {j}], W = K[:, :, 0, 0], y = Y[:, {i}, {j}] = W x\n"
                      f"the same W mixes the channels at each of the {h} × {w} pixels"),
            (outputs, "")]
    return _rows_figure(rows, f"A 1 × 1 convolution: {K.shape[1]} channels in, "
                              f"{K.shape[0]} out, at pixel ({i}, {j})")


DEPTH_X, DEPTH_Y = 0.45, 0.35  # cells a channel recedes, right and up, in the 3-D views
TEXT_CELLS = 0.2  # cells one character of an 8-point label takes at the volume scale
VOLUME_FACE = {"input": "cell", "kernel": "kernel", "output": "done"}  # colours from STYLE


def _shape(values, name: str, length: int, layout: str) -> tuple[int, ...]:
    """``values`` (a tuple or ``torch.Size``) as ``length`` sizes of at least 1."""
    shape = tuple(values) if isinstance(values, (tuple, list)) else ()
    if len(shape) != length or min(shape) < 1:
        raise ValueError(f"{name} must be {length} positive sizes {layout}, got {values!r}")
    return shape


def _oblique(left: float, top: float, col: float, row: float,
             depth: float) -> tuple[float, float]:
    """Where ``(col, row)`` of channel ``depth`` lands in a volume drawn at ``(left, top)``."""
    return left + col + depth * DEPTH_X, top - row + depth * DEPTH_Y


def _volume(ax: Axes, name: str, shape: tuple[int, int, int], left: float, top: float,
            marked: Sequence[tuple[int, int]] = ()) -> None:
    """A ``(C, H, W)`` block of cells, channel 0 in front (``marked`` cells highlighted);
    gids ``"<name>:front:<i>,<j>"``, ``"<name>:top:<c>,<j>"``, ``"<name>:side:<c>,<i>"``."""
    channels, h, w = shape
    face = STYLE[VOLUME_FACE[name]][0]

    def cell(role: str, a: int, b: int, corners, colour: str = face) -> None:
        ax.add_patch(Polygon([_oblique(left, top, *c) for c in corners], closed=True,
                             facecolor=colour, edgecolor="#78909c", linewidth=0.7,
                             gid=f"{name}:{role}:{a},{b}"))

    for i in range(h):
        for j in range(w):
            cell("front", i, j, [(j, i, 0), (j + 1, i, 0), (j + 1, i + 1, 0), (j, i + 1, 0)],
                 STYLE["current"][0] if (i, j) in marked else face)
    for c in range(channels):
        for j in range(w):
            cell("top", c, j, [(j, 0, c), (j + 1, 0, c), (j + 1, 0, c + 1), (j, 0, c + 1)])
        for i in range(h):
            cell("side", c, i, [(w, i, c), (w, i + 1, c), (w, i + 1, c + 1), (w, i, c + 1)])


def _wire_box(ax: Axes, left: float, top: float, col: int, row: int,
              size: tuple[int, int, int], gid: str) -> None:
    """The outline of the ``(C, h, w)`` block at ``(row, col)`` inside a volume drawn at
    ``(left, top)``: its front face solid, the edges inside the volume dashed."""
    depth, h, w = size
    front = [(col, row, 0), (col + w, row, 0), (col + w, row + h, 0), (col, row + h, 0)]
    back = [(c, r, depth) for c, r, _ in front]
    corners = [_oblique(left, top, *p) for p in front]
    ax.add_patch(Polygon(corners, closed=True, facecolor=WINDOW, alpha=0.2, edgecolor="none",
                         gid=f"{gid}:fill"))
    ax.add_patch(Polygon(corners, closed=True, fill=False, edgecolor=WINDOW, linewidth=2.2,
                         gid=f"{gid}:front"))
    edges = [(front[k], back[k]) for k in range(4)] + \
            [(back[k], back[(k + 1) % 4]) for k in range(4)]
    for k, (a, b) in enumerate(edges):
        (x0, y0), (x1, y1) = _oblique(left, top, *a), _oblique(left, top, *b)
        ax.plot([x0, x1], [y0, y1], color=WINDOW, linewidth=1.2, linestyle="--",
                gid=f"{gid}:edge:{k}")


def show_conv_volume(input_shape, weight_shape, *, position: tuple[int, int] = (0, 0)) -> Figure:
    """A convolution layer in 3-D: the ``(C, H, W)`` input with the window at ``position``
    outlined, one kernel block of the weight shape, the output volume (chapter 4)."""
    channels, h, w = _shape(input_shape, "input_shape", 3, "(C, H, W)")
    c_out, c_in, kh, kw = _shape(weight_shape, "weight_shape", 4, "(C_out, C_in, kh, kw)")
    out = F.conv2d(torch.empty(1, channels, h, w, device="meta"),
                   torch.empty(c_out, c_in, kh, kw, device="meta")).shape[1:]
    i, j = _position(position, out[1:])
    blocks = [("input", (channels, h, w)), ("kernel", (c_in, kh, kw)), ("output", tuple(out))]
    widths = [size[2] + size[0] * DEPTH_X for _, size in blocks]
    depth_rise = max(size[0] for _, size in blocks) * DEPTH_Y
    height = max(size[1] for _, size in blocks) + depth_rise
    caption = (f"output[0, {i}, {j}] = the sum of the {c_in} · {kh} · {kw} = {c_in * kh * kw} "
               f"products of the kernel block\nwith the input block it covers (plus a bias); "
               f"the weight holds {c_out} such\nblocks, one per output channel")
    heading = (f"{channels} × {h} × {w} input ⋆ {c_out} kernel blocks of {channels} × "
               f"{kh} × {kw} = {c_out} × {out[1]} × {out[2]} output")
    drawn = sum(widths) + 2 * GAP
    width = max(drawn, max(len(line) for line in caption.split("\n")) * TEXT_CELLS,
                len(heading) * TEXT_CELLS)
    scale = min(CELL, (WIDTH - 0.3) / width)
    fig, axes = _subplots(1, 1, width * scale + 0.3, (height + 4.0) * scale + 0.7)
    ax = axes[0, 0]
    left = origin = (width - drawn) / 2
    for (name, size), sign, block_width in zip(blocks, ["⋆", "=", None], widths):
        block_top = (size[1] - h) / 2  # centred on the input's front face
        marked = [(i, j)] if name == "output" else []
        _volume(ax, name, size, left, block_top, marked)
        if name == "input":
            _wire_box(ax, left, block_top, j, i, (channels, kh, kw), "window")
        label = f"{'kernel K[0]' if name == 'kernel' else name}\n{' × '.join(map(str, size))}"
        ax.text(left + size[2] / 2, block_top - size[1] - 0.75, label, ha="center",
                va="top", fontsize=8, linespacing=1.3, gid=f"{name}:label")
        left += block_width
        if sign:
            ax.text(left + GAP / 2, -h / 2, sign, ha="center", va="center",
                    fontsize=24 if sign == "⋆" else 13)
            left += GAP
    ax.text(origin - 0.3, -h / 2, f"H = {h}", ha="right", va="center", fontsize=8,
            rotation=90, gid="input:axis:height")
    ax.text(origin + w / 2, -h - 0.1, f"W = {w}", ha="center", va="top", fontsize=8,
            gid="input:axis:width")
    ax.text(origin + channels * DEPTH_X / 2 - 0.2, channels * DEPTH_Y / 2 + 0.2,
            f"C = {channels}", ha="right", va="bottom", fontsize=8, gid="input:axis:channels")
    ax.text(width / 2, -h - 2.2, caption, ha="center", va="top", fontsize=8,
            linespacing=1.4, gid="caption")
    ax.set(xlim=(min(0.0, origin - 1.0), width + 0.1), ylim=(-h - 4.0, depth_rise + 0.2),
           aspect="equal")
    ax.axis("off")
    ax.set_title(heading, fontsize=8)
    fig.suptitle(f"A convolution in 3-D: each output value reads a {channels} × {kh} × {kw} "
                 "block", wrap=True)
    fig.tight_layout()
    return fig
