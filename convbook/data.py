"""The course's datasets as torchvision objects, as tensors, and as fast mini-batch loaders.

Files come from :func:`convbook.sources.locate` (offline copies first, then downloads).
Two ways to feed a model are offered side by side (``speed.md`` measures the difference):

* :func:`get_dataset` and ``fashion_mnist_loaders(fast=False)``: the standard
  ``torchvision`` dataset + ``DataLoader`` path every tutorial uses, which converts one
  PIL image at a time;
* :func:`load_tensors` and :class:`TensorLoader`: the whole dataset as one float tensor,
  sliced into batches, which is several times faster for datasets that fit in memory.

Both give the same images and labels in the same canonical order.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from . import sources
from ._torch import check_labels
from .reproduce import generator

__all__ = [
    "FASHION_MNIST_CLASSES",
    "CIFAR10_CLASSES",
    "MEAN_STD",
    "get_dataset",
    "load_tensors",
    "normalize",
    "TensorLoader",
    "shift",
    "random_crop_flip",
    "fashion_mnist_loaders",
    "train_val_split",
    "cifar10_split",
]

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
#: Per-channel pixel mean and standard deviation of each training set, pixels in [0, 1].
MEAN_STD: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "mnist": ((0.1307,), (0.3081,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}

_CLASSES = {
    "fashion_mnist": datasets.FashionMNIST,
    "mnist": datasets.MNIST,
    "cifar10": datasets.CIFAR10,
}

#: Seed of the fixed 48,000/6,000/6,000 CIFAR-10 split used throughout chapter 10.
CIFAR10_SPLIT_SEED = 0


def _check_name(name: str) -> None:
    if name not in _CLASSES:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(_CLASSES)}")


def get_dataset(
    name: str,
    train: bool = True,
    *,
    root: str | Path | None = None,
    download: bool | None = None,
    transform: Callable | None = None,
) -> torch.utils.data.Dataset:
    """The torchvision dataset object for ``name`` (the path readers know from tutorials)."""
    _check_name(name)
    folder = sources.locate(name, root=root, download=download)
    return _CLASSES[name](folder, train=train, download=False, transform=transform)


def load_tensors(
    name: str,
    train: bool = True,
    *,
    root: str | Path | None = None,
    download: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """All images as float32 ``(N, C, H, W)`` in ``[0, 1]`` and labels as int64 ``(N,)``.

    Reads the dataset's ``.data`` and ``.targets`` arrays directly, with no per-image
    transform, so a whole split loads in well under a second; one ``DataLoader`` pass
    over the same data as PIL images costs several seconds of CPU.
    """
    pixels, labels = _raw_tensors(name, train, root=root, download=download)
    return _to_float(pixels), labels


def _raw_tensors(
    name: str, train: bool, *, root: str | Path | None, download: bool | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 ``(N, C, H, W)`` pixels and int64 labels, straight from the dataset arrays."""
    dataset = get_dataset(name, train, root=root, download=download)
    pixels = torch.as_tensor(dataset.data)
    if pixels.ndim == 3:  # (N, H, W) grayscale
        pixels = pixels.unsqueeze(1)
    else:  # (N, H, W, C) colour, as CIFAR-10 stores it
        pixels = pixels.permute(0, 3, 1, 2)
    return pixels, torch.as_tensor(dataset.targets, dtype=torch.int64)


def _to_float(pixels: torch.Tensor) -> torch.Tensor:
    return pixels.to(torch.float32).div_(255).contiguous()


def normalize(images: torch.Tensor, name: str) -> torch.Tensor:
    """``(images - mean) / std`` per channel with the training-set statistics of ``name``."""
    if name not in MEAN_STD:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(MEAN_STD)}")
    if not images.is_floating_point():
        raise TypeError(f"normalize expects float images in [0, 1], got dtype {images.dtype}")
    mean, std = MEAN_STD[name]
    if images.ndim < 3 or images.shape[-3] != len(mean):
        raise ValueError(
            f"normalize({name!r}) expects (..., {len(mean)}, H, W) images, "
            f"got shape {tuple(images.shape)}"
        )
    shape = (len(mean), 1, 1)
    mean_t = torch.tensor(mean, dtype=images.dtype, device=images.device).view(shape)
    std_t = torch.tensor(std, dtype=images.dtype, device=images.device).view(shape)
    return (images - mean_t) / std_t


