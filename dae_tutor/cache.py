"""The on-disk cache of trained models and downloaded files.

Entries live under ``$DAE_TUTOR_CACHE`` (default ``~/.cache/dae_tutor``). A
tensor entry is a ``torch.save`` file written atomically (temporary file, then
``os.replace``) next to a SHA-256 checksum; on load it is verified and read with
``torch.load(weights_only=True)``. A corrupt entry is reported, deleted and
rebuilt, never used.

A build runs on its own copy of the global random generators (torch's, NumPy's and
Python's): whatever it draws, they are as before when it returns. So a cache hit and a
miss leave the same random state behind, and everything computed after a cached model
prints the same numbers whether the cache was empty, warm or partly warm.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

ENV_VAR = "DAE_TUTOR_CACHE"
CODE_VERSION = "2"  # bump when a change to the package invalidates trained models


def directory() -> Path:
    """The cache folder (created on demand): ``$DAE_TUTOR_CACHE`` or ``~/.cache/dae_tutor``."""
    path = Path(os.environ.get(ENV_VAR) or Path.home() / ".cache" / "dae_tutor").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def key(name: str, config: dict[str, Any]) -> str:
    """A file-safe key: ``name`` plus a hash of ``config`` and :data:`CODE_VERSION`."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}")
    if not name.isidentifier():
        raise ValueError(f"name must be a Python identifier (letters, digits, _), got {name!r}")
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict, got {type(config).__name__}")
    blob = json.dumps({"config": config, "code": CODE_VERSION}, sort_keys=True, default=str)
    return f"{name}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256(data: bytes) -> str:
    """Hex SHA-256 digest of ``data``."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    return hashlib.sha256(data).hexdigest()


def save(entry: str, obj: Any) -> Path:
    """Store ``obj`` (tensors, dicts/lists of tensors and plain values) as cache entry ``entry``."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getvalue()
    path = directory() / f"{entry}.pt"
    write_bytes_atomic(path, data)
    write_bytes_atomic(path.with_suffix(".sha256"), sha256(data).encode())
    return path


def load(entry: str) -> Any | None:
    """Load cache entry ``entry``; ``None`` when it is absent or corrupt (a corrupt one is deleted)."""
    path = directory() / f"{entry}.pt"
    digest_path = path.with_suffix(".sha256")
    if not path.exists():
        return None
    data = path.read_bytes()
    expected = digest_path.read_text().strip() if digest_path.exists() else ""
    if sha256(data) != expected:
        warnings.warn(f"cache entry {path} is corrupt (checksum mismatch); rebuilding it", stacklevel=2)
        path.unlink(missing_ok=True)
        digest_path.unlink(missing_ok=True)
        return None
    return torch.load(io.BytesIO(data), weights_only=True)


@contextlib.contextmanager
def own_randomness() -> Iterator[None]:
    """Run the block on a copy of the global generators (torch CPU and CUDA, NumPy, Python).

    Draws inside the block do not advance the generators outside it: on exit every one is back
    in the state it had on entry.
    """
    python_state, numpy_state = random.getstate(), np.random.get_state()  # noqa: NPY002
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)  # noqa: NPY002


def cached(entry: str, build: Callable[[], Any]) -> Any:
    """Return cache entry ``entry``, calling ``build()`` and storing its result when it is missing.

    ``build()`` runs under :func:`own_randomness`, so a miss consumes no global randomness, and a
    miss returns the stored entry read back, so hit and miss return the very same values.
    """
    if not callable(build):
        raise TypeError(f"build must be callable, got {type(build).__name__}")
    value = load(entry)
    if value is None:
        with own_randomness():
            save(entry, build())
        value = load(entry)
    return value


def cached_module(
    entry: str, build: Callable[[], tuple[nn.Module, Any]], empty: Callable[[], nn.Module]
) -> tuple[nn.Module, Any]:
    """A trained module and its companion data (e.g. a loss history), cached as entry ``entry``.

    ``build()`` trains and returns ``(module, extra)``; only ``module.state_dict()`` and ``extra``
    are stored. Then ``empty()`` makes a module of the same architecture and the stored
    weights are loaded into it, so nothing but tensors and plain values is ever unpickled.
    Both run under :func:`own_randomness`: hit or miss, the global generators are untouched.
    """
    if not callable(build) or not callable(empty):
        raise TypeError("build and empty must be callables")

    def build_state() -> dict[str, Any]:
        module, extra = build()
        return {"state": module.state_dict(), "extra": extra}

    stored = cached(entry, build_state)
    with own_randomness():
        module = empty()
    module.load_state_dict(stored["state"])
    return module, stored["extra"]
