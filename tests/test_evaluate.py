"""Tests of dae_tutor.evaluate (Parzen windows) against closed forms and SciPy's mixture density."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import logsumexp

from dae_tutor import evaluate as E

F64 = torch.float64


def test_one_centre_at_its_own_point() -> None:
    # One kernel at s, evaluated at s: log N(0; 0, σ²I) = −d log(σ √(2π)).
    s = torch.tensor([[0.3, -1.2, 4.0]], dtype=F64)
    sigma = 0.7
    got = E.parzen_log_likelihood(s, s, sigma).item()
    assert got == pytest.approx(-3 * math.log(sigma * math.sqrt(2 * math.pi)), abs=1e-12)


def test_equals_scipy_mixture() -> None:
    rng = np.random.default_rng(0)
    samples, test = rng.normal(0, 1, (50, 4)), rng.normal(0, 1.5, (30, 4))
    sigma = 0.4
    per_kernel = np.stack(
        [stats.multivariate_normal(s, sigma**2 * np.eye(4)).logpdf(test) for s in samples], axis=1
    )
    expected = logsumexp(per_kernel, axis=1) - math.log(len(samples))
    got = E.parzen_log_likelihood(torch.from_numpy(samples), torch.from_numpy(test), sigma).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-8)


def test_permutation_invariant_and_chunked_equals_unchunked() -> None:
    gen = torch.Generator().manual_seed(1)
    samples, test = (
        torch.randn(200, 5, generator=gen, dtype=F64),
        torch.randn(37, 5, generator=gen, dtype=F64),
    )
    whole = E.parzen_log_likelihood(samples, test, 0.5)
    shuffled = E.parzen_log_likelihood(samples[torch.randperm(200, generator=gen)], test, 0.5)
    chunked = E.parzen_log_likelihood(samples, test, 0.5, batch_size=3)
    torch.testing.assert_close(shuffled, whole, rtol=0, atol=1e-12)
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-12)


def test_far_points_stay_finite_in_the_log_domain() -> None:
    # exp(-‖x−s‖²/2σ²) underflows to 0 here; the log-domain value is the closed form.
    s, x = torch.zeros(1, 784, dtype=F64), torch.full((1, 784), 1.0, dtype=F64)
    got = E.parzen_log_likelihood(s, x, 0.1).item()
    assert got == pytest.approx(-784 / (2 * 0.01) - 784 * math.log(0.1 * math.sqrt(2 * math.pi)), rel=1e-12)


def test_select_sigma_picks_the_best_of_the_grid() -> None:
    gen = torch.Generator().manual_seed(2)
    samples, valid = (
        torch.randn(500, 2, generator=gen, dtype=F64),
        torch.randn(300, 2, generator=gen, dtype=F64),
    )
    sigmas = [0.01, 0.3, 10.0]
    best, curve = E.select_parzen_sigma(samples, valid, sigmas)
    # σ = 0.01 overfits the 500 samples, σ = 10 blurs N(0, I) far past its width.
    assert best == 0.3 == sigmas[int(np.argmax(curve))]
    assert curve[0] == E.parzen_log_likelihood(samples, valid, 0.01).mean().item()


def _exact_parzen(samples: np.ndarray, test: np.ndarray, sigma: float) -> np.ndarray:
    """log p̂(x) in NumPy float64 from direct differences x − s and SciPy's logsumexp (no expansion)."""
    n, d = samples.shape
    constant = math.log(n) + 0.5 * d * math.log(2 * math.pi * sigma**2)
    sq = ((test[:, None, :] - samples[None]) ** 2).sum(2)
    return logsumexp(-sq / (2 * sigma**2), axis=1) - constant


