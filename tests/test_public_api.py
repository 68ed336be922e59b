"""Fuzzing the public API: every argument of every public callable, replaced by a generated bad value.

One row per callable: a factory for a cheap valid call and, for each argument, the kind of value it takes.
Hypothesis replaces ONE argument at a time by a bad value of that kind (wrong type, wrong ndim or width,
NaN/inf, empty, out of range, int64 where a float is needed) and the call must raise ``ValueError`` or
``TypeError`` whose message names the argument: never a raw torch ``RuntimeError``, an ``IndexError`` or
a silent NaN. A second test checks that every valid call returns finite values.

Skipped, with the reason:

* ``stores``: ``TCPStore``, ``RedisStore``, ``RedisServer``, ``Store``, ``connect`` open sockets or start a
  server (``test_stores.py`` covers them); ``parse_store_url`` is fuzzed.
* ``distributed``: ``worker_main``, ``run_distributed``, ``main``, ``read_shard`` start worker processes or
  read a store (``test_distributed.py`` covers their argument checks); ``default_shards`` and
  ``shard_bounds`` are fuzzed.
* ``cache``: ``directory``, ``write_bytes_atomic``, ``save``, ``load``, ``cached``, ``cached_module``,
  ``own_randomness`` touch the file system or the global generators; their arguments are paths, bytes
  and callables. ``key`` and ``sha256`` are fuzzed.
* ``data.read_idx``, ``data.mnist``, ``data.svhn``: they read (or download) the data sets.
* ``plots.vector_field``, ``plots.image_grid``, ``plots.spectrum``, ``plots.small_figure``: they draw on a
  matplotlib figure; ``plots.grid_2d`` (their array helper) is fuzzed; ``plots.arrow_scale`` takes callables.
* ``widgets.Slider``, ``widgets.slider``: their ``render`` must draw a matplotlib figure per value.
* ``runtime.set_threads``, ``runtime.seed_everything``, ``profiles.use``: they change process-wide state.
* No argument to fuzz: ``runtime.device``, ``runtime.default_threads``, ``profiles.current``,
  ``profiles.pick`` (any two values), ``densities.reference_mixture_1d``, ``RBM.log_partition``,
  ``RBM.gibbs_kernel``,
  ``ScaledHead.alphas``, the ``extra_repr`` and ``zero_grad`` methods.
* Records built by the package, not by a reader: ``Eigenpairs``, ``LineSearch``, ``ProbeResult``,
  ``History``, ``RunResult``, and the exceptions ``ConvergenceError``, ``DivergenceError``,
  ``StoreError``.
* ``checks``: the helpers themselves (tested directly in ``test_checks.py``), except ``checks.stochastic``.
* ``Categorical.rows``, ``Categorical.one``: the NumPy inner loop of the finite-state samplers (their
  checks are tested in ``test_markov.py``).
* ``probes.tap``: a context manager over the same arguments as ``probes.capture`` (fuzzed).
* Not checked for NaN/inf, so fuzzed without them: a model's output (``importance.cross_entropy`` and
  ``importance.mse``'s ``output``), per-example losses (``importance.importance_loss``) and the input of
  the forwards of ``nets.AutoEncoder``, ``nets.MLP`` and ``nets.DeepAutoEncoder`` (which may be another
  network's output: D on G(z), r on the walkback chain's samples). A NaN there is a training failure,
  which the training loops report as ``DivergenceError`` (the check would also cost about 20 µs a
  forward, 1-3 % of a ``train.fit_dae`` step of a small 2-d DAE). These forwards also map an empty
  batch (0, d) to an empty output (``test_nets.py``), so it is not a bad value for them.
* Kinds that follow a documented shape: ``GaussianMixture`` methods on (..., d) take any rank,
  ``hvp``'s ``v`` is (d,) or (m, d), and ``full_hessian``'s test loss takes ``params`` of any length.
* Callables passed as arguments (``loss_fn``, ``r``, ``score_fn``, ``matvec``, ``build``) are fuzzed only
  for their type; what they return is the caller's contract.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from torch import nn

from dae_tutor import (
    ablation,
    auxiliary,
    baselines,
    binary_nets,
    cache,
    chains,
    checks,
    classifiers,
    conditioning,
    convexity,
    corruption,
    curvature,
    data,
    densities,
    depnets,
    diagnostics,
    distributed,
    evaluate,
    gan_theory,
    importance,
    markov,
    nets,
    plots,
    probes,
    runtime,
    score,
    sharpness,
    spectral_density,
    stores,
    train,
)

NAN, INF = math.nan, math.inf
FUZZ = settings(
    max_examples=8,
    phases=(Phase.explicit, Phase.generate),
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


# ------------------------------------------------------------------ kinds of argument and their bad values
@dataclass(frozen=True)
class Kind:
    """A kind of argument: ``bad(valid)`` is a strategy of bad values for it."""

    bad: Callable[[object], st.SearchStrategy]


def Int(minimum: int = 1) -> Kind:
    """An integer >= ``minimum``."""
    return Kind(lambda v: st.sampled_from([1.5, "2", True, [2]]) | st.integers(max_value=minimum - 1))


def Real(*, low: float | None = None, high: float | None = None, strict: bool = True) -> Kind:
    """A finite real number, in (low, high) when ``strict`` else [low, high]."""

    def bad(v: object) -> st.SearchStrategy:
        out = [st.sampled_from(["0.5", NAN, INF, -INF, [0.5]])]
        if low is not None:
            out.append(
                st.floats(max_value=low, exclude_max=not strict, allow_nan=False, allow_infinity=False)
            )
        if high is not None:
            out.append(
                st.floats(min_value=high, exclude_min=not strict, allow_nan=False, allow_infinity=False)
            )
        return st.one_of(out)

    return Kind(bad)


POS = Real(low=0.0)
POS0 = Real(low=0.0, strict=False)
PROB = Real(low=0.0, high=1.0, strict=False)
REAL = Real()
BOOL = Kind(lambda v: st.sampled_from([1, 0, "yes", None]))
GEN = Kind(lambda v: st.sampled_from([0, "seed", np.random.default_rng(0)]))
CALL = Kind(lambda v: st.sampled_from([0, "f", None]))
MODULE = Kind(lambda v: st.sampled_from([0, "model", None]))
CHOICE = Kind(lambda v: st.integers() | st.text(max_size=3).map(lambda s: "no-such-" + s))


def _perturb(v: torch.Tensor, how: str, i: int, out: tuple[float, ...]) -> object:
    """The valid tensor ``v`` made bad in the way ``how`` (``i`` picks an entry or a value)."""
    v = torch.as_tensor(v, dtype=torch.float64 if isinstance(v, list) else None)
    if how == "type":
        return ["abc", {"a": 1}][i % 2]
    if how == "numpy":
        return v.numpy()
    if how == "ndim":
        return v[None] if i % 2 or v.dim() < 2 else v.reshape(-1)
    if how == "width":
        return torch.cat([v, v[..., :1]], -1)
    if how == "rows":
        return torch.cat([v, v[:1]], 0)
    if how == "empty":
        return v[:0]
    if how == "int":
        return v.round().long()
    if how == "float":
        return v.double() + 0.5
    w = v.clone().reshape(-1)
    value = {"nan": NAN, "inf": [INF, -INF][i % 2], "range": out[i % len(out)]}[how]
    w[i % w.numel()] = value
    return w.reshape(v.shape)


def T(*hows: str, out: tuple[float, ...] = (-0.5, 1.5)) -> Kind:
    """A tensor argument, made bad in one of the ways ``hows`` (see :func:`_perturb`)."""
    return Kind(
        lambda v: st.builds(_perturb, st.just(v), st.sampled_from(hows), st.integers(0, 10**6), st.just(out))
    )


F = ("type", "numpy", "ndim", "nan", "inf", "empty", "int")  # a float tensor of fixed rank
FN = ("type", "numpy", "ndim", "empty", "int")  # the same, where NaN is a training failure (see above)
FA = ("type", "numpy", "nan", "inf", "empty", "int")  # a float tensor of any rank
A = ("type", "ndim", "nan", "inf", "empty")  # an array-like (tensor, list or ndarray)
STOCH = (*A, "width", "range")  # a row-stochastic matrix


# ------------------------------------------------------------------------------------------ the cases
@dataclass(frozen=True)
class Case:
    name: str
    call: Callable[..., object]
    valid: Callable[[], dict]
    kinds: dict[str, Kind]
    finite: bool = True
    expect: dict[str, str] | None = None  # a regex of the names an error may give instead of the argument's


CASES: list[Case] = []


def case(
    name: str,
    call: Callable[..., object],
    valid: Callable[[], dict],
    /,
    *,
    finite: bool = True,
    expect=None,
    **kinds,
):
    CASES.append(Case(name, call, valid, kinds, finite, expect))


def g() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def stoch(n: int, m: int | None = None, seed: int = 0) -> torch.Tensor:
    t = torch.rand(n, m or n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + 0.1
    return t / t.sum(-1, keepdim=True)


def pvec(n: int) -> torch.Tensor:
    return stoch(1, n, seed=3)[0]


def x2(n: int = 6, d: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# chains ---------------------------------------------------------------------------------------------
K = 4
P4, C4 = pvec(K), stoch(K)
R4 = chains.bayes_reconstruction(P4, C4)
T4 = chains.dae_transition(C4, R4)
F64, G46 = stoch(6, 4, 1), stoch(4, 6, 2)
F655 = stoch(30, 5, 4).reshape(6, 5, 5)
KS = depnets.site_kernels(depnets.random_conditionals(3, g()))
STATE = T("type", "ndim", "float", "range", out=(-1, K))

case(
    "checks.stochastic",
    checks.stochastic,
    lambda: dict(name="T", value=T4),
    expect={"value": "T"},
    value=T(*STOCH),
)
case("markov.check_two_stage", markov.check_two_stage, lambda: dict(C=C4, R=R4), C=T(*STOCH), R=T(*STOCH))
case("markov.uniforms", markov.uniforms, lambda: dict(n=3, generator=g()), n=Int(0), generator=GEN)
case("markov.Categorical", markov.Categorical, lambda: dict(probs=stoch(3, K)), probs=T(*STOCH))
case(
    "chains.corruption_matrix",
    chains.corruption_matrix,
    lambda: dict(K=K, kind="mix_uniform", q=0.5),
    K=Int(),
    kind=CHOICE,
    q=PROB,
)
case(
    "chains.window_corruption", chains.window_corruption, lambda: dict(K=K, radius=1), K=Int(), radius=Int(0)
)
case(
    "chains.gaussian_grid_corruption",
    chains.gaussian_grid_corruption,
    lambda: dict(xs=torch.linspace(0, 1, 5, dtype=torch.float64), sigma=0.3),
    xs=T(*A),
    sigma=POS,
)
case(
    "chains.bayes_reconstruction",
    chains.bayes_reconstruction,
    lambda: dict(P=P4, C=C4),
    P=T(*A, "range", "width"),
    C=T(*STOCH),
)
case("chains.dae_transition", chains.dae_transition, lambda: dict(C=C4, R=R4), C=T(*STOCH), R=T(*STOCH))
case(
    "chains.counting_estimator",
    chains.counting_estimator,
    lambda: dict(x=torch.tensor([0, 1, 2, 3]), x_tilde=torch.tensor([1, 1, 2, 0]), K=K, alpha=0.5),
    x=T("type", "ndim", "float", "range", "rows", out=(-1, K)),
    x_tilde=T("type", "ndim", "float", "range", "rows", out=(-1, K)),
    K=Int(),
    alpha=POS0,
)
for fn in ("closed_classes", "gth_solve", "second_eigenvalue_modulus", "fundamental_matrix"):
    case(f"markov.{fn}", getattr(markov, fn), lambda: dict(T=T4), T=T(*STOCH))
case(
    "markov.stationary_distribution",
    markov.stationary_distribution,
    lambda: dict(T=T4, method="lstsq"),
    T=T(*STOCH),
    method=CHOICE,
)
case(
    "markov.detailed_balance_violation",
    markov.detailed_balance_violation,
    lambda: dict(T=T4, pi=P4),
    T=T(*STOCH),
    pi=T(*A, "range", "width"),
)
case(
    "markov.tv_distance",
    markov.tv_distance,
    lambda: dict(p=P4, q=P4.flip(0)),
    p=T(*A, "range", "width"),
    q=T(*A, "range", "width"),
)
case(
    "markov.schweitzer_bound",
    markov.schweitzer_bound,
    lambda: dict(T=T4, T_tilde=stoch(K, seed=5)),
    T=T(*STOCH),
    T_tilde=T(*STOCH),
)
case(
    "chains.walkback_corruption",
    chains.walkback_corruption,
    lambda: dict(C=C4, R=R4, p_stop=0.5),
    C=T(*STOCH),
    R=T(*STOCH),
    p_stop=Real(low=0.0, high=1.0),
)
case(
    "chains.walkback_fixed_point",
    chains.walkback_fixed_point,
    lambda: dict(P=P4, C=C4, p_stop=0.5, max_iter=500, tol=1e-10),
    P=T(*A, "range", "width"),
    C=T(*STOCH),
    p_stop=Real(low=0.0, high=1.0),
    max_iter=Int(),
    tol=POS,
)
case(
    "chains.online_counting_training",
    chains.online_counting_training,
    lambda: dict(P=P4, C=C4, epochs=2, n=100.0, spurious=1, alpha=1.0, walkback=False, p_stop=0.5),
    P=T(*A, "range", "width"),
    C=T(*STOCH),
    epochs=Int(),
    n=POS,
    spurious=Int(0),
    alpha=POS0,
    walkback=BOOL,
    p_stop=Real(low=0.0, high=1.0),
)
case(
    "chains.sample_pairs",
    chains.sample_pairs,
    lambda: dict(P=P4, C=C4, n=5, generator=g()),
    P=T(*A, "range", "width"),
    C=T(*STOCH),
    n=Int(),
    generator=GEN,
)
case(
    "markov.sample_chain",
    markov.sample_chain,
    lambda: dict(transition=T4, x0=torch.tensor([0, 2]), n_steps=3, generator=g()),
    transition=T(*STOCH),
    x0=STATE,
    n_steps=Int(0),
    generator=GEN,
)
case(
    "chains.walkback_pairs",
    chains.walkback_pairs,
    lambda: dict(x=1, C=C4, R=R4, p_stop=0.5, generator=g(), training=True),
    x=Kind(lambda v: st.sampled_from([1.5, "1", -1, K])),
    C=T(*STOCH),
    R=T(*STOCH),
    p_stop=Real(low=0.0, high=1.0),
    generator=GEN,
    training=BOOL,
)
case(
    "chains.walkback_batch",
    chains.walkback_batch,
    lambda: dict(x=torch.tensor([0, 1, 3]), C=C4, R=R4, p_stop=0.5, generator=g(), training=True),
    x=STATE,
    C=T(*STOCH),
    R=T(*STOCH),
    p_stop=Real(low=0.0, high=1.0),
    generator=GEN,
    training=BOOL,
)
case("markov.binary_states", markov.binary_states, lambda: dict(d=3), d=Int())
case(
    "chains.salt_and_pepper_kernel",
    chains.salt_and_pepper_kernel,
    lambda: dict(d=2, rho=0.3),
    d=Int(),
    rho=PROB,
)
case(
    "chains.factorized_projection",
    chains.factorized_projection,
    lambda: dict(R=chains.salt_and_pepper_kernel(2, 0.3)),
    R=T(*STOCH),
)
case(
    "chains.unimodal_projection",
    chains.unimodal_projection,
    lambda: dict(R=R4, xs=torch.linspace(0, 1, K, dtype=torch.float64), min_var=1e-6),
    R=T(*STOCH),
    xs=T(*A, "width"),
    min_var=POS0,
)
SMASK = T("type", "ndim", "empty", "range", "float", out=(-1, K))
case(
    "chains.conditional_on",
    chains.conditional_on,
    lambda: dict(p=P4, S=torch.tensor([0, 2])),
    p=T(*A, "range"),
    S=SMASK,
)
case(
    "chains.clamp_decoder",
    chains.clamp_decoder,
    lambda: dict(g=stoch(3, K), S=torch.tensor([0, 2])),
    g=T(*STOCH),
    S=SMASK,
)
for fn in ("clamped_transition", "clamped_stationary"):
    case(
        f"chains.{fn}",
        getattr(chains, fn),
        lambda: dict(f=stoch(K, 3), g=stoch(3, K), S=torch.tensor([0, 2])),
        f=T(*STOCH),
        g=T(*STOCH),
        S=SMASK,
    )
case(
    "chains.encoder_decoder_joint",
    chains.encoder_decoder_joint,
    lambda: dict(f=F64, g=G46),
    f=T(*STOCH),
    g=T(*STOCH),
)
case(
    "chains.clamped_encoder_residual",
    chains.clamped_encoder_residual,
    lambda: dict(pi_joint=chains.encoder_decoder_joint(F64, G46), f=F64, S=torch.tensor([0, 2])),
    pi_joint=T(*A, "range", "width"),
    f=T(*STOCH),
    S=T("type", "ndim", "empty", "range", "float", out=(-1, 6)),
)
case(
    "chains.burnin_hidden",
    chains.burnin_hidden,
    lambda: dict(f=F655, k=2, h_init=1),
    f=T(*A, "range", "width"),
    k=Int(0),
    h_init=Kind(lambda v: st.sampled_from([1.5, "1", -1, 5])),
)
case(
    "chains.gsn_decoder_target",
    chains.gsn_decoder_target,
    lambda: dict(P=pvec(6), q=chains.burnin_hidden(F655, 2)),
    P=T(*A, "range", "width"),
    q=T(*STOCH),
)
case(
    "chains.gsn_joint_transition",
    chains.gsn_joint_transition,
    lambda: dict(f=F655, g=stoch(5, 6)),
    f=T(*A, "range", "width"),
    g=T(*STOCH),
)
case(
    "chains.gsn_marginal_x",
    chains.gsn_marginal_x,
    lambda: dict(pi_joint=pvec(30), n_x=6, n_h=5),
    pi_joint=T(*A, "range", "width"),
    n_x=Int(),
    n_h=Int(),
)
case(
    "depnets.conditionals_from_joint",
    depnets.conditionals_from_joint,
    lambda: dict(P=pvec(8)),
    P=T(*A, "range", "width"),
)
case(
    "depnets.random_conditionals",
    depnets.random_conditionals,
    lambda: dict(d=3, generator=g(), low=0.1, high=0.9),
    d=Int(),
    generator=GEN,
    low=PROB,
    high=PROB,
)
case(
    "depnets.site_kernels",
    depnets.site_kernels,
    lambda: dict(conds=depnets.random_conditionals(3, g())),
    conds=T(*A, "range", "width"),
)
case(
    "depnets.random_scan_kernel",
    depnets.random_scan_kernel,
    lambda: dict(Ks=KS, w=torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)),
    Ks=T(*A, "range", "width"),
    w=T(*A, "range", "width"),
)
case(
    "depnets.systematic_scan_kernel",
    depnets.systematic_scan_kernel,
    lambda: dict(Ks=KS, order=torch.tensor([2, 0, 1])),
    Ks=T(*A, "range", "width"),
    order=T("type", "ndim", "empty", "float", "range", out=(-1, 3)),
)
case(
    "depnets.augmented_ordered_chain",
    depnets.augmented_ordered_chain,
    lambda: dict(Ks=KS),
    Ks=T(*A, "range", "width"),
)
case(
    "depnets.conditional_null_space",
    depnets.conditional_null_space,
    lambda: dict(P=pvec(8), rtol=1e-10),
    P=T(*A, "range", "width"),
    rtol=POS,
)
case(
    "chains.nonparametric_dae_step",
    chains.nonparametric_dae_step,
    lambda: dict(x=x2(3), train_x=x2(5, seed=1), sigma_c=0.3, s=0.1, generator=g()),
    x=T(*F, "width"),
    train_x=T(*F, "width"),
    sigma_c=POS,
    s=POS0,
    generator=GEN,
)
case(
    "chains.posterior_spread",
    chains.posterior_spread,
    lambda: dict(train_x=x2(5, seed=1), x_tilde=x2(3), sigma_c=0.3),
    train_x=T(*F, "width"),
    x_tilde=T(*F, "width"),
    sigma_c=POS,
)

# corruption, data ----------------------------------------------------------------------------------
PIX = torch.rand(4, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
case(
    "corruption.salt_and_pepper",
    corruption.salt_and_pepper,
    lambda: dict(x=PIX.round(), p=0.3, generator=g()),
    x=T("type", "numpy", "nan", "inf", "int", "range"),
    p=PROB,
    generator=GEN,
)
case(
    "corruption.gaussian",
    corruption.gaussian,
    lambda: dict(x=PIX, sigma=0.3, generator=g()),
    x=T("type", "numpy", "nan", "inf", "int"),
    sigma=POS0,
    generator=GEN,
)
case(
    "data.binarize",
    data.binarize,
    lambda: dict(x=PIX, mode="stochastic", generator=g()),
    x=T("type", "numpy", "nan", "inf", "int", "range"),
    mode=CHOICE,
    generator=GEN,
)

# densities ------------------------------------------------------------------------------------------
GM = densities.GaussianMixture([0.3, 0.7], [[0.0, 0.0], [1.0, 1.0]], [torch.eye(2) * 0.5, torch.eye(2)])
case(
    "densities.GaussianMixture",
    densities.GaussianMixture,
    lambda: dict(weights=[0.3, 0.7], means=[[0.0, 0.0], [1.0, 1.0]], covs=torch.eye(2).expand(2, 2, 2) * 0.5),
    weights=T(*A, "range", "width"),
    expect={"means": "means|covs"},
    means=T(*A, "width"),
    covs=T(*A, "range", "width", out=(-1.0,)),
)
XGM = T(*FA, "width")  # the methods below map (..., d) to (...): any rank
for meth in ("log_prob", "responsibilities", "score", "hessian_log_prob"):
    case(
        f"GaussianMixture.{meth}",
        lambda x, meth=meth: getattr(GM, meth)(x),
        lambda: dict(x=x2(3)),
        x=XGM,
    )
case(
    "GaussianMixture.sample",
    lambda n, generator: GM.sample(n, generator),
    lambda: dict(n=3, generator=g()),
    n=Int(),
    generator=GEN,
)
case(
    "GaussianMixture.smoothed",
    lambda sigma: GM.smoothed(sigma),
    lambda: dict(sigma=0.2),
    sigma=POS0,
    finite=False,
)
case(
    "GaussianMixture.optimal_reconstruction",
    lambda x, sigma: GM.optimal_reconstruction(x, sigma),
    lambda: dict(x=x2(3), sigma=0.3),
    x=XGM,
    sigma=POS,
)
for meth in ("posterior",):
    case(
        f"GaussianMixture.{meth}",
        lambda x_tilde, sigma, meth=meth: getattr(GM, meth)(x_tilde, sigma),
        lambda: dict(x_tilde=x2(3), sigma=0.3),
        x_tilde=XGM,
        sigma=POS,
    )
case(
    "GaussianMixture.sample_posterior",
    lambda x_tilde, sigma, generator: GM.sample_posterior(x_tilde, sigma, generator),
    lambda: dict(x_tilde=x2(3), sigma=0.3, generator=g()),
    x_tilde=T(*F, "width"),
    sigma=POS,
    generator=GEN,
)
case(
    "densities.Spiral",
    densities.Spiral,
    lambda: dict(t_range=(3.0, 12.0), scale=0.04, radial_noise=0.01),
    finite=False,
    t_range=Kind(lambda v: st.sampled_from([(3.0,), (12.0, 3.0), (NAN, 1.0), "ab", 3.0])),
    scale=POS,
    radial_noise=POS0,
)
case("densities.Curve10d", densities.Curve10d, lambda: dict(noise=0.05), finite=False, noise=POS0)
for cls in (densities.Spiral, densities.Curve10d):
    meths = ("point", "tangent", "normal") if cls is densities.Spiral else ("point", "tangent")
    for meth in meths:
        case(
            f"{cls.__name__}.{meth}",
            lambda t, cls=cls, meth=meth: getattr(cls(), meth)(t),
            lambda: dict(t=torch.linspace(3, 6, 4, dtype=torch.float64)),
            t=T("type", "nan", "inf", "int"),
        )
    for meth in ("sample", "sample_with_t"):
        case(
            f"{cls.__name__}.{meth}",
            lambda n, generator, cls=cls, meth=meth: getattr(cls(), meth)(n, generator),
            lambda: dict(n=3, generator=g()),
            n=Int(),
            generator=GEN,
        )

# evaluate -------------------------------------------------------------------------------------------
case(
    "evaluate.parzen_log_likelihood",
    evaluate.parzen_log_likelihood,
    lambda: dict(samples=x2(5), test=x2(3, seed=1), sigma=0.3, batch_size=2),
    samples=T(*F, "width"),
    test=T(*F, "width"),
    sigma=POS,
    batch_size=Int(),
)
case(
    "evaluate.nearest_neighbours",
    evaluate.nearest_neighbours,
    lambda: dict(queries=x2(3), reference=x2(5, seed=1), batch_size=2),
    queries=T(*F, "width"),
    reference=T(*F, "width"),
    batch_size=Int(),
)
case(
    "evaluate.mode_coverage",
    evaluate.mode_coverage,
    lambda: dict(samples=x2(8), centres=x2(2, seed=1), radius=1.0, min_share=0.1),
    samples=T(*F, "width"),
    centres=T(*F, "width"),
    radius=POS,
    min_share=PROB,
)
case(
    "evaluate.mean_and_stderr",
    evaluate.mean_and_stderr,
    lambda: dict(values=torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)),
    values=T("type", "ndim", "nan", "inf", "empty"),
)
case(
    "evaluate.select_parzen_sigma",
    evaluate.select_parzen_sigma,
    lambda: dict(samples=x2(5), valid=x2(3, seed=1), sigmas=[0.1, 0.5], batch_size=2),
    samples=T(*F, "width"),
    valid=T(*F, "width"),
    sigmas=Kind(lambda v: st.sampled_from([[], [0.1, -0.5], [NAN], 0.3, "0.1", [0.1, INF]])),
    batch_size=Int(),
)

UNIT = torch.rand(5, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
case(
    "evaluate.protocol_scores",
    evaluate.protocol_scores,
    lambda: dict(
        samples=UNIT,
        valid=UNIT[:3],
        test=UNIT[2:],
        binarise_samples=True,
        sigmas=[0.1, 0.5],
        fixed_sigma=0.2,
        batch_size=2,
    ),
    samples=T(*F, "width", "range"),
    valid=T(*F, "width", "range"),
    test=T(*F, "width", "range"),
    binarise_samples=BOOL,
    sigmas=Kind(lambda v: st.sampled_from([[], [0.1, -0.5], [NAN], 0.3, "0.1", [0.1, INF]])),
    fixed_sigma=POS,
    batch_size=Int(),
)

case(
    "evaluate.diagonal_gaussian_log_likelihood",
    evaluate.diagonal_gaussian_log_likelihood,
    lambda: dict(train=x2(5), test=x2(3, seed=1), variance_floor=1e-4),
    train=T(*F, "width"),
    test=T(*F, "width"),
    variance_floor=POS,
)

# diagnostics ----------------------------------------------------------------------------------------
ARC2 = torch.stack([torch.linspace(0, 1, 9, dtype=torch.float64), torch.zeros(9, dtype=torch.float64)], 1)
case(
    "diagnostics.energy_distance",
    diagnostics.energy_distance,
    lambda: dict(x=x2(6), y=x2(5, seed=1), unbiased=True, batch_size=2),
    x=T(*F, "width"),
    y=T(*F, "width"),
    unbiased=BOOL,
    batch_size=Int(),
)
case(
    "diagnostics.mmd",
    diagnostics.mmd,
    lambda: dict(x=x2(6), y=x2(5, seed=1), bandwidth=0.7, unbiased=False, batch_size=2),
    x=T(*F, "width"),
    y=T(*F, "width"),
    bandwidth=POS,
    unbiased=BOOL,
    batch_size=Int(),
)
case(
    "diagnostics.curve_positions",
    diagnostics.curve_positions,
    lambda: dict(samples=x2(5), curve_points=ARC2),
    samples=T(*F, "width"),
    curve_points=T(*F, "width"),
)
case(
    "diagnostics.arc_coverage",
    diagnostics.arc_coverage,
    lambda: dict(positions=torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64), n_bins=4),
    positions=T(*F, "range"),
    n_bins=Int(),
)
case(
    "diagnostics.manifold_coverage",
    diagnostics.manifold_coverage,
    lambda: dict(samples=x2(5), curve_points=ARC2, n_bins=4, radius=1.0),
    samples=T(*F, "width"),
    curve_points=T(*F, "width"),
    n_bins=Int(),
    radius=POS,
)
for fn in ("integrated_autocorrelation_time", "effective_sample_size"):
    case(
        f"diagnostics.{fn}",
        getattr(diagnostics, fn),
        lambda: dict(series=x2(64, 1)[:, 0], c=5.0),
        series=T(*F),
        c=POS,
    )
case(
    "diagnostics.mode_hops",
    diagnostics.mode_hops,
    lambda: dict(labels=torch.tensor([[0, 2], [1, 2], [1, 0]]), n_modes=3),
    labels=T("type", "float", "range", "empty", out=(-1, 3)),
    n_modes=Int(),
)

case(
    "diagnostics.persistent_hops",
    diagnostics.persistent_hops,
    lambda: dict(labels=torch.tensor([[0, 2], [0, -1], [1, 2], [1, 2]]), n_modes=3, min_stay=2),
    labels=T("type", "float", "range", "empty", out=(-2, 3)),
    n_modes=Int(),
    min_stay=Int(),
)

# gan_theory -----------------------------------------------------------------------------------------
GRID = torch.linspace(-3, 3, 31, dtype=torch.float64)
LP, LQ = -0.5 * GRID**2 - 0.92, -0.5 * (GRID - 1) ** 2 - 0.92
LOGDEN = T("type", "numpy", "ndim", "nan", "empty", "int", "width")
for fn in ("optimal_discriminator_logits", "optimal_discriminator"):
    case(
        f"gan_theory.{fn}",
        getattr(gan_theory, fn),
        lambda: dict(log_p_data=LP, log_p_g=LQ),
        log_p_data=LOGDEN,
        log_p_g=LOGDEN,
    )
case(
    "gan_theory.value_by_quadrature",
    gan_theory.value_by_quadrature,
    lambda: dict(x=GRID, log_p_data=LP, log_p_g=LQ, logits=LP - LQ),
    x=T("type", "numpy", "ndim", "nan", "inf", "empty", "int", "width"),
    log_p_data=LOGDEN,
    log_p_g=LOGDEN,
    logits=LOGDEN,
)
GRID_X = T("type", "numpy", "ndim", "nan", "inf", "empty", "int", "width")
for fn, (first, second) in {
    "virtual_criterion": ("log_p_data", "log_p_g"),
    "eq5_criterion": ("log_p_data", "log_p_g"),
    "jensen_shannon": ("log_p", "log_q"),
    "kl_divergence": ("log_p", "log_q"),
}.items():
    case(
        f"gan_theory.{fn}",
        getattr(gan_theory, fn),
        lambda first=first, second=second: {"x": GRID, first: LP, second: LQ},
        **{"x": GRID_X, first: LOGDEN, second: LOGDEN},
    )
case(
    "gan_theory.simultaneous_gradient_play",
    gan_theory.simultaneous_gradient_play,
    lambda: dict(a0=1.0, b0=0.5, lr=0.1, steps=3),
    a0=REAL,
    b0=REAL,
    lr=POS,
    steps=Int(),
)


# importance -----------------------------------------------------------------------------------------
def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()


XB, YB = x2(6, 3), torch.tensor([0, 1, 1, 0, 1, 0])
LABELS = T("type", "numpy", "ndim", "empty", "float", "rows", "range", out=(-1, 2))
BATCH = dict(
    model=MODULE,
    loss_fn=CALL,
    x=T(*F, "width", "rows"),
    y=LABELS,
)
case(
    "importance.cross_entropy",
    importance.cross_entropy,
    lambda: dict(output=x2(6), target=YB),
    output=T(*FN, "rows"),
    target=LABELS,
)
case(
    "importance.mse",
    importance.mse,
    lambda: dict(output=x2(6), target=x2(6, seed=1)),
    output=T(*FN, "rows", "width"),
    target=T(*F, "rows", "width"),
)
case("importance.loss_by_name", importance.loss_by_name, lambda: dict(name="mse"), finite=False, name=CHOICE)
BATCH_VALID = lambda: dict(model=small_net(), loss_fn=importance.cross_entropy, x=XB, y=YB)  # noqa: E731
case("importance.check_batch", importance.check_batch, BATCH_VALID, **{**BATCH, "x": T(*F, "rows")})
case(
    "importance.per_example_grad_norms",
    importance.per_example_grad_norms,
    lambda: {**BATCH_VALID(), "method": "fc"},
    method=CHOICE,
    **BATCH,
)
for fn in ("per_example_grads", "last_layer_grad_norms", "flat_grad"):
    case(f"importance.{fn}", getattr(importance, fn), BATCH_VALID, **BATCH)
case(
    "importance.minibatch_gradient_norm_bound",
    importance.minibatch_gradient_norm_bound,
    lambda: {**BATCH_VALID(), "batch_size": 1},
    batch_size=Int(),
    **BATCH,
)
WEIGHTS = torch.tensor([0.5, 1.0, 2.0, 0.1], dtype=torch.float64)
WBAD = T(*F, "range", out=(-1.0,))
case("importance.exact_method", importance.exact_method, lambda: dict(model=small_net()), model=MODULE)
for fn in ("sampled_gradient_error", "sampled_gradient_z"):
    case(
        f"importance.{fn}",
        getattr(importance, fn),
        lambda: {
            **BATCH_VALID(),
            "weights": torch.linspace(0.5, 2.0, 6),
            "minibatch": 2,
            "draws": 3,
            "generator": g(),
            "reweight": True,
        },
        weights=WBAD,
        minibatch=Int(),
        draws=Int(),
        generator=GEN,
        reweight=BOOL,
        **BATCH,
    )
case(
    "importance.smooth_weights",
    importance.smooth_weights,
    lambda: dict(weights=WEIGHTS, c=0.1),
    weights=WBAD,
    c=POS0,
)
case(
    "importance.importance_minibatch",
    importance.importance_minibatch,
    lambda: dict(weights=WEIGHTS, minibatch=3, generator=g()),
    weights=WBAD,
    minibatch=Int(),
    generator=GEN,
)
case(
    "importance.importance_loss",
    importance.importance_loss,
    lambda: dict(per_example_losses=WEIGHTS, scale=WEIGHTS.flip(0)),
    per_example_losses=T(*FN, "rows"),
    scale=T(*F, "rows", "range", out=(-1.0,)),
)
case(
    "importance.trace_covariance",
    importance.trace_covariance,
    lambda: dict(grad_norms=WEIGHTS, weights=WEIGHTS.flip(0), mean_grad_sq=0.1, minibatch=2),
    grad_norms=WBAD,
    weights=T(*F, "rows", "range", out=(-1.0,)),
    mean_grad_sq=POS0,
    minibatch=Int(),
)
case("importance.entropy", importance.entropy, lambda: dict(weights=WEIGHTS), weights=WBAD)
case(
    "importance.simulate_issgd",
    importance.simulate_issgd,
    lambda: {
        **BATCH_VALID(),
        "steps": 2,
        "lr": 0.1,
        "minibatch": 2,
        "importance": True,
        "refresh_every": 1,
        "smoothing": 0.1,
        "log_every": 1,
        "method": "fc",
        "generator": g(),
        "progress": False,
    },
    finite=False,
    steps=Int(),
    lr=POS,
    minibatch=Int(),
    importance=BOOL,
    refresh_every=Int(),
    smoothing=POS0,
    log_every=Int(),
    method=CHOICE,
    generator=GEN,
    progress=BOOL,
    **BATCH,
)


# curvature ------------------------------------------------------------------------------------------
def quad(theta: torch.Tensor) -> torch.Tensor:
    return (theta**2 * torch.arange(1, theta.numel() + 1, dtype=theta.dtype)).sum() + theta.prod()


TH = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64)
VEC = T(*F, "width")
DIRS = T(*FA, "width")  # one direction (d,) or a batch (m, d)
case(
    "curvature.hvp",
    curvature.hvp,
    lambda: dict(loss_fn=quad, params=TH, v=TH.flip(0), method="fwd_rev"),
    loss_fn=CALL,
    params=VEC,
    v=DIRS,
    method=CHOICE,
)
case(
    "curvature.full_hessian",
    curvature.full_hessian,
    lambda: dict(loss_fn=quad, params=TH),
    loss_fn=CALL,
    params=T(*F),  # quad takes any length
)
DIAG = torch.linspace(1, 5, 6, dtype=torch.float64)
case(
    "curvature.arpack_eigs",
    curvature.arpack_eigs,
    lambda: dict(matvec=lambda v: DIAG * v, dim=6, k=2, which="SA", tol=1e-8, shift=5.0, seed=0),
    matvec=CALL,
    dim=Int(2),
    k=Int(),
    which=CHOICE,
    tol=POS,
    shift=Kind(lambda v: st.sampled_from([NAN, INF, "5"])),
    seed=Int(0),
)
EYE6 = torch.eye(6, dtype=torch.float64)
case(
    "curvature.ritz_angles",
    curvature.ritz_angles,
    lambda: dict(ritz_vectors=EYE6[:, :2], eigenvalues=DIAG, eigenvectors=EYE6, index=[0, 1], min_gap=0.1),
    ritz_vectors=T(*F),
    eigenvalues=T(*F, "width"),
    eigenvectors=T(*F, "width"),
    index=Kind(lambda v: st.sampled_from([[0], [0, -1], [0, 6], "01", [0, 1.5]])),
    min_gap=POS0,
)
case(
    "curvature.lanczos",
    curvature.lanczos,
    lambda: dict(
        matvec=lambda v: DIAG * v,
        dim=6,
        k=2,
        which="LA",
        tol=1e-8,
        max_iter=30,
        generator=g(),
        start=torch.ones(6, dtype=torch.float64),
        strict=True,
    ),
    finite=False,
    matvec=CALL,
    dim=Int(),
    k=Int(),
    which=CHOICE,
    tol=POS,
    max_iter=Int(),
    generator=GEN,
    start=T("type", "numpy", "ndim", "empty", "width"),
    strict=BOOL,
)
DSET = lambda: dict(model=small_net(), loss_fn=nn.functional.cross_entropy, data=(XB, YB))  # noqa: E731
DATA = Kind(
    lambda v: st.sampled_from([XB, (XB,), (), (XB, YB[:3]), (XB.long(), YB), "data", (XB[:0], YB[:0])])
)
case(
    "curvature.DatasetLoss",
    curvature.DatasetLoss,
    lambda: {**DSET(), "chunk_size": 4, "subset": 0.5, "generator": g()},
    finite=False,
    model=MODULE,
    loss_fn=CALL,
    data=DATA,
    chunk_size=Int(),
    subset=Real(low=0.0, high=1.0, strict=True),
    generator=GEN,
)
DL = curvature.DatasetLoss(small_net(), nn.functional.cross_entropy, (XB, YB))
NP = (
    DL.n_params
    if hasattr(DL, "n_params")
    else nn.utils.parameters_to_vector(small_net().parameters()).numel()
)
THETA = nn.utils.parameters_to_vector(small_net().parameters()).detach()
case("DatasetLoss.gradient", lambda theta: DL.gradient(theta), lambda: dict(theta=THETA), theta=VEC)
case(
    "DatasetLoss.hvp",
    lambda theta, v: DL.hvp(theta, v),
    lambda: dict(theta=THETA, v=THETA.flip(0)),
    theta=VEC,
    v=DIRS,
)
case(
    "curvature.hessian_eigs",
    curvature.hessian_eigs,
    lambda: {**DSET(), "k": 2, "which": "LA", "chunk_size": 4, "tol": 1e-6, "max_iter": 40, "generator": g()},
    finite=False,
    model=MODULE,
    loss_fn=CALL,
    data=DATA,
    k=Int(),
    which=CHOICE,
    chunk_size=Int(),
    tol=POS,
    max_iter=Int(),
    generator=GEN,
)
ALPHAS = torch.linspace(-1, 1, 5, dtype=torch.float64)
case(
    "curvature.line_search_along",
    curvature.line_search_along,
    lambda: dict(loss_fn=quad, params=TH, direction=TH.flip(0), alphas=ALPHAS, refine=True),
    loss_fn=CALL,
    params=VEC,
    direction=VEC,
    alphas=T("type", "ndim", "nan", "inf", "empty"),
    refine=BOOL,
)
case(
    "curvature.quadratic_model",
    curvature.quadratic_model,
    lambda: dict(loss0=1.0, slope=-0.5, curvature=2.0, alphas=ALPHAS),
    loss0=REAL,
    slope=REAL,
    curvature=REAL,
    alphas=T("type", "numpy", "ndim", "nan", "inf", "empty", "int"),
)


def neg_curv(model: nn.Module) -> curvature.NegativeCurvature:
    objective = curvature.DatasetLoss(model, nn.functional.cross_entropy, (XB, YB))
    return curvature.NegativeCurvature(
        torch.optim.SGD(model.parameters(), lr=0.1), objective, torch.ones(objective.dim), every=1, until=2
    )


def neg_curv_step(closure: object) -> torch.Tensor:
    model = small_net()
    opt = neg_curv(model)
    if closure == "valid":
        closure = lambda: (model(XB) ** 2).mean()  # noqa: E731
    return opt.step(closure)


case(
    "curvature.NegativeCurvature",
    lambda base, **kw: curvature.NegativeCurvature(base, **kw),
    lambda: (
        lambda m: dict(
            base=torch.optim.SGD(m.parameters(), lr=0.1),
            objective=curvature.DatasetLoss(m, nn.functional.cross_entropy, (XB, YB)),
            start=THETA.clone(),
            every=2,
            until=4,
            first=1,
            refresh=3,
            displacements=[0.1, 1.0],
            generator=g(),
        )
    )(small_net()),
    finite=False,
    base=Kind(lambda v: st.sampled_from([0, "sgd", small_net()])),
    objective=CALL,
    start=T("type", "numpy", "ndim", "empty", "width"),
    every=Int(),
    until=Int(0),
    first=Int(0),
    refresh=Int(),
    displacements=T("type", "ndim", "nan", "empty", "range", out=(-0.5, 0.0)),
    generator=GEN,
)
case("NegativeCurvature.step", neg_curv_step, lambda: dict(closure="valid"), closure=CALL)
case(
    "NegativeCurvature.check",
    lambda **kw: neg_curv(small_net()).check(**kw),
    lambda: dict(generator=g(), tol=1e-3),
    generator=Kind(lambda v: st.sampled_from([0, "seed", None])),
    tol=POS,
)
case(
    "curvature.gradient_equivalents",
    curvature.gradient_equivalents,
    lambda: dict(steps=10, hvps=2, evaluations=3, batch_size=32, objective_size=400),
    steps=POS0,
    hvps=POS0,
    evaluations=POS0,
    batch_size=Int(),
    objective_size=Int(),
)
# conditioning -----------------------------------------------------------------------------------------
case(
    "conditioning.gradient_descent_steps",
    conditioning.gradient_descent_steps,
    lambda: dict(eigenvalues=DIAG, lr=0.3, tol=1e-3, max_steps=100),
    eigenvalues=T(*F, "range"),  # "range" puts a negative eigenvalue: not a bowl
    lr=POS,
    tol=POS,
    max_steps=Int(),
)


# sharpness --------------------------------------------------------------------------------------------
case(
    "sharpness.preconditioned_sharpness",
    sharpness.preconditioned_sharpness,
    lambda: dict(hvp=lambda u: DIAG * u, diagonal=DIAG, tol=1e-6, generator=g()),
    hvp=CALL,
    diagonal=T(*F),
    tol=POS,
    generator=GEN,
)
case(
    "sharpness.rmsprop_checkpoints",
    sharpness.rmsprop_checkpoints,
    lambda: dict(model=small_net(), x=XB, y=YB, steps=2, save_at=[1, 2], seed=0, lr=0.1, batch_size=2),
    finite=False,
    model=MODULE,
    expect={"x": "x|y"},
    x=T(*F, "rows"),
    y=LABELS,
    steps=Int(),
    save_at=Kind(lambda v: st.sampled_from([(0,), (1.5,), "1", 1, (3,)])),
    seed=Int(0),
    lr=POS,
    batch_size=Int(),
)
SLQ = spectral_density.stochastic_lanczos_quadrature(lambda v: DIAG * v, 6, steps=3, probes=2, generator=g())
case("SpectralDensity.cdf", lambda x: SLQ.cdf(x), lambda: dict(x=DIAG), x=T(*F))
case("SpectralDensity.moments", lambda order: SLQ.moments(order), lambda: dict(order=2), order=Int(0))
case(
    "SpectralDensity.smoothed",
    lambda grid, width: SLQ.smoothed(grid, width),
    lambda: dict(grid=DIAG, width=0.1),
    grid=T(*F),
    width=POS,
)
SLQ_KIND = Kind(lambda v: st.sampled_from([0, "slq", None, DIAG]))
case(
    "spectral_density.wasserstein_distance",
    spectral_density.wasserstein_distance,
    lambda: dict(density=SLQ, eigenvalues=DIAG),
    density=SLQ_KIND,
    eigenvalues=T(*F),
)
case(
    "spectral_density.moment_zscores",
    spectral_density.moment_zscores,
    lambda: dict(density=SLQ, eigenvalues=DIAG, orders=[1, 2]),
    density=SLQ_KIND,
    eigenvalues=T(*F),
    orders=Kind(lambda v: st.sampled_from([[1, -1], [1.5], "12", 3])),
)
case(
    "spectral_density.error_bound",
    spectral_density.error_bound,
    lambda: dict(steps=3, probes=2, dim=6, width=1.0),
    steps=Int(),
    probes=Int(),
    dim=Int(),
    width=POS,
)
Y2 = T("type", "numpy", "ndim", "empty", "float", "rows", "range", out=(-1,))  # labels of 2 classes
case(
    "curvature.checkpoint_spectrum",
    curvature.checkpoint_spectrum,
    lambda: dict(
        model=small_net(), theta=THETA, loss_fn=nn.functional.cross_entropy, data=(XB, YB), k=2, objective=DL
    ),
    finite=False,
    model=MODULE,
    theta=VEC,
    loss_fn=CALL,
    data=DATA,
    k=Int(),
    objective=Kind(lambda v: st.sampled_from([0, "objective", None, quad])),
)
case(
    "curvature.timed_run",
    lambda model, optimizer, **kw: curvature.timed_run(model, optimizer, **kw),
    lambda: (
        lambda m: dict(
            model=m,
            optimizer=torch.optim.SGD(m.parameters(), lr=0.1),
            x=XB,
            y=YB,
            eval_data=(XB, YB),
            steps=3,
            generator=g(),
            batch_size=2,
            eval_every=2,
            check_at=[],
        )
    )(small_net()),
    finite=False,
    model=MODULE,
    optimizer=Kind(lambda v: st.sampled_from([0, "sgd", None])),
    expect={"x": "x|y"},
    x=T(*F, "rows"),
    y=Y2,
    eval_data=Kind(lambda v: st.sampled_from([(XB,), "e", (XB.long(), YB), (XB, YB[:3]), (XB, YB.float())])),
    steps=Int(),
    generator=Kind(lambda v: st.sampled_from([0, "seed", None])),
    batch_size=Int(),
    eval_every=Int(),
    check_at=Kind(lambda v: st.sampled_from([[-1], "1", [1.5], [1]])),
)

# nets -----------------------------------------------------------------------------------------------
DTYPE = Kind(lambda v: st.sampled_from(["float64", torch.int64, 64, torch.bool]))
case(
    "nets.AutoEncoder",
    nets.AutoEncoder,
    lambda: dict(dim=2, hidden=3, tied=False, length_scale=1.0, seed=0, dtype=torch.float64),
    finite=False,
    dim=Int(),
    hidden=Int(),
    tied=BOOL,
    length_scale=POS,
    seed=Int(0),
    dtype=DTYPE,
)
AE = nets.AutoEncoder(2, 3, seed=0, dtype=torch.float64)
XNET = T("type", "numpy", "int", "width")  # the input of a forward: NaN and empty pass (see above)
for meth, width in (("encode", 2), ("decode", 3), ("forward", 2)):
    case(
        f"AutoEncoder.{meth}",
        lambda x, meth=meth: getattr(AE, meth)(x),
        lambda width=width: dict(x=x2(4, width)),
        expect={"x": "h"} if meth == "decode" else None,  # decode's argument is the code h
        x=XNET,
    )
case(
    "nets.MLP",
    nets.MLP,
    lambda: dict(sizes=[2, 3, 1], activation="tanh", seed=0, dtype=torch.float64),
    finite=False,
    sizes=Kind(lambda v: st.sampled_from([[2], [], [2, 0, 1], [2, -1], [2.5, 1], "23", 3])),
    activation=CHOICE,
    seed=Int(0),
    dtype=DTYPE,
)
MLP = nets.MLP([2, 3, 1], seed=0, dtype=torch.float64)
case(
    "MLP.forward",
    lambda x: MLP(x),
    lambda: dict(x=x2(4)),
    x=XNET,
)
case(
    "nets.DeepAutoEncoder",
    nets.DeepAutoEncoder,
    lambda: dict(dim=2, hidden=[3, 3], activation="tanh", seed=0, dtype=torch.float64),
    finite=False,
    dim=Int(),
    hidden=Kind(lambda v: st.sampled_from([[], [3, 0], [3.5], "3", 3])),
    activation=CHOICE,
)
DAE = nets.DeepAutoEncoder(2, (3, 3), seed=0, dtype=torch.float64)
case(
    "DeepAutoEncoder.forward",
    lambda x: DAE(x),
    lambda: dict(x=x2(4)),
    x=XNET,
)
case(
    "binary_nets.BernoulliDAE",
    binary_nets.BernoulliDAE,
    lambda: dict(
        n_vis=4, n_hid=3, input_noise=0.5, tied=False, activation="tanh", seed=0, dtype=torch.float64
    ),
    finite=False,
    n_vis=Int(),
    n_hid=Int(),
    input_noise=PROB,
    tied=BOOL,
    activation=CHOICE,
    seed=Int(0),
    dtype=DTYPE,
)
BD = binary_nets.BernoulliDAE(4, 3, seed=0, dtype=torch.float64)
BITS = (PIX[:, :4] > 0.5).double()
VIS = T("type", "numpy", "ndim", "nan", "inf", "int", "width", "range")  # a batch map: empty is fine
VISR = T(*F, "width", "range")  # a mean over the batch: empty is NaN
for meth in ("encode", "logits", "forward"):
    case(
        f"BernoulliDAE.{meth}",
        lambda x_tilde, meth=meth: getattr(BD, meth)(x_tilde),
        lambda: dict(x_tilde=BITS),
        x_tilde=VIS,
    )
for meth in ("nll", "log_prob"):
    case(
        f"BernoulliDAE.{meth}",
        lambda x, x_tilde, meth=meth: getattr(BD, meth)(x, x_tilde),
        lambda: dict(x=BITS, x_tilde=BITS.flip(0)),
        x=T(*F, "width", "range", "rows"),
        x_tilde=VIS,
    )
case(
    "BernoulliDAE.sample",
    lambda x_tilde, generator: BD.sample(x_tilde, generator),
    lambda: dict(x_tilde=BITS, generator=g()),
    x_tilde=VIS,
    generator=GEN,
)
case(
    "BernoulliDAE.step",
    lambda x, generator: BD.step(x, generator),
    lambda: dict(x=BITS, generator=g()),
    x=VIS,
    generator=GEN,
)
case(
    "BernoulliDAE.loss",
    lambda x, generator, walkback_steps: BD.loss(x, generator, walkback_steps=walkback_steps),
    lambda: dict(x=BITS, generator=g(), walkback_steps=2),
    x=VISR,
    generator=GEN,
    walkback_steps=Int(),
)
case(
    "binary_nets.DeepGSN",
    binary_nets.DeepGSN,
    lambda: dict(
        layer_sizes=[4, 3, 2],
        sigma_hidden=2.0,
        input_noise=0.4,
        noiseless_h1=True,
        seed=0,
        dtype=torch.float64,
    ),
    finite=False,
    layer_sizes=Kind(lambda v: st.sampled_from([[4], [], [4, 0], [4, 2.5], "43", 4])),
    sigma_hidden=POS0,
    input_noise=PROB,
    noiseless_h1=BOOL,
    seed=Int(0),
    dtype=DTYPE,
)
GSN = binary_nets.DeepGSN([4, 3, 2], seed=0, dtype=torch.float64)
case("DeepGSN.init_state", lambda x: GSN.init_state(x), lambda: dict(x=BITS), x=VIS)
case(
    "DeepGSN.step",
    lambda state, generator, noisy, sample_x: GSN.step(state, generator, noisy=noisy, sample_x=sample_x),
    lambda: dict(state=GSN.init_state(BITS), generator=g(), noisy=True, sample_x=True),
    state=Kind(lambda v: st.sampled_from([v[:1], v[0], [s.float() for s in v], [s[:, :1] for s in v], "s"])),
    generator=GEN,
    noisy=BOOL,
    sample_x=BOOL,
)
case(
    "DeepGSN.walkback_loss",
    lambda x, generator, n_steps: GSN.walkback_loss(x, generator, n_steps=n_steps),
    lambda: dict(x=BITS, generator=g(), n_steps=2),
    x=VISR,
    generator=GEN,
    n_steps=Int(),
)
case(
    "binary_nets.ScaledHead",
    binary_nets.ScaledHead,
    lambda: dict(n_steps=3, dtype=torch.float64),
    finite=False,
    n_steps=Int(),
    dtype=DTYPE,
)
SH = binary_nets.ScaledHead(3, dtype=torch.float64)
case(
    "ScaledHead.log_prob",
    lambda x, logits, step: SH.log_prob(x, logits, step),
    lambda: dict(x=BITS, logits=BITS - 0.5, step=1),
    x=VIS,
    logits=T("type", "numpy", "ndim", "nan", "inf", "empty", "int", "width", "rows"),
    step=Kind(lambda v: st.sampled_from([1.5, "1", -1, 3, 10])),
)
case(
    "chains.gaussian_dae_step",
    chains.gaussian_dae_step,
    lambda: dict(r=AE, x=x2(3), sigma=0.3, s=0.1, generator=g()),
    r=CALL,
    x=T(*F, "width"),
    sigma=POS0,
    s=POS0,
    generator=GEN,
)
case(
    "chains.log_density_difference",
    chains.log_density_difference,
    lambda: dict(
        log_reconstruction=lambda x, xt: -((x - xt) ** 2).sum(1),
        log_corruption=lambda xt, x: -((x - xt) ** 2).sum(1),
        x1=x2(3),
        x2=x2(3, seed=1),
        x_tilde=(x2(3) + x2(3, seed=1)) / 2,
    ),
    log_reconstruction=CALL,
    log_corruption=CALL,
    x1=T("type", "nan", "empty", "width"),
    x2=T("type", "nan", "width"),
    x_tilde=T("type", "nan", "rows"),
)
case(
    "train.gaussian_walkback_loss",
    train.gaussian_walkback_loss,
    lambda: dict(r=AE, x=x2(3), sigma=0.3, s=0.1, generator=g(), walkback_steps=2),
    r=CALL,
    x=T(*F, "width"),
    sigma=POS,
    s=POS0,
    generator=GEN,
    walkback_steps=Int(),
)
case(
    "diagnostics.spurious_fraction",
    diagnostics.spurious_fraction,
    lambda: dict(samples=x2(5), data=x2(4, seed=1), radius=0.5),
    samples=T(*F, "width"),
    data=T(*F, "width"),
    radius=POS,
)
case(
    "diagnostics.spurious_groups",
    diagnostics.spurious_groups,
    lambda: dict(ends=x2(5), data=x2(4, seed=1), delta=0.1, radius=0.5),
    ends=T(*F, "width"),
    data=T(*F, "width"),
    delta=POS,
    radius=POS,
)
case(
    "diagnostics.histogram_tv",
    diagnostics.histogram_tv,
    lambda: dict(samples=x2(5, 1), log_prob=lambda x: -0.5 * x[:, 0] ** 2, bins=GRID),
    samples=T("type", "numpy", "nan", "inf", "empty", "int"),
    log_prob=CALL,
    bins=T(*F),
)
case(
    "diagnostics.heavy_modes",
    diagnostics.heavy_modes,
    lambda: dict(q=torch.tensor([0.1, 0.3, 0.1, 0.4, 0.1], dtype=torch.float64), share=0.01),
    q=T(*F),
    share=PROB,
)
case(
    "evaluate.decoder_mixture_log_likelihood",
    evaluate.decoder_mixture_log_likelihood,
    lambda: dict(logits=x2(5, 4), test=BITS, batch_size=2),
    logits=T(*F, "width"),
    test=T(*F, "width", "range"),
    batch_size=Int(),
)
case(
    "evaluate.chain_samples",
    evaluate.chain_samples,
    lambda: dict(model=BD, x0=BITS, n_steps=2, generator=g(), burn_in=1),
    model=MODULE,
    x0=VIS,
    n_steps=Int(),
    generator=GEN,
    burn_in=Int(0),
)

# baselines ------------------------------------------------------------------------------------------
case(
    "baselines.GAN",
    baselines.GAN,
    lambda: dict(
        data_dim=2,
        noise_dim=2,
        generator_hidden=(4,),
        discriminator_hidden=(4,),
        activation="relu",
        output="linear",
        prior="gaussian",
        seed=0,
        dtype=torch.float64,
    ),
    finite=False,
    data_dim=Int(),
    noise_dim=Int(),
    generator_hidden=Kind(lambda v: st.sampled_from([(0,), (-1,), (2.5,), "4", 4])),
    discriminator_hidden=Kind(lambda v: st.sampled_from([(0,), (-1,), (2.5,), "4", 4])),
    activation=CHOICE,
    output=CHOICE,
    prior=CHOICE,
    seed=Int(0),
    dtype=DTYPE,
)
GAN = baselines.GAN(2, 2, generator_hidden=(4,), discriminator_hidden=(4,), dtype=torch.float64)
XG = T(*F, "width")
for meth in ("noise", "sample"):
    case(
        f"GAN.{meth}",
        lambda n, generator, meth=meth: getattr(GAN, meth)(n, generator),
        lambda: dict(n=3, generator=g()),
        n=Int(),
        generator=GEN,
    )
for meth, arg in (("generate", "z"), ("logits", "x"), ("discriminate", "x")):
    case(
        f"GAN.{meth}",
        lambda meth=meth, **kw: getattr(GAN, meth)(*kw.values()),
        lambda arg=arg: {arg: x2(3)},
        **{arg: XG},
    )
case("GAN.value", lambda x, z: GAN.value(x, z), lambda: dict(x=x2(3), z=x2(3, seed=1)), x=XG, z=XG)
case(
    "GAN.discriminator_loss",
    lambda x, z, detach: GAN.discriminator_loss(x, z, detach=detach),
    lambda: dict(x=x2(3), z=x2(3, seed=1), detach=True),
    x=XG,
    z=XG,
    detach=BOOL,
)
for meth in ("generator_loss", "generator_grad_norm"):
    case(
        f"GAN.{meth}",
        lambda z, kind, meth=meth: getattr(GAN, meth)(z, kind),
        lambda: dict(z=x2(3), kind="saturating"),
        z=XG,
        kind=CHOICE,
    )
case(
    "baselines.train_gan",
    baselines.train_gan,
    lambda: dict(
        gan=baselines.GAN(2, 2, generator_hidden=(4,), discriminator_hidden=(4,), dtype=torch.float64),
        data=x2(8),
        steps=2,
        k=1,
        generator_steps=1,
        batch_size=4,
        loss="non-saturating",
        lr=1e-3,
        betas=(0.5, 0.999),
        seed=0,
        progress=False,
    ),
    finite=False,
    gan=MODULE,
    data=T("type", "numpy", "nan", "inf", "empty", "int", "width"),
    steps=Int(),
    k=Int(),
    generator_steps=Int(),
    batch_size=Int(),
    loss=CHOICE,
    lr=POS,
    betas=Kind(lambda v: st.sampled_from([(0.5,), (1.5, 0.9), (-0.1, 0.9), (NAN, 0.9), 0.5, "ab"])),
    seed=Int(0),
    progress=BOOL,
)
case(
    "baselines.RBM",
    baselines.RBM,
    lambda: dict(n_vis=4, n_hid=3, weight_std=0.01, seed=0, dtype=torch.float64),
    finite=False,
    n_vis=Int(),
    n_hid=Int(),
    weight_std=POS0,
    seed=Int(0),
    dtype=DTYPE,
)
case(
    "baselines.random_rbm",
    baselines.random_rbm,
    lambda: dict(n_vis=4, n_hid=3, seed=0, weight_std=0.5, dtype=torch.float64),
    finite=False,
    n_vis=Int(),
    n_hid=Int(),
    seed=Int(0),
    weight_std=POS0,
    dtype=DTYPE,
)
RBM = baselines.RBM(4, 3, weight_std=0.5, dtype=torch.float64)
HID = (PIX[:, 3:6] > 0.5).double()
HBAD = VIS
case(
    "RBM.energy",
    lambda v, h: RBM.energy(v, h),
    lambda: dict(v=BITS, h=HID),
    v=T(*F, "width", "range", "rows"),
    h=HBAD,
)
for meth in ("free_energy", "hidden_probs", "log_prob"):
    case(f"RBM.{meth}", lambda v, meth=meth: getattr(RBM, meth)(v), lambda: dict(v=BITS), v=VIS)
case("RBM.visible_probs", lambda h: RBM.visible_probs(h), lambda: dict(h=HID), h=HBAD)
case(
    "RBM.sample_chain",
    lambda v0, n_steps, generator, return_means: RBM.sample_chain(
        v0, n_steps, generator, return_means=return_means
    ),
    lambda: dict(v0=BITS, n_steps=2, generator=g(), return_means=False),
    v0=VIS,
    n_steps=Int(),
    generator=GEN,
    return_means=BOOL,
)
case(
    "RBM.contrastive_divergence",
    lambda v, k, generator, chain: RBM.contrastive_divergence(v, k, generator, chain=chain),
    lambda: dict(v=BITS, k=1, generator=g(), chain=BITS.flip(0)),
    v=VIS,
    k=Int(),
    generator=GEN,
    chain=VIS,
)
case(
    "baselines.expected_cd_gradient",
    baselines.expected_cd_gradient,
    lambda: dict(rbm=RBM, data_pmf=torch.full((16,), 1 / 16, dtype=torch.float64), k=2),
    rbm=MODULE,
    data_pmf=T("type", "ndim", "nan", "inf", "empty", "width"),
    k=Int(),
)
case(
    "baselines.ais_log_partition",
    baselines.ais_log_partition,
    lambda: dict(rbm=RBM, n_betas=3, runs=4, generator=g()),
    rbm=MODULE,
    n_betas=Int(),
    runs=Int(),
    generator=GEN,
)
case(
    "baselines.train_rbm",
    baselines.train_rbm,
    lambda: dict(
        rbm=baselines.RBM(4, 3, dtype=torch.float64),
        data=BITS,
        steps=2,
        k=1,
        persistent=True,
        batch_size=2,
        lr=0.05,
        momentum=0.5,
        seed=0,
        progress=False,
    ),
    rbm=MODULE,
    data=VIS,
    steps=Int(),
    k=Int(),
    persistent=BOOL,
    batch_size=Int(),
    lr=POS,
    momentum=Real(low=0.0, high=1.0, strict=False),
    seed=Int(0),
    progress=BOOL,
)

# classifiers ----------------------------------------------------------------------------------------
case(
    "classifiers.MnistConvNet",
    classifiers.MnistConvNet,
    lambda: dict(channels=(2, 2), hidden=4, seed=0),
    finite=False,
    channels=Kind(lambda v: st.sampled_from([(2,), (0, 2), (2.5, 2), "22", 2])),
    hidden=Int(),
    seed=Int(0),
)
case(
    "classifiers.DeepMLP",
    classifiers.DeepMLP,
    lambda: dict(depth=3, width=4, n_in=5, skip_from=1, skip_to=2, aux_at=2, init="default", seed=0),
    finite=False,
    depth=Int(),
    width=Int(),
    n_in=Int(),
    skip_from=Int(),
    skip_to=Kind(lambda v: st.sampled_from([1.5, "2", 0, -1, 10])),
    aux_at=Kind(lambda v: st.sampled_from([1.5, "2", 0, -1, 10])),
    init=CHOICE,
    seed=Int(0),
)
case(
    "DeepMLP.forward_with_aux",
    lambda x, detach: classifiers.DeepMLP(3, 4, n_in=3, aux_at=2).forward_with_aux(x, detach=detach),
    lambda: dict(x=x2(4, 3).float(), detach=True),
    finite=False,
    x=T(*F, "width"),
    detach=BOOL,
)
case(
    "classifiers.SmallResNet",
    classifiers.SmallResNet,
    lambda: dict(channels=(2, 2, 2), blocks=1, seed=0),
    finite=False,
    channels=Kind(lambda v: st.sampled_from([(2, 2), (0, 2, 2), (2.5, 2, 2), "222", 2])),
    blocks=Int(),
    seed=Int(0),
)
IMG = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
IMGBAD = T("type", "numpy", "ndim", "nan", "inf", "int")
for name, net in (
    ("MnistConvNet", classifiers.MnistConvNet((2, 2), 4)),
    ("SmallResNet", classifiers.SmallResNet((2, 2, 2), 1)),
):
    case(f"{name}.forward", lambda x, net=net: net(x), lambda: dict(x=IMG), x=IMGBAD)
DMLP = classifiers.DeepMLP(3, 4, n_in=5)
case("DeepMLP.forward", lambda x: DMLP(x), lambda: dict(x=x2(3, 5).float()), x=T(*F, "width"))
case(
    "classifiers.fit_classifier",
    classifiers.fit_classifier,
    lambda: dict(
        model=classifiers.DeepMLP(2, 4, n_in=3),
        x=x2(6, 3).float(),
        y=YB,
        epochs=1,
        batch_size=3,
        optimizer="adam",
        lr=1e-3,
        seed=0,
        snapshot_steps=(1,),
        loss=None,
        progress=False,
    ),
    finite=False,
    model=MODULE,
    expect={"x": "x|y"},
    x=T(*F, "rows"),
    y=T("type", "numpy", "ndim", "empty", "float", "rows", "range", out=(-1,)),
    epochs=Int(),
    batch_size=Int(),
    optimizer=CHOICE,
    lr=POS,
    seed=Int(0),
    snapshot_steps=Kind(lambda v: st.sampled_from([(-1,), (1.5,), "1", 1])),
    loss=Kind(lambda v: st.sampled_from([0, "f"])),
    progress=BOOL,
)

case(
    "classifiers.recompute_batchnorm",
    classifiers.recompute_batchnorm,
    lambda: dict(model=classifiers.SmallResNet((2, 2, 2), 1), x=IMG, batch_size=1),
    finite=False,
    model=Kind(lambda v: st.sampled_from(["m", 3, None, classifiers.DeepMLP(2, 4, n_in=3)])),
    x=IMGBAD,
    batch_size=Int(),
)
case(
    "classifiers.lenet",
    classifiers.lenet,
    lambda: dict(channels=(2, 3), hidden=4, side=8, seed=0),
    finite=False,
    channels=Kind(lambda v: st.sampled_from([(2,), (2, 0), "ab", 2, (2, 1.5)])),
    hidden=Int(),
    side=Int(4),
    seed=Int(0),
)

case(
    "classifiers.fit_with_readings",
    classifiers.fit_with_readings,
    lambda: dict(
        make_model=lambda: classifiers.DeepMLP(2, 4, n_in=3),
        x=x2(6, 3).float(),
        y=YB,
        read=lambda m: 0.0,
        snapshot_steps=(0, 2),
        epochs=1,
        batch_size=3,
    ),
    finite=False,
    make_model=CALL,
    expect={"x": "x|y"},
    x=T(*F, "rows"),
    y=T("type", "numpy", "ndim", "empty", "float", "rows", "range", out=(-1,)),
    read=CALL,
    snapshot_steps=Kind(lambda v: st.sampled_from([(-1,), (1.5,), "1", 1, (3,)])),
)
# probes ---------------------------------------------------------------------------------------------
case(
    "probes.RandomSubset", probes.RandomSubset, lambda: dict(k=2, seed=0), finite=False, k=Int(), seed=Int(0)
)
case("RandomSubset.columns", lambda d: probes.RandomSubset(2).columns(d), lambda: dict(d=5), d=Int())
case("probes.Pool2d", probes.Pool2d, lambda: dict(size=2), finite=False, size=Int())
LAYERS = Kind(lambda v: st.sampled_from([[], ["nope"], "0", [0], None]))
case(
    "probes.capture",
    probes.capture,
    lambda: dict(model=small_net(), x=XB, layers=["0", "2"], batch_size=4),
    model=MODULE,
    x=T(*F, "width"),
    layers=LAYERS,
    batch_size=Int(),
)
FEATS = {"a": x2(8, 3), "b": x2(8, 2, seed=1)}
YP = torch.tensor([0, 1, 1, 0, 1, 0, 0, 1])
case(
    "probes.fit_probes",
    probes.fit_probes,
    lambda: dict(
        features=FEATS,
        labels=YP,
        n_classes=2,
        l2=1e-3,
        epochs=2,
        batch_size=4,
        lr=0.01,
        patience=2,
        standardize=True,
        seed=0,
        solver="adam",
        init={"a": (x2(2, 3), x2(1, 2)[0])},
        progress=False,
    ),
    finite=False,
    features=Kind(
        lambda v: st.sampled_from(
            [
                {},
                {"a": XB[:3]},
                {"a": x2(8, 3).long()},
                {"a": torch.full((8, 2), NAN)},
                [x2(8)],
                "f",
                {"a": x2(8)[0]},
            ]
        )
    ),
    labels=T("type", "numpy", "ndim", "empty", "float", "rows", "range", out=(-1, 2)),
    n_classes=Int(),
    l2=POS0,
    epochs=Int(),
    batch_size=Int(),
    lr=POS,
    patience=Int(),
    standardize=BOOL,
    seed=Int(0),
    solver=CHOICE,
    init=Kind(
        lambda v: st.sampled_from(
            [
                "w",
                {"nope": v["a"]},
                {"a": v["a"][0]},
                {"a": (v["a"][0][:, :2], v["a"][1])},
                {"a": (v["a"][0], x2(3))},
            ]
        )
    ),
    progress=BOOL,
)


@functools.cache
def probe_results() -> dict:
    return probes.fit_probes(FEATS, YP, (FEATS, YP), (FEATS, YP), epochs=2)


case(
    "probes.errors",
    lambda results, split: probes.errors(results, split),
    lambda: dict(results=probe_results(), split="test"),
    results=Kind(lambda v: st.sampled_from([[], "r", 3, {"a": 1}])),
    split=CHOICE,
)
case(
    "ProbeResult.logits",
    lambda h: probe_results()["a"].logits(h),
    lambda: dict(h=x2(4, 3)),
    h=T(*F, "width"),
)
SPLIT = Kind(lambda v: st.sampled_from([(XB,), "split", [XB, YB], (XB, YB, YB)]))
case(
    "probes.layer_readings",
    probes.layer_readings,
    lambda: dict(
        model=small_net(),
        layers=["0", "2"],
        train=(XB, YB),
        valid=(XB, YB),
        test=(XB, YB),
        patience=2,
        solver="adam",
    ),
    finite=False,
    model=MODULE,
    layers=LAYERS,
    train=SPLIT,
    valid=SPLIT,
    test=SPLIT,
    patience=Int(),
    solver=CHOICE,
)
case(
    "probes.hooks_are_exact",
    probes.hooks_are_exact,
    lambda: dict(model=small_net(), x=XB, y=YB, layers=["0", "2"]),
    finite=False,
    model=MODULE,
    expect={"x": "x|y"},
    x=T(*F, "rows"),
    y=T("type", "numpy", "ndim", "empty", "rows"),
    layers=LAYERS,
)
case(
    "probes.monotonicity_violations",
    probes.monotonicity_violations,
    lambda: dict(values=[0.1, 0.2, 0.15], tol=0.01),
    values=Kind(lambda v: st.sampled_from([[0.1, NAN], "abc", 3, [[0.1]], [0.1, INF]])),
    tol=POS0,
)

# ablation -------------------------------------------------------------------------------------------
SKIP_NET = classifiers.DeepMLP(3, 4, n_in=3, skip_to=2)
case(
    "ablation.ablation_errors",
    ablation.ablation_errors,
    lambda: dict(
        model=SKIP_NET, layer="branch", x=x2(6, 3).float(), y=YB, reference=x2(4, 3).float(), batch_size=4
    ),
    finite=False,
    model=MODULE,
    layer=Kind(lambda v: st.sampled_from(["nope", 3, None])),
    expect={"x": "x|y"},
    x=T(*F, "width"),
    y=T("type", "numpy", "ndim", "empty", "float", "rows", "range", out=(-1,)),
    reference=T(*F, "width"),
    batch_size=Int(),
)
case(
    "ablation.dead_segment_failures",
    ablation.dead_segment_failures,
    lambda: dict(
        with_skip={"model": 0.2},
        without_skip_error=0.9,
        ablation={"intact": 0.2, "zero": 0.2, "mean": 0.2},
        bypassed=[0.9],
        chance=0.9,
        gain=0.3,
        probe_tol=0.05,
        ablation_tol=0.02,
    ),
    finite=False,
    with_skip=Kind(lambda v: st.sampled_from([{}, 0.2, {"model": 1.5}, {"model": NAN}])),
    without_skip_error=PROB,
    ablation=Kind(lambda v: st.sampled_from([{}, 0.2, {"intact": 0.2}])),
    bypassed=Kind(lambda v: st.sampled_from([[], "a", 0.9, [1.5], [NAN]])),
    chance=PROB,
    gain=PROB,
    probe_tol=PROB,
    ablation_tol=PROB,
)

# convexity ------------------------------------------------------------------------------------------
PROBE_THETA = x2(2, 4)
case(
    "convexity.strong_convexity",
    convexity.strong_convexity,
    lambda: dict(x=XB, y=YB, theta=PROBE_THETA, l2=1e-3),
    expect={"x": "x|y"},
    x=T(*F, "width"),
    y=T("type", "numpy", "ndim", "empty", "float", "rows", "range", out=(-1, 2)),
    theta=T(*F, "width"),
    l2=POS0,
)
case(
    "convexity.mlp_probe",
    lambda **kw: convexity.mlp_probe(**kw)[1:],
    lambda: dict(x=XB, y=YB, hidden=3, n_classes=2, l2=1e-3, seed=0, tol=1e-4, max_iter=3),
    expect={"x": "x|y"},
    x=T(*F, "rows"),
    y=T("type", "numpy", "ndim", "empty", "float", "rows", "range", out=(-1, 2)),
    hidden=Int(),
    n_classes=Int(2),
    l2=POS0,
    seed=Int(0),
    tol=POS,
    max_iter=Int(),
)
P32 = torch.full((3, 2), 0.5)
case(
    "convexity.same_optimum_failures",
    convexity.same_optimum_failures,
    lambda: dict(
        objective=(1.0, 1.0),
        probabilities=(P32, P32),
        objective_tol=1e-3,
        probability_tol=1e-3,
        parameters=(PROBE_THETA, PROBE_THETA),
        parameter_tol=1e-3,
    ),
    finite=False,
    objective=Kind(lambda v: st.sampled_from([1.0, (1.0,), (1.0, NAN), ("a", 1.0)])),
    probabilities=Kind(lambda v: st.sampled_from([P32, (P32,), (P32, P32[:2]), (P32, "p"), (P32, P32[0])])),
    objective_tol=POS0,
    probability_tol=POS0,
    parameters=Kind(
        lambda v: st.sampled_from(
            [PROBE_THETA, (PROBE_THETA,), (PROBE_THETA, PROBE_THETA[:1]), (PROBE_THETA, "t")]
        )
    ),
    parameter_tol=POS0,
)
case("convexity.centred", convexity.centred, lambda: dict(theta=PROBE_THETA), theta=T(*F))
case(
    "convexity.bounds",
    convexity.bounds,
    lambda: dict(grad_norms=(1e-4, 1e-4), mu=0.01, feature_norm=3.0),
    grad_norms=Kind(lambda v: st.sampled_from([1e-4, (1e-4,), (1e-4, -1.0), (1e-4, NAN)])),
    mu=POS,
    feature_norm=POS,
)

# auxiliary ------------------------------------------------------------------------------------------
case(
    "auxiliary.head_loss",
    lambda **kw: auxiliary.head_loss(**kw)(classifiers.DeepMLP(3, 4, n_in=3, aux_at=2), torch.tensor([0, 2])),
    lambda: dict(x=x2(6, 3).float(), y=YB, weight=0.3, targets=YB, detach=False),
    expect={"x": "x|y"},
    x=T(*F, "width"),
    y=T("type", "numpy", "ndim", "empty", "float", "rows", "range", out=(-1,)),
    weight=POS,
    targets=T("type", "numpy", "ndim", "empty", "float", "rows", "range", out=(-1,)),
    detach=BOOL,
)
READ = {0: {"valid": [0.5, 0.4], "model_valid": 0.9, "aux_valid": 0.8}}
case(
    "auxiliary.leading_failures",
    auxiliary.leading_failures,
    lambda: dict(with_head=READ, without_head=READ, below=[1], steps=[0], margin=0.05),
    finite=False,
    expect={"below": "below|with_head", "steps": "steps|with_head"},  # a layer or step the readings lack
    with_head=Kind(lambda v: st.sampled_from([[], "r", {1: READ[0]}, {0: {"valid": [0.5]}}])),
    without_head=Kind(lambda v: st.sampled_from([[], "r", {1: READ[0]}, {0: {"valid": [0.5]}}])),
    below=Kind(lambda v: st.sampled_from([[-1], "1", 1, [1.5], [5]])),
    steps=Kind(lambda v: st.sampled_from([[-1], "0", 0, [0.5], [3]])),
    margin=PROB,
)

PIX = torch.rand(3, 16, generator=g())
case("probes.scramble", probes.scramble, lambda: dict(pixels=PIX, seed=0), pixels=T(*F, "width"), seed=Int(0))
case(
    "probes.unscramble",
    probes.unscramble,
    lambda: dict(bits=probes.scramble(PIX), seed=0),
    bits=T(*F, "width", "range"),
    seed=Int(0),
)

# score ----------------------------------------------------------------------------------------------
RFN = lambda x: 0.9 * x  # noqa: E731
SCF = lambda x: -x  # noqa: E731
case("score.dae_score", score.dae_score, lambda: dict(r=RFN, x=x2(3), sigma=0.3), r=CALL, x=T(*FA), sigma=POS)
case(
    "score.reconstruction_jacobian",
    score.reconstruction_jacobian,
    lambda: dict(r=RFN, x=x2(3), chunk_size=2),
    r=CALL,
    x=T(*F),
    chunk_size=Int(),
)
case(
    "score.log_density_hessian",
    score.log_density_hessian,
    lambda: dict(r=RFN, x=x2(3), sigma=0.3, chunk_size=2),
    r=CALL,
    x=T(*F),
    sigma=POS,
    chunk_size=Int(),
)
case(
    "score.energy_difference",
    score.energy_difference,
    lambda: dict(score_fn=SCF, x=x2(3), x_star=x2(3, seed=1), n=4, rule="trapezoid"),
    score_fn=CALL,
    x=T(*F, "width", "rows"),
    x_star=T(*F, "width", "rows"),
    n=Int(),
    rule=CHOICE,
)
case(
    "score.metropolis_hastings",
    score.metropolis_hastings,
    lambda: dict(score_fn=SCF, x0=x2(3), n_steps=2, step_size=0.3, generator=g(), n_path=4),
    score_fn=CALL,
    x0=T(*F),
    n_steps=Int(),
    step_size=POS,
    generator=GEN,
    n_path=Int(),
)
DEN = torch.exp(-0.5 * GRID**2)
case(
    "score.rcae_1d",
    score.rcae_1d,
    lambda: dict(grid=GRID, density=DEN, sigma=0.3),
    grid=T("type", "numpy", "ndim", "nan", "inf", "empty", "int", "width"),
    density=T("type", "numpy", "ndim", "nan", "inf", "empty", "int", "width", "range", out=(-1.0,)),
    sigma=POS,
)
case(
    "score.dae_1d",
    score.dae_1d,
    lambda: dict(grid=GRID, density=DEN, sigma=0.3, query=GRID[:5]),
    grid=T("type", "numpy", "ndim", "nan", "inf", "empty", "int", "width"),
    density=T("type", "numpy", "ndim", "nan", "inf", "empty", "int", "width", "range", out=(-1.0,)),
    sigma=POS,
    query=T("type", "numpy", "nan", "inf", "int"),
)
case(
    "score.rcae_1d_limit",
    score.rcae_1d_limit,
    lambda: dict(grid=GRID, density=DEN),
    grid=T("type", "numpy", "ndim", "nan", "inf", "empty", "int", "width"),
    density=T("type", "numpy", "ndim", "nan", "inf", "empty", "int", "width", "range", out=(-1.0,)),
)
case(
    "score.fixed_points_1d",
    score.fixed_points_1d,
    lambda: dict(r=lambda v: 0.5 * v + 0.1, grid=GRID),
    r=CALL,
    grid=T("type", "numpy", "ndim", "nan", "inf", "empty", "int"),
)
LOGP = lambda x: -0.5 * (x**2).sum(-1)  # noqa: E731
case(
    "score.local_mean_1d",
    score.local_mean_1d,
    lambda: dict(log_prob=LOGP, x0=torch.tensor([0.3, -0.2], dtype=torch.float64), delta=0.2, n_nodes=8),
    log_prob=CALL,
    x0=T("type", "numpy", "nan", "inf", "int"),
    delta=POS,
    n_nodes=Int(),
)
case(
    "score.local_mean_mc",
    score.local_mean_mc,
    lambda: dict(
        log_prob=LOGP,
        x0=torch.tensor([0.3, -0.2], dtype=torch.float64),
        delta=0.2,
        n_samples=50,
        generator=g(),
    ),
    log_prob=CALL,
    x0=T("type", "numpy", "nan", "inf", "int", "empty"),
    delta=POS,
    n_samples=Int(),
    generator=GEN,
)

case(
    "score.denoising_chain",
    score.denoising_chain,
    lambda: dict(r=RFN, x0=x2(3), n_steps=2),
    r=CALL,
    x0=T(*F),
    n_steps=Int(),
)
# train ----------------------------------------------------------------------------------------------
case(
    "train.train_loop",
    lambda loss_fn, params, **kw: train.train_loop(loss_fn, params, **kw),
    lambda: (
        lambda m: dict(
            loss_fn=lambda: (m(x2(3, 3)) ** 2).mean(),
            params=m,
            steps=2,
            optimizer="adam",
            lr=1e-3,
            progress=False,
            desc="t",
            check_every=1,
        )
    )(small_net().float().double()),
    finite=False,
    loss_fn=CALL,
    params=Kind(lambda v: st.sampled_from([0, "p", [], [torch.zeros(2)]])),
    steps=Int(),
    optimizer=CHOICE,
    lr=POS,
    progress=BOOL,
    desc=Kind(lambda v: st.sampled_from([0, None, b"d"])),
    check_every=Int(),
)
case(
    "train.classifier_checkpoints",
    train.classifier_checkpoints,
    lambda: dict(
        model=small_net(), x=XB, y=YB, steps=2, save_at=[0, 2], seed=0, optimizer="sgd", lr=0.1, batch_size=2
    ),
    finite=False,
    model=MODULE,
    expect={"x": "x|y"},
    x=T(*F, "rows"),
    y=LABELS,
    steps=Int(),
    save_at=Kind(lambda v: st.sampled_from([(-1,), (1.5,), "1", 1, (3,)])),
    seed=Int(0),
    optimizer=CHOICE,
    lr=POS,
    batch_size=Int(),
)
case(
    "train.dae_loss",
    train.dae_loss,
    lambda: dict(r=RFN, noisy=x2(3), clean=x2(3, seed=1)),
    r=CALL,
    noisy=T(*FA, "width"),
    clean=T(*FA, "width", "rows"),
)
case(
    "train.dsm_loss",
    train.dsm_loss,
    lambda: dict(psi=RFN, noisy=x2(3), clean=x2(3, seed=1), sigma=0.3),
    psi=CALL,
    noisy=T(*FA, "width"),
    clean=T(*FA, "width", "rows"),
    sigma=POS,
)
case(
    "train.fit_decoder_least_squares",
    train.fit_decoder_least_squares,
    lambda: dict(
        net=nets.AutoEncoder(2, 3, seed=0, dtype=torch.float64),
        inputs=x2(6),
        targets=x2(6, seed=1),
        ridge=1e-8,
    ),
    finite=False,
    net=Kind(lambda v: st.sampled_from([None, "net", nets.AutoEncoder(2, 3, tied=True)])),
    inputs=T(*FA, "width"),
    targets=T(*FA, "width", "rows"),
    ridge=POS0,
)
FIT = dict(
    hidden=8,
    steps=2,
    seed=0,
    tied=False,
    length_scale=1.0,
    optimizer="adam",
    lr=1e-3,
    batch_size=4,
    fixed_noise=True,
    n_noise=2,
    progress=False,
    return_history=False,
)
FIT_KINDS = dict(
    samples=T(*F),
    steps=Int(),
    seed=Int(0),
    tied=BOOL,
    length_scale=POS,
    optimizer=CHOICE,
    lr=POS,
    batch_size=Int(),
    fixed_noise=Kind(lambda v: st.sampled_from([1, "yes"])),
    n_noise=Int(),
    progress=BOOL,
    return_history=BOOL,
)
case(
    "train.fit_dae",
    train.fit_dae,
    lambda: dict(samples=x2(8), sigma=0.3, **FIT),
    finite=False,
    sigma=POS,
    hidden=Kind(lambda v: st.sampled_from([0, -1, 2.5, "8", [8, 0]])),
    **FIT_KINDS,
)
case(
    "train.fit_dae_ensemble",
    train.fit_dae_ensemble,
    lambda: dict(
        samples=x2(8), sigmas=[0.3, 0.5], **{**{k: v for k, v in FIT.items() if k != "seed"}, "seeds": [0, 1]}
    ),
    finite=False,
    sigmas=Kind(lambda v: st.sampled_from([[], [0.3, -0.1], [NAN], "0.3", [0.3, INF]])),
    hidden=Int(),
    seeds=Kind(lambda v: st.sampled_from([[0], [0, 1.5], "01", [0, -1]])),
    **{k: v for k, v in FIT_KINDS.items() if k != "seed"},
)
case(
    "train.fit_noise_mixture_dae",
    train.fit_noise_mixture_dae,
    lambda: dict(
        samples=x2(8),
        noise_levels=[0.1, 0.3],
        hidden=4,
        steps=2,
        seed=0,
        noise_seed=1,
        lr=1e-3,
        batch_size=4,
        progress=False,
    ),
    finite=False,
    samples=T(*F),
    noise_levels=Kind(lambda v: st.sampled_from([[], [0.1, -0.5], [NAN], "0.1", 0.3, [0.1, INF]])),
    hidden=Int(),
    steps=Int(),
    seed=Int(0),
    noise_seed=Int(0),
    lr=POS,
    batch_size=Int(),
    progress=BOOL,
)

# small helpers --------------------------------------------------------------------------------------
case(
    "plots.grid_2d",
    plots.grid_2d,
    lambda: dict(xlim=(-1.0, 1.0), ylim=(0.0, 2.0), n=4),
    xlim=Kind(lambda v: st.sampled_from([(1.0, -1.0), (0.0,), (NAN, 1.0), "ab", 1.0])),
    ylim=Kind(lambda v: st.sampled_from([(1.0, 1.0), (0.0, INF), "ab", None])),
    n=Int(2),
)
case("runtime.generator", runtime.generator, lambda: dict(seed=0), finite=False, seed=Int(0))
case(
    "cache.key",
    cache.key,
    lambda: dict(name="m", config={"a": 1}),
    finite=False,
    name=Kind(lambda v: st.sampled_from([0, None, ""])),
    config=Kind(lambda v: st.sampled_from([[], "c", None])),
)
case(
    "cache.sha256",
    cache.sha256,
    lambda: dict(data=b"ab"),
    finite=False,
    data=Kind(lambda v: st.sampled_from(["ab", 3, None])),
)
case(
    "stores.parse_store_url",
    stores.parse_store_url,
    lambda: dict(url="tcp://127.0.0.1:29500"),
    expect={"url": "store"},  # run_distributed's argument, which it parses
    finite=False,
    url=Kind(lambda v: st.sampled_from([3, None, "ftp://a:1", "tcp://a", "tcp://a:-1", "tcp://a:x", ""])),
)
case(
    "distributed.default_shards",
    distributed.default_shards,
    lambda: dict(n=100, workers=2),
    n=Int(),
    workers=Int(0),
)
case(
    "distributed.shard_bounds",
    distributed.shard_bounds,
    lambda: dict(n=10, n_shards=3),
    finite=False,
    n=Int(),
    n_shards=Int(),
)


# ------------------------------------------------------------------------------------------------ tests
ROWS = [(c, arg) for c in CASES for arg in c.kinds]
ROW_PARAMS = [pytest.param(c, arg, id=f"{c.name}-{arg}") for c, arg in ROWS]


def _finite(out: object) -> bool:
    """Every number in ``out`` (tensors, floats, nested tuples/lists/dicts) is finite."""
    if isinstance(out, torch.Tensor):
        return not out.is_floating_point() or bool(torch.isfinite(out).all())
    if isinstance(out, float):
        return math.isfinite(out)
    if isinstance(out, (tuple, list)):
        return all(_finite(o) for o in out)
    if isinstance(out, dict):
        return all(_finite(o) for o in out.values())
    return True


@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_valid_call_is_finite(c: Case) -> None:
    out = c.call(**c.valid())
    if c.finite:
        assert _finite(out)


@pytest.mark.parametrize(("c", "arg"), ROW_PARAMS)
@FUZZ
@given(data=st.data())
def test_bad_argument_is_named(c: Case, arg: str, data: st.DataObject) -> None:
    kwargs = c.valid()
    kwargs[arg] = data.draw(c.kinds[arg].bad(kwargs[arg]), label=arg)
    name = (c.expect or {}).get(arg, re.escape(arg))
    with pytest.raises((ValueError, TypeError), match=rf"(?<![A-Za-z0-9_])({name})(?![A-Za-z0-9_])"):
        c.call(**kwargs)
