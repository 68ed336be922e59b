"""Tests of dae_tutor.baselines (GAN, RBM) and dae_tutor.gan_theory against exact computations."""

from __future__ import annotations

import copy
import itertools
import math

import numpy as np
import pytest
import torch
from test_gan_theory import _gan_1d  # the 1-D GAN of the exact checks

from dae_tutor import baselines as B
from dae_tutor import gan_theory as T
from dae_tutor import markov, runtime
from dae_tutor.errors import DivergenceError

F64 = torch.float64


def _rbm(n_vis: int, n_hid: int, seed: int, std: float = 1.0) -> B.RBM:
    gen = runtime.generator(seed + 100)
    b, c = torch.randn(n_vis, generator=gen, dtype=F64), torch.randn(n_hid, generator=gen, dtype=F64)
    return B.RBM(n_vis, n_hid, weight_std=std, b=b, c=c, seed=seed, dtype=F64)


def _states(n: int) -> torch.Tensor:
    """All 2^n binary vectors in float64, most significant bit first (markov.binary_states)."""
    return markov.binary_states(n).to(F64)


def _brute_force_log_z(rbm: B.RBM) -> float:
    """log Σ_v Σ_h exp(−E(v, h)) over every (v, h) pair, with the energy of eq. 20.5."""
    v = _states(rbm.n_vis)
    h = _states(rbm.n_hid)
    vv, hh = v.repeat_interleave(len(h), 0), h.repeat(len(v), 1)
    return torch.logsumexp(-rbm.energy(vv, hh), 0).item()


# ----------------------------------------------------------------------------- RBM


@pytest.mark.parametrize(("n_vis", "n_hid"), [(12, 5), (4, 9)])
def test_rbm_free_energy_and_log_z_match_enumeration(n_vis: int, n_hid: int) -> None:
    rbm = _rbm(n_vis, n_hid, seed=n_vis)
    v = _states(n_vis)[torch.randperm(2**n_vis, generator=runtime.generator(0))[:50]]
    h = _states(n_hid)
    # F(v) = −log Σ_h exp(−E(v, h)), summing the 2^n_hid energies one by one.
    brute = torch.stack([-torch.logsumexp(-rbm.energy(row.expand(len(h), -1), h), 0) for row in v])
    torch.testing.assert_close(rbm.free_energy(v), brute, rtol=0, atol=1e-10)
    # log Z (enumerating the smaller layer) against all 2^(n_vis + n_hid) pairs; P(v) sums to 1.
    assert rbm.log_partition().item() == pytest.approx(_brute_force_log_z(rbm), abs=1e-10)
    total = rbm.log_prob(_states(n_vis)).exp().sum().item()
    assert total == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(("n_vis", "n_hid"), [(5, 3), (3, 5)])  # log Z enumerates h, then v
def test_rbm_takes_initial_biases_and_its_log_z_matches_enumeration(n_vis: int, n_hid: int) -> None:
    gen = runtime.generator(11)
    b0, c0 = torch.randn(n_vis, generator=gen, dtype=F64), torch.randn(n_hid, generator=gen, dtype=F64)
    given = b0.clone()
    rbm = B.RBM(n_vis, n_hid, weight_std=1.0, b=b0, c=c0, seed=2, dtype=F64)
    assert torch.equal(rbm.b, b0) and torch.equal(rbm.c, c0)
    b0.add_(1.0)  # the RBM holds a copy
    assert torch.equal(rbm.b, given)
    # log Z = log Σ_v Σ_h exp(bᵀv + cᵀh + vᵀWh) (eq. 20.5), term by term in plain Python over 2^8 pairs
    w, b, c = rbm.W.tolist(), given.tolist(), c0.tolist()
    terms = [
        sum(b[i] * v[i] for i in range(n_vis))
        + sum(c[j] * h[j] for j in range(n_hid))
        + sum(v[i] * w[i][j] * h[j] for i in range(n_vis) for j in range(n_hid))
        for v in itertools.product((0, 1), repeat=n_vis)
        for h in itertools.product((0, 1), repeat=n_hid)
    ]
    top = max(terms)
    exact = top + math.log(sum(math.exp(t - top) for t in terms))
    assert rbm.log_partition().item() == pytest.approx(exact, abs=1e-12)


