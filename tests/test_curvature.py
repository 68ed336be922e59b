"""dae_tutor.curvature against independent truth: full Hessians, finite differences, known spectra, eigh."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils import parameters_to_vector

from dae_tutor import curvature, errors, nets, runtime
from dae_tutor import importance as imp

F64 = torch.float64


@pytest.fixture(autouse=True)
def float64_by_default():
    """The exact checks need float64; restore the default so that later test modules see float32."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def small_problem(activation: str = "tanh", n: int = 60, sizes=(5, 8, 3), seed: int = 0):
    """A small classifier, its data and the DatasetLoss of cross-entropy (d = 75 parameters)."""
    gen = runtime.generator(seed)
    model = nets.MLP(list(sizes), activation, seed=seed, dtype=torch.float64)
    x = torch.randn(n, sizes[0], generator=gen)
    y = torch.randint(sizes[-1], (n,), generator=gen)
    return model, (x, y), curvature.DatasetLoss(model, F.cross_entropy, (x, y), chunk_size=17)


def symmetric_with_spectrum(eigenvalues: torch.Tensor, seed: int = 0) -> torch.Tensor:
    d = eigenvalues.numel()
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=runtime.generator(seed)))
    return (q * eigenvalues) @ q.T


# ----------------------------------------------------------------------------- HVP


@pytest.mark.parametrize("method", curvature.HVP_METHODS)
def test_hvp_equals_full_hessian_product_single_and_batched(method):
    model, _, loss = small_problem()
    theta = parameters_to_vector(model.parameters()).detach()
    H = curvature.full_hessian(loss, theta)
    V = torch.randn(4, theta.numel(), generator=runtime.generator(1))
    batched = curvature.hvp(loss, theta, V, method=method)
    single = curvature.hvp(loss, theta, V[0], method=method)
    scale = (V @ H).abs().max()
    assert (batched - V @ H).abs().max() / scale < 1e-6  # float64 rounding is ~1e-15
    assert (single - H @ V[0]).abs().max() / scale < 1e-6
    assert batched.shape == V.shape and single.shape == V[0].shape


def test_hvp_matches_central_finite_differences_of_the_gradient():
    model, _, loss = small_problem()
    theta = parameters_to_vector(model.parameters()).detach()
    v = torch.randn(theta.numel(), generator=runtime.generator(2))
    eps = 1e-5  # central differences: truncation O(eps^2 |g'''|) ~ 1e-10, rounding O(1e-16 / eps) ~ 1e-11
    fd = (loss.gradient(theta + eps * v) - loss.gradient(theta - eps * v)) / (2 * eps)
    exact = curvature.hvp(loss, theta, v)
    assert (fd - exact).norm() / exact.norm() < 1e-4


def test_hvp_bad_inputs_raise():
    model, _, loss = small_problem()
    theta = parameters_to_vector(model.parameters()).detach()
    with pytest.raises(ValueError, match="NaN"):
        curvature.hvp(loss, theta, torch.full_like(theta, math.nan))
    with pytest.raises(ValueError, match="last dimension"):
        curvature.hvp(loss, theta, theta[:-1])
    with pytest.raises(ValueError, match="method"):
        curvature.hvp(loss, theta, theta, method="fd")
    with pytest.raises(ValueError, match="theta must have"):
        loss.hvp(theta[:-1], theta[:-1])


def test_chunked_dataset_hvp_equals_one_chunk_and_is_deterministic():
    model, data, chunked = small_problem()
    whole = curvature.DatasetLoss(model, F.cross_entropy, data, chunk_size=1000)
    theta = parameters_to_vector(model.parameters()).detach()
    v = torch.randn(theta.numel(), generator=runtime.generator(3))
    assert torch.allclose(chunked.hvp(theta, v), whole.hvp(theta, v), rtol=0, atol=1e-12)
    assert torch.allclose(chunked(theta), whole(theta), rtol=0, atol=1e-13)
    assert torch.equal(chunked.hvp(theta, v), chunked.hvp(theta, v))  # app. 11.D: bit-identical


