r"""Generic tools for finite-state Markov chains: stationarity, mixing, perturbation and sampling.

On a finite state space :math:`\{0, \dots, K-1\}` a chain is a row-stochastic matrix
``T[x, x'] = P(X_{t+1}=x' | X_t=x)``; distributions are row vectors and stationarity is :math:`\pi T = \pi`.

* stationary distributions: :func:`gth_solve` (the Grassmann-Taksar-Heyman algorithm) behind
  :func:`stationary_distribution`, and :func:`closed_classes` (uniqueness);
* mixing and reversibility: :func:`second_eigenvalue_modulus`, :func:`detailed_balance_violation`,
  :func:`tv_distance` (:math:`\mathrm{TV}(p, q) = \tfrac12\lVert p - q\rVert_1`);
* perturbation: :func:`fundamental_matrix` and :func:`schweitzer_bound` (Schweitzer 1968);
* sampling: :func:`sample_chain` (a chain ``T`` or a two-stage chain ``(C, R)``), built on the
  inverse-CDF sampler :class:`Categorical` and the uniforms of :func:`uniforms`;
* binary state spaces: :func:`binary_states`, the state order of every binary kernel of the package.

The DAE/GSN theory built on these tools is in :mod:`dae_tutor.chains`, dependency networks in
:mod:`dae_tutor.depnets`. Every function accepts torch tensors or array-likes (NumPy arrays, lists),
computes in float64 and answers with float64 (or int64 states) on the device of its first matrix argument.

Sources: Grassmann, Taksar and Heyman (1985), *Regenerative analysis and steady state distributions for
Markov chains*, Operations Research 33(5); W. J. Stewart (2009), *Probability, Markov Chains, Queues, and
Simulation*, ch. 10; P. J. Schweitzer (1968), *Perturbation theory and finite Markov chains*; [GDAE] =
Bengio, Yao, Alain and Vincent (2013); [TH] = G. Alain's PhD thesis (2018), ch. 5; [DLB] = Goodfellow,
Bengio and Courville (2016), *Deep Learning*, ch. 20.
"""

from __future__ import annotations

import bisect

import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from dae_tutor import checks

__all__ = [
    "MAX_BITS",
    "Categorical",
    "binary_states",
    "check_two_stage",
    "closed_classes",
    "detailed_balance_violation",
    "fundamental_matrix",
    "gth_solve",
    "sample_chain",
    "schweitzer_bound",
    "second_eigenvalue_modulus",
    "stationary_distribution",
    "tv_distance",
    "uniforms",
]

F64 = torch.float64
RESIDUAL_TOL = 1e-9
"""Largest accepted ``‖πT − π‖₁`` of a solved stationary distribution."""
MAX_BITS = 12
"""Largest number of bits of an exact binary kernel: ``(2**12)**2`` float64 entries are 128 MiB."""
MAX_TABLE_BITS = 24
"""Largest ``d`` of :func:`binary_states`: a table of ``2**24`` states of 24 int64 bits is 3 GiB."""
STATIONARY_METHODS = ("gth", "lstsq", "eig", "power")