@pytest.mark.parametrize(
    ("case", "sigma"),
    [("test points are samples", 0.02), ("fresh test points", 0.1)],
)
def test_float32_is_the_exact_value_rounded(case, sigma) -> None:
    # Pixel-like data in 784-d. Scoring samples against themselves at a small σ is the worst case of
    # ‖x‖² + ‖s‖² − 2x·s in float32 (0.2 nats off); the result must be the exact value to float32 rounding.
    rng = np.random.default_rng(4)
    samples = rng.random((1000, 784)).astype(np.float32)
    test = samples[:40] if case == "test points are samples" else rng.random((40, 784)).astype(np.float32)
    got = E.parzen_log_likelihood(torch.from_numpy(samples), torch.from_numpy(test), sigma)
    assert got.dtype == torch.float32
    exact = _exact_parzen(samples.astype(np.float64), test.astype(np.float64), sigma)
    np.testing.assert_allclose(got.numpy(), exact, rtol=2**-23, atol=0)


def test_mixed_dtypes_are_promoted_not_rounded() -> None:
    # float64 samples with float32 test points: computed and returned in float64, as torch promotes.
    gen = torch.Generator().manual_seed(5)
    samples = torch.randn(60, 3, generator=gen, dtype=F64)
    test = torch.randn(20, 3, generator=gen)
    expected = E.parzen_log_likelihood(samples, test.double(), 0.05)
    got = E.parzen_log_likelihood(samples, test, 0.05)
    assert got.dtype == F64
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    dist, index = E.nearest_neighbours(test, samples)
    brute = torch.cdist(test.double(), samples)
    assert dist.dtype == F64 and torch.equal(index, brute.argmin(1))
    torch.testing.assert_close(dist, brute.min(1).values, rtol=0, atol=1e-10)


def test_mean_and_stderr_follow_the_papers_code() -> None:
    # The GAN paper's parzen_ll.py: mean, numpy.std(lls) / numpy.sqrt(len(lls)) (ddof = 0).
    lls = np.random.default_rng(6).normal(-100.0, 20.0, 50)
    mean, se = E.mean_and_stderr(torch.from_numpy(lls))
    assert mean == pytest.approx(lls.mean(), rel=1e-14)
    assert se == pytest.approx(np.std(lls) / np.sqrt(len(lls)), rel=1e-12)


def test_papers_sigma_grid_is_the_reference_codes() -> None:
    assert E.PAPERS_SIGMA_GRID == tuple(np.logspace(-1, 0, 10).tolist())
    assert all(type(s) is float for s in E.PAPERS_SIGMA_GRID)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: E.parzen_log_likelihood(torch.zeros(0, 2), torch.zeros(3, 2), 1.0), "samples"),
        (lambda: E.parzen_log_likelihood(torch.zeros(4, 2), torch.zeros(3, 3), 1.0), "same dimension"),
        (lambda: E.parzen_log_likelihood(torch.zeros(4, 2), torch.zeros(3, 2), 0.0), "sigma"),
        (lambda: E.select_parzen_sigma(torch.zeros(4, 2), torch.zeros(3, 2), []), "sigmas"),
        (lambda: E.mean_and_stderr(torch.zeros(1)), "values"),
        (
            lambda: E.parzen_log_likelihood(torch.zeros(4, 2), torch.zeros(3, 2), 1.0, batch_size=0),
            "batch_size",
        ),
        (lambda: E.nearest_neighbours(torch.zeros(3, 2), torch.zeros(0, 2)), "reference"),
        (lambda: E.mode_coverage(torch.zeros(3, 2), torch.zeros(2, 2), radius=-1.0), "radius"),
    ],
)
def test_bad_inputs(call, message) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_nearest_neighbours_match_brute_force_in_chunks() -> None:
    gen = torch.Generator().manual_seed(3)
    reference, queries = (
        torch.randn(300, 7, generator=gen, dtype=F64),
        torch.randn(41, 7, generator=gen, dtype=F64),
    )
    dist, index = E.nearest_neighbours(queries, reference, batch_size=5)
    brute = torch.cdist(queries, reference)
    torch.testing.assert_close(dist, brute.min(1).values, rtol=0, atol=1e-10)
    assert torch.equal(index, brute.argmin(1))
    # A copy of a reference point is found at distance 0: the memorisation check.
    d0, i0 = E.nearest_neighbours(reference[[17, 4]], reference)
    assert i0.tolist() == [17, 4] and float(d0.max()) < 1e-6


