"""Training 16 small DAEs together (``fit_dae_ensemble``) versus one after another (``fit_dae``).

One DAE per noise level σ on a log grid, each 2 → 256 tanh → 2, same steps, Adam, same batch
size, on 2-D spiral data. Both sides draw the same initialisations, minibatches and noise, so
they train the same 16 models (the table shows the largest parameter difference); the
ensemble pays the per-step Python and dispatch overhead once instead of 16 times.

    python -m benchmarks ensemble            # or: python benchmarks/ensemble.py
    python -m benchmarks ensemble --steps 500 --device cuda

The claim is the ratio (sequential time / ensemble time), measured in one run on one machine.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from dae_tutor import runtime
from dae_tutor.densities import Spiral
from dae_tutor.train import fit_dae, fit_dae_ensemble


def _clock(dev: torch.device) -> tuple[float, float]:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return time.perf_counter(), time.process_time()


def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    return f"cpu ({torch.get_num_threads()} torch thread(s), {os.cpu_count()} cores)"


def main(argv: list[str] | None = None) -> dict[int, dict[str, float]]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks ensemble", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=500, help="Adam steps per DAE (default 500)")
    parser.add_argument("--members", type=int, default=16, help="number of DAEs / noise levels (default 16)")
    parser.add_argument("--hidden", type=int, default=256, help="tanh hidden units (default 256)")
    parser.add_argument(
        "--batch-size",
        type=int,
        nargs="+",
        default=[32, 128],
        help="minibatch size(s), one row each (default 32 128)",
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default: dae_tutor.device())")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument(
        "--repeats", type=int, default=3, help="time each side this many times, keep the best"
    )
    args = parser.parse_args(argv)

    dev = runtime.device() if args.device == "auto" else torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    repeats = max(1, args.repeats)
    samples = Spiral().sample(2000, generator=runtime.generator(0)).to(dtype=dtype, device=dev)
    sigmas = torch.logspace(math.log10(0.01), math.log10(0.3), args.members, dtype=torch.float64).tolist()
    seeds = list(range(args.members))

    print(f"device: {device_name(dev)}, torch {torch.__version__}")
    print(
        f"{args.members} DAEs 2→{args.hidden}→2 tanh, one per σ on a log grid in [0.01, 0.3], "
        f"{args.steps} Adam steps each, {args.dtype}; best of {repeats} runs"
    )
    columns = [("batch", 6), ("sequential s", 14), ("ensemble s", 12), ("ratio wall", 12), ("ratio CPU", 11)]
    header = "".join(f"{name:>{width}}" for name, width in columns) + f"{'max rel diff':>14}"
    print(header)
    print("-" * len(header))
    results = {}
    for batch in args.batch_size:
        kw = {"hidden": args.hidden, "batch_size": batch, "optimizer": "adam", "lr": 1e-3, "progress": False}

        def ensemble(kw=kw) -> list[torch.nn.Module]:
            return fit_dae_ensemble(samples, sigmas, steps=args.steps, seeds=seeds, **kw)

        def sequential(kw=kw) -> list[torch.nn.Module]:
            return [fit_dae(samples, s, steps=args.steps, seed=k, **kw) for k, s in enumerate(sigmas)]

        # warm up both code paths (first-call costs: kernels, allocator, lazy imports)
        fit_dae_ensemble(samples, sigmas, steps=5, seeds=seeds, **kw)
        fit_dae(samples, sigmas[0], steps=5, **kw)
        times: dict[str, list[tuple[float, float]]] = {"ensemble": [], "sequential": []}
        models = {}
        for _ in range(repeats):
            for name, fn in (("ensemble", ensemble), ("sequential", sequential)):
                w0, c0 = _clock(dev)
                models[name] = fn()
                w1, c1 = _clock(dev)
                times[name].append((w1 - w0, c1 - c0))
        wall = {k: min(t[0] for t in v) for k, v in times.items()}
        cpu = {k: min(t[1] for t in v) for k, v in times.items()}
        with torch.no_grad():
            diff = max(
                float((p - q).abs().max() / q.abs().max())
                for a, b in zip(models["ensemble"], models["sequential"], strict=True)
                for p, q in zip(a.parameters(), b.parameters(), strict=True)
            )
        ratio_wall = wall["sequential"] / wall["ensemble"]
        ratio_cpu = cpu["sequential"] / cpu["ensemble"]
        print(
            f"{batch:>6}{wall['sequential']:>14.2f}{wall['ensemble']:>12.2f}{ratio_wall:>11.1f}x"
            f"{ratio_cpu:>10.1f}x{diff:>14.1e}"
        )
        results[batch] = {"ratio_wall": ratio_wall, "ratio_cpu": ratio_cpu, "max_rel_diff": diff}
    print("ratio = sequential / ensemble (16 x fit_dae vs one fit_dae_ensemble, same seeds: same models);")
    print("wall = elapsed time, CPU = this process's CPU time (steadier on a shared machine)")
    return results


if __name__ == "__main__":
    main()
