"""Tests of dae_tutor.corruption: salt-and-pepper statistics (spec B T16), Gaussian noise, bad input."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dae_tutor.corruption import gaussian, salt_and_pepper


def gen(seed: int, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


@pytest.mark.parametrize("p", [0.1, 0.4, 0.5])
def test_salt_and_pepper_corrupts_a_fraction_p_and_leaves_the_rest(p):
    n = 10**6
    # On grey inputs 0.5 every corrupted entry is visible (it becomes 0 or 1).
    x = torch.full((1000, 1000), 0.5)
    xt = salt_and_pepper(x, p, gen(0))
    corrupted = xt != 0.5
    frac = corrupted.float().mean().item()
    assert abs(frac - p) < 4 * math.sqrt(p * (1 - p) / n)
    assert set(xt[corrupted].unique().tolist()) <= {0.0, 1.0}
    n_c = int(corrupted.sum())
    assert abs(xt[corrupted].mean().item() - 0.5) < 4 * math.sqrt(0.25 / n_c)
    # on binary inputs: E[x̃] = (1 − p) x + p/2, and a bit flips with probability p/2
    b = torch.bernoulli(torch.full((1000, 1000), 0.3), generator=gen(1))
    bt = salt_and_pepper(b, p, gen(2))
    assert set(bt.unique().tolist()) <= {0.0, 1.0}
    flipped = (bt != b).float().mean().item()
    assert abs(flipped - p / 2) < 4 * math.sqrt(p / 2 * (1 - p / 2) / n)
    for v in (0.0, 1.0):
        sel = b == v
        assert abs(bt[sel].mean().item() - ((1 - p) * v + p / 2)) < 0.005


def test_salt_and_pepper_edges_shapes_and_seeding():
    x = torch.bernoulli(torch.full((3, 4, 5), 0.5, dtype=torch.float64), generator=gen(0))
    y = salt_and_pepper(x, 0.0, gen(1))
    assert torch.equal(y, x) and y is not x
    assert y.dtype == torch.float64 and y.shape == x.shape
    a, b = salt_and_pepper(x, 0.4, gen(7)), salt_and_pepper(x, 0.4, gen(7))
    assert torch.equal(a, b) and not torch.equal(a, salt_and_pepper(x, 0.4, gen(8)))
    state = torch.get_rng_state()
    full = salt_and_pepper(torch.full((2000,), 0.5), 1.0, gen(3))
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left alone
    assert set(full.unique().tolist()) == {0.0, 1.0}  # p = 1: everything is a coin flip


def test_gaussian_corruption_moments_and_seeding():
    x = torch.zeros(200_000, dtype=torch.float64)
    y = gaussian(x, 0.3, gen(0))
    assert abs(y.mean().item()) < 4 * 0.3 / math.sqrt(2e5)
    assert abs(y.std().item() - 0.3) < 0.003
    assert torch.equal(y, gaussian(x, 0.3, gen(0)))
    assert torch.equal(gaussian(x, 0.0), x)


def test_unchecked_corruptions_draw_the_same_numbers():
    """``check=False`` (the models' inner loops) skips the argument checks, not a random draw."""
    x = torch.rand(50, 7, generator=gen(1), dtype=torch.float64)
    assert torch.equal(gaussian(x, 0.3, gen(2), check=False), gaussian(x, 0.3, gen(2)))
    bits = (x < 0.5).double()
    assert torch.equal(salt_and_pepper(bits, 0.4, gen(3), check=False), salt_and_pepper(bits, 0.4, gen(3)))


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        (lambda: salt_and_pepper(torch.zeros(3), -0.1), ValueError, "p"),
        (lambda: salt_and_pepper(torch.zeros(3), 1.5), ValueError, "p"),
        (lambda: salt_and_pepper(torch.zeros(3), "0.4"), TypeError, "p"),
        (lambda: salt_and_pepper(torch.zeros(3, dtype=torch.int64), 0.4), TypeError, "x"),
        (lambda: salt_and_pepper(torch.tensor([0.0, 2.0]), 0.4), ValueError, "x"),
        (lambda: salt_and_pepper([0.0, 1.0], 0.4), TypeError, "x"),
        (lambda: salt_and_pepper(torch.zeros(3), 0.4, 5), TypeError, "generator"),
        (lambda: gaussian(torch.zeros(3), -1.0), ValueError, "sigma"),
        (lambda: gaussian(torch.tensor([math.nan]), 1.0), ValueError, "x"),
        (lambda: gaussian(torch.zeros(3), 1.0, check=1), TypeError, "check"),
        (lambda: salt_and_pepper(torch.zeros(3), 0.4, check="no"), TypeError, "check"),
    ],
)
def test_corruption_bad_arguments_name_the_argument(call, error, name):
    with pytest.raises(error, match=name):
        call()


@settings(max_examples=40, deadline=None)
@given(
    p=st.one_of(
        st.floats(max_value=-1e-9, allow_nan=False),
        st.floats(min_value=1 + 1e-9, allow_nan=False),
        st.just(math.nan),
        st.just(math.inf),
    )
)
def test_salt_and_pepper_rejects_any_p_outside_the_unit_interval(p):
    with pytest.raises(ValueError, match="p must"):
        salt_and_pepper(torch.zeros(4), p, gen(0))


@settings(max_examples=25, deadline=None)
@given(p=st.floats(0, 1), shape=st.lists(st.integers(0, 5), max_size=3), seed=st.integers(0, 2**31))
def test_salt_and_pepper_keeps_shape_and_stays_binary(p, shape, seed):
    x = torch.bernoulli(torch.full(shape, 0.5), generator=gen(seed))
    y = salt_and_pepper(x, p, gen(seed))
    assert y.shape == x.shape and y.dtype == x.dtype
    assert bool(((y == 0) | (y == 1)).all())
