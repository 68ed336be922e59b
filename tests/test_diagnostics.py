"""Tests of dae_tutor.diagnostics against SciPy, brute force and closed forms, with controls.

Statistical tolerances are k standard errors with k = 4 (two-sided normal tail 6e-5), the standard
error being derived (the occupancy variance, Sokal's variance of τ̂) or measured on R independent
replicates of an unbiased estimator (then the mean of R has standard error sd/√R, and
P(|t_19| > 4) = 8e-4). Every generator is seeded, so each test is deterministic.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from scipy import signal, stats

from dae_tutor import diagnostics as D
from dae_tutor import evaluate

F64 = torch.float64
K_SE = 4.0


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def normal(shape: tuple[int, ...], seed: int, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    return mean + std * torch.randn(*shape, generator=gen(seed), dtype=F64)


# ---------------------------------------------------------------------------------- energy distance
def brute_energy(x: np.ndarray, y: np.ndarray, unbiased: bool) -> float:
    """2 E‖X − Y‖ − E‖X − X′‖ − E‖Y − Y′‖ by direct differences, V- or U-statistic."""

    def mean_dist(a: np.ndarray, b: np.ndarray, same: bool) -> float:
        total = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1).sum()
        return total / (len(a) * (len(a) - 1) if same and unbiased else len(a) * len(b))

    return 2 * mean_dist(x, y, False) - mean_dist(x, x, True) - mean_dist(y, y, True)


@pytest.mark.parametrize(("n", "m"), [(300, 200), (50, 51), (1, 7)])
def test_energy_distance_squared_is_scipy_in_1d(n: int, m: int) -> None:
    # SciPy returns √2 ‖F_n − G_m‖_L², the square root of the V-statistic: 2∫(F − G)² equals
    # 2E|X − Y| − E|X − X′| − E|Y − Y′| for the empirical laws (Székely & Rizzo 2013, §2).
    # rtol 1e-10: float64 sums of ~1e5 distances, each exact to ~1e-16 relative.
    rng = np.random.default_rng(n)
    u, v = rng.normal(0, 1, n), rng.normal(0.3, 1.5, m)
    got = D.energy_distance(torch.from_numpy(u)[:, None], torch.from_numpy(v)[:, None])
    assert got == pytest.approx(stats.energy_distance(u, v) ** 2, rel=1e-10)


@pytest.mark.parametrize("d", [3, D.DIRECT_MAX_DIM + 4])
@pytest.mark.parametrize("unbiased", [False, True])
def test_energy_distance_is_brute_force_and_chunking_is_invisible(unbiased: bool, d: int) -> None:
    # d = 3: direct differences; d = 20: the matmul expansion, whose rounding, ~ε(‖a‖² + ‖b‖²)/‖a − b‖²
    # ≈ 1e-16 relative on these pairs (all ~6 apart; i = j is set to 0), stays far inside rtol 1e-10.
    x, y = normal((40, d), 0), normal((25, d), 1, mean=0.2, std=1.3)
    expected = brute_energy(x.numpy(), y.numpy(), unbiased)
    for batch_size in (None, 1, 7, 1000):
        got = D.energy_distance(x, y, unbiased=unbiased, batch_size=batch_size)
        assert got == pytest.approx(expected, rel=1e-10)


def test_energy_distance_of_a_sample_with_itself() -> None:
    # V-statistic: 2V_XX − 2V_XX = 0 exactly; U-statistic: the cross term keeps i = j, so
    # 2 V_XX − 2 U_XX = −(2/n) U_XX with U_XX the mean distance over i ≠ j.
    x = normal((30, 3), 2)
    assert D.energy_distance(x, x) == pytest.approx(0.0, abs=1e-12)
    a = x.numpy()
    u_xx = np.linalg.norm(a[:, None] - a[None], axis=-1).sum() / (30 * 29)
    assert D.energy_distance(x, x, unbiased=True) == pytest.approx(-2 * u_xx / 30, rel=1e-10)


def test_energy_distance_of_point_masses() -> None:
    # δ_a against δ_b: E‖X − Y‖ = ‖a − b‖ and both within terms vanish, so D² = 2‖a − b‖ for the
    # V- and the U-statistic; in d = 3 distances are direct differences, exact for equal points.
    for seed in range(5):
        a, b = normal((1, 3), 10 + seed, std=3.0), normal((1, 3), 20 + seed, std=3.0)
        x, y = a.repeat(50, 1), b.repeat(70, 1)
        for unbiased in (False, True):
            got = D.energy_distance(x, y, unbiased=unbiased)
            assert got == pytest.approx(2 * (a - b).norm().item(), rel=1e-12)


def gaussian_energy(mu1: float, s1: float, mu2: float, s2: float) -> float:
    """D² of N(μ1, s1²) and N(μ2, s2²): X − Y ~ N(μ, s²) is folded, E|X − Y| = s√(2/π) e^{−μ²/2s²}
    + μ(1 − 2Φ(−μ/s)), and E|X − X′| = 2 s1/√π."""
    mu, s = mu1 - mu2, math.hypot(s1, s2)
    folded = s * math.sqrt(2 / math.pi) * math.exp(-(mu**2) / (2 * s**2))
    cross = folded + mu * (1 - 2 * stats.norm.cdf(-mu / s))
    return 2 * cross - 2 * s1 / math.sqrt(math.pi) - 2 * s2 / math.sqrt(math.pi)


def gaussian_mmd(mu1: float, s1: float, mu2: float, s2: float, d: int, h: float = 1.0) -> tuple[float, ...]:
    """MMD² of N(μ1 1, s1² I) and N(μ2 1, s2² I) in d dimensions, Gaussian kernel of width h, and
    E k(X, X′), E k(Y, Y′): E k(X, Y) = (h²/(h² + s1² + s2²))^{d/2} exp(−d(μ1 − μ2)²/2(h² + s1² + s2²))."""
    kxy = (h**2 / (h**2 + s1**2 + s2**2)) ** (d / 2) * math.exp(
        -d * (mu1 - mu2) ** 2 / (2 * (h**2 + s1**2 + s2**2))
    )
    kxx, kyy = ((h**2 / (h**2 + 2 * s**2)) ** (d / 2) for s in (s1, s2))
    return kxx + kyy - 2 * kxy, kxx, kyy


def energy_and_bias(law: tuple[float, ...], n: int, m: int) -> tuple[float, float]:
    """1-d D² and the V-statistic's bias E|X − X′|/n + E|Y − Y′|/m = 2 s1/(n√π) + 2 s2/(m√π)."""
    return gaussian_energy(*law), 2 * law[1] / (n * math.sqrt(math.pi)) + 2 * law[3] / (
        m * math.sqrt(math.pi)
    )


