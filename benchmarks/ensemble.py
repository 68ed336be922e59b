"""Training 16 small DAEs together (``fit_dae_ensemble``) versus one after another (``fit_dae``).

One DAE per noise level σ on a log grid, each 2 → 256 tanh → 2, same steps, Adam, same batch
size, on 2-D spiral data. Every side draws the same initialisations, minibatches and noise, so
they train the same 16 models (the table shows the largest parameter difference); the
ensemble pays the per-step Python and dispatch overhead once instead of 16 times.

A third side is torch's own recipe for an ensemble: ``torch.func.stack_module_state`` +
``torch.func.vmap`` over ``functional_call`` (autograd for the backward), run inside
``fit_dae_ensemble`` in place of its hand-written batched forward/backward
(``train._StackedAutoEncoders``), so everything else (models, data, steps, optimiser) is the same;
the table shows the largest relative difference of its losses from the ensemble's.

    python -m benchmarks ensemble            # or: python benchmarks/ensemble.py
    python -m benchmarks ensemble --steps 500 --device cuda

The claim is the ratio (sequential time / ensemble time), measured in one run on one machine.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from unittest import mock

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from dae_tutor import runtime, train
from dae_tutor.densities import Spiral
from dae_tutor.nets import AutoEncoder
from dae_tutor.train import fit_dae, fit_dae_ensemble


def vmap_forward(
    members: Sequence[AutoEncoder], params: dict[str, torch.Tensor], rows: int
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``train._stacked_forward`` the torch.func way: one member's module, called functionally
    with each member's slice of the stacked ``params``, vmapped over the members."""
    base = copy.deepcopy(members[0]).to("meta")  # the structure only; parameters come from params
    batched = torch.func.vmap(lambda p, x: torch.func.functional_call(base, p, (x,)))
    return lambda noisy: batched(params, noisy)


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
    columns = [
        ("batch", 6),
        ("sequential s", 14),
        ("vmap s", 8),
        ("ensemble s", 12),
        ("seq/ens wall", 14),
        ("seq/ens CPU", 13),
        ("vmap/ens wall", 15),
        ("vmap/ens CPU", 14),
        ("params vs seq", 15),
        ("loss vs vmap", 14),
    ]
    header = "".join(f"{name:>{width}}" for name, width in columns)
    print(header)
    print("-" * len(header))
    results = {}
    for batch in args.batch_size:
        kw = {"hidden": args.hidden, "batch_size": batch, "optimizer": "adam", "lr": 1e-3, "progress": False}
        kw["return_history"] = True

        def ensemble(steps: int = args.steps, kw=kw) -> tuple[list[torch.nn.Module], list[list[float]]]:
            return fit_dae_ensemble(samples, sigmas, steps=steps, seeds=seeds, **kw)

        def vmap(steps: int = args.steps) -> tuple[list[torch.nn.Module], list[list[float]]]:
            with mock.patch.object(train, "_stacked_forward", vmap_forward):
                return ensemble(steps)

        def sequential(steps: int = args.steps, kw=kw) -> tuple[list[torch.nn.Module], list[list[float]]]:
            fits = [fit_dae(samples, s, steps=steps, seed=k, **kw) for k, s in enumerate(sigmas)]
            return [m for m, _ in fits], [h for _, h in fits]

        sides = {"sequential": sequential, "vmap": vmap, "ensemble": ensemble}
        for fn in sides.values():  # warm up every code path (kernels, allocator, lazy imports)
            fn(5)
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
        out = {}
        for _ in range(repeats):
            for name, fn in sides.items():
                w0, c0 = _clock(dev)
                out[name] = fn()
                w1, c1 = _clock(dev)
                times[name].append((w1 - w0, c1 - c0))
        wall = {k: min(t[0] for t in v) for k, v in times.items()}
        cpu = {k: min(t[1] for t in v) for k, v in times.items()}
        with torch.no_grad():
            diff = max(
                float((p - q).abs().max() / q.abs().max())
                for a, b in zip(out["ensemble"][0], out["sequential"][0], strict=True)
                for p, q in zip(a.parameters(), b.parameters(), strict=True)
            )
        ens_loss, vmap_loss = (torch.tensor(out[k][1], dtype=torch.float64) for k in ("ensemble", "vmap"))
        loss_diff = float(((ens_loss - vmap_loss).abs() / vmap_loss.abs()).max())
        row = {
            "ratio_wall": wall["sequential"] / wall["ensemble"],
            "ratio_cpu": cpu["sequential"] / cpu["ensemble"],
            "vmap_ratio_wall": wall["vmap"] / wall["ensemble"],
            "vmap_ratio_cpu": cpu["vmap"] / cpu["ensemble"],
            "max_rel_diff": diff,
            "vmap_max_rel_loss_diff": loss_diff,
        }
        print(
            f"{batch:>6}{wall['sequential']:>14.2f}{wall['vmap']:>8.2f}{wall['ensemble']:>12.2f}"
            f"{row['ratio_wall']:>13.1f}x{row['ratio_cpu']:>12.1f}x"
            f"{row['vmap_ratio_wall']:>14.2f}x{row['vmap_ratio_cpu']:>13.2f}x{diff:>15.1e}{loss_diff:>14.1e}"
        )
        results[batch] = row
    print("seq/ens = sequential / ensemble (16 x fit_dae vs one fit_dae_ensemble, same seeds: same models);")
    print("vmap/ens = torch.func (stack_module_state + vmap + autograd) / fit_dae_ensemble's own backward;")
    print("params vs seq: largest relative parameter difference ensemble vs sequential; loss vs vmap:")
    print("largest relative difference of the per-step losses, ensemble vs vmap;")
    print("wall = elapsed time, CPU = this process's CPU time (steadier on a shared machine)")
    return results


if __name__ == "__main__":
    runtime.set_threads()  # as python -m benchmarks does
    main()
