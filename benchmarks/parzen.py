"""Parzen-window log-likelihood in 784-d: ``evaluate.parzen_log_likelihood`` vs scikit-learn's KernelDensity.

The papers' protocol scores 10,000 test points under a Gaussian Parzen window on 10,000 samples in
784 dimensions (MNIST). Both sides get the same data (pixel-like values in [0, 1]) and the same σ:

* ``dae_tutor``: ``evaluate.parzen_log_likelihood`` (chunked matmul + logsumexp, computed in float64,
  on float32 and on float64 inputs);
* baseline: ``sklearn.neighbors.KernelDensity(kernel="gaussian", bandwidth=σ).fit(samples)
  .score_samples(test)`` (its default tree algorithm and tolerances).

The values are checked against an **exact float64 log-domain computation** on ``--check`` test
points (direct differences x − s, no ‖x‖² + ‖s‖² − 2x·s expansion, SciPy's logsumexp), not
against scikit-learn, whose values are far off on most 784-d points (see the ``parzen`` table in
``benchmarks/README.md``). Each side runs once (``--repeats`` for more; the best time is kept).
Smaller ``--samples`` and ``--test`` make a run possible on a busy CPU: scikit-learn's time grows with
their product.

    python -m benchmarks parzen                          # the papers' sizes (sklearn: minutes)
    python -m benchmarks parzen --samples 3000 --test 3000
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

import numpy as np
import torch
from scipy.special import logsumexp

from dae_tutor import evaluate, runtime


def exact_log_likelihood(samples: np.ndarray, test: np.ndarray, sigma: float) -> np.ndarray:
    """The Parzen log-density of each test point, float64, from direct differences (the reference)."""
    n, d = samples.shape
    const = math.log(n) + 0.5 * d * math.log(2 * math.pi * sigma**2)
    return np.array([logsumexp(-((x - samples) ** 2).sum(1) / (2 * sigma**2)) - const for x in test])


def _clock(dev: torch.device) -> float:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return time.perf_counter()


def _best(fn, repeats: int, dev: torch.device) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = _clock(dev)
        out = fn()
        times.append(_clock(dev) - start)
    return min(times), out


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks parzen", description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=10_000, help="Parzen centres N (default 10,000)")
    parser.add_argument("--test", type=int, default=10_000, help="test points M (default 10,000)")
    parser.add_argument("--dim", type=int, default=784, help="dimension d (default 784)")
    parser.add_argument(
        "--sigma", type=float, default=0.2, help="bandwidth σ (default 0.2, in the MNIST grid)"
    )
    parser.add_argument("--check", type=int, default=200, help="test points checked exactly (default 200)")
    parser.add_argument("--repeats", type=int, default=1, help="timings per side; the best is kept")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default: dae_tutor.device())")
    parser.add_argument("--skip-sklearn", action="store_true", help="time dae_tutor only")
    args = parser.parse_args(argv)
    dev = runtime.device() if args.device == "auto" else torch.device(args.device)
    rng = np.random.default_rng(0)
    # Pixel-like data: independent uniform intensities, samples and test drawn separately.
    samples = rng.random((args.samples, args.dim))
    test = rng.random((args.test, args.dim))
    where = (
        f"cuda ({torch.cuda.get_device_name(dev)})"
        if dev.type == "cuda"
        else f"cpu ({torch.get_num_threads()} torch thread(s), {os.cpu_count()} cores)"
    )
    print(
        f"N = {args.samples} samples, M = {args.test} test points, d = {args.dim}, σ = {args.sigma}; {where}"
    )

    results: dict[str, float] = {}
    values: dict[str, np.ndarray] = {}
    for dtype in (torch.float32, torch.float64):
        s, t = (torch.from_numpy(a).to(dev, dtype) for a in (samples, test))
        seconds, out = _best(
            lambda s=s, t=t: evaluate.parzen_log_likelihood(s, t, args.sigma), args.repeats, dev
        )
        name = f"dae_tutor {str(dtype).removeprefix('torch.')}"
        results[name], values[name] = seconds, out.double().cpu().numpy()
    if not args.skip_sklearn:
        from sklearn.neighbors import KernelDensity

        def sklearn_scores() -> np.ndarray:
            return KernelDensity(kernel="gaussian", bandwidth=args.sigma).fit(samples).score_samples(test)

        results["scikit-learn KernelDensity"], values["scikit-learn KernelDensity"] = _best(
            sklearn_scores, 1, torch.device("cpu")
        )

    check = min(args.check, args.test)
    exact = exact_log_likelihood(samples, test[:check], args.sigma)
    print(f"reference: exact float64 log-domain values on the first {check} test points")
    print(f"{'method':<28} {'seconds':>9} {'max |error| (nats)':>19} {'points off by > 1 nat':>22}")
    for name, seconds in results.items():
        err = np.abs(values[name][:check] - exact)
        print(f"{name:<28} {seconds:9.3f} {err.max():19.3g} {int((err > 1).sum()):>15} of {check}")
    baseline = results.get("scikit-learn KernelDensity")
    if baseline is not None:
        for name in ("dae_tutor float32", "dae_tutor float64"):
            print(f"speed-up of {name} over scikit-learn: {baseline / results[name]:.1f}x")
            results[f"ratio {name}"] = baseline / results[name]
    return results


if __name__ == "__main__":
    runtime.set_threads()  # as python -m benchmarks does
    main()
