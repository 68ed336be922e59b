"""Tests of dae_tutor.score against closed forms, autograd, finite differences and the spec's numbers."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from dae_tutor import nets, train
from dae_tutor import score as S
from dae_tutor.densities import GaussianMixture, Spiral, reference_mixture_1d

F64 = torch.float64


@pytest.fixture(scope="module")
def gaussian3d() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    a = rng.normal(0, 0.6, (3, 3))
    return rng.normal(0, 1, 3), a @ a.T + 0.3 * np.eye(3)


def linear_optimal_dae(mu: np.ndarray, cov: np.ndarray, sigma: float):
    """The closed-form optimal DAE of N(mu, cov): mu + cov (cov + sigma^2 I)^{-1} (x - mu), as a module."""
    a = torch.from_numpy(cov @ np.linalg.inv(cov + sigma**2 * np.eye(len(mu))))
    mu_t = torch.from_numpy(mu)
    return lambda x: mu_t + (x - mu_t) @ a.T


# --------------------------------------------------------------- score and Hessian
def test_dae_score_of_gaussian_optimum(gaussian3d) -> None:
    mu, cov = gaussian3d
    sigma = 0.3
    x = np.random.default_rng(1).normal(0, 1, (10, 3))
    got = S.dae_score(linear_optimal_dae(mu, cov, sigma), torch.from_numpy(x), sigma).numpy()
    expected = -(x - mu) @ np.linalg.inv(cov + sigma**2 * np.eye(3)).T
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_log_density_hessian_of_gaussian_optimum(gaussian3d) -> None:
    """(J - I)/sigma^2 = -(Sigma + sigma^2 I)^{-1} exactly for the optimal DAE (spec §1.8)."""
    mu, cov = gaussian3d
    sigma = 0.2
    x = torch.randn(7, 3, dtype=F64, generator=torch.Generator().manual_seed(2))
    hess = S.log_density_hessian(linear_optimal_dae(mu, cov, sigma), x, sigma)
    assert hess.shape == (7, 3, 3)
    expected = -np.linalg.inv(cov + sigma**2 * np.eye(3))
    np.testing.assert_allclose(hess.numpy(), np.broadcast_to(expected, (7, 3, 3)), atol=1e-9)
    # through GaussianMixture.optimal_reconstruction too (one component)
    g = GaussianMixture([1.0], mu[None], cov[None])
    hess2 = S.log_density_hessian(lambda z: g.optimal_reconstruction(z, sigma), x, sigma)
    np.testing.assert_allclose(hess2.numpy(), np.broadcast_to(expected, (7, 3, 3)), atol=1e-9)


def test_reconstruction_jacobian_matches_finite_differences() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4)).double()
    x = torch.randn(6, 4, dtype=F64, generator=torch.Generator().manual_seed(3))
    jac = S.reconstruction_jacobian(net, x)
    h = 1e-6
    with torch.no_grad():
        cols = [(net(x + h * e) - net(x - h * e)) / (2 * h) for e in torch.eye(4, dtype=F64)]
    fd = torch.stack(cols, dim=-1)
    np.testing.assert_allclose(jac.detach().numpy(), fd.numpy(), atol=1e-8)
    chunked = S.reconstruction_jacobian(net, x, chunk_size=2)
    np.testing.assert_allclose(chunked.detach().numpy(), fd.numpy(), atol=1e-8)


def test_jacobian_of_optimal_dae_is_posterior_variance() -> None:
    """Spec §1.2 (derived): J_{r*}(x) = Var[X | X~ = x] / sigma^2, checked with the exact posterior."""
    m, sigma = reference_mixture_1d(), 0.25
    x = torch.linspace(-1.2, 1.2, 9, dtype=F64)[:, None]
    jac = S.reconstruction_jacobian(lambda z: m.optimal_reconstruction(z, sigma), x)[:, 0, 0]
    w, means, cov = m.posterior(x, sigma)
    mean = (w * means[..., 0]).sum(-1)
    var = (w * (cov[:, 0, 0] + means[..., 0] ** 2)).sum(-1) - mean**2
    np.testing.assert_allclose(jac.numpy(), (var / sigma**2).numpy(), rtol=1e-9)
    # and it is I + sigma^2 Hessian of log p_sigma
    hess = m.smoothed(sigma).hessian_log_prob(x)[:, 0, 0]
    np.testing.assert_allclose(jac.numpy(), (1 + sigma**2 * hess).numpy(), rtol=1e-9)


# ------------------------------------------------------------------------ energy
def _pairs(n: int = 2000, seed: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, dtype=F64, generator=g) * 2 - 1
    return x, x + 0.1 * torch.randn(n, 1, dtype=F64, generator=g)


@pytest.mark.parametrize(("rule", "n", "bound"), [("mean", 50, 0.01), ("trapezoid", 10, 0.005)])
def test_energy_difference_spec_bounds(rule: str, n: int, bound: float) -> None:
    """Spec §1.9: 2000 pairs x ~ U(-1,1), x* = x + 0.1 N(0,1), exact score of the reference density."""
    m = reference_mixture_1d()
    x, x_star = _pairs()
    true = m.log_prob(x) - m.log_prob(x_star)  # E = -log p
    err = (S.energy_difference(m.score, x, x_star, n=n, rule=rule) - true).abs().max().item()
    assert err < bound


def test_energy_difference_orders_of_convergence() -> None:
    m = reference_mixture_1d()
    x, x_star = _pairs(500)
    true = m.log_prob(x) - m.log_prob(x_star)

    def err(n: int, rule: str) -> float:
        return (S.energy_difference(m.score, x, x_star, n=n, rule=rule) - true).abs().max().item()

    assert 3.5 < err(11, "trapezoid") / err(21, "trapezoid") < 4.5  # O(1/n^2)
    assert 1.7 < err(11, "mean") / err(21, "mean") < 2.3  # O(1/n)
    # n = 1 of the mean rule is the first-order Taylor estimate -score(x).(x* - x)
    taylor = -(m.score(x) * (x_star - x)).sum(-1)
    one_point = S.energy_difference(m.score, x, x_star, n=1, rule="mean")
    np.testing.assert_allclose(one_point.numpy(), taylor.numpy())


def test_energy_difference_exact_for_quadratic_energy() -> None:
    rng = np.random.default_rng(5)
    a = rng.normal(size=(4, 4))
    a = torch.from_numpy(a @ a.T + np.eye(4))
    b = torch.from_numpy(rng.normal(size=4))

    def energy(z: torch.Tensor) -> torch.Tensor:
        return 0.5 * torch.einsum("...i,ij,...j->...", z, a, z) + z @ b

    def score(z: torch.Tensor) -> torch.Tensor:
        return -(z @ a.T + b)

    x = torch.randn(3, 5, 4, dtype=F64, generator=torch.Generator().manual_seed(6))
    x_star = x + torch.randn(3, 5, 4, dtype=F64, generator=torch.Generator().manual_seed(7))
    got = S.energy_difference(score, x, x_star, n=2, rule="trapezoid")
    assert got.shape == (3, 5)
    np.testing.assert_allclose(got.numpy(), (energy(x_star) - energy(x)).numpy(), atol=1e-12)


# ------------------------------------------------------------------ Metropolis-Hastings
def test_metropolis_hastings_gaussian_moments_and_seeding() -> None:
    mu, s = 0.3, 0.5
    g = GaussianMixture([1.0], [[mu]], [[[s**2]]])
    x0 = torch.zeros(32, 1, dtype=F64)
    chain, acc = S.metropolis_hastings(g.score, x0, 1000, 0.8, torch.Generator().manual_seed(0))
    assert chain.shape == (1001, 32, 1) and torch.equal(chain[0], x0)
    assert 0.0 < acc < 1.0
    kept = chain[200:, :, 0]
    per_chain_mean = kept.mean(0)
    se = per_chain_mean.std().item() / math.sqrt(32)
    assert abs(kept.mean().item() - mu) < 5 * se + 1e-3
    per_chain_var = kept.var(0)
    se_var = per_chain_var.std().item() / math.sqrt(32)
    assert abs(kept.var().item() - s**2) < 5 * se_var + 1e-3
    again, acc2 = S.metropolis_hastings(g.score, x0, 1000, 0.8, torch.Generator().manual_seed(0))
    assert torch.equal(chain, again) and acc == acc2
    other, _ = S.metropolis_hastings(g.score, x0, 20, 0.8, torch.Generator().manual_seed(1))
    assert not torch.equal(chain[:21], other)
    # float32 starting points give a float32 chain
    c32, _ = S.metropolis_hastings(g.score, x0.float(), 5, 0.8, torch.Generator().manual_seed(0))
    assert c32.dtype == torch.float32


def test_metropolis_hastings_reference_mixture() -> None:
    """Spec §5.3 #13: exact score, 64 chains; mean, std and mode mass within 0.05."""
    m = reference_mixture_1d()
    x0 = m.sample(64, torch.Generator().manual_seed(1))
    chain, acc = S.metropolis_hastings(m.score, x0, 2000, 0.5, torch.Generator().manual_seed(2))
    kept = chain[200:, :, 0]
    true_mean = 0.4 * -0.6 + 0.6 * 0.5
    true_var = 0.4 * (0.25**2 + 0.36) + 0.6 * (0.35**2 + 0.25) - true_mean**2
    true_left = 0.4 * stats.norm.cdf(0, -0.6, 0.25) + 0.6 * stats.norm.cdf(0, 0.5, 0.35)
    assert abs(kept.mean().item() - true_mean) < 0.05
    assert abs(kept.std().item() - math.sqrt(true_var)) < 0.05
    assert abs((kept < 0).double().mean().item() - true_left) < 0.05
    assert 0.3 < acc < 0.95


