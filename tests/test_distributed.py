"""dae_tutor.distributed: real master/worker ISSGD runs over TCPStore and Redis, faults, the command line.

No test bounds the wall-clock time: a test that needs the workers to have done something waits for it
to show in the store (``_wait_for``, whose timeout only guards against a hang).
"""

import copy
import itertools
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from dae_tutor import distributed as dist
from dae_tutor import importance as imp
from dae_tutor import nets, runtime, stores

pytestmark = pytest.mark.usefixtures("no_leftover_processes")
HANG_GUARD_S = 120.0


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


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds; the deadline only turns a hang into a failure."""
    deadline = time.monotonic() + HANG_GUARD_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what} after {HANG_GUARD_S} s")
        time.sleep(0.01)


def _written(probe: stores.Store, n_shards: int) -> list[tuple[int, int]]:
    """(step of the parameters used, rank) of every shard the workers have written so far."""
    return [w[:2] for s in range(n_shards) if (w := dist.read_shard(probe, s)) is not None]


def _hold_until_every_shard_is_written(url: str, run_name: str, n_shards: int) -> Callable[[int, dict], None]:
    """A callback that holds the master at its first logged step until the workers wrote every shard.

    The master's next read then sees every weight: what follows no longer depends on scheduling.
    """

    def hold(step: int, info: dict) -> None:
        if step == 0:
            probe = stores.connect(url, timeout=10.0, prefix=f"issgd/{run_name}/")
            _wait_for(lambda: len(_written(probe, n_shards)) == n_shards, "every shard's weights")
            probe.close()

    return hold


def test_two_workers_with_the_embedded_store(tcp_url):
    model, x, y = _problem()
    url, n_shards = tcp_url, dist.default_shards(600, 2)
    hold = _hold_until_every_shard_is_written(url, "two", n_shards)
    res = dist.run_distributed(model, x, y, workers=2, store=url, run_name="two", steps=300, callback=hold)
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
    assert res.drawn_weighted == 0 and res.examples_per_s == pytest.approx(200 * 32 / res.wall_s)


def test_relaxed_weights_sample_an_unbiased_gradient_and_came_from_the_workers():
    """The weights the master held at the end of a relaxed run, through the real sampler (2,000 draws).

    Every coordinate's mean within 4.5 standard errors of μ (about 1,500 coordinates: P(some |z| > 4.5)
    ≈ 1,500 · 6.8e-6 ≈ 1 %, seed fixed); the unweighted control on the same weights fails it. And the
    weights are the workers': most draws of the last logged stretch used a worker's weight.
    """
    model, x, y = _problem(200)
    res = dist.run_distributed(model, x, y, workers=2, steps=300, progress=False)
    assert res.drawn_weighted > 0 and res.log_drawn_weighted[-1] > 0.5
    assert not torch.equal(res.weights, torch.full_like(res.weights, res.weights[0]))  # not uniform
    model64 = model.double()
    args = (model64, imp.cross_entropy, x.double(), y, res.weights.double())
    z, _ = imp.sampled_gradient_z(*args, minibatch=8, generator=runtime.generator(0))
    assert float(z.abs().max()) < 4.5
    z_biased, _ = imp.sampled_gradient_z(*args, minibatch=8, generator=runtime.generator(0), reweight=False)
    assert float(z_biased.abs().max()) > 4.5


def test_a_run_whose_workers_never_deliver_fails_loudly():
    """Two worker ranks, none started here (``local_workers=0``) nor elsewhere: plain SGD, so an error."""
    model, x, y = _problem()
    with pytest.raises(stores.StoreError, match="no minibatch draw in 50 steps used a worker's weight"):
        dist.run_distributed(model, x, y, workers=2, local_workers=0, steps=50, progress=False)


def test_the_staleness_threshold_drops_old_weights_and_falls_back_to_uniform():
    """App. 7.A.3 in the exact mode (deterministic ages): push every 20 steps, read every 5, log at 35, 70.

    At step 35 the weights are from the push of step 20 (age 15): a threshold of 10 drops them all
    (no weight in use, uniform sampling); at step 70 they are from step 60 (age 10) and are kept.
    The control without a threshold keeps them at both.
    """
    fresh = {}
    for max_age in (10, None):
        model, x, y = _problem()
        res = dist.run_distributed(model, x, y, workers=2, mode="exact", steps=71, push_every=20,
                                   read_every=5, log_every=35, max_age=max_age, progress=False)  # fmt: skip
        assert res.log_step[:3] == [0, 35, 70]
        fresh[max_age] = res.log_fresh[1:3]
    assert fresh[10] == [0.0, 1.0] and fresh[None] == [1.0, 1.0]


def test_measured_traces_are_those_of_the_weights_in_use():
    """``measure=True``: at the last logged step, eq. 7.6 recomputed from the final model and weights."""
    model, x, y = _problem()
    res = dist.run_distributed(model, x, y, workers=2, steps=200, log_every=50, measure=True, progress=False)
    assert len(res.log_trace_actual) == len(res.log_step) == len(res.log_full_loss)
    norms = imp.per_example_grad_norms(model, imp.cross_entropy, x, y)
    mu_sq = float(imp.flat_grad(model, imp.cross_entropy, x, y).double().pow(2).sum())
    expect = imp.trace_covariance(norms, res.weights, mean_grad_sq=mu_sq)
    assert res.log_trace_actual[-1] == pytest.approx(expect, rel=1e-9)
    assert res.log_full_loss[-1] == pytest.approx(res.final_loss, rel=1e-6)
    ordered = zip(res.log_trace_ideal, res.log_trace_actual, res.log_trace_uniform, strict=True)
    assert all(i <= a and i <= u for i, a, u in ordered)  # Theorem 1
    sgd = dist.run_distributed(model, x, y, workers=0, steps=100, log_every=50, measure=True, progress=False)
    assert sgd.log_trace_actual == pytest.approx(sgd.log_trace_uniform, rel=1e-9)  # equal weights


def _has_exited(pid: int) -> bool:
    """The process is gone or a zombie (dead, not yet joined by its parent), from /proc."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_a_worker_killed_by_sigkill_is_restarted_and_rejoins(tcp_url):
    """Kill worker 0 at step 50; the check of step 55 restarts it; it delivers weights again.

    Deterministic: the callback waits until the killed process has exited (so the liveness check at
    step 55 sees it dead), and at step 100 until the store holds a shard that the new worker 0
    computed from parameters newer than any the dead one had used (so the master's next read takes it).
    """
    model, x, y = _problem()
    url, run_name, n_shards = tcp_url, "kill", dist.default_shards(600, 2)
    dead: dict = {}

    def newest_of_rank_0(probe: stores.Store) -> int:
        return max((made for made, rank in _written(probe, n_shards) if rank == 0), default=-1)

    def kill_then_wait_for_the_rejoin(step: int, info: dict) -> None:
        if step == 50:
            dead["pid"] = info["pids"][0]
            os.kill(dead["pid"], signal.SIGKILL)
            _wait_for(lambda: _has_exited(dead["pid"]), "the killed worker to exit")
            dead["probe"] = stores.connect(url, timeout=10.0, prefix=f"issgd/{run_name}/")
            dead["newest"] = newest_of_rank_0(dead["probe"])
        elif step == 100:
            assert info["pids"][0] not in (None, dead["pid"])  # a new worker 0
            _wait_for(lambda: newest_of_rank_0(dead["probe"]) > dead["newest"], "the new worker 0's weights")
            dead["probe"].close()

    res = dist.run_distributed(
        model, x, y, workers=2, store=url, run_name=run_name, steps=300, log_every=50, read_every=5,
        callback=kill_then_wait_for_the_rejoin,
    )  # fmt: skip
    _check_trained(res)
    assert res.restarts == [(55, 0, -signal.SIGKILL)]
    assert res.last_update_step[0] > 55  # the restarted worker rejoined and its weights were read
    # The master sampled with the workers' weights, and at the end with ones the dead worker never computed:
    # its shards would be at least 299 − 50 steps old without the rejoin.
    assert res.drawn_weighted > 0 and res.log_drawn_weighted[-1] == 1.0
    assert res.log_age_max[-1] < 299 - 50 and res.log_drawn_age[-1] < 299 - 50
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_two_workers_with_redis(redis_server):
    model, x, y = _problem()
    hold = _hold_until_every_shard_is_written(redis_server.url, "redis", dist.default_shards(600, 2))
    res = dist.run_distributed(
        model, x, y, workers=2, store=redis_server.url, run_name="redis", steps=300, callback=hold
    )
    _check_trained(res)
    assert set(res.updates_per_rank) == {0, 1} and res.store == redis_server.url


