"""Instant feedback on the operations a learner writes (chapters 2–7): a checker such as
``cb.check.corr2d(my_corr2d)`` prints one line, or raises :class:`CheckFailed` with the
smallest failing case and a hint; ``feedback(checker, fn)`` returns that message."""
from ._runner import CheckFailed, feedback
from .conv import (conv_output_shape, corr2d, corr2d_multi_in, corr2d_multi_in_out,
                   corr2d_multi_in_out_1x1)
from .layers import batch_norm, pool2d
from .network import lenet

__all__ = ["CheckFailed", "batch_norm", "conv_output_shape", "corr2d", "corr2d_multi_in",
           "corr2d_multi_in_out", "corr2d_multi_in_out_1x1", "feedback", "lenet", "pool2d"]