def test_metropolis_hastings_with_optimal_dae_targets_p_sigma() -> None:
    """Spec §1.10(b): with (r*_sigma(x) - x)/sigma^2 the chain samples p_sigma, whose variance is larger."""
    m, sigma = reference_mixture_1d(), 0.4
    x0 = m.sample(64, torch.Generator().manual_seed(3))

    def score_fn(z: torch.Tensor) -> torch.Tensor:
        return S.dae_score(lambda y: m.optimal_reconstruction(y, sigma), z, sigma)

    chain, _ = S.metropolis_hastings(score_fn, x0, 1500, 0.7, torch.Generator().manual_seed(4))
    var = chain[200:].var().item()
    true_var = 0.4 * (0.25**2 + 0.36) + 0.6 * (0.35**2 + 0.25) - (0.4 * -0.6 + 0.6 * 0.5) ** 2
    assert abs(var - (true_var + sigma**2)) < 0.05 < abs(var - true_var)


# ------------------------------------------------------ non-parametric 1-D (Figs. 3.3-3.4)
# sigma: (RCAE vs score, DAE vs score, RCAE vs DAE); spec §2 Fig. 3.4, M=1000, max over [-1, 1]
SPEC_TABLE = {
    1.00: (5.63, 5.65, 0.071),
    0.31: (3.55, 3.81, 0.29),
    0.16: (1.81, 1.85, 0.35),
    0.06: (0.46, 0.35, 0.21),
    0.03: (0.15, 0.090, 0.098),
    0.01: (0.049, 0.010, 0.045),
}


