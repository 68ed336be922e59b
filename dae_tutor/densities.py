r"""Toy densities with exact ``sample``, ``log_prob`` and ``score``.

Three worlds of the first chapter:

* :class:`GaussianMixture` in any dimension, with the closed forms that make it
  the chapter's test bench: the smoothed density :math:`p_\sigma = p * \mathcal N(0,\sigma^2 I)`,
  the optimal denoising reconstruction :math:`r^*_\sigma` (thesis Thm 1, eq. 3.3),
  and the exact posterior :math:`P(X\mid\tilde X)`;
  :func:`reference_mixture_1d` is the chapter's reference 1-D density.
* :class:`Spiral`, the 2-D data of thesis §3.3.4 (Fig. 3.5) with the misprint fixed.
* :class:`Curve10d`, a 1-d manifold in 10-d for Fig. 3.6 (the thesis does not give its formula).

Parameters are stored in float64 on one device; every method accepts float32 or
float64 inputs on any device and answers in the input's dtype and device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from dae_tutor import checks, corruption

__all__ = ["Curve10d", "GaussianMixture", "Spiral", "reference_mixture_1d"]

_WEIGHT_TOL = 1e-6
_SYMMETRY_TOL = 1e-8


def _sigma(sigma: object) -> float:
    return checks.positive_float("sigma", sigma)


class GaussianMixture:
    r"""A mixture :math:`p(x) = \sum_k w_k\, \mathcal N(x; \mu_k, S_k)` in :math:`\mathbb R^d`.

    Args:
        weights: ``(K,)``, non-negative, summing to 1 (within 1e-6; renormalised exactly).
        means: ``(K, d)``.
        covs: ``(K, d, d)`` symmetric positive definite matrices, or ``(K,)`` variances
            meaning :math:`S_k = s_k I`.
        dtype: storage dtype (default float64).
        device: storage device (default: that of ``means`` if it is a tensor, else the CPU).

    ``sample`` draws on the storage device; every other method follows its input's
    dtype and device.
    """

    def __init__(
        self,
        weights: object,
        means: object,
        covs: object,
        *,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> None:
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
        if device is None and isinstance(means, torch.Tensor):
            device = means.device
        w = checks.as_tensor("weights", weights, dtype=dtype, device=device)
        mu = checks.as_tensor("means", means, dtype=dtype, device=device)
        cov = checks.as_tensor("covs", covs, dtype=dtype, device=device)
        if w.dim() != 1 or w.numel() == 0:
            raise ValueError(f"weights must have shape (K,) with K >= 1, got {tuple(w.shape)}")
        k = w.shape[0]
        if mu.dim() != 2 or mu.shape[0] != k or mu.shape[1] == 0:
            raise ValueError(
                f"means must have one row per entry of weights, shape (K, d) = ({k}, d) with d >= 1, "
                f"got {tuple(mu.shape)}"
            )
        d = mu.shape[1]
        if bool((w < 0).any()):
            raise ValueError("weights must be non-negative")
        total = float(w.sum())
        if abs(total - 1.0) > _WEIGHT_TOL:
            raise ValueError(f"weights must sum to 1 (within {_WEIGHT_TOL}), got sum {total!r}")
        if cov.dim() == 1:
            if cov.shape[0] != k:
                raise ValueError(f"covs given as variances must have shape ({k},), got {tuple(cov.shape)}")
            if bool((cov <= 0).any()):
                raise ValueError("covs given as variances must be > 0")
            cov = cov[:, None, None] * torch.eye(d, dtype=dtype, device=cov.device)
        if cov.shape != (k, d, d):
            raise ValueError(f"covs must have shape (K, d, d) = ({k}, {d}, {d}), got {tuple(cov.shape)}")
        scale = cov.abs().amax(dim=(-2, -1), keepdim=True).clamp_min(torch.finfo(dtype).tiny)
        if bool(((cov - cov.mT).abs() > _SYMMETRY_TOL * scale).any()):
            raise ValueError("covs must be symmetric")
        cov = 0.5 * (cov + cov.mT)
        chol, info = torch.linalg.cholesky_ex(cov)
        if bool((info != 0).any()):
            bad = int(torch.nonzero(info)[0, 0])
            raise ValueError(f"covs must be positive definite (Cholesky failed for component {bad})")
        self._weights = w / w.sum()
        self._means = mu
        self._covs = cov
        self._chol = chol

    # ------------------------------------------------------------------ basics
    @property
    def dim(self) -> int:
        """The dimension ``d``."""
        return self._means.shape[1]

    @property
    def n_components(self) -> int:
        """The number of components ``K``."""
        return self._means.shape[0]

    @property
    def weights(self) -> torch.Tensor:
        """Mixture weights ``(K,)`` (a copy)."""
        return self._weights.clone()

    @property
    def means(self) -> torch.Tensor:
        """Component means ``(K, d)`` (a copy)."""
        return self._means.clone()

    @property
    def covs(self) -> torch.Tensor:
        """Component covariances ``(K, d, d)`` (a copy)."""
        return self._covs.clone()

    @property
    def dtype(self) -> torch.dtype:
        return self._means.dtype

    @property
    def device(self) -> torch.device:
        return self._means.device

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> GaussianMixture:
        """A copy stored on ``device`` in ``dtype`` (defaults: unchanged)."""
        return GaussianMixture(
            self._weights, self._means, self._covs, dtype=dtype or self.dtype, device=device or self.device
        )

    def __repr__(self) -> str:
        return f"GaussianMixture(n_components={self.n_components}, dim={self.dim}, dtype={self.dtype})"

    def _check_x(self, name: str, x: object) -> torch.Tensor:
        return checks.tensor(name, x, last_dim=self.dim, nonempty=True)

    def _params(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log weights, means, precision Cholesky L^{-1}, log det S), cast like ``like``."""
        eye = torch.eye(self.dim, dtype=self.dtype, device=self.device)
        chol_inv = torch.linalg.solve_triangular(self._chol, eye.expand_as(self._chol), upper=False)
        logdet = 2.0 * torch.log(torch.diagonal(self._chol, dim1=-2, dim2=-1)).sum(-1)
        out = (torch.log(self._weights), self._means, chol_inv, logdet)
        return tuple(t.to(dtype=like.dtype, device=like.device) for t in out)  # type: ignore[return-value]

    def _component_terms(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-component ``log w_k + log N(x; mu_k, S_k)`` ``(..., K)`` and ``x - mu_k`` ``(..., K, d)``."""
        log_w, mu, chol_inv, logdet = self._params(x)
        diff = x.unsqueeze(-2) - mu
        z = torch.einsum("kij,...kj->...ki", chol_inv, diff)
        log_n = -0.5 * (z.pow(2).sum(-1) + logdet + self.dim * math.log(2 * math.pi))
        return log_w + log_n, diff

    # ------------------------------------------------------------ exact values
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\log p(x)` for ``x`` of shape ``(..., d)``; returns ``(...,)``."""
        x = self._check_x("x", x)
        terms, _ = self._component_terms(x)
        return torch.logsumexp(terms, dim=-1)

    def responsibilities(self, x: torch.Tensor) -> torch.Tensor:
        r"""Responsibilities :math:`\gamma_k(x) = w_k \mathcal N(x;\mu_k,S_k)/p(x)`, shape ``(..., K)``."""
        x = self._check_x("x", x)
        terms, _ = self._component_terms(x)
        return torch.softmax(terms, dim=-1)

    def _precisions(self, like: torch.Tensor) -> torch.Tensor:
        return torch.cholesky_inverse(self._chol).to(dtype=like.dtype, device=like.device)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        r"""The exact score :math:`\nabla \log p(x) = \sum_k \gamma_k(x) S_k^{-1}(\mu_k - x)`.

        ``x`` has shape ``(..., d)``; the result has the same shape.
        """
        x = self._check_x("x", x)
        terms, diff = self._component_terms(x)
        gamma = torch.softmax(terms, dim=-1)
        comp = -torch.einsum("kij,...kj->...ki", self._precisions(x), diff)
        return torch.einsum("...k,...kd->...d", gamma, comp)

    def hessian_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r"""The exact Hessian :math:`\nabla^2 \log p(x)`, shape ``(..., d, d)``.

        With :math:`g_k = S_k^{-1}(\mu_k - x)` and :math:`s = \sum_k \gamma_k g_k`:
        :math:`\nabla^2\log p = \sum_k \gamma_k (g_k g_k^\top - S_k^{-1}) - s s^\top`.
        """
        x = self._check_x("x", x)
        terms, diff = self._component_terms(x)
        gamma = torch.softmax(terms, dim=-1)
        prec = self._precisions(x)
        g = -torch.einsum("kij,...kj->...ki", prec, diff)
        s = torch.einsum("...k,...kd->...d", gamma, g)
        second = torch.einsum("...k,...ki,...kj->...ij", gamma, g, g) - torch.einsum(
            "...k,kij->...ij", gamma, prec
        )
        return second - s.unsqueeze(-1) * s.unsqueeze(-2)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` exact draws, shape ``(n, d)``, on the storage device and dtype.

        A ``generator`` must live on the storage device.
        """
        n = checks.positive_int("n", n)
        generator = checks.generator("generator", generator)
        comp = torch.multinomial(self._weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, dtype=self.dtype, device=self.device, generator=generator)
        return self._means[comp] + torch.einsum("nij,nj->ni", self._chol[comp], z)

    # ------------------------------------------------- Gaussian corruption
    def smoothed(self, sigma: float) -> GaussianMixture:
        r"""The exact :math:`p_\sigma = p * \mathcal N(0, \sigma^2 I)`, with covs :math:`S_k + \sigma^2 I`."""
        sigma = _sigma(sigma)
        eye = torch.eye(self.dim, dtype=self.dtype, device=self.device)
        return GaussianMixture(self._weights, self._means, self._covs + sigma**2 * eye, dtype=self.dtype)

    def _gain(self, sigma: float) -> torch.Tensor:
        r""":math:`\sigma^2 (S_k + \sigma^2 I)^{-1}`, so that :math:`S_k(S_k+\sigma^2 I)^{-1} = I - ` this."""
        eye = torch.eye(self.dim, dtype=self.dtype, device=self.device)
        return sigma**2 * torch.linalg.inv(self._covs + sigma**2 * eye)

    def optimal_reconstruction(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        r"""The optimal DAE :math:`r^*_\sigma(x) = \mathbb E[X \mid \tilde X = x]` (thesis eq. 3.3).

        Closed form :math:`\sum_k w_k(x)[\mu_k + S_k(S_k+\sigma^2I)^{-1}(x-\mu_k)]` with
        :math:`w_k` the responsibilities under :math:`p_\sigma`; it equals
        :math:`x + \sigma^2 \nabla\log p_\sigma(x)` (Tweedie) for every ``sigma > 0``.
        """
        x = self._check_x("x", x)
        sigma = _sigma(sigma)
        smooth = self.smoothed(sigma)
        terms, diff = smooth._component_terms(x)
        w = torch.softmax(terms, dim=-1)
        gain = self._gain(sigma).to(dtype=x.dtype, device=x.device)
        comp = x.unsqueeze(-2) - torch.einsum("kij,...kj->...ki", gain, diff)
        return torch.einsum("...k,...kd->...d", w, comp)

    def posterior(
        self, x_tilde: torch.Tensor, sigma: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r"""The exact posterior :math:`P(X \mid \tilde X = \tilde x)`, :math:`\tilde X = X + \sigma\epsilon`.

        It is the mixture :math:`\sum_k w_k(\tilde x)\, \mathcal N(m_k(\tilde x), C_k)` with
        :math:`m_k = \mu_k + S_k(S_k+\sigma^2 I)^{-1}(\tilde x-\mu_k)` and
        :math:`C_k = S_k - S_k(S_k+\sigma^2I)^{-1}S_k = \sigma^2 S_k (S_k+\sigma^2 I)^{-1}`.

        Returns ``(weights (..., K), means (..., K, d), covs (K, d, d))``.
        """
        x_tilde = self._check_x("x_tilde", x_tilde)
        sigma = _sigma(sigma)
        terms, diff = self.smoothed(sigma)._component_terms(x_tilde)
        w = torch.softmax(terms, dim=-1)
        gain = self._gain(sigma)
        means = x_tilde.unsqueeze(-2) - torch.einsum(
            "kij,...kj->...ki", gain.to(dtype=x_tilde.dtype, device=x_tilde.device), diff
        )
        cov = gain @ self._covs  # = S - S (S + sigma^2 I)^{-1} S
        cov = 0.5 * (cov + cov.mT)
        return w, means, cov.to(dtype=x_tilde.dtype, device=x_tilde.device)

    def sample_posterior(
        self, x_tilde: torch.Tensor, sigma: float, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        r"""One exact draw of :math:`X \sim P(X \mid \tilde X = \tilde x)` per row of ``x_tilde`` ``(n, d)``.

        Randomness is drawn on the ``generator``'s device (CPU by default) and moved to ``x_tilde``'s.
        """
        x_tilde = checks.tensor("x_tilde", x_tilde, ndim=2, last_dim=self.dim, nonempty=True)
        generator = checks.generator("generator", generator)
        w, means, cov = self.posterior(x_tilde, sigma)
        gen_device = generator.device if generator is not None else torch.device("cpu")
        comp = torch.multinomial(w.to(gen_device, torch.float64), 1, generator=generator)[:, 0]
        z = torch.randn(
            x_tilde.shape[0], self.dim, dtype=torch.float64, device=gen_device, generator=generator
        )
        comp = comp.to(x_tilde.device)
        z = z.to(dtype=x_tilde.dtype, device=x_tilde.device)
        chol = torch.linalg.cholesky(cov.to(torch.float64)).to(dtype=x_tilde.dtype)
        rows = torch.arange(x_tilde.shape[0], device=x_tilde.device)
        return means[rows, comp] + torch.einsum("nij,nj->ni", chol[comp], z)


def reference_mixture_1d() -> GaussianMixture:
    r"""The reference 1-D density :math:`0.4\,\mathcal N(-0.6, 0.25^2) + 0.6\,\mathcal N(0.5, 0.35^2)`.

    The thesis's Fig. 3.3 density (§3.3.3) is unspecified; this is the book's choice,
    used on ``[-1.5, 1.5]``. The max of :math:`|\nabla\log p|` over the ``M = 1000`` grid points in
    ``[-1, 1]`` is 6.38 (a reference value computed in NumPy when the density was chosen); over the
    closed interval it is 6.40, at ``x = -1``.
    """
    return GaussianMixture([0.4, 0.6], [[-0.6], [0.5]], [[[0.25**2]], [[0.35**2]]])


def _uniform_t(n: object, generator: object, low: float, high: float) -> torch.Tensor:
    """``n`` curve parameters t ~ U(low, high), float64 on the generator's device (CPU without one)."""
    n = checks.positive_int("n", n)
    generator = checks.generator("generator", generator)
    device = generator.device if generator is not None else torch.device("cpu")
    return low + (high - low) * torch.rand(n, dtype=torch.float64, device=device, generator=generator)


def _check_t(t: object) -> torch.Tensor:
    return checks.tensor("t", t if isinstance(t, torch.Tensor) else checks.as_tensor("t", t))


class Spiral:
    r"""The 2-D spiral of thesis §3.3.4 (Fig. 3.5), with the printed formula corrected.

    The thesis prints :math:`x = 0.04\sin t,\ y = 0.04\cos t` (a circle); the author's code
    and the prose ("between two arms of the spiral") need the factor :math:`t` (a misprint in the
    thesis):

    .. math:: \gamma(t) = \text{scale}\cdot t\,(\sin t, \cos t),\qquad t \sim U(t_0, t_1),

    followed by radial noise :math:`x \leftarrow x\,(1 + \xi/\lVert x\rVert)`,
    :math:`\xi\sim\mathcal N(0, \text{radial\_noise}^2)`. Use ``t_range=(3, 15)`` for the code's range.
    """

    def __init__(
        self,
        t_range: Sequence[float] = (3.0, 12.0),
        scale: float = 0.04,
        radial_noise: float = 0.01,
    ) -> None:
        if not isinstance(t_range, Sequence) or len(t_range) != 2:
            raise TypeError(f"t_range must be a pair (t0, t1), got {t_range!r}")
        t0 = checks.positive_float("t_range[0]", t_range[0])
        t1 = checks.positive_float("t_range[1]", t_range[1])
        if t1 <= t0:
            raise ValueError(f"t_range must satisfy t0 < t1, got {tuple(t_range)}")
        self.t_range = (t0, t1)
        self.scale = checks.positive_float("scale", scale)
        self.radial_noise = checks.positive_float("radial_noise", radial_noise, allow_zero=True)

    dim = 2

    def __repr__(self) -> str:
        return f"Spiral(t_range={self.t_range}, scale={self.scale}, radial_noise={self.radial_noise})"

    def point(self, t: torch.Tensor) -> torch.Tensor:
        r""":math:`\gamma(t) = \text{scale}\cdot t(\sin t, \cos t)`, shape ``(..., 2)``."""
        t = _check_t(t)
        return self.scale * t.unsqueeze(-1) * torch.stack([torch.sin(t), torch.cos(t)], dim=-1)

    def tangent(self, t: torch.Tensor) -> torch.Tensor:
        r"""The analytic unit tangent :math:`\gamma'(t)/\lVert\gamma'(t)\rVert`, shape ``(..., 2)``.

        :math:`\gamma'(t) = \text{scale}\,(\sin t + t\cos t,\ \cos t - t\sin t)`, of norm
        :math:`\text{scale}\sqrt{1+t^2}`.
        """
        t = _check_t(t)
        s, c = torch.sin(t), torch.cos(t)
        v = torch.stack([s + t * c, c - t * s], dim=-1)
        return v / torch.sqrt(1 + t * t).unsqueeze(-1)

    def normal(self, t: torch.Tensor) -> torch.Tensor:
        """The unit normal: the tangent turned by +90 degrees, shape ``(..., 2)``."""
        tan = self.tangent(t)
        return torch.stack([-tan[..., 1], tan[..., 0]], dim=-1)

    def arm_segments(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r"""``n`` segments across the gap between two arms: ``(t, inner, outer)``.

        ``inner`` = γ(t) and ``outer`` = γ(t + 2π), the point one turn further out on the same ray
        (the arms are 2π·scale apart, thesis §3.3.4), for ``n`` evenly spaced
        t ∈ [t₀, t₁ − 2π]: both arms exist there (for larger t the "outer" point lies beyond the end
        of the spiral). Raises ``ValueError`` when the spiral makes less than one turn.
        """
        n = checks.positive_int("n", n, minimum=2)
        t0, t1 = self.t_range
        if t1 - t0 <= 2 * math.pi:
            raise ValueError(f"the spiral makes less than one turn (t_range = {self.t_range}): no two arms")
        t = torch.linspace(t0, t1 - 2 * math.pi, n, dtype=torch.float64)
        return t, self.point(t), self.point(t + 2 * math.pi)

    def sample_with_t(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` noisy points ``(n, 2)`` and their ``t`` ``(n,)``, float64 on the generator's device."""
        t = _uniform_t(n, generator, *self.t_range)
        x = self.point(t)
        if self.radial_noise > 0:
            xi = self.radial_noise * torch.randn(t.shape, dtype=t.dtype, device=t.device, generator=generator)
            x = x * (1 + xi / x.norm(dim=-1)).unsqueeze(-1)
        return x, t

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` noisy points ``(n, 2)``, float64 on the generator's device (CPU by default)."""
        return self.sample_with_t(n, generator)[0]


class Curve10d:
    r"""A closed 1-d manifold in :math:`\mathbb R^{10}` for Fig. 3.6 (thesis §3.4.2; our choice).

    :math:`\gamma_i(t) = \sin(2\pi f_i t + \phi_i)` with integer frequencies
    :math:`f_i = 1 + (i \bmod 3)`, :math:`\phi_i = 0.7 i`, :math:`i = 0..9`, :math:`t\sim U(0,1)`, and
    :math:`x = \gamma(t) + \text{noise}\cdot\mathcal N(0, I_{10})`. Integer frequencies close the
    curve (:math:`\gamma(0) = \gamma(1)`); the data lie in :math:`[-1.5, 1.5]^{10}` as the thesis
    says of its own (unspecified) curve. The book's first design used :math:`f_i = 0.5 + 0.1 i`, which
    gives an open curve.
    """

    dim = 10

    def __init__(self, noise: float = 0.05) -> None:
        self.noise = checks.positive_float("noise", noise, allow_zero=True)
        i = torch.arange(self.dim, dtype=torch.float64)
        self.frequencies = 1.0 + torch.remainder(i, 3)
        self.phases = 0.7 * i

    def __repr__(self) -> str:
        return f"Curve10d(noise={self.noise})"

    def point(self, t: torch.Tensor) -> torch.Tensor:
        r""":math:`\gamma(t)`, shape ``(..., 10)``."""
        t = _check_t(t)
        f = self.frequencies.to(dtype=t.dtype, device=t.device)
        ph = self.phases.to(dtype=t.dtype, device=t.device)
        return torch.sin(2 * math.pi * f * t.unsqueeze(-1) + ph)

    def tangent(self, t: torch.Tensor) -> torch.Tensor:
        r"""The unit tangent :math:`\gamma'(t)/\lVert\gamma'(t)\rVert`, shape ``(..., 10)``."""
        t = _check_t(t)
        f = self.frequencies.to(dtype=t.dtype, device=t.device)
        ph = self.phases.to(dtype=t.dtype, device=t.device)
        v = 2 * math.pi * f * torch.cos(2 * math.pi * f * t.unsqueeze(-1) + ph)
        return v / v.norm(dim=-1, keepdim=True)

    def sample_with_t(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` noisy points ``(n, 10)`` and their ``t`` ``(n,)``, float64 on the generator's device."""
        t = _uniform_t(n, generator, 0.0, 1.0)
        x = self.point(t)
        if self.noise > 0:
            x = corruption.gaussian(x, self.noise, generator, check=False)
        return x, t

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` noisy points ``(n, 10)``, float64 on the generator's device (CPU by default)."""
        return self.sample_with_t(n, generator)[0]
