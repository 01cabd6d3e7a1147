"""How much faster is convbook's training loop than d2l's? One run, same machine, same seed.

Trains the classic LeNet (``convbook.models.LeNet`` + ``init_xavier``) on Fashion-MNIST with
d2l's recipe (batch 256, SGD lr 0.9) twice:

(a) the d2l way: torchvision's ``FashionMNIST`` with ``ToTensor()`` in a ``DataLoader``
    (shuffled, 4 worker processes), and a loop that reads the loss and the accuracy back
    into Python after every batch, as ``train_ch6`` does;
(b) convbook's way: the whole dataset as one tensor in a ``TensorLoader`` and
    ``convbook.train.fit`` (device-side accumulation, bf16 mixed precision and a
    channels-last model unless switched off).

Both evaluate on the test set after every epoch, as ``train_ch6`` does, and both clocks
include that. Loading the files from disk is timed separately.

(c) The machine's own limit, measured in the same run: bare training steps of the same
    model with the same optimizer and precision on one batch that stays resident (no data
    path, no evaluation, no logging, no accuracy). No loop that trains this model on this
    machine can be faster; ``fit``'s throughput is printed as a fraction of it, over its
    training passes alone and over its whole wall time (evaluation included).

Writes a markdown table to ``benchmarks/results/lenet_speed_<device>.md``; speed.md
includes it. ``make bench`` runs it.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch
from torch import nn

import convbook as cb

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.9)
    parser.add_argument("--workers", type=int, default=4, help="DataLoader workers of the d2l loop")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="default: convbook.best_device()")
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


def timed(fn, *args, **kwargs):
    """``fn``'s result and its wall-clock seconds."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def run_d2l(args: argparse.Namespace, device: torch.device) -> dict:
    (train_iter, test_iter), load_s = timed(
        cb.data.fashion_mnist_loaders, args.batch_size, fast=False, num_workers=args.workers)
    net = new_lenet(args.seed)
    test_acc, train_s = timed(d2l_train, net, train_iter, test_iter, args.epochs, args.lr, device)
    return {"load_s": load_s, "train_s": train_s, "test_acc": test_acc,
            "examples": args.epochs * len(train_iter.dataset)}


def run_convbook(args: argparse.Namespace, device: torch.device) -> dict:
    (train, test), load_s = timed(
        cb.data.fashion_mnist_loaders, args.batch_size, fast=True, device=device)
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
    """``fit``'s throughput as a fraction of the limit, training passes alone and overall."""
    passes = fast["pass_examples_per_s"] / limit["examples_per_s"]
    overall = fast["examples"] / fast["train_s"] / limit["examples_per_s"]
    return (f"Limit (bare steps on one resident batch): {limit['examples_per_s']:,.0f} "
            f"examples/s ({limit['ms_per_step']:.2f} ms per step). `fit` reaches "
            f"**{passes:.0%}** of it over its training passes and {overall:.0%} over its "
            "whole wall time, test-set evaluation after every epoch included.")


def ceiling_steps(net: nn.Module, X: torch.Tensor, y: torch.Tensor, steps: int, lr: float,
                  amp: bool, device: torch.device) -> float:
    """Seconds for ``steps`` bare SGD steps on the resident batch ``(X, y)``, in the precision
    that ``fit(amp=amp)`` uses on ``device``."""
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    # The precision fit trains in: float32 where this CPU has no native bfloat16.
    precision = cb.train.autocast(device, cb.train.amp_dtype(device, amp))
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


def run_ceiling(args: argparse.Namespace, device: torch.device) -> dict:
    """(c): as many bare steps as one epoch of ``fit`` has, on its first batch, kept resident."""
    train, _ = cb.data.fashion_mnist_loaders(args.batch_size, fast=True, device=device)
    X, y = (t.clone() for t in next(iter(train)))
    net = new_lenet(args.seed).to(device)
    if args.channels_last:
        net = net.to(memory_format=torch.channels_last)
    steps = len(train)
    seconds = ceiling_steps(net, X, y, steps, args.lr, args.amp, device)
    print(f"  limit: {1000 * seconds / steps:.2f} ms per step of {len(y)} examples", flush=True)
    return {"examples_per_s": steps * len(y) / seconds, "ms_per_step": 1000 * seconds / steps}


def machine(device: torch.device) -> str:
    """CPU model, cores, accelerator, torch version: the facts a reader compares against."""
    text = f"{cb.reproduce.cpu_model()}, {os.cpu_count()} cores, torch threads: {torch.get_num_threads()}"
    if device.type == "cuda":
        text += f", {torch.cuda.get_device_name(device)}"
    return text + f"; torch {torch.__version__}, Python {platform.python_version()}"


def markdown(args, device: torch.device, d2l: dict, fast: dict, limit: dict,
             command: str) -> str:
    """The results table that speed.md includes."""
    fast_name = "convbook: TensorLoader + `fit`"
    extras = [name for name, on in (("mixed precision", args.amp),
                                    ("channels-last", args.channels_last)) if on]
    if extras:
        fast_name += " (" + ", ".join(extras) + ")"
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
        f"{100 * (fast['test_acc'] - d2l['test_acc']):+.1f} points.",
        "",
        fractions(fast, limit),
        "",
        f"Machine: {machine(device)}. Measured "
        f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z} with `{command}`.",
        "",
    ])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device) if args.device else cb.best_device()
    print(f"LeNet on Fashion-MNIST, {args.epochs} epoch(s) on {device}", flush=True)
    d2l = run_d2l(args, device) if args.d2l else None
    print("convbook's loop", flush=True)
    fast = run_convbook(args, device)
    print("the limit: bare steps on one resident batch", flush=True)
    limit = run_ceiling(args, device)
    if d2l is None:
        print(fractions(fast, limit))
        return
    command = shlex.join(["python", "benchmarks/lenet_speed.py", *sys.argv[1:]])
    table = markdown(args, device, d2l, fast, limit, command)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"lenet_speed_{device.type}.md"
    path.write_text(table)
    print(table)
    print(f"written to {path}")


if __name__ == "__main__":
    main()
