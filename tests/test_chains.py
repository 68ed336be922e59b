"""Tests of dae_tutor.chains against independent truths: hand-built matrices, NumPy linear algebra, the
spec's reference numbers (``shared/spec/B_gsn.md`` N1-N14, T1-T13, T15, T17, T22; ``A_dae_score.md``
§5.3.15) and Monte Carlo within CLT bounds.

Each test names the spec items it checks (Spec B §4.3's T1-T25, the notebook checks N1-N15) at the
start of its docstring: ``grep -rn "Spec .*T7" tests`` finds the tests of T7. Besides this file:
T2, T8 and N9 are in ``test_markov.py``, T14 and N15 in ``test_depnets.py``, T16 in
``test_corruption.py``, T18-T20 and T23-T25 in ``test_binary_nets.py`` (T24, T25 marked ``slow``, excluded by
default), T21 in ``test_evaluate.py``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from finite_chains import F64, PMF_A, n1_setup, np_bayes, np_stationary, random_stochastic
from scipy.optimize import linear_sum_assignment

from dae_tutor import chains as ch
from dae_tutor import markov, nets


def n4_setup() -> np.ndarray:
    """Spec B N4: K=16, data on {0..3} and {10..13}, a gap of 7."""
    p = np.zeros(16)
    p[0:4] = [0.1, 0.2, 0.1, 0.1]
    p[10:14] = [0.1, 0.1, 0.2, 0.1]
    return p / p.sum()


# ---------------------------------------------------------------------------------------- corruptions (T1)
def test_corruption_matrices_by_hand() -> None:
    q = 0.4
    np.testing.assert_allclose(ch.corruption_matrix(4, "mix_uniform", q).numpy(), 0.6 * np.eye(4) + 0.1)
    walk = np.array(
        [[0.6, 0.4, 0, 0], [0.2, 0.6, 0.2, 0], [0, 0.2, 0.6, 0.2], [0, 0, 0.4, 0.6]]
    )  # reflection: the step off an end is mirrored back
    np.testing.assert_allclose(ch.corruption_matrix(4, "local_walk", q).numpy(), walk, atol=1e-15)
    ring = np.array([[0.6, 0.2, 0, 0.2], [0.2, 0.6, 0.2, 0], [0, 0.2, 0.6, 0.2], [0.2, 0, 0.2, 0.6]])
    np.testing.assert_allclose(ch.corruption_matrix(4, "ring", q).numpy(), ring, atol=1e-15)
    window = np.array([[2, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1], [0, 0, 1, 2]]) / 3  # clipped, mass piles up
    np.testing.assert_allclose(ch.window_corruption(4, 1).numpy(), window, atol=1e-15)
    np.testing.assert_array_equal(ch.window_corruption(5, 0).numpy(), np.eye(5))
    assert ch.corruption_matrix(6, "ring", 0.3).dtype == F64


@pytest.mark.parametrize("kind", ch.CORRUPTION_KINDS)
@pytest.mark.parametrize(("k", "q"), [(2, 0.5), (3, 1.0), (10, 0.0), (17, 0.37)])
def test_corruption_rows_sum_to_one(kind: str, k: int, q: float) -> None:
    c = ch.corruption_matrix(k, kind, q).numpy()
    assert c.shape == (k, k) and c.min() >= 0
    np.testing.assert_allclose(c.sum(1), 1, atol=1e-12)


# ----------------------------------------------------------------------------- exact DAE chain (N1, T2-T4)
def test_exact_posterior_gives_the_data_distribution() -> None:
    """Spec N1."""
    p, c = n1_setup()
    r = ch.bayes_reconstruction(p, c)
    t = ch.dae_transition(c, r)
    pi = markov.stationary_distribution(t)
    assert markov.tv_distance(pi, p) < 1e-10  # spec prototype: 6.6e-16
    # eq. 5.1: P(x) C(x~|x) = R(x|x~) P(x~), checked entrywise
    joint = p[:, None] * c.numpy()
    np.testing.assert_allclose(joint, r.numpy().T * joint.sum(0), atol=1e-15)
    np.testing.assert_allclose(t.numpy(), c.numpy() @ np_bayes(p, c.numpy()), atol=1e-14)
    assert markov.detailed_balance_violation(t, p) < 1e-12  # prototype: 7e-18


def test_random_exact_chains_are_stationary_reversible_with_real_nonnegative_spectrum() -> None:
    """Spec T3, T4."""
    rng = np.random.default_rng(12)
    for i in range(20):
        k = int(rng.integers(2, 31))
        p = rng.dirichlet(0.5 * np.ones(k))
        c = random_stochastic(rng, k) + 1e-3  # positive C
        c /= c.sum(1, keepdims=True)
        t = ch.dae_transition(c, ch.bayes_reconstruction(p, c))
        assert markov.tv_distance(markov.stationary_distribution(t), p) < 1e-10, i
        assert markov.detailed_balance_violation(t, p) < 1e-12
        lam = np.linalg.eigvals(t.numpy())
        assert np.abs(lam.imag).max() < 1e-9 and lam.real.min() > -1e-9
    # the spec's 15x15 check: D^{1/2} T D^{-1/2} is symmetric PSD
    p = rng.dirichlet(np.ones(15))
    c = random_stochastic(rng, 15)
    t = ch.dae_transition(c, ch.bayes_reconstruction(p, c)).numpy()
    s = np.diag(np.sqrt(p)) @ t @ np.diag(1 / np.sqrt(p))
    np.testing.assert_allclose(s, s.T, atol=1e-12)
    assert np.linalg.eigvalsh(0.5 * (s + s.T)).min() > -1e-12


# ----------------------------------------------------------------------------- ergodicity (N2, N4; T5, T7)
def test_identity_corruption_is_reducible_and_constant_corruption_mixes_in_one_step() -> None:
    """Spec N2."""
    p = PMF_A
    eye = np.eye(10)
    t = ch.dae_transition(eye, ch.bayes_reconstruction(p, eye))
    np.testing.assert_allclose(t.numpy(), eye, atol=1e-15)
    assert len(markov.closed_classes(t)) == 10 == int(np.sum(np.abs(np.linalg.eigvals(t.numpy()) - 1) < 1e-9))
    with pytest.raises(ValueError, match=r"T is reducible: it has 10 closed communicating classes"):
        markov.stationary_distribution(t)
    c = np.tile(np.random.default_rng(0).dirichlet(np.ones(10)), (10, 1))  # C(x~|x) = c(x~)
    r = ch.bayes_reconstruction(p, c)
    np.testing.assert_allclose(r.numpy(), np.tile(p, (10, 1)), atol=1e-15)
    assert markov.second_eigenvalue_modulus(ch.dae_transition(c, r)) < 1e-9


@pytest.mark.parametrize(
    ("radius", "lam2", "mass"),
    [(1, 1.0, 0.0), (2, 1.0, 0.0), (3, 1.0, 0.0), (4, 0.949, 0.497), (5, 0.860, 0.5)],
)
def test_local_corruption_must_cross_the_gap(radius: int, lam2: float, mass: float) -> None:
    """Spec N4, T7."""
    p = n4_setup()
    c = ch.window_corruption(16, radius)
    t = ch.dae_transition(c, ch.bayes_reconstruction(p, c))
    n_classes = len(markov.closed_classes(t))
    assert n_classes == int(np.sum(np.abs(np.linalg.eigvals(t.numpy()) - 1) < 1e-9))  # numpy agrees
    assert n_classes == (2 if radius <= 3 else 1)
    assert markov.second_eigenvalue_modulus(t) == pytest.approx(lam2, abs=1e-3)
    start = np.zeros(16)
    start[0] = 1
    after = start @ np.linalg.matrix_power(t.numpy(), 100)
    assert after[10:14].sum() == pytest.approx(mass, abs=1e-3)  # mass on the second cluster
    if radius <= 3:
        with pytest.raises(ValueError, match="reducible"):
            markov.stationary_distribution(t)
    else:
        assert markov.tv_distance(markov.stationary_distribution(t), p) < 1e-10


# ----------------------------------------------------------------------------- counting estimator (N3, T6)
def test_counting_estimator_by_hand() -> None:
    x, xt = [0, 0, 1, 2], [1, 1, 1, 0]
    np.testing.assert_allclose(
        ch.counting_estimator(x, xt, 3).numpy(), [[0, 0, 1], [2 / 3, 1 / 3, 0], [1 / 3, 1 / 3, 1 / 3]]
    )  # the unseen row x~=2 is uniform
    smooth = ch.counting_estimator(torch.tensor(x), torch.tensor(xt), 3, alpha=0.5).numpy()
    np.testing.assert_allclose(
        smooth, [[0.5 / 2.5, 0.5 / 2.5, 1.5 / 2.5], [2.5 / 4.5, 1.5 / 4.5, 0.5 / 4.5], [1 / 3] * 3]
    )
    assert ch.counting_estimator([], [], 4).numpy().tolist() == [[0.25] * 4] * 4


@pytest.mark.parametrize(("n", "bound"), [(5000, 0.05), (500, 0.15)])
def test_counting_estimator_chain_is_close_to_the_data(n: int, bound: float) -> None:
    """Spec A §5.3.15: K=10, P ∝ [1,3,6,3,1,1,2,5,8,4], mix-uniform q=0.5, alpha=0.01 (200-seed means:
    0.018 at n=5000, 0.059 at n=500; 99th percentiles 0.028 and 0.106)."""
    c = ch.corruption_matrix(10, "mix_uniform", 0.5)
    tvs = []
    for seed in range(5):
        x, xt = ch.sample_pairs(PMF_A, c, n, torch.Generator().manual_seed(seed))
        r = ch.counting_estimator(x, xt, 10, alpha=0.01)
        tvs.append(markov.tv_distance(markov.stationary_distribution(ch.dae_transition(c, r)), PMF_A))
    assert max(tvs) < bound, tvs


def test_counting_error_falls_like_n_to_the_minus_half() -> None:
    """Spec N3, T6."""
    p, c = n1_setup()
    gen = torch.Generator().manual_seed(0)
    means = []
    for n in (1_000, 10_000, 100_000):
        tvs = []
        for _ in range(20):
            x, xt = ch.sample_pairs(p, c, n, gen)
            r = ch.counting_estimator(x, xt, 10)
            tvs.append(markov.tv_distance(markov.stationary_distribution(ch.dae_transition(c, r)), p))
        means.append(np.mean(tvs))
    assert 5 <= means[0] / means[2] <= 20, means  # T6
    slope = np.polyfit(np.log([1e3, 1e4, 1e5]), np.log(means), 1)[0]
    assert -0.65 <= slope <= -0.35, slope
    np.testing.assert_allclose(means, [0.052, 0.0159, 0.0053], rtol=0.3)  # N3 prototype means


def test_sample_pairs_follow_the_joint() -> None:
    c = ch.corruption_matrix(10, "local_walk", 0.5)
    n = 200_000
    x, xt = ch.sample_pairs(PMF_A, c, n, torch.Generator().manual_seed(4))
    joint = PMF_A[:, None] * c.numpy()
    freq = np.bincount((x * 10 + xt).numpy(), minlength=100).reshape(10, 10) / n
    assert np.all(np.abs(freq - joint) <= 5 * np.sqrt(joint * (1 - joint) / n) + 1e-12)
    assert np.all(freq[joint == 0] == 0)


# ----------------------------------------------------------------- walkback, exact (N10, N13; T1, T9, T10)
def test_walkback_corruption_is_the_geometric_mixture_of_the_recursion() -> None:
    """Spec T1."""
    rng = np.random.default_rng(5)
    c, r = random_stochastic(rng, 7), random_stochastic(rng, 7)
    for p_stop in (0.5, 0.2, 0.9):
        cwb = ch.walkback_corruption(c, r, p_stop).numpy()
        np.testing.assert_allclose(cwb.sum(1), 1, atol=1e-12)
        ck, total, k_max = c.copy(), np.zeros_like(c), 200  # C_1 = C, C_{k+1} = (C R) C_k  (eq. 5.2)
        for k in range(1, k_max + 1):
            total += p_stop * (1 - p_stop) ** (k - 1) * ck
            ck = c @ r @ ck
        assert np.abs(cwb - total).max() <= (1 - p_stop) ** k_max + 1e-13


def test_walkback_fixed_point() -> None:
    """Spec N10, T9: default_rng(1), K=12, P ~ Dir(0.3), ring q=0.5 (prototype: converges in ~140
    iterations, max|R_WB - R_1| = 0.27, mean row entropy 1.145 vs 0.540 nats)."""
    p = np.random.default_rng(1).dirichlet(0.3 * np.ones(12))
    c = ch.corruption_matrix(12, "ring", 0.5)
    r1 = ch.bayes_reconstruction(p, c).numpy()
    r_wb, n_iter = ch.walkback_fixed_point(p, c, p_stop=0.5, tol=1e-12)
    assert n_iter <= 500
    fixed = ch.bayes_reconstruction(p, ch.walkback_corruption(c, r_wb, 0.5))
    assert float((fixed - r_wb).abs().max()) < 1e-12
    assert markov.tv_distance(markov.stationary_distribution(ch.dae_transition(c, r_wb)), p) < 1e-10
    assert np.abs(r_wb.numpy() - r1).max() == pytest.approx(0.273, abs=2e-3)

    def entropy(r: np.ndarray) -> float:
        return float(np.mean([-(row[row > 0] * np.log(row[row > 0])).sum() for row in r]))

    assert entropy(r_wb.numpy()) == pytest.approx(1.145, abs=2e-3)
    assert entropy(r1) == pytest.approx(0.540, abs=2e-3)
    with pytest.raises(RuntimeError, match="did not converge"):
        ch.walkback_fixed_point(p, c, max_iter=3)


def test_walkback_chain_is_a_power_series_of_t() -> None:
    """Spec N13, T10: C_WB R = phi(T) with phi(z) = p z / (1 - (1-p) z): same stationary vector,
    eigenvalues phi(lambda)."""
    rng = np.random.default_rng(13)
    for _ in range(5):
        k = int(rng.integers(3, 15))
        c, r = random_stochastic(rng, k), random_stochastic(rng, k)
        p_stop = float(rng.uniform(0.1, 0.9))
        t = ch.dae_transition(c, r).numpy()
        phi_t = ch.dae_transition(ch.walkback_corruption(c, r, p_stop), r).numpy()
        np.testing.assert_allclose(
            markov.stationary_distribution(phi_t).numpy(),
            markov.stationary_distribution(t).numpy(),
            atol=1e-10,
        )
        lam = np.linalg.eigvals(t)
        phi_lam = p_stop * lam / (1 - (1 - p_stop) * lam)
        got = np.linalg.eigvals(phi_t)
        rows, cols = linear_sum_assignment(np.abs(got[:, None] - phi_lam[None, :]))  # pair them up
        assert np.abs(got[rows] - phi_lam[cols]).max() < 1e-9


# --------------------------------------------------------------------------------- walkback, sampled (T17)
def test_walkback_pairs_mean_number_of_pairs() -> None:
    """Spec T17: [GDAE] Algorithm 2 with continue probability 0.5: 1e4 calls, mean pairs 2 ± 0.05 (spec A
    §5.3.15)."""
    c = ch.corruption_matrix(10, "local_walk", 0.5)
    r = ch.bayes_reconstruction(PMF_A, c)
    gen = torch.Generator().manual_seed(17)
    counts = [len(ch.walkback_pairs(x, c, r, 0.5, gen)) for x in np.tile(np.arange(10), 1000)]
    assert abs(np.mean(counts) - 2) < 0.05
    assert min(counts) == 1


def test_walkback_pairs_structure_and_determinism() -> None:
    c = ch.corruption_matrix(10, "local_walk", 0.5)
    r = ch.bayes_reconstruction(PMF_A, c)
    pairs = ch.walkback_pairs(4, c, r, 0.1, torch.Generator().manual_seed(3))
    assert all(x == 4 for x, _ in pairs)  # every pair keeps the ORIGINAL example (line 6)
    tildes = [xt for _, xt in pairs]
    assert abs(tildes[0] - 4) <= 1  # the first corruption is local
    assert pairs == ch.walkback_pairs(4, c, r, 0.1, torch.Generator().manual_seed(3))
    last = ch.walkback_pairs(4, c, r, 0.1, torch.Generator().manual_seed(3), training=False)
    assert last == [pairs[-1]]


@pytest.mark.parametrize(("p_stop", "tol"), [(0.5, 0.03), (0.25, 0.06)])
def test_walkback_batch_walk_length_is_geometric(p_stop: float, tol: float) -> None:
    """Spec T17."""
    c = ch.corruption_matrix(10, "local_walk", 0.5)
    r = ch.bayes_reconstruction(PMF_A, c)
    x = torch.arange(10).repeat(10_000)
    x_clean, x_tilde, k = ch.walkback_batch(x, c, r, p_stop, torch.Generator().manual_seed(1))
    assert abs(k.double().mean().item() - 1 / p_stop) < tol  # 1e5 walks
    assert len(x_clean) == len(x_tilde) == int(k.sum())
    assert torch.equal(x_clean, torch.repeat_interleave(x, k))  # grouped per example, original x
    pk = np.bincount(k.numpy(), minlength=6)[1:6] / len(k)
    expected = p_stop * (1 - p_stop) ** np.arange(5)
    assert np.all(np.abs(pk - expected) < 5 * np.sqrt(expected * (1 - expected) / len(k)))


def test_walkback_last_corruption_is_distributed_as_c_wb() -> None:
    """The last x~ of a walk from x (training=False) is a draw from row x of the exact C_WB."""
    c = ch.corruption_matrix(10, "local_walk", 0.6)
    r = ch.bayes_reconstruction(PMF_A, c)
    cwb = ch.walkback_corruption(c, r, 0.5).numpy()
    n = 40_000
    for start in (0, 6):
        _, x_tilde, _ = ch.walkback_batch(
            torch.full((n,), start), c, r, 0.5, torch.Generator().manual_seed(start), training=False
        )
        assert len(x_tilde) == n
        freq = np.bincount(x_tilde.numpy(), minlength=10) / n
        row = cwb[start]
        assert np.all(np.abs(freq - row) <= 5 * np.sqrt(row * (1 - row) / n) + 1e-12), (freq, row)


def n11_setup() -> tuple[np.ndarray, torch.Tensor]:
    """Spec B N11: K=40, data on {8..11} and {28..31}, window +-1 corruption, spurious point 20."""
    p = np.zeros(40)
    p[8:12] = [0.1, 0.2, 0.15, 0.05]
    p[28:32] = [0.05, 0.15, 0.2, 0.1]
    return p / p.sum(), ch.window_corruption(40, 1)


@pytest.mark.parametrize(("epochs", "wb_mass"), [(1, 0.0225), (20, 6.2e-4), (100, 1.2e-4)])
def test_walkback_removes_the_spurious_mode(epochs: int, wb_mass: float) -> None:
    """Spec N11, T11: plain training leaves pi(s) > 0.99; walkback gives pi(s) < 1e-2 after 20 epochs
    (spec N11)."""
    p, c = n11_setup()
    plain = ch.online_counting_training(p, c, epochs, spurious=20)
    walk = ch.online_counting_training(p, c, epochs, spurious=20, walkback=True)
    pi_plain = markov.stationary_distribution(ch.dae_transition(c, plain))
    pi_walk = markov.stationary_distribution(ch.dae_transition(c, walk))
    assert float(pi_plain[20]) > 0.99
    assert float(pi_walk[20]) == pytest.approx(wb_mass, rel=0.03)
    if epochs >= 20:
        assert float(pi_walk[20]) < 1e-2
    # By hand for one plain epoch: R[x~] is proportional to n P(x) C(x~|x) + alpha delta_s.
    if epochs == 1:
        counts = 1000 * (p[:, None] * c.numpy()).T
        counts[:, 20] += 1.0
        np.testing.assert_allclose(plain.numpy(), counts / counts.sum(1, keepdims=True), atol=1e-15)


def test_unimodal_decoder_u_curve() -> None:
    """Spec N5: K=40 three bumps; the exact posterior is exact at every sigma, the moment-matched
    unimodal decoder has the U-shaped error (0.083, 0.018, ..., 0.474) and lambda_2 -> 1 at small sigma."""
    xs = np.arange(40.0)
    p = np.exp(-((xs - 8) ** 2) / 4.5) + np.exp(-((xs - 20) ** 2) / 2) + 0.7 * np.exp(-((xs - 31) ** 2) / 8)
    p /= p.sum()
    expected = {0.5: 0.083, 0.75: 0.018, 1: 0.027, 2: 0.053, 3: 0.164, 5: 0.350, 8: 0.474}
    for sigma, tv in expected.items():
        c = ch.gaussian_grid_corruption(xs, sigma)
        r = ch.bayes_reconstruction(p, c)
        assert markov.tv_distance(markov.stationary_distribution(ch.dae_transition(c, r)), p) < 1e-10
        ru = ch.unimodal_projection(r, xs)
        rows = ru.numpy()
        peaks = ((rows[:, 1:-1] > rows[:, :-2]) & (rows[:, 1:-1] >= rows[:, 2:])).sum(1)
        assert peaks.max() <= 1  # every row of the projection has one mode (interior, or at an end)
        got = markov.tv_distance(markov.stationary_distribution(ch.dae_transition(c, ru)), p)
        assert got == pytest.approx(tv, abs=1.5e-3), sigma
    c_small = ch.gaussian_grid_corruption(xs, 0.5)
    r_small = ch.unimodal_projection(ch.bayes_reconstruction(p, c_small), xs)
    assert markov.second_eigenvalue_modulus(ch.dae_transition(c_small, r_small)) > 0.9999  # barely mixes


def test_gaussian_grid_corruption_and_window_are_vectorised_and_stochastic() -> None:
    xs = np.linspace(-1, 1, 7)
    c = ch.gaussian_grid_corruption(xs, 0.3).numpy()
    w = np.exp(-((xs[None] - xs[:, None]) ** 2) / (2 * 0.3**2))
    np.testing.assert_allclose(c, w / w.sum(1, keepdims=True), atol=1e-15)
    brute = np.zeros((6, 6))
    for x in range(6):
        for u in range(-2, 3):
            brute[x, min(5, max(0, x + u))] += 1 / 5
    np.testing.assert_allclose(ch.window_corruption(6, 2).numpy(), brute, atol=1e-15)


def test_nonparametric_chain_matches_the_parzen_target() -> None:
    """Spec T22: 2000 chains, 200 steps: mean and covariance within 0.05 of the Parzen-smoothed target."""
    from dae_tutor import densities

    data = densities.Spiral().sample(200, generator=torch.Generator().manual_seed(0)).double()
    data = data / data.std(0)  # spec §3.2 prototype has a spiral of unit scale
    s, sigma = 0.05, 0.3
    gen = torch.Generator().manual_seed(1)
    x = data[torch.randint(len(data), (2000,), generator=gen)]
    for _ in range(200):
        x = ch.nonparametric_dae_step(x, data, sigma, s, gen)
    target_mean = data.mean(0)
    target_cov = torch.cov(data.T, correction=0) + s**2 * torch.eye(2)
    assert (x.mean(0) - target_mean).abs().max() < 0.05
    assert (torch.cov(x.T, correction=0) - target_cov).abs().max() < 0.05


def test_gaussian_dae_step_is_the_reconstruction_plus_gaussian_noise() -> None:
    """The chain step of a Gaussian-head DAE is r(x + sigma eps) + s eps'."""
    r = nets.AutoEncoder(2, 16, seed=0, dtype=torch.float64)
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sigma, s = 0.3, 0.1
    g = torch.Generator().manual_seed(2)
    eps1, eps2 = (torch.randn(x.shape, generator=g, dtype=torch.float64) for _ in range(2))
    got = ch.gaussian_dae_step(r, x, sigma, s, torch.Generator().manual_seed(2))
    torch.testing.assert_close(got, r(x + sigma * eps1) + s * eps2)


