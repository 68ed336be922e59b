"""The model cache returns the same values, and leaves the same random state, cold or warm."""

import pickle
import random
import warnings

import numpy as np
import pytest
import torch

from dae_tutor import binary_nets, cache, evaluate, runtime, train


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path))
    return tmp_path


def global_draws() -> tuple[float, float, float]:
    """One draw from each global generator: equal tuples mean equal global states."""
    return float(torch.rand(())), float(np.random.rand()), random.random()  # noqa: NPY002


def test_a_build_that_draws_from_the_global_generators_leaves_them_as_they_were(cache_dir):
    def greedy_build():  # draws from all three global generators, as nn's default init does
        global_draws()
        return torch.nn.Linear(3, 2), {"note": 1}

    runtime.seed_everything(5)
    cache.cached_module("greedy", greedy_build, lambda: torch.nn.Linear(3, 2))  # a miss
    after_miss = global_draws()
    runtime.seed_everything(5)
    cache.cached_module("greedy", greedy_build, lambda: torch.nn.Linear(3, 2))  # a hit
    after_hit = global_draws()
    runtime.seed_everything(5)
    untouched = global_draws()
    assert after_miss == after_hit == untouched


def test_without_own_randomness_the_control_build_would_shift_later_draws():
    """The control: run bare, the same draws do advance the global generators (the test above can fail)."""
    runtime.seed_everything(5)
    global_draws()
    shifted = global_draws()
    runtime.seed_everything(5)
    assert global_draws() != shifted


def chapter2_path() -> tuple[torch.Tensor, float]:
    """Chapter 2's digit path in miniature: a cached walkback DAE (SGD with momentum, as the chapter's
    ``fit_binary``), then a sampling chain from the model and a Parzen score of its samples."""
    gen_data = runtime.generator(0)
    train_x = (torch.rand(64, 16, generator=gen_data) < 0.3).float()
    test_x = (torch.rand(32, 16, generator=gen_data) < 0.3).float()

    def build():
        model = binary_nets.BernoulliDAE(16, 12, input_noise=0.5)
        gen = runtime.generator(1)

        def loss_fn():
            idx = torch.randint(len(train_x), (16,), generator=gen)
            return model.loss(train_x[idx], gen, walkback_steps=3)

        sgd = {"optimizer": "sgd", "lr": 0.1, "optimizer_options": {"momentum": 0.5}}
        losses = train.train_loop(loss_fn, model, steps=30, progress=False, **sgd)
        return model, {"history": losses}

    model, extra = cache.cached_module(
        cache.key("chapter2_path", {"steps": 30}),
        build,
        lambda: binary_nets.BernoulliDAE(16, 12, input_noise=0.5),
    )
    with torch.no_grad():
        means = model.sample_chain(train_x[:4], 20, runtime.generator(2), return_means=True)[1]
    centres = means.reshape(-1, 16)
    score = evaluate.parzen_log_likelihood(centres, test_x, 0.3)
    outputs = torch.cat([centres.flatten(), score.flatten(), torch.tensor(extra["history"])])
    return outputs, float(torch.rand(()))


def test_chapter2_training_and_sampling_path_is_identical_cold_then_warm(cache_dir):
    runtime.seed_everything(0)
    cold, cold_next = chapter2_path()
    assert len(list(cache_dir.glob("chapter2_path-*.pt"))) == 1  # it was trained and stored
    runtime.seed_everything(0)
    warm, warm_next = chapter2_path()
    assert torch.equal(cold, warm)
    assert cold_next == warm_next  # and the global generator is where it was


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
