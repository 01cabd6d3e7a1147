"""convbook.check: each checker passes the course's own operations and fails, with the
right hint, on a catalogue of the wrong versions learners typically write (chapters 2–7).

Every failure test asserts the message: the hint, and where it matters the case shown.
"""
import math
import time

import numpy as np
import pytest
import torch

import convbook as cb
from convbook import ops


def failure(checker, fn) -> str:
    """The CheckFailed message ``checker`` raises on ``fn`` (the test fails if none), with
    its wrapped lines joined again, so that tests can look for whole sentences."""
    with pytest.raises(cb.check.CheckFailed) as info:
        checker(fn)
    assert isinstance(info.value, AssertionError)
    message = str(info.value)
    assert all(len(line) <= 88 for line in message.splitlines()), message
    return message.replace("\n    ", " ")


# --- corr2d (chapter 2) -------------------------------------------------------------------

def corr2d_loop(X, K, rows_extra=0, cols_extra=0, stop_early=0):
    """A learner's double loop, with knobs for the classic off-by-one mistakes."""
    h, w = K.shape
    Y = torch.zeros(X.shape[0] - h + 1 + rows_extra, X.shape[1] - w + 1 + cols_extra)
    for i in range(min(Y.shape[0], X.shape[0] - h + 1) - stop_early):
        for j in range(min(Y.shape[1], X.shape[1] - w + 1)):
            Y[i, j] = (X[i:i + h, j:j + w] * K).sum()
    return Y


def test_corr2d_passes_the_course_implementations(capsys):
    for fn in (ops.corr2d, ops.corr2d_fast, corr2d_loop):
        cb.check.corr2d(fn)
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["corr2d: all 16 cases match F.conv2d (chapter 2's examples, "
                     "edge and random cases)."] * 3


def test_corr2d_flipped_kernel_is_named_true_convolution_on_the_smallest_case():
    message = failure(cb.check.corr2d, lambda X, K: ops.corr2d(X, K.flip(0, 1)))
    assert "true convolution (kernel rotated by 180°)" in message
    assert "Smallest failing case (one-row input):" in message
    assert "X = tensor of shape (1, 5)" in message
    assert "Expected: tensor of shape (1, 4)" in message
    assert "Obtained: tensor of shape (1, 4)" in message
    # On a one-column kernel flipping upside down is the 180° rotation; skip those.
    upside_down = failure(cb.check.corr2d, lambda X, K: ops.corr2d(
        X, K.flip(0) if K.shape[1] > 1 else K))
    assert "The kernel is flipped upside down" in upside_down


@pytest.mark.parametrize("knobs, words", [
    ({"rows_extra": -1, "cols_extra": -1}, "one row too few and one column too few"),
    ({"rows_extra": 1}, "one row too many"),
    ({"stop_early": 1}, "The last row was never filled in"),
])
def test_corr2d_off_by_one_shapes_and_loops(knobs, words):
    message = failure(cb.check.corr2d, lambda X, K: corr2d_loop(X, K, **knobs))
    assert words in message and "wrong result" in message


def test_corr2d_in_place_modification_is_reported():
    def zeroes_input(X, K):
        Y = ops.corr2d(X, K)
        X.zero_()
        return Y

    message = failure(cb.check.corr2d, zeroes_input)
    assert "it changed its input X in place" in message
    assert "Do not modify X (no X -= ..., X[...] = ..., X.add_(...))" in message


@pytest.mark.parametrize("wrong, words", [
    (lambda X, K: ops.corr2d(X, K).long(), "Return a torch.float32 tensor like the input, "
                                          "not torch.int64"),
    (lambda X, K: ops.corr2d(X, K)[None], "should have 2 dimensions"),
    (lambda X, K: ops.corr2d(X, K).T, "Height and width are swapped"),
    (lambda X, K: ops.corr2d(X, K).tolist(), "Return a torch.Tensor, not list"),
    (lambda X, K: None, "not NoneType (a function without a return statement"),
])
def test_corr2d_wrong_type_dtype_or_shape(wrong, words):
    assert words in failure(cb.check.corr2d, wrong)