def test_mode_coverage_counts_modes_and_good_samples() -> None:
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], dtype=F64)
    samples = torch.cat(
        [centres[0].expand(60, 2), centres[1].expand(39, 2), torch.full((1, 2), 5.0, dtype=F64)]
    )
    covered, good = E.mode_coverage(samples, centres, radius=1.0)
    assert covered == 2 and good == pytest.approx(0.99)
    assert E.mode_coverage(samples, centres, radius=1.0, min_share=0.5)[0] == 1


def test_parzen_score_is_the_papers_protocol_computed_by_numpy() -> None:
    """σ* = argmax of the validation mean over the grid, then the test mean and std/√M (ddof 0), as
    parzen_ll.py does it with direct differences; the default grid is the papers'."""
    gen = torch.Generator().manual_seed(5)
    samples, valid, test = (torch.rand(n, 3, generator=gen, dtype=torch.float64) for n in (60, 40, 50))

    def reference(points: np.ndarray, sigma: float) -> np.ndarray:
        s = samples.numpy()
        sq = ((points[:, None, :] - s[None, :, :]) ** 2).sum(-1)
        return logsumexp(-sq / (2 * sigma**2), axis=1) - np.log(len(s)) - 1.5 * np.log(2 * np.pi * sigma**2)

    curve = [reference(valid.numpy(), s).mean() for s in E.PAPERS_SIGMA_GRID]
    best = E.PAPERS_SIGMA_GRID[int(np.argmax(curve))]
    lls = reference(test.numpy(), best)
    got = E.parzen_score(samples, valid, test)
    assert got["sigma"] == best
    np.testing.assert_allclose(got["curve"], curve, rtol=1e-12)
    np.testing.assert_allclose(got["mean"], lls.mean(), rtol=1e-12)
    np.testing.assert_allclose(got["se"], lls.std() / np.sqrt(len(lls)), rtol=1e-10)
    narrow = E.parzen_score(samples, valid, test, [0.01, 0.02])  # control: another grid, another σ
    assert narrow["sigma"] in (0.01, 0.02) and narrow["mean"] < got["mean"]


