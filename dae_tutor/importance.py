"""Importance-sampling SGD (ISSGD): per-example gradient norms, the sampler, the variance.

Thesis (Alain, 2018) ch. 7 and app. 7.A. With per-example gradients
g_n = ∇θ L_n and the true gradient μ = (1/N) Σ g_n, a minibatch of M indices drawn
i.i.d. with probabilities ω_n = ω̃_n / Σ ω̃ and the reweighted loss (§7.4.1)

    L(MINIBATCH) = (1/N Σ_n ω̃_n) · (1/M) Σ_m L(x_{i_m}) / ω̃_{i_m}

gives an unbiased estimate of μ for any positive weights; the trace of its covariance
(Corollary 2, eq. 7.6, divided by M because the draws are i.i.d.) is

    Tr Σ(q) = [ (1/N Σ ω̃_n) (1/N Σ ‖g_n‖² / ω̃_n) − ‖μ‖² ] / M,

smallest for ω̃_n = ‖g_n‖ (Theorem 1, eq. 7.5; "ideal", eq. 7.7), equal to plain SGD
for constant weights (eq. 7.8), and called "stale" when ω̃ comes from old parameters
(eq. 7.9).

* :func:`per_example_grad_norms` computes the ‖g_n‖ three ways: ``"fc"``, the
  one-pass formula of Proposition 3 (Goodfellow, 2015) for fully connected layers,
  ‖∂L_n/∂W‖² = ‖X[n]‖² ‖δ[n]‖² and ‖∂L_n/∂b‖² = ‖δ[n]‖² with δ = ∂L/∂Y (the thesis
  prints the second left-hand side as ∂L_n/∂W, §7.3.3 and app. 7.A.2: a misprint for ∂L_n/∂b);
  ``"vmap"``, exact per-sample gradients with ``torch.func`` for any model, convolutions
  included (which Prop. 3 cannot handle, §7.3.3); ``"loop"``, one backward per example
  (the reference).
* :func:`smooth_weights`, :func:`importance_minibatch` and :func:`importance_loss` are the
  sampler of §7.4.1 with the smoothing constant of app. 7.A.5.
* :func:`trace_covariance` evaluates eq. 7.6–7.9; :func:`sampled_gradient_z` and
  :func:`sampled_gradient_error` test the sampler's unbiasedness by drawing minibatches.
* :func:`simulate_issgd` trains with ISSGD or SGD on one process, with weights that are
  refreshed every ``refresh_every`` steps (a deterministic model of the workers'
  staleness), logging the three traces of Fig. 7.4.

The distributed master/worker run lives in :mod:`dae_tutor.distributed`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from dae_tutor import checks
from dae_tutor.errors import DivergenceError

METHODS = ("fc", "vmap", "loop")
LOSSES = ("cross_entropy", "mse")
REDUCTIONS = ("none", "mean")
# Per-sample gradients held at once by the "vmap" method: chunk × (number of parameters) floats.
VMAP_BUDGET = 1 << 24

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cross_entropy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-example softmax cross-entropy (no reduction): the loss of the thesis's classifier.

    ``output``: (N, C) logits; ``target``: (N,) integer classes in [0, C).
    """
    # A NaN output is a training failure, which the training loops report as DivergenceError.
    output = checks.tensor("output", output, ndim=2, nonempty=True, finite=False)
    target = checks.tensor("target", target, ndim=1, floating=False)
    if target.is_floating_point() or target.dtype == torch.bool:
        raise TypeError(f"target must hold integer classes, got dtype {target.dtype}")
    if target.shape[0] != output.shape[0]:
        raise ValueError(
            f"target must have one class per row of output ({output.shape[0]}), got {target.shape[0]}"
        )
    if not checks.holds(((target >= 0) & (target < output.shape[1])).all()):
        low, high = int(target.min()), int(target.max())
        raise ValueError(f"target must be classes in [0, {output.shape[1]}), got {low} to {high}")
    return F.cross_entropy(output, target, reduction="none")


def mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-example squared error Σ_j (output_j − target_j)² over the output coordinates (no reduction).

    ``output`` and ``target``: (N, ...) of the same shape, N >= 1.
    """
    output = checks.tensor("output", output, nonempty=True, finite=False)  # as in cross_entropy
    target = checks.tensor("target", target)
    if output.dim() < 2:
        raise ValueError(
            f"output must be a batch (N, ...) of 2 dimensions or more, got shape {tuple(output.shape)}"
        )
    if target.shape != output.shape:
        raise ValueError(
            f"target must have the shape of output {tuple(output.shape)}, got {tuple(target.shape)}"
        )
    return ((output - target) ** 2).flatten(1).sum(1)


def loss_by_name(name: str) -> LossFn:
    """The per-example loss called ``name`` (``"cross_entropy"`` or ``"mse"``): picklable, for workers."""
    return {"cross_entropy": cross_entropy, "mse": mse}[checks.one_of("name (of the loss)", name, LOSSES)]


# ----------------------------------------------------------------------------- per-example norms


def check_batch(model: object, loss_fn: object, x: object, y: object) -> None:
    """Raise ``TypeError``/``ValueError`` unless (model, loss_fn, x, y) is a usable labelled batch.

    Beyond the types and shapes, one trial forward pass (no gradient, the model in eval mode, its modes
    restored after) checks that ``model`` takes ``x`` and that ``loss_fn`` takes its output and ``y``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable (output, target) -> per-example losses, got {loss_fn!r}")
    checks.tensor("x", x)
    if x.dim() < 2 or x.shape[0] < 1:
        raise ValueError(f"x must be a batch (N, ...) with N >= 1, got shape {tuple(x.shape)}")
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"y must be a torch.Tensor, got {type(y).__name__}")
    if y.shape[:1] != x.shape[:1]:
        raise ValueError(f"y must have one entry per example of x ({x.shape[0]}), got shape {tuple(y.shape)}")
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError("model has no parameter that requires grad")
    modes = [m.training for m in model.modules()]
    model.eval()  # the trial forward below must not update BatchNorm statistics nor draw dropout masks
    try:
        with torch.no_grad():
            try:
                output = model(x)
            except RuntimeError as err:
                raise ValueError(f"model cannot take x of shape {tuple(x.shape)}: {err}") from None
            try:
                loss_fn(output, y)
            except (RuntimeError, IndexError, TypeError, ValueError) as err:
                raise ValueError(
                    f"loss_fn cannot score the model's output {tuple(output.shape)} against y "
                    f"(shape {tuple(y.shape)}, dtype {y.dtype}): {err}"
                ) from None
    finally:
        for m, mode in zip(model.modules(), modes, strict=True):
            m.training = mode


