"""Run profiles: ``quick`` (a laptop CPU, minutes) and ``full`` (a GPU, the paper's scale).

Every experiment reads its sizes through :func:`pick`, never from literals in a
notebook, so one switch (``DAE_TUTOR_PROFILE``) moves a whole chapter between
scales::

    steps = profiles.pick(quick=2_000, full=20_000)
"""

from __future__ import annotations

import os
from typing import TypeVar

import torch

from dae_tutor import checks

PROFILES = ("quick", "full")
ENV_VAR = "DAE_TUTOR_PROFILE"

_override: str | None = None
T = TypeVar("T")


def current() -> str:
    """The active profile: set by :func:`use`, else ``$DAE_TUTOR_PROFILE``, else
    ``full`` when CUDA is available and ``quick`` otherwise."""
    if _override is not None:
        return _override
    name = os.environ.get(ENV_VAR, "").strip()
    if name:
        return checks.one_of(ENV_VAR, name, PROFILES)
    return "full" if torch.cuda.is_available() else "quick"


def use(name: str | None) -> None:
    """Force profile ``name`` for this process (``None`` goes back to the default)."""
    global _override
    _override = None if name is None else checks.one_of("name", name, PROFILES)


def pick(*, quick: T, full: T) -> T:
    """Return the value that belongs to the active profile."""
    return quick if current() == "quick" else full