def test_train_rbm_starts_from_the_given_visible_biases_without_init_visible() -> None:
    data = _teacher_data(500)
    marginal = data.mean(0).clamp(1e-3, 1 - 1e-3)
    log_odds, given = torch.log(marginal / (1 - marginal)), torch.full((6,), 5.0, dtype=F64)
    assert (log_odds - given).abs().min() > 1  # the two starts are far apart
    for init_visible, start in ((True, log_odds), (False, given)):
        rbm = B.RBM(6, 4, b=given, dtype=F64)
        B.train_rbm(rbm, data, steps=1, lr=0.05, init_visible=init_visible)
        # one step adds lr·(⟨v⟩ − ⟨v⁽ᵏ⁾⟩) to b (no velocity yet): at most lr per unit
        assert (rbm.b - start).abs().max().item() <= 0.05, init_visible


def _teacher_data(n: int = 5000) -> torch.Tensor:
    teacher = _rbm(6, 4, seed=1, std=1.5)
    states = _states(6)
    with torch.no_grad():
        p = teacher.log_prob(states).exp()
    return states[torch.multinomial(p, n, replacement=True, generator=runtime.generator(3))]


def test_cd_gradient_correlates_with_the_exact_gradient_and_improves_with_k() -> None:
    data = _teacher_data()
    student = B.RBM(6, 4, weight_std=0.5, seed=4, dtype=F64)
    grads = torch.autograd.grad(student.log_prob(data).mean(), [student.W, student.b, student.c])
    exact = torch.cat([g.flatten() for g in grads])

    def estimate(k: int) -> torch.Tensor:
        g, _ = student.contrastive_divergence(data, k, runtime.generator(5))
        return torch.cat([g[name].flatten() for name in "Wbc"])

    cd1, cd10 = estimate(1), estimate(10)
    # CD-1 is biased but points the right way; the bias shrinks as the chain nears equilibrium
    # (measured: cosine 0.996, relative error 0.16 for CD-1 vs 0.017 for CD-10; the Monte-Carlo
    # noise of 5000 chains is about 0.01).
    assert torch.nn.functional.cosine_similarity(cd1, exact, dim=0) > 0.95
    rel = [((e - exact).norm() / exact.norm()).item() for e in (cd1, cd10)]
    assert rel[1] < 0.05 < rel[0], rel


def test_gibbs_kernel_matches_a_term_by_term_sum_and_leaves_p_invariant() -> None:
    rbm = _rbm(3, 2, seed=7, std=1.5)
    kernel = rbm.gibbs_kernel()
    w, b, c = rbm.W.tolist(), rbm.b.tolist(), rbm.c.tolist()
    sig = lambda a: 1 / (1 + math.exp(-a))  # noqa: E731

    def bern(p: float, x: int) -> float:
        return p if x else 1 - p

    states = list(itertools.product((0, 1), repeat=3))  # binary_states order
    for i, v in enumerate(states):
        for j, v2 in enumerate(states):
            total = 0.0
            for h in itertools.product((0, 1), repeat=2):
                up = [sig(c[m] + sum(v[n] * w[n][m] for n in range(3))) for m in range(2)]
                down = [sig(b[n] + sum(w[n][m] * h[m] for m in range(2))) for n in range(3)]
                ph = math.prod(bern(up[m], h[m]) for m in range(2))
                pv = math.prod(bern(down[n], v2[n]) for n in range(3))
                total += ph * pv
            assert kernel[i, j].item() == pytest.approx(total, abs=1e-14)
    # The RBM's law is stationary for its Gibbs chain: P T = P.
    big = _rbm(6, 4, seed=2, std=1.0)
    with torch.no_grad():
        p = big.log_prob(_states(6)).exp()
    torch.testing.assert_close(p @ big.gibbs_kernel(), p, rtol=0, atol=1e-14)