# ------------------------------------------------------ salt-and-pepper, factorized decoder (N6; T1, T15)
def bars_3x3(flip: float = 0.05) -> np.ndarray:
    """Spec B N6: the 6 bar prototypes of a 3x3 image (3 rows, 3 columns) with independent bit flips."""
    bits = np.array(list(itertools.product([0, 1], repeat=9)))
    protos = np.zeros((6, 9))
    for j in range(3):
        protos[j, 3 * j : 3 * j + 3] = 1  # horizontal bar j
        protos[3 + j, [j, j + 3, j + 6]] = 1  # vertical bar j
    h = np.abs(bits[:, None, :] - protos[None]).sum(-1)
    return (flip**h * (1 - flip) ** (9 - h)).mean(1)


@pytest.mark.parametrize("rho", [0.1, 0.4])
def test_walkback_inside_the_factorized_family(rho: float) -> None:
    """Spec N12: the walkback fixed point computed inside the factorized family is *worse* than plain
    factorized training (TV 0.220 vs 0.067 at rho = 0.1; 0.637 vs 0.426 at 0.4)."""
    p = bars_3x3()
    c = ch.salt_and_pepper_kernel(9, rho)
    r_wb, _ = ch.walkback_fixed_point(p, c, project=ch.factorized_projection, tol=1e-10)
    np.testing.assert_allclose(ch.factorized_projection(r_wb).numpy(), r_wb.numpy(), atol=1e-12)
    tv_wb = markov.tv_distance(markov.stationary_distribution(ch.dae_transition(c, r_wb)), p)
    plain = ch.factorized_projection(ch.bayes_reconstruction(p, c))
    tv_plain = markov.tv_distance(markov.stationary_distribution(ch.dae_transition(c, plain)), p)
    expected = {0.1: (0.220, 0.067), 0.4: (0.637, 0.426)}[rho]
    assert (tv_wb, tv_plain) == pytest.approx(expected, abs=1.5e-3)