def check_two_stage(C: object, R: object) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Check the two stages of the chain :math:`X \to \tilde X \sim C[X] \to X' \sim R[\tilde X]`:
    ``C`` and ``R`` row-stochastic ``(K, K)`` matrices of the same ``K``, both returned on ``C``'s device
    (in the DAE chain, the corruption and the reconstruction; [GDAE] §2.2, eq. 3)."""
    c = checks.stochastic("C", C)
    r = checks.stochastic("R", checks.as_tensor("R", R, device=c.device))
    checks.same_states("C", c.shape[0], "R", r.shape[0])
    return c, r


# ------------------------------------------------------------------------------------- stationarity
def closed_classes(T: object) -> list[list[int]]:
    """The closed communicating classes of the chain ``T`` (graph of its positive entries).

    A finite chain has a unique stationary distribution exactly when it has one closed class; the
    number of closed classes is the multiplicity of the eigenvalue 1. States outside every closed
    class are transient (e.g. states where the data distribution is 0 in an exact DAE chain).
    """
    t = checks.stochastic("T", T)
    adj = (t > 0).cpu().numpy()
    n, labels = connected_components(csr_matrix(adj), directed=True, connection="strong")
    rows, cols = np.nonzero(adj)
    leaks = np.zeros(n, dtype=bool)
    leaks[labels[rows[labels[rows] != labels[cols]]]] = True
    return [np.flatnonzero(labels == c).tolist() for c in range(n) if not leaks[c]]


def gth_solve(T: object) -> torch.Tensor:
    r"""A stationary distribution :math:`\pi T = \pi` by the Grassmann-Taksar-Heyman algorithm.

    GTH is Gaussian elimination on :math:`I - T` that never subtracts: at step ``k`` the pivot is
    recomputed as the mass :math:`\sum_{j>k} A_{kj}` that state ``k`` sends to the states not yet
    eliminated, and the update :math:`A_{ij} \mathrel{+}= A_{ik} A_{kj} / s_k` (``i, j > k``) adds
    non-negative numbers only; back substitution :math:`x_k = \sum_{i>k} x_i A_{ik} / s_k` does too.
    Every entry therefore has a small *relative* error, even when transition probabilities are as small
    as ``1e-14`` (Grassmann, Taksar and Heyman 1985; Stewart 2009, ch. 10; QuantEcon's ``gth_solve``),
    where a solve of :math:`[T^\top - I;\ \mathbf 1^\top]\pi = [0; 1]` or an eigenvector loses
    accuracy in proportion to :math:`1/(1 - |\lambda_2|)`.

    ``T`` need not be irreducible. If it has several closed classes, the result is the stationary
    distribution of one of them: the class that contains the first state ``k`` from which no
    path leads to a state ``> k`` (e.g. for a block-diagonal ``T`` the first block's, padded with
    zeros); transient states get 0. :func:`stationary_distribution` refuses such a ``T``.

    Args:
        T: ``(K, K)`` row-stochastic transition matrix.

    Returns a float64 ``(K,)`` probability vector on ``T``'s device. Cost :math:`O(K^3)` flops in ``K``
    Python steps, on the CPU (0.15 s for ``K = 512``, 0.7 s for ``K = 1024`` on a 2-core CPU).
    """
    t = checks.stochastic("T", T)
    a = t.cpu().clone()  # eliminated in place on the CPU: one small update per pivot
    n = a.shape[0]
    for k in range(n - 1):  # forward elimination; a loop over pivots, each an in-place rank-1 update
        scale = float(a[k, k + 1 :].sum())
        if scale <= 0:  # no path from k to a later state: {0..k} holds a closed class, solve on it
            n = k + 1
            break
        a[k + 1 :, k] /= scale
        a[k + 1 :, k + 1 :].addr_(a[k + 1 :, k], a[k, k + 1 :])
    x = torch.zeros(a.shape[0], dtype=F64)
    x[n - 1] = 1.0
    for k in range(n - 2, -1, -1):  # back substitution
        x[k] = x[k + 1 : n] @ a[k + 1 : n, k]
    return (x / x.sum()).to(t.device)


def _solve_stationary(t: torch.Tensor, method: str) -> torch.Tensor:
    if method == "gth":
        return gth_solve(t)
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
    raise ValueError("T mixes too slowly for method='power' (no convergence in 100000 steps); use 'gth'")


def stationary_distribution(T: object, method: str = "gth") -> torch.Tensor:
    r"""The unique stationary distribution :math:`\pi T = \pi` of a row-stochastic ``T`` (float64).

    Args:
        T: ``(K, K)`` row-stochastic transition matrix.
        method: ``"gth"`` (default: :func:`gth_solve`, accurate to a few ulps per entry),
            ``"lstsq"`` (least squares on :math:`[T^\top - I;\ \mathbf 1^\top]\pi = [0; 1]`),
            ``"eig"`` (left eigenvector of eigenvalue 1) or ``"power"`` (iterating the lazy chain
            :math:`(I+T)/2`).

    Raises ``ValueError`` naming ``T`` when it is not row-stochastic or when it has more than one closed
    class (reducible: the stationary distribution is not unique, e.g. :math:`C = I`, or a
    corruption too local to cross a gap). The result is checked: :math:`\pi \ge 0`, sums to 1 and
    :math:`\lVert\pi T - \pi\rVert_1 < 10^{-9}`.
    """
    t = checks.stochastic("T", T)
    method = checks.one_of("method", method, STATIONARY_METHODS)
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
    if residual > RESIDUAL_TOL:
        raise ValueError(f"T is too ill-conditioned: ||pi T - pi||_1 = {residual:.3g} after solving")
    return pi


def second_eigenvalue_modulus(T: object) -> float:
    r"""The second largest modulus :math:`|\lambda_2|` among the eigenvalues of ``T``.

    The mixing time scales as :math:`1/(1-|\lambda_2|)`; :math:`|\lambda_2| = 1` for a reducible or
    periodic chain. Returns 0 for ``K = 1``.
    """
    t = checks.stochastic("T", T)
    mods = torch.linalg.eigvals(t).abs().sort(descending=True).values
    return float(mods[1]) if mods.numel() > 1 else 0.0


def detailed_balance_violation(T: object, pi: object) -> float:
    r""":math:`\max_{x,x'} |\pi_x T_{xx'} - \pi_{x'} T_{x'x}|`: 0 exactly when ``T`` is reversible
    with respect to ``pi``. The exact DAE chain is reversible w.r.t. the data distribution,
    which is what clamping needs ([DLB] §20.11.2; [TH] §5.3.6, Prop. 5)."""
    t = checks.stochastic("T", T)
    p = checks.pmf("pi", pi, t.device)
    checks.same_states("T", t.shape[0], "pi", p.numel())
    flow = p[:, None] * t
    return float((flow - flow.T).abs().max())


def tv_distance(p: object, q: object) -> float:
    r"""Total variation :math:`\mathrm{TV}(p, q) = \tfrac12 \lVert p - q\rVert_1` between two ``(K,)``
    probability vectors."""
    a = checks.pmf("p", p)
    b = checks.pmf("q", q, a.device)
    checks.same_states("p", a.numel(), "q", b.numel())
    return 0.5 * float((a - b).abs().sum())


# ------------------------------------------------------------------------------------- perturbation
def fundamental_matrix(T: object) -> torch.Tensor:
    r"""Schweitzer's :math:`Z = (I - T + \mathbf 1 \pi)^{-1}` in the row convention (every row of
    :math:`\mathbf 1\pi` is :math:`\pi`). :math:`\lVert Z\rVert_\infty` blows up as the chain nears
    reducibility ([TH] §5.3.6 says the opposite, that it is zero there). ``T`` must have a
    unique stationary distribution."""
    t = checks.stochastic("T", T)
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
    t = checks.stochastic("T", T)
    tt = checks.stochastic("T_tilde", checks.as_tensor("T_tilde", T_tilde, device=t.device))
    checks.same_states("T", t.shape[0], "T_tilde", tt.shape[0])
    lhs = float((stationary_distribution(t) - stationary_distribution(tt)).abs().sum())
    return lhs, _inf_norm(fundamental_matrix(t)) * _inf_norm(t - tt)


# ------------------------------------------------------------------------------------- sampling
_BLOCK = 4096  # uniforms drawn per call to the generator


def uniforms(n: int, generator: torch.Generator | None = None) -> np.ndarray:
    """``n`` float64 uniforms on [0, 1) from ``generator`` (torch's global one when ``None``), as a
    NumPy array: the random numbers of every finite-state sampler of the package."""
    n = checks.nonnegative_int("n", n)
    generator = checks.generator("generator", generator)
    device = generator.device if generator is not None else "cpu"
    return torch.rand(n, dtype=F64, device=device, generator=generator).cpu().numpy()


class Categorical:
    """Inverse-CDF draws from the rows of a row-stochastic ``(n, m)`` matrix ``probs``.

    Exact for zero-probability states: they are never drawn, even when a row's cumulative sum ends at
    1 - 1e-16. The work is in NumPy on the CPU: one chain step then costs microseconds, not the
    ~40 us of a ``torch.multinomial`` call.
    """

    def __init__(self, probs: object) -> None:
        probs = checks.stochastic("probs", probs, square=False).cpu().numpy()
        self.cdf = np.cumsum(probs, axis=1)
        self.last = probs.shape[1] - 1 - np.argmax(probs[:, ::-1] > 0, axis=1)  # last positive state
        self.cdf_rows = [row.tolist() for row in self.cdf]
        self.n = probs.shape[0]

    def _check(self, states: np.ndarray, u: np.ndarray) -> None:
        if (
            not isinstance(states, np.ndarray)
            or states.ndim != 1
            or not np.issubdtype(states.dtype, np.integer)
        ):
            raise TypeError(f"states must be a 1-D NumPy array of integers, got {type(states).__name__}")
        if states.size and (states.min() < 0 or states.max() >= self.n):
            raise ValueError(f"states must hold rows in [0, {self.n}), got [{states.min()}, {states.max()}]")
        if (
            not isinstance(u, np.ndarray)
            or u.shape != states.shape
            or not np.issubdtype(u.dtype, np.floating)
        ):
            raise ValueError(f"u must be a float NumPy array of the shape of states {states.shape}")
        if u.size and (u.min() < 0 or u.max() >= 1):
            raise ValueError("u must hold uniforms in [0, 1)")

    def rows(self, states: np.ndarray, u: np.ndarray) -> np.ndarray:
        """One draw from row ``states[i]`` for each ``i``, driven by the uniforms ``u`` (two NumPy
        arrays of the same length: int rows in ``[0, n)``, floats in [0, 1))."""
        self._check(states, u)
        return self._rows(states, u)

    def _rows(self, states: np.ndarray, u: np.ndarray) -> np.ndarray:
        """:meth:`rows` without the checks (the inner loop of :func:`sample_chain`)."""
        idx = (self.cdf[states] <= u[:, None]).sum(axis=1)
        return np.minimum(idx, self.last[states])

    def one(self, state: int, u: float) -> int:
        """One draw from row ``state`` (an int in ``[0, n)``) driven by the uniform ``u``."""
        if not isinstance(state, (int, np.integer)) or isinstance(state, bool) or not 0 <= state < self.n:
            raise ValueError(f"state must be an integer row in [0, {self.n}), got {state!r}")
        if not isinstance(u, (float, np.floating)) or not 0.0 <= u < 1.0:
            raise ValueError(f"u must be a float in [0, 1), got {u!r}")
        return min(bisect.bisect_right(self.cdf_rows[state], u), int(self.last[state]))


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
        stages = list(check_two_stage(*transition))
    else:
        stages = [checks.stochastic("transition", transition)]
    device = stages[0].device
    k = stages[0].shape[0]
    start = checks.states("x0", x0, k, device)
    n_steps = checks.nonnegative_int("n_steps", n_steps)
    generator = checks.generator("generator", generator)
    samplers = [Categorical(m) for m in stages]
    x = start.reshape(-1).cpu().numpy()
    batch = x.size
    out = np.empty((n_steps + 1, batch), dtype=np.int64)
    out[0] = x
    per_step = len(samplers) * batch
    for first in range(1, n_steps + 1, _BLOCK):
        steps = min(_BLOCK, n_steps + 1 - first)
        u = uniforms(steps * per_step, generator).reshape(steps, len(samplers), batch)
        for i in range(steps):
            for j, sampler in enumerate(samplers):
                x = sampler._rows(x, u[i, j])
            out[first + i] = x
    result = torch.as_tensor(out, device=device)
    return result[:, 0] if start.dim() == 0 else result


# ------------------------------------------------------------------------------------- binary states
def binary_states(d: int, *, device: torch.device | str | None = None) -> torch.Tensor:
    """All ``2**d`` binary vectors of length ``d`` as an int64 ``(2**d, d)`` table, ``1 <= d <= 24``.

    Row ``s`` holds the bits of ``s``, most significant first, i.e. the order of
    ``itertools.product([0, 1], repeat=d)``: the state order of every binary kernel of the package
    (:func:`dae_tutor.chains.salt_and_pepper_kernel`, :func:`dae_tutor.depnets.site_kernels`, ...) and
    of the RBM's exact enumeration (:meth:`dae_tutor.baselines.RBM.log_partition`).
    """
    d = checks.positive_int("d", d)
    if d > MAX_TABLE_BITS:
        raise ValueError(f"d must be <= {MAX_TABLE_BITS} (the table has 2**d rows), got {d}")
    s = torch.arange(1 << d, device=device)
    shifts = torch.arange(d - 1, -1, -1, device=device)
    return (s[:, None] >> shifts) & 1
