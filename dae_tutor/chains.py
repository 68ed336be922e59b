r"""Exact finite-state Markov chains of denoising auto-encoders (chapter 2).

On a finite state space :math:`\{0, \dots, K-1\}` every object of the GDAE/GSN theory is a
matrix, so the theorems can be checked to float64 precision:

* a corruption :math:`\mathcal C(\tilde x \mid x)` is a row-stochastic matrix ``C[x, x_tilde]``
  (:func:`corruption_matrix`, :func:`window_corruption`);
* the reconstruction :math:`P(x \mid \tilde x)` is a row-stochastic matrix ``R[x_tilde, x]``, exact by
  Bayes' rule (:func:`bayes_reconstruction`) or estimated by counting (:func:`counting_estimator`);
* the DAE chain :math:`X_t \to \tilde X_t \to X_{t+1}` has transition matrix :math:`T = C R`
  (:func:`dae_transition`), whose stationary distribution (:func:`stationary_distribution`) is the
  data distribution when ``R`` is the exact posterior ([GDAE] §2.3, Thm 1; [TH] §5.3.1, Prop. 1);
* robustness to an imperfect ``R`` is Schweitzer's bound (:func:`schweitzer_bound`; [TH] §5.3.4, Thm 4);
* walkback ([GDAE] §3, Algorithm 2; [TH] §5.3.2, eq. 5.2) has an exact corruption
  :func:`walkback_corruption`, a fixed point :func:`walkback_fixed_point` and samplers
  :func:`walkback_pairs` (one example, literal) and :func:`walkback_batch` (vectorised);
* chains and training pairs are sampled by :func:`sample_chain` and :func:`sample_pairs`.
* binary states: :func:`salt_and_pepper_kernel` and the factorized decoder :func:`factorized_projection`
  (the noise and the decoder family of the MNIST experiments, [GDAE] §4);
* clamping ([TH] §5.3.6, Prop. 5; App. 5.B, eq. 5.5; [DLB] §20.11.2): :func:`clamped_transition`,
  :func:`clamped_stationary`, :func:`conditional_on`, :func:`encoder_decoder_joint`, :func:`eq55_residual`;
* the GSN with latent state ([TH] §5.3.4, Thm 3): :func:`burnin_hidden`, :func:`gsn_decoder_target`,
  :func:`gsn_joint_transition`, :func:`gsn_marginal_x`;
* dependency networks ([TH] §5.3.7, Prop. 6): :func:`site_kernels`, :func:`random_scan_kernel`,
  :func:`systematic_scan_kernel`, :func:`augmented_ordered_chain`, :func:`conditional_null_space`.

Conventions (the book's own): matrices are **row-stochastic**, ``T[x, x'] = P(X_{t+1}=x' | X_t=x)``;
distributions are row vectors and stationarity is :math:`\pi T = \pi`; :math:`\mathrm{TV}(p, q) =
\tfrac12\lVert p - q\rVert_1`; walkback is parametrised by the **stopping** probability ``p_stop``
(the number of corruptions is :math:`k \sim \mathrm{Geom}(p_\text{stop})` on :math:`\{1, 2, \dots\}`;
[GDAE]'s :math:`p` is the probability to *continue*, :math:`p = 1 - p_\text{stop}`).

Every function accepts torch tensors or array-likes (NumPy arrays, lists), computes in float64 and
answers with float64 (or int64 states) on the device of its first matrix argument (of ``x`` for
:func:`counting_estimator`).

Sources: [GDAE] = Bengio, Yao, Alain and Vincent (2013), *Generalized Denoising Auto-Encoders as
Generative Models*; [GSN14] = Bengio, Thibodeau-Laufer, Alain and Yosinski (2014), *Deep Generative
Stochastic Networks Trainable by Backprop*; [TH] = G. Alain's PhD thesis (2018), ch. 5 (*Generative
Stochastic Networks*, with its appendices 5.A and 5.B); [DLB] = Goodfellow, Bengio and Courville (2016),
*Deep Learning*, ch. 20.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable

import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from dae_tutor import checks

__all__ = [
    "CORRUPTION_KINDS",
    "augmented_ordered_chain",
    "bayes_reconstruction",
    "binary_states",
    "burnin_hidden",
    "check_stochastic",
    "clamp_decoder",
    "clamped_stationary",
    "clamped_transition",
    "closed_classes",
    "conditional_null_space",
    "conditional_on",
    "conditionals_from_joint",
    "corruption_matrix",
    "counting_estimator",
    "dae_transition",
    "detailed_balance_violation",
    "encoder_decoder_joint",
    "eq55_residual",
    "factorized_projection",
    "fundamental_matrix",
    "gaussian_grid_corruption",
    "gsn_decoder_target",
    "gsn_joint_transition",
    "gsn_marginal_x",
    "nonparametric_dae_step",
    "online_counting_training",
    "random_conditionals",
    "random_scan_kernel",
    "salt_and_pepper_kernel",
    "sample_chain",
    "sample_pairs",
    "schweitzer_bound",
    "second_eigenvalue_modulus",
    "site_kernels",
    "stationary_distribution",
    "systematic_scan_kernel",
    "tv_distance",
    "unimodal_projection",
    "walkback_batch",
    "walkback_corruption",
    "walkback_fixed_point",
    "walkback_pairs",
    "window_corruption",
]

F64 = torch.float64
CORRUPTION_KINDS = ("mix_uniform", "local_walk", "ring")
STOCHASTIC_ATOL = 1e-9
"""Tolerance on row sums (and on negative round-off) of float64 input: the round-off of a product of a
few stochastic matrices is ~1e-15, so anything above 1e-9 is a genuine error."""
_RESIDUAL_TOL = 1e-9


# ------------------------------------------------------------------------------------- argument checks
def _float64(name: str, value: object, device: torch.device | None = None) -> torch.Tensor:
    """``value`` as a finite float64 tensor (on ``device`` when given, else its own device or the CPU)."""
    return checks.as_tensor(name, value, dtype=F64, device=device)


def _input_eps(value: object) -> float:
    """Machine epsilon of ``value``'s own floating dtype (float64's for integers and Python lists)."""
    dtype = value.dtype if isinstance(value, (torch.Tensor, np.ndarray)) else None
    if isinstance(dtype, torch.dtype) and dtype.is_floating_point:
        return torch.finfo(dtype).eps
    if isinstance(dtype, np.dtype) and np.issubdtype(dtype, np.floating):
        return float(np.finfo(dtype).eps)
    return float(np.finfo(np.float64).eps)


def check_stochastic(name: str, value: object, *, atol: float = STOCHASTIC_ATOL) -> torch.Tensor:
    """Return ``value`` as a float64 ``(K, K)`` row-stochastic matrix, or raise naming ``name``.

    Entries must be ``>= -atol`` and every row must sum to 1 within ``atol`` (widened to ``64 eps``
    for float32/float16 input); the accepted round-off is then removed (negatives set to 0, rows
    divided by their sums), so the exact computations start from an exactly stochastic float64
    matrix. Raises ``TypeError`` for non-numeric input and ``ValueError`` otherwise.
    """
    return _row_stochastic(name, value, atol=atol, square=True)


def _row_stochastic(
    name: str, value: object, *, atol: float = STOCHASTIC_ATOL, square: bool = False, device=None
) -> torch.Tensor:
    """:func:`check_stochastic` for a possibly rectangular ``(n, m)`` kernel (an encoder ``f[x, h]`` or a
    decoder ``g[h, x]``) when ``square=False``."""
    atol = max(atol, 64 * _input_eps(value))
    m = _float64(name, value, device)
    if square and (m.dim() != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0):
        raise ValueError(f"{name} must be a non-empty square (K, K) matrix, got shape {tuple(m.shape)}")
    if not square and (m.dim() != 2 or m.numel() == 0):
        raise ValueError(f"{name} must be a non-empty 2-D (rows, cols) matrix, got shape {tuple(m.shape)}")
    low = float(m.min())
    if low < -atol:
        raise ValueError(f"{name} must have non-negative entries, got minimum {low:.3g}")
    m = m.clamp_min(0.0)
    sums = m.sum(dim=1)
    err = (sums - 1).abs()
    if float(err.max()) > atol:
        row = int(err.argmax())
        raise ValueError(
            f"{name} must be row-stochastic (rows summing to 1 within {atol:.2g}); "
            f"row {row} sums to {float(sums[row]):.12g} (build it in float64, or divide each row by its sum)"
        )
    return m / sums[:, None]


def _pmf(name: str, value: object, device: torch.device | None = None) -> torch.Tensor:
    """``value`` as a float64 probability vector (non-negative, summing to 1 within ``STOCHASTIC_ATOL``)."""
    p = _float64(name, value, device)
    if p.dim() != 1 or p.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D probability vector, got shape {tuple(p.shape)}")
    if float(p.min()) < -STOCHASTIC_ATOL:
        raise ValueError(f"{name} must be non-negative, got minimum {float(p.min()):.3g}")
    total = float(p.sum())
    if abs(total - 1) > STOCHASTIC_ATOL:
        raise ValueError(f"{name} must sum to 1, got {total:.12g} (divide it by its sum first)")
    return p.clamp_min(0.0)


def _same_size(name_a: str, k_a: int, name_b: str, k_b: int) -> None:
    if k_a != k_b:
        raise ValueError(f"{name_b} has {k_b} states but {name_a} has {k_a}; they must match")


def _pair(C: object, R: object) -> tuple[torch.Tensor, torch.Tensor]:
    """Check a corruption ``C`` and a reconstruction ``R`` of the same size; both on ``C``'s device."""
    c = check_stochastic("C", C)
    r = check_stochastic("R", _float64("R", R, c.device))
    _same_size("C", c.shape[0], "R", r.shape[0])
    return c, r


