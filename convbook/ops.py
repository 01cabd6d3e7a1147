"""convbook.ops: the convolution, pooling and batch-norm operations of chapters 2–7, by hand;
the argument checks at the end wrap them, so ``inspect.getsource`` shows the bare code."""
from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._args import IntOrPair, pool_geometry
from ._args import is_int as _is_int
from ._args import pair as _pair

__all__ = ["Conv2D", "batch_norm", "conv_output_shape", "corr2d", "corr2d_fast",
           "corr2d_multi_in", "corr2d_multi_in_out", "corr2d_multi_in_out_1x1", "pool2d",
           "receptive_field"]


def corr2d(X, K):
    """2-D cross-correlation of an (H, W) input X with an (h, w) kernel K (chapter 2)."""
    h, w = K.shape
    Y = X.new_zeros(X.shape[0] - h + 1, X.shape[1] - w + 1)
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = (X[i : i + h, j : j + w] * K).sum()
    return Y


def corr2d_fast(X, K):
    """``corr2d`` in one step: a view of every (h, w) window (``unfold``), times K, summed."""
    h, w = K.shape
    return (X.unfold(0, h, 1).unfold(1, w, 1) * K).sum(dim=(-2, -1))


class Conv2D(nn.Module):
    """One channel in, one out: ``corr2d(x, weight) + bias``, weight uniform in [0, 1)
    as in d2l, bias 0 (chapter 2). ``kernel_size`` is an int or a (height, width) pair."""

    def __init__(self, kernel_size: IntOrPair) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.rand(_pair(kernel_size, "kernel_size")))
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return corr2d_fast(x, self.weight) + self.bias


def corr2d_multi_in(X, K):
    """(C, H, W) input, (C, h, w) kernel: one correlation per channel, summed (chapter 4)."""
    return sum(corr2d_fast(x, k) for x, k in zip(X, K))


def corr2d_multi_in_out(X, K):
    """(C_in, H, W) input, (C_out, C_in, h, w) kernels: one output channel per K[o]."""
    return torch.stack([corr2d_multi_in(X, k) for k in K])


def corr2d_multi_in_out_1x1(X, K):
    """A 1×1 convolution as one matrix product: the same (C_out, C_in) matrix mixes the
    channels of every pixel, a fully connected layer with shared weights (chapter 4)."""
    c_in, h, w = X.shape
    Y = K.reshape(K.shape[0], c_in) @ X.reshape(c_in, h * w)
    return Y.reshape(K.shape[0], h, w)


