"""Tests of dae_tutor.depnets against enumeration over all binary states and the spec's reference numbers
(``shared/spec/B_gsn.md`` N15, T14: dependency networks as GSNs, [TH] §5.3.7, Prop. 6).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from dae_tutor import depnets, markov


# ------------------------------------------------------------------- dependency networks (N15; T14)
def test_site_kernels_and_conditionals_by_enumeration() -> None:
    rng = np.random.default_rng(40)
    p = rng.dirichlet(np.ones(8))
    states = list(itertools.product([0, 1], repeat=3))
    conds = depnets.conditionals_from_joint(p).numpy()
    ks = depnets.site_kernels(conds).numpy()
    for i in range(3):
        for a, x in enumerate(states):
            rest = x[:i] + x[i + 1 :]
            j = int("".join(map(str, rest)), 2)
            both = [p[states.index((*rest[:i], v, *rest[i:]))] for v in (0, 1)]
            assert conds[i, j] == pytest.approx(both[1] / sum(both), abs=1e-15)
            for b, y in enumerate(states):
                same = y[:i] + y[i + 1 :] == rest
                assert ks[i, a, b] == pytest.approx(
                    same * (conds[i, j] if y[i] else 1 - conds[i, j]), abs=1e-16
                )
    sweep = depnets.systematic_scan_kernel(ks, [2, 0, 1]).numpy()
    np.testing.assert_allclose(sweep, ks[2] @ ks[0] @ ks[1], atol=1e-15)
    np.testing.assert_allclose(
        depnets.random_scan_kernel(ks, [0.5, 0.25, 0.25]).numpy(), 0.5 * ks[0] + 0.25 * (ks[1] + ks[2])
    )


def test_consistent_conditionals_recover_the_joint() -> None:
    """Spec N15, T14."""
    p = np.random.default_rng(7).dirichlet(np.ones(8))
    ks = depnets.site_kernels(depnets.conditionals_from_joint(p))
    assert markov.tv_distance(markov.stationary_distribution(depnets.random_scan_kernel(ks)), p) < 1e-10
    for order in itertools.permutations(range(3)):  # all 6 sweeps
        assert (
            markov.tv_distance(markov.stationary_distribution(depnets.systematic_scan_kernel(ks, order)), p)
            < 1e-10
        )


def test_inconsistent_conditionals_and_the_periodic_ordered_chain() -> None:
    """Spec N15, T14."""
    conds = depnets.random_conditionals(3, torch.Generator().manual_seed(7))
    assert conds.shape == (3, 4) and 0.05 <= float(conds.min()) and float(conds.max()) <= 0.95
    ks = depnets.site_kernels(conds)
    s123 = markov.stationary_distribution(depnets.systematic_scan_kernel(ks, [0, 1, 2]))
    s321 = markov.stationary_distribution(depnets.systematic_scan_kernel(ks, [2, 1, 0]))
    assert markov.tv_distance(s123, s321) > 1e-3  # T14 (spec prototype: 0.197)
    rscan = depnets.random_scan_kernel(ks)
    assert len(markov.closed_classes(rscan)) == 1
    assert int(np.sum(np.abs(np.linalg.eigvals(rscan.numpy()) - 1) < 1e-9)) == 1  # multiplicity 1
    pi = markov.stationary_distribution(rscan)
    assert float((depnets.conditionals_from_joint(pi) - conds).abs().max()) > 1e-2  # pi's conditionals differ
    for conditionals in (
        conds,
        depnets.conditionals_from_joint(np.random.default_rng(7).dirichlet(np.ones(8))),
    ):
        for d_sites, kk in ((3, depnets.site_kernels(conditionals)),):
            lam = np.linalg.eigvals(depnets.augmented_ordered_chain(kk).numpy())
            unit = lam[np.abs(np.abs(lam) - 1) < 1e-9]
            assert len(unit) == d_sites  # exactly d unit-modulus eigenvalues ...
            roots = np.exp(2j * np.pi * np.arange(d_sites) / d_sites)  # ... the d-th roots of unity
            rows, cols = linear_sum_assignment(np.abs(unit[:, None] - roots[None]))
            assert np.abs(unit[rows] - roots[cols]).max() < 1e-9
    kk4 = depnets.site_kernels(depnets.random_conditionals(4, torch.Generator().manual_seed(1)))
    lam = np.linalg.eigvals(depnets.augmented_ordered_chain(kk4).numpy())
    unit = np.sort_complex(lam[np.abs(np.abs(lam) - 1) < 1e-9])
    np.testing.assert_allclose(unit, np.sort_complex(np.array([1, 1j, -1, -1j])), atol=1e-9)


@pytest.mark.parametrize(("d", "dim"), [(3, 5), (4, 17)])
def test_null_space_counting_argument(d: int, dim: int) -> None:
    """Spec N15, T14."""
    p = np.random.default_rng(11).dirichlet(np.ones(2**d))
    null = depnets.conditional_null_space(p)
    assert null.shape == (dim, d, 2 ** (d - 1)) and dim == d * 2 ** (d - 1) - (2**d - 1)
    flat = null.reshape(dim, -1).numpy()
    np.testing.assert_allclose(flat @ flat.T, np.eye(dim), atol=1e-12)  # orthonormal
    bayes = depnets.conditionals_from_joint(p)
    for direction in null:
        margin = torch.minimum(bayes, 1 - bayes)  # the largest feasible step, at most 0.1 per entry
        ratio = float((margin / direction.abs().clamp_min(1e-300)).min())
        step = min(0.1 / float(direction.abs().max()), 0.5 * ratio)
        moved = bayes + step * direction
        assert 0 < float(moved.min()) and float(moved.max()) < 1  # feasible step
        assert float((moved - bayes).abs().max()) > 1e-3  # different conditionals ...
        pi = markov.stationary_distribution(depnets.random_scan_kernel(depnets.site_kernels(moved)))
        assert markov.tv_distance(pi, p) < 1e-10  # ... same stationary P (T14)


# ---------------------------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: depnets.site_kernels(np.full((3, 3), 0.5)),
            ValueError,
            r"conds must have shape \(d, 2\*\*\(d-1\)\)",
        ),
        (lambda: depnets.site_kernels(np.full((2, 2), 1.5)), ValueError, "conds must hold probabilities"),
        (lambda: depnets.conditionals_from_joint(np.ones(6) / 6), ValueError, r"P must have 2\*\*d entries"),
        (lambda: depnets.random_conditionals(3, low=0.9, high=0.1), ValueError, "low must be < high"),
        (
            lambda: depnets.systematic_scan_kernel(depnets.site_kernels(np.full((2, 2), 0.5)), [0, 2]),
            ValueError,
            "order",
        ),
        (
            lambda: depnets.random_scan_kernel(np.eye(4)[None], [0.5, 0.5]),
            ValueError,
            "w has 2 states but Ks has 1",
        ),
        (lambda: depnets.augmented_ordered_chain(np.eye(4)), ValueError, "Ks must be a \\(d, K, K\\) stack"),
    ],
)
def test_bad_inputs_raise_naming_the_argument(call, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()


def test_public_names() -> None:
    for name in depnets.__all__:
        assert hasattr(depnets, name), name
