"""Unit tests of dae_tutor.profiles: environment, override, CUDA default, bad names."""

import pytest
import torch

from dae_tutor import profiles


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
