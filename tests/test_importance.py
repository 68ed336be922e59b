"""dae_tutor.importance: per-example norms three ways, the unbiased sampler, eq. 7.6–7.9."""

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from dae_tutor import importance as imp
from dae_tutor import runtime
from dae_tutor.errors import DivergenceError


def _mlp(seed: int = 0, dtype: torch.dtype = torch.float64) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 4)).to(dtype)


def _conv() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(3 * 3 * 3, 4)
    ).double()


def _data(n: int, shape: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = runtime.generator(seed)
    return torch.randn(n, *shape, generator=g, dtype=torch.float64), torch.randint(0, 4, (n,), generator=g)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_three_methods_agree_on_mlp(dtype):
    model = _mlp(dtype=dtype)
    x, y = _data(40, (6,))
    x = x.to(dtype)
    ref = imp.per_example_grad_norms(model, imp.cross_entropy, x, y, method="loop")
    for method in ("fc", "vmap"):
        got = imp.per_example_grad_norms(model, imp.cross_entropy, x, y, method=method)
        # float32 round-off on ~200 parameters is ~1e-7 relative: 1e-5 leaves a wide margin.
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-7)


def test_fc_without_bias_and_with_mse():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(5, 7, bias=False), nn.Sigmoid(), nn.Linear(7, 3)).double()
    x, _ = _data(20, (5,))
    target = torch.randn(20, 3, dtype=torch.float64)
    ref = imp.per_example_grad_norms(model, imp.mse, x, target, method="loop")
    torch.testing.assert_close(imp.per_example_grad_norms(model, imp.mse, x, target, method="fc"), ref)


def _in_place_mlp() -> nn.Module:
    """The issue's model: the in-place ReLU overwrites the first Linear's output."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 4), nn.ReLU(inplace=True), nn.Linear(4, 3)).double()


def _hand_backprop_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """‖g_n‖ of softmax cross-entropy for Linear-ReLU-Linear, g_n assembled from outer products in NumPy."""
    (w1, b1), (w2, b2) = [(m.weight.detach().numpy(), m.bias.detach().numpy()) for m in (model[0], model[2])]
    x = x.numpy()
    z1 = x @ w1.T + b1
    h = np.maximum(z1, 0)
    z2 = h @ w2.T + b2
    p = np.exp(z2 - z2.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    d2 = p - np.eye(3)[y.numpy()]
    d1 = (d2 @ w2) * (z1 > 0)
    g = np.concatenate(
        [
            np.einsum("ni,nj->nij", d1, x).reshape(len(x), -1),
            d1,
            np.einsum("ni,nj->nij", d2, h).reshape(len(x), -1),
            d2,
        ],
        axis=1,
    )
    return np.linalg.norm(g, axis=1)


def test_fc_is_exact_after_an_in_place_relu():
    """The forward hook's Y is overwritten by ReLU(inplace=True): fc once gave norms 26 % (here 93 %) off."""
    model = _in_place_mlp()
    x, _ = _data(6, (5,))
    y = torch.randint(0, 3, (6,), generator=runtime.generator(1))
    expect = torch.from_numpy(_hand_backprop_norms(model, x, y))
    for method in imp.METHODS:
        got = imp.per_example_grad_norms(model, imp.cross_entropy, x, y, method=method)
        torch.testing.assert_close(got, expect, rtol=1e-12, atol=0)


def test_fc_is_exact_when_in_place_ops_overwrite_every_linear_output():
    torch.manual_seed(2)
    model = nn.Sequential(
        nn.Linear(5, 6), nn.ReLU(inplace=True), nn.Linear(6, 4), nn.Hardtanh(inplace=True), nn.Linear(4, 3)
    ).double()
    model.append(nn.LeakyReLU(0.1, inplace=True))
    x, _ = _data(9, (5,))
    target = torch.randn(9, 3, dtype=torch.float64)
    ref = imp.per_example_grad_norms(model, imp.mse, x, target, method="loop")
    torch.testing.assert_close(imp.per_example_grad_norms(model, imp.mse, x, target, method="fc"), ref)