@pytest.fixture(scope="module")
def reference_grid() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, GaussianMixture]:
    m = reference_mixture_1d()
    grid = torch.linspace(-1.5, 1.5, 1000, dtype=F64)
    return grid, m.log_prob(grid[:, None]).exp(), grid.abs() <= 1, m


@pytest.mark.parametrize("sigma", sorted(SPEC_TABLE, reverse=True))
def test_rcae_and_dae_reproduce_spec_table(reference_grid, sigma: float) -> None:
    grid, p, inner, m = reference_grid
    true = m.score(grid[:, None])[:, 0]
    rcae = (S.rcae_1d(grid, p, sigma) - grid) / sigma**2
    dae = (S.dae_1d(grid, p, sigma) - grid) / sigma**2
    measured = [(a - b)[inner].abs().max().item() for a, b in ((rcae, true), (dae, true), (rcae, dae))]
    # the spec prints 2-3 significant figures (0.29 for 0.28496 is its rounding)
    np.testing.assert_allclose(measured, SPEC_TABLE[sigma], rtol=0.02, atol=5e-4)
    smooth = m.smoothed(sigma).score(grid[:, None])[:, 0]
    dae_vs_smooth = (dae - smooth)[inner].abs().max().item()
    if sigma <= 0.06:  # spec §5.3 #6: the discrete DAE is the score of p_sigma
        assert dae_vs_smooth < 1e-6
    else:  # truncation of p to [-1.5, 1.5]: 2.1e-3, 7.6e-3, 6.3e-4 at sigma = 1.00, 0.31, 0.16
        assert dae_vs_smooth == pytest.approx({1.00: 2.1e-3, 0.31: 7.6e-3, 0.16: 6.3e-4}[sigma], rel=0.05)