def _flat(g: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([g[name].flatten() for name in "Wbc"])


def test_expected_cd_gradient_is_the_mean_of_cd_and_its_limit_is_the_exact_gradient() -> None:
    teacher, student = _rbm(6, 4, seed=1, std=1.5), _rbm(6, 4, seed=3, std=1.5)
    states = _states(6)
    with torch.no_grad():
        p = teacher.log_prob(states).exp()
    # k = None: the gradient of Σ_v p(v) log P(v), by autograd through the exact log Z.
    exact = torch.autograd.grad((p * student.log_prob(states)).sum(), [student.W, student.b, student.c])
    exact = _flat(dict(zip("Wbc", exact, strict=True)))
    torch.testing.assert_close(_flat(B.expected_cd_gradient(student, p, None)), exact)
    # k = 2: the Monte-Carlo CD-2 of 200,000 chains started from exact draws of p, within 5 standard errors.
    data = states[torch.multinomial(p, 200_000, replacement=True, generator=runtime.generator(8))]
    gen = runtime.generator(9)
    parts = [_flat(student.contrastive_divergence(chunk, 2, gen)[0]) for chunk in data.split(20_000)]
    mc = torch.stack(parts)
    se = mc.std(0) / math.sqrt(len(mc))
    expected = _flat(B.expected_cd_gradient(student, p, 2))
    assert ((mc.mean(0) - expected).abs() < 5 * se + 1e-12).all()


def _cd_bias(teacher_std: float, student_std: float) -> list[float]:
    """Relative error of E[CD-k] against the exact gradient for k = 1, 2, 5, 25 (10 visible, 8 hidden)."""
    teacher = B.random_rbm(10, 8, seed=10, weight_std=teacher_std, dtype=F64)
    student = B.random_rbm(10, 8, seed=12, weight_std=student_std, dtype=F64)
    with torch.no_grad():
        p = teacher.log_prob(_states(10)).exp()
    exact = _flat(B.expected_cd_gradient(student, p, None))
    cd = [_flat(B.expected_cd_gradient(student, p, k)) for k in (1, 2, 5, 25)]
    return [((g - exact).norm() / exact.norm()).item() for g in cd]


def test_cd1_is_visibly_biased_for_strong_weights_and_not_for_weak_ones() -> None:
    """Chapter 3's CD-k demo. Exact expectations, so no Monte-Carlo tolerance: strong weights (std 3)
    mix slowly and CD-1 is off by 70 % (measured 0.70); the weak regime (the control) by 4 %."""
    strong, weak = _cd_bias(3.0, 3.0), _cd_bias(1.0, 0.3)
    assert strong[0] > 0.3 and weak[0] < 0.1, (strong, weak)
    assert strong == sorted(strong, reverse=True)  # the bias falls as the chain nears equilibrium


def test_ais_weights_are_unbiased_for_z_and_log_z_is_biased_low_with_few_steps() -> None:
    """E[Ẑ] = Z exactly (AIS is importance sampling on the extended space); log Ẑ is biased low by
    Jensen, visibly with 3 intermediate distributions on a strong-weight RBM, not with 1000 (the control)."""
    small = _rbm(6, 4, seed=5, std=2.0)
    _, log_w = B.ais_log_partition(small, 10, 40_000, runtime.generator(1))
    ratio = (log_w - small.log_partition().item()).exp()
    assert abs(ratio.mean().item() - 1) < 4 * ratio.std().item() / math.sqrt(len(ratio))
    rbm = B.random_rbm(10, 8, seed=12, weight_std=3.0, dtype=F64)  # chapter 3's strong-weight RBM
    log_z = rbm.log_partition().item()

    def errors(n_betas: int) -> torch.Tensor:
        _, w = B.ais_log_partition(rbm, n_betas, 4_000, runtime.generator(2))
        groups = w.reshape(400, 10)  # 400 estimates of 10 runs each
        return torch.logsumexp(groups, 1) - math.log(10) - log_z

    few, many = errors(3), errors(1_000)
    se = lambda e: e.std().item() / math.sqrt(len(e))  # noqa: E731
    assert few.mean().item() < -4 * se(few), few.mean().item()
    assert abs(many.mean().item()) < 4 * se(many) + 1e-3 and many.std() < few.std()


def test_gibbs_chain_samples_the_exact_distribution() -> None:
    rbm = _rbm(6, 4, seed=2, std=0.5)
    chains = rbm.sample_chain(torch.zeros(200, 6, dtype=F64), 250, runtime.generator(6))[50:].reshape(-1, 6)
    codes = (chains * 2 ** torch.arange(5, -1, -1, dtype=F64)).sum(1).long()  # the order of binary_states
    empirical = torch.bincount(codes, minlength=64).double() / len(codes)
    with torch.no_grad():
        exact = rbm.log_prob(_states(6)).exp()
    # 40,000 correlated draws over 64 states: TV noise ~ 0.02.
    assert 0.5 * (empirical - exact).abs().sum().item() < 0.05


@pytest.mark.parametrize("persistent", [False, True])
def test_cd_and_pcd_training_raise_the_exact_likelihood(persistent: bool) -> None:
    data = _teacher_data(2000)
    with torch.no_grad():
        teacher = _rbm(6, 4, seed=1, std=1.5).log_prob(data).mean().item()  # -2.65 nats
    rbm = B.RBM(6, 4, seed=7, dtype=F64)
    before = rbm.log_prob(data).mean().item()  # about 6 log(1/2) = -4.16
    B.train_rbm(rbm, data, steps=2000, k=1, persistent=persistent, lr=0.05, progress=False)
    after = rbm.log_prob(data).mean().item()
    # Same architecture as the teacher that drew the data: training gets within 0.05 nats of the
    # teacher's own log-likelihood (measured 0.015 for CD-1 and PCD-1).
    assert after > teacher - 0.05 and after > before + 1


# ----------------------------------------------------------------------------- GAN theory

X = torch.linspace(-40, 40, 200_001, dtype=F64)  # e^(-40²/2) underflows float64: the naive form fails


# ----------------------------------------------------------------------------- GAN


def test_algorithm_1_moves_g_onto_the_data_and_v_towards_minus_log_4() -> None:
    gan = B.GAN(1, 1, generator_hidden=(16,), discriminator_hidden=(16,), activation="tanh", dtype=F64)
    before = gan.sample(2000, runtime.generator(1)).mean().item()
    history = B.train_gan(
        gan,
        lambda m, g: 2 + 0.5 * torch.randn(m, 1, generator=g, dtype=F64),
        steps=600,
        batch_size=128,
        lr=2e-3,
    )
    samples = gan.sample(5000, runtime.generator(1))
    assert abs(before - 2) > 1 and abs(samples.mean().item() - 2) < 0.2
    # At equilibrium V = −log 4 = −1.386; minibatch estimates of 128 points scatter by ~0.02.
    assert abs(np.mean(history["value"][-50:]) + math.log(4)) < 0.05


def test_algorithm_1_with_dropout_in_d_moves_g_onto_the_data() -> None:
    # The chapter's MNIST GAN trains D under dropout (keep 0.8 input, 0.5 hidden); on a 1-D target the
    # same recipe still moves G from its start (the control: |mean - 2| > 1) to within 0.2 of the data mean.
    gan = B.GAN(
        1,
        1,
        generator_hidden=(16,),
        discriminator_hidden=(32,),
        activation="tanh",
        dropout=(0.8, 0.5),
        dtype=F64,
    )
    before = gan.sample(2000, runtime.generator(1)).mean().item()
    B.train_gan(
        gan,
        lambda m, g: 2 + 0.5 * torch.randn(m, 1, generator=g, dtype=F64),
        steps=600,
        batch_size=128,
        lr=2e-3,
    )
    after = gan.sample(5000, runtime.generator(1)).mean().item()
    assert abs(before - 2) > 1 and abs(after - 2) < 0.2, (before, after)


def test_saturating_loss_has_vanishing_gradient_when_d_rejects_samples() -> None:
    gan = B.GAN(1, 1, generator_hidden=(8,), discriminator_hidden=(8,), activation="tanh", dtype=F64)
    with torch.no_grad():  # first D(x) = σ(−20) everywhere: sure that every sample is fake
        for p in gan.discriminator.parameters():
            p.zero_()
        gan.discriminator.linear1.bias.fill_(-20.0)
    z = gan.noise(256, runtime.generator(0))
    sat, non_sat = gan.generator_grad_norm(z, "saturating"), gan.generator_grad_norm(z, "non-saturating")
    assert sat == 0.0 and non_sat == 0.0  # D is constant in x here: no gradient at all
    with torch.no_grad():
        gan.discriminator.linear0.weight.fill_(1.0)
        gan.discriminator.linear1.weight.fill_(1.0)
    sat, non_sat = gan.generator_grad_norm(z, "saturating"), gan.generator_grad_norm(z, "non-saturating")
    # Now logit D(x) = 8 tanh(x) − 20 ∈ [−28, −12]: d/dl log(1 − σ(l)) = −σ(l) ≈ −e^l while
    # d/dl −log σ(l) = −(1 − σ(l)) ≈ −1, so the non-saturating gradient is >= e^12 ≈ 1.6e5 times larger.
    assert non_sat > 1e5 * sat > 0


def test_discriminator_dropout_draws_masks_from_the_generator_only() -> None:
    x = torch.rand(64, 6, generator=runtime.generator(0), dtype=F64)
    z = torch.randn(64, 2, generator=runtime.generator(1), dtype=F64)

    def loss(dropout, seed):
        gan = B.GAN(6, 2, generator_hidden=(8,), discriminator_hidden=(8,), dropout=dropout, dtype=F64)
        gen = None if seed is None else runtime.generator(seed)
        return gan.discriminator_loss(x, z, generator=gen).item(), gan.generator_loss(z, generator=gen).item()

    plain = loss(None, None)
    assert loss((1.0, 1.0), 3) == plain  # keep everything: the same network (the control)
    assert loss((0.8, 0.5), None) == plain  # no generator: evaluation, no dropout
    dropped = loss((0.8, 0.5), 3)
    assert dropped == loss((0.8, 0.5), 3) and dropped != plain and dropped != loss((0.8, 0.5), 4)


def test_inverted_dropout_keeps_a_linear_discriminator_unbiased() -> None:
    # logit = w·(m ⊙ x)/keep + b with m ~ Bernoulli(keep): E[logit] = w·x + b exactly; the mean of
    # 20,000 masks has standard error ~ |w||x| sqrt((1 − keep)/keep / 20,000) < 0.01 here.
    gan = B.GAN(6, 2, generator_hidden=(8,), discriminator_hidden=(), dropout=(0.5, 0.5), dtype=F64)
    x = torch.rand(1, 6, generator=runtime.generator(0), dtype=F64).expand(20_000, -1)
    with torch.no_grad():
        dropped = gan._logits(x, runtime.generator(5))
        exact = gan.logits(x[:1])
    assert abs(dropped.mean().item() - exact.item()) < 0.03
    assert dropped.std().item() > 0.05  # the masks do move it


def test_training_with_dropout_is_reproducible_by_seed() -> None:
    def run(seed):
        gan = B.GAN(2, 2, generator_hidden=(8,), discriminator_hidden=(8,), dropout=(0.8, 0.5), dtype=F64)
        return B.train_gan(
            gan, torch.rand(50, 2, generator=runtime.generator(0), dtype=F64), steps=5, seed=seed
        )

    assert run(1) == run(1) and run(1) != run(2)


# ----------------------------------------------------------------------------- bad inputs


def test_training_stops_on_nan() -> None:
    gan = B.GAN(1, 1, generator_hidden=(4,), discriminator_hidden=(4,), dtype=F64)
    with torch.no_grad():
        gan.generator.linear1.bias.fill_(math.nan)  # as after an exploding update
    with pytest.raises(DivergenceError, match="step 0"):
        B.train_gan(gan, torch.zeros(10, 1, dtype=F64), steps=3, progress=False)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: B.train_gan(B.GAN(2, 2), torch.zeros(5, 2), steps=1, k=0), ValueError, "k"),
        (lambda: B.train_gan(B.GAN(2, 2), torch.zeros(5, 3), steps=1), ValueError, "data"),
        (lambda: B.train_gan(B.GAN(2, 2), torch.zeros(0, 2), steps=1), ValueError, "data"),
        (lambda: B.train_gan(B.GAN(2, 2), torch.zeros(5, 2), steps=1, loss="wgan"), ValueError, "loss"),
        (lambda: B.GAN(2, 2).logits(torch.zeros(3, 5)), ValueError, "x"),
        (lambda: B.GAN(2, 2, prior="cauchy"), ValueError, "prior"),
        (lambda: B.GAN(2, 2, dropout=0.5), TypeError, "dropout"),
        (lambda: B.GAN(2, 2, dropout=(0.0, 0.5)), ValueError, "dropout"),
        (lambda: B.GAN(2, 2, dropout=(0.8, 1.5)), ValueError, r"dropout\[1\]"),
        (lambda: B.GAN(2, 2).generator_loss(torch.zeros(3, 2), generator=1), TypeError, "generator"),
        (lambda: B.RBM(4, 3).free_energy(torch.zeros(2, 5)), ValueError, "v"),
        (lambda: B.RBM(4, 3).contrastive_divergence(torch.zeros(2, 4), k=0), ValueError, "k"),
        (lambda: B.RBM(4, 3).contrastive_divergence(torch.zeros(0, 4)), ValueError, "v"),
        (lambda: B.RBM(30, 25).log_partition(), ValueError, "at most 20"),
        (lambda: B.RBM(13, 3).gibbs_kernel(), ValueError, "at most 12"),
        (lambda: B.ais_log_partition(B.RBM(3, 2), 0, 5), ValueError, "n_betas"),
        (lambda: B.ais_log_partition(B.RBM(3, 2), 5, 0), ValueError, "runs"),
        (lambda: B.expected_cd_gradient(B.RBM(3, 2), torch.full((4,), 0.25), 1), ValueError, "data_pmf"),
        (lambda: B.expected_cd_gradient(B.RBM(3, 2), torch.full((8,), 0.125), 0), ValueError, "k"),
        (lambda: B.expected_cd_gradient("rbm", torch.full((8,), 0.125), 1), TypeError, "rbm"),
        (lambda: B.RBM(4, 3, b=torch.zeros(3)), ValueError, "^b must have last dimension 4"),
        (lambda: B.RBM(4, 3, c=torch.zeros(1, 3)), ValueError, "^c must have 1 dimension"),
        (lambda: B.RBM(4, 3, b=torch.zeros(4, dtype=torch.int64)), TypeError, "^b must have a floating"),
        (lambda: B.RBM(4, 3, c=torch.zeros(3, dtype=F64)), TypeError, "^c must have the parameters' dtype"),
        (lambda: B.RBM(4, 3, c=torch.tensor([0.0, math.nan, 0.0])), ValueError, "^c contains NaN"),
        (lambda: B.RBM(4, 3, b=[0.0] * 4), TypeError, "^b must be a torch.Tensor"),
        (lambda: B.train_rbm(B.RBM(4, 3), torch.zeros(5, 4), steps=1, init_visible=1), TypeError, "init_vis"),
        (lambda: B.train_rbm(B.RBM(4, 3), torch.full((5, 4), 0.5), steps=1), ValueError, "binary"),
        (lambda: B.train_rbm(B.RBM(4, 3), torch.zeros(0, 4), steps=1), ValueError, "data"),
        (lambda: T.virtual_criterion(X[:3], X[:3], X[:2]), ValueError, "log_p_g"),
        (lambda: T.virtual_criterion(X[:3].flip(0), X[:3], X[:3]), ValueError, "increasing"),
        (lambda: T.optimal_discriminator(torch.zeros(3), torch.zeros(4)), ValueError, "same shape"),
        (lambda: T.simultaneous_gradient_play(1.0, 0.0, lr=0.0, steps=3), ValueError, "lr"),
    ],
)
def test_bad_inputs(call, error, message) -> None:
    with pytest.raises(error, match=message):
        call()