def test_subset_is_fixed_and_of_the_requested_size():
    model, data, _ = small_problem(n=100)
    a = curvature.DatasetLoss(model, F.cross_entropy, data, subset=0.05, generator=runtime.generator(4))
    b = curvature.DatasetLoss(model, F.cross_entropy, data, subset=0.05, generator=runtime.generator(4))
    assert a.n == 5 and torch.equal(a.inputs, b.inputs)


# ----------------------------------------------------------------------------- Lanczos


SPECTRA = {
    # well separated, indefinite: a few large positive, a bulk near 0, a few negative
    "indefinite": torch.cat(
        [
            torch.linspace(-2.0, -0.5, 4, dtype=F64),
            0.01 * torch.linspace(-1, 1, 292, dtype=F64),
            torch.linspace(1, 4, 4, dtype=F64),
        ]
    ),
    # clustered extremes: gaps of 1e-3 relative to a width of 2
    "clustered": torch.cat(
        [
            -1 - 1e-3 * torch.arange(6.0, dtype=F64),
            torch.linspace(-0.5, 0.5, 288, dtype=F64),
            1 + 1e-3 * torch.arange(6.0, dtype=F64),
        ]
    ),
    # the thesis's shape: |lambda_min| << lambda_max
    "lopsided": torch.cat(
        [
            -0.05 - 0.01 * torch.arange(5.0, dtype=F64),
            torch.linspace(-0.01, 0.2, 285, dtype=F64),
            torch.linspace(2, 4, 10, dtype=F64),
        ]
    ),
}


@pytest.mark.parametrize("name", list(SPECTRA))
@pytest.mark.parametrize("which", curvature.WHICH)
def test_lanczos_finds_the_k_extreme_eigenvalues_of_a_known_spectrum(name, which):
    spectrum = SPECTRA[name]
    A = symmetric_with_spectrum(spectrum)
    k = 5
    result = curvature.lanczos(
        lambda v: A @ v, A.shape[0], k, which, tol=1e-10, generator=runtime.generator(5)
    )
    expected = spectrum.sort(descending=which == "LA").values[:k]
    assert torch.allclose(result.eigenvalues, expected, rtol=1e-8, atol=0), (result.eigenvalues, expected)
    # Eigenvectors: orthonormal and A x = lambda x to the stopping tolerance.
    X = result.eigenvectors
    assert torch.allclose(X.T @ X, torch.eye(k), atol=1e-10)
    assert (A @ X - X * result.eigenvalues).norm(dim=0).max() < 1e-8 * spectrum.abs().max()
    assert k <= result.n_matvec <= A.shape[0] and len(result.history) == result.n_matvec - k + 1


def test_spectral_shift_only_changes_the_stopping_test():
    spectrum = SPECTRA["lopsided"]
    A = symmetric_with_spectrum(spectrum)
    runs = {
        shift: curvature.lanczos(
            lambda v: A @ v, 300, 3, "SA", tol=1e-6, shift=shift, generator=runtime.generator(5)
        )
        for shift in (None, "auto", 4.0)
    }
    expected = spectrum.sort().values[:3]
    width = float(spectrum.max() - spectrum.min())
    assert torch.allclose(runs[None].eigenvalues, expected, rtol=1e-6, atol=0)
    for shift in ("auto", 4.0):  # accurate relative to the distance to the shift, and no slower
        assert (runs[shift].eigenvalues - expected).abs().max() <= 1e-6 * width
        assert runs[shift].n_matvec <= runs[None].n_matvec
        # same start, same Krylov space: the Ritz values agree matvec by matvec
        assert runs[shift].history == runs[None].history[: len(runs[shift].history)]


def test_lanczos_reports_non_convergence():
    A = symmetric_with_spectrum(SPECTRA["clustered"])
    with pytest.raises(errors.ConvergenceError, match="max_iter"):
        curvature.lanczos(lambda v: A @ v, A.shape[0], 3, "SA", max_iter=10, generator=runtime.generator(0))