def mmd_and_bias(law: tuple[float, ...], n: int, m: int) -> tuple[float, float]:
    """2-d MMD² (h = 1) and the V-statistic's bias (1 − E k(X, X′))/n + (1 − E k(Y, Y′))/m."""
    value, kxx, kyy = gaussian_mmd(*law, d=2)
    return value, (1 - kxx) / n + (1 - kyy) / m


STATISTICS = {
    "energy": (D.energy_distance, 1, energy_and_bias),
    "mmd": (functools.partial(D.mmd, bandwidth=1.0), 2, mmd_and_bias),
}


@pytest.mark.parametrize("statistic", STATISTICS)
@pytest.mark.parametrize(
    "law",
    [(0.0, 1.0, 0.0, 1.0), (0.0, 1.0, 0.5, 1.0), (0.0, 1.0, 0.0, 2.0), (1.0, 0.5, -1.0, 1.5)],
    ids=["same-law", "shift", "scale", "both"],
)
def test_two_sample_statistics_match_gaussian_closed_forms(law: tuple[float, ...], statistic: str) -> None:
    # R = 20 independent pairs of samples; the U-statistic is unbiased, so the mean of the R values
    # is within K_SE·sd/√R of the closed form; the V-statistic's mean is the closed form plus its bias.
    fn, d, closed = STATISTICS[statistic]
    mu1, s1, mu2, s2 = law
    n, m, R = 500, 400, 20
    u, v = [], []
    for r in range(R):
        x, y = normal((n, d), 2 * r, mu1, s1), normal((m, d), 2 * r + 1, mu2, s2)
        u.append(fn(x, y, unbiased=True))
        v.append(fn(x, y))
    exact, bias = closed(law, n, m)
    for values, target in ((u, exact), (v, exact + bias)):
        se = np.std(values, ddof=1) / math.sqrt(R)
        assert abs(np.mean(values) - target) < K_SE * se


