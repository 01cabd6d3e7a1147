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

from ._atomic import atomic_write, remove_stale
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


def _resolve_device(device: torch.device | str | None) -> torch.device:
    return best_device() if device is None else torch.device(device)


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


def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU does bfloat16 arithmetic in hardware (AVX-512 BF16 or AMX on x86).

    Without it (e.g. AVX2-only AMD EPYC or older Intel), PyTorch emulates bfloat16 and
    autocast makes training slower rather than faster (speed.md). Non-x86 CPUs are assumed
    to have it, as PyTorch's autocast does.
    """
    if platform.machine().lower() not in {"x86_64", "amd64", "i386", "i686"}:
        return True
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def amp_dtype(device: torch.device, amp: bool) -> torch.dtype | None:
    """The autocast dtype ``fit(amp=...)`` uses on ``device``, or None for float32.

    fp16 on CUDA (with a GradScaler); bf16 on a CPU that computes it natively; float32,
    with a warning, on a CPU that would only emulate it.
    """
    if not amp:
        return None
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and not cpu_has_native_bfloat16():
        warnings.warn(
            "amp=True: this CPU has no native bfloat16 (AVX-512 BF16/AMX), where autocast "
            "is several times slower than float32; training in float32 instead",
            stacklevel=3,
        )
        return None
    return torch.bfloat16


def autocast(
    device: torch.device, dtype: torch.dtype | None,
) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` (from :func:`amp_dtype`), or nothing for float32."""
    if dtype is None:
        return contextlib.nullcontext()
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


def _num_classes(logits: Tensor) -> int | None:
    """The number of classes of ``(N, K)`` logits (``None`` for other shapes)."""
    return logits.shape[1] if logits.ndim == 2 else None


def _train_epoch(
    model: nn.Module,
    loader: Iterable,
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    scheduler: Any,
    scaler: torch.amp.GradScaler | None,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    epoch: int,
    log_every: int | None,
    verbose: bool,
) -> tuple[float, float, int]:
    """One pass over ``loader``; returns mean loss, accuracy and the number of examples."""
    model.train()
    losses: list[Tensor] = []
    sizes: list[int] = []
    correct = torch.zeros((), dtype=torch.int64, device=device)
    for i, (X, labels) in enumerate(loader):
        X, y = _to_device(X, labels, device)
        with autocast(device, amp_dtype):
            logits = model(X)
            # before the loss: a bad label fails here, naming its batch
            check_labels(labels, _num_classes(logits),
                         name=f"epoch {epoch}, train_data batch {i + 1}: labels")
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
    model: nn.Module, data: Iterable, loss_fn: nn.Module, device: torch.device,
    amp_dtype: torch.dtype | None,
    name: str = "data",
) -> tuple[dict[str, float], int | None]:
    """Mean loss and accuracy over ``data``; sums stay on the device until the end.

    Also returns the 1-based index of the first batch whose loss is not finite (``None``
    when the mean loss is finite), so a NaN validation loss can say where it came from.
    """
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    losses = []
    n = 0
    with eval_mode(model), torch.no_grad(), autocast(device, amp_dtype):
        for i, (X, labels) in enumerate(data):
            X, y = _to_device(X, labels, device)
            logits = model(X)
            check_labels(labels, _num_classes(logits), name=f"{name} batch {i + 1}: labels")
            losses.append(loss_fn(logits, y).float())
            loss_sum += losses[-1] * len(y)
            correct += (logits.argmax(dim=1) == y).sum()
            n += len(y)
    if n == 0:
        raise ValueError(f"the evaluation data ({name}) yielded no examples")
    result = {"loss": loss_sum.item() / n, "accuracy": correct.item() / n}
    if math.isfinite(result["loss"]):
        return result, None
    return result, int((~torch.isfinite(torch.stack(losses))).nonzero()[0]) + 1


