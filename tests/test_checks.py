"""Unit tests of dae_tutor.checks: every helper accepts what it should and names the argument otherwise."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from dae_tutor import checks


def test_positive_float_accepts_and_converts():
    assert checks.positive_float("sigma", 2) == 2.0
    assert checks.positive_float("sigma", 0, allow_zero=True) == 0.0


@given(st.one_of(st.floats(max_value=0.0), st.just(math.nan), st.just(math.inf)))
def test_positive_float_rejects_and_names_the_argument(value):
    with pytest.raises(ValueError, match="sigma"):
        checks.positive_float("sigma", value)


@given(st.one_of(st.text(), st.none(), st.booleans(), st.lists(st.integers())))
def test_positive_int_rejects_non_integers(value):
    with pytest.raises(TypeError, match="steps"):
        checks.positive_int("steps", value)


def test_tensor_checks_rank_width_dtype_and_finiteness():
    x = torch.zeros(4, 3)
    assert checks.tensor("x", x, ndim=2, last_dim=3) is x
    with pytest.raises(ValueError, match="x must have 2 dimension"):
        checks.tensor("x", torch.zeros(3), ndim=2)
    with pytest.raises(ValueError, match="last dimension 2"):
        checks.tensor("x", x, last_dim=2)
    with pytest.raises(TypeError, match="floating"):
        checks.tensor("x", torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="NaN"):
        checks.tensor("x", torch.tensor([1.0, math.nan]))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        checks.tensor("x", np.zeros(3))


def test_nonempty_int_sequence_and_real():
    with pytest.raises(ValueError, match="x must not be empty"):
        checks.tensor("x", torch.zeros(0, 3), nonempty=True)
    assert checks.tensor("x", torch.zeros(0, 3)).shape == (0, 3)
    assert checks.int_sequence("sizes", [2, 3], length=2) == (2, 3)
    for bad, error in (("23", TypeError), ([2, 0], ValueError), ([2, 2.5], TypeError), ([2], ValueError)):
        with pytest.raises(error, match="sizes"):
            checks.int_sequence("sizes", bad, length=2)
    assert checks.real("slope", -2) == -2.0
    for bad, error in (("0.5", TypeError), (True, TypeError), (math.inf, ValueError)):
        with pytest.raises(error, match="slope"):
            checks.real("slope", bad)


def test_holds_decides_outside_vmap_and_lets_other_errors_through():
    assert checks.holds(torch.tensor(True)) and not checks.holds(torch.tensor(False))
    assert torch.func.vmap(lambda t: t * checks.holds(t > 2))(torch.ones(3)).tolist() == [1.0] * 3
    with pytest.raises(RuntimeError, match="meta"):
        checks.holds(torch.ones(1, device="meta") > 0)


def test_log_density_allows_zero_densities_only():
    x = torch.tensor([0.0, -math.inf, -3.0])
    assert checks.log_density("log_p", x) is x
    for bad in (math.nan, math.inf):
        with pytest.raises(ValueError, match="log_p must not contain NaN or"):
            checks.log_density("log_p", torch.tensor([0.0, bad]))


def test_one_of_and_probability():
    assert checks.one_of("rule", "mean", ["mean", "trapezoid"]) == "mean"
    with pytest.raises(ValueError, match="rule"):
        checks.one_of("rule", "simpson", ["mean", "trapezoid"])
    with pytest.raises(ValueError, match="p must be in"):
        checks.probability("p", 1.5)


def test_tensor_check_works_inside_vmap():
    def r(x):
        return checks.tensor("x", x, last_dim=2) * 2

    jac = torch.func.vmap(torch.func.jacrev(r))(torch.ones(3, 2))
    assert torch.equal(jac, 2 * torch.eye(2).expand(3, 2, 2))


def test_boolean_accepts_bools_only():
    assert checks.boolean("tied", False) is False
    with pytest.raises(TypeError, match="tied must be a bool"):
        checks.boolean("tied", 1)


def test_nonnegative_int_takes_zero_and_positive_int_refuses_a_minimum_below_one():
    assert checks.nonnegative_int("seed", 0) == 0 and checks.nonnegative_int("seed", 7) == 7
    for bad, error in ((-1, ValueError), (True, TypeError), (1.0, TypeError)):
        with pytest.raises(error, match="seed"):
            checks.nonnegative_int("seed", bad)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        checks.positive_int("steps", 0)
    with pytest.raises(ValueError, match="nonnegative_int"):
        checks.positive_int("steps", 3, minimum=0)


def test_class_labels_accepts_indices_and_names_bad_ones():
    y = torch.tensor([0, 2, 1])
    assert checks.class_labels("y", y, 3) is y
    for bad in (y.float(), y.bool(), torch.tensor([0, -1, 1]), y[:2], y[None], [0, 2, 1]):
        with pytest.raises(ValueError, match=r"^labels must"):
            checks.class_labels("labels", bad, 3)
