"""Unit tests of dae_tutor.nets: the thesis auto-encoder, the MLP and the deep auto-encoder."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dae_tutor.nets import MLP, AutoEncoder, DeepAutoEncoder


def test_autoencoder_is_the_thesis_formula():
    r = AutoEncoder(3, 5, seed=1, dtype=torch.float64)
    x = torch.randn(7, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = r.c + torch.tanh(r.b + x @ r.W.T) @ r.V.T  # r(x) = c + V tanh(b + W x)
    torch.testing.assert_close(r(x), expected)
    assert r.encode(x).shape == (7, 5)


def test_tied_autoencoder_uses_w_transpose():
    r = AutoEncoder(2, 4, tied=True, seed=0, dtype=torch.float64)
    assert r.V is None and {n for n, _ in r.named_parameters()} == {"W", "b", "c"}
    x = torch.randn(3, 2, dtype=torch.float64)
    torch.testing.assert_close(r(x), r.c + torch.tanh(r.b + x @ r.W.T) @ r.W)


@settings(max_examples=25, deadline=None)
@given(
    dim=st.integers(1, 4),
    hidden=st.integers(1, 6),
    lead=st.lists(st.integers(0, 3), max_size=3),
    tied=st.booleans(),
)
def test_autoencoder_keeps_the_input_shape(dim, hidden, lead, tied):
    r = AutoEncoder(dim, hidden, tied=tied, seed=0)
    x = torch.zeros(*lead, dim)
    assert r(x).shape == x.shape


def test_initialisation_is_seeded_and_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    a, b, c = AutoEncoder(2, 8, seed=3), AutoEncoder(2, 8, seed=3), AutoEncoder(2, 8, seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    assert not torch.equal(a.W, c.W)
    d = AutoEncoder(2, 8, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.W, d.W)
    # same starting point in float64, up to rounding, and the nn.Linear ranges
    e = AutoEncoder(2, 8, seed=3, dtype=torch.float64)
    torch.testing.assert_close(e.W.float(), a.W)
    assert a.W.abs().max() <= 1 / math.sqrt(2) and a.V.abs().max() <= 1 / math.sqrt(8)


def test_mlp_layers_activation_and_seed():
    m = MLP([3, 16, 16, 2], activation="relu", seed=0)
    names = [n for n, _ in m.named_children()]
    assert names == ["linear0", "act0", "linear1", "act1", "linear2"]
    assert isinstance(m.act0, torch.nn.ReLU)
    assert m(torch.zeros(4, 5, 3)).shape == (4, 5, 2)
    state = torch.get_rng_state()
    m2 = MLP([3, 16, 16, 2], activation="relu", seed=0)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(m.parameters(), m2.parameters(), strict=True))


def test_deep_autoencoder_is_10_512_512_10_tanh():
    r = DeepAutoEncoder(10, (512, 512), seed=0)
    assert [layer.weight.shape for layer in r if isinstance(layer, torch.nn.Linear)] == [
        (512, 10),
        (512, 512),
        (10, 512),
    ]
    assert isinstance(r.act0, torch.nn.Tanh)
    assert r(torch.zeros(3, 10)).shape == (3, 10)


@pytest.mark.parametrize(
    ("make", "error", "name"),
    [
        (lambda: AutoEncoder(0, 3), ValueError, "dim"),
        (lambda: AutoEncoder(2, 2.5), TypeError, "hidden"),
        (lambda: AutoEncoder(2, 3, tied=1), TypeError, "tied"),
        (lambda: AutoEncoder(2, 3, seed=-1), ValueError, "seed"),
        (lambda: AutoEncoder(2, 3, generator=5), TypeError, "generator"),
        (lambda: AutoEncoder(2, 3, seed=0, generator=torch.Generator()), ValueError, "seed"),
        (lambda: AutoEncoder(2, 3, dtype=torch.int64), TypeError, "dtype"),
        (lambda: MLP([3]), ValueError, "sizes"),
        (lambda: MLP([3, 0, 1]), ValueError, "sizes"),
        (lambda: MLP("32"), TypeError, "sizes"),
        (lambda: MLP([2, 2], activation="gelu"), ValueError, "activation"),
        (lambda: DeepAutoEncoder(10, ()), ValueError, "hidden"),
        (lambda: DeepAutoEncoder(10, 512), TypeError, "hidden"),
    ],
)
def test_bad_arguments_name_the_argument(make, error, name):
    with pytest.raises(error, match=name):
        make()


def test_wrong_input_width_is_reported():
    with pytest.raises(ValueError, match="last dimension 2"):
        AutoEncoder(2, 3)(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="last dimension 10"):
        DeepAutoEncoder(10, (8,))(torch.zeros(4, 3))


def test_length_scale_shrinks_the_input_weights_only() -> None:
    coarse = AutoEncoder(2, 50, seed=3)
    fine = AutoEncoder(2, 50, seed=3, length_scale=0.1)
    assert torch.allclose(fine.W, 10 * coarse.W) and torch.allclose(fine.b, 10 * coarse.b)
    assert torch.equal(fine.V, coarse.V) and torch.equal(fine.c, coarse.c)
    with pytest.raises(ValueError, match="length_scale"):
        AutoEncoder(2, 5, length_scale=0.0)