def _epoch_line(
    row: dict[str, float], epochs: int, validated: bool, bad_val_batch: int | None
) -> str:
    """The fixed progress format; times only as ``<number> s`` and ``<number> ex/s``.

    tests/nbval_sanitize.cfg masks exactly those two patterns when chapters are re-run.
    A non-finite validation loss is printed (``nan``/``inf``) with the first batch where
    it appeared, not dropped as if there were no validation data.
    """
    width = len(str(epochs))
    line = (
        f"epoch {row['epoch']:{width}d}/{epochs}  "
        f"train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}"
    )
    if validated:
        line += f" | val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f}"
    if bad_val_batch is not None:
        line += f" [non-finite from val_data batch {bad_val_batch} (counting from 1)]"
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
    mixed precision: fp16 with a ``GradScaler`` on CUDA, bf16 on a CPU with native bfloat16
    (:func:`cpu_has_native_bfloat16`); elsewhere it warns and stays in float32, which is
    faster there. ``device=None`` picks :func:`best_device`; the model is moved there.

    Returns one row per epoch: ``epoch, train_loss, train_acc, val_loss, val_acc, seconds,
    examples_per_s``. ``seconds`` is the epoch's wall time including validation;
    ``examples_per_s`` counts training examples over the training pass alone. ``val_*`` are
    NaN without ``val_data``. Prints one line per epoch (and, with ``log_every=N``, the mean
    loss of every N batches) unless ``verbose=False``. A non-finite training loss raises
    ``FloatingPointError`` naming the epoch and batch; a non-finite validation loss is
    printed with the first validation batch where it appeared. Labels must be int64 class
    indices (checked per batch). Interrupted, the finished epochs stay reachable through
    :func:`last_history`. Chapter 6 and speed.md explain it.
    """
    check_model(model)
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if log_every is not None and (not isinstance(log_every, int) or log_every < 1):
        raise ValueError(f"log_every must be a positive int or None, got {log_every!r}")
    device = _resolve_device(device)
    model.to(device)
    optimizer = _make_optimizer(model, optimizer, lr)
    loss_fn = nn.CrossEntropyLoss() if loss_fn is None else loss_fn
    dtype = amp_dtype(device, amp)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    rows: list[dict[str, float]] = []
    global _last_rows
    _last_rows = rows
    try:
        for epoch in range(1, epochs + 1):
            rows.append(_fit_epoch(
                model, train_data, val_data, optimizer, loss_fn, scheduler, scaler, device,
                dtype, epoch, epochs, log_every, verbose,
            ))
    except KeyboardInterrupt as interrupt:
        interrupt.history = last_history()
        if verbose:
            print(f"interrupted in epoch {len(rows) + 1}: the {len(rows)} finished epochs "
                  "are in cb.train.last_history()", flush=True)
        raise
    return last_history()


def _fit_epoch(
    model: nn.Module, train_data: Iterable, val_data: Iterable | None,
    optimizer: torch.optim.Optimizer, loss_fn: nn.Module, scheduler: Any,
    scaler: torch.amp.GradScaler | None, device: torch.device,
    amp_dtype: torch.dtype | None, epoch: int,
    epochs: int, log_every: int | None, verbose: bool,
) -> dict[str, float]:
    """One epoch of :func:`fit`: train, validate, print the epoch line; return its row."""
    start = time.perf_counter()
    train_loss, train_acc, n = _train_epoch(
        model, train_data, optimizer, loss_fn, scheduler, scaler, device, amp_dtype, epoch,
        log_every, verbose,
    )
    train_seconds = time.perf_counter() - start
    val, bad_val_batch = {"loss": math.nan, "accuracy": math.nan}, None
    if val_data is not None:
        val, bad_val_batch = _evaluate(model, val_data, loss_fn, device, amp_dtype, "val_data")
    row = {
        "epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
        "val_loss": val["loss"], "val_acc": val["accuracy"],
        "seconds": time.perf_counter() - start, "examples_per_s": n / train_seconds,
    }
    if verbose:
        print(_epoch_line(row, epochs, val_data is not None, bad_val_batch), flush=True)
    return row


_last_rows: list[dict[str, float]] = []


def last_history() -> pd.DataFrame:
    """The history of the finished epochs of the latest :func:`fit` call, even an interrupted one.

    After a ``KeyboardInterrupt`` (or any error) in epoch 5, ``cb.train.last_history()``
    holds epochs 1-4; the interrupt also carries them as ``.history``.
    """
    return pd.DataFrame(_last_rows, columns=list(HISTORY_COLUMNS))


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
    device = model_device(model) if device is None else torch.device(device)
    model.to(device)
    loss_fn = nn.CrossEntropyLoss() if loss_fn is None else loss_fn
    return _evaluate(model, data, loss_fn, device, amp_dtype=None)[0]


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


_METADATA_TYPES = (type(None), bool, int, float, str, Tensor)


def _plain_metadata(value: Any, name: str) -> Any:
    """``value`` as data that ``torch.load(weights_only=True)`` reads back, or a TypeError.

    NumPy scalars (``history["val_acc"].max()`` is a ``numpy.float64``, a subclass of
    ``float`` that pickles as a NumPy object) become the equal Python value.
    """
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return type(value)(_plain_metadata(v, f"{name}[{i}]") for i, v in enumerate(value))
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"checkpoint metadata {name} has a non-str key {key!r}")
        return {key: _plain_metadata(v, f"{name}[{key!r}]") for key, v in value.items()}
    if isinstance(value, np.ndarray):
        raise TypeError(
            f"checkpoint metadata {name} is a numpy.ndarray; pass value.tolist() or "
            "torch.from_numpy(value)"
        )
    if not isinstance(value, _METADATA_TYPES):
        raise TypeError(
            f"checkpoint metadata {name} is a {type(value).__name__}; use None, bool, int, "
            "float, str, tensors, or lists/dicts of them (e.g. history.to_dict('list'))"
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
