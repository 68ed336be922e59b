r"""Exact finite-state Markov chains of denoising auto-encoders and GSNs, and the DAE samplers.

On a finite state space :math:`\{0, \dots, K-1\}` every object of the GDAE/GSN theory is a
matrix, so the theorems can be checked to float64 precision (the generic chain tools, stationarity,
mixing, Schweitzer's bound and :func:`~dae_tutor.markov.sample_chain`, are in :mod:`dae_tutor.markov`):

* a corruption :math:`\mathcal C(\tilde x \mid x)` is a row-stochastic matrix ``C[x, x_tilde]``
  (:func:`corruption_matrix`, :func:`window_corruption`, :func:`gaussian_grid_corruption`);
* the reconstruction :math:`P(x \mid \tilde x)` is a row-stochastic matrix ``R[x_tilde, x]``, exact by
  Bayes' rule (:func:`bayes_reconstruction`) or estimated by counting (:func:`counting_estimator`);
* the DAE chain :math:`X_t \to \tilde X_t \to X_{t+1}` has transition matrix :math:`T = C R`
  (:func:`dae_transition`), whose stationary distribution is the data distribution when ``R`` is the
  exact posterior ([GDAE] §2.3, Thm 1; [TH] §5.3.1, Prop. 1);
* walkback ([GDAE] §3, Algorithm 2; [TH] §5.3.2, eq. 5.2) has an exact corruption
  :func:`walkback_corruption`, a fixed point :func:`walkback_fixed_point` and samplers
  :func:`walkback_pairs` (one example, literal) and :func:`walkback_batch` (vectorised); training pairs
  are sampled by :func:`sample_pairs`;
* binary states (ordered as :func:`~dae_tutor.markov.binary_states`): :func:`salt_and_pepper_kernel`
  and the factorized decoder :func:`factorized_projection` (the noise and the decoder family of the
  MNIST experiments, [GDAE] §4);
* clamping ([TH] §5.3.6, Prop. 5; App. 5.B, eq. 5.5; [DLB] §20.11.2): :func:`clamped_transition`,
  :func:`clamped_stationary`, :func:`conditional_on`, :func:`encoder_decoder_joint`,
  :func:`clamped_encoder_residual`;
* the GSN with latent state ([TH] §5.3.4, Thm 3): :func:`burnin_hidden`, :func:`gsn_decoder_target`,
  :func:`gsn_joint_transition`, :func:`gsn_marginal_x`;
* continuous samplers: the exact non-parametric DAE chain :func:`nonparametric_dae_step` and the chain
  of a DAE with a Gaussian reconstruction head, :func:`gaussian_dae_step`, whose noise level the
  exact posterior's spread sets (:func:`posterior_spread`);
* the energy read off a reconstruction distribution ([GDAE] §2.4): :func:`log_density_difference`.

Dependency networks ([TH] §5.3.7) are in :mod:`dae_tutor.depnets`.

Conventions (the book's own): matrices are **row-stochastic**, ``T[x, x'] = P(X_{t+1}=x' | X_t=x)``;
distributions are row vectors; walkback is parametrised by the **stopping** probability ``p_stop``
(the number of corruptions is :math:`k \sim \mathrm{Geom}(p_\text{stop})` on :math:`\{1, 2, \dots\}`;
[GDAE]'s :math:`p` is the probability to *continue*, :math:`p = 1 - p_\text{stop}`).

Every finite-state function accepts torch tensors or array-likes (NumPy arrays, lists), computes in
float64 and answers with float64 (or int64 states) on the device of its first matrix argument (of ``x``
for :func:`counting_estimator`).

Sources: [GDAE] = Bengio, Yao, Alain and Vincent (2013), *Generalized Denoising Auto-Encoders as
Generative Models*; [GSN14] = Bengio, Thibodeau-Laufer, Alain and Yosinski (2014), *Deep Generative
Stochastic Networks Trainable by Backprop*; [TH] = G. Alain's PhD thesis (2018), ch. 5 (*Generative
Stochastic Networks*, with its appendices 5.A and 5.B); [DLB] = Goodfellow, Bengio and Courville (2016),
*Deep Learning*, ch. 20.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from dae_tutor import checks, corruption, markov

__all__ = [
    "CORRUPTION_KINDS",
    "bayes_reconstruction",
    "burnin_hidden",
    "clamp_decoder",
    "clamped_encoder_residual",
    "clamped_stationary",
    "clamped_transition",
    "conditional_on",
    "corruption_matrix",
    "counting_estimator",
    "dae_transition",
    "encoder_decoder_joint",
    "factorized_projection",
    "gaussian_dae_step",
    "gaussian_grid_corruption",
    "gsn_decoder_target",
    "gsn_joint_transition",
    "gsn_marginal_x",
    "log_density_difference",
    "nonparametric_dae_step",
    "online_counting_training",
    "posterior_spread",
    "salt_and_pepper_kernel",
    "sample_pairs",
    "unimodal_projection",
    "walkback_batch",
    "walkback_corruption",
    "walkback_fixed_point",
    "walkback_pairs",
    "window_corruption",
]

F64 = torch.float64
CORRUPTION_KINDS = ("mix_uniform", "local_walk", "ring")


# ------------------------------------------------------------------------------------- corruptions
def corruption_matrix(
    K: int, kind: str = "mix_uniform", q: float = 0.5, *, device: torch.device | str | None = None
) -> torch.Tensor:
    r"""A corruption :math:`C[x, \tilde x] = \mathcal C(\tilde x \mid x)` on ``K`` states.

    ``q`` is the probability that the state is disturbed:

    * ``"mix_uniform"``: :math:`(1-q) I + q/K`: keep ``x``, or redraw it uniformly. Full support for
      ``q > 0``, so it meets the global-support ergodicity condition ([GDAE] §2.3, Cor. 1).
      The papers do not say which corruption their discrete non-parametric experiment used ([GDAE] §4,
      Fig. 3; [TH] §5.5.1, Fig. 5.3); this is the book's choice for it.
    * ``"local_walk"``: a ±1 random walk with reflection: stay w.p. :math:`1-q`, step ±1 w.p.
      :math:`q/2` each; a step off the end is mirrored back (from 0 the step to -1 lands on 1, so
      ``C[0, 1] = q``). Local, so it meets only [TH] App. 5.A, Cor. 2.
    * ``"ring"``: the same walk on the cycle :math:`x \pm 1 \bmod K`.

    Returns a float64 ``(K, K)`` row-stochastic matrix.
    """
    K = checks.positive_int("K", K, minimum=2)
    kind = checks.one_of("kind", kind, CORRUPTION_KINDS)
    q = checks.probability("q", q)
    if kind == "mix_uniform":
        return (1 - q) * torch.eye(K, dtype=F64, device=device) + q / K
    x = torch.arange(K, device=device)
    c = (1 - q) * torch.eye(K, dtype=F64, device=device)
    for step in (-1, 1):  # the two moves, each for all states at once
        y = x + step
        if kind == "ring":
            y = y % K
        else:
            y = torch.where((y < 0) | (y >= K), x - step, y)  # mirror reflection at the ends
        c.index_put_((x, y), torch.full((K,), q / 2, dtype=F64, device=device), accumulate=True)
    return c


def window_corruption(K: int, radius: int, *, device: torch.device | str | None = None) -> torch.Tensor:
    r"""Uniform corruption on the window :math:`\{x-r, \dots, x+r\}`, clipped at the ends.

    :math:`\tilde x = \mathrm{clip}(x + u, 0, K-1)` with :math:`u` uniform on :math:`\{-r, \dots, r\}`,
    so the mass of the steps past an end piles up on that end (the corruption that shows the "desert"
    rule after [TH] App. 5.A, Cor. 2). ``radius=0`` gives the identity (no corruption).
    """
    K = checks.positive_int("K", K)
    radius = checks.nonnegative_int("radius", radius)
    x = torch.arange(K, device=device)
    targets = (x[:, None] + torch.arange(-radius, radius + 1, device=device)[None]).clamp(0, K - 1)
    c = torch.zeros(K, K, dtype=F64, device=device)
    weight = torch.full(targets.shape, 1.0 / (2 * radius + 1), dtype=F64, device=device)
    return c.scatter_add_(1, targets, weight)


def gaussian_grid_corruption(
    xs: object, sigma: float, *, device: torch.device | str | None = None
) -> torch.Tensor:
    r"""Discretised Gaussian corruption on the grid ``xs``: :math:`C[x, \tilde x] \propto
    \exp(-(\tilde x - x)^2 / 2\sigma^2)`, each row normalised.

    Args:
        xs: ``(K,)`` grid points. sigma: the noise width ``> 0`` in grid units of ``xs``.
    """
    grid = checks.as_tensor("xs", xs, device=torch.device(device) if device is not None else None)
    if grid.dim() != 1 or grid.numel() < 2:
        raise ValueError(f"xs must be a 1-D grid of at least 2 points, got shape {tuple(grid.shape)}")
    sigma = checks.positive_float("sigma", sigma)
    logits = -((grid[None, :] - grid[:, None]) ** 2) / (2 * sigma**2)
    return torch.softmax(logits, dim=1)


# ------------------------------------------------------------------------------------- reconstruction and T
def bayes_reconstruction(P: object, C: object) -> torch.Tensor:
    r"""The exact posterior :math:`R[\tilde x, x] = \mathcal P(x \mid \tilde x) \propto \mathcal P(x)\,
    \mathcal C(\tilde x \mid x)`.

    This is the optimum of the DAE criterion with infinite capacity ([GDAE] §2.3, proof of Thm 1;
    [TH] eq. 5.1, in the proof of Prop. 1). A corrupted value with zero marginal :math:`\mathcal
    P(\tilde x) = \sum_x \mathcal P(x) C[x, \tilde x] = 0` is never produced from the data; its row is
    set to uniform so ``R`` stays row-stochastic.

    Args:
        P: ``(K,)`` data distribution.
        C: ``(K, K)`` row-stochastic corruption ``C[x, x_tilde]``.
    """
    c = checks.stochastic("C", C)
    p = checks.pmf("P", P, c.device)
    checks.same_states("C", c.shape[0], "P", p.numel())
    joint = p[:, None] * c  # joint[x, x_tilde] = P(x) C(x_tilde | x)
    marginal = joint.sum(dim=0)  # P(x_tilde)
    k = p.numel()
    seen = marginal > 0
    r = torch.full((k, k), 1.0 / k, dtype=F64, device=c.device)
    r[seen] = (joint[:, seen] / marginal[seen]).T
    return r


def dae_transition(C: object, R: object) -> torch.Tensor:
    r"""The DAE chain's transition :math:`T = C R`, i.e. :math:`T(x' \mid x) = \sum_{\tilde x}
    R(x' \mid \tilde x)\, C(\tilde x \mid x)` ([GDAE] §2.3, the operator :math:`T_n`, here in the row
    convention). Rows are the current state."""
    c, r = markov.check_two_stage(C, R)
    return c @ r


def counting_estimator(x: object, x_tilde: object, K: int, alpha: float = 0.0) -> torch.Tensor:
    r"""The multinomial maximum-likelihood ("counting") reconstruction with add-:math:`\alpha` smoothing.

    :math:`\hat R[\tilde x, x] = \big(n(\tilde x, x) + \alpha\big) / \big(n(\tilde x) + K\alpha\big)`
    from training pairs :math:`(x_i, \tilde x_i)` ([GDAE] §4, [TH] §5.5.1: "estimated by
    multinomial models and maximum likelihood (counting)"; the smoothing is the book's addition). A row
    whose :math:`\tilde x` was never seen (possible only with ``alpha=0``) is uniform.

    Args:
        x: ``(n,)`` clean states; x_tilde: ``(n,)`` their corrupted versions; both integers in ``[0, K)``.
        K: number of states.
        alpha: pseudo-count added to every cell, ``>= 0``.

    Returns a float64 ``(K, K)`` row-stochastic matrix on the device of ``x``.
    """
    K = checks.positive_int("K", K)
    alpha = checks.positive_float("alpha", alpha, allow_zero=True)
    device = x.device if isinstance(x, torch.Tensor) else torch.device("cpu")
    xs = checks.states("x", x, K, device).reshape(-1)
    xt = checks.states("x_tilde", x_tilde, K, device).reshape(-1)
    if xs.numel() != xt.numel():
        raise ValueError(f"x and x_tilde must have the same length, got {xs.numel()} and {xt.numel()}")
    counts = torch.bincount(xt * K + xs, minlength=K * K).reshape(K, K).to(F64)  # [x_tilde, x]
    counts = counts + alpha
    totals = counts.sum(dim=1, keepdim=True)
    return torch.where(totals > 0, counts / totals.clamp_min(1e-300), torch.full_like(counts, 1.0 / K))


# ------------------------------------------------------------------------------------- walkback (exact)
def walkback_corruption(C: object, R: object, p_stop: float = 0.5) -> torch.Tensor:
    r"""The exact walkback corruption :math:`C_\text{WB} = \sum_{k\ge1} p_\text{stop}(1-p_\text{stop})^{k-1}
    C_k` with :math:`C_k = (CR)^{k-1} C`.

    :math:`C_k` is the matrix form of the recursion [TH] eq. 5.2 (§5.3.2; :math:`C_{k+1} = (C R)\,
    C_k` in the row convention), mixed over :math:`k \sim \mathrm{Geom}(p_\text{stop})`
    ([TH] §5.3.2; [GDAE] Algorithm 2 with :math:`p = 1 - p_\text{stop}`). The geometric series sums in
    closed form, :math:`C_\text{WB} = p_\text{stop}\,(I - (1-p_\text{stop})\,C R)^{-1} C`, so no truncation
    is needed. ``R`` is the reconstruction the walk uses (the current model's).
    """
    c, r = markov.check_two_stage(C, R)
    p = checks.open_probability("p_stop", p_stop)
    eye = torch.eye(c.shape[0], dtype=F64, device=c.device)
    cwb = p * torch.linalg.solve(eye - (1 - p) * (c @ r), c)
    cwb = cwb.clamp_min(0.0)  # the series is non-negative; the solve may leave -1e-17
    return cwb / cwb.sum(dim=1, keepdim=True)


def walkback_fixed_point(
    P: object,
    C: object,
    p_stop: float = 0.5,
    *,
    max_iter: int = 500,
    tol: float = 1e-13,
    project: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, int]:
    r"""The infinite-capacity walkback reconstruction: iterate :math:`R \leftarrow \mathrm{Bayes}(P,
    C_\text{WB}[R])` from :math:`R_1 = \mathrm{Bayes}(P, C)` ([TH] §5.3.2, after eq. 5.3: "this iterated
    minimization").

    At the fixed point the chain :math:`C R_\text{WB}` (sampling with the *original* ``C``) still has
    stationary distribution ``P`` ([TH] §5.3.2, Prop. 2; [GDAE] §3, Prop. 1), while
    :math:`R_\text{WB}` is broader ("less local", [TH] §5.3.2).

    ``project`` restricts the decoder to a family: each iterate becomes ``project(Bayes(...))`` (e.g.
    :func:`factorized_projection`: inside a restricted family walkback can make the
    stationary distribution *worse*, [TH] §5.3.3).

    Returns ``(R_wb, n_iter)``; raises ``RuntimeError`` if the max-abs change is still above ``tol``
    after ``max_iter`` iterations.
    """
    c = checks.stochastic("C", C)
    p = checks.pmf("P", P, c.device)
    checks.same_states("C", c.shape[0], "P", p.numel())
    p_stop = checks.open_probability("p_stop", p_stop)
    max_iter = checks.positive_int("max_iter", max_iter)
    tol = checks.positive_float("tol", tol)
    if project is not None and not callable(project):
        raise TypeError(f"project must be callable or None, got {type(project).__name__}")
    fit = (lambda m: m) if project is None else project
    r = fit(bayes_reconstruction(p, c))
    for it in range(1, max_iter + 1):
        new = fit(bayes_reconstruction(p, walkback_corruption(c, r, p_stop)))
        change = float((new - r).abs().max())
        r = new
        if change < tol:
            return r, it
    raise RuntimeError(
        f"walkback fixed point did not converge: change {change:.3g} after {max_iter} iterations"
    )


def online_counting_training(
    P: object,
    C: object,
    epochs: int,
    *,
    n: float = 1000.0,
    spurious: int,
    alpha: float = 1.0,
    walkback: bool = False,
    p_stop: float = 0.5,
) -> torch.Tensor:
    r"""A spurious-mode toy (the mechanism of [TH] Fig. 5.2): an online counting estimator with a bad prior.

    :math:`R(x \mid \tilde x) \propto N(\tilde x, x) + \alpha\,\delta_{x = s}` with :math:`s` = ``spurious``
    stands for a network's arbitrary behaviour away from the data ([TH] §5.3.2: "the DAE's behavior far from
    the training examples can create spurious modes"). Each epoch adds the expected counts
    :math:`n\,P(x)\,C'(\tilde x \mid x)` to :math:`N`, with :math:`C' = C` (plain training) or
    :math:`C' = C_\text{WB}[R]` for the current ``R`` (walkback, [TH] eq. 5.2 and the iterated
    minimization after eq. 5.3: samples from :math:`\theta_t` train :math:`\theta_{t+1}`). Counts
    accumulate, so a region visited once stays corrected, as with SGD. Deterministic (expected counts).

    Returns the ``(K, K)`` reconstruction after ``epochs`` epochs.
    """
    c = checks.stochastic("C", C)
    p = checks.pmf("P", P, c.device)
    k = p.numel()
    checks.same_states("C", c.shape[0], "P", k)
    epochs = checks.positive_int("epochs", epochs)
    n = checks.positive_float("n", n)
    s = int(checks.states("spurious", spurious, k, c.device))
    alpha = checks.positive_float("alpha", alpha)
    walkback = checks.boolean("walkback", walkback)
    p_stop = checks.open_probability("p_stop", p_stop)
    prior = torch.zeros(k, k, dtype=F64, device=c.device)
    prior[:, s] = alpha
    counts = torch.zeros(k, k, dtype=F64, device=c.device)  # N[x_tilde, x]
    r = prior / alpha
    for _ in range(epochs):  # a loop over epochs; every state at once
        corrupt = walkback_corruption(c, r, p_stop) if walkback else c
        counts = counts + n * (p[:, None] * corrupt).T
        r = (counts + prior) / (counts + prior).sum(dim=1, keepdim=True)
    return r


# ------------------------------------------------------------------------------------- sampling
def sample_pairs(
    P: object, C: object, n: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``n`` training pairs :math:`X \sim \mathcal P`, :math:`\tilde X \sim \mathcal C(\cdot\mid X)`
    ([GDAE] §2.1, eq. 2; Algorithm 1).

    Returns two int64 ``(n,)`` tensors ``(x, x_tilde)`` on the device of ``C``.
    """
    c = checks.stochastic("C", C)
    p = checks.pmf("P", P, c.device)
    checks.same_states("C", c.shape[0], "P", p.numel())
    n = checks.positive_int("n", n)
    generator = checks.generator("generator", generator)
    u = markov.uniforms(2 * n, generator)
    x = markov.Categorical(p[None]).rows(np.zeros(n, dtype=np.int64), u[:n])
    x_tilde = markov.Categorical(c).rows(x, u[n:])
    return torch.as_tensor(x, device=c.device), torch.as_tensor(x_tilde, device=c.device)


def walkback_pairs(
    x: int,
    C: object,
    R: object,
    p_stop: float = 0.5,
    generator: torch.Generator | None = None,
    *,
    training: bool = True,
) -> list[tuple[int, int]]:
    r"""[GDAE] Algorithm 2 (the walkback algorithm, §3) for one training example ``x``.

    Walk :math:`\tilde X^* \sim C[X^*]`, stop w.p. ``p_stop`` (line 4: :math:`u > p` with
    :math:`p = 1 - p_\text{stop}` the probability to continue), else :math:`X^* \sim R[\tilde X^*]` and
    repeat. With ``training=True`` every visited :math:`\tilde X^*` is paired with the *original* ``x``
    (line 6), so the number of pairs is :math:`\mathrm{Geom}(p_\text{stop})` on :math:`\{1, 2, \dots\}`
    with mean :math:`1/p_\text{stop}` (2 for the default 0.5); with ``training=False`` only the last pair
    is returned, and its :math:`\tilde X^*` is a draw from row ``x`` of :func:`walkback_corruption`.

    Returns a list of ``(x, x_tilde)`` integer pairs.
    """
    c, r = markov.check_two_stage(C, R)
    if isinstance(x, bool):
        raise TypeError("x must be a single integer state, got bool")
    xs = checks.states("x", x, c.shape[0], c.device)
    if xs.dim() != 0:
        raise ValueError(f"x must be a single state, got shape {tuple(xs.shape)}")
    start = int(xs)
    p_continue = 1.0 - checks.open_probability("p_stop", p_stop)
    training = checks.boolean("training", training)
    generator = checks.generator("generator", generator)
    corrupt, reconstruct = markov.Categorical(c), markov.Categorical(r)
    pairs: list[tuple[int, int]] = []
    x_star = start
    u = iter(())
    while True:
        try:
            u_c, u_stop, u_r = next(u), next(u), next(u)
        except StopIteration:
            u = iter(markov.uniforms(3 * 16, generator).tolist())
            u_c, u_stop, u_r = next(u), next(u), next(u)
        x_tilde = corrupt.one(x_star, u_c)  # line 2
        if u_stop > p_continue:  # lines 3-5
            pairs.append((start, x_tilde))
            return pairs
        if training:  # line 6
            pairs.append((start, x_tilde))
        x_star = reconstruct.one(x_tilde, u_r)  # line 7


def walkback_batch(
    x: object,
    C: object,
    R: object,
    p_stop: float = 0.5,
    generator: torch.Generator | None = None,
    *,
    training: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""[GDAE] Algorithm 2 run for a batch of training examples at once (the vectorised
    :func:`walkback_pairs`: same distribution, not the same random numbers).

    Args:
        x: ``(B,)`` integer training examples.
        C, R, p_stop, training: as in :func:`walkback_pairs`.

    Returns ``(x_clean, x_tilde, k)``: the pairs as two int64 tensors, grouped by example in walk order,
    and ``k`` (``(B,)``), the number of corruptions of each walk (:math:`\mathrm{Geom}(p_\text{stop})`;
    also the number of pairs of each example when ``training=True``, else there is one pair each).
    """
    c, r = markov.check_two_stage(C, R)
    xs = checks.states("x", x, c.shape[0], c.device)
    if xs.dim() != 1:
        raise ValueError(f"x must be a 1-D tensor of states, got shape {tuple(xs.shape)}")
    p_continue = 1.0 - checks.open_probability("p_stop", p_stop)
    training = checks.boolean("training", training)
    generator = checks.generator("generator", generator)
    corrupt, reconstruct = markov.Categorical(c), markov.Categorical(r)
    start = xs.cpu().numpy()
    batch = start.size
    x_star, active = start.copy(), np.arange(batch)
    k = np.zeros(batch, dtype=np.int64)
    owners, tildes = [], []
    while active.size:
        u = markov.uniforms(3 * active.size, generator).reshape(3, active.size)
        x_tilde = corrupt.rows(x_star[active], u[0])
        k[active] += 1
        stop = u[1] > p_continue
        keep = np.ones_like(stop) if training else stop
        owners.append(active[keep])
        tildes.append(x_tilde[keep])
        go = ~stop
        active = active[go]
        x_star[active] = reconstruct.rows(x_tilde[go], u[2][go])
    owner = np.concatenate(owners) if owners else np.zeros(0, dtype=np.int64)
    tilde = np.concatenate(tildes) if tildes else np.zeros(0, dtype=np.int64)
    order = np.argsort(owner, kind="stable")
    return (
        torch.as_tensor(start[owner[order]], device=c.device),
        torch.as_tensor(tilde[order], device=c.device),
        torch.as_tensor(k, device=c.device),
    )


# ------------------------------------------------------------------------------------- binary states
def salt_and_pepper_kernel(d: int, rho: float, *, device: torch.device | str | None = None) -> torch.Tensor:
    r"""The exact ``(2**d, 2**d)`` salt-and-pepper corruption :math:`C[x, \tilde x] = \mathcal C(\tilde x
    \mid x)` on ``d`` bits.

    Each bit is corrupted independently with probability ``rho`` and then set to 0 or 1 with probability
    1/2 ([GDAE] §4, MNIST: "with probability 0.5, randomly corrupt each bit, by setting it to 1 or 0
    with probability 0.5"; [GSN14] §7: 40%), so a bit flips with probability :math:`\rho/2` and
    :math:`C = \bigotimes_{i=1}^d c`, :math:`c = \begin{pmatrix}1-\rho/2 & \rho/2\\ \rho/2 &
    1-\rho/2\end{pmatrix}`. In closed form :math:`C[x, \tilde x] = (1-\rho/2)^{d-h}
    (\rho/2)^h` with :math:`h` the Hamming distance. States are ordered as in
    :func:`~dae_tutor.markov.binary_states`.

    Args:
        d: number of bits, ``1 <= d <= 12``.
        rho: corruption probability of a bit, in ``[0, 1]``.
    """
    d = checks.bit_count("d", d, maximum=markov.MAX_BITS)
    rho = checks.probability("rho", rho)
    c = torch.tensor([[1 - rho / 2, rho / 2], [rho / 2, 1 - rho / 2]], dtype=F64, device=device)
    out = c
    for _ in range(d - 1):  # a loop over bits, not states
        out = torch.kron(out, c)
    return out


def factorized_projection(R: object) -> torch.Tensor:
    r"""The factorized (product-of-Bernoullis) decoder closest to ``R`` in the DAE criterion.

    :math:`R_\text{fact}(x \mid \tilde x) = \prod_i R(x_i \mid \tilde x)`, the product of the marginals
    of each row of ``R`` over the binary states of :func:`~dae_tutor.markov.binary_states`. Applied to
    the exact posterior this is what an infinite-capacity factorized-Bernoulli decoder learns (the
    cross-entropy criterion separates over bits; the family used on MNIST, [GDAE] §4, [TH] §5.3.3), and
    its chain is biased when the posterior is multimodal ([GSN14] §4, the paragraph on large noise).

    Args:
        R: ``(2**d, 2**d)`` row-stochastic reconstruction ``R[x_tilde, x]``.
    """
    r = checks.stochastic("R", R)
    k = r.shape[0]
    d = checks.bits_of_size("R", k)
    m = (r @ markov.binary_states(d, device=r.device).to(F64)).clamp(0.0, 1.0)  # m[x~, i] = R(x_i = 1 | x~)
    out = torch.ones(k, 1, dtype=F64, device=r.device)
    for i in range(d):  # most significant bit first, as in binary_states
        bit = torch.stack([1 - m[:, i], m[:, i]], dim=1)  # (K, 2)
        out = (out[:, :, None] * bit[:, None, :]).reshape(k, -1)
    return out


def unimodal_projection(R: object, xs: object, min_var: float = 1e-6) -> torch.Tensor:
    r"""A unimodal decoder: each row of ``R`` replaced by the discretised Gaussian on the grid ``xs`` with
    the row's mean and variance (``+ min_var``), renormalised.

    This is the "fuzzy average" a unimodal reconstruction family learns when the true posterior
    :math:`P(X \mid \tilde X)` has several modes ([GSN14] §4; [TH] §5.3.5).
    """
    r = checks.stochastic("R", R)
    grid = checks.as_tensor("xs", xs, device=r.device)
    if grid.shape != (r.shape[0],):
        raise ValueError(f"xs must have shape ({r.shape[0]},) to match R, got {tuple(grid.shape)}")
    min_var = checks.positive_float("min_var", min_var)
    mean = r @ grid
    var = r @ grid**2 - mean**2 + min_var
    logits = -((grid[None, :] - mean[:, None]) ** 2) / (2 * var.clamp_min(min_var)[:, None])
    return torch.softmax(logits, dim=1)


# ------------------------------------------------------------------------------------- clamping
def _subset(name: str, S: object, k: int, device: torch.device) -> torch.Tensor:
    """A non-empty subset of ``range(k)`` given as a boolean mask of length ``k`` or as integer states."""
    if (isinstance(S, torch.Tensor) and S.dtype == torch.bool) or (
        isinstance(S, np.ndarray) and S.dtype == bool
    ):
        mask = torch.as_tensor(S, device=device)
        if mask.shape != (k,):
            raise ValueError(f"{name} as a boolean mask must have shape ({k},), got {tuple(mask.shape)}")
    else:
        idx = checks.states(name, S, k, device).reshape(-1)
        mask = torch.zeros(k, dtype=torch.bool, device=device)
        mask[idx] = True
    if not bool(mask.any()):
        raise ValueError(f"{name} must contain at least one state")
    return mask


def _encoder_decoder(f: object, g: object) -> tuple[torch.Tensor, torch.Tensor]:
    """Check an encoder ``f[x, h]`` and a decoder ``g[h, x]`` with matching sizes; both on ``f``'s device."""
    ft = checks.stochastic("f", f, square=False)
    gt = checks.stochastic("g", g, device=ft.device, square=False)
    if gt.shape != (ft.shape[1], ft.shape[0]):
        raise ValueError(
            f"g must have shape (n_h, n_x) = {(ft.shape[1], ft.shape[0])} to match f of shape "
            f"(n_x, n_h) = {tuple(ft.shape)}, got {tuple(gt.shape)}"
        )
    return ft, gt


def conditional_on(p: object, S: object) -> torch.Tensor:
    r""":math:`p(x \mid x \in \mathcal S) = p(x)\,\mathbb I(x\in\mathcal S) / p(\mathcal S)` as a ``(K,)``
    vector (zero off ``S``); ``S`` is a boolean mask or a list of states ([TH] §5.3.6, Prop. 5)."""
    q = checks.pmf("p", p)
    mask = _subset("S", S, q.numel(), q.device)
    mass = float(q[mask].sum())
    if mass <= 0:
        raise ValueError("p must give S positive probability (Prop. 5 assumes P(X in S) > 0)")
    return torch.where(mask, q, torch.zeros_like(q)) / mass


def clamp_decoder(g: object, S: object) -> torch.Tensor:
    r"""The clamped decoder :math:`g(x \mid h, x \in \mathcal S) \propto g(x \mid h)\,\mathbb I(x \in
    \mathcal S)` ([TH] §5.3.6, Prop. 5), as a ``(n_h, n_x)`` matrix with zero columns off ``S``.

    For a DAE the decoder is ``R[x_tilde, x]``; clamping coordinates of :math:`X` (e.g. :math:`x_b = 1`,
    [TH] §5.3.6) means ``S`` is the set of states with those values. A row with no mass on ``S``
    cannot be conditioned; it is set to uniform on ``S`` (:func:`clamped_transition` refuses it when the
    clamped chain can reach that row).
    """
    gt = checks.stochastic("g", g, square=False)
    mask = _subset("S", S, gt.shape[1], gt.device)
    kept = torch.where(mask[None, :], gt, torch.zeros_like(gt))
    mass = kept.sum(dim=1, keepdim=True)
    uniform = mask.to(F64)[None, :] / float(mask.sum())
    return torch.where(mass > 0, kept / mass.clamp_min(1e-300), uniform)


def clamped_transition(f: object, g: object, S: object) -> torch.Tensor:
    r"""The clamped chain on :math:`\mathcal S`: :math:`h \sim f(\cdot \mid x)` with the **full** current
    ``x`` (clamped coordinates included), then :math:`x' \sim g(\cdot \mid h, x' \in \mathcal S)`
    ([TH] §5.3.6, Prop. 5; [GSN14] §5, Prop. 1).

    Args:
        f: ``(n_x, n_h)`` row-stochastic encoder ``f[x, h]`` (for a DAE, the corruption ``C``).
        g: ``(n_h, n_x)`` row-stochastic decoder ``g[h, x]`` (for a DAE, the reconstruction ``R``).
        S: the clamping set, a boolean mask of length ``n_x`` or a list of states.

    Returns the ``(|S|, |S|)`` row-stochastic transition between the states of ``S`` in increasing order.
    Raises ``ValueError`` naming ``g`` if ``f`` can reach, from ``S``, a latent ``h`` with
    :math:`g(\mathcal S \mid h) = 0`.
    """
    ft, gt = _encoder_decoder(f, g)
    mask = _subset("S", S, ft.shape[0], ft.device)
    reach = ft[mask].sum(dim=0) > 0
    dead = reach & ~(gt[:, mask].sum(dim=1) > 0)
    if bool(dead.any()):
        h = torch.nonzero(dead).reshape(-1)[:5].tolist()
        raise ValueError(f"g puts no mass on S for latent state(s) {h} that f reaches from S")
    return ft[mask] @ clamp_decoder(gt, mask)[:, mask]


def clamped_stationary(f: object, g: object, S: object) -> torch.Tensor:
    r"""Stationary distribution of :func:`clamped_transition` as an ``(n_x,)`` vector, zero off ``S``.

    With a mutually compatible pair (``f = pi(h|x)``, ``g = pi(x|h)`` for one joint ``pi``; e.g. the exact
    DAE posterior) it equals :math:`\pi(x \mid x \in \mathcal S)` ([TH] Prop. 5); with an incompatible
    pair it need not: the detailed-balance condition that [GSN14] Prop. 1 omitted ([DLB] §20.11.2).
    Compare with :func:`conditional_on`.
    """
    ft, gt = _encoder_decoder(f, g)
    mask = _subset("S", S, ft.shape[0], ft.device)
    out = torch.zeros(ft.shape[0], dtype=F64, device=ft.device)
    out[mask] = markov.stationary_distribution(clamped_transition(ft, gt, mask))
    return out


def encoder_decoder_joint(f: object, g: object) -> torch.Tensor:
    r"""The stationary joint :math:`\pi(x, h)` of the unclamped chain :math:`h' \sim f(\cdot\mid x)`,
    :math:`x' \sim g(\cdot \mid h')`, as an ``(n_x, n_h)`` matrix ([TH] App. 5.B, Prop. 3).

    ``h`` is the latent that produced ``x``: :math:`\pi(x, h) = \pi_H(h)\, g(x \mid h)` with
    :math:`\pi_H` stationary for :math:`g f` (on :math:`\mathcal H`); its ``x`` marginal is the
    stationary distribution of :math:`f g` (the DAE's :math:`T = C R`). When ``f`` and ``g`` are compatible,
    also :math:`\pi(x, h) = \pi(x) f(h \mid x)`.
    """
    ft, gt = _encoder_decoder(f, g)
    pi_h = markov.stationary_distribution(gt @ ft)
    return (pi_h[:, None] * gt).T


def clamped_encoder_residual(pi_joint: object, f: object, S: object) -> float:
    r"""How far the encoder is from mapping the clamped data law to the clamped latent law ([TH] App. 5.B,
    eq. 5.5): :math:`\max_{h'} \big|\sum_{x\in\mathcal S} \pi(x \mid x\in\mathcal S)\, f(h'\mid x) -
    \pi(h' \mid x \in \mathcal S)\big|`.

    Zero (eq. 5.5) is sufficient for the clamped chain to sample :math:`\pi(x \mid x\in\mathcal S)`
    (Prop. 3) and necessary when the clamped decoder's columns are linearly independent (Prop. 4).

    Args:
        pi_joint: ``(n_x, n_h)`` joint :math:`\pi(x, h)` (from :func:`encoder_decoder_joint`).
        f: ``(n_x, n_h)`` encoder. S: the clamping set.
    """
    ft = checks.stochastic("f", f, square=False)
    pj = checks.as_tensor("pi_joint", pi_joint, device=ft.device)
    if pj.shape != ft.shape:
        raise ValueError(f"pi_joint must have the shape of f, {tuple(ft.shape)}, got {tuple(pj.shape)}")
    checks.pmf("pi_joint (flattened)", pj.reshape(-1))
    mask = _subset("S", S, ft.shape[0], ft.device)
    mass = float(pj[mask].sum())
    if mass <= 0:
        raise ValueError("pi_joint must give S positive probability")
    px_s = pj[mask].sum(dim=1) / mass  # pi(x | x in S), x in S
    lhs = px_s @ ft[mask]
    rhs = pj[mask].sum(dim=0) / mass  # pi(h' | x in S)
    return float((lhs - rhs).abs().max())


# ------------------------------------------------------------------------------------- GSN with latent state
def _gsn_encoder(name: str, f: object) -> torch.Tensor:
    """An encoder ``f[x, h_prev, h]`` = f(h | h', x): ``(n_x, n_h, n_h)``, each ``f[x]`` stochastic."""
    ft = checks.as_tensor(name, f)
    if ft.dim() != 3 or ft.shape[1] != ft.shape[2] or ft.numel() == 0:
        raise ValueError(f"{name} must have shape (n_x, n_h, n_h) (f[x, h_prev, h]), got {tuple(ft.shape)}")
    n_x, n_h, _ = ft.shape
    return checks.stochastic(name, ft.reshape(n_x * n_h, n_h), square=False).reshape(n_x, n_h, n_h)


def burnin_hidden(f: object, k: int | None = None, h_init: int = 0) -> torch.Tensor:
    r"""The law :math:`q_k(h \mid x)` of :math:`H_1` after ``k`` encoder steps with :math:`X_0 = x` clamped.

    [TH] Algorithm 1, lines 12-16: start from :math:`h = ` ``h_init`` (the papers' :math:`H_0 =
    0`, [TH] §5.3.4 and §5.5.2) and apply :math:`f(\cdot \mid h', x)` ``k`` times:
    :math:`q_0 = \delta_{h_\text{init}}`,
    :math:`q_k(\cdot\mid x) = q_{k-1}(\cdot\mid x)\, f[x]`. So ``k=1`` is "a fixed :math:`H_0=0`" and more
    steps burn in :math:`H`. ``k=None`` gives the exact fixed point :math:`q_\infty(\cdot \mid x)`, the
    stationary distribution of every ``f[x]`` (by :func:`~dae_tutor.markov.gth_solve`): the third
    hypothesis of Theorem 3, :math:`P(H_0\mid X_0) = P(H_1 \mid X_0)` ([TH] §5.3.4).

    Args:
        f: ``(n_x, n_h, n_h)`` encoder ``f[x, h_prev, h]``.
        k: number of burn-in steps ``>= 1``, or ``None`` for the fixed point (each ``f[x]`` must then
            have a unique stationary distribution).
        h_init: the initial latent state.

    Returns an ``(n_x, n_h)`` row-stochastic matrix ``q[x, h]``.
    """
    ft = _gsn_encoder("f", f)
    n_x, n_h, _ = ft.shape
    h_init = checks.nonnegative_int("h_init", h_init)
    if h_init >= n_h:
        raise ValueError(f"h_init must be a latent state in [0, {n_h}), got {h_init}")
    if k is None:
        for x in range(n_x):  # a loop over data states, each f[x] solved by GTH
            if len(markov.closed_classes(ft[x])) > 1:
                raise ValueError(
                    f"f[x] must have a unique stationary distribution for every x when k is None; "
                    f"f[{x}] is reducible"
                )
        return torch.stack([markov.gth_solve(ft[x]) for x in range(n_x)])
    k = checks.positive_int("k", k)
    q = torch.zeros(n_x, n_h, dtype=F64, device=ft.device)
    q[:, h_init] = 1.0
    for _ in range(k):  # a loop over burn-in steps; all x at once
        q = torch.einsum("xh,xhk->xk", q, ft)
    return q


def gsn_decoder_target(P: object, q: object) -> torch.Tensor:
    r"""The optimal decoder :math:`g(x \mid h) = P(X_0 = x \mid H_1 = h) \propto P(x)\, q(h \mid x)`
    ([TH] §5.3.4, eq. 5.4: the maximiser of the training criterion). A latent with zero mass gets a
    uniform row.

    Args:
        P: ``(n_x,)`` data distribution. q: ``(n_x, n_h)`` law of :math:`H_1` given :math:`X_0`
            (:func:`burnin_hidden`).

    Returns the ``(n_h, n_x)`` row-stochastic decoder ``g[h, x]``.
    """
    qt = checks.stochastic("q", q, square=False)
    p = checks.pmf("P", P, qt.device)
    checks.same_states("q", qt.shape[0], "P", p.numel())
    joint = p[:, None] * qt  # (n_x, n_h)
    mass = joint.sum(0)
    uniform = torch.full_like(joint.T, 1.0 / p.numel())
    return torch.where(mass[:, None] > 0, joint.T / mass.clamp_min(1e-300)[:, None], uniform)


def gsn_joint_transition(f: object, g: object) -> torch.Tensor:
    r"""The GSN chain on :math:`(X, H)`: :math:`H_{t+1} \sim f(\cdot \mid H_t, X_t)`, :math:`X_{t+1} \sim
    g(\cdot \mid H_{t+1})` ([TH] §5.3.4; [DLB] §20.12).

    :math:`M[(x,h),(x',h')] = f(h' \mid h, x)\, g(x' \mid h')`, with state index ``x * n_h + h``.

    Args:
        f: ``(n_x, n_h, n_h)`` encoder ``f[x, h_prev, h]``. g: ``(n_h, n_x)`` decoder ``g[h, x]``.

    Returns an ``(n_x n_h, n_x n_h)`` row-stochastic matrix.
    """
    ft = _gsn_encoder("f", f)
    n_x, n_h, _ = ft.shape
    gt = checks.stochastic("g", g, device=ft.device, square=False)
    if gt.shape != (n_h, n_x):
        raise ValueError(f"g must have shape (n_h, n_x) = {(n_h, n_x)}, got {tuple(gt.shape)}")
    m = ft[:, :, None, :] * gt.T[None, None, :, :]  # [x, h, x', h'] = f[x, h, h'] g[h', x']
    return m.reshape(n_x * n_h, n_x * n_h)


def gsn_marginal_x(pi_joint: object, n_x: int, n_h: int) -> torch.Tensor:
    r"""The :math:`X` marginal :math:`\pi_X` of a distribution on :math:`(X, H)` indexed ``x * n_h + h``
    (Theorem 3's conclusion is :math:`\pi_X = P(X_0)`, [TH] §5.3.4)."""
    n_x = checks.positive_int("n_x", n_x)
    n_h = checks.positive_int("n_h", n_h)
    p = checks.pmf("pi_joint", pi_joint)
    if p.numel() != n_x * n_h:
        raise ValueError(f"pi_joint must have n_x * n_h = {n_x * n_h} entries, got {p.numel()}")
    return p.reshape(n_x, n_h).sum(1)


# ------------------------------------------------------------------------------------- continuous samplers
def nonparametric_dae_step(
    x: torch.Tensor, train_x: torch.Tensor, sigma_c: float, s: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    r"""One step of the exact non-parametric DAE chain on :math:`\mathbb R^d` (the continuous
    panels of [TH] Fig. 5.3, §5.5.1, and [GDAE] Fig. 3, §4).

    Target: the Parzen density :math:`p_s(x) = \frac1n \sum_i \mathcal N(x; x_i, s^2 I)`; corruption
    :math:`\tilde x = x + \sigma_c \varepsilon`. The exact posterior is a Gaussian mixture,
    :math:`p(x \mid \tilde x) = \sum_i w_i(\tilde x)\,\mathcal N\big(x;\ \tfrac{\sigma_c^2 x_i + s^2\tilde
    x}{s^2 + \sigma_c^2},\ \tfrac{s^2\sigma_c^2}{s^2+\sigma_c^2} I\big)`,
    :math:`w_i \propto \mathcal N(\tilde x; x_i, (s^2 + \sigma_c^2) I)`, so the chain
    :math:`x \to \tilde x \to x'` has stationary law exactly :math:`p_s`
    (Theorem 1 with an exact reconstruction).

    Args:
        x: ``(B, d)`` current states (B parallel chains). train_x: ``(n, d)`` training points.
        sigma_c: corruption std ``> 0``. s: Parzen width ``> 0``.
        generator: ``torch.Generator`` on ``x``'s device.

    Returns the ``(B, d)`` next states, on ``x``'s device and dtype.
    """
    x = checks.nonempty("x", checks.tensor("x", x, ndim=2))
    centres = checks.nonempty("train_x", checks.tensor("train_x", train_x, ndim=2))
    centres = checks.same_width("train_x", centres, "x", x).to(x)
    sigma_c = checks.positive_float("sigma_c", sigma_c)
    s = checks.positive_float("s", s)
    checks.generator("generator", generator, x)
    x_tilde = corruption.gaussian(x, sigma_c, generator, check=False)
    logw = -torch.cdist(x_tilde, centres).pow(2) / (2 * (s**2 + sigma_c**2))
    idx = torch.multinomial(torch.softmax(logw, dim=1), 1, generator=generator)[:, 0]
    mean = (sigma_c**2 * centres[idx] + s**2 * x_tilde) / (s**2 + sigma_c**2)
    std = s * sigma_c / math.sqrt(s**2 + sigma_c**2)
    return corruption.gaussian(mean, std, generator, check=False)


def posterior_spread(train_x: torch.Tensor, x_tilde: torch.Tensor, sigma_c: float) -> float:
    r"""Per-coordinate RMS spread of the exact posterior P(X | x̃) of the empirical law of ``train_x``.

    With X uniform on the n rows x_i of ``train_x`` ``(n, d)`` and x̃ = X + σ_c ε, P(X = x_i | x̃) =
    w_i(x̃) ∝ exp(−‖x̃ − x_i‖² / 2σ_c²); returns :math:`\sqrt{\operatorname{mean}_{\tilde x}
    \sum_i w_i \lVert x_i - \bar x(\tilde x)\rVert^2 / d}` over the rows of ``x_tilde`` ``(B, d)``
    (draws of X̃), :math:`\bar x = \sum_i w_i x_i` (Tweedie's mean). This is the Bayes-optimal
    reconstruction RMSE, the noise level that [DLB] §20.11 (Fig. 20.11) gives a Gaussian reconstruction
    head ("should correspond to the mean squared error of reconstructions") and that Theorem 1's
    premise, P_θ(X | X̃) = the true posterior, asks of its variance (:func:`gaussian_dae_step`'s ``s``).
    """
    centres = checks.nonempty("train_x", checks.tensor("train_x", train_x, ndim=2)).to(F64)
    xt = checks.nonempty("x_tilde", checks.tensor("x_tilde", x_tilde, ndim=2))
    xt = checks.same_width("x_tilde", xt, "train_x", centres).to(device=centres.device, dtype=F64)
    sigma_c = checks.positive_float("sigma_c", sigma_c)
    w = torch.softmax(-torch.cdist(xt, centres).pow(2) / (2 * sigma_c**2), dim=1)  # (B, n)
    mean = w @ centres
    spread = (w * torch.cdist(mean, centres).pow(2)).sum(1).mean() / centres.shape[1]
    return spread.sqrt().item()


def gaussian_dae_step(
    r: nn.Module, x: torch.Tensor, sigma: float, s: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One step of a DAE chain with a Gaussian reconstruction head: x̃ = x + σε, x' ~ N(r(x̃), s² I).

    The continuous analogue of :meth:`~dae_tutor.binary_nets.BernoulliDAE.step` ([DLB] §20.11,
    Fig. 20.11: in the Gaussian case sampling adds noise a second time, at a level that "should
    correspond to the mean squared error of reconstructions"). ``r`` maps (B, d) to (B, d); returns
    (B, d) with no gradient.
    """
    x = checks.nonempty("x", checks.tensor("x", x, ndim=2))
    sigma = checks.positive_float("sigma", sigma)
    s = checks.positive_float("s", s, allow_zero=True)
    checks.generator("generator", generator, x)
    with torch.no_grad():
        mean = checks.applied("r", r, "x", corruption.gaussian(x, sigma, generator, check=False))
        # not corruption.gaussian: s may be 0, and the second draw is made even then, so that the random
        # stream of a chain does not depend on s
        return mean + s * torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def log_density_difference(
    log_reconstruction: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    log_corruption: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x1: torch.Tensor,
    x2: torch.Tensor,
    x_tilde: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""The [GDAE] §2.4 energy estimate of log p(x₂) − log p(x₁) through one corrupted point x̃.

    Bayes' rule P(x | x̃) = P(x) C(x̃ | x) / P(x̃) gives, for any x̃ that both points can reach,
    energy(x) = −log P(x | x̃) + log C(x̃ | x) + const(x̃), so

    .. math:: \log p(x_2) - \log p(x_1) = [\log P(x_2\mid\tilde x) - \log C(\tilde x\mid x_2)]
              - [\log P(x_1\mid\tilde x) - \log C(\tilde x\mid x_1)],

    exact for the true posterior and any such x̃; with a learned P(x | x̃) it is trusted only for
    x₁, x₂ near x̃, hence [GDAE]'s default x̃ = (x₁ + x₂)/2 (used when ``x_tilde`` is None).

    Args:
        log_reconstruction: ``(x, x_tilde) -> log P(x | x_tilde)``, batched over the leading dimension.
        log_corruption: ``(x_tilde, x) -> log C(x_tilde | x)``, batched the same way.
        x1, x2: points (same shape, batched over the leading dimension).
        x_tilde: the corrupted points; default the midpoints (floating ``x1`` only).
    Returns:
        The estimates, one per row (float64).
    """
    if not callable(log_reconstruction):
        raise TypeError(f"log_reconstruction must be callable, got {type(log_reconstruction).__name__}")
    if not callable(log_corruption):
        raise TypeError(f"log_corruption must be callable, got {type(log_corruption).__name__}")
    x1 = checks.nonempty("x1", checks.tensor("x1", x1, floating=False))
    x2 = checks.tensor("x2", x2, floating=False)
    if x1.shape != x2.shape:
        raise ValueError(f"x1 and x2 must have the same shape, got {tuple(x1.shape)} and {tuple(x2.shape)}")
    if x_tilde is None:
        if not x1.is_floating_point():
            raise ValueError("x_tilde is required for integer states (the midpoint is not a state)")
        x_tilde = (x1 + x2) / 2
    x_tilde = checks.tensor("x_tilde", x_tilde, floating=False)
    if len(x_tilde) != len(x1):
        raise ValueError(f"x_tilde must have {len(x1)} rows (one per pair), got {len(x_tilde)}")

    def term(x: torch.Tensor) -> torch.Tensor:
        return log_reconstruction(x, x_tilde).double() - log_corruption(x_tilde, x).double()

    return term(x2) - term(x1)