@pytest.mark.parametrize(("d", "rho"), [(1, 0.3), (3, 0.4), (4, 1.0), (5, 0.0), (6, 0.17)])
def test_salt_and_pepper_kernel_by_enumeration(d: int, rho: float) -> None:
    """Spec T1."""
    c = ch.salt_and_pepper_kernel(d, rho).numpy()
    assert c.shape == (2**d, 2**d) and c.dtype == np.float64
    np.testing.assert_allclose(c.sum(1), 1, atol=1e-12)
    states = list(itertools.product([0, 1], repeat=d))
    brute = np.empty_like(c)
    for a, x in enumerate(states):  # corrupt w.p. rho, then 0/1 w.p. 1/2: P(bit out | bit in), per bit
        for b, xt in enumerate(states):
            brute[a, b] = np.prod([(1 - rho) * (u == v) + rho / 2 for u, v in zip(x, xt, strict=True)])
    np.testing.assert_allclose(c, brute, atol=1e-15)
    ham = np.array([[sum(u != v for u, v in zip(x, xt, strict=True)) for xt in states] for x in states])
    np.testing.assert_allclose(c, (1 - rho / 2) ** (d - ham) * (rho / 2) ** ham, atol=1e-15)  # closed form


def test_salt_and_pepper_kernel_matches_monte_carlo_of_the_definition() -> None:
    d, rho, n = 4, 0.4, 200_000
    rng = np.random.default_rng(6)
    x = np.array([1, 0, 1, 1])
    mask = rng.random((n, d)) < rho
    noisy = np.where(mask, rng.integers(0, 2, (n, d)), x)
    freq = np.bincount(noisy @ (1 << np.arange(d - 1, -1, -1)), minlength=16) / n
    row = ch.salt_and_pepper_kernel(d, rho).numpy()[0b1011]
    assert np.all(np.abs(freq - row) <= 5 * np.sqrt(row * (1 - row) / n))