def _open_probability(name: str, value: object) -> float:
    """A probability strictly inside (0, 1)."""
    v = checks.probability(name, value)
    if not 0.0 < v < 1.0:
        raise ValueError(f"{name} must be in the open interval (0, 1), got {v}")
    return v


def _states(name: str, value: object, k: int, device: torch.device) -> torch.Tensor:
    """Integer state(s) in ``[0, k)`` as an int64 tensor (0-d for a single state)."""
    if isinstance(value, torch.Tensor):
        if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{name} must hold integer states, got dtype {value.dtype}")
        s = value.to(dtype=torch.int64, device=device)
    else:
        arr = np.asarray(value)
        if arr.size == 0:
            arr = arr.astype(np.int64)  # an empty list is a valid (empty) set of states
        if not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"{name} must hold integer states, got {arr.dtype} ({type(value).__name__})")
        s = torch.as_tensor(arr.astype(np.int64), device=device)
    if s.dim() > 1:
        raise ValueError(f"{name} must be a state or a 1-D tensor of states, got shape {tuple(s.shape)}")
    if s.numel() and (int(s.min()) < 0 or int(s.max()) >= k):
        lo, hi = int(s.min()), int(s.max())
        raise ValueError(f"{name} must hold states in [0, {k}), got values in [{lo}, {hi}]")
    return s


# ------------------------------------------------------------------------------------- corruptions
def corruption_matrix(
    K: int, kind: str = "mix_uniform", q: float = 0.5, *, device: torch.device | str | None = None
) -> torch.Tensor:
    r"""A corruption :math:`C[x, \tilde x] = \mathcal C(\tilde x \mid x)` on ``K`` states.

    ``q`` is the probability that the state is disturbed:

    * ``"mix_uniform"``: :math:`(1-q) I + q/K`: keep ``x``, or redraw it uniformly. Full support for
      ``q > 0``, so it meets the global-support ergodicity condition ([GDAE] §2.3, Cor. 1).
      The papers do not say which corruption their discrete non-parametric experiment used ([GDAE] §4,
      Fig. 3; [TH] §5.5.1, Fig. 5.3); this is the book's choice for it.
    * ``"local_walk"``: a ±1 random walk with reflection: stay w.p. :math:`1-q`, step ±1 w.p.
      :math:`q/2` each; a step off the end is mirrored back (from 0 the step to -1 lands on 1, so
      ``C[0, 1] = q``). Local, so it meets only [TH] App. 5.A, Cor. 2.
    * ``"ring"``: the same walk on the cycle :math:`x \pm 1 \bmod K`.

    Returns a float64 ``(K, K)`` row-stochastic matrix.
    """
    K = checks.positive_int("K", K, minimum=2)
    kind = checks.one_of("kind", kind, CORRUPTION_KINDS)
    q = checks.probability("q", q)
    if kind == "mix_uniform":
        return (1 - q) * torch.eye(K, dtype=F64, device=device) + q / K
    x = torch.arange(K, device=device)
    c = (1 - q) * torch.eye(K, dtype=F64, device=device)
    for step in (-1, 1):  # the two moves, each for all states at once
        y = x + step
        if kind == "ring":
            y = y % K
        else:
            y = torch.where((y < 0) | (y >= K), x - step, y)  # mirror reflection at the ends
        c.index_put_((x, y), torch.full((K,), q / 2, dtype=F64, device=device), accumulate=True)
    return c


def window_corruption(K: int, radius: int, *, device: torch.device | str | None = None) -> torch.Tensor:
    r"""Uniform corruption on the window :math:`\{x-r, \dots, x+r\}`, clipped at the ends.

    :math:`\tilde x = \mathrm{clip}(x + u, 0, K-1)` with :math:`u` uniform on :math:`\{-r, \dots, r\}`,
    so the mass of the steps past an end piles up on that end (the corruption that shows the "desert"
    rule after [TH] App. 5.A, Cor. 2). ``radius=0`` gives the identity (no corruption).
    """
    K = checks.positive_int("K", K, minimum=1)
    radius = checks.positive_int("radius", radius, minimum=0)
    x = torch.arange(K, device=device)
    targets = (x[:, None] + torch.arange(-radius, radius + 1, device=device)[None]).clamp(0, K - 1)
    c = torch.zeros(K, K, dtype=F64, device=device)
    weight = torch.full(targets.shape, 1.0 / (2 * radius + 1), dtype=F64, device=device)
    return c.scatter_add_(1, targets, weight)


def gaussian_grid_corruption(
    xs: object, sigma: float, *, device: torch.device | str | None = None
) -> torch.Tensor:
    r"""Discretised Gaussian corruption on the grid ``xs``: :math:`C[x, \tilde x] \propto
    \exp(-(\tilde x - x)^2 / 2\sigma^2)`, each row normalised.

    Args:
        xs: ``(K,)`` grid points. sigma: the noise width ``> 0`` in grid units of ``xs``.
    """
    grid = _float64("xs", xs, torch.device(device) if device is not None else None)
    if grid.dim() != 1 or grid.numel() < 2:
        raise ValueError(f"xs must be a 1-D grid of at least 2 points, got shape {tuple(grid.shape)}")
    sigma = checks.positive_float("sigma", sigma)
    logits = -((grid[None, :] - grid[:, None]) ** 2) / (2 * sigma**2)
    return torch.softmax(logits, dim=1)


# ------------------------------------------------------------------------------------- reconstruction and T
def bayes_reconstruction(P: object, C: object) -> torch.Tensor:
    r"""The exact posterior :math:`R[\tilde x, x] = \mathcal P(x \mid \tilde x) \propto \mathcal P(x)\,
    \mathcal C(\tilde x \mid x)`.

    This is the optimum of the DAE criterion with infinite capacity ([GDAE] §2.3, proof of Thm 1;
    [TH] eq. 5.1, in the proof of Prop. 1). A corrupted value with zero marginal :math:`\mathcal
    P(\tilde x) = \sum_x \mathcal P(x) C[x, \tilde x] = 0` is never produced from the data; its row is
    set to uniform so ``R`` stays row-stochastic.

    Args:
        P: ``(K,)`` data distribution.
        C: ``(K, K)`` row-stochastic corruption ``C[x, x_tilde]``.
    """
    c = check_stochastic("C", C)
    p = _pmf("P", P, c.device)
    _same_size("C", c.shape[0], "P", p.numel())
    joint = p[:, None] * c  # joint[x, x_tilde] = P(x) C(x_tilde | x)
    marginal = joint.sum(dim=0)  # P(x_tilde)
    k = p.numel()
    seen = marginal > 0
    r = torch.full((k, k), 1.0 / k, dtype=F64, device=c.device)
    r[seen] = (joint[:, seen] / marginal[seen]).T
    return r


def dae_transition(C: object, R: object) -> torch.Tensor:
    r"""The DAE chain's transition :math:`T = C R`, i.e. :math:`T(x' \mid x) = \sum_{\tilde x}
    R(x' \mid \tilde x)\, C(\tilde x \mid x)` ([GDAE] §2.3, the operator :math:`T_n`, here in the row
    convention). Rows are the current state."""
    c, r = _pair(C, R)
    return c @ r


def counting_estimator(x: object, x_tilde: object, K: int, alpha: float = 0.0) -> torch.Tensor:
    r"""The multinomial maximum-likelihood ("counting") reconstruction with add-:math:`\alpha` smoothing.

    :math:`\hat R[\tilde x, x] = \big(n(\tilde x, x) + \alpha\big) / \big(n(\tilde x) + K\alpha\big)`
    from training pairs :math:`(x_i, \tilde x_i)` ([GDAE] §4, [TH] §5.5.1: "estimated by
    multinomial models and maximum likelihood (counting)"; the smoothing is the book's addition). A row
    whose :math:`\tilde x` was never seen (possible only with ``alpha=0``) is uniform.

    Args:
        x: ``(n,)`` clean states; x_tilde: ``(n,)`` their corrupted versions; both integers in ``[0, K)``.
        K: number of states.
        alpha: pseudo-count added to every cell, ``>= 0``.

    Returns a float64 ``(K, K)`` row-stochastic matrix on the device of ``x``.
    """
    K = checks.positive_int("K", K)
    alpha = checks.positive_float("alpha", alpha, allow_zero=True)
    device = x.device if isinstance(x, torch.Tensor) else torch.device("cpu")
    xs = _states("x", x, K, device).reshape(-1)
    xt = _states("x_tilde", x_tilde, K, device).reshape(-1)
    if xs.numel() != xt.numel():
        raise ValueError(f"x and x_tilde must have the same length, got {xs.numel()} and {xt.numel()}")
    counts = torch.bincount(xt * K + xs, minlength=K * K).reshape(K, K).to(F64)  # [x_tilde, x]
    counts = counts + alpha
    totals = counts.sum(dim=1, keepdim=True)
    return torch.where(totals > 0, counts / totals.clamp_min(1e-300), torch.full_like(counts, 1.0 / K))


