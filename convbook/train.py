"""convbook.train — the training loop every chapter uses, plus evaluation and checkpoints.

Chapter 6 (LeNet) introduces :func:`fit` as a faster cousin of d2l's ``train_ch6``; the
book page "How fast is the training loop?" (``speed.md``) explains why it is faster. The
main idea: the loop never waits for the accelerator inside an epoch. Losses and correct
counts stay on the device as tensors and are read back once per epoch (or every
``log_every`` batches), instead of calling ``float(loss)`` after every batch.
"""
from __future__ import annotations

import contextlib
import glob
import math
import platform
import pickle
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from .sources import atomic_write, remove_stale
from ._torch import check_labels, check_model, eval_mode, model_device

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


def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX-512 BF16 or AMX on x86; other
    CPUs are assumed to, as autocast does). Without it autocast is slower (speed.md)."""
    if platform.machine().lower() not in {"x86_64", "amd64", "i386", "i686"}:
        return True
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def amp_dtype(device: torch.device, amp: bool) -> torch.dtype | None:
    """The autocast dtype of ``fit(amp=amp)`` on ``device``, or None for float32: fp16 on
    CUDA, bf16 elsewhere, float32 with a warning on a CPU that would emulate bf16."""
    if not amp:
        return None
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and not cpu_has_native_bfloat16():
        warnings.warn("amp=True: this CPU has no native bfloat16 (AVX-512 BF16/AMX), where "
                      "autocast is several times slower; training in float32 instead",
                      stacklevel=3)
        return None
    return torch.bfloat16


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` (from :func:`amp_dtype`); None runs in float32."""
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def _make_optimizer(
    model: nn.Module, optimizer: torch.optim.Optimizer | None, lr: float | None
) -> torch.optim.Optimizer:
    """The optimizer given, or plain SGD with learning rate ``lr``."""
    if (optimizer is None) == (lr is None):
        raise ValueError("pass an optimizer, or lr to train with plain SGD (not both)")
    if optimizer is None:
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr}")
        return torch.optim.SGD(model.parameters(), lr=lr)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError("optimizer must be a torch.optim.Optimizer, got "
                        f"{type(optimizer).__name__}")
    return optimizer


def _checked_losses(losses: list[Tensor], epoch: int, first_batch: int) -> Tensor:
    """The losses on the host (one sync), or a FloatingPointError naming the first
    non-finite one; ``first_batch`` is the 1-based batch number of ``losses[0]``."""
    values = torch.stack(losses).float().cpu()
    bad = (~torch.isfinite(values)).nonzero()
    if len(bad):
        index = int(bad[0])
        raise FloatingPointError(
            f"training loss is {values[index].item()} at epoch {epoch}, batch "
            f"{first_batch + index} (counting from 1); lower the learning rate or check the data"
        )
    return values


def _labels(labels: Tensor, logits: Tensor, name: str) -> None:
    """Class indices that ``logits`` can score (int64, in range), or a clear error."""
    check_labels(labels, logits.shape[1] if logits.ndim == 2 else None, name=f"{name}: labels")


_last_rows: list[dict[str, float]] = []  # the latest fit's finished epochs


