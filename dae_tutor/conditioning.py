"""Why the condition number sets the training time of gradient descent (001 "Looking Forward").

On the quadratic bowl f(x) = ½ Σ_i λ_i x_i² (the second-order model of a loss at a minimum, λ_i > 0 the
Hessian's eigenvalues) gradient descent x ← x − η ∇f multiplies coordinate i by (1 − ηλ_i) per step.
The best fixed step η = 2/(λ_max + λ_min) gives the contraction (κ − 1)/(κ + 1) with κ = λ_max/λ_min,
the condition number, so reaching ‖x‖ ≤ tol ‖x₀‖ takes about (κ/2) ln(1/tol) steps: "training time into
a quadratic bowl is roughly proportional to the condition number of the Hessian matrix" (Bengio 2013,
source 001, Looking Forward).
"""

from __future__ import annotations

import torch

from dae_tutor import checks


def gradient_descent_steps(
    eigenvalues: torch.Tensor, *, lr: float | None = None, tol: float = 1e-6, max_steps: int = 1_000_000
) -> int:
    """Steps of gradient descent on f(x) = ½ Σ λ_i x_i² from x₀ = (1, …, 1) until ‖x‖ ≤ ``tol`` ‖x₀‖.

    ``eigenvalues`` must be positive (a bowl); ``lr`` defaults to 2/(λ_max + λ_min). The iteration is run
    (no closed form inside). Raises ``ValueError`` if it has not converged after ``max_steps`` steps
    (e.g. ``lr`` ≥ 2/λ_max, where it diverges).
    """
    values = checks.tensor("eigenvalues", eigenvalues, ndim=1, nonempty=True).double()
    if not bool((values > 0).all()):
        raise ValueError("eigenvalues must all be positive (a quadratic bowl)")
    lr = 2 / float(values.max() + values.min()) if lr is None else checks.positive_float("lr", lr)
    tol = checks.positive_float("tol", tol)
    max_steps = checks.positive_int("max_steps", max_steps)
    x = torch.ones_like(values)
    target = tol * float(x.norm())
    for step in range(1, max_steps + 1):
        x = x - lr * values * x
        if float(x.norm()) <= target:
            return step
    raise ValueError(
        f"gradient descent did not reach tol = {tol:g} in max_steps = {max_steps} steps (lr = {lr:g})"
    )