def test_factorized_projection_by_hand_and_on_products() -> None:
    rng = np.random.default_rng(15)
    r = random_stochastic(rng, 8)
    rf = ch.factorized_projection(r).numpy()
    np.testing.assert_allclose(rf.sum(1), 1, atol=1e-12)  # T15: product rows sum to 1
    bits = np.array(list(itertools.product([0, 1], repeat=3)))
    m = r @ bits
    brute = np.array([[np.prod(np.where(b == 1, m[t], 1 - m[t])) for b in bits] for t in range(8)])
    np.testing.assert_allclose(rf, brute, atol=1e-15)
    np.testing.assert_allclose(rf @ bits, m, atol=1e-14)  # the marginals are kept
    np.testing.assert_allclose(ch.factorized_projection(rf).numpy(), rf, atol=1e-14)  # a projection
    c = ch.salt_and_pepper_kernel(3, 0.3).numpy()  # already a product: unchanged
    np.testing.assert_allclose(ch.factorized_projection(c).numpy(), c, atol=1e-15)


@pytest.mark.parametrize(("rho", "tv_fact"), [(0.1, 0.067), (0.2, 0.178), (0.4, 0.426)])
def test_bars_exact_and_factorized_decoders(rho: float, tv_fact: float) -> None:
    """Spec N6, T15: 3x3 bars, 5% flips; the exact posterior is exact, the factorized one is biased."""
    p = bars_3x3()
    c = ch.salt_and_pepper_kernel(9, rho)
    r = ch.bayes_reconstruction(p, c)
    assert markov.tv_distance(markov.stationary_distribution(ch.dae_transition(c, r)), p) < 1e-10
    rf = ch.factorized_projection(r)
    got = markov.tv_distance(markov.stationary_distribution(ch.dae_transition(c, rf)), p)
    assert got == pytest.approx(tv_fact, abs=1e-3)


