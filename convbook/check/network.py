"""The network checker of chapter 6: a learner's LeNet against ``convbook.models.LeNet``,
layer by layer, then its parameter count and the output for a batch of two."""
from __future__ import annotations

from itertools import islice, zip_longest

import torch
from torch import nn

from .._torch import Layer, ShapeRecorder, eval_mode
from ..models import LeNet, count_parameters
from ._runner import CheckFailed, nobreak, wrap

INPUT = (1, 1, 28, 28)
COMPARED = (nn.Conv2d, nn.AvgPool2d, nn.MaxPool2d, nn.Linear)
KINDS = {"Conv2d": "convolution", "AvgPool2d": "pooling", "MaxPool2d": "pooling",
         "Linear": "linear"}
ORDER = "convolution, pooling, convolution, pooling, linear, linear, linear"
FLATTEN = ("the batch dimension when you flatten: nn.Flatten() or "
           f"{nobreak('x.reshape(x.shape[0], -1)')}.")
HINTS = {
    "padding": (f"The first convolution needs padding=2: a {nobreak('5 × 5')} kernel on a "
                f"{nobreak('28 × 28')} image gives {nobreak('24 × 24')} without it (LeNet was "
                f"designed for {nobreak('32 × 32')} images)."),
    "channels": ("LeNet's convolutions have 6 and then 16 output channels, "
                 f"{nobreak('5 × 5')} kernels."),
    "convolution": (f"The second convolution has a {nobreak('5 × 5')} kernel and no padding, "
                    f"so {nobreak('14 × 14')} becomes {nobreak('10 × 10')}."),
    "pooling": (f"Pooling has a {nobreak('2 × 2')} window and stride 2, "
                f"{nobreak('nn.AvgPool2d(kernel_size=2, stride=2)')}: it halves the height "
                "and the width."),
    "linear": ("LeNet's fully connected layers have 120, 84 and 10 outputs; the first takes "
               "the 16 * 5 * 5 = 400 flattened features."),
}


def _record(model: nn.Module) -> tuple[list[Layer], str | None]:
    """Run one zero image through ``model`` in eval mode: the compared layers it passed
    through (name, class, output shape, parameters) and the error that stopped it."""
    compared = [(name, m) for name, m in model.named_modules() if isinstance(m, COMPARED)]
    error = None
    with eval_mode(model), torch.no_grad(), ShapeRecorder(compared) as recorder:
        try:
            model(torch.zeros(INPUT))
        except Exception as exc:  # whatever the learner's forward raises
            error = f"{type(exc).__name__}: {exc}"
    return recorder.layers, error


def _shape_hint(index: int, kind: str, expected: tuple, obtained: tuple) -> str:
    """The hint for a layer of the right kind whose output shape is wrong."""
    if kind == "convolution" and expected[1] != obtained[1]:
        return HINTS["channels"]
    if kind == "convolution" and index == 0:
        return HINTS["padding"]
    if len(expected) != len(obtained):
        return f"Keep {FLATTEN}"
    return HINTS[kind]


def _difference(expected: list, obtained: list,
                error: str | None) -> tuple[int, str, str] | None:
    """The first layer that differs, ``(index, what, hint)``, or ``None``; after the last
    layer a forward pass passed through if it stopped with ``error``."""
    for index, (exp, got) in enumerate(zip_longest(expected, obtained)):
        if got is None and error is not None:
            return (index, f"your model stopped with an error after {index} compared "
                    f"layers: {error}", HINTS[KINDS[exp[1]]])
        if got is None:
            return (index, f"your model has only {len(obtained)} convolution, pooling and "
                    f"linear layers, LeNet {len(expected)}", f"LeNet's layers: {ORDER}.")
        if exp is None:
            return (index, f"your model has {len(obtained)} convolution, pooling and linear "
                    f"layers, LeNet only {len(expected)}", f"LeNet's layers: {ORDER}.")
        kind, got_kind = KINDS[exp[1]], KINDS[got[1]]
        if kind != got_kind:
            return (index, f"layer {index + 1} is a {got_kind} layer ({got[1]}), LeNet's a "
                    f"{kind}", f"LeNet's layers: {ORDER}. The check sees nn.Conv2d, "
                    "nn.AvgPool2d/nn.MaxPool2d and nn.Linear modules, not F.* calls in "
                    "forward.")
        if exp[2] != got[2]:
            return (index, f"layer {index + 1} ({got[0]!r}, {got[1]}) outputs {got[2]}, "
                    f"LeNet's {exp[2]}", _shape_hint(index, kind, exp[2], got[2]))
    return None


def _table(expected: list, obtained: list, upto: int) -> list[str]:
    """Lines comparing the layers up to and including ``upto``."""
    lines = [f"Layers for a {INPUT} input, yours | LeNet's:"]
    for index, (exp, got) in enumerate(islice(zip_longest(expected, obtained), upto + 1)):
        mine = f"{got[0]!r} {got[1]} {got[2]}" if got else "(none)"
        theirs = f"{exp[1]} {exp[2]}" if exp else "(none)"
        lines.append(f"  {index + 1}. {mine} | {theirs}")
    return lines


def _parameter_problem(model: nn.Module, expected: list, obtained: list) -> str | None:
    """Why the parameter count differs from 61,706, or ``None`` if it does not."""
    total, reference = count_parameters(model), sum(layer[3] for layer in expected)
    if total == reference:
        return None
    for exp, got in zip(expected, obtained):
        if exp[3] != got[3]:
            bias = " Are its bias terms missing (bias=False)?" if got[3] < exp[3] else ""
            return (f"lenet failed: {total:,} parameters, LeNet has {reference:,}: layer "
                    f"{got[0]!r} ({got[1]}) has {got[3]:,}, LeNet's {exp[3]:,}.\nHint: "
                    f"Every convolution and linear layer has a weight and a bias.{bias}")
    return (f"lenet failed: {total:,} parameters, LeNet has {reference:,}; the compared "
            "layers agree, so the difference is in other layers (batch norm, say).\nHint: "
            "The classic LeNet has only its 2 convolutions and 3 linear layers.")


def lenet(model: nn.Module) -> None:
    """Check a learner's LeNet layer by layer against ``convbook.models.LeNet`` (chapter 6)."""
    if not isinstance(model, nn.Module):
        raise CheckFailed(wrap([f"lenet needs a model (an nn.Module instance such as "
                                f"MyLeNet() or your nn.Sequential), got "
                                f"{type(model).__name__}"]))
    expected, _ = _record(LeNet())
    obtained, error = _record(model)
    difference = _difference(expected, obtained, error)
    if difference is not None:
        index, what, hint = difference
        lines = [f"lenet failed: {what}.", *_table(expected, obtained, index), f"Hint: {hint}"]
        raise CheckFailed(wrap(lines))
    problem = _parameter_problem(model, expected, obtained)
    if problem is not None:
        raise CheckFailed(wrap(problem.splitlines()))
    with eval_mode(model), torch.no_grad():
        try:
            shape = tuple(model(torch.zeros(2, *INPUT[1:])).shape)
        except Exception as exc:  # whatever the learner's forward raises
            shape = f"an error ({type(exc).__name__}: {exc})"
    if shape != (2, 10):
        raise CheckFailed(wrap([f"lenet failed: a batch of 2 images gives {shape}, not an "
                                "output of shape (2, 10).", f"Hint: keep {FLATTEN}"]))
    print(f"lenet: all {len(expected)} layer output shapes and the "
          f"{count_parameters(model):,} parameters match convbook.models.LeNet.")
