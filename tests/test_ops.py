"""convbook.ops against PyTorch: every hand-built operation must give torch's numbers.

Shapes are drawn from seeded generators (non-square inputs and kernels, several channel
counts, padding, stride), so each case is random but reproducible.
"""
import inspect
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convbook import ops

CASES = range(12)


def randint(gen: torch.Generator, low: int, high: int) -> int:
    """A random int in [low, high]."""
    return int(torch.randint(low, high + 1, (1,), generator=gen))


def random_conv_case(seed: int):
    """Input (C_in, H, W) and kernels (C_out, C_in, h, w) of random, non-square sizes."""
    gen = torch.Generator().manual_seed(seed)
    c_in, c_out = randint(gen, 1, 4), randint(gen, 1, 3)
    h, w = randint(gen, 1, 4), randint(gen, 1, 5)
    H, W = randint(gen, h, 9), randint(gen, w, 11)
    X = torch.randn(c_in, H, W, generator=gen, dtype=torch.float64)
    K = torch.randn(c_out, c_in, h, w, generator=gen, dtype=torch.float64)
    return X, K


@pytest.mark.parametrize("seed", CASES)
def test_corr2d_and_corr2d_fast_equal_conv2d(seed):
    X, K = random_conv_case(seed)
    expected = F.conv2d(X[:1][None], K[:1, :1])[0, 0]
    torch.testing.assert_close(ops.corr2d(X[0], K[0, 0]), expected)
    torch.testing.assert_close(ops.corr2d_fast(X[0], K[0, 0]), expected)


@pytest.mark.parametrize("seed", CASES)
def test_multi_channel_correlation_equals_conv2d(seed):
    X, K = random_conv_case(seed)
    expected = F.conv2d(X[None], K)[0]
    torch.testing.assert_close(ops.corr2d_multi_in(X, K[0]), expected[0])
    torch.testing.assert_close(ops.corr2d_multi_in_out(X, K), expected)


@pytest.mark.parametrize("seed", CASES)
def test_1x1_matrix_product_equals_conv2d(seed):
    X, K = random_conv_case(seed)
    K1 = K[..., :1, :1]
    expected = F.conv2d(X[None], K1)[0]
    torch.testing.assert_close(ops.corr2d_multi_in_out_1x1(X, K1), expected)
    torch.testing.assert_close(ops.corr2d_multi_in_out(X, K1), expected)


def test_corr2d_edge_detector_marks_both_edges():
    X = torch.ones(6, 8)
    X[:, 2:6] = 0
    Y = ops.corr2d(X, torch.tensor([[1.0, -1.0]]))
    row = torch.tensor([0.0, 1, 0, 0, 0, -1, 0])
    torch.testing.assert_close(Y, row.expand(6, 7))


def test_corr2d_keeps_gradients():
    X = torch.randn(5, 6, generator=torch.Generator().manual_seed(0))
    K = torch.randn(2, 3, requires_grad=True)
    K_ref = K.detach().clone().requires_grad_()
    ops.corr2d(X, K).square().sum().backward()
    F.conv2d(X[None, None], K_ref[None, None]).square().sum().backward()
    torch.testing.assert_close(K.grad, K_ref.grad)


def test_conv2d_module_matches_nn_conv2d_forward_and_backward():
    torch.manual_seed(0)
    layer = ops.Conv2D((2, 3))
    with torch.no_grad():
        layer.bias.fill_(0.5)
    reference = nn.Conv2d(1, 1, (2, 3))
    with torch.no_grad():
        reference.weight.copy_(layer.weight[None, None])
        reference.bias.copy_(layer.bias)
    X = torch.randn(6, 7)
    assert [p.shape for p in layer.parameters()] == [(2, 3), (1,)]
    out, ref_out = layer(X), reference(X[None, None])[0, 0]
    torch.testing.assert_close(out, ref_out)
    out.sum().backward()
    ref_out.sum().backward()
    torch.testing.assert_close(layer.weight.grad, reference.weight.grad[0, 0])
    torch.testing.assert_close(layer.bias.grad, reference.bias.grad)


def test_conv2d_module_learns_the_edge_kernel():
    torch.manual_seed(0)
    X = torch.ones(6, 8)
    X[:, 2:6] = 0
    K = torch.tensor([[1.0, -1.0]])
    Y = ops.corr2d(X, K)
    layer = ops.Conv2D((1, 2))
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.01)
    for _ in range(100):
        optimizer.zero_grad()
        (layer(X) - Y).square().sum().backward()
        optimizer.step()
    torch.testing.assert_close(layer.weight.detach(), K, atol=1e-3, rtol=0)
    assert abs(layer.bias.item()) < 1e-3


