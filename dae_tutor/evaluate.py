"""Parzen-window log-likelihood: the evaluation protocol of the GSN, GDAE and GAN papers.

A Gaussian kernel of width σ is put on each of N generated samples s_i, and a test point x
gets the mixture's log-density (GAN paper §5; GSN paper §4; thesis §5.5)::

    log p̂(x) = logsumexp_i(−‖x − s_i‖² / 2σ²) − log N − (d/2) log(2πσ²)

σ is chosen on a validation split from a grid (:data:`PAPERS_SIGMA_GRID` for MNIST in the
papers' code), and the score is the mean over test points ± its standard error: the whole
protocol is :func:`parzen_score`, and :func:`protocol_scores` scores the same centres under the GAN
paper's real-valued and the GDAE/GSN papers' binarised MNIST protocols;
:func:`diagonal_gaussian_log_likelihood` shows the constant-pixel pathology of DL book §20.14.
Everything is computed in float64 and in the log domain, in chunks of ``batch_size`` test points:
the memory budget is ``batch_size × N`` squared distances at once (by default at most
:data:`DEFAULT_MAX_ELEMENTS`, 128 MiB).

Sample diagnostics: :func:`nearest_neighbours` (the memorisation check of GAN Fig. 2's right
column) and :func:`mode_coverage` (modes hit and share of good samples on a 2-D mixture); the
centres of a Markov-chain model are its consecutive samples, :func:`chain_samples`.

The thesis's other estimator (§5.5.1), :func:`decoder_mixture_log_likelihood`, replaces the Gaussian
kernel by the model's own factorized decoder: log P̂(x) = log mean_j P(x | x̃_j) over consecutive chain
states x̃_j, a conservative (lower, in expectation) estimate of the chain's stationary law.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from dae_tutor import checks, data

DEFAULT_MAX_ELEMENTS = 2**24  # squared distances held at once by default (128 MiB in float64)

#: The σ grid of the papers' MNIST protocol: ``numpy.logspace(-1, 0, 10)`` in the GAN paper's
#: parzen_ll.py, written with numpy's own arithmetic (10 ** (start + k · step)) so the values are equal.
PAPERS_SIGMA_GRID = tuple(10.0 ** (-1 + k * (1 / 9)) for k in range(10))


def _points(name: str, value: object) -> torch.Tensor:
    t = checks.tensor(name, value, ndim=2)
    if len(t) == 0:
        raise ValueError(f"{name} must hold at least one point, got shape {tuple(t.shape)}")
    return t


def _pair(
    samples: object, test: object, batch_size: object, names: tuple[str, str] = ("samples", "test")
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Checked (samples, test) on test's device in their promoted dtype, and the rows per chunk."""
    samples = _points(names[0], samples)
    test = _points(names[1], test)
    if samples.shape[1] != test.shape[1]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same dimension, "
            f"got {samples.shape[1]} and {test.shape[1]}"
        )
    if batch_size is None:
        batch_size = max(1, DEFAULT_MAX_ELEMENTS // len(samples))
    dtype = torch.promote_types(samples.dtype, test.dtype)
    return (
        samples.to(device=test.device, dtype=dtype),
        test.to(dtype),
        checks.positive_int("batch_size", batch_size),
    )


def _squared_distances(chunk: torch.Tensor, samples: torch.Tensor, sample_sq: torch.Tensor) -> torch.Tensor:
    """‖x − s‖² for a chunk of test points against all samples: ‖x‖² + ‖s‖² − 2 x·s, clamped at 0."""
    return (chunk.pow(2).sum(1, keepdim=True) + sample_sq - 2 * chunk @ samples.T).clamp_min(0)


def parzen_log_likelihood(
    samples: torch.Tensor,
    test: torch.Tensor,
    sigma: float,
    *,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Per-test-point log p̂(x) of the Gaussian Parzen window on ``samples`` (shape ``[N, d]``).

    ``test`` is ``[M, d]``; returns ``[M]`` on ``test``'s device, in the promoted dtype of ``samples``
    and ``test`` (``torch.promote_types``: float64 samples are never rounded to float32 test points).
    The arithmetic is float64 whatever the inputs: in float32 the expansion ‖x‖² + ‖s‖² − 2 x·s loses
    3e-3 nats on MNIST at σ = 0.1 and 0.15 nats when x is one of the samples (σ = 0.02), 10 to 1000
    times the GAN paper's code (direct differences); in float64 it gives the exact value rounded to
    the output dtype.
    ``batch_size`` test points are scored at once (one matmul each), so ``batch_size × N`` squared
    distances are held in memory; the default keeps that under :data:`DEFAULT_MAX_ELEMENTS`.
    """
    samples, test, rows = _pair(samples, test, batch_size)
    return _parzen(samples, test, checks.positive_float("sigma", sigma), rows)


def _parzen(samples: torch.Tensor, test: torch.Tensor, sigma: float, rows: int) -> torch.Tensor:
    """:func:`parzen_log_likelihood` of checked arguments."""
    n, d = samples.shape
    samples = samples.double()
    sample_sq = samples.pow(2).sum(1)
    constant = math.log(n) + 0.5 * d * math.log(2 * math.pi * sigma**2)
    out = torch.empty(len(test), dtype=test.dtype, device=test.device)
    for start in range(0, len(test), rows):
        sq = _squared_distances(test[start : start + rows].double(), samples, sample_sq)
        out[start : start + rows] = torch.logsumexp(sq.mul_(-0.5 / sigma**2), dim=1) - constant
    return out


def nearest_neighbours(
    queries: torch.Tensor, reference: torch.Tensor, *, batch_size: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean distance from each query to its nearest ``reference`` point, and that point's index.

    The memorisation check of GAN Fig. 2 (right column: "the nearest training example of the
    neighboring sample"): samples that sit at distance ~0 from a training example are copies.
    Returns ``(distances [M], indices [M])`` on ``queries``' device, the distances in the promoted
    dtype of ``queries`` and ``reference``; chunked like :func:`parzen_log_likelihood`.
    """
    return _nearest(*_pair(reference, queries, batch_size, ("reference", "queries")))


def _nearest(reference: torch.Tensor, queries: torch.Tensor, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`nearest_neighbours` of checked arguments."""
    ref_sq = reference.pow(2).sum(1)
    dist = torch.empty(len(queries), dtype=queries.dtype, device=queries.device)
    index = torch.empty(len(queries), dtype=torch.long, device=queries.device)
    for start in range(0, len(queries), rows):
        best = _squared_distances(queries[start : start + rows], reference, ref_sq).min(dim=1)
        dist[start : start + rows], index[start : start + rows] = best.values.sqrt(), best.indices
    return dist, index


def mode_coverage(
    samples: torch.Tensor, centres: torch.Tensor, radius: float, *, min_share: float = 0.01
) -> tuple[int, float]:
    """(modes covered, share of good samples) of samples from a mixture with known ``centres``.

    A sample is *good* when it lies within ``radius`` (e.g. 3 component standard deviations) of some
    centre; a mode is *covered* when at least ``min_share`` of all samples are good samples at it
    (the book's diagnostics for the 2-D mixtures of chapter 3).
    """
    centres, samples, rows = _pair(centres, samples, None, ("centres", "samples"))
    dist, index = _nearest(centres, samples, rows)
    radius = checks.positive_float("radius", radius)
    min_share = checks.probability("min_share", min_share)
    good = dist <= radius
    counts = torch.bincount(index[good], minlength=len(centres))
    covered = int((counts >= min_share * len(samples)).sum())
    return covered, good.double().mean().item()


def mean_and_stderr(values: torch.Tensor) -> tuple[float, float]:
    """Mean and standard error std / √M of M per-point values, std² = Σ (v − mean)² / M (not M − 1).

    That is the convention of the GAN paper's code (parzen_ll.py: ``numpy.std(lls) / numpy.sqrt(M)``,
    NumPy's default ddof = 0), so the ± matches the papers' tables; for M = 10,000 test points the
    two conventions differ by a factor √(M / (M − 1)) ≈ 1.00005.
    """
    values = checks.tensor("values", values, ndim=1)
    if len(values) < 2:
        raise ValueError(f"values must hold at least two numbers, got {len(values)}")
    return values.mean().item(), (values.std(correction=0) / math.sqrt(len(values))).item()


def select_parzen_sigma(
    samples: torch.Tensor,
    valid: torch.Tensor,
    sigmas: Sequence[float],
    *,
    batch_size: int | None = None,
) -> tuple[float, list[float]]:
    """The σ of ``sigmas`` (the papers': :data:`PAPERS_SIGMA_GRID`) with the highest mean validation
    log-likelihood, and the whole curve."""
    samples, valid, rows = _pair(samples, valid, batch_size, ("samples", "valid"))
    if isinstance(sigmas, (str, bytes)) or not isinstance(sigmas, Sequence):
        raise TypeError(f"sigmas must be a sequence of bandwidths, got {type(sigmas).__name__}")
    if len(sigmas) == 0:
        raise ValueError("sigmas must hold at least one bandwidth")
    checked = [checks.positive_float(f"sigmas[{i}]", s) for i, s in enumerate(sigmas)]
    curve = [_parzen(samples, valid, s, rows).mean().item() for s in checked]
    best = max(range(len(curve)), key=curve.__getitem__)
    return float(sigmas[best]), curve


def parzen_score(
    samples: torch.Tensor,
    valid: torch.Tensor,
    test: torch.Tensor,
    sigmas: Sequence[float] = PAPERS_SIGMA_GRID,
    *,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """The papers' Parzen protocol: σ by validation, then the test mean ± standard error.

    The GAN paper's §5 (code: ``parzen_ll.py``): fit an isotropic Gaussian Parzen window on
    ``samples``, pick σ from ``sigmas`` (default :data:`PAPERS_SIGMA_GRID`) by the mean
    log-likelihood of ``valid`` (:func:`select_parzen_sigma`), and report the mean log-likelihood
    of ``test`` with its standard error (:func:`mean_and_stderr`).

    Returns:
        ``dict(mean=..., se=..., sigma=..., curve=...)``: ``curve`` is the validation mean for each σ.
    """
    sigma, curve = select_parzen_sigma(samples, valid, sigmas, batch_size=batch_size)
    mean, se = mean_and_stderr(parzen_log_likelihood(samples, test, sigma, batch_size=batch_size))
    return {"mean": mean, "se": se, "sigma": sigma, "curve": curve}


def protocol_scores(
    samples: torch.Tensor,
    valid: torch.Tensor,
    test: torch.Tensor,
    *,
    binarise_samples: bool,
    sigmas: Sequence[float] = PAPERS_SIGMA_GRID,
    fixed_sigma: float = 0.2,
    batch_size: int | None = None,
) -> dict[str, dict[str, Any]]:
    """The same centres scored under the two MNIST protocols of the papers, at validated and fixed σ.

    ``"real-valued"``: grey-level ``valid`` and ``test`` images, as in the GAN paper (Table 1 caption:
    "the real-valued (rather than binary) version of dataset"). ``"binarised"``: ``valid`` and ``test``
    thresholded at 0.5, the data on which the GDAE paper trained ("binarized MNIST data (thresholding
    at 0.5)", §4) and whose "10000 MNIST training examples" gave its training-set row; with
    ``binarise_samples`` the centres are thresholded too (the training set of that protocol), else
    they are used as given (a chain's real-valued mean-field outputs, GDAE §4, in both protocols).
    Each entry is :func:`parzen_score`'s dict plus ``fixed``: (mean, standard error) at ``fixed_sigma``.
    """
    samples, valid, _ = _pair(samples, valid, batch_size, ("samples", "valid"))
    samples, test, _ = _pair(samples, test, batch_size, ("samples", "test"))
    checks.boolean("binarise_samples", binarise_samples)
    fixed_sigma = checks.positive_float("fixed_sigma", fixed_sigma)
    for name, t in (("samples", samples), ("valid", valid), ("test", test)):
        checks.unit_interval(name, t)
    binary = [data.binarize(x, "threshold") for x in (samples, valid, test)]
    inputs = {
        "real-valued": (samples, valid, test),
        "binarised": (binary[0] if binarise_samples else samples, binary[1], binary[2]),
    }
    out = {}
    for protocol, (centres, v, t) in inputs.items():
        out[protocol] = parzen_score(centres, v, t, sigmas, batch_size=batch_size)
        fixed = parzen_log_likelihood(centres, t, fixed_sigma, batch_size=batch_size)
        out[protocol]["fixed"] = mean_and_stderr(fixed)
    return out


def diagonal_gaussian_log_likelihood(
    train: torch.Tensor, test: torch.Tensor, variance_floor: float
) -> torch.Tensor:
    """Per-test-point log-density of the diagonal Gaussian fitted to ``train`` (per-dimension mean and
    variance, the variance floored at ``variance_floor``), shape (M,), in float64.

    The constant-pixel pathology of DL book §20.14: a real-valued model of MNIST "can obtain arbitrarily
    high likelihood by assigning arbitrarily low variance to background pixels that never change". A
    dimension that is constant in ``train`` and takes the same value in ``test`` adds
    −½ log(2π · variance_floor) to every test point, without bound as the floor goes to 0.
    """
    train, test, _ = _pair(train, test, None, ("train", "test"))
    floor = checks.positive_float("variance_floor", variance_floor)
    train, test = train.double(), test.double()
    mean, var = train.mean(0), train.var(0, correction=0).clamp_min(floor)
    return -0.5 * (((test - mean) ** 2 / var) + torch.log(2 * math.pi * var)).sum(1)


def chain_samples(
    model: torch.nn.Module,
    x0: torch.Tensor,
    n_steps: int,
    generator: torch.Generator | None,
    *,
    burn_in: int = 0,
    **kw: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Consecutive chain samples as Parzen centres: the GSN and GDAE papers' protocol (GSN paper §7).

    Runs ``model.sample_chain(x0, burn_in + n_steps, generator, return_means=True, **kw)`` from the B
    rows of ``x0``, drops the first ``burn_in`` steps and returns (mean-field outputs, stochastic
    samples), each flattened step-major to (n_steps · B, d).
    """
    if not callable(getattr(model, "sample_chain", None)):
        raise TypeError(f"model must have a sample_chain method, got {type(model).__name__}")
    n_steps = checks.positive_int("n_steps", n_steps)
    burn_in = checks.nonnegative_int("burn_in", burn_in)
    samples, means = model.sample_chain(x0, burn_in + n_steps, generator, return_means=True, **kw)
    keep = slice(burn_in, None)
    d = means.shape[-1]
    return means[keep].reshape(-1, d), samples[keep].reshape(-1, d)


def decoder_mixture_log_likelihood(
    logits: torch.Tensor, test: torch.Tensor, *, batch_size: int | None = None
) -> torch.Tensor:
    """Per-test-point log P̂(x) = log mean_j P(x | x̃_j) of a factorized Bernoulli decoder: thesis §5.5.1.

    ``logits`` ``[N, d]`` are the decoder's logits ℓ_j at N corrupted states x̃_j of the sampling chain
    ("10,000 consecutively generated samples (X̃ from the Markov chain)"), so that
    log P(x | x̃_j) = Σ_i x_i ℓ_ji − log(1 + e^{ℓ_ji}); ``test`` ``[M, d]`` is binary. Returns
    logsumexp_j log P(x | x̃_j) − log N, shape ``[M]``, float64. For x̃_j drawn from the chain's
    stationary law π̃ of X̃, E P̂(x) = Σ_x̃ π̃(x̃) P(x | x̃) = π(x), the law of X that the chain
    x → x̃ → x samples; by Jensen, E log P̂(x) ≤ log π(x): a lower bound in expectation ([TH] §5.5.1,
    citing Bengio, Yao & Cho 2013). Chunks of ``batch_size`` test points (default: at most
    :data:`DEFAULT_MAX_ELEMENTS` pairs at once).
    """
    logits, test, rows = _pair(logits, test, batch_size, ("logits", "test"))
    checks.binary("test", test)
    logits = logits.double()
    partition = torch.nn.functional.softplus(logits).sum(1)  # Σ_i log(1 + e^ℓ_ji), one per x̃_j
    out = torch.empty(len(test), dtype=torch.float64, device=test.device)
    for start in range(0, len(test), rows):
        log_p = test[start : start + rows].double() @ logits.T - partition  # [rows, N]
        out[start : start + rows] = torch.logsumexp(log_p, dim=1) - math.log(len(logits))
    return out
