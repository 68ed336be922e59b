"""Test-wide settings (the quick profile, one CPU thread, no downloads) and shared fixtures.

Set at import, before nbval starts any kernel, so the chapters' kernels inherit them (their first
cells call ``runtime.set_threads()``, which reads ``DAE_TUTOR_THREADS``). The kernels keep their
inline plotting backend: checked cells that also draw must reproduce their figure.
"""

import os

import numpy as np
import pytest
import scipy.io

from dae_tutor import runtime

os.environ["DAE_TUTOR_PROFILE"] = "quick"
os.environ.setdefault("DAE_TUTOR_THREADS", "1")
runtime.set_threads()  # importing dae_tutor leaves torch's threads alone
# Tests never download: MNIST comes from DAE_TUTOR_DATA or the bundled subset, SVHN from
# DAE_TUTOR_DATA (tests write small synthetic .mat files there).
os.environ.setdefault("DAE_TUTOR_MNIST_MIRRORS", "")
os.environ.setdefault("DAE_TUTOR_SVHN_MIRRORS", "")


@pytest.fixture
def svhn_mat():
    """Write a synthetic SVHN .mat file: ``svhn_mat(path, n, seed)`` -> (X (32, 32, 3, n) uint8, y (n, 1)).

    Laid out like the official files (Netzer et al., 2011): labels 1..10, the digit 0 stored as 10.
    """

    def write(path, n: int, seed: int = 0, label_dtype=np.uint8):
        rng = np.random.default_rng(seed)
        x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
        y = rng.integers(1, 11, size=(n, 1)).astype(label_dtype)
        y[: min(n, 3)] = 10  # some zeros, stored as 10
        scipy.io.savemat(path, {"X": x, "y": y})
        return x, y

    return write