def test_rcae_discretisation_floor() -> None:
    """Spec §1.4 (b): at sigma = 0.01 the RCAE error is 0.023 and 0.017 at M = 4000 and 16000."""
    m = reference_mixture_1d()
    for big_m, expected in ((4000, 0.023), (16000, 0.017)):
        grid = torch.linspace(-1.5, 1.5, big_m, dtype=F64)
        p = m.log_prob(grid[:, None]).exp()
        est = (S.rcae_1d(grid, p, 0.01) - grid) / 0.01**2
        err = (est - m.score(grid[:, None])[:, 0])[grid.abs() <= 1].abs().max().item()
        assert err == pytest.approx(expected, abs=1e-3)


def test_rcae_floor_is_the_sigma_to_zero_limit_and_a_one_sided_difference() -> None:
    """rcae_1d_limit: (r - x)/sigma^2 of the banded solve tends to it as O(sigma^2), and it is
    p'/p - (Delta/2) p''/p + O(Delta^2) (Taylor), so the floor max|s - score| is O(Delta): 4x smaller on a
    grid 4x finer. The control is the DAE side: the exact score of p_sigma has no floor (it tends to 0)."""
    m = reference_mixture_1d()
    floors = []
    for big_m in (1000, 4000):
        grid = torch.linspace(-1.5, 1.5, big_m, dtype=F64)
        p = m.log_prob(grid[:, None]).exp()
        inside = grid.abs() <= 1
        limit = S.rcae_1d_limit(grid, p)
        gaps = [
            (((S.rcae_1d(grid, p, s) - grid) / s**2 - limit)[inside]).abs().max().item() for s in (1e-3, 1e-4)
        ]
        assert 80 < gaps[0] / gaps[1] < 120, gaps  # O(sigma^2): x100 per decade of sigma
        true_score = m.score(grid[:, None])[:, 0]
        p2_over_p = m.hessian_log_prob(grid[:, None])[:, 0, 0] + true_score**2  # p''/p
        step = 3 / (big_m - 1)
        taylor = (limit - true_score + step / 2 * p2_over_p)[inside].abs().max().item()
        floors.append((limit - true_score)[inside].abs().max().item())
        assert taylor < 0.05 * floors[-1], (taylor, floors[-1])  # the O(Delta^2) remainder is small
        assert limit[0].item() == pytest.approx(1 / step)
    assert 3.8 < floors[0] / floors[1] < 4.2, floors
    smoothed_gap = (m.smoothed(1e-3).score(grid[:, None]) - m.score(grid[:, None]))[:, 0][inside].abs().max()
    assert smoothed_gap < floors[1] / 10  # the exact DAE score at sigma = 1e-3: no floor
    with pytest.raises(ValueError, match="density"):
        S.rcae_1d_limit(grid, torch.zeros_like(grid))


def test_rcae_solution_zeroes_the_gradient_of_eq_3_11(reference_grid) -> None:
    """Autograd of the thesis's discretised loss (3.11) vanishes at the solution."""
    grid, p, _, _ = reference_grid
    delta = (grid[1] - grid[0]).item()
    for sigma in (0.5, 0.05):
        r_hat = S.rcae_1d(grid, p, sigma).clone().requires_grad_(True)
        loss = (p * delta * (r_hat - grid) ** 2).sum() + sigma**2 * (
            p[:-1] * delta * ((r_hat[1:] - r_hat[:-1]) / delta) ** 2
        ).sum()
        (grad,) = torch.autograd.grad(loss, r_hat)
        assert grad.abs().max().item() < 1e-10 * max(1.0, (p * delta).max().item())


def test_rcae_and_dae_coincide_for_a_gaussian() -> None:
    """Spec §1.4: for Gaussian p both optima are mu + s^2/(s^2+sigma^2)(x - mu) (up to discretisation)."""
    s, mu, sigma = 0.4, 0.1, 0.1
    grid = torch.linspace(-3, 3, 4000, dtype=F64)
    p = torch.exp(-((grid - mu) ** 2) / (2 * s * s))
    linear = mu + s * s / (s * s + sigma**2) * (grid - mu)
    inner = grid.abs() <= 1
    assert (S.dae_1d(grid, p, sigma) - linear)[inner].abs().max() < 1e-12
    assert (S.rcae_1d(grid, p, sigma) - linear)[inner].abs().max() < 1e-3  # O(Delta) discretisation