class TensorLoader:
    """Mini-batches sliced from tensors that live on one device, reshuffled every epoch.

    A drop-in for ``DataLoader`` when the whole dataset fits in memory: no per-sample
    Python, no worker processes and, on a GPU, no host-device copy or sync per batch.
    The shuffling generator is seeded once from ``seed`` (plus ``$CONVBOOK_SEED_SHIFT``,
    :func:`convbook.reproduce.seed`), so each epoch gets a new
    permutation and a re-run gets the same sequence. ``transform`` (e.g. augmentation
    or :func:`normalize`) is applied to every image batch on the device.
    ``device=None`` keeps the tensors where they are. A shuffled batch is gathered from
    the stored tensors when it is needed, so it is still in the CPU's cache when the model
    reads it (cheaper than one permuted copy of the whole dataset per epoch, and no second
    copy on a GPU); unshuffled batches are views of the stored tensors, so do not modify
    batches in place.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        device: torch.device | str | None = None,
        drop_last: bool = False,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        if not isinstance(images, torch.Tensor) or not isinstance(labels, torch.Tensor):
            raise TypeError(
                f"images and labels must be tensors, got {type(images).__name__} "
                f"and {type(labels).__name__}"
            )
        if images.ndim == 0 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise ValueError(
                f"need images (N, ...) and labels (N,), got shapes {tuple(images.shape)} "
                f"and {tuple(labels.shape)}"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        check_labels(labels)  # the number of classes is the model's: fit checks it
        self.images = images.to(device) if device is not None else images
        self.labels = labels.to(self.images.device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.transform = transform
        self.generator = generator(seed)

    @property
    def dataset_size(self) -> int:
        """Number of examples (``len(loader)`` is the number of batches)."""
        return self.labels.shape[0]

    @property
    def device(self) -> torch.device:
        return self.images.device

    def __len__(self) -> int:
        if self.drop_last:
            return self.dataset_size // self.batch_size
        return math.ceil(self.dataset_size / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = None
        if self.shuffle:
            # Drawn on the CPU, so every device sees the same order for the same seed.
            order = torch.randperm(self.dataset_size, generator=self.generator)
            order = order.to(self.device)
        for i in range(len(self)):
            start, stop = i * self.batch_size, (i + 1) * self.batch_size
            if order is None:
                X, y = self.images[start:stop], self.labels[start:stop]
            else:
                rows = order[start:stop]
                X, y = self.images.index_select(0, rows), self.labels.index_select(0, rows)
            if self.transform is not None:
                X = self.transform(X)
            yield X, y


def shift(images: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``images`` moved ``dy`` pixels down and ``dx`` right (negative: up, left), zero-filled.

    Pixels pushed past an edge are lost and the freed rows and columns are zeros, so the
    content moves and the frame stays: chapters 1, 2, 5 and 9 shift images this way to ask
    whether a network's answer (or a feature map) moves with its input.
    """
    h, w = images.shape[-2:]
    if abs(dy) >= h or abs(dx) >= w:
        raise ValueError(f"a shift of ({dy}, {dx}) moves a {h}x{w} image out of its frame")
    shifted = torch.zeros_like(images)
    shifted[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        images[..., max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return shifted


def random_crop_flip(
    images: torch.Tensor, padding: int = 4, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Data augmentation for a whole batch at once, on the batch's own device.

    Each image of ``images`` (N, C, H, W) is shifted by up to ``padding`` pixels in each
    direction (a random crop of the zero-padded image) and each is, with probability 1/2,
    mirrored left-right. ``padding=0`` only mirrors. Random numbers come from ``generator``
    (a CPU ``torch.Generator``), or from torch's global one when it is ``None``. Pass it as a
    :class:`TensorLoader` ``transform``. Chapter 10 uses it on CIFAR-10; chapter 8 checks
    whether flips suit Fashion-MNIST (its shoes face one way).
    """
    if images.dim() != 4:
        raise ValueError(f"images must be 4-D (N, C, H, W), got shape {tuple(images.shape)}")
    if not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be a non-negative int, got {padding!r}")
    n, _, h, w = images.shape
    if padding:
        shift = (n, 1, 1)
        top = torch.randint(0, 2 * padding + 1, shift, generator=generator).to(images.device)
        left = torch.randint(0, 2 * padding + 1, shift, generator=generator).to(images.device)
        rows = top + torch.arange(h, device=images.device).view(1, h, 1)
        cols = left + torch.arange(w, device=images.device).view(1, 1, w)
        padded = torch.nn.functional.pad(images, (padding,) * 4)
        batch = torch.arange(n, device=images.device).view(n, 1, 1)
        images = padded[batch, :, rows, cols].permute(0, 3, 1, 2)
    flip = (torch.rand(n, generator=generator) < 0.5).to(images.device).view(n, 1, 1, 1)
    return torch.where(flip, images.flip(-1), images).contiguous()


def fashion_mnist_loaders(
    batch_size: int = 256,
    *,
    fast: bool = True,
    device: torch.device | str | None = None,
    root: str | Path | None = None,
    download: bool | None = None,
    num_workers: int = 0,
) -> tuple[TensorLoader | DataLoader, TensorLoader | DataLoader]:
    """Fashion-MNIST (train, test) loaders; the training one shuffles.

    ``fast=True`` gives :class:`TensorLoader` s (seed 0) holding the data on ``device``;
    ``fast=False`` gives d2l-style ``DataLoader`` s over ``ToTensor()`` datasets
    (``num_workers`` applies only there). Both yield the same images and labels.
    """
    if fast:
        train = load_tensors("fashion_mnist", True, root=root, download=download)
        test = load_tensors("fashion_mnist", False, root=root, download=download)
        return (
            TensorLoader(*train, batch_size, shuffle=True, seed=0, device=device),
            TensorLoader(*test, batch_size, shuffle=False, device=device),
        )
    where = {"root": root, "download": download, "transform": transforms.ToTensor()}
    train_set = get_dataset("fashion_mnist", True, **where)
    test_set = get_dataset("fashion_mnist", False, **where)
    return (
        DataLoader(train_set, batch_size, shuffle=True, num_workers=num_workers),
        DataLoader(test_set, batch_size, shuffle=False, num_workers=num_workers),
    )


def train_val_split(
    images: torch.Tensor,
    labels: torch.Tensor,
    val_fraction: float = 0.1,
    *,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hold out a random ``val_fraction`` of the examples: ``(Xtr, ytr, Xval, yval)``."""
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"images and labels differ in length: {tuple(images.shape)} vs {tuple(labels.shape)}"
        )
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be strictly between 0 and 1, got {val_fraction}")
    n = labels.shape[0]
    n_val = round(n * val_fraction)
    if not 0 < n_val < n:
        raise ValueError(f"val_fraction={val_fraction} of {n} examples leaves an empty split")
    order = torch.randperm(n, generator=generator(seed))
    val, train = order[:n_val].to(images.device), order[n_val:].to(images.device)
    return images[train], labels[train], images[val], labels[val]


def cifar10_split(
    *,
    seed: int = CIFAR10_SPLIT_SEED,
    root: str | Path | None = None,
    download: bool | None = None,
) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    """CIFAR-10's 60,000 images merged and split 80/10/10 as in the tutorial of chapter 10.

    Returns ``((Xtr, ytr), (Xval, yval), (Xte, yte))`` with 48,000/6,000/6,000 examples,
    picked by a ``torch.Generator`` permutation seeded with ``seed`` (default 0, plus
    ``$CONVBOOK_SEED_SHIFT``), so the split is the same on every machine.
    """
    train = _raw_tensors("cifar10", True, root=root, download=download)
    test = _raw_tensors("cifar10", False, root=root, download=download)
    pixels = torch.cat([train[0], test[0]])  # uint8 until split: a quarter of the memory
    labels = torch.cat([train[1], test[1]])
    order = torch.randperm(labels.shape[0], generator=generator(seed))
    parts = order[:48_000], order[48_000:54_000], order[54_000:]
    return tuple((_to_float(pixels[idx]), labels[idx]) for idx in parts)