def test_exact_chain_lambda2_at_rho_0_1() -> None:
    """Spec N6."""
    c = ch.salt_and_pepper_kernel(9, 0.1)
    t = ch.dae_transition(c, ch.bayes_reconstruction(bars_3x3(), c))
    assert markov.second_eigenvalue_modulus(t) == pytest.approx(0.944, abs=1e-3)


# ------------------------------------------------------------------------------------ clamping (N14; T13)
def n14_setup() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.random.Generator]:
    """Spec B N14: default_rng(5), x = (x_a, x_b) in 4x3 (index 3 x_a + x_b), P ~ Dir(0.7), each
    coordinate kept w.p. 0.6 else redrawn uniformly, clamp x_b = 1."""
    rng = np.random.default_rng(5)
    p = rng.dirichlet(0.7 * np.ones(12))
    c = np.kron(0.6 * np.eye(4) + 0.4 / 4, 0.6 * np.eye(3) + 0.4 / 3)
    return p, c, np.arange(12) % 3 == 1, rng


def test_clamped_transition_by_enumeration() -> None:
    rng = np.random.default_rng(30)
    f, g = random_stochastic(rng, 6)[:, :4], random_stochastic(rng, 6)[:4]  # rectangular f, g
    f /= f.sum(1, keepdims=True)
    g /= g.sum(1, keepdims=True)
    s = [1, 2, 4]
    want = np.zeros((3, 3))
    for a, x in enumerate(s):
        for b, x2 in enumerate(s):
            want[a, b] = sum(f[x, h] * g[h, x2] / sum(g[h, y] for y in s) for h in range(4))
    np.testing.assert_allclose(ch.clamped_transition(f, g, s).numpy(), want, atol=1e-15)
    mask = np.isin(np.arange(6), s)
    np.testing.assert_allclose(ch.clamped_transition(f, g, mask).numpy(), want, atol=1e-15)
    pi_s = ch.clamped_stationary(f, g, s).numpy()
    assert np.all(pi_s[~mask] == 0)
    np.testing.assert_allclose(pi_s[mask], np_stationary(want), atol=1e-12)
    gs = ch.clamp_decoder(g, s).numpy()
    np.testing.assert_allclose(gs.sum(1), 1, atol=1e-15)
    assert np.all(gs[:, ~mask] == 0)


def test_encoder_decoder_joint_is_stationary_for_the_pair_chain() -> None:
    rng = np.random.default_rng(31)
    f, g = random_stochastic(rng, 5)[:, :3] + 0.1, random_stochastic(rng, 3, conc=1.0)
    f /= f.sum(1, keepdims=True)
    g = np.hstack([g, rng.dirichlet(np.ones(2), size=3) * 0.5])
    g /= g.sum(1, keepdims=True)
    joint = ch.encoder_decoder_joint(f, g).numpy()  # (5, 3), pi(x, h)
    # App. 5.B Prop. 3: sum_{x,h} pi(x,h) f(h'|x) g(x'|h') = pi(x',h')
    np.testing.assert_allclose(np.einsum("xh,xk,ky->yk", joint, f, g), joint, atol=1e-14)
    np.testing.assert_allclose(joint.sum(1), np_stationary(f @ g), atol=1e-12)