def test_lanczos_bad_inputs_raise():
    A = torch.eye(10)
    with pytest.raises(ValueError, match="k must be < dim"):
        curvature.lanczos(lambda v: A @ v, 10, 10)
    with pytest.raises(ValueError, match="which"):
        curvature.lanczos(lambda v: A @ v, 10, 2, "LM")
    with pytest.raises(ValueError, match="NaN or infinite"):
        curvature.lanczos(lambda v: v * math.nan, 10, 2)
    with pytest.raises(ValueError, match="shape"):
        curvature.lanczos(lambda v: v[:5], 10, 2)
    with pytest.raises(TypeError, match="matvec"):
        curvature.lanczos("not a function", 10, 2)
    with pytest.raises(ValueError, match="shift"):
        curvature.lanczos(lambda v: A @ v, 10, 2, shift="max")


# ----------------------------------------------------------------------------- a model's Hessian


def test_hessian_eigs_matches_eigh_of_the_full_hessian_of_a_relu_mlp():
    model, data, loss = small_problem("relu", n=200, sizes=(6, 12, 4), seed=1)
    theta = parameters_to_vector(model.parameters()).detach()
    exact_values, exact_vectors = torch.linalg.eigh(curvature.full_hessian(loss, theta))
    for which, k in (("LA", 6), ("SA", 3)):
        result = curvature.hessian_eigs(model, F.cross_entropy, data, k, which, chunk_size=64)
        d = exact_values.numel()
        order = torch.arange(d - 1, d - k - 1, -1) if which == "LA" else torch.arange(k)
        values, vectors = exact_values[order], exact_vectors[:, order]
        assert torch.allclose(result.eigenvalues, values, rtol=1e-4, atol=0), (result.eigenvalues, values)
        gaps = (exact_values[None, :] - values[:, None]).abs().sort(dim=1).values[:, 1]
        cosines = (result.eigenvectors * vectors).sum(0).abs()
        separated = gaps > 1e-3 * exact_values.abs().max()  # an eigenvector is defined only up to its gap
        assert separated.any()
        assert (torch.acos(cosines.clamp(max=1))[separated] < 1e-2).all(), cosines


def test_a_subset_that_changes_between_matvecs_breaks_lanczos_silently():
    """App. 11.D: Lanczos needs one fixed operator. On a fixed 10% subset its Ritz pairs are eigenpairs of
    that subset's Hessian to the tolerance; with a fresh subset at every matvec it still returns, but its Ritz
    pairs are eigenpairs of no fixed Hessian: the residual against the full-data one is far above the tol."""
    model, (x, y), full = small_problem("tanh", n=400, seed=3)
    theta = parameters_to_vector(model.parameters()).detach()
    d = theta.numel()

    def worst_residual(result, H):
        pairs = zip(result.eigenvalues.tolist(), result.eigenvectors.T, strict=True)
        return max(((H @ v - lam * v).norm() / abs(lam)).item() for lam, v in pairs)

    fixed = curvature.DatasetLoss(model, F.cross_entropy, (x, y), subset=0.1, generator=runtime.generator(1))
    kept = curvature.lanczos(
        lambda u: fixed.hvp(theta, u), d, 3, "LA", tol=1e-8, generator=runtime.generator(2)
    )
    assert worst_residual(kept, curvature.full_hessian(fixed, theta)) < 1e-6  # tol 1e-8, rounding in the HVPs
    draws = runtime.generator(5)

    def fresh(u):
        rows = torch.randperm(400, generator=draws)[:40]
        return curvature.DatasetLoss(model, F.cross_entropy, (x[rows], y[rows])).hvp(theta, u)

    changing = curvature.lanczos(fresh, d, 3, "LA", tol=1e-8, generator=runtime.generator(2))
    assert worst_residual(changing, curvature.full_hessian(full, theta)) > 1e-2  # the control fails the check


def test_hessian_eigs_restores_training_mode_and_checks_k():
    model, data, _ = small_problem()
    model.train()
    curvature.hessian_eigs(model, F.cross_entropy, data, 2, "LA")
    assert model.training
    with pytest.raises(ValueError, match="k must be <"):
        curvature.hessian_eigs(model, F.cross_entropy, data, 75, "LA")
    with pytest.raises(ValueError, match="which"):
        curvature.hessian_eigs(model, F.cross_entropy, data, 2, "XX")


