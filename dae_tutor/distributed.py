"""Distributed ISSGD for real: one master, worker processes, a key-value store (thesis §7.4.2–7.4.3).

Fig. 7.1 of the thesis (Alain, 2018): the **master** trains by importance-sampled SGD
(:mod:`dae_tutor.importance`) and pushes its parameters to the **store** every
``push_every`` steps ("fire and forget", §7.4.2); each **worker** (a separate OS process,
``torch.multiprocessing``) loops forever: fetch the newest parameters, compute the
per-example gradient norms ω̃_n of its shards, write them to the store (one float per
example, §7.2). The master reads the weights whenever it wants; they come from older
parameters ("stale"), which leaves the gradient estimate unbiased and only costs variance
(§6.3, §7.4.3).

* ``mode="relaxed"``: no barriers, as above.
* ``mode="exact"``: after every push the master waits until every shard has been
  recomputed with the parameters it just pushed (the dotted barriers of Fig. 7.1).

The store is any of :mod:`dae_tutor.stores` (``"tcp"``, ``"tcp://HOST:PORT"``,
``"redis://HOST:PORT"``). Workers on other machines only need the address: start them with
:func:`worker_main` or ``python -m dae_tutor.distributed --worker RANK`` and the same store
URL (see the chapter). Every store call has a timeout: an unreachable store raises
:class:`~dae_tutor.stores.StoreError`, never hangs.

Faults: a worker that dies (even by SIGKILL) leaves its last weights in the store, which are
only staler; the master notices at its next liveness check and restarts it (``restart=True``);
the restarted worker rejoins from the newest parameters.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import math
import os
import struct
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.multiprocessing as mp
from torch import nn
from tqdm.auto import tqdm

from dae_tutor import checks, runtime
from dae_tutor import importance as imp
from dae_tutor.errors import DivergenceError
from dae_tutor.stores import DEFAULT_TIMEOUT_S, Store, StoreError, connect, parse_store_url

MODES = ("relaxed", "exact")
DATASETS = ("mnist", "svhn")  # the command line's --dataset choices
POLL_S = 0.005  # how often a waiting process looks at the store again
_PARAMS_HEADER = struct.Struct("<qd")  # master step of the push, wall time of the push
_WEIGHTS_HEADER = struct.Struct("<qqd")  # step of the parameters used, worker rank, wall time


# ----------------------------------------------------------------------------- wire format


def _pack_params(model: nn.Module, step: int) -> bytes:
    flat = nn.utils.parameters_to_vector(model.parameters()).detach().to("cpu", torch.float32)
    return _PARAMS_HEADER.pack(step, time.time()) + flat.numpy().tobytes()


def _unpack_params(blob: bytes) -> tuple[int, float, torch.Tensor]:
    step, stamp = _PARAMS_HEADER.unpack_from(blob)
    flat = np.frombuffer(blob, dtype=np.float32, offset=_PARAMS_HEADER.size)
    return step, stamp, torch.from_numpy(flat.copy())


def _shard_key(shard: int) -> str:
    return f"w/{shard}"


def read_shard(store: Store, shard: int) -> tuple[int, int, np.ndarray] | None:
    """What a worker last wrote for ``shard`` (``None`` before any did).

    Returns (master step of the parameters it used, the worker's rank, the ω̃_n of the shard's
    examples as float32): the staleness header of §7.4.3 and one float per example (§7.2).
    """
    if not isinstance(store, Store):
        raise TypeError(f"store must be a dae_tutor.stores.Store, got {type(store).__name__}")
    blob = store.get(_shard_key(checks.nonnegative_int("shard", shard)))
    if blob is None:
        return None
    made, rank, _ = _WEIGHTS_HEADER.unpack_from(blob)
    return made, rank, np.frombuffer(blob, dtype=np.float32, offset=_WEIGHTS_HEADER.size)


def default_shards(n: int, workers: int) -> int:
    """The default number of shards: 4 per worker, more when that leaves over 256 examples in one."""
    n, workers = checks.positive_int("n", n), checks.nonnegative_int("workers", workers)
    return min(n, max(4 * max(workers, 1), math.ceil(n / 256)))


def shard_bounds(n: int, n_shards: int) -> list[tuple[int, int]]:
    """Split examples 0..n-1 into ``n_shards`` contiguous, near-equal (start, stop) ranges."""
    n, n_shards = checks.positive_int("n", n), checks.positive_int("n_shards", n_shards)
    edges = np.linspace(0, n, n_shards + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges)]


# ----------------------------------------------------------------------------- worker


def worker_main(
    rank: int,
    n_workers: int,
    url: str,
    prefix: str,
    model: nn.Module,
    loss: str,
    x: torch.Tensor,
    y: torch.Tensor,
    bounds: Sequence[tuple[int, int]],
    mode: str = "relaxed",
    timeout: float = DEFAULT_TIMEOUT_S,
    parent_pid: int | None = None,
) -> None:
    """A worker's life (thesis §7.4.2): fetch recent parameters, refresh the ω̃_n of its shards, repeat.

    Worker ``rank`` owns shards ``rank, rank + n_workers, ...``. It stops when the store holds
    ``stop``, when its parent process has gone, or when the store stops answering (after
    ``timeout`` seconds). Module-level, so that it also works with the ``spawn`` start method
    and on another machine (``model``, ``x``, ``y`` must match the master's).
    """
    n_workers = checks.positive_int("n_workers", n_workers)
    if not 0 <= checks.nonnegative_int("rank", rank) < min(n_workers, len(bounds)):
        raise ValueError(f"rank must be in [0, {min(n_workers, len(bounds))}), got {rank}")
    runtime.set_threads(1)
    loss_fn = imp.loss_by_name(loss)
    method = imp.exact_method(model)
    mine = list(range(rank, len(bounds), n_workers))
    store = connect(url, timeout=timeout, prefix=prefix)
    dtype = next(model.parameters()).dtype
    seen = -1
    k = 0
    try:
        while store.get("stop") is None and (parent_pid is None or os.getppid() == parent_pid):
            latest = store.get("version")
            if latest is None or (mode == "exact" and int(latest) == seen and k % len(mine) == 0):
                time.sleep(POLL_S)  # nothing new to do yet
                continue
            if int(latest) != seen:
                seen, _, flat = _unpack_params(store.get("params"))
                nn.utils.vector_to_parameters(flat.to(dtype), model.parameters())
                if mode == "exact":
                    k = 0  # sweep all shards with these parameters (relaxed: keep the round robin going)
            shard = mine[k % len(mine)]
            a, b = bounds[shard]
            norms = imp.per_example_grad_norms(model, loss_fn, x[a:b], y[a:b], method=method)
            header = _WEIGHTS_HEADER.pack(seen, rank, time.time())
            store.set(_shard_key(shard), header + norms.to(torch.float32).numpy().tobytes())
            k += 1
    except StoreError as error:
        print(f"worker {rank}: {error}; exiting", file=sys.stderr)
    finally:
        store.close()


# ----------------------------------------------------------------------------- master


@dataclass
class RunResult:
    """What :func:`run_distributed` measured.

    ``log_*`` lists have one entry per logged step; ages are in master steps (how many steps
    old the parameters were that produced the weights in use) and ``log_fresh`` is the fraction
    of examples whose weight in use came from a worker (and is not older than ``max_age``).
    ``log_drawn_weighted`` and ``log_drawn_age`` describe the minibatch draws since the previous
    log: the fraction whose weight came from a worker and their mean age. ``restarts`` lists
    (step, rank, exit code). With ``measure=True``, ``log_full_loss`` and the three traces of eq. 7.6
    (M = 1) at the logged step's parameters: the exact norms (``log_trace_ideal``, eq. 7.7), the
    master's weights of that moment (``log_trace_actual``, eq. 7.9) and uniform (eq. 7.8).
    Times (``wall_s``, ``log_time``) leave these measurements out; ``examples_per_s`` is the
    master's end-to-end throughput: pushes, reads, barriers and training steps.
    """

    steps: int
    workers: int
    mode: str
    store: str
    initial_loss: float
    final_loss: float
    wall_s: float
    examples_per_s: float
    log_step: list[int] = field(default_factory=list)
    log_time: list[float] = field(default_factory=list)
    log_loss: list[float] = field(default_factory=list)
    log_age_median: list[float] = field(default_factory=list)
    log_age_max: list[float] = field(default_factory=list)
    log_fresh: list[float] = field(default_factory=list)
    log_drawn_weighted: list[float] = field(default_factory=list)  # share of draws with a worker's weight
    log_drawn_age: list[float] = field(default_factory=list)  # their mean age (master steps)
    log_full_loss: list[float] = field(default_factory=list)  # measure=True: on all of (x, y)
    log_trace_ideal: list[float] = field(default_factory=list)  # eq. 7.7
    log_trace_actual: list[float] = field(default_factory=list)  # eq. 7.9, the weights in use
    log_trace_uniform: list[float] = field(default_factory=list)  # eq. 7.8
    drawn_weighted: int = 0  # minibatch draws, over the run, whose weight came from a worker
    restarts: list[tuple[int, int, int]] = field(default_factory=list)
    updates_per_rank: dict[int, int] = field(default_factory=dict)
    last_update_step: dict[int, int] = field(default_factory=dict)  # master step of each rank's last update
    weights: torch.Tensor | None = None  # the last sampling weights ω̃ (after smoothing)


class _Workers:
    """The worker processes: start, liveness check with restart, orderly shutdown."""

    def __init__(self, n: int, args: Callable[[int], tuple], start_method: str, max_restarts: int) -> None:
        self.ctx = mp.get_context(start_method)
        self.n, self.args, self.max_restarts = n, args, max_restarts
        self.procs: list = [None] * n
        self.restarts: list[tuple[int, int, int]] = []
        for rank in range(n):
            self._start(rank)

    def _start(self, rank: int) -> None:
        p = self.ctx.Process(
            target=worker_main, args=self.args(rank), daemon=True, name=f"issgd-worker-{rank}"
        )
        p.start()
        self.procs[rank] = p

    @property
    def pids(self) -> list[int | None]:
        return [None if p is None else p.pid for p in self.procs]

    @property
    def alive(self) -> list[bool]:
        return [p is not None and p.is_alive() for p in self.procs]

    def check(self, step: int, restart: bool) -> None:
        """Record every worker that has died since the last check and, if allowed, start it again."""
        for rank, p in enumerate(self.procs):
            if p is not None and not p.is_alive():
                p.join()
                self.restarts.append((step, rank, p.exitcode))
                self.procs[rank] = None
                if restart and len(self.restarts) <= self.max_restarts:
                    self._start(rank)

    def shutdown(self, timeout: float) -> None:
        live = [p for p in self.procs if p is not None]
        for p in live:
            p.join(timeout)
        for p in live:
            if p.is_alive():
                p.kill()
                p.join()


def run_distributed(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    loss: str = "cross_entropy",
    workers: int = 2,
    store: str = "tcp",
    mode: str = "relaxed",
    steps: int = 1000,
    lr: float = 0.05,
    minibatch: int = 32,
    push_every: int = 20,
    read_every: int = 5,
    smoothing: float = 0.1,
    max_age: int | None = None,
    measure: bool = False,
    n_shards: int | None = None,
    seed: int = 0,
    timeout: float = DEFAULT_TIMEOUT_S,
    restart: bool = True,
    max_restarts: int = 5,
    log_every: int = 50,
    start_method: str | None = None,
    progress: bool = False,
    callback: Callable[[int, dict], None] | None = None,
    run_name: str | None = None,
    local_workers: int | None = None,
) -> RunResult:
    """Train ``model`` (in place) by ISSGD on (x, y) with ``workers`` worker processes.

    Args:
        loss: per-example loss by name (see :func:`dae_tutor.importance.loss_by_name`).
        workers: worker processes; 0 gives plain SGD (uniform weights) through the same loop.
        store: ``"tcp"``, ``"tcp://HOST:PORT"`` or ``"redis://HOST:PORT"`` (:func:`parse_store_url`).
        mode: ``"relaxed"`` (no barriers) or ``"exact"`` (barrier after every push, Fig. 7.1).
        push_every: master steps between parameter pushes.
        read_every: master steps between reads of the weights.
        smoothing: κ; the master samples with ω̃_n + κ · mean(ω̃) (app. 7.A.5). Examples with no
            weight yet use the mean of the known ones, so every weight is positive.
        max_age: the staleness threshold of app. 7.A.3, in master steps: a weight computed from
            parameters older than that is dropped, and its example falls back to the fill value
            (the mean of the kept ones), as if it had none; ``None`` keeps every weight.
        measure: at every logged step, also compute the exact per-example norms on the master and
            log the full training loss and the three traces (slower; left out of the times).
        n_shards: how many pieces the workers write (default 4 per worker, at most 256 examples each).
        timeout: seconds any store operation, barrier or shutdown may take before
            :class:`~dae_tutor.stores.StoreError`.
        restart: start a dead worker again at the next liveness check (every ``read_every`` steps).
        callback: called as ``callback(step, info)`` at every logged step, ``info`` holding ``loss``
            (running minibatch loss), ``age_median``, ``fresh`` and ``pids`` (the local workers' ids).
        run_name: the key prefix in the store (default: a random one); remote workers need it.
        local_workers: how many of the ``workers`` ranks this process starts itself (default all);
            the others are started elsewhere with :func:`worker_main` (or the command line).

    The master trains on the device of ``model`` and ``x``; the workers compute on CPU copies.

    Returns:
        a :class:`RunResult`; the master's full training loss before and after, its throughput,
        staleness, restarts. Raises :class:`~dae_tutor.stores.StoreError` if there were workers but
        no minibatch was ever drawn with a worker's weight (the run would have been plain SGD).
    """
    loss_fn = imp.loss_by_name(loss)
    imp.check_batch(model, loss_fn, x, y)
    workers = checks.nonnegative_int("workers", workers)
    mode = checks.one_of("mode", mode, MODES)
    if mode == "exact" and workers == 0:
        raise ValueError("mode='exact' needs at least one worker (the barrier waits for them)")
    steps = checks.positive_int("steps", steps)
    lr = checks.positive_float("lr", lr)
    minibatch = checks.positive_int("minibatch", minibatch)
    push_every = checks.positive_int("push_every", push_every)
    read_every = checks.positive_int("read_every", read_every)
    smoothing = checks.positive_float("smoothing", smoothing, allow_zero=True)
    timeout = checks.positive_float("timeout", timeout)
    log_every = checks.positive_int("log_every", log_every)
    if max_age is not None:
        max_age = checks.nonnegative_int("max_age", max_age)
    checks.boolean("measure", measure)
    parse_store_url(store)
    n = x.shape[0]
    n_shards = default_shards(n, workers) if n_shards is None else n_shards
    n_shards = min(checks.positive_int("n_shards", n_shards), n)
    if n_shards < workers:
        raise ValueError(f"n_shards ({n_shards}) must be >= workers ({workers}): every worker needs a shard")
    bounds = shard_bounds(n, n_shards)
    if start_method is None:
        start_method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"

    with torch.no_grad():
        initial = float(loss_fn(model(x), y).mean())
    prefix = f"issgd/{run_name or uuid.uuid4().hex[:12]}/"
    local_workers = workers if local_workers is None else local_workers
    if checks.nonnegative_int("local_workers", local_workers) > workers:
        raise ValueError(f"local_workers ({local_workers}) must be <= workers ({workers})")
    db = connect(store, server=True, timeout=timeout, prefix=prefix)
    url = getattr(db, "url", store)
    gen = runtime.generator(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    norms = torch.full((n,), math.nan)
    made_at = torch.full((n,), -1, dtype=torch.long)  # master step of the parameters behind each weight
    updates: dict[int, int] = {}
    last_update: dict[int, int] = {}
    now = [0]  # the master's current step, for last_update
    logged = ("step", "time", "loss", "age_median", "age_max", "fresh", "drawn_weighted", "drawn_age")
    traces = ("full_loss", "trace_ideal", "trace_actual", "trace_uniform")
    result_logs: dict[str, list] = {k: [] for k in (*logged, *traces)}

    def push(step: int) -> None:
        db.set("params", _pack_params(model, step))
        db.set("version", str(step).encode())

    def read() -> None:
        for shard, (a, b) in enumerate(bounds):
            written = read_shard(db, shard)
            if written is None:
                continue
            made, rank, values = written
            if made > int(made_at[a]):
                norms[a:b] = torch.from_numpy(values.copy())
                made_at[a:b] = made
                updates[rank] = updates.get(rank, 0) + 1
                last_update[rank] = now[0]

    def barrier(step: int) -> None:
        deadline = time.monotonic() + timeout
        while True:
            read()
            if bool((made_at == step).all()):
                return
            pool.check(step, restart)
            if time.monotonic() > deadline:
                missing = int((made_at != step).sum())
                raise StoreError(
                    f"exact mode: {missing} weights were not recomputed for the parameters of step {step} "
                    f"within {timeout} s (workers alive: {pool.alive})"
                )
            time.sleep(POLL_S)

    def kept() -> torch.Tensor:
        """The examples whose weight came from a worker and passes the staleness threshold."""
        ok = made_at >= 0
        return ok if max_age is None else ok & (now[0] - made_at <= max_age)

    def sampling_weights() -> tuple[torch.Tensor, torch.Tensor]:
        """The smoothed weights to sample with, and which examples have a worker's weight in them."""
        known = kept()
        fill = float(norms[known].mean()) if bool(known.any()) else 1.0
        w = torch.where(known, norms, torch.full_like(norms, fill))
        if not bool((w > 0).any()):
            w = torch.ones_like(w)
        return imp.smooth_weights(w, smoothing * float(w.mean())), known

    def measured(step: int) -> None:
        """Full loss and eq. 7.6's traces at the current parameters, with the weights now in use."""
        exact = imp.per_example_grad_norms(model, loss_fn, x, y, method=method)
        mu_sq = float(imp.flat_grad(model, loss_fn, x, y).double().pow(2).sum())
        with torch.no_grad():
            result_logs["full_loss"].append(float(loss_fn(model(x), y).mean()))
        result_logs["trace_ideal"].append(
            imp.trace_covariance(exact, exact.clamp_min(1e-30), mean_grad_sq=mu_sq)
        )
        result_logs["trace_actual"].append(imp.trace_covariance(exact, weights.to(exact), mean_grad_sq=mu_sq))
        result_logs["trace_uniform"].append(imp.trace_covariance(exact, mean_grad_sq=mu_sq))

    method = imp.exact_method(model)
    pool = None
    t_measure = 0.0  # seconds spent on measure=True's traces, left out of every time reported
    drawn = {"weighted": 0, "since_log": 0, "weighted_since_log": 0, "age_sum": 0.0}
    start = time.perf_counter()
    try:
        push(0)
        # The workers get CPU copies (through fork or pickling); the master trains wherever model lives.
        model_cpu, x_cpu, y_cpu = copy.deepcopy(model).cpu(), x.cpu(), y.cpu()

        def worker_args(rank: int) -> tuple:
            return (
                rank,
                workers,
                url,
                prefix,
                model_cpu,
                loss,
                x_cpu,
                y_cpu,
                bounds,
                mode,
                timeout,
                os.getpid(),
            )

        pool = _Workers(local_workers, worker_args, start_method, max_restarts)
        weights, in_use = sampling_weights()
        running = math.nan
        # Not train.train_loop: between steps the master pushes parameters, reads the workers'
        # weights and restarts dead workers.
        for step in tqdm(range(steps), desc=f"ISSGD master ({workers} workers)", disable=not progress):
            now[0] = step
            if step % push_every == 0 and step > 0:
                push(step)
            if mode == "exact" and step % push_every == 0:
                barrier(step)
                weights, in_use = sampling_weights()
            elif step % read_every == 0 and workers:
                read()
                pool.check(step, restart)
                weights, in_use = sampling_weights()
            idx, scale = (t.to(x.device) for t in imp.importance_minibatch(weights, minibatch, gen))
            from_worker = in_use[idx.cpu()]
            drawn["since_log"] += minibatch
            drawn["weighted_since_log"] += int(from_worker.sum())
            drawn["age_sum"] += float((step - made_at[idx.cpu()][from_worker]).sum())
            opt.zero_grad(set_to_none=True)
            batch_loss = imp.importance_loss(loss_fn(model(x[idx]), y[idx]), scale)
            batch_loss.backward()
            opt.step()
            value = float(batch_loss.detach())
            if not math.isfinite(value):
                raise DivergenceError(step, value, steps, "run_distributed (minibatch loss)")
            running = value if math.isnan(running) else 0.9 * running + 0.1 * value
            if step % log_every == 0 or step == steps - 1:
                ages = (step - made_at[in_use]).double()
                result_logs["step"].append(step)
                result_logs["time"].append(time.perf_counter() - start - t_measure)
                result_logs["loss"].append(running)
                result_logs["age_median"].append(float(ages.median()) if ages.numel() else math.nan)
                result_logs["age_max"].append(float(ages.max()) if ages.numel() else math.nan)
                result_logs["fresh"].append(float(in_use.double().mean()))
                hits = drawn["weighted_since_log"]
                result_logs["drawn_weighted"].append(hits / drawn["since_log"])
                result_logs["drawn_age"].append(drawn["age_sum"] / hits if hits else math.nan)
                drawn["weighted"] += hits
                drawn.update(since_log=0, weighted_since_log=0, age_sum=0.0)
                if measure:
                    tick = time.perf_counter()
                    measured(step)
                    t_measure += time.perf_counter() - tick
                if callback is not None:
                    info = {k: result_logs[k][-1] for k in ("loss", "age_median", "fresh")}
                    callback(step, {**info, "pids": pool.pids})
        db.set("stop", b"1")
    finally:
        if pool is not None:
            try:
                db.set("stop", b"1")
            except StoreError:
                pass  # the workers stop by themselves when the store is gone
            pool.shutdown(timeout)
        try:
            db.clear(["params", "version", "stop", *[_shard_key(s) for s in range(len(bounds))]])
        except StoreError:
            pass
        db.close()
    wall = time.perf_counter() - start - t_measure
    if workers and drawn["weighted"] == 0:
        raise StoreError(
            f"no minibatch draw in {steps} steps used a worker's weight (workers alive at the end: "
            f"{pool.alive}; shard updates received {updates}): the run was plain SGD"
        )
    with torch.no_grad():
        final = float(loss_fn(model(x), y).mean())
    params_ok = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    if not (math.isfinite(final) and params_ok):
        raise DivergenceError(
            steps - 1, final, steps, "run_distributed", what="the final loss (or a parameter)"
        )
    return RunResult(
        steps=steps,
        workers=workers,
        mode=mode,
        store=url,
        initial_loss=initial,
        final_loss=final,
        wall_s=wall,
        examples_per_s=steps * minibatch / max(wall, 1e-9),
        **{f"log_{key}": values for key, values in result_logs.items()},
        drawn_weighted=drawn["weighted"],
        restarts=pool.restarts,
        updates_per_rank=updates,
        last_update_step=last_update,
        weights=weights,
    )


# ----------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> RunResult | None:
    """``python -m dae_tutor.distributed --workers N --store tcp|redis://HOST:PORT ...`` on MNIST or SVHN.

    ``--dataset svhn`` trains on permutation-invariant SVHN (:func:`dae_tutor.data.svhn`, the
    thesis's task); the model's input width is the data's (784 or 3072). With ``--worker RANK``
    the process is one worker of a master started elsewhere with the same ``--workers``,
    ``--store``, ``--run-name``, ``--dataset``, ``--hidden``, ``--examples`` and ``--seed``.
    """
    from dae_tutor import data, nets

    parser = argparse.ArgumentParser(
        prog="python -m dae_tutor.distributed", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes in all (default 2)")
    parser.add_argument(
        "--local-workers", type=int, default=None, help="of which this master starts (default all)"
    )
    parser.add_argument("--store", default="tcp", help="tcp (embedded), tcp://HOST:PORT or redis://HOST:PORT")
    parser.add_argument("--run-name", default=None, help="key prefix in the store (needed by remote workers)")
    parser.add_argument("--worker", type=int, default=None, metavar="RANK", help="run as worker RANK only")
    parser.add_argument("--mode", default="relaxed", choices=MODES)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--minibatch", type=int, default=32)
    parser.add_argument("--push-every", type=int, default=20)
    parser.add_argument("--smoothing", type=float, default=0.1, help="κ, relative to the mean weight")
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256], help="hidden layer widths")
    parser.add_argument("--dataset", default="mnist", choices=DATASETS, help="training data (default mnist)")
    parser.add_argument("--examples", type=int, default=4000, help="training examples used (the first ones)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    runtime.set_threads(1)
    x, y = data.svhn("train") if args.dataset == "svhn" else data.mnist("train")
    x, y = x[: args.examples], y[: args.examples]
    model = nets.MLP([x.shape[1], *args.hidden, 10], "relu", seed=args.seed)
    if args.worker is not None:
        if args.run_name is None:
            parser.error("--worker needs the master's --run-name")
        bounds = shard_bounds(len(y), default_shards(len(y), args.workers))
        prefix = f"issgd/{args.run_name}/"
        worker_main(args.worker, args.workers, args.store, prefix, model, "cross_entropy", x, y, bounds,
                    args.mode, args.timeout)  # fmt: skip
        return None

    def report(step: int, info: dict) -> None:
        print(
            f"step {step:6d}  loss {info['loss']:.4f}  median weight age {info['age_median']:6.1f} steps  "
            f"weighted {info['fresh']:.0%}  workers {info['pids']}",
            flush=True,
        )

    res = run_distributed(
        model, x, y, workers=args.workers, local_workers=args.local_workers, store=args.store,
        run_name=args.run_name, mode=args.mode, steps=args.steps, lr=args.lr, minibatch=args.minibatch,
        push_every=args.push_every, smoothing=args.smoothing, seed=args.seed, timeout=args.timeout,
        log_every=max(1, args.steps // 10), progress=False, callback=report,
    )  # fmt: skip
    print(
        f"done: {res.steps} steps, {res.workers} workers ({res.mode}, {res.store}) in {res.wall_s:.1f} s; "
        f"full training loss {res.initial_loss:.4f} -> {res.final_loss:.4f}; "
        f"master {res.examples_per_s:.0f} examples/s; worker restarts {len(res.restarts)}; "
        f"shard updates received per worker rank {dict(sorted(res.updates_per_rank.items()))}"
    )
    return res


if __name__ == "__main__":
    main()
