"""How much faster is convbook's training loop than d2l's? One run, same machine, same seed.

Trains the classic LeNet (``convbook.models.LeNet`` + ``init_xavier``) on Fashion-MNIST with
d2l's recipe (batch 256, SGD lr 0.9) twice:

(a) the d2l way: torchvision's ``FashionMNIST`` with ``ToTensor()`` in a ``DataLoader``
    (shuffled, 4 worker processes), and a loop that reads the loss and the accuracy back
    into Python after every batch, as ``train_ch6`` does;
(b) convbook's way: the whole dataset as one tensor in a ``TensorLoader`` and
    ``convbook.train.fit`` (device-side accumulation, mixed precision where ``fit`` uses it
    and a channels-last model, unless switched off).

The same initial weights, loss, optimizer and number of updates; the batch order differs:
the ``DataLoader`` shuffles with permutations seeded from torch's global random-number
generator, the ``TensorLoader`` with its own generator (seed 0). Both evaluate on the test
set after every epoch, as ``train_ch6`` does, and both clocks include that. Loading the
files from disk is timed separately.

(c) The bare-step rate, measured in the same run: bare training steps of the same model
    with the same optimizer, precision and memory format on one batch that stays resident
    (no data path, no evaluation, no logging, no accuracy), as many as one epoch has, after
    5 untimed warm-up steps. ``fit``'s throughput is printed as a fraction of it, over its
    training passes alone and over its whole wall time (evaluation included); a fraction
    near 100 % means that the loop adds nothing measurable to the model's own arithmetic.
    The same bare steps are also timed in the other memory format and the other precision,
    to show what those two switches are worth on this machine.

Writes a markdown table to ``benchmarks/results/lenet_speed_<device>.md``, with the
machine, the date, the exact command and how busy the machine was; nothing in it is
written by hand. speed.md includes ``lenet_speed_cpu.md``, which ``make bench`` writes.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import shlex
import sys
import time
import warnings
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import transforms

import convbook as cb

RESULTS = Path(__file__).resolve().parent / "results"
# The Makefile's environment settings that change speed, recorded with the results.
SPEED_ENV = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.9)
    parser.add_argument("--workers", type=int, default=4, help="DataLoader workers of the d2l loop")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="default: convbook.train.best_device()")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads for both loops (default: torch's choice)")
    parser.add_argument("--no-amp", dest="amp", action="store_false",
                        help="fast loop in float32 instead of bf16/fp16 mixed precision")
    parser.add_argument("--no-channels-last", dest="channels_last", action="store_false",
                        help="fast loop with the default NCHW memory format")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the markdown table")
    parser.add_argument("--no-d2l", dest="d2l", action="store_false",
                        help="skip the d2l loop (quick runs; prints, writes no table)")
    return parser.parse_args(argv)


def new_lenet(seed: int) -> nn.Module:
    """The same initial LeNet for both loops."""
    cb.seed_everything(seed)
    model = cb.models.LeNet()
    cb.models.init_xavier(model)
    return model


def d2l_evaluate(net: nn.Module, data_iter, device: torch.device) -> float:
    """d2l's ``evaluate_accuracy_gpu``: the correct count read back after every batch."""
    net.eval()
    correct, total = 0.0, 0
    with torch.no_grad():
        for X, y in data_iter:
            X, y = X.to(device), y.to(device)
            correct += float((net(X).argmax(dim=1) == y).sum())
            total += y.numel()
    return correct / total


def d2l_train(net, train_iter, test_iter, epochs: int, lr: float, device: torch.device) -> float:
    """d2l's ``train_ch6`` loop without the plot: ``float(loss)`` and accuracy every batch."""
    net.to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    loss = nn.CrossEntropyLoss()
    test_acc = float("nan")
    for epoch in range(epochs):
        net.train()
        loss_sum, correct, total = 0.0, 0.0, 0
        for X, y in train_iter:
            optimizer.zero_grad()
            X, y = X.to(device), y.to(device)
            y_hat = net(X)
            batch_loss = loss(y_hat, y)
            batch_loss.backward()
            optimizer.step()
            with torch.no_grad():
                loss_sum += float(batch_loss) * X.shape[0]
                correct += float((y_hat.argmax(dim=1) == y).sum())
                total += X.shape[0]
        test_acc = d2l_evaluate(net, test_iter, device)
        print(f"  d2l   epoch {epoch + 1}: loss {loss_sum / total:.4f}, train acc "
              f"{correct / total:.4f}, test acc {test_acc:.4f}", flush=True)
    return test_acc