def test_per_example_losses_with_reduction_none_give_the_same_loss_and_spectrum():
    """reduction="none" with the per-example cross-entropy equals the default "mean" with F.cross_entropy."""
    model, data, mean_loss = small_problem("relu", n=200, sizes=(6, 12, 4), seed=1)
    none_loss = curvature.DatasetLoss(model, imp.cross_entropy, data, chunk_size=17, reduction="none")
    theta = parameters_to_vector(model.parameters()).detach()
    v = torch.randn(3, theta.numel(), generator=runtime.generator(2))
    torch.testing.assert_close(none_loss(theta), mean_loss(theta), rtol=1e-14, atol=0)
    torch.testing.assert_close(none_loss.gradient(theta), mean_loss.gradient(theta), rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(none_loss.hvp(theta, v), mean_loss.hvp(theta, v), rtol=1e-12, atol=1e-15)
    exact = torch.linalg.eigvalsh(curvature.full_hessian(mean_loss, theta))
    for which, k, values in (("LA", 4, exact.flip(0)[:4]), ("SA", 3, exact[:3])):
        kwargs = {"k": k, "which": which, "chunk_size": 64, "generator": runtime.generator(3)}
        per_example = curvature.hessian_eigs(model, imp.cross_entropy, data, reduction="none", **kwargs)
        kwargs["generator"] = runtime.generator(3)
        mean = curvature.hessian_eigs(model, F.cross_entropy, data, **kwargs)
        torch.testing.assert_close(per_example.eigenvalues, mean.eigenvalues, rtol=1e-10, atol=0)
        torch.testing.assert_close(per_example.eigenvalues, values, rtol=1e-6, atol=0)


def test_dataset_loss_checks_the_reduction():
    model, data, _ = small_problem()
    theta = parameters_to_vector(model.parameters()).detach()
    with pytest.raises(ValueError, match="reduction"):
        curvature.DatasetLoss(model, F.cross_entropy, data, reduction="sum")
    with pytest.raises(ValueError, match=r"reduction='none'.*got \(\)"):
        curvature.DatasetLoss(model, F.cross_entropy, data, reduction="none")(theta)
    with pytest.raises(ValueError, match=r"reduction='mean'.*got \(60,\)"):
        curvature.DatasetLoss(model, imp.cross_entropy, data)(theta)
    with pytest.raises(ValueError, match="reduction"):
        curvature.hessian_eigs(model, imp.cross_entropy, data, 2, "LA")


def test_full_hessian_refuses_large_models():
    with pytest.raises(ValueError, match="full_hessian"):
        curvature.full_hessian(lambda p: p.sum(), torch.zeros(curvature.MAX_FULL_HESSIAN_DIM + 1))


# ----------------------------------------------------------------------------- line search


def quadratic(A: torch.Tensor, b: torch.Tensor):
    return lambda p: 0.5 * p @ A @ p + b @ p


def test_line_search_on_a_quadratic_gives_alpha_star_one_over_lambda():
    spectrum = torch.tensor([3.0, 1.5, 0.4, 0.05, -0.3, -1.0])
    A = symmetric_with_spectrum(spectrum, seed=6)
    b = torch.randn(6, generator=runtime.generator(7))
    f = quadratic(A, b)
    theta = torch.randn(6, generator=runtime.generator(8))
    g = A @ theta + b
    _, vectors = torch.linalg.eigh(A)
    alphas = torch.cat([-torch.logspace(-3, 3, 120), torch.logspace(-3, 3, 120)])
    for lam, v in zip(torch.linalg.eigvalsh(A), vectors.T, strict=True):
        c = float(g @ v)
        search = curvature.line_search_along(f, theta, c * v, alphas)
        if lam > 0:  # eq. 11.2, exact on a quadratic; the parabola refinement removes the grid error
            assert not search.at_edge
            assert math.isclose(search.alpha_star, 1 / float(lam), rel_tol=1e-9), (search.alpha_star, lam)
            assert math.isclose(search.best_decrease, -0.5 * c**2 / float(lam), rel_tol=1e-9)
        else:  # unbounded below: the best step is at the end of the grid
            assert search.at_edge and abs(search.alpha_star) == 1e3
        model = curvature.quadratic_model(search.loss0, c, float(lam), search.alphas)
        assert torch.allclose(model, search.losses, rtol=1e-10, atol=1e-10)


def test_line_search_on_the_2d_toy_gives_the_closed_form_alpha_star():
    """f = x² − y² + y⁴/4 at (0.5, 0.1) (spec C.7): λ = −1.97 along e_y, c = gᵀe_y = −0.199, and f is
    minimised along y at y = ±√2, so α* = (√2 − 0.1)/0.199 = 6.60 on the descent side (α > 0) and
    −(√2 + 0.1)/0.199 on the other, both ≫ Dauphin's 1/abs(λ) = 0.508."""
    f = lambda p: p[0] ** 2 - p[1] ** 2 + p[1] ** 4 / 4  # noqa: E731
    theta = torch.tensor([0.5, 0.1], dtype=torch.float64)
    lam = float(curvature.full_hessian(f, theta)[1, 1])
    c = float(torch.func.grad(f)(theta)[1])
    assert lam == pytest.approx(-1.97, abs=1e-12) and c == pytest.approx(-0.199, abs=1e-12)
    u = c * torch.tensor([0.0, 1.0], dtype=torch.float64)
    descent = (math.sqrt(2) - 0.1) / abs(c)
    best = (-2 + 1) - (-0.01 + 0.1**4 / 4)  # f(0.5, √2) − f(0.5, 0.1)
    # grid spacing h = 0.1: the parabola's vertex is off by O(h² ℓ‴/ℓ″), about 1e-3 at most here
    search = curvature.line_search_along(f, theta, u, torch.linspace(0.05, 20, 200, dtype=torch.float64))
    assert search.alpha_star == pytest.approx(descent, rel=1e-3) and not search.at_edge
    assert search.best_decrease == pytest.approx(best, abs=1e-6)
    both = curvature.line_search_along(f, theta, u, torch.linspace(-20, 20, 401, dtype=torch.float64))
    assert min(abs(both.alpha_star - a) for a in (descent, -(math.sqrt(2) + 0.1) / abs(c))) < 1e-2
    # the control: Dauphin's step 1/abs(λ) decreases f over 30 times less than α*
    dauphin = float(f(theta - u / abs(lam)) - f(theta))
    assert dauphin > best / 30 and abs(1 / lam) < descent / 10


def test_line_search_bad_inputs_raise():
    f = quadratic(torch.eye(3), torch.zeros(3))
    with pytest.raises(ValueError, match="direction"):
        curvature.line_search_along(f, torch.zeros(3), torch.zeros(2), [0.1, 1, 2])
    with pytest.raises(ValueError, match="at least 3"):
        curvature.line_search_along(f, torch.zeros(3), torch.ones(3), [1.0])
    with pytest.raises(ValueError, match="NaN"):
        curvature.line_search_along(f, torch.zeros(3), torch.tensor([1.0, math.nan, 0]), [0.1, 1, 2])
    with pytest.raises(ValueError, match="alphas"):
        curvature.line_search_along(f, torch.zeros(3), torch.ones(3), [0.1, math.inf, 2])


# ----------------------------------------------------------------------------- app. 11.E


def saddle_toy(p: torch.Tensor) -> torch.Tensor:
    """f(x, y) = x² − y² + y⁴/4 (spec C.7): a saddle at 0 (H = diag(2, −2)), minima f = −1 at (0, ±√2)."""
    return p[0] ** 2 - p[1] ** 2 + p[1] ** 4 / 4


def test_the_curvature_step_escapes_a_saddle_that_gradient_descent_converges_to():
    # From (0.5, 0), on the saddle's stable manifold y = 0, the gradient (2x, 0) never leaves y = 0: gradient
    # descent converges to the saddle, f -> 0 (the control). Its component on v = e_y is exactly 0, so the
    # thesis's step [g^T v] v would not move either; the line search along v does, to the minimum f = -1.
    start = torch.tensor([0.5, 0.0])
    plain = torch.nn.Parameter(start.clone())
    sgd = torch.optim.SGD([plain], lr=0.1)
    for _ in range(200):
        sgd.zero_grad()
        saddle_toy(plain).backward()
        sgd.step()
    assert plain[1].item() == 0.0 and abs(saddle_toy(plain).item()) < 1e-12
    theta = torch.nn.Parameter(start.clone())
    opt = curvature.NegativeCurvature(
        torch.optim.SGD([theta], lr=0.1), saddle_toy, torch.tensor([1.0, 1.0]), every=1, until=1, refresh=2
    )
    for _ in range(200):
        opt.step(lambda: saddle_toy(theta))
    # one curvature step (until=1): Lanczos on the 2-d Hessian diag(2, -2) at (0.4, 0) is exact (2 matvecs)
    assert opt.curvature_steps == opt.negative == len(opt.decreases) == 1 and opt.hvps == 2
    assert opt.eigenvalue == pytest.approx(-2.0, abs=1e-12)
    # the line search alone lowers f by about the closed form's 1 (-y^2 + y^4/4 at y = sqrt 2; grid, parabola)
    assert -1.0 <= opt.decreases[0] < -0.95
    # and the base steps then converge to the minimum (0, ±sqrt 2), f = -1 (SGD contracts by 0.6-0.8 a step)
    torch.testing.assert_close(theta.detach().abs(), torch.tensor([0.0, math.sqrt(2)]), atol=1e-8, rtol=0)
    assert saddle_toy(theta).item() == pytest.approx(-1.0, abs=1e-12)


def test_warm_started_refreshes_track_the_bottom_eigenvalue_and_check_reports_it():
    spectrum = torch.cat([torch.tensor([-0.8, -0.75]), torch.linspace(0.1, 2.0, 38)])
    A = symmetric_with_spectrum(spectrum, seed=9)
    theta = torch.nn.Parameter(torch.zeros(40))
    f = quadratic(A, torch.zeros(40))
    cold = torch.randn(40, generator=runtime.generator(1))
    opt = curvature.NegativeCurvature(
        torch.optim.SGD([theta], lr=0.0), f, cold, every=1, until=100, refresh=3, displacements=[0.1, 1.0]
    )
    # control: a cold start's Rayleigh quotient, and one refresh of 3 Lanczos steps from it, are far off
    stale, refreshed, bottom = opt.check(generator=runtime.generator(2), tol=1e-10)
    assert bottom == pytest.approx(-0.8, abs=1e-8)
    assert stale > -0.4 and refreshed > -0.75
    for _ in range(60):  # lr = 0: only the line searches move theta, and H = A is the same everywhere
        opt.step(lambda: f(theta))
    # restarted Lanczos (each refresh starts from the last v) converges to lambda_d despite the close -0.75:
    # a refresh stops at residual r <= 1e-3 |lambda~|: eigenvalue error <= r^2 / gap = (8e-4)^2 / 0.05 ~ 1e-5
    stale, refreshed, bottom = opt.check(generator=runtime.generator(2), tol=1e-10)
    assert opt.eigenvalue == pytest.approx(-0.8, abs=2e-5) and stale == pytest.approx(-0.8, abs=2e-5)
    assert refreshed <= stale + 1e-12  # the Krylov space holds v: a refresh is never worse
    assert opt.hvps <= 3 * 60 and opt.negative == opt.curvature_steps == 60


def test_lanczos_warm_start_and_a_fixed_budget():
    spectrum = torch.linspace(-1.0, 3.0, 30, dtype=F64)
    A = symmetric_with_spectrum(spectrum, seed=4)
    exact = torch.linalg.eigh(A).eigenvectors[:, 0]
    found = curvature.lanczos(lambda v: A @ v, 30, 1, "SA", start=exact)
    assert found.n_matvec == 1 and found.eigenvalues[0].item() == pytest.approx(-1.0, abs=1e-12)
    start = torch.randn(30, generator=runtime.generator(5), dtype=F64)
    with pytest.raises(errors.ConvergenceError):
        curvature.lanczos(lambda v: A @ v, 30, 1, "SA", start=start, max_iter=3)
    budget = curvature.lanczos(lambda v: A @ v, 30, 1, "SA", start=start, max_iter=3, strict=False)
    rayleigh = (start @ A @ start / (start @ start)).item()
    assert budget.n_matvec == 3 and -1.0 < budget.eigenvalues[0].item() < rayleigh
    with pytest.raises(ValueError, match="start"):
        curvature.lanczos(lambda v: A @ v, 30, 1, "SA", start=torch.zeros(30, dtype=F64))


def test_gradient_equivalents_counts_steps_hvps_and_loss_values():
    assert curvature.gradient_equivalents(10, 0, 0, batch_size=32, objective_size=400) == 10
    assert curvature.gradient_equivalents(0, 1, 0, batch_size=32, objective_size=32) == 2
    assert curvature.gradient_equivalents(0, 0, 3, batch_size=32, objective_size=64) == pytest.approx(2)


def test_negative_curvature_checks_its_arguments():
    p = torch.nn.Parameter(torch.zeros(3))
    f = lambda q: (q**2).sum()  # noqa: E731
    with pytest.raises(TypeError, match="base"):
        curvature.NegativeCurvature("sgd", f, torch.ones(3), every=1, until=1)
    with pytest.raises(ValueError, match="start"):
        curvature.NegativeCurvature(torch.optim.SGD([p], lr=0.1), f, torch.ones(4), every=1, until=1)
    with pytest.raises(ValueError, match="displacements"):
        curvature.NegativeCurvature(
            torch.optim.SGD([p], lr=0.1), f, torch.ones(3), every=1, until=1, displacements=[1.0, -1.0]
        )
    opt = curvature.NegativeCurvature(torch.optim.SGD([p], lr=0.1), f, torch.ones(3), every=1, until=1)
    with pytest.raises(errors.DivergenceError, match="the loss is nan at step 0;"):
        opt.step(lambda: (p * math.nan).sum())


# ----------------------------------------------------------------------------- the chapter's references


def test_arpack_eigs_against_a_known_spectrum_and_counts_matvecs():
    spectrum = torch.linspace(-1.0, 4.0, 30, dtype=F64)
    a = symmetric_with_spectrum(spectrum, seed=3)
    calls = []

    def matvec(v):
        calls.append(1)
        return a @ v

    top, count = curvature.arpack_eigs(matvec, 30, 3, "LA", seed=1)
    assert count == len(calls) > 0
    torch.testing.assert_close(torch.from_numpy(top), spectrum[-3:], rtol=1e-9, atol=0)
    bottom, _ = curvature.arpack_eigs(matvec, 30, 2, "SA", seed=1)
    torch.testing.assert_close(torch.from_numpy(bottom), spectrum[:2], rtol=1e-9, atol=1e-12)
    shifted, _ = curvature.arpack_eigs(matvec, 30, 2, "SA", shift=4.0, seed=1)  # LA of 4I - A
    torch.testing.assert_close(torch.from_numpy(shifted), spectrum[:2].flip(0), rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="shift"):
        curvature.arpack_eigs(matvec, 30, 2, "LA", shift=4.0)


def test_ritz_angles_measure_known_rotations_and_skip_degenerate_pairs():
    values = torch.tensor([0.0, 1.0, 1.0, 3.0], dtype=F64)  # 1.0 is double: its eigenvectors are not defined
    vectors = torch.linalg.qr(torch.randn(4, 4, generator=runtime.generator(0), dtype=F64))[0]
    theta = 0.3
    tilted = math.cos(theta) * vectors[:, 3] - math.sin(theta) * vectors[:, 0]  # sign does not matter
    ritz = torch.stack([vectors[:, 0], -tilted, vectors[:, 1]], 1)
    got = curvature.ritz_angles(ritz, values, vectors, [0, 3, 1], min_gap=0.5)
    assert got == pytest.approx([0.0, theta], abs=1e-7)  # pair 3 (eigenvalue 1.0, gap 0) is skipped
    assert len(curvature.ritz_angles(ritz, values, vectors, [0, 3, 1], min_gap=0.0)) == 2  # gap 0 > 0 fails
    with pytest.raises(ValueError, match="index"):
        curvature.ritz_angles(ritz, values, vectors, [0, 3], min_gap=0.5)


def test_checkpoint_spectrum_against_the_full_hessian():
    model, data, full = small_problem()
    subset = (data[0][:20], data[1][:20])
    sub_loss = curvature.DatasetLoss(model, F.cross_entropy, subset)
    theta = parameters_to_vector(model.parameters()).detach() + 0.1
    out = curvature.checkpoint_spectrum(model, theta, F.cross_entropy, subset, 4, objective=full, tol=1e-10)
    exact = torch.linalg.eigvalsh(curvature.full_hessian(sub_loss, theta))
    torch.testing.assert_close(out["la"].eigenvalues, exact.flip(0)[:4], rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(out["sa"].eigenvalues, exact[:3], rtol=1e-8, atol=1e-10)
    assert torch.equal(parameters_to_vector(model.parameters()).detach(), theta)  # the model is at theta
    assert out["loss"] == pytest.approx(full(theta).item(), rel=1e-12)
    torch.testing.assert_close(out["grad"], torch.func.grad(full)(theta))
    assert out["hvps"] == out["la"].n_matvec + out["sa"].n_matvec
    with pytest.raises(TypeError, match="objective"):
        curvature.checkpoint_spectrum(model, theta, F.cross_entropy, subset, 4, objective=None)


def test_timed_run_logs_steps_seconds_hvps_and_checks():
    model, (x, y), objective = small_problem()
    initial = F.cross_entropy(model(x), y).item()
    frozen = torch.optim.SGD(model.parameters(), lr=0.0)  # control: no step changes the eval loss
    log = curvature.timed_run(
        model, frozen, x, y, (x, y), steps=12, generator=runtime.generator(0), batch_size=8, eval_every=5
    )
    assert log["step"].tolist() == [0, 5, 10, 12] and (log["hvps"] == 0).all()
    assert log["checks"].shape == (0, 4)
    assert log["seconds"][0] == 0.0 and (log["seconds"].diff() > 0).all()
    assert torch.allclose(log["loss"], torch.tensor(initial, dtype=F64), rtol=1e-12, atol=0)
    start = torch.ones(objective.dim)
    opt = curvature.NegativeCurvature(  # a frozen base: only the curvature steps can change the loss
        torch.optim.SGD(model.parameters(), lr=0.0), objective, start, every=5, until=10, refresh=4
    )
    log = curvature.timed_run(
        model,
        opt,
        x,
        y,
        (x, y),
        steps=12,
        generator=runtime.generator(0),
        batch_size=8,
        eval_every=5,
        check_at=[5],
        check_generator=runtime.generator(1),
    )
    assert log["hvps"].tolist() == [0, 4, 8, 8] and opt.curvature_steps == 2  # at steps 0 and 5
    assert log["checks"].shape == (1, 4) and log["checks"][0, 0] == 5
    stale, refreshed, bottom = log["checks"][0, 1:].tolist()
    assert bottom <= refreshed <= stale + 1e-12  # lambda_d <= the refreshed Ritz value <= the stored v's
    # the objective is the eval data: the loss fell by exactly the decreases the line searches bought
    assert opt.negative == len(opt.decreases) == 2
    assert log["loss"][-1].item() == pytest.approx(initial + sum(opt.decreases), abs=1e-12)
    assert log["loss"][-1] < initial
    with pytest.raises(TypeError, match="check_at"):
        curvature.timed_run(
            model, frozen, x, y, (x, y), steps=2, generator=runtime.generator(0), check_at=[1]
        )
