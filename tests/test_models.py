"""Tests of convbook.models: architectures as their sources define them, the inspection
helpers, and a tiny training run that proves the course's CNNs can learn."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from convbook import models

# Every model with the input it is built for: (constructor, (C, H, W)).
MODELS = {
    "MLP": (models.MLP, (1, 28, 28)),
    "LeNet": (models.LeNet, (1, 28, 28)),
    "ModernLeNet": (models.ModernLeNet, (1, 28, 28)),
    "ApparelCNN": (models.ApparelCNN, (1, 28, 28)),
    "ConvNet": (models.ConvNet, (1, 28, 28)),
    "CifarNet": (models.CifarNet, (3, 32, 32)),
    "SmallCNN": (models.SmallCNN, (1, 28, 28)),
    "SmallCNN-rgb": (lambda: models.SmallCNN(in_channels=3, width=8), (3, 32, 32)),
}


@pytest.mark.parametrize("name", MODELS)
def test_forward_gives_ten_logits_per_example(name):
    make, chw = MODELS[name]
    model = make()
    model.train()  # batch norm in training mode needs N > 1: a real mini-batch
    assert model(torch.randn(3, *chw)).shape == (3, 10)


@pytest.mark.parametrize("name", MODELS)
def test_layer_table_parameters_add_up(name):
    make, chw = MODELS[name]
    model = make()
    table = models.layer_table(model, (2, *chw))
    assert list(table.columns) == ["layer", "output shape", "parameters"]
    assert table["parameters"].sum() == models.count_parameters(model)
    assert table["output shape"].iloc[-1] == (2, 10)


def test_lenet_has_d2l_parameter_count():
    assert models.count_parameters(models.LeNet()) == 61_706


def test_lenet_layer_table_matches_d2l():
    table = models.layer_table(models.LeNet(), (1, 1, 28, 28))
    expected = [
        ("Conv2d", (1, 6, 28, 28)), ("Sigmoid", (1, 6, 28, 28)), ("AvgPool2d", (1, 6, 14, 14)),
        ("Conv2d", (1, 16, 10, 10)), ("Sigmoid", (1, 16, 10, 10)), ("AvgPool2d", (1, 16, 5, 5)),
        ("Flatten", (1, 400)), ("Linear", (1, 120)), ("Sigmoid", (1, 120)),
        ("Linear", (1, 84)), ("Sigmoid", (1, 84)), ("Linear", (1, 10)),
    ]
    assert list(zip(table["layer"], table["output shape"])) == expected
    assert table["parameters"].tolist() == [156, 0, 0, 2416, 0, 0, 0, 48120, 0, 10164, 0, 850]


def test_modern_lenet_swaps_in_relu_max_pool_and_batch_norm():
    kinds = {type(m) for m in models.ModernLeNet().modules()}
    assert {nn.ReLU, nn.MaxPool2d, nn.BatchNorm2d, nn.BatchNorm1d} <= kinds
    assert not kinds & {nn.Sigmoid, nn.AvgPool2d}
    table = models.layer_table(models.ModernLeNet(), (1, 28, 28))
    assert table["output shape"][table["layer"] == "Flatten"].item() == (1, 400)


def test_convnet_follows_the_mnist_tutorial():
    model = models.ConvNet()
    assert isinstance(model.layers, nn.Sequential)
    table = models.layer_table(model, (1, 1, 28, 28))
    assert table["output shape"][table["layer"] == "Flatten"].item() == (1, 2880)
    assert [m.out_features for m in model.layers if isinstance(m, nn.Linear)] == [64, 32, 10]


def test_apparel_cnn_follows_the_tutorial():
    table = models.layer_table(models.ApparelCNN(), (1, 28, 28))
    convs = table[table["layer"] == "Conv2d"]["output shape"].tolist()
    assert convs == [(1, 4, 28, 28), (1, 4, 14, 14)]
    assert table["output shape"][table["layer"] == "Flatten"].item() == (1, 4 * 7 * 7)
    assert (table["layer"] == "BatchNorm2d").sum() == 2


def test_cifar_net_follows_the_tutorial_and_counts_shared_pool_once():
    model = models.CifarNet()
    table = models.layer_table(model, (3, 32, 32))
    assert table.index.tolist() == ["conv1", "pool", "conv2", "pool", "lin1"]
    assert table["output shape"].tolist() == [
        (1, 6, 28, 28), (1, 6, 14, 14), (1, 16, 10, 10), (1, 16, 5, 5), (1, 10)]
    assert model.lin1.in_features == 400


@pytest.mark.parametrize("hw", [(28, 28), (32, 32), (20, 36)])
def test_small_cnn_works_for_any_input_size(hw):
    model = models.SmallCNN(in_channels=3, num_classes=7, width=8).eval()
    assert model(torch.randn(2, 3, *hw)).shape == (2, 7)


def test_small_cnn_widths_double_per_stage():
    convs = [m for m in models.SmallCNN(width=8).modules() if isinstance(m, nn.Conv2d)]
    assert sorted({m.out_channels for m in convs}) == [8, 16, 32]


def test_init_xavier_gives_uniform_weights_in_the_glorot_bound_and_zero_bias():
    torch.manual_seed(0)
    model = models.LeNet()
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.constant_(m.bias, 1.0)
    assert models.init_xavier(model) is None
    big = model.net[7]  # Linear(400, 120): enough weights to check the spread
    bound = math.sqrt(6 / (400 + 120))
    assert big.weight.abs().max() <= bound
    assert big.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)
    conv = model.net[3]  # fans of a conv include the kernel area
    assert conv.weight.abs().max() <= math.sqrt(6 / (6 * 25 + 16 * 25))
    assert all((m.bias == 0).all() for m in model.modules()
               if isinstance(m, (nn.Linear, nn.Conv2d)))


def test_count_parameters_includes_frozen_ones():
    model = models.LeNet()
    model.net[0].requires_grad_(False)
    assert models.count_parameters(model) == 61_706


def test_layer_table_leaves_no_hooks_and_no_state_change():
    model = models.ModernLeNet()
    model.train()
    model.net[1].eval()  # a mixed-mode model must come back exactly as it was
    modes = {name: m.training for name, m in model.named_modules()}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    models.layer_table(model, (1, 28, 28))
    assert {name: m.training for name, m in model.named_modules()} == modes
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_layer_table_names_the_layer_that_rejects_a_wrong_channel_count():
    model = models.LeNet()
    with pytest.raises(ValueError, match=r"\(1, 3, 28, 28\).*'net\.0'.*\(N, 1, H, W\)"):
        models.layer_table(model, (1, 3, 28, 28))
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    assert model.training


def test_layer_table_accepts_numpy_and_torch_sizes():
    shape = torch.Size([1, 1, 28, 28])
    assert models.layer_table(models.LeNet(), shape)["output shape"].iloc[0] == (1, 6, 28, 28)
    table = models.layer_table(models.LeNet(), tuple(np.array([1, 28, 28])))
    assert table["output shape"].iloc[-1] == (1, 10)


def test_layer_table_names_the_linear_layer_that_rejects_a_wrong_image_size():
    with pytest.raises(ValueError, match=r"'net\.7' \(Linear\) expects \(N, 400\) but got \(1, 576\)"):
        models.layer_table(models.LeNet(), (1, 1, 32, 32))


def _bars(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy 28×28 images holding one vertical (label 0) or horizontal (label 1) bar."""
    labels = torch.randint(0, 2, (n,), generator=generator)
    images = 0.6 * torch.randn(n, 1, 28, 28, generator=generator)
    where = torch.randint(2, 26, (n,), generator=generator)
    for i in range(n):
        if labels[i] == 0:
            images[i, 0, :, where[i]] += 1.5
        else:
            images[i, 0, where[i], :] += 1.5
    return images, labels


@pytest.mark.parametrize("make", [lambda: models.SmallCNN(num_classes=2, width=8),
                                  models.ModernLeNet], ids=["SmallCNN", "ModernLeNet"])
def test_cnn_learns_bar_orientation(make):
    generator = torch.Generator().manual_seed(0)
    X, y = _bars(512, generator)
    X_test, y_test = _bars(256, generator)
    torch.manual_seed(0)
    model = make()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for step in range(30):
        batch = torch.arange(step * 32, step * 32 + 32) % len(X)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(X[batch]), y[batch]).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(X_test).argmax(1) == y_test).float().mean().item()
    assert accuracy >= 0.95
