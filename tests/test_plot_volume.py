"""Tests of convbook.plot.show_conv_volume (chapter 4's 3-D picture of a convolution): the
blocks it draws have the sizes of the input, the kernel and the output F.conv2d gives, the
window and the highlighted output cell sit at the position asked for, and bad shapes are
refused with errors that name them."""
import re

import pytest
import torch
from matplotlib.colors import to_hex

from convbook import opfigures, plot

TAG = re.compile(r"^(?P<block>input|kernel|output):(?P<face>front|top|side):"
                 r"(?P<a>\d+),(?P<b>\d+)$")


def _cells(ax) -> dict[str, dict[str, dict[tuple[int, int], object]]]:
    """block -> face -> {(a, b): patch} for every cell patch the figure draws."""
    found: dict = {}
    for patch in ax.patches:
        match = TAG.match(patch.get_gid() or "")
        if match:
            face = found.setdefault(match["block"], {}).setdefault(match["face"], {})
            face[int(match["a"]), int(match["b"])] = patch
    return found


def _text(ax, gid: str) -> str:
    return next(t.get_text() for t in ax.texts if t.get_gid() == gid)


@pytest.mark.parametrize("input_shape, weight_shape, position", [
    ((3, 6, 6), (4, 3, 3, 3), (1, 2)),
    ((2, 3, 3), (3, 2, 2, 2), (0, 0)),
    ((1, 5, 7), (2, 1, 2, 3), (3, 4)),
])
def test_blocks_have_the_layers_shapes(input_shape, weight_shape, position):
    fig = plot.show_conv_volume(input_shape, weight_shape, position=position)
    (ax,) = fig.axes
    out = torch.nn.functional.conv2d(torch.zeros(1, *input_shape),
                                     torch.zeros(weight_shape)).shape[1:]
    blocks = {"input": input_shape, "kernel": weight_shape[1:], "output": tuple(out)}
    cells = _cells(ax)
    for name, (c, h, w) in blocks.items():
        assert set(cells[name]["front"]) == {(i, j) for i in range(h) for j in range(w)}
        assert set(cells[name]["top"]) == {(k, j) for k in range(c) for j in range(w)}
        assert set(cells[name]["side"]) == {(k, i) for k in range(c) for i in range(h)}
        assert _text(ax, f"{name}:label").endswith(f"{c} × {h} × {w}")
    drawn = sum(len(face) for block in cells.values() for face in block.values())
    assert drawn == sum(h * w + c * (h + w) for c, h, w in blocks.values())
    assert _text(ax, "input:axis:channels") == f"C = {input_shape[0]}"
    assert _text(ax, "input:axis:height") == f"H = {input_shape[1]}"
    assert _text(ax, "input:axis:width") == f"W = {input_shape[2]}"


def test_window_and_output_cell_are_at_the_position():
    fig = plot.show_conv_volume((3, 6, 6), torch.Size((4, 3, 3, 3)), position=(1, 2))
    ax = fig.axes[0]
    assert fig.get_suptitle() == \
        "A convolution in 3-D: each output value reads a 3 × 3 × 3 block"
    assert ax.get_title() == \
        "3 × 6 × 6 input ⋆ 4 kernel blocks of 3 × 3 × 3 = 4 × 4 × 4 output"
    assert fig.get_size_inches()[0] <= opfigures.WIDTH
    highlight = to_hex(opfigures.STYLE["current"][0])
    front = _cells(ax)["output"]["front"]
    marked = [cell for cell, patch in front.items() if to_hex(patch.get_facecolor()) == highlight]
    assert marked == [(1, 2)]
    # The window's front face covers input columns 2-4 and rows 1-3 of the front face.
    window = next(p for p in ax.patches if p.get_gid() == "window:front")
    corners = window.get_xy()[:4]
    input_front = _cells(ax)["input"]["front"]
    top_left = input_front[1, 2].get_xy()[0]
    bottom_right = input_front[3, 4].get_xy()[2]
    assert tuple(corners[0]) == pytest.approx(tuple(top_left))
    assert tuple(corners[2]) == pytest.approx(tuple(bottom_right))
    edges = [line for line in ax.lines if (line.get_gid() or "").startswith("window:edge")]
    assert len(edges) == 8
    caption = _text(ax, "caption")
    assert "output[0, 1, 2]" in caption and "3 · 3 · 3 = 27 products" in caption
    assert "4 such" in caption


@pytest.mark.parametrize("input_shape, weight_shape, position, message", [
    ((6, 6), (4, 3, 3, 3), (0, 0), r"input_shape must be 3 positive sizes \(C, H, W\)"),
    ((3, 6, 6), (3, 3, 3), (0, 0), r"weight_shape must be 4 positive sizes"),
    ((3, 0, 6), (4, 3, 3, 3), (0, 0), "input_shape must be 3 positive sizes"),
    (3, (4, 3, 3, 3), (0, 0), "input_shape must be 3 positive sizes"),
    ((3, 6, 6), (4, 3, 3, 3), (4, 0), r"position \(4, 0\) is outside the 4 × 4 output"),
])
def test_bad_shapes_are_refused_with_a_clear_error(input_shape, weight_shape, position,
                                                   message):
    with pytest.raises(ValueError, match=message):
        plot.show_conv_volume(input_shape, weight_shape, position=position)
