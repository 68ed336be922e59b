"""Tests of dae_tutor.chains against independent truths: hand-built matrices, NumPy linear algebra, the
spec's reference numbers (``shared/spec/B_gsn.md`` N1-N13, T1-T10, T17; ``A_dae_score.md`` §5.3.15)
and Monte Carlo within CLT bounds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from dae_tutor import chains as ch

F64 = torch.float64
PMF_A = np.array([1, 3, 6, 3, 1, 1, 2, 5, 8, 4], dtype=float) / 34  # spec A §4.7(i)


# ----------------------------------------------------------------------------------------- helpers (numpy)
def np_ring(k: int, q: float) -> np.ndarray:
    c = (1 - q) * np.eye(k)
    for x in range(k):
        c[x, (x + 1) % k] += q / 2
        c[x, (x - 1) % k] += q / 2
    return c


def np_bayes(p: np.ndarray, c: np.ndarray) -> np.ndarray:
    joint = p[:, None] * c
    return (joint / joint.sum(0)).T


def np_stationary(t: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eig(t.T)
    v = np.real(vecs[:, np.argmin(abs(vals - 1))])
    return v / v.sum()


def random_stochastic(rng: np.random.Generator, k: int, conc: float = 1.0) -> np.ndarray:
    return rng.dirichlet(conc * np.ones(k), size=k)


def n1_setup() -> tuple[np.ndarray, torch.Tensor]:
    """Spec B Appendix A, N1/N9: default_rng(0), K=10, P ~ Dir(0.5), ring q=0.6."""
    return np.random.default_rng(0).dirichlet(0.5 * np.ones(10)), ch.corruption_matrix(10, "ring", 0.6)


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
def test_n1_exact_posterior_gives_the_data_distribution() -> None:
    p, c = n1_setup()
    r = ch.bayes_reconstruction(p, c)
    t = ch.dae_transition(c, r)
    pi = ch.stationary_distribution(t)
    assert ch.tv_distance(pi, p) < 1e-10  # spec prototype: 6.6e-16
    # eq. 5.1: P(x) C(x~|x) = R(x|x~) P(x~), checked entrywise
    joint = p[:, None] * c.numpy()
    np.testing.assert_allclose(joint, r.numpy().T * joint.sum(0), atol=1e-15)
    np.testing.assert_allclose(t.numpy(), c.numpy() @ np_bayes(p, c.numpy()), atol=1e-14)
    assert ch.detailed_balance_violation(t, p) < 1e-12  # prototype: 7e-18


def test_t3_t4_random_exact_chains_are_stationary_reversible_with_real_nonnegative_spectrum() -> None:
    rng = np.random.default_rng(12)
    for i in range(20):
        k = int(rng.integers(2, 31))
        p = rng.dirichlet(0.5 * np.ones(k))
        c = random_stochastic(rng, k) + 1e-3  # positive C
        c /= c.sum(1, keepdims=True)
        t = ch.dae_transition(c, ch.bayes_reconstruction(p, c))
        assert ch.tv_distance(ch.stationary_distribution(t), p) < 1e-10, i
        assert ch.detailed_balance_violation(t, p) < 1e-12
        lam = np.linalg.eigvals(t.numpy())
        assert np.abs(lam.imag).max() < 1e-9 and lam.real.min() > -1e-9
    # the spec's 15x15 check: D^{1/2} T D^{-1/2} is symmetric PSD
    p = rng.dirichlet(np.ones(15))
    c = random_stochastic(rng, 15)
    t = ch.dae_transition(c, ch.bayes_reconstruction(p, c)).numpy()
    s = np.diag(np.sqrt(p)) @ t @ np.diag(1 / np.sqrt(p))
    np.testing.assert_allclose(s, s.T, atol=1e-12)
    assert np.linalg.eigvalsh(0.5 * (s + s.T)).min() > -1e-12


def test_t2_stationary_methods_agree_and_satisfy_the_residual() -> None:
    rng = np.random.default_rng(3)
    checked = 0
    while checked < 10:
        t = random_stochastic(rng, int(rng.integers(2, 25)), conc=0.7)
        if ch.second_eigenvalue_modulus(t) >= 0.99:
            continue
        checked += 1
        pis = {m: ch.stationary_distribution(t, method=m).numpy() for m in ("lstsq", "eig", "power")}
        for pi in pis.values():
            assert np.abs(pi @ t - pi).sum() < 1e-12
            assert pi.min() >= -1e-14 and abs(pi.sum() - 1) < 1e-12
            np.testing.assert_allclose(pi, np_stationary(t), atol=1e-9)
        np.testing.assert_allclose(pis["eig"], pis["lstsq"], atol=1e-9)
        np.testing.assert_allclose(pis["power"], pis["lstsq"], atol=1e-9)


def test_stationary_of_periodic_and_transient_chains() -> None:
    # a 3-cycle is irreducible but periodic: pi is uniform by every method (power uses the lazy chain)
    cycle = np.roll(np.eye(3), 1, axis=1)
    for m in ("lstsq", "eig", "power"):
        np.testing.assert_allclose(ch.stationary_distribution(cycle, method=m).numpy(), 1 / 3, atol=1e-12)
    # P with zeros: states off the support are transient, and pi is still P (one closed class)
    p = np.array([0.5, 0.0, 0.3, 0.2, 0.0])
    c = ch.corruption_matrix(5, "local_walk", 0.5)
    t = ch.dae_transition(c, ch.bayes_reconstruction(p, c))
    assert len(ch.closed_classes(t)) == 1
    assert ch.tv_distance(ch.stationary_distribution(t), p) < 1e-12


def test_result_device_and_dtype_follow_the_input() -> None:
    t = torch.tensor([[0.9, 0.1], [0.2, 0.8]], dtype=torch.float32)  # rows sum to 1 - 2e-8 in float32
    pi = ch.stationary_distribution(t)
    assert pi.dtype == F64 and pi.device == t.device
    np.testing.assert_allclose(pi.numpy(), [2 / 3, 1 / 3], atol=1e-7)
    with pytest.raises(ValueError, match="T must be row-stochastic"):  # float32 tolerance is 64 eps, not more
        ch.stationary_distribution(t + torch.tensor([[1e-4, 0.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="T must be row-stochastic"):  # float64 input: 1e-9; the float32
        ch.stationary_distribution(t.double())  # values cast to float64 are 2e-8 off and are refused
    exact = torch.tensor([[0.9, 0.1], [0.2, 0.8]], dtype=F64)
    np.testing.assert_allclose(ch.stationary_distribution(exact).numpy(), [2 / 3, 1 / 3], atol=1e-15)
    assert ch.stationary_distribution([[0.9, 0.1], [0.2, 0.8]]).dtype == F64  # lists are accepted


# ----------------------------------------------------------------------------- ergodicity (N2, N4; T5, T7)
def test_n2_identity_corruption_is_reducible_and_constant_corruption_mixes_in_one_step() -> None:
    p = PMF_A
    eye = np.eye(10)
    t = ch.dae_transition(eye, ch.bayes_reconstruction(p, eye))
    np.testing.assert_allclose(t.numpy(), eye, atol=1e-15)
    assert len(ch.closed_classes(t)) == 10 == int(np.sum(np.abs(np.linalg.eigvals(t.numpy()) - 1) < 1e-9))
    with pytest.raises(ValueError, match=r"T is reducible: it has 10 closed communicating classes"):
        ch.stationary_distribution(t)
    c = np.tile(np.random.default_rng(0).dirichlet(np.ones(10)), (10, 1))  # C(x~|x) = c(x~)
    r = ch.bayes_reconstruction(p, c)
    np.testing.assert_allclose(r.numpy(), np.tile(p, (10, 1)), atol=1e-15)
    assert ch.second_eigenvalue_modulus(ch.dae_transition(c, r)) < 1e-9


@pytest.mark.parametrize(
    ("radius", "lam2", "mass"),
    [(1, 1.0, 0.0), (2, 1.0, 0.0), (3, 1.0, 0.0), (4, 0.949, 0.497), (5, 0.860, 0.5)],
)
def test_n4_t7_local_corruption_must_cross_the_gap(radius: int, lam2: float, mass: float) -> None:
    p = n4_setup()
    c = ch.window_corruption(16, radius)
    t = ch.dae_transition(c, ch.bayes_reconstruction(p, c))
    n_classes = len(ch.closed_classes(t))
    assert n_classes == int(np.sum(np.abs(np.linalg.eigvals(t.numpy()) - 1) < 1e-9))  # numpy agrees
    assert n_classes == (2 if radius <= 3 else 1)
    assert ch.second_eigenvalue_modulus(t) == pytest.approx(lam2, abs=1e-3)
    start = np.zeros(16)
    start[0] = 1
    after = start @ np.linalg.matrix_power(t.numpy(), 100)
    assert after[10:14].sum() == pytest.approx(mass, abs=1e-3)  # mass on the second cluster
    if radius <= 3:
        with pytest.raises(ValueError, match="reducible"):
            ch.stationary_distribution(t)
    else:
        assert ch.tv_distance(ch.stationary_distribution(t), p) < 1e-10


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
        tvs.append(ch.tv_distance(ch.stationary_distribution(ch.dae_transition(c, r)), PMF_A))
    assert max(tvs) < bound, tvs


def test_n3_t6_counting_error_falls_like_n_to_the_minus_half() -> None:
    p, c = n1_setup()
    gen = torch.Generator().manual_seed(0)
    means = []
    for n in (1_000, 10_000, 100_000):
        tvs = []
        for _ in range(20):
            x, xt = ch.sample_pairs(p, c, n, gen)
            r = ch.counting_estimator(x, xt, 10)
            tvs.append(ch.tv_distance(ch.stationary_distribution(ch.dae_transition(c, r)), p))
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


# ------------------------------------------------------------------------------------- Schweitzer (N9, T8)
def test_t8_schweitzer_bound_holds_on_200_random_perturbations() -> None:
    rng = np.random.default_rng(8)
    for i in range(200):
        k = int(rng.integers(2, 12))
        t = random_stochastic(rng, k, conc=0.5) * 0.99 + 0.01 / k
        eps = 10 ** rng.uniform(-4, 0)
        t_tilde = (1 - eps) * t + eps * random_stochastic(rng, k)
        lhs, rhs = ch.schweitzer_bound(t, t_tilde)
        assert lhs <= rhs + 1e-12, (i, lhs, rhs)
        # the identity behind it, pi~ - pi = pi~ (T~ - T) Z (spec B §1.4, row convention)
        pi, pit = np_stationary(t), np_stationary(t_tilde)
        z = np.linalg.inv(np.eye(k) - t + np.outer(np.ones(k), pi))
        np.testing.assert_allclose(pit - pi, pit @ (t_tilde - t) @ z, atol=1e-10)
        assert lhs == pytest.approx(np.abs(pi - pit).sum(), abs=1e-10)
        assert rhs == pytest.approx(np.abs(z).sum(1).max() * np.abs(t - t_tilde).sum(1).max(), rel=1e-9)


@pytest.mark.parametrize(
    ("eps", "lhs", "rhs"),
    [(0.01, 0.0211, 0.1478), (0.05, 0.0893, 0.7388), (0.1, 0.1513, 1.4777), (0.3, 0.2954, 4.433)],
)
def test_n9_schweitzer_reference_numbers(eps: float, lhs: float, rhs: float) -> None:
    p, c = n1_setup()
    r = ch.bayes_reconstruction(p, c)
    r_tilde = (1 - eps) * r + eps / 10
    got = ch.schweitzer_bound(ch.dae_transition(c, r), ch.dae_transition(c, r_tilde))
    assert got == pytest.approx((lhs, rhs), rel=2e-3)


def test_n9_fundamental_matrix_norm_explodes_as_lambda2_tends_to_one() -> None:
    """Spec B N9 on the N5 grid: (sigma, lambda_2, ||Z||_inf) = (8, .607, 3.2) ... (1, .9998, 7129)."""
    xs = np.arange(40.0)
    p = np.exp(-((xs - 8) ** 2) / 4.5) + np.exp(-((xs - 20) ** 2) / 2) + 0.7 * np.exp(-((xs - 31) ** 2) / 8)
    p /= p.sum()
    expected = {8: (0.607, 3.17), 5: (0.839, 7.65), 3: (0.956, 27.06), 2: (0.991, 137.4), 1: (0.9998, 7129)}
    for sigma, (lam2, znorm) in expected.items():
        c = np.exp(-((xs[None] - xs[:, None]) ** 2) / (2 * sigma**2))
        c /= c.sum(1, keepdims=True)
        t = ch.dae_transition(c, ch.bayes_reconstruction(p, c))
        assert ch.second_eigenvalue_modulus(t) == pytest.approx(lam2, abs=1e-3)
        assert np.abs(ch.fundamental_matrix(t).numpy()).sum(1).max() == pytest.approx(znorm, rel=2e-3)
        assert ch.tv_distance(ch.stationary_distribution(t), p) < 1e-10


# ----------------------------------------------------------------- walkback, exact (N10, N13; T1, T9, T10)
def test_t1_walkback_corruption_is_the_geometric_mixture_of_the_recursion() -> None:
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


def test_n10_t9_walkback_fixed_point() -> None:
    """Spec B N10: default_rng(1), K=12, P ~ Dir(0.3), ring q=0.5 (prototype: converges in ~140
    iterations, max|R_WB - R_1| = 0.27, mean row entropy 1.145 vs 0.540 nats)."""
    p = np.random.default_rng(1).dirichlet(0.3 * np.ones(12))
    c = ch.corruption_matrix(12, "ring", 0.5)
    r1 = ch.bayes_reconstruction(p, c).numpy()
    r_wb, n_iter = ch.walkback_fixed_point(p, c, p_stop=0.5, tol=1e-12)
    assert n_iter <= 500
    fixed = ch.bayes_reconstruction(p, ch.walkback_corruption(c, r_wb, 0.5))
    assert float((fixed - r_wb).abs().max()) < 1e-12
    assert ch.tv_distance(ch.stationary_distribution(ch.dae_transition(c, r_wb)), p) < 1e-10
    assert np.abs(r_wb.numpy() - r1).max() == pytest.approx(0.273, abs=2e-3)

    def entropy(r: np.ndarray) -> float:
        return float(np.mean([-(row[row > 0] * np.log(row[row > 0])).sum() for row in r]))

    assert entropy(r_wb.numpy()) == pytest.approx(1.145, abs=2e-3)
    assert entropy(r1) == pytest.approx(0.540, abs=2e-3)
    with pytest.raises(RuntimeError, match="did not converge"):
        ch.walkback_fixed_point(p, c, max_iter=3)


def test_n13_t10_walkback_chain_is_a_power_series_of_t() -> None:
    """C_WB R = phi(T) with phi(z) = p z / (1 - (1-p) z): same stationary vector, eigenvalues phi(lambda)."""
    rng = np.random.default_rng(13)
    for _ in range(5):
        k = int(rng.integers(3, 15))
        c, r = random_stochastic(rng, k), random_stochastic(rng, k)
        p_stop = float(rng.uniform(0.1, 0.9))
        t = ch.dae_transition(c, r).numpy()
        phi_t = ch.dae_transition(ch.walkback_corruption(c, r, p_stop), r).numpy()
        np.testing.assert_allclose(
            ch.stationary_distribution(phi_t).numpy(), ch.stationary_distribution(t).numpy(), atol=1e-10
        )
        lam = np.linalg.eigvals(t)
        phi_lam = p_stop * lam / (1 - (1 - p_stop) * lam)
        got = np.linalg.eigvals(phi_t)
        rows, cols = linear_sum_assignment(np.abs(got[:, None] - phi_lam[None, :]))  # pair them up
        assert np.abs(got[rows] - phi_lam[cols]).max() < 1e-9


# --------------------------------------------------------------------------------- walkback, sampled (T17)
def test_t17_walkback_pairs_mean_number_of_pairs() -> None:
    """[GDAE] Algorithm 2 with continue probability 0.5: 1e4 calls, mean pairs 2 ± 0.05 (spec A §5.3.15)."""
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
def test_t17_walkback_batch_walk_length_is_geometric(p_stop: float, tol: float) -> None:
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


# ----------------------------------------------------------------------------------- sampling chains vs pi
def test_long_chain_frequencies_within_clt_bounds() -> None:
    """One chain of 2e4 steps of the exact DAE chain (C, R): the visit frequency of each state is within
    5 asymptotic standard deviations of P, the variance from the fundamental matrix (Kemeny-Snell)."""
    c = ch.corruption_matrix(10, "local_walk", 0.5)
    r = ch.bayes_reconstruction(PMF_A, c)
    n = 20_000
    xs = ch.sample_chain((c, r), 0, n, torch.Generator().manual_seed(11)).numpy()
    assert xs.shape == (n + 1,) and xs[0] == 0
    assert np.abs(np.diff(xs)).max() <= 2  # T = C R is pentadiagonal: zero entries are never drawn
    t = c.numpy() @ np_bayes(PMF_A, c.numpy())
    z = np.linalg.inv(np.eye(10) - t + np.outer(np.ones(10), PMF_A))
    freq = np.bincount(xs[1:], minlength=10) / n
    for s in range(10):
        f = (np.arange(10) == s) - PMF_A[s]
        var = 2 * PMF_A @ (f * (z @ f)) - PMF_A @ (f * f)
        assert abs(freq[s] - PMF_A[s]) <= 5 * np.sqrt(var / n), (s, freq[s], PMF_A[s])


def test_parallel_chains_match_the_exact_n_step_distribution() -> None:
    rng = np.random.default_rng(21)
    t = random_stochastic(rng, 6, conc=0.5)
    b, steps = 20_000, 5
    xs = ch.sample_chain(t, torch.zeros(b, dtype=torch.long), steps, torch.Generator().manual_seed(2))
    assert xs.shape == (steps + 1, b) and xs.dtype == torch.int64
    exact = np.linalg.matrix_power(t, steps)[0]
    freq = np.bincount(xs[-1].numpy(), minlength=6) / b
    assert np.all(np.abs(freq - exact) <= 5 * np.sqrt(exact * (1 - exact) / b))
    again = ch.sample_chain(t, torch.zeros(b, dtype=torch.long), steps, torch.Generator().manual_seed(2))
    assert torch.equal(xs, again)
    assert ch.sample_chain(t, 3, 0).tolist() == [3]


# ---------------------------------------------------------------------------------------------- bad inputs
GOOD = ch.corruption_matrix(4, "mix_uniform", 0.5)
GOOD_R = ch.bayes_reconstruction([0.1, 0.2, 0.3, 0.4], GOOD)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: ch.stationary_distribution([[0.5, 0.6], [0.5, 0.5]]),
            ValueError,
            "T must be row-stochastic.*row 0",
        ),
        (
            lambda: ch.stationary_distribution([[1.2, -0.2], [0.5, 0.5]]),
            ValueError,
            "T must have non-negative",
        ),
        (
            lambda: ch.stationary_distribution(np.ones((2, 3)) / 3),
            ValueError,
            r"T must be a non-empty square",
        ),
        (lambda: ch.stationary_distribution([0.5, 0.5]), ValueError, r"T must be a non-empty square"),
        (lambda: ch.stationary_distribution([[np.nan, 1], [0, 1]]), ValueError, "T contains NaN"),
        (lambda: ch.stationary_distribution("T"), TypeError, "T must be a tensor or array-like"),
        (lambda: ch.stationary_distribution(GOOD, method="qr"), ValueError, "method must be one of"),
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
        (lambda: ch.sample_chain(GOOD, 0, -1), ValueError, "n_steps must be >= 0"),
        (lambda: ch.sample_chain(GOOD, 9, 5), ValueError, r"x0 must hold states in \[0, 4\)"),
        (lambda: ch.sample_chain(GOOD, 0.5, 5), TypeError, "x0 must hold integer states"),
        (
            lambda: ch.sample_chain((GOOD, GOOD, GOOD), 0, 5),
            ValueError,
            "transition must be a matrix T or a pair",
        ),
        (lambda: ch.sample_chain(GOOD * 2, 0, 5), ValueError, "transition must be row-stochastic"),
        (lambda: ch.sample_pairs([0.5, 0.5], GOOD, 3), ValueError, "P has 2 states but C has 4"),
        (lambda: ch.schweitzer_bound(GOOD, np.eye(3)), ValueError, "T_tilde has 3 states but T has 4"),
        (lambda: ch.schweitzer_bound(np.eye(4), GOOD), ValueError, "T is reducible"),
        (lambda: ch.tv_distance([0.5, 0.5], [1.0, 0, 0]), ValueError, "q has 3 states but p has 2"),
        (lambda: ch.detailed_balance_violation(GOOD, [0.2, 0.8]), ValueError, "pi has 2 states but T has 4"),
    ],
)
def test_bad_inputs_raise_naming_the_argument(call, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()


@settings(max_examples=40, deadline=None)
@given(
    k=st.integers(2, 8),
    seed=st.integers(0, 2**31 - 1),
    delta=st.floats(1e-6, 0.5) | st.floats(-0.5, -1e-6),
    negative=st.booleans(),
)
def test_hypothesis_broken_stochastic_matrices_are_refused(
    k: int, seed: int, delta: float, negative: bool
) -> None:
    """Break a random stochastic matrix: shift one row sum by delta, or (sum kept) push one entry below 0."""
    rng = np.random.default_rng(seed)
    t = random_stochastic(rng, k)
    i, j = (int(v) for v in rng.integers(0, k, 2))
    if negative:
        shift = t[i, j] + abs(delta)  # entry j becomes -|delta|, the next one absorbs the difference
        t[i, j] -= shift
        t[i, (j + 1) % k] += shift
        match = "T must have non-negative entries"
    else:
        t[i, j] += delta
        match = (
            "T must have non-negative entries" if t[i, j] < -1e-9 else f"T must be row-stochastic .*row {i}"
        )
    with pytest.raises(ValueError, match=match):
        ch.stationary_distribution(t)


def test_public_names() -> None:
    for name in ch.__all__:
        assert hasattr(ch, name), name
