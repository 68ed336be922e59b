"""Parzen-window log-likelihood: the evaluation protocol of the GSN, GDAE and GAN papers.

A Gaussian kernel of width σ is put on each of N generated samples s_i, and a test point x
gets the mixture's log-density (GAN paper §5; GSN paper §4; thesis §5.5)::

    log p̂(x) = logsumexp_i(−‖x − s_i‖² / 2σ²) − log N − (d/2) log(2πσ²)

σ is chosen on a validation split from a grid (``logspace(-1, 0, 10)`` for MNIST in the
papers' code), and the score is the mean over test points ± its standard error.
Everything is computed in the log domain, in chunks of test points, so that no more than
``max_elements`` squared distances are held at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from dae_tutor import checks

DEFAULT_MAX_ELEMENTS = 2**24  # squared distances held at once (128 MiB in float64)


def _points(name: str, value: object) -> torch.Tensor:
    t = checks.tensor(name, value, ndim=2)
    if len(t) == 0:
        raise ValueError(f"{name} must hold at least one point, got shape {tuple(t.shape)}")
    return t


def parzen_log_likelihood(
    samples: torch.Tensor,
    test: torch.Tensor,
    sigma: float,
    *,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> torch.Tensor:
    """Per-test-point log p̂(x) of the Gaussian Parzen window on ``samples`` (shape ``[N, d]``).

    ``test`` is ``[M, d]``; returns ``[M]`` on ``test``'s device, in ``test``'s dtype. Distances
    come from ``‖x‖² + ‖s‖² − 2 x·s`` (one matmul per chunk), clamped at 0.
    """
    samples = _points("samples", samples)
    test = _points("test", test)
    if samples.shape[1] != test.shape[1]:
        raise ValueError(
            f"samples and test must have the same dimension, got {samples.shape[1]} and {test.shape[1]}"
        )
    sigma = checks.positive_float("sigma", sigma)
    max_elements = checks.positive_int("max_elements", max_elements)
    samples = samples.to(device=test.device, dtype=test.dtype)
    n, d = samples.shape
    sample_sq = samples.pow(2).sum(1)
    constant = math.log(n) + 0.5 * d * math.log(2 * math.pi * sigma**2)
    rows = max(1, max_elements // n)
    out = torch.empty(len(test), dtype=test.dtype, device=test.device)
    for start in range(0, len(test), rows):
        chunk = test[start : start + rows]
        sq = (chunk.pow(2).sum(1, keepdim=True) + sample_sq - 2 * chunk @ samples.T).clamp_min(0)
        out[start : start + rows] = torch.logsumexp(-sq / (2 * sigma**2), dim=1) - constant
    return out


def mean_and_stderr(values: torch.Tensor) -> tuple[float, float]:
    """Mean and standard error (sample std / √M) of per-point values, as the papers report them."""
    values = checks.tensor("values", values, ndim=1)
    if len(values) < 2:
        raise ValueError(f"values must hold at least two numbers, got {len(values)}")
    return values.mean().item(), (values.std() / math.sqrt(len(values))).item()


def select_parzen_sigma(
    samples: torch.Tensor,
    valid: torch.Tensor,
    sigmas: Sequence[float],
    *,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> tuple[float, list[float]]:
    """The σ of ``sigmas`` with the highest mean validation log-likelihood, and the whole curve."""
    if len(sigmas) == 0:
        raise ValueError("sigmas must hold at least one bandwidth")
    curve = [
        parzen_log_likelihood(samples, valid, s, max_elements=max_elements).mean().item() for s in sigmas
    ]
    best = max(range(len(curve)), key=curve.__getitem__)
    return float(sigmas[best]), curve
