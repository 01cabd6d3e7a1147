"""convbook.windows — which input cells each output cell of a convolution or pooling reads.

``sliding_windows`` lists, for every output position, the rows and columns of the padded
input that its window covers, for any kernel size, padding, stride and dilation (chapters
2–5). The step-through figures and the animations in ``convbook.plot`` all draw from it,
so a figure and an animation of the same operation cannot disagree, and its tests check it
against ``torch.nn.functional.unfold``.
"""
from __future__ import annotations

from dataclasses import dataclass

from .ops import IntOrPair, _pair, conv_output_shape

__all__ = ["Window", "sliding_windows", "visited_cells"]


@dataclass(frozen=True)
class Window:
    """One window: the output cell it fills and the padded-input rows and columns it reads.

    Coordinates are in the *padded* input, so with padding ``p`` the original pixel
    ``(r, c)`` is ``(r + p_h, c + p_w)`` here; a dilated window's rows are ``d`` apart.
    """

    output: tuple[int, int]
    rows: tuple[int, ...]
    cols: tuple[int, ...]

    @property
    def cells(self) -> list[tuple[int, int]]:
        """The ``(row, column)`` cells the window covers, row by row (kernel order)."""
        return [(r, c) for r in self.rows for c in self.cols]


def sliding_windows(input_hw: IntOrPair, kernel: IntOrPair, padding: IntOrPair = 0,
                    stride: IntOrPair = 1, dilation: IntOrPair = 1) -> list[Window]:
    """Every window of a convolution or pooling layer, in output order (row-major).

    Output ``(i, j)`` reads padded rows ``i*s_h + d_h*a`` for ``a < k_h`` and columns
    ``j*s_w + d_w*b`` for ``b < k_w``, exactly as ``nn.Conv2d`` and ``nn.MaxPool2d`` do.
    Arguments are ints or ``(height, width)`` pairs; impossible combinations raise the
    same ``ValueError`` as :func:`convbook.ops.conv_output_shape`.
    """
    out_h, out_w = conv_output_shape(input_hw, kernel, padding, stride, dilation)
    (kh, kw), (sh, sw) = _pair(kernel, "kernel"), _pair(stride, "stride")
    dh, dw = _pair(dilation, "dilation")
    return [Window((i, j), tuple(i * sh + dh * a for a in range(kh)),
                   tuple(j * sw + dw * b for b in range(kw)))
            for i in range(out_h) for j in range(out_w)]


def visited_cells(windows: list[Window]) -> set[tuple[int, int]]:
    """The padded-input cells that at least one window reads; a stride can skip the rest."""
    return {cell for window in windows for cell in window.cells}