def d2l_loaders(batch_size: int, workers: int) -> tuple[DataLoader, DataLoader]:
    """Fashion-MNIST as d2l loads it: ``ToTensor()`` datasets in ``DataLoader`` s."""
    train, test = (cb.data.get_dataset("fashion_mnist", split, transform=transforms.ToTensor())
                   for split in (True, False))
    return (DataLoader(train, batch_size, shuffle=True, num_workers=workers),
            DataLoader(test, batch_size, num_workers=workers))


def tensor_loaders(batch_size: int, device: torch.device) -> tuple:
    """The same data in two ``TensorLoader`` s on ``device``; the training one shuffles."""
    train, test = (cb.data.load_tensors("fashion_mnist", split) for split in (True, False))
    return (cb.data.TensorLoader(*train, batch_size, shuffle=True, seed=0, device=device),
            cb.data.TensorLoader(*test, batch_size, device=device))


def timed(fn, *args, **kwargs):
    """``fn``'s result and its wall-clock seconds."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def run_d2l(args: argparse.Namespace, device: torch.device) -> dict:
    (train_iter, test_iter), load_s = timed(
        d2l_loaders, args.batch_size, args.workers)
    net = new_lenet(args.seed)
    test_acc, train_s = timed(d2l_train, net, train_iter, test_iter, args.epochs, args.lr, device)
    return {"load_s": load_s, "train_s": train_s, "test_acc": test_acc,
            "examples": args.epochs * len(train_iter.dataset)}


def run_convbook(args: argparse.Namespace, device: torch.device) -> dict:
    (train, test), load_s = timed(
        tensor_loaders, args.batch_size, device)
    net = new_lenet(args.seed)
    if args.channels_last:
        net = net.to(memory_format=torch.channels_last)
    history, train_s = timed(
        cb.train.fit, net, train, test, epochs=args.epochs, lr=args.lr, amp=args.amp,
        device=device, verbose=False)
    for row in history.itertuples():
        print(f"  fast  epoch {row.epoch}: loss {row.train_loss:.4f}, train acc "
              f"{row.train_acc:.4f}, test acc {row.val_acc:.4f}", flush=True)
    examples = args.epochs * train.dataset_size
    pass_s = float((train.dataset_size / history["examples_per_s"]).sum())
    return {"load_s": load_s, "train_s": train_s, "test_acc": float(history["val_acc"].iloc[-1]),
            "examples": examples, "pass_examples_per_s": examples / pass_s}


def fractions(fast: dict, limit: dict) -> str:
    """``fit``'s throughput as a fraction of the bare-step rate, passes alone and overall."""
    passes = fast["pass_examples_per_s"] / limit["examples_per_s"]
    overall = fast["examples"] / fast["train_s"] / limit["examples_per_s"]
    return (f"Bare-step rate (bare steps on one resident batch, same precision and memory "
            f"format as `fit`): {limit['examples_per_s']:,.0f} examples/s "
            f"({limit['ms_per_step']:.2f} ms per step). `fit` reaches "
            f"**{passes:.0%}** of it over its training passes and {overall:.0%} over its "
            "whole wall time, test-set evaluation after every epoch included.")


def precision_name(dtype: torch.dtype | None) -> str:
    return "float32" if dtype is None else f"{str(dtype).removeprefix('torch.')} mixed precision"


def fit_dtype(device: torch.device, amp: bool) -> torch.dtype | None:
    """The autocast dtype ``fit(amp=amp)`` trains in on ``device`` (None: float32)."""
    with warnings.catch_warnings():  # fit itself warns about a float32 fallback
        warnings.simplefilter("ignore")
        return cb.train.amp_dtype(device, amp)


