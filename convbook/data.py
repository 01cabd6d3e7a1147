"""The course's datasets (files from :func:`convbook.sources.locate`) as torchvision objects,
as tensors, and as mini-batches sliced from one tensor, several times faster than a
``DataLoader`` over PIL images (``speed.md``)."""
from __future__ import annotations

import math
from typing import Callable, Iterator

import torch
from torchvision import datasets

from . import sources
from ._torch import check_labels
from .reproduce import generator

__all__ = ["FASHION_MNIST_CLASSES", "CIFAR10_CLASSES", "MEAN_STD", "get_dataset", "load_tensors",
           "normalize", "TensorLoader", "shift", "random_crop_flip", "train_val_split",
           "cifar10_split"]

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
#: Per-channel pixel mean and standard deviation of each training set, pixels in [0, 1].
MEAN_STD: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "mnist": ((0.1307,), (0.3081,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}

_DATASETS = {"fashion_mnist": datasets.FashionMNIST, "mnist": datasets.MNIST,
             "cifar10": datasets.CIFAR10}


def get_dataset(name: str, train: bool = True, *, download: bool | None = None,
                transform: Callable | None = None) -> torch.utils.data.Dataset:
    """The torchvision dataset object for ``name``, the tutorials' path (chapter 6)."""
    folder = sources.locate(name, download=download)
    return _DATASETS[name](folder, train=train, download=False, transform=transform)


def load_tensors(name: str, train: bool = True, *,
                 download: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """All images as float32 ``(N, C, H, W)`` in ``[0, 1]`` and labels as int64 ``(N,)``,
    read from the dataset's arrays with no per-image transform."""
    pixels, labels = _raw_tensors(name, train, download)
    return _to_float(pixels), labels


def _raw_tensors(name: str, train: bool,
                 download: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 ``(N, C, H, W)`` pixels and int64 labels, straight from the dataset arrays."""
    dataset = get_dataset(name, train, download=download)
    pixels = torch.as_tensor(dataset.data)  # (N, H, W) grayscale, (N, H, W, C) colour
    pixels = pixels.unsqueeze(1) if pixels.ndim == 3 else pixels.permute(0, 3, 1, 2)
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
        raise ValueError(f"normalize({name!r}) expects (..., {len(mean)}, H, W) images, "
                         f"got shape {tuple(images.shape)}")
    mean_t, std_t = (torch.tensor(v, dtype=images.dtype, device=images.device).view(-1, 1, 1)
                     for v in (mean, std))
    return (images - mean_t) / std_t


class TensorLoader:
    """Mini-batches sliced from tensors on one device, reshuffled every epoch from ``seed``
    (a re-run repeats every order), each image batch through ``transform``: a drop-in for
    ``DataLoader`` (chapters 1 and 6-13). Unshuffled batches are views: do not modify them."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, *,
                 shuffle: bool = False, seed: int = 0, device: torch.device | str | None = None,
                 drop_last: bool = False,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"images must be a tensor, got {type(images).__name__}")
        labels = check_labels(labels, count=len(images))  # fit checks the number of classes
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.images = images.to(device) if device is not None else images
        self.labels = labels.to(self.images.device)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.transform = transform
        self.generator = generator(seed)

    @property
    def dataset_size(self) -> int:
        """Number of examples (``len(loader)`` is the number of batches)."""
        return self.labels.shape[0]

    def __len__(self) -> int:
        if self.drop_last:
            return self.dataset_size // self.batch_size
        return math.ceil(self.dataset_size / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = None
        if self.shuffle:  # drawn on the CPU: every device sees the same order for a seed
            order = torch.randperm(self.dataset_size, generator=self.generator)
            order = order.to(self.images.device)
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
    """``images`` moved ``dy`` pixels down and ``dx`` right (negative: up, left), zero-filled
    (chapters 1, 2, 5 and 10 ask whether an answer moves with its input)."""
    h, w = images.shape[-2:]
    if abs(dy) >= h or abs(dx) >= w:
        raise ValueError(f"a shift of ({dy}, {dx}) moves a {h}x{w} image out of its frame")
    shifted = torch.zeros_like(images)
    shifted[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        images[..., max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return shifted


def random_crop_flip(images: torch.Tensor, padding: int = 4,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image of the batch ``(N, C, H, W)`` shifted by up to ``padding`` pixels (a random
    crop of the zero-padded image) and mirrored with probability 1/2 (chapters 9 and 11-13);
    random numbers from ``generator`` (on the CPU), or torch's global one."""
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


def train_val_split(images: torch.Tensor, labels: torch.Tensor, val_fraction: float = 0.1, *,
                    seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Hold out a random ``val_fraction`` of the examples: ``(Xtr, ytr, Xval, yval)``."""
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"images and labels differ in length: {tuple(images.shape)} vs "
                         f"{tuple(labels.shape)}")
    n = labels.shape[0]
    n_val = round(n * val_fraction)
    if not 0 < n_val < n:
        raise ValueError(f"val_fraction={val_fraction} of {n} examples leaves an empty split")
    order = torch.randperm(n, generator=generator(seed))
    val, train = order[:n_val].to(images.device), order[n_val:].to(images.device)
    return images[train], labels[train], images[val], labels[val]


def cifar10_split(*, seed: int = 0) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    """CIFAR-10's 60,000 images merged and split 48,000/6,000/6,000 as in chapter 11's
    tutorial: ``((Xtr, ytr), (Xval, yval), (Xte, yte))``, the same on every machine."""
    train, test = _raw_tensors("cifar10", True), _raw_tensors("cifar10", False)
    pixels = torch.cat([train[0], test[0]])  # uint8 until split: a quarter of the memory
    labels = torch.cat([train[1], test[1]])
    order = torch.randperm(labels.shape[0], generator=generator(seed))
    parts = order[:48_000], order[48_000:54_000], order[54_000:]
    return tuple((_to_float(pixels[idx]), labels[idx]) for idx in parts)