def _per_example_losses(loss_fn: LossFn, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    losses = loss_fn(output, y)
    if not isinstance(losses, torch.Tensor) or losses.shape != (y.shape[0],):
        shape = tuple(losses.shape) if isinstance(losses, torch.Tensor) else type(losses).__name__
        raise ValueError(
            f"loss_fn must return one loss per example (shape ({y.shape[0]},), reduction='none'), "
            f"got {shape}; per_example_grad_norms takes a mean-reduced criterion with reduction='mean'"
        )
    return losses


def _per_example_fn(loss_fn: LossFn, reduction: str) -> LossFn:
    """``loss_fn`` if ``reduction="none"``; if ``"mean"``, (output, target) -> the L_n, one example each."""
    if reduction == "none":
        return loss_fn

    def one(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        value = loss_fn(output.unsqueeze(0), target.unsqueeze(0))
        if not isinstance(value, torch.Tensor) or value.dim() != 0:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(
                f"loss_fn must return a scalar (the batch mean) with reduction='mean', got {shape} "
                "on one example; pass reduction='none' for per-example losses"
            )
        return value

    return torch.func.vmap(one)


def _fc_norms(model: nn.Module, loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Proposition 3: Σ_layers (‖X_l[n]‖² + 1_bias) ‖δ_l[n]‖², from one forward and one backward."""
    linears = []
    for name, module in model.named_modules():
        own = [p for p in module.parameters(recurse=False) if p.requires_grad]
        if own and not isinstance(module, nn.Linear):
            raise ValueError(
                f"method='fc' needs every trainable layer to be nn.Linear (Proposition 3); "
                f"{name or 'model'} is {type(module).__name__}: use method='vmap'"
            )
        if own:
            linears.append(module)
    seen: list[tuple[nn.Linear, torch.Tensor, torch.autograd.graph.GradientEdge]] = []

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if any(m is module for m, _, _ in seen):
            raise ValueError("method='fc' needs unshared layers: a Linear layer was called twice")
        if inputs[0].dim() != 2:
            shape = tuple(inputs[0].shape)
            raise ValueError(f"method='fc' needs 2-D layer inputs (N, features), got {shape}")
        # δ = ∂L/∂Y is taken at Y's gradient edge of now: a later in-place op (ReLU(inplace=True))
        # rebinds the tensor Y to its own output, so the gradient with respect to Y itself would be wrong.
        seen.append((module, inputs[0].detach(), torch.autograd.graph.get_gradient_edge(output)))

    handles = [m.register_forward_hook(hook) for m in linears]
    try:
        with torch.enable_grad():
            losses = _per_example_losses(loss_fn, model(x), y)
    finally:
        for h in handles:
            h.remove()
    deltas = torch.autograd.grad(losses.sum(), [edge for _, _, edge in seen], allow_unused=True)
    sq = torch.zeros(x.shape[0], dtype=losses.dtype, device=x.device)
    for (module, inp, _), delta in zip(seen, deltas, strict=True):
        if delta is None:  # this layer's output does not reach the loss
            continue
        d2 = delta.pow(2).sum(1)
        if module.weight.requires_grad:
            sq = sq + inp.pow(2).sum(1) * d2
        if module.bias is not None and module.bias.requires_grad:
            sq = sq + d2
    return sq


def _vmap_grads(
    model: nn.Module, loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor
) -> Callable[[int, int], dict[str, torch.Tensor]]:
    """A function (start, stop) -> per-sample gradients of examples start..stop-1, by ``torch.func``."""
    params = {k: p.detach() for k, p in model.named_parameters() if p.requires_grad}
    frozen = {k: p.detach() for k, p in model.named_parameters() if not p.requires_grad}
    buffers = dict(model.named_buffers())

    def one(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        out = torch.func.functional_call(model, {**p, **frozen, **buffers}, (xi.unsqueeze(0),))
        return loss_fn(out, yi.unsqueeze(0)).sum()

    per_sample = torch.func.vmap(torch.func.grad(one), in_dims=(None, 0, 0))
    return lambda start, stop: per_sample(params, x[start:stop], y[start:stop])


def _vmap_chunk(model: nn.Module) -> int:
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return max(1, VMAP_BUDGET // n_params)


def _loop_norms(model: nn.Module, loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    params = [p for p in model.parameters() if p.requires_grad]
    out = torch.empty(x.shape[0], dtype=params[0].dtype, device=x.device)
    with torch.enable_grad():
        for n in range(x.shape[0]):
            loss = _per_example_losses(loss_fn, model(x[n : n + 1]), y[n : n + 1]).sum()
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            out[n] = sum(g.pow(2).sum() for g in grads if g is not None)
    return out


def per_example_grad_norms(
    model: nn.Module,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    method: str = "fc",
    *,
    reduction: str = "none",
) -> torch.Tensor:
    """‖∇θ L_n‖₂ for every example n of the batch (all trainable parameters, flattened).

    Args:
        model: maps ``x`` to outputs. ``"fc"`` needs every trainable layer to be an unshared
            ``nn.Linear`` (Proposition 3, thesis §7.3.3); ``"vmap"`` and ``"loop"`` take any
            model whose examples do not interact (no BatchNorm in training mode).
        loss_fn: ``(output, target) -> losses`` in the form named by ``reduction``; the norms
            are those of each L_n, not of the batch mean.
        x, y: the batch (N, ...) and its targets.
        method: ``"fc"`` (one forward + one backward), ``"vmap"`` (``torch.func`` per-sample
            gradients, chunked to bound memory), ``"loop"`` (N backward passes, the reference).
        reduction: ``"none"`` (``loss_fn`` returns the N losses L_n, e.g. :func:`cross_entropy`)
            or ``"mean"`` (their mean, e.g. ``F.cross_entropy``; L_n is then ``loss_fn`` on example
            n alone, evaluated under ``torch.func.vmap``): the convention of :mod:`dae_tutor`.

    Returns:
        Tensor (N,) on ``x``'s device, detached.
    """
    check_batch(model, loss_fn, x, y)
    method = checks.one_of("method", method, METHODS)
    loss_fn = _per_example_fn(loss_fn, checks.one_of("reduction", reduction, REDUCTIONS))
    return _grad_norms(model, loss_fn, x, y, method)


def _grad_norms(
    model: nn.Module, loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor, method: str
) -> torch.Tensor:
    """:func:`per_example_grad_norms` of a checked batch and a per-example ``loss_fn``."""
    if method == "fc":
        sq = _fc_norms(model, loss_fn, x, y)
    elif method == "loop":
        sq = _loop_norms(model, loss_fn, x, y)
    else:
        grads_of = _vmap_grads(model, loss_fn, x, y)
        chunk = _vmap_chunk(model)
        parts = []
        for start in range(0, x.shape[0], chunk):
            grads = grads_of(start, min(start + chunk, x.shape[0]))
            parts.append(sum(g.flatten(1).pow(2).sum(1) for g in grads.values()))
        sq = torch.cat(parts)
    return sq.detach().clamp_min(0).sqrt()


def per_example_grads(model: nn.Module, loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The per-example gradients g_n as rows of an (N, d) matrix (``torch.func``; small models only)."""
    check_batch(model, loss_fn, x, y)
    grads = _vmap_grads(model, loss_fn, x, y)(0, x.shape[0])
    return torch.cat([g.flatten(1) for g in grads.values()], dim=1).detach()


def last_layer_grad_norms(
    model: nn.Module, loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """‖∂L_n/∂z_L‖ with z_L the model's output: the cheap proxy of Katharopoulos & Fleuret (2018).

    An extension, not in the thesis (mentioned in its §6.4): for softmax cross-entropy it is
    ‖softmax(z) − e_y‖. Proportional to the exact norms only in special cases; its variance
    is judged with :func:`trace_covariance`.
    """
    check_batch(model, loss_fn, x, y)
    with torch.enable_grad():
        out = model(x).detach().requires_grad_(True)
        (delta,) = torch.autograd.grad(_per_example_losses(loss_fn, out, y).sum(), out)
    return delta.flatten(1).norm(dim=1)


# ----------------------------------------------------------------------------- sampling


def _weights(name: str, w: object) -> torch.Tensor:
    checks.tensor(name, w, ndim=1)
    if w.numel() == 0:
        raise ValueError(f"{name} must not be empty")
    if bool((w < 0).any()):
        raise ValueError(f"{name} must be >= 0, got a minimum of {w.min().item()}")
    if not bool((w > 0).any()):
        raise ValueError(f"{name} must not be all zero (no example could be sampled)")
    return w


def smooth_weights(weights: torch.Tensor, c: float = 0.0) -> torch.Tensor:
    """ω̃_n + c: the smoothing constant of thesis app. 7.A.5 (c → ∞ gives plain SGD).

    It bounds 1/ω̃, the factor by which a sample whose weight was small but whose gradient
    has since grown is multiplied (the "time bomb" of app. 7.A.5). Adding c *raises* the entropy
    of ω towards log N (the thesis says it brings it down, same section: a slip).
    """
    weights = _weights("weights", weights)
    return weights + checks.positive_float("c", c, allow_zero=True)


def importance_minibatch(
    weights: torch.Tensor, minibatch: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw M indices i.i.d. with P(n) = ω̃_n / Σ ω̃ and return ``(idx, scale)`` (thesis §7.4.1).

    ``scale[m] = mean(ω̃) / ω̃_{i_m}``, so that :func:`importance_loss` is unbiased:
    E[scale · g_i] = Σ_i (ω̃_i/Σω̃)(Σω̃/N)/ω̃_i g_i = μ. Equal weights give scale 1.
    """
    weights = _weights("weights", weights)
    minibatch = checks.positive_int("minibatch", minibatch)
    checks.generator("generator", generator, like=weights)
    idx = torch.multinomial(weights, minibatch, replacement=True, generator=generator)
    return idx, weights.mean() / weights[idx]


def importance_loss(per_example_losses: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """(1/M) Σ_m scale_m · L(x_{i_m}): the reweighted minibatch loss of thesis §7.4.1."""
    # NaN/inf losses are a training failure, which the training loops report as DivergenceError.
    checks.tensor("per_example_losses", per_example_losses, ndim=1, finite=False)
    checks.tensor("scale", scale, ndim=1)
    if scale.shape != per_example_losses.shape:
        raise ValueError(
            f"scale must have the shape of per_example_losses {tuple(per_example_losses.shape)}, "
            f"got {tuple(scale.shape)}"
        )
    return (scale.detach() * per_example_losses).mean()


def _sampled_gradients(
    model: nn.Module,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    weights: object,
    *,
    minibatch: object = 16,
    draws: object = 2000,
    generator: object = None,
    reweight: object = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int, int]:
    """μ, and the mean, the mean square and the nonzero mask of ``draws`` sampled minibatch gradients."""
    check_batch(model, loss_fn, x, y)
    weights = _weights("weights", weights)
    if weights.shape != (x.shape[0],):
        raise ValueError(
            f"weights must have shape ({x.shape[0]},), one per example, got {tuple(weights.shape)}"
        )
    minibatch = checks.positive_int("minibatch", minibatch)
    draws = checks.positive_int("draws", draws)
    if draws < 2:
        raise ValueError(f"draws must be >= 2 (a standard error needs two), got {draws}")
    checks.generator("generator", generator, like=weights)
    checks.boolean("reweight", reweight)
    params = [p for p in model.parameters() if p.requires_grad]
    mu = _flat_grad(model, loss_fn, x, y).double()
    total, total_sq = torch.zeros_like(mu), torch.zeros_like(mu)
    nonzero = mu != 0
    for _ in range(draws):
        idx, scale = importance_minibatch(weights, minibatch, generator)
        scale = scale if reweight else torch.ones_like(scale)
        with torch.enable_grad():
            loss = importance_loss(_per_example_losses(loss_fn, model(x[idx]), y[idx]), scale)
            grads = torch.autograd.grad(loss, params, allow_unused=True)
        g = _flatten(params, grads).double()
        total += g
        total_sq += g * g
        nonzero |= g != 0
    return mu, total / draws, total_sq / draws, nonzero, minibatch, draws


def sampled_gradient_z(
    model: nn.Module,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    weights: torch.Tensor,
    *,
    minibatch: int = 16,
    draws: int = 2000,
    generator: torch.Generator | None = None,
    reweight: bool = True,
) -> tuple[torch.Tensor, int]:
    """z-scores of the mean of ``draws`` sampled minibatch gradients against μ, coordinate by coordinate.

    Each draw goes through the real sampler: :func:`importance_minibatch` with ``weights``, then the
    gradient of :func:`importance_loss` (§7.4.1). Unbiased, (mean − μ)/SE is near N(0, 1) per
    coordinate. Coordinates that are zero in μ and in every draw (the weights of always-zero inputs,
    dead units) carry no test and are left out; their number is returned beside the z-scores.
    ``reweight=False`` drops the factor mean(ω̃)/ω̃ (a biased estimator: the control).
    """
    sampling = dict(minibatch=minibatch, draws=draws, generator=generator, reweight=reweight)
    mu, mean, mean_sq, nonzero, _, draws = _sampled_gradients(model, loss_fn, x, y, weights, **sampling)
    std_err = ((mean_sq - mean**2).clamp_min(0) * draws / (draws - 1)).sqrt() / math.sqrt(draws)
    z = (mean - mu)[nonzero] / std_err[nonzero].clamp_min(1e-300)
    return z, int((~nonzero).sum())


def sampled_gradient_error(
    model: nn.Module, loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor, **kw: Any
) -> float:
    """‖ḡ − μ‖² / (Tr Σ(q) / (M R)): the squared error of the mean ḡ of R = ``draws`` sampled minibatch
    gradients, over what it is in expectation if the sampler is unbiased (eq. 7.6, exact norms).

    Unbiased, its expectation is exactly 1 whatever the distribution of the draws, so by Markov's
    inequality P(ratio > a) ≤ 1/a: an assumption-free test, unlike per-coordinate z-scores, whose
    Gaussian tails fail for sparse, skewed coordinates. A bias b adds ‖b‖² M R / Tr Σ. Keywords ``kw``:
    ``minibatch`` (16), ``draws`` (2000), ``generator`` and ``reweight`` (``True``; ``False`` is the
    biased control), as in :func:`sampled_gradient_z`.
    """
    mu, mean, _, _, m, draws = _sampled_gradients(model, loss_fn, x, y, weights, **kw)
    norms = _grad_norms(model, loss_fn, x, y, exact_method(model)).double()
    expected = trace_covariance(norms, weights.double(), mean_grad_sq=float(mu.pow(2).sum()), minibatch=m)
    return float((mean - mu).pow(2).sum()) / (expected / draws)


def exact_method(model: nn.Module) -> str:
    """The cheaper exact method for ``model``'s norms: ``"fc"`` (Proposition 3) when every layer
    with parameters is ``nn.Linear``, else ``"vmap"``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    owners = [m for m in model.modules() if any(True for _ in m.parameters(recurse=False))]
    return "fc" if all(isinstance(m, nn.Linear) for m in owners) else "vmap"


def trace_covariance(
    grad_norms: torch.Tensor,
    weights: torch.Tensor | None = None,
    *,
    mean_grad_sq: float = 0.0,
    minibatch: int = 1,
) -> float:
    """Tr Σ(q) of the importance-sampled gradient estimate, thesis eq. 7.6 (Corollary 2) / M.

    Args:
        grad_norms: ‖g_n‖ for the current parameters, shape (N,).
        weights: the ω̃_n used for sampling (any positive scale). ``None`` is uniform
            sampling, eq. 7.8; ``grad_norms`` itself is the ideal, eq. 7.7; weights from
            older parameters give the stale trace, eq. 7.9.
        mean_grad_sq: ‖μ‖², the squared norm of the true gradient (app. 7.A.4); 0 gives the
            second moment E‖ĝ‖², which orders proposals the same way.
        minibatch: M, the number of i.i.d. draws averaged.
    """
    checks.tensor("grad_norms", grad_norms, ndim=1, nonempty=True)
    if bool((grad_norms < 0).any()):
        raise ValueError("grad_norms must be >= 0")
    norms = grad_norms.double()
    if weights is None:
        w = torch.ones_like(norms)
    else:
        w = _weights("weights", weights).double()
        if w.shape != norms.shape:
            raise ValueError(f"weights must have shape {tuple(norms.shape)}, got {tuple(w.shape)}")
        if bool(((w == 0) & (norms > 0)).any()):
            raise ValueError("weights must be > 0 wherever grad_norms > 0 (q must cover the support of g)")
    mean_grad_sq = checks.positive_float("mean_grad_sq", mean_grad_sq, allow_zero=True)
    minibatch = checks.positive_int("minibatch", minibatch)
    ratio = torch.where(w > 0, norms.pow(2) / w.clamp_min(1e-300), torch.zeros_like(w))
    return float((w.mean() * ratio.mean() - mean_grad_sq) / minibatch)


def entropy(weights: torch.Tensor) -> float:
    """Entropy (nats) of the sampling distribution ω = ω̃ / Σ ω̃; log N for uniform weights."""
    p = _weights("weights", weights).double()
    p = p / p.sum()
    return float(-(p * torch.log(p.clamp_min(1e-300))).sum())


# ----------------------------------------------------------------------------- simulation


def flat_grad(model: nn.Module, loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """μ = ∇θ (1/N) Σ_n L_n on the batch, flattened (the "true gradient" g_TRUE)."""
    check_batch(model, loss_fn, x, y)
    return _flat_grad(model, loss_fn, x, y)


def _flat_grad(model: nn.Module, loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    params = [p for p in model.parameters() if p.requires_grad]
    with torch.enable_grad():
        loss = _per_example_losses(loss_fn, model(x), y).mean()
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    return _flatten(params, grads)


def _flatten(params: list[torch.Tensor], grads: tuple[torch.Tensor | None, ...]) -> torch.Tensor:
    """The gradients as one vector, zeros for parameters that did not reach the loss."""
    flat = [(torch.zeros_like(p) if g is None else g).flatten() for p, g in zip(params, grads, strict=True)]
    return torch.cat(flat)


def minibatch_gradient_norm_bound(
    model: nn.Module, loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor, batch_size: int
) -> float:
    """Thesis app. 7.A.4: the mean of ‖g_b‖ over consecutive minibatches b, an upper bound on ‖g_TRUE‖.

    With equal-size batches g_TRUE = (1/B) Σ_b g_b, so ‖g_TRUE‖ ≤ (1/B) Σ_b ‖g_b‖ (triangle
    inequality); the bound is tight only when the batch gradients point the same way.
    """
    check_batch(model, loss_fn, x, y)
    batch_size = checks.positive_int("batch_size", batch_size)
    if len(x) % batch_size:
        raise ValueError(f"batch_size must divide the {len(x)} examples into equal batches, got {batch_size}")
    norms = [
        _flat_grad(model, loss_fn, x[i : i + batch_size], y[i : i + batch_size]).norm().item()
        for i in range(0, len(x), batch_size)
    ]
    return sum(norms) / len(norms)


@dataclass
class History:
    """What :func:`simulate_issgd` logs, one entry per logged step (``step``)."""

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)  # full training loss
    error: list[float] = field(default_factory=list)  # training classification error (if any)
    trace_ideal: list[float] = field(default_factory=list)  # eq. 7.7, M = 1
    trace_stale: list[float] = field(default_factory=list)  # eq. 7.9, the weights in use (inf: one is 0)
    trace_uniform: list[float] = field(default_factory=list)  # eq. 7.8
    max_scale: list[float] = field(default_factory=list)  # largest mean(ω̃)/ω̃_i drawn since the last log
    mean_grad_sq: list[float] = field(default_factory=list)  # ‖μ‖²
    norms_now: list[torch.Tensor] = field(default_factory=list)  # ‖g_n‖ at the logged step
    norms_old: list[torch.Tensor] = field(default_factory=list)  # the unsmoothed weights in use then
    age: list[int] = field(default_factory=list)  # steps since those weights were computed (0: fresh)


def _log_step(
    hist: History,
    model: nn.Module,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    step: int,
    norms: torch.Tensor,
    weights: torch.Tensor,
    old: torch.Tensor | None,
    max_scale: float,
) -> None:
    """Append to ``hist`` the loss, error and the three traces (M = 1) of ``weights`` at ``norms``."""
    mu_sq = float(_flat_grad(model, loss_fn, x, y).double().pow(2).sum())
    with torch.no_grad():
        out = model(x)
        loss = float(_per_example_losses(loss_fn, out, y).mean())
        err = float((out.argmax(1) != y).double().mean()) if y.dtype == torch.long else math.nan
    hist.step.append(step)
    hist.loss.append(loss)
    hist.error.append(err)
    hist.trace_ideal.append(trace_covariance(norms, norms.clamp_min(1e-30), mean_grad_sq=mu_sq))
    # A zero weight where the gradient is not zero: the example is never drawn, q misses part of g's
    # support and the estimate is biased (Corollary 2 does not apply): an infinite trace, honestly.
    missed = bool(((weights == 0) & (norms > 0)).any())
    hist.trace_stale.append(math.inf if missed else trace_covariance(norms, weights, mean_grad_sq=mu_sq))
    hist.trace_uniform.append(trace_covariance(norms, mean_grad_sq=mu_sq))
    hist.max_scale.append(max_scale)
    hist.mean_grad_sq.append(mu_sq)
    hist.norms_now.append(norms.cpu())
    hist.norms_old.append((weights if old is None else old).cpu())


def simulate_issgd(
    model: nn.Module,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int,
    lr: float,
    minibatch: int = 32,
    importance: bool = True,
    refresh_every: int = 50,
    smoothing: float = 0.0,
    log_every: int = 50,
    method: str = "fc",
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> History:
    """Train ``model`` in place by SGD with importance-sampled minibatches (or uniform ones).

    A deterministic model of the distributed run: the weights ω̃_n = ‖g_n‖ + c are recomputed
    on the whole set every ``refresh_every`` steps (and at step 0) from the parameters of that
    moment, so that the steps sample with weights 0 to ``refresh_every − 1`` steps old;
    ``refresh_every=1`` is the oracle of §7.4.1. ``smoothing`` is c relative to the mean norm
    (c = κ · mean ‖g‖, app. 7.A.5). A logged step is logged *before* its refresh: its stale trace
    (eq. 7.9) is that of the weights the previous step sampled with, evaluated at the current
    parameters, and ``History.age`` says how many steps old they are (``refresh_every`` at a
    logged refresh step, 0 at step 0).
    With ``importance=False`` the same loop draws uniform minibatches (plain SGD), still
    logging the traces. Raises :class:`~dae_tutor.errors.DivergenceError` as soon as a minibatch loss or a
    gradient norm is NaN or infinite.
    """
    check_batch(model, loss_fn, x, y)
    steps = checks.positive_int("steps", steps)
    lr = checks.positive_float("lr", lr)
    refresh_every = checks.positive_int("refresh_every", refresh_every)
    log_every = checks.positive_int("log_every", log_every)
    checks.boolean("importance", importance)
    smoothing = checks.positive_float("smoothing", smoothing, allow_zero=True)
    checks.generator("generator", generator, like=x)
    checks.boolean("progress", progress)
    method = checks.one_of("method", method, METHODS)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr)
    hist = History()
    weights, old, refreshed_at = torch.ones(x.shape[0], device=x.device), None, 0
    max_scale = 1.0

    def smoothed(norms: torch.Tensor) -> torch.Tensor:
        return smooth_weights(norms, smoothing * float(norms.mean()))

    # Not train.train_loop: each step draws from weights refreshed between steps, and the history
    # logs the state before a step (the weights then in use), which a loss-only loop does not see.
    for step in tqdm(range(steps + 1), desc="ISSGD" if importance else "SGD", disable=not progress):
        refresh, log = importance and step % refresh_every == 0, step % log_every == 0 or step == steps
        if refresh or log:
            norms = _grad_norms(model, loss_fn, x, y, method)
            bad = norms[~torch.isfinite(norms)]
            if len(bad):
                raise DivergenceError(
                    step, float(bad[0]), steps, "simulate_issgd", what="a per-example gradient norm"
                )
        if refresh and step == 0:  # the workers' first sweep: no step samples with unset weights
            old, weights = norms, smoothed(norms)
        if log:  # before this step's refresh: the weights the last step sampled with, ``age`` steps old
            _log_step(hist, model, loss_fn, x, y, step, norms, weights, old, max_scale)
            hist.age.append(step - refreshed_at if importance else 0)
            max_scale = 1.0
        if refresh and step > 0:
            old, refreshed_at, weights = norms, step, smoothed(norms)
        if step == steps:
            break
        idx, scale = importance_minibatch(weights, minibatch, generator)
        max_scale = max(max_scale, float(scale.max()))
        opt.zero_grad(set_to_none=True)
        with torch.enable_grad():
            batch_loss = importance_loss(_per_example_losses(loss_fn, model(x[idx]), y[idx]), scale)
            value = float(batch_loss.detach())
            if not math.isfinite(value):
                raise DivergenceError(step, value, steps, "simulate_issgd (minibatch loss)")
            batch_loss.backward()
        opt.step()
    return hist