def test_dae_1d_query_points_and_dtype(reference_grid) -> None:
    grid, p, _, m = reference_grid
    q = torch.tensor([[-0.5, 0.0], [0.25, 0.9]], dtype=F64)
    np.testing.assert_allclose(
        S.dae_1d(grid, p, 0.05, query=q).numpy(),
        m.optimal_reconstruction(q[..., None], 0.05)[..., 0].numpy(),
        atol=1e-9,
    )
    assert S.rcae_1d(grid.float(), p.float(), 0.1).dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_inputs_stay_on_cuda(reference_grid) -> None:
    grid, p, _, m = reference_grid
    assert S.rcae_1d(grid.cuda(), p.cuda(), 0.1).is_cuda and S.dae_1d(grid.cuda(), p.cuda(), 0.1).is_cuda
    x = torch.zeros(8, 1, dtype=F64, device="cuda")
    assert S.energy_difference(m.score, x, x + 0.1).is_cuda
    chain, _ = S.metropolis_hastings(m.score, x, 5, 0.3, torch.Generator().manual_seed(0))
    chain_cpu, _ = S.metropolis_hastings(m.score, x.cpu(), 5, 0.3, torch.Generator().manual_seed(0))
    assert chain.is_cuda
    np.testing.assert_allclose(chain.cpu().numpy(), chain_cpu.numpy(), atol=1e-12)


# ---------------------------------------------------------------------- local mean
def test_local_mean_1d_spec_values() -> None:
    """Spec §1.11 (a): (d+2)(m_delta - x0)/delta^2 at x0 = 0.1 -> score 2.768."""
    m = reference_mixture_1d()
    x0 = torch.tensor([0.1], dtype=F64)
    score = m.score(x0[:, None]).item()
    assert score == pytest.approx(2.768, abs=1e-3)
    deltas = [0.2, 0.1, 0.05, 0.025]
    est = [3 * (S.local_mean_1d(m.log_prob, x0, d) - x0).item() / d**2 for d in deltas]
    np.testing.assert_allclose(est, [2.384, 2.668, 2.743, 2.762], atol=1e-3)
    errs = [abs(e - score) for e in est]
    assert errs[-1] / score < 0.01
    assert all(3 < a / b < 5 for a, b in itertools.pairwise(errs))


def test_local_mean_mc_exponential_tilt_d3() -> None:
    """For p ∝ exp(a.x) the exact local mean is a 1-D integral along a; MC agrees within 4 s.e."""
    a = torch.tensor([1.5, -0.5, 1.0], dtype=F64)
    x0, delta, d = torch.tensor([0.2, 0.1, -0.3], dtype=F64), 0.5, 3
    mean, se = S.local_mean_mc(lambda z: z @ a, x0, delta, 200_000, torch.Generator().manual_seed(5))
    norm = a.norm().item()
    u = np.linspace(-delta, delta, 20_001)
    dens = (1 - (u / delta) ** 2) ** ((d - 1) / 2) * np.exp(norm * u)  # marginal of the ball along a
    shift = np.trapezoid(u * dens, u) / np.trapezoid(dens, u)
    exact = x0 + shift * a / norm
    assert ((mean - exact).abs() < 4 * se).all()
    # Theorem 3: shift ≈ delta^2 / (d+2) * |score|
    assert shift == pytest.approx(delta**2 / (d + 2) * norm, rel=0.05)


