"""Shared helpers of the finite-state chain tests (``test_markov.py``, ``test_chains.py``): NumPy truths
and the spec's setups (``shared/spec/B_gsn.md``)."""

from __future__ import annotations

import numpy as np
import torch

from dae_tutor import chains as ch

F64 = torch.float64
PMF_A = np.array([1, 3, 6, 3, 1, 1, 2, 5, 8, 4], dtype=float) / 34  # spec A §4.7(i)


def np_bayes(p: np.ndarray, c: np.ndarray) -> np.ndarray:
    joint = p[:, None] * c
    return (joint / joint.sum(0)).T


def np_stationary(t: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eig(t.T)
    v = np.real(vecs[:, np.argmin(abs(vals - 1))])
    return v / v.sum()


def random_stochastic(rng: np.random.Generator, k: int, conc: float = 1.0) -> np.ndarray:
    return rng.dirichlet(conc * np.ones(k), size=k)


def n1_setup() -> tuple[np.ndarray, torch.Tensor]:
    """Spec B Appendix A, N1/N9: default_rng(0), K=10, P ~ Dir(0.5), ring q=0.6."""
    return np.random.default_rng(0).dirichlet(0.5 * np.ones(10)), ch.corruption_matrix(10, "ring", 0.6)
