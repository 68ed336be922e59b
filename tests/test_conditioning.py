"""Gradient descent on a quadratic bowl against the closed-form contraction (κ − 1)/(κ + 1)."""

import math

import pytest
import torch

from dae_tutor import conditioning


@pytest.mark.parametrize("kappa", [2.0, 10.0, 100.0, 1000.0])
def test_steps_match_the_closed_form_and_grow_like_kappa(kappa):
    # With λ ∈ {1, κ} and η = 2/(1 + κ) both coordinates contract by exactly (κ − 1)/(κ + 1) per step,
    # so ‖x_t‖ = ((κ − 1)/(κ + 1))^t ‖x₀‖ and the count is the closed-form ceiling.
    values = torch.tensor([1.0, kappa], dtype=torch.float64)
    rate = (kappa - 1) / (kappa + 1)
    expected = math.ceil(math.log(1e-6) / math.log(rate) - 1e-9)
    assert conditioning.gradient_descent_steps(values, tol=1e-6) == expected
    # ≈ (κ/2) ln(1/tol): 2/κ ≤ ln((κ+1)/(κ−1)) = 2 atanh(1/κ) ≤ (2/κ)/(1 − 1/κ²), so the count is within
    # (κ/2) ln(1/tol) / κ² of (κ/2) ln(1/tol), plus one for the ceiling
    estimate = kappa / 2 * math.log(1e6)
    assert abs(conditioning.gradient_descent_steps(values) - estimate) <= estimate / kappa**2 + 1


def test_a_well_conditioned_control_is_fast_and_a_too_large_step_diverges():
    assert conditioning.gradient_descent_steps(torch.ones(5, dtype=torch.float64)) == 1  # κ = 1: one step
    with pytest.raises(ValueError, match="max_steps"):
        conditioning.gradient_descent_steps(torch.tensor([1.0, 10.0]), lr=0.21, max_steps=10_000)  # > 2/10
    with pytest.raises(ValueError, match="eigenvalues"):
        conditioning.gradient_descent_steps(torch.tensor([1.0, -1.0]))
