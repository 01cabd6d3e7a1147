"""The layer checkers of chapters 5 and 7: pooling against ``F.max_pool2d`` and
``F.avg_pool2d``, batch norm against ``F.batch_norm``."""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

from ._runner import Case, Mistake, describe, ints, nobreak, randint, run, same, tensor_hint

POOL_RULE = (f"Per dimension the output has {nobreak('floor((n + 2p - k) / s) + 1')} positions "
             "(chapter 3's formula), and the leading (channel) dimensions of X stay: pool "
             f"X[..., i:i+h, j:j+w] over {nobreak('dims (-2, -1)')}.")


def _pool_reference(X, pool_size, mode="max", padding=(0, 0), stride=None,
                    count_include_pad=True, fill=None):
    """Pooling over X's last two dims; ``fill`` pads by hand first, to reproduce a mistake."""
    stride = pool_size if stride is None else stride
    batch = X.reshape(-1, 1, *X.shape[-2:])
    if fill is not None:
        batch = F.pad(batch, (padding[1], padding[1], padding[0], padding[0]), value=fill)
        padding = (0, 0)
    Y = (F.max_pool2d(batch, pool_size, stride, padding) if mode == "max" else
         F.avg_pool2d(batch, pool_size, stride, padding, count_include_pad=count_include_pad))
    return Y.reshape(*X.shape[:-2], *Y.shape[-2:])


def _pool_case(label, X, size, mode, padding=(0, 0), stride="default") -> Case:
    given = {} if stride == "default" else {"stride": stride}
    return Case(label, {"X": X, "pool_size": size}, {"mode": mode, "padding": padding, **given})


