"""Linear classifier probes (thesis ch. 9, Alain & Bengio 2017): measure how linearly separable the
features of every layer are, without touching the model.

A probe on layer k is a softmax-linear classifier of that layer's features h_k (thesis §9.3.2)::

    f_k(h_k) = softmax(W_k h_k + b_k),   trained on  (1/n) Σ_i CE(f_k(h_k,i), y_i) + (λ/2)‖W_k‖².

The problem is convex in (W_k, b_k) (§9.3.2), so the probe's optimum is well defined; the probe
never sends gradients back into the model (the "diode" of app. 9.A): features are captured by
forward hooks and detached.

* :func:`capture` runs a model on inputs and returns the (detached) outputs of named sub-modules;
  :func:`tap` is the same hooks as a context manager around the caller's own forward passes.
* :func:`fit_probes` trains the probes of *all* layers at once: one loss (the sum of the per-layer
  losses, which are independent), one backward pass, one Adam optimiser over every probe's
  parameters (per-coordinate, so each probe follows exactly the path it would follow alone), and
  early stopping on a validation split kept per layer (§9.3.3).
* :class:`RandomSubset` and :class:`Pool2d` reduce wide layers (§9.3.4): a fixed random
  subset of the features (used for Inception v3), or 2-D pooling over height and width, down to one
  feature per channel (used for ResNet-50).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from numbers import Real

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from dae_tutor import checks, runtime
from dae_tutor.errors import DivergenceError

Reducer = Callable[[torch.Tensor], torch.Tensor]
Split = tuple[Mapping[str, torch.Tensor], torch.Tensor]
TOLERANCE = 1e-4  # a relative drop of the monitored loss smaller than this is no improvement


# ----------------------------------------------------------------------------- dimension reduction


class RandomSubset:
    """A fixed random subset of ``k`` features (thesis §9.3.4, first remedy; app. 9.C: 1,000 per probe).

    Flattens (n, ...) to (n, d) and keeps the same ``k`` columns at every call (drawn from ``seed``
    for each width d, sorted); a layer with d <= k is kept whole.
    """

    def __init__(self, k: int, seed: int = 0) -> None:
        self.k = checks.positive_int("k", k)
        self.seed = checks.nonnegative_int("seed", seed)
        self._columns: dict[int, torch.Tensor] = {}

    def columns(self, d: int) -> torch.Tensor:
        """The kept column indices (CPU int64) for a layer of ``d`` features."""
        d = checks.positive_int("d", d)
        if d not in self._columns:
            perm = torch.randperm(d, generator=runtime.generator(self.seed))
            self._columns[d] = perm[: self.k].sort().values
        return self._columns[d]

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        flat = h.flatten(1)
        if flat.shape[1] <= self.k:
            return flat
        return flat[:, self.columns(flat.shape[1]).to(flat.device)]


class Pool2d:
    """Average-pool (n, C, H, W) feature maps to (n, C·s·s) (thesis §9.3.4, third remedy; ResNet-50).

    ``size`` = s is the output height and width (adaptive pooling); s = 1 keeps one feature per
    channel, as the thesis does. Inputs of another rank are only flattened.
    """

    def __init__(self, size: int = 1) -> None:
        self.size = checks.positive_int("size", size)

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        if h.dim() != 4:
            return h.flatten(1)
        return F.adaptive_avg_pool2d(h, self.size).flatten(1)


# ----------------------------------------------------------------------------- feature capture


def _modules(model: nn.Module, layers: Sequence[str]) -> dict[str, nn.Module]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if isinstance(layers, str) or not isinstance(layers, Sequence):
        raise TypeError(f"layers must be a sequence of module names, got {type(layers).__name__}")
    if len(layers) == 0:
        raise ValueError("layers must name at least one sub-module")
    if len(set(layers)) != len(layers):
        raise ValueError(f"layers has repeated names: {list(layers)}")
    named = dict(model.named_modules())
    missing = [name for name in layers if name not in named]
    if missing:
        known = [name for name in named if name]
        raise ValueError(f"layers {missing} are not sub-modules of the model; it has {known}")
    return {name: named[name] for name in layers}


def _reducers(reduce: Reducer | Mapping[str, Reducer] | None, layers: Sequence[str]) -> dict[str, Reducer]:
    if reduce is None or callable(reduce):
        function = reduce if reduce is not None else (lambda h: h)
        return dict.fromkeys(layers, function)
    if not isinstance(reduce, Mapping):
        raise TypeError(
            f"reduce must be a callable, a mapping of layer name to callable, or None, got {reduce}"
        )
    unknown = set(reduce) - set(layers)
    if unknown:
        raise ValueError(f"reduce names layers that are not probed: {sorted(unknown)}")
    out = {}
    for name in layers:
        function = reduce.get(name, lambda h: h)
        if not callable(function):
            raise TypeError(f"reduce[{name!r}] must be callable, got {type(function).__name__}")
        out[name] = function
    return out


@contextlib.contextmanager
def tap(
    model: nn.Module, layers: Sequence[str], reduce: Reducer | Mapping[str, Reducer] | None = None
) -> Iterator[dict[str, torch.Tensor]]:
    """Context manager: while open, every forward pass of ``model`` stores the detached (and reduced)
    output of each module named in ``layers`` in the yielded dict (the last pass wins).

    The hooks return nothing, so the model's outputs and gradients are exactly what they are without
    them; they are removed on exit, even after an error.
    """
    modules = _modules(model, layers)
    reducers = _reducers(reduce, layers)
    store: dict[str, torch.Tensor] = {}

    def hook_for(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: object, output: object) -> None:
            if not isinstance(output, torch.Tensor):
                raise TypeError(f"layer {name!r} returned {type(output).__name__}; probes need a tensor")
            with torch.no_grad():
                store[name] = reducers[name](output.detach())

        return hook

    handles = [module.register_forward_hook(hook_for(name)) for name, module in modules.items()]
    try:
        yield store
    finally:
        for handle in handles:
            handle.remove()


def capture(
    model: nn.Module,
    x: torch.Tensor,
    layers: Sequence[str],
    *,
    reduce: Reducer | Mapping[str, Reducer] | None = None,
    batch_size: int = 1024,
) -> dict[str, torch.Tensor]:
    """Features of the named ``layers`` of ``model`` on inputs ``x``: ``{name: (n, d_name)}`` flattened.

    Runs ``model`` under ``torch.no_grad`` in batches of ``batch_size`` (so that wide layers can be
    reduced, by ``reduce``, before they are stored; see :class:`RandomSubset`, :class:`Pool2d`), with
    forward hooks that are removed afterwards. The model's mode (train/eval) is the caller's.
    Features are returned on ``x``'s device.
    """
    x = checks.tensor("x", x)
    if x.dim() == 0 or x.shape[0] == 0:
        raise ValueError(f"x must hold at least one example along its first dimension, got {tuple(x.shape)}")
    batch_size = checks.positive_int("batch_size", batch_size)
    with tap(model, layers, reduce) as store, torch.no_grad():
        parts: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
        for start in range(0, x.shape[0], batch_size):
            store.clear()
            model(x[start : start + batch_size])
            for name in parts:
                if name not in store:
                    raise RuntimeError(f"layer {name!r} was not called in the model's forward pass")
                parts[name].append(store[name].flatten(1))
    return {name: torch.cat(chunks) for name, chunks in parts.items()}


# ----------------------------------------------------------------------------- probes


@dataclass(frozen=True)
class ProbeResult:
    """One layer's fitted probe: the error rate and mean cross-entropy on each split given (``None``
    for a split that was not given), the epoch kept by early stopping, and the probe itself.

    ``weight`` (C, d) and ``bias`` (C,) act on standardised features ``(h - mean) / scale``.
    """

    train_error: float
    train_loss: float
    valid_error: float | None
    valid_loss: float | None
    test_error: float | None
    test_loss: float | None
    epoch: int
    weight: torch.Tensor
    bias: torch.Tensor
    mean: torch.Tensor
    scale: torch.Tensor

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """W (h − mean)/scale + b for features ``h`` of shape (n, ...) (flattened)."""
        h = checks.tensor("h", h, nonempty=True)
        if h.dim() < 2 or h[0].numel() != self.weight.shape[1]:
            raise ValueError(
                f"h must be (n, ...) with {self.weight.shape[1]} features per row, got shape {tuple(h.shape)}"
            )
        flat = h.flatten(1).to(self.weight.dtype)
        return ((flat - self.mean) / self.scale) @ self.weight.T + self.bias


def _check_split(
    what: str, features: object, labels: object, names: Sequence[str] | None, widths: dict[str, int] | None
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    if not isinstance(features, Mapping):
        raise TypeError(
            f"{what} features must be a dict of layer name to tensor, got {type(features).__name__}"
        )
    if len(features) == 0:
        raise ValueError(f"{what} features must hold at least one layer")
    if names is not None and list(features) != list(names):
        raise ValueError(f"{what} features must have the training layers {list(names)}, got {list(features)}")
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"{what} labels must be a torch.Tensor, got {type(labels).__name__}")
    if labels.dim() != 1 or labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(
            f"{what} labels must be a 1-d integer tensor, got {labels.dtype} {tuple(labels.shape)}"
        )
    if labels.numel() == 0:
        raise ValueError(f"{what} labels must hold at least one example")
    out = {}
    for name, h in features.items():
        h = checks.tensor(f"{what} features[{name!r}]", h)
        if h.dim() < 2:
            raise ValueError(f"{what} features[{name!r}] must be (n, d) or (n, ...), got {tuple(h.shape)}")
        h = h.flatten(1)
        if h.shape[0] != labels.shape[0]:
            raise ValueError(
                f"{what} features[{name!r}] has {h.shape[0]} rows but there are {labels.shape[0]} labels"
            )
        if h.device != labels.device:
            raise ValueError(
                f"{what} features[{name!r}] is on {h.device} but the labels are on {labels.device}"
            )
        if widths is not None and h.shape[1] != widths[name]:
            raise ValueError(
                f"{what} features[{name!r}] has {h.shape[1]} features, the training ones {widths[name]}"
            )
        out[name] = h
    return out, labels.long()


def _split_arg(what: str, split: object) -> Split | None:
    if split is None:
        return None
    if not isinstance(split, (tuple, list)) or len(split) != 2:
        raise TypeError(f"{what} must be a (features, labels) pair or None, got {type(split).__name__}")
    return split[0], split[1]


class _Probes(nn.Module):
    """The probes of all layers, as one module: W_k (C, d_k), b_k (C,) on standardised features."""

    def __init__(self, widths: dict[str, int], n_classes: int, dtype: torch.dtype, device: torch.device):
        super().__init__()
        self.names = list(widths)
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.zeros(n_classes, d, dtype=dtype, device=device)) for d in widths.values()]
        )
        self.biases = nn.ParameterList(
            [nn.Parameter(torch.zeros(n_classes, dtype=dtype, device=device)) for _ in widths]
        )

    def objective(
        self, xs: Sequence[torch.Tensor], y: torch.Tensor, layers: Sequence[int], l2: float
    ) -> torch.Tensor:
        """Σ over ``layers`` of mean CE(W_k x + b_k, y) + (l2/2)‖W_k‖², for their features ``xs``."""
        total = y.new_zeros((), dtype=self.weights[0].dtype)
        for x, k in zip(xs, layers, strict=True):
            w, b = self.weights[k], self.biases[k]
            total = total + F.cross_entropy(torch.addmm(b, x, w.T), y)
            if l2:
                total = total + 0.5 * l2 * w.square().sum()
        return total

    @torch.no_grad()
    def evaluate(
        self,
        xs: Sequence[torch.Tensor],
        y: torch.Tensor,
        layers: Sequence[int] | None = None,
        chunk: int = 4096,
    ) -> torch.Tensor:
        """(len(xs), 2): mean cross-entropy and error rate on (xs, y) of probes ``layers`` (default: all)."""
        layers = range(len(xs)) if layers is None else layers
        totals = torch.zeros(len(xs), 2, dtype=torch.float64, device=y.device)
        for start in range(0, y.shape[0], chunk):
            part = slice(start, start + chunk)
            for k, (x, j) in enumerate(zip(xs, layers, strict=True)):
                logits = torch.addmm(self.biases[j], x[part], self.weights[j].T)
                totals[k, 0] += F.cross_entropy(logits, y[part], reduction="sum").double()
                totals[k, 1] += (logits.argmax(1) != y[part]).sum().double()
        return totals / y.shape[0]


LBFGS_TOL = 1e-4  # solver="lbfgs" stops at max |∇f| <= this: scikit-learn's default tol for lbfgs
# curvature pairs kept per layer by solver="lbfgs": 2·100 vectors of C·(d+1), 8 MB for C = 10, d = 1,024 in
# float32 (a fifth of 10,000 such features); 19% fewer passes than 30 on the benchmark (benchmarks/README.md)
LBFGS_MEMORY = 100
ARMIJO = 1e-4  # sufficient-decrease constant of the backtracking line search (Nocedal & Wright eq. 3.4)


def objective_and_gradient(
    x: torch.Tensor, theta: torch.Tensor, y: torch.Tensor, l2: float
) -> tuple[float, torch.Tensor]:
    """One probe's mean CE(x Wᵀ + b, y) + (l2/2)‖W‖² and its gradient, for theta = [W | b] (C, d+1).

    ``x`` (n, d) features, ``y`` (n,) labels in [0, C); the closed form is :func:`fit_probes`'s L-BFGS
    objective (checked here; the solver calls it unchecked).
    """
    x = checks.tensor("x", x, ndim=2)
    theta = checks.tensor("theta", theta, ndim=2)
    if theta.shape[1] != x.shape[1] + 1:
        raise ValueError(f"theta must be (C, d + 1) = (C, {x.shape[1] + 1}), got {tuple(theta.shape)}")
    if not isinstance(y, torch.Tensor) or y.dtype != torch.long or y.shape != (x.shape[0],):
        raise TypeError(f"y must be an int64 tensor of shape ({x.shape[0]},)")
    if len(y) == 0 or int(y.min()) < 0 or int(y.max()) >= theta.shape[0]:
        raise ValueError(f"y must be non-empty with labels in [0, {theta.shape[0]})")
    l2 = checks.positive_float("l2", l2, allow_zero=True)
    value, grad, _ = _objective_and_gradient(x, theta.to(x), y, l2)
    return value, grad


def _objective_and_gradient(
    x: torch.Tensor, theta: torch.Tensor, y: torch.Tensor, l2: float
) -> tuple[float, torch.Tensor, torch.Tensor]:
    """One probe's mean CE(x Wᵀ + b, y) + (l2/2)‖W‖², its gradient, and the mean softmax Hessian.

    For theta = [W | b] (C, d+1). Closed form: with P = softmax(logits) and Y one-hot,
    ∂/∂logits = (P − Y)/n, so ∂/∂W = (P − Y)ᵀ x / n + l2 W and ∂/∂b = Σ_i (P − Y)_i / n; the third
    output is A = (1/n) Σ_i (diag p_i − p_i p_iᵀ) (C, C), the Hessian of CE in the logits averaged
    over the examples (the left factor of :class:`_KroneckerPreconditioner`; C²n, 1% of the pass).

    Both products, w xᵀ and (P − Y) x, are thin (C rows); with one torch thread on CPU both run
    faster with ``x`` stored column-major (``x.T`` contiguous), as :func:`fit_probes` stores it.
    """
    w, b = theta[:, :-1], theta[:, -1:]
    n = y.shape[0]
    rows = torch.arange(n, device=y.device)
    log_p = torch.log_softmax(torch.addmm(b, w, x.T), 0)  # (C, n): classes along dim 0 is the fast layout
    value = -log_p[y, rows].mean() + 0.5 * l2 * w.square().sum()
    residual = log_p.exp_()
    curvature = torch.diag(residual.mean(1)) - residual @ residual.T / n
    residual[y, rows] -= 1
    grad = torch.empty_like(theta)
    torch.addmm(w, residual, x, beta=l2, alpha=1 / n, out=grad[:, :-1])
    grad[:, -1] = residual.sum(1) / n
    return float(value), grad, curvature


def _symmetric_product(x: torch.Tensor, out: torch.Tensor, blocks: int = 4) -> None:
    """xᵀx into ``out``, by the blocks on and above the diagonal of a ``blocks`` × ``blocks`` tiling,
    the others transposed: (b + 1) / 2b of the multiply-adds of one product (5/8 for b = 4; BLAS has
    a symmetric rank-k update, torch does not). 1.7x faster for x of 10,000 × 1,024 on one CPU thread.
    """
    edges = [x.shape[1] * i // blocks for i in range(blocks + 1)]
    tiles = [slice(a, b) for a, b in itertools.pairwise(edges)]
    for i, rows in enumerate(tiles):
        torch.mm(x[:, rows].T, x[:, rows], out=out[rows, rows])
        for cols in tiles[i + 1 :]:
            torch.mm(x[:, rows].T, x[:, cols], out=out[rows, cols])
            out[cols, rows] = out[rows, cols].T


class _KroneckerPreconditioner:
    """H₀ = (A ⊗ G + l2 I)⁻¹, the inverse of a Kronecker-factored approximation of one probe's Hessian.

    The Hessian of (1/n) Σ_i CE(W x̃_i, y_i) in W̃ = [W | b] is (1/n) Σ_i (diag p_i − p_i p_iᵀ) ⊗ x̃_i x̃_iᵀ
    (x̃ = [x, 1]); K-FAC (Martens & Grosse 2015, eq. 1) replaces the mean of the products by the
    product of the means, A ⊗ G, with A the mean softmax Hessian (third output of
    :func:`_objective_and_gradient`, refreshed by :meth:`update`) and G = E[x̃ x̃ᵀ] over the training
    rows, computed once (all of them: G on 2,048 of 10,000 rows of 1,024 features underestimates its
    small eigenvalues, and took more passes than no preconditioner at all on 5 of the benchmark's 10
    layers). It is exact where p does not depend on the example (θ = 0; test).
    Applying it is two eigenbases, V ↦ U [(Uᵀ V Q) / (σ_c λ_j + l2)] Qᵀ (A = U diag σ Uᵀ,
    G = Q diag λ Qᵀ): 4C(d+1)² multiply-adds, under a tenth of a pass for n = 10,000, d = 1,024.
    """

    def __init__(self, x: torch.Tensor, l2: float) -> None:
        gram = torch.empty(x.shape[1] + 1, x.shape[1] + 1, dtype=x.dtype, device=x.device)
        _symmetric_product(x, out=gram[:-1, :-1])
        gram[-1, :-1] = gram[:-1, -1] = x.sum(0)
        gram[-1, -1] = x.shape[0]
        lam, self.q = torch.linalg.eigh(gram / x.shape[0])
        self.lam, self.l2 = lam.clamp_min(0), l2
        self.sigma = self.u = self.denominator = None

    def update(self, curvature: torch.Tensor) -> None:
        """Set the left factor A (C, C) from the current point's mean softmax Hessian.

        A is singular (A1 = 0: the bias shift), so without a penalty (l2 = 0) the damping is
        10⁻⁶ of A ⊗ G's largest eigenvalue instead: H₀ stays positive definite and bounded.
        """
        sigma, u = torch.linalg.eigh(curvature.double())
        self.sigma, self.u = sigma.clamp_min(0).to(curvature.dtype), u.to(curvature.dtype)
        damping = max(self.l2, 1e-6 * float(self.sigma.max() * self.lam.max()))
        self.denominator = self.sigma[:, None] * self.lam[None, :] + damping

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        """(A ⊗ G + l2 I)⁻¹ v for v (C, d+1)."""
        return self.u @ ((self.u.T @ v @ self.q) / self.denominator) @ self.q.T

    def inverse_norm(self, v: torch.Tensor) -> torch.Tensor:
        """vᵀ (A ⊗ G + l2 I)⁻¹ v, in the eigenbases: half the cost of applying it."""
        return ((self.u.T @ v @ self.q).square() / self.denominator).sum()


def _lbfgs_direction(
    grad: torch.Tensor,
    pairs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    precondition: _KroneckerPreconditioner,
) -> torch.Tensor:
    """−H∇f by the L-BFGS two-loop recursion over the curvature pairs (s, y, ρ = 1/sᵀy) (Nocedal &
    Wright alg. 7.4).

    The initial matrix is H₀ = γ M⁻¹ (``precondition`` applies M⁻¹), with γ = sᵀy / yᵀM⁻¹y for the
    newest pair: eq. 7.20's scaling, measured in M's metric. ``s`` and ``y`` are flat (one probe's
    C(d+1) parameters) and ρ a 0-d tensor: one dot product and one fused multiply-add per pair and
    loop, with no host round trip (1.9x faster on a CPU than (C, d+1) products and sums, 100 pairs).
    """
    q = grad.neg().view(-1)
    alphas = []
    for s, y, rho in reversed(pairs):
        alpha = rho * torch.dot(s, q)
        alphas.append(alpha)
        q.addcmul_(y, alpha, value=-1)
    q = precondition(q.view(grad.shape))
    if pairs:
        _, y, rho = pairs[-1]
        q /= rho * precondition.inverse_norm(y.view(grad.shape))
    q = q.view(-1)
    for (s, y, rho), alpha in zip(pairs, reversed(alphas), strict=True):
        q.addcmul_(s, alpha - rho * torch.dot(y, q))
    return q.view(grad.shape)


def _fit_lbfgs(
    probes: _Probes,
    xs_train: Sequence[torch.Tensor],
    labels: torch.Tensor,
    *,
    l2: float,
    tol: float,
    epochs: int,
    progress: bool,
) -> list[int]:
    """Full-batch L-BFGS per layer, all layers in lockstep (see :func:`fit_probes`); returns the passes used.

    Each round evaluates every unfinished layer once at its trial point (one pass over its training
    features): a trial that satisfies Armijo's condition f(θ + αd) <= f(θ) + c α ∇fᵀd is accepted and
    a new L-BFGS direction taken with α = 1; otherwise α is halved. The directions are preconditioned
    by :class:`_KroneckerPreconditioner` (A refreshed at every accepted point). A layer finishes when
    max ``|∇f|`` <= ``tol`` (scikit-learn's test for lbfgs, SciPy's ``gtol``); it stops short of that, with
    a warning, after ``epochs`` passes, or when its line search has halved α until the gain it predicts,
    −α ∇fᵀd, is below the rounding of f, ε·f (ε the machine epsilon: f can no longer tell a better point).
    """
    names = probes.names
    theta = [
        torch.cat([w.detach(), b.detach()[:, None]], 1)
        for w, b in zip(probes.weights, probes.biases, strict=True)
    ]
    value, grad, curvature = map(
        list,
        zip(
            *(_objective_and_gradient(x, t, labels, l2) for x, t in zip(xs_train, theta, strict=True)),
            strict=True,
        ),
    )
    precondition = [_KroneckerPreconditioner(x, l2) for x in xs_train]
    for m, a in zip(precondition, curvature, strict=True):
        m.update(a)
    eps = torch.finfo(theta[0].dtype).eps
    pairs: list[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = [[] for _ in names]
    direction = [-m(g) for m, g in zip(precondition, grad, strict=True)]  # a Newton step where K-FAC is exact
    step = [1.0] * len(names)
    passes = [1] * len(names)
    active = [k for k, g in enumerate(grad) if float(g.abs().max()) > tol]
    bar = tqdm(total=epochs, desc="probes (L-BFGS)", disable=not progress, leave=False)
    while active:
        finished = set()
        for k in active:
            trial = theta[k] + step[k] * direction[k]
            new_value, new_grad, new_curvature = _objective_and_gradient(xs_train[k], trial, labels, l2)
            passes[k] += 1
            slope = float((grad[k] * direction[k]).sum())
            if not (slope < 0 and new_value <= value[k] + ARMIJO * step[k] * slope):
                step[k] *= 0.5
                if -step[k] * slope <= eps * value[k]:  # the gain left to find is below rounding
                    if not math.isfinite(new_value):
                        where = f", L-BFGS line search of {names[k]!r}"
                        raise DivergenceError(passes[k], new_value, epochs, "fit_probes", where)
                    finished.add(k)
                continue
            s, y = (trial - theta[k]).view(-1), (new_grad - grad[k]).view(-1)
            sy = torch.dot(s, y)
            if float(sy) > 0:  # always, for l2 > 0 (strictly convex); kept for l2 = 0
                pairs[k] = [*pairs[k][-(LBFGS_MEMORY - 1) :], (s, y, 1 / sy)]
            theta[k], value[k], grad[k] = trial, new_value, new_grad
            if float(new_grad.abs().max()) <= tol:
                finished.add(k)
            else:
                precondition[k].update(new_curvature)
                direction[k], step[k] = _lbfgs_direction(grad[k], pairs[k], precondition[k]), 1.0
        active = [k for k in active if k not in finished and passes[k] < epochs]
        bar.n = max(passes)
        bar.set_postfix(active=len(active), refresh=True)
    bar.close()
    hint = "" if theta[0].dtype == torch.float64 else " or float64 features"
    short = [
        f"{names[k]!r} (max |grad| {float(g.abs().max()):.2g}, "
        + (
            f"after epochs={epochs} passes: pass a larger epochs)"
            if passes[k] >= epochs
            else f"where rounding in {g.dtype} hides any further gain: pass a larger tol{hint})"
        )
        for k, g in enumerate(grad)
        if float(g.abs().max()) > tol
    ]
    if short:
        warnings.warn(
            f"fit_probes: L-BFGS stopped before max |grad| <= tol={tol:g} on " + ", ".join(short),
            RuntimeWarning,
            stacklevel=3,
        )
    with torch.no_grad():
        for k, t in enumerate(theta):
            probes.weights[k].copy_(t[:, :-1])
            probes.biases[k].copy_(t[:, -1])
    return passes


def _fit_adam(
    probes: _Probes,
    xs_train: Sequence[torch.Tensor],
    labels: torch.Tensor,
    valid: tuple[list[torch.Tensor], torch.Tensor] | None,
    *,
    l2: float,
    epochs: int,
    batch_size: int | None,
    lr: float,
    patience: int,
    seed: int,
    progress: bool,
) -> list[int]:
    """Minibatch Adam on the summed objective with per-layer early stopping (see :func:`fit_probes`);
    leaves each probe at its best epoch and returns those epochs."""
    opt = torch.optim.Adam(
        [{"params": [w, b]} for w, b in zip(probes.weights, probes.biases, strict=True)], lr=lr
    )
    n = labels.shape[0]
    step_size = n if batch_size is None else min(batch_size, n)
    gen = runtime.generator(seed, labels.device)

    monitor = "train" if valid is None else "valid"
    best = [math.inf] * len(probes.names)
    best_epoch = [0] * len(probes.names)
    stale = [0] * len(probes.names)
    snapshot = [
        (w.detach().clone(), b.detach().clone()) for w, b in zip(probes.weights, probes.biases, strict=True)
    ]
    active = list(range(len(probes.names)))  # layers still improving; finished ones drop out of the steps
    bar = tqdm(range(1, epochs + 1), desc="probes", disable=not progress, leave=False)
    # Not train.train_loop: each layer's probe stops on its own (early stopping per layer), and the
    # finished layers leave the objective while the others train on.
    for epoch in bar:
        order = torch.randperm(n, generator=gen, device=labels.device) if step_size < n else None
        for start in range(0, n, step_size):
            idx = None if order is None else order[start : start + step_size]
            y = labels if idx is None else labels[idx]
            loss = probes.objective(
                [xs_train[k] if idx is None else xs_train[k][idx] for k in active], y, active, l2
            )
            opt.zero_grad(set_to_none=True)  # finished layers get no gradient: Adam skips them
            loss.backward()
            opt.step()
        if monitor == "valid":
            score = probes.evaluate([valid[0][k] for k in active], valid[1], active)[:, 0]
        else:
            with torch.no_grad():
                score = torch.stack([probes.objective([xs_train[k]], labels, [k], l2) for k in active])
        for k, value in zip(active, score.tolist(), strict=True):
            if not math.isfinite(value):
                raise DivergenceError(
                    epoch, value, epochs, "fit_probes", f", {monitor} loss of {probes.names[k]!r}"
                )
            if value < best[k] - TOLERANCE * max(1.0, abs(best[k]) if math.isfinite(best[k]) else 1.0):
                best[k], best_epoch[k], stale[k] = value, epoch, 0
                snapshot[k] = (probes.weights[k].detach().clone(), probes.biases[k].detach().clone())
            else:
                stale[k] += 1
                if value > best[k]:  # worse, not merely flat: the step is too long for this layer
                    opt.param_groups[k]["lr"] *= 0.5
        active = [k for k in active if stale[k] < patience]
        bar.set_postfix(active=len(active), refresh=False)
        if not active:
            break
    bar.close()

    with torch.no_grad():
        for k, (w, b) in enumerate(snapshot):
            probes.weights[k].copy_(w)
            probes.biases[k].copy_(b)
    return best_epoch


def _start_at(
    probes: _Probes,
    init: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None,
    widths: dict[str, int],
    n_classes: int,
) -> None:
    """Copy ``init`` (see :func:`fit_probes`), checked against the layers and widths, into ``probes``."""
    if init is None:
        return
    if not isinstance(init, Mapping):
        raise TypeError(f"init must be a dict of layer name to (weight, bias), got {type(init).__name__}")
    unknown = set(init) - set(widths)
    if unknown:
        raise ValueError(f"init names layers that are not probed: {sorted(unknown)}")
    for name, pair in init.items():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"init[{name!r}] must be a (weight, bias) pair, got {type(pair).__name__}")
        k = probes.names.index(name)
        w = checks.tensor(f"init[{name!r}] weight", pair[0], ndim=2, last_dim=widths[name])
        b = checks.tensor(f"init[{name!r}] bias", pair[1], ndim=1, last_dim=n_classes)
        if w.shape[0] != n_classes:
            raise ValueError(
                f"init[{name!r}] weight must be ({n_classes}, {widths[name]}), got {tuple(w.shape)}"
            )
        with torch.no_grad():
            probes.weights[k].copy_(w)
            probes.biases[k].copy_(b)


def fit_probes(
    features: Mapping[str, torch.Tensor],
    labels: torch.Tensor,
    valid: Split | None = None,
    test: Split | None = None,
    *,
    n_classes: int | None = None,
    l2: float = 1e-3,
    epochs: int = 100,
    batch_size: int | None = 256,
    lr: float = 1e-2,
    patience: int = 5,
    standardize: bool = True,
    seed: int = 0,
    solver: str = "adam",
    tol: float = LBFGS_TOL,
    init: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
    progress: bool = False,
) -> dict[str, ProbeResult]:
    """Train one linear softmax probe per layer, all at once, and report each layer's errors and losses.

    Each probe minimises (1/n) Σ_i CE(W h_i + b, y_i) + (l2/2)‖W‖² (thesis §9.3.2; the bias is not
    penalised, as in scikit-learn, whose ``LogisticRegression(C=1/(n·l2))`` solves the same problem).
    The layers' problems are independent; they are solved together as one: the sum of the losses,
    one backward pass, one Adam optimiser, which is per-coordinate, so each probe moves exactly as it
    would alone (each layer has its own parameter group). After every epoch each probe is scored on
    ``valid`` (its mean cross-entropy; without ``valid``, its training objective): a layer keeps its
    best epoch, halves its learning rate after every epoch that made its score worse, and leaves
    the joint problem after ``patience`` epochs in a row without a relative improvement of
    :data:`TOLERANCE`; training stops when every layer has left, or after ``epochs`` epochs.

    ``solver="lbfgs"`` instead runs full-batch L-BFGS on each layer's objective (all layers in
    lockstep, each on its own path, memory :data:`LBFGS_MEMORY`, Armijo backtracking, preconditioned
    by a Kronecker-factored Hessian, :class:`_KroneckerPreconditioner`), without early stopping: a
    layer stops when max ``|∇f|`` <= ``tol``, scikit-learn's stopping test for lbfgs (its ``tol``,
    SciPy's ``gtol``; the default is scikit-learn's). That bounds the gap to the optimum: f is
    μ-strongly convex on the complement of the one direction that adds the same constant to every
    bias (where f is flat and ∇f is 0), so f − f* <= ‖∇f‖²/(2μ) (Boyd & Vandenberghe, *Convex
    Optimization*, eq. 9.9); μ is at most l2 and can be far smaller, since the bias is not penalised,
    so the bound is loose and a smaller ``tol`` is what brings f closer to f* (benchmarks/README.md
    measures the gap against tol). A layer that stops short of ``tol`` (pass limit, or rounding) is
    named in a ``RuntimeWarning``. ``batch_size``, ``lr``, ``patience`` and ``seed`` are then unused,
    and ``epochs`` bounds the passes (objective evaluations) per layer.

    Args:
        features: ``{layer: (n, ...)}`` floating tensors (flattened), all on the labels' device.
        labels: (n,) integer class labels in [0, n_classes).
        valid, test: optional ``(features, labels)`` pairs with the same layers and widths.
        n_classes: number of classes C (default: 1 + the largest label seen).
        l2: the L2 penalty λ on the weights (>= 0).
        epochs: maximum number of passes over the training set.
        batch_size: minibatch size (``None``: full-batch steps, one per epoch).
        lr: Adam's learning rate.
        patience: epochs without improvement before stopping.
        standardize: fit on (h − mean)/std with the training mean and std of every feature (constant
            features get std 1); the probe is then a linear classifier of h all the same.
        seed: the minibatch order.
        solver: ``"adam"`` (minibatch Adam with early stopping) or ``"lbfgs"`` (full batch, to tolerance).
        tol: ``solver="lbfgs"`` stops a layer when every component of its objective's gradient is at
            most ``tol`` in absolute value (> 0; unused by Adam).
        init: the starting point ``{layer: (weight (C, d), bias (C,))}``, in the parametrisation of
            :class:`ProbeResult` (on the standardised features); a layer not named starts at zero
            (the default for all). The problem is convex, so the optimum does not depend on it
            (up to the bias shift where l2 = 0 cannot pin it; §9.3.2): a check of convexity.
        progress: show a ``tqdm.auto`` bar.

    Returns:
        ``{layer: ProbeResult}`` in the order of ``features``.

    Raises:
        ValueError, TypeError: for empty layer lists, mismatched lengths or widths, labels out of
            range, non-finite features, bad hyper-parameters. ``DivergenceError`` if a loss is NaN.
    """
    train_x, labels = _check_split("training", features, labels, None, None)
    names = list(train_x)
    widths = {name: h.shape[1] for name, h in train_x.items()}
    splits: dict[str, tuple[dict[str, torch.Tensor], torch.Tensor]] = {}
    for what, split in (("valid", valid), ("test", test)):
        pair = _split_arg(what, split)
        if pair is not None:
            splits[what] = _check_split(what, pair[0], pair[1], names, widths)
            if splits[what][1].device != labels.device:
                raise ValueError(f"{what} labels must be on the training labels' device {labels.device}")
    top = int(max(int(y.max()) for _, y in [*splits.values(), (None, labels)]))
    low = int(min(int(y.min()) for _, y in [*splits.values(), (None, labels)]))
    if n_classes is None:
        n_classes = top + 1
    n_classes = checks.positive_int("n_classes", n_classes, minimum=2)
    if low < 0 or top >= n_classes:
        raise ValueError(f"labels must lie in [0, {n_classes}), got values in [{low}, {top}]")
    l2 = checks.positive_float("l2", l2, allow_zero=True)
    epochs = checks.positive_int("epochs", epochs)
    if batch_size is not None:
        batch_size = checks.positive_int("batch_size", batch_size)
    lr = checks.positive_float("lr", lr)
    patience = checks.positive_int("patience", patience)
    checks.boolean("standardize", standardize)
    seed = checks.nonnegative_int("seed", seed)
    solver = checks.one_of("solver", solver, ("adam", "lbfgs"))
    tol = checks.positive_float("tol", tol)
    checks.boolean("progress", progress)

    dtype = torch.promote_types(next(iter(train_x.values())).dtype, torch.float32)
    dev = labels.device
    means, scales = {}, {}
    for name, h in train_x.items():
        h = h.to(dtype)
        if standardize:
            std, mean = torch.std_mean(h, 0, correction=0)
            means[name], scales[name] = mean, torch.where(std > 0, std, torch.ones_like(std))
        else:
            means[name], scales[name] = (
                torch.zeros(h.shape[1], dtype=dtype, device=dev),
                torch.ones(h.shape[1], dtype=dtype, device=dev),
            )

    def prepare(xs: dict[str, torch.Tensor], column_major: bool = False) -> list[torch.Tensor]:
        out = []
        for name in names:
            x = (xs[name].to(dtype) - means[name]) / scales[name]
            out.append(x.T.contiguous().T if column_major else x.contiguous())
        return out

    xs_train = prepare(train_x, column_major=solver == "lbfgs")  # see _objective_and_gradient
    xs_split = {what: (prepare(x), y) for what, (x, y) in splits.items()}
    probes = _Probes(widths, n_classes, dtype, dev)
    _start_at(probes, init, widths, n_classes)
    if solver == "lbfgs":
        best_epoch = _fit_lbfgs(probes, xs_train, labels, l2=l2, tol=tol, epochs=epochs, progress=progress)
    else:
        valid = xs_split.get("valid")
        schedule = dict(epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, seed=seed)
        best_epoch = _fit_adam(probes, xs_train, labels, valid, l2=l2, progress=progress, **schedule)
    metrics = {"train": probes.evaluate(xs_train, labels).tolist()}
    for what, (xs, y) in xs_split.items():
        metrics[what] = probes.evaluate(xs, y).tolist()
    results = {}
    for k, name in enumerate(names):

        def get(what: str, column: int, k: int = k) -> float | None:
            return metrics[what][k][column] if what in metrics else None

        results[name] = ProbeResult(
            train_error=metrics["train"][k][1],
            train_loss=metrics["train"][k][0],
            valid_error=get("valid", 1),
            valid_loss=get("valid", 0),
            test_error=get("test", 1),
            test_loss=get("test", 0),
            epoch=best_epoch[k],
            weight=probes.weights[k].detach().clone(),
            bias=probes.biases[k].detach().clone(),
            mean=means[name],
            scale=scales[name],
        )
    return results


def errors(results: Mapping[str, ProbeResult], split: str = "test") -> dict[str, float]:
    """``{layer: error rate}`` on ``split`` ("train", "valid" or "test") from :func:`fit_probes`."""
    split = checks.one_of("split", split, ("train", "valid", "test"))
    if not isinstance(results, Mapping) or not all(isinstance(r, ProbeResult) for r in results.values()):
        raise TypeError(
            f"results must be the dict of ProbeResult of fit_probes, got {type(results).__name__}"
        )
    if len(results) == 0:
        raise ValueError("results must hold at least one probe")
    out = {}
    for name, result in results.items():
        value = getattr(result, f"{split}_error")
        if value is None:
            raise ValueError(f"the probes were fitted without a {split!r} split")
        out[name] = value
    return out


def monotonicity_violations(values: Sequence[float], tol: float) -> list[tuple[int, float]]:
    """Positions k where ``values[k+1] > values[k] + tol`` (an error that grows with depth), with the rise."""
    tol = checks.positive_float("tol", tol, allow_zero=True)
    if isinstance(values, (str, bytes, Real)):
        raise TypeError(f"values must be a sequence of numbers, got {type(values).__name__}")
    values = checks.as_tensor("values", values)
    if values.dim() != 1:
        raise ValueError(f"values must be a 1-D sequence of numbers, got shape {tuple(values.shape)}")
    values = values.tolist()
    return [(k, b - a) for k, (a, b) in enumerate(itertools.pairwise(values)) if b > a + tol]


# ----------------------------------------------------------------------------- readings of a model


def layer_readings(
    model: nn.Module,
    layers: Sequence[str],
    train: tuple[torch.Tensor, torch.Tensor],
    valid: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor] | None = None,
    *,
    reduce: Reducer | Mapping[str, Reducer] | None = None,
    patience: int = 5,
    solver: str = "adam",
) -> dict[str, list[float] | float]:
    """One probe per layer of ``model`` (in eval mode) and the model's own error: the curves of Figs 9.3-9.5.

    The probes are :func:`fit_probes` on the features :func:`capture` reads on ``train`` = (x, y),
    scored on ``valid`` (and ``test``), fitted by ``solver`` (Adam stopped early with ``patience``, or
    L-BFGS to the penalised optimum, cheaper for narrow layers); the model's error is the fraction of
    ``argmax_c`` logits that differ from the labels. Returns ``{"valid": [error per layer],
    "model_valid": error}``, plus ``"test"`` and ``"model_test"`` when ``test`` is given.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    splits = {"train": train, "valid": valid, "test": test}
    for name, split in splits.items():
        if split is not None and (not isinstance(split, tuple) or len(split) != 2):
            raise TypeError(f"{name} must be an (inputs, labels) tuple, got {type(split).__name__}")
    given = [(name, split) for name, split in splits.items() if split is not None]
    model.eval()
    feats = [capture(model, x, layers, reduce=reduce) for _, (x, _) in given]
    fit = fit_probes(
        feats[0],
        train[1],
        *[(f, y) for f, (_, (_, y)) in zip(feats[1:], given[1:], strict=True)],
        patience=patience,
        solver=solver,
        progress=False,
    )
    out: dict[str, list[float] | float] = {}
    for name, (x, y) in given[1:]:
        out[name] = [getattr(fit[k], f"{name}_error") for k in layers]
        with torch.no_grad():
            out[f"model_{name}"] = (model(x).argmax(1) != y).float().mean().item()
    return out


