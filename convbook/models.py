"""convbook.models — every network the course trains, plus tools to inspect them.

Each model is a small ``nn.Module`` whose docstring says where it comes from and which
chapter trains it. The classic ones (``LeNet``, ``ConvNet``, ``CifarNet``, ``ApparelCNN``)
follow their source exactly, so the course can reproduce and then beat the published
numbers; ``ModernLeNet`` and ``SmallCNN`` are the course's improvements, and
``ResidualBlock``/``ResNet`` (with their plain counterparts) are chapter 11's.

The helpers ``count_parameters`` and ``layer_table`` answer the two questions chapter 6
asks of every network: how big is it, and what shape does each layer produce?
"""
from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral

import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from ._torch import ShapeRecorder, eval_mode

__all__ = [
    "MLP",
    "LeNet",
    "ModernLeNet",
    "ApparelCNN",
    "ConvNet",
    "CifarNet",
    "SmallCNN",
    "PlainBlock",
    "ResidualBlock",
    "ResNet",
    "conv_bn_relu",
    "init_xavier",
    "count_parameters",
    "layer_table",
]


class MLP(nn.Module):
    """A multilayer perceptron on flattened images: the baseline of chapter 1.

    ``Flatten`` followed by one ``Linear``–``ReLU`` pair per entry of ``hidden`` and a final
    ``Linear`` to ``num_classes`` logits. With the defaults it is the one-hidden-layer MLP
    that chapter 1 compares against a CNN on Fashion-MNIST (and the apparel tutorial's
    65 % baseline architecture).
    """

    def __init__(
        self, in_features: int = 784, hidden: Sequence[int] = (256,), num_classes: int = 10
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class LeNet(nn.Module):
    """LeNet-5 as d2l builds it (LeCun et al., 1998): chapter 6.

    Sigmoid activations and average pooling, as in the original; the first convolution
    pads by 2 so that 28×28 Fashion-MNIST images play the role of the 32×32 originals.
    61,706 parameters. Input ``(N, 1, 28, 28)``. The layers are ``self.net`` (an
    ``nn.Sequential``), so ``model.net[:2]`` gives the first feature maps.
    """

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ModernLeNet(nn.Module):
    """LeNet's skeleton with today's parts: chapter 6's improved model.

    Same layer sizes as :class:`LeNet`, but every convolution and hidden linear layer is
    followed by batch normalisation (Ioffe & Szegedy, 2015) and ReLU, and pooling takes the
    maximum. Layers followed by batch norm have no bias, because batch norm's own shift
    makes it redundant. Input ``(N, 1, 28, 28)``; layers in ``self.net``.
    """

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ApparelCNN(nn.Module):
    """The "Identify the Apparels" tutorial's CNN, as published: chapter 7's starting point.

    Two blocks of 3×3 convolution (4 channels, padding 1), batch norm, ReLU and 2×2 max
    pooling take a 28×28 image to 4×7×7, and one linear layer maps that to 10 logits.
    Tiny on purpose (the tutorial reached about 71–72 %); chapter 7 shows what it lacks.
    """

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvNet(nn.Module):
    """The MNIST tutorial's ``ConvNet``: chapter 9.

    Two unpadded 3×3 convolutions (10 then 5 channels) shrink 28×28 to 24×24, so the
    flattened features number 24·24·5 = 2880; three linear layers (64, 32, 10) follow.
    No pooling, hence most of its parameters sit in the first linear layer. The layers are
    ``self.layers``, the tutorial's attribute name.
    """

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
    """The CIFAR-10 tutorial's ``Net``: chapter 10's baseline (53 % in the tutorial).

    conv 3→6 (5×5), ReLU, 2×2 max pool, conv 6→16 (5×5), ReLU, 2×2 max pool, flatten to
    16·5·5 = 400 features and one linear layer to 10 logits. Unlike PyTorch's own CIFAR-10
    tutorial it has a single linear layer, as in the source. Input ``(N, 3, 32, 32)``. The
    attribute names and the shared pooling module are the tutorial's.
    """

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


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """3×3 same-padding convolution, batch norm, ReLU: the building block of SmallCNN.

    Also ResNet's stem (chapter 11) and the blocks of ``benchmarks/apparel_speedrun.py``.
    SmallCNN unpacks it (``*conv_bn_relu(...)``), so its layers stay numbered in one list.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """The course's stronger small CNN: chapters 8 (Fashion-MNIST) and 10 (CIFAR-10).

    Three stages at widths ``width``, ``2·width``, ``4·width`` with 2×2 max pooling
    between them; stage 1 has one conv–BN–ReLU block (it runs at full resolution, where
    compute is dearest), stages 2 and 3 have two. Global average pooling makes the head
    independent of the input size, so the same class serves 28×28 and 32×32 images; dropout
    and one linear layer produce the logits.

    Small enough to train on a CPU in minutes; speed.md explains how channels-last memory
    and mixed precision (``fit(..., amp=True)``) change what a training step costs.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 32) -> None:
        super().__init__()
        w1, w2, w3 = width, 2 * width, 4 * width
        self.features = nn.Sequential(
            *conv_bn_relu(in_channels, w1),
            nn.MaxPool2d(2),
            *conv_bn_relu(w1, w2), *conv_bn_relu(w2, w2),
            nn.MaxPool2d(2),
            *conv_bn_relu(w2, w3), *conv_bn_relu(w3, w3),
        )
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(w3, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _check_positive(**values: object) -> None:
    """A clear ``ValueError`` for a size or stride that is not a positive integer."""
    for name, value in values.items():
        if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


class PlainBlock(nn.Module):
    """Two 3×3 conv–BN layers and a ReLU: a residual block without its shortcut (chapter 11).

    :meth:`residual` is the branch F of :class:`ResidualBlock`, conv–BN–ReLU–conv–BN; the
    block returns ``ReLU(F(x))``, which is simply two conv–BN–ReLU layers in a row.
    ``stride=2`` in the first convolution halves height and width. Chapter 11 stacks these
    blocks to measure how a deep plain network trains against the same network with
    shortcuts.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        _check_positive(in_channels=in_channels, out_channels=out_channels, stride=stride)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride,
                               padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1,
                               bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """F(x): conv–BN–ReLU–conv–BN, with no ReLU at the end."""
        return self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.residual(x))


class ResidualBlock(PlainBlock):
    """The basic residual block of He et al. (2016): ``ReLU(F(x) + shortcut(x))``, chapter 11.

    F is :meth:`PlainBlock.residual`, whose batch norms sit after each convolution and
    before the addition. The shortcut is the identity when the block keeps the shape; when
    it changes the number of channels or has ``stride > 1``, the shortcut is a 1×1
    convolution with that stride followed by batch norm (the paper's projection shortcut),
    so that both terms of the sum have the output's shape. With F's last batch norm scaled
    to zero the block returns ``ReLU(x)``, which is ``x`` itself for the non-negative
    output of an earlier ReLU.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__(in_channels, out_channels, stride)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride,
                          bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.residual(x) + self.shortcut(x))


class ResNet(nn.Module):
    """A small ResNet in the style of He et al.'s CIFAR-10 networks: chapter 11.

    A 3×3 conv–BN–ReLU stem with ``widths[0]`` channels, then one stage per entry of
    ``widths``, each of ``blocks_per_stage`` :class:`ResidualBlock` s; the first block of
    every stage after the first halves height and width (stride 2) and widens through
    its projection shortcut. Global average pooling and one linear layer give the logits,
    for any input size. Weight layers: ``2 + 2 · blocks_per_stage · len(widths)``.

    The defaults are chapter 11's CIFAR-10 network: three stages of one block at 16, 32
    and 64 channels, 8 weight layers, 78,042 parameters. ``shortcuts=False`` builds the
    same layers from :class:`PlainBlock` (no shortcuts, hence no projections): the plain
    network of the same depth, which chapter 11 trains beside the residual one.
    """

    def __init__(
        self,
        widths: Sequence[int] = (16, 32, 64),
        blocks_per_stage: int = 1,
        *,
        in_channels: int = 3,
        num_classes: int = 10,
        shortcuts: bool = True,
    ) -> None:
        super().__init__()
        widths = tuple(widths)
        if not widths:
            raise ValueError("widths must name at least one stage, got ()")
        _check_positive(blocks_per_stage=blocks_per_stage, in_channels=in_channels,
                        num_classes=num_classes, **{f"widths[{i}]": w
                                                    for i, w in enumerate(widths)})
        block = ResidualBlock if shortcuts else PlainBlock
        self.stem = conv_bn_relu(in_channels, widths[0])
        blocks, width = [], widths[0]
        for stage, out_channels in enumerate(widths):
            for index in range(blocks_per_stage):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(block(width, out_channels, stride))
                width = out_channels
        self.stages = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


def init_xavier(model: nn.Module) -> None:
    """Xavier-uniform weights and zero biases for every Linear and Conv2d (d2l's recipe).

    Chapter 6 uses it for the sigmoid LeNet, whose training stalls with poorly scaled
    weights. Modifies ``model`` in place and returns ``None`` (so a notebook cell ending
    with the call prints nothing).
    """
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
    """Each layer's output shape and parameter count, in forward order (chapter 6).

    Runs one batch of zeros of ``input_shape`` — ``(N, C, H, W)``, or ``(C, H, W)`` for a
    batch of one — through ``model`` in eval mode without gradients, recording every leaf
    module (and any container with parameters of its own) as it is called: a module called
    twice gets two rows and its parameters count once. Modes are restored, no hooks stay.

    Returns a DataFrame with columns ``layer`` (class name), ``output shape`` and
    ``parameters``, indexed by the module's name. A shape the model cannot take raises
    ``ValueError`` naming the layer, what it expects and what it got.
    """
    shape = tuple(input_shape)
    if not shape or not all(isinstance(n, Integral) and not isinstance(n, bool) and n > 0
                            for n in shape):
        raise ValueError(f"input_shape must be positive integers, got {input_shape!r}")
    shape = tuple(int(n) for n in ((1, *shape) if len(shape) == 3 else shape))
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