# ------------------------------------------------------------- D alone, G alone, random RBMs


def test_train_discriminator_approaches_d_star_against_a_fixed_g() -> None:
    """Prop. 1: D trained alone tends to D* = p_data / (p_data + p_g); the untrained D is the control."""
    x = torch.linspace(-3, 7, 20_001, dtype=F64)
    log_p_data = torch.distributions.Normal(
        torch.tensor(0.0, dtype=F64), torch.tensor(1.0, dtype=F64)
    ).log_prob(x)
    gan = _gan_1d(0)  # G(z) in [-0.33, -0.13]: overlapping the data's N(0, 1)
    before = T.exact_state(gan, x, log_p_data)
    g_before = copy.deepcopy(gan.generator.state_dict())
    history = B.train_discriminator(
        gan, lambda m, gen: torch.randn(m, 1, generator=gen, dtype=F64), steps=600, lr=3e-3, seed=1
    )
    after = T.exact_state(gan, x, log_p_data)
    assert len(history) == 600
    assert after["d_error"] < 0.3 * before["d_error"], (before, after)
    assert after["criterion"] - after["value"] < 0.3 * (before["criterion"] - before["value"])  # V -> C(G)
    for name, value in gan.generator.state_dict().items():  # G did not move
        torch.testing.assert_close(value, g_before[name], rtol=0, atol=0)


