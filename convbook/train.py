"""convbook.train: ``fit``, ``evaluate``, ``predict``, checkpoints (chapter 6), the one-cycle
recipes (chapters 7-13) and batch norm's re-estimated averages (chapters 8, 9, 11); ``fit``
reads its running sums back from the device once per epoch, not every batch (speed.md)."""
from __future__ import annotations

import contextlib
import copy
import math
import platform
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import OneCycleLR

from .sources import atomic_write
from ._torch import check_labels, check_model, eval_mode, model_device

HISTORY_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "seconds",
                   "examples_per_s")


def best_device() -> torch.device:
    """The fastest device available: CUDA, then Apple's MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
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


def one_cycle_sgd(parameters: Iterable[nn.Parameter], lr: float, total_steps: int, *,
                  nesterov: bool = False) -> tuple[torch.optim.SGD, OneCycleLR]:
    """SGD with momentum and weight decay 5e-4 under a one-cycle schedule peaking at ``lr``
    after 30 % of ``total_steps`` (chapter 7; Nesterov in chapters 11-13). The schedule
    also cycles the momentum, 0.95 to 0.85 and back, replacing the 0.9 set here."""
    optimizer = torch.optim.SGD(parameters, lr=lr, momentum=0.9, nesterov=nesterov,
                                weight_decay=5e-4)
    schedule = OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps)
    return optimizer, schedule


def one_cycle_adamw(parameters: Iterable[nn.Parameter], lr: float,
                    total_steps: int) -> tuple[torch.optim.AdamW, OneCycleLR]:
    """AdamW with weight decay 0.05 under a one-cycle schedule peaking at ``lr`` (chapters 8
    and 9); the schedule cycles Adam's beta1 as it cycles SGD's momentum."""
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=0.05)
    schedule = OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps)
    return optimizer, schedule


def trace_one_cycle(recipe: Callable[..., tuple[torch.optim.Optimizer, OneCycleLR]],
                    lr: float, total_steps: int, **options: Any) -> pd.DataFrame:
    """What ``recipe`` (:func:`one_cycle_sgd` or :func:`one_cycle_adamw`) sets before each of
    ``total_steps`` updates: columns ``lr`` and ``momentum`` (SGD) or ``beta1`` (Adam), one
    row per step. Read off a throwaway optimiser on one dummy weight (chapters 7, 9, 11)."""
    optimizer, schedule = recipe([nn.Parameter(torch.zeros(1))], lr, total_steps, **options)
    group = optimizer.param_groups[0]
    adam = "betas" in group  # Adam's beta1 plays the part of SGD's momentum
    rows = []
    for _ in range(total_steps):
        rows.append((group["lr"], group["betas"][0] if adam else group["momentum"]))
        optimizer.step()
        schedule.step()
    return pd.DataFrame(rows, columns=["lr", "beta1" if adam else "momentum"]).rename_axis("step")


def last_history() -> pd.DataFrame:
    """The finished epochs of the latest :func:`fit`, also after an interrupt or an error."""
    return pd.DataFrame(_last_rows, columns=list(HISTORY_COLUMNS))


def fit(model: nn.Module, train_data: Iterable, val_data: Iterable | None = None, *,
        epochs: int, optimizer: torch.optim.Optimizer | None = None, lr: float | None = None,
        loss_fn: nn.Module | None = None, scheduler: Any = None, amp: bool = False,
        device: torch.device | str | None = None, log_every: int | None = None,
        verbose: bool = True) -> pd.DataFrame:
    """Train ``model`` on ``(X, y)`` batches with an ``optimizer``, or plain SGD at ``lr``
    (``scheduler`` steps every batch; ``device=None``: :func:`best_device`); one row per
    epoch (``HISTORY_COLUMNS``). A non-finite loss is a ``FloatingPointError`` (chapter 6).
    The model goes back to the device it came from, so a chapter's own code can run it on
    CPU tensors after training on a GPU."""
    check_model(model)
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if (optimizer is None) == (lr is None):
        raise ValueError("pass an optimizer, or lr to train with plain SGD (not both)")
    home = model_device(model)
    device = best_device() if device is None else torch.device(device)
    model.to(device)
    if optimizer is None:
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
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

    def run_epoch(epoch: int) -> None:
        """Train one epoch, evaluate, and record (and print) its row of the history."""
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

    rows = _last_rows  # filled in place, so that last_history() sees every finished epoch
    rows.clear()
    try:
        for epoch in range(1, epochs + 1):
            run_epoch(epoch)
    finally:
        model.to(home)
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


def evaluate(model: nn.Module, data: Iterable) -> dict[str, float]:
    """Mean cross-entropy loss and accuracy, ``{"loss", "accuracy"}``, of ``model`` on
    ``(X, y)`` batches, in evaluation mode on the model's device (chapters 6–13)."""
    check_model(model)
    return _evaluate(model, data, nn.CrossEntropyLoss(), "data")


