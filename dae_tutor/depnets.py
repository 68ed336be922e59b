r"""Dependency networks as GSNs: per-site Gibbs kernels built from (possibly inconsistent) conditionals.

A dependency network on ``d`` bits is a set of conditionals :math:`P_i(x_i = 1 \mid x_{-i})`, each
"parametrized separately" ([TH] §5.3.7). Resampling one site is a GSN step with :math:`H = X_{-s}`
(Prop. 6), so the exact finite-state chains of :mod:`dae_tutor.markov` apply:

* conditionals: :func:`conditionals_from_joint` (consistent, from a joint) and :func:`random_conditionals`
  (generically inconsistent);
* kernels: :func:`site_kernels` (one Gibbs kernel per site), :func:`random_scan_kernel`,
  :func:`systematic_scan_kernel` and :func:`augmented_ordered_chain` (the ordered sweep made Markov,
  periodic);
* :func:`conditional_null_space`: moves of the conditionals that keep a joint stationary.

States are the ``2**d`` binary vectors in the order of :func:`~dae_tutor.markov.binary_states` (most
significant bit first); ``conds[i, j]`` is indexed by :math:`x_{-i}` with index ``j`` (the other bits,
most significant first).

Sources: [TH] = G. Alain's PhD thesis (2018), ch. 5, §5.3.7; Heckerman, Chickering, Meek, Rounthwaite
and Kadie (2000), *Dependency networks for inference, collaborative filtering, and data visualization*.
"""

from __future__ import annotations

import torch

from dae_tutor import checks, markov

__all__ = [
    "augmented_ordered_chain",
    "conditional_null_space",
    "conditionals_from_joint",
    "random_conditionals",
    "random_scan_kernel",
    "site_kernels",
    "systematic_scan_kernel",
]

F64 = torch.float64


