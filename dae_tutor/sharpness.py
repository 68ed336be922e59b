"""The sharpness an adaptive optimiser sees: λ₁ of the preconditioned Hessian P⁻¹H (edge of stability).

Gradient descent with step η on a quadratic is stable only while λ₁(H) < 2/η; trained with a fixed η, a
network's sharpness λ₁ rises until it hovers near 2/η (the edge of stability, Cohen et al. 2021). RMSProp
steps θ ← θ − η g / P with P = diag(√v + ε), v the running mean of g², so the same argument applies to
the preconditioned Hessian: it is stable only while λ₁(P⁻¹H) = λ₁(P^{-1/2} H P^{-1/2}) < 2/η (the adaptive
edge of stability, Cohen et al. 2022). The raw λ₁(H) then scales with the typical √v.

* :func:`rmsprop_checkpoints` -- RMSProp's parameters θ and its own running average v at chosen steps.
* :func:`preconditioned_sharpness` -- λ₁(D^{-1/2} H D^{-1/2}) for a positive diagonal D, by Lanczos.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from dae_tutor import checks, runtime
from dae_tutor.curvature import lanczos
from dae_tutor.errors import DivergenceError


def rmsprop_checkpoints(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int,
    save_at: Sequence[int],
    seed: int,
    lr: float = 1e-3,
    batch_size: int = 32,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """RMSProp (torch's defaults, α = 0.99, ε = 1e-8) on cross-entropy minibatches, keeping at each step of
    ``save_at`` the flat parameters θ and the optimiser's own running average v_t = α v_{t−1} + (1 − α) g_t²
    (``square_avg``), from which its preconditioner is P = diag(√v + ε) (Cohen et al. 2022, eq. 1).

    The minibatches are those of :func:`dae_tutor.train.classifier_checkpoints` with the same ``seed``
    (all ``steps`` × ``batch_size`` indices drawn at once, CPU), so the parameters are the same.
    Returns [(θ, v)] in increasing order of ``save_at`` (steps ≥ 1).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    x = checks.tensor("x", x)
    y = checks.class_labels("y", y, x.shape[0])
    steps = checks.positive_int("steps", steps)
    save_at = checks.int_sequence("save_at", save_at, minimum=1)
    if save_at and max(save_at) > steps:
        raise ValueError(f"save_at must be <= steps ({steps}), got {max(save_at)}")
    lr = checks.positive_float("lr", lr)
    batch_size = checks.positive_int("batch_size", batch_size)
    params = list(model.parameters())
    opt = torch.optim.RMSprop(params, lr=lr)
    batches = torch.randint(len(x), (steps, batch_size), generator=runtime.generator(seed))
    saved = []
    for step, rows in enumerate(batches, start=1):
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(x[rows]), y[rows])
        if not torch.isfinite(loss):
            raise DivergenceError(step - 1, loss.item(), steps, "rmsprop_checkpoints")
        loss.backward()
        opt.step()
        if step in save_at:
            theta = nn.utils.parameters_to_vector(params).detach().clone()
            v = torch.cat([opt.state[p]["square_avg"].reshape(-1) for p in params]).clone()
            saved.append((theta, v))
    return saved


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
