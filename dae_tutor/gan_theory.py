"""The GAN paper's theory in one dimension, computed exactly: Prop. 1, Eq. 4, Theorem 1, and the ab game.

For a fixed generator the best discriminator is (GAN paper §4.1, Prop. 1, Eq. 2)

    D*(x) = p_data(x) / (p_data(x) + p_g(x)),   i.e.   logit D*(x) = log p_data(x) − log p_g(x),

and plugging it into the value function V(D, G) (Eq. 1) gives the virtual criterion (Eq. 4)

    C(G) = E_{p_data}[log D*(x)] + E_{p_g}[log(1 − D*(x))] = −log 4 + 2·JSD(p_data ‖ p_g)   (Thm 1, Eq. 6).

Everything here works from **log-densities** on a 1-D grid and integrates by the trapezoidal rule: with
log D = −softplus(−logit) and log(1 − D) = −softplus(logit), nothing underflows. The naive ratio
p_data/(p_data + p_g) is 0/0 = NaN wherever both densities underflow (chapter 3 shows it).

:func:`simultaneous_gradient_play` is the non-convergence example of the DL book (§20.10.4):
v(a, b) = ab, a minimises and b maximises, and simultaneous gradient steps orbit the saddle.

Sources: the GAN paper is Goodfellow et al. (2014), *Generative Adversarial Nets*; the DL book is
Goodfellow, Bengio and Courville (2016), *Deep Learning*, ch. 20.
"""

from __future__ import annotations

import math
from numbers import Real

import torch
from torch.nn import functional as F

from dae_tutor import checks

LOG_4 = math.log(4.0)


def _grid_and_logs(
    x: object, *logs: object, names: tuple[str, ...] = ("log_p_data", "log_p_g", "logits")
) -> tuple[torch.Tensor, ...]:
    x = checks.tensor("x", x, ndim=1)
    if len(x) < 2:
        raise ValueError(f"x must hold at least two grid points, got {len(x)}")
    if not bool((x[1:] > x[:-1]).all()):
        raise ValueError("x must be strictly increasing (a quadrature grid)")
    out = [x]
    for name, value in zip(names, logs, strict=False):
        t = checks.tensor(name, value, ndim=1, finite=False)
        if t.shape != x.shape:
            raise ValueError(f"{name} must have the shape of x {tuple(x.shape)}, got {tuple(t.shape)}")
        if name == "logits" and bool(torch.isnan(t).any()):
            raise ValueError(f"{name} must not contain NaN")
        if name != "logits":
            checks.log_density(name, t)
        out.append(t.to(x))
    return tuple(out)


def optimal_discriminator_logits(log_p_data: torch.Tensor, log_p_g: torch.Tensor) -> torch.Tensor:
    """logit D*(x) = log p_data(x) − log p_g(x) (Prop. 1, Eq. 2), from log-densities of the same shape.

    Where both densities are 0 (−∞ − (−∞)) D* is undefined (Prop. 1 needs it only on the union of
    the supports); it is set to 0 there, i.e. D* = ½.
    """
    log_p_data = checks.log_density("log_p_data", checks.tensor("log_p_data", log_p_data, finite=False))
    log_p_g = checks.log_density("log_p_g", checks.tensor("log_p_g", log_p_g, finite=False))
    if log_p_data.shape != log_p_g.shape:
        raise ValueError(
            f"log_p_data and log_p_g must have the same shape, got {tuple(log_p_data.shape)} "
            f"and {tuple(log_p_g.shape)}"
        )
    both_zero = (log_p_data == -math.inf) & (log_p_g == -math.inf)
    return torch.where(both_zero, torch.zeros_like(log_p_data), log_p_data - log_p_g)


def optimal_discriminator(log_p_data: torch.Tensor, log_p_g: torch.Tensor) -> torch.Tensor:
    """D*(x) = p_data/(p_data + p_g) = sigmoid(log p_data − log p_g) (Prop. 1), never 0/0."""
    return torch.sigmoid(optimal_discriminator_logits(log_p_data, log_p_g))


def value_by_quadrature(
    x: torch.Tensor, log_p_data: torch.Tensor, log_p_g: torch.Tensor, logits: torch.Tensor
) -> torch.Tensor:
    """V(D, G) = ∫ p_data log D + p_g log(1 − D) dx (Eq. 3) for D = sigmoid(``logits``) on the grid ``x``.

    Each term is p·log D with log D = −softplus(−logit), so a point where a density underflows to 0
    contributes 0, not 0·(−∞) = NaN. Returns a 0-d tensor, differentiable in ``logits`` (so a
    discriminator can be fitted to the exact criterion).
    """
    x, lpd, lpg, logits = _grid_and_logs(x, log_p_data, log_p_g, logits)
    return torch.trapezoid(_times(lpd, -F.softplus(-logits)) + _times(lpg, -F.softplus(logits)), x)


def _times(log_p: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """p·f with 0·f = 0 where p = 0 (f may be −∞ there: log D outside the other density's support)."""
    p = log_p.exp()
    return torch.where(p > 0, p * f, torch.zeros_like(f))


def virtual_criterion(x: torch.Tensor, log_p_data: torch.Tensor, log_p_g: torch.Tensor) -> float:
    """C(G) = max_D V(D, G) (Eq. 4), by quadrature at D = D* of Prop. 1."""
    x, lpd, lpg = _grid_and_logs(x, log_p_data, log_p_g)
    return value_by_quadrature(x, lpd, lpg, optimal_discriminator_logits(lpd, lpg)).item()


def jensen_shannon(x: torch.Tensor, log_p: torch.Tensor, log_q: torch.Tensor) -> float:
    """JSD(p ‖ q) = ½ KL(p ‖ m) + ½ KL(q ‖ m), m = (p + q)/2, in nats, by quadrature in the log domain."""
    x, lp, lq = _grid_and_logs(x, log_p, log_q, names=("log_p", "log_q"))
    log_m = torch.logaddexp(lp, lq) - math.log(2.0)

    return 0.5 * torch.trapezoid(_times(lp, lp - log_m) + _times(lq, lq - log_m), x).item()


def simultaneous_gradient_play(a0: float, b0: float, *, lr: float, steps: int) -> torch.Tensor:
    """The path of simultaneous gradient steps on v(a, b) = ab (a descends, b ascends; DL §20.10.4).

    a ← a − lr·b, b ← b + lr·a. The game's vector field (−∂v/∂a, ∂v/∂b) = (−b, a) has Jacobian
    [[0, −1], [1, 0]], eigenvalues ±i: a pure rotation, and each discrete step multiplies the
    distance to the saddle (0, 0) by √(1 + lr²). Returns the (steps + 1, 2) path, in float64.
    """
    for name, value in (("a0", a0), ("b0", b0)):
        if isinstance(value, bool) or not isinstance(value, Real):
            raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value}")
    a, b = float(a0), float(b0)
    lr = checks.positive_float("lr", lr)
    steps = checks.positive_int("steps", steps)
    path = torch.empty(steps + 1, 2, dtype=torch.float64)
    path[0] = torch.tensor([a, b])
    for t in range(steps):
        a, b = a - lr * b, b + lr * a
        path[t + 1, 0], path[t + 1, 1] = a, b
    return path
