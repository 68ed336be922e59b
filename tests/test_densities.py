"""Tests of dae_tutor.densities against independent truths (scipy, quadrature, autograd, closed forms)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.special import logsumexp

from dae_tutor.densities import Curve10d, GaussianMixture, Spiral, reference_mixture_1d

F64 = torch.float64


def random_mixture(k: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.2, 1.0, k)
    w /= w.sum()
    mu = rng.normal(0.0, 1.0, (k, d))
    a = rng.normal(0.0, 0.5, (k, d, d))
    cov = a @ np.swapaxes(a, 1, 2) + 0.2 * np.eye(d)
    return w, mu, cov


@pytest.fixture(scope="module")
def mix3d() -> tuple[GaussianMixture, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    params = random_mixture(3, 3, seed=0)
    return GaussianMixture(*params), params


def test_basic_properties_and_storage() -> None:
    m = reference_mixture_1d()
    assert (m.dim, m.n_components, m.dtype) == (1, 2, F64)
    assert torch.allclose(m.weights, torch.tensor([0.4, 0.6], dtype=F64))
    assert torch.allclose(m.covs.flatten(), torch.tensor([0.0625, 0.1225], dtype=F64))
    # (K,) variances mean isotropic covariances
    iso = GaussianMixture([0.5, 0.5], [[0.0, 0.0], [1.0, 1.0]], [0.25, 1.0])
    assert torch.equal(iso.covs[1], torch.eye(2, dtype=F64))
    assert m.to(dtype=torch.float32).dtype == torch.float32


def test_log_prob_matches_scipy(mix3d) -> None:
    m, (w, mu, cov) = mix3d
    x = np.random.default_rng(1).normal(0, 1.5, (200, 3))
    comp = [np.log(w[k]) + stats.multivariate_normal(mu[k], cov[k]).logpdf(x) for k in range(3)]
    expected = logsumexp(np.stack(comp), axis=0)
    got = m.log_prob(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-11)
    # batch shape (..., d) -> (...)
    assert m.log_prob(torch.from_numpy(x).reshape(20, 10, 3)).shape == (20, 10)


def test_score_matches_autograd_and_finite_differences(mix3d) -> None:
    m, _ = mix3d
    x = torch.randn(50, 3, dtype=F64, generator=torch.Generator().manual_seed(2)) * 1.5
    xr = x.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(m.log_prob(xr).sum(), xr)
    np.testing.assert_allclose(m.score(x).numpy(), auto.numpy(), atol=1e-10)
    h = 1e-5
    fd = torch.stack(
        [(m.log_prob(x + h * e) - m.log_prob(x - h * e)) / (2 * h) for e in torch.eye(3, dtype=F64)], dim=-1
    )
    np.testing.assert_allclose(m.score(x).numpy(), fd.numpy(), atol=1e-7)


def test_score_is_stable_far_from_the_modes() -> None:
    m = reference_mixture_1d()
    x = torch.tensor([[-60.0], [80.0]], dtype=F64)
    s = m.score(x)
    assert torch.isfinite(s).all() and torch.isfinite(m.log_prob(x)).all()
    # far away the widest component dominates: score -> (mu - x)/s^2 of N(0.5, 0.35^2)
    np.testing.assert_allclose(s[:, 0].numpy(), ((0.5 - x) / 0.35**2)[:, 0].numpy(), rtol=1e-10)


def test_hessian_log_prob_matches_autograd(mix3d) -> None:
    m, _ = mix3d
    x = torch.randn(5, 3, dtype=F64, generator=torch.Generator().manual_seed(3))
    for xi in x:
        auto = torch.autograd.functional.hessian(lambda z: m.log_prob(z), xi)
        np.testing.assert_allclose(m.hessian_log_prob(xi).numpy(), auto.numpy(), atol=1e-9)


def _quadrature_r_star(x: np.ndarray, sigma: float) -> np.ndarray:
    """Thesis eq. 3.3 in 1-D by trapezoid quadrature on [-6, 6] (20 001 points), scipy densities."""
    y = np.linspace(-6.0, 6.0, 20_001)
    p = 0.4 * stats.norm.pdf(y, -0.6, 0.25) + 0.6 * stats.norm.pdf(y, 0.5, 0.35)
    kern = stats.norm.pdf(x[:, None] - y[None, :], 0.0, sigma) * p
    return np.trapezoid(kern * y, y, axis=1) / np.trapezoid(kern, y, axis=1)


@pytest.mark.parametrize("sigma", [0.05, 0.2, 0.7])
def test_optimal_reconstruction_matches_quadrature_of_eq_3_3(sigma: float) -> None:
    m = reference_mixture_1d()
    x = np.linspace(-1.5, 1.5, 61)
    got = m.optimal_reconstruction(torch.from_numpy(x)[:, None], sigma)[:, 0].numpy()
    np.testing.assert_allclose(got, _quadrature_r_star(x, sigma), rtol=0, atol=1e-8)


@pytest.mark.parametrize("sigma", [0.01, 0.3, 2.0])
def test_optimal_reconstruction_is_tweedie(mix3d, sigma: float) -> None:
    m, _ = mix3d
    x = torch.randn(100, 3, dtype=F64, generator=torch.Generator().manual_seed(4)) * 2
    tweedie = x + sigma**2 * m.smoothed(sigma).score(x)
    got = m.optimal_reconstruction(x, sigma)
    np.testing.assert_allclose(got.numpy(), tweedie.numpy(), rtol=0, atol=1e-10)


def test_gaussian_closed_form_d3() -> None:
    _, (mu,), (cov,) = random_mixture(1, 3, seed=5)
    g = GaussianMixture([1.0], mu[None], cov[None])
    sigma = 0.4
    x = np.random.default_rng(6).normal(0, 1, (20, 3))
    a = cov @ np.linalg.inv(cov + sigma**2 * np.eye(3))
    expected = mu + (x - mu) @ a.T
    got = g.optimal_reconstruction(torch.from_numpy(x), sigma).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-12)
    w, means, pcov = g.posterior(torch.from_numpy(x), sigma)
    np.testing.assert_allclose(w.numpy(), 1.0)
    np.testing.assert_allclose(means[:, 0].numpy(), expected, atol=1e-12)
    np.testing.assert_allclose(pcov[0].numpy(), cov - a @ cov, atol=1e-12)
    # smoothed is N(mu, cov + sigma^2 I)
    xs = torch.from_numpy(x)
    ref = stats.multivariate_normal(mu, cov + sigma**2 * np.eye(3)).logpdf(x)
    np.testing.assert_allclose(g.smoothed(sigma).log_prob(xs).numpy(), ref, atol=1e-11)


def test_posterior_is_bayes_rule_in_1d() -> None:
    """The returned mixture density equals p(y) N(x~; y, sigma^2) / p_sigma(x~) pointwise."""
    m, sigma = reference_mixture_1d(), 0.3
    x_tilde = torch.tensor([[-0.9], [0.0], [0.7]], dtype=F64)
    w, means, cov = m.posterior(x_tilde, sigma)
    y = np.linspace(-2, 2, 101)
    p = 0.4 * stats.norm.pdf(y, -0.6, 0.25) + 0.6 * stats.norm.pdf(y, 0.5, 0.35)
    for i, xt in enumerate(x_tilde[:, 0].numpy()):
        bayes = p * stats.norm.pdf(xt, y, sigma)
        bayes /= np.exp(m.smoothed(sigma).log_prob(torch.tensor([[xt]], dtype=F64)).item())
        ours = sum(
            w[i, k].item() * stats.norm.pdf(y, means[i, k, 0].item(), math.sqrt(cov[k, 0, 0].item()))
            for k in range(2)
        )
        np.testing.assert_allclose(ours, bayes, rtol=1e-10, atol=1e-14)


def test_sample_posterior_moments() -> None:
    m, sigma = reference_mixture_1d(), 0.3
    n = 40_000
    x_tilde = torch.full((n, 1), 0.2, dtype=F64)
    draws = m.sample_posterior(x_tilde, sigma, torch.Generator().manual_seed(7))[:, 0]
    w, means, cov = m.posterior(x_tilde[:1], sigma)
    mean = (w[0] * means[0, :, 0]).sum()
    var = (w[0] * (cov[:, 0, 0] + means[0, :, 0] ** 2)).sum() - mean**2
    assert abs(draws.mean() - mean) < 5 * math.sqrt(var / n)
    assert abs(draws.var() / var - 1) < 5 * math.sqrt(2 / n) * 2


def test_sample_moments_within_clt_bounds() -> None:
    w, mu, cov = random_mixture(3, 2, seed=8)
    m = GaussianMixture(w, mu, cov)
    n = 100_000
    x = m.sample(n, generator=torch.Generator().manual_seed(9)).numpy()
    assert x.shape == (n, 2)
    mean = w @ mu
    second = np.einsum("k,kij->ij", w, cov + np.einsum("ki,kj->kij", mu, mu))
    true_cov = second - np.outer(mean, mean)
    se_mean = np.sqrt(np.diag(true_cov) / n)
    assert np.all(np.abs(x.mean(0) - mean) < 5 * se_mean)
    centred = x - mean
    prods = np.einsum("ni,nj->nij", centred, centred)
    se_cov = prods.std(0) / math.sqrt(n)
    assert np.all(np.abs(prods.mean(0) - true_cov) < 5 * se_cov)


def test_sampling_is_seeded() -> None:
    m = reference_mixture_1d()
    a = m.sample(100, torch.Generator().manual_seed(3))
    b = m.sample(100, torch.Generator().manual_seed(3))
    c = m.sample(100, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_methods_follow_input_dtype(mix3d) -> None:
    m, _ = mix3d
    x64 = torch.randn(10, 3, dtype=F64, generator=torch.Generator().manual_seed(10))
    x32 = x64.float()
    for fn in (m.log_prob, m.score, lambda z: m.optimal_reconstruction(z, 0.3), m.hessian_log_prob):
        out32, out64 = fn(x32), fn(x64)
        assert out32.dtype == torch.float32 and out32.device == x32.device
        np.testing.assert_allclose(out32.numpy(), out64.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_inputs_stay_on_cuda(mix3d) -> None:
    m, _ = mix3d
    x = torch.randn(10, 3, dtype=F64)
    out = m.score(x.cuda())
    assert out.is_cuda
    np.testing.assert_allclose(out.cpu().numpy(), m.score(x).numpy(), atol=1e-10)
    assert m.to("cuda").sample(5, torch.Generator("cuda").manual_seed(0)).is_cuda


def test_tweedie_score_error_slope_is_two() -> None:
    """Spec §1.2 check 2: max |(r*_s - x)/s^2 - score| over [-1,1] is O(s^2)."""
    m = reference_mixture_1d()
    x = torch.linspace(-1, 1, 2001, dtype=F64)[:, None]
    true = m.score(x)

    def err(sigma: float) -> float:
        return ((m.optimal_reconstruction(x, sigma) - x) / sigma**2 - true).abs().max().item()

    sigmas = np.geomspace(0.005, 0.05, 6)
    slope = np.polyfit(np.log(sigmas), np.log([err(s) for s in sigmas]), 1)[0]
    assert 1.7 <= slope <= 2.3
    # the spec's measured values (quadrature DAE): 0.347, 0.090, 0.010 at sigma = 0.06, 0.03, 0.01
    np.testing.assert_allclose([err(0.06), err(0.03), err(0.01)], [0.347, 0.090, 0.010], rtol=0.03)


def test_reference_mixture_spec_numbers() -> None:
    """Spec §1.2: max |score| on [-1, 1] is 6.38 and min p on [-1.5, 1.5] is 9.8e-4.

    The 6.38 is the max over the points of the M = 1000 grid on [-1.5, 1.5] lying in [-1, 1]
    (the first is -0.9985); the continuous max, at x = -1, is 6.40.
    """
    m = reference_mixture_1d()
    grid = torch.linspace(-1.5, 1.5, 1000, dtype=F64)
    x = grid[grid.abs() <= 1][:, None]
    assert m.score(x).abs().max().item() == pytest.approx(6.38, abs=0.005)
    assert m.score(torch.tensor([[-1.0]], dtype=F64)).item() == pytest.approx(6.40, abs=0.005)
    xx = torch.linspace(-1.5, 1.5, 4001, dtype=F64)[:, None]
    assert m.log_prob(xx).exp().min().item() == pytest.approx(9.8e-4, rel=0.01)


# ----------------------------------------------------------------------- spiral
def test_spiral_tangent_matches_finite_differences() -> None:
    sp = Spiral()
    t = torch.linspace(3, 12, 37, dtype=F64)
    h = 1e-6
    fd = (sp.point(t + h) - sp.point(t - h)) / (2 * h)
    fd = fd / fd.norm(dim=-1, keepdim=True)
    np.testing.assert_allclose(sp.tangent(t).numpy(), fd.numpy(), atol=1e-8)
    assert torch.allclose((sp.tangent(t) * sp.normal(t)).sum(-1), torch.zeros_like(t), atol=1e-14)


def test_spiral_is_a_spiral_not_a_circle() -> None:
    sp = Spiral(radial_noise=0.0)
    x, t = sp.sample_with_t(5000, torch.Generator().manual_seed(0))
    radius = x.norm(dim=-1)
    np.testing.assert_allclose(radius.numpy(), 0.04 * t.numpy(), atol=1e-14)
    assert 0.12 <= radius.min() < 0.125 and 0.475 < radius.max() <= 0.48
    assert t.min() >= 3 and t.max() <= 12
    # angle: x = r sin t, y = r cos t
    np.testing.assert_allclose(x[:, 0].numpy(), (radius * torch.sin(t)).numpy(), atol=1e-14)
    assert Spiral(t_range=(3.0, 15.0), radial_noise=0.0).sample(2000).norm(dim=-1).max() > 0.59


def test_spiral_radial_noise() -> None:
    sp = Spiral()
    n = 20_000
    x, t = sp.sample_with_t(n, torch.Generator().manual_seed(1))
    xi = (x.norm(dim=-1) - 0.04 * t).numpy()
    assert abs(xi.mean()) < 5 * 0.01 / math.sqrt(n)
    assert abs(xi.std() / 0.01 - 1) < 0.03
    # the noise is radial: the point stays on the ray of its clean point
    clean = sp.point(t)
    cross = x[:, 0] * clean[:, 1] - x[:, 1] * clean[:, 0]
    assert cross.abs().max() < 1e-14


def test_curve10d() -> None:
    c = Curve10d()
    t0 = c.point(torch.tensor(0.0, dtype=F64))
    np.testing.assert_allclose(t0.numpy(), np.sin(0.7 * np.arange(10)), atol=1e-15)
    tq = torch.tensor([0.37], dtype=F64)
    np.testing.assert_allclose(
        c.point(tq)[0].numpy(), np.sin(2 * np.pi * (1 + np.arange(10) % 3) * 0.37 + 0.7 * np.arange(10))
    )
    closure = c.point(torch.tensor(1.0, dtype=F64)) - t0  # the curve is closed
    assert closure.abs().max() < 1e-12
    t = torch.linspace(0.01, 0.99, 25, dtype=F64)
    fd = (c.point(t + 1e-6) - c.point(t - 1e-6)) / 2e-6
    np.testing.assert_allclose(c.tangent(t).numpy(), (fd / fd.norm(dim=-1, keepdim=True)).numpy(), atol=1e-8)
    x, ts = c.sample_with_t(5000, torch.Generator().manual_seed(2))
    assert x.shape == (5000, 10) and 0 <= ts.min() and ts.max() <= 1
    resid = (x - c.point(ts)).numpy()
    assert abs(resid.std() / 0.05 - 1) < 0.02 and abs(resid.mean()) < 0.002
    a, b = (c.sample(3, torch.Generator().manual_seed(5)) for _ in range(2))
    assert torch.equal(a, b)


# -------------------------------------------------------------------- bad inputs
GOOD = dict(weights=[0.5, 0.5], means=[[0.0], [1.0]], covs=[[[1.0]], [[0.5]]])


@pytest.mark.parametrize(
    ("change", "exc", "word"),
    [
        (dict(weights=[0.5, 0.6]), ValueError, "weights"),
        (dict(weights=[1.5, -0.5]), ValueError, "weights"),
        (dict(weights=[[0.5, 0.5]]), ValueError, "weights"),
        (dict(weights=[0.5, float("nan")]), ValueError, "weights"),
        (dict(means=[[0.0], [float("inf")]]), ValueError, "means"),
        (dict(means=[0.0, 1.0]), ValueError, "means"),
        (dict(means=[[0.0], [1.0], [2.0]]), ValueError, "means"),
        (dict(covs=[[[1.0]], [[-0.5]]]), ValueError, "covs"),
        (dict(covs=[[[1.0]]]), ValueError, "covs"),
        (dict(covs=[1.0, 0.0]), ValueError, "covs"),
        (dict(weights="abc"), TypeError, "weights"),
    ],
)
def test_bad_constructor_arguments(change: dict, exc: type, word: str) -> None:
    with pytest.raises(exc, match=word):
        GaussianMixture(**{**GOOD, **change})


def test_bad_covariances_2d() -> None:
    with pytest.raises(ValueError, match="positive definite"):
        GaussianMixture([1.0], [[0.0, 0.0]], [[[1.0, 2.0], [2.0, 1.0]]])
    with pytest.raises(ValueError, match="symmetric"):
        GaussianMixture([1.0], [[0.0, 0.0]], [[[1.0, 0.5], [0.0, 1.0]]])


def test_bad_method_arguments() -> None:
    m = reference_mixture_1d()
    with pytest.raises(ValueError, match="sigma"):
        m.smoothed(0.0)
    with pytest.raises(ValueError, match="sigma"):
        m.optimal_reconstruction(torch.zeros(3, 1, dtype=F64), -1.0)
    with pytest.raises(TypeError, match="sigma"):
        m.posterior(torch.zeros(3, 1, dtype=F64), "0.1")
    with pytest.raises(ValueError, match="x"):
        m.log_prob(torch.zeros(3, 2, dtype=F64))
    with pytest.raises(ValueError, match="x"):
        m.score(torch.tensor([[float("nan")]], dtype=F64))
    with pytest.raises(TypeError, match="x"):
        m.score([[0.0]])
    with pytest.raises(TypeError, match="x"):
        m.log_prob(torch.zeros(3, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="n"):
        m.sample(0)
    with pytest.raises(TypeError, match="generator"):
        m.sample(3, generator=0)
    with pytest.raises(ValueError, match="t_range"):
        Spiral(t_range=(12.0, 3.0))
    with pytest.raises(ValueError, match="radial_noise"):
        Spiral(radial_noise=-0.1)
    with pytest.raises(ValueError, match="noise"):
        Curve10d(noise=float("nan"))


@settings(max_examples=40, deadline=None)
@given(
    raw=st.lists(st.floats(0.0, 10.0, allow_nan=False), min_size=1, max_size=6),
    offset=st.floats(1e-5, 1.0) | st.floats(-1.0, -1e-5),
)
def test_weights_must_sum_to_one_hypothesis(raw: list[float], offset: float) -> None:
    """Any non-negative weights normalised then shifted by > 1e-5 in total are rejected; unshifted pass."""
    w = np.asarray(raw) + 0.1
    w = w / w.sum()
    k = len(w)
    means, covs = np.zeros((k, 1)), np.ones((k, 1, 1))
    GaussianMixture(w, means, covs)  # valid
    bad = w.copy()
    bad[0] += offset
    exc = ValueError
    with pytest.raises(exc, match="weights"):
        GaussianMixture(bad, means, covs)


@settings(max_examples=30, deadline=None)
@given(
    eigs=st.lists(st.floats(0.05, 5.0), min_size=3, max_size=3),
    neg=st.floats(-5.0, -1e-3),
    seed=st.integers(0, 2**31 - 1),
)
def test_non_positive_definite_cov_rejected_hypothesis(eigs: list[float], neg: float, seed: int) -> None:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    good = q @ np.diag(eigs) @ q.T
    GaussianMixture([1.0], np.zeros((1, 3)), (good + good.T)[None] / 2)
    bad = q @ np.diag([*eigs[:2], neg]) @ q.T
    with pytest.raises(ValueError, match="covs"):
        GaussianMixture([1.0], np.zeros((1, 3)), ((bad + bad.T) / 2)[None])