def ceiling_steps(net: nn.Module, X: torch.Tensor, y: torch.Tensor, steps: int, lr: float,
                  dtype: torch.dtype | None, device: torch.device) -> float:
    """Seconds for ``steps`` bare SGD steps on the resident batch ``(X, y)``, autocast to
    ``dtype`` (None: float32)."""
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    precision = cb.train.autocast(device, dtype)
    net.train()
    start = 0.0
    for step in range(steps + 5):  # the first 5 steps warm up kernels and caches
        if step == 5:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
        with precision:
            loss = loss_fn(net(X), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def bare_steps(args: argparse.Namespace, device: torch.device, X: torch.Tensor,
               y: torch.Tensor, steps: int, dtype: torch.dtype | None,
               channels_last: bool) -> dict:
    """One configuration of (c), from the same initial weights."""
    net = new_lenet(args.seed).to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    seconds = ceiling_steps(net, X, y, steps, args.lr, dtype, device)
    name = f"{precision_name(dtype)}, {'channels-last' if channels_last else 'NCHW'}"
    print(f"  bare steps ({name}): {1000 * seconds / steps:.2f} ms per step of {len(y)} "
          "examples", flush=True)
    return {"name": name, "examples_per_s": steps * len(y) / seconds,
            "ms_per_step": 1000 * seconds / steps}


def other_dtype(device: torch.device, dtype: torch.dtype | None) -> torch.dtype | None:
    """The precision ``fit`` does not use here: the 16-bit type, or float32 (None)."""
    if dtype is not None:
        return None
    return torch.float16 if device.type == "cuda" else torch.bfloat16


def run_ceiling(args: argparse.Namespace, device: torch.device) -> tuple[dict, list[dict]]:
    """(c): as many bare steps as one epoch of ``fit`` has, on its first batch, kept resident:
    in ``fit``'s configuration (the reference), then with the other memory format and with
    the other precision."""
    train, _ = tensor_loaders(args.batch_size, device)
    X, y = (t.clone() for t in next(iter(train)))
    steps = len(train)
    dtype = fit_dtype(device, args.amp)
    limit = bare_steps(args, device, X, y, steps, dtype, args.channels_last)
    variants = [
        limit,
        bare_steps(args, device, X, y, steps, dtype, not args.channels_last),
        bare_steps(args, device, X, y, steps, other_dtype(device, dtype), args.channels_last),
    ]
    return limit, variants


def native_bfloat16(device: torch.device) -> str:
    if device.type != "cpu":
        return ""
    if cb.train.cpu_has_native_bfloat16():
        return "native bfloat16 (AVX-512 BF16 or AMX): yes"
    return "native bfloat16: no (emulated; `fit(amp=True)` falls back to float32)"


def variants_table(variants: list[dict], device: torch.device) -> list[str]:
    """Bare steps in each memory format and precision: what the two switches do here."""
    lines = ["| bare steps, one resident batch | ms per step | examples/s |",
             "| --- | ---: | ---: |"]
    for i, v in enumerate(variants):
        name = v["name"] + (" (as `fit` above)" if i == 0 else "")
        lines.append(f"| {name} | {v['ms_per_step']:.2f} | {v['examples_per_s']:,.0f} |")
    return lines


class Busy:
    """How much CPU time other processes took while this run ran (Linux ``/proc/stat``)."""

    def __init__(self) -> None:
        self.start = self._stat()
        self.own = self._own()
        self.wall = time.perf_counter()

    @staticmethod
    def _stat() -> list[int] | None:
        try:
            with open("/proc/stat", encoding="ascii") as stat:
                return [int(v) for v in stat.readline().split()[1:]]
        except (OSError, ValueError):
            return None

    @staticmethod
    def _own() -> float:
        rusage = (resource.getrusage(resource.RUSAGE_SELF),
                  resource.getrusage(resource.RUSAGE_CHILDREN))
        return sum(r.ru_utime + r.ru_stime for r in rusage)

    def report(self) -> str:
        end = self._stat()
        if self.start is None or end is None:
            return ""
        delta = [b - a for a, b in zip(self.start, end)]
        tick = os.sysconf("SC_CLK_TCK")
        # user, nice, system, idle, iowait, irq, softirq, steal
        busy = (delta[0] + delta[1] + delta[2] + delta[5] + delta[6]) / tick
        steal = (delta[7] if len(delta) > 7 else 0) / tick
        capacity = (time.perf_counter() - self.wall) * (os.cpu_count() or 1)
        others = max(0.0, busy - (self._own() - self.own))
        text = (f"CPU time used by other processes during the run: {others:.1f} s of the "
                f"{capacity:.0f} core-seconds available ({others / capacity:.0%})")
        if steal:
            text += f"; taken by the hypervisor (steal): {steal:.0f} s"
        return text


def machine(device: torch.device) -> str:
    """CPU model and instruction set, cores, accelerator, torch version: the facts a reader
    compares against."""
    text = (f"{cb.reproduce.cpu_model()} (torch CPU capability "
            f"{torch.backends.cpu.get_cpu_capability()}), {os.cpu_count()} cores, torch "
            f"threads: {torch.get_num_threads()}")
    if device.type == "cuda":
        text += f", {torch.cuda.get_device_name(device)}"
    elif device.type == "cpu":
        text += f", {native_bfloat16(device)}"
    return text + f"; torch {torch.__version__}, Python {platform.python_version()}"


def measured_with(script: str) -> list[str]:
    """The last lines of a results file: when it was measured, and the exact command."""
    command = shlex.join(["python", f"benchmarks/{script}", *sys.argv[1:]])
    return [f"Measured {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z} with", "",
            "```bash", command, "```", ""]


def markdown(args, device: torch.device, d2l: dict, fast: dict, limit: dict,
             variants: list[dict], busy: str) -> str:
    """The results file that speed.md includes: everything in it comes from this run."""
    # Labelled by the precision fit actually trained in, not by the flag.
    layout = "channels-last" if args.channels_last else "NCHW"
    fast_name = (f"convbook: TensorLoader + `fit` ({precision_name(fit_dtype(device, args.amp))}"
                 f", {layout})")
    rows = []
    for name, r in ((f"d2l: DataLoader ({args.workers} workers) + per-batch reads", d2l),
                    (fast_name, fast)):
        rows.append(f"| {name} | {r['examples'] / r['train_s']:,.0f} | {r['train_s']:.1f} | "
                    f"{r['load_s']:.1f} | {r['test_acc']:.4f} |")
    ratio = (fast["examples"] / fast["train_s"]) / (d2l["examples"] / d2l["train_s"])
    return "\n".join([
        f"| loop ({device.type}, {args.epochs} epochs, batch {args.batch_size}) | examples/s "
        "| training wall time (s) | data loading (s) | final test accuracy |",
        "| --- | ---: | ---: | ---: | ---: |",
        *rows,
        "",
        f"Speed-up: **{ratio:.1f}×** in examples per second; test accuracy difference "
        f"{100 * (fast['test_acc'] - d2l['test_acc']):+.1f} points (the two loops see the "
        "batches in different orders).",
        "",
        fractions(fast, limit),
        "",
        *variants_table(variants, device),
        "",
        f"Machine: {machine(device)}.",
        "",
        "Conditions: " + "; ".join(filter(None, [
            busy,
            ", ".join(f"{k}={os.environ[k]}" for k in SPEED_ENV if k in os.environ)
            or "none of " + ", ".join(SPEED_ENV) + " set",
        ])) + ".",
        "",
        *measured_with("lenet_speed.py"),
    ])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device) if args.device else cb.train.best_device()
    busy = Busy()
    print(f"LeNet on Fashion-MNIST, {args.epochs} epoch(s) on {device}", flush=True)
    d2l = run_d2l(args, device) if args.d2l else None
    print("convbook's loop", flush=True)
    fast = run_convbook(args, device)
    print("bare steps on one resident batch", flush=True)
    limit, variants = run_ceiling(args, device)
    if d2l is None:
        print(fractions(fast, limit))
        return
    table = markdown(args, device, d2l, fast, limit, variants, busy.report())
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"lenet_speed_{device.type}.md"
    path.write_text(table)
    print(table)
    print(f"written to {path}")


if __name__ == "__main__":
    main()