@pytest.mark.parametrize("statistic", STATISTICS)
def test_two_sample_controls_same_law_is_noise_and_a_shift_is_not(statistic: str) -> None:
    # Same 2-d law: the R U-statistics average to 0 within their noise. Shifted by half a standard
    # deviation along one axis: the mean is > 10 standard errors above 0 and every shifted value
    # exceeds every same-law value.
    fn = STATISTICS[statistic][0]
    R, n = 20, 500
    shift = torch.tensor([0.5, 0.0], dtype=F64)
    same, moved = (
        [fn(normal((n, 2), 2 * r), normal((n, 2), 2 * r + 1) + s, unbiased=True) for r in range(R)]
        for s in (0.0, shift)
    )
    se_same, se_moved = (np.std(s, ddof=1) / math.sqrt(R) for s in (same, moved))
    assert abs(np.mean(same)) < K_SE * se_same
    assert np.mean(moved) > 10 * se_moved
    assert min(moved) > max(same)


@pytest.mark.parametrize("d", [3, D.DIRECT_MAX_DIM + 4])
@pytest.mark.parametrize("unbiased", [False, True])
def test_mmd_is_brute_force_and_chunking_is_invisible(unbiased: bool, d: int) -> None:
    x, y = normal((40, d), 0), normal((25, d), 1, mean=0.2, std=1.3)
    h = 0.5 * math.sqrt(d)

    def mean_k(a: np.ndarray, b: np.ndarray, same: bool) -> float:
        k = np.exp(-(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)) / (2 * h**2))
        if same and unbiased:
            return (k.sum() - len(a)) / (len(a) * (len(a) - 1))
        return k.mean()

    a, b = x.numpy(), y.numpy()
    expected = mean_k(a, a, True) + mean_k(b, b, True) - 2 * mean_k(a, b, False)
    for batch_size in (None, 1, 7):
        got = D.mmd(x, y, h, unbiased=unbiased, batch_size=batch_size)
        assert got == pytest.approx(expected, rel=1e-10)
    # Point masses: MMD² = 2 − 2 exp(−‖a − b‖²/2h²), V- and U-statistic alike.
    p, q = x[:1].repeat(30, 1), y[:1].repeat(20, 1)
    exact = 2 - 2 * math.exp(-((x[0] - y[0]).pow(2).sum().item()) / (2 * h**2))
    assert D.mmd(p, q, h, unbiased=unbiased) == pytest.approx(exact, rel=1e-12)


def test_energy_distance_rejects_bad_input() -> None:
    x = normal((5, 2), 0)
    with pytest.raises(ValueError, match="x and y must have the same dimension"):
        D.energy_distance(x, normal((5, 3), 1))
    with pytest.raises(ValueError, match="y must hold at least 2"):
        D.energy_distance(x, x[:1], unbiased=True)
    with pytest.raises(TypeError, match="unbiased"):
        D.energy_distance(x, x, unbiased=1)
    with pytest.raises(ValueError, match="bandwidth must be > 0"):
        D.mmd(x, x, 0.0)


# ---------------------------------------------------------------------------------- curve coverage
def occupancy(n: int, bins: int) -> tuple[float, float]:
    """Mean and standard deviation of the covered fraction of ``bins`` bins after n uniform draws.

    Bin k is empty with probability e1 = (1 − 1/B)ⁿ, bins k ≠ l both with e2 = (1 − 2/B)ⁿ, so
    Var(#empty) = B e1(1 − e1) + B(B − 1)(e2 − e1²) (below the binomial B e1(1 − e1): e2 ≤ e1²)."""
    e1, e2 = (1 - 1 / bins) ** n, (1 - 2 / bins) ** n
    var = bins * e1 * (1 - e1) + bins * (bins - 1) * (e2 - e1**2)
    return 1 - e1, math.sqrt(var) / bins


@pytest.mark.parametrize(("n", "bins"), [(100, 100), (300, 100), (50, 20), (2000, 50)])
def test_arc_coverage_of_uniform_positions(n: int, bins: int) -> None:
    mean, sd = occupancy(n, bins)
    single = D.arc_coverage(torch.rand(n, generator=gen(n), dtype=F64), bins)
    assert abs(single - mean) <= K_SE * sd
    R = 200
    reps = [D.arc_coverage(torch.rand(n, generator=gen(1000 + r), dtype=F64), bins) for r in range(R)]
    assert abs(np.mean(reps) - mean) <= K_SE * sd / math.sqrt(R)


