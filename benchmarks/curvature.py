"""Extreme Hessian eigenvalues of a >= 100k-parameter MLP: ``curvature.lanczos`` vs ARPACK vs power iteration.

LA(5) and SA(3) of the Hessian of a ReLU MLP's cross-entropy on MNIST images (the bundled subset offline),
three ways in one run, each with the same Hessian-vector product (forward-over-reverse, chunked) and the
same stopping test, ARPACK's: every wanted pair has ‖Hx − θx‖ ≤ tol·|θ|, so each eigenvalue is right to
``tol`` relative (Bauer–Fike):

* ``curvature.lanczos``: Lanczos with full reorthogonalisation, in torch on the device;
* ``scipy.sparse.linalg.eigsh`` (ARPACK, implicitly restarted Lanczos) with a ``LinearOperator`` whose
  matvec goes torch → NumPy and back at every product (the thesis's method, app. 11.A);
* power iteration with deflation (PyHessian's method, reimplemented): one eigenvector at a time, orthogonal
  to those found; SA by power iteration on λ₁I − H.

    python -m benchmarks curvature                  # or: python benchmarks/curvature.py
    python -m benchmarks curvature --tol 1e-3 --n 1000 --device cuda

The claims are the HVP-count ratios (power iteration / Lanczos, ARPACK / Lanczos) and the wall-time ratio
measured in one run; the table also shows each result's largest relative eigenvalue error against a tight
(tol 1e-8) Lanczos reference.
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
import scipy.sparse.linalg as sla
import torch
import torch.nn.functional as F

from dae_tutor import curvature, data, nets, runtime


class CountedHVP:
    """v ↦ H v on the model's parameters, counting products (torch tensors in and out)."""

    def __init__(self, objective: curvature.DatasetLoss, theta: torch.Tensor) -> None:
        self.objective, self.theta, self.count = objective, theta, 0

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        self.count += 1
        return self.objective.hvp(self.theta, v)


def _sync(dev: torch.device) -> float:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return time.perf_counter()


def power_iteration(
    hvp: CountedHVP, k: int, which: str, tol: float, max_iter: int, shift: float, gen: torch.Generator
) -> tuple[list[float], list[bool]]:
    """PyHessian's deflated power iteration (SA: on shift·I − H): eigenvalues, and whether each converged."""
    theta = hvp.theta
    found: list[torch.Tensor] = []
    values, converged = [], []
    for _ in range(k):
        v = torch.randn(theta.numel(), generator=gen, dtype=theta.dtype).to(theta.device)
        ok, lam = False, float("nan")
        for _ in range(max_iter):
            for u in found:
                v = v - (u @ v) * u
            v = v / v.norm()
            hv = hvp(v)
            lam = float(v @ hv)
            if float((hv - lam * v).norm()) <= tol * abs(lam):
                ok = True
                break
            v = hv if which == "LA" else shift * v - hv
        found.append(v / v.norm())
        values.append(lam)
        converged.append(ok)
    order = np.argsort(values)[::-1] if which == "LA" else np.argsort(values)
    return [values[i] for i in order], [converged[i] for i in order]