def _rest_index(d: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(bit, rest)``, both ``(d, 2**d)``: bit ``i`` of state ``s`` and the index of :math:`x_{-i}`
    (the other ``d - 1`` bits, most significant first)."""
    s = torch.arange(1 << d, device=device)
    pos = torch.arange(d, device=device)[:, None]  # bit i has weight 2**(d-1-i)
    low_bits = d - 1 - pos
    bit = (s[None] >> low_bits) & 1
    rest = ((s[None] >> (low_bits + 1)) << low_bits) | (s[None] & ((1 << low_bits) - 1))
    return bit, rest


def _conditionals(name: str, conds: object) -> torch.Tensor:
    c = checks.as_tensor(name, conds)
    d = c.shape[0] if c.dim() == 2 else 0
    if c.dim() != 2 or d < 1 or c.shape[1] != 1 << (d - 1):
        raise ValueError(f"{name} must have shape (d, 2**(d-1)) (P_i(x_i = 1 | x_-i)), got {tuple(c.shape)}")
    checks.bit_count("d", d, maximum=markov.MAX_BITS)
    if float(c.min()) < 0 or float(c.max()) > 1:
        raise ValueError(
            f"{name} must hold probabilities in [0, 1], got range [{float(c.min())}, {float(c.max())}]"
        )
    return c


def conditionals_from_joint(P: object) -> torch.Tensor:
    r"""The exact conditionals :math:`P(x_i = 1 \mid x_{-i})` of a joint ``P`` over ``d`` bits.

    Returns ``conds`` of shape ``(d, 2**(d-1))``: ``conds[i, j]`` for :math:`x_{-i}` with index ``j`` (the
    other bits, most significant first). A zero-probability :math:`x_{-i}` gets 1/2.
    """
    p = checks.pmf("P", P)
    d = checks.bits_of_size("P", p.numel())
    bit, rest = _rest_index(d, p.device)
    half = 1 << (d - 1)
    marg = torch.zeros(d, half, dtype=F64, device=p.device).scatter_add_(1, rest, p.expand(d, -1))
    ones = torch.zeros(d, half, dtype=F64, device=p.device).scatter_add_(1, rest, p * bit)
    return torch.where(marg > 0, ones / marg.clamp_min(1e-300), torch.full_like(marg, 0.5))


def random_conditionals(
    d: int, generator: torch.Generator | None = None, low: float = 0.05, high: float = 0.95
) -> torch.Tensor:
    r"""Inconsistent (generically) conditionals :math:`P_i(x_i = 1 \mid x_{-i}) \sim U[\text{low},
    \text{high}]`, shape ``(d, 2**(d-1))``: a dependency network whose conditionals, each "parametrized
    separately", match no joint ([TH] §5.3.7)."""
    d = checks.bit_count("d", d, maximum=markov.MAX_BITS)
    generator = checks.generator("generator", generator)
    low, high = checks.probability("low", low), checks.probability("high", high)
    if not low < high:
        raise ValueError(f"low must be < high, got low={low}, high={high}")
    device = generator.device if generator is not None else "cpu"
    u = torch.rand(d, 1 << (d - 1), dtype=F64, device=device, generator=generator)
    return low + (high - low) * u


def site_kernels(conds: object) -> torch.Tensor:
    r"""The per-site Gibbs kernels :math:`K_i` of a dependency network on ``d`` bits: resample
    :math:`x_i \sim P_i(\cdot \mid x_{-i})`, keep :math:`x_{-i}` ([TH] §5.3.7, Prop. 6: the GSN with
    :math:`H = X_{-s}`).

    Args:
        conds: ``(d, 2**(d-1))`` conditionals :math:`P_i(x_i = 1 \mid x_{-i})`.

    Returns a ``(d, 2**d, 2**d)`` stack of row-stochastic matrices over
    :func:`~dae_tutor.markov.binary_states`.
    """
    c = _conditionals("conds", conds)
    d = c.shape[0]
    bit, rest = _rest_index(d, c.device)
    theta = c.gather(1, rest)  # (d, K): P_i(x_i = 1 | x_-i of state s)
    p_next = torch.where(bit == 1, theta, 1 - theta)  # probability of landing on s' for site i
    same = rest[:, :, None] == rest[:, None, :]
    return same.to(F64) * p_next[:, None, :]


def _kernel_stack(name: str, Ks: object) -> torch.Tensor:
    k = checks.as_tensor(name, Ks)
    if k.dim() != 3 or k.shape[1] != k.shape[2] or k.shape[0] == 0:
        raise ValueError(f"{name} must be a (d, K, K) stack of transition matrices, got {tuple(k.shape)}")
    n, m, _ = k.shape
    return checks.stochastic(name, k.reshape(n * m, m), square=False).reshape(n, m, m)


def random_scan_kernel(Ks: object, w: object = None) -> torch.Tensor:
    r"""Random-scan Gibbs :math:`\bar K = \sum_i w_i K_i` (uniform :math:`w_i = 1/d` by default): choosing
    the site at random gives "aperiodicity and ergodicity" ([TH] §5.3.7)."""
    k = _kernel_stack("Ks", Ks)
    weights = torch.full((k.shape[0],), 1.0 / k.shape[0], dtype=F64, device=k.device) if w is None else None
    if weights is None:
        weights = checks.pmf("w", w, k.device)
        checks.same_states("Ks", k.shape[0], "w", weights.numel())
    return torch.einsum("i,ijk->jk", weights, k)


def systematic_scan_kernel(Ks: object, order: object) -> torch.Tensor:
    r"""One ordered sweep :math:`K_{\sigma(1)} K_{\sigma(2)} \cdots` (Heckerman et al.'s ordered pseudo-Gibbs
    sampler, [TH] §5.3.7). ``order`` lists site indices (a permutation, or any sequence of sites)."""
    k = _kernel_stack("Ks", Ks)
    idx = checks.states("order", order, k.shape[0], k.device).reshape(-1)
    if idx.numel() == 0:
        raise ValueError("order must list at least one site")
    return torch.linalg.multi_dot(list(k[idx])) if idx.numel() > 1 else k[idx[0]].clone()


def augmented_ordered_chain(Ks: object) -> torch.Tensor:
    r"""The ordered pseudo-Gibbs chain made Markov by adding the site index to the state ([TH] §5.3.7:
    "could be periodic, because we cycle in a deterministic way through all the index values").

    State ``(i, x)`` (index ``i * K + x``) resamples site ``i`` and moves to ``i + 1 mod d``: the block
    :math:`(i, i+1)` is :math:`K_i`. It has period ``d``: its unit-modulus eigenvalues are the ``d``-th
    roots of unity. Returns a ``(d K, d K)`` row-stochastic matrix.
    """
    k = _kernel_stack("Ks", Ks)
    d, m, _ = k.shape
    out = torch.zeros(d, d, m, m, dtype=F64, device=k.device)
    sites = torch.arange(d, device=k.device)
    out[sites, (sites + 1) % d] = k
    return out.permute(0, 2, 1, 3).reshape(d * m, d * m)


def conditional_null_space(P: object, rtol: float = 1e-10) -> torch.Tensor:
    r"""Directions in conditional space that leave ``P`` stationary for random scan ([TH] §5.3.7: "the fixed
    point equation of :math:`\pi` introduces fewer constraints than the number of degrees of freedom").

    :math:`\theta \mapsto P\bar K(\theta)` is affine in the conditionals :math:`\theta` (``d 2**(d-1)``
    numbers); its linear part :math:`J[x', (i, j)] = \tfrac1d P_{-i}(j)\,(2x'_i - 1)\,\mathbb
    I(x'_{-i} = j)` has rank at most :math:`2^d - 1` (the image sums to 0), so the null space has
    dimension at least :math:`d2^{d-1} - (2^d - 1)` (5 for ``d = 3``, 17 for ``d = 4``).
    Moving the conditionals along a null direction changes them but keeps :math:`P\bar K = P`.

    Returns an ``(n_null, d, 2**(d-1))`` tensor of orthonormal directions (singular values below
    ``rtol`` times the largest count as zero).
    """
    p = checks.pmf("P", P)
    rtol = checks.positive_float("rtol", rtol)
    d = checks.bits_of_size("P", p.numel())
    half = 1 << (d - 1)
    bit, rest = _rest_index(d, p.device)
    marg = torch.zeros(d, half, dtype=F64, device=p.device).scatter_add_(1, rest, p.expand(d, -1))
    vals = marg.gather(1, rest) * (2 * bit - 1).to(F64) / d  # (d, K)
    jac = torch.zeros(d, p.numel(), half, dtype=F64, device=p.device)
    jac.scatter_(2, rest[:, :, None], vals[:, :, None])
    jac = jac.permute(1, 0, 2).reshape(p.numel(), d * half)
    _, sv, vh = torch.linalg.svd(jac, full_matrices=True)
    rank = int((sv > rtol * sv[0]).sum())
    return vh[rank:].reshape(-1, d, half)