def test_arc_coverage_controls_and_edges() -> None:
    # Half the curve, 2000 draws into its 10 bins of 20: each is missed with probability 0.9²⁰⁰⁰.
    half = 0.5 * torch.rand(2000, generator=gen(0), dtype=F64)
    assert D.arc_coverage(half, 20) == 0.5
    assert D.arc_coverage(torch.tensor([0.0, 1.0], dtype=F64), 2) == 1.0  # u = 1 is in the last bin
    assert D.arc_coverage(torch.full((50,), 0.3, dtype=F64), 10) == 0.1
    with pytest.raises(ValueError, match="positions must lie in"):
        D.arc_coverage(torch.tensor([0.2, 1.5], dtype=F64), 4)


ARC = 1.5 * math.pi  # an open arc of the unit circle, θ ∈ [0, 3π/2]: arc length = θ


def arc_curve(n: int = 2001) -> torch.Tensor:
    theta = torch.linspace(0, ARC, n, dtype=F64)
    return torch.stack([theta.cos(), theta.sin()], 1)


def on_arc(theta: torch.Tensor, radius: torch.Tensor | float = 1.0) -> torch.Tensor:
    return torch.stack([radius * theta.cos(), radius * theta.sin()], 1)


def test_chain_arc_coverage_stuck_versus_iid_chains() -> None:
    # 4 bins, 3 chains of T = 6: chain 0 stays in bin 0, chain 1 visits bins 0 and 3, chain 2 all four.
    u = torch.tensor(
        [
            [0.1, 0.1, 0.1],
            [0.1, 0.9, 0.3],
            [0.2, 0.1, 0.6],
            [0.1, 0.95, 0.8],
            [0.1, 0.1, 0.1],
            [0.2, 0.9, 0.2],
        ]
    )
    coverage, iid = D.chain_arc_coverage(u, 4)
    torch.testing.assert_close(coverage, torch.tensor([0.25, 0.5, 1.0], dtype=torch.float64))
    assert iid == pytest.approx(1 - 0.75**6)
    # Independent uniform chains cover, on average, the occupancy formula's share (brute-force mean).
    g = torch.Generator().manual_seed(0)
    coverage, iid = D.chain_arc_coverage(torch.rand(30, 2000, generator=g, dtype=torch.float64), 20)
    assert abs(coverage.mean().item() - iid) < 4 * coverage.std().item() / math.sqrt(2000)
    with pytest.raises(ValueError, match="positions"):
        D.chain_arc_coverage(torch.rand(5), 4)
    with pytest.raises(ValueError, match="positions"):
        D.chain_arc_coverage(torch.tensor([[1.5]]), 4)


def test_curve_chain_summary_stuck_spread_and_off_chains() -> None:
    # The unit segment from (0, 0) to (1, 0); 4 chains: two stuck on it at x = 0.1 and 0.9, one stuck off
    # it at height 1, one i.i.d. uniform along it.
    curve = torch.stack([torch.linspace(0, 1, 101), torch.zeros(101)], dim=1).double()
    T, g = 400, torch.Generator().manual_seed(0)
    chain = torch.zeros(T, 4, 2, dtype=torch.float64)
    chain[:, 0, 0], chain[:, 1, 0], chain[:, 2] = 0.1, 0.9, torch.tensor([0.5, 1.0], dtype=torch.float64)
    chain[:, 3, 0] = torch.rand(T, generator=g, dtype=torch.float64)
    summary = D.curve_chain_summary(chain, curve, radius=0.05, n_bins=10)
    assert summary["off"] == 0.25  # the chain at height 1
    assert summary["coverage"] == 0.3  # final states at 0.1, 0.9 and one uniform draw: 3 bins
    # Chains stuck at different arc positions never decorrelate: Sokal's window finds no M, tau is nan.
    assert math.isnan(summary["tau"])
    assert D.curve_chain_summary(chain[:, :3], curve, radius=0.05, n_bins=10)["tau"] == math.inf  # none moves
    iid = torch.zeros(T, 3, 2, dtype=torch.float64)
    iid[..., 0] = torch.rand(T, 3, generator=g, dtype=torch.float64)
    assert (
        abs(D.curve_chain_summary(iid, curve, radius=0.05, n_bins=10)["tau"] - 1) < 0.3
    )  # independent draws
    with pytest.raises(ValueError, match="chain"):
        D.curve_chain_summary(chain[:1], curve, radius=0.05, n_bins=10)


