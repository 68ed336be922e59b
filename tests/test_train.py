"""Tests of dae_tutor.train against independent truth.

* A linear DAE on Gaussian data must converge to the closed-form Σ(Σ + σ²I)⁻¹ (spec §1.4 (a)).
* A DAE on a two-component Gaussian mixture must point along the exact score of the smoothed
  density p_σ (thesis eq. 3.5; Tweedie: r*(x̃) = x̃ + σ²∇log p_σ(x̃)), written here in closed form.
* The ensemble must reproduce separate fits; L-BFGS must reproduce torch's own single-call run.
"""

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dae_tutor.densities import reference_mixture_1d
from dae_tutor.errors import DivergenceError
from dae_tutor.nets import AutoEncoder, DeepAutoEncoder
from dae_tutor.train import (
    dae_loss,
    dsm_loss,
    fit_dae,
    fit_dae_ensemble,
    fit_decoder_least_squares,
    fit_gaussian_walkback,
    fit_noise_mixture_dae,
    gaussian_walkback_loss,
    train_loop,
)

F64 = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _params(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


# --- the training loop -------------------------------------------------------------------------


def _moment_matched_gaussian(n: int, cov: np.ndarray, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Clean points x and noise ε whose empirical moments are exactly E x = 0, E xxᵀ = Σ,
    E εεᵀ = σ²I, E xεᵀ = 0, so the empirical least-squares DAE is exactly the population one."""
    z = torch.randn(n, 4, generator=_gen(0), dtype=F64)
    z = z - z.mean(0)
    z = z @ torch.linalg.inv(torch.linalg.cholesky(z.T @ z / n)).T  # empirical covariance = I
    x = z[:, :2] @ torch.linalg.cholesky(torch.as_tensor(cov)).T
    return x, sigma * z[:, 2:]


@pytest.mark.parametrize(("optimizer", "steps", "lr"), [("lbfgs", 50, None), ("adam", 1500, 0.02)])
def test_linear_dae_on_a_gaussian_converges_to_the_shrinkage_matrix(optimizer, steps, lr):
    cov, sigma = np.array([[1.0, 0.6], [0.6, 0.5]]), 0.5
    x, eps = _moment_matched_gaussian(1000, cov, sigma)
    linear = torch.nn.Linear(2, 2, dtype=F64)
    torch.nn.init.zeros_(linear.weight)
    history = train_loop(
        lambda: dae_loss(linear, x + eps, x), linear, steps=steps, optimizer=optimizer, lr=lr, progress=False
    )
    truth = cov @ np.linalg.inv(cov + sigma**2 * np.eye(2))  # Σ(Σ + σ²I)⁻¹ (spec §1.4)
    a = linear.weight.detach().numpy()
    assert np.linalg.norm(a - truth) / np.linalg.norm(truth) < 0.01
    assert np.abs(linear.bias.detach().numpy()).max() < 0.01
    assert len(history) == steps and history[-1] < history[0]


def _loss_with_nan_at(step: int, value: float, p: torch.Tensor):
    calls = {"n": 0}

    def loss_fn() -> torch.Tensor:
        k, calls["n"] = calls["n"], calls["n"] + 1
        loss = (p**2).sum()
        return loss * value if k == step else loss

    return loss_fn


@pytest.mark.parametrize(("optimizer", "value"), [("adam", math.nan), ("sgd", math.inf), ("adam", -math.inf)])
def test_a_nan_or_inf_loss_stops_training_naming_the_step(optimizer, value):
    p = torch.nn.Parameter(torch.ones(3, dtype=F64))
    with pytest.raises(FloatingPointError, match=r"step 3 \(of 10\)") as info:
        train_loop(
            _loss_with_nan_at(3, value, p), [p], steps=10, optimizer=optimizer, lr=0.01, progress=False
        )
    assert isinstance(info.value, DivergenceError) and info.value.step == 3
    assert bool(torch.isfinite(p).all())  # the bad step was not applied


def test_lbfgs_stops_on_a_nan_naming_the_step_and_the_line_search_evaluation():
    p = torch.nn.Parameter(torch.ones(3, dtype=F64))
    with pytest.raises(DivergenceError, match=r"at step 0 \(of 10\)"):
        train_loop(_loss_with_nan_at(0, math.nan, p), [p], steps=10, optimizer="lbfgs", progress=False)
    # evaluation 1 is the first line-search trial of step 0
    with pytest.raises(DivergenceError, match=r"at step 0 \(of 10, line-search evaluation 1\)"):
        train_loop(_loss_with_nan_at(1, math.nan, p), [p], steps=10, optimizer="lbfgs", progress=False)


def test_a_late_check_still_names_the_first_bad_step():
    p = torch.nn.Parameter(torch.ones(3))
    with pytest.raises(DivergenceError, match="step 4") as info:
        train_loop(_loss_with_nan_at(4, math.nan, p), [p], steps=20, check_every=8, progress=False)
    assert info.value.step == 4


def test_lbfgs_steps_match_one_torch_lbfgs_call():
    """steps x (max_iter=1) with the cached closure = one call with max_iter=steps."""
    x = torch.randn(200, 2, generator=_gen(1), dtype=F64)
    y = torch.tanh(x @ torch.tensor([[1.0, -2.0], [0.5, 1.0]], dtype=F64))
    ours, ref = AutoEncoder(2, 8, seed=0, dtype=F64), AutoEncoder(2, 8, seed=0, dtype=F64)
    train_loop(lambda: dae_loss(ours, x, y), ours, steps=15, optimizer="lbfgs", progress=False)
    opt = torch.optim.LBFGS(
        ref.parameters(), max_iter=15, max_eval=1000, line_search_fn="strong_wolfe", tolerance_change=0
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = dae_loss(ref, x, y)
        loss.backward()
        return loss

    opt.step(closure)
    for p, q in zip(ours.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-9, atol=1e-12)


def test_train_loop_rejects_bad_arguments():
    p = torch.nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError, match="optimizer"):
        train_loop(lambda: p.sum(), [p], steps=1, optimizer="adagrad")
    with pytest.raises(ValueError, match="steps"):
        train_loop(lambda: p.sum(), [p], steps=0)
    with pytest.raises(ValueError, match="scalar"):
        train_loop(lambda: p * 2, [p], steps=1, progress=False)
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        train_loop(lambda: 1.0, [p], steps=1, progress=False)
    with pytest.raises(ValueError, match="requires grad"):
        train_loop(lambda: p.sum(), [torch.ones(2)], steps=1)


# --- one DAE -----------------------------------------------------------------------------------

MIX_W = np.array([0.4, 0.6])
MIX_MU = np.array([[-1.0, 0.0], [1.0, 0.5]])
MIX_COV = np.array([[[0.3, 0.1], [0.1, 0.2]], [[0.2, 0.0], [0.0, 0.2]]])


def _mixture_sample(n: int, rng: np.random.Generator) -> np.ndarray:
    k = rng.choice(2, size=n, p=MIX_W)
    chol = np.linalg.cholesky(MIX_COV)
    return MIX_MU[k] + np.einsum("nij,nj->ni", chol[k], rng.standard_normal((n, 2)))


def _mixture_score(x: np.ndarray, sigma: float) -> np.ndarray:
    """∇log p_σ(x) for p_σ = Σ_k w_k N(μ_k, C_k + σ²I): Σ_k γ_k(x) (−(C_k + σ²I)⁻¹(x − μ_k))."""
    cov = MIX_COV + sigma**2 * np.eye(2)
    prec = np.linalg.inv(cov)
    d = x[:, None, :] - MIX_MU[None]
    grad = -np.einsum("kij,nkj->nki", prec, d)
    log_w = (
        np.log(MIX_W) - 0.5 * np.log(np.linalg.det(2 * np.pi * cov)) + 0.5 * np.einsum("nki,nki->nk", d, grad)
    )
    gamma = np.exp(log_w - log_w.max(1, keepdims=True))
    gamma /= gamma.sum(1, keepdims=True)
    return (gamma[..., None] * grad).sum(1)


def _score_cosine(r: torch.nn.Module, x_test: np.ndarray, sigma: float) -> float:
    """Cosine between (r(x) − x)/σ² (thesis eq. 3.5) and the exact score, over all test points."""
    p = next(r.parameters())
    x = torch.as_tensor(x_test, dtype=p.dtype)
    with torch.no_grad():
        est = ((r(x) - x) / sigma**2).double().numpy()
    exact = _mixture_score(x_test, sigma)
    return float((est * exact).sum() / np.linalg.norm(est) / np.linalg.norm(exact))


@pytest.fixture(scope="module")
def mixture_data():
    rng = np.random.default_rng(0)
    sigma = 0.3
    train = torch.as_tensor(_mixture_sample(4000, rng))
    test = _mixture_sample(2000, rng) + sigma * rng.standard_normal((2000, 2))  # held out, from p_σ
    return train, test, sigma


def test_fit_dae_learns_the_mixture_score_with_fresh_noise(mixture_data):
    train, test, sigma = mixture_data
    r = fit_dae(train.float(), sigma, hidden=64, steps=1000, batch_size=512, lr=5e-3, progress=False)
    assert isinstance(r, AutoEncoder) and r.W.dtype == torch.float32
    assert _score_cosine(r, test, sigma) > 0.95


def test_fit_dae_lbfgs_on_fixed_corruptions(mixture_data):
    """The Fig. 3.5 regime: corruptions drawn once, full-batch L-BFGS; the loss decreases and the
    field still points along the score."""
    train, test, sigma = mixture_data
    r, history = fit_dae(
        train,
        sigma,
        hidden=32,
        steps=100,
        optimizer="lbfgs",
        n_noise=16_000,
        progress=False,
        return_history=True,
    )
    assert r.W.dtype == F64
    assert history[-1] < 0.5 * history[0]
    assert _score_cosine(r, test, sigma) > 0.95


def test_fit_dae_is_deterministic_and_leaves_the_global_rng_alone():
    x = torch.randn(300, 2, generator=_gen(2))
    kw = {"hidden": 16, "steps": 30, "batch_size": 32, "progress": False}
    state = torch.get_rng_state()
    a, b = _params(fit_dae(x, 0.1, seed=5, **kw)), _params(fit_dae(x, 0.1, seed=5, **kw))
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    c = _params(fit_dae(x, 0.1, seed=6, **kw))
    assert not torch.equal(a[0], c[0])


def test_fit_dae_with_a_sequence_of_hidden_sizes_gives_a_deep_autoencoder():
    x = torch.randn(100, 3, generator=_gen(3))
    r = fit_dae(x, 0.1, hidden=(16, 16), steps=5, progress=False)
    assert isinstance(r, DeepAutoEncoder) and r(x).shape == x.shape


def test_fixed_noise_adam_sees_only_the_fixed_corruptions():
    """With fixed_noise and the full batch every step sees the same data, so the loss at the
    start of each step only reflects the parameter updates: plain gradient descent is monotone."""
    x = torch.randn(200, 2, generator=_gen(4), dtype=F64)
    _, history = fit_dae(
        x,
        0.2,
        hidden=8,
        steps=40,
        optimizer="sgd",
        lr=0.05,
        fixed_noise=True,
        progress=False,
        return_history=True,
    )
    assert all(b < a for a, b in itertools.pairwise(history))


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"samples": torch.zeros(10)}, ValueError, "samples"),
        ({"samples": torch.zeros(10, 2, dtype=torch.int64)}, TypeError, "samples"),
        ({"samples": torch.tensor([[0.0, math.nan]])}, ValueError, "samples"),
        ({"samples": np.zeros((10, 2))}, TypeError, "samples"),
        ({"sigma": 0.0}, ValueError, "sigma"),
        ({"steps": 0}, ValueError, "steps"),
        ({"seed": -1}, ValueError, "seed"),
        ({"optimizer": "adagrad"}, ValueError, "optimizer"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"optimizer": "lbfgs", "batch_size": 32}, ValueError, "batch_size"),
        ({"optimizer": "lbfgs", "fixed_noise": False}, ValueError, "fixed_noise"),
        ({"n_noise": 100}, ValueError, "n_noise"),
        ({"hidden": 0}, ValueError, "hidden"),
        ({"hidden": (8,), "tied": True}, ValueError, "tied"),
    ],
)
def test_fit_dae_rejects_bad_arguments(kwargs, error, name):
    args = {"samples": torch.zeros(10, 2), "sigma": 0.1, "steps": 1, "progress": False, **kwargs}
    with pytest.raises(error, match=name):
        fit_dae(args.pop("samples"), args.pop("sigma"), **args)


@settings(max_examples=30, deadline=None)
@given(st.one_of(st.floats(max_value=0.0), st.just(math.nan), st.just(math.inf), st.just(-math.inf)))
def test_fit_dae_and_the_ensemble_reject_every_non_positive_sigma(sigma):
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="sigma"):
        fit_dae(x, sigma, steps=1, progress=False)
    with pytest.raises(ValueError, match=r"sigmas\[1\]"):
        fit_dae_ensemble(x, [0.1, sigma], steps=1, progress=False)


# --- many DAEs at once -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "regime",
    [
        {"batch_size": 32},
        {"batch_size": 32, "tied": True},
        {"fixed_noise": True, "n_noise": 300, "batch_size": 16},
        {"optimizer": "sgd", "lr": 0.05},
    ],
    ids=["adam-minibatch", "tied", "fixed-noise", "sgd-full-batch"],
)
def test_the_ensemble_trains_the_same_models_as_separate_fits(regime):
    """Summed loss + elementwise Adam/SGD + per-member generators = separate fit_dae calls.

    In float64 they agree to ~1e-15 (only the order of floating-point sums differs: batched
    matmuls and a hand-written backward against nn.functional.linear and autograd); we ask 1e-8.
    """
    x = torch.randn(400, 2, generator=_gen(7), dtype=F64)
    sigmas, seeds = [0.05, 0.1, 0.3], [0, 1, 2]
    steps = 200 if regime == {"batch_size": 32} else 60
    kw = {"hidden": 16, "steps": steps, "progress": False, "return_history": True, **regime}
    models, histories = fit_dae_ensemble(x, sigmas, seeds=seeds, **kw)
    for m, (sigma, seed) in enumerate(zip(sigmas, seeds, strict=True)):
        alone, history = fit_dae(x, sigma, seed=seed, **kw)
        for p, q in zip(models[m].parameters(), alone.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(histories[m], history, rtol=1e-8)
        torch.testing.assert_close(models[m](x), alone(x), rtol=1e-8, atol=1e-10)


def test_ensemble_defaults_to_seed_zero_for_every_member():
    x = torch.randn(100, 2, generator=_gen(8))
    kw = {"hidden": 8, "steps": 10, "batch_size": 16, "progress": False}
    a, b = fit_dae_ensemble(x, [0.1, 0.2], **kw)
    ref = fit_dae(x, 0.2, seed=0, **kw)
    torch.testing.assert_close(b.W, ref.W)
    assert not torch.equal(a.W, b.W)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"optimizer": "lbfgs"}, ValueError, "lbfgs"),
        ({"sigmas": []}, ValueError, "sigmas"),
        ({"sigmas": 0.1}, TypeError, "sigmas"),
        ({"seeds": [0]}, ValueError, "seeds"),
        ({"seeds": [0, -1]}, ValueError, r"seeds\[1\]"),
        ({"hidden": (8, 8)}, TypeError, "hidden"),
        ({"samples": torch.zeros(5, 2, 1)}, ValueError, "samples"),
    ],
)
def test_ensemble_rejects_bad_arguments(kwargs, error, name):
    args = {"samples": torch.zeros(10, 2), "sigmas": [0.1, 0.2], "steps": 1, "progress": False, **kwargs}
    with pytest.raises(error, match=name):
        fit_dae_ensemble(args.pop("samples"), args.pop("sigmas"), **args)


def test_rmsprop_steps_match_torch_rmsprop_and_the_callback_sees_each_update():
    """train_loop(optimizer="rmsprop") is torch's RMSprop step for step; callback(k) runs after update k."""
    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(40, 3, generator=gen, dtype=torch.float64), torch.randn(40, generator=gen)
    w0 = torch.randn(3, generator=gen, dtype=torch.float64)
    order = torch.randint(40, (25, 8), generator=gen)

    def loss_of(w: torch.Tensor, step: int) -> torch.Tensor:
        rows = order[step]
        return (x[rows] @ w - y[rows].double()).square().mean()

    w = w0.clone().requires_grad_()
    steps = iter(range(25))
    seen: list[tuple[int, torch.Tensor]] = []
    history = train_loop(
        lambda: loss_of(w, next(steps)),
        [w],
        steps=25,
        optimizer="rmsprop",
        lr=0.05,
        callback=lambda k: seen.append((k, w.detach().clone())),
    )
    ref = w0.clone().requires_grad_()
    opt = torch.optim.RMSprop([ref], lr=0.05)
    for k in range(25):
        opt.zero_grad()
        loss = loss_of(ref, k)
        assert loss.item() == history[k]
        loss.backward()
        opt.step()
        assert seen[k][0] == k and torch.equal(seen[k][1], ref.detach())
    assert len(seen) == 25
    with pytest.raises(TypeError, match="callback"):
        train_loop(lambda: loss_of(w, 0), [w], steps=1, callback=3)


def test_fit_dae_records_its_sigma_and_the_state_dict_carries_it():
    """r.sigma = σ after fit_dae and fit_dae_ensemble; a fresh module loading the state_dict gets it back."""
    data = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    r = fit_dae(data, 0.3, hidden=8, steps=3)
    deep = fit_dae(data, 0.2, hidden=(8, 8), steps=3)
    members = fit_dae_ensemble(data, [0.1, 0.4], hidden=8, steps=3)
    assert (r.sigma, deep.sigma, [m.sigma for m in members]) == (0.3, 0.2, [0.1, 0.4])
    fresh = AutoEncoder(2, 8, dtype=torch.float64)
    assert fresh.sigma is None  # control: an untrained module records nothing
    fresh.load_state_dict(r.state_dict())
    assert fresh.sigma == 0.3
    fresh_deep = DeepAutoEncoder(2, (8, 8), dtype=torch.float64)
    fresh_deep.load_state_dict(deep.state_dict())
    assert fresh_deep.sigma == 0.2


def test_gaussian_walkback_loss_one_step_is_the_dae_error_over_two_s_squared():
    """The Gaussian-head DAE: one walkback step is the DAE squared error / 2s^2 on the same noise."""
    r = AutoEncoder(2, 16, seed=0, dtype=torch.float64)
    x = torch.randn(64, 2, generator=_gen(0), dtype=torch.float64)
    sigma, s = 0.3, 0.1
    noise = torch.randn(x.shape, generator=_gen(1), dtype=torch.float64)
    want = (r(x + sigma * noise) - x).pow(2).sum(1).mean() / (2 * s**2)
    got = gaussian_walkback_loss(r, x, sigma, s, _gen(1))
    torch.testing.assert_close(got, want)
    two = gaussian_walkback_loss(r, x, sigma, s, _gen(1), walkback_steps=3)
    assert two > got and math.isfinite(two.item())
    with pytest.raises(ValueError, match="walkback_steps"):
        gaussian_walkback_loss(r, x, sigma, s, walkback_steps=0)


# fit_gaussian_walkback --------------------------------------------------------------------------------
def test_fit_gaussian_walkback_denoises_a_circle_better_than_the_untrained_control() -> None:
    angles = 2 * math.pi * torch.rand(2000, generator=torch.Generator().manual_seed(0))
    circle = torch.stack([angles.cos(), angles.sin()], 1)
    trained, control = AutoEncoder(2, 64, seed=0), AutoEncoder(2, 64, seed=0)
    history = fit_gaussian_walkback(
        trained, circle, 0.1, 0.05, steps=400, lr=3e-3, walkback_steps=2, batch=64
    )
    assert len(history) == 400 and all(math.isfinite(v) for v in history)
    noisy = circle + 0.1 * torch.randn(circle.shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        err_trained = (trained(noisy) - circle).pow(2).sum(1).mean().item()
        err_control = (control(noisy) - circle).pow(2).sum(1).mean().item()
        err_identity = (noisy - circle).pow(2).sum(1).mean().item()  # 2 sigma^2 = 0.02
    assert err_trained < 0.1 * err_control and err_trained < 1.5 * err_identity, (err_trained, err_control)


def test_fit_gaussian_walkback_is_train_loop_on_seeded_minibatches() -> None:
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(0))
    a, b = AutoEncoder(2, 8, seed=1), AutoEncoder(2, 8, seed=1)
    got = fit_gaussian_walkback(a, x, 0.2, 0.1, steps=5, lr=1e-2, walkback_steps=3, batch=7, seed=4)
    g = torch.Generator().manual_seed(4)
    expected = train_loop(
        lambda: gaussian_walkback_loss(
            b, x[torch.randint(50, (7,), generator=g)], 0.2, 0.1, g, walkback_steps=3
        ),
        b,
        steps=5,
        lr=1e-2,
    )
    assert got == expected
    with pytest.raises(ValueError, match="batch"):
        fit_gaussian_walkback(a, x, 0.2, 0.1, steps=1, lr=1e-2, batch=0)
    with pytest.raises(ValueError, match="seed"):
        fit_gaussian_walkback(a, x, 0.2, 0.1, steps=1, lr=1e-2, seed=-1)


def test_classifier_checkpoints_match_a_hand_written_rmsprop_loop():
    from dae_tutor.train import classifier_checkpoints

    gen = _gen(6)
    x, y = torch.randn(30, 4, generator=gen), torch.randint(3, (30,), generator=gen)
    make = lambda: torch.nn.Linear(4, 3)  # noqa: E731
    torch.manual_seed(0)
    model = make()
    initial = _params(model)
    saved, losses = classifier_checkpoints(model, x, y, steps=6, save_at=[0, 2, 6], seed=9, batch_size=5)
    torch.manual_seed(0)
    manual = make()
    opt = torch.optim.RMSprop(manual.parameters(), lr=1e-3)  # torch's defaults, as train_loop's "rmsprop"
    rows = torch.randint(30, (6, 5), generator=_gen(9))
    expected, manual_losses = [torch.nn.utils.parameters_to_vector(initial)], []
    for step in range(6):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(manual(x[rows[step]]), y[rows[step]])
        loss.backward()
        opt.step()
        manual_losses.append(loss.item())
        if step + 1 in (2, 6):
            expected.append(torch.nn.utils.parameters_to_vector(manual.parameters()).detach().clone())
    assert len(saved) == 3 and all(map(torch.equal, saved, expected))
    assert losses.tolist() == manual_losses
    assert not torch.equal(saved[0], saved[-1])  # control: the parameters moved
    with pytest.raises(ValueError, match="save_at"):
        classifier_checkpoints(model, x, y, steps=6, save_at=[7], seed=0)


def test_noise_mixture_first_loss_is_the_dae_loss_of_its_draws_by_hand():
    """Step 1's loss is (1/B) Σ_i ‖r0(x_i + σ_i ε_i) − x_i‖² (eq. 3.2) of the untrained r0, with the
    rows, then the σ_i's, then the noise drawn in that order from one generator seeded noise_seed."""
    x = torch.randn(20, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    levels = [0.01, 1.0]
    r, history = fit_noise_mixture_dae(x, levels, hidden=5, steps=1, seed=3, noise_seed=7, batch_size=6)
    g = torch.Generator().manual_seed(7)
    rows = x[torch.randint(20, (6,), generator=g)]
    sigma = torch.tensor(levels, dtype=F64)[torch.randint(2, (6, 1), generator=g)]
    noisy = rows + sigma * torch.randn(rows.shape, generator=g, dtype=F64)
    r0 = AutoEncoder(2, 5, seed=3, dtype=F64)
    with torch.no_grad():
        expected = (r0(noisy) - rows).pow(2).sum(1).mean().item()
    assert history == pytest.approx([expected], rel=1e-12)
    assert r.sigma == 0.01 and r.W.dtype == F64
    with pytest.raises(TypeError, match="noise_levels"):
        fit_noise_mixture_dae(x, [], steps=1)
    with pytest.raises(ValueError, match="noise_levels"):
        fit_noise_mixture_dae(x, [0.1, -1.0], steps=1)


def test_noise_mixture_with_large_noise_shrinks_toward_the_mean_and_its_control_does_not():
    """Trained at σ = 3 on N(0, I/4) data, the optimal linear DAE is Σ(Σ + σ²I)⁻¹ ≈ 0.027 I: r nearly
    maps every point to the mean; the σ = 0.01 control stays close to the identity."""
    x = 0.5 * torch.randn(2000, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    probe = torch.tensor([[0.5, 0.0], [0.0, -0.5]], dtype=F64)
    big_r, _ = fit_noise_mixture_dae(x, [3.0], hidden=16, steps=400, seed=0, lr=1e-2)
    small_r, _ = fit_noise_mixture_dae(x, [0.01], hidden=16, steps=400, seed=0, lr=1e-2)
    with torch.no_grad():
        big, small = big_r(probe), small_r(probe)
    assert (big - x.mean(0)).norm(dim=1).max() < 0.15  # shrunk: ≈ 0.027 · 0.5 = 0.014 ideally
    assert (small - probe).norm(dim=1).max() < 0.15  # control: ≈ the identity


# --- denoising score matching, fitted separately -----------------------------------------------


def test_fit_decoder_least_squares_solves_the_ridge_normal_equations_and_zeroes_the_gradient():
    g = _gen(3)
    net = AutoEncoder(2, 5, seed=1, dtype=F64)
    x = torch.randn(500, 2, generator=g, dtype=F64)
    y = torch.randn(500, 2, generator=g, dtype=F64)
    w_before = net.W.detach().clone()
    for ridge in (0.0, 1e-3):
        fit_decoder_least_squares(net, x, y, ridge=ridge)
        h = np.tanh(x.numpy() @ net.W.detach().numpy().T + net.b.detach().numpy())
        a = np.c_[h, np.ones(len(h))]
        if ridge == 0:  # well conditioned here: numpy's SVD least squares is the independent truth
            sol = np.linalg.lstsq(a, y.numpy(), rcond=None)[0]
        else:
            sol = np.linalg.solve(a.T @ a / 500 + ridge * np.diag([1.0] * 5 + [0.0]), a.T @ y.numpy() / 500)
        # a backward-stable solve of k = 6 unknowns: forward error <= k cond(A^T A) eps ||solution||
        tol = 6 * np.linalg.cond(a.T @ a) * np.finfo(float).eps * np.linalg.norm(sol)
        np.testing.assert_allclose(net.V.detach().numpy(), sol[:-1].T, atol=tol)
        np.testing.assert_allclose(net.c.detach().numpy(), sol[-1], atol=tol)
        objective = dae_loss(net, x, y) + ridge * net.V.pow(2).sum()
        grads = torch.autograd.grad(objective, [net.V, net.c])
        assert max(gr.abs().max().item() for gr in grads) < 1e-8
    assert torch.equal(net.W.detach(), w_before)  # the encoder is kept
    with pytest.raises(ValueError, match="untied"):
        fit_decoder_least_squares(AutoEncoder(2, 4, tied=True, dtype=F64), x, y)
    with pytest.raises(ValueError, match="inputs"):
        fit_decoder_least_squares(net, x[:, :1], y[:, :1])
    with pytest.raises(TypeError, match="net"):
        fit_decoder_least_squares(torch.nn.Linear(2, 2), x, y)


def test_dsm_loss_by_hand():
    g = _gen(4)
    clean, noisy = torch.randn(7, 2, generator=g, dtype=F64), torch.randn(7, 2, generator=g, dtype=F64)
    by_hand = ((noisy**2 - (clean - noisy) / 0.3**2) ** 2).sum(1).mean()
    torch.testing.assert_close(dsm_loss(lambda v: v**2, noisy, clean, 0.3), by_hand)
    with pytest.raises(ValueError, match="sigma"):
        dsm_loss(lambda v: v, noisy, clean, 0.0)
    with pytest.raises(ValueError, match="clean"):
        dsm_loss(lambda v: v, noisy, clean[:3], 0.3)


def _score_fits(n: int, sigma: float, wrong_sigma: float):
    """psi fitted by DSM at sigma and at wrong_sigma, and a DAE at sigma, each on its own corruptions."""
    p = reference_mixture_1d()

    def corrupted(seed: int, s: float) -> tuple[torch.Tensor, torch.Tensor]:
        g = _gen(seed)
        clean = p.sample(n, generator=g)
        return clean + s * torch.randn(clean.shape, generator=g, dtype=F64), clean

    def net() -> AutoEncoder:
        return AutoEncoder(1, 50, length_scale=0.5, seed=0, dtype=F64)

    fits = {}
    for name, s, seed in (("dsm", sigma, 1), ("wrong", wrong_sigma, 3)):
        noisy, clean = corrupted(seed, s)
        fits[name] = fit_decoder_least_squares(net(), noisy, (clean - noisy) / s**2)
    noisy, clean = corrupted(2, sigma)
    fits["dae"] = fit_decoder_least_squares(net(), noisy, clean)
    return p, fits


def test_dsm_and_dae_fitted_separately_give_one_score_and_the_wrong_sigma_control_does_not():
    """Thesis §3.3.7: DSM and the DAE have the same minimiser, grad log p_sigma. On held-out points of p_sigma
    the two separately fitted scores must be closer than half the distance between the exact scores of
    p_sigma and p_sigma' (the resolution needed to tell sigma from sigma'); a DSM fit at sigma' must not."""
    sigma, wrong = 0.1, 0.2
    p, fits = _score_fits(50_000, sigma, wrong)
    held = p.smoothed(sigma).sample(5000, generator=_gen(9))

    def distance(a: torch.Tensor, b: torch.Tensor) -> float:  # relative RMS distance
        return ((a - b).pow(2).mean() / b.pow(2).mean()).sqrt().item()

    with torch.no_grad():
        dae_score = (fits["dae"](held) - held) / sigma**2
        dsm, control = fits["dsm"](held), fits["wrong"](held)
    half_gap = distance(p.smoothed(wrong).score(held), p.smoothed(sigma).score(held)) / 2  # 0.15
    assert distance(dsm, dae_score) < half_gap, (distance(dsm, dae_score), half_gap)  # 0.06 measured
    assert distance(control, dae_score) > half_gap, (distance(control, dae_score), half_gap)  # 0.31


# --- Fig. 3.7: spurious attractors of a small-noise DAE -----------------------------------------


def test_fig_3_7_small_noise_dae_traps_mh_chains_off_the_spiral_and_the_exact_dae_control_does_not():
    """Chapter 1 §1.10's claim, with its settings (seed 0): MH chains (sigma_MH = 0.1, 500 steps) on the
    energy of (r(x) - x)/s^2, started ON the data, end mostly off the spiral (> delta = 5 sigma from it) for
    a DAE trained at sigma = 0.01 alone; the exact sigma = 0.01 DAE of the data (score.empirical_dae) keeps
    them on it (the control fails the claim); half of the examples at sigma = 0.1 remove most of them, and
    at its own scale s = 0.1 that model samples its target p_0.1 (off share within 0.1 of fresh samples',
    200 chains: s.e. 0.035)."""
    from dae_tutor import diagnostics, runtime
    from dae_tutor import score as S
    from dae_tutor.densities import Spiral

    spiral = Spiral()
    data = spiral.sample(10_000, generator=runtime.generator(1))
    curve = spiral.point(torch.linspace(*spiral.t_range, 2_000, dtype=F64))
    starts = data[torch.randperm(len(data), generator=runtime.generator(13))[:200]]

    def summary(r, s: float) -> dict[str, float]:
        with torch.no_grad():
            chain, _ = S.metropolis_hastings(
                lambda v: S.dae_score(r, v, s), starts, 500, 0.1, runtime.generator(3), n_path=5
            )
        return diagnostics.curve_chain_summary(chain[250:], curve, 0.05, 20)

    def model(levels: list[float]) -> AutoEncoder:
        return fit_noise_mixture_dae(data, levels, hidden=256, steps=4000, seed=0, noise_seed=100)[0]

    small, mixed = model([0.01]), model([0.01, 0.1])
    claim, control = summary(small, 0.01), summary(S.empirical_dae(data[:2000], 0.01), 0.01)
    assert claim["off"] > 0.5, claim  # 1.00 measured
    assert control["off"] < 0.1, control  # 0.06 measured
    assert summary(mixed, 0.01)["off"] < claim["off"] / 2  # 0.22 measured
    fresh = data + 0.1 * torch.randn(data.shape, generator=runtime.generator(14), dtype=F64)
    target_off = (diagnostics.curve_positions(fresh, curve)[1] > 0.05).double().mean().item()
    own_scale = summary(mixed, 0.1)
    assert abs(own_scale["off"] - target_off) < 0.1 and own_scale["coverage"] >= 0.75, (own_scale, target_off)
