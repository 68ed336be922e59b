r"""What a reconstruction function knows about the density: score, Hessian, energy, samples.

All equation numbers refer to Alain's PhD thesis (2018), ch. 3, which is
Alain & Bengio (2014), *What regularized auto-encoders learn from the data-generating
distribution*. ``r`` is a reconstruction function (an ``nn.Module`` or any callable
mapping ``(n, d)`` to ``(n, d)``) trained with Gaussian corruption of standard deviation
``sigma``; a ``score_fn`` maps ``(n, d)`` to an estimate of :math:`\nabla\log p` of shape ``(n, d)``.

Contents:

* :func:`dae_score`, :func:`reconstruction_jacobian`, :func:`log_density_hessian` (eqs. 3.5/3.10, 3.9);
* :func:`field_divergence` and :func:`segment_sources`: sources and sinks of r(x) - x (§3.3.4); in 1-D,
  :func:`fixed_points_1d` (Fig. 3.2);
* :func:`energy_difference` (eqs. 3.13-3.14) and :func:`metropolis_hastings` (§3.4.2);
* :func:`denoising_chain`: the deterministic chain x <- r(x), which ends on r's attractors (§3.4.3);
* :func:`rcae_1d` and :func:`dae_1d`, the non-parametric 1-D solutions of Figs. 3.3-3.4 (§3.3.3), and
  :func:`rcae_1d_limit`, the σ → 0 limit of the RCAE's score estimate (its discretisation floor);
* :func:`local_mean_1d` and :func:`local_mean_mc`, the local mean of Theorem 3 (app. 3.D).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.linalg
import torch

from dae_tutor import checks

__all__ = [
    "dae_1d",
    "dae_score",
    "denoising_chain",
    "empirical_dae",
    "energy_difference",
    "field_divergence",
    "fixed_points_1d",
    "local_mean_1d",
    "local_mean_mc",
    "log_density_hessian",
    "metropolis_hastings",
    "rcae_1d",
    "rcae_1d_limit",
    "reconstruction_jacobian",
    "segment_sources",
]

Fn = Callable[[torch.Tensor], torch.Tensor]
ENERGY_RULES = ("trapezoid", "mean")


def _callable(name: str, value: object) -> Fn:
    if not callable(value):
        raise TypeError(f"{name} must be callable, got {type(value).__name__}")
    return value  # type: ignore[return-value]


def _call_same_shape(name: str, fn: Fn, x: torch.Tensor) -> torch.Tensor:
    out = fn(x)
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"{name} must map a tensor of shape {tuple(x.shape)} to the same shape, got {got}")
    return out


# ------------------------------------------------------------------ score and Hessian
def _sigma_of(r: Fn, sigma: float | None) -> float:
    """``sigma`` if given, else the σ the model ``r`` records (:class:`~dae_tutor.nets.TrainedAtSigma`)."""
    if sigma is None:
        sigma = getattr(r, "sigma", None)
        if sigma is None:
            raise ValueError(
                "sigma is None and r records no training sigma (train.fit_dae records it on the model "
                "it returns); pass sigma="
            )
    return checks.positive_float("sigma", sigma)


def dae_score(r: Fn, x: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
    r"""The DAE estimate of the score, :math:`(r(x) - x)/\sigma^2` (thesis eqs. 3.5 and 3.10).

    For the optimal DAE it is exactly :math:`\nabla\log p_\sigma(x)` (Tweedie's formula, Efron 2011) and it
    tends to :math:`\nabla\log p(x)` as :math:`\sigma\to0`. ``x`` is ``(..., d)``. ``sigma``: default
    ``r.sigma``, the σ :func:`~dae_tutor.train.fit_dae` trained ``r`` at.
    """
    r = _callable("r", r)
    x = checks.tensor("x", x, nonempty=True)
    sigma = _sigma_of(r, sigma)
    return (_call_same_shape("r", r, x) - x) / sigma**2


def reconstruction_jacobian(r: Fn, x: torch.Tensor, *, chunk_size: int | None = None) -> torch.Tensor:
    r"""The Jacobian :math:`\partial r/\partial x` at each row of ``x`` ``(n, d)``, shape ``(n, d, d)``.

    Entry ``[i, a, b]`` is :math:`\partial r_a/\partial x_b` at ``x[i]``. Computed exactly by
    ``torch.func.vmap(torch.func.jacrev(...))``, calling ``r`` on one row at a time (shape ``(1, d)``);
    ``chunk_size`` bounds how many rows are processed together.
    """
    r = _callable("r", r)
    x = checks.tensor("x", x, ndim=2, nonempty=True)
    if chunk_size is not None:
        chunk_size = checks.positive_int("chunk_size", chunk_size)
    _call_same_shape("r", r, x[:1])

    def one(xi: torch.Tensor) -> torch.Tensor:
        return r(xi.unsqueeze(0)).squeeze(0)

    return torch.func.vmap(torch.func.jacrev(one), chunk_size=chunk_size)(x)


def log_density_hessian(
    r: Fn, x: torch.Tensor, sigma: float | None = None, *, chunk_size: int | None = None
) -> torch.Tensor:
    r"""The DAE estimate of the Hessian of :math:`\log p`: :math:`(\partial r/\partial x - I)/\sigma^2`.

    Thesis eq. 3.9 and §3.3.8. For the optimal DAE it is exactly :math:`\nabla^2\log p_\sigma`
    (differentiate Tweedie's formula). ``x`` is ``(n, d)``; the result is ``(n, d, d)``. ``sigma``:
    default ``r.sigma``, as in :func:`dae_score`.
    """
    sigma = _sigma_of(_callable("r", r), sigma)
    jac = reconstruction_jacobian(r, x, chunk_size=chunk_size)
    eye = torch.eye(jac.shape[-1], dtype=jac.dtype, device=jac.device)
    return (jac - eye) / sigma**2


def field_divergence(r: Fn, x: torch.Tensor, *, chunk_size: int | None = None) -> torch.Tensor:
    r"""Divergence of the reconstruction field, :math:`\nabla\cdot(r(x) - x) = \operatorname{tr} J_r - d`.

    For the optimal DAE it is :math:`\sigma^2\Delta\log p_\sigma(x)` (the trace of thesis eq. 3.9):
    positive at a *source* of the field (between the arms of the spiral, thesis §3.3.4 and
    Fig. 3.5's zoom), negative at a sink (on the data). ``x`` is ``(n, d)``; returns ``(n,)``,
    from the exact Jacobian of :func:`reconstruction_jacobian`.
    """
    jac = reconstruction_jacobian(r, x, chunk_size=chunk_size)
    return jac.diagonal(dim1=1, dim2=2).sum(1) - jac.shape[-1]


def segment_sources(
    r: Fn, start: torch.Tensor, end: torch.Tensor, margin: float, *, n_points: int = 201
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Where the field :math:`r(x) - x` turns from pointing back to ``start`` to pointing on to ``end``.

    On each segment from ``start[i]`` to ``end[i]`` (rows of ``(n, d)`` tensors, e.g. a point of an
    inner arm of the spiral and the point of the next arm outwards, thesis §3.3.4) the component
    :math:`a(s) = u^\top(r(x_s) - x_s)`, :math:`u = (\text{end} - \text{start})/\lVert\cdot\rVert`, is
    evaluated at ``n_points`` evenly spaced :math:`x_s`, keeping only those at least ``margin``
    (e.g. 3σ) from both ends. If both ends are sinks (a < 0 just after ``start``, a > 0 just before
    ``end``) a − → + change of sign, a source along u, lies between them by continuity: that is
    what is located, not assumed. Returns ``(position, n_sources)``: the position in [0, 1] along
    the segment of the first − → + change (linear interpolation between the two grid points, exact
    for a field linear along the segment; NaN where there is none) and the number of such changes
    (int64), each ``(n,)``.
    """
    r = _callable("r", r)
    start = checks.tensor("start", start, ndim=2, nonempty=True)
    end = checks.tensor("end", end, ndim=2)
    if end.shape != start.shape:
        raise ValueError(f"end must have the shape of start {tuple(start.shape)}, got {tuple(end.shape)}")
    margin = checks.positive_float("margin", margin, allow_zero=True)
    n_points = checks.positive_int("n_points", n_points, minimum=3)
    delta = end - start
    length = delta.norm(dim=1)
    if bool((length <= 2 * margin).any()):
        raise ValueError(
            f"every segment must be longer than 2 * margin = {2 * margin}, got {length.min():.3g}"
        )
    u = delta / length[:, None]
    s = torch.linspace(0.0, 1.0, n_points, dtype=start.dtype, device=start.device)
    pts = start[None] + s[:, None, None] * delta[None]  # (n_points, n, d)
    with torch.no_grad():
        flat = pts.reshape(-1, start.shape[1])
        a = ((_call_same_shape("r", r, flat) - flat).reshape(pts.shape) * u[None]).sum(-1)  # (n_points, n)
    inside = (s[:, None] * length[None] >= margin) & ((1 - s[:, None]) * length[None] >= margin)
    turn = inside[:-1] & inside[1:] & (a[:-1] < 0) & (a[1:] >= 0)  # (n_points - 1, n)
    n_sources = turn.sum(0)
    first = turn.to(torch.int64).argmax(0)
    cols = torch.arange(len(start), device=start.device)
    a0, a1 = a[first, cols], a[first + 1, cols]
    position = s[first] + (s[1] - s[0]) * a0 / (a0 - a1)
    position = torch.where(n_sources > 0, position, torch.full_like(position, float("nan")))
    return position, n_sources


def fixed_points_1d(r: Fn, grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Sources and sinks of a 1-d field :math:`a(x) = r(x) - x` on an increasing ``grid`` ``(n,)``.

    Where :math:`a` changes sign between two grid points, :math:`r` crosses the identity (thesis Fig. 3.2):
    from − to + (:math:`r' > 1`, the field points away on both sides) is a *source*, from + to −
    (:math:`r' < 1`) a *sink*. ``r`` maps ``(n, 1)`` to ``(n, 1)``. Returns ``(positions, is_source)``,
    each ``(k,)`` in grid order, the positions by linear interpolation between the two grid points
    (exact for a linear field).
    """
    r = _callable("r", r)
    grid = checks.tensor("grid", grid, ndim=1)
    if grid.shape[0] < 2 or bool((torch.diff(grid) <= 0).any()):
        raise ValueError("grid must be increasing with at least 2 points")
    with torch.no_grad():
        a = (_call_same_shape("r", r, grid[:, None]) - grid[:, None])[:, 0]
    change = torch.nonzero((a[:-1] < 0) != (a[1:] < 0))[:, 0]
    a0, a1 = a[change], a[change + 1]
    positions = grid[change] + (grid[change + 1] - grid[change]) * a0 / (a0 - a1)
    return positions, a0 < 0


def empirical_dae(data: torch.Tensor, sigma: float) -> Fn:
    r"""The optimal DAE of the empirical law of ``data`` ``(n, d)`` at noise σ: a callable r*.

    Thesis Theorem 1 (eq. 3.3) with p the empirical distribution:
    :math:`r^*_\sigma(x) = \sum_i w_i(x)\,x_i`, :math:`w_i \propto \exp(-\lVert x - x_i\rVert^2 / 2\sigma^2)`,
    the posterior mean of the clean point; its score :math:`(r^* - x)/\sigma^2` is that of the Parzen
    density of width σ. The reference a learned DAE is compared with (the control of ch. 1 §1.10).
    The returned function maps ``(m, d)`` to ``(m, d)``.
    """
    data = checks.tensor("data", data, ndim=2, nonempty=True).detach()
    sigma = checks.positive_float("sigma", sigma)

    def r(x: torch.Tensor) -> torch.Tensor:
        x = checks.tensor("x", x, ndim=2)
        centres = checks.same_width("data", data, "x", x).to(x)
        return torch.softmax(-torch.cdist(x, centres).pow(2) / (2 * sigma**2), dim=1) @ centres

    r.sigma = sigma  # type: ignore[attr-defined]
    return r


def denoising_chain(r: Fn, x0: torch.Tensor, n_steps: int) -> torch.Tensor:
    """The end x_K of the deterministic chain x_{k+1} = r(x_k) from ``x0`` (n, d), K = ``n_steps``.

    It stops at the fixed points r(x) = x that attract it: the modes of p_σ for the optimal DAE
    (r* = x + σ² ∇log p_σ, eq. 3.5), and for a learned r also the spurious attractors far from the
    data (thesis §3.4.3, Fig. 3.7). Runs without gradients.
    """
    r = _callable("r", r)
    x0 = checks.tensor("x0", x0, ndim=2, nonempty=True)
    n_steps = checks.positive_int("n_steps", n_steps)
    with torch.no_grad():
        ends = _call_same_shape("r", r, x0)
        for _ in range(n_steps - 1):
            ends = r(ends)
    return ends


# ------------------------------------------------------------- energy and sampling
def energy_difference(
    score_fn: Fn, x: torch.Tensor, x_star: torch.Tensor, n: int = 10, rule: str = "trapezoid"
) -> torch.Tensor:
    r""":math:`E(x^*) - E(x)` by integrating :math:`\partial E/\partial x = -\text{score}` along the segment.

    Thesis eq. 3.13 on the straight path, discretised on ``n`` evenly spaced points
    :math:`x_1 = x, \dots, x_n = x^*`:

    * ``rule="mean"`` is eq. 3.14, :math:`-\frac1n\sum_i \text{score}(x_i)^\top(x^*-x)` (error
      :math:`O(1/n)`; ``n=1`` is the first-order Taylor estimate);
    * ``rule="trapezoid"`` gives the end points half weight (error :math:`O(1/n^2)`, exact for a
      quadratic energy; needs ``n >= 2``).

    ``x`` and ``x_star`` are ``(..., d)`` of equal shape; ``score_fn`` is called once on all
    ``n`` points of every pair, stacked as ``(n * m, d)``. Returns ``(...,)``.
    """
    score_fn = _callable("score_fn", score_fn)
    x = checks.tensor("x", x)
    x_star = checks.tensor("x_star", x_star)
    if x.dim() == 0:
        raise ValueError("x must have at least 1 dimension (..., d)")
    if x_star.shape != x.shape:
        raise ValueError(f"x_star must have the shape of x {tuple(x.shape)}, got {tuple(x_star.shape)}")
    rule = checks.one_of("rule", rule, ENERGY_RULES)
    n = checks.positive_int("n", n, minimum=2 if rule == "trapezoid" else 1)
    batch, d = x.shape[:-1], x.shape[-1]
    a, b = x.reshape(-1, d), x_star.reshape(-1, d)
    delta = b - a
    s = torch.linspace(0.0, 1.0, n, dtype=x.dtype, device=x.device) if n > 1 else x.new_zeros(1)
    pts = a.unsqueeze(0) + s[:, None, None] * delta.unsqueeze(0)  # (n, m, d)
    flat = pts.reshape(-1, d)
    scores = _call_same_shape("score_fn", score_fn, flat).reshape(n, -1, d)
    if rule == "mean":
        weights = torch.full((n,), 1.0 / n, dtype=x.dtype, device=x.device)
    else:
        weights = torch.full((n,), 1.0 / (n - 1), dtype=x.dtype, device=x.device)
        weights[0] = weights[-1] = 0.5 / (n - 1)
    proj = (scores * delta.unsqueeze(0)).sum(-1)  # (n, m)
    return -(weights[:, None] * proj).sum(0).reshape(batch)


def metropolis_hastings(
    score_fn: Fn,
    x0: torch.Tensor,
    n_steps: int,
    step_size: float,
    generator: torch.Generator | None = None,
    n_path: int = 10,
) -> tuple[torch.Tensor, float]:
    r"""Metropolis-Hastings driven by a score estimate only (thesis §3.4.2, eqs. 3.13-3.14).

    Each step proposes :math:`x^* = x + \text{step\_size}\cdot\mathcal N(0, I)` (symmetric) and
    accepts with probability :math:`\min(1, e^{-\Delta E})`, where
    :math:`\Delta E = E(x^*) - E(x)` comes from :func:`energy_difference` (trapezoid on ``n_path``
    points). With a DAE score :math:`(r(x)-x)/\sigma^2` the chain targets :math:`p_\sigma`, not
    :math:`p` (as thesis §3.4.2 observes of its own samples).

    Args:
        score_fn: maps ``(m, d)`` to ``(m, d)``.
        x0: ``(n_chains, d)`` starting points; the chains run in parallel.
        n_steps: number of MH steps.
        step_size: proposal standard deviation :math:`\sigma_{MH}`.
        generator: randomness, drawn on the generator's device (CPU by default) in float64,
            so a seed gives the same chain for any device or dtype of ``x0``.
        n_path: points of the trapezoid rule (>= 2).

    Returns:
        ``(chain, acceptance_rate)``: ``chain`` is ``(n_steps + 1, n_chains, d)`` with ``x0`` first,
        and the acceptance rate is over all steps and chains. Results are detached from autograd.
    """
    score_fn = _callable("score_fn", score_fn)
    x = checks.tensor("x0", x0, ndim=2).detach()
    n_steps = checks.positive_int("n_steps", n_steps)
    step_size = checks.positive_float("step_size", step_size)
    generator = checks.generator("generator", generator)
    n_path = checks.positive_int("n_path", n_path, minimum=2)
    gen_device = generator.device if generator is not None else torch.device("cpu")
    n_chains, d = x.shape
    chain = torch.empty((n_steps + 1, n_chains, d), dtype=x.dtype, device=x.device)
    chain[0] = x
    accepted = 0
    for step in range(1, n_steps + 1):
        noise = torch.randn(n_chains, d, dtype=torch.float64, device=gen_device, generator=generator)
        log_u = torch.log(torch.rand(n_chains, dtype=torch.float64, device=gen_device, generator=generator))
        x_star = x + step_size * noise.to(dtype=x.dtype, device=x.device)
        delta_e = energy_difference(score_fn, x, x_star, n=n_path, rule="trapezoid").detach()
        if not bool(torch.isfinite(delta_e).all()):
            raise ValueError(f"score_fn produced a non-finite energy difference at step {step}")
        accept = log_u.to(x.device) < -delta_e.to(torch.float64)
        x = torch.where(accept.unsqueeze(-1), x_star, x)
        chain[step] = x
        accepted += int(accept.sum())
    return chain, accepted / (n_steps * n_chains)


# ------------------------------------------------ non-parametric 1-D solutions
def _grid_and_density(
    grid: object, density: object, *, strictly_positive: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    grid = checks.tensor("grid", grid, ndim=1)
    density = checks.tensor("density", density, ndim=1)
    if grid.shape[0] < 3:
        raise ValueError(f"grid must have at least 3 points, got {grid.shape[0]}")
    if density.shape != grid.shape:
        raise ValueError(
            f"density must have the shape of grid {tuple(grid.shape)}, got {tuple(density.shape)}"
        )
    steps = torch.diff(grid.to(torch.float64))
    step = float(steps.mean())
    if step <= 0 or float((steps - step).abs().max()) > 1e-3 * step:
        raise ValueError("grid must be increasing and evenly spaced")
    if strictly_positive and bool((density <= 0).any()):
        raise ValueError("density must be > 0 at every grid point (the RCAE system is then well posed)")
    if bool((density < 0).any()) or float(density.sum()) <= 0:
        raise ValueError("density must be non-negative with a positive sum")
    return grid, density


def rcae_1d(grid: torch.Tensor, density: torch.Tensor, sigma: float) -> torch.Tensor:
    r"""The exact minimiser :math:`\hat r` of the discretised RCAE loss (thesis eq. 3.11, §3.3.3).

    .. math:: \sum_{i=1}^M p_i\Delta(\hat r_i - x_i)^2
              + \sigma^2\sum_{i=1}^{M-1} p_i\Delta\Big(\frac{\hat r_{i+1}-\hat r_i}{\Delta}\Big)^2 .

    Setting its gradient to 0 gives the symmetric tridiagonal system (thesis §3.3.3)
    :math:`p_j\Delta(\hat r_j-x_j) + \frac{\sigma^2}{\Delta}[p_{j-1}(\hat r_j-\hat r_{j-1})\mathbb 1_{j>1}
    - p_j(\hat r_{j+1}-\hat r_j)\mathbb 1_{j<M}] = 0`, solved in float64 by a banded Cholesky.

    Args:
        grid: ``(M,)`` evenly spaced increasing points (the thesis: ``M = 1000`` on ``[-1.5, 1.5]``).
        density: ``(M,)`` values :math:`p(x_i) > 0` (the scale does not matter).
        sigma: the regularisation :math:`\sigma > 0` (the loss uses :math:`\sigma^2`).

    Returns ``(M,)`` values :math:`\hat r(x_i)` in the grid's dtype and device.
    """
    grid, density = _grid_and_density(grid, density, strictly_positive=True)
    sigma = checks.positive_float("sigma", sigma)
    x = grid.detach().cpu().to(torch.float64).numpy()
    p = density.detach().cpu().to(torch.float64).numpy()
    m = x.shape[0]
    step = (x[-1] - x[0]) / (m - 1)
    c = sigma**2 / step
    diag = p * step + c * (np.r_[0.0, p[:-1]] + np.r_[p[:-1], 0.0])
    upper = np.zeros((2, m))
    upper[0, 1:] = -c * p[:-1]
    upper[1] = diag
    r_hat = scipy.linalg.solveh_banded(upper, p * step * x, lower=False, check_finite=False)
    return torch.from_numpy(r_hat).to(dtype=grid.dtype, device=grid.device)


def rcae_1d_limit(grid: torch.Tensor, density: torch.Tensor) -> torch.Tensor:
    r"""The σ → 0 limit of :func:`rcae_1d`'s score :math:`(\hat r_i - x_i)/\sigma^2`: the floor of eq. 3.11.

    Putting :math:`\hat r_i = x_i + \sigma^2 s_i + O(\sigma^4)` into the tridiagonal system of eq. 3.11
    (thesis §3.3.3) leaves, at order σ², :math:`p_i\Delta s_i = p_i\mathbb 1_{i<M} - p_{i-1}\mathbb 1_{i>1}`:

    .. math:: s_i = \frac{p_i - p_{i-1}}{\Delta\, p_i}
              = \frac{p'(x_i)}{p(x_i)} - \frac{\Delta}{2}\frac{p''(x_i)}{p(x_i)} + O(\Delta^2)
              \quad (1 < i < M),

    a one-sided difference, because eq. 3.11 weights the derivative term by :math:`p(x_i)` at the left end
    of each interval. So however small σ, the RCAE's score error keeps an :math:`O(\Delta)` floor,
    :math:`\tfrac{\Delta}{2}\lvert p''/p\rvert`. Returns ``(M,)`` values :math:`s_i` (the ends included,
    :math:`s_1 = 1/\Delta`, :math:`s_M = -p_{M-1}/(\Delta p_M)`: boundary layers, not scores).
    """
    grid, density = _grid_and_density(grid, density, strictly_positive=True)
    p = density.to(torch.float64)
    step = (grid[-1] - grid[0]).to(torch.float64) / (grid.shape[0] - 1)
    inflow = torch.cat([p[:-1], p.new_zeros(1)])  # p_i for i < M
    outflow = torch.cat([p.new_zeros(1), p[:-1]])  # p_{i-1} for i > 1
    return ((inflow - outflow) / (step * p)).to(dtype=grid.dtype)


def dae_1d(
    grid: torch.Tensor,
    density: torch.Tensor,
    sigma: float,
    query: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""The discrete version of the optimal DAE, thesis eq. 3.3 (§3.3.3, Fig. 3.4).

    With the density truncated to the grid,

    .. math:: \hat r(q) = \frac{\sum_i e^{-(x_i-q)^2/2\sigma^2} p_i x_i}{\sum_i e^{-(x_i-q)^2/2\sigma^2} p_i},

    evaluated (log-sum-exp stable, float64) at ``query`` (default: the grid itself).
    ``density`` holds :math:`p(x_i) \ge 0` (the scale does not matter). Returns ``query``-shaped
    values in the grid's dtype and device.
    """
    grid, density = _grid_and_density(grid, density, strictly_positive=False)
    sigma = checks.positive_float("sigma", sigma)
    q = grid if query is None else checks.tensor("query", query)
    x = grid.to(torch.float64)
    log_p = torch.log(density.to(torch.float64))
    qf = q.to(dtype=torch.float64, device=grid.device).reshape(-1)
    out = torch.empty_like(qf)
    for start in range(0, qf.shape[0], 512):
        rows = qf[start : start + 512, None]
        logits = log_p - (x - rows) ** 2 / (2 * sigma**2)
        out[start : start + 512] = torch.softmax(logits, dim=-1) @ x
    return out.reshape(q.shape).to(dtype=grid.dtype)


# ------------------------------------------------------------------- local mean
LogProb = Callable[[torch.Tensor], torch.Tensor]


def local_mean_1d(log_prob: LogProb, x0: torch.Tensor, delta: float, n_nodes: int = 64) -> torch.Tensor:
    r"""The local mean in 1-D, :math:`m_\delta(x_0) = \int_B x\,p / \int_B p` on :math:`B=(x_0\pm\delta)`.

    Thesis app. 3.D, Theorem 3:
    :math:`m_\delta(x_0) = x_0 + \frac{\delta^2}{d+2}\nabla\log p(x_0) + o(\delta^3)`,
    here with :math:`d = 1`. Computed by ``n_nodes``-point Gauss-Legendre quadrature.

    ``log_prob`` maps ``(..., 1)`` to ``(...,)`` (e.g. ``GaussianMixture.log_prob``); ``x0`` is a
    tensor of points ``(...,)``. Returns ``(...,)``.
    """
    log_prob = _callable("log_prob", log_prob)
    x0 = checks.tensor("x0", x0)
    delta = checks.positive_float("delta", delta)
    n_nodes = checks.positive_int("n_nodes", n_nodes, minimum=2)
    nodes, weights = np.polynomial.legendre.leggauss(n_nodes)
    nodes = torch.as_tensor(nodes, dtype=x0.dtype, device=x0.device)
    log_w = torch.log(torch.as_tensor(weights, dtype=x0.dtype, device=x0.device))
    pts = x0.unsqueeze(-1) + delta * nodes  # (..., n_nodes)
    lp = log_prob(pts.unsqueeze(-1))
    if not isinstance(lp, torch.Tensor) or lp.shape != pts.shape:
        raise ValueError("log_prob must map (..., 1) to (...,)")
    return (torch.softmax(lp + log_w, dim=-1) * pts).sum(-1)


def local_mean_mc(
    log_prob: LogProb,
    x0: torch.Tensor,
    delta: float,
    n_samples: int = 100_000,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Monte-Carlo local mean :math:`m_\delta(x_0)` over the ball :math:`B_\delta(x_0) \subset \mathbb R^d`.

    Thesis app. 3.D, Theorem 3: :math:`m_\delta(x_0) - x_0 \approx \frac{\delta^2}{d+2}\nabla\log p(x_0)`.
    Draws ``n_samples`` points uniformly in the ball and weights them by :math:`p` (self-normalised).

    ``log_prob`` maps ``(n, d)`` to ``(n,)``; ``x0`` is ``(d,)``. Returns ``(mean, standard_error)``,
    both ``(d,)``, the standard error being the delta-method one of the self-normalised estimate.
    """
    log_prob = _callable("log_prob", log_prob)
    x0 = checks.tensor("x0", x0, ndim=1, nonempty=True)
    delta = checks.positive_float("delta", delta)
    n_samples = checks.positive_int("n_samples", n_samples, minimum=2)
    generator = checks.generator("generator", generator)
    gen_device = generator.device if generator is not None else torch.device("cpu")
    d = x0.shape[0]
    direction = torch.randn(n_samples, d, dtype=torch.float64, device=gen_device, generator=generator)
    direction = direction / direction.norm(dim=-1, keepdim=True)
    radius = delta * torch.rand(
        n_samples, 1, dtype=torch.float64, device=gen_device, generator=generator
    ) ** (1.0 / d)
    pts = x0 + (radius * direction).to(dtype=x0.dtype, device=x0.device)
    lp = log_prob(pts)
    if not isinstance(lp, torch.Tensor) or lp.shape != (n_samples,):
        raise ValueError(f"log_prob must map (n, d) to (n,), got {getattr(lp, 'shape', type(lp).__name__)}")
    w = torch.softmax(lp, dim=0)
    mean = w @ pts
    se = torch.sqrt((w.pow(2).unsqueeze(-1) * (pts - mean).pow(2)).sum(0))
    return mean, se
