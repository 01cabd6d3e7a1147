"""convbook.ops — the convolution and pooling operations that chapters 2–5 build by hand.

Each function is the smallest readable version of what ``torch.nn.functional`` does, and
``tests/test_ops.py`` checks every one of them against PyTorch on random shapes:

- ``corr2d`` / ``corr2d_fast``: 2-D cross-correlation of one channel (chapter 2).
- ``Conv2D``: a single-channel convolutional layer with a weight and a bias (chapter 2).
- ``receptive_field``: how many input pixels one output pixel of a stack of layers sees
  (chapter 2).
- ``conv_output_shape``: the output height and width of a convolution or pooling layer
  (chapter 3).
- ``corr2d_multi_in``, ``corr2d_multi_in_out``, ``corr2d_multi_in_out_1x1``: several input
  and output channels, and the 1×1 convolution as a matrix product (chapter 4).
- ``pool2d``: maximum and average pooling with padding and stride (chapter 5).

Like every deep-learning library, these compute *cross*-correlation: the kernel is not
flipped. Chapter 2 explains why that does not matter for learned kernels.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

IntOrPair = Union[int, tuple[int, int]]

__all__ = [
    "Conv2D",
    "conv_output_shape",
    "corr2d",
    "corr2d_fast",
    "corr2d_multi_in",
    "corr2d_multi_in_out",
    "corr2d_multi_in_out_1x1",
    "pool2d",
    "receptive_field",
]


def _pair(value: IntOrPair, name: str) -> tuple[int, int]:
    """``3`` -> ``(3, 3)``; ``(3, 5)`` stays. Anything else is a clear error."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value, value
    if (
        isinstance(value, Sequence)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return int(value[0]), int(value[1])
    raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")


def _check_tensor(X: torch.Tensor, ndim: int, name: str, layout: str) -> None:
    """Raise a TypeError/ValueError unless ``X`` is a tensor with ``ndim`` dimensions."""
    if not isinstance(X, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(X).__name__}")
    if X.dim() != ndim:
        raise ValueError(
            f"{name} must be {ndim}-D {layout}, got shape {tuple(X.shape)}"
        )


def _check_fits(X: torch.Tensor, K: torch.Tensor) -> None:
    """The kernel window must be non-empty and fit inside the last two dimensions of X."""
    if K.shape[-2] == 0 or K.shape[-1] == 0:
        raise ValueError(f"kernel must not be empty, got shape {tuple(K.shape)}")
    if K.shape[-2] > X.shape[-2] or K.shape[-1] > X.shape[-1]:
        raise ValueError(
            f"kernel {tuple(K.shape[-2:])} is larger than input {tuple(X.shape[-2:])}"
        )


def _widened(X: torch.Tensor, K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``X`` and ``K`` in the dtype the correlation is computed in.

    Floating-point inputs keep torch's promotion (``float32 * float64 -> float64``).
    Integer and bool inputs are summed as int64: in ``uint8`` a single window of
    ``20 * 20 * 4 = 1600`` wraps around to 64, and bool arithmetic is a logical OR,
    not a count.
    """
    dtype = torch.result_type(X, K)
    if not (dtype.is_floating_point or dtype.is_complex):
        dtype = torch.int64
    return X.to(dtype), K.to(dtype)


def _check_channels(X: torch.Tensor, K: torch.Tensor) -> None:
    """Input and kernel must agree on the number of input channels."""
    if X.shape[0] != K.shape[-3]:
        raise ValueError(
            f"input has {X.shape[0]} channels (shape {tuple(X.shape)}) but the kernel "
            f"expects {K.shape[-3]} (shape {tuple(K.shape)})"
        )


def corr2d(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """2-D cross-correlation of an ``(H, W)`` input with an ``(h, w)`` kernel (chapter 2).

    Slides the kernel over every position where it fits entirely inside ``X`` and sums the
    elementwise products, so the output has shape ``(H - h + 1, W - w + 1)``. Written as the
    double loop the chapter explains; ``corr2d_fast`` computes the same thing in one step.
    Integer and bool inputs give exact int64 counts (see ``_widened``).
    """
    _check_tensor(X, 2, "X", "(height, width)")
    _check_tensor(K, 2, "K", "(height, width)")
    _check_fits(X, K)
    X, K = _widened(X, K)
    h, w = K.shape
    Y = X.new_zeros((X.shape[0] - h + 1, X.shape[1] - w + 1))
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = (X[i : i + h, j : j + w] * K).sum()
    return Y


def corr2d_fast(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """``corr2d`` without Python loops: the same numbers, orders of magnitude faster.

    ``Tensor.unfold`` builds a view of every ``(h, w)`` window of ``X`` at once, shape
    ``(H - h + 1, W - w + 1, h, w)``, without copying; multiplying by ``K`` and summing the
    last two dimensions gives all outputs together (chapter 2). Same dtype rule as ``corr2d``.
    """
    _check_tensor(X, 2, "X", "(height, width)")
    _check_tensor(K, 2, "K", "(height, width)")
    _check_fits(X, K)
    X, K = _widened(X, K)
    h, w = K.shape
    windows = X.unfold(0, h, 1).unfold(1, w, 1)
    return (windows * K).sum(dim=(-2, -1))


class Conv2D(nn.Module):
    """A single-channel convolutional layer: ``corr2d(x, weight) + bias`` (chapter 2).

    ``weight`` starts uniform in [0, 1) as in d2l, ``bias`` at zero; both are learnable.
    ``kernel_size`` is an int (square) or a ``(height, width)`` pair. The forward pass uses
    ``corr2d_fast``, which gives the same numbers as the loop and the same gradients.
    """

    def __init__(self, kernel_size: IntOrPair) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.rand(_pair(kernel_size, "kernel_size")))
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return corr2d_fast(x, self.weight) + self.bias


def conv_output_shape(
    input_hw: IntOrPair,
    kernel: IntOrPair,
    padding: IntOrPair = 0,
    stride: IntOrPair = 1,
    dilation: IntOrPair = 1,
) -> tuple[int, int]:
    """Output ``(height, width)`` of a convolution or pooling layer (chapter 3).

    Per dimension: ``floor((n + 2p - d(k - 1) - 1) / s) + 1``, where ``p`` is the padding
    on *each* side (as in ``nn.Conv2d``, so ``2p`` rows are added in total) and
    ``d(k - 1) + 1`` is the extent of a dilated kernel. With ``d = 1`` this is the familiar
    ``floor((n - k + 2p + s) / s)``. Every argument is an int or a ``(height, width)`` pair.
    """
    sizes = [
        _pair(value, name)
        for value, name in [
            (input_hw, "input_hw"), (kernel, "kernel"), (padding, "padding"),
            (stride, "stride"), (dilation, "dilation"),
        ]
    ]
    return tuple(_output_length(*dim) for dim in zip(*sizes))


def _output_length(n: int, k: int, p: int, s: int, d: int) -> int:
    """``conv_output_shape`` along one dimension, after checking the arguments."""
    if n < 1 or k < 1 or s < 1 or d < 1 or p < 0:
        raise ValueError(
            f"need input, kernel, stride, dilation >= 1 and padding >= 0; got "
            f"input {n}, kernel {k}, padding {p}, stride {s}, dilation {d}"
        )
    extent = d * (k - 1) + 1
    if extent > n + 2 * p:
        raise ValueError(
            f"kernel {k} (extent {extent} with dilation {d}) is larger than the padded "
            f"input {n} + 2*{p} = {n + 2 * p}"
        )
    return (n + 2 * p - extent) // s + 1


def receptive_field(layers: Sequence[Sequence[int]]) -> int:
    """Receptive field, in input pixels along one dimension, of a stack of layers (chapter 2).

    ``layers`` lists each convolution or pooling layer, input first, as
    ``(kernel, stride)`` or ``(kernel, stride, dilation)``. One output pixel of a layer sees
    ``d(k - 1) + 1`` of its inputs; each of those steps is ``jump`` input pixels apart,
    where ``jump`` is the product of the strides below. Padding does not change the size.
    """
    field, jump = 1, 1
    for layer in layers:
        kernel, stride, dilation = _layer_spec(layer)
        field += dilation * (kernel - 1) * jump
        jump *= stride
    return field


def _layer_spec(layer: Sequence[int]) -> tuple[int, int, int]:
    """``(k, s)`` or ``(k, s, d)`` of positive ints -> ``(k, s, d)``."""
    valid = (
        isinstance(layer, Sequence)
        and len(layer) in (2, 3)
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in layer)
    )
    if not valid:
        raise ValueError(
            f"each layer must be (kernel, stride) or (kernel, stride, dilation) of "
            f"positive ints, got {layer!r}"
        )
    kernel, stride, *rest = layer
    return kernel, stride, (rest[0] if rest else 1)


def corr2d_multi_in(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Cross-correlate a ``(C, H, W)`` input with a ``(C, h, w)`` kernel (chapter 4).

    Each input channel gets its own 2-D kernel; the per-channel results are summed into one
    ``(H - h + 1, W - w + 1)`` output channel. With zero channels that sum is empty: zeros.
    """
    _check_tensor(X, 3, "X", "(channels, height, width)")
    _check_tensor(K, 3, "K", "(channels, height, width)")
    _check_channels(X, K)
    _check_fits(X, K)
    X, K = _widened(X, K)
    Y = X.new_zeros((X.shape[1] - K.shape[1] + 1, X.shape[2] - K.shape[2] + 1))
    for x, k in zip(X, K):
        Y = Y + corr2d_fast(x, k)
    return Y


def corr2d_multi_in_out(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Cross-correlate ``(C_in, H, W)`` with ``(C_out, C_in, h, w)`` kernels (chapter 4).

    Output channel ``o`` is ``corr2d_multi_in(X, K[o])``; the results are stacked into
    ``(C_out, H - h + 1, W - w + 1)``; zero output channels give an empty ``(0, ...)`` tensor.
    """
    _check_tensor(X, 3, "X", "(channels, height, width)")
    _check_tensor(K, 4, "K", "(out_channels, in_channels, height, width)")
    _check_channels(X, K)
    _check_fits(X, K)
    if K.shape[0] == 0:
        X, K = _widened(X, K)
        return X.new_zeros((0, X.shape[1] - K.shape[2] + 1, X.shape[2] - K.shape[3] + 1))
    return torch.stack([corr2d_multi_in(X, k) for k in K], dim=0)


def corr2d_multi_in_out_1x1(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """A 1×1 convolution as one matrix product (chapter 4).

    With a ``(C_out, C_in, 1, 1)`` kernel every pixel is treated alone: its ``C_in`` channel
    values are mixed by the ``(C_out, C_in)`` matrix, exactly like a fully connected layer
    applied at each of the ``H * W`` positions with shared weights.
    """
    _check_tensor(X, 3, "X", "(channels, height, width)")
    _check_tensor(K, 4, "K", "(out_channels, in_channels, 1, 1)")
    _check_channels(X, K)
    if K.shape[-2:] != (1, 1):
        raise ValueError(f"kernel must be 1x1, got shape {tuple(K.shape)}")
    c_in, h, w = X.shape
    Y = K.reshape(K.shape[0], c_in) @ X.reshape(c_in, h * w)
    return Y.reshape(K.shape[0], h, w)


def pool2d(
    X: torch.Tensor,
    pool_size: IntOrPair,
    mode: str = "max",
    padding: IntOrPair = 0,
    stride: Optional[IntOrPair] = None,
) -> torch.Tensor:
    """Maximum or average pooling over the last two dimensions of ``X`` (chapter 5).

    ``X`` is ``(H, W)`` or has leading batch/channel dimensions, each pooled on its own, so
    the channel count never changes. ``stride`` defaults to ``pool_size`` (non-overlapping
    windows), as in ``nn.MaxPool2d``; pass ``stride=1`` for d2l's sliding window.

    Padding means what it means in PyTorch: ``mode="max"`` pads with ``-inf`` (a padded
    cell never wins, like ``nn.MaxPool2d``), ``mode="avg"`` pads with zeros and divides by
    the full window size (``nn.AvgPool2d``'s default ``count_include_pad=True``). As there,
    padding may be at most half the window, so every window holds a real input value.
    """
    if mode not in ("max", "avg"):
        raise ValueError(f"mode must be 'max' or 'avg', got {mode!r}")
    (ph, pw), (sh, sw), (top, left) = _pool_geometry(X, pool_size, padding, stride)
    fill = float("-inf") if mode == "max" else 0.0
    X = F.pad(X, (left, left, top, top), value=fill)
    out_h, out_w = (X.shape[-2] - ph) // sh + 1, (X.shape[-1] - pw) // sw + 1
    reduce = torch.amax if mode == "max" else torch.mean
    Y = X.new_zeros((*X.shape[:-2], out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            window = X[..., i * sh : i * sh + ph, j * sw : j * sw + pw]
            Y[..., i, j] = reduce(window, dim=(-2, -1))
    return Y


def _pool_geometry(
    X: torch.Tensor,
    pool_size: IntOrPair,
    padding: IntOrPair,
    stride: Optional[IntOrPair],
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """Check ``pool2d``'s arguments; return ``(pool_size, stride, padding)`` as pairs."""
    if not isinstance(X, torch.Tensor):
        raise TypeError(f"X must be a torch.Tensor, got {type(X).__name__}")
    if X.dim() < 2:
        raise ValueError(
            f"X must have at least 2 dimensions (..., H, W), got shape {tuple(X.shape)}"
        )
    if not X.is_floating_point():
        raise TypeError(f"pool2d needs a floating-point X, got dtype {X.dtype}")
    size, pad = _pair(pool_size, "pool_size"), _pair(padding, "padding")
    step = size if stride is None else _pair(stride, "stride")
    if min(size) < 1 or min(step) < 1 or min(pad) < 0:
        raise ValueError(
            f"need pool_size, stride >= 1 and padding >= 0; got pool_size {size}, "
            f"stride {step}, padding {pad}"
        )
    if pad[0] > size[0] // 2 or pad[1] > size[1] // 2:
        raise ValueError(f"padding {pad} must be at most half of pool_size {size}")
    padded = (X.shape[-2] + 2 * pad[0], X.shape[-1] + 2 * pad[1])
    if size[0] > padded[0] or size[1] > padded[1]:
        raise ValueError(
            f"pool_size {size} is larger than the padded input {padded} "
            f"(input shape {tuple(X.shape)}, padding {pad})"
        )
    return size, step, pad


def batch_norm(
    X: torch.Tensor,
    gamma: torch.Tensor,
    beta: torch.Tensor,
    moving_mean: torch.Tensor,
    moving_var: torch.Tensor,
    *,
    training: bool,
    eps: float = 1e-5,
    momentum: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch normalisation of ``(N, C)`` or ``(N, C, H, W)`` activations (chapter 6).

    Each channel is normalised on its own: ``gamma * (X - mean) / sqrt(var + eps) + beta``,
    with ``gamma``, ``beta`` and the moving statistics of shape ``(C,)``. In training mode
    ``mean`` and ``var`` are the batch's (over N, or over N, H and W), the biased variance
    as ``nn.BatchNorm2d`` normalises with; in evaluation mode they are ``moving_mean`` and
    ``moving_var``. Returns ``(Y, new_moving_mean, new_moving_var)`` and changes no input.
    Training mode updates the moving statistics as PyTorch does, ``new = (1 - momentum) *
    old + momentum * batch``, with the *unbiased* batch variance (divided by ``n - 1``);
    evaluation mode returns them unchanged. The updates carry no gradient, like buffers.
    """
    dims, shape, count = _batch_norm_layout(X, gamma, beta, moving_mean, moving_var)
    if not isinstance(training, bool):
        raise TypeError(f"training must be True or False, got {training!r}")
    if not 0.0 <= momentum <= 1.0 or not eps > 0.0:
        raise ValueError(f"need 0 <= momentum <= 1 and eps > 0, got {momentum}, {eps}")
    if training and count < 2:
        raise ValueError(
            f"training needs more than one value per channel, got X of shape "
            f"{tuple(X.shape)}"
        )
    if training:
        mean, var = X.mean(dim=dims), X.var(dim=dims, correction=0)
        unbiased = var.detach() * count / (count - 1)
        new_mean = (1 - momentum) * moving_mean + momentum * mean.detach()
        new_var = (1 - momentum) * moving_var + momentum * unbiased
    else:
        mean, var, new_mean, new_var = moving_mean, moving_var, moving_mean, moving_var
    X_hat = (X - mean.reshape(shape)) / torch.sqrt(var.reshape(shape) + eps)
    return gamma.reshape(shape) * X_hat + beta.reshape(shape), new_mean, new_var


def _batch_norm_layout(
    X: torch.Tensor, *per_channel: torch.Tensor
) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    """Check ``batch_norm``'s tensors; return the reduced dims, the broadcast shape of a
    per-channel tensor and the number of values per channel."""
    if not isinstance(X, torch.Tensor) or X.dim() not in (2, 4):
        got = tuple(X.shape) if isinstance(X, torch.Tensor) else type(X).__name__
        raise ValueError(f"X must be a 2-D (N, C) or 4-D (N, C, H, W) tensor, got {got}")
    channels = X.shape[1]
    names = ("gamma", "beta", "moving_mean", "moving_var")
    for name, value in zip(names, per_channel):
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != (channels,):
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else value
            raise ValueError(
                f"{name} must have shape ({channels},), one value per channel of X "
                f"{tuple(X.shape)}; got {got!r}"
            )
    if X.dim() == 2:
        return (0,), (1, channels), X.shape[0]
    return (0, 2, 3), (1, channels, 1, 1), X.shape[0] * X.shape[2] * X.shape[3]