def hooks_are_exact(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    layers: Sequence[str],
    *,
    reduce: Reducer | Mapping[str, Reducer] | None = None,
    hooks: Callable[..., contextlib.AbstractContextManager[dict[str, torch.Tensor]]] | None = None,
) -> bool:
    """The diode of app. 9.A, checked bitwise: with the ``hooks`` (default :func:`tap`) on ``layers``,
    ``model``'s outputs and cross-entropy gradients on (x, y) are ``torch.equal`` to those without
    them, and stay so after a linear probe on every captured layer backpropagates its own
    cross-entropy (features flow forward, no gradient flows back into the model)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    x = checks.tensor("x", x)
    checks.class_labels("y", y, x.shape[0])
    hooks = tap if hooks is None else hooks
    if not callable(hooks):
        raise TypeError(f"hooks must be a context-manager factory like tap, got {type(hooks).__name__}")

    def forward_backward() -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad()
        out = model(x)
        F.cross_entropy(out, y).backward(retain_graph=True)  # a leaky hook's probe would need it
        return out.detach(), [p.grad.clone() for p in model.parameters()]

    plain = forward_backward()
    with hooks(model, layers, reduce=reduce) as features:
        hooked = forward_backward()
        gen, probe_loss = runtime.generator(0, x.device), 0.0
        for h in features.values():  # a random linear probe per layer; one backward pass for all
            h = h.flatten(1)
            w = torch.randn(h.shape[1], int(y.max()) + 1, generator=gen, device=h.device, dtype=h.dtype)
            probe_loss = probe_loss + F.cross_entropy(h @ w.requires_grad_(), y)
        if features:
            probe_loss.backward()
    after_probes = [p.grad.clone() for p in model.parameters()]
    return (
        torch.equal(plain[0], hooked[0])
        and all(map(torch.equal, plain[1], hooked[1]))
        and all(map(torch.equal, plain[1], after_probes))
    )


# ----------------------------------------------------------------------------- information is not usability


def _sbox(seed: int) -> torch.Tensor:
    return torch.randperm(256, generator=runtime.generator(seed))


def _bytes_of(name: str, bits: torch.Tensor) -> torch.Tensor:
    checks.tensor(name, bits, nonempty=True)
    if bits.dim() != 2 or bits.shape[1] % 8:
        raise ValueError(f"{name} must be (n, d) with d a multiple of 8, got {tuple(bits.shape)}")
    return bits


def scramble(pixels: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The "hex dump of a lion" of §9.3.1 (Fig. 9.1) for images: the same information, scrambled.

    Binarise (pixel > 0.5), pack 8 pixels per byte p_i, encrypt the bytes with a substitution box S
    (a permutation of 0..255 drawn from ``seed``) chained from byte to byte, c_i = S[p_i xor c_(i-1)]
    with c_0 = 0 (a cipher in CBC mode), and unpack to bits: a bijection of the binarised images
    (:func:`unscramble` inverts it), which no linear probe can read.
    """
    pixels = _bytes_of("pixels", pixels)
    seed = checks.nonnegative_int("seed", seed)
    powers = 2 ** torch.arange(8)
    plain = ((pixels > 0.5).long().reshape(len(pixels), -1, 8) * powers).sum(-1)
    sbox, previous, cipher = _sbox(seed), torch.zeros(len(pixels), dtype=torch.long), []
    for i in range(plain.shape[1]):
        previous = sbox[plain[:, i] ^ previous]
        cipher.append(previous)
    return ((torch.stack(cipher, 1)[..., None] // powers) % 2).reshape(len(pixels), -1).float()


def unscramble(bits: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The inverse of :func:`scramble`: p_i = S⁻¹[c_i] xor c_(i-1)."""
    bits = checks.binary("bits", _bytes_of("bits", bits))
    seed = checks.nonnegative_int("seed", seed)
    powers = 2 ** torch.arange(8)
    cipher = (bits.long().reshape(len(bits), -1, 8) * powers).sum(-1)
    inverse = torch.argsort(_sbox(seed))
    shifted = torch.cat([torch.zeros_like(cipher[:, :1]), cipher[:, :-1]], 1)
    plain = inverse[cipher] ^ shifted
    return ((plain[..., None] // powers) % 2).reshape(len(bits), -1).float()