@pytest.mark.parametrize("method", imp.METHODS)
def test_mean_reduced_criterion_gives_the_same_norms(method):
    """reduction="mean" with F.cross_entropy equals reduction="none" with the per-example cross-entropy."""
    model = _mlp()
    x, y = _data(15, (6,))
    ref = imp.per_example_grad_norms(model, imp.cross_entropy, x, y, method="loop")
    got = imp.per_example_grad_norms(model, nn.functional.cross_entropy, x, y, method, reduction="mean")
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=0)


def test_vmap_and_loop_agree_on_conv_and_fc_refuses_it():
    model = _conv()
    x, y = _data(12, (1, 8, 8))
    ref = imp.per_example_grad_norms(model, imp.cross_entropy, x, y, method="loop")
    got = imp.per_example_grad_norms(model, imp.cross_entropy, x, y, method="vmap")
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match=r"nn\.Linear"):
        imp.per_example_grad_norms(model, imp.cross_entropy, x, y, method="fc")


def test_vmap_chunks_give_the_same_norms(monkeypatch):
    model = _mlp()
    x, y = _data(30, (6,))
    whole = imp.per_example_grad_norms(model, imp.cross_entropy, x, y, method="vmap")
    monkeypatch.setattr(imp, "VMAP_BUDGET", 1)  # one example per chunk
    chunked = imp.per_example_grad_norms(model, imp.cross_entropy, x, y, method="vmap")
    torch.testing.assert_close(chunked, whole)


def test_per_example_grads_rows_sum_to_the_batch_gradient():
    model = _mlp()
    x, y = _data(25, (6,))
    g = imp.per_example_grads(model, imp.cross_entropy, x, y)
    torch.testing.assert_close(g.mean(0), imp.flat_grad(model, imp.cross_entropy, x, y))
    torch.testing.assert_close(g.norm(dim=1), imp.per_example_grad_norms(model, imp.cross_entropy, x, y))


def test_last_layer_norm_is_softmax_minus_onehot():
    model = _mlp()
    x, y = _data(10, (6,))
    with torch.no_grad():
        p = torch.softmax(model(x), 1)
    expect = (p - nn.functional.one_hot(y, 4)).norm(dim=1)
    torch.testing.assert_close(imp.last_layer_grad_norms(model, imp.cross_entropy, x, y), expect)


def test_importance_sampled_gradient_is_unbiased_and_the_unweighted_control_is_not():
    """Mean of 2,000 IS minibatch gradients within 4 standard errors of μ, every coordinate.

    With ~200 coordinates and Gaussian means, P(some |z| > 4) ≈ 200 · 6.3e-5 ≈ 1 %; the seed is fixed.
    The control samples with the same unequal weights but drops the factor mean(ω̃)/ω̃: it is biased
    towards the high-weight examples, and the same test fails it. An input that is always 0 makes the
    first layer's 12 weights on it zero in μ and in every draw: they are left out, not counted as z = 0.
    """
    x, y = _data(50, (6,))
    x[:, 0] = 0.0
    weights = imp.per_example_grad_norms(_mlp(seed=7), imp.cross_entropy, x, y) + 0.01  # stale, unequal
    z, excluded = imp.sampled_gradient_z(_mlp(), imp.cross_entropy, x, y, weights, minibatch=8,
                                         generator=runtime.generator(0))  # fmt: skip
    n_params = sum(p.numel() for p in _mlp().parameters())
    assert excluded == 12 and z.numel() == n_params - 12
    assert float(z.abs().max()) <= 4
    z_biased, _ = imp.sampled_gradient_z(_mlp(), imp.cross_entropy, x, y, weights, minibatch=8,
                                         generator=runtime.generator(0), reweight=False)  # fmt: skip
    assert float(z_biased.abs().max()) > 5  # unbiased, P(max > 5) ≈ 200 · 5.7e-7 ≈ 1e-4
    # and uniform weights give scale 1 exactly (the §7.4.1 sanity check)
    _, scale = imp.importance_minibatch(torch.full((50,), 3.0), 8, runtime.generator(0))
    assert torch.equal(scale, torch.ones(8))


