"""Chapter 12's residual networks: convbook.models.ResidualBlock, PlainBlock and ResNet."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from convbook import models


def _zero_last_batch_norm(block: models.PlainBlock) -> None:
    """Scale F's last batch norm to zero, so that the residual branch outputs zeros."""
    with torch.no_grad():
        block.bn2.weight.zero_()
        block.bn2.bias.zero_()


def test_block_keeps_the_shape_with_an_identity_shortcut():
    block = models.ResidualBlock(16, 16)
    assert isinstance(block.shortcut, nn.Identity)
    assert block(torch.randn(2, 16, 10, 12)).shape == (2, 16, 10, 12)


@pytest.mark.parametrize("in_channels, out_channels, stride", [(16, 32, 2), (16, 32, 1),
                                                               (8, 8, 2)])
def test_projection_shortcut_when_channels_or_size_change(in_channels, out_channels, stride):
    block = models.ResidualBlock(in_channels, out_channels, stride)
    projection, norm = block.shortcut
    assert isinstance(projection, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d)
    assert projection.kernel_size == (1, 1) and projection.stride == (stride, stride)
    assert (projection.in_channels, projection.out_channels) == (in_channels, out_channels)
    assert projection.bias is None and block.conv1.stride == (stride, stride)
    x = torch.randn(2, in_channels, 9, 8)
    out_size = ((9 - 1) // stride + 1, (8 - 1) // stride + 1)
    assert block(x).shape == (2, out_channels, *out_size)
    assert block.shortcut(x).shape == block.residual(x).shape


def test_block_computes_relu_of_branch_plus_shortcut():
    torch.manual_seed(0)
    for block in (models.ResidualBlock(4, 4), models.ResidualBlock(4, 6, 2)):
        block.eval()
        x = torch.randn(3, 4, 8, 8)
        branch = block.bn2(block.conv2(F.relu(block.bn1(block.conv1(x)))))
        torch.testing.assert_close(block(x), F.relu(branch + block.shortcut(x)))


@pytest.mark.parametrize("train", [True, False])
def test_block_with_zero_residual_branch_passes_its_input_through(train):
    block = models.ResidualBlock(8, 8)
    _zero_last_batch_norm(block)
    block.train(train)
    x = torch.randn(4, 8, 6, 6)
    assert torch.equal(block(x), F.relu(x))
    assert torch.equal(block(F.relu(x)), F.relu(x))  # after a ReLU: the identity


def test_projection_block_with_zero_branch_is_relu_of_the_projection():
    block = models.ResidualBlock(8, 16, 2).eval()
    _zero_last_batch_norm(block)
    x = torch.randn(2, 8, 8, 8)
    torch.testing.assert_close(block(x), F.relu(block.shortcut(x)))


def test_plain_block_has_the_same_layers_and_no_shortcut():
    plain, residual = models.PlainBlock(8, 16, 2), models.ResidualBlock(8, 16, 2)
    assert not hasattr(plain, "shortcut")
    plain_shapes = {k: v.shape for k, v in plain.state_dict().items()}
    residual_shapes = {k: v.shape for k, v in residual.state_dict().items()
                       if not k.startswith("shortcut.")}
    assert plain_shapes == residual_shapes
    plain.eval()
    x = torch.randn(2, 8, 8, 8)
    torch.testing.assert_close(plain(x), F.relu(plain.residual(x)))


def test_parameter_counts_match_hand_computed_values():
    # two 3×3 convolutions without bias, two batch norms (weight and bias per channel)
    assert models.count_parameters(models.ResidualBlock(16, 16)) == 2 * 16 * 16 * 9 + 2 * 2 * 16
    # plus the 1×1 projection and its batch norm
    widen = 16 * 32 * 9 + 32 * 32 * 9 + 2 * 2 * 32 + 16 * 32 + 2 * 32
    assert models.count_parameters(models.ResidualBlock(16, 32, 2)) == widen
    assert models.count_parameters(models.PlainBlock(16, 32, 2)) == widen - 16 * 32 - 2 * 32
    stem, head = 3 * 16 * 9 + 2 * 16, 64 * 10 + 10
    block3 = 32 * 64 * 9 + 64 * 64 * 9 + 2 * 2 * 64 + 32 * 64 + 2 * 64
    total = stem + (2 * 16 * 16 * 9 + 2 * 2 * 16) + widen + block3 + head
    assert total == 78_042
    assert models.count_parameters(models.ResNet()) == total
    projections = (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
    assert models.count_parameters(models.ResNet(shortcuts=False)) == total - projections


def test_plain_and_residual_stacks_of_one_width_have_equal_parameters():
    plain = models.ResNet(widths=(16,), blocks_per_stage=5, shortcuts=False)
    residual = models.ResNet(widths=(16,), blocks_per_stage=5)
    assert models.count_parameters(plain) == models.count_parameters(residual)
    convs = [m for m in residual.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 + 2 * 5  # stem and two per block: 12 weight layers with the head


def test_resnet_stages_halve_the_size_and_double_the_width():
    model = models.ResNet().eval()
    table = models.layer_table(model, (3, 32, 32))
    assert table.loc["stages.0.conv2", "output shape"] == (1, 16, 32, 32)
    assert table.loc["stages.1.conv2", "output shape"] == (1, 32, 16, 16)
    assert table.loc["stages.2.conv2", "output shape"] == (1, 64, 8, 8)
    assert table["parameters"].sum() == models.count_parameters(model)
    blocks = [type(b) for b in model.stages]
    assert blocks == [models.ResidualBlock] * 3
    assert [type(b) for b in models.ResNet(shortcuts=False).stages] == [models.PlainBlock] * 3


@pytest.mark.parametrize("shape, kwargs", [((2, 3, 32, 32), {}),
                                           ((2, 3, 8, 8), {"widths": (4, 8)})])
def test_resnet_gives_logits_for_any_input_size(shape, kwargs):
    model = models.ResNet(**kwargs).eval()
    assert model(torch.randn(shape)).shape == (2, 10)


@pytest.mark.parametrize("shortcuts", [True, False])
def test_a_few_training_steps_lower_the_loss(shortcuts):
    torch.manual_seed(0)
    model = models.ResNet(widths=(8, 16), shortcuts=shortcuts)
    x, y = torch.randn(32, 3, 12, 12), torch.randint(0, 3, (32,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(20):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
