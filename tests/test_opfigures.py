"""Tests of the operation figures (convbook.opfigures, convbook.animation):
the windows match torch's unfold, and each figure writes the numbers PyTorch computes, in
the cells where they belong, with the window, padding, skipped cells and maxima marked."""
import io
import re
from typing import NamedTuple

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from convbook import opfigures, plot

TAG = re.compile(r"^(?P<grid>[^:]+):(?P<role>[a-z]+):(?P<i>\d+),(?P<j>\d+)$")
D2L_X = torch.arange(9.0).reshape(3, 3)
D2L_K = torch.tensor([[0.0, 1.0], [2.0, 3.0]])


def _tagged(ax, grid: str) -> dict[str, dict[tuple[int, int], object]]:
    """role -> {(row, col): artist} for every patch and text of ``grid`` in ``ax``."""
    found: dict[str, dict[tuple[int, int], object]] = {}
    for artist in [*ax.patches, *ax.texts]:
        match = TAG.match(artist.get_gid() or "")
        if match and match["grid"] == grid:
            cell = (int(match["i"]), int(match["j"]))
            found.setdefault(match["role"], {})[cell] = artist
    return found


def _values(ax, grid: str) -> dict[tuple[int, int], str]:
    return {cell: t.get_text() for cell, t in _tagged(ax, grid).get("value", {}).items()}


def _caption(ax) -> str:
    return next(t.get_text() for t in ax.texts if t.get_gid() == "caption")


def _number(text: str) -> float:
    return float("-inf") if text == opfigures.NEG_INF else float(text)


class Window(NamedTuple):
    output: tuple[int, int]
    cells: list[tuple[int, int]]