def test_sampled_gradient_error_is_about_1_unbiased_and_large_for_the_unweighted_control():
    """E[ratio] = 1 exactly if unbiased, so P(ratio > 100) ≤ 1 % (Markov); the control's bias makes it huge.

    Also the choice of method: Prop. 3 for this all-Linear model, vmap for a convolution.
    """
    x, y = _data(50, (6,))
    weights = imp.per_example_grad_norms(_mlp(seed=7), imp.cross_entropy, x, y) + 0.01
    kwargs = dict(minibatch=32, draws=4000)
    ratio = imp.sampled_gradient_error(_mlp(), imp.cross_entropy, x, y, weights, **kwargs,
                                       generator=runtime.generator(0))  # fmt: skip
    control = imp.sampled_gradient_error(_mlp(), imp.cross_entropy, x, y, weights, **kwargs,
                                         generator=runtime.generator(0), reweight=False)  # fmt: skip
    assert ratio < 100 < control, (ratio, control)
    assert imp.exact_method(_mlp()) == "fc" and imp.exact_method(_conv()) == "vmap"


def _enumerated_trace(grads: np.ndarray, w: np.ndarray) -> float:
    """Exact Tr Cov of ĝ = mean(w)/w_i · g_i, i ~ w/Σw, by enumerating the N outcomes."""
    p = w / w.sum()
    est = (w.mean() / w)[:, None] * grads
    mu = grads.mean(0)
    return float((p * ((est - mu) ** 2).sum(1)).sum())


def test_trace_formula_matches_enumeration_and_q_star_is_smallest():
    model = _mlp()
    x, y = _data(30, (6,))
    grads = imp.per_example_grads(model, imp.cross_entropy, x, y).numpy()
    norms = torch.from_numpy(np.linalg.norm(grads, axis=1))
    mu_sq = float((grads.mean(0) ** 2).sum())
    ideal = imp.trace_covariance(norms, norms, mean_grad_sq=mu_sq)
    assert ideal == pytest.approx(_enumerated_trace(grads, norms.numpy()), rel=1e-10)
    assert ideal == pytest.approx(float(norms.mean() ** 2) - mu_sq, rel=1e-10)  # eq. 7.7
    uniform = imp.trace_covariance(norms, mean_grad_sq=mu_sq)
    assert uniform == pytest.approx(_enumerated_trace(grads, np.ones(30)), rel=1e-10)  # eq. 7.8
    assert imp.trace_covariance(norms, mean_grad_sq=mu_sq, minibatch=4) == pytest.approx(uniform / 4)
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = torch.from_numpy(rng.uniform(0.01, 1.0, 30))
        tr = imp.trace_covariance(norms, q, mean_grad_sq=mu_sq)
        assert tr == pytest.approx(_enumerated_trace(grads, q.numpy()), rel=1e-10)
        assert ideal <= tr + 1e-12  # Theorem 1
        assert ideal <= imp.trace_covariance(norms, norms + q, mean_grad_sq=mu_sq) + 1e-12


def test_smoothing_tends_to_sgd_and_raises_entropy():
    norms = torch.linspace(0.1, 5.0, 40, dtype=torch.float64)
    uniform = imp.trace_covariance(norms)
    assert imp.trace_covariance(norms, imp.smooth_weights(norms, 1e12)) == pytest.approx(uniform, rel=1e-6)
    entropies = [imp.entropy(imp.smooth_weights(norms, c)) for c in (0.0, 0.1, 1.0, 10.0, 1e6)]
    assert all(a <= b for a, b in itertools.pairwise(entropies))
    assert entropies[-1] == pytest.approx(np.log(40), rel=1e-6)


def _simulate(**kwargs) -> imp.History:
    x, y = _data(200, (6,))
    return imp.simulate_issgd(
        _mlp(dtype=torch.float32), imp.cross_entropy, x.float(), y, generator=runtime.generator(0), **kwargs
    )


