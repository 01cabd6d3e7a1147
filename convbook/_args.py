"""Argument rules shared by :mod:`convbook.ops` (its checks) and :mod:`convbook.opfigures`
(the step-through figures of the same operations): one copy of each rule."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Union

IntOrPair = Union[int, tuple[int, int]]


def is_int(value) -> bool:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def pair(value: IntOrPair, name: str) -> tuple[int, int]:
    """``3`` -> ``(3, 3)``; ``(3, 5)`` stays. Anything else is a TypeError."""
    if is_int(value):
        return value, value
    if isinstance(value, Sequence) and len(value) == 2 and all(map(is_int, value)):
        return int(value[0]), int(value[1])
    raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")


def pool_geometry(pool_size: IntOrPair, padding: IntOrPair,
                  stride: IntOrPair | None) -> tuple[tuple[int, int], ...]:
    """``(pool_size, padding, stride)`` as (height, width) pairs, the stride defaulting to
    the window, padding at most half the window as in ``nn.MaxPool2d`` (chapter 5)."""
    size, pad = pair(pool_size, "pool_size"), pair(padding, "padding")
    step = size if stride is None else pair(stride, "stride")
    if min(size) < 1 or min(step) < 1 or min(pad) < 0:
        raise ValueError(f"need pool_size, stride >= 1 and padding >= 0; got pool_size "
                         f"{size}, stride {step}, padding {pad}")
    if pad[0] > size[0] // 2 or pad[1] > size[1] // 2:
        raise ValueError(f"padding {pad} must be at most half of pool_size {size}")
    return size, pad, step