def test_curve_positions_on_a_circle_arc() -> None:
    # A point at angle θ and radius 1 + δ has foot point at arc position θ/ARC and distance |δ|, up
    # to the polyline (P − 1 = 2000 chords of half-angle h = ARC/4000). On a chord, the point at
    # angle φ ∈ [−h, h] from its middle projects to (1 + δ) sin φ / sin h of its half-length instead
    # of φ/h: off by ≤ |δ|/2 of a chord, |δ|/4000 in u; the chords sag by 1 − cos h = 7e-7 and the
    # polyline is shorter than the arc by a relative h²/6 = 2e-7: 1e-6 on top.
    theta = torch.rand(500, generator=gen(0), dtype=F64) * ARC
    delta = 0.1 * (torch.rand(500, generator=gen(1), dtype=F64) - 0.5)
    u, dist = D.curve_positions(on_arc(theta, 1 + delta), arc_curve())
    assert ((u - theta / ARC).abs() <= delta.abs() / 4000 + 1e-6).all()
    torch.testing.assert_close(dist, delta.abs(), rtol=0, atol=1e-6)
    # Beyond the ends: the foot points are the end vertices.
    ends = torch.tensor([[1.0, -0.5], [0.5, -1.0]], dtype=F64)  # along the end tangents
    u, dist = D.curve_positions(ends, arc_curve())
    torch.testing.assert_close(u, torch.tensor([0.0, 1.0], dtype=F64), rtol=0, atol=1e-12)
    torch.testing.assert_close(dist, torch.tensor([0.5, 0.5], dtype=F64), rtol=0, atol=1e-12)


def test_manifold_coverage_uniform_and_half_arc() -> None:
    # 300 samples uniform in arc length with radial noise 0.01, and 100 far points that the radius
    # (5 noise sd: P(|δ| > 5 sd) = 6e-7 per sample) must leave out. Uniform: the occupancy law of
    # 300 draws into 50 bins. Half the arc: the 25 bins of the first half (each missed with
    # probability (24/25)³⁰⁰ = 5e-6), and no other.
    n, bins = 300, 50
    far = torch.full((100, 2), 5.0, dtype=F64)
    noise = 1 + 0.01 * torch.randn(n, generator=gen(2), dtype=F64)
    theta = torch.rand(n, generator=gen(3), dtype=F64) * ARC
    coverage, near = D.manifold_coverage(torch.cat([on_arc(theta, noise), far]), arc_curve(), bins, 0.05)
    mean, sd = occupancy(n, bins)
    assert abs(coverage - mean) <= K_SE * sd
    assert near == pytest.approx(0.75, abs=1e-15)
    coverage, near = D.manifold_coverage(on_arc(theta / 2, noise), arc_curve(), bins, 0.05)
    assert coverage == 0.5 and near == 1.0
    assert D.manifold_coverage(far, arc_curve(), bins, 0.05) == (0.0, 0.0)


def test_curve_positions_rejects_bad_curves() -> None:
    x = normal((4, 2), 0)
    with pytest.raises(ValueError, match="curve_points must hold at least 2"):
        D.curve_positions(x, x[:1])
    with pytest.raises(ValueError, match="curve_points must not all be the same point"):
        D.curve_positions(x, x[:1].repeat(3, 1))
    with pytest.raises(ValueError, match="samples and curve_points must have the same dimension"):
        D.curve_positions(x, normal((4, 3), 1))


# ------------------------------------------------------------------------------------------ mixing
def ar1(rho: float, steps: int, chains: int, seed: int) -> torch.Tensor:
    """x_t = ρ x_{t−1} + ε_t, ε ~ N(0, 1), started in the stationary law N(0, 1/(1 − ρ²))."""
    eps = torch.randn(steps, chains, generator=gen(seed), dtype=F64).numpy()
    eps[0] /= math.sqrt(1 - rho**2)
    return torch.from_numpy(signal.lfilter([1.0], [1.0, -rho], eps, axis=0))