# ------------------------------------------------------------------------------------- stationarity
def closed_classes(T: object) -> list[list[int]]:
    """The closed communicating classes of the chain ``T`` (graph of its positive entries).

    A finite chain has a unique stationary distribution exactly when it has one closed class; the
    number of closed classes is the multiplicity of the eigenvalue 1. States outside every closed
    class are transient (e.g. states where the data distribution is 0 in an exact DAE chain).
    """
    t = check_stochastic("T", T)
    adj = (t > 0).cpu().numpy()
    n, labels = connected_components(csr_matrix(adj), directed=True, connection="strong")
    rows, cols = np.nonzero(adj)
    leaks = np.zeros(n, dtype=bool)
    leaks[labels[rows[labels[rows] != labels[cols]]]] = True
    return [np.flatnonzero(labels == c).tolist() for c in range(n) if not leaks[c]]


def _solve_stationary(t: torch.Tensor, method: str) -> torch.Tensor:
    k = t.shape[0]
    eye = torch.eye(k, dtype=F64, device=t.device)
    if method == "lstsq":
        # [T^T - I; 1^T] pi = [0; 1] (robust near reducibility, where eig-based vectors are ill-conditioned)
        a = torch.cat([t.T - eye, torch.ones(1, k, dtype=F64, device=t.device)])
        b = torch.zeros(k + 1, 1, dtype=F64, device=t.device)
        b[-1] = 1.0
        return torch.linalg.lstsq(a.cpu(), b.cpu()).solution[:, 0].to(t.device)
    if method == "eig":
        vals, vecs = torch.linalg.eig(t.T)
        v = vecs[:, int((vals - 1).abs().argmin())].real
        return v / v.sum()
    # power iteration on the lazy chain (I + T)/2: same stationary vector, aperiodic
    lazy = 0.5 * (eye + t)
    pi = torch.full((k,), 1.0 / k, dtype=F64, device=t.device)
    for _ in range(100_000):
        new = pi @ lazy
        if float((new - pi).abs().sum()) < 1e-15:
            return new
        pi = new
    raise ValueError("T mixes too slowly for method='power' (no convergence in 100000 steps); use 'lstsq'")


def stationary_distribution(T: object, method: str = "lstsq") -> torch.Tensor:
    r"""The unique stationary distribution :math:`\pi T = \pi` of a row-stochastic ``T`` (float64).

    Args:
        T: ``(K, K)`` row-stochastic transition matrix.
        method: ``"lstsq"`` (default: least squares on :math:`[T^\top - I;\ \mathbf 1^\top]\pi =
            [0; 1]`), ``"eig"`` (left eigenvector of eigenvalue 1) or ``"power"``
            (iterating the lazy chain :math:`(I+T)/2`).

    Raises ``ValueError`` naming ``T`` when it is not row-stochastic or when it has more than one closed
    class (reducible: the stationary distribution is not unique, e.g. :math:`C = I`, or a
    corruption too local to cross a gap). The result is checked: :math:`\pi \ge 0`, sums to 1 and
    :math:`\lVert\pi T - \pi\rVert_1 < 10^{-9}`.
    """
    t = check_stochastic("T", T)
    method = checks.one_of("method", method, ("lstsq", "eig", "power"))
    classes = closed_classes(t)
    if len(classes) > 1:
        shown = "; ".join(str(c) for c in classes[:4]) + ("; ..." if len(classes) > 4 else "")
        raise ValueError(
            f"T is reducible: it has {len(classes)} closed communicating classes ({shown}), so eigenvalue 1 "
            f"has multiplicity {len(classes)} and the stationary distribution is not unique"
        )
    pi = _solve_stationary(t, method)
    if float(pi.min()) < -1e-10:
        low = float(pi.min())
        raise ValueError(f"T is too ill-conditioned: the solved pi has a negative entry {low:.3g}")
    pi = pi.clamp_min(0.0)
    pi = pi / pi.sum()
    residual = float((pi @ t - pi).abs().sum())
    if residual > _RESIDUAL_TOL:
        raise ValueError(f"T is too ill-conditioned: ||pi T - pi||_1 = {residual:.3g} after solving")
    return pi


def second_eigenvalue_modulus(T: object) -> float:
    r"""The second largest modulus :math:`|\lambda_2|` among the eigenvalues of ``T``.

    The mixing time scales as :math:`1/(1-|\lambda_2|)`; :math:`|\lambda_2| = 1` for a reducible or
    periodic chain. Returns 0 for ``K = 1``.
    """
    t = check_stochastic("T", T)
    mods = torch.linalg.eigvals(t).abs().sort(descending=True).values
    return float(mods[1]) if mods.numel() > 1 else 0.0


def detailed_balance_violation(T: object, pi: object) -> float:
    r""":math:`\max_{x,x'} |\pi_x T_{xx'} - \pi_{x'} T_{x'x}|`: 0 exactly when ``T`` is reversible
    with respect to ``pi``. The exact DAE chain is reversible w.r.t. the data distribution,
    which is what clamping needs ([DLB] §20.11.2; [TH] §5.3.6, Prop. 5)."""
    t = check_stochastic("T", T)
    p = _pmf("pi", pi, t.device)
    _same_size("T", t.shape[0], "pi", p.numel())
    flow = p[:, None] * t
    return float((flow - flow.T).abs().max())


def tv_distance(p: object, q: object) -> float:
    r"""Total variation :math:`\mathrm{TV}(p, q) = \tfrac12 \lVert p - q\rVert_1` between two ``(K,)``
    probability vectors."""
    a = _pmf("p", p)
    b = _pmf("q", q, a.device)
    _same_size("p", a.numel(), "q", b.numel())
    return 0.5 * float((a - b).abs().sum())


# ------------------------------------------------------------------------------------- perturbation
def fundamental_matrix(T: object) -> torch.Tensor:
    r"""Schweitzer's :math:`Z = (I - T + \mathbf 1 \pi)^{-1}` in the row convention (every row of
    :math:`\mathbf 1\pi` is :math:`\pi`). :math:`\lVert Z\rVert_\infty` blows up as the chain nears
    reducibility ([TH] §5.3.6 says the opposite, that it is zero there). ``T`` must have a
    unique stationary distribution."""
    t = check_stochastic("T", T)
    pi = stationary_distribution(t)
    k = t.shape[0]
    eye = torch.eye(k, dtype=F64, device=t.device)
    return torch.linalg.inv(eye - t + torch.ones(k, 1, dtype=F64, device=t.device) * pi)


def _inf_norm(m: torch.Tensor) -> float:
    """Induced infinity norm: the maximum absolute row sum."""
    return float(m.abs().sum(dim=1).max())


def schweitzer_bound(T: object, T_tilde: object) -> tuple[float, float]:
    r"""Both sides of Schweitzer's perturbation bound ([TH] §5.3.4, Thm 4; Schweitzer 1968).

    :math:`\lVert\pi - \tilde\pi\rVert_1 \le \lVert Z\rVert_\infty \lVert T - \tilde T\rVert_\infty`
    with :math:`Z = (I - T + \mathbf 1\pi)^{-1}` and :math:`\lVert\cdot\rVert_\infty` the maximum absolute
    row sum. In the row convention it follows from :math:`\tilde\pi - \pi = \tilde\pi(\tilde T - T)Z`
    (the thesis prints column-convention objects with row-convention norms).

    Returns ``(lhs, rhs)`` as floats; ``lhs <= rhs`` up to round-off.
    """
    t = check_stochastic("T", T)
    tt = check_stochastic("T_tilde", _float64("T_tilde", T_tilde, t.device))
    _same_size("T", t.shape[0], "T_tilde", tt.shape[0])
    lhs = float((stationary_distribution(t) - stationary_distribution(tt)).abs().sum())
    return lhs, _inf_norm(fundamental_matrix(t)) * _inf_norm(t - tt)


# ------------------------------------------------------------------------------------- walkback (exact)
def walkback_corruption(C: object, R: object, p_stop: float = 0.5) -> torch.Tensor:
    r"""The exact walkback corruption :math:`C_\text{WB} = \sum_{k\ge1} p_\text{stop}(1-p_\text{stop})^{k-1}
    C_k` with :math:`C_k = (CR)^{k-1} C`.

    :math:`C_k` is the matrix form of the recursion [TH] eq. 5.2 (§5.3.2; :math:`C_{k+1} = (C R)\,
    C_k` in the row convention), mixed over :math:`k \sim \mathrm{Geom}(p_\text{stop})`
    ([TH] §5.3.2; [GDAE] Algorithm 2 with :math:`p = 1 - p_\text{stop}`). The geometric series sums in
    closed form, :math:`C_\text{WB} = p_\text{stop}\,(I - (1-p_\text{stop})\,C R)^{-1} C`, so no truncation
    is needed. ``R`` is the reconstruction the walk uses (the current model's).
    """
    c, r = _pair(C, R)
    p = _open_probability("p_stop", p_stop)
    eye = torch.eye(c.shape[0], dtype=F64, device=c.device)
    cwb = p * torch.linalg.solve(eye - (1 - p) * (c @ r), c)
    cwb = cwb.clamp_min(0.0)  # the series is non-negative; the solve may leave -1e-17
    return cwb / cwb.sum(dim=1, keepdim=True)