def arpack(
    hvp: CountedHVP, k: int, which: str, tol: float, gen: torch.Generator, shift: float | None = None
) -> list[float]:
    """``eigsh`` on a LinearOperator (host round trip per product); with ``shift``, LA of shift·I − H."""
    theta = hvp.theta
    n = theta.numel()

    def matvec(x: np.ndarray) -> np.ndarray:
        v = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64).reshape(-1)).to(theta)
        hv = hvp(v)
        out = hv if shift is None else shift * v - hv
        return out.detach().cpu().double().numpy()

    op = sla.LinearOperator((n, n), matvec=matvec, dtype=np.float64)
    v0 = torch.randn(n, generator=gen, dtype=torch.float64).numpy()
    if shift is None:
        values = sla.eigsh(op, k=k, which=which, tol=tol, v0=v0, return_eigenvectors=False)
    else:
        values = shift - sla.eigsh(op, k=k, which="LA", tol=tol, v0=v0, return_eigenvectors=False)
    return sorted(values.tolist(), reverse=which == "LA")


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks curvature", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--n", type=int, default=1000, help="training images in the loss (default 1000)")
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 64], help="hidden sizes (128 64)")
    parser.add_argument("--train-steps", type=int, default=300, help="Adam steps before the analysis")
    parser.add_argument("--tol", type=float, default=1e-3, help="relative tolerance (default 1e-3)")
    parser.add_argument("--power-max-iter", type=int, default=1000, help="power iterations per eigenpair")
    parser.add_argument("--chunk", type=int, default=1000, help="rows per HVP chunk")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default: dae_tutor.device())")
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    args = parser.parse_args(argv)

    dev = runtime.device() if args.device == "auto" else torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    images, labels = data.mnist("train")
    x, y = images[: args.n].to(dtype=dtype, device=dev), labels[: args.n].to(dev)
    model = nets.MLP([784, *args.hidden, 10], "relu", seed=0, dtype=dtype, device=dev)
    gen = runtime.generator(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(args.train_steps):
        idx = torch.randint(args.n, (64,), generator=gen).to(dev)
        opt.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    model.eval()
    objective = curvature.DatasetLoss(model, F.cross_entropy, (x, y), chunk_size=args.chunk)
    theta = torch.nn.utils.parameters_to_vector(model.parameters()).detach()
    name = (
        f"cuda ({torch.cuda.get_device_name(dev)})"
        if dev.type == "cuda"
        else (f"cpu ({torch.get_num_threads()} torch thread(s), {os.cpu_count()} cores)")
    )
    print(f"device: {name}, torch {torch.__version__}, {args.dtype}")
    print(
        f"MLP 784-{'-'.join(map(str, args.hidden))}-10 ReLU, d = {theta.numel():,} parameters, "
        f"{args.n} images, {args.train_steps} Adam steps; stop at ||Hx - θx|| <= {args.tol:g}·|θ|"
    )

    hvp = CountedHVP(objective, theta)
    start = _sync(dev)
    hvp(torch.ones_like(theta))
    one_hvp = _sync(dev) - start

    def lanczos_values(which: str, k: int, tol: float) -> list[float]:
        r = curvature.lanczos(
            hvp,
            theta.numel(),
            k,
            which,
            tol=tol,
            generator=runtime.generator(1),
            dtype=theta.dtype,
            device=dev,
        )
        return r.eigenvalues.tolist()

    reference = {w: lanczos_values(w, k, 1e-8) for w, k in (("LA", 5), ("SA", 3))}
    shift = reference["LA"][0]
    methods = {
        "curvature.lanczos": lambda w, k: (lanczos_values(w, k, args.tol), True),
        "eigsh (ARPACK)": lambda w, k: (arpack(hvp, k, w, args.tol, runtime.generator(1)), True),
        "power iteration": lambda w, k: (lambda vals, ok: (vals, all(ok)))(
            *power_iteration(hvp, k, w, args.tol, args.power_max_iter, shift, runtime.generator(1))
        ),
    }
    results: dict[str, dict[str, float]] = {}
    header = f"{'method':<20}{'which':>6}{'HVPs':>8}{'wall s':>9}{'max rel err':>13}{'converged':>11}"
    print(
        f"one HVP: {one_hvp * 1e3:.1f} ms; reference LA(5) {np.round(reference['LA'], 4).tolist()}, "
        f"SA(3) {np.round(reference['SA'], 5).tolist()}"
    )
    print(header)
    print("-" * len(header))
    for method, run in methods.items():
        for which, k in (("LA", 5), ("SA", 3)):
            hvp.count = 0
            start = _sync(dev)
            values, ok = run(which, k)
            wall = _sync(dev) - start
            ref = np.array(reference[which])
            err = float(np.max(np.abs(np.array(values) - ref) / np.abs(ref)))
            results[f"{method} {which}"] = {"hvps": hvp.count, "wall": wall, "error": err, "converged": ok}
            print(f"{method:<20}{which:>6}{hvp.count:>8}{wall:>9.2f}{err:>13.1e}{ok!s:>11}")
    # The thesis-era trick for SA: ARPACK on the shifted operator (a looser test, see curvature.lanczos).
    for method, run in (
        ("eigsh shifted", lambda: arpack(hvp, 3, "SA", args.tol, runtime.generator(1), shift=shift)),
        (
            "lanczos shift=auto",
            lambda: curvature.lanczos(
                hvp,
                theta.numel(),
                3,
                "SA",
                tol=args.tol,
                shift="auto",
                generator=runtime.generator(1),
                dtype=theta.dtype,
                device=dev,
            ).eigenvalues.tolist(),
        ),
    ):
        hvp.count = 0
        start = _sync(dev)
        values = run()
        wall = _sync(dev) - start
        err = float(np.max(np.abs(np.array(values) - np.array(reference["SA"])) / np.abs(reference["SA"])))
        results[f"{method} SA"] = {"hvps": hvp.count, "wall": wall, "error": err, "converged": True}
        print(f"{method:<20}{'SA':>6}{hvp.count:>8}{wall:>9.2f}{err:>13.1e}{'True':>11}")

    def total(method: str, key: str) -> float:
        return results[f"{method} LA"][key] + results[f"{method} SA"][key]

    ours = "curvature.lanczos"
    if not (results["power iteration LA"]["converged"] and results["power iteration SA"]["converged"]):
        print(
            f"power iteration hit --power-max-iter {args.power_max_iter} for some pair: "
            "its HVP count and ratio are lower bounds"
        )
    print(
        f"\nLA(5)+SA(3) HVPs: power iteration / lanczos = "
        f"{total('power iteration', 'hvps') / total(ours, 'hvps'):.2f}x, "
        f"lanczos / ARPACK = {total(ours, 'hvps') / total('eigsh (ARPACK)', 'hvps'):.2f}x; "
        f"wall: ARPACK / lanczos = {total('eigsh (ARPACK)', 'wall') / total(ours, 'wall'):.2f}x, "
        f"power / lanczos = {total('power iteration', 'wall') / total(ours, 'wall'):.2f}x"
    )
    return results


if __name__ == "__main__":
    runtime.set_threads()  # as python -m benchmarks does
    main()
