"""dae_tutor.distributed: real master/worker ISSGD runs over TCPStore and Redis, faults, timeouts."""

import copy
import itertools
import math
import os
import shutil
import signal
import socket
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from dae_tutor import distributed as dist
from dae_tutor import importance as imp
from dae_tutor import nets, runtime


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


@pytest.fixture(autouse=True)
def no_leftover_processes():
    before = _children()
    yield
    deadline = time.monotonic() + 5
    while _children() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _children() - before == set(), "the test left child processes behind"


def _problem(n: int = 600):
    g = runtime.generator(0)
    centers = torch.randn(4, 10, generator=g) * 2
    y = torch.randint(0, 4, (n,), generator=g)
    x = centers[y] + torch.randn(n, 10, generator=g)
    return nets.MLP([10, 32, 32, 4], "relu", seed=0), x, y


def _check_trained(res: dist.RunResult) -> None:
    assert torch.isfinite(torch.tensor(res.final_loss))
    assert res.final_loss < res.initial_loss
    assert sum(res.updates_per_rank.values()) > 0  # the workers' weights reached the master


def test_two_workers_with_the_embedded_store():
    model, x, y = _problem()
    res = dist.run_distributed(model, x, y, workers=2, steps=300, lr=0.05, progress=False)
    _check_trained(res)
    assert set(res.updates_per_rank) == {0, 1}
    assert res.log_fresh[-1] == 1.0 and res.restarts == []


def test_exact_mode_uses_weights_of_the_last_push_only():
    model, x, y = _problem()
    res = dist.run_distributed(
        model, x, y, workers=2, mode="exact", steps=100, push_every=25, log_every=25, progress=False
    )
    _check_trained(res)
    # logged right after each barrier at steps 0, 25, 50, 75: every weight is from that push
    assert res.log_age_max[:4] == [0.0, 0.0, 0.0, 0.0]


def test_zero_workers_is_plain_sgd():
    model, x, y = _problem()
    res = dist.run_distributed(model, x, y, workers=0, steps=200, progress=False)
    assert res.final_loss < res.initial_loss
    assert res.log_fresh[-1] == 0.0 and torch.equal(res.weights, torch.full_like(res.weights, res.weights[0]))


def test_relaxed_weights_give_an_unbiased_gradient():
    """Whatever stale weights the master holds, Σ_i P(i) scale_i g_i equals μ (exact enumeration)."""
    model, x, y = _problem(200)
    res = dist.run_distributed(model, x, y, workers=2, steps=100, progress=False)
    model64 = model.double()
    g = imp.per_example_grads(model64, imp.cross_entropy, x.double(), y)
    w = res.weights.double()
    expect = ((w / w.sum())[:, None] * (w.mean() / w)[:, None] * g).sum(0)
    torch.testing.assert_close(expect, g.mean(0), rtol=1e-10, atol=1e-12)


def test_a_worker_killed_by_sigkill_is_restarted_and_training_finishes():
    model, x, y = _problem()
    killed = []

    def kill_one(step, info):
        if step == 50 and not killed:
            os.kill(info["pids"][0], signal.SIGKILL)
            killed.append(info["pids"][0])

    res = dist.run_distributed(
        model, x, y, workers=2, steps=1000, log_every=50, read_every=5, callback=kill_one, progress=False
    )
    _check_trained(res)
    assert killed and [(rank, code) for _, rank, code in res.restarts] == [(0, -signal.SIGKILL)]
    restarted_at = res.restarts[0][0]
    assert res.last_update_step[0] > restarted_at  # the restarted worker rejoined and sent weights
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_two_workers_with_redis_and_a_vanishing_store():
    model, x, y = _problem()
    with dist.RedisServer() as server:
        res = dist.run_distributed(model, x, y, workers=2, store=server.url, steps=300, progress=False)
        _check_trained(res)
        store = dist.connect(server.url, timeout=1.0)
        store.set("k", b"\x00v")
        assert store.get("k") == b"\x00v" and store.get("absent") is None
        store.clear(["k"])
        server.stop()
        with pytest.raises(dist.StoreError, match="Redis"):
            store.get("k")
        store.close()

    # the store vanishes in the middle of a run: a clear error, workers gone, no hang
    model, x, y = _problem()
    with dist.RedisServer() as server:

        def stop_store(step, info):
            if step == 50:
                server.stop()

        start = time.monotonic()
        with pytest.raises(dist.StoreError, match="Redis"):
            dist.run_distributed(
                model, x, y, workers=2, store=server.url, steps=10_000, log_every=50, timeout=2.0,
                callback=stop_store, progress=False,
            )  # fmt: skip
        assert time.monotonic() - start < 30


