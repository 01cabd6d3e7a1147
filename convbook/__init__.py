"""convbook: the helper package of ConvBook, an executable course on CNNs in PyTorch.

Every chapter imports it as ``import convbook as cb``. Each submodule has one job:
``sources`` (where dataset files come from), ``data`` (datasets as tensors and loaders),
``apparel`` (the competition format of chapter 7), ``ops`` (the operations chapters 2–5
build by hand), ``models``, ``train``, ``plot`` and ``reproduce`` (seeds, the machine a
page was computed on, and the checks of what a page claims).
"""
from . import apparel, check, data, models, ops, plot, sources, stats, train
from . import explain, reproduce
from .reproduce import claim, machine, seed_everything
from .train import best_device

__version__ = "0.1.0"
