"""Unit tests of the small core modules: checks, profiles, runtime, cache, plots."""

import math
import pickle
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from dae_tutor import cache, checks, plots, profiles, runtime

# --- checks -----------------------------------------------------------------------------------


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


# --- profiles ---------------------------------------------------------------------------------


def test_profile_from_environment_and_override(monkeypatch):
    monkeypatch.setenv("DAE_TUTOR_PROFILE", "full")
    assert profiles.current() == "full"
    assert profiles.pick(quick=1, full=2) == 2
    profiles.use("quick")
    try:
        assert profiles.current() == "quick"
        assert profiles.pick(quick=1, full=2) == 1
    finally:
        profiles.use(None)
    assert profiles.current() == "full"


def test_default_profile_follows_cuda(monkeypatch):
    monkeypatch.delenv("DAE_TUTOR_PROFILE", raising=False)
    assert profiles.current() == ("full" if torch.cuda.is_available() else "quick")


def test_unknown_profile_name_is_rejected(monkeypatch):
    with pytest.raises(ValueError, match="name must be one of"):
        profiles.use("medium")
    monkeypatch.setenv("DAE_TUTOR_PROFILE", "huge")
    with pytest.raises(ValueError, match="DAE_TUTOR_PROFILE"):
        profiles.current()


# --- runtime ----------------------------------------------------------------------------------


def test_generator_is_deterministic_and_seed_is_checked():
    a = torch.randn(5, generator=runtime.generator(3))
    b = torch.randn(5, generator=runtime.generator(3))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="seed"):
        runtime.generator(-1)


def test_seed_everything_seeds_torch_and_numpy():
    runtime.seed_everything(7)
    first = (torch.rand(3), np.random.rand(3))  # noqa: NPY002
    runtime.seed_everything(7)
    second = (torch.rand(3), np.random.rand(3))  # noqa: NPY002
    assert torch.equal(first[0], second[0]) and np.array_equal(first[1], second[1])


def test_threads_setting(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("DAE_TUTOR_THREADS", "1")
        assert runtime.set_threads() == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("DAE_TUTOR_THREADS", "zero")
        with pytest.raises(ValueError, match="DAE_TUTOR_THREADS"):
            runtime.default_threads()
        with pytest.raises(ValueError, match="n must be"):
            runtime.set_threads(0)
    finally:
        torch.set_num_threads(before)


def test_device_is_cuda_or_cpu():
    assert runtime.device().type == ("cuda" if torch.cuda.is_available() else "cpu")


# --- cache ------------------------------------------------------------------------------------


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DAE_TUTOR_CACHE", str(tmp_path))
    return tmp_path


def test_cache_round_trip_and_build_once(cache_dir):
    calls = []

    def build():
        calls.append(1)
        return {"w": torch.arange(4.0)}

    entry = cache.key("model", {"sigma": 0.1})
    first = cache.cached(entry, build)
    second = cache.cached(entry, build)
    assert torch.equal(first["w"], second["w"]) and len(calls) == 1
    assert (cache_dir / f"{entry}.pt").exists() and (cache_dir / f"{entry}.sha256").exists()
    assert not list(cache_dir.glob("*.tmp"))


def test_cache_key_depends_on_config():
    assert cache.key("m", {"a": 1}) != cache.key("m", {"a": 2})
    assert cache.key("m", {"a": 1, "b": 2}) == cache.key("m", {"b": 2, "a": 1})
    with pytest.raises(ValueError, match="name"):
        cache.key("bad name/..", {})
    with pytest.raises(TypeError, match="config"):
        cache.key("m", [1])


def test_corrupt_cache_entry_is_reported_and_rebuilt(cache_dir):
    entry = cache.key("model", {})
    cache.save(entry, torch.ones(3))
    path = cache_dir / f"{entry}.pt"
    path.write_bytes(path.read_bytes()[:-10])  # truncate: the checksum no longer matches
    with pytest.warns(UserWarning, match="corrupt"):
        rebuilt = cache.cached(entry, lambda: torch.zeros(3))
    assert torch.equal(rebuilt, torch.zeros(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(cache.load(entry), torch.zeros(3))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch's note on the planted file
def test_cache_refuses_pickled_code(cache_dir):
    entry = cache.key("evil", {})
    cache.save(entry, {"ok": 1})
    data = pickle.dumps(print)
    path = cache_dir / f"{entry}.pt"
    cache.write_bytes_atomic(path, data)
    cache.write_bytes_atomic(path.with_suffix(".sha256"), cache.sha256(data).encode())
    with pytest.raises(pickle.UnpicklingError, match="weights_only"):
        cache.load(entry)


def test_cached_requires_callable(cache_dir):
    with pytest.raises(TypeError, match="build"):
        cache.cached("x", 3)


# --- plots ------------------------------------------------------------------------------------


def test_grid_and_vector_field_draw_one_arrow_per_point():
    points = plots.grid_2d((-1, 1), (0, 2), 5)
    assert points.shape == (25, 2) and points[:, 1].min() == 0 and points[:, 1].max() == 2
    fig, ax = plt.subplots()
    plots.vector_field(ax, lambda x: -x, (-1, 1), (-1, 1), n=6)
    assert ax.collections[0].N == 36
    plt.close(fig)
    with pytest.raises(ValueError, match="xlim"):
        plots.grid_2d((1, -1), (0, 1), 4)


def test_image_grid_and_spectrum():
    fig, ax = plt.subplots()
    plots.image_grid(ax, torch.rand(12, 16), side=4, columns=5)
    assert ax.images[0].get_array().shape == (3 * 5 + 1, 5 * 5 + 1)
    with pytest.raises(ValueError, match="images"):
        plots.image_grid(ax, torch.rand(3, 10), side=4)
    plots.spectrum(ax, torch.tensor([-1.0, 0.5, 2.0, 3.0]))
    plt.close(fig)


def test_tensor_check_works_inside_vmap():
    def r(x):
        return checks.tensor("x", x, last_dim=2) * 2

    jac = torch.func.vmap(torch.func.jacrev(r))(torch.ones(3, 2))
    assert torch.equal(jac, 2 * torch.eye(2).expand(3, 2, 2))


def test_cached_module_trains_once_and_restores_weights(cache_dir):
    calls = []

    def build():
        calls.append(1)
        module = torch.nn.Linear(3, 2)
        torch.nn.init.constant_(module.weight, 0.25)
        return module, [1.0, 0.5]

    entry = cache.key("linear", {"in": 3})
    first, history = cache.cached_module(entry, build, lambda: torch.nn.Linear(3, 2))
    second, history_again = cache.cached_module(entry, build, lambda: torch.nn.Linear(3, 2))
    assert len(calls) == 1 and history == history_again == [1.0, 0.5]
    assert torch.equal(second.weight, torch.full((2, 3), 0.25)) and torch.equal(first.bias, second.bias)
    with pytest.raises(TypeError, match="callables"):
        cache.cached_module(entry, build, None)


def test_boolean_accepts_bools_only():
    assert checks.boolean("tied", False) is False
    with pytest.raises(TypeError, match="tied must be a bool"):
        checks.boolean("tied", 1)