def test_train_generator_moves_g_to_where_the_fixed_d_says_data() -> None:
    gan = _gan_1d(0)
    B.train_discriminator(
        gan, lambda m, gen: 2 + 0.3 * torch.randn(m, 1, generator=gen, dtype=F64), steps=300, lr=3e-3
    )
    d_before = copy.deepcopy(gan.discriminator.state_dict())
    z = gan.noise(1_000, runtime.generator(5))
    with torch.no_grad():
        fooled_before = gan.discriminate(gan.generate(z)).mean().item()
    B.train_generator(gan, steps=200, lr=1e-2, seed=3)
    with torch.no_grad():
        fooled_after = gan.discriminate(gan.generate(z)).mean().item()
    assert fooled_after > fooled_before + 0.3, (fooled_before, fooled_after)  # G ran to D's favourite points
    for name, value in gan.discriminator.state_dict().items():
        torch.testing.assert_close(value, d_before[name], rtol=0, atol=0)
    with pytest.raises(TypeError, match="gan"):
        B.train_generator("gan", steps=1, lr=0.1)
    with pytest.raises(ValueError, match="loss"):
        B.train_generator(gan, steps=1, lr=0.1, loss="wasserstein")
    with pytest.raises(ValueError, match="batch_size"):
        B.train_discriminator(gan, torch.zeros(4, 1, dtype=F64), steps=1, lr=0.1, batch_size=0)