def _random_pool_case(gen: torch.Generator, number: int) -> Case:
    """A random 2-D input, window, padding (at most half the window) and stride."""
    size = (randint(gen, 1, 3), randint(gen, 1, 3))
    padding = (randint(gen, 0, size[0] // 2), randint(gen, 0, size[1] // 2))
    shape = (randint(gen, max(1, size[0] - 2 * padding[0]), 6),
             randint(gen, max(1, size[1] - 2 * padding[1]), 7))
    stride = (randint(gen, 1, 3), randint(gen, 1, 3))
    mode = "max" if number % 2 else "avg"
    return _pool_case(f"random {mode} {number}", ints(gen, *shape), size, mode, padding,
                      stride)


def _pool_cases() -> list[Case]:
    """Chapter 5's examples, then edge cases, several channels, random cases."""
    gen = torch.Generator().manual_seed(5)
    X3, X4 = torch.arange(9.0).reshape(3, 3), torch.arange(16.0).reshape(4, 4)
    cases = [
        _pool_case("chapter 5: 3 × 3 input, 2 × 2 max", X3, (2, 2), "max", stride=(1, 1)),
        _pool_case("chapter 5: 3 × 3 input, 2 × 2 avg", X3, (2, 2), "avg", stride=(1, 1)),
        _pool_case("chapter 5: 3 × 3 max, stride by default", X4, (3, 3), "max"),
        _pool_case("chapter 5: max, padding 1, stride 2, negative input", -1 - X4, (3, 3),
                   "max", (1, 1), (2, 2)),
        _pool_case("chapter 5: avg, padding 1, stride 2", X4, (3, 3), "avg", (1, 1), (2, 2)),
        _pool_case("chapter 5: window (2, 3), padding (0, 1), stride (2, 3)", X4, (2, 3),
                   "max", (0, 1), (2, 3)),
        _pool_case("1×1 window", ints(gen, 2, 3), (1, 1), "avg", stride=(1, 1)),
        _pool_case("window as large as the input", ints(gen, 2, 3), (2, 3), "max"),
        _pool_case("avg, padding, stride by default", ints(gen, 3, 4), (2, 2), "avg", (1, 1)),
        _pool_case("two channels, max", ints(gen, 2, 3, 4), (2, 2), "max", stride=(1, 1)),
        _pool_case("batch of two channels, avg, padding", ints(gen, 1, 2, 3, 3), (3, 3),
                   "avg", (1, 1), (2, 1)),
    ]
    return cases + [_random_pool_case(gen, number) for number in range(1, 9)]


def _pool_mistakes() -> list[Mistake]:
    """Padding, stride and averaging rules learners get wrong in ``pool2d``."""
    def one_sided(X, pool_size, mode, padding, stride=None):
        fill = float("-inf") if mode == "max" else 0.0
        X = F.pad(X, (padding[1], 0, padding[0], 0), value=fill)
        return _pool_reference(X, pool_size, mode, (0, 0), stride)

    def other_mode(X, pool_size, mode, padding, stride=None):
        return _pool_reference(X, pool_size, "avg" if mode == "max" else "max", padding,
                               stride)
    return [
        Mistake("Average pooling divides by the full window size, padded zeros included "
                "(nn.AvgPool2d's default count_include_pad=True), not by the number of "
                "real input cells in the window.",
                partial(_pool_reference, count_include_pad=False)),
        Mistake("Max pooling pads with -inf, so that a padded cell never wins; zero "
                "padding wins over negative inputs.", partial(_pool_reference, fill=0.0)),
        Mistake("Apply the padding: pad X by p on each side first (-inf for max, zeros for "
                f"avg), e.g. {nobreak('F.pad(X, (p_w, p_w, p_h, p_h), value=...)')}.",
                lambda X, pool_size, mode, padding, **stride: _pool_reference(
                    X, pool_size, mode, (0, 0), **stride)),
        Mistake("Pad both sides: padding p adds p rows at the top and p at the bottom, "
                f"{nobreak('F.pad(X, (p_w, p_w, p_h, p_h))')}.", one_sided),
        Mistake("Move the window by the stride: output (i, j) starts at row i * s_h and "
                "column j * s_w; without a stride argument, the stride is the window size "
                "(non-overlapping windows, as nn.MaxPool2d; d2l's pool2d slides by 1).",
                lambda X, pool_size, mode, padding, **_: _pool_reference(
                    X, pool_size, mode, padding, (1, 1))),
        Mistake("mode='max' takes each window's maximum and mode='avg' its mean: check "
                "that your function uses mode.", other_mode),
        Mistake("The average is the window's sum divided by its size (h * w).",
                lambda X, pool_size, mode, padding, stride=None: _pool_reference(
                    X, pool_size, mode, padding, stride) * pool_size[0] * pool_size[1]),
    ]


def pool2d(fn: Callable) -> None:
    """Check a learner's ``pool2d`` against ``F.max_pool2d`` and ``F.avg_pool2d`` (chapter 5)."""
    run("pool2d", fn, _pool_cases(), reference=_pool_reference,
        what="F.max_pool2d/F.avg_pool2d (chapter 5's examples, edge and random cases)",
        signature="pool2d(X, pool_size, mode=..., padding=..., stride=...) with "
                  "(height, width) pairs",
        mistakes=_pool_mistakes(), generic_hint=partial(tensor_hint, rule=POOL_RULE))


def _bn_reference(X, gamma, beta, moving_mean, moving_var, *, training, eps, momentum):
    """``F.batch_norm``, which updates copies of the running statistics in place."""
    mean, var = moving_mean.clone(), moving_var.clone()
    Y = F.batch_norm(X, mean, var, gamma, beta, training, momentum, eps)
    return Y, mean, var


def _bn_wrong(X, gamma, beta, moving_mean, moving_var, *, training, eps, momentum,
              dims=None, d2l_momentum=False, biased_running=False, unbiased_norm=False,
              eps_outside=False, batch_stats=None, update_in_eval=False):
    """Batch norm with one knob set to a typical mistake; with wrong ``dims`` only Y counts."""
    channel_dims = (0,) if X.dim() == 2 else (0, 2, 3)
    if dims == channel_dims:
        return None
    mean = X.mean(dim=dims or channel_dims, keepdim=True)
    var = X.var(dim=dims or channel_dims, keepdim=True, correction=0)
    n = X.numel() // mean.numel()
    unbiased = var * n / max(n - 1, 1)
    view = (1, -1) + (1,) * (X.dim() - 2)
    if not (training if batch_stats is None else batch_stats):
        mean, var = moving_mean.reshape(view), moving_var.reshape(view)
    scale = (unbiased if unbiased_norm else var) + (0 if eps_outside else eps)
    scale = scale.sqrt() + (eps if eps_outside else 0)
    Y = gamma.reshape(view) * (X - mean) / scale + beta.reshape(view)
    if dims:
        return Y, ..., ...
    if not (training or update_in_eval):
        return Y, moving_mean, moving_var
    weight = 1 - momentum if d2l_momentum else momentum
    batch_mean = X.mean(dim=channel_dims)
    batch_var = X.var(dim=channel_dims, correction=0 if biased_running else 1)
    return (Y, (1 - weight) * moving_mean + weight * batch_mean,
            (1 - weight) * moving_var + weight * batch_var)


BN_MISTAKES = [
    ({"d2l_momentum": True}, "PyTorch's momentum weights the new batch statistic: new = "
     f"{nobreak('(1 - momentum) * old + momentum * batch')} (some libraries, Keras among "
     "them, call the weight of the old value the momentum, e.g. 0.99)."),
    ({"biased_running": True}, "The running variance uses the unbiased batch variance "
     f"(divide by {nobreak('n - 1')}, X.var(correction=1)); only the normalisation uses the "
     "biased one (divide by n), as nn.BatchNorm2d does."),
    ({"unbiased_norm": True}, "Normalise with the biased batch variance (divide by n, "
     "X.var(correction=0)); only the running variance uses the unbiased one "
     f"({nobreak('n - 1')})."),
    ({"dims": (0,)}, "Statistics are per channel: for (N, C, H, W) average over N, H and W, "
     f"{nobreak('dims (0, 2, 3)')}, not over N alone."),
    ({"dims": (0, 1, 2, 3)}, "Statistics are per channel: one mean and variance for each "
     f"of the C channels ({nobreak('dims (0, 2, 3)')}), not one for the whole batch."),
    ({"eps_outside": True}, f"eps goes inside the square root: {nobreak('sqrt(var + eps)')}."),
    ({"batch_stats": True}, "In evaluation mode normalise with moving_mean and moving_var, "
     "not with the batch's statistics."),
    ({"batch_stats": False}, "In training mode normalise with the batch's own mean and "
     "variance; the moving statistics are only updated."),
    ({"update_in_eval": True}, "Evaluation mode leaves the moving statistics unchanged: "
     "return moving_mean and moving_var as they came in."),
]


def _bn_hint(case: Case, expected: Any, obtained: Any) -> str:
    """What can be said about a wrong batch-norm result, part by part."""
    if not isinstance(obtained, tuple) or len(obtained) != 3:
        return ("Return a tuple of three tensors, (Y, new_moving_mean, new_moving_var); "
                f"got {describe(obtained)[:80]}.")
    rule = "Y has the shape of X; the moving statistics have shape (C,)."
    for name, e, o in zip(("Y", "new_moving_mean", "new_moving_var"), expected, obtained):
        if not same(e, o, atol=1e-4):
            return f"{name} is wrong. " + tensor_hint(case, e, o, rule=rule)
    return "Compare each of the three results with F.batch_norm."


def _bn_case(gen, label, shape, training, eps=1e-5, momentum=0.1, X=None) -> Case:
    channels = shape[1]
    X = ints(gen, *shape) if X is None else X
    return Case(label, {"X": X, "gamma": ints(gen, channels).abs() + 1,
                        "beta": ints(gen, channels), "moving_mean": ints(gen, channels),
                        "moving_var": ints(gen, channels).abs() + 1},
                {"training": training, "eps": eps, "momentum": momentum})


def _bn_cases() -> list[Case]:
    """A small 2-D batch in both modes, then 4-D, one-channel, one-image and random cases."""
    gen = torch.Generator().manual_seed(6)
    example = torch.tensor([[1.0, 2.0], [3.0, 6.0], [5.0, 10.0], [7.0, 14.0]])
    cases = [_bn_case(gen, "4 × 2 batch, training", (4, 2), True, X=example),
             _bn_case(gen, "4 × 2 batch, evaluation", (4, 2), False, X=example),
             _bn_case(gen, "(N, C, H, W) batch, training", (2, 3, 2, 2), True, 1e-3, 0.3),
             _bn_case(gen, "(N, C, H, W) batch, evaluation", (2, 3, 2, 2), False, 1e-3),
             _bn_case(gen, "one channel, training", (3, 1, 2, 3), True),
             _bn_case(gen, "one image, training", (1, 2, 3, 3), True, 1e-3, 0.5),
             _bn_case(gen, "two examples, training", (2, 3), True, 1e-3, 0.2)]
    for number in range(1, 6):
        sizes = [(2, 6), (1, 4)] if number % 2 else [(1, 3), (1, 3), (2, 3), (1, 3)]
        shape = tuple(randint(gen, low, high) for low, high in sizes)
        cases.append(_bn_case(gen, f"random {number}", shape, number != 3, 1e-3,
                              0.1 * number))
    return cases


def batch_norm(fn: Callable) -> None:
    """Check a learner's ``batch_norm`` and its running statistics (chapter 7)."""
    mistakes = [Mistake(hint, partial(_bn_wrong, **knobs)) for knobs, hint in BN_MISTAKES]
    run("batch_norm", fn, _bn_cases(), reference=_bn_reference,
        what="F.batch_norm (both modes, 2-D and 4-D, running statistics)",
        signature="batch_norm(X, gamma, beta, moving_mean, moving_var, training=..., "
                  "eps=..., momentum=...)",
        mistakes=mistakes, generic_hint=_bn_hint, atol=1e-4)
