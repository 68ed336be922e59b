"""Stochastic Lanczos quadrature against matrices with a known spectrum (float64)."""

import math

import pytest
import scipy.stats
import torch

from dae_tutor import runtime
from dae_tutor import spectral_density as sd


def rotated(eigenvalues: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Q diag(λ) Qᵀ for a random orthogonal Q: a dense matrix with exactly the given spectrum."""
    d = eigenvalues.numel()
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=runtime.generator(seed), dtype=torch.float64))
    return Q @ torch.diag(eigenvalues) @ Q.T


D = 600
UNIFORM = torch.linspace(0.0, 1.0, D, dtype=torch.float64)  # quadrature error dominates W₁ here
G = runtime.generator(7)
HESSIAN_LIKE = torch.cat(  # bulk at 0, small negatives, a few large outliers (the shape of ch. 6's spectra)
    [
        torch.zeros(200, dtype=torch.float64),
        0.01 * torch.randn(330, generator=G, dtype=torch.float64),
        -0.2 * torch.rand(55, generator=G, dtype=torch.float64),
        1 + 9 * torch.rand(15, generator=G, dtype=torch.float64),
    ]
)


def slq(A: torch.Tensor, steps: int, probes: int, seed: int = 1) -> sd.SpectralDensity:
    return sd.stochastic_lanczos_quadrature(
        lambda v: A @ v, A.shape[0], steps=steps, probes=probes, generator=runtime.generator(seed)
    )


@pytest.mark.parametrize("m", [3, 6])
def test_gauss_quadrature_is_exact_to_degree_2m_minus_1(m):
    A = rotated(UNIFORM)
    starts = torch.randn(3, D, generator=runtime.generator(2), dtype=torch.float64)
    out = sd.stochastic_lanczos_quadrature(lambda v: A @ v, D, steps=m, probes=3, starts=starts)
    u = starts / starts.norm(dim=1, keepdim=True)
    power = u.clone()
    for k in range(1, 2 * m + 1):
        power = power @ A  # rows uᵀA^k
        exact = (power * u).sum(dim=1)
        error = ((out.moments(k) - exact).abs() / exact.abs()).max().item()
        if k <= 2 * m - 1:
            assert error < 1e-12, (k, error)  # rounding: a few 1e-16 per product with ‖A‖ = 1
        else:  # the control: degree 2m is beyond Gauss's exactness (> 1e5 times the rounding)
            assert error > 1e-7, (k, error)
    assert torch.allclose(out.weights.sum(dim=1), torch.ones(3, dtype=torch.float64))
    assert out.n_matvec == 3 * m


def test_wasserstein_matches_scipy():
    out = slq(rotated(HESSIAN_LIKE), 20, 4)
    ours = sd.wasserstein_distance(out, HESSIAN_LIKE)
    ref = scipy.stats.wasserstein_distance(
        out.nodes.reshape(-1).numpy(), HESSIAN_LIKE.numpy(), u_weights=out.weights.reshape(-1).numpy()
    )
    assert ours == pytest.approx(ref, rel=1e-10, abs=1e-14)


@pytest.mark.parametrize("spectrum", [UNIFORM, HESSIAN_LIKE], ids=["uniform", "hessian_like"])
def test_w1_within_the_bound_and_controls_fail_it(spectrum):
    A = rotated(spectrum)
    width = (spectrum.max() - spectrum.min()).item()
    steps, probes = 60, 16
    quadrature, sampling = sd.error_bound(steps, probes, D, width)
    # E W₁ ≤ quadrature + sampling; the sampling part is an expectation, so allow 3 of it (Markov: a seed
    # fails with probability ≤ 1/3; its concentration is far tighter, the fixed seed is far inside).
    bound = quadrature + 3 * sampling
    assert sd.wasserstein_distance(slq(A, steps, probes), spectrum) < bound
    # Control: the spectrum of a different matrix (shifted by 10 % of the width) is outside the bound.
    assert sd.wasserstein_distance(slq(A + 0.1 * width * torch.eye(D), steps, probes), spectrum) > bound
    if spectrum is UNIFORM:  # Control: with 2 Lanczos steps the quadrature error exceeds the 60-step bound.
        assert sd.wasserstein_distance(slq(A, 2, probes), spectrum) > bound


def test_quadrature_bound_holds_for_every_probe_and_step_count():
    A = rotated(UNIFORM)
    values, vectors = torch.linalg.eigh(A)
    for m in (1, 2, 4, 8, 16):
        out = slq(A, m, 3, seed=m)
        for p in range(3):
            one = sd.SpectralDensity(out.nodes[p : p + 1], out.weights[p : p + 1], m)
            # against μ_u itself: weights (uᵀx_i)², from the same start vector
            u = torch.randn(3, D, generator=runtime.generator(m), dtype=torch.float64)[p]
            u = u / u.norm()
            mass = ((vectors.T @ u) ** 2).numpy()
            w1 = scipy.stats.wasserstein_distance(
                one.nodes.reshape(-1).numpy(),
                values.numpy(),
                u_weights=one.weights.reshape(-1).numpy(),
                v_weights=mass,
            )
            assert w1 <= sd.error_bound(m, 1, D, 1.0)[0], (m, p, w1)


def test_moment_zscores_small_for_the_right_matrix_large_for_a_wrong_one():
    A = rotated(HESSIAN_LIKE)
    right = sd.moment_zscores(slq(A, 10, 16), HESSIAN_LIKE, [1, 2, 3])
    assert max(abs(z) for z in right) < 4, right  # N(0, 1)-like: |z| < 4 fails with probability < 1e-4
    shifted = HESSIAN_LIKE + 0.1 * (HESSIAN_LIKE.max() - HESSIAN_LIKE.min())  # a wrong spectrum
    wrong = sd.moment_zscores(slq(A, 10, 16), shifted, [1, 2, 3])
    assert max(abs(z) for z in wrong) > 4, wrong  # the control fails the check above
    one_step = sd.moment_zscores(slq(A, 1, 16), HESSIAN_LIKE, [2])  # degree 2 > 2m - 1 = 1: biased
    assert abs(one_step[0]) > 4, one_step


def test_breakdown_on_few_distinct_eigenvalues_is_exact():
    spectrum = torch.tensor([-1.0, 0.0, 2.0], dtype=torch.float64).repeat_interleave(20)
    out = slq(rotated(spectrum), 10, 2)
    assert out.n_matvec == 2 * 3  # an invariant subspace after 3 steps: the 3 nodes are the eigenvalues
    assert sd.wasserstein_distance(out, spectrum) < 0.35  # only the probes' sampling error is left
    nodes = out.nodes[:, :3]
    assert torch.allclose(nodes, torch.tensor([-1.0, 0.0, 2.0], dtype=torch.float64).expand(2, 3), atol=1e-10)


def test_smoothed_density_integrates_to_one_and_cdf_is_monotone():
    out = slq(rotated(HESSIAN_LIKE), 20, 4)
    grid = torch.linspace(-3, 13, 4001, dtype=torch.float64)
    density = out.smoothed(grid, 0.05)
    assert torch.trapezoid(density, grid).item() == pytest.approx(1.0, abs=1e-6)
    cdf = out.cdf(grid)
    assert (cdf.diff() >= 0).all() and cdf[0] == 0 and cdf[-1] == pytest.approx(1.0)


def test_bad_arguments_are_named():
    A = torch.eye(4, dtype=torch.float64)
    with pytest.raises(ValueError, match="steps"):
        sd.stochastic_lanczos_quadrature(lambda v: A @ v, 4, steps=5, probes=1)
    with pytest.raises(ValueError, match="starts"):
        sd.stochastic_lanczos_quadrature(lambda v: A @ v, 4, steps=2, probes=2, starts=torch.ones(1, 4))
    with pytest.raises(TypeError, match="matvec"):
        sd.stochastic_lanczos_quadrature(None, 4, steps=2, probes=1)
    with pytest.raises(ValueError, match="matvec"):
        sd.stochastic_lanczos_quadrature(lambda v: v * math.nan, 4, steps=2, probes=1)
