"""CPU threads for the book's small models: one thread versus torch's default, idle and busy machine.

Trains a 2 -> 256 -> 256 -> 2 tanh MLP with Adam (batch 256) for a fixed number of steps, with
``torch.set_num_threads(1)`` (what ``runtime.set_threads()`` sets on a 2-core machine) and with
torch's default (one thread per core), first with the other cores idle, then with one core kept
busy by another process (as when a notebook runs beside a browser or a second kernel). Each
configuration is timed ``--repeats`` times; the table shows the median and the spread (max / min),
and the ratio of the default's median to one thread's.

    python -m benchmarks threads            # or: python benchmarks/threads.py

The claim is the ratio, measured in one run on one machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from dae_tutor import nets, runtime


def train_seconds(threads: int, steps: int) -> float:
    """Wall time of ``steps`` Adam steps of a small MLP with ``threads`` CPU threads."""
    torch.set_num_threads(threads)
    net = nets.MLP([2, 256, 256, 2], activation="tanh", seed=0, dtype=torch.float32)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    gen = runtime.generator(0)
    data = torch.randn(4096, 2, generator=gen)
    start = time.perf_counter()
    for _ in range(steps):
        batch = data[torch.randint(len(data), (256,), generator=gen)]
        loss = (net(batch + 0.1 * torch.randn(batch.shape, generator=gen)) - batch).pow(2).sum(1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def measure(threads: int, steps: int, repeats: int) -> list[float]:
    return [train_seconds(threads, steps) for _ in range(repeats)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    default_threads = os.cpu_count() or 1  # torch's own default: one thread per core
    cores = os.cpu_count()
    print(f"torch {torch.__version__}; {cores} cores; baseline: {default_threads} threads (torch's default)")
    print(f"{args.steps} Adam steps of a 2-256-256-2 MLP, {args.repeats} repeats\n")
    print(f"{'machine':13s} | {'threads':>7s} | {'median s':>8s} | {'max/min':>7s} | default/1 thread")
    for load in ("idle", "one core busy"):
        busy = None
        if load != "idle":
            busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            one = measure(1, args.steps, args.repeats)
            default = measure(default_threads, args.steps, args.repeats)
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
        ratio = statistics.median(default) / statistics.median(one)
        for threads, times, note in ((1, one, ""), (default_threads, default, f"{ratio:.2f}x")):
            spread = max(times) / min(times)
            print(f"{load:13s} | {threads:7d} | {statistics.median(times):8.3f} | {spread:7.2f} | {note}")


if __name__ == "__main__":
    main()
