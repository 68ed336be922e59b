"""The GAN paper's theory in one dimension, computed exactly: Prop. 1, Eq. 4, Theorem 1, and the ab game.

For a fixed generator the best discriminator is (GAN paper §4.1, Prop. 1, Eq. 2)

    D*(x) = p_data(x) / (p_data(x) + p_g(x)),   i.e.   logit D*(x) = log p_data(x) − log p_g(x),

and plugging it into the value function V(D, G) (Eq. 1) gives the virtual criterion (Eq. 4)

    C(G) = E_{p_data}[log D*(x)] + E_{p_g}[log(1 − D*(x))] = −log 4 + 2·JSD(p_data ‖ p_g)   (Thm 1, Eq. 6),

by way of the two KL terms of Eq. 5 (:func:`eq5_criterion`, :func:`kl_divergence`).

Everything here works from **log-densities** on a 1-D grid and integrates by the trapezoidal rule: with
log D = −softplus(−logit) and log(1 − D) = −softplus(logit), nothing underflows. The naive ratio
p_data/(p_data + p_g) is 0/0 = NaN wherever both densities underflow (chapter 3 shows it).

:func:`simultaneous_gradient_play` is the non-convergence example of the DL book (§20.10.4):
v(a, b) = ab, a minimises and b maximises, and simultaneous gradient steps orbit the saddle.

For a trained 1-D :class:`~dae_tutor.baselines.GAN` with z ~ U(0, 1) and a monotone G, p_g is exact by
the change of variables (:func:`generator_density`, :func:`log_p_g_on_grid`), and :func:`exact_state`
puts the trained D and G against D*, C(G) and the JSD; :func:`figure1_training` trains the four panels
of Fig. 1.

Sources: the GAN paper is Goodfellow et al. (2014), *Generative Adversarial Nets*; the DL book is
Goodfellow, Bengio and Courville (2016), *Deep Learning*, ch. 20.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from numbers import Real
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from dae_tutor import baselines, checks, train

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


def kl_divergence(x: torch.Tensor, log_p: torch.Tensor, log_q: torch.Tensor) -> float:
    """KL(p ‖ q) = ∫ p log(p/q) dx in nats, by quadrature in the log domain (p log(p/q) = 0 where p = 0)."""
    x, lp, lq = _grid_and_logs(x, log_p, log_q, names=("log_p", "log_q"))
    return torch.trapezoid(_times(lp, lp - lq), x).item()


def eq5_criterion(x: torch.Tensor, log_p_data: torch.Tensor, log_p_g: torch.Tensor) -> float:
    """C(G) = −log 4 + KL(p_data ‖ m) + KL(p_g ‖ m), m = (p_data + p_g)/2 (GAN paper Eq. 5), by quadrature."""
    x, lpd, lpg = _grid_and_logs(x, log_p_data, log_p_g)
    log_m = torch.logaddexp(lpd, lpg) - math.log(2.0)
    return -LOG_4 + kl_divergence(x, lpd, log_m) + kl_divergence(x, lpg, log_m)


def jensen_shannon(x: torch.Tensor, log_p: torch.Tensor, log_q: torch.Tensor) -> float:
    """JSD(p ‖ q) = ½ KL(p ‖ m) + ½ KL(q ‖ m), m = (p + q)/2, in nats, by quadrature in the log domain."""
    x, lp, lq = _grid_and_logs(x, log_p, log_q, names=("log_p", "log_q"))
    log_m = torch.logaddexp(lp, lq) - math.log(2.0)
    return 0.5 * (kl_divergence(x, lp, log_m) + kl_divergence(x, lq, log_m))


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


def _scalar_gan(gan: object) -> baselines.GAN:
    if not isinstance(gan, baselines.GAN):
        raise TypeError(f"gan must be a GAN, got {type(gan).__name__}")
    if (gan.data_dim, gan.noise_dim, gan.prior) != (1, 1, "uniform"):
        raise ValueError(
            "gan must map z ~ U(0, 1) to x in R (data_dim = noise_dim = 1, prior 'uniform'), got "
            f"data_dim = {gan.data_dim}, noise_dim = {gan.noise_dim}, prior {gan.prior!r}"
        )
    return gan


def generator_density(gan: baselines.GAN, n: int = 4_001) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """The exact density of x = G(z), z ~ U(0, 1), by the change of variables log p_g(x) = −log abs(G′(z)).

    On n equally spaced z in [0, 1] (G′ by autograd): returns (x sorted, log p_g at those x, whether G is
    strictly monotone there; the formula needs it). For a 1-D GAN (:class:`~dae_tutor.baselines.GAN`).
    """
    gan = _scalar_gan(gan)
    n = checks.positive_int("n", n, minimum=2)
    w = gan._like()
    z = torch.linspace(0, 1, n, dtype=w.dtype, device=w.device)[:, None].requires_grad_(True)
    x = gan.generate(z)
    slope = torch.autograd.grad(x.sum(), z)[0][:, 0]
    monotone = bool((slope > 0).all() or (slope < 0).all())
    x, log_pg = x.detach()[:, 0], -slope.abs().log()
    order = torch.argsort(x)
    return x[order], log_pg[order].detach(), monotone


def log_p_g_on_grid(gan: baselines.GAN, x: torch.Tensor) -> torch.Tensor:
    """log p_g on the grid ``x`` (:func:`generator_density`, interpolated; −∞ outside G's range).

    p_g has compact support [G(0), G(1)]. Raises ``ValueError`` when G is not monotone.
    """
    grid = _grid_and_logs(x)[0]
    xs, log_pg, monotone = generator_density(gan)
    if not monotone:
        raise ValueError("G is not monotone: the change of variables does not apply")
    inside = (grid >= xs[0]) & (grid <= xs[-1])
    out = torch.full_like(grid, -math.inf)
    out[inside] = torch.from_numpy(
        np.interp(grid[inside].cpu().numpy(), xs.cpu().numpy(), log_pg.cpu().numpy())
    ).to(out)
    return out


def exact_state(gan: baselines.GAN, x: torch.Tensor, log_p_data: torch.Tensor) -> dict[str, float]:
    """Where a 1-D GAN stands, by quadrature on the grid ``x`` against the data's log-density.

    Returns ``value`` V(D, G) (Eq. 1), ``criterion`` C(G) = max_D V (Eq. 4), ``jsd`` JSD(p_data ‖ p_g)
    (Thm 1: C = −log 4 + 2 JSD), ``d_error`` E_m abs(D − D*) with m = (p_data + p_g)/2 and D* of Prop. 1,
    and ``d_half`` max abs(D − ½) where p_data + p_g > 0.05 (½ at the optimum p_g = p_data, Fig. 1 (d)).
    """
    x, log_p_data = _grid_and_logs(x, log_p_data)
    lpg = log_p_g_on_grid(gan, x)
    with torch.no_grad():
        logits = gan.logits(x[:, None])
    d_star = optimal_discriminator(log_p_data, lpg)
    mass = (log_p_data.exp() + lpg.exp()) > 0.05
    return dict(
        value=value_by_quadrature(x, log_p_data, lpg, logits).item(),
        criterion=virtual_criterion(x, log_p_data, lpg),
        jsd=jensen_shannon(x, log_p_data, lpg),
        d_error=torch.trapezoid(
            (log_p_data.exp() + lpg.exp()) / 2 * (torch.sigmoid(logits) - d_star).abs(), x
        ).item(),
        d_half=(torch.sigmoid(logits) - 0.5)[mass].abs().max().item(),
    )


def figure1_training(
    gan: baselines.GAN,
    data: Callable[[int, torch.Generator], torch.Tensor],
    *,
    steps: int,
    k: int = 5,
    d_steps: tuple[int, int] = (15, 2_000),
    g_steps: int = 5,
    start: tuple[float, float] = (0.8, 0.8),
    n_snapshots: int = 10,
) -> dict[str, Any]:
    """The four panels of the GAN paper's Fig. 1 on a 1-D toy, trained in place from a fixed start.

    G is first fitted (800 Adam steps, squared error) to the quantile function of N(μ, s²), ``start`` =
    (μ, s); then D alone trains ``d_steps[0]`` steps (a), ``d_steps[1]`` more (b: D near D*, Prop. 1);
    G alone ``g_steps`` steps (c: "the gradient of D has guided G(z) to flow to regions more likely to
    be classified as data"); then Algorithm 1 runs ``steps`` iterations of k D steps (d: p_g = p_data,
    D = ½). Seeds 1, 2, 3, 4 (one per stage); minibatches of 256.

    Returns:
        ``dict(panels=[4 state_dicts], snapshots=[state_dicts every steps // n_snapshots iterations of
        (d)], value=V(D, G) per iteration of (d))``.
    """
    gan = _scalar_gan(gan)
    if not callable(data):
        raise TypeError(f"data must be a callable data(m, generator), got {type(data).__name__}")
    d_steps = checks.int_sequence("d_steps", d_steps, length=2)
    g_steps = checks.positive_int("g_steps", g_steps)
    steps = checks.positive_int("steps", steps)
    n_snapshots = checks.positive_int("n_snapshots", n_snapshots)
    if n_snapshots > steps:
        raise ValueError(f"n_snapshots must be <= steps = {steps}, got {n_snapshots}")
    mu, s = (checks.real(f"start[{i}]", v) for i, v in enumerate(start))
    w = gan._like()
    z_fit = torch.linspace(0.005, 0.995, 400, dtype=w.dtype, device=w.device)[:, None]
    unit = torch.distributions.Normal(torch.zeros((), dtype=w.dtype), torch.ones((), dtype=w.dtype))
    target = mu + s * unit.icdf(z_fit)
    train.train_loop(
        lambda: (gan.generate(z_fit) - target).pow(2).mean(),
        gan.generator,
        steps=800,
        lr=1e-2,
        progress=False,
    )
    panels = []
    baselines.train_discriminator(gan, data, steps=d_steps[0], lr=3e-3, seed=1)
    panels.append(copy.deepcopy(gan.state_dict()))  # (a)
    baselines.train_discriminator(gan, data, steps=d_steps[1], lr=3e-3, seed=2)
    panels.append(copy.deepcopy(gan.state_dict()))  # (b)
    baselines.train_generator(gan, steps=g_steps, lr=1e-3, seed=3)
    panels.append(copy.deepcopy(gan.state_dict()))  # (c)
    snapshots, every = [], steps // n_snapshots

    def keep(step: int, g: baselines.GAN) -> None:
        if (step + 1) % every == 0:
            snapshots.append(copy.deepcopy(g.state_dict()))

    history = baselines.train_gan(
        gan, data, steps=steps, k=k, batch_size=256, lr=1e-3, seed=4, callback=keep, progress=False
    )
    panels.append(copy.deepcopy(gan.state_dict()))  # (d)
    return dict(panels=panels, snapshots=snapshots, value=history["value"])
