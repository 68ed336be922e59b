"""The eigenvalue density of a symmetric operator by stochastic Lanczos quadrature (SLQ).

For a unit vector u, the spectral measure μ_u = Σ_i (uᵀx_i)² δ(λ_i) of A = Σ_i λ_i x_i x_iᵀ has
∫ f dμ_u = uᵀ f(A) u. m steps of Lanczos from u give T_m = tridiag(β, α, β); its eigenvalues θ_j and
the squared first components w_j = s_j[0]² of its eigenvectors are the m-point Gauss quadrature of
μ_u (Golub and Meurant), exact for polynomials of degree ≤ 2m − 1. For u uniform on the sphere,
E μ_u = (1/d) Σ_i δ(λ_i), the eigenvalue density, so the average over a few probes u estimates it
(Ubaru, Chen and Saad 2017; the method of PyHessian, Yao et al. 2020).

* :func:`stochastic_lanczos_quadrature` -- nodes and weights for ``probes`` random unit vectors.
* :class:`SpectralDensity` -- the estimate: its CDF and a Gaussian-smoothed density.
* :func:`wasserstein_distance` -- W₁ = ∫ abs(F_SLQ − F) between the estimate and an exact spectrum.
* :func:`error_bound` -- the expected W₁ error in terms of m, the number of probes and d.
* :func:`moment_zscores` -- the estimated moments tr(A^k)/d against exact ones, in standard errors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from dae_tutor import checks


@dataclass
class SpectralDensity:
    """SLQ's estimate of the eigenvalue density: ``nodes`` and ``weights`` (probes, m), each row a Gauss
    quadrature of one probe's spectral measure (weights ≥ 0 summing to 1; rows that broke down early
    are padded with zero weights), and ``n_matvec``, the operator applications used."""

    nodes: torch.Tensor
    weights: torch.Tensor
    n_matvec: int

    def cdf(self, x: torch.Tensor) -> torch.Tensor:
        """F(x) = (1/n_probes) Σ_p Σ_j w_pj [θ_pj ≤ x], the estimated fraction of eigenvalues ≤ x."""
        x = checks.tensor("x", x, ndim=1, nonempty=True).to(self.nodes)
        below = (self.nodes.reshape(-1)[None, :] <= x[:, None]).to(self.weights.dtype)
        return below @ self.weights.reshape(-1) / self.nodes.shape[0]

    def moments(self, order: int) -> torch.Tensor:
        """Σ_j w_pj θ_pj^k for each probe p: uᵀA^k u exactly when k ≤ 2m − 1 (Gauss quadrature)."""
        order = checks.nonnegative_int("order", order)
        return (self.weights * self.nodes**order).sum(dim=1)

    def smoothed(self, grid: torch.Tensor, width: float) -> torch.Tensor:
        """The density convolved with a Gaussian of standard deviation ``width`` on ``grid`` (PyHessian's
        plot): (1/n_probes) Σ_p Σ_j w_pj N(x; θ_pj, width²)."""
        grid = checks.tensor("grid", grid, ndim=1, nonempty=True).to(self.nodes)
        width = checks.positive_float("width", width)
        z = (grid[:, None] - self.nodes.reshape(-1)[None, :]) / width
        kernel = torch.exp(-0.5 * z**2) / (width * math.sqrt(2 * math.pi))
        return kernel @ self.weights.reshape(-1) / self.nodes.shape[0]


def stochastic_lanczos_quadrature(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    dim: int,
    *,
    steps: int,
    probes: int,
    generator: torch.Generator | None = None,
    starts: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> SpectralDensity:
    """SLQ: ``steps`` Lanczos iterations (full reorthogonalisation) from each of ``probes`` unit vectors.

    The start vectors are ``starts`` (probes, dim), normalised, or Gaussian vectors from ``generator``
    normalised to the unit sphere. Per probe, the eigen-decomposition T_m = S diag(θ) Sᵀ gives nodes θ
    and weights S[0, :]² (Gauss quadrature of μ_u: Σ_j w_j θ_j^k = uᵀA^k u for k ≤ 2m − 1). If Lanczos
    finds an invariant subspace first (β_j ≈ 0), the quadrature is then exact and the row stops there.
    Costs ``steps`` · ``probes`` matvecs at most and d x ``steps`` numbers of memory.
    """
    if not callable(matvec):
        raise TypeError(f"matvec must be callable, got {type(matvec).__name__}")
    dim = checks.positive_int("dim", dim, minimum=2)
    steps = checks.positive_int("steps", steps)
    if steps > dim:
        raise ValueError(f"steps must be <= dim ({dim}), got {steps}")
    probes = checks.positive_int("probes", probes)
    generator = checks.generator("generator", generator)
    device = torch.device(device) if device is not None else torch.device("cpu")
    if starts is None:
        where = generator.device if generator is not None else device
        starts = torch.randn(probes, dim, generator=generator, dtype=dtype, device=where)
    else:
        starts = checks.tensor("starts", starts, ndim=2)
        if starts.shape != (probes, dim) or bool((starts.norm(dim=1) == 0).any()):
            raise ValueError(
                f"starts must be ({probes}, {dim}) with non-zero rows, got {tuple(starts.shape)}"
            )
    starts = starts.to(dtype=dtype, device=device)
    nodes = torch.zeros(probes, steps, dtype=torch.float64)
    weights = torch.zeros(probes, steps, dtype=torch.float64)
    n_matvec = 0
    with tqdm(total=probes * steps, desc="SLQ", disable=not progress, leave=False) as bar:
        for p in range(probes):
            Q = torch.empty(steps, dim, dtype=dtype, device=device)
            Q[0] = starts[p] / starts[p].norm()
            alphas, betas = [], []
            for j in range(steps):
                w = matvec(Q[j])
                if not isinstance(w, torch.Tensor) or w.shape != (dim,) or not bool(torch.isfinite(w).all()):
                    raise ValueError(f"matvec must return a finite tensor of shape ({dim},)")
                w = w.detach().to(dtype=dtype, device=device)
                n_matvec += 1
                bar.update(1)
                alphas.append(float(Q[j] @ w))
                for _ in range(2):  # full reorthogonalisation, twice
                    w = w - Q[: j + 1].T @ (Q[: j + 1] @ w)
                beta = float(w.norm())
                scale = max(abs(a) for a in alphas) + max(betas, default=0.0)
                if j + 1 == steps or beta <= 1e-12 * max(scale, 1e-300):
                    break
                betas.append(beta)
                Q[j + 1] = w / beta
            T = torch.diag(torch.tensor(alphas, dtype=torch.float64))
            if betas:
                off = torch.tensor(betas, dtype=torch.float64)
                T = T + torch.diag(off, 1) + torch.diag(off, -1)
            theta, S = torch.linalg.eigh(T)
            m = len(alphas)
            nodes[p, :m], weights[p, :m] = theta, S[0] ** 2
            nodes[p, m:] = theta[-1]
            bar.update(steps - m)
    return SpectralDensity(nodes, weights, n_matvec)


def wasserstein_distance(density: SpectralDensity, eigenvalues: torch.Tensor) -> float:
    """W₁ between the SLQ estimate and the uniform measure on exact ``eigenvalues``,
    ∫ abs(F_SLQ(x) − F(x)) dx, computed exactly (both CDFs are step functions: a sum over the merged
    jump points)."""
    if not isinstance(density, SpectralDensity):
        raise TypeError(f"density must be a SpectralDensity, got {type(density).__name__}")
    eigenvalues = checks.tensor("eigenvalues", eigenvalues, ndim=1, nonempty=True).to(torch.float64).cpu()
    points = torch.cat([density.nodes.reshape(-1), eigenvalues]).sort().values
    exact = torch.searchsorted(eigenvalues.sort().values, points, right=True).double() / eigenvalues.numel()
    gap = (density.cdf(points) - exact).abs()
    return float((gap[:-1] * points.diff()).sum())


def error_bound(steps: int, probes: int, dim: int, width: float) -> tuple[float, float]:
    """The two parts of E W₁(SLQ, spectrum) for a spectrum in an interval of length ``width`` = b − a:

    * quadrature, for every probe: W₁(μ_u, Gauss_m) = sup over 1-Lipschitz f of the quadrature error
      ≤ 2 E_{2m−1}(f) ≤ π (b − a) / (4m) (Gauss is exact to degree 2m − 1; Jackson's theorem
      E_n(f) ≤ π L (b − a) / (4(n + 1)));
    * sampling: the probe average of F_u(x) = Σ_{λ_i ≤ x} (uᵀx_i)², u uniform on the sphere, is a mean of
      Beta(k/2, (d − k)/2) variables of variance ≤ 1/(2(d + 2)), so E ∫ abs(F_avg − F) ≤ (b − a) /
      √(2 (d + 2) n_probes).

    Returns (quadrature, sampling); W₁ is convex in the measures, so E W₁ ≤ their sum.
    """
    steps, probes = checks.positive_int("steps", steps), checks.positive_int("probes", probes)
    dim, width = checks.positive_int("dim", dim), checks.positive_float("width", width)
    return math.pi * width / (4 * steps), width / math.sqrt(2 * (dim + 2) * probes)


def moment_zscores(density: SpectralDensity, eigenvalues: torch.Tensor, orders: Sequence[int]) -> list[float]:
    """For each k of ``orders``: (mean_p uᵀA^k u − tr(A^k)/d) / its standard error, from exact
    ``eigenvalues``.

    Hutchinson on the sphere: for u uniform on the unit sphere and B = A^k with eigenvalues b,
    E uᵀBu = mean(b) and Var uᵀBu = 2 (mean(b²) − mean(b)²) / (d + 2); SLQ's k-th moment equals uᵀBu
    when k ≤ 2m − 1, so these are N(0, 1)-like for the right matrix and large for a wrong one.
    """
    if not isinstance(density, SpectralDensity):
        raise TypeError(f"density must be a SpectralDensity, got {type(density).__name__}")
    eigenvalues = checks.tensor("eigenvalues", eigenvalues, ndim=1, nonempty=True).to(torch.float64).cpu()
    orders = checks.int_sequence("orders", orders, minimum=0)
    d, n = eigenvalues.numel(), density.nodes.shape[0]
    out = []
    for k in orders:
        b = eigenvalues**k
        variance = 2 * float((b**2).mean() - b.mean() ** 2) / (d + 2)
        error = float(density.moments(k).mean() - b.mean())
        out.append(error / math.sqrt(max(variance, 1e-300) / n))
    return out
