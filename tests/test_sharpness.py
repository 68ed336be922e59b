"""Preconditioned sharpness against eigvalsh; RMSProp's saved state against its update in closed form."""

import pytest
import torch
from torch import nn

from dae_tutor import curvature, data, nets, runtime, sharpness, train


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


def test_rmsprop_checkpoints_hold_the_optimisers_own_v():
    """θ as classifier_checkpoints trains it, and v obeys RMSProp's update in closed form (torch's α = 0.99,
    ε = 1e-8): v_t = α v_{t−1} + (1 − α) g_t², θ_t = θ_{t−1} − η g_t / (√v_t + ε), g_t at θ_{t−1} on
    batch t."""
    g = runtime.generator(3)
    x = torch.randn(40, 5, generator=g, dtype=torch.float64)
    y = torch.randint(3, (40,), generator=g)
    make = lambda: nets.MLP([5, 4, 3], "tanh", seed=0, dtype=torch.float64)  # noqa: E731
    lr, t = 0.01, 6
    saved = sharpness.rmsprop_checkpoints(make(), x, y, steps=t, save_at=[t - 1, t], seed=4, lr=lr)
    (theta0, v0), (theta1, v1) = saved
    reference, _ = train.classifier_checkpoints(make(), x, y, steps=t, save_at=[t], seed=4, lr=lr)
    assert torch.equal(theta1, reference[0])
    rows = torch.randint(40, (t, 32), generator=runtime.generator(4))[t - 1]
    model = make()
    nn.utils.vector_to_parameters(theta0, model.parameters())
    nn.functional.cross_entropy(model(x[rows]), y[rows]).backward()
    grad_t = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    assert torch.allclose(v1, 0.99 * v0 + 0.01 * grad_t.square(), rtol=1e-12, atol=1e-16)
    assert torch.allclose(theta1, theta0 - lr * grad_t / (v1.sqrt() + 1e-8), rtol=1e-10, atol=1e-14)
    # the control: the previous step's v does not give this step
    assert not torch.allclose(theta1, theta0 - lr * grad_t / (v0.sqrt() + 1e-8), rtol=1e-6, atol=1e-10)
    with pytest.raises(ValueError, match="save_at"):
        sharpness.rmsprop_checkpoints(make(), x, y, steps=t, save_at=[t + 1], seed=4)
    with pytest.raises(ValueError, match="save_at"):
        sharpness.rmsprop_checkpoints(make(), x, y, steps=t, save_at=[0], seed=4)


def test_rmsprop_sits_near_its_preconditioned_edge_not_the_plain_one():
    """Trained by RMSProp (η = 3e-3, 1,000 minibatches of 32), a 49-16-10 MLP on 1,000 MNIST images has
    η λ₁(P⁻¹H) in (0.1, 2) with P = √v + ε from the optimiser's state (measured 0.17 and 0.18 for seeds 0
    and 1), while plain edge-of-stability, P = I, is far off: η λ₁(H) < 0.1 (measured 0.007)."""
    images, labels = data.mnist("train")
    x = nn.functional.avg_pool2d(images[:1000].reshape(-1, 1, 28, 28), 4).reshape(-1, 49).double()
    y = labels[:1000]
    model = nets.MLP([49, 16, 10], "relu", seed=0, dtype=torch.float64)
    lr = 3e-3
    ((theta, v),) = sharpness.rmsprop_checkpoints(model, x, y, steps=1000, save_at=[1000], seed=0, lr=lr)
    H = curvature.full_hessian(curvature.DatasetLoss(model, nn.functional.cross_entropy, (x, y)), theta)
    root_p = (v.sqrt() + 1e-8).sqrt()
    preconditioned = torch.linalg.eigvalsh(H / root_p[:, None] / root_p[None, :])[-1].item()
    assert 0.1 < lr * preconditioned < 2, lr * preconditioned
    assert lr * torch.linalg.eigvalsh(H)[-1].item() < 0.1  # the control, P = I
