"""PyTorch helpers several convbook modules share: evaluation mode, a model's device, label
checks, and the layer-shape recorder of ``layer_table`` and ``cb.check.lenet``."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn


def check_model(model: Any) -> None:
    """A clear ``TypeError`` when ``model`` is not an ``nn.Module`` (a function, a class)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``with eval_mode(model):`` evaluation mode inside; afterwards every module has its
    own earlier mode back (``model.train(was)`` would give all of them the top's mode)."""
    check_model(model)
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes.items():
            module.training = training


def model_device(model: nn.Module) -> torch.device:
    """Where the model's parameters live (the CPU for a model without any)."""
    parameter = next(model.parameters(), None)
    return torch.device("cpu") if parameter is None else parameter.device


def check_labels(labels: Any, num_classes: int | None = None, *, name: str = "labels",
                 count: int | None = None) -> Tensor:
    """``labels`` as 1-D int64 class indices (``count`` of them, in ``[0, num_classes)``), or
    an error that says what is wrong; the range is read from CPU tensors only (no sync)."""
    tensor = labels if isinstance(labels, Tensor) else torch.as_tensor(labels)
    if tensor.dtype != torch.int64 or tensor.ndim != 1:
        raise TypeError(f"{name} must be integer class indices (int64) of shape (N,), got "
                        f"{tensor.dtype} of shape {tuple(tensor.shape)}; convert whole-number "
                        "labels with .long()")
    if count is not None and len(tensor) != count:
        raise ValueError(f"{name} has {len(tensor)} entries but there are {count} images")
    if tensor.device.type != "cpu" or len(tensor) == 0:
        return tensor
    low, high = (int(v) for v in torch.aminmax(tensor))
    if low < 0 and num_classes is None:
        raise ValueError(f"{name} must be class indices >= 0, found {low}")
    if num_classes is not None and (low < 0 or high >= num_classes):
        raise ValueError(f"{name} must lie in [0, {num_classes}) for {num_classes} classes, "
                         f"found {low if low < 0 else high}")
    return tensor


class Layer(NamedTuple):
    """One layer call seen by :class:`ShapeRecorder`."""

    name: str  # the module's name in the model
    kind: str  # its class name
    shape: tuple[int, ...]  # the output shape (of the first tensor, if it returns several)
    parameters: int  # its own parameters; 0 when it already ran once (shared module)


def _shape(value: object) -> tuple[int, ...]:
    if isinstance(value, (tuple, list)):
        value = next((v for v in value if isinstance(v, Tensor)), None)
    return tuple(value.shape) if isinstance(value, Tensor) else ()


class ShapeRecorder:
    """``with ShapeRecorder(modules) as recorder: model(x)`` leaves one :class:`Layer` per
    call of the ``(name, module)`` pairs in ``recorder.layers``; ``recorder.running`` is the
    ``(name, module, input shape)`` of the module running, to name one that fails."""

    def __init__(self, modules: Iterable[tuple[str, nn.Module]]) -> None:
        self.layers: list[Layer] = []
        self.running: tuple[str, nn.Module, tuple[int, ...]] | None = None
        self._seen: set[int] = set()
        self._handles = []
        for name, module in modules:
            self._handles += [module.register_forward_pre_hook(partial(self._before, name)),
                              module.register_forward_hook(partial(self._after, name))]

    def _before(self, name: str, module: nn.Module, args: tuple) -> None:
        self.running = (name, module, _shape(args))

    def _after(self, name: str, module: nn.Module, args: tuple, output: object) -> None:
        own = sum(p.numel() for p in module.parameters(recurse=False))
        params = 0 if id(module) in self._seen else own
        self._seen.add(id(module))
        self.running = None
        self.layers.append(Layer(name, type(module).__name__, _shape(output), params))

    def __enter__(self) -> ShapeRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