def predict(model: nn.Module, images: Tensor, *, batch_size: int = 1024) -> Tensor:
    """Predicted class indices (int64, on the CPU) of an ``(N, ...)`` images tensor, run in
    batches of ``batch_size`` in evaluation mode on the model's device (chapters 1–12)."""
    check_model(model)
    device = model_device(model)
    with eval_mode(model), torch.no_grad():
        chunks = [model(X.to(device, non_blocking=True)).argmax(dim=1)
                  for X in images.split(batch_size)]
    return torch.cat(chunks).cpu()


def _plain_metadata(value: Any, name: str) -> Any:
    """``value`` with NumPy scalars (``history["val_acc"].max()``) as the Python values that
    ``weights_only`` loading reads back; other types a TypeError."""
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


BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def reestimate_running_statistics(model: nn.Module, images: Tensor, *,
                                  batch_size: int = 2000) -> nn.Module:
    """A copy of ``model`` whose batch norm running averages are recomputed in one pass over
    ``images`` with its final weights, as a plain average (``momentum=None``) instead of an
    exponential one; only the batch norm layers run in training mode, so dropout stays off.
    Chapter 8's test of stale averages, reused in chapters 9 and 11."""
    fresh = copy.deepcopy(model).eval()
    norms = [layer for layer in fresh.modules() if isinstance(layer, BATCH_NORMS)]
    if not norms:
        raise ValueError(f"{type(model).__name__} has no batch norm layer: there are no "
                         f"running averages to re-estimate")
    if len(images) == 0:
        raise ValueError("images is empty: the averages need at least one batch")
    for layer in norms:
        layer.reset_running_stats()
        layer.momentum = None  # a cumulative average over the pass, not exponential
        layer.train()
    device = model_device(fresh)
    with torch.no_grad():
        for batch in images.split(batch_size):
            fresh(batch.to(device))
    return fresh.eval()


def save_checkpoint(model: nn.Module, path: str | Path, **metadata: Any) -> Path:
    """Save the model's weights, class name and ``metadata`` to ``path``, written whole or
    not at all (chapters 9 and 13). Returns the path."""
    check_model(model)
    payload = {
        "model_class": type(model).__name__,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": {key: _plain_metadata(value, key) for key, value in metadata.items()},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda f: torch.save(payload, f), suffix=".tmp")


def load_checkpoint(model: nn.Module, path: str | Path) -> dict[str, Any]:
    """Load weights saved by :func:`save_checkpoint` into ``model`` (``weights_only``: no code
    runs from the file) and return the metadata; another class is refused by name."""
    check_model(model)
    payload = torch.load(path, map_location="cpu", weights_only=True)
    keys = {"model_class", "state_dict", "metadata"}
    if not isinstance(payload, dict) or not keys <= payload.keys():
        raise ValueError(f"{path} is not a convbook checkpoint (written by save_checkpoint)")
    if payload["model_class"] != type(model).__name__:
        raise ValueError(
            f"{path} holds a {payload['model_class']}, but the model is a {type(model).__name__}"
        )
    model.load_state_dict(payload["state_dict"])
    return payload["metadata"]