def sliding_windows(shape, kernel, padding=0, stride=1, dilation=1) -> list[Window]:
    """Every window by the definition: output (i, j) reads rows i s + d a, columns j s + d b of
    the padded input."""
    (kh, kw), (ph, pw), (sh, sw), (dh, dw) = (
        v if isinstance(v, tuple) else (v, v) for v in (kernel, padding, stride, dilation))
    out_h = (shape[0] + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    out_w = (shape[1] + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    return [Window((i, j), [(i * sh + dh * a, j * sw + dw * b) for a in range(kh)
                            for b in range(kw)]) for i in range(out_h) for j in range(out_w)]


@pytest.mark.parametrize("shape, kernel, padding, stride, dilation", [
    ((3, 3), (2, 2), 0, 1, 1), ((5, 6), (3, 2), 1, 2, 1), ((7, 7), (2, 3), (2, 0), (1, 3), 2),
    ((8, 8), (3, 5), (0, 1), (3, 4), 1), ((6, 5), (3, 3), 2, 1, (1, 2)),
])
def test_windows_are_the_definitions_and_read_the_cells_unfold_reads(shape, kernel, padding,
                                                                     stride, dilation):
    h, w = shape
    labels = torch.arange(1.0, h * w + 1).reshape(1, 1, h, w)  # 0 marks a padded cell
    columns = F.unfold(labels, kernel, dilation=dilation, padding=padding, stride=stride)[0]
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    padded = F.pad(labels[0, 0], (pw, pw, ph, ph))
    windows = opfigures._windows(padded, kernel, stride, dilation)
    assert windows == [window.cells for window in
                       sliding_windows(shape, kernel, padding, stride, dilation)]
    assert len(windows) == columns.shape[1]
    for cells, column in zip(windows, columns.T):
        assert [padded[r, c].item() for r, c in cells] == column.tolist()


def test_corr2d_steps_d2l_example_shows_windows_products_and_outputs():
    fig = plot.show_corr2d_steps(D2L_X, D2L_K)
    Y = F.conv2d(D2L_X[None, None], D2L_K[None, None])[0, 0]
    windows = sliding_windows((3, 3), (2, 2))
    assert len(fig.axes) == Y.numel() == 4
    assert fig.get_suptitle() and fig.get_size_inches()[0] <= opfigures.WIDTH
    for k, (ax, window) in enumerate(zip(fig.axes, windows)):
        x_cells = _tagged(ax, "X")
        assert set(x_cells["window"]) == set(window.cells)
        assert _values(ax, "X") == {(r, c): f"{int(D2L_X[r, c])}" for r in range(3)
                                    for c in range(3)}
        assert _values(ax, "K") == {(a, b): f"{int(D2L_K[a, b])}" for a in range(2)
                                    for b in range(2)}
        y_cells, shown = _tagged(ax, "Y"), _values(ax, "Y")
        assert set(y_cells["current"]) == {window.output}
        assert set(shown) == {w.output for w in windows[:k + 1]}  # later cells still empty
        assert all(float(text) == Y[cell].item() for cell, text in shown.items())
        products = [D2L_X[r, c] * D2L_K[a, b] for (r, c), (a, b) in zip(
            window.cells, [(a, b) for a in range(2) for b in range(2)])]
        total = _caption(ax).split("=")[-1]
        assert float(total) == sum(products).item() == Y[window.output].item()
        factors = re.findall(r"(\d+)×(\d+)", _caption(ax))
        assert [(float(x), float(w)) for x, w in factors] == [
            (D2L_X[cell].item(), w) for cell, w in zip(window.cells, D2L_K.flatten().tolist())]


def test_padding_cells_are_marked_and_hold_zeros():
    X = torch.arange(1.0, 17.0).reshape(4, 4)
    fig = plot.show_corr2d_steps(X, torch.ones(3, 3), padding=1, stride=2)
    ax = fig.axes[0]
    cells = _tagged(ax, "X")
    border = {(r, c) for r in range(6) for c in range(6) if r in (0, 5) or c in (0, 5)}
    assert set(cells["padding"]) == border
    values = _values(ax, "X")
    assert all(values[cell] == "0" for cell in border)
    assert all(values[r + 1, c + 1] == f"{int(X[r, c])}" for r in range(4) for c in range(4))
    Y = F.conv2d(X[None, None], torch.ones(1, 1, 3, 3), padding=1, stride=2)[0, 0]
    last = fig.axes[-1]
    assert {cell: float(t) for cell, t in _values(last, "Y").items()} == {
        (i, j): Y[i, j].item() for i in range(2) for j in range(2)}


def test_stride_marks_the_input_rows_no_window_reads():
    X = torch.randn(8, 8)
    fig = plot.show_corr2d_steps(X, torch.ones(3, 5), padding=(0, 1), stride=(3, 4))
    image = torch.zeros(1, 1, 8, 8, requires_grad=True)
    F.conv2d(image, torch.ones(1, 1, 3, 5), padding=(0, 1), stride=(3, 4)).sum().backward()
    unread = {(r, c + 1) for r in range(8) for c in range(8) if image.grad[0, 0, r, c] == 0}
    assert unread and {r for r, _ in unread} == {6, 7}
    assert set(_tagged(fig.axes[0], "X")["skipped"]) == unread


def test_dilated_window_is_spread_out():
    fig = plot.show_corr2d_steps(torch.arange(25.0).reshape(5, 5), torch.ones(2, 2),
                                 dilation=2, steps=[4])
    window = set(_tagged(fig.axes[0], "X")["window"])
    assert window == {(1, 1), (1, 3), (3, 1), (3, 3)}


def test_steps_pick_panels_and_bad_arguments_fail_clearly():
    fig = plot.show_corr2d_steps(torch.ones(6, 8), torch.ones(1, 2), steps=[0, 1, 2])
    assert len(fig.axes) == 3
    with pytest.raises(ValueError, match="at most 16 panels"):
        plot.show_corr2d_steps(torch.ones(6, 8), torch.ones(1, 2))
    with pytest.raises(ValueError, match=r"steps must be indices .* \[0, 42\)"):
        plot.show_corr2d_steps(torch.ones(6, 8), torch.ones(1, 2), steps=[42])
    with pytest.raises(ValueError, match="X must be 2-D"):
        plot.show_corr2d_steps(torch.ones(1, 3, 3), D2L_K)
    with pytest.raises(RuntimeError, match="Kernel size can't be greater"):  # torch's errors
        plot.show_corr2d_steps(D2L_X, torch.ones(4, 4))
    with pytest.raises(RuntimeError, match="non-positive stride"):
        plot.show_corr2d_steps(D2L_X, D2L_K, stride=0)


def _gif_frames(animation) -> list[Image.Image]:
    gif = Image.open(io.BytesIO(animation.data))
    frames = []
    for n in range(gif.n_frames):
        gif.seek(n)
        frames.append(gif.convert("RGB"))
    return frames


def test_animation_has_one_frame_per_output_position_and_is_reproducible():
    X = torch.ones(3, 4)
    X[:, 1:3] = 0
    K = torch.tensor([[1.0, -1.0]])
    animation = plot.animate_corr2d(X, K)
    frames = _gif_frames(animation)
    assert animation.n_frames == len(frames) == F.conv2d(X[None, None], K[None, None]).numel()
    assert len(animation.data) < 300_000
    assert frames[0].size[0] <= opfigures.WIDTH * plot.DPI
    assert plot.animate_corr2d(X, K).data == animation.data
    bundle = animation._repr_mimebundle_()
    assert set(bundle) == {"image/gif", "text/plain"}
    assert bundle["text/plain"] == f"Animation: {animation.title} (9 frames)"
    comment = Image.open(io.BytesIO(animation.data)).info["comment"].decode()
    assert comment == f"Animation in 9 frames: {animation.title}"


def test_animation_frames_draw_the_step_panels():
    frames = _gif_frames(plot.animate_corr2d(D2L_X, D2L_K))
    assert len(frames) == 4 and len({f.tobytes() for f in frames}) == 4
    with pytest.raises(ValueError, match="at most 64 frames"):
        plot.animate_corr2d(torch.ones(10, 10), torch.ones(1, 1))


def _pool_window_values(ax, window) -> list[float]:
    values = _values(ax, "X")
    return [_number(values[cell]) for cell in window.cells]


@pytest.mark.parametrize("padding, stride", [(0, 1), (1, 2), ((0, 1), (2, 3))])
def test_max_pooling_rings_the_maximum_of_each_window(padding, stride):
    X = torch.randperm(16).float().reshape(4, 4) - 8
    size = (2, 3) if isinstance(stride, tuple) else 2 if padding == 0 else 3
    fig = plot.show_pool2d_steps(X, size, padding=padding, stride=stride)
    Y = F.max_pool2d(X[None, None], size, stride, padding)[0, 0]
    windows = sliding_windows((4, 4), size, padding, stride)
    assert len(fig.axes) == Y.numel() == len(windows)
    for ax, window in zip(fig.axes, windows):
        marked = _tagged(ax, "X")["max"]
        assert len(marked) == 1
        (cell,) = marked
        values = _pool_window_values(ax, window)
        assert cell in window.cells and _number(_values(ax, "X")[cell]) == max(values)
        assert float(_values(ax, "Y")[window.output]) == Y[window.output].item()
        assert _caption(ax).startswith("max(")


def test_max_pooling_pads_with_minus_infinity():
    X = -1 - torch.arange(16.0).reshape(4, 4)
    ax = plot.show_pool2d_steps(X, 3, padding=1, stride=2).axes[0]
    padding = _tagged(ax, "X")["padding"]
    assert len(padding) == 20
    assert {_values(ax, "X")[cell] for cell in padding} == {opfigures.NEG_INF}


def test_pool_errors():
    with pytest.raises(ValueError, match="at most half"):
        plot.show_pool2d_steps(D2L_X, 2, padding=2)


def test_pool_backward_writes_the_gradient_autograd_computes():
    X = torch.randperm(25, generator=torch.Generator().manual_seed(0)).float().reshape(5, 5)
    upstream = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    fig = opfigures.show_pool2d_backward(X, 2, upstream)
    ax = fig.axes[0]
    x = X.clone().requires_grad_()
    F.max_pool2d(x[None, None], 2)[0, 0].backward(upstream)
    shown = _values(ax, "dX")
    assert {cell: float(text) for cell, text in shown.items()} == {
        (i, j): x.grad[i, j].item() for i in range(5) for j in range(5)}
    receiving = set(_tagged(ax, "dX")["current"])
    assert receiving == {tuple(cell) for cell in x.grad.nonzero().tolist()}
    assert len(receiving) == 4
    assert set(_tagged(ax, "X")["max"]) == receiving  # the ringed cells get the gradient
    boundaries = [line for line in ax.lines if "boundary" in (line.get_gid() or "")]
    assert len(boundaries) == 2 * (3 + 3)  # rows 0, 2, 4 and columns 0, 2, 4 of X and dX


def test_pool_backward_rejects_a_gradient_of_the_wrong_shape():  # torch's own error
    with pytest.raises(RuntimeError, match=r"grad_output\[0\] has a shape of "
                       r"torch.Size\(\[3, 3\]\) and output\[0\] has a shape of "
                       r"torch.Size\(\[2, 2\]\)"):
        opfigures.show_pool2d_backward(torch.ones(4, 4), 2, torch.ones(3, 3))


def test_multi_in_shows_each_channel_then_the_sum():
    X = torch.stack([torch.arange(0.0, 9.0), torch.arange(1.0, 10.0)]).reshape(2, 3, 3)
    K = torch.tensor([[[0.0, 1.0], [2.0, 3.0]], [[1.0, 2.0], [3.0, 4.0]]])
    fig = plot.show_corr2d_multi_in(X, K, position=(1, 0))
    ax = fig.axes[0]
    Y = F.conv2d(X[None], K[None])[0, 0]
    for c in range(2):
        partial = F.conv2d(X[None, c:c + 1], K[None, c:c + 1])[0, 0]
        assert {cell: float(t) for cell, t in _values(ax, f"P{c}").items()} == {
            (i, j): partial[i, j].item() for i in range(2) for j in range(2)}
        assert set(_tagged(ax, f"X{c}")["window"]) == {(1, 0), (1, 1), (2, 0), (2, 1)}
    assert {cell: float(t) for cell, t in _values(ax, "Y").items()} == {
        (i, j): Y[i, j].item() for i in range(2) for j in range(2)}
    assert set(_tagged(ax, "Y")["current"]) == {(1, 0)}
    assert _caption(ax).endswith(f"= {int(Y[1, 0])}")
    with pytest.raises(ValueError, match="outside the 2 × 2 output"):
        plot.show_corr2d_multi_in(X, K, position=(2, 0))


def test_multi_out_shows_one_kernel_stack_per_output_channel():
    X = torch.randn(2, 3, 3)
    K = torch.randn(3, 2, 2, 2)
    ax = plot.show_corr2d_multi_out(X, K).axes[0]
    Y = F.conv2d(X[None], K)[0]
    for o in range(3):
        shown = _values(ax, f"Y{o}")
        assert all(abs(float(t) - Y[o][cell].item()) < 0.006 for cell, t in shown.items())
        assert len(shown) == 4
        for c in range(2):
            assert len(_values(ax, f"K{o},{c}")) == 4


def test_conv1x1_is_the_same_matrix_at_every_pixel():
    X = torch.randint(-3, 4, (3, 3, 3)).float()
    K = torch.randint(-2, 3, (2, 3, 1, 1)).float()
    ax = plot.show_conv1x1(X, K, position=(2, 1)).axes[0]
    Y = F.conv2d(X[None], K)[0]
    W = K[:, :, 0, 0]
    assert [float(t) for _, t in sorted(_values(ax, "x").items())] == X[:, 2, 1].tolist()
    assert [float(t) for _, t in sorted(_values(ax, "y").items())] == (W @ X[:, 2, 1]).tolist()
    assert [float(t) for _, t in sorted(_values(ax, "y").items())] == Y[:, 2, 1].tolist()
    for c in range(3):
        assert set(_tagged(ax, f"X{c}")["window"]) == {(2, 1)}
    with pytest.raises(ValueError, match="K must be"):
        plot.show_conv1x1(X, torch.ones(2, 3, 3, 3))


def test_every_panel_has_the_same_layout_whatever_its_caption_length():
    X = torch.tensor([[0.0, 1.0, 2.0], [3.0, -4.25, 5.0], [6.0, 7.0, 8.0]])
    fig = plot.show_corr2d_steps(X, torch.tensor([[1.25, -2.75], [0.5, 1.0]]))
    widths = [len(_caption(ax)) * opfigures.CHAR for ax in fig.axes]
    assert min(widths) < max(widths) and max(widths) > 9.6  # wider than the grids
    corners = {_tagged(ax, "X")["cell"][0, 0].get_xy() for ax in fig.axes}
    assert len(corners) == 1
    assert len({(ax.get_xlim(), ax.get_ylim()) for ax in fig.axes}) == 1
