"""convbook.train — the training loop every chapter uses, plus evaluation and checkpoints.

Chapter 6 (LeNet) introduces :func:`fit` as a faster cousin of d2l's ``train_ch6``; the
book page "How fast is the training loop?" (``speed.md``) explains why it is faster. The
main idea: the loop never waits for the accelerator inside an epoch. Losses and correct
counts stay on the device as tensors and are read back once per epoch (or every
``log_every`` batches), instead of calling ``float(loss)`` after every batch.
"""
from __future__ import annotations

import contextlib
import math
import os
import random
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

HISTORY_COLUMNS = (
    "epoch", "train_loss", "train_acc", "val_loss", "val_acc", "seconds", "examples_per_s",
)


def best_device() -> torch.device:
    """The fastest device available: CUDA, then Apple's MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's (CPU and CUDA) generators.

    Returns ``None`` so that a chapter's seeding cell prints nothing.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def _resolve_device(device: torch.device | str | None) -> torch.device:
    return best_device() if device is None else torch.device(device)


def _model_device(model: nn.Module) -> torch.device:
    """Where the model's parameters live (the CPU for a model without any)."""
    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


def _check_model(model: Any) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")


def _make_optimizer(
    model: nn.Module, optimizer: torch.optim.Optimizer | None, lr: float | None
) -> torch.optim.Optimizer:
    """The optimizer to use: the one given, or plain SGD with learning rate ``lr``."""
    if optimizer is not None and lr is not None:
        raise ValueError("pass either optimizer or lr, not both (lr only builds plain SGD)")
    if optimizer is not None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
            )
        return optimizer
    if lr is None:
        raise ValueError("pass an optimizer, or lr to train with plain SGD")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
    return torch.optim.SGD(model.parameters(), lr=lr)


def _autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager:
    """Mixed precision when asked: fp16 on CUDA (with a GradScaler), bf16 elsewhere."""
    if not amp:
        return contextlib.nullcontext()
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _to_device(X: Tensor, y: Tensor, device: torch.device) -> tuple[Tensor, Tensor]:
    """Move a batch; a no-op when a TensorLoader already keeps the data on ``device``."""
    return X.to(device, non_blocking=True), y.to(device, non_blocking=True)


def _checked_losses(losses: list[Tensor], epoch: int, first_batch: int) -> Tensor:
    """Copy per-batch losses to the host (one sync) and fail on the first non-finite one.

    ``first_batch`` is the 1-based index, within the epoch, of ``losses[0]``.
    """
    values = torch.stack(losses).float().cpu()
    bad = (~torch.isfinite(values)).nonzero()
    if len(bad):
        index = int(bad[0])
        raise FloatingPointError(
            f"training loss is {values[index].item()} at epoch {epoch}, batch "
            f"{first_batch + index} (counting from 1); lower the learning rate or check the data"
        )
    return values


