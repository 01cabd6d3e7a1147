"""Does glibc's allocator setting in the Makefile speed up chapter 8's full-batch training?

Chapter 8 reproduces a tutorial that trains ``convbook.models.ApparelCNN`` on all 54,000
training images at once: every activation is a block of hundreds of megabytes. glibc's
``malloc`` hands each block over 32 MB back to the kernel when it is freed, so the next
step's allocation page-faults through the same memory again, zeroed. The Makefile exports
``MALLOC_MMAP_MAX_=0`` and ``MALLOC_TRIM_THRESHOLD_`` (freed memory is kept for reuse).

This script times the same full-batch steps (same seed, same data, float32) in two fresh
Python processes, one with the glibc defaults (the baseline) and one with the Makefile's
setting, and checks that both computed the same losses. Run: ``python benchmarks/allocator.py``.
Writes a markdown table to ``benchmarks/results/allocator_cpu.md`` with the machine, the
date and the exact command, as ``lenet_speed.py`` does.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from lenet_speed import RESULTS, Busy, machine, measured_with

SETTING = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "100000000000"}

STEPS = """
import json, resource, sys, time
import torch
import convbook as cb

steps = int(sys.argv[1])
X, y = cb.data.load_tensors("fashion_mnist", train=True)
X_train, y_train, _, _ = cb.data.train_val_split(X, y, val_fraction=0.1, seed=0)
cb.seed_everything(0)
model = cb.models.ApparelCNN()
optimizer = torch.optim.Adam(model.parameters(), lr=0.07)
loss_fn = torch.nn.CrossEntropyLoss()
losses, seconds = [], []
for _ in range(steps):
    start = time.perf_counter()
    loss = loss_fn(model(X_train), y_train)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    seconds.append(time.perf_counter() - start)
    losses.append(loss.item())
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"losses": losses, "seconds": seconds, "system_s": usage.ru_stime,
                  "page_faults": usage.ru_minflt}))
"""


def run(steps: int, setting: dict[str, str]) -> dict:
    """Time ``steps`` full-batch steps in a fresh process with ``setting`` in its environment."""
    env = {k: v for k, v in os.environ.items() if k not in SETTING} | setting
    out = subprocess.run([sys.executable, "-c", STEPS, str(steps)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def markdown(steps: int, baseline: dict, tuned: dict, busy: str) -> str:
    """The results file: everything in it comes from this run."""
    rows = []
    for name, result in (("glibc defaults", baseline), ("Makefile setting", tuned)):
        steady = result["seconds"][1:]   # the first step pays for the first allocations
        rows.append(f"| {name} | {sum(steady) / len(steady):.2f} | {result['system_s']:.1f} "
                    f"| {result['page_faults']:,} |")
    speedup = sum(baseline["seconds"][1:]) / sum(tuned["seconds"][1:])
    return "\n".join([
        f"| allocator ({steps} full-batch steps of chapter 8) | s per step after the first "
        "| s in the kernel | page faults |",
        "| --- | ---: | ---: | ---: |",
        *rows,
        "",
        f"Same losses in both runs; the Makefile setting is **{speedup:.1f}×** as fast per "
        "step.",
        "",
        f"Machine: {machine(torch.device('cpu'))}.",
        "",
        f"Conditions: {busy or 'not measured (no /proc/stat)'}.",
        "",
        *measured_with("allocator.py"),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the markdown table")
    args = parser.parse_args()
    busy = Busy()
    baseline, tuned = run(args.steps, {}), run(args.steps, SETTING)
    if baseline["losses"] != tuned["losses"]:
        sys.exit(f"the two runs computed different losses: {baseline['losses']} vs "
                 f"{tuned['losses']}")
    table = markdown(args.steps, baseline, tuned, busy.report())
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "allocator_cpu.md"
    path.write_text(table)
    print(table)
    print(f"written to {path}")


if __name__ == "__main__":
    main()