def test_simulation_trains_and_logs_the_weights_in_use_with_their_age():
    """Defaults (refresh 50, log 50, no smoothing): each logged step after the first sees 50-step-old weights.

    Their trace (eq. 7.9) must then exceed the oracle's (Theorem 1 makes it >=, equality only for weights
    proportional to the current norms); the control is step 0, where the weights are fresh (age 0) and
    the stale trace *is* the oracle's.
    """
    hist = _simulate(steps=150, lr=0.1)
    assert hist.step == [0, 50, 100, 150] and hist.age == [0, 50, 50, 50]
    assert hist.loss[-1] < hist.loss[0]
    assert hist.trace_stale[0] == pytest.approx(hist.trace_ideal[0], rel=1e-9)  # the control: fresh weights
    # Both traces come from the same norms in float64: 1e-6 is far above their round-off.
    assert all(s > i * (1 + 1e-6) for i, s in zip(hist.trace_ideal[1:], hist.trace_stale[1:], strict=True))
    logged = zip(hist.norms_now, hist.norms_old, hist.mean_grad_sq, hist.trace_stale, strict=True)
    for now, old, mu2, stale in logged:
        assert imp.trace_covariance(now, old, mean_grad_sq=mu2) == pytest.approx(stale, rel=1e-9)
    assert all(i <= u for i, u in zip(hist.trace_ideal, hist.trace_uniform, strict=True))


def test_older_weights_cost_more_variance_than_fresher_ones():
    """Logged between refreshes (log 30, refresh 7 or 90), the ages follow the refresh grid, and the
    excess of the stale trace over the oracle grows with them: refresh 1 is the near-oracle control."""
    fresh, old = (_simulate(steps=180, lr=0.1, refresh_every=k, log_every=30) for k in (1, 90))
    assert fresh.age == [0, *[1] * 6] and old.age == [0, 30, 60, 90, 30, 60, 90]
    excess = [np.mean(np.array(h.trace_stale[1:]) / np.array(h.trace_ideal[1:]) - 1) for h in (fresh, old)]
    assert excess[0] < excess[1] / 10, excess


def test_a_zero_weight_gives_an_infinite_stale_trace():
    """κ = 0 with a weight that was 0 when computed: that example is never drawn, eq. 7.6 does not apply."""
    norms = torch.tensor([0.0, 1.0, 2.0])
    hist = imp.History()
    model, (x, y) = _mlp(dtype=torch.float32), _data(3, (6,))
    imp._log_step(hist, model, imp.cross_entropy, x.float(), y, 0, norms, norms.flip(0), None, 1.0)
    imp._log_step(hist, model, imp.cross_entropy, x.float(), y, 1, norms, norms + 1, None, 1.0)
    assert hist.trace_stale[0] == float("inf") and math.isfinite(hist.trace_stale[1])