def walkback_fixed_point(
    P: object,
    C: object,
    p_stop: float = 0.5,
    *,
    max_iter: int = 500,
    tol: float = 1e-13,
    project: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, int]:
    r"""The infinite-capacity walkback reconstruction: iterate :math:`R \leftarrow \mathrm{Bayes}(P,
    C_\text{WB}[R])` from :math:`R_1 = \mathrm{Bayes}(P, C)` ([TH] §5.3.2, after eq. 5.3: "this iterated
    minimization").

    At the fixed point the chain :math:`C R_\text{WB}` (sampling with the *original* ``C``) still has
    stationary distribution ``P`` ([TH] §5.3.2, Prop. 2; [GDAE] §3, Prop. 1), while
    :math:`R_\text{WB}` is broader ("less local", [TH] §5.3.2).

    ``project`` restricts the decoder to a family: each iterate becomes ``project(Bayes(...))`` (e.g.
    :func:`factorized_projection`: inside a restricted family walkback can make the
    stationary distribution *worse*, [TH] §5.3.3).

    Returns ``(R_wb, n_iter)``; raises ``RuntimeError`` if the max-abs change is still above ``tol``
    after ``max_iter`` iterations.
    """
    c = check_stochastic("C", C)
    p = _pmf("P", P, c.device)
    _same_size("C", c.shape[0], "P", p.numel())
    p_stop = _open_probability("p_stop", p_stop)
    max_iter = checks.positive_int("max_iter", max_iter)
    tol = checks.positive_float("tol", tol)
    if project is not None and not callable(project):
        raise TypeError(f"project must be callable or None, got {type(project).__name__}")
    fit = (lambda m: m) if project is None else project
    r = fit(bayes_reconstruction(p, c))
    for it in range(1, max_iter + 1):
        new = fit(bayes_reconstruction(p, walkback_corruption(c, r, p_stop)))
        change = float((new - r).abs().max())
        r = new
        if change < tol:
            return r, it
    raise RuntimeError(
        f"walkback fixed point did not converge: change {change:.3g} after {max_iter} iterations"
    )


def online_counting_training(
    P: object,
    C: object,
    epochs: int,
    *,
    n: float = 1000.0,
    spurious: int,
    alpha: float = 1.0,
    walkback: bool = False,
    p_stop: float = 0.5,
) -> torch.Tensor:
    r"""A spurious-mode toy (the mechanism of [TH] Fig. 5.2): an online counting estimator with a bad prior.

    :math:`R(x \mid \tilde x) \propto N(\tilde x, x) + \alpha\,\delta_{x = s}` with :math:`s` = ``spurious``
    stands for a network's arbitrary behaviour away from the data ([TH] §5.3.2: "the DAE's behavior far from
    the training examples can create spurious modes"). Each epoch adds the expected counts
    :math:`n\,P(x)\,C'(\tilde x \mid x)` to :math:`N`, with :math:`C' = C` (plain training) or
    :math:`C' = C_\text{WB}[R]` for the current ``R`` (walkback, [TH] eq. 5.2 and the iterated
    minimization after eq. 5.3: samples from :math:`\theta_t` train :math:`\theta_{t+1}`). Counts
    accumulate, so a region visited once stays corrected, as with SGD. Deterministic (expected counts).

    Returns the ``(K, K)`` reconstruction after ``epochs`` epochs.
    """
    c = check_stochastic("C", C)
    p = _pmf("P", P, c.device)
    k = p.numel()
    _same_size("C", c.shape[0], "P", k)
    epochs = checks.positive_int("epochs", epochs)
    n = checks.positive_float("n", n)
    s = int(_states("spurious", spurious, k, c.device))
    alpha = checks.positive_float("alpha", alpha)
    walkback = checks.boolean("walkback", walkback)
    p_stop = _open_probability("p_stop", p_stop)
    prior = torch.zeros(k, k, dtype=F64, device=c.device)
    prior[:, s] = alpha
    counts = torch.zeros(k, k, dtype=F64, device=c.device)  # N[x_tilde, x]
    r = prior / alpha
    for _ in range(epochs):  # a loop over epochs; every state at once
        corrupt = walkback_corruption(c, r, p_stop) if walkback else c
        counts = counts + n * (p[:, None] * corrupt).T
        r = (counts + prior) / (counts + prior).sum(dim=1, keepdim=True)
    return r


# ------------------------------------------------------------------------------------- sampling
_BLOCK = 4096  # uniforms drawn per call to the generator


def _uniforms(n: int, generator: torch.Generator | None) -> np.ndarray:
    """``n`` float64 uniforms on [0, 1) from ``generator`` (torch's global one when ``None``)."""
    device = generator.device if generator is not None else "cpu"
    return torch.rand(n, dtype=F64, device=device, generator=generator).cpu().numpy()


class _Categorical:
    """Inverse-CDF draws from the rows of a row-stochastic matrix.

    Exact for zero-probability states: they are never drawn, even when a row's cumulative sum ends at
    1 - 1e-16. The work is in NumPy on the CPU: one chain step then costs microseconds, not the
    ~40 us of a ``torch.multinomial`` call.
    """

    def __init__(self, m: torch.Tensor) -> None:
        probs = m.detach().cpu().numpy()
        self.cdf = np.cumsum(probs, axis=1)
        self.last = probs.shape[1] - 1 - np.argmax(probs[:, ::-1] > 0, axis=1)  # last positive state
        self.cdf_rows = [row.tolist() for row in self.cdf]

    def rows(self, states: np.ndarray, u: np.ndarray) -> np.ndarray:
        """One draw from row ``states[i]`` for each ``i``, driven by the uniforms ``u``."""
        idx = (self.cdf[states] <= u[:, None]).sum(axis=1)
        return np.minimum(idx, self.last[states])

    def one(self, state: int, u: float) -> int:
        """One draw from row ``state``."""
        return min(bisect.bisect_right(self.cdf_rows[state], u), int(self.last[state]))


