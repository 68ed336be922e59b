"""dae_tutor.stores: the TCP store (always) and the Redis store (when redis-server is installed)."""

import subprocess
import sys
import textwrap

import pytest

from dae_tutor import stores

pytestmark = pytest.mark.usefixtures("no_leftover_processes")


def _round_trip(server: stores.Store, url: str) -> None:
    """Bytes (NUL included) go through, absent keys are None, and two prefixes never see each other."""
    mine = stores.connect(url, timeout=5.0, prefix="run-a/")
    other = stores.connect(url, timeout=5.0, prefix="run-b/")
    try:
        mine.set("k", b"\x00v")
        assert server.get("k") == b"\x00v" and mine.get("k") == b"\x00v"
        assert other.get("k") is None and mine.get("absent") is None
        mine.set("k", b"new")
        assert server.get("k") == b"new"
    finally:
        mine.close()
        other.close()


def test_the_tcp_store_is_served_by_one_process_and_joined_by_others():
    server = stores.connect("tcp", server=True, timeout=5.0, prefix="run-a/")
    assert isinstance(server, stores.TCPStore) and server.url == f"tcp://127.0.0.1:{server.port}"
    _round_trip(server, server.url)
    server.close()


def test_an_unreachable_tcp_store_raises_store_error(tcp_url):
    with pytest.raises(stores.StoreError, match="cannot reach the TCP store"):
        stores.connect(tcp_url, timeout=1.0)


def test_the_redis_store_round_trips_and_clears(redis_server):
    server = stores.connect(redis_server.url, timeout=5.0, prefix="run-a/")
    assert isinstance(server, stores.RedisStore)
    _round_trip(server, redis_server.url)
    server.clear(["k", "never-set"])
    assert server.get("k") is None
    server.close()


def test_a_redis_store_that_vanishes_raises_store_error(redis_server):
    store = stores.connect(redis_server.url, timeout=1.0)
    store.set("k", b"v")
    redis_server.stop()
    with pytest.raises(stores.StoreError, match=r"Redis store .* gave no answer"):
        store.get("k")
    with pytest.raises(stores.StoreError, match="Redis"):
        store.set("k", b"w")
    store.close()


def test_an_unreachable_redis_store_raises_store_error():
    with pytest.raises(stores.StoreError, match="cannot reach the Redis store"):
        stores.connect("redis://127.0.0.1:9", timeout=1.0)  # port 9 (discard): nothing listens


def test_the_stores_import_without_redis_py_and_name_the_extra_when_it_is_needed():
    code = """
        import sys
        sys.modules["redis"] = None  # as if redis-py were not installed
        import dae_tutor.distributed
        from dae_tutor import stores
        stores.connect("tcp", server=True, timeout=5.0).close()
        try:
            stores.connect("redis://127.0.0.1:9", timeout=1.0)
        except ImportError as error:
            print(error)
    """
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "pip install 'dae_tutor[distributed]'" in out.stdout


@pytest.mark.parametrize("url", ["udp://1.2.3.4:5", "tcp://host", "redis://:80", "tcp://h:x", "memory"])
def test_unknown_store_urls_raise(url):
    with pytest.raises(ValueError, match="store must be"):
        stores.parse_store_url(url)


def test_parse_store_url_reads_scheme_host_and_port():
    assert stores.parse_store_url("tcp") == ("tcp", "127.0.0.1", 0)
    assert stores.parse_store_url("redis://db.example:6379") == ("redis", "db.example", 6379)
    assert stores.parse_store_url("tcp://[::1]:29500") == ("tcp", "[::1]", 29500)


def test_connect_checks_its_timeout():
    with pytest.raises(ValueError, match="timeout"):
        stores.connect("tcp", server=True, timeout=0.0)


def test_redis_server_without_the_executable_raises(monkeypatch):
    monkeypatch.setattr(stores.shutil, "which", lambda name: None)
    with pytest.raises(FileNotFoundError, match="redis-server"):
        stores.RedisServer()
