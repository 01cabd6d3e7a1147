"""convbook: the helper package of ConvBook, an executable course on CNNs in PyTorch.

Every chapter imports it as ``import convbook as cb`` and calls ``ops`` (the operations of
chapters 2–7), ``models``, ``data``, ``train``, ``stats``, ``plot``, ``explain``, ``check``
(exercise feedback), ``apparel`` (chapter 8's competition), ``reproduce`` (seeds, the machine
line, ``claim``) and ``sources`` (where dataset files come from). Modules whose names start
with ``_`` and those that ``plot`` publishes (``opfigures``, ``animation``) support them."""
from . import apparel, check, data, explain, models, ops, plot, reproduce, sources, stats, train
from .reproduce import claim, machine, seed_everything

__version__ = "0.1.0"
