"""convbook: the helper package of ConvBook, an executable course on CNNs in PyTorch.

Every chapter imports it as ``import convbook as cb``. Each module has one job.

What the chapters call:

- ``ops``: the operations chapters 2–6 build by hand (cross-correlation, pooling, ...).
- ``models``: every network the course trains, ``count_parameters`` and ``layer_table``.
- ``data``: datasets as tensors, ``TensorLoader``, augmentation, splits, ``shift``.
- ``train``: ``fit``, ``evaluate``, ``predict``, checkpoints, ``best_device``.
- ``stats``: confidence intervals of accuracies and their differences, confusion matrices.
- ``plot``: every figure of the book (it re-exports the step-through figures).
- ``explain``: which pixels a classifier's decision depends on (chapter 9).
- ``check``: checkers that give a learner feedback on an exercise (chapters 2–6).
- ``apparel``: chapter 7's competition files and its leaderboard scorer.
- ``reproduce``: seeds, the machine a page was computed on, and ``claim``.
- ``sources``: where dataset files come from (offline copies first, MD5-checked), and
  files written whole or not at all.

Behind them, never called by a chapter: ``opfigures`` (the step-through figures and
animations of chapters 2–5) and ``animation`` (figures to a reproducible GIF), both
published through ``plot``; ``_figure`` (page-sized subplots, tensor checks, captions for
every figure module); ``_torch`` (evaluation mode, a model's device, label checks, layer
shapes); ``_args`` (the argument rules of ``ops`` and its figures).
"""
from . import apparel, check, data, explain, models, ops, plot, reproduce, sources, stats, train
from .reproduce import claim, machine, seed_everything
from .train import best_device

__version__ = "0.1.0"