def test_corr2d_exceptions_are_reported_with_the_case_and_the_call():
    message = failure(cb.check.corr2d, lambda X, K: 1 / 0)
    assert "it raised ZeroDivisionError: division by zero" in message
    assert "The check calls corr2d(X, K) with X of shape (H, W)" in message
    assert message.count("Smallest failing case") == 1


def endless(X, K):
    """Never returns, and even swallows ordinary exceptions."""
    while True:
        try:
            time.sleep(0.01)
        except Exception:
            pass


@pytest.mark.parametrize("slow", [endless, lambda X, K: time.sleep(5)])
def test_corr2d_too_slow_is_stopped_at_the_time_limit(slow, monkeypatch):
    monkeypatch.setattr(cb.check._runner, "TIME_LIMIT", 0.2)
    start = time.perf_counter()
    message = failure(cb.check.corr2d, slow)
    assert time.perf_counter() - start < 3
    assert "it was still running after 0.2 s, the time limit" in message
    assert "endless loop" in message


def test_corr2d_needs_a_function():
    X = torch.ones(3, 3)
    message = failure(cb.check.corr2d, ops.corr2d(X, X[:2, :2]))
    assert "needs a function, got Tensor" in message


# --- conv_output_shape (chapter 3) --------------------------------------------------------

def shape_formula(rule):
    """A learner's conv_output_shape from a one-dimension formula rule(n, k, p, s, d)."""
    return lambda *pairs: tuple(rule(*dim) for dim in zip(*pairs))