def _numpy_parzen(centres: np.ndarray, points: np.ndarray, sigma: float) -> np.ndarray:
    sq = ((points[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    d = centres.shape[1]
    constant = np.log(len(centres)) + 0.5 * d * np.log(2 * np.pi * sigma**2)
    return logsumexp(-sq / (2 * sigma**2), axis=1) - constant


def test_protocol_scores_threshold_valid_and_test_and_the_data_only_when_asked() -> None:
    """The binarised protocol is the real-valued one on images thresholded at 0.5 (NumPy reference);
    the chain's centres stay real-valued unless ``binarise_samples``. Control: on binary images the
    two protocols coincide, on grey-level ones the data baseline drops by many nats."""
    gen = torch.Generator().manual_seed(6)
    grey = torch.rand(200, 8, generator=gen, dtype=F64)
    samples, valid, test = grey[:80], grey[80:140], grey[140:]
    got = E.protocol_scores(samples, valid, test, binarise_samples=False, fixed_sigma=0.3)
    binary = [(x > 0.5).double().numpy() for x in (samples, valid, test)]
    curve = [_numpy_parzen(samples.numpy(), binary[1], s).mean() for s in E.PAPERS_SIGMA_GRID]
    best = E.PAPERS_SIGMA_GRID[int(np.argmax(curve))]
    assert got["binarised"]["sigma"] == best
    lls = _numpy_parzen(samples.numpy(), binary[2], best)
    np.testing.assert_allclose(got["binarised"]["mean"], lls.mean())
    fixed = _numpy_parzen(samples.numpy(), binary[2], 0.3)
    np.testing.assert_allclose(got["binarised"]["fixed"], (fixed.mean(), fixed.std() / np.sqrt(len(fixed))))
    np.testing.assert_allclose(got["real-valued"]["mean"], E.parzen_score(samples, valid, test)["mean"])
    data = E.protocol_scores(samples, valid, test, binarise_samples=True)
    np.testing.assert_allclose(
        data["binarised"]["fixed"][0], _numpy_parzen(binary[0], binary[2], 0.2).mean(), rtol=1e-12
    )
    # Control: already binary images are unchanged by thresholding, so both protocols agree exactly.
    bits = [torch.from_numpy(b) for b in binary]
    same = E.protocol_scores(*bits, binarise_samples=True)
    assert same["binarised"]["mean"] == same["real-valued"]["mean"]
    assert data["binarised"]["fixed"][0] < data["real-valued"]["fixed"][0] - 1


def test_protocol_scores_reject_images_outside_the_unit_interval() -> None:
    ok = torch.full((4, 3), 0.5, dtype=F64)
    for name in ("samples", "valid", "test"):
        args = {"samples": ok, "valid": ok, "test": ok, name: ok + 1}
        with pytest.raises(ValueError, match=f"^{name} must lie in"):
            E.protocol_scores(**args, binarise_samples=True)
    with pytest.raises(ValueError, match="fixed_sigma"):
        E.protocol_scores(ok, ok, ok, binarise_samples=True, fixed_sigma=0.0)
    with pytest.raises(TypeError, match="binarise_samples"):
        E.protocol_scores(ok, ok, ok, binarise_samples=1)


def test_diagonal_gaussian_matches_scipy_and_constant_dimensions_make_it_unbounded() -> None:
    gen = torch.Generator().manual_seed(7)
    train, test = torch.rand(50, 4, generator=gen, dtype=F64), torch.rand(9, 4, generator=gen, dtype=F64)
    got = E.diagonal_gaussian_log_likelihood(train, test, 1e-6)
    t = train.numpy()
    expected = stats.norm(t.mean(0), t.std(0)).logpdf(test.numpy()).sum(1)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
    # Two dimensions constant (0) in train and test: each floor / 100 adds ½ log 100 per dimension.
    constant = (
        torch.cat([train, torch.zeros(50, 2, dtype=F64)], 1),
        torch.cat([test, torch.zeros(9, 2, dtype=F64)], 1),
    )
    gain = E.diagonal_gaussian_log_likelihood(*constant, 1e-8) - E.diagonal_gaussian_log_likelihood(
        *constant, 1e-6
    )
    torch.testing.assert_close(gain, torch.full((9,), math.log(100), dtype=F64))
    # Control: no constant dimension, so a floor below every variance changes nothing.
    torch.testing.assert_close(E.diagonal_gaussian_log_likelihood(train, test, 1e-8), got)
    with pytest.raises(ValueError, match="variance_floor"):
        E.diagonal_gaussian_log_likelihood(train, test, 0.0)


# chain_samples --------------------------------------------------------------------------------------
def test_chain_samples_drops_the_burn_in_and_flattens_step_major() -> None:
    from dae_tutor.binary_nets import BernoulliDAE

    model = BernoulliDAE(6, 5, seed=0)
    x0 = (torch.arange(18).reshape(3, 6) % 2).double().to(model.W.dtype)
    means, samples = E.chain_samples(model, x0, 4, torch.Generator().manual_seed(1), burn_in=2)
    full_samples, full_means = model.sample_chain(x0, 6, torch.Generator().manual_seed(1), return_means=True)
    assert means.shape == samples.shape == (12, 6)
    torch.testing.assert_close(means, full_means[2:].reshape(12, 6), rtol=0, atol=0)
    torch.testing.assert_close(samples, full_samples[2:].reshape(12, 6), rtol=0, atol=0)
    torch.testing.assert_close(samples[5], full_samples[2 + 1, 2], rtol=0, atol=0)  # row 5 = step 1, chain 2


def test_chain_samples_rejects_bad_arguments() -> None:
    with pytest.raises(TypeError, match="model"):
        E.chain_samples(torch.nn.Linear(2, 2), torch.zeros(1, 2), 3, None)
    from dae_tutor.binary_nets import BernoulliDAE

    with pytest.raises(ValueError, match="burn_in"):
        E.chain_samples(BernoulliDAE(2, 2), torch.zeros(1, 2), 3, None, burn_in=-1)


def _bit_chain(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A finite chain x → x̃ → x on 3 bits: logits L[k] of a factorized decoder at each x̃ = k, a random
    corruption C (x → x̃), the decoder's matrix R[k, x] = Π_i Bern(x_i; σ(L_ki)), and the states."""
    from dae_tutor import markov

    gen = torch.Generator().manual_seed(seed)
    states = markov.binary_states(3).double()  # (8, 3)
    logits = 2 * torch.randn(8, 3, generator=gen, dtype=F64)
    C = torch.rand(8, 8, generator=gen, dtype=F64) + 0.05
    C = C / C.sum(1, keepdim=True)
    p = torch.sigmoid(logits)
    R = torch.stack([(p**s * (1 - p) ** (1 - s)).prod(1) for s in states], dim=1)  # R[k, x]
    return logits, C, R, states


def test_decoder_mixture_is_log_mean_of_the_decoder_likelihoods() -> None:
    logits, _, R, states = _bit_chain()
    # one x̃ state at a time: log P(x | x̃ = k), the product of Bernoulli terms
    one = torch.stack([E.decoder_mixture_log_likelihood(logits[k : k + 1], states) for k in range(8)])
    assert torch.allclose(one, R.log(), atol=1e-13, rtol=0)
    # all eight at once: log of the mean over them; chunked = unchunked
    got = E.decoder_mixture_log_likelihood(logits, states)
    assert torch.allclose(got, R.mean(0).log(), atol=1e-13, rtol=0)
    assert torch.equal(got, E.decoder_mixture_log_likelihood(logits, states, batch_size=3))


def test_decoder_mixture_is_unbiased_for_the_stationary_law_and_a_lower_bound_in_log() -> None:
    # Exact finite-state computation ([TH] §5.5.1): with x̃ ~ π̃ = π C (the stationary law of X̃),
    # E P̂(x) = Σ_k π̃_k R[k, x] = π(x), the stationary law of T = C R; and E log P̂(x) ≤ log π(x).
    from dae_tutor import markov

    logits, C, R, states = _bit_chain()
    pi = markov.stationary_distribution(C @ R)
    pi_tilde = pi @ C
    single = torch.stack([E.decoder_mixture_log_likelihood(logits[k : k + 1], states) for k in range(8)])
    assert torch.allclose(pi_tilde @ single.exp(), pi, atol=1e-14, rtol=0)
    jensen_gap = pi.log() - pi_tilde @ single  # > 0 unless R[:, x] is constant in k
    assert bool((jensen_gap > 1e-3).all()), jensen_gap
    # Monte Carlo: 20,000 draws of x̃ from π̃ estimate log π within 5 standard errors of the mean of P̂ ...
    gen = torch.Generator().manual_seed(1)
    n = 20_000
    draws = torch.multinomial(pi_tilde, n, replacement=True, generator=gen)
    est = E.decoder_mixture_log_likelihood(logits[draws], states)
    se = R[draws].std(0) / math.sqrt(n) / pi  # delta method: se of log P̂
    assert bool(((est - pi.log()).abs() < 5 * se).all()), (est - pi.log(), se)
    # ... and fail to when x̃ comes from the wrong law (uniform states: the control)
    wrong = E.decoder_mixture_log_likelihood(logits[torch.randint(8, (n,), generator=gen)], states)
    assert bool(((wrong - pi.log()).abs() > 5 * se).any()), (wrong - pi.log(), se)


def test_decoder_mixture_rejects_bad_arguments() -> None:
    logits, _, _, states = _bit_chain()
    with pytest.raises(ValueError, match="test"):
        E.decoder_mixture_log_likelihood(logits, states + 0.5)
    with pytest.raises(ValueError, match="dimension"):
        E.decoder_mixture_log_likelihood(logits[:, :2], states)
    with pytest.raises(TypeError, match="logits"):
        E.decoder_mixture_log_likelihood(logits.numpy(), states)