def test_exact_posterior_clamps_exactly() -> None:
    """Spec N14, T13."""
    p, c, s, _ = n14_setup()
    r = ch.bayes_reconstruction(p, c)
    target = ch.conditional_on(p, s)
    np.testing.assert_allclose(target.numpy(), np.where(s, p, 0) / p[s].sum(), atol=1e-16)
    assert markov.tv_distance(ch.clamped_stationary(c, r, s), target) < 1e-10  # prototype 1.6e-16
    assert ch.clamped_encoder_residual(ch.encoder_decoder_joint(c, r), c, s) < 1e-12  # prototype 6e-17
    np.testing.assert_allclose(ch.encoder_decoder_joint(c, r).numpy(), p[:, None] * c, atol=1e-15)
    assert markov.detailed_balance_violation(ch.dae_transition(c, r), p) < 1e-12  # reversible ([DLB] L911)


def test_any_compatible_pair_clamps_exactly_for_every_clamping_set() -> None:
    """Spec T13."""
    rng = np.random.default_rng(13)
    joint = rng.dirichlet(np.ones(60)).reshape(12, 5)  # pi(x, h), |H| = 5
    f = joint / joint.sum(1, keepdims=True)
    g = (joint / joint.sum(0)).T
    px = joint.sum(1)
    for s in ([0, 1, 2], np.arange(12) % 3 == 1, [3, 7, 8, 11], [5], list(range(12))):
        target = ch.conditional_on(px, s)
        assert markov.tv_distance(ch.clamped_stationary(f, g, s), target) < 1e-10  # prototype 7e-17
        assert ch.clamped_encoder_residual(joint, f, s) < 1e-12
    np.testing.assert_allclose(ch.encoder_decoder_joint(f, g).numpy(), joint, atol=1e-14)


@pytest.mark.parametrize(
    ("eps", "tv_clamp", "tv_p", "db"),
    [(0.05, 3.26e-3, 0.0239, 8.95e-4), (0.2, 1.59e-2, 0.0914, 3.05e-3), (0.5, 3.49e-2, 0.2155, 5.24e-3)],
)
def test_perturbed_decoder_breaks_clamping_and_detailed_balance(
    eps: float, tv_clamp: float, tv_p: float, db: float
) -> None:
    """Spec N14, T13: R~ = (1 - eps) R + eps E, E rows ~ Dir(1) (one E drawn after P)."""
    p, c, s, rng = n14_setup()
    e = rng.dirichlet(np.ones(12), size=12)
    r_tilde = (1 - eps) * ch.bayes_reconstruction(p, c).numpy() + eps * e
    t = c @ r_tilde
    pi_tilde = np_stationary(t)
    got = markov.tv_distance(ch.clamped_stationary(c, r_tilde, s), ch.conditional_on(pi_tilde, s))
    assert got > 1e-4 and got == pytest.approx(tv_clamp, rel=1e-2)
    assert markov.tv_distance(pi_tilde, p) == pytest.approx(tv_p, rel=1e-2)
    assert markov.detailed_balance_violation(t, pi_tilde) == pytest.approx(db, rel=1e-2)
    assert ch.clamped_encoder_residual(ch.encoder_decoder_joint(c, r_tilde), c, s) > 1e-3  # eq. 5.5 fails too


# ------------------------------------------------------------------------ GSN with latent state (N8; T12)
def n8_setup() -> tuple[np.ndarray, np.ndarray]:
    """Spec B N8: default_rng(3), |X| = 6, |H| = 5, P ~ Dir(1), f[x, h'] = 0.7 Dir(0.3) + 0.3 delta_{h'}."""
    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.ones(6))
    return p, 0.7 * rng.dirichlet(0.3 * np.ones(5), size=(6, 5)) + 0.3 * np.eye(5)[None]


def test_gsn_joint_transition_and_burnin_by_enumeration() -> None:
    p, f = n8_setup()
    g = ch.gsn_decoder_target(p, ch.burnin_hidden(f, 2)).numpy()
    m = ch.gsn_joint_transition(f, g).numpy()
    want = np.zeros((30, 30))
    for x, h, x2, h2 in itertools.product(range(6), range(5), range(6), range(5)):
        want[x * 5 + h, x2 * 5 + h2] = f[x, h, h2] * g[h2, x2]
    np.testing.assert_allclose(m, want, atol=1e-16)
    np.testing.assert_allclose(m.sum(1), 1, atol=1e-12)
    q3 = np.stack([np.linalg.matrix_power(f[x], 3)[1] for x in range(6)])  # 3 steps from h = 1
    np.testing.assert_allclose(ch.burnin_hidden(f, 3, h_init=1).numpy(), q3, atol=1e-15)
    q = ch.burnin_hidden(f, 4).numpy()
    joint = p[:, None] * q
    np.testing.assert_allclose(ch.gsn_decoder_target(p, q).numpy(), (joint / joint.sum(0)).T, atol=1e-15)
    pi = np.arange(30.0) / np.arange(30.0).sum()
    np.testing.assert_allclose(ch.gsn_marginal_x(pi, 6, 5).numpy(), pi.reshape(6, 5).sum(1), atol=1e-16)


def test_theorem3_exact_fixed_point() -> None:
    """Spec N8, T12."""
    p, f = n8_setup()
    q_inf = ch.burnin_hidden(f, None).numpy()
    for x in range(6):  # the fixed point is the stationary law of every f[x]
        np.testing.assert_allclose(q_inf[x], np_stationary(f[x]), atol=1e-12)
    pi = markov.stationary_distribution(ch.gsn_joint_transition(f, ch.gsn_decoder_target(p, q_inf)))
    assert markov.tv_distance(ch.gsn_marginal_x(pi, 6, 5), p) < 1e-10  # prototype 2e-16
    assert np.abs(pi.numpy().reshape(6, 5) - p[:, None] * q_inf).max() < 1e-10  # joint = P(x) q(h|x)


@pytest.mark.parametrize(
    ("k", "tv"),
    [(1, 0.0375), (2, 0.0345), (3, 0.0159), (5, 0.0070), (10, 0.0026), (20, 8.5e-5), (50, 2.6e-9)],
)
def test_burn_in_fixes_the_h0_zero_start(k: int, tv: float) -> None:
    """Spec N8, T12: TV(pi_X, P) against burn-in k (k = 1 is the papers' H_0 = 0, [TH] L1821)."""
    p, f = n8_setup()
    g = ch.gsn_decoder_target(p, ch.burnin_hidden(f, k))
    got = markov.tv_distance(
        ch.gsn_marginal_x(markov.stationary_distribution(ch.gsn_joint_transition(f, g)), 6, 5), p
    )
    assert got == pytest.approx(tv, rel=0.03)
    if k == 50:
        assert got < 1e-6  # T12