def test_a_redis_store_that_vanishes_mid_run_raises_and_stops_the_workers(redis_server):
    """A clear StoreError, and no worker left behind (the module's process check), never a hang."""
    model, x, y = _problem()

    def stop_store(step, info):
        if step == 50:
            redis_server.stop()

    with pytest.raises(stores.StoreError, match="Redis"):
        dist.run_distributed(
            model, x, y, workers=2, store=redis_server.url, steps=10_000, log_every=50, timeout=2.0,
            callback=stop_store,
        )  # fmt: skip


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
    with pytest.raises(TypeError, match="store"):
        dist.read_shard("tcp://127.0.0.1:1", 0)
    store = stores.connect("tcp", server=True, timeout=5.0)
    with pytest.raises(ValueError, match="shard"):
        dist.read_shard(store, -1)
    assert dist.read_shard(store, 0) is None  # nothing written yet
    store.close()


def test_shards_cover_every_example_once():
    bounds = dist.shard_bounds(1003, 7)
    assert bounds[0][0] == 0 and bounds[-1][1] == 1003
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))


def test_a_worker_started_elsewhere_joins_by_address_and_run_name(tcp_url):
    """What a worker on another machine does: only the store URL and the run name are shared."""
    model, x, y = _problem()
    url, n_shards = tcp_url, dist.default_shards(len(y), 2)
    remote = mp.get_context("fork").Process(
        target=dist.worker_main,
        args=(1, 2, url, "issgd/remote-test/", copy.deepcopy(model), "cross_entropy", x, y,
              dist.shard_bounds(len(y), n_shards)),
    )  # fmt: skip
    remote.start()
    try:
        res = dist.run_distributed(
            model, x, y, workers=2, local_workers=1, store=url, run_name="remote-test", steps=400,
            callback=_hold_until_every_shard_is_written(url, "remote-test", n_shards),
        )  # fmt: skip
    finally:
        remote.join(HANG_GUARD_S)
    assert remote.exitcode == 0  # it saw the master's stop key and left
    _check_trained(res)
    assert set(res.updates_per_rank) == {0, 1}


def test_the_command_line_is_python_m_dae_tutor_distributed():
    out = subprocess.run(
        [sys.executable, "-m", "dae_tutor.distributed", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: python -m dae_tutor.distributed") and "--store" in out.stdout


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
