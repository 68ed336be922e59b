"""The key-value stores between the ISSGD master and its workers (thesis §7.4.2, Fig. 7.1 "database").

:func:`connect` opens a store by URL (:func:`parse_store_url`):

* ``"tcp"``: an embedded ``torch.distributed.TCPStore`` served by the master on 127.0.0.1
  (nothing to install); ``"tcp://HOST:PORT"`` serves (or joins) it on that address;
* ``"redis://HOST:PORT"``: a running Redis server (the thesis's choice, §7.5.1), through
  redis-py (``pip install 'dae_tutor[distributed]'``; imported only when a Redis store is opened).

Every store call has a timeout: an unreachable store raises :class:`StoreError`, never hangs.
:class:`RedisServer` starts a throw-away ``redis-server`` for the chapter's demo and the tests.
"""

from __future__ import annotations

import datetime
import shutil
import socket
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch

from dae_tutor import checks

DEFAULT_TIMEOUT_S = 10.0
_T = TypeVar("_T")


class StoreError(RuntimeError):
    """The key-value store could not be reached, or did not answer within the timeout."""


class Store(ABC):
    """A minimal key-value store of bytes: :meth:`set`, :meth:`get` (``None`` when absent), :meth:`close`."""

    @abstractmethod
    def set(self, key: str, value: bytes) -> None:
        """Store ``value`` under ``key`` (raises :class:`StoreError` on a timeout)."""

    @abstractmethod
    def get(self, key: str) -> bytes | None:
        """The bytes under ``key``, or ``None`` when it is absent."""

    # close and clear do nothing by default: a TCP store lives and dies with the master process.
    def close(self) -> None:  # noqa: B027
        """Release the connection (the keys of a Redis store stay until :meth:`clear`)."""

    def clear(self, keys: Sequence[str]) -> None:  # noqa: B027
        """Forget ``keys`` (best effort, at the end of a run)."""


class TCPStore(Store):
    """``torch.distributed.TCPStore``: served by the master process (``server=True``), joined by workers."""

    def __init__(self, host: str, port: int, *, server: bool, timeout: float, prefix: str) -> None:
        self.host, self.prefix = host, prefix
        try:
            self._store = torch.distributed.TCPStore(
                host, port, None, server, datetime.timedelta(seconds=timeout), wait_for_workers=False
            )
        except (RuntimeError, OSError) as error:
            raise StoreError(
                f"cannot {'serve' if server else 'reach'} the TCP store at {host}:{port} within {timeout} s: "
                f"{str(error).splitlines()[0]}"
            ) from None
        self.port = self._store.port
        self.url = f"tcp://{host}:{self.port}"

    def _call(self, what: str, fn: Callable[[], _T]) -> _T:
        try:
            return fn()
        except (RuntimeError, OSError) as error:
            raise StoreError(
                f"the TCP store at {self.url} failed on {what}: {str(error).splitlines()[0]}"
            ) from None

    def set(self, key: str, value: bytes) -> None:
        self._call("set", lambda: self._store.set(self.prefix + key, value))

    def get(self, key: str) -> bytes | None:
        full = self.prefix + key
        if not self._call("check", lambda: self._store.check([full])):
            return None
        return self._call("get", lambda: self._store.get(full))


class RedisStore(Store):
    """A Redis server through redis-py: no retries, ``timeout`` on connecting and on every reply."""

    def __init__(self, host: str, port: int, *, timeout: float, prefix: str) -> None:
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError as error:
            raise ImportError(
                "a redis:// store needs redis-py: pip install 'dae_tutor[distributed]' (or pip install redis)"
            ) from error
        self.host, self.port, self.prefix, self.timeout = host, port, prefix, timeout
        self.url = f"redis://{host}:{port}"
        self._errors = (redis.RedisError, OSError)
        self._client = redis.Redis(
            host=host,
            port=port,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # one try: a dead store fails within `timeout`
        )
        try:
            self._client.ping()
        except self._errors as error:
            self._client.close()
            raise StoreError(
                f"cannot reach the Redis store at {self.url} within {timeout} s: {error}"
            ) from None

    def _call(self, fn: Callable[[], _T]) -> _T:
        try:
            return fn()
        except self._errors as error:
            raise StoreError(
                f"the Redis store at {self.url} gave no answer within {self.timeout} s ({error}); is it up?"
            ) from None

    def set(self, key: str, value: bytes) -> None:
        self._call(lambda: self._client.set(self.prefix + key, value))

    def get(self, key: str) -> bytes | None:
        return self._call(lambda: self._client.get(self.prefix + key))

    def clear(self, keys: Sequence[str]) -> None:
        if keys:
            self._call(lambda: self._client.delete(*[self.prefix + k for k in keys]))

    def close(self) -> None:
        self._client.close()


def parse_store_url(url: str) -> tuple[str, str, int]:
    """``"tcp"`` → embedded TCP store on 127.0.0.1 (a free port); ``"tcp://H:P"``; ``"redis://H:P"``."""
    if not isinstance(url, str):
        raise TypeError(f"store must be a string URL, got {type(url).__name__}")
    if url == "tcp":
        return "tcp", "127.0.0.1", 0
    scheme, sep, rest = url.partition("://")
    host, colon, port = rest.rpartition(":")
    if not sep or scheme not in ("tcp", "redis") or not colon or not host or not port.isdigit():
        raise ValueError(f"store must be 'tcp', 'tcp://HOST:PORT' or 'redis://HOST:PORT', got {url!r}")
    return scheme, host, int(port)


def connect(url: str, *, server: bool = False, timeout: float = DEFAULT_TIMEOUT_S, prefix: str = "") -> Store:
    """Open the store at ``url`` (see :func:`parse_store_url`); ``server=True`` serves a TCP store."""
    kind, host, port = parse_store_url(url)
    timeout = checks.positive_float("timeout", timeout)
    if kind == "tcp":
        return TCPStore(host, port, server=server, timeout=timeout, prefix=prefix)
    return RedisStore(host, port, timeout=timeout, prefix=prefix)


class RedisServer:
    """A throw-away ``redis-server`` on 127.0.0.1 (no persistence), for the chapter's demo and the tests.

    Use as a context manager; :attr:`url` is its ``redis://`` address. :meth:`stop` ends it.
    """

    def __init__(self, port: int | None = None, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise FileNotFoundError("redis-server is not on PATH (Debian: apt-get install redis-server)")
        if port is None:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        self.port = checks.positive_int("port", port)
        self.url = f"redis://127.0.0.1:{self.port}"
        args = [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            try:
                connect(self.url, timeout=1.0).close()
                break
            except StoreError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise StoreError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """End the server (SIGTERM, then SIGKILL after 5 s); a second call does nothing."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
