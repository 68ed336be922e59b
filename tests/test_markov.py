"""Tests of dae_tutor.markov against independent truths: closed forms, NumPy linear algebra, the spec's
reference numbers (``shared/spec/B_gsn.md`` N9, T2, T8) and Monte Carlo within CLT bounds.

Spec B §4.3 property -> test: T2 stationary solvers (``test_t2_*``, and GTH on near-singular and
reducible chains, ``test_gth_*``), T8 Schweitzer (``test_t8_*`` + N9 numbers); the DAE chains built on
these tools are tested in ``test_chains.py``.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from finite_chains import F64, PMF_A, n1_setup, np_bayes, np_stationary, random_stochastic
from hypothesis import given, settings
from hypothesis import strategies as st

from dae_tutor import chains as ch
from dae_tutor import markov

GOOD = ch.corruption_matrix(4, "mix_uniform", 0.5)


# ------------------------------------------------------------------------------ stationarity (T2, GTH)
def test_stationary_methods_agree_and_satisfy_the_residual() -> None:
    """Spec T2."""
    rng = np.random.default_rng(3)
    checked = 0
    while checked < 10:
        t = random_stochastic(rng, int(rng.integers(2, 25)), conc=0.7)
        if markov.second_eigenvalue_modulus(t) >= 0.99:
            continue
        checked += 1
        pis = {m: markov.stationary_distribution(t, method=m).numpy() for m in markov.STATIONARY_METHODS}
        for pi in pis.values():
            assert np.abs(pi @ t - pi).sum() < 1e-12
            assert pi.min() >= -1e-14 and abs(pi.sum() - 1) < 1e-12
            np.testing.assert_allclose(pi, np_stationary(t), atol=1e-9)
        np.testing.assert_allclose(pis["eig"], pis["lstsq"], atol=1e-9)
        np.testing.assert_allclose(pis["power"], pis["lstsq"], atol=1e-9)
        np.testing.assert_allclose(pis["gth"], pis["lstsq"], atol=1e-9)


def test_stationary_of_periodic_and_transient_chains() -> None:
    # a 3-cycle is irreducible but periodic: pi is uniform by every method (power uses the lazy chain)
    cycle = np.roll(np.eye(3), 1, axis=1)
    for m in markov.STATIONARY_METHODS:
        np.testing.assert_allclose(markov.stationary_distribution(cycle, method=m).numpy(), 1 / 3, atol=1e-12)
    # P with zeros: states off the support are transient, and pi is still P (one closed class)
    p = np.array([0.5, 0.0, 0.3, 0.2, 0.0])
    c = ch.corruption_matrix(5, "local_walk", 0.5)
    t = ch.dae_transition(c, ch.bayes_reconstruction(p, c))
    assert len(markov.closed_classes(t)) == 1
    assert markov.tv_distance(markov.stationary_distribution(t), p) < 1e-12


def test_result_device_and_dtype_follow_the_input() -> None:
    t = torch.tensor([[0.9, 0.1], [0.2, 0.8]], dtype=torch.float32)  # rows sum to 1 - 2e-8 in float32
    pi = markov.stationary_distribution(t)
    assert pi.dtype == F64 and pi.device == t.device
    np.testing.assert_allclose(pi.numpy(), [2 / 3, 1 / 3], atol=1e-7)
    with pytest.raises(ValueError, match="T must be row-stochastic"):  # float32 tolerance is 64 eps, not more
        markov.stationary_distribution(t + torch.tensor([[1e-4, 0.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="T must be row-stochastic"):  # float64 input: 1e-9; the float32
        markov.stationary_distribution(t.double())  # values cast to float64 are 2e-8 off and are refused
    exact = torch.tensor([[0.9, 0.1], [0.2, 0.8]], dtype=F64)
    np.testing.assert_allclose(markov.stationary_distribution(exact).numpy(), [2 / 3, 1 / 3], atol=1e-15)
    assert markov.stationary_distribution([[0.9, 0.1], [0.2, 0.8]]).dtype == F64  # lists are accepted
    flipped = np.array([[0.2, 0.8], [0.9, 0.1]])[::-1]  # a view with negative strides
    np.testing.assert_allclose(markov.stationary_distribution(flipped).numpy(), [2 / 3, 1 / 3], atol=1e-15)


@pytest.mark.parametrize(("p", "q"), [(1e-14, 2e-14), (3e-14, 1e-14), (1e-14, 0.5)])
def test_gth_two_state_chain_with_tiny_transitions(p: float, q: float) -> None:
    """T = [[1-p, p], [q, 1-q]] has pi = (q, p) / (p + q). With p, q ~ 1e-14 the chain is nearly reducible
    (lambda_2 = 1 - p - q): GTH keeps every entry to ~1 ulp, while the least-squares solve and the
    eigenvector lose ~12 digits (measured: 9e-5 and 6e-5 relative at (1e-14, 2e-14))."""
    t = np.array([[1 - p, p], [q, 1 - q]])
    exact = np.array([q, p]) / (p + q)
    for pi in (markov.gth_solve(t), markov.stationary_distribution(t)):  # GTH is the default method
        assert np.abs(pi.numpy() / exact - 1).max() <= 1e-15
    if q < 0.5:  # both transitions tiny: the solve and the eigenvector are far off
        for method in ("lstsq", "eig"):
            pi = markov.stationary_distribution(t, method=method).numpy()
            assert np.abs(pi / exact - 1).max() > 1e-8, method


def test_gth_on_a_reducible_chain_returns_the_first_closed_class() -> None:
    """Closed classes {1, 2} and {3, 4}, state 0 transient: GTH answers the stationary distribution of the
    class holding the first state k with no path to a state > k (here k = 2), zero elsewhere;
    stationary_distribution refuses the chain."""
    t = np.zeros((5, 5))
    t[0] = [0.2, 0.3, 0.0, 0.5, 0.0]
    t[1, 2] = t[2, 1] = 1.0
    t[3, 4], t[4, 3], t[4, 4] = 1.0, 0.5, 0.5
    assert sorted(markov.closed_classes(t)) == [[1, 2], [3, 4]]
    np.testing.assert_allclose(markov.gth_solve(t).numpy(), [0, 0.5, 0.5, 0, 0], atol=1e-15)
    order = [3, 4, 0, 1, 2]  # the same chain with {3, 4} numbered first
    np.testing.assert_allclose(
        markov.gth_solve(t[order][:, order]).numpy(), [1 / 3, 2 / 3, 0, 0, 0], atol=1e-15
    )
    with pytest.raises(ValueError, match="T is reducible: it has 2 closed"):
        markov.stationary_distribution(t)


def test_gth_matches_numpy_on_random_chains_with_zeros() -> None:
    rng = np.random.default_rng(5)
    for _ in range(20):
        k = int(rng.integers(2, 40))
        t = random_stochastic(rng, k, conc=0.3) * (rng.random((k, k)) < 0.5)
        t[np.arange(k), (np.arange(k) + 1) % k] += 0.05  # a cycle through every state: irreducible
        t /= t.sum(1, keepdims=True)
        pi = markov.gth_solve(torch.tensor(t)).numpy()
        assert np.abs(pi @ t - pi).sum() < 1e-14
        np.testing.assert_allclose(pi, np_stationary(t), atol=1e-10)


# ------------------------------------------------------------------------------------- Schweitzer (N9, T8)
def test_schweitzer_bound_holds_on_200_random_perturbations() -> None:
    """Spec T8."""
    rng = np.random.default_rng(8)
    for i in range(200):
        k = int(rng.integers(2, 12))
        t = random_stochastic(rng, k, conc=0.5) * 0.99 + 0.01 / k
        eps = 10 ** rng.uniform(-4, 0)
        t_tilde = (1 - eps) * t + eps * random_stochastic(rng, k)
        lhs, rhs = markov.schweitzer_bound(t, t_tilde)
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
def test_schweitzer_reference_numbers(eps: float, lhs: float, rhs: float) -> None:
    """Spec N9."""
    p, c = n1_setup()
    r = ch.bayes_reconstruction(p, c)
    r_tilde = (1 - eps) * r + eps / 10
    got = markov.schweitzer_bound(ch.dae_transition(c, r), ch.dae_transition(c, r_tilde))
    assert got == pytest.approx((lhs, rhs), rel=2e-3)


def test_fundamental_matrix_norm_explodes_as_lambda2_tends_to_one() -> None:
    """Spec B N9 on the N5 grid: (sigma, lambda_2, ||Z||_inf) = (8, .607, 3.2) ... (1, .9998,
    7129)."""
    xs = np.arange(40.0)
    p = np.exp(-((xs - 8) ** 2) / 4.5) + np.exp(-((xs - 20) ** 2) / 2) + 0.7 * np.exp(-((xs - 31) ** 2) / 8)
    p /= p.sum()
    expected = {8: (0.607, 3.17), 5: (0.839, 7.65), 3: (0.956, 27.06), 2: (0.991, 137.4), 1: (0.9998, 7129)}
    for sigma, (lam2, znorm) in expected.items():
        c = np.exp(-((xs[None] - xs[:, None]) ** 2) / (2 * sigma**2))
        c /= c.sum(1, keepdims=True)
        t = ch.dae_transition(c, ch.bayes_reconstruction(p, c))
        assert markov.second_eigenvalue_modulus(t) == pytest.approx(lam2, abs=1e-3)
        assert np.abs(markov.fundamental_matrix(t).numpy()).sum(1).max() == pytest.approx(znorm, rel=2e-3)
        assert markov.tv_distance(markov.stationary_distribution(t), p) < 1e-10


# ----------------------------------------------------------------------------------- sampling chains vs pi
def test_long_chain_frequencies_within_clt_bounds() -> None:
    """One chain of 2e4 steps of the exact DAE chain (C, R): the visit frequency of each state is within
    5 asymptotic standard deviations of P, the variance from the fundamental matrix (Kemeny-Snell)."""
    c = ch.corruption_matrix(10, "local_walk", 0.5)
    r = ch.bayes_reconstruction(PMF_A, c)
    n = 20_000
    xs = markov.sample_chain((c, r), 0, n, torch.Generator().manual_seed(11)).numpy()
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
    xs = markov.sample_chain(t, torch.zeros(b, dtype=torch.long), steps, torch.Generator().manual_seed(2))
    assert xs.shape == (steps + 1, b) and xs.dtype == torch.int64
    exact = np.linalg.matrix_power(t, steps)[0]
    freq = np.bincount(xs[-1].numpy(), minlength=6) / b
    assert np.all(np.abs(freq - exact) <= 5 * np.sqrt(exact * (1 - exact) / b))
    again = markov.sample_chain(t, torch.zeros(b, dtype=torch.long), steps, torch.Generator().manual_seed(2))
    assert torch.equal(xs, again)
    assert markov.sample_chain(t, 3, 0).tolist() == [3]


def test_binary_states_are_in_itertools_product_order() -> None:
    for d in (1, 3, 5):
        assert markov.binary_states(d).tolist() == [list(b) for b in itertools.product([0, 1], repeat=d)]


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
        markov.stationary_distribution(t)


# ---------------------------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: markov.stationary_distribution([[0.5, 0.6], [0.5, 0.5]]),
            ValueError,
            "T must be row-stochastic.*row 0",
        ),
        (
            lambda: markov.stationary_distribution([[1.2, -0.2], [0.5, 0.5]]),
            ValueError,
            "T must have non-negative",
        ),
        (
            lambda: markov.stationary_distribution(np.ones((2, 3)) / 3),
            ValueError,
            r"T must be a non-empty square",
        ),
        (lambda: markov.stationary_distribution([0.5, 0.5]), ValueError, r"T must be a non-empty square"),
        (lambda: markov.stationary_distribution([[np.nan, 1], [0, 1]]), ValueError, "T contains NaN"),
        (lambda: markov.stationary_distribution("T"), TypeError, "T must be a tensor or array-like"),
        (lambda: markov.stationary_distribution(GOOD, method="qr"), ValueError, "method must be one of"),
        (lambda: markov.sample_chain(GOOD, 0, -1), ValueError, "n_steps must be >= 0"),
        (lambda: markov.sample_chain(GOOD, 9, 5), ValueError, r"x0 must hold states in \[0, 4\)"),
        (lambda: markov.sample_chain(GOOD, 0.5, 5), TypeError, "x0 must hold integer states"),
        (
            lambda: markov.sample_chain((GOOD, GOOD, GOOD), 0, 5),
            ValueError,
            "transition must be a matrix T or a pair",
        ),
        (lambda: markov.sample_chain(GOOD * 2, 0, 5), ValueError, "transition must be row-stochastic"),
        (lambda: markov.schweitzer_bound(GOOD, np.eye(3)), ValueError, "T_tilde has 3 states but T has 4"),
        (lambda: markov.schweitzer_bound(np.eye(4), GOOD), ValueError, "T is reducible"),
        (lambda: markov.tv_distance([0.5, 0.5], [1.0, 0, 0]), ValueError, "q has 3 states but p has 2"),
        (
            lambda: markov.detailed_balance_violation(GOOD, [0.2, 0.8]),
            ValueError,
            "pi has 2 states but T has 4",
        ),
        (lambda: markov.gth_solve(np.ones((2, 3)) / 3), ValueError, r"T must be a non-empty square"),
        (lambda: markov.uniforms(-1), ValueError, "n must be >= 0"),
        (lambda: markov.uniforms(3, generator=0), TypeError, "generator must be a torch.Generator"),
        (lambda: markov.Categorical(np.ones((2, 2))), ValueError, "probs must be row-stochastic"),
        (lambda: markov.Categorical(GOOD).rows(np.array([0, 4]), np.array([0.1, 0.2])), ValueError, "states"),
        (lambda: markov.Categorical(GOOD).rows(np.array([0.0]), np.array([0.1])), TypeError, "states"),
        (lambda: markov.Categorical(GOOD).rows(np.array([0, 1]), np.array([0.1])), ValueError, "u must be"),
        (lambda: markov.Categorical(GOOD).rows(np.array([0]), np.array([1.0])), ValueError, "u must hold"),
        (lambda: markov.Categorical(GOOD).one(4, 0.5), ValueError, "state must be an integer row"),
        (lambda: markov.Categorical(GOOD).one(1, 1.5), ValueError, "u must be a float"),
        (lambda: markov.binary_states(25), ValueError, "d must be <= 24"),
    ],
)
def test_bad_inputs_raise_naming_the_argument(call, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()


def test_categorical_draws_by_inverse_cdf() -> None:
    sampler = markov.Categorical([[0.25, 0.0, 0.75], [0.0, 1.0, 0.0]])
    u = np.array([0.0, 0.2499, 0.25, 0.9999])
    assert sampler.rows(np.zeros(4, dtype=np.int64), u).tolist() == [0, 0, 2, 2]  # state 1 has mass 0
    assert sampler.one(1, 0.999) == 1
    assert markov.uniforms(5, torch.Generator().manual_seed(0)).shape == (5,)


def test_public_names() -> None:
    for name in markov.__all__:
        assert hasattr(markov, name), name
