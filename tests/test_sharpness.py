"""Preconditioned sharpness against eigvalsh, and the squared-gradient moment against a closed form."""

import pytest
import torch
from torch import nn

from dae_tutor import runtime, sharpness


def test_preconditioned_sharpness_is_the_top_eigenvalue_of_d_inverse_h():
    g = runtime.generator(0)
    A = torch.randn(30, 30, generator=g, dtype=torch.float64)
    H = A @ A.T / 30 - 0.3 * torch.eye(30, dtype=torch.float64)  # indefinite, like a network's Hessian
    D = torch.rand(30, generator=g, dtype=torch.float64) * 10 + 0.01  # spread over three decades
    exact = torch.linalg.eigvalsh(torch.diag(D.rsqrt()) @ H @ torch.diag(D.rsqrt()))[-1].item()
    ours = sharpness.preconditioned_sharpness(lambda u: H @ u, D, tol=1e-10, generator=runtime.generator(1))
    assert ours == pytest.approx(exact, rel=1e-8)
    # the control: the raw sharpness λ₁(H) is a different number here
    assert abs(torch.linalg.eigvalsh(H)[-1].item() / exact - 1) > 0.5
    with pytest.raises(ValueError, match="diagonal"):
        sharpness.preconditioned_sharpness(lambda u: H @ u, -D)


def test_gradient_second_moment_matches_least_squares_in_closed_form():
    g = runtime.generator(2)
    x = torch.randn(20, 3, generator=g, dtype=torch.float64)
    y = torch.randint(2, (20,), generator=g)
    model = nn.Linear(3, 1, bias=False).double()
    targets = y.double()

    def loss_fn(out, labels):  # ½ mean (xᵀw − y)², gradient X_bᵀ(X_b w − y_b)/B
        return 0.5 * (out[:, 0] - labels.double()).square().mean()

    theta = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    batches = torch.randint(20, (7, 4), generator=g)
    v = sharpness.gradient_second_moment(model, loss_fn, x, y, theta, batches)
    closed = torch.stack([x[b].T @ (x[b] @ theta - targets[b]) / 4 for b in batches]).square().mean(0)
    assert torch.allclose(v, closed, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="batches"):
        sharpness.gradient_second_moment(model, loss_fn, x, y, theta, batches + 20)
