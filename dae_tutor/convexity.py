"""Convexity of the probe problem (thesis §9.3.2): two starts, one optimum; a non-convex probe, two.

A linear probe minimises f(θ) = (1/n) Σ_i CE(W h_i + b, y_i) + (λ/2)‖W‖², θ = [W | b] (C, d+1). f is
convex, and with λ > 0 strictly convex except along the bias shift b ↦ b + c·1, to which softmax is
blind (f, its gradient and the probabilities do not change; the gradient's bias part sums to zero).
On the complement of that direction f is μ-strongly convex, μ > 0 the smallest non-zero eigenvalue
of its Hessian, so any two fits θ_a, θ_b, compared with their biases centred (b − mean b), obey
(Boyd & Vandenberghe, *Convex Optimization*, eqs. 9.9 and 9.11)::

    ‖θ_a − θ_b‖ <= (‖∇f(θ_a)‖ + ‖∇f(θ_b)‖) / μ,    |f(θ_a) − f(θ_b)| <= max(‖∇f(θ_a)‖², ‖∇f(θ_b)‖²) / (2μ),

and, the softmax Jacobian diag p − p pᵀ having spectral norm <= 1/2, their probabilities differ by at
most ‖θ_a − θ_b‖ · ‖[h, 1]‖ / 2 on any example h. A one-hidden-layer MLP probe has no such bound:
from two starts it stops at two different stationary points.

* :func:`strong_convexity`: μ and the Hessian's smallest eigenvalue (0: the bias shift), exactly.
* :func:`mlp_probe`: the non-convex control, trained by full-batch L-BFGS from a seeded start.
* :func:`same_optimum_failures`: the claim "two fits reach one optimum, to tolerance", checked on
  measured numbers (each failed part named), so that the MLP control fails it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dae_tutor import checks, probes


def _features_labels(x: object, y: object) -> tuple[torch.Tensor, torch.Tensor]:
    x = checks.tensor("x", x, ndim=2, nonempty=True)
    y = checks.class_labels("y", y, x.shape[0])
    return x, y.long()


def strong_convexity(x: torch.Tensor, y: torch.Tensor, theta: torch.Tensor, l2: float) -> tuple[float, float]:
    """(μ, λ_min) of the probe objective's Hessian at θ = [W | b] (C, d+1), for features ``x`` (n, d).

    The Hessian is computed exactly, (1/n) Σ_i (diag p_i − p_i p_iᵀ) ⊗ x̃_i x̃_iᵀ + λ on the weights
    (x̃ = [x, 1], p_i the softmax; :func:`dae_tutor.probes.objective_and_gradient` is its gradient), a
    C(d+1) × C(d+1) matrix: keep d small. λ_min is its smallest eigenvalue, 0 up to rounding (the
    bias shift); μ the next one, the strong-convexity modulus on the complement (module docstring).
    """
    x, y = _features_labels(x, y)
    theta = checks.tensor("theta", theta, ndim=2, last_dim=x.shape[1] + 1, nonempty=True)
    l2 = checks.positive_float("l2", l2, allow_zero=True)
    probes.objective_and_gradient(x, theta, y, l2)  # the checks of theta's class count

    theta = theta.to(x)
    n, c = x.shape[0], theta.shape[0]
    xt = torch.cat([x, torch.ones(n, 1, dtype=x.dtype, device=x.device)], 1)  # x̃ = [x, 1]
    p = torch.softmax(xt @ theta.T, 1)  # (n, C)
    z = (p[:, :, None] * xt[:, None, :]).reshape(n, -1)  # p_i ⊗ x̃_i
    h = -(z.T @ z) / n  # −(1/n) Σ (p_i p_iᵀ) ⊗ x̃_i x̃_iᵀ
    w = xt.shape[1]
    for k in range(c):  # + (1/n) Σ diag(p_i) ⊗ x̃_i x̃_iᵀ, block by block
        h[k * w : (k + 1) * w, k * w : (k + 1) * w] += (xt.T * p[:, k]) @ xt / n
        h[k * w : (k + 1) * w - 1, k * w : (k + 1) * w - 1] += l2 * torch.eye(
            w - 1, dtype=h.dtype, device=h.device
        )
    eig = torch.linalg.eigvalsh(h.double())
    return float(eig[1]), float(eig[0])


def mlp_probe(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    hidden: int = 32,
    n_classes: int | None = None,
    l2: float = 1e-3,
    seed: int = 0,
    tol: float = probes.LBFGS_TOL,
    max_iter: int = 500,
) -> tuple[nn.Module, float, float]:
    """A non-convex probe: softmax(W₂ tanh(W₁ h + b₁) + b₂), minimising (1/n) Σ CE + (l2/2)(‖W₁‖² + ‖W₂‖²).

    PyTorch's default initialisation drawn from ``seed``; full-batch L-BFGS (strong Wolfe) until
    ``max |∇| <= tol`` or ``max_iter`` iterations. Returns the probe (in ``x``'s dtype and device),
    its final objective, and its final ``max |∇|``.
    """
    x, y = _features_labels(x, y)
    hidden = checks.positive_int("hidden", hidden)
    if n_classes is None:
        n_classes = int(y.max()) + 1
    n_classes = checks.positive_int("n_classes", n_classes, minimum=2)
    if int(y.max()) >= n_classes or int(y.min()) < 0:
        raise ValueError(f"y must hold labels in [0, {n_classes})")
    l2 = checks.positive_float("l2", l2, allow_zero=True)
    seed = checks.nonnegative_int("seed", seed)
    tol = checks.positive_float("tol", tol)
    max_iter = checks.positive_int("max_iter", max_iter)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Linear(x.shape[1], hidden), nn.Tanh(), nn.Linear(hidden, n_classes))
    net = net.to(device=x.device, dtype=x.dtype)
    weights = [net[0].weight, net[2].weight]
    opt = torch.optim.LBFGS(
        net.parameters(),
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=tol,
        tolerance_change=0.0,
        history_size=50,
        line_search_fn="strong_wolfe",
    )

    def objective() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(net(x), y) + 0.5 * l2 * sum(w.square().sum() for w in weights)
        loss.backward()
        return loss

    opt.step(objective)
    value = float(objective().detach())
    grad = max(float(p.grad.abs().max()) for p in net.parameters())
    return net.requires_grad_(False), value, grad


def _pair(name: str, value: object) -> tuple[torch.Tensor, torch.Tensor]:
    """Two non-empty 2-d tensors of one shape (the two fits' probabilities, or their parameters)."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{name} must be a pair of 2-d tensors, one per fit")
    a, b = (checks.tensor(name, t, ndim=2, nonempty=True) for t in value)
    if a.shape != b.shape:
        raise ValueError(f"{name} must have one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    return a, b


def same_optimum_failures(
    objective: tuple[float, float],
    probabilities: tuple[torch.Tensor, torch.Tensor],
    *,
    objective_tol: float,
    probability_tol: float,
    parameters: tuple[torch.Tensor, torch.Tensor] | None = None,
    parameter_tol: float | None = None,
) -> list[str]:
    """The parts of "two fits reach one optimum" that the measured numbers contradict (empty: it holds).

    1. the two final objectives differ by at most ``objective_tol``;
    2. the two probes' probabilities (n, C) on the same examples differ by at most ``probability_tol``
       in every entry;
    3. (when ``parameters`` is given) the two parameter tensors [W | b] (C, d+1), biases centred
       here, differ by at most ``parameter_tol`` in Frobenius norm.
    """
    if not isinstance(objective, (tuple, list)) or len(objective) != 2:
        raise TypeError("objective must be a pair of the two fits' objective values")
    f_a, f_b = (checks.real("objective", v) for v in objective)
    p_a, p_b = _pair("probabilities", probabilities)
    objective_tol = checks.positive_float("objective_tol", objective_tol, allow_zero=True)
    probability_tol = checks.positive_float("probability_tol", probability_tol, allow_zero=True)
    failures = []
    if abs(f_a - f_b) > objective_tol:
        failures.append(f"the objectives differ by {abs(f_a - f_b):.3g} > {objective_tol:.3g}")
    gap = float((p_a - p_b.to(p_a)).abs().max())
    if gap > probability_tol:
        failures.append(f"the probabilities differ by up to {gap:.3g} > {probability_tol:.3g}")
    if parameters is not None:
        t_a, t_b = _pair("parameters", parameters)
        parameter_tol = checks.positive_float("parameter_tol", parameter_tol, allow_zero=True)
        distance = float(torch.linalg.norm(centred(t_a) - centred(t_b).to(t_a)))
        if distance > parameter_tol:
            failures.append(f"the parameters differ by {distance:.3g} > {parameter_tol:.3g}")
    return failures


def centred(theta: torch.Tensor) -> torch.Tensor:
    """[W | b − mean(b)]: θ with the bias shift, to which softmax is blind, removed."""
    theta = checks.tensor("theta", theta, ndim=2, nonempty=True)
    return torch.cat([theta[:, :-1], theta[:, -1:] - theta[:, -1:].mean()], 1)


def bounds(grad_norms: tuple[float, float], mu: float, feature_norm: float) -> dict[str, float]:
    """The module docstring's bounds, from the two fits' ‖∇f‖, μ and max ‖[h, 1]‖ over the examples:
    ``{"parameter": ..., "objective": ..., "probability": ...}``."""
    if not isinstance(grad_norms, (tuple, list)) or len(grad_norms) != 2:
        raise TypeError("grad_norms must be a pair of gradient norms")
    g_a, g_b = (checks.positive_float("grad_norms", g, allow_zero=True) for g in grad_norms)
    mu = checks.positive_float("mu", mu)
    feature_norm = checks.positive_float("feature_norm", feature_norm)
    parameter = (g_a + g_b) / mu
    return {
        "parameter": parameter,
        "objective": max(g_a, g_b) ** 2 / (2 * mu),
        "probability": parameter * feature_norm / 2,
    }
