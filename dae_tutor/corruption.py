"""Corruption processes C(x̃ | x): salt-and-pepper for binary data, additive Gaussian for real data.

* Salt-and-pepper ([GDAE] §4; [GSN14] §7; thesis §5.5.1 and §5.5.2): each input is corrupted
  independently with probability p and a corrupted input is set to 0 or 1 with probability 1/2,

      x̃ = m ⊙ x + (1 − m) ⊙ b,      m_i ~ Bernoulli(1 − p),   b_i ~ Bernoulli(1/2),

  so E[x̃] = (1 − p) x + p/2. The papers use p = 0.5 for the one-layer DAE on MNIST and p = 0.4 at every
  step of the deep GSN chain. Per bit, C(x̃_i | x_i) = 1 − p/2 if x̃_i = x_i, else p/2: global support
  on {0, 1}^d ([GSN14] §3, Corollary 1), so the chain it drives is ergodic.
* Gaussian: x̃ = x + σ ε, ε ~ N(0, I) (the thesis's chapter-3 corruption, eq. 3.2).

Both take tensors on any device and return a tensor of the same shape, dtype and device. Randomness
comes from ``generator`` (a ``torch.Generator`` on the tensor's device; ``None`` = torch's global one):
the same seed gives the same corruption.

Sources: [GDAE] = Bengio, Yao, Alain and Vincent (2013), *Generalized Denoising Auto-Encoders as
Generative Models*; [GSN14] = Bengio, Thibodeau-Laufer, Alain and Yosinski (2014), *Deep Generative
Stochastic Networks Trainable by Backprop*; "the thesis" is G. Alain's PhD thesis (2018).
"""

from __future__ import annotations

import torch

from dae_tutor import checks


def salt_and_pepper(
    x: torch.Tensor, p: float, generator: torch.Generator | None = None, *, check: bool = True
) -> torch.Tensor:
    """Salt-and-pepper corruption: each entry is replaced w.p. ``p`` by a fair coin flip in {0, 1}.

    ``x̃ = m ⊙ x + (1 − m) ⊙ b`` with ``m ~ Bernoulli(1 − p)``, ``b ~ Bernoulli(1/2)``, independently per
    entry ([GSN14] §7: "40% of the pixels are corrupted, and replaced with a 0 or a 1 with
    probability 0.5"; [GDAE] §4 with p = 0.5). The per-bit kernel is the one of
    ``dae_tutor.chains.salt_and_pepper_kernel``.

    Args:
        x: floating tensor of any shape with values in [0, 1] (binary images, or grey levels as in the
            reference code).
        p: corruption probability in [0, 1].
        generator: ``torch.Generator`` on ``x``'s device (``None``: torch's global generator).
        check: validate the arguments (``False`` only in an inner loop whose public entry point has
            checked them already; the random draws are the same either way).

    Returns:
        x̃, same shape, dtype and device as ``x``; uncorrupted entries equal those of ``x`` exactly.
    """
    if checks.boolean("check", check):
        x = checks.tensor("x", x)
        p = checks.probability("p", p)
        checks.generator("generator", generator, x)
        checks.unit_interval("x", x)
    if p == 0:
        return x.clone()
    # one uniform u per entry: corrupted when u < p, then set to 1 when u < p/2 (given u < p, u is uniform
    # on [0, p), so the new value is 0 or 1 with probability 1/2 each)
    u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return torch.where(u < p, (u < p / 2).to(x.dtype), x)


def gaussian(
    x: torch.Tensor, sigma: float, generator: torch.Generator | None = None, *, check: bool = True
) -> torch.Tensor:
    """Additive isotropic Gaussian corruption x̃ = x + σ ε, ε ~ N(0, I) (thesis eq. 3.2).

    Args:
        x: finite floating tensor of any shape.
        sigma: noise standard deviation σ >= 0 (σ = 0 returns a copy of ``x``).
        generator: ``torch.Generator`` on ``x``'s device (``None``: torch's global generator).
        check: validate the arguments (``False`` only in an inner loop whose public entry point has
            checked them already; the random draws are the same either way).

    Returns:
        x̃, same shape, dtype and device as ``x``.
    """
    if checks.boolean("check", check):
        x = checks.tensor("x", x)
        sigma = checks.positive_float("sigma", sigma, allow_zero=True)
        checks.generator("generator", generator, x)
    if sigma == 0:
        return x.clone()
    return x + sigma * torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
