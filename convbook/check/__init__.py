"""convbook.check — instant feedback on the operations a learner writes (chapters 2–6).

Call a checker on your own function, e.g. ``cb.check.corr2d(my_corr2d)``. It runs the
chapter's worked example first, then random and edge cases (non-square inputs and kernels,
1×1 kernels, a kernel as large as the input, several channels) against the answer that
``torch.nn.functional`` gives. On success it prints one line; on failure it raises
:class:`CheckFailed` (an ``AssertionError``) showing the smallest failing case, the expected
and the obtained result, and a hint when the mistake is a common one. Each call has a time
limit, and the check stops at the first failure. ``feedback(checker, fn)`` returns the
message a checker gives about ``fn`` instead of raising it.

Modules: ``conv`` (chapters 2–4), ``layers`` (pooling and batch norm, chapters 5–6),
``network`` (a whole LeNet, chapter 6) and ``_runner`` (the harness they all use).
"""
from ._runner import CheckFailed, feedback
from .conv import (conv_output_shape, corr2d, corr2d_multi_in, corr2d_multi_in_out,
                   corr2d_multi_in_out_1x1)
from .layers import batch_norm, pool2d
from .network import lenet

__all__ = [
    "CheckFailed",
    "batch_norm",
    "conv_output_shape",
    "corr2d",
    "corr2d_multi_in",
    "corr2d_multi_in_out",
    "corr2d_multi_in_out_1x1",
    "feedback",
    "lenet",
    "pool2d",
]