def random_pool_case(seed: int):
    """A (N, C, H, W) input and a valid window, padding and stride for it."""
    gen = torch.Generator().manual_seed(1000 + seed)
    size = (randint(gen, 1, 4), randint(gen, 1, 4))
    padding = (randint(gen, 0, size[0] // 2), randint(gen, 0, size[1] // 2))
    stride = (randint(gen, 1, 3), randint(gen, 1, 3))
    H, W = randint(gen, size[0], 9), randint(gen, size[1], 10)
    X = torch.randn(2, randint(gen, 1, 3), H, W, generator=gen, dtype=torch.float64)
    return X, size, padding, stride


@pytest.mark.parametrize("seed", CASES)
def test_pool2d_equals_torch_pooling(seed):
    X, size, padding, stride = random_pool_case(seed)
    max_ref = nn.MaxPool2d(size, stride=stride, padding=padding)(X)
    avg_ref = nn.AvgPool2d(size, stride=stride, padding=padding)(X)
    torch.testing.assert_close(ops.pool2d(X, size, "max", padding, stride), max_ref)
    torch.testing.assert_close(ops.pool2d(X, size, "avg", padding, stride), avg_ref)


def test_pool2d_defaults_to_non_overlapping_windows_on_2d_input():
    X = torch.arange(16.0).reshape(4, 4)
    torch.testing.assert_close(ops.pool2d(X, 2), nn.MaxPool2d(2)(X[None])[0])
    torch.testing.assert_close(
        ops.pool2d(X, 2, "avg", stride=1), nn.AvgPool2d(2, stride=1)(X[None])[0]
    )


@pytest.mark.parametrize("seed", CASES)
def test_conv_output_shape_equals_nn_conv2d(seed):
    gen = torch.Generator().manual_seed(2000 + seed)
    kernel, dilation = (randint(gen, 1, 5), randint(gen, 1, 4)), (randint(gen, 1, 2), 1)
    padding = (randint(gen, 0, 3), randint(gen, 0, 2))
    stride = (randint(gen, 1, 4), randint(gen, 1, 3))
    extent = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    hw = (randint(gen, max(1, extent[0] - 2 * padding[0]), 20),
          randint(gen, max(1, extent[1] - 2 * padding[1]), 20))
    conv = nn.Conv2d(1, 1, kernel, stride=stride, padding=padding, dilation=dilation)
    expected = tuple(conv(torch.zeros(1, 1, *hw)).shape[-2:])
    assert ops.conv_output_shape(hw, kernel, padding, stride, dilation) == expected


def test_conv_output_shape_d2l_cases_and_int_arguments():
    assert ops.conv_output_shape(8, 3, padding=1) == (8, 8)
    assert ops.conv_output_shape((8, 8), (5, 3), padding=(2, 1)) == (8, 8)
    assert ops.conv_output_shape(8, 3, padding=1, stride=2) == (4, 4)
    assert ops.conv_output_shape(8, (3, 5), padding=(0, 1), stride=(3, 4)) == (2, 2)


def gradient_footprint(layers: nn.Sequential, size: int = 32) -> int:
    """Width of the input region that changes the centre output pixel, found by autograd."""
    X = torch.ones(1, 1, size, size, requires_grad=True)
    Y = layers(X)
    Y[0, 0, Y.shape[-2] // 2, Y.shape[-1] // 2].backward()
    columns = X.grad[0, 0].abs().sum(dim=0).nonzero()
    return int(columns.max() - columns.min() + 1)


@pytest.mark.parametrize(
    "layers",
    [
        [(3, 1)],
        [(3, 1), (3, 1)],
        [(3, 1), (2, 2), (3, 1)],
        [(5, 1), (2, 2), (5, 1), (2, 2)],
        [(3, 2), (3, 1, 2), (3, 1)],
    ],
)
def test_receptive_field_equals_autograd_footprint(layers):
    modules = []
    for kernel, stride, *dilation in layers:
        conv = nn.Conv2d(1, 1, kernel, stride=stride, dilation=dilation or 1, bias=False)
        nn.init.ones_(conv.weight)
        modules.append(conv)
    assert ops.receptive_field(layers) == gradient_footprint(nn.Sequential(*modules))


def test_receptive_field_counts_pooling_like_a_kernel():
    stack = nn.Sequential(
        nn.Conv2d(1, 1, 3, bias=False), nn.AvgPool2d(2), nn.Conv2d(1, 1, 3, bias=False)
    )
    for conv in (stack[0], stack[2]):
        nn.init.ones_(conv.weight)
    assert ops.receptive_field([(3, 1), (2, 2), (3, 1)]) == gradient_footprint(stack) == 8


ones = torch.ones

VALUE_ERRORS = [
    (lambda: ops.corr2d(ones(2, 3), ones(3, 1)), r"kernel \(3, 1\) is larger than input \(2, 3\)"),
    (lambda: ops.corr2d_fast(ones(4, 4), ones(1, 5)), r"kernel \(1, 5\) is larger"),
    (lambda: ops.corr2d(ones(1, 4, 4), ones(2, 2)), r"X must be 2-D .* shape \(1, 4, 4\)"),
    (lambda: ops.corr2d_multi_in(ones(3, 4, 4), ones(2, 2, 2)), r"3 channels .* expects 2"),
    (lambda: ops.corr2d_multi_in_out(ones(2, 4, 4), ones(2, 2, 2)), r"K must be 4-D"),
    (
        lambda: ops.corr2d_multi_in_out(ones(2, 4, 4), ones(5, 3, 2, 2)),
        r"2 channels .*\(shape \(5, 3, 2, 2\)\)",
    ),
    (lambda: ops.corr2d_multi_in_out(ones(2, 5, 4), ones(1, 2, 6, 3)), r"kernel \(6, 3\)"),
    (lambda: ops.corr2d_multi_in_out_1x1(ones(2, 4, 4), ones(3, 2, 2, 2)), r"must be 1x1"),
    (lambda: ops.pool2d(ones(4, 4), 2, stride=0), r"stride >= 1"),
    (lambda: ops.pool2d(ones(4, 4), 3, padding=2), r"padding \(2, 2\) must be at most half"),
    (
        lambda: ops.pool2d(ones(2, 3), (3, 2)),
        r"pool_size \(3, 2\) is larger than the padded input \(2, 3\)",
    ),
    (lambda: ops.pool2d(ones(4, 4), 2, mode="median"), r"'max' or 'avg'"),
    (lambda: ops.conv_output_shape(8, 3, stride=0), r"stride 0"),
    (lambda: ops.conv_output_shape((4, 8), 5), r"kernel 5 .* padded input 4"),
    (lambda: ops.receptive_field([(3, 0)]), r"positive ints, got \(3, 0\)"),
]

TYPE_ERRORS = [
    (lambda: ops.corr2d([[1.0]], ones(1, 1)), r"X must be a torch.Tensor, got list"),
    (lambda: ops.corr2d(ones(3, 3), 2), r"K must be a torch.Tensor, got int"),
    (lambda: ops.corr2d(ones(4, 4, dtype=torch.uint8), ones(2, 2)), r"X must hold floating"),
    (lambda: ops.corr2d_fast(ones(4, 4), ones(2, 2, dtype=torch.bool)), r"K must hold float"),
    (lambda: ops.pool2d(ones(4, 4, dtype=torch.int64), 2), r"floating-point .* torch.int64"),
    (lambda: ops.pool2d(ones(4), 2), r"at least 2 dimensions"),
    (lambda: ops.pool2d(ones(4, 4), 2, padding=1.5), r"padding must be an int or a pair"),
    (lambda: ops.corr2d(ones(4, 4)), r"missing a required argument: 'K'"),
    (lambda: ops.conv_output_shape(8, 2.5), r"kernel must be an int or a pair of ints, got 2.5"),
    (lambda: ops.Conv2D((1, 2, 3)), r"kernel_size must be an int or a pair"),
]


@pytest.mark.parametrize("call, message", VALUE_ERRORS)
def test_bad_shapes_raise_value_errors_naming_them(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("call, message", TYPE_ERRORS)
def test_bad_types_raise_type_errors(call, message):
    with pytest.raises(TypeError, match=message):
        call()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ops_keep_floating_dtypes(dtype):
    X, K = torch.ones(3, 3, dtype=dtype), torch.ones(2, 2, dtype=dtype)
    assert ops.corr2d(X, K).dtype == ops.corr2d_fast(X, K).dtype == dtype
    assert ops.pool2d(X, 2).dtype == dtype


# ------------------------------------------------ what the chapters print


@pytest.mark.parametrize("name, most_lines", [("corr2d", 12), ("pool2d", 25)])
def test_printed_ops_are_the_bare_code(name, most_lines):
    """Chapters 2 and 5 print these with inspect.getsource: the loop, no hidden checks."""
    source = inspect.getsource(getattr(ops, name))
    assert source.startswith(f"def {name}(")
    assert len(source.rstrip().splitlines()) <= most_lines
    assert not re.findall(r"(?<![\w.])_[a-z]\w*", source)  # no private helper named
