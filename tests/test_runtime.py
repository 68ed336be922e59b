"""Unit tests of dae_tutor.runtime: seeded generators, global seeding, threads, device."""

import numpy as np
import pytest
import torch

from dae_tutor import runtime


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
