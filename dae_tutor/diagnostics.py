"""Diagnostics of sample quality: how much of a sampler's output lies where the data is.

* :func:`spurious_fraction`: the fraction of samples farther than a radius from every data point, the
  "spurious samples" of a chain that leaves the data manifold ([TH] §5.3.2: "the DAE's behavior far
  from the training examples can create spurious modes"; chapter 2's walkback experiment).

Sources: [TH] = G. Alain's PhD thesis (2018), ch. 5.
"""

from __future__ import annotations

import torch

from dae_tutor import checks

__all__ = ["spurious_fraction"]


def spurious_fraction(samples: torch.Tensor, data: torch.Tensor, radius: float) -> float:
    """Fraction of ``samples`` (n, d) farther than ``radius`` from every point of ``data`` (m, d)."""
    samples = checks.nonempty("samples", checks.tensor("samples", samples, ndim=2))
    data = checks.nonempty("data", checks.tensor("data", data, ndim=2))
    data = checks.same_width("data", data, "samples", samples).to(samples)
    radius = checks.positive_float("radius", radius)
    nearest = torch.cat([torch.cdist(chunk, data).min(dim=1).values for chunk in samples.split(1024)])
    return (nearest > radius).double().mean().item()