def test_simulation_stops_on_divergence():
    model = _mlp(dtype=torch.float32)
    x, y = _data(50, (6,))
    with pytest.raises(DivergenceError, match="training stopped"):
        imp.simulate_issgd(
            model, imp.cross_entropy, x.float(), y, steps=50, lr=1e30, generator=runtime.generator(0)
        )


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: imp.importance_minibatch(torch.tensor([1.0, -1.0]), 2), ValueError, "weights must be >= 0"),
        (lambda: imp.importance_minibatch(torch.zeros(3), 2), ValueError, "all zero"),
        (lambda: imp.importance_minibatch(torch.ones(3), 0), ValueError, "minibatch"),
        (lambda: imp.importance_minibatch(torch.ones(3), 2.5), TypeError, "minibatch"),
        (lambda: imp.importance_minibatch(torch.tensor([1.0, float("nan")]), 2), ValueError, "NaN"),
        (lambda: imp.smooth_weights(torch.ones(3), -1.0), ValueError, "c must"),
        (lambda: imp.trace_covariance(torch.ones(3), torch.tensor([1.0, 0.0, 1.0])), ValueError, "cover"),
        (lambda: imp.trace_covariance(torch.ones(3), minibatch=0), ValueError, "minibatch"),
        (lambda: imp.trace_covariance(torch.ones(3), torch.ones(4)), ValueError, "shape"),
        (lambda: imp.importance_loss(torch.ones(3), torch.ones(2)), ValueError, "scale"),
        (lambda: imp.loss_by_name("hinge"), ValueError, "loss"),
    ],
)
def test_bad_inputs_raise(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_bad_batches_raise():
    model = _mlp()
    x, y = _data(5, (6,))
    with pytest.raises(ValueError, match="method"):
        imp.per_example_grad_norms(model, imp.cross_entropy, x, y, method="magic")
    with pytest.raises(TypeError, match="model"):
        imp.per_example_grad_norms("model", imp.cross_entropy, x, y)
    with pytest.raises(ValueError, match="one entry per example"):
        imp.per_example_grad_norms(model, imp.cross_entropy, x, y[:3])
    with pytest.raises(ValueError, match="one loss per example"):
        imp.per_example_grad_norms(model, lambda o, t: imp.cross_entropy(o, t).mean(), x, y)
    with pytest.raises(ValueError, match="reduction"):
        imp.per_example_grad_norms(model, imp.cross_entropy, x, y, reduction="sum")
    with pytest.raises(ValueError, match="scalar"):
        imp.per_example_grad_norms(model, imp.cross_entropy, x, y, reduction="mean")
    shared = nn.Linear(4, 4).double()
    twice = nn.Sequential(shared, nn.ReLU(), shared)
    with pytest.raises(ValueError, match="called twice"):
        imp.per_example_grad_norms(twice, imp.cross_entropy, torch.randn(3, 4, dtype=torch.float64), y[:3])


def test_minibatch_gradient_norm_bound_is_the_mean_batch_norm_and_bounds_the_true_norm():
    """App. 7.A.4, against the per-example gradients: block means of the rows, their norms averaged."""
    model, (x, y) = _mlp(), _data(24, (6,))
    rows = imp.per_example_grads(model, imp.cross_entropy, x, y)
    by_hand = rows.reshape(4, 6, -1).mean(1).norm(dim=1).mean().item()
    bound = imp.minibatch_gradient_norm_bound(model, imp.cross_entropy, x, y, batch_size=6)
    true_norm = imp.flat_grad(model, imp.cross_entropy, x, y).norm().item()
    assert bound == pytest.approx(by_hand, rel=1e-12)
    assert bound > true_norm  # strict: these batch gradients are not parallel
    # one batch holding everything: the bound is the true norm
    whole = imp.minibatch_gradient_norm_bound(model, imp.cross_entropy, x, y, batch_size=24)
    assert whole == pytest.approx(true_norm, rel=1e-12)
    with pytest.raises(ValueError, match="batch_size"):
        imp.minibatch_gradient_norm_bound(model, imp.cross_entropy, x, y, batch_size=5)


def test_the_minibatch_bound_loosens_with_training_and_an_untrained_model_does_not():
    """Ch. 4's claim on app. 7.A.4: training shrinks ‖g_TRUE‖ faster than the minibatch norms, so the
    bound/true ratio grows; the control (the same model untrained) keeps its initial ratio."""
    model, (x, y) = _mlp(3), _data(96, (6,), seed=4)
    untrained = _mlp(3)

    def ratio(m: nn.Module) -> float:
        bound = imp.minibatch_gradient_norm_bound(m, imp.cross_entropy, x, y, batch_size=8)
        return bound / imp.flat_grad(m, imp.cross_entropy, x, y).norm().item()

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(400):  # full-batch Adam towards a stationary point of the training loss
        optimizer.zero_grad()
        imp.cross_entropy(model(x), y).mean().backward()
        optimizer.step()
    start = ratio(untrained)

    def loosened(m: nn.Module) -> bool:
        return ratio(m) > 2 * start

    assert loosened(model)
    assert not loosened(untrained)
