"""Test-wide settings (the quick profile, one CPU thread, no downloads) and shared fixtures.

Set at import, before nbval starts any kernel, so the chapters' kernels inherit them (their first
cells call ``runtime.set_threads()``, which reads ``DAE_TUTOR_THREADS``). The kernels keep their
inline plotting backend: checked cells that also draw must reproduce their figure.
"""

import os
import shutil
import socket
import time
from pathlib import Path

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


def _children() -> set[int]:
    """Live (non-zombie) processes whose parent is this test process, read from /proc."""
    me, found = os.getpid(), set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == me and fields[0] != "Z":
                found.add(int(entry.name))
    return found


@pytest.fixture
def no_leftover_processes():
    """Fail the test if it leaves child processes (workers, servers) running; 5 s grace to exit."""
    before = _children()
    yield
    deadline = time.monotonic() + 5
    while _children() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _children() - before == set(), "the test left child processes behind"


@pytest.fixture
def redis_server():
    """A throw-away ``redis-server`` (:class:`dae_tutor.stores.RedisServer`); skips when none is installed."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    from dae_tutor import stores  # imports torch: only the tests that start a server pay for it

    with stores.RedisServer() as server:
        yield server


@pytest.fixture
def tcp_url() -> str:
    """``tcp://127.0.0.1:PORT`` on a port that was free a moment ago (for a store the test can also join)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"