# ---------------------------------------------------------------------------------------------- bad inputs
GOOD = ch.corruption_matrix(4, "mix_uniform", 0.5)
GOOD_R = ch.bayes_reconstruction([0.1, 0.2, 0.3, 0.4], GOOD)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: ch.bayes_reconstruction(np.ones(3) / 3, GOOD), ValueError, "P has 3 states but C has 4"),
        (lambda: ch.bayes_reconstruction([0.5, 0.5, 0.5, 0.5], GOOD), ValueError, "P must sum to 1"),
        (lambda: ch.bayes_reconstruction([1.5, -0.5, 0, 0], GOOD), ValueError, "P must be non-negative"),
        (lambda: ch.bayes_reconstruction(np.ones((2, 2)) / 4, GOOD), ValueError, "P must be a non-empty 1-D"),
        (lambda: ch.dae_transition(GOOD, np.eye(3)), ValueError, "R has 3 states but C has 4"),
        (lambda: ch.dae_transition(GOOD, -GOOD), ValueError, "R must have non-negative"),
        (lambda: ch.dae_transition(torch.ones(4, 4, dtype=torch.bool), GOOD), TypeError, "C must hold real"),
        (lambda: ch.counting_estimator([0.0, 1.0], [0, 1], 2), TypeError, "x must hold integer states"),
        (
            lambda: ch.counting_estimator([0, 1], [0, 2], 2),
            ValueError,
            r"x_tilde must hold states in \[0, 2\)",
        ),
        (
            lambda: ch.counting_estimator([0, 1], [0], 2),
            ValueError,
            "x and x_tilde must have the same length",
        ),
        (lambda: ch.counting_estimator([0], [0], 2, alpha=-1), ValueError, "alpha must be >= 0"),
        (lambda: ch.counting_estimator([0], [0], 0), ValueError, "K must be >= 1"),
        (lambda: ch.counting_estimator([[0]], [[0]], 2), ValueError, "x must be a state or a 1-D"),
        (lambda: ch.corruption_matrix(4, "gauss"), ValueError, "kind must be one of"),
        (lambda: ch.corruption_matrix(4, q=1.5), ValueError, r"q must be in \[0, 1\]"),
        (lambda: ch.corruption_matrix(1), ValueError, "K must be >= 2"),
        (lambda: ch.corruption_matrix(4.0), TypeError, "K must be an integer"),
        (lambda: ch.window_corruption(4, -1), ValueError, "radius must be >= 0"),
        (
            lambda: ch.walkback_corruption(GOOD, GOOD_R, 0.0),
            ValueError,
            r"p_stop must be in the open interval",
        ),
        (
            lambda: ch.walkback_corruption(GOOD, GOOD_R, 1.0),
            ValueError,
            r"p_stop must be in the open interval",
        ),
        (lambda: ch.walkback_corruption(GOOD, GOOD_R, -0.2), ValueError, "p_stop must be >= 0"),
        (lambda: ch.walkback_corruption(GOOD, GOOD_R, True), TypeError, "p_stop must be a real number"),
        (lambda: ch.walkback_pairs(4, GOOD, GOOD_R), ValueError, r"x must hold states in \[0, 4\)"),
        (lambda: ch.walkback_pairs([1, 2], GOOD, GOOD_R), ValueError, "x must be a single state"),
        (lambda: ch.walkback_pairs(1, GOOD, GOOD_R, 1.5), ValueError, "p_stop"),
        (
            lambda: ch.walkback_pairs(1, GOOD, GOOD_R, generator=0),
            TypeError,
            "generator must be a torch.Generator",
        ),
        (lambda: ch.walkback_batch(1, GOOD, GOOD_R), ValueError, "x must be a 1-D tensor"),
        (lambda: ch.walkback_fixed_point([1.0, 0, 0], GOOD), ValueError, "P has 3 states but C has 4"),
        (lambda: ch.sample_pairs([0.5, 0.5], GOOD, 3), ValueError, "P has 2 states but C has 4"),
        (lambda: ch.salt_and_pepper_kernel(13, 0.5), ValueError, "d must be <= 12"),
        (lambda: ch.salt_and_pepper_kernel(0, 0.5), ValueError, "d must be >= 1"),
        (lambda: ch.salt_and_pepper_kernel(3, 1.5), ValueError, r"rho must be in \[0, 1\]"),
        (lambda: ch.salt_and_pepper_kernel(3.0, 0.5), TypeError, "d must be an integer"),
        (lambda: ch.factorized_projection(np.eye(3)), ValueError, r"R must have 2\*\*d entries"),
        (lambda: ch.clamped_stationary(GOOD, GOOD_R, []), ValueError, "S must contain at least one state"),
        (lambda: ch.clamped_stationary(GOOD, GOOD_R, [4]), ValueError, r"S must hold states in \[0, 4\)"),
        (lambda: ch.clamp_decoder(GOOD_R, np.ones(3, bool)), ValueError, r"S as a boolean mask must have"),
        (lambda: ch.clamped_transition(GOOD, np.eye(3), [0]), ValueError, r"g must have shape \(n_h, n_x\)"),
        (lambda: ch.clamped_transition(np.eye(2)[::-1], np.eye(2), [0]), ValueError, "g puts no mass on S"),
        (lambda: ch.conditional_on([0.0, 1.0], [0]), ValueError, "p must give S positive probability"),
        (
            lambda: ch.clamped_encoder_residual(np.ones((4, 3)) / 12, GOOD, [0]),
            ValueError,
            "pi_joint must have the shape",
        ),
        (
            lambda: ch.encoder_decoder_joint(np.ones((2, 3)), np.eye(3)),
            ValueError,
            "f must be row-stochastic",
        ),
        (
            lambda: ch.burnin_hidden(np.ones((2, 3)) / 3, 1),
            ValueError,
            r"f must have shape \(n_x, n_h, n_h\)",
        ),
        (lambda: ch.burnin_hidden(np.ones((2, 3, 3)) / 3, 0), ValueError, "k must be >= 1"),
        (
            lambda: ch.burnin_hidden(np.ones((2, 3, 3)) / 3, 1, h_init=3),
            ValueError,
            "h_init must be a latent",
        ),
        (
            lambda: ch.burnin_hidden(np.ones((1, 2, 2)) / 2 * [1, 3], 1),
            ValueError,
            "f must be row-stochastic",
        ),
        (lambda: ch.burnin_hidden(np.eye(2)[None], None), ValueError, "unique stationary distribution"),
        (lambda: ch.gsn_decoder_target([0.5, 0.5], np.ones((3, 2)) / 2), ValueError, "P has 2 states but q"),
        (lambda: ch.gsn_joint_transition(np.ones((2, 3, 3)) / 3, np.eye(3)), ValueError, "g must have shape"),
        (lambda: ch.gsn_marginal_x(np.ones(6) / 6, 2, 2), ValueError, "pi_joint must have n_x"),
    ],
)
def test_bad_inputs_raise_naming_the_argument(call, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: ch.gaussian_grid_corruption([0.0], 1.0), ValueError, "xs"),
        (lambda: ch.gaussian_grid_corruption([0.0, 1.0], 0.0), ValueError, "sigma"),
        (lambda: ch.unimodal_projection(np.eye(3), [0.0, 1.0]), ValueError, "xs"),
        (lambda: ch.unimodal_projection(np.full((2, 2), 0.7), [0.0, 1.0]), ValueError, "R"),
        (lambda: ch.online_counting_training(PMF_A, np.eye(10), 1, spurious=10), ValueError, "spurious"),
        (lambda: ch.online_counting_training(PMF_A, np.eye(10), 0, spurious=1), ValueError, "epochs"),
        (lambda: ch.online_counting_training(PMF_A, np.eye(9), 1, spurious=1), ValueError, "P"),
        (lambda: ch.walkback_fixed_point(PMF_A, np.eye(10), project=3), TypeError, "project"),
        (
            lambda: ch.nonparametric_dae_step(torch.zeros(2, 2), torch.zeros(3, 3), 0.1, 0.1),
            ValueError,
            "train_x",
        ),
        (
            lambda: ch.nonparametric_dae_step(torch.zeros(2, 2), torch.zeros(3, 2), -1, 0.1),
            ValueError,
            "sigma_c",
        ),
    ],
)
def test_new_bad_inputs_raise_naming_the_argument(call, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()


def test_public_names() -> None:
    for name in ch.__all__:
        assert hasattr(ch, name), name


# ----------------------------------------------------------------------- energy from P(x | x~), GDAE §2.4
def test_log_density_difference_is_exact_for_the_bayes_posterior_at_every_x_tilde() -> None:
    """Spec A §4.5 (derived check), §5.3.15: with the exact posterior the estimate equals
    log p(x2) - log p(x1) for every pair and every reachable x~ (to float64 rounding)."""
    P, C = n1_setup()
    R = ch.bayes_reconstruction(P, C)
    pairs = torch.tensor(list(itertools.product(range(10), repeat=2)))
    for xt in range(10):
        x1, x2 = pairs[:, 0], pairs[:, 1]
        reach = (C[x1, xt] > 0) & (C[x2, xt] > 0)
        x_tilde = torch.full_like(x1, xt)
        est = ch.log_density_difference(
            lambda x, t: R[t, x].log(), lambda t, x: C[x, t].log(), x1[reach], x2[reach], x_tilde[reach]
        )
        truth = np.log(P[x2[reach].numpy()]) - np.log(P[x1[reach].numpy()])
        np.testing.assert_allclose(est.numpy(), truth, rtol=0, atol=1e-12)


def test_log_density_difference_gaussian_mixture_closed_form() -> None:
    """A 1-d two-component Gaussian mixture with Gaussian corruption: the posterior P(x | x~) in closed
    form (p(x) N(x~; x, s^2) / q(x~)) gives the exact log-density difference at the default midpoint;
    a wrong posterior (the corruption itself, i.e. ignoring p) fails by the full difference."""
    w, mu, sd, s = torch.tensor([0.3, 0.7], dtype=F64), torch.tensor([-1.0, 2.0], dtype=F64), 0.5, 0.4

    def log_p(x: torch.Tensor) -> torch.Tensor:
        comp = -0.5 * ((x - mu) / sd) ** 2 - math.log(sd * math.sqrt(2 * math.pi))
        return torch.logsumexp(comp + w.log(), -1)

    def log_c(xt: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return (-0.5 * ((xt - x) / s) ** 2 - math.log(s * math.sqrt(2 * math.pi))).sum(-1)

    def log_q(xt: torch.Tensor) -> torch.Tensor:  # the corrupted marginal: components of std √(sd² + s²)
        v = math.sqrt(sd**2 + s**2)
        comp = -0.5 * ((xt - mu) / v) ** 2 - math.log(v * math.sqrt(2 * math.pi))
        return torch.logsumexp(comp + w.log(), -1)

    def log_post(x: torch.Tensor, xt: torch.Tensor) -> torch.Tensor:
        return log_p(x) + log_c(xt, x) - log_q(xt)

    gen = torch.Generator().manual_seed(0)
    x1 = 3 * torch.randn(50, 1, generator=gen, dtype=F64)
    x2 = 3 * torch.randn(50, 1, generator=gen, dtype=F64)
    est = ch.log_density_difference(log_post, log_c, x1, x2)
    torch.testing.assert_close(est, log_p(x2) - log_p(x1), rtol=0, atol=1e-12)
    wrong = ch.log_density_difference(log_c, log_c, x1, x2)  # control: P(x | x~) = C(x~ | x)
    assert torch.equal(wrong, torch.zeros_like(wrong)) and float((log_p(x2) - log_p(x1)).abs().max()) > 1


def test_log_density_difference_checks() -> None:
    f = lambda x, t: x.double().sum(-1)  # noqa: E731
    with pytest.raises(ValueError, match="x_tilde is required"):
        ch.log_density_difference(f, f, torch.tensor([0]), torch.tensor([1]))
    with pytest.raises(ValueError, match="x1 and x2"):
        ch.log_density_difference(f, f, torch.zeros(2, 1), torch.zeros(3, 1))
    with pytest.raises(TypeError, match="log_corruption"):
        ch.log_density_difference(f, 1, torch.zeros(2, 1), torch.zeros(2, 1))


def test_posterior_spread_two_points_closed_form_and_one_point_zero() -> None:
    # Two training points ±a in 1-d: w = sigmoid(2a x̃/σ²) on +a, the posterior variance is 4a² w(1 − w).
    a, sigma = 0.3, 0.2
    train_x = torch.tensor([[a], [-a]], dtype=torch.float64)
    xt = torch.tensor([[0.0], [0.1], [-0.25], [0.7]], dtype=torch.float64)
    w = torch.sigmoid(2 * a * xt[:, 0] / sigma**2)
    expected = math.sqrt((4 * a**2 * w * (1 - w)).mean().item())
    assert ch.posterior_spread(train_x, xt, sigma) == pytest.approx(expected, rel=1e-12)
    assert ch.posterior_spread(train_x, torch.zeros(1, 1), sigma) == pytest.approx(a, rel=1e-12)  # w = 1/2
    # one training point: the posterior is a point mass, whatever x̃ and σ
    assert ch.posterior_spread(train_x[:1], xt, sigma) == 0.0
    # per coordinate: a repeated coordinate doubles ‖x̃ − x_i‖², as σ² → 2σ² would; the spread is the same
    doubled = ch.posterior_spread(train_x.repeat(1, 2), xt.repeat(1, 2), sigma * math.sqrt(2))
    assert doubled == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="x_tilde"):
        ch.posterior_spread(train_x, torch.zeros(2, 3), sigma)
    with pytest.raises(ValueError, match="sigma_c"):
        ch.posterior_spread(train_x, xt, 0.0)