def sokal_sd(tau: float, n: int, c: float = 5.0) -> float:
    """Sokal's standard deviation of τ̂, τ √(2(2M + 1)/n), at the window M ≈ c·τ it picks.

    The truncation bias −2ρ^{M+1}/(1 − ρ) at M = 5τ is ≤ 1e-3 for the ρ tested, far below it."""
    return tau * math.sqrt(2 * (2 * math.ceil(c * tau) + 1) / n)


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
def test_autocorrelation_time_of_ar1(rho: float) -> None:
    tau = (1 + rho) / (1 - rho)
    steps = 2**18
    got = D.integrated_autocorrelation_time(ar1(rho, steps, 1, 0)[:, 0])
    assert abs(got - tau) < K_SE * sokal_sd(tau, steps)
    # The same number of values in 8 chains of 2**15 steps: pooled over chains.
    got = D.integrated_autocorrelation_time(ar1(rho, steps // 8, 8, 1))
    assert abs(got - tau) < K_SE * sokal_sd(tau, steps)


def test_sokal_standard_deviation_is_right() -> None:
    # The tolerance above rests on Sokal's formula: check it on 30 independent AR(0.5) series of
    # 2**14 steps. The sample sd of 30 values has relative sd ≈ 1/√58 = 0.13: the ratio must be
    # within [0.6, 1.5] (about ±4 of those), and the mean within K_SE standard errors.
    rho, steps, R = 0.5, 2**14, 30
    tau = (1 + rho) / (1 - rho)
    taus = [D.integrated_autocorrelation_time(ar1(rho, steps, 1, 100 + r)[:, 0]) for r in range(R)]
    assert 0.6 < np.std(taus, ddof=1) / sokal_sd(tau, steps) < 1.5
    assert abs(np.mean(taus) - tau) < K_SE * sokal_sd(tau, steps) / math.sqrt(R)


def test_effective_sample_size_of_iid_noise() -> None:
    # τ = 1: ESS = T/τ̂ with τ̂ within K_SE·√(2·11/T) of 1 (M = 5).
    steps = 2**16
    tol = K_SE * sokal_sd(1.0, steps)
    ess = D.effective_sample_size(normal((steps,), 0))
    assert steps / (1 + tol) < ess < steps / (1 - tol)
    ess = D.effective_sample_size(normal((steps // 4, 4), 1))
    assert steps / (1 + tol) < ess < steps / (1 - tol)


def test_chains_that_never_move() -> None:
    # Decision: every chain constant ⇒ τ = inf and ESS = 0 (no information), not an error, so a
    # frozen sampler reports itself instead of crashing the notebook that measures it.
    assert D.integrated_autocorrelation_time(torch.full((100,), 0.1, dtype=F64)) == math.inf
    frozen = torch.tensor([0.1, -2.0, 3.0], dtype=F64).repeat(100, 1)
    assert D.integrated_autocorrelation_time(frozen) == math.inf
    assert D.effective_sample_size(frozen) == 0.0


def test_chains_stuck_at_different_levels_or_anticorrelated_raise() -> None:
    # Two chains jittering around 0 and 10: about the grand mean ρ(k) ≈ 1 at every lag, so no
    # window M < T satisfies M ≥ 5τ(M): the chains are too short to estimate τ.
    stuck = 0.01 * normal((1000, 2), 0) + torch.tensor([0.0, 10.0], dtype=F64)
    with pytest.raises(ValueError, match="series is too short"):
        D.integrated_autocorrelation_time(stuck)
    assert D.integrated_autocorrelation_time(stuck, too_short="inf") == math.inf  # the same, as a value
    with pytest.raises(ValueError, match="too_short"):
        D.integrated_autocorrelation_time(stuck, too_short="zero")
    with pytest.raises(ValueError, match="series is anti-correlated"):
        D.integrated_autocorrelation_time(ar1(-0.9, 4096, 1, 0))


def test_autocorrelation_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="series must hold at least 2 steps"):
        D.integrated_autocorrelation_time(torch.zeros(1, 3, dtype=F64))
    with pytest.raises(ValueError, match=r"series must have shape \(T,\) or \(T, chains\)"):
        D.effective_sample_size(torch.zeros(4, 3, 2, dtype=F64))
    with pytest.raises(ValueError, match="c must be > 0"):
        D.integrated_autocorrelation_time(normal((10,), 0), c=0.0)


# --------------------------------------------------------------------------------------- mode hops
def test_mode_hops_by_hand() -> None:
    labels = torch.tensor([[0, 2], [0, 2], [1, 2], [1, 2], [1, 2], [2, 2], [0, 2]])
    hops, occ = D.mode_hops(labels, 4)
    assert hops.tolist() == [3, 0]
    expected = torch.tensor([[3, 3, 1, 0], [0, 0, 7, 0]], dtype=F64) / 7
    torch.testing.assert_close(occ, expected, rtol=0, atol=1e-15)
    hops, occ = D.mode_hops(labels[:, 0], 4)  # one chain: a 0-d count and one occupancy row
    assert hops.shape == () and int(hops) == 3
    torch.testing.assert_close(occ, expected[0], rtol=0, atol=1e-15)


def test_mode_hops_from_nearest_centres() -> None:
    # States near the centres ±3, labelled by evaluate.nearest_neighbours, as the docstring says.
    centres = torch.tensor([[-3.0], [3.0]], dtype=F64)
    path = torch.tensor([-3.1, -2.9, 2.8, 3.2, 3.0, -3.0], dtype=F64)[:, None]
    labels = evaluate.nearest_neighbours(path, centres)[1]
    hops, occ = D.mode_hops(labels, 2)
    assert int(hops) == 2
    torch.testing.assert_close(occ, torch.tensor([0.5, 0.5], dtype=F64))


def test_mode_hops_rejects_bad_labels() -> None:
    with pytest.raises(TypeError, match="labels must hold integer mode indices"):
        D.mode_hops(torch.tensor([0.0, 1.0]), 2)
    with pytest.raises(ValueError, match=r"labels must hold modes in \[0, 2\)"):
        D.mode_hops(torch.tensor([0, 2]), 2)
    with pytest.raises(ValueError, match="labels must have shape"):
        D.mode_hops(torch.zeros(0, dtype=torch.long), 2)


def test_spurious_fraction_counts_the_samples_off_the_data():
    data = torch.zeros(10, 2, dtype=torch.float64)
    pts = torch.tensor([[0.0, 0.05], [1.0, 0.0], [0.0, -2.0], [0.01, 0.0]], dtype=torch.float64)
    assert D.spurious_fraction(pts, data, 0.1) == 0.5
    with pytest.raises(ValueError, match="radius"):
        D.spurious_fraction(pts, data, 0.0)


def test_spurious_groups_gathers_the_ends_off_the_data_by_hand():
    data = torch.zeros(3, 2, dtype=F64)
    ends = torch.tensor([[0.0, 0.5], [3.0, 0.0], [0.0, 3.0], [3.06, 0.0]], dtype=F64)  # the first is near
    groups = D.spurious_groups(ends, data, delta=1.0, radius=0.1)
    assert [share for _, share in groups] == [0.5, 0.25]  # 2 of 4 ends at (3, 0), 1 of 4 at (0, 3)
    torch.testing.assert_close(groups[0][0], torch.tensor([3.03, 0.0], dtype=F64))
    torch.testing.assert_close(groups[1][0], torch.tensor([0.0, 3.0], dtype=F64))
    assert D.spurious_groups(ends, data, delta=10.0) == []  # control: every end within delta of the data
    with pytest.raises(ValueError, match="delta"):
        D.spurious_groups(ends, data, delta=0.0)
    with pytest.raises(ValueError, match="data"):
        D.spurious_groups(ends, torch.zeros(3, 1, dtype=F64), delta=1.0)


def test_histogram_tv_is_half_the_l1_gap_by_hand():
    bins = torch.tensor([0.0, 1.0, 2.0], dtype=F64)
    uniform = lambda x: torch.full(x.shape[:1], math.log(0.5), dtype=F64)  # noqa: E731  p = 1/2 on [0, 2]
    samples = torch.tensor([0.2, 0.4, 0.6, 1.5], dtype=F64)  # 3/4 in bin 0, 1/4 in bin 1
    assert D.histogram_tv(samples, uniform, bins) == pytest.approx(0.25, abs=1e-15)  # ½(¼ + ¼)
    balanced = torch.tensor([0.5, 1.5], dtype=torch.float32)  # one per bin, in another dtype
    assert D.histogram_tv(balanced, uniform, bins) == pytest.approx(0.0, abs=1e-15)
    with pytest.raises(ValueError, match="bins"):
        D.histogram_tv(samples, uniform, torch.tensor([1.0, 0.0], dtype=F64))
    with pytest.raises(TypeError, match="log_prob"):
        D.histogram_tv(samples, None, bins)


# heavy_modes ------------------------------------------------------------------------------------------
def test_heavy_modes_counts_separated_bumps_above_the_share() -> None:
    # five well-separated Gaussian bumps with known weights: each basin holds its bump's weight (the
    # overlap is < 1e-20), so exactly the bumps heavier than `share` count
    grid = torch.linspace(0, 10, 4001, dtype=torch.float64)
    weights = torch.tensor([0.4, 0.3, 0.2, 0.095, 0.005], dtype=torch.float64)
    centres = torch.tensor([1.0, 3.0, 5.0, 7.0, 9.0], dtype=torch.float64)
    q = (weights[:, None] * torch.exp(-0.5 * ((grid - centres[:, None]) / 0.1) ** 2)).sum(0)
    q = q / q.sum()
    assert D.heavy_modes(q, share=0.01) == 4
    assert D.heavy_modes(q, share=0.001) == 5
    assert D.heavy_modes(q, share=0.25) == 2
    assert D.heavy_modes(torch.full((50,), 0.02, dtype=torch.float64)) == 1  # flat: one basin


def test_heavy_modes_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="q"):
        D.heavy_modes(torch.ones(2))
    with pytest.raises(ValueError, match="share"):
        D.heavy_modes(torch.ones(5), share=1.5)


def test_persistent_hops_by_hand() -> None:
    # chain 0: stays 0 (3 steps), 1 (1 step: too short), 0 again (2), undecided, 2 (2): itinerary 0, 0, 2
    # with min_stay 2 -> 1 hop; chain 1: one flicker to 3 inside a stay of 2 -> itinerary 2, 2 -> 0 hops.
    labels = torch.tensor(
        [[0, 2], [0, 2], [0, 3], [1, 2], [0, 2], [0, 2], [-1, 2], [2, 2], [2, 2]], dtype=torch.long
    )
    assert D.persistent_hops(labels, 4, 2).tolist() == [1, 0]
    assert D.persistent_hops(labels, 4, 3).tolist() == [0, 0]  # chain 0: only its first stay is long enough
    assert D.persistent_hops(labels[:, 0], 4, 1).shape == ()
    # undecided steps are skipped: itinerary 0, 1, 0, 0, 2 -> 3 hops with min_stay 1
    assert int(D.persistent_hops(labels[:, 0], 4, 1)) == 3


def test_persistent_hops_with_min_stay_1_is_mode_hops() -> None:
    labels = torch.randint(5, (200, 7), generator=torch.Generator().manual_seed(0))
    assert torch.equal(D.persistent_hops(labels, 5, 1), D.mode_hops(labels, 5)[0])


def test_persistent_hops_ignores_label_noise_that_mode_hops_counts() -> None:
    # A chain that stays in mode 0, with one-step flickers to random modes every 10 steps: mode_hops
    # counts two hops per flicker, persistent_hops (min_stay 2) none; a real switch to mode 1 counts once.
    labels = torch.zeros(100, dtype=torch.long)
    labels[5::10] = torch.tensor([1, 2, 3, 1, 2, 3, 1, 2, 3, 1])
    assert int(D.mode_hops(labels, 4)[0]) == 20
    assert int(D.persistent_hops(labels, 4, 2)) == 0
    labels[60:] = 1
    assert int(D.persistent_hops(labels, 4, 2)) == 1


def test_persistent_hops_rejects_bad_labels() -> None:
    with pytest.raises(TypeError, match="labels must hold integer mode indices"):
        D.persistent_hops(torch.tensor([0.0, 1.0]), 2, 1)
    with pytest.raises(ValueError, match=r"labels must hold -1 or modes in \[0, 2\)"):
        D.persistent_hops(torch.tensor([0, -2]), 2, 1)
    with pytest.raises(ValueError, match="min_stay"):
        D.persistent_hops(torch.tensor([0, 1]), 2, 0)