def last_history() -> pd.DataFrame:
    """The finished epochs of the latest :func:`fit`, also after an interrupt or an error."""
    return pd.DataFrame(_last_rows, columns=list(HISTORY_COLUMNS))


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
    """Train ``model`` for ``epochs`` passes over ``(X, y)`` batches; return the history.

    Pass an ``optimizer``, or ``lr`` for plain SGD; ``scheduler`` steps after every batch;
    ``amp`` as in :func:`amp_dtype`; ``device=None`` is :func:`best_device`. One row per
    epoch (``HISTORY_COLUMNS``; ``val_*`` NaN without ``val_data``). A non-finite training
    loss raises ``FloatingPointError`` naming the epoch and batch. Chapter 6, speed.md.
    """
    check_model(model)
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if log_every is not None and (not isinstance(log_every, int) or log_every < 1):
        raise ValueError(f"log_every must be a positive int or None, got {log_every!r}")
    device = best_device() if device is None else torch.device(device)
    model.to(device)
    optimizer = _make_optimizer(model, optimizer, lr)
    loss_fn = nn.CrossEntropyLoss() if loss_fn is None else loss_fn
    dtype = amp_dtype(device, amp)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)

    def train_epoch(epoch: int) -> tuple[float, float, int]:
        """One pass: mean loss and accuracy, summed on the device, and the example count."""
        model.train()
        losses, sizes = [], []
        correct = torch.zeros((), dtype=torch.int64, device=device)
        for i, (X, labels) in enumerate(train_data):
            X, y = X.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            with autocast(device, dtype):
                logits = model(X)
                _labels(labels, logits, f"epoch {epoch}, train_data batch {i + 1}")
                loss = loss_fn(logits, y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()  # without fp16, scaler is a no-op: plain steps
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
        weights = torch.tensor(sizes, dtype=torch.float64)
        loss_sum = (_checked_losses(losses, epoch, 1).double() * weights).sum()
        return float(loss_sum / sum(sizes)), correct.item() / sum(sizes), sum(sizes)

    rows = _last_rows  # filled in place, so that last_history() sees every finished epoch
    rows.clear()
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        train_loss, train_acc, n = train_epoch(epoch)
        train_seconds = time.perf_counter() - start
        val = {"loss": math.nan, "accuracy": math.nan}
        if val_data is not None:
            with autocast(device, dtype):
                val = _evaluate(model, val_data, loss_fn, "val_data")
        rows.append({
            "epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
            "val_loss": val["loss"], "val_acc": val["accuracy"],
            "seconds": time.perf_counter() - start, "examples_per_s": n / train_seconds,
        })
        if verbose:  # times only as "<number> s" and "<number> ex/s": nbval masks those
            line = (f"epoch {epoch:{len(str(epochs))}d}/{epochs}  "
                    f"train loss {train_loss:.4f} acc {train_acc:.4f}")
            if val_data is not None:
                line += f" | val loss {val['loss']:.4f} acc {val['accuracy']:.4f}"
            print(f"{line} | {rows[-1]['seconds']:.1f} s  {n / train_seconds:,.0f} ex/s",
                  flush=True)
    return last_history()


def _evaluate(model: nn.Module, data: Iterable, loss_fn: nn.Module, name: str) -> dict[str, float]:
    """Mean loss and accuracy over ``data`` where the model is; sums stay on the device."""
    device = model_device(model)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    n = 0
    with eval_mode(model), torch.no_grad():
        for i, (X, labels) in enumerate(data):
            X, y = X.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            logits = model(X)
            _labels(labels, logits, f"{name} batch {i + 1}")
            loss_sum += loss_fn(logits, y).float() * len(y)
            correct += (logits.argmax(dim=1) == y).sum()
            n += len(y)
    if n == 0:
        raise ValueError(f"the evaluation data ({name}) yielded no examples")
    return {"loss": loss_sum.item() / n, "accuracy": correct.item() / n}


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
    check_model(model)
    if device is not None:
        model.to(torch.device(device))
    return _evaluate(model, data, nn.CrossEntropyLoss() if loss_fn is None else loss_fn, "data")


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
    check_model(model)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    device = model_device(model) if device is None else torch.device(device)
    model.to(device)
    with eval_mode(model), torch.no_grad():
        chunks = [model(X.to(device, non_blocking=True)).argmax(dim=1)
                  for X in _image_batches(data_or_images, batch_size)]
    if not chunks:
        return torch.empty(0, dtype=torch.int64)
    return torch.cat(chunks).cpu()


def _plain_metadata(value: Any, name: str) -> Any:
    """``value`` as data that ``torch.load(weights_only=True)`` reads back, or a TypeError.

    NumPy scalars (``history["val_acc"].max()`` is a ``numpy.float64``) become Python values.
    """
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return type(value)(_plain_metadata(v, f"{name}[{i}]") for i, v in enumerate(value))
    if isinstance(value, dict):
        return {key: _plain_metadata(v, f"{name}[{key!r}]") for key, v in value.items()}
    if not isinstance(value, (type(None), bool, int, float, str, Tensor)):
        raise TypeError(
            f"checkpoint metadata {name} is a {type(value).__name__}; use None, bool, int, float, "
            "str, tensors, or lists/dicts of them (an array: .tolist())"
        )
    return value


def save_checkpoint(model: nn.Module, path: str | Path, **metadata: Any) -> Path:
    """Save the model's weights, class name and ``metadata`` to ``path``, atomically.

    The file is written to a temporary name in the same folder and renamed with
    ``os.replace``, so an interrupted save never leaves a half-written checkpoint; the
    temporaries of saves that were killed are removed on the next save to ``path``.
    NumPy scalars in ``metadata`` are stored as Python values. Returns the path.
    """
    check_model(model)
    metadata = {key: _plain_metadata(value, key) for key, value in metadata.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path.parent, f".{glob.escape(path.name)}.*.tmp")
    payload = {
        "model_class": type(model).__name__,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": metadata,
    }
    return atomic_write(path, lambda f: torch.save(payload, f), suffix=".tmp")


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
    check_model(model)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"{path} is not a readable convbook checkpoint (empty, truncated, or not written "
            f"by save_checkpoint): {first_line}"
        ) from err
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