def test_random_rbm_draws_its_biases_from_seed_plus_one_and_is_a_normalised_model() -> None:
    rbm = B.random_rbm(6, 4, seed=3, weight_std=0.7, dtype=F64)
    gen = runtime.generator(4)  # the documented draws: b, then c, N(0, 1), from seed + 1
    torch.testing.assert_close(rbm.b.detach(), torch.randn(6, generator=gen, dtype=F64), rtol=0, atol=0)
    torch.testing.assert_close(rbm.c.detach(), torch.randn(4, generator=gen, dtype=F64), rtol=0, atol=0)
    torch.testing.assert_close(rbm.W, B.RBM(6, 4, weight_std=0.7, seed=3, dtype=F64).W, rtol=0, atol=0)
    # a normalised model: its exact log Z matches the brute-force sum over every (v, h)
    assert abs(rbm.log_partition().item() - _brute_force_log_z(rbm)) < 1e-10
    big = B.random_rbm(4_000, 2, seed=0, weight_std=0.1, dtype=F64)
    assert abs(big.b.std().item() - 1) < 0.05 and abs(big.b.mean().item()) < 0.05  # N(0, 1) biases
    with pytest.raises(ValueError, match="seed"):
        B.random_rbm(3, 2, seed=-1, weight_std=1.0)
