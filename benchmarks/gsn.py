"""Deep-GSN training throughput (batched walkback loss vs one example at a time), and a check that the
exact-chain toolkit has no Python loops over states.

1. Throughput: examples per second of one SGD step on the walkback loss of ``binary_nets.DeepGSN`` (2D = 4
   reconstructions, salt-and-pepper 0.4, hidden noise σ = 2), at the chapter's quick sizes (64-256-256,
   minibatch 32) and the papers' sizes (784-1500-1500, minibatch 100). The **baseline**, measured in the
   same run, is the same loss and the same update computed one example at a time (minibatch 1, gradients
   accumulated over the minibatch, then one step): the papers' own minibatch size 1 (thesis §5.5.2)
   and what a literal transcription of Algorithm 1 does. The ratio is batched / per-example.

2. Loop check: with ``sys.settrace`` counting the Python lines executed inside ``dae_tutor.chains`` and
   ``dae_tutor.markov``, each exact-chain routine is called on K and 16 K states. A routine whose Python
   work grows with K has a Python loop over states; the table shows both counts (binary-state routines
   are called on d and d + 4 bits: their loops run over the d bits, not the 2^d states; routines that
   solve for a stationary distribution by GTH take one Python step per eliminated state).

    python -m benchmarks gsn                 # or: python benchmarks/gsn.py
    python -m benchmarks gsn --device cuda --steps 50

The claim is the ratio, measured in one run on one machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from dae_tutor import binary_nets, chains, markov, runtime

SIZES = {"quick": ((64, 256, 256), 32), "full": ((784, 1500, 1500), 100)}


def _clock(dev: torch.device) -> float:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return time.perf_counter()


def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    return f"cpu ({torch.get_num_threads()} torch thread(s), {os.cpu_count()} cores)"


def throughput(
    layers: tuple[int, ...], batch: int, steps: int, per_example: bool, dev: torch.device
) -> float:
    """Examples per second of ``steps`` SGD steps on the walkback loss (best of the timed steps)."""
    model = binary_nets.DeepGSN(layers, seed=0, device=dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.25 / layers[0], momentum=0.5)
    gen = runtime.generator(0, dev)
    data = torch.bernoulli(torch.full((max(batch, 256), layers[0]), 0.3, device=dev), generator=gen)

    def step() -> None:
        idx = torch.randint(len(data), (batch,), generator=gen, device=dev)
        x = data[idx]
        opt.zero_grad(set_to_none=True)
        if per_example:
            for i in range(batch):  # the baseline: one example at a time, gradients accumulated
                (model.walkback_loss(x[i : i + 1], gen) / batch).backward()
        else:
            model.walkback_loss(x, gen).backward()
        opt.step()

    step()  # warm-up
    best = float("inf")
    for _ in range(steps):
        t0 = _clock(dev)
        step()
        best = min(best, _clock(dev) - t0)
    return batch / best


def _python_lines(fn) -> int:
    """Number of Python lines executed in ``dae_tutor/chains.py`` and ``dae_tutor/markov.py`` while
    ``fn()`` runs."""
    targets = {chains.__file__, markov.__file__}
    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        if frame.f_code.co_filename not in targets:
            return None
        if event == "line":
            count += 1
        return tracer

    sys.settrace(tracer)
    try:
        fn()
    finally:
        sys.settrace(None)
    return count


def loop_check(k: int) -> list[tuple[str, int, int]]:
    """(routine, Python lines at size 1, at size 2) for the exact-chain routines."""

    def problem(n: int):
        rng = np.random.default_rng(0)
        p = rng.dirichlet(np.ones(n))
        c = chains.corruption_matrix(n, "ring", 0.5)
        return p, c, chains.bayes_reconstruction(p, c)

    def cases(n: int, d: int) -> dict[str, object]:
        p, c, r = problem(n)
        t = chains.dae_transition(c, r)
        sp = chains.salt_and_pepper_kernel(d, 0.3)
        half = np.arange(n) % 2 == 0
        return {
            "corruption_matrix(ring)": lambda: chains.corruption_matrix(n, "ring", 0.5),
            "window_corruption": lambda: chains.window_corruption(n, 2),
            "gaussian_grid_corruption": lambda: chains.gaussian_grid_corruption(np.arange(float(n)), 2.0),
            "bayes_reconstruction": lambda: chains.bayes_reconstruction(p, c),
            "dae_transition": lambda: chains.dae_transition(c, r),
            "stationary_distribution(lstsq)": lambda: markov.stationary_distribution(t, "lstsq"),
            "stationary_distribution [pivots]": lambda: markov.stationary_distribution(t),
            "detailed_balance_violation": lambda: markov.detailed_balance_violation(t, p),
            "schweitzer_bound [pivots]": lambda: markov.schweitzer_bound(t, 0.9 * t + 0.1 / n),
            "walkback_corruption": lambda: chains.walkback_corruption(c, r, 0.5),
            "unimodal_projection": lambda: chains.unimodal_projection(r, np.arange(float(n))),
            "clamped_stationary [pivots]": lambda: chains.clamped_stationary(c, r, half),
            "salt_and_pepper_kernel [bits]": lambda: chains.salt_and_pepper_kernel(d, 0.3),
            "factorized_projection [bits]": lambda: chains.factorized_projection(sp),
        }

    small, large = cases(k, 4), cases(16 * k, 8)
    return [(name, _python_lines(small[name]), _python_lines(large[name])) for name in small]


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks gsn", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="timed SGD steps per configuration (best kept)")
    parser.add_argument("--sizes", nargs="+", default=["quick", "full"], choices=list(SIZES))
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default: dae_tutor.device())")
    parser.add_argument("--states", type=int, default=32, help="K for the loop check (and 16 K)")
    args = parser.parse_args(argv)
    dev = runtime.device() if args.device == "auto" else torch.device(args.device)

    print(f"device: {device_name(dev)}, torch {torch.__version__}, float32")
    print("GSN walkback training throughput (examples/s; best of", args.steps, "steps)")
    header = f"{'sizes':>8}{'layers':>18}{'batch':>7}{'per-example':>14}{'batched':>12}{'ratio':>9}"
    print(header)
    print("-" * len(header))
    results: dict[str, object] = {}
    for size in args.sizes:
        layers, batch = SIZES[size]
        slow = throughput(layers, batch, args.steps, True, dev)
        fast = throughput(layers, batch, args.steps, False, dev)
        results[size] = {"per_example": slow, "batched": fast, "ratio": fast / slow}
        shape = "-".join(map(str, layers))
        print(f"{size:>8}{shape:>18}{batch:>7}{slow:>14.0f}{fast:>12.0f}{fast / slow:>8.1f}x")
    print("ratio = batched / per-example (same loss and update; baseline: one example at a time)")

    k = args.states
    print(f"\nPython lines executed in dae_tutor/chains.py and markov.py, K = {k} vs {16 * k} states")
    print(f"{'routine':>32}{'K':>8}{'16 K':>8}  verdict")
    rows = loop_check(args.states)
    for name, a, b in rows:
        print(f"{name:>32}{a:>8}{b:>8}  {_verdict(name, a, b)[1]}")
    results["loop_check"] = rows
    results["no_state_loops"] = all(_verdict(*row)[0] for row in rows)
    print("[bits]: called on 4 and 8 bits (16 and 256 states); their loops run over bits")
    print("[pivots]: GTH (markov.gth_solve) eliminates one state per Python step, a rank-1 update each")
    return results


def _verdict(name: str, a: int, b: int) -> tuple[bool, str]:
    """Whether the Python line counts ``a`` (K states) and ``b`` (16 K) are as expected, and in words."""
    if "[bits]" in name:  # 2x the bits, 16x the states: linear growth in the bits is the most allowed
        return (True, "loops over bits only") if b < 2 * a else (False, "GROWS WITH THE STATES")
    if "[pivots]" in name:  # one elimination step per state: at most linear in K
        return (True, "one step per pivot (GTH)") if b <= 16 * a else (False, "GROWS FASTER THAN K")
    return (True, "no loop over states") if b <= a else (False, "GROWS WITH K")


if __name__ == "__main__":
    runtime.set_threads()  # as python -m benchmarks does
    main()
