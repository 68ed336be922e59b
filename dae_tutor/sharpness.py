"""The sharpness an adaptive optimiser sees: λ₁ of the preconditioned Hessian P⁻¹H (edge of stability).

Gradient descent with step η on a quadratic is stable only while λ₁(H) < 2/η; trained with a fixed η, a
network's sharpness λ₁ rises until it hovers near 2/η (the edge of stability, Cohen et al. 2021). RMSProp
steps θ ← θ − η g / P with P = diag(√v + ε), v the running mean of g², so the same argument applies to
the preconditioned Hessian: it is stable only while λ₁(P⁻¹H) = λ₁(P^{-1/2} H P^{-1/2}) < 2/η (the adaptive
edge of stability, Cohen et al. 2022). The raw λ₁(H) then scales with the typical √v.

* :func:`gradient_second_moment` -- v at θ: the mean over minibatches of the squared minibatch gradient,
  the quantity RMSProp's running average v tracks (its steady state when θ moves slowly).
* :func:`preconditioned_sharpness` -- λ₁(D^{-1/2} H D^{-1/2}) for a positive diagonal D, by Lanczos.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call, grad

from dae_tutor import checks
from dae_tutor.curvature import lanczos


def gradient_second_moment(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    theta: torch.Tensor,
    batches: torch.Tensor,
) -> torch.Tensor:
    """v(θ) = (1/m) Σ_b g_b(θ)², the mean squared minibatch gradient over the m rows of ``batches``.

    ``batches`` is an (m, B) integer tensor of row indices into ``x``/``y``; g_b is the gradient at the flat
    parameters ``theta`` of ``loss_fn(model(x[b]), y[b])`` (mean-reduced, as RMSProp sees it). RMSProp's
    v_t = α v_{t−1} + (1 − α) g_t² averages the same squares over its last ~1/(1 − α) steps.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    x = checks.tensor("x", x)
    if x.dim() < 2:
        raise ValueError(f"x must be a batch (N, ...) of at least 2 dimensions, got {tuple(x.shape)}")
    y = checks.class_labels("y", y, x.shape[0])
    dim = sum(p.numel() for p in model.parameters())
    theta = checks.tensor("theta", theta, ndim=1)
    if theta.numel() != dim:
        raise ValueError(f"theta must have the model's {dim} parameters, got {theta.numel()}")
    if not isinstance(batches, torch.Tensor) or batches.dim() != 2 or batches.is_floating_point():
        raise TypeError("batches must be an (m, B) integer tensor of row indices")
    if batches.numel() == 0 or int(batches.min()) < 0 or int(batches.max()) >= x.shape[0]:
        raise ValueError(
            f"batches must be non-empty row indices in [0, {x.shape[0]}), got {tuple(batches.shape)}"
        )
    shapes = [(name, p.shape, p.numel()) for name, p in model.named_parameters()]

    def loss(flat: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        params, start = {}, 0
        for name, shape, n in shapes:
            params[name] = flat[start : start + n].view(shape)
            start += n
        return loss_fn(functional_call(model, params, (x[rows],)), y[rows])

    gradient = grad(loss)
    total = torch.zeros_like(theta)
    for rows in batches:
        total += gradient(theta.detach(), rows).square()
    return total / batches.shape[0]


def preconditioned_sharpness(
    hvp: Callable[[torch.Tensor], torch.Tensor],
    diagonal: torch.Tensor,
    *,
    tol: float = 1e-3,
    generator: torch.Generator | None = None,
) -> float:
    """λ₁(D^{-1/2} H D^{-1/2}) = the largest eigenvalue of D⁻¹H, for the operator u ↦ Hu given by ``hvp``
    and a positive ``diagonal`` D (for RMSProp, √v + ε), by :func:`~dae_tutor.curvature.lanczos` LA(1)
    on the symmetric matvec u ↦ D^{-1/2} H (D^{-1/2} u)."""
    if not callable(hvp):
        raise TypeError(f"hvp must be callable, got {type(hvp).__name__}")
    diagonal = checks.tensor("diagonal", diagonal, ndim=1, nonempty=True)
    if not bool((diagonal > 0).all()):
        raise ValueError("diagonal must be positive (a preconditioner)")
    scale = diagonal.rsqrt()
    result = lanczos(
        lambda u: scale * hvp(scale * u),
        diagonal.numel(),
        1,
        "LA",
        tol=tol,
        generator=generator,
        dtype=diagonal.dtype,
        device=diagonal.device,
    )
    return result.eigenvalues[0].item()
