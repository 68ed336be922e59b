"""Per-example gradient norms (Prop. 3, ``torch.func``) vs a backward loop; ISSGD master throughput.

Part 1: the norms ‖∇θ L_n‖ of a batch on the thesis's model (an MLP with 4 hidden layers of
2048 ReLU units on 3072 inputs, 18.9M parameters, thesis §7.5.1), three ways:
``importance.per_example_grad_norms(method="fc")`` (one forward and one backward), ``"vmap"``
(per-sample gradients, chunked), and ``"loop"`` (one backward per example, the baseline).
All three must agree to 1e-5 (relative); the table prints the speed-ups over the loop.

Part 2: examples per second through the ISSGD master's training loop with 0, 1 and 2 worker
processes (``distributed.run_distributed``, embedded TCP store), on MNIST (the bundled subset
offline). On a 2-core machine the workers compete with the master for the cores.

    python -m benchmarks importance                        # the thesis's sizes
    python -m benchmarks importance --hidden 1024 --batch 256 --methods fc loop
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from dae_tutor import data, distributed, importance, nets, runtime


def _best(fn, repeats: int) -> tuple[float, float, torch.Tensor]:
    """Best wall and CPU seconds of ``repeats`` calls of ``fn``, and its last result."""
    wall, cpu, out = float("inf"), float("inf"), None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    return wall, cpu, out


def norms_table(args: argparse.Namespace) -> dict[str, float]:
    sizes = [args.inputs, *[args.hidden] * args.depth, 10]
    model = nets.MLP(sizes, "relu", seed=0)
    gen = runtime.generator(0)
    x = torch.randn(args.batch, args.inputs, generator=gen)
    y = torch.randint(0, 10, (args.batch,), generator=gen)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"per-example gradient norms: MLP {'-'.join(map(str, sizes))} ({n_params:,} parameters), "
          f"batch {args.batch}, float32")  # fmt: skip
    times, results = {}, {}
    for method in ["loop", *[m for m in args.methods if m != "loop"]]:
        repeats = 1 if method == "loop" else args.repeats
        wall, cpu, out = _best(
            lambda m=method: importance.per_example_grad_norms(model, importance.cross_entropy, x, y, m),
            repeats,
        )
        times[method], results[method] = (wall, cpu), out
    ref = results["loop"]
    print(f"{'method':>8}{'wall s':>10}{'CPU s':>10}{'speed-up (wall)':>17}{'max rel diff':>14}")
    ratios = {}
    for method, (wall, cpu) in times.items():
        diff = float(((results[method] - ref).abs() / ref.abs().clamp_min(1e-30)).max())
        ratios[method] = times["loop"][0] / wall
        print(f"{method:>8}{wall:>10.3f}{cpu:>10.3f}{ratios[method]:>16.1f}x{diff:>14.1e}")
        if diff > 1e-5:
            print(f"WARNING: {method} differs from the loop by {diff:.1e} > 1e-5")
    return ratios


def throughput_table(args: argparse.Namespace) -> dict[int, float]:
    x, y = data.mnist("train")
    x, y = x[: args.examples], y[: args.examples]
    print(f"\nISSGD master throughput: MNIST ({len(y)} examples), MLP 784-256-256-10, "
          f"minibatch 32, {args.steps} steps, embedded TCP store")  # fmt: skip
    print(f"{'workers':>8}{'examples/s':>12}{'vs 0 workers':>14}{'median weight age (steps)':>27}")
    rates = {}
    for workers in args.workers:
        model = nets.MLP([784, 256, 256, 10], "relu", seed=0)
        res = distributed.run_distributed(model, x, y, workers=workers, steps=args.steps, progress=False)
        rates[workers] = res.examples_per_s
        base = rates.get(args.workers[0], res.examples_per_s)
        age = "-" if workers == 0 else f"{res.log_age_median[-1]:.1f}"
        print(f"{workers:>8}{res.examples_per_s:>12.0f}{res.examples_per_s / base:>13.2f}x{age:>27}")
    return rates


def main(argv: list[str] | None = None) -> dict[str, dict]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks importance", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--inputs", type=int, default=3072, help="input size (SVHN: 3072)")
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--depth", type=int, default=4, help="hidden layers")
    parser.add_argument("--methods", nargs="+", default=["fc", "vmap"], choices=importance.METHODS)
    parser.add_argument("--repeats", type=int, default=3, help="fc/vmap timed this many times, best kept")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=1000, help="master steps per throughput run")
    parser.add_argument("--examples", type=int, default=4000)
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args(argv)
    runtime.set_threads()
    print(
        f"cpu ({torch.get_num_threads()} torch thread(s), {os.cpu_count()} cores), torch {torch.__version__}"
    )
    out: dict[str, dict] = {"norms": norms_table(args)}
    if not args.skip_throughput:
        out["throughput"] = throughput_table(args)
    return out


if __name__ == "__main__":
    main()