# ---------------------------------------------------------------------- bad inputs
def test_bad_inputs() -> None:
    m = reference_mixture_1d()
    x = torch.zeros(4, 1, dtype=F64)
    with pytest.raises(ValueError, match="sigma"):
        S.dae_score(lambda z: z, x, 0.0)
    with pytest.raises(TypeError, match="r"):
        S.dae_score("net", x, 0.1)
    with pytest.raises(ValueError, match="r"):
        S.dae_score(lambda z: z[:, :0], x, 0.1)
    with pytest.raises(ValueError, match="x"):
        S.dae_score(lambda z: z, torch.full((2, 1), float("nan")), 0.1)
    with pytest.raises(ValueError, match="x"):
        S.reconstruction_jacobian(lambda z: z, torch.zeros(4))
    with pytest.raises(ValueError, match="sigma"):
        S.log_density_hessian(lambda z: z, x, -1.0)
    with pytest.raises(ValueError, match="rule"):
        S.energy_difference(m.score, x, x, rule="simpson")
    with pytest.raises(ValueError, match="n"):
        S.energy_difference(m.score, x, x, n=1, rule="trapezoid")
    with pytest.raises(ValueError, match="n"):
        S.energy_difference(m.score, x, x, n=0, rule="mean")
    with pytest.raises(ValueError, match="x_star"):
        S.energy_difference(m.score, x, x[:2])
    with pytest.raises(ValueError, match="x0"):
        S.metropolis_hastings(m.score, torch.zeros(4), 10, 0.1)
    with pytest.raises(ValueError, match="step_size"):
        S.metropolis_hastings(m.score, x, 10, 0.0)
    with pytest.raises(ValueError, match="n_steps"):
        S.metropolis_hastings(m.score, x, 0, 0.1)
    with pytest.raises(ValueError, match="n_path"):
        S.metropolis_hastings(m.score, x, 10, 0.1, n_path=1)
    with pytest.raises(TypeError, match="generator"):
        S.metropolis_hastings(m.score, x, 10, 0.1, generator=3)
    grid = torch.linspace(-1, 1, 50, dtype=F64)
    p = torch.ones(50, dtype=F64)
    with pytest.raises(ValueError, match="density"):
        S.rcae_1d(grid, p[:-1], 0.1)
    with pytest.raises(ValueError, match="density"):
        S.rcae_1d(grid, p - 2, 0.1)
    with pytest.raises(ValueError, match="density"):
        S.rcae_1d(grid, torch.cat([p[:-1], torch.zeros(1, dtype=F64)]), 0.1)
    with pytest.raises(ValueError, match="grid"):
        S.dae_1d(grid**3, p, 0.1)
    with pytest.raises(ValueError, match="sigma"):
        S.dae_1d(grid, p, float("inf"))
    with pytest.raises(ValueError, match="delta"):
        S.local_mean_1d(m.log_prob, torch.zeros(1, dtype=F64), 0.0)


@settings(max_examples=25, deadline=None)
@given(sigma=st.floats(-10.0, 0.0) | st.just(float("nan")) | st.just(float("-inf")))
def test_non_positive_sigma_rejected_everywhere_hypothesis(sigma: float) -> None:
    m = reference_mixture_1d()
    x = torch.zeros(3, 1, dtype=F64)
    grid = torch.linspace(-1, 1, 20, dtype=F64)
    calls = [
        lambda: S.dae_score(lambda z: z, x, sigma),
        lambda: S.log_density_hessian(lambda z: z, x, sigma),
        lambda: S.rcae_1d(grid, torch.ones(20, dtype=F64), sigma),
        lambda: S.dae_1d(grid, torch.ones(20, dtype=F64), sigma),
        lambda: m.smoothed(sigma),
        lambda: m.optimal_reconstruction(x, sigma),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="sigma"):
            call()


def test_dae_score_reads_the_sigma_the_model_was_trained_at() -> None:
    """dae_score(r, x) uses r.sigma; an explicit sigma overrides it; a plain callable needs one."""
    from dae_tutor.nets import AutoEncoder

    r = AutoEncoder(2, 4, dtype=torch.float64)
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with pytest.raises(ValueError, match="sigma"):
        S.dae_score(r, x)  # nothing recorded yet
    r.sigma = 0.1
    with torch.no_grad():
        assert torch.equal(S.dae_score(r, x), (r(x) - x) / 0.1**2)
        assert torch.allclose(S.dae_score(r, x, 0.2), S.dae_score(r, x) / 4, rtol=1e-12)
    assert torch.allclose(S.log_density_hessian(r, x), S.log_density_hessian(r, x, 0.1), rtol=0, atol=0)
    with pytest.raises(ValueError, match="sigma"):
        S.log_density_hessian(lambda z: z, x)


