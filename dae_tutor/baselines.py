"""Two baselines that the GSN and GAN papers compare against: a GAN and a binary RBM, kept small.

**GAN** (GAN paper §3, Eq. 1 and Algorithm 1). A generator G maps noise z ~ p_z to
x = G(z); a discriminator D(x) = sigmoid(logit(x)) tells data from samples. The value function

    V(D, G) = E_{p_data}[log D(x)] + E_{p_z}[log(1 − D(G(z)))]

is ascended by D (k steps per iteration) and descended by G (one step). The *saturating* generator loss
is log(1 − D(G(z))) itself; the *non-saturating* one maximises log D(G(z)) instead ("the same fixed
point … much stronger gradients early in learning", GAN paper §3). Both are written with softplus on the
logits: log D = −softplus(−logit), log(1 − D) = −softplus(logit).

**RBM** (DL book §20.2). Binary visible v and hidden h with energy
E(v, h) = −bᵀv − cᵀh − vᵀWh (eq. 20.5), factorial conditionals P(h_j = 1 | v) = σ(c_j + vᵀW_{:,j})
(20.14) and P(v_i = 1 | h) = σ(b_i + W_{i,:}h) (20.16), free energy
F(v) = −bᵀv − Σ_j softplus(c_j + vᵀW_{:,j}) with P(v) = exp(−F(v))/Z. The log-likelihood gradient is
−∂F(v)/∂θ + E_model[∂F/∂θ]; CD-k estimates the model term from k block-Gibbs steps started at the data
(Hinton 2002), PCD from chains that persist across updates (Tieleman 2008). For small models log Z
is exact by enumerating the smaller layer.

Besides Algorithm 1 (:func:`train_gan`), :func:`train_discriminator` and :func:`train_generator` train one
player against the other held fixed (Fig. 1 (b) and (c)); :func:`random_rbm` draws a small RBM for the
exact checks, :meth:`RBM.gibbs_kernel` and :func:`expected_cd_gradient` make CD-k's bias exact, and
:func:`ais_log_partition` estimates log Z by annealed importance sampling (exact for small models).

Sources: the GAN paper is Goodfellow et al. (2014), *Generative Adversarial Nets*; the DL book is
Goodfellow, Bengio and Courville (2016), *Deep Learning*, ch. 20.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from dae_tutor import checks, markov, nets, runtime, train
from dae_tutor.errors import DivergenceError

NOISE_PRIORS = ("gaussian", "uniform")
GENERATOR_LOSSES = ("saturating", "non-saturating")
GAN_OUTPUTS = ("linear", "sigmoid")
MAX_ENUMERATION_UNITS = 20  # exact log Z enumerates 2^n states of the smaller layer, n <= 20
MAX_KERNEL_UNITS = 12  # the exact Gibbs kernel and CD-k expectations enumerate both layers, n <= 12


# ----------------------------------------------------------------------------- GAN


class GAN(nn.Module):
    """A generator and a discriminator, both :class:`dae_tutor.nets.MLP` (GAN paper §3).

    Args:
        data_dim: dimension d of x.
        noise_dim: dimension of z.
        generator_hidden / discriminator_hidden: hidden layer sizes of G and D.
        activation: ``"relu"`` or ``"tanh"`` hidden units (both nets).
        output: ``"linear"`` (real-valued x) or ``"sigmoid"`` (pixels in [0, 1], as the paper's G).
        prior: p_z, ``"gaussian"`` N(0, I) or ``"uniform"`` U(0, 1)^noise_dim (Fig. 1's caption).
        dropout: ``None``, or D's keep probabilities ``(input, hidden)`` in training, e.g. ``(0.8, 0.5)``
            as the paper's MNIST discriminator ("Dropout was applied in training the discriminator net",
            GAN paper §5; include probabilities 0.8 and 0.5 in its code). Units are kept with that
            probability and scaled by its inverse; the masks come from the training generator and are
            drawn for G's step too ("units should be stochastically dropped while computing the
            gradient for the generator network to follow", DL book §20.10.4). Evaluation never drops.
        seed: initialisation of G (D uses ``seed + 1``).
        dtype, device: of the parameters.
    """

    def __init__(
        self,
        data_dim: int,
        noise_dim: int,
        *,
        generator_hidden: Sequence[int] = (128, 128),
        discriminator_hidden: Sequence[int] = (128, 128),
        activation: str = "relu",
        output: str = "linear",
        prior: str = "gaussian",
        dropout: tuple[float, float] | None = None,
        seed: int = 0,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.dropout = None if dropout is None else _keep_probabilities(dropout)
        self.data_dim = checks.positive_int("data_dim", data_dim)
        self.noise_dim = checks.positive_int("noise_dim", noise_dim)
        self.output = checks.one_of("output", output, GAN_OUTPUTS)
        self.prior = checks.one_of("prior", prior, NOISE_PRIORS)
        seed = checks.nonnegative_int("seed", seed)
        kw = {"activation": activation, "dtype": dtype, "device": device}
        g_sizes = [self.noise_dim, *checks.int_sequence("generator_hidden", generator_hidden), self.data_dim]
        d_sizes = [self.data_dim, *checks.int_sequence("discriminator_hidden", discriminator_hidden), 1]
        self.generator = nets.MLP(g_sizes, seed=seed, **kw)
        self.discriminator = nets.MLP(d_sizes, seed=seed + 1, **kw)

    def _like(self) -> torch.Tensor:
        return self.generator.linear0.weight

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws z ~ p_z, shape (n, noise_dim), on the model's device and dtype."""
        n = checks.positive_int("n", n)
        w = self._like()
        checks.generator("generator", generator, w)
        shape = (n, self.noise_dim)
        if self.prior == "gaussian":
            return torch.randn(shape, generator=generator, dtype=w.dtype, device=w.device)
        return torch.rand(shape, generator=generator, dtype=w.dtype, device=w.device)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """x = G(z), shape (n, data_dim) (differentiable; sigmoid output when ``output="sigmoid"``)."""
        return self._generate(self._z(z))

    def _z(self, z: object) -> torch.Tensor:
        return checks.tensor("z", z, ndim=2, last_dim=self.noise_dim, nonempty=True)

    def _x(self, x: object) -> torch.Tensor:
        return checks.tensor("x", x, ndim=2, last_dim=self.data_dim, nonempty=True)

    def _generate(self, z: torch.Tensor) -> torch.Tensor:
        x = self.generator(z)
        return torch.sigmoid(x) if self.output == "sigmoid" else x

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n independent samples G(z), z ~ p_z (no Markov chain: GAN paper §6)."""
        return self.generate(self.noise(n, generator))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """logit D(x), shape (n,)."""
        return self._logits(self._x(x))

    def _logits(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """D's logits; with ``generator`` and :attr:`dropout` set, under fresh dropout masks from it."""
        if self.dropout is None or generator is None:
            return self.discriminator(x)[:, 0]
        for name, layer in self.discriminator.named_children():
            if name.startswith("linear"):
                keep = self.dropout[0] if name == "linear0" else self.dropout[1]
                mask = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device) < keep
                x = x * mask / keep
            x = layer(x)
        return x[:, 0]

    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        """D(x) = P(x came from the data), shape (n,)."""
        return torch.sigmoid(self.logits(x))

    def value(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Minibatch estimate of V(D, G) = mean log D(x) + mean log(1 − D(G(z))) (Eq. 1)."""
        return -self.discriminator_loss(x, z, detach=False)

    def discriminator_loss(
        self,
        x: torch.Tensor,
        z: torch.Tensor,
        *,
        detach: bool = True,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """−V(D, G), by default with G's samples detached: what D's step of Algorithm 1 descends.

        ``generator``: draws D's dropout masks (training, when :attr:`dropout` is set); ``None``: no dropout.
        A NaN that arises inside G or D (not in ``x`` or ``z``) reaches :func:`train_gan`'s divergence check.
        """
        x, z = self._x(x), self._z(z)
        checks.generator("generator", generator, x)
        fake = self._generate(z)
        fake = fake.detach() if checks.boolean("detach", detach) else fake
        return (
            F.softplus(-self._logits(x, generator)).mean() + F.softplus(self._logits(fake, generator)).mean()
        )

    def generator_loss(
        self, z: torch.Tensor, kind: str = "non-saturating", *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """G's loss: mean log(1 − D(G(z))) (``"saturating"``, Eq. 1) or mean −log D(G(z)) (GAN paper §3).

        ``generator``: draws D's dropout masks, as in :meth:`discriminator_loss`.
        """
        kind = checks.one_of("kind", kind, GENERATOR_LOSSES)
        z = self._z(z)
        checks.generator("generator", generator, z)
        logits = self._logits(self._generate(z), generator)
        return -F.softplus(logits).mean() if kind == "saturating" else F.softplus(-logits).mean()

    def generator_grad_norm(self, z: torch.Tensor, kind: str = "non-saturating") -> float:
        """‖∇_θg‖ of :meth:`generator_loss` at the current parameters (leaves no gradient behind)."""
        grads = torch.autograd.grad(self.generator_loss(z, kind), list(self.generator.parameters()))
        return torch.sqrt(sum(g.pow(2).sum() for g in grads)).item()


def _keep_probabilities(dropout: object) -> tuple[float, float]:
    """D's dropout keep probabilities (input, hidden), each in (0, 1]."""
    if not isinstance(dropout, (tuple, list)) or len(dropout) != 2:
        raise TypeError(f"dropout must be a pair (input keep, hidden keep) or None, got {dropout!r}")
    out = tuple(checks.probability(f"dropout[{i}]", p) for i, p in enumerate(dropout))
    if min(out) <= 0:
        raise ValueError(f"dropout keep probabilities must lie in (0, 1], got {dropout}")
    return out


def _betas(betas: object) -> tuple[float, float]:
    """Adam's (β1, β2), each in [0, 1)."""
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    out = tuple(checks.probability(f"betas[{i}]", b) for i, b in enumerate(betas))
    if max(out) >= 1:
        raise ValueError(f"betas must lie in [0, 1), got {betas}")
    return out


def _data_sampler(
    data: torch.Tensor | Callable[[int, torch.Generator], torch.Tensor], dim: int
) -> Callable[[int, torch.Generator], torch.Tensor]:
    """``data(m, generator)``: a minibatch of m training points (drawn with replacement from a tensor)."""
    if callable(data) and not isinstance(data, torch.Tensor):
        return data
    data = checks.tensor("data", data, ndim=2, last_dim=dim)
    if len(data) == 0:
        raise ValueError("data must hold at least one example, got shape (0, ...)")
    return lambda m, gen: data[torch.randint(len(data), (m,), generator=gen, device=data.device)]


def train_gan(
    gan: GAN,
    data: torch.Tensor | Callable[[int, torch.Generator], torch.Tensor],
    *,
    steps: int,
    k: int = 1,
    generator_steps: int = 1,
    batch_size: int = 100,
    loss: str = "non-saturating",
    lr: float = 2e-4,
    betas: tuple[float, float] = (0.5, 0.999),
    seed: int = 0,
    callback: Callable[[int, GAN], None] | None = None,
    progress: bool = False,
) -> dict[str, list[float]]:
    """Algorithm 1 of the GAN paper: per iteration, k steps of D, then ``generator_steps`` steps of G.

    Args:
        gan: the model, trained in place (on its own device).
        data: the training set, an (n, d) tensor sampled with replacement, or a callable
            ``data(m, generator)`` returning m fresh draws of p_data (exact 1-D or 2-D toys).
        steps: training iterations (the outer loop).
        k: discriminator steps per iteration (the paper used k = 1).
        generator_steps: generator steps per iteration (1 in Algorithm 1; more over-trains G, the
            "Helvetica scenario" of §6).
        batch_size: m, the minibatch size of both data and noise.
        loss: ``"non-saturating"`` (maximise log D(G(z))) or ``"saturating"`` (Eq. 1 as written).
        lr, betas: Adam's (the paper used SGD with momentum; "any standard gradient-based learning rule").
        seed: of the minibatch and noise draws.
        callback: called as ``callback(step, gan)`` after each iteration (snapshots, frames).
        progress: a ``tqdm.auto`` bar (default off, as in every library call).

    Returns:
        ``{"value": [...], "generator_loss": [...]}``: V(D, G) on the last D minibatch of each
        iteration (before G moves), and G's loss at its last step.

    Raises:
        DivergenceError: as soon as V or G's loss is NaN or infinite.
    """
    gan = _gan(gan)
    steps = checks.positive_int("steps", steps)
    k = checks.positive_int("k", k)
    generator_steps = checks.positive_int("generator_steps", generator_steps)
    batch_size = checks.positive_int("batch_size", batch_size)
    loss = checks.one_of("loss", loss, GENERATOR_LOSSES)
    lr = checks.positive_float("lr", lr)
    betas = _betas(betas)
    checks.boolean("progress", progress)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    sample_data = _data_sampler(data, gan.data_dim)
    gen = runtime.generator(checks.nonnegative_int("seed", seed), gan._like().device)
    opt_d = torch.optim.Adam(gan.discriminator.parameters(), lr=lr, betas=betas)
    opt_g = torch.optim.Adam(gan.generator.parameters(), lr=lr, betas=betas)
    history: dict[str, list[float]] = {"value": [], "generator_loss": []}
    # Not train.train_loop: two players with two optimisers, k D steps for each G step.
    for step in tqdm(range(steps), desc="GAN (Algorithm 1)", disable=not progress, leave=False):
        for _ in range(k):
            x, z = sample_data(batch_size, gen), gan.noise(batch_size, gen)
            d_loss = gan.discriminator_loss(x, z, generator=gen)
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        for _ in range(generator_steps):
            g_loss = gan.generator_loss(gan.noise(batch_size, gen), loss, generator=gen)
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
        value, g_value = -d_loss.item(), g_loss.item()
        for v in (value, g_value):
            if not math.isfinite(v):
                raise DivergenceError(step, v, steps, "GAN (Algorithm 1)")
        history["value"].append(value)
        history["generator_loss"].append(g_value)
        if callback is not None:
            callback(step, gan)
    return history


def train_discriminator(
    gan: GAN,
    data: torch.Tensor | Callable[[int, torch.Generator], torch.Tensor],
    *,
    steps: int,
    lr: float,
    seed: int = 0,
    batch_size: int = 256,
) -> list[float]:
    """Adam steps of D alone against a fixed G: Algorithm 1's inner loop run to convergence (Prop. 1).

    Each step draws ``batch_size`` data points (``data`` as in :func:`train_gan`), then as many z, from one
    generator seeded ``seed``, and descends :meth:`GAN.discriminator_loss` = −V(D, G). With enough steps
    D approaches D* = p_data / (p_data + p_g) (GAN paper Fig. 1 (b)). Returns the loss history.
    """
    gan = _gan(gan)
    sample = _data_sampler(data, gan.data_dim)
    batch_size = checks.positive_int("batch_size", batch_size)
    gen = runtime.generator(checks.nonnegative_int("seed", seed), gan._like().device)
    return train.train_loop(
        lambda: gan.discriminator_loss(sample(batch_size, gen), gan.noise(batch_size, gen)),
        gan.discriminator,
        steps=steps,
        lr=lr,
        progress=False,
    )


def train_generator(
    gan: GAN, *, steps: int, lr: float, seed: int = 0, batch_size: int = 256, loss: str = "non-saturating"
) -> list[float]:
    """Adam steps of G alone against a fixed D on :meth:`GAN.generator_loss` (GAN paper Fig. 1 (c)).

    Run long, G moves its mass to D's favourite points: the "Helvetica scenario" (GAN paper §6).
    ``batch_size`` z per step from a generator seeded ``seed``; returns the loss history.
    """
    gan = _gan(gan)
    batch_size = checks.positive_int("batch_size", batch_size)
    loss = checks.one_of("loss", loss, GENERATOR_LOSSES)
    gen = runtime.generator(checks.nonnegative_int("seed", seed), gan._like().device)
    return train.train_loop(
        lambda: gan.generator_loss(gan.noise(batch_size, gen), loss),
        gan.generator,
        steps=steps,
        lr=lr,
        progress=False,
    )


def _gan(gan: object) -> GAN:
    if not isinstance(gan, GAN):
        raise TypeError(f"gan must be a GAN, got {type(gan).__name__}")
    return gan


# ----------------------------------------------------------------------------- RBM


class RBM(nn.Module):
    """Binary restricted Boltzmann machine (DL book §20.2, eqs. 20.4–20.16).

    Args:
        n_vis, n_hid: numbers of visible and hidden units.
        weight_std: W ~ N(0, weight_std²) (default 0.01, Hinton's practical guide).
        b, c: the initial visible (n_vis,) and hidden (n_hid,) biases of eq. 20.5, finite tensors of
            the parameters' dtype (copied onto their device); ``None``: zeros. :func:`train_rbm`
            replaces ``b`` by the data's log-odds unless called with ``init_visible=False``.
        seed: of the initialisation of W (drawn on the CPU in float64, then cast).
        dtype, device: of the parameters.

    Parameters ``W`` (n_vis, n_hid), ``b`` (n_vis,) visible biases, ``c`` (n_hid,) hidden biases.
    """

    def __init__(
        self,
        n_vis: int,
        n_hid: int,
        *,
        weight_std: float = 0.01,
        b: torch.Tensor | None = None,
        c: torch.Tensor | None = None,
        seed: int = 0,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.n_vis = checks.positive_int("n_vis", n_vis)
        self.n_hid = checks.positive_int("n_hid", n_hid)
        weight_std = checks.positive_float("weight_std", weight_std, allow_zero=True)
        gen = runtime.generator(checks.nonnegative_int("seed", seed))
        kw = {"dtype": nets.parameter_dtype(dtype), "device": device}
        w = weight_std * torch.randn(self.n_vis, self.n_hid, generator=gen, dtype=torch.float64)
        self.W = nn.Parameter(w.to(**kw))
        self.b = nn.Parameter(_bias("b", b, self.n_vis, **kw))
        self.c = nn.Parameter(_bias("c", c, self.n_hid, **kw))

    def _v(self, name: str, v: object, width: int | None = None) -> torch.Tensor:
        """(B, ``width``) units in [0, 1] of the model's dtype and device (default width: n_vis)."""
        v = checks.tensor(name, v, ndim=2, last_dim=width or self.n_vis)
        if v.dtype != self.W.dtype or v.device != self.W.device:
            raise ValueError(f"{name} must have the model's dtype {self.W.dtype} and device {self.W.device}")
        return checks.unit_interval(name, v)

    def energy(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """E(v, h) = −bᵀv − cᵀh − vᵀWh (eq. 20.5), shape (B,)."""
        v = self._v("v", v)
        h = self._v("h", h, self.n_hid)
        if len(h) != len(v):
            raise ValueError(f"v and h must have the same batch size, got {len(v)} and {len(h)}")
        return -v @ self.b - h @ self.c - ((v @ self.W) * h).sum(-1)

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """F(v) = −log Σ_h exp(−E(v, h)) = −bᵀv − Σ_j softplus(c_j + vᵀW_{:,j}), shape (B,)."""
        v = self._v("v", v)
        return -v @ self.b - F.softplus(v @ self.W + self.c).sum(-1)

    def hidden_probs(self, v: torch.Tensor) -> torch.Tensor:
        """P(h_j = 1 | v) = σ(c_j + vᵀW_{:,j}) (eq. 20.14), shape (B, n_hid)."""
        return torch.sigmoid(self._v("v", v) @ self.W + self.c)

    def visible_probs(self, h: torch.Tensor) -> torch.Tensor:
        """P(v_i = 1 | h) = σ(b_i + W_{i,:}h) (eq. 20.16), shape (B, n_vis)."""
        return torch.sigmoid(self._v("h", h, self.n_hid) @ self.W.T + self.b)

    def _gibbs(self, v: torch.Tensor, gen: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.bernoulli(torch.sigmoid(v @ self.W + self.c), generator=gen)
        p_v = torch.sigmoid(h @ self.W.T + self.b)
        return torch.bernoulli(p_v, generator=gen), p_v

    @torch.no_grad()
    def sample_chain(
        self,
        v0: torch.Tensor,
        n_steps: int,
        generator: torch.Generator | None = None,
        *,
        return_means: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """B block-Gibbs chains h ~ P(h | v), v ~ P(v | h) for ``n_steps`` steps from ``v0``.

        Returns the consecutive samples (n_steps, B, n_vis), and the means P(v = 1 | h) of the same
        shape when ``return_means``.
        """
        v = self._v("v0", v0)
        n_steps = checks.positive_int("n_steps", n_steps)
        checks.generator("generator", generator, v)
        checks.boolean("return_means", return_means)
        samples = v.new_empty(n_steps, *v.shape)
        means = v.new_empty(n_steps, *v.shape) if return_means else None
        for t in range(n_steps):
            v, p = self._gibbs(v, generator)
            samples[t] = v
            if means is not None:
                means[t] = p
        return (samples, means) if means is not None else samples

    def log_partition(self) -> torch.Tensor:
        """log Z, exactly, by enumerating the 2^n states of the smaller layer (n <= 20); differentiable.

        Over h: log Z = logsumexp_h [cᵀh + Σ_i softplus(b_i + W_{i,:}h)]; over v: logsumexp_v −F(v).
        """
        n = min(self.n_vis, self.n_hid)
        if n > MAX_ENUMERATION_UNITS:
            raise ValueError(
                f"exact log Z enumerates 2^{n} states; the smaller layer must have at most "
                f"{MAX_ENUMERATION_UNITS} units"
            )
        states = markov.binary_states(n, device=self.W.device).to(self.W.dtype)  # MSB first, as everywhere
        if self.n_hid <= self.n_vis:
            return torch.logsumexp(states @ self.c + F.softplus(states @ self.W.T + self.b).sum(-1), 0)
        return torch.logsumexp(-self.free_energy(states), 0)

    def log_prob(self, v: torch.Tensor) -> torch.Tensor:
        """log P(v) = −F(v) − log Z, exact (small models only; see :meth:`log_partition`), shape (B,)."""
        return -self.free_energy(v) - self.log_partition()

    @torch.no_grad()
    def gibbs_kernel(self) -> torch.Tensor:
        """The block-Gibbs kernel over visible states, T[v, v′] = Σ_h P(h | v) P(v′ | h) (DL 20.14, 20.16).

        Shape (2^n_vis, 2^n_vis), states in :func:`dae_tutor.markov.binary_states` order (most
        significant bit first); exact, for small models (n_vis, n_hid <= :data:`MAX_KERNEL_UNITS`).
        """
        if max(self.n_vis, self.n_hid) > MAX_KERNEL_UNITS:
            raise ValueError(
                f"the Gibbs kernel enumerates 2^n_vis x 2^n_hid states; n_vis and n_hid must be at most "
                f"{MAX_KERNEL_UNITS}, got {self.n_vis} and {self.n_hid}"
            )
        v, h = self._all_states(self.n_vis), self._all_states(self.n_hid)
        a, b = v @ self.W + self.c, h @ self.W.T + self.b  # logits of P(h | v) and of P(v | h)
        h_given_v = (F.logsigmoid(a) @ h.T + F.logsigmoid(-a) @ (1 - h).T).exp()
        v_given_h = (F.logsigmoid(b) @ v.T + F.logsigmoid(-b) @ (1 - v).T).exp()
        return h_given_v @ v_given_h

    def _all_states(self, n: int) -> torch.Tensor:
        return markov.binary_states(n, device=self.W.device).to(self.W.dtype)

    @torch.no_grad()
    def contrastive_divergence(
        self,
        v: torch.Tensor,
        k: int = 1,
        generator: torch.Generator | None = None,
        *,
        chain: torch.Tensor | None = None,
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """CD-k (or, given ``chain``, PCD) estimate of ∂ mean log P(v)/∂(W, b, c): an ascent direction.

        Positive phase from the data v, negative phase from v⁽ᵏ⁾, k block-Gibbs steps from v (CD-k) or
        from the persistent ``chain`` (PCD): ∂/∂W ≈ ⟨v ĥ(v)ᵀ⟩ − ⟨v⁽ᵏ⁾ ĥ(v⁽ᵏ⁾)ᵀ⟩, ĥ = σ(c + Wᵀv),
        ∂/∂b ≈ ⟨v⟩ − ⟨v⁽ᵏ⁾⟩, ∂/∂c ≈ ⟨ĥ(v)⟩ − ⟨ĥ(v⁽ᵏ⁾)⟩. Returns the gradients (keys ``"W", "b", "c"``)
        and v⁽ᵏ⁾, the chain's new state (pass it back as ``chain`` for PCD).
        """
        v = self._v("v", v)
        if len(v) == 0:
            raise ValueError("v must hold at least one example")
        k = checks.positive_int("k", k)
        checks.generator("generator", generator, v)
        neg = v if chain is None else self._v("chain", chain)
        for _ in range(k):
            neg = self._gibbs(neg, generator)[0]
        h_pos, h_neg = torch.sigmoid(v @ self.W + self.c), torch.sigmoid(neg @ self.W + self.c)
        grads = {
            "W": v.T @ h_pos / len(v) - neg.T @ h_neg / len(neg),
            "b": v.mean(0) - neg.mean(0),
            "c": h_pos.mean(0) - h_neg.mean(0),
        }
        return grads, neg


@torch.no_grad()
def expected_cd_gradient(rbm: RBM, data_pmf: torch.Tensor, k: int | None) -> dict[str, torch.Tensor]:
    """The expectation of the CD-k estimate, exactly; ``k=None``: the exact log-likelihood gradient.

    With φ(v) = (v ĥ(v)ᵀ, v, ĥ(v)), ĥ(v) = σ(c + Wᵀv), :meth:`RBM.contrastive_divergence` averages
    φ(data) − φ(v⁽ᵏ⁾), v⁽ᵏ⁾ k block-Gibbs steps from the data. Its expectation is
    Σ_v p(v) φ(v) − Σ_v (p Tᵏ)(v) φ(v), T = :meth:`RBM.gibbs_kernel`; the gradient of E_p log P(v) is
    Σ_v p(v) φ(v) − Σ_v P(v) φ(v) (DL book eq. 18.6 with the free energy), the k → ∞ limit.
    ``data_pmf`` is the data's law over the 2^n_vis visible states (:func:`dae_tutor.markov.binary_states`
    order). Returns the ascent directions (keys ``"W", "b", "c"``), in the RBM's dtype.
    """
    if not isinstance(rbm, RBM):
        raise TypeError(f"rbm must be an RBM, got {type(rbm).__name__}")
    if k is not None:
        k = checks.positive_int("k", k)
    kernel = rbm.gibbs_kernel()
    p = checks.pmf("data_pmf", data_pmf, rbm.W.device).to(rbm.W.dtype)
    if len(p) != len(kernel):
        raise ValueError(f"data_pmf must have 2^n_vis = {len(kernel)} entries, got {len(p)}")
    if k is None:
        q = rbm.log_prob(rbm._all_states(rbm.n_vis)).exp()
    else:
        q = p
        for _ in range(k):
            q = q @ kernel
    v = rbm._all_states(rbm.n_vis)
    h_hat = torch.sigmoid(v @ rbm.W + rbm.c)
    diff = p - q
    return {"W": v.T @ (diff[:, None] * h_hat), "b": diff @ v, "c": diff @ h_hat}


@torch.no_grad()
def ais_log_partition(
    rbm: RBM, n_betas: int, runs: int, generator: torch.Generator | None = None
) -> tuple[float, torch.Tensor]:
    """Annealed importance sampling estimate of log Z (Neal 2001; Salakhutdinov and Murray 2008).

    The path p_β ∝ exp(−F_β(v)), F_β the free energy of the RBM with parameters β(W, b, c), runs from
    β = 0 (uniform v, log Z_0 = (n_vis + n_hid) log 2) to β = 1 on ``n_betas`` equally spaced steps; each of
    ``runs`` chains starts at a uniform v, takes one block-Gibbs step at every intermediate β and gathers
    log w = Σ_k [F_{β_{k−1}}(v_k) − F_{β_k}(v_k)]. Ẑ = Z_0 mean(w) is unbiased, so log Ẑ is biased *low*
    (Jensen) and log P(v) = −F(v) − log Ẑ *high*: AIS likelihoods are optimistic (DL book §18.7, §20.14).
    Returns (log Ẑ, the ``runs`` log-weights log w + log Z_0).
    """
    if not isinstance(rbm, RBM):
        raise TypeError(f"rbm must be an RBM, got {type(rbm).__name__}")
    n_betas = checks.positive_int("n_betas", n_betas)
    runs = checks.positive_int("runs", runs)
    gen = checks.generator("generator", generator, rbm.W)
    betas = torch.linspace(0, 1, n_betas + 1, dtype=rbm.W.dtype, device=rbm.W.device)

    def free_energy(v: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        return -beta * (v @ rbm.b) - F.softplus(beta * (v @ rbm.W + rbm.c)).sum(-1)

    like = {"dtype": rbm.W.dtype, "device": rbm.W.device}
    v = torch.bernoulli(torch.full((runs, rbm.n_vis), 0.5, **like), generator=gen)
    log_w = torch.full((runs,), (rbm.n_vis + rbm.n_hid) * math.log(2.0), **like)
    for previous, beta in itertools.pairwise(betas):
        log_w += free_energy(v, previous) - free_energy(v, beta)
        h = torch.bernoulli(torch.sigmoid(beta * (v @ rbm.W + rbm.c)), generator=gen)
        v = torch.bernoulli(torch.sigmoid(beta * (h @ rbm.W.T + rbm.b)), generator=gen)
    return (torch.logsumexp(log_w, 0) - math.log(runs)).item(), log_w


def _bias(
    name: str, value: torch.Tensor | None, n: int, dtype: torch.dtype, device: torch.device | str | None
) -> torch.Tensor:
    """A copy of the initial bias ``value`` ((n,), finite, of ``dtype``) on ``device``; zeros for ``None``."""
    if value is None:
        return torch.zeros(n, dtype=dtype, device=device)
    value = checks.tensor(name, value, ndim=1, last_dim=n)
    if value.dtype != dtype:
        raise TypeError(f"{name} must have the parameters' dtype {dtype}, got {value.dtype}")
    return value.detach().to(device=device, copy=True)


def train_rbm(
    rbm: RBM,
    data: torch.Tensor,
    *,
    steps: int,
    k: int = 1,
    persistent: bool = False,
    batch_size: int = 100,
    lr: float = 0.05,
    momentum: float = 0.5,
    init_visible: bool = True,
    seed: int = 0,
    progress: bool = False,
) -> list[float]:
    """Train ``rbm`` in place by SGD with momentum on CD-k (``persistent=False``) or PCD-k gradients.

    With ``init_visible`` the visible biases start at the log-odds of the data's marginals (Hinton's
    practical guide, §8.1); without, at the RBM's own ``b``. The PCD chains start at ``batch_size``
    training examples. Returns the mean reconstruction error
    ‖v − P(v | h ~ P(h | v))‖² per step (a monitor only: it is not the likelihood).

    Raises:
        DivergenceError: when a gradient or the monitor is NaN or infinite.
    """
    if not isinstance(rbm, RBM):
        raise TypeError(f"rbm must be an RBM, got {type(rbm).__name__}")
    data = checks.binary("data", rbm._v("data", data))
    if len(data) == 0:
        raise ValueError("data must hold at least one example")
    steps = checks.positive_int("steps", steps)
    k = checks.positive_int("k", k)
    persistent = checks.boolean("persistent", persistent)
    batch_size = checks.positive_int("batch_size", batch_size)
    lr = checks.positive_float("lr", lr)
    momentum = checks.probability("momentum", momentum)
    checks.boolean("progress", progress)
    gen = runtime.generator(checks.nonnegative_int("seed", seed), data.device)
    if checks.boolean("init_visible", init_visible):
        with torch.no_grad():
            marginal = data.mean(0).clamp(1e-3, 1 - 1e-3)
            rbm.b.copy_(torch.log(marginal / (1 - marginal)))
    params = {"W": rbm.W, "b": rbm.b, "c": rbm.c}
    velocity = {name: torch.zeros_like(p) for name, p in params.items()}
    chain = data[torch.randint(len(data), (batch_size,), generator=gen, device=data.device)]
    history: list[float] = []
    # Not train.train_loop: CD-k is a gradient estimate, not the gradient of a loss it could minimise.
    for step in tqdm(range(steps), desc="RBM (PCD)" if persistent else "RBM (CD)", disable=not progress):
        batch = data[torch.randint(len(data), (batch_size,), generator=gen, device=data.device)]
        grads, end = rbm.contrastive_divergence(batch, k, gen, chain=chain if persistent else None)
        if persistent:
            chain = end
        with torch.no_grad():
            for name, p in params.items():
                velocity[name].mul_(momentum).add_(grads[name], alpha=lr)
                p.add_(velocity[name])
            h = torch.bernoulli(torch.sigmoid(batch @ rbm.W + rbm.c), generator=gen)
            error = (batch - torch.sigmoid(h @ rbm.W.T + rbm.b)).pow(2).sum(1).mean().item()
        if not math.isfinite(error):
            raise DivergenceError(step, error, steps, "RBM training")
        history.append(error)
    return history


def random_rbm(
    n_vis: int, n_hid: int, *, seed: int, weight_std: float, dtype: torch.dtype | None = None
) -> RBM:
    """An RBM with random parameters: W ~ N(0, weight_std²) (seed ``seed``), b, c ~ N(0, 1) (``seed + 1``).

    The biases are drawn in ``dtype`` (default torch's), b before c, from one generator: a teacher or
    a student of the exact-gradient checks (small enough for :meth:`RBM.log_prob` to enumerate).
    """
    seed = checks.nonnegative_int("seed", seed)
    gen, dtype = runtime.generator(seed + 1), nets.parameter_dtype(dtype)
    b = torch.randn(checks.positive_int("n_vis", n_vis), generator=gen, dtype=dtype)
    c = torch.randn(checks.positive_int("n_hid", n_hid), generator=gen, dtype=dtype)
    return RBM(n_vis, n_hid, weight_std=weight_std, b=b, c=c, seed=seed, dtype=dtype)
