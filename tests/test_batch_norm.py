"""convbook.ops.batch_norm against nn.BatchNorm1d/2d, in training and evaluation mode.

Each case draws a random input, gamma, beta and running statistics from a seeded
generator, copies them into the PyTorch layer, and compares the output and the updated
running mean and variance (chapter 7).
"""
import pytest
import torch
from torch import nn

from convbook import ops

SHAPES = [(5, 3), (2, 4), (8, 1), (2, 3, 4, 5), (1, 2, 3, 3), (4, 1, 2, 7)]


def random_state(shape, seed):
    """X of ``shape`` and random per-channel gamma, beta, moving mean and variance."""
    gen = torch.Generator().manual_seed(seed)
    channels = shape[1]
    X = 3 * torch.randn(shape, generator=gen, dtype=torch.float64) + 1
    gamma, beta, mean = torch.randn(3, channels, generator=gen, dtype=torch.float64)
    var = torch.rand(channels, generator=gen, dtype=torch.float64) + 0.5
    return X, gamma, beta, mean, var


def torch_layer(X, gamma, beta, mean, var, eps, momentum):
    """An nn.BatchNorm1d/2d holding the same parameters and running statistics."""
    kind = nn.BatchNorm1d if X.dim() == 2 else nn.BatchNorm2d
    layer = kind(X.shape[1], eps=eps, momentum=momentum).double()
    with torch.no_grad():
        layer.weight.copy_(gamma)
        layer.bias.copy_(beta)
        layer.running_mean.copy_(mean)
        layer.running_var.copy_(var)
    return layer


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("eps, momentum", [(1e-5, 0.1), (1e-3, 0.5)])
@pytest.mark.parametrize("seed, shape", list(enumerate(SHAPES)))
def test_batch_norm_equals_nn_batch_norm(seed, shape, eps, momentum, training):
    state = random_state(shape, seed)
    originals = [t.clone() for t in state]
    layer = torch_layer(*state, eps, momentum).train(training)
    expected = layer(state[0])
    Y, new_mean, new_var = ops.batch_norm(
        *state, training=training, eps=eps, momentum=momentum
    )
    torch.testing.assert_close(Y, expected.detach())
    torch.testing.assert_close(new_mean, layer.running_mean)
    torch.testing.assert_close(new_var, layer.running_var)
    for before, after in zip(originals, state):
        assert torch.equal(before, after), "batch_norm must not change its inputs"


def test_training_mode_normalises_each_channel_and_eval_mode_uses_moving_stats():
    X = torch.tensor([[1.0, 10.0], [3.0, 30.0], [5.0, 50.0]])
    ones, zeros = torch.ones(2), torch.zeros(2)
    Y, mean, var = ops.batch_norm(X, ones, zeros, zeros, ones, training=True, eps=1e-12)
    torch.testing.assert_close(Y.mean(dim=0), zeros)
    torch.testing.assert_close(Y.var(dim=0, correction=0), ones)
    torch.testing.assert_close(mean, torch.tensor([0.3, 3.0]))
    torch.testing.assert_close(var, torch.tensor([0.9 + 0.1 * 4.0, 0.9 + 0.1 * 400.0]))
    Y_eval, same_mean, same_var = ops.batch_norm(
        X, ones, zeros, mean, var, training=False
    )
    torch.testing.assert_close(Y_eval, (X - mean) / torch.sqrt(var + 1e-5))
    assert same_mean is mean and same_var is var


def test_gradients_flow_to_x_gamma_beta_but_not_to_the_moving_statistics():
    X, gamma, beta, mean, var = random_state((4, 3, 2, 2), 0)
    for tensor in (X, gamma, beta):
        tensor.requires_grad_()
    Y, new_mean, new_var = ops.batch_norm(X, gamma, beta, mean, var, training=True)
    Y.square().sum().backward()
    assert all(t.grad is not None for t in (X, gamma, beta))
    assert not new_mean.requires_grad and not new_var.requires_grad


@pytest.mark.parametrize("bad, message", [
    ({"X": torch.ones(2, 3, 4)}, r"2-D \(N, C\) or 4-D"),
    ({"gamma": torch.ones(1, 3, 1, 1)}, r"gamma must have shape \(3,\)"),
    ({"moving_var": torch.ones(4)}, r"moving_var must have shape \(3,\)"),
    ({"X": torch.ones(1, 3)}, "more than one value per channel"),
])
def test_bad_arguments_raise_clear_errors(bad, message):
    arguments = {"X": torch.ones(2, 3), "gamma": torch.ones(3), "beta": torch.zeros(3),
                 "moving_mean": torch.zeros(3), "moving_var": torch.ones(3),
                 "training": True, **bad}
    with pytest.raises(ValueError, match=message):
        ops.batch_norm(**arguments)
