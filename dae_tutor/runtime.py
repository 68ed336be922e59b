"""Where computation runs: the device, CPU threads, and seeded random generators."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from dae_tutor import checks

THREADS_ENV_VAR = "DAE_TUTOR_THREADS"


def device() -> torch.device:
    """CUDA when it is available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_threads() -> int:
    """CPU threads for torch: ``$DAE_TUTOR_THREADS`` if set, else half the cores (at least 1).

    The book's models are small: on a 2-core machine torch's default of two
    threads was 1.5x faster when the machine was idle but 2.6x slower and erratic
    as soon as another process held a core, while one thread was steady
    (``python -m benchmarks threads``; numbers in ``benchmarks/README.md``).
    """
    value = os.environ.get(THREADS_ENV_VAR, "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"{THREADS_ENV_VAR} must be a positive integer, got {value!r}")
        return int(value)
    return max(1, (os.cpu_count() or 1) // 2)


def set_threads(n: int | None = None) -> int:
    """Set torch's CPU thread count to ``n`` (default :func:`default_threads`) and return it."""
    n = default_threads() if n is None else checks.positive_int("n", n)
    torch.set_num_threads(n)
    return n


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (for code we do not control)."""
    seed = checks.nonnegative_int("seed", seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (seeds legacy code we do not control)
    torch.manual_seed(seed)


def generator(seed: int, device: torch.device | str | None = None) -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device`` (default CPU) seeded with ``seed``.

    Every stochastic function of the package takes one of these, so the same
    seed gives the same numbers.
    """
    seed = checks.nonnegative_int("seed", seed)
    return torch.Generator(device=device or "cpu").manual_seed(seed)