def pool2d(X, pool_size, mode="max", padding=(0, 0), stride=None):
    """Max or average pooling over the last two dims of X; sizes are (height, width) pairs."""
    (ph, pw), (top, left) = pool_size, padding
    sh, sw = stride if stride is not None else pool_size
    X = F.pad(X, (left, left, top, top), value=float("-inf") if mode == "max" else 0.0)
    reduce = torch.amax if mode == "max" else torch.mean
    out_h, out_w = (X.shape[-2] - ph) // sh + 1, (X.shape[-1] - pw) // sw + 1
    Y = X.new_zeros((*X.shape[:-2], out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            window = X[..., i * sh : i * sh + ph, j * sw : j * sw + pw]
            Y[..., i, j] = reduce(window, dim=(-2, -1))
    return Y


def batch_norm(X, gamma, beta, moving_mean, moving_var, *, training, eps=1e-5,
               momentum=0.1):
    """Batch norm of (N, C) or (N, C, H, W) activations per channel, as ``nn.BatchNorm``
    computes it (chapter 7); returns ``(Y, new_moving_mean, new_moving_var)``."""
    dims, shape = ((0,), (1, -1)) if X.dim() == 2 else ((0, 2, 3), (1, -1, 1, 1))
    if training:
        mean, var = X.mean(dim=dims), X.var(dim=dims, correction=0)
        n = X.numel() // X.shape[1]
        new_mean = (1 - momentum) * moving_mean + momentum * mean.detach()
        new_var = (1 - momentum) * moving_var + momentum * var.detach() * n / (n - 1)
    else:
        mean, var, new_mean, new_var = moving_mean, moving_var, moving_mean, moving_var
    X_hat = (X - mean.reshape(shape)) / torch.sqrt(var.reshape(shape) + eps)
    return gamma.reshape(shape) * X_hat + beta.reshape(shape), new_mean, new_var


def conv_output_shape(input_hw: IntOrPair, kernel: IntOrPair, padding: IntOrPair = 0,
                      stride: IntOrPair = 1, dilation: IntOrPair = 1) -> tuple[int, int]:
    """Output (height, width) of a convolution or pooling layer, per dimension
    ``floor((n + 2p - d(k - 1) - 1) / s) + 1`` with padding ``p`` on each side (chapter 3)."""
    names = ("input_hw", "kernel", "padding", "stride", "dilation")
    pairs = [_pair(v, n) for v, n in zip((input_hw, kernel, padding, stride, dilation), names)]
    return tuple(_output_length(*dim) for dim in zip(*pairs))


def _output_length(n: int, k: int, p: int, s: int, d: int) -> int:
    if n < 1 or k < 1 or s < 1 or d < 1 or p < 0:
        raise ValueError(f"need input, kernel, stride, dilation >= 1 and padding >= 0; got "
                         f"input {n}, kernel {k}, padding {p}, stride {s}, dilation {d}")
    extent = d * (k - 1) + 1
    if extent > n + 2 * p:
        raise ValueError(f"kernel {k} (extent {extent} with dilation {d}) is larger than the "
                         f"padded input {n} + 2*{p} = {n + 2 * p}")
    return (n + 2 * p - extent) // s + 1


def receptive_field(layers: Sequence[Sequence[int]]) -> int:
    """Input pixels (along one dimension) that one output pixel of a stack of ``(kernel,
    stride)`` or ``(kernel, stride, dilation)`` layers, input first, sees (chapter 2)."""
    field, jump = 1, 1
    for layer in layers:
        if not (isinstance(layer, Sequence) and len(layer) in (2, 3)
                and all(_is_int(v) and v >= 1 for v in layer)):
            raise ValueError(f"each layer must be (kernel, stride) or (kernel, stride, "
                             f"dilation) of positive ints, got {layer!r}")
        kernel, stride, dilation = (*layer, 1)[:3]
        field += dilation * (kernel - 1) * jump
        jump *= stride
    return field


# ------------------------------------------------------------- the argument checks


def _tensor(value, name: str, layout: str) -> torch.Tensor:
    """A floating-point tensor with one dimension per name in ``layout``."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.dim() != layout.count(",") + 1:
        raise ValueError(f"{name} must be {layout.count(',') + 1}-D {layout}, got shape "
                         f"{tuple(value.shape)}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must hold floating-point numbers, got {value.dtype}: "
                        f"convert it with .float()")
    return value


def _check_correlation(X_layout: str, K_layout: str) -> Callable[[dict], None]:
    """The check of a correlation: X and K of these layouts, channels agreeing, K fits."""
    def check(args: dict) -> None:
        X, K = _tensor(args["X"], "X", X_layout), _tensor(args["K"], "K", K_layout)
        if X.dim() == 3 and X.shape[0] != K.shape[-3]:
            raise ValueError(f"input has {X.shape[0]} channels (shape {tuple(X.shape)}) but "
                             f"the kernel expects {K.shape[-3]} (shape {tuple(K.shape)})")
        if K.shape[-2] > X.shape[-2] or K.shape[-1] > X.shape[-1]:
            raise ValueError(f"kernel {tuple(K.shape[-2:])} is larger than input "
                             f"{tuple(X.shape[-2:])}")
    return check


def _check_1x1(args: dict) -> None:
    _check_correlation(_CHANNELS, "(out_channels, in_channels, 1, 1)")(args)
    if args["K"].shape[-2:] != (1, 1):
        raise ValueError(f"kernel must be 1x1, got shape {tuple(args['K'].shape)}")


def _check_pool2d(args: dict) -> None:
    """Check pool2d's arguments and turn ints into (height, width) pairs."""
    X, mode = args["X"], args["mode"]
    if not isinstance(X, torch.Tensor) or X.dim() < 2 or not X.is_floating_point():
        got = f"{X.dtype} of shape {tuple(X.shape)}" if isinstance(X, torch.Tensor) else X
        raise TypeError(f"X must be a floating-point tensor with at least 2 dimensions "
                        f"(..., H, W), got {got}")
    if mode not in ("max", "avg"):
        raise ValueError(f"mode must be 'max' or 'avg', got {mode!r}")
    size, pad, step = pool_geometry(args["pool_size"], args["padding"], args["stride"])
    padded = (X.shape[-2] + 2 * pad[0], X.shape[-1] + 2 * pad[1])
    if size[0] > padded[0] or size[1] > padded[1]:
        raise ValueError(f"pool_size {size} is larger than the padded input {padded}")
    args.update(pool_size=size, padding=pad, stride=step)


def _check_batch_norm(args: dict) -> None:
    """X is (N, C) or (N, C, H, W), with one statistic per channel and in training mode
    more than one value per channel (else the moving variance divides by zero)."""
    X = args["X"]
    if X.dim() not in (2, 4):
        raise ValueError(f"X must be a 2-D (N, C) or 4-D (N, C, H, W) tensor, got "
                         f"{tuple(X.shape)}")
    for name in ("gamma", "beta", "moving_mean", "moving_var"):
        if tuple(args[name].shape) != (X.shape[1],):
            raise ValueError(f"{name} must have shape ({X.shape[1]},), one value per "
                             f"channel of X {tuple(X.shape)}; got {tuple(args[name].shape)}")
    if args["training"] and X.numel() // X.shape[1] < 2:
        raise ValueError(f"training needs more than one value per channel, got X of shape "
                         f"{tuple(X.shape)}")


def _checked(fn: Callable, check: Callable[[dict], None]) -> Callable:
    """``fn`` that first passes its named arguments to ``check`` (which may normalise them)."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def checked(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        check(bound.arguments)
        return fn(*bound.args, **bound.kwargs)
    return checked


_MATRIX = "(height, width)"
_CHANNELS = "(channels, height, width)"
corr2d = _checked(corr2d, _check_correlation(_MATRIX, _MATRIX))
corr2d_fast = _checked(corr2d_fast, _check_correlation(_MATRIX, _MATRIX))
corr2d_multi_in = _checked(corr2d_multi_in, _check_correlation(_CHANNELS, _CHANNELS))
corr2d_multi_in_out = _checked(corr2d_multi_in_out, _check_correlation(
    _CHANNELS, "(out_channels, in_channels, height, width)"))
corr2d_multi_in_out_1x1 = _checked(corr2d_multi_in_out_1x1, _check_1x1)
pool2d = _checked(pool2d, _check_pool2d)
batch_norm = _checked(batch_norm, _check_batch_norm)