def test_conv_output_shape_passes_the_course_implementation(capsys):
    cb.check.conv_output_shape(ops.conv_output_shape)
    cb.check.conv_output_shape(
        shape_formula(lambda n, k, p, s, d: (n + 2 * p - d * (k - 1) - 1) // s + 1))
    assert capsys.readouterr().out.splitlines() == [
        "conv_output_shape: all 20 cases match F.conv2d (chapter 3's examples, edge "
        "and random cases)."] * 2


@pytest.mark.parametrize("rule, words", [
    (lambda n, k, p, s, d: (n + p - d * (k - 1) - 1) // s + 1, "added on each side"),
    (lambda n, k, p, s, d: (n + 2 * p - d * (k - 1) - 1) // s, "Off by one"),
    (lambda n, k, p, s, d: (n + 2 * p - k) // s + 1, "spans d(k - 1) + 1 pixels, not k"),
    (lambda n, k, p, s, d: (n + 2 * p - d * k) // s + 1, "not d·k"),
    (lambda n, k, p, s, d: math.ceil((n + 2 * p - d * (k - 1) - 1) / s) + 1, "Round down"),
    (lambda n, k, p, s, d: n + 2 * p - d * (k - 1), "Divide by the stride"),
    (lambda n, k, p, s, d: (n + 2 * p - d * (k - 1) - 1) / s + 1, "integer division (//)"),
    (lambda n, k, p, s, d: np.int64((n + 2 * p - d * (k - 1) - 1) // s + 1),
     "Return Python ints"),
])
def test_conv_output_shape_formula_mistakes(rule, words):
    message = failure(cb.check.conv_output_shape, shape_formula(rule))
    assert words in message
    assert "floor((n + 2p - d(k - 1) - 1) / s) + 1" in message or "Python ints" in message
    assert "Expected: (" in message and "Obtained: (" in message


def test_conv_output_shape_swapped_list_and_int_only_versions():
    swapped = failure(cb.check.conv_output_shape,
                      lambda *pairs: ops.conv_output_shape(*pairs)[::-1])
    assert "Return (height, width) in that order" in swapped
    as_list = failure(cb.check.conv_output_shape,
                      lambda *pairs: list(ops.conv_output_shape(*pairs)))
    assert "Return a tuple (height, width) of two ints" in as_list
    ints_only = failure(cb.check.conv_output_shape,
                        lambda n, k, p=0, s=1, d=1: (n + 2 * p - k) // s + 1)
    assert "it raised TypeError" in ints_only
    assert "each a (height, width) pair" in ints_only
    assert "input_hw = (" in ints_only and "dilation = (" in ints_only


# --- corr2d_multi_in, corr2d_multi_in_out, corr2d_multi_in_out_1x1 (chapter 4) ------------

def multi_in_loop(X, K, combine=sum):
    """A learner's version: one corr2d per channel, then ``combine`` the maps."""
    return combine([ops.corr2d(x, k) for x, k in zip(X, K)])


def test_chapter4_checkers_pass_the_course_implementations(capsys):
    cb.check.corr2d_multi_in(ops.corr2d_multi_in)
    cb.check.corr2d_multi_in(multi_in_loop)
    cb.check.corr2d_multi_in_out(ops.corr2d_multi_in_out)
    cb.check.corr2d_multi_in_out_1x1(ops.corr2d_multi_in_out_1x1)
    cb.check.corr2d_multi_in_out_1x1(ops.corr2d_multi_in_out)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("corr2d_multi_in: all 12 cases match F.conv2d (chapter 4's example, "
                        "edge and random cases).")
    assert [line.split(":")[0] for line in lines] == [
        "corr2d_multi_in", "corr2d_multi_in", "corr2d_multi_in_out",
        "corr2d_multi_in_out_1x1", "corr2d_multi_in_out_1x1"]


@pytest.mark.parametrize("wrong, words", [
    (lambda X, K: multi_in_loop(X, K, torch.stack), "Add up the per-channel results"),
    (lambda X, K: ops.corr2d(X.sum(0), K.sum(0)), "summed the channels before correlating"),
    (lambda X, K: ops.corr2d(X[0], K[0]), "Only channel 0 is used"),
    (lambda X, K: sum(ops.corr2d(x, K[0]) for x in X), "channel c uses K[c], not K[0]"),
    (lambda X, K: multi_in_loop(X, K) / len(X), "do not average them"),
    (lambda X, K: multi_in_loop(X, K.flip(-1, -2)), "true convolution"),
])
def test_corr2d_multi_in_channel_mistakes(wrong, words):
    message = failure(cb.check.corr2d_multi_in, wrong)
    assert words in message
    assert "Expected: tensor of shape" in message and "K = tensor of shape (" in message


@pytest.mark.parametrize("wrong, words", [
    (lambda X, K: sum(ops.corr2d_multi_in(X, k) for k in K), "do not add the output channels"),
    (lambda X, K: torch.stack([ops.corr2d_multi_in(X, k) for k in K], dim=-1),
     "Stack the output channels along dim 0"),
    (lambda X, K: torch.stack([torch.stack([ops.corr2d(x, k) for x, k in zip(X, kernels)])
                               for kernels in K]), "Sum over the input channels"),
    (lambda X, K: ops.corr2d_multi_in_out(X, K).double(),
     "Return a torch.float32 tensor like the input, not torch.float64"),
    (lambda X, K: torch.stack([ops.corr2d_multi_in(X, K[:, i]) for i in range(len(X))]),
     "it raised"),
])
def test_corr2d_multi_in_out_stacking_mistakes(wrong, words):
    assert words in failure(cb.check.corr2d_multi_in_out, wrong)


def matmul_1x1(X, K, pixels_first=False, k_transposed=False, product_reversed=False):
    """A learner's 1×1 convolution as a matrix product, with the usual slips as knobs."""
    c_in, h, w = X.shape
    c_out = K.shape[0]
    Xm = X.reshape(h * w, c_in).T if pixels_first else X.reshape(c_in, h * w)
    Km = K.reshape(c_in, c_out).T if k_transposed else K.reshape(c_out, c_in)
    Y = Xm.T @ Km.T if product_reversed else Km @ Xm
    return Y.reshape(c_out, h, w)


@pytest.mark.parametrize("knob, words", [
    ("pixels_first", "Reshape X to (C_in, H * W)"),
    ("k_transposed", "K reshapes to (C_out, C_in)"),
    ("product_reversed", "Multiply K (C_out, C_in) @ X (C_in, H * W)"),
])
def test_corr2d_multi_in_out_1x1_reshape_mistakes(knob, words):
    cb.check.corr2d_multi_in_out_1x1(matmul_1x1)
    assert words in failure(cb.check.corr2d_multi_in_out_1x1,
                            lambda X, K: matmul_1x1(X, K, **{knob: True}))


def test_corr2d_multi_in_out_1x1_in_place_reshape_is_caught():
    def squares_input(X, K):
        X.mul_(X)
        return matmul_1x1(X, K)

    message = failure(cb.check.corr2d_multi_in_out_1x1, squares_input)
    assert "it changed its input X in place" in message


# --- pool2d (chapter 5) -------------------------------------------------------------------

def learner_pool(X, pool_size, mode="max", padding=(0, 0), stride=None, *, fill=None,
                 one_sided=False, exclude_pad=False, stride_one=False, use_sum=False,
                 no_padding=False):
    """A learner's pool2d (leading dims allowed), with the usual slips as knobs."""
    (ph, pw), (top, left) = pool_size, (0, 0) if no_padding else padding
    sh, sw = (1, 1) if stride_one else (stride or pool_size)
    value = fill if fill is not None else (-math.inf if mode == "max" else 0.0)
    sides = (left, 0 if one_sided else left, top, 0 if one_sided else top)
    Xp = torch.nn.functional.pad(X, sides, value=value)
    real = torch.nn.functional.pad(torch.ones_like(X), sides)
    out_h, out_w = (Xp.shape[-2] - ph) // sh + 1, (Xp.shape[-1] - pw) // sw + 1
    Y = torch.zeros(*X.shape[:-2], out_h, out_w)
    for i in range(Y.shape[-2]):
        for j in range(Y.shape[-1]):
            rows, cols = slice(i * sh, i * sh + ph), slice(j * sw, j * sw + pw)
            window = Xp[..., rows, cols]
            if mode == "max":
                Y[..., i, j] = window.amax(dim=(-2, -1))
            else:
                count = real[..., rows, cols].sum(dim=(-2, -1)) if exclude_pad else ph * pw
                Y[..., i, j] = window.sum(dim=(-2, -1)) / (1 if use_sum else count)
    return Y


def test_pool2d_passes_the_course_implementation_and_a_learner_loop(capsys):
    cb.check.pool2d(ops.pool2d)
    cb.check.pool2d(learner_pool)
    assert capsys.readouterr().out.splitlines() == [
        "pool2d: all 19 cases match F.max_pool2d/F.avg_pool2d (chapter 5's examples, edge "
        "and random cases)."] * 2


@pytest.mark.parametrize("knob, words", [
    ({"fill": 0.0}, "Max pooling pads with -inf"),
    ({"one_sided": True}, "Pad both sides"),
    ({"exclude_pad": True}, "padded zeros included (nn.AvgPool2d's default "
                            "count_include_pad=True)"),
    ({"stride_one": True}, "Move the window by the stride"),
    ({"use_sum": True}, "sum divided by its size"),
    ({"no_padding": True}, "Apply the padding"),
])
def test_pool2d_padding_stride_and_average_mistakes(knob, words):
    message = failure(cb.check.pool2d, lambda *args, **kw: learner_pool(*args, **kw, **knob))
    assert words in message and "options: mode=" in message


def test_pool2d_swapped_mode_and_two_dimensional_only_versions():
    swapped = failure(cb.check.pool2d, lambda X, size, mode, **kw: ops.pool2d(
        X, size, "avg" if mode == "max" else "max", **kw))
    assert "check that your function uses mode" in swapped

    def only_2d(X, pool_size, mode="max", padding=(0, 0), stride=None):
        return learner_pool(X.reshape(-1, *X.shape[-2:])[0], pool_size, mode, padding, stride)

    message = failure(cb.check.pool2d, only_2d)
    assert "Smallest failing case (batch of two channels, avg, padding)" in message
    assert "leading (channel) dimensions of X stay" in message


# --- batch_norm (chapter 7) ---------------------------------------------------------------

def learner_bn(X, gamma, beta, moving_mean, moving_var, *, training, eps, momentum,
               per_pixel=False, d2l_momentum=False, biased_running=False,
               unbiased_norm=False, eps_outside=False, always_batch=False,
               never_batch=False, update_in_eval=False, in_place=False, whole_batch=False):
    """A learner's batch norm, written out step by step, with the usual slips as knobs."""
    axes = [0] if X.dim() == 2 or per_pixel else [0, 2, 3]
    axes = [0, 1, 2, 3] if whole_batch and X.dim() == 4 else axes
    view = (1, -1) if X.dim() == 2 else (1, -1, 1, 1)
    mean = X.mean(dim=axes, keepdim=True)
    var = ((X - mean) ** 2).mean(dim=axes, keepdim=True)
    n = X.numel() / mean.numel()
    use_batch = (training or always_batch) and not never_batch
    norm_var = var * n / (n - 1) if unbiased_norm else var
    m, v = (mean, norm_var) if use_batch else (moving_mean.view(view), moving_var.view(view))
    if eps_outside:
        X_hat = (X - m) / (torch.sqrt(v) + eps)
    else:
        X_hat = (X - m) / torch.sqrt(v + eps)
    Y = gamma.view(view) * X_hat + beta.view(view)
    if not (training or update_in_eval):
        return Y, moving_mean, moving_var
    keep = momentum if d2l_momentum else 1 - momentum
    batch_var = var if biased_running else var * n / (n - 1)
    new_mean = keep * moving_mean + (1 - keep) * mean.flatten()[:len(moving_mean)]
    new_var = keep * moving_var + (1 - keep) * batch_var.flatten()[:len(moving_var)]
    if in_place:
        moving_mean.copy_(new_mean)
        return Y, moving_mean, new_var
    return Y, new_mean, new_var


def test_batch_norm_passes_the_course_implementation_and_a_learner_version(capsys):
    cb.check.batch_norm(ops.batch_norm)
    cb.check.batch_norm(learner_bn)
    assert capsys.readouterr().out.splitlines() == [
        "batch_norm: all 12 cases match F.batch_norm (both modes, 2-D and 4-D, running "
        "statistics)."] * 2


@pytest.mark.parametrize("knob, words", [
    ("d2l_momentum", "(1 - momentum) * old + momentum * batch"),
    ("biased_running", "The running variance uses the unbiased batch variance"),
    ("unbiased_norm", "Normalise with the biased batch variance"),
    ("per_pixel", "average over N, H and W, dims (0, 2, 3), not over N alone"),
    ("whole_batch", "one mean and variance for each of the C channels (dims (0, 2, 3)), not "
                    "one for the whole batch"),
    ("eps_outside", "eps goes inside the square root: sqrt(var + eps)"),
    ("always_batch", "In evaluation mode normalise with moving_mean and moving_var"),
    ("never_batch", "In training mode normalise with the batch's own mean"),
    ("update_in_eval", "Evaluation mode leaves the moving statistics unchanged"),
    ("in_place", "it changed its input moving_mean in place"),
])
def test_batch_norm_mistakes(knob, words):
    message = failure(cb.check.batch_norm,
                      lambda *args, **kw: learner_bn(*args, **kw, **{knob: True}))
    assert words in message
    assert "options: training=" in message and "momentum=" in message


def test_batch_norm_wrong_return_and_d2l_signature():
    only_y = failure(cb.check.batch_norm, lambda *args, **kw: ops.batch_norm(*args, **kw)[0])
    assert "Return a tuple of three tensors, (Y, new_moving_mean, new_moving_var)" in only_y

    def d2l_signature(X, gamma, beta, moving_mean, moving_var, eps, momentum):
        return ops.batch_norm(X, gamma, beta, moving_mean, moving_var, training=True)

    message = failure(cb.check.batch_norm, d2l_signature)
    assert "it raised TypeError" in message
    assert "batch_norm(X, gamma, beta, moving_mean, moving_var, training=..." in message


# --- lenet (chapter 6) --------------------------------------------------------------------

def sequential_lenet(padding=2, pool_stride=2, channels=6, bias=True, flatten_dim=1,
                     batch_norm=False, width=120):
    """A learner's d2l-style LeNet as one nn.Sequential, with the usual slips as knobs."""
    from torch import nn
    first = [nn.Conv2d(1, channels, 5, padding=padding, bias=bias)]
    first += [nn.BatchNorm2d(channels)] if batch_norm else []
    return nn.Sequential(
        *first, nn.Sigmoid(), nn.AvgPool2d(2, stride=pool_stride),
        nn.Conv2d(channels, 16, 5), nn.Sigmoid(), nn.AvgPool2d(2, 2),
        nn.Flatten(flatten_dim), nn.Linear(400, width), nn.Sigmoid(),
        nn.Linear(width, 84), nn.Sigmoid(), nn.Linear(84, 10))


def test_lenet_passes_the_course_model_and_a_sequential(capsys):
    cb.check.lenet(cb.models.LeNet())
    cb.check.lenet(sequential_lenet())
    assert capsys.readouterr().out.splitlines() == [
        "lenet: all 7 layer output shapes and the 61,706 parameters match "
        "convbook.models.LeNet."] * 2


@pytest.mark.parametrize("knobs, words", [
    ({"padding": 0}, ["layer 1 ('0', Conv2d) outputs (1, 6, 24, 24), LeNet's (1, 6, 28, 28)",
                      "needs padding=2"]),
    ({"pool_stride": 1}, ["layer 2 ('2', AvgPool2d)", "2 × 2 window and stride 2"]),
    ({"channels": 8}, ["(1, 8, 28, 28)", "6 and then 16 output channels"]),
    ({"width": 100}, ["outputs (1, 100), LeNet's (1, 120)", "120, 84 and 10 outputs"]),
    ({"flatten_dim": 0}, ["outputs (120,)", "Keep the batch dimension"]),
    ({"bias": False}, ["61,700 parameters, LeNet has 61,706", "bias=False"]),
    ({"batch_norm": True}, ["61,718 parameters", "other layers (batch norm, say)"]),
])
def test_lenet_names_the_first_layer_that_differs(knobs, words):
    message = failure(cb.check.lenet, sequential_lenet(**knobs))
    for word in words:
        assert word in message


def test_lenet_functional_pooling_hard_coded_batch_and_non_models():
    from torch import nn

    class FunctionalPooling(nn.Module):
        def __init__(self, reshape=None):
            super().__init__()
            self.net, self.reshape = sequential_lenet(), reshape

        def forward(self, x):
            if self.reshape:
                return self.net[7:](self.net[:6](x).reshape(1, -1))
            x = nn.functional.avg_pool2d(torch.sigmoid(self.net[0](x)), 2)
            return self.net[3:](x)

    functional = failure(cb.check.lenet, FunctionalPooling())
    assert "layer 2 is a convolution layer (Conv2d), LeNet's a pooling" in functional
    assert "not F.* calls in forward" in functional
    hard_coded = failure(cb.check.lenet, FunctionalPooling(reshape=True))
    assert "a batch of 2 images gives an error" in hard_coded
    assert "x.reshape(x.shape[0], -1)" in hard_coded
    assert "lenet needs a model" in failure(cb.check.lenet, sequential_lenet)


def test_unrecognised_wrong_values_name_the_part_and_the_largest_difference():
    def shifted_running_var(*args, **options):
        Y, mean, var = ops.batch_norm(*args, **options)
        return Y, mean, var + 0.5

    message = failure(cb.check.batch_norm, shifted_running_var)
    assert "new_moving_var is wrong. The shape is right but not every value" in message

    def one_cell_off(X, K):
        Y = ops.corr2d(X, K)
        Y[-1, -1] += 0.5
        return Y

    message = failure(cb.check.corr2d, one_cell_off)
    assert "largest difference at index (0, 3): expected -9, obtained -8.5" in message


def test_feedback_returns_the_checkers_message_for_a_wrong_op():
    def corr2d_flipped(X, K):
        return cb.ops.corr2d(X, K.flip(0, 1))

    message = cb.check.feedback(cb.check.corr2d, corr2d_flipped)
    assert "corr2d" in message and len(message.splitlines()) > 2


def test_feedback_on_a_correct_op_is_an_error_not_an_empty_message():
    with pytest.raises(AssertionError, match="accepted 'corr2d'"):
        cb.check.feedback(cb.check.corr2d, cb.ops.corr2d)