def _train_epoch(
    model: nn.Module,
    loader: Iterable,
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    scheduler: Any,
    scaler: torch.amp.GradScaler | None,
    device: torch.device,
    amp: bool,
    epoch: int,
    log_every: int | None,
    verbose: bool,
) -> tuple[float, float, int]:
    """One pass over ``loader``; returns mean loss, accuracy and the number of examples."""
    model.train()
    losses: list[Tensor] = []
    sizes: list[int] = []
    correct = torch.zeros((), dtype=torch.int64, device=device)
    for i, (X, y) in enumerate(loader):
        X, y = _to_device(X, y, device)
        with _autocast(device, amp):
            logits = model(X)
            loss = loss_fn(logits, y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        if scheduler is not None:
            scheduler.step()
        losses.append(loss.detach())
        sizes.append(len(y))
        correct += (logits.argmax(dim=1) == y).sum()
        if log_every and (i + 1) % log_every == 0:
            recent = _checked_losses(losses[-log_every:], epoch, i + 2 - log_every)
            if verbose:
                print(f"  batch {i + 1:4d}  loss {recent.mean().item():.4f}", flush=True)
    if not losses:
        raise ValueError(f"train_data yielded no batches in epoch {epoch}")
    batch_losses = _checked_losses(losses, epoch, 1).double()
    weights = torch.tensor(sizes, dtype=torch.float64)
    n = sum(sizes)
    return float((batch_losses * weights).sum() / n), correct.item() / n, n


def _evaluate(
    model: nn.Module, data: Iterable, loss_fn: nn.Module, device: torch.device, amp: bool
) -> dict[str, float]:
    """Mean loss and accuracy over ``data``; sums stay on the device until the end."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    n = 0
    with torch.no_grad(), _autocast(device, amp):
        for X, y in data:
            X, y = _to_device(X, y, device)
            logits = model(X)
            loss_sum += loss_fn(logits, y).float() * len(y)
            correct += (logits.argmax(dim=1) == y).sum()
            n += len(y)
    model.train(was_training)
    if n == 0:
        raise ValueError("the evaluation data yielded no examples")
    return {"loss": loss_sum.item() / n, "accuracy": correct.item() / n}


def _epoch_line(row: dict[str, float], epochs: int) -> str:
    """The fixed progress format; times only as ``<number> s`` and ``<number> ex/s``.

    tests/nbval_sanitize.cfg masks exactly those two patterns when chapters are re-run.
    """
    width = len(str(epochs))
    line = (
        f"epoch {row['epoch']:{width}d}/{epochs}  "
        f"train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}"
    )
    if not math.isnan(row["val_loss"]):
        line += f" | val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f}"
    return line + f" | {row['seconds']:.1f} s  {row['examples_per_s']:,.0f} ex/s"


def fit(
    model: nn.Module,
    train_data: Iterable,
    val_data: Iterable | None = None,
    *,
    epochs: int,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float | None = None,
    loss_fn: nn.Module | None = None,
    scheduler: Any = None,
    amp: bool = False,
    device: torch.device | str | None = None,
    log_every: int | None = None,
    verbose: bool = True,
) -> pd.DataFrame:
    """Train ``model`` for ``epochs`` passes over ``train_data``; return the history.

    ``train_data`` and ``val_data`` yield ``(X, y)`` batches: a ``convbook.data.TensorLoader``
    or a ``torch.utils.data.DataLoader``. Pass an ``optimizer`` or an ``lr`` for plain SGD.
    ``scheduler`` is stepped after every batch (e.g. ``OneCycleLR``). ``amp=True`` trains in
    mixed precision (bf16 on the CPU, fp16 with a ``GradScaler`` on CUDA). ``device=None``
    picks :func:`best_device`; the model is moved there.

    Returns one row per epoch: ``epoch, train_loss, train_acc, val_loss, val_acc, seconds,
    examples_per_s``. ``seconds`` is the epoch's wall time including validation;
    ``examples_per_s`` counts training examples over the training pass alone. ``val_*`` are
    NaN without ``val_data``. Prints one line per epoch (and, with ``log_every=N``, the mean
    loss of every N batches) unless ``verbose=False``. A non-finite loss raises
    ``FloatingPointError`` naming the epoch and batch. Chapter 6 and speed.md explain it.
    """
    _check_model(model)
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if log_every is not None and (not isinstance(log_every, int) or log_every < 1):
        raise ValueError(f"log_every must be a positive int or None, got {log_every!r}")
    device = _resolve_device(device)
    model.to(device)
    optimizer = _make_optimizer(model, optimizer, lr)
    loss_fn = nn.CrossEntropyLoss() if loss_fn is None else loss_fn
    scaler = torch.amp.GradScaler("cuda") if amp and device.type == "cuda" else None
    rows = []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        train_loss, train_acc, n = _train_epoch(
            model, train_data, optimizer, loss_fn, scheduler, scaler, device, amp, epoch,
            log_every, verbose,
        )
        train_seconds = time.perf_counter() - start
        val = {"loss": math.nan, "accuracy": math.nan}
        if val_data is not None:
            val = _evaluate(model, val_data, loss_fn, device, amp)
        row = {
            "epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
            "val_loss": val["loss"], "val_acc": val["accuracy"],
            "seconds": time.perf_counter() - start, "examples_per_s": n / train_seconds,
        }
        rows.append(row)
        if verbose:
            print(_epoch_line(row, epochs), flush=True)
    return pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))


def evaluate(
    model: nn.Module,
    data: Iterable,
    *,
    loss_fn: nn.Module | None = None,
    device: torch.device | str | None = None,
) -> dict[str, float]:
    """Mean loss and accuracy of ``model`` on ``data`` (batches of ``(X, y)``).

    ``device=None`` evaluates where the model's parameters already are (where :func:`fit`
    left it); another device moves the model there. Returns ``{"loss", "accuracy"}``.
    """
    _check_model(model)
    device = _model_device(model) if device is None else torch.device(device)
    model.to(device)
    loss_fn = nn.CrossEntropyLoss() if loss_fn is None else loss_fn
    return _evaluate(model, data, loss_fn, device, amp=False)


def _image_batches(data_or_images: Tensor | Iterable, batch_size: int) -> Iterable[Tensor]:
    """Image batches from an images tensor (split along dim 0) or from a loader."""
    if isinstance(data_or_images, Tensor):
        if data_or_images.dim() < 2:
            raise ValueError(
                "images must be batched, e.g. (N, C, H, W); "
                f"got shape {tuple(data_or_images.shape)}"
            )
        return data_or_images.split(batch_size)
    if not isinstance(data_or_images, Iterable):
        raise TypeError(
            "expected an images tensor or a loader of (X, y) batches, "
            f"got {type(data_or_images).__name__}"
        )
    return (batch[0] if isinstance(batch, (tuple, list)) else batch for batch in data_or_images)


def predict(
    model: nn.Module,
    data_or_images: Tensor | Iterable,
    *,
    batch_size: int = 1024,
    device: torch.device | str | None = None,
) -> Tensor:
    """Predicted class indices (int64, on the CPU) in the order of the input.

    Accepts an images tensor ``(N, ...)``, run in batches of ``batch_size``, or a loader
    of ``(X, y)`` batches (labels are ignored). ``device`` as in :func:`evaluate`.
    """
    _check_model(model)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    device = _model_device(model) if device is None else torch.device(device)
    model.to(device)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        chunks = [model(X.to(device, non_blocking=True)).argmax(dim=1)
                  for X in _image_batches(data_or_images, batch_size)]
    model.train(was_training)
    if not chunks:
        return torch.empty(0, dtype=torch.int64)
    return torch.cat(chunks).cpu()


_METADATA_TYPES = (type(None), bool, int, float, str, Tensor)


def _check_metadata(value: Any, name: str) -> None:
    """Metadata must survive ``torch.load(weights_only=True)``: plain data and tensors."""
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_metadata(item, f"{name}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"checkpoint metadata {name} has a non-str key {key!r}")
            _check_metadata(item, f"{name}[{key!r}]")
    elif not isinstance(value, _METADATA_TYPES):
        raise TypeError(
            f"checkpoint metadata {name} is a {type(value).__name__}; use None, bool, int, "
            "float, str, tensors, or lists/dicts of them (e.g. history.to_dict('list'))"
        )


def save_checkpoint(model: nn.Module, path: str | Path, **metadata: Any) -> Path:
    """Save the model's weights, class name and ``metadata`` to ``path``, atomically.

    The file is written to a temporary name in the same folder and renamed with
    ``os.replace``, so an interrupted save never leaves a half-written checkpoint.
    Returns the path.
    """
    _check_model(model)
    for key, value in metadata.items():
        _check_metadata(value, key)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "model_class": type(model).__name__,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": metadata,
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _state_dict_mismatch(expected: dict[str, Tensor], found: dict[str, Tensor]) -> list[str]:
    """Human-readable differences between the model's and a checkpoint's state_dict."""
    problems = []
    missing = sorted(expected.keys() - found.keys())
    unexpected = sorted(found.keys() - expected.keys())
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    for key in sorted(expected.keys() & found.keys()):
        if expected[key].shape != found[key].shape:
            problems.append(
                f"{key}: checkpoint has shape {tuple(found[key].shape)}, "
                f"model has {tuple(expected[key].shape)}"
            )
    return problems


def load_checkpoint(model: nn.Module, path: str | Path) -> dict[str, Any]:
    """Load weights saved by :func:`save_checkpoint` into ``model``; return the metadata.

    Loads with ``weights_only=True`` (no arbitrary code from the file). A checkpoint of
    another class or with other parameter names/shapes raises a ``ValueError`` that says
    what differs, before ``model`` is changed.
    """
    _check_model(model)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    keys = {"model_class", "state_dict", "metadata"}
    if not isinstance(payload, dict) or not keys <= payload.keys():
        raise ValueError(f"{path} is not a convbook checkpoint (written by save_checkpoint)")
    if payload["model_class"] != type(model).__name__:
        raise ValueError(
            f"{path} holds a {payload['model_class']}, but the model is a {type(model).__name__}"
        )
    problems = _state_dict_mismatch(model.state_dict(), payload["state_dict"])
    if problems:
        raise ValueError(f"{path} does not fit this {type(model).__name__}: " + "; ".join(problems))
    model.load_state_dict(payload["state_dict"])
    return payload["metadata"]