def test_unreachable_store_times_out_with_a_clear_error():
    start = time.monotonic()
    with pytest.raises(dist.StoreError, match="cannot reach"):
        dist.connect("redis://127.0.0.1:9", timeout=1.0)
    assert time.monotonic() - start < 10


@pytest.mark.parametrize("url", ["udp://1.2.3.4:5", "tcp://host", "redis://:80", "tcp://h:x", "memory"])
def test_unknown_store_urls_raise(url):
    with pytest.raises(ValueError, match="store must be"):
        dist.parse_store_url(url)


def test_bad_run_arguments_raise():
    model, x, y = _problem(50)
    with pytest.raises(ValueError, match="exact"):
        dist.run_distributed(model, x, y, workers=0, mode="exact", progress=False)
    with pytest.raises(ValueError, match="minibatch"):
        dist.run_distributed(model, x, y, minibatch=0, progress=False)
    with pytest.raises(ValueError, match="store must be"):
        dist.run_distributed(model, x, y, store="carrier-pigeon", progress=False)
    with pytest.raises(ValueError, match="workers"):
        dist.run_distributed(model, x, y, workers=-1, progress=False)
    with pytest.raises(ValueError, match="rank"):
        dist.worker_main(
            2, 2, "tcp://127.0.0.1:1", "p/", model, "cross_entropy", x, y, dist.shard_bounds(50, 4)
        )


def test_shards_cover_every_example_once():
    bounds = dist.shard_bounds(1003, 7)
    assert bounds[0][0] == 0 and bounds[-1][1] == 1003
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_worker_started_elsewhere_joins_by_address_and_run_name():
    """What a worker on another machine does: only the store URL and the run name are shared."""
    model, x, y = _problem()
    url = f"tcp://127.0.0.1:{_free_port()}"
    bounds = dist.shard_bounds(len(y), dist.default_shards(len(y), 2))
    remote = mp.get_context("fork").Process(
        target=dist.worker_main,
        args=(1, 2, url, "issgd/remote-test/", copy.deepcopy(model), "cross_entropy", x, y, bounds),
    )
    remote.start()
    try:
        res = dist.run_distributed(
            model,
            x,
            y,
            workers=2,
            local_workers=1,
            store=url,
            run_name="remote-test",
            steps=400,
            progress=False,
        )
    finally:
        remote.join(15)
    assert remote.exitcode == 0  # it saw the master's stop key and left
    _check_trained(res)
    assert set(res.updates_per_rank) == {0, 1}


def test_command_line_prints_progress(capsys):
    res = dist.main(["--workers", "1", "--steps", "100", "--examples", "500", "--hidden", "32"])
    out = capsys.readouterr().out
    assert "step      0" in out and "done: 100 steps, 1 workers" in out
    assert res.final_loss < res.initial_loss


def test_command_line_trains_on_svhn_with_its_input_width(monkeypatch, tmp_path, capsys, svhn_mat):
    svhn_mat(tmp_path / "train_32x32.mat", 6_200)  # 200 training images, 3072 pixels each
    monkeypatch.setenv("DAE_TUTOR_DATA", str(tmp_path))
    args = ["--dataset", "svhn", "--workers", "1", "--steps", "60", "--examples", "150", "--hidden", "16"]
    res = dist.main(args)
    assert "done: 60 steps, 1 workers" in capsys.readouterr().out
    assert len(res.weights) == 150 and math.isfinite(res.final_loss)


def test_command_line_rejects_an_unknown_dataset(capsys):
    with pytest.raises(SystemExit):
        dist.main(["--dataset", "cifar10"])
    assert "--dataset" in capsys.readouterr().err


def test_divergence_stops_the_master_and_its_workers():
    model, x, y = _problem()
    with pytest.raises(FloatingPointError, match="minibatch loss"):
        dist.run_distributed(model, x, y, workers=2, steps=200, lr=1e30, progress=False)
