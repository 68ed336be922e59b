"""Tests of dae_tutor.probes (and the probed classifiers) against independent truth.

* Separable data: a probe reaches 0 training error. One-hot labels plus Gaussian noise: the probe's
  test error matches the Bayes error, computed exactly by quadrature (the Bayes rule, argmax_c x_c,
  is linear, so a probe can reach it).
* scikit-learn's ``LogisticRegression`` (lbfgs, C = 1/(n·l2): the same objective) on 8×8 digits:
  the same test accuracy within 0.5 points and the same objective value; on the 10 layers of a convnet
  (features of very different scales), ``solver="lbfgs"`` stops at max |∇f| <= tol (autograd's
  gradient) and its objective is within what scikit-learn's own lbfgs leaves at the same tol, or at
  the optimum for a tight one.
* Fitting layers together gives exactly what fitting each alone gives (independent problems).
* Hooks leave outputs and gradients bitwise unchanged and are removed; probes give the model no gradient.
"""

import contextlib
import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from dae_tutor import classifiers, data, probes


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _one_hot_noise(n: int, n_classes: int, sigma: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = _gen(seed)
    y = torch.randint(n_classes, (n,), generator=gen)
    x = torch.eye(n_classes, dtype=torch.float64)[y] + sigma * torch.randn(
        n, n_classes, generator=gen, dtype=torch.float64
    )
    return x, y


def test_separable_data_gives_zero_training_error():
    gen = _gen(1)
    centres = 6.0 * torch.eye(3, 5, dtype=torch.float64)
    y = torch.arange(300) % 3
    x = (
        centres[y] + torch.rand(300, 5, generator=gen, dtype=torch.float64) - 0.5
    )  # boxes of side 1, far apart
    result = probes.fit_probes({"x": x}, y, l2=0.0, epochs=50, batch_size=None, lr=0.1, progress=False)["x"]
    assert result.train_error == 0.0
    assert result.valid_error is None and result.test_error is None


def test_one_hot_plus_noise_reaches_the_bayes_error():
    n_classes, sigma = 4, 0.6
    # Bayes rule argmax_c x_c; P(correct) = ∫ N(t; 1, σ²) Φ(t/σ)^(C-1) dt.
    correct, _ = integrate.quad(
        lambda t: stats.norm.pdf(t, 1, sigma) * stats.norm.cdf(t / sigma) ** (n_classes - 1), -10, 12
    )
    bayes = 1 - correct
    train, valid, test = (
        _one_hot_noise(n, n_classes, sigma, s) for n, s in ((20_000, 0), (5_000, 1), (20_000, 2))
    )
    result = probes.fit_probes(
        {"x": train[0]}, train[1], ({"x": valid[0]}, valid[1]), ({"x": test[0]}, test[1]), progress=False
    )["x"]
    bayes_on_test = (test[0].argmax(1) != test[1]).double().mean().item()
    se = math.sqrt(bayes * (1 - bayes) / 20_000)  # binomial standard error of a 20,000-point error rate
    assert abs(bayes_on_test - bayes) < 4 * se  # the quadrature is right
    # On the same points the probe can beat the Bayes rule only by chance (a paired difference, far
    # below 2 SE); estimating 20 parameters from 20,000 points costs O(1/n) in excess error, far
    # below the 4-SE (0.013) allowance.
    assert bayes_on_test <= result.test_error + 2 * se
    assert abs(result.test_error - bayes) < 4 * se, (result.test_error, bayes)


def _digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    x, y = load_digits(return_X_y=True)
    perm = np.random.default_rng(0).permutation(len(y))
    x, y = x[perm], y[perm]
    x_train, x_test = x[:1200], x[1200:]
    mean, std = x_train.mean(0), x_train.std(0)
    std[std == 0] = 1
    as_t = lambda a: torch.tensor((a - mean) / std)  # noqa: E731
    return as_t(x_train), torch.tensor(y[:1200]), as_t(x_test), torch.tensor(y[1200:])


def test_agrees_with_scikit_learn_on_digits():
    x_train, y_train, x_test, y_test = _digits()
    l2, n = 1e-2, len(y_train)
    sk = LogisticRegression(C=1 / (n * l2), solver="lbfgs", max_iter=5_000, tol=1e-10).fit(
        x_train.numpy(), y_train.numpy()
    )
    sk_accuracy = sk.score(x_test.numpy(), y_test.numpy())
    result = probes.fit_probes(
        {"pixels": x_train},
        y_train,
        test=({"pixels": x_test}, y_test),
        l2=l2,
        standardize=False,
        epochs=300,
        batch_size=64,
        patience=8,
        progress=False,
    )["pixels"]
    assert abs((1 - result.test_error) - sk_accuracy) <= 0.005, (1 - result.test_error, sk_accuracy)

    # The same objective, (1/n) Σ CE + (l2/2)‖W‖², at both solutions. Minibatch Adam stops on a plateau
    # (no relative gain of 1e-4 over 8 epochs), above lbfgs's tol=1e-10 optimum: measured 1.2e-3
    # relative; 5e-3 still pins it to the optimum (the initial zero probe is at log 10 = 2.30, 9x higher).
    def objective(w: torch.Tensor, b: torch.Tensor) -> float:
        ce = torch.nn.functional.cross_entropy(x_train @ w.T + b, y_train)
        return (ce + 0.5 * l2 * w.square().sum()).item()

    ours = objective(result.weight, result.bias)
    theirs = objective(torch.tensor(sk.coef_), torch.tensor(sk.intercept_))
    assert theirs <= ours <= theirs * (1 + 5e-3), (ours, theirs)
    assert ours == pytest.approx(result.train_loss + 0.5 * l2 * result.weight.square().sum().item())


def test_lbfgs_gradient_matches_autograd():
    x = torch.randn(50, 7, generator=_gen(5), dtype=torch.float64)
    y = torch.randint(0, 4, (50,), generator=_gen(6))
    theta = torch.randn(4, 8, generator=_gen(7), dtype=torch.float64, requires_grad=True)
    value, grad = probes.objective_and_gradient(x, theta.detach(), y, 0.3)
    w, b = theta[:, :-1], theta[:, -1]
    expected = torch.nn.functional.cross_entropy(x @ w.T + b, y) + 0.15 * w.square().sum()
    (auto,) = torch.autograd.grad(expected, theta)
    assert value == pytest.approx(expected.item(), rel=1e-12)
    torch.testing.assert_close(grad, auto, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="theta"):
        probes.objective_and_gradient(x, theta.detach()[:, :-1], y, 0.3)
    with pytest.raises(ValueError, match="y"):
        probes.objective_and_gradient(x, theta.detach(), y + 4, 0.3)


def _lbfgs_losses(features: dict, y: torch.Tensor, l2: float = 0.0, standardize: bool = True) -> dict:
    fit = probes.fit_probes(
        features, y, l2=l2, solver="lbfgs", tol=1e-8, epochs=5_000, standardize=standardize, progress=False
    )
    return {k: r.train_loss + 0.5 * l2 * r.weight.square().sum().item() for k, r in fit.items()}


def test_an_affine_layer_cannot_beat_its_input_under_the_lemmas_hypothesis():
    """Ch. 5 §5.3's affine-layer argument: a linear probe of z = A h + c is the probe (W A, W c + b) of h,
    so on the same features, with no penalty, z's training optimum is no lower than h's. Controls: a
    random subset of h's features (the chapter's reduction) and an L2 penalty on raw features (z = 5 h
    needs smaller weights) both let z win."""
    h, y = _one_hot_noise(3_000, 4, 0.7, seed=3)
    a = torch.randn(3, 4, generator=_gen(4), dtype=torch.float64)
    z = h @ a.T + 1.0  # rank 3 < 4: the class centres stay separable, some information is lost
    losses = _lbfgs_losses({"h": h, "z": z, "h, 1 of 4 features": h[:, :1]}, y)
    # The optimum is reached to max |grad| <= 1e-8 in float64: 1e-6 nats covers what is left.
    assert losses["z"] >= losses["h"] - 1e-6, losses
    assert losses["z"] < losses["h, 1 of 4 features"] - 0.1, losses  # control: the subset loses
    penalised = _lbfgs_losses({"h": h, "5h": 5 * h}, y, l2=0.05, standardize=False)
    assert penalised["5h"] < penalised["h"] - 0.01, penalised  # control: the penalty is not affine-invariant


def _softmax_hessian(x: torch.Tensor, theta: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Autograd Hessian of mean CE([x, 1] θᵀ, y) in θ (C, d+1), flattened row-major: (C(d+1), C(d+1))."""
    xt = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)

    def loss(flat: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(xt @ flat.reshape(theta.shape).T, y)

    return torch.autograd.functional.hessian(loss, theta.flatten())


def test_kronecker_preconditioner_inverts_a_kron_g_plus_l2_and_is_exact_where_p_is_constant():
    x = torch.randn(40, 5, generator=_gen(8), dtype=torch.float64)
    y = torch.randint(0, 3, (40,), generator=_gen(9))
    xt = torch.cat([x, torch.ones(40, 1, dtype=x.dtype)], 1)
    gram = xt.T @ xt / 40
    # the mean softmax Hessian (third output) against its definition, at a random point
    theta = torch.randn(3, 6, generator=_gen(10), dtype=torch.float64)
    *_, curvature = probes._objective_and_gradient(x, theta, y, 0.1)
    p = torch.softmax(xt @ theta.T, 1)
    expected = sum(torch.diag(q) - torch.outer(q, q) for q in p) / 40
    torch.testing.assert_close(curvature, expected, rtol=1e-12, atol=1e-15)
    # the preconditioner solves (A ⊗ G + l2 I) v = r: checked against the explicit Kronecker matrix
    precondition = probes._KroneckerPreconditioner(x, 0.1)
    precondition.update(curvature)
    r = torch.randn(3, 6, generator=_gen(11), dtype=torch.float64)
    solve = torch.linalg.solve(torch.kron(curvature, gram) + 0.1 * torch.eye(18, dtype=x.dtype), r.flatten())
    torch.testing.assert_close(precondition(r).flatten(), solve, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(precondition.inverse_norm(r), r.flatten() @ solve, rtol=1e-9, atol=0)
    # K-FAC's A ⊗ G is the exact Hessian of the mean CE at θ = 0 (p uniform for every example) ...
    *_, uniform = probes._objective_and_gradient(x, torch.zeros(3, 6, dtype=x.dtype), y, 0.1)
    exact = _softmax_hessian(x, torch.zeros(3, 6, dtype=x.dtype), y)
    torch.testing.assert_close(torch.kron(uniform, gram), exact, rtol=1e-12, atol=1e-14)
    # ... and only an approximation where p varies with the example (the control)
    assert (torch.kron(curvature, gram) - _softmax_hessian(x, theta, y)).abs().max() > 1e-2


@pytest.mark.parametrize("width", [1, 3, 5, 17])
def test_the_tiled_symmetric_product_is_x_transpose_x(width):
    # the gram of the preconditioner, by upper tiles (some empty when width < 4), against one product
    x = torch.randn(30, width, generator=_gen(12), dtype=torch.float64).T.contiguous().T  # column-major
    out = torch.full((width + 1, width + 1), math.nan, dtype=x.dtype)
    probes._symmetric_product(x, out=out[:-1, :-1])
    torch.testing.assert_close(out[:-1, :-1], x.T @ x, rtol=1e-13, atol=1e-13)
    assert out[-1].isnan().all()  # nothing outside the view is written


def test_lbfgs_reaches_the_scikit_learn_optimum_on_digits():
    x_train, y_train, x_test, y_test = _digits()
    l2, n = 1e-2, len(y_train)
    sk = LogisticRegression(C=1 / (n * l2), solver="lbfgs", max_iter=5_000, tol=1e-10).fit(
        x_train.numpy(), y_train.numpy()
    )
    feats = {"pixels": x_train, "squares": x_train.square()}
    test = ({"pixels": x_test, "squares": x_test.square()}, y_test)
    together = probes.fit_probes(
        feats, y_train, test=test, l2=l2, standardize=False, solver="lbfgs", epochs=500, progress=False
    )
    result = together["pixels"]
    assert abs((1 - result.test_error) - sk.score(x_test.numpy(), y_test.numpy())) <= 0.005
    ours = result.train_loss + 0.5 * l2 * result.weight.square().sum().item()
    ce = torch.nn.functional.cross_entropy(
        x_train @ torch.tensor(sk.coef_).T + torch.tensor(sk.intercept_), y_train
    )
    theirs = ce.item() + 0.5 * l2 * float((sk.coef_**2).sum())
    # A layer stops at max |grad| <= LBFGS_TOL = 1e-4, scikit-learn's default tol (measured gap 9.4e-6;
    # the former rule, a step gaining < 1e-4, stopped at 2.7e-4; the Adam test above allows 5e-3 relative).
    assert theirs <= ours <= theirs + 5e-5, (ours, theirs)
    assert result.epoch < 500  # stopped by the tolerance, not by the pass limit
    # each layer follows its own path: fitted alone, the same probe bit for bit
    alone = probes.fit_probes(
        {"squares": feats["squares"]},
        y_train,
        l2=l2,
        standardize=False,
        solver="lbfgs",
        epochs=500,
        progress=False,
    )["squares"]
    assert torch.equal(alone.weight, together["squares"].weight)
    assert alone.epoch == together["squares"].epoch


def _convnet_features(n: int = 1000, k: int = 100) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The 10 probe layers (≤ k random features each, float64) of a small convnet trained for one epoch on
    the bundled MNIST subset's first 4,000 images, on its last n: features of very different scales
    and conditioning (read from the file itself, so that $DAE_TUTOR_DATA cannot change them)."""
    stem = data.BUNDLED_DIR / data.BUNDLED_STEM
    images = torch.from_numpy(data.read_idx(f"{stem}-images-idx3-ubyte.gz").reshape(-1, 784) / 255).float()
    labels = torch.from_numpy(data.read_idx(f"{stem}-labels-idx1-ubyte.gz").astype(np.int64))
    model = classifiers.MnistConvNet(channels=(4, 8), hidden=32, seed=0)
    classifiers.fit_classifier(model, images[:4000], labels[:4000], epochs=1, batch_size=64, progress=False)
    feats = probes.capture(model.eval(), images[-n:], model.probe_layers, reduce=probes.RandomSubset(k))
    return {name: h.double() for name, h in feats.items()}, labels[-n:]


def test_lbfgs_stops_at_the_gradient_tolerance_and_reaches_the_scikit_learn_optimum():
    feats, y = _convnet_features()
    l2, n = 1e-3, len(y)
    default = probes.fit_probes(feats, y, l2=l2, solver="lbfgs", epochs=2_000)
    standardised = {name: (h - default[name].mean) / default[name].scale for name, h in feats.items()}

    def objective(name: str, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        h = standardised[name]
        return torch.nn.functional.cross_entropy(h @ w.T + b, y) + 0.5 * l2 * w.square().sum()

    optimum = {}
    for name, h in standardised.items():
        with threadpool_limits(1):  # more BLAS threads than cores slow lbfgs a hundredfold here
            sk = LogisticRegression(C=1 / (n * l2), solver="lbfgs", max_iter=20_000, tol=1e-10).fit(
                h.numpy(), y.numpy()
            )
        optimum[name] = objective(name, torch.tensor(sk.coef_), torch.tensor(sk.intercept_)).item()

    def check(fit: dict[str, probes.ProbeResult], tol: float, bound: float) -> None:
        for name, result in fit.items():
            w, b = result.weight.clone().requires_grad_(), result.bias.clone().requires_grad_()
            value = objective(name, w, b)
            gradient = torch.autograd.grad(value, [w, b])
            assert -1e-11 <= value.item() - optimum[name] <= bound, (name, tol, value.item() - optimum[name])
            assert max(g.abs().max().item() for g in gradient) <= tol, name  # the stopping test holds

    # The default tol is scikit-learn's, 1e-4: the gap is what scikit-learn's own lbfgs leaves (measured
    # 2.7e-6 to 9.3e-5 here, scikit-learn's 7.3e-6 to 7.6e-5); the former stopping rule (a step gaining
    # < 1e-4, relative) left 2.3e-4 to 1.6e-3. At tol = 1e-8 each layer is at the optimum (measured
    # |gap| <= 7.4e-13: scikit-learn's tol=1e-10 fit is itself about that far from it).
    check(default, 1e-4, 2e-4)
    check(probes.fit_probes(feats, y, l2=l2, solver="lbfgs", epochs=2_000, tol=1e-8), 1e-8, 1e-11)


def test_lbfgs_warns_when_it_stops_short_of_the_tolerance():
    x_train, y_train, _, _ = _digits()
    with pytest.warns(RuntimeWarning, match=r"'pixels' \(max \|grad\| .*after epochs=3 passes"):
        probes.fit_probes({"pixels": x_train}, y_train, solver="lbfgs", epochs=3)
    # float32 resolves f ≈ 0.08 to about 1e-8, too coarse for max |grad| <= 1e-9 (on float64
    # features it takes 98 passes): it stops where a step's predicted gain is lost in rounding.
    with pytest.warns(RuntimeWarning, match=r"'pixels' .*rounding in torch.float32"):
        result = probes.fit_probes(
            {"pixels": x_train.float()}, y_train, solver="lbfgs", epochs=5_000, tol=1e-9
        )
    assert result["pixels"].epoch < 5_000


def test_layers_fitted_together_equal_layers_fitted_alone():
    x_train, y_train, x_test, y_test = _digits()
    feats = {"a": x_train, "b": x_train[:, ::2].square()}
    valid = ({"a": x_test, "b": x_test[:, ::2].square()}, y_test)
    together = probes.fit_probes(feats, y_train, valid, epochs=30, progress=False)
    for name in feats:
        alone = probes.fit_probes(
            {name: feats[name]}, y_train, ({name: valid[0][name]}, y_test), epochs=30, progress=False
        )
        assert torch.equal(together[name].weight, alone[name].weight)
        assert together[name].epoch == alone[name].epoch
        assert together[name].valid_error == alone[name].valid_error


def _small_convnet() -> classifiers.MnistConvNet:
    return classifiers.MnistConvNet(channels=(4, 8), hidden=16, seed=3).double()


def test_hooks_leave_outputs_and_gradients_bitwise_unchanged():
    x = torch.rand(16, 784, generator=_gen(2), dtype=torch.float64)
    y = torch.arange(16) % 10

    def forward_backward(model):
        model.zero_grad()
        out = model(x)
        torch.nn.functional.cross_entropy(out, y).backward()
        return out.detach(), [p.grad.clone() for p in model.parameters()]

    model = _small_convnet()
    out_plain, grads_plain = forward_backward(model)
    with probes.tap(model, model.probe_layers, reduce=probes.RandomSubset(50)) as store:
        out_tapped, grads_tapped = forward_backward(model)
    assert set(store) == set(model.probe_layers)
    assert torch.equal(out_plain, out_tapped)
    assert all(torch.equal(a, b) for a, b in zip(grads_plain, grads_tapped, strict=True))
    assert all(not m._forward_hooks for m in model.modules())  # hooks removed
    # The captured features are what the layers compute (fc1_preact recomputed by hand).
    features = probes.capture(model, x, ["conv2_postpool", "fc1_preact"], batch_size=5)
    expected = features["conv2_postpool"] @ model.fc1_preact.weight.T + model.fc1_preact.bias
    assert torch.allclose(features["fc1_preact"], expected, rtol=0, atol=1e-12)
    assert all(not m._forward_hooks for m in model.modules())


def test_probes_give_the_model_no_gradient():
    model = _small_convnet()
    x = torch.rand(64, 784, generator=_gen(3), dtype=torch.float64)
    y = torch.arange(64) % 10
    with probes.tap(model, model.probe_layers) as store:
        model(x)  # a training-mode forward pass, with autograd on
    assert all(not h.requires_grad for h in store.values())
    probes.fit_probes({k: v.flatten(1) for k, v in store.items()}, y, epochs=3, progress=False)
    assert all(p.grad is None for p in model.parameters())


def test_reducers():
    h = torch.randn(5, 3, 4, 6, generator=_gen(4))
    subset = probes.RandomSubset(10, seed=7)
    first, again = subset(h), probes.RandomSubset(10, seed=7)(h)
    assert torch.equal(first, again) and first.shape == (5, 10)
    cols = subset.columns(72)
    assert torch.equal(first, h.flatten(1)[:, cols]) and len(set(cols.tolist())) == 10
    assert subset(torch.ones(5, 8)).shape == (5, 8)  # narrower layers kept whole
    pooled = probes.Pool2d()(h)
    assert pooled.shape == (5, 3) and torch.allclose(pooled, h.mean((2, 3)))
    assert probes.Pool2d(2)(h).shape == (5, 12)


def test_monotonicity_violations():
    assert probes.monotonicity_violations([0.5, 0.3, 0.31, 0.1, 0.2], tol=0.02) == [(3, pytest.approx(0.1))]


def test_bad_inputs_raise():
    x, y = _one_hot_noise(50, 3, 0.5, 0)
    fit = lambda *a, **k: probes.fit_probes(*a, progress=False, epochs=1, **k)  # noqa: E731
    with pytest.raises(ValueError, match="at least one layer"):
        fit({}, y)
    with pytest.raises(ValueError, match="rows but there are"):
        fit({"x": x[:40]}, y)
    with pytest.raises(ValueError, match="labels must lie in"):
        fit({"x": x}, y, n_classes=2)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        fit({"x": x}, y - 1, n_classes=3)
    with pytest.raises(ValueError, match="NaN or infinite"):
        fit({"x": torch.where(x > 1.4, math.nan, x)}, y)
    with pytest.raises(ValueError, match="integer"):
        fit({"x": x}, y.double())
    with pytest.raises(TypeError, match="valid"):
        fit({"x": x}, y, valid={"x": x})
    with pytest.raises(ValueError, match="features"):
        fit({"x": x}, y, valid=({"x": x[:, :2]}, y))
    with pytest.raises(ValueError, match="training layers"):
        fit({"x": x}, y, valid=({"z": x}, y))
    with pytest.raises(ValueError, match="l2"):
        fit({"x": x}, y, l2=-1.0)
    with pytest.raises(ValueError, match="solver"):
        fit({"x": x}, y, solver="newton")
    with pytest.raises(ValueError, match="tol"):
        fit({"x": x}, y, solver="lbfgs", tol=0.0)
    with pytest.raises(TypeError, match="tol"):
        fit({"x": x}, y, solver="lbfgs", tol="1e-4")
    model = _small_convnet()
    with pytest.raises(ValueError, match="at least one sub-module"):
        probes.capture(model, torch.rand(2, 784, dtype=torch.float64), [])
    with pytest.raises(ValueError, match="not sub-modules"):
        probes.capture(model, torch.rand(2, 784, dtype=torch.float64), ["conv9"])
    with pytest.raises(TypeError, match="layers"):
        probes.capture(model, torch.rand(2, 784, dtype=torch.float64), "conv1_preact")
    with pytest.raises(ValueError, match="NaN"):
        probes.capture(model, torch.full((2, 784), math.nan, dtype=torch.float64), ["input"])
    with pytest.raises(ValueError, match="not probed"):
        probes.capture(
            model, torch.rand(2, 784, dtype=torch.float64), ["input"], reduce={"logits": probes.Pool2d()}
        )


def _cbc_bytes(pixels: torch.Tensor, sbox: list[int]) -> list[list[int]]:
    """The cipher of probes.scramble written byte by byte in plain Python (a second implementation)."""
    out = []
    for row in (pixels > 0.5).int().tolist():
        previous, cipher = 0, []
        for i in range(0, len(row), 8):
            p = sum(bit << k for k, bit in enumerate(row[i : i + 8]))
            previous = sbox[p ^ previous]
            cipher.append(previous)
        out.append(cipher)
    return out


def test_scramble_is_the_cbc_cipher_and_unscramble_inverts_it():
    x = torch.rand(6, 64, generator=_gen(3))
    sbox = torch.randperm(256, generator=_gen(7)).tolist()  # runtime.generator(7) is this generator
    bits = probes.scramble(x, seed=7)
    packed = (bits.long().reshape(6, -1, 8) * 2 ** torch.arange(8)).sum(-1).tolist()
    assert packed == _cbc_bytes(x, sbox)
    assert torch.equal(probes.unscramble(bits, seed=7), (x > 0.5).float())
    # control: the wrong key does not invert it, and another key gives other bits
    assert not torch.equal(probes.unscramble(bits, seed=8), (x > 0.5).float())
    assert not torch.equal(probes.scramble(x, seed=8), bits)
    with pytest.raises(ValueError, match="pixels"):
        probes.scramble(torch.rand(2, 7))
    with pytest.raises(ValueError, match="bits"):
        probes.unscramble(torch.full((2, 8), 0.5))


def test_scrambling_hides_a_linear_code_from_the_probe():
    """Labels written in the first pixel bit (linear) are lost to a probe after scrambling (§9.3.1)."""
    gen = _gen(4)
    y = torch.randint(2, (800,), generator=gen)
    x = torch.rand(800, 64, generator=gen)
    x[:, 0] = y.float()  # bit 0 of byte 0: after CBC every later byte depends on it nonlinearly
    x[:, 8:] = (x[:, 8:] > 0.5).float()
    train, test = slice(0, 600), slice(600, 800)
    for f, low, high in ((lambda v: (v > 0.5).float(), 0.0, 0.0), (probes.scramble, 0.25, 1.0)):
        fit = probes.fit_probes({"x": f(x[train])}, y[train], test=({"x": f(x[test])}, y[test]))
        assert low <= fit["x"].test_error <= high


def _readings_model() -> torch.nn.Module:
    """Layer "0" is the input (the label sits in column 0), layer "1" the logits of the rule x_0 > 0.5."""
    model = torch.nn.Sequential(torch.nn.Identity(), torch.nn.Linear(3, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))
        model[1].bias.copy_(torch.tensor([0.5, -0.5]))
    return model


def test_layer_readings_against_the_model_and_a_separable_layer():
    gen = _gen(5)
    splits = []
    for n in (200, 100, 100):
        y = torch.randint(2, (n,), generator=gen)
        x = torch.randn(n, 3, generator=gen)
        x[:, 0] = y.float() + 0.1 * x[:, 0]
        splits.append((x, y))
    splits[2][1][:10] = 1 - splits[2][1][:10]  # 10 flipped test labels: the model errs on exactly those
    model = _readings_model()
    out = probes.layer_readings(model, ["0", "1"], *splits)
    assert out["valid"] == [0.0, 0.0]  # the label is linear in the input: separable
    assert out["model_valid"] == 0.0
    expected = (model(splits[2][0]).argmax(1) != splits[2][1]).float().mean().item()
    assert out["model_test"] == expected == pytest.approx(0.1)
    assert out["test"] == pytest.approx([0.1, 0.1])
    assert not model.training
    # control: shuffled training labels leave the probe near chance on valid
    shuffled = (splits[0][0], splits[0][1][torch.randperm(200, generator=gen)])
    chance = probes.layer_readings(model, ["0"], shuffled, splits[1])
    assert chance["valid"][0] > 0.25 and set(chance) == {"valid", "model_valid"}
    with pytest.raises(TypeError, match="valid"):
        probes.layer_readings(model, ["0"], splits[0], splits[1][0])


def test_hooks_are_exact_and_an_in_place_reducer_is_caught():
    model = classifiers.MnistConvNet((2, 3), 8, seed=0)
    x, y = torch.rand(5, 784, generator=_gen(1)), torch.tensor([0, 1, 2, 3, 4])
    assert probes.hooks_are_exact(model, x, y, model.probe_layers, reduce=probes.RandomSubset(10))

    def doubling(h: torch.Tensor) -> torch.Tensor:  # a reducer that writes into the model's activation
        return h.mul_(2)

    assert not probes.hooks_are_exact(model, x, y, ["conv1_preact"], reduce=doubling)
    with pytest.raises(TypeError, match="hooks"):
        probes.hooks_are_exact(model, x, y, ["logits"], hooks=3)


def test_the_diode_check_fails_for_hooks_that_do_not_detach():
    """Review ch. 5 cell 11: a tap without ``.detach()`` lets the probes' gradient into the model."""
    model = classifiers.MnistConvNet((2, 3), 8, seed=0)
    x, y = torch.rand(5, 784, generator=_gen(1)), torch.tensor([0, 1, 2, 3, 4])

    @contextlib.contextmanager
    def leaky_tap(model, layers, reduce=None):
        store, modules = {}, dict(model.named_modules())
        handles = [
            modules[name].register_forward_hook(lambda m, a, out, name=name: store.__setitem__(name, out))
            for name in layers
        ]
        try:
            yield store
        finally:
            for handle in handles:
                handle.remove()

    assert probes.hooks_are_exact(model, x, y, ["conv1_postact", "fc1_postact"])
    assert not probes.hooks_are_exact(model, x, y, ["conv1_postact", "fc1_postact"], hooks=leaky_tap)
    with pytest.raises(ValueError, match="y"):
        probes.hooks_are_exact(model, x, y[:3], ["logits"])
