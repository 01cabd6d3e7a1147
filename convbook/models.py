"""convbook.models: every network the course trains, the classic ones exactly as their
sources build them, with ``count_parameters`` and ``layer_table`` to inspect them (chapter 6)."""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from ._torch import ShapeRecorder, eval_mode

__all__ = ["MLP", "LeNet", "ModernLeNet", "ApparelCNN", "ConvNet", "CifarNet", "SmallCNN",
           "PlainBlock", "ResidualBlock", "ResNet", "init_xavier", "count_parameters",
           "layer_table"]


class _Stack(nn.Module):
    """A network whose layers, in order, are the ``nn.Sequential`` ``self.net``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MLP(_Stack):
    """Flatten, one hidden layer of 256 ReLU units, a Linear to the 10 logits: chapter 1's
    baseline (and the apparel tutorial's, chapter 8)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))


class LeNet(_Stack):
    """LeNet-5 as d2l builds it (LeCun et al., 1998): sigmoids, average pooling, the first
    convolution padded by 2 for 28×28 inputs; 61,706 parameters (chapter 6)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(),
            nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(),
            nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(),
            nn.Linear(120, 84), nn.Sigmoid(),
            nn.Linear(84, 10),
        )


class ModernLeNet(_Stack):
    """LeNet's layer sizes with batch norm, ReLU and max pooling (chapter 7); layers that
    batch norm follows have no bias, since its shift makes one redundant."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 6, kernel_size=5, padding=2, bias=False), nn.BatchNorm2d(6),
            nn.ReLU(), nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5, bias=False), nn.BatchNorm2d(16),
            nn.ReLU(), nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120, bias=False), nn.BatchNorm1d(120), nn.ReLU(),
            nn.Linear(120, 84, bias=False), nn.BatchNorm1d(84), nn.ReLU(),
            nn.Linear(84, 10),
        )


class ApparelCNN(_Stack):
    """The "Identify the Apparels" tutorial's tiny CNN as published: chapter 8's start."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 4, kernel_size=3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
            nn.MaxPool2d(kernel_size=2),
            nn.Conv2d(4, 4, kernel_size=3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
            nn.MaxPool2d(kernel_size=2),
            nn.Flatten(),
            nn.Linear(4 * 7 * 7, 10),
        )


class ConvNet(nn.Module):
    """The MNIST tutorial's ``ConvNet`` (chapter 10): two unpadded 3×3 convolutions and three
    linear layers, no pooling; ``self.layers`` is the tutorial's attribute name."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(1, 10, kernel_size=3), nn.ReLU(),
            nn.Conv2d(10, 5, kernel_size=3), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(24 * 24 * 5, 64), nn.ReLU(),
            nn.Linear(64, 32), nn.ReLU(),
            nn.Linear(32, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class CifarNet(nn.Module):
    """The CIFAR-10 tutorial's ``Net`` with its attribute names and one shared pooling
    module: chapter 11's baseline (53 % in the tutorial)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.lin1 = nn.Linear(16 * 5 * 5, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        return self.lin1(torch.flatten(x, 1))


def _conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """3×3 same-padding convolution, batch norm, ReLU: SmallCNN's block and ResNet's stem."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class SmallCNN(nn.Module):
    """The course's stronger small CNN (chapters 9 and 11–13): conv–BN–ReLU stages of widths
    ``width``, ``2·width``, ``4·width`` and global average pooling, for any input size."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 32) -> None:
        super().__init__()
        w1, w2, w3 = width, 2 * width, 4 * width
        self.features = nn.Sequential(
            *_conv_bn_relu(in_channels, w1),
            nn.MaxPool2d(2),
            *_conv_bn_relu(w1, w2), *_conv_bn_relu(w2, w2),
            nn.MaxPool2d(2),
            *_conv_bn_relu(w2, w3), *_conv_bn_relu(w3, w3),
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2),
                                  nn.Linear(w3, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class PlainBlock(nn.Module):
    """Two 3×3 conv–BN layers and a ReLU, ``ReLU(F(x))``: a residual block without its
    shortcut (chapter 12). ``stride=2`` in the first convolution halves the size."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride,
                               padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """F(x): conv–BN–ReLU–conv–BN, with no ReLU at the end."""
        return self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.residual(x))


class ResidualBlock(PlainBlock):
    """He et al.'s (2016) basic block, ``ReLU(F(x) + shortcut(x))`` (chapter 12): the
    shortcut is the identity, or a 1×1 conv–BN projection where the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__(in_channels, out_channels, stride)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size=1,
                                                    stride=stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.residual(x) + self.shortcut(x))


class ResNet(nn.Module):
    """A small CIFAR-style ResNet (chapter 12): a conv–BN–ReLU stem, one stage of
    ``blocks_per_stage`` blocks per entry of ``widths`` (each later stage halves the size),
    global average pooling and a linear layer to 10 logits. ``shortcuts=False``: the same
    network of :class:`PlainBlock` s. The defaults have 8 weight layers and 78,042 parameters.
    """

    def __init__(self, widths: Sequence[int] = (16, 32, 64), blocks_per_stage: int = 1, *,
                 shortcuts: bool = True) -> None:
        super().__init__()
        block = ResidualBlock if shortcuts else PlainBlock
        self.stem = _conv_bn_relu(3, widths[0])
        blocks, width = [], widths[0]
        for stage, out_channels in enumerate(widths):
            for index in range(blocks_per_stage):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(block(width, out_channels, stride))
                width = out_channels
        self.stages = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(width, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


def init_xavier(model: nn.Module) -> None:
    """Xavier-uniform weights and zero biases for every Linear and Conv2d, in place (d2l's
    recipe, chapter 6); returns None, so a cell ending in it prints nothing."""
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def count_parameters(model: nn.Module) -> int:
    """The number of scalar parameters in ``model`` (trainable or not), as d2l counts."""
    return sum(p.numel() for p in model.parameters())


#: What a layer accepts, read from its attributes, for layer_table's errors.
_EXPECTS = (("in_channels", "(N, {}, H, W)"), ("in_features", "(N, {})"),
            ("num_features", "{} channels"))


def layer_table(model: nn.Module, input_shape: Sequence[int]) -> pd.DataFrame:
    """Each layer's output shape and parameter count, in the order the layers run, for zeros
    of ``input_shape``, ``(N, C, H, W)`` or ``(C, H, W)`` (chapter 6); a shape the model
    cannot take raises a ``ValueError`` naming the layer."""
    shape = tuple(int(n) for n in input_shape)
    shape = (1, *shape) if len(shape) == 3 else shape
    recorded = [(name, m) for name, m in model.named_modules()
                if not list(m.children()) or list(m.parameters(recurse=False))]
    first = next(model.parameters(), torch.zeros(()))
    dtype = first.dtype if first.is_floating_point() else torch.float32
    with eval_mode(model), torch.no_grad(), ShapeRecorder(recorded) as recorder:
        try:
            model(torch.zeros(shape, device=first.device, dtype=dtype))
        except RuntimeError as error:
            where = str(error)
            if recorder.running is not None:
                name, module, got = recorder.running
                expects = next((what.format(getattr(module, attr))
                                for attr, what in _EXPECTS if hasattr(module, attr)),
                               "a different shape")
                where = (f"layer {name!r} ({type(module).__name__}) expects {expects} "
                         f"but got {got}")
            raise ValueError(f"{type(model).__name__} cannot take input of shape {shape}: "
                             f"{where}") from error
    table = pd.DataFrame(recorder.layers,
                         columns=["module", "layer", "output shape", "parameters"])
    return table.set_index("module")