# -------------------------------------------------------------- sources and sinks (§3.3.4)
def test_segment_sources_and_divergence_of_a_linear_field() -> None:
    # r(x) = x + k (x - c): r(x) - x is radial from c, a source (k > 0) of divergence 2k in 2-D.
    c = torch.tensor([0.2, -0.1])
    start = c + torch.tensor([[-0.3, 0.0], [0.0, -0.6]])
    end = c + torch.tensor([[0.7, 0.0], [0.0, 0.2]])
    for k in (0.5, -0.5):
        r = lambda x, k=k: x + k * (x - c)  # noqa: E731
        position, n_sources = S.segment_sources(r, start, end, margin=0.05, n_points=51)
        div = S.field_divergence(r, torch.randn(4, 2, generator=torch.Generator().manual_seed(0)))
        torch.testing.assert_close(div, torch.full((4,), 2 * k, dtype=div.dtype))
        if k > 0:  # the zero of the field, found by the interpolation (exact for a linear field)
            torch.testing.assert_close(position, torch.tensor([0.3, 0.75]), rtol=0, atol=1e-12)
            assert n_sources.tolist() == [1, 1]
        else:  # a sink: a + -> - change, no source
            assert bool(position.isnan().all()) and n_sources.tolist() == [0, 0]
    with pytest.raises(ValueError, match="margin"):
        S.segment_sources(lambda x: x, start, end, margin=0.5)
    with pytest.raises(ValueError, match="end"):
        S.segment_sources(lambda x: x, start, end[:1], margin=0.01)


def test_source_between_two_gaussians_is_the_midpoint_with_closed_form_divergence() -> None:
    # Optimal DAE of two equal Gaussians: by symmetry the source is the midpoint, where the divergence
    # is sigma^2 tr Hess log p_sigma (Tweedie, thesis eq. 3.9), a closed form of the smoothed mixture.
    sigma, eye = 0.1, torch.eye(2, dtype=torch.float64)
    p = GaussianMixture(
        torch.tensor([0.5, 0.5]),
        torch.tensor([[0.0, 0.0], [0.0, 1.0]]),
        torch.stack([0.01 * eye, 0.01 * eye]),
    )
    r = lambda x: p.optimal_reconstruction(x, sigma)  # noqa: E731
    position, n_sources = S.segment_sources(
        r, torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, 1.0]]), margin=0.3, n_points=400
    )
    assert n_sources.item() == 1 and abs(position.item() - 0.5) < 1e-9
    mid = torch.tensor([[0.0, 0.5]])
    expected = sigma**2 * p.smoothed(sigma).hessian_log_prob(mid)[0].trace()
    torch.testing.assert_close(S.field_divergence(r, mid)[0], expected, rtol=1e-10, atol=1e-12)
    assert expected > 0


def test_sources_between_spiral_arms_claim_and_control() -> None:
    # Ch. 1 §1.5: a DAE fitted to the spiral at sigma = 0.01 has a source on nearly every segment between
    # two arms (forced by continuity once both arms are sinks); an untrained network has none.
    spiral = Spiral()
    data = spiral.sample(3000, generator=torch.Generator().manual_seed(1))
    trained = train.fit_dae(
        data,
        0.01,
        hidden=200,
        steps=300,
        seed=0,
        optimizer="lbfgs",
        fixed_noise=True,
        n_noise=3000,
        length_scale=0.1,
        progress=False,
    )
    _, inner, outer = spiral.arm_segments(60)

    def share(r) -> float:
        return (S.segment_sources(r, inner, outer, margin=0.03)[1] > 0).double().mean().item()

    assert share(trained) >= 0.9, share(trained)  # 1.0 measured
    assert share(nets.AutoEncoder(2, 200, length_scale=0.1, seed=0).double()) <= 0.2  # 0 measured


def test_empirical_dae_is_the_optimal_dae_of_a_sharp_mixture() -> None:
    # Independent route: GaussianMixture.optimal_reconstruction of components N(x_i, tau^2 I) tends to the
    # empirical DAE as tau -> 0 (posterior mean E[x | x~] with the clean law concentrated on the data).
    g = torch.Generator().manual_seed(0)
    data = torch.randn(50, 2, generator=g, dtype=F64)
    x = 2 * torch.randn(20, 2, generator=g, dtype=F64)
    eye = torch.eye(2, dtype=F64).expand(50, 2, 2)
    sharp = GaussianMixture(torch.full((50,), 1 / 50, dtype=F64), data, eye * 1e-6**2)
    r = S.empirical_dae(data, 0.3)
    torch.testing.assert_close(r(x), sharp.optimal_reconstruction(x, 0.3), rtol=0, atol=1e-9)
    assert r.sigma == 0.3
    with pytest.raises(ValueError, match="sigma"):
        S.empirical_dae(data, 0.0)