def sample_pairs(
    P: object, C: object, n: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``n`` training pairs :math:`X \sim \mathcal P`, :math:`\tilde X \sim \mathcal C(\cdot\mid X)`
    ([GDAE] §2.1, eq. 2; Algorithm 1).

    Returns two int64 ``(n,)`` tensors ``(x, x_tilde)`` on the device of ``C``.
    """
    c = check_stochastic("C", C)
    p = _pmf("P", P, c.device)
    _same_size("C", c.shape[0], "P", p.numel())
    n = checks.positive_int("n", n)
    generator = checks.generator("generator", generator)
    u = _uniforms(2 * n, generator)
    x = _Categorical(p[None]).rows(np.zeros(n, dtype=np.int64), u[:n])
    x_tilde = _Categorical(c).rows(x, u[n:])
    return torch.as_tensor(x, device=c.device), torch.as_tensor(x_tilde, device=c.device)


def sample_chain(
    transition: object,
    x0: object,
    n_steps: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Run the finite-state chain and return the states :math:`X_0, \dots, X_n`.

    Args:
        transition: a ``(K, K)`` row-stochastic ``T``, or a pair ``(C, R)`` for the DAE/GSN chain
            :math:`\tilde X_t \sim C[X_t]`, :math:`X_{t+1} \sim R[\tilde X_t]` ([GDAE] §2.2, eq. 3).
        x0: a starting state, or a ``(B,)`` tensor of starting states for ``B`` independent chains.
        n_steps: number of transitions, ``>= 0``.
        generator: a ``torch.Generator`` (any device) for the uniforms, or ``None`` for torch's global one.

    Returns an int64 tensor of shape ``(n_steps + 1,)``, or ``(n_steps + 1, B)`` for a batch of starts,
    on the device of the matrices. The same seed gives the same chain.
    """
    if isinstance(transition, (tuple, list)):
        if len(transition) != 2:
            raise ValueError(f"transition must be a matrix T or a pair (C, R), got {len(transition)} items")
        stages = list(_pair(*transition))
    else:
        stages = [check_stochastic("transition", transition)]
    device = stages[0].device
    k = stages[0].shape[0]
    start = _states("x0", x0, k, device)
    n_steps = checks.positive_int("n_steps", n_steps, minimum=0)
    generator = checks.generator("generator", generator)
    samplers = [_Categorical(m) for m in stages]
    x = start.reshape(-1).cpu().numpy()
    batch = x.size
    out = np.empty((n_steps + 1, batch), dtype=np.int64)
    out[0] = x
    per_step = len(samplers) * batch
    for first in range(1, n_steps + 1, _BLOCK):
        steps = min(_BLOCK, n_steps + 1 - first)
        u = _uniforms(steps * per_step, generator).reshape(steps, len(samplers), batch)
        for i in range(steps):
            for j, sampler in enumerate(samplers):
                x = sampler.rows(x, u[i, j])
            out[first + i] = x
    result = torch.as_tensor(out, device=device)
    return result[:, 0] if start.dim() == 0 else result


def walkback_pairs(
    x: int,
    C: object,
    R: object,
    p_stop: float = 0.5,
    generator: torch.Generator | None = None,
    *,
    training: bool = True,
) -> list[tuple[int, int]]:
    r"""[GDAE] Algorithm 2 (the walkback algorithm, §3) for one training example ``x``.

    Walk :math:`\tilde X^* \sim C[X^*]`, stop w.p. ``p_stop`` (line 4: :math:`u > p` with
    :math:`p = 1 - p_\text{stop}` the probability to continue), else :math:`X^* \sim R[\tilde X^*]` and
    repeat. With ``training=True`` every visited :math:`\tilde X^*` is paired with the *original* ``x``
    (line 6), so the number of pairs is :math:`\mathrm{Geom}(p_\text{stop})` on :math:`\{1, 2, \dots\}`
    with mean :math:`1/p_\text{stop}` (2 for the default 0.5); with ``training=False`` only the last pair
    is returned, and its :math:`\tilde X^*` is a draw from row ``x`` of :func:`walkback_corruption`.

    Returns a list of ``(x, x_tilde)`` integer pairs.
    """
    c, r = _pair(C, R)
    if isinstance(x, bool):
        raise TypeError("x must be a single integer state, got bool")
    xs = _states("x", x, c.shape[0], c.device)
    if xs.dim() != 0:
        raise ValueError(f"x must be a single state, got shape {tuple(xs.shape)}")
    start = int(xs)
    p_continue = 1.0 - _open_probability("p_stop", p_stop)
    training = checks.boolean("training", training)
    generator = checks.generator("generator", generator)
    corrupt, reconstruct = _Categorical(c), _Categorical(r)
    pairs: list[tuple[int, int]] = []
    x_star = start
    u = iter(())
    while True:
        try:
            u_c, u_stop, u_r = next(u), next(u), next(u)
        except StopIteration:
            u = iter(_uniforms(3 * 16, generator).tolist())
            u_c, u_stop, u_r = next(u), next(u), next(u)
        x_tilde = corrupt.one(x_star, u_c)  # line 2
        if u_stop > p_continue:  # lines 3-5
            pairs.append((start, x_tilde))
            return pairs
        if training:  # line 6
            pairs.append((start, x_tilde))
        x_star = reconstruct.one(x_tilde, u_r)  # line 7


def walkback_batch(
    x: object,
    C: object,
    R: object,
    p_stop: float = 0.5,
    generator: torch.Generator | None = None,
    *,
    training: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""[GDAE] Algorithm 2 run for a batch of training examples at once (the vectorised
    :func:`walkback_pairs`: same distribution, not the same random numbers).

    Args:
        x: ``(B,)`` integer training examples.
        C, R, p_stop, training: as in :func:`walkback_pairs`.

    Returns ``(x_clean, x_tilde, k)``: the pairs as two int64 tensors, grouped by example in walk order,
    and ``k`` (``(B,)``), the number of corruptions of each walk (:math:`\mathrm{Geom}(p_\text{stop})`;
    also the number of pairs of each example when ``training=True``, else there is one pair each).
    """
    c, r = _pair(C, R)
    xs = _states("x", x, c.shape[0], c.device)
    if xs.dim() != 1:
        raise ValueError(f"x must be a 1-D tensor of states, got shape {tuple(xs.shape)}")
    p_continue = 1.0 - _open_probability("p_stop", p_stop)
    training = checks.boolean("training", training)
    generator = checks.generator("generator", generator)
    corrupt, reconstruct = _Categorical(c), _Categorical(r)
    start = xs.cpu().numpy()
    batch = start.size
    x_star, active = start.copy(), np.arange(batch)
    k = np.zeros(batch, dtype=np.int64)
    owners, tildes = [], []
    while active.size:
        u = _uniforms(3 * active.size, generator).reshape(3, active.size)
        x_tilde = corrupt.rows(x_star[active], u[0])
        k[active] += 1
        stop = u[1] > p_continue
        keep = np.ones_like(stop) if training else stop
        owners.append(active[keep])
        tildes.append(x_tilde[keep])
        go = ~stop
        active = active[go]
        x_star[active] = reconstruct.rows(x_tilde[go], u[2][go])
    owner = np.concatenate(owners) if owners else np.zeros(0, dtype=np.int64)
    tilde = np.concatenate(tildes) if tildes else np.zeros(0, dtype=np.int64)
    order = np.argsort(owner, kind="stable")
    return (
        torch.as_tensor(start[owner[order]], device=c.device),
        torch.as_tensor(tilde[order], device=c.device),
        torch.as_tensor(k, device=c.device),
    )


# ------------------------------------------------------------------------------------- binary states
_MAX_BITS = 12
"""Largest number of bits of an exact binary kernel: ``(2**12)**2`` float64 entries are 128 MiB."""


def _n_bits(name: str, d: object) -> int:
    d = checks.positive_int(name, d)
    if d > _MAX_BITS:
        raise ValueError(f"{name} must be <= {_MAX_BITS} (an exact kernel has 4**{name} entries), got {d}")
    return d


def _bits_of_size(name: str, k: int) -> int:
    """``d`` such that ``k == 2**d`` (a matrix or vector over all binary vectors of length ``d``)."""
    d = k.bit_length() - 1
    if k < 2 or k != 1 << d:
        raise ValueError(f"{name} must have 2**d entries per axis (all binary vectors of length d), got {k}")
    return d


def binary_states(d: int, *, device: torch.device | str | None = None) -> torch.Tensor:
    """All ``2**d`` binary vectors of length ``d`` as an int64 ``(2**d, d)`` table.

    Row ``s`` holds the bits of ``s``, most significant first, i.e. the order of
    ``itertools.product([0, 1], repeat=d)``: this is the state order of every binary
    kernel of this module (:func:`salt_and_pepper_kernel`, :func:`site_kernels`, ...).
    """
    d = _n_bits("d", d)
    s = torch.arange(1 << d, device=device)
    shifts = torch.arange(d - 1, -1, -1, device=device)
    return (s[:, None] >> shifts) & 1


def salt_and_pepper_kernel(d: int, rho: float, *, device: torch.device | str | None = None) -> torch.Tensor:
    r"""The exact ``(2**d, 2**d)`` salt-and-pepper corruption :math:`C[x, \tilde x] = \mathcal C(\tilde x
    \mid x)` on ``d`` bits.

    Each bit is corrupted independently with probability ``rho`` and then set to 0 or 1 with probability
    1/2 ([GDAE] §4, MNIST: "with probability 0.5, randomly corrupt each bit, by setting it to 1 or 0
    with probability 0.5"; [GSN14] §7: 40%), so a bit flips with probability :math:`\rho/2` and
    :math:`C = \bigotimes_{i=1}^d c`, :math:`c = \begin{pmatrix}1-\rho/2 & \rho/2\\ \rho/2 &
    1-\rho/2\end{pmatrix}`. In closed form :math:`C[x, \tilde x] = (1-\rho/2)^{d-h}
    (\rho/2)^h` with :math:`h` the Hamming distance. States are ordered as in :func:`binary_states`.

    Args:
        d: number of bits, ``1 <= d <= 12``.
        rho: corruption probability of a bit, in ``[0, 1]``.
    """
    d = _n_bits("d", d)
    rho = checks.probability("rho", rho)
    c = torch.tensor([[1 - rho / 2, rho / 2], [rho / 2, 1 - rho / 2]], dtype=F64, device=device)
    out = c
    for _ in range(d - 1):  # a loop over bits, not states
        out = torch.kron(out, c)
    return out


def factorized_projection(R: object) -> torch.Tensor:
    r"""The factorized (product-of-Bernoullis) decoder closest to ``R`` in the DAE criterion.

    :math:`R_\text{fact}(x \mid \tilde x) = \prod_i R(x_i \mid \tilde x)`, the product of the marginals
    of each row of ``R`` over the binary states of :func:`binary_states`. Applied to the exact posterior
    this is what an infinite-capacity factorized-Bernoulli decoder learns (the cross-entropy criterion
    separates over bits; the family used on MNIST, [GDAE] §4, [TH] §5.3.3), and its
    chain is biased when the posterior is multimodal ([GSN14] §4, the paragraph on large noise).

    Args:
        R: ``(2**d, 2**d)`` row-stochastic reconstruction ``R[x_tilde, x]``.
    """
    r = check_stochastic("R", R)
    k = r.shape[0]
    d = _bits_of_size("R", k)
    m = (r @ binary_states(d, device=r.device).to(F64)).clamp(0.0, 1.0)  # m[x~, i] = R(x_i = 1 | x~)
    out = torch.ones(k, 1, dtype=F64, device=r.device)
    for i in range(d):  # most significant bit first, as in binary_states
        bit = torch.stack([1 - m[:, i], m[:, i]], dim=1)  # (K, 2)
        out = (out[:, :, None] * bit[:, None, :]).reshape(k, -1)
    return out


def unimodal_projection(R: object, xs: object, min_var: float = 1e-6) -> torch.Tensor:
    r"""A unimodal decoder: each row of ``R`` replaced by the discretised Gaussian on the grid ``xs`` with
    the row's mean and variance (``+ min_var``), renormalised.

    This is the "fuzzy average" a unimodal reconstruction family learns when the true posterior
    :math:`P(X \mid \tilde X)` has several modes ([GSN14] §4; [TH] §5.3.5).
    """
    r = check_stochastic("R", R)
    grid = _float64("xs", xs, r.device)
    if grid.shape != (r.shape[0],):
        raise ValueError(f"xs must have shape ({r.shape[0]},) to match R, got {tuple(grid.shape)}")
    min_var = checks.positive_float("min_var", min_var)
    mean = r @ grid
    var = r @ grid**2 - mean**2 + min_var
    logits = -((grid[None, :] - mean[:, None]) ** 2) / (2 * var.clamp_min(min_var)[:, None])
    return torch.softmax(logits, dim=1)


# ------------------------------------------------------------------------------------- clamping
def _subset(name: str, S: object, k: int, device: torch.device) -> torch.Tensor:
    """A non-empty subset of ``range(k)`` given as a boolean mask of length ``k`` or as integer states."""
    if (isinstance(S, torch.Tensor) and S.dtype == torch.bool) or (
        isinstance(S, np.ndarray) and S.dtype == bool
    ):
        mask = torch.as_tensor(S, device=device)
        if mask.shape != (k,):
            raise ValueError(f"{name} as a boolean mask must have shape ({k},), got {tuple(mask.shape)}")
    else:
        idx = _states(name, S, k, device).reshape(-1)
        mask = torch.zeros(k, dtype=torch.bool, device=device)
        mask[idx] = True
    if not bool(mask.any()):
        raise ValueError(f"{name} must contain at least one state")
    return mask


def _encoder_decoder(f: object, g: object) -> tuple[torch.Tensor, torch.Tensor]:
    """Check an encoder ``f[x, h]`` and a decoder ``g[h, x]`` with matching sizes; both on ``f``'s device."""
    ft = _row_stochastic("f", f)
    gt = _row_stochastic("g", g, device=ft.device)
    if gt.shape != (ft.shape[1], ft.shape[0]):
        raise ValueError(
            f"g must have shape (n_h, n_x) = {(ft.shape[1], ft.shape[0])} to match f of shape "
            f"(n_x, n_h) = {tuple(ft.shape)}, got {tuple(gt.shape)}"
        )
    return ft, gt


def conditional_on(p: object, S: object) -> torch.Tensor:
    r""":math:`p(x \mid x \in \mathcal S) = p(x)\,\mathbb I(x\in\mathcal S) / p(\mathcal S)` as a ``(K,)``
    vector (zero off ``S``); ``S`` is a boolean mask or a list of states ([TH] §5.3.6, Prop. 5)."""
    q = _pmf("p", p)
    mask = _subset("S", S, q.numel(), q.device)
    mass = float(q[mask].sum())
    if mass <= 0:
        raise ValueError("p must give S positive probability (Prop. 5 assumes P(X in S) > 0)")
    return torch.where(mask, q, torch.zeros_like(q)) / mass


def clamp_decoder(g: object, S: object) -> torch.Tensor:
    r"""The clamped decoder :math:`g(x \mid h, x \in \mathcal S) \propto g(x \mid h)\,\mathbb I(x \in
    \mathcal S)` ([TH] §5.3.6, Prop. 5), as a ``(n_h, n_x)`` matrix with zero columns off ``S``.

    For a DAE the decoder is ``R[x_tilde, x]``; clamping coordinates of :math:`X` (e.g. :math:`x_b = 1`,
    [TH] §5.3.6) means ``S`` is the set of states with those values. A row with no mass on ``S``
    cannot be conditioned; it is set to uniform on ``S`` (:func:`clamped_transition` refuses it when the
    clamped chain can reach that row).
    """
    gt = _row_stochastic("g", g)
    mask = _subset("S", S, gt.shape[1], gt.device)
    kept = torch.where(mask[None, :], gt, torch.zeros_like(gt))
    mass = kept.sum(dim=1, keepdim=True)
    uniform = mask.to(F64)[None, :] / float(mask.sum())
    return torch.where(mass > 0, kept / mass.clamp_min(1e-300), uniform)


def clamped_transition(f: object, g: object, S: object) -> torch.Tensor:
    r"""The clamped chain on :math:`\mathcal S`: :math:`h \sim f(\cdot \mid x)` with the **full** current
    ``x`` (clamped coordinates included), then :math:`x' \sim g(\cdot \mid h, x' \in \mathcal S)`
    ([TH] §5.3.6, Prop. 5; [GSN14] §5, Prop. 1).

    Args:
        f: ``(n_x, n_h)`` row-stochastic encoder ``f[x, h]`` (for a DAE, the corruption ``C``).
        g: ``(n_h, n_x)`` row-stochastic decoder ``g[h, x]`` (for a DAE, the reconstruction ``R``).
        S: the clamping set, a boolean mask of length ``n_x`` or a list of states.

    Returns the ``(|S|, |S|)`` row-stochastic transition between the states of ``S`` in increasing order.
    Raises ``ValueError`` naming ``g`` if ``f`` can reach, from ``S``, a latent ``h`` with
    :math:`g(\mathcal S \mid h) = 0`.
    """
    ft, gt = _encoder_decoder(f, g)
    mask = _subset("S", S, ft.shape[0], ft.device)
    reach = ft[mask].sum(dim=0) > 0
    dead = reach & ~(gt[:, mask].sum(dim=1) > 0)
    if bool(dead.any()):
        h = torch.nonzero(dead).reshape(-1)[:5].tolist()
        raise ValueError(f"g puts no mass on S for latent state(s) {h} that f reaches from S")
    return ft[mask] @ clamp_decoder(gt, mask)[:, mask]


def clamped_stationary(f: object, g: object, S: object) -> torch.Tensor:
    r"""Stationary distribution of :func:`clamped_transition` as an ``(n_x,)`` vector, zero off ``S``.

    With a mutually compatible pair (``f = pi(h|x)``, ``g = pi(x|h)`` for one joint ``pi``; e.g. the exact
    DAE posterior) it equals :math:`\pi(x \mid x \in \mathcal S)` ([TH] Prop. 5); with an incompatible
    pair it need not: the detailed-balance condition that [GSN14] Prop. 1 omitted ([DLB] §20.11.2).
    Compare with :func:`conditional_on`.
    """
    ft, gt = _encoder_decoder(f, g)
    mask = _subset("S", S, ft.shape[0], ft.device)
    out = torch.zeros(ft.shape[0], dtype=F64, device=ft.device)
    out[mask] = stationary_distribution(clamped_transition(ft, gt, mask))
    return out


def encoder_decoder_joint(f: object, g: object) -> torch.Tensor:
    r"""The stationary joint :math:`\pi(x, h)` of the unclamped chain :math:`h' \sim f(\cdot\mid x)`,
    :math:`x' \sim g(\cdot \mid h')`, as an ``(n_x, n_h)`` matrix ([TH] App. 5.B, Prop. 3).

    ``h`` is the latent that produced ``x``: :math:`\pi(x, h) = \pi_H(h)\, g(x \mid h)` with
    :math:`\pi_H` stationary for :math:`g f` (on :math:`\mathcal H`); its ``x`` marginal is the
    stationary distribution of :math:`f g` (the DAE's :math:`T = C R`). When ``f`` and ``g`` are compatible,
    also :math:`\pi(x, h) = \pi(x) f(h \mid x)`.
    """
    ft, gt = _encoder_decoder(f, g)
    pi_h = stationary_distribution(gt @ ft)
    return (pi_h[:, None] * gt).T


def eq55_residual(pi_joint: object, f: object, S: object) -> float:
    r"""Residual of [TH] eq. 5.5 (App. 5.B): :math:`\max_{h'} \big|\sum_{x\in\mathcal S}
    \pi(x \mid x\in\mathcal S)\, f(h'\mid x) - \pi(h' \mid x \in \mathcal S)\big|`.

    Eq. 5.5 is sufficient for the clamped chain to sample :math:`\pi(x \mid x\in\mathcal S)` (Prop. 3)
    and necessary when the clamped decoder's columns are linearly independent (Prop. 4).

    Args:
        pi_joint: ``(n_x, n_h)`` joint :math:`\pi(x, h)` (from :func:`encoder_decoder_joint`).
        f: ``(n_x, n_h)`` encoder. S: the clamping set.
    """
    ft = _row_stochastic("f", f)
    pj = _float64("pi_joint", pi_joint, ft.device)
    if pj.shape != ft.shape:
        raise ValueError(f"pi_joint must have the shape of f, {tuple(ft.shape)}, got {tuple(pj.shape)}")
    _pmf("pi_joint (flattened)", pj.reshape(-1))
    mask = _subset("S", S, ft.shape[0], ft.device)
    mass = float(pj[mask].sum())
    if mass <= 0:
        raise ValueError("pi_joint must give S positive probability")
    px_s = pj[mask].sum(dim=1) / mass  # pi(x | x in S), x in S
    lhs = px_s @ ft[mask]
    rhs = pj[mask].sum(dim=0) / mass  # pi(h' | x in S)
    return float((lhs - rhs).abs().max())


# ------------------------------------------------------------------------------------- GSN with latent state
def _gsn_encoder(name: str, f: object) -> torch.Tensor:
    """An encoder ``f[x, h_prev, h]`` = f(h | h', x): ``(n_x, n_h, n_h)``, each ``f[x]`` stochastic."""
    ft = _float64(name, f)
    if ft.dim() != 3 or ft.shape[1] != ft.shape[2] or ft.numel() == 0:
        raise ValueError(f"{name} must have shape (n_x, n_h, n_h) (f[x, h_prev, h]), got {tuple(ft.shape)}")
    n_x, n_h, _ = ft.shape
    return _row_stochastic(name, ft.reshape(n_x * n_h, n_h)).reshape(n_x, n_h, n_h)


def burnin_hidden(f: object, k: int | None = None, h_init: int = 0) -> torch.Tensor:
    r"""The law :math:`q_k(h \mid x)` of :math:`H_1` after ``k`` encoder steps with :math:`X_0 = x` clamped.

    [TH] Algorithm 1, lines 12-16: start from :math:`h = ` ``h_init`` (the papers' :math:`H_0 =
    0`, [TH] §5.3.4 and §5.5.2) and apply :math:`f(\cdot \mid h', x)` ``k`` times:
    :math:`q_0 = \delta_{h_\text{init}}`,
    :math:`q_k(\cdot\mid x) = q_{k-1}(\cdot\mid x)\, f[x]`. So ``k=1`` is "a fixed :math:`H_0=0`" and more
    steps burn in :math:`H`. ``k=None`` gives the exact fixed point :math:`q_\infty(\cdot \mid x)`, the
    stationary distribution of every ``f[x]``: the third hypothesis of Theorem 3, :math:`P(H_0\mid X_0) =
    P(H_1 \mid X_0)` ([TH] §5.3.4).

    Args:
        f: ``(n_x, n_h, n_h)`` encoder ``f[x, h_prev, h]``.
        k: number of burn-in steps ``>= 1``, or ``None`` for the fixed point (each ``f[x]`` must then
            have a unique stationary distribution).
        h_init: the initial latent state.

    Returns an ``(n_x, n_h)`` row-stochastic matrix ``q[x, h]``.
    """
    ft = _gsn_encoder("f", f)
    n_x, n_h, _ = ft.shape
    h_init = checks.positive_int("h_init", h_init, minimum=0)
    if h_init >= n_h:
        raise ValueError(f"h_init must be a latent state in [0, {n_h}), got {h_init}")
    if k is None:
        ones = ((torch.linalg.eigvals(ft) - 1).abs() < 1e-9).sum(dim=1)  # eigenvalue-1 multiplicity per x
        if bool((ones > 1).any()):
            x = int(torch.nonzero(ones > 1)[0])
            raise ValueError(
                f"f[x] must have a unique stationary distribution for every x when k is None; "
                f"f[{x}] is reducible"
            )
        eye = torch.eye(n_h, dtype=F64, device=ft.device)
        a = torch.cat([ft.transpose(1, 2) - eye, torch.ones(n_x, 1, n_h, dtype=F64, device=ft.device)], 1)
        b = torch.zeros(n_x, n_h + 1, 1, dtype=F64, device=ft.device)
        b[:, -1] = 1.0
        q = torch.linalg.lstsq(a.cpu(), b.cpu()).solution[..., 0].to(ft.device)  # batched over x
        residual = float((torch.einsum("xh,xhk->xk", q, ft) - q).abs().sum(1).max())
        if residual > _RESIDUAL_TOL or float(q.min()) < -1e-10:
            raise ValueError("f[x] must have a unique stationary distribution for every x when k is None")
        q = q.clamp_min(0.0)
        return q / q.sum(1, keepdim=True)
    k = checks.positive_int("k", k)
    q = torch.zeros(n_x, n_h, dtype=F64, device=ft.device)
    q[:, h_init] = 1.0
    for _ in range(k):  # a loop over burn-in steps; all x at once
        q = torch.einsum("xh,xhk->xk", q, ft)
    return q


def gsn_decoder_target(P: object, q: object) -> torch.Tensor:
    r"""The optimal decoder :math:`g(x \mid h) = P(X_0 = x \mid H_1 = h) \propto P(x)\, q(h \mid x)`
    ([TH] §5.3.4, eq. 5.4: the maximiser of the training criterion). A latent with zero mass gets a
    uniform row.

    Args:
        P: ``(n_x,)`` data distribution. q: ``(n_x, n_h)`` law of :math:`H_1` given :math:`X_0`
            (:func:`burnin_hidden`).

    Returns the ``(n_h, n_x)`` row-stochastic decoder ``g[h, x]``.
    """
    qt = _row_stochastic("q", q)
    p = _pmf("P", P, qt.device)
    _same_size("q", qt.shape[0], "P", p.numel())
    joint = p[:, None] * qt  # (n_x, n_h)
    mass = joint.sum(0)
    uniform = torch.full_like(joint.T, 1.0 / p.numel())
    return torch.where(mass[:, None] > 0, joint.T / mass.clamp_min(1e-300)[:, None], uniform)


def gsn_joint_transition(f: object, g: object) -> torch.Tensor:
    r"""The GSN chain on :math:`(X, H)`: :math:`H_{t+1} \sim f(\cdot \mid H_t, X_t)`, :math:`X_{t+1} \sim
    g(\cdot \mid H_{t+1})` ([TH] §5.3.4; [DLB] §20.12).

    :math:`M[(x,h),(x',h')] = f(h' \mid h, x)\, g(x' \mid h')`, with state index ``x * n_h + h``.

    Args:
        f: ``(n_x, n_h, n_h)`` encoder ``f[x, h_prev, h]``. g: ``(n_h, n_x)`` decoder ``g[h, x]``.

    Returns an ``(n_x n_h, n_x n_h)`` row-stochastic matrix.
    """
    ft = _gsn_encoder("f", f)
    n_x, n_h, _ = ft.shape
    gt = _row_stochastic("g", g, device=ft.device)
    if gt.shape != (n_h, n_x):
        raise ValueError(f"g must have shape (n_h, n_x) = {(n_h, n_x)}, got {tuple(gt.shape)}")
    m = ft[:, :, None, :] * gt.T[None, None, :, :]  # [x, h, x', h'] = f[x, h, h'] g[h', x']
    return m.reshape(n_x * n_h, n_x * n_h)


def gsn_marginal_x(pi_joint: object, n_x: int, n_h: int) -> torch.Tensor:
    r"""The :math:`X` marginal :math:`\pi_X` of a distribution on :math:`(X, H)` indexed ``x * n_h + h``
    (Theorem 3's conclusion is :math:`\pi_X = P(X_0)`, [TH] §5.3.4)."""
    n_x = checks.positive_int("n_x", n_x)
    n_h = checks.positive_int("n_h", n_h)
    p = _pmf("pi_joint", pi_joint)
    if p.numel() != n_x * n_h:
        raise ValueError(f"pi_joint must have n_x * n_h = {n_x * n_h} entries, got {p.numel()}")
    return p.reshape(n_x, n_h).sum(1)


# ------------------------------------------------------------------------------------- dependency networks
def _rest_index(d: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(bit, rest)``, both ``(d, 2**d)``: bit ``i`` of state ``s`` and the index of :math:`x_{-i}`
    (the other ``d - 1`` bits, most significant first)."""
    s = torch.arange(1 << d, device=device)
    pos = torch.arange(d, device=device)[:, None]  # bit i has weight 2**(d-1-i)
    low_bits = d - 1 - pos
    bit = (s[None] >> low_bits) & 1
    rest = ((s[None] >> (low_bits + 1)) << low_bits) | (s[None] & ((1 << low_bits) - 1))
    return bit, rest


def _conditionals(name: str, conds: object) -> torch.Tensor:
    c = _float64(name, conds)
    d = c.shape[0] if c.dim() == 2 else 0
    if c.dim() != 2 or d < 1 or c.shape[1] != 1 << (d - 1):
        raise ValueError(f"{name} must have shape (d, 2**(d-1)) (P_i(x_i = 1 | x_-i)), got {tuple(c.shape)}")
    _n_bits("d", d)
    if float(c.min()) < 0 or float(c.max()) > 1:
        raise ValueError(
            f"{name} must hold probabilities in [0, 1], got range [{float(c.min())}, {float(c.max())}]"
        )
    return c


def conditionals_from_joint(P: object) -> torch.Tensor:
    r"""The exact conditionals :math:`P(x_i = 1 \mid x_{-i})` of a joint ``P`` over ``d`` bits.

    Returns ``conds`` of shape ``(d, 2**(d-1))``: ``conds[i, j]`` for :math:`x_{-i}` with index ``j`` (the
    other bits, most significant first). A zero-probability :math:`x_{-i}` gets 1/2.
    """
    p = _pmf("P", P)
    d = _bits_of_size("P", p.numel())
    bit, rest = _rest_index(d, p.device)
    half = 1 << (d - 1)
    marg = torch.zeros(d, half, dtype=F64, device=p.device).scatter_add_(1, rest, p.expand(d, -1))
    ones = torch.zeros(d, half, dtype=F64, device=p.device).scatter_add_(1, rest, p * bit)
    return torch.where(marg > 0, ones / marg.clamp_min(1e-300), torch.full_like(marg, 0.5))


def random_conditionals(
    d: int, generator: torch.Generator | None = None, low: float = 0.05, high: float = 0.95
) -> torch.Tensor:
    r"""Inconsistent (generically) conditionals :math:`P_i(x_i = 1 \mid x_{-i}) \sim U[\text{low},
    \text{high}]`, shape ``(d, 2**(d-1))``: a dependency network whose conditionals, each "parametrized
    separately", match no joint ([TH] §5.3.7)."""
    d = _n_bits("d", d)
    generator = checks.generator("generator", generator)
    low, high = checks.probability("low", low), checks.probability("high", high)
    if not low < high:
        raise ValueError(f"low must be < high, got low={low}, high={high}")
    device = generator.device if generator is not None else "cpu"
    u = torch.rand(d, 1 << (d - 1), dtype=F64, device=device, generator=generator)
    return low + (high - low) * u


def site_kernels(conds: object) -> torch.Tensor:
    r"""The per-site Gibbs kernels :math:`K_i` of a dependency network on ``d`` bits: resample
    :math:`x_i \sim P_i(\cdot \mid x_{-i})`, keep :math:`x_{-i}` ([TH] §5.3.7, Prop. 6: the GSN with
    :math:`H = X_{-s}`).

    Args:
        conds: ``(d, 2**(d-1))`` conditionals :math:`P_i(x_i = 1 \mid x_{-i})`.

    Returns a ``(d, 2**d, 2**d)`` stack of row-stochastic matrices over :func:`binary_states`.
    """
    c = _conditionals("conds", conds)
    d = c.shape[0]
    bit, rest = _rest_index(d, c.device)
    theta = c.gather(1, rest)  # (d, K): P_i(x_i = 1 | x_-i of state s)
    p_next = torch.where(bit == 1, theta, 1 - theta)  # probability of landing on s' for site i
    same = rest[:, :, None] == rest[:, None, :]
    return same.to(F64) * p_next[:, None, :]


def _kernel_stack(name: str, Ks: object) -> torch.Tensor:
    k = _float64(name, Ks)
    if k.dim() != 3 or k.shape[1] != k.shape[2] or k.shape[0] == 0:
        raise ValueError(f"{name} must be a (d, K, K) stack of transition matrices, got {tuple(k.shape)}")
    n, m, _ = k.shape
    return _row_stochastic(name, k.reshape(n * m, m)).reshape(n, m, m)


def random_scan_kernel(Ks: object, w: object = None) -> torch.Tensor:
    r"""Random-scan Gibbs :math:`\bar K = \sum_i w_i K_i` (uniform :math:`w_i = 1/d` by default): choosing
    the site at random gives "aperiodicity and ergodicity" ([TH] §5.3.7)."""
    k = _kernel_stack("Ks", Ks)
    weights = torch.full((k.shape[0],), 1.0 / k.shape[0], dtype=F64, device=k.device) if w is None else None
    if weights is None:
        weights = _pmf("w", w, k.device)
        _same_size("Ks", k.shape[0], "w", weights.numel())
    return torch.einsum("i,ijk->jk", weights, k)


def systematic_scan_kernel(Ks: object, order: object) -> torch.Tensor:
    r"""One ordered sweep :math:`K_{\sigma(1)} K_{\sigma(2)} \cdots` (Heckerman et al.'s ordered pseudo-Gibbs
    sampler, [TH] §5.3.7). ``order`` lists site indices (a permutation, or any sequence of sites)."""
    k = _kernel_stack("Ks", Ks)
    idx = _states("order", order, k.shape[0], k.device).reshape(-1)
    if idx.numel() == 0:
        raise ValueError("order must list at least one site")
    return torch.linalg.multi_dot(list(k[idx])) if idx.numel() > 1 else k[idx[0]].clone()


def augmented_ordered_chain(Ks: object) -> torch.Tensor:
    r"""The ordered pseudo-Gibbs chain made Markov by adding the site index to the state ([TH] §5.3.7:
    "could be periodic, because we cycle in a deterministic way through all the index values").

    State ``(i, x)`` (index ``i * K + x``) resamples site ``i`` and moves to ``i + 1 mod d``: the block
    :math:`(i, i+1)` is :math:`K_i`. It has period ``d``: its unit-modulus eigenvalues are the ``d``-th
    roots of unity. Returns a ``(d K, d K)`` row-stochastic matrix.
    """
    k = _kernel_stack("Ks", Ks)
    d, m, _ = k.shape
    out = torch.zeros(d, d, m, m, dtype=F64, device=k.device)
    sites = torch.arange(d, device=k.device)
    out[sites, (sites + 1) % d] = k
    return out.permute(0, 2, 1, 3).reshape(d * m, d * m)


def conditional_null_space(P: object, rtol: float = 1e-10) -> torch.Tensor:
    r"""Directions in conditional space that leave ``P`` stationary for random scan ([TH] §5.3.7: "the fixed
    point equation of :math:`\pi` introduces fewer constraints than the number of degrees of freedom").

    :math:`\theta \mapsto P\bar K(\theta)` is affine in the conditionals :math:`\theta` (``d 2**(d-1)``
    numbers); its linear part :math:`J[x', (i, j)] = \tfrac1d P_{-i}(j)\,(2x'_i - 1)\,\mathbb
    I(x'_{-i} = j)` has rank at most :math:`2^d - 1` (the image sums to 0), so the null space has
    dimension at least :math:`d2^{d-1} - (2^d - 1)` (5 for ``d = 3``, 17 for ``d = 4``).
    Moving the conditionals along a null direction changes them but keeps :math:`P\bar K = P`.

    Returns an ``(n_null, d, 2**(d-1))`` tensor of orthonormal directions (singular values below
    ``rtol`` times the largest count as zero).
    """
    p = _pmf("P", P)
    rtol = checks.positive_float("rtol", rtol)
    d = _bits_of_size("P", p.numel())
    half = 1 << (d - 1)
    bit, rest = _rest_index(d, p.device)
    marg = torch.zeros(d, half, dtype=F64, device=p.device).scatter_add_(1, rest, p.expand(d, -1))
    vals = marg.gather(1, rest) * (2 * bit - 1).to(F64) / d  # (d, K)
    jac = torch.zeros(d, p.numel(), half, dtype=F64, device=p.device)
    jac.scatter_(2, rest[:, :, None], vals[:, :, None])
    jac = jac.permute(1, 0, 2).reshape(p.numel(), d * half)
    _, sv, vh = torch.linalg.svd(jac, full_matrices=True)
    rank = int((sv > rtol * sv[0]).sum())
    return vh[rank:].reshape(-1, d, half)


# ------------------------------------------------------------------------------------- continuous, exact
def nonparametric_dae_step(
    x: torch.Tensor, train_x: torch.Tensor, sigma_c: float, s: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    r"""One step of the exact non-parametric DAE chain on :math:`\mathbb R^d` (the continuous
    panels of [TH] Fig. 5.3, §5.5.1, and [GDAE] Fig. 3, §4).

    Target: the Parzen density :math:`p_s(x) = \frac1n \sum_i \mathcal N(x; x_i, s^2 I)`; corruption
    :math:`\tilde x = x + \sigma_c \varepsilon`. The exact posterior is a Gaussian mixture,
    :math:`p(x \mid \tilde x) = \sum_i w_i(\tilde x)\,\mathcal N\big(x;\ \tfrac{\sigma_c^2 x_i + s^2\tilde
    x}{s^2 + \sigma_c^2},\ \tfrac{s^2\sigma_c^2}{s^2+\sigma_c^2} I\big)`,
    :math:`w_i \propto \mathcal N(\tilde x; x_i, (s^2 + \sigma_c^2) I)`, so the chain
    :math:`x \to \tilde x \to x'` has stationary law exactly :math:`p_s`
    (Theorem 1 with an exact reconstruction).

    Args:
        x: ``(B, d)`` current states (B parallel chains). train_x: ``(n, d)`` training points.
        sigma_c: corruption std ``> 0``. s: Parzen width ``> 0``.
        generator: ``torch.Generator`` on ``x``'s device.

    Returns the ``(B, d)`` next states, on ``x``'s device and dtype.
    """
    x = checks.tensor("x", x, ndim=2)
    centres = checks.tensor("train_x", train_x, ndim=2, last_dim=x.shape[1]).to(x)
    sigma_c = checks.positive_float("sigma_c", sigma_c)
    s = checks.positive_float("s", s)
    checks.generator("generator", generator, x)
    x_tilde = x + sigma_c * torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    logw = -torch.cdist(x_tilde, centres).pow(2) / (2 * (s**2 + sigma_c**2))
    idx = torch.multinomial(torch.softmax(logw, dim=1), 1, generator=generator)[:, 0]
    mean = (sigma_c**2 * centres[idx] + s**2 * x_tilde) / (s**2 + sigma_c**2)
    std = s * sigma_c / math.sqrt(s**2 + sigma_c**2)
    return mean + std * torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
