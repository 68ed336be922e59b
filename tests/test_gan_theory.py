"""Tests of dae_tutor.gan_theory by quadrature and closed forms: C(G) (Thm 1), D* (Prop. 1), bilinear game."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from dae_tutor import baselines
from dae_tutor import gan_theory as T

F64 = torch.float64


X = torch.linspace(-40, 40, 200_001, dtype=F64)  # e^(-40²/2) underflows float64: the naive form fails


def _log_normal(mean: float, std: float) -> torch.Tensor:
    return torch.from_numpy(stats.norm(mean, std).logpdf(X.numpy()))


@pytest.mark.parametrize(
    ("mean", "std", "expected"),
    [(0.0, 1.0, -math.log(4)), (1.0, 1.0, -1.16345), (3.0, 0.5, -0.12456)],
)
def test_virtual_criterion_matches_theorem_1(mean: float, std: float, expected: float) -> None:
    lpd, lpg = _log_normal(0, 1), _log_normal(mean, std)
    c = T.virtual_criterion(X, lpd, lpg)
    # The reference values are rounded to 5 decimals (spec D_map §2.3); the quadrature is exact to ~1e-12.
    assert abs(c - expected) < 1e-5
    assert c == pytest.approx(-T.LOG_4 + 2 * T.jensen_shannon(X, lpd, lpg), abs=1e-9)
    assert c == pytest.approx(T.eq5_criterion(X, lpd, lpg), abs=1e-9)  # Eq. 5, the KL form


def test_kl_divergence_matches_the_gaussian_closed_form_and_is_not_symmetric() -> None:
    # KL(N(a, s²) ‖ N(0, 1)) = log(1/s) + (s² + a²)/2 − ½; the reverse direction (the control) differs.
    lp, lq = _log_normal(3, 0.5), _log_normal(0, 1)
    assert T.kl_divergence(X, lp, lq) == pytest.approx(math.log(2) + (0.25 + 9) / 2 - 0.5, abs=1e-9)
    assert T.kl_divergence(X, lq, lp) == pytest.approx(math.log(0.5) + (1 + 9) / (2 * 0.25) - 0.5, abs=1e-9)
    assert T.kl_divergence(X, lp, lp) == pytest.approx(0.0, abs=1e-12)


def test_optimal_discriminator_is_the_density_ratio_and_maximises_v() -> None:
    lpd, lpg = _log_normal(0, 1), _log_normal(1, 1)
    d_star = T.optimal_discriminator(lpd, lpg)
    middle = X.abs() < 5
    ratio = lpd.exp() / (lpd.exp() + lpg.exp())
    torch.testing.assert_close(d_star[middle], ratio[middle], rtol=1e-12, atol=0)
    # Far out both densities underflow: the ratio is 0/0, D* stays defined (here D* = σ(0.5 − x)).
    assert bool(torch.isnan(ratio).any()) and bool(torch.isfinite(d_star).all())
    c = T.virtual_criterion(X, lpd, lpg)
    for shift in (-0.3, 0.2):  # any other discriminator does worse (Prop. 1)
        assert T.value_by_quadrature(X, lpd, lpg, (lpd - lpg) + shift) < c


def test_bilinear_game_orbits_outwards() -> None:
    path = T.simultaneous_gradient_play(1.0, 0.0, lr=0.1, steps=50)
    radius = path.norm(dim=1)
    torch.testing.assert_close(radius[1:] / radius[:-1], torch.full((50,), math.sqrt(1.01), dtype=F64))

    def field(p: torch.Tensor) -> torch.Tensor:  # (−∂v/∂a, ∂v/∂b) for v = ab
        return torch.stack([-p[1], p[0]])

    eig = torch.linalg.eigvals(torch.autograd.functional.jacobian(field, torch.zeros(2, dtype=F64)))
    np.testing.assert_allclose(sorted(eig.imag.tolist()), [-1, 1])
    np.testing.assert_allclose(eig.real, 0)


# a trained-or-random 1-D GAN, exactly: change of variables, its state, Fig. 1 ---------------------------
def _gan_1d(seed: int) -> baselines.GAN:
    return baselines.GAN(
        1,
        1,
        generator_hidden=(16, 16),
        discriminator_hidden=(16, 16),
        activation="tanh",
        prior="uniform",
        seed=seed,
        dtype=F64,
    )


def _data_1d(m: int, gen: torch.Generator) -> torch.Tensor:
    return 2.0 + 0.5 * torch.randn(m, 1, generator=gen, dtype=F64)


X1 = torch.linspace(-3, 7, 20_001, dtype=F64)
LOG_P_DATA_1D = torch.from_numpy(stats.norm(2.0, 0.5).logpdf(X1.numpy()))


def test_generator_density_matches_a_histogram_of_samples_and_integrates_to_one() -> None:
    gan = _gan_1d(0)  # G is monotone at this seed (G(0) = -0.33, G(1) = -0.13)
    x, log_pg, monotone = T.generator_density(gan)
    assert monotone and bool((x[1:] >= x[:-1]).all())
    # independent truth 1: 400,000 samples G(z), z ~ U(0, 1), histogrammed on 20 bins of G's range
    samples = gan.sample(400_000, torch.Generator().manual_seed(1))[:, 0]
    counts, edges = np.histogram(samples.numpy(), bins=20, range=(float(x[0]), float(x[-1])))
    width = edges[1] - edges[0]
    centres = (edges[:-1] + edges[1:]) / 2
    expected = np.exp(np.interp(centres, x.numpy(), log_pg.numpy()))
    empirical = counts / (len(samples) * width)
    se = np.sqrt(counts) / (len(samples) * width)  # Poisson error of each bin
    assert np.all(np.abs(empirical - expected) < 5 * se + 0.01 * expected), (empirical, expected)
    # independent truth 2: a density integrates to 1 over its support [G(0), G(1)]
    grid = torch.linspace(float(x[0]) - 0.1, float(x[-1]) + 0.1, 200_001, dtype=F64)
    lpg = T.log_p_g_on_grid(gan, grid)
    assert bool(torch.isinf(lpg[grid < x[0]]).all()) and bool(torch.isinf(lpg[grid > x[-1]]).all())
    assert abs(torch.trapezoid(lpg.exp(), grid).item() - 1) < 1e-3


def test_exact_state_obeys_prop_1_and_theorem_1() -> None:
    gan = _gan_1d(0)
    state = T.exact_state(gan, X1, LOG_P_DATA_1D)
    assert state["value"] <= state["criterion"] + 1e-12  # C(G) = max_D V(D, G)
    # Eq. 6 holds for the integrals; the two quadratures differ only at p_g's jumps at the ends of its
    # compact support, where the trapezoid rule errs by at most (jump height) x (grid step) per end
    edge_error = 2 * T.log_p_g_on_grid(gan, X1).exp().max().item() * (X1[1] - X1[0]).item()
    assert abs(state["criterion"] - (-math.log(4) + 2 * state["jsd"])) < edge_error
    assert 0 <= state["d_error"] <= 1 and 0 <= state["d_half"] <= 0.5
    # a G far from N(2, 0.5²): the supports barely overlap, so JSD is near its maximum log 2
    assert state["jsd"] > 0.9 * math.log(2)


def test_gan_1d_functions_reject_a_non_monotone_or_multivariate_generator() -> None:
    non_monotone = _gan_1d(3)
    assert not T.generator_density(non_monotone)[2]
    with pytest.raises(ValueError, match="monotone"):
        T.log_p_g_on_grid(non_monotone, X1)
    with pytest.raises(ValueError, match="gan"):
        T.generator_density(baselines.GAN(2, 1, prior="uniform"))
    with pytest.raises(ValueError, match="gan"):
        T.generator_density(baselines.GAN(1, 1))  # gaussian prior: not the U(0, 1) change of variables
    with pytest.raises(TypeError, match="gan"):
        T.exact_state("gan", X1, LOG_P_DATA_1D)
    with pytest.raises(ValueError, match="x"):
        T.log_p_g_on_grid(_gan_1d(0), X1.flip(0))


def test_figure1_training_trains_d_towards_d_star_then_g_towards_the_data() -> None:
    gan = _gan_1d(0)
    run = T.figure1_training(gan, _data_1d, steps=60, k=5, d_steps=(5, 400), g_steps=5, n_snapshots=3)
    assert len(run["panels"]) == 4 and len(run["snapshots"]) == 3 and len(run["value"]) == 60
    states = []
    for panel in run["panels"]:
        g = _gan_1d(0)
        g.load_state_dict(panel)
        states.append(T.exact_state(g, X1, LOG_P_DATA_1D))
    # (b): 400 more D steps bring D nearer D* than panel (a)'s 5 (Prop. 1); the untrained-D control fails it
    assert states[1]["d_error"] < 0.5 * states[0]["d_error"], states
    # the start fits G to N(0.8, 0.8²); after (d) the JSD has fallen
    assert states[3]["jsd"] < states[0]["jsd"], states
    for name, value in gan.state_dict().items():  # trained in place: the model is panel (d)
        torch.testing.assert_close(value, run["panels"][3][name], rtol=0, atol=0)
    with pytest.raises(ValueError, match="n_snapshots"):
        T.figure1_training(_gan_1d(0), _data_1d, steps=2, n_snapshots=3)
    with pytest.raises(TypeError, match="data"):
        T.figure1_training(_gan_1d(0), torch.zeros(3, 1), steps=2)