def test_fixed_points_1d_of_a_sine_field() -> None:
    """r(x) - x = -0.1 sin(pi x): a sink at 0 (slope of the field < 0), sources at -1 and 1."""
    grid = torch.linspace(-1.55, 1.45, 301, dtype=F64)  # no zero on a grid point
    positions, is_source = S.fixed_points_1d(lambda v: v - 0.1 * torch.sin(math.pi * v), grid)
    torch.testing.assert_close(positions, torch.tensor([-1.0, 0.0, 1.0], dtype=F64), rtol=0, atol=1e-4)
    assert is_source.tolist() == [True, False, True]
    with pytest.raises(ValueError, match="grid"):
        S.fixed_points_1d(lambda v: v, grid.flip(0))


def test_fig_3_2_optimal_dae_of_three_points_by_minimiser_and_finite_differences() -> None:
    """The optimal DAE of three points (thesis Fig. 3.2): r*(x~) minimises the posterior expected loss
    sum_i phi_sigma(x~ - x_i) (r - x_i)^2 (Brent's method, an independent minimiser), and its score
    (r* - x)/sigma^2 is the derivative of the log Parzen density (central differences). Small sigma gives
    a sink near each point and a source in each gap; large sigma leaves one sink, between the points."""
    from scipy import optimize

    points = torch.tensor([[-1.0], [0.2], [1.0]], dtype=F64)
    x = torch.linspace(-1.6, 1.6, 33, dtype=F64)[:, None]
    for sigma in (0.15, 0.5):
        r = S.empirical_dae(points, sigma)
        w = np.exp(-((x.numpy() - points.numpy().T) ** 2) / (2 * sigma**2))  # (33, 3)
        brent = [
            optimize.minimize_scalar(lambda v, wi=wi: float((wi * (v - points.numpy()[:, 0]) ** 2).sum())).x
            for wi in w
        ]
        np.testing.assert_allclose(r(x)[:, 0].numpy(), brent, atol=1e-7)

        def log_parzen(v: torch.Tensor, sigma: float = sigma) -> torch.Tensor:
            return torch.logsumexp(-((v - points.T) ** 2) / (2 * sigma**2), dim=1)

        h = 1e-5
        fd = (log_parzen(x + h) - log_parzen(x - h)) / (2 * h)
        torch.testing.assert_close(S.dae_score(r, x)[:, 0], fd, rtol=0, atol=1e-5)
    grid = torch.linspace(-1.6, 1.6, 641, dtype=F64)
    positions, is_source = S.fixed_points_1d(S.empirical_dae(points, 0.15), grid)
    assert is_source.tolist() == [False, True, False, True, False]
    torch.testing.assert_close(positions[~is_source], points[:, 0], rtol=0, atol=0.01)
    positions, is_source = S.fixed_points_1d(S.empirical_dae(points, 1.0), grid)
    assert is_source.tolist() == [False] and -1 < positions.item() < 1  # 0.20 measured


def test_denoising_chain_is_the_geometric_contraction_by_hand() -> None:
    """r(x) = a x + (1 - a) m gives x_K = m + a^K (x_0 - m); the identity (r(x) = x, a = 1) stays put."""
    m = torch.tensor([1.0, -2.0], dtype=torch.float64)
    x0 = torch.tensor([[3.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    ends = S.denoising_chain(lambda x: 0.5 * x + 0.5 * m, x0, 10)
    torch.testing.assert_close(ends, m + 0.5**10 * (x0 - m), rtol=0, atol=1e-15)
    assert torch.equal(S.denoising_chain(lambda x: x, x0, 3), x0)  # control: no attraction
    with pytest.raises(ValueError, match="n_steps"):
        S.denoising_chain(lambda x: x, x0, 0)
    with pytest.raises(ValueError, match="r must map"):
        S.denoising_chain(lambda x: x[:, :1], x0, 2)
