"""The Hessian of a training loss: products, extreme eigenpairs, line searches (thesis ch. 11, 11.A-11.E).

* :func:`hvp` -- Hessian-vector products H(θ)v = ∇_θ(g(θ)ᵀv) (Pearlmutter), as the JVP of the
  gradient (forward-over-reverse, the thesis's "Jacobian vector product" trick, app. 11.A) batched over
  several v with ``vmap``, or by double backward; :func:`full_hessian` for models small enough to store H.
* :func:`lanczos` -- the k largest (LA) or smallest (SA) eigenpairs of a symmetric operator given only
  by its matvec, with full reorthogonalisation, in torch on the operator's device (app. 11.A notation).
* :func:`arpack_eigs` -- the same requests answered by ARPACK (``scipy.sparse.linalg.eigsh``), counting
  matvecs; :func:`ritz_angles` -- angles between Ritz vectors and exact eigenvectors.
* :func:`hessian_eigs` -- LA(k)/SA(k) of the loss of a model averaged over a dataset or a fixed subset
  (app. 11.D), chunked and deterministic; :func:`checkpoint_spectrum` -- LA(k), SA(3), loss and gradient
  at a training checkpoint (Fig. 11.5).
* :func:`line_search_along` -- ℓ(α) = L(θ − α u) on a grid of steps (eq. 11.1 with u = [gᵀv]v), the
  optimal step α* (eq. 11.2: α* = 1/λ on a quadratic) and :func:`quadratic_model`.
* :class:`NegativeCurvature` -- the optimiser of app. 11.E: a warm-started, Lanczos-refreshed estimate of the
  most negative eigenvector and, every K steps of a base optimiser, a line search along it;
  :func:`timed_run` trains with it (or a plain optimiser) and logs steps, seconds and HVPs, and
  :func:`gradient_equivalents` puts the three on one cost axis.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse.linalg as sla
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, jvp, vmap
from tqdm.auto import tqdm

from dae_tutor import checks, runtime
from dae_tutor.errors import ConvergenceError, DivergenceError

WHICH = ("LA", "SA")
HVP_METHODS = ("fwd_rev", "double_backward")
REDUCTIONS = ("mean", "none")
#: :func:`full_hessian` refuses larger problems (a d x d float64 matrix of 25M entries is 200 MB).
MAX_FULL_HESSIAN_DIM = 5_000

Loss = Callable[[torch.Tensor], torch.Tensor]


def _flat(name: str, value: object) -> torch.Tensor:
    return checks.tensor(name, value, ndim=1, nonempty=True)


def _scalar(loss: object) -> torch.Tensor:
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise TypeError(
            f"loss_fn must return a scalar tensor, got {getattr(loss, 'shape', type(loss).__name__)}"
        )
    return loss.reshape(())


# ----------------------------------------------------------------------------- products


def hvp(loss_fn: Loss, params: torch.Tensor, v: torch.Tensor, *, method: str = "fwd_rev") -> torch.Tensor:
    """H(θ)v for the Hessian H of ``loss_fn`` at the flat parameter vector ``params`` (thesis app. 11.A).

    ``v`` is one direction (d,) or a batch (m, d) (one product per row). ``method="fwd_rev"``
    computes Hv as the JVP of θ ↦ ∇L(θ) (``torch.func.jvp`` of ``torch.func.grad``; a batch goes through
    ``vmap``); ``"double_backward"`` differentiates gᵀv once more with autograd (rows one by one).
    Both are exact up to rounding; the result has ``v``'s shape, dtype and device.
    """
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    params = _flat("params", params)
    v = checks.tensor("v", v)
    if v.dim() not in (1, 2) or v.shape[-1] != params.shape[0]:
        raise ValueError(
            f"v must have shape (d,) or (m, d), last dimension d = {params.shape[0]} the length of params, "
            f"got {tuple(v.shape)}"
        )
    method = checks.one_of("method", method, HVP_METHODS)
    batched = v.dim() == 2
    rows = v if batched else v[None]
    if method == "fwd_rev":
        gradient = grad(lambda p: _scalar(loss_fn(p)))

        def one(u: torch.Tensor) -> torch.Tensor:
            return jvp(gradient, (params,), (u,))[1]

        out = vmap(one)(rows) if batched else one(v)[None]
    else:
        theta = params.detach().requires_grad_(True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(_scalar(loss_fn(theta)), theta, create_graph=True)
            out = torch.stack(
                [torch.autograd.grad(g @ u, theta, retain_graph=True)[0] for u in rows]
            ).detach()
    return out if batched else out[0]


def full_hessian(loss_fn: Loss, params: torch.Tensor) -> torch.Tensor:
    """The d x d Hessian of ``loss_fn`` at ``params`` (``torch.func.hessian``), for d ≤ 5,000 only.

    The reference for small models: its ``torch.linalg.eigh`` is the whole spectrum. It is symmetrised,
    (H + Hᵀ)/2, which only removes rounding.
    """
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    params = _flat("params", params)
    if params.shape[0] > MAX_FULL_HESSIAN_DIM:
        raise ValueError(
            f"params has {params.shape[0]:,} entries; full_hessian stores d² numbers and is limited to "
            f"d <= {MAX_FULL_HESSIAN_DIM:,}: use hvp and lanczos for larger models"
        )
    H = torch.func.hessian(lambda p: _scalar(loss_fn(p)))(params).detach()
    return (H + H.T) / 2


# ----------------------------------------------------------------------------- Lanczos


@dataclass
class Eigenpairs:
    """k eigenpairs from :func:`lanczos`: ``eigenvalues`` (k,), ``eigenvectors`` (d, k) with unit columns,
    ``n_matvec`` (operator applications used), ``residuals`` (k,) ‖Hx − θx‖ of each pair, and
    ``history``: the k wanted Ritz values after each matvec from the k-th on (Ritz convergence)."""

    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor
    n_matvec: int
    residuals: torch.Tensor
    history: list[list[float]] = field(default_factory=list, repr=False)


def lanczos(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    dim: int,
    k: int,
    which: str = "LA",
    *,
    tol: float = 1e-10,
    max_iter: int | None = None,
    generator: torch.Generator | None = None,
    shift: float | str | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    progress: bool = False,
    start: torch.Tensor | None = None,
    strict: bool = True,
) -> Eigenpairs:
    """The k largest (``"LA"``) or smallest (``"SA"``) eigenpairs of the symmetric operator ``matvec``.

    Lanczos: with q₁ random, β_j q_{j+1} = A q_j − α_j q_j − β_{j−1} q_{j−1}, where each new vector is
    reorthogonalised against all previous ones twice (classical Gram–Schmidt, "twice is enough"), so
    the basis Q_m stays orthonormal to rounding and no spurious copies appear. The eigenpairs (θ_i, s_i)
    of the tridiagonal T_m = QᵀAQ give Ritz pairs (θ_i, Q_m s_i) with residual ‖A x_i − θ_i x_i‖ =
    β_m abs(s_i[m]). The iteration stops when each of the k wanted pairs has ‖r_i‖ ≤ ``tol`` · abs(θ_i − σ):
    with no shift (σ = 0) that is ARPACK's test. By Bauer–Fike *some* eigenvalue λ lies within ‖r_i‖ of
    θ_i, not necessarily the i-th: a Krylov space can miss a member of a tight cluster (a random start
    makes that unlikely, not impossible; check against ``eigh`` where H can be stored).
    The **spectral shift** σ is what running ARPACK on σI − H does for SA (σ = λ₁; a standard trick,
    not the thesis's): the Krylov space is shift-invariant, so the iteration is the same, but the test
    is measured against the distance to σ, the spectral width, instead of the small abs(λ_d), and stops sooner
    (eigenvalues then correct to ``tol`` · abs(θ_i − σ) absolute). ``shift="auto"`` takes σ = the Ritz value
    at the other end of the spectrum, which Lanczos gets for free. There is no restart: the basis grows to
    at most ``max_iter`` vectors (d x max_iter numbers on the device).

    Args:
        matvec: v ↦ Av for a (dim,) tensor; A must be symmetric. Called once per iteration.
        dim: the operator's size d. k: how many eigenpairs, 1 ≤ k < d. which: ``"LA"`` or ``"SA"``.
        tol: relative residual tolerance (above). max_iter: the most matvecs (default min(d, 20k + 500)).
        shift: ``None`` (σ = 0), a number σ, or ``"auto"`` (the far end of the Ritz spectrum).
        generator: for the random start vector (any device); dtype/device of the iteration (default
            float64 on the CPU: pass the device of the data the matvec works on).
        progress: a ``tqdm.auto`` bar over matvecs.
        start: q₁ ∝ ``start`` (a (dim,) vector) instead of a random vector: a warm start. The Krylov space
            then contains ``start``, so for k = 1 the Ritz value is never worse than its Rayleigh quotient.
        strict: when False, reaching ``max_iter`` returns the Ritz pairs found so far (their residuals say
            how far from converged) instead of raising: a fixed budget of matvecs.

    Returns:
        :class:`Eigenpairs`, LA in decreasing order, SA in increasing order (most negative first).

    Raises:
        ConvergenceError: the pairs did not converge within ``max_iter`` matvecs.
        ValueError: k ≥ dim, unknown ``which``, or a matvec returned a non-finite vector or a wrong shape.
    """
    if not callable(matvec):
        raise TypeError(f"matvec must be callable, got {type(matvec).__name__}")
    dim = checks.positive_int("dim", dim, minimum=2)
    k = checks.positive_int("k", k)
    if k >= dim:
        raise ValueError(f"k must be < dim ({dim}), got {k}")
    which = checks.one_of("which", which, WHICH)
    tol = checks.positive_float("tol", tol)
    if isinstance(shift, str):
        checks.one_of("shift", shift, ("auto",))
    elif shift is not None:
        if isinstance(shift, bool) or not isinstance(shift, (int, float)) or not math.isfinite(shift):
            raise TypeError(f"shift must be None, 'auto' or a finite number, got {shift!r}")
        shift = float(shift)
    max_iter = min(dim, 20 * k + 500) if max_iter is None else checks.positive_int("max_iter", max_iter)
    if max_iter < k:
        raise ValueError(f"max_iter must be >= k ({k}), got {max_iter}")
    max_iter = min(max_iter, dim)
    device = torch.device(device) if device is not None else torch.device("cpu")
    generator = checks.generator("generator", generator)
    strict = checks.boolean("strict", strict)
    if start is not None:
        start = checks.tensor("start", start, ndim=1)
        if start.shape[0] != dim or not bool(start.norm() > 0):
            raise ValueError(
                f"start must be a non-zero vector of length dim = {dim}, got {tuple(start.shape)}"
            )

    def random_vector() -> torch.Tensor:  # drawn on the generator's device, so a CPU seed works anywhere
        where = generator.device if generator is not None else device
        return torch.randn(dim, generator=generator, dtype=dtype, device=where).to(device)

    sign = 1.0 if which == "LA" else -1.0  # SA(k) of A = LA(k) of -A

    def apply(q: torch.Tensor) -> torch.Tensor:
        out = matvec(q)
        if not isinstance(out, torch.Tensor) or out.shape != (dim,):
            raise ValueError(
                f"matvec must return a tensor of shape ({dim},), got {getattr(out, 'shape', out)}"
            )
        if not bool(torch.isfinite(out).all()):
            raise ValueError("matvec returned a vector with NaN or infinite values")
        return sign * out.detach().to(dtype=dtype, device=device)

    Q = torch.empty(min(max_iter + 1, 64), dim, dtype=dtype, device=device)  # grown as needed
    q = random_vector() if start is None else start.detach().to(dtype=dtype, device=device)
    Q[0] = q / q.norm()
    alphas: list[float] = []
    betas: list[float] = []
    history: list[list[float]] = []
    with tqdm(total=max_iter, desc=f"Lanczos {which}({k})", disable=not progress, leave=False) as bar:
        for j in range(max_iter):
            w = apply(Q[j])
            bar.update(1)
            alphas.append(float(Q[j] @ w))
            for _ in range(2):  # full reorthogonalisation, twice
                w = w - Q[: j + 1].T @ (Q[: j + 1] @ w)
            beta = float(w.norm())
            betas.append(beta)
            T = _tridiagonal(alphas, betas[:-1])
            theta, S = torch.linalg.eigh(T)
            scale = float(theta.abs().max())
            if j + 1 >= k:
                top = theta[-k:].flip(0)
                res = beta * S[-1, -k:].flip(0).abs()
                history.append((sign * top).tolist())
                sigma = 0.0 if shift is None else float(theta[0]) if shift == "auto" else sign * shift
                done = j + 1 == dim or bool((res <= tol * (top - sigma).abs()).all())
                done = done or (not strict and j + 1 == max_iter)
                if done:
                    X = Q[: j + 1].T @ S[:, -k:].flip(1).to(dtype=dtype, device=device)
                    values = (sign * top).to(dtype=dtype, device=device)
                    return Eigenpairs(values, X, j + 1, res.to(device=device), history)
            if j + 1 == Q.shape[0]:
                Q = torch.cat([Q, torch.empty_like(Q[: min(Q.shape[0], max_iter + 1 - Q.shape[0])])])
            if beta <= 1e-14 * max(scale, 1e-300):  # invariant subspace: continue in its complement
                w = random_vector()
                for _ in range(2):
                    w = w - Q[: j + 1].T @ (Q[: j + 1] @ w)
                betas[-1] = 0.0
                Q[j + 1] = w / w.norm()
            else:
                Q[j + 1] = w / beta
    raise ConvergenceError(
        f"lanczos {which}({k}): residuals {res.tolist()} still above tol·|θ - shift| = "
        f"{(tol * (top - sigma).abs()).tolist()} "
        f"after max_iter = {max_iter} matvecs; raise max_iter or tol"
    )


def arpack_eigs(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    dim: int,
    k: int,
    which: str = "LA",
    *,
    tol: float = 1e-10,
    shift: float | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, int]:
    """ARPACK's answer to LA(k)/SA(k) (``scipy.sparse.linalg.eigsh``, the thesis's tool, app. 11.A) and
    how many matvecs it took: the reference for :func:`lanczos`.

    ``matvec`` maps a float64 (dim,) tensor to A v; the start vector is drawn from ``seed``. With
    ``shift`` = σ (only for ``which="SA"``), ARPACK computes LA(k) of σI − A and the eigenvalues
    σ − θ are returned (in decreasing order; otherwise in ARPACK's increasing order).
    """
    if not callable(matvec):
        raise TypeError(f"matvec must be callable, got {type(matvec).__name__}")
    dim = checks.positive_int("dim", dim, minimum=2)
    k = checks.positive_int("k", k)
    if k >= dim:
        raise ValueError(f"k must be < dim ({dim}), got {k}")
    which = checks.one_of("which", which, WHICH)
    tol = checks.positive_float("tol", tol)
    if shift is not None:
        shift = checks.real("shift", shift)
        if which != "SA":
            raise ValueError(f"shift is for which='SA' (LA of shift*I - A), got which={which!r}")
    calls = [0]

    def apply(x: np.ndarray) -> np.ndarray:
        calls[0] += 1
        hv = matvec(torch.from_numpy(np.ascontiguousarray(x).reshape(-1)))
        return (hv if shift is None else shift * torch.from_numpy(x.reshape(-1)) - hv).numpy()

    op = sla.LinearOperator((dim, dim), matvec=apply, dtype=np.float64)
    v0 = torch.randn(dim, generator=runtime.generator(seed), dtype=torch.float64).numpy()
    values = sla.eigsh(op, k=k, which=which if shift is None else "LA", tol=tol, v0=v0)[0]
    return (values if shift is None else shift - values), calls[0]


def ritz_angles(
    ritz_vectors: torch.Tensor,
    eigenvalues: torch.Tensor,
    eigenvectors: torch.Tensor,
    index: Sequence[int],
    *,
    min_gap: float,
) -> list[float]:
    """Angles arccos abs(x_iᵀ u_j) between Ritz vector i (column i of ``ritz_vectors``) and exact eigenvector
    j = ``index[i]`` (column j of ``eigenvectors``, of eigenvalue ``eigenvalues[j]``, e.g. from ``eigh``),
    for the j whose eigenvalue is more than ``min_gap`` from every other: an eigenvector is defined (up to
    sign) only then, and by Davis–Kahan sin(angle) ≤ ‖r_i‖ / gap.
    """
    ritz_vectors = checks.tensor("ritz_vectors", ritz_vectors, ndim=2)
    eigenvalues = checks.tensor("eigenvalues", eigenvalues, ndim=1)
    eigenvectors = checks.tensor("eigenvectors", eigenvectors, ndim=2)
    d = len(eigenvalues)
    if eigenvectors.shape != (d, d) or ritz_vectors.shape[0] != d:
        raise ValueError(
            f"eigenvectors must be (d, d) and ritz_vectors (d, k) for d = {d} eigenvalues, "
            f"got {tuple(eigenvectors.shape)} and {tuple(ritz_vectors.shape)}"
        )
    index = checks.int_sequence("index", index, minimum=0, length=ritz_vectors.shape[1])
    if max(index, default=0) >= d:
        raise ValueError(f"index must be < {d}, got {max(index)}")
    min_gap = checks.positive_float("min_gap", min_gap, allow_zero=True)
    out = []
    for i, j in enumerate(index):
        gap = (eigenvalues - eigenvalues[j]).abs().sort().values[1].item()
        if gap > min_gap:
            cos = (ritz_vectors[:, i] @ eigenvectors[:, j]).abs().clamp(max=1)
            out.append(torch.acos(cos).item())
    return out


def _tridiagonal(diagonal: Sequence[float], off: Sequence[float]) -> torch.Tensor:
    """The symmetric tridiagonal Lanczos matrix T (float64, CPU) from its diagonal and off-diagonal."""
    T = torch.diag(torch.tensor(diagonal, dtype=torch.float64))
    if off:
        b = torch.tensor(off, dtype=torch.float64)
        T = T + torch.diag(b, 1) + torch.diag(b, -1)
    return T


# ----------------------------------------------------------------------------- losses of a model's parameters


def _unflatten(model: nn.Module, theta: torch.Tensor) -> dict[str, torch.Tensor]:
    out, start = {}, 0
    for name, p in model.named_parameters():
        out[name] = theta[start : start + p.numel()].view_as(p)
        start += p.numel()
    return out


class DatasetLoss:
    """L(θ) = (1/N) Σ_n ℓ(f_θ(x_n), y_n) over a dataset or a fixed subset of it (thesis §11.2.1, app. 11.D).

    ``loss_fn(outputs, targets)`` is a mean-reduced criterion (e.g. ``F.cross_entropy``) with
    ``reduction="mean"``, or returns the per-example losses ℓ_n (e.g. ``importance.cross_entropy``) with
    ``reduction="none"``, whose mean is then taken (the convention of :mod:`dae_tutor`); the data are cut
    into fixed chunks of ``chunk_size`` rows and every quantity is the sum over chunks b weighted by
    n_b/N (n_b rows in b), always in the same order, so repeated calls give bit-identical results (what
    ARPACK/Lanczos need, app. 11.D).
    ``subset`` (a fraction in (0, 1]) keeps a fixed random subset drawn once from ``generator``. The model
    is used through ``torch.func.functional_call`` with θ: put it in eval mode (no dropout, BatchNorm fixed).
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        data: Sequence[torch.Tensor],
        *,
        chunk_size: int = 1024,
        subset: float | None = None,
        generator: torch.Generator | None = None,
        reduction: str = "mean",
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if not callable(loss_fn):
            raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
        if (
            not isinstance(data, Sequence)
            or len(data) != 2
            or not all(isinstance(t, torch.Tensor) for t in data)
        ):
            raise TypeError("data must be a pair of tensors (inputs, targets)")
        inputs, targets = data
        if inputs.shape[0] != targets.shape[0] or inputs.shape[0] == 0:
            raise ValueError(
                "data must hold as many inputs as targets (at least one), "
                f"got {inputs.shape[0]} and {targets.shape[0]}"
            )
        checks.tensor("data[0] (the inputs)", inputs)
        self.reduction = checks.one_of("reduction", reduction, REDUCTIONS)
        self.chunk_size = checks.positive_int("chunk_size", chunk_size)
        if subset is not None:
            subset = checks.probability("subset", subset)
            if subset == 0:
                raise ValueError("subset must be in (0, 1], got 0")
            n = max(1, round(subset * inputs.shape[0]))
            generator = checks.generator("generator", generator)
            where = generator.device if generator is not None else "cpu"
            index = torch.randperm(inputs.shape[0], generator=generator, device=where)[:n].sort().values
            index = index.to(inputs.device)
            inputs, targets = inputs[index], targets[index]
        self.model, self.loss_fn, self.inputs, self.targets = model, loss_fn, inputs, targets
        self.n = inputs.shape[0]
        self.dim = sum(p.numel() for p in model.parameters())

    def _chunks(self):
        for start in range(0, self.n, self.chunk_size):
            x, y = self.inputs[start : start + self.chunk_size], self.targets[start : start + self.chunk_size]
            yield x.shape[0] / self.n, x, y

    def _chunk_loss(self, x: torch.Tensor, y: torch.Tensor) -> Loss:
        def loss(theta: torch.Tensor) -> torch.Tensor:
            value = self.loss_fn(functional_call(self.model, _unflatten(self.model, theta), (x,)), y)
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            if self.reduction == "none" and shape == (x.shape[0],):
                return value.mean()
            if self.reduction == "mean" and isinstance(value, torch.Tensor) and value.numel() == 1:
                return value.reshape(())
            wanted = f"({x.shape[0]},), one loss per row" if self.reduction == "none" else "(), the mean"
            raise ValueError(
                f"loss_fn must return shape {wanted}, on a chunk of {x.shape[0]} rows with "
                f"reduction={self.reduction!r}, got {shape}: 'none' takes per-example losses, 'mean' the mean"
            )

        return loss

    def _check_theta(self, theta: object) -> torch.Tensor:
        theta = _flat("theta", theta)
        if theta.shape[0] != self.dim:
            raise ValueError(
                f"theta must have {self.dim} entries (the model's parameters), got {theta.shape[0]}"
            )
        return theta

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        """L(θ), differentiable in θ."""
        theta = self._check_theta(theta)
        return sum(w * self._chunk_loss(x, y)(theta) for w, x, y in self._chunks())

    def gradient(self, theta: torch.Tensor) -> torch.Tensor:
        """g(θ) = ∇L(θ), chunk by chunk."""
        theta = self._check_theta(theta)
        return sum(w * grad(self._chunk_loss(x, y))(theta) for w, x, y in self._chunks())

    def hvp(self, theta: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """H(θ)v (v of shape (d,) or (m, d)) = Σ_b (n_b/N) H_b v over the chunks, forward-over-reverse."""
        theta = self._check_theta(theta)
        return sum(w * hvp(self._chunk_loss(x, y), theta, v) for w, x, y in self._chunks())


def hessian_eigs(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    data: Sequence[torch.Tensor],
    k: int,
    which: str = "LA",
    *,
    subset: float | None = None,
    chunk_size: int = 1024,
    tol: float = 1e-8,
    max_iter: int | None = None,
    generator: torch.Generator | None = None,
    shift: float | str | None = None,
    progress: bool = False,
    reduction: str = "mean",
) -> Eigenpairs:
    """LA(k) or SA(k) (thesis app. 11.A) of the Hessian of ``model``'s loss over ``data`` = (inputs, targets).

    The loss is :class:`DatasetLoss` (the full data, or a fixed ``subset`` fraction drawn from
    ``generator``, app. 11.D; ``loss_fn`` mean-reduced, or per-example with ``reduction="none"``), its
    Hessian-vector products go to :func:`lanczos` on the parameters' device and dtype (``tol``,
    ``max_iter``, ``shift`` as there). The model is put in eval mode and restored. Eigenvectors
    are flat (d, k), in the order of ``torch.nn.utils.parameters_to_vector(model.parameters())``.
    """
    which = checks.one_of("which", which, WHICH)
    objective = DatasetLoss(
        model, loss_fn, data, chunk_size=chunk_size, subset=subset, generator=generator, reduction=reduction
    )
    k = checks.positive_int("k", k)
    if k >= objective.dim:
        raise ValueError(f"k must be < the number of parameters ({objective.dim}), got {k}")
    theta = nn.utils.parameters_to_vector(model.parameters()).detach()
    was_training = model.training
    model.eval()
    try:
        return lanczos(
            lambda v: objective.hvp(theta, v),
            objective.dim,
            k,
            which,
            tol=tol,
            max_iter=max_iter,
            generator=generator,
            shift=shift,
            dtype=theta.dtype,
            device=theta.device,
            progress=progress,
        )
    finally:
        model.train(was_training)


def checkpoint_spectrum(
    model: nn.Module,
    theta: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    data: Sequence[torch.Tensor],
    k: int,
    *,
    objective: DatasetLoss,
    k_sa: int = 3,
    tol: float = 1e-3,
    seed: int = 4,
) -> dict:
    """What Fig. 11.5 plots at one checkpoint θ (thesis app. 11.B): LA(k) and SA(``k_sa``) of the Hessian
    of ``loss_fn`` over ``data`` (e.g. a fixed 5% subset, app. 11.D), each by :func:`hessian_eigs` from a
    fresh generator of ``seed``, and the loss L(θ) and gradient ∇L(θ) of ``objective`` (e.g. the full
    training set). ``model``'s parameters are set to θ (and left there). Returns
    ``dict(la=, sa=, loss=, grad=, hvps=)``, ``hvps`` the Hessian-vector products of both requests.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(objective, DatasetLoss):
        raise TypeError(f"objective must be a DatasetLoss, got {type(objective).__name__}")
    theta = _flat("theta", theta)
    k, k_sa = checks.positive_int("k", k), checks.positive_int("k_sa", k_sa)
    tol, seed = checks.positive_float("tol", tol), checks.nonnegative_int("seed", seed)
    dim = sum(p.numel() for p in model.parameters())
    if theta.numel() != dim:
        raise ValueError(f"theta must have the model's {dim} parameters, got {theta.numel()}")
    nn.utils.vector_to_parameters(theta, model.parameters())
    la = hessian_eigs(model, loss_fn, data, k, "LA", tol=tol, generator=runtime.generator(seed))
    sa = hessian_eigs(model, loss_fn, data, k_sa, "SA", tol=tol, generator=runtime.generator(seed))
    with torch.no_grad():
        loss = objective(theta).item()
    return dict(la=la, sa=sa, loss=loss, grad=objective.gradient(theta), hvps=la.n_matvec + sa.n_matvec)


# ----------------------------------------------------------------------------- steps along a direction


@dataclass
class LineSearch:
    """ℓ(α) = L(θ − α u) on a grid: ``alphas`` (sorted), ``losses``, ``loss0`` = L(θ), the best step
    ``alpha_star`` (refined by a parabola through the grid minimum and its neighbours), ``best_loss``,
    ``best_decrease`` = best_loss − loss0 (≤ 0 whenever 0 is on the grid) and ``at_edge`` (the minimum is
    at an end of the grid: widen it)."""

    alphas: torch.Tensor
    losses: torch.Tensor
    loss0: float
    alpha_star: float
    best_loss: float
    best_decrease: float
    at_edge: bool


def line_search_along(
    loss_fn: Loss,
    params: torch.Tensor,
    direction: torch.Tensor,
    alphas: Sequence[float] | torch.Tensor,
    *,
    refine: bool = True,
) -> LineSearch:
    """The loss along θ − α u for every α of ``alphas`` (thesis eq. 11.1 with u = [g(θ)ᵀv]v).

    On a quadratic L with Hessian eigenpair (λ, v), λ > 0, ℓ(α) is a parabola with minimum α* = 1/λ
    (eq. 11.2); the parabolic refinement through the three grid points around the grid minimum then
    returns it exactly (to rounding), whatever the grid.
    """
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    params = _flat("params", params)
    direction = checks.tensor("direction", direction, ndim=1)
    if direction.shape != params.shape:
        raise ValueError(
            f"direction must have the shape of params {tuple(params.shape)}, got {tuple(direction.shape)}"
        )
    grid = checks.as_tensor("alphas", alphas, dtype=torch.float64)
    if grid.dim() != 1:
        raise ValueError(f"alphas must be a 1-D sequence of step sizes, got shape {tuple(grid.shape)}")
    grid = grid.sort().values
    if grid.numel() < 3:
        raise ValueError(f"alphas must hold at least 3 step sizes, got {grid.numel()}")
    refine = checks.boolean("refine", refine)

    def at(alpha: float) -> float:
        value = float(_scalar(loss_fn(params - alpha * direction)))
        if not math.isfinite(value):
            raise ValueError(f"the loss is {value} at alpha = {alpha:g} (along the direction)")
        return value

    with torch.no_grad():
        loss0 = at(0.0)
        losses = torch.tensor([at(float(a)) for a in grid], dtype=torch.float64)
        i = int(losses.argmin())
        alpha_star, best = float(grid[i]), float(losses[i])
        at_edge = i in (0, grid.numel() - 1)
        if refine and not at_edge:
            (a0, a1, a2), (f0, f1, f2) = grid[i - 1 : i + 2].tolist(), losses[i - 1 : i + 2].tolist()
            num = (a1 - a0) ** 2 * (f1 - f2) - (a1 - a2) ** 2 * (f1 - f0)
            den = (a1 - a0) * (f1 - f2) - (a1 - a2) * (f1 - f0)
            if den != 0:
                vertex = a1 - 0.5 * num / den
                value = at(vertex)
                if a0 < vertex < a2 and value <= best:
                    alpha_star, best = vertex, value
    return LineSearch(grid, losses, loss0, alpha_star, best, best - loss0, at_edge)


def quadratic_model(loss0: float, slope: float, curvature: float, alphas: torch.Tensor) -> torch.Tensor:
    """The quadratic model of ℓ(α) = L(θ − α c v): L(θ) − α c² + ½ λ α² c², with c = gᵀv and λ = vᵀHv.

    ``loss0`` = L(θ), ``slope`` = c and ``curvature`` = λ are finite numbers; ``alphas`` a non-empty
    1-D floating tensor; the result has its shape and dtype.
    """
    loss0, c, lam = (
        checks.real(n, v) for n, v in (("loss0", loss0), ("slope", slope), ("curvature", curvature))
    )
    alphas = checks.tensor("alphas", alphas, ndim=1, nonempty=True)
    return loss0 - alphas * c**2 + 0.5 * lam * alphas**2 * c**2


# ----------------------------------------------------------------------------- the optimiser of app. 11.E


#: Default displacements of the curvature step's line search (parameter-space lengths, each with both signs).
DISPLACEMENTS = tuple(float(a) for a in torch.logspace(-2, 0.5, 11, dtype=torch.float64))


class NegativeCurvature:
    """A base optimiser plus, every K steps, a line search along the most negative curvature (app. 11.E).

    The estimate ṽ of v_d, the most negative eigenvector of the Hessian H of ``objective`` (a loss of the
    flat parameters on a fixed batch, e.g. a :class:`DatasetLoss` subset, app. 11.D), starts at ``start``
    (a warm start: e.g. Lanczos SA(1) at the initial parameters). At steps ``first``, ``first`` + K, ...
    below ``until`` (the early, saddle-rich phase; K = ``every``) it is refreshed by ``refresh`` Lanczos
    iterations (:func:`lanczos` with ``start`` = ṽ) on the current H. The Krylov space contains ṽ, so
    λ̃ = the SA Ritz value is at most ṽᵀHṽ: never worse than the stored estimate, and better than one
    Riemannian step ṽ ← normalise(ṽ − β(Hṽ − λ̃ṽ)) on the thesis's m(v) = vᵀHv (∇m = 2Hv).
    When λ̃ < 0, the curvature step is a line search of ``objective`` along θ − α ṽ (eq. 11.1 with
    u = ṽ, so α is the displacement in parameter units), α ∈ ±``displacements``, taken when it lowers the
    objective: the step length is measured on the batch it is applied to, not η·gᵀṽ with a minibatch
    gradient g (whose component on ṽ is mostly noise; at an exact saddle it is 0).
    Between curvature steps it is the base optimiser. Counters: ``hvps``, ``evaluations`` (objective
    values), ``curvature_steps``, ``negative`` (λ̃ < 0), ``decreases`` (objective change of each taken step).
    """

    def __init__(
        self,
        base: torch.optim.Optimizer,
        objective: Loss,
        start: torch.Tensor,
        *,
        every: int,
        until: int,
        first: int = 0,
        refresh: int = 10,
        displacements: Sequence[float] = DISPLACEMENTS,
        generator: torch.Generator | None = None,
    ) -> None:
        if not isinstance(base, torch.optim.Optimizer):
            raise TypeError(f"base must be a torch.optim.Optimizer, got {type(base).__name__}")
        if not callable(objective):
            raise TypeError(f"objective must be callable, got {type(objective).__name__}")
        self.base, self.objective = base, objective
        self.params = [p for group in base.param_groups for p in group["params"] if p.requires_grad]
        self.dim = sum(p.numel() for p in self.params)
        start = checks.tensor("start", start, ndim=1)
        if start.shape[0] != self.dim or not bool(start.norm() > 0):
            raise ValueError(
                f"start must be a non-zero vector of the {self.dim} parameters, got {tuple(start.shape)}"
            )
        self.every = checks.positive_int("every", every)
        self.until = checks.nonnegative_int("until", until)
        self.first = checks.nonnegative_int("first", first)
        self.refresh = checks.positive_int("refresh", refresh)
        grid = checks.as_tensor("displacements", displacements, dtype=torch.float64)
        if grid.dim() != 1 or grid.numel() < 2 or not bool((grid > 0).all()):
            raise ValueError(f"displacements must hold at least 2 positive lengths, got {grid.tolist()}")
        self.grid = torch.cat([-grid, grid])
        self.generator = checks.generator("generator", generator)
        first = self.params[0]
        self.v = start.detach().to(dtype=first.dtype, device=first.device) / start.norm()
        self.eigenvalue = math.nan
        self.steps = self.hvps = self.evaluations = self.curvature_steps = self.negative = 0
        self.decreases: list[float] = []

    @property
    def param_groups(self) -> list[dict]:
        return self.base.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base.zero_grad(set_to_none=set_to_none)

    def theta(self) -> torch.Tensor:
        """The current parameters as one flat vector (detached)."""
        return torch.cat([p.detach().reshape(-1) for p in self.params])

    def _hvp(self, theta: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda u: hvp(self.objective, theta, u.to(theta.dtype))

    def step(self, closure: Callable[[], torch.Tensor]) -> torch.Tensor:
        """One base step on the minibatch loss ``closure()``, then the curvature step when one is due."""
        if not callable(closure):
            raise TypeError(f"closure must be callable, got {type(closure).__name__}")
        due = self.first <= self.steps < self.until and (self.steps - self.first) % self.every == 0
        self.steps += 1
        with torch.enable_grad():
            loss = _scalar(closure())
            if not math.isfinite(float(loss.detach())):
                raise DivergenceError(self.steps - 1, float(loss.detach()), None, "NegativeCurvature")
            grads = torch.autograd.grad(loss, self.params)
        for p, t in zip(self.params, grads, strict=True):
            p.grad = t.detach()
        self.base.step()
        if due:
            self._curvature_step()
        return loss.detach()

    def _refresh(self, theta: torch.Tensor) -> Eigenpairs:
        return lanczos(
            self._hvp(theta),
            self.dim,
            1,
            "SA",
            tol=1e-3,
            max_iter=self.refresh,
            generator=self.generator,
            dtype=theta.dtype,
            device=theta.device,
            start=self.v,
            strict=False,
        )

    def _curvature_step(self) -> None:
        theta = self.theta()
        pair = self._refresh(theta)
        self.hvps += pair.n_matvec
        self.curvature_steps += 1
        self.v, self.eigenvalue = pair.eigenvectors[:, 0].to(theta.dtype), float(pair.eigenvalues[0])
        if self.eigenvalue >= 0:
            return
        self.negative += 1

        def counted(p: torch.Tensor) -> torch.Tensor:
            self.evaluations += 1
            return self.objective(p)

        search = line_search_along(counted, theta, self.v, self.grid)
        if search.best_decrease < 0:
            self.decreases.append(search.best_decrease)
            with torch.no_grad():
                step, start = search.alpha_star * self.v, 0
                for p in self.params:
                    p.sub_(step[start : start + p.numel()].view_as(p))
                    start += p.numel()

    def check(self, *, generator: torch.Generator, tol: float = 1e-3) -> tuple[float, float, float]:
        """(ṽᵀHṽ, λ̃, λ_d) at the current parameters, changing nothing and counting nothing: the Rayleigh
        quotient of the stored ṽ, the λ̃ that a refresh would give now, and the bottom eigenvalue of the
        objective's Hessian by a converged :func:`lanczos` SA(1) (``tol``) from ``generator``."""
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        tol = checks.positive_float("tol", tol)
        theta = self.theta()
        matvec = self._hvp(theta)
        bottom = lanczos(matvec, self.dim, 1, "SA", tol=tol, generator=generator, dtype=theta.dtype)
        refreshed = float(self._refresh(theta).eigenvalues[0])
        return float(self.v @ matvec(self.v)), refreshed, float(bottom.eigenvalues[0])


def gradient_equivalents(
    steps: float, hvps: float, evaluations: float, *, batch_size: int, objective_size: int
) -> float:
    """Cost in minibatch gradients: each step 1, each HVP on the objective's n examples 2n/b (Pearlmutter's
    "about two gradients", app. 11.A), each objective value n/(3b) (a forward pass is about a third of a
    forward-backward), b = ``batch_size``, n = ``objective_size``."""
    steps, hvps, evaluations = (
        checks.positive_float(n, v, allow_zero=True)
        for n, v in (("steps", steps), ("hvps", hvps), ("evaluations", evaluations))
    )
    b = checks.positive_int("batch_size", batch_size)
    n = checks.positive_int("objective_size", objective_size)
    return steps + (2 * hvps + evaluations / 3) * n / b


def timed_run(
    model: nn.Module,
    optimizer: torch.optim.Optimizer | NegativeCurvature,
    x: torch.Tensor,
    y: torch.Tensor,
    eval_data: Sequence[torch.Tensor],
    *,
    steps: int,
    generator: torch.Generator,
    batch_size: int = 32,
    eval_every: int = 25,
    check_at: Sequence[int] = (),
    check_generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Train ``model`` on the cross-entropy of minibatches of (x, y) for ``steps`` steps, logging what the
    race of app. 11.E compares: per step, per HVP and per second.

    Minibatch indices are drawn from ``generator``. Every ``eval_every`` steps (from step 0) and after the
    last, the mean cross-entropy on ``eval_data`` = (inputs, labels) is recorded with the step, the seconds
    spent in training steps so far (evaluations and checks excluded) and, for a :class:`NegativeCurvature`
    optimiser, its ``hvps`` and ``evaluations`` so far. At the steps of ``check_at`` it runs
    :meth:`NegativeCurvature.check` (from ``check_generator``). Returns a dict of float64 tensors:
    ``step``, ``seconds``, ``hvps``, ``evaluations``, ``loss`` (one entry per log) and ``checks``
    (rows step, ṽᵀHṽ, λ̃, λ_d).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(optimizer, (torch.optim.Optimizer, NegativeCurvature)):
        raise TypeError(
            f"optimizer must be a torch optimizer or NegativeCurvature, got {type(optimizer).__name__}"
        )
    x = checks.tensor("x", x)
    checks.class_labels("y", y, x.shape[0])
    if not isinstance(eval_data, Sequence) or len(eval_data) != 2:
        raise TypeError("eval_data must be a pair of tensors (inputs, labels)")
    steps = checks.positive_int("steps", steps)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    batch_size = checks.positive_int("batch_size", batch_size)
    eval_every = checks.positive_int("eval_every", eval_every)
    eval_x = checks.tensor("eval_data[0]", eval_data[0])
    eval_y = checks.class_labels("eval_data[1]", eval_data[1], eval_x.shape[0])
    check_at = set(checks.int_sequence("check_at", check_at, minimum=0))
    curvature_steps = isinstance(optimizer, NegativeCurvature)
    if check_at and not (curvature_steps and isinstance(check_generator, torch.Generator)):
        raise TypeError("check_at needs a NegativeCurvature optimizer and a torch.Generator check_generator")
    clock, log, found = 0.0, [], []
    for step in range(steps + 1):
        if step % eval_every == 0 or step == steps:
            with torch.no_grad():
                loss = F.cross_entropy(model(eval_x), eval_y).item()
            counts = (optimizer.hvps, optimizer.evaluations) if curvature_steps else (0, 0)
            log.append((step, clock, *counts, loss))
        if step in check_at:
            found.append((step, *optimizer.check(generator=check_generator)))
        if step == steps:
            break
        idx = torch.randint(len(y), (batch_size,), generator=generator).to(x.device)
        start = time.perf_counter()
        if curvature_steps:
            optimizer.step(lambda idx=idx: F.cross_entropy(model(x[idx]), y[idx]))
        else:
            optimizer.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            optimizer.step()
        clock += time.perf_counter() - start
    table = torch.tensor(log, dtype=torch.float64)
    names = ("step", "seconds", "hvps", "evaluations", "loss")
    out = {name: table[:, i] for i, name in enumerate(names)}
    out["checks"] = torch.tensor(found, dtype=torch.float64).reshape(-1, 4)
    return out
