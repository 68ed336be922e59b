"""Binary-data models of chapter 2: the Bernoulli DAE and the deep generative stochastic network.

:class:`BernoulliDAE` is the one-hidden-layer DAE with a factorized Bernoulli reconstruction
P_θ(X | X̃) ([GDAE] §4; thesis §5.5.1), and :class:`DeepGSN` is the deep generative stochastic network
of [GSN14] §6 and Fig. 1 / thesis §5.5.2 and Fig. 5.5: DBM-like odd/even layer updates, noisy tanh
units, tied weights, salt-and-pepper on every x_t, walkback over 2D steps. :class:`ScaledHead` holds
the walkback scaling factors α_k of [GSN14] §6 / thesis eq. 5.13, which :class:`ScaledGSN` trains with
a GSN over random walk lengths; :func:`fit` is the minibatch SGD recipe of [GSN14] §7. Their
stochastic methods draw every random number from an explicit ``torch.Generator`` on the data's device;
parameters are initialised as in :mod:`dae_tutor.nets`.

Sources: "the thesis" is G. Alain's PhD thesis (2018); [GDAE] = Bengio, Yao, Alain and Vincent (2013),
*Generalized Denoising Auto-Encoders as Generative Models*; [GSN14] = Bengio, Thibodeau-Laufer, Alain
and Yosinski (2014), *Deep Generative Stochastic Networks Trainable by Backprop*.
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from dae_tutor import checks, corruption, runtime, train
from dae_tutor.nets import initial_generator, parameter_dtype, uniform


def _glorot(n_out: int, n_in: int, generator: torch.Generator) -> torch.Tensor:
    """U(±√(6/(n_in + n_out))) of shape (n_out, n_in), the initialisation of the GSN reference code."""
    return uniform((n_out, n_in), math.sqrt(6 / (n_in + n_out)), generator)


def _nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """−log P(x | logits) of a factorized Bernoulli, summed over the last dimension (cross-entropy).

    −Σ_i [x_i log p_i + (1 − x_i) log(1 − p_i)] with p = sigmoid(logits), computed stably from the logits.
    """
    return nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)


def _bernoulli(p: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """x ~ Bernoulli(p) elementwise; no gradient flows through the draw ([GSN14] §6)."""
    return torch.bernoulli(p.detach(), generator=generator)


class _BinaryModel(nn.Module, ABC):
    """Shared checks and the sampling chain of :class:`BernoulliDAE` and :class:`DeepGSN`."""

    n_vis: int

    def _param(self) -> torch.Tensor:
        return next(self.parameters())

    def _check_x(self, name: str, x: object, *, binary: bool = False) -> torch.Tensor:
        """(B, n_vis) floating tensor of the model's dtype and device, values in [0, 1] (or {0, 1})."""
        x = checks.tensor(name, x, ndim=2, last_dim=self.n_vis)
        w = self._param()
        if x.dtype != w.dtype:
            raise TypeError(f"{name} must have the model's dtype {w.dtype}, got {x.dtype}")
        if x.device != w.device:
            raise ValueError(f"{name} must be on the model's device {w.device}, got {x.device}")
        return checks.binary(name, x) if binary else checks.unit_interval(name, x)

    def _clamp(
        self, x0: torch.Tensor, clamp_mask: object, clamp_values: object
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Broadcast and check (mask, values); ``None`` when nothing is clamped."""
        if clamp_mask is None:
            if clamp_values is not None:
                raise ValueError("clamp_values needs a clamp_mask (which entries to hold fixed)")
            return None
        if not isinstance(clamp_mask, torch.Tensor):
            raise TypeError(f"clamp_mask must be a torch.Tensor, got {type(clamp_mask).__name__}")
        if clamp_mask.dtype != torch.bool:
            raise TypeError(f"clamp_mask must have dtype torch.bool, got {clamp_mask.dtype}")
        try:
            mask = clamp_mask.to(x0.device).expand_as(x0)
        except RuntimeError:
            raise ValueError(
                f"clamp_mask must broadcast to x0's shape {tuple(x0.shape)}, got {tuple(clamp_mask.shape)}"
            ) from None
        if clamp_values is None:
            values = x0
        else:
            values = checks.tensor("clamp_values", clamp_values)
            try:
                values = values.to(x0.device, x0.dtype).expand_as(x0)
            except RuntimeError:
                raise ValueError(
                    f"clamp_values must broadcast to x0's shape {tuple(x0.shape)}, "
                    f"got {tuple(clamp_values.shape)}"
                ) from None
            checks.unit_interval("clamp_values", values)
        return mask, values

    @abstractmethod
    def _chain_step(
        self, state: Any, generator: torch.Generator | None, sample_x: bool, alpha: float = 1.0
    ) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """(state, x_t, logits_t) after one unchecked step (logits scaled by ``alpha``); ``state`` is
        model-specific."""

    @abstractmethod
    def _initial(self, x0: torch.Tensor) -> Any:
        """The chain's state at the start, from the visible ``x0``."""

    @abstractmethod
    def _set_x(self, state: Any, x: torch.Tensor) -> Any:
        """``state`` with its visible part replaced by ``x`` (used by clamping)."""

    @torch.no_grad()
    def sample_chain(
        self,
        x0: torch.Tensor,
        n_steps: int,
        generator: torch.Generator | None = None,
        clamp_mask: torch.Tensor | None = None,
        clamp_values: torch.Tensor | None = None,
        *,
        return_means: bool = False,
        logit_scale: float = 1.0,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Run B sampling chains for ``n_steps`` steps from ``x0`` and return the consecutive samples.

        Clamping (inpainting; [GSN14] §5, Proposition 1, and Fig. 2 bottom; thesis §5.3.6,
        Proposition 5): the entries where ``clamp_mask`` is True are held at
        ``clamp_values`` (default: those of ``x0``). Corruption and encoding see the full current x,
        clamped entries included; the factorized decoder then samples the free entries, and the clamped
        ones are overwritten with their values, so they never change along the chain.

        Args:
            x0: (B, n_vis) starting points with values in [0, 1] (binary, or grey levels).
            n_steps: number of chain steps (samples returned), >= 1.
            generator: ``torch.Generator`` on ``x0``'s device (``None``: torch's global generator).
            clamp_mask: bool tensor broadcastable to (B, n_vis), e.g. (n_vis,) for the right half.
            clamp_values: tensor broadcastable to (B, n_vis) with values in [0, 1].
            return_means: also return the mean-field reconstructions p_t = E[x_t | state] (the Parzen
                centres and the images shown in the papers' figures), clamped entries overwritten too.
            logit_scale: multiply the decoder's logits by this α > 0 (sample with a :class:`ScaledHead`'s
                α_1, thesis §5.3.3; default 1, the unscaled model).

        Returns:
            samples x_1, …, x_T of shape (n_steps, B, n_vis) (binary), and the means of the same shape
            when ``return_means``.
        """
        x0 = self._check_x("x0", x0)
        n_steps = checks.positive_int("n_steps", n_steps)
        checks.generator("generator", generator, x0)
        checks.boolean("return_means", return_means)
        logit_scale = checks.positive_float("logit_scale", logit_scale)
        clamp = self._clamp(x0, clamp_mask, clamp_values)
        if clamp is not None:
            x0 = torch.where(clamp[0], clamp[1], x0)
        state = self._initial(x0)
        samples = x0.new_empty(n_steps, *x0.shape)
        means = x0.new_empty(n_steps, *x0.shape) if return_means else None
        for t in range(n_steps):
            state, x, logits = self._chain_step(state, generator, True, logit_scale)
            if clamp is not None:
                x = torch.where(clamp[0], clamp[1], x)
                state = self._set_x(state, x)
            samples[t] = x
            if means is not None:
                p = torch.sigmoid(logits)
                means[t] = p if clamp is None else torch.where(clamp[0], clamp[1], p)
        return (samples, means) if means is not None else samples


class BernoulliDAE(_BinaryModel):
    """One-hidden-layer denoising auto-encoder with a factorized Bernoulli reconstruction, for binary data.

    The reconstruction distribution ([GDAE] §4; thesis §5.5.1) is

        P_θ(X = x | x̃) = Π_i p_i^{x_i} (1 − p_i)^{1 − x_i},   p = sigmoid(c + V act(b + W x̃)),

    trained by minimising the cross-entropy −log P_θ(x | x̃) with x̃ ~ C(x̃ | x) salt-and-pepper
    ([GDAE] eq. 1). Its sampling chain alternates x̃_t ~ C(· | x_t), x_{t+1} ~ P_θ(· | x̃_t)
    ([GDAE] eq. 3). The thesis uses 2000 tanh units, [GDAE] 2000 sigmoid units, both with
    salt-and-pepper 0.5 on MNIST.

    Args:
        n_vis: number of visible (binary) units d.
        n_hid: number of hidden units h.
        input_noise: salt-and-pepper corruption probability p of C (default 0.5, the papers' value).
        tied: V = Wᵀ.
        activation: ``"tanh"`` (thesis) or ``"sigmoid"`` ([GDAE]).
        seed / generator: initialisation source (default seed 0); W, V ~ U(±√(6/(d+h))), biases 0.
        dtype, device: of the parameters.

    Parameters ``W`` (h, d), ``b`` (h,), ``V`` (d, h) unless tied, ``c`` (d,).
    """

    def __init__(
        self,
        n_vis: int,
        n_hid: int,
        *,
        input_noise: float = 0.5,
        tied: bool = False,
        activation: str = "tanh",
        seed: int | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.n_vis = checks.positive_int("n_vis", n_vis)
        self.n_hid = checks.positive_int("n_hid", n_hid)
        self.input_noise = checks.probability("input_noise", input_noise)
        self.tied = checks.boolean("tied", tied)
        self.activation = checks.one_of("activation", activation, ("tanh", "sigmoid"))
        gen = initial_generator(seed, generator)
        kw = {"dtype": parameter_dtype(dtype), "device": device}
        self.W = nn.Parameter(_glorot(self.n_hid, self.n_vis, gen).to(**kw))
        self.b = nn.Parameter(torch.zeros(self.n_hid, **kw))
        self.V = None if tied else nn.Parameter(_glorot(self.n_vis, self.n_hid, gen).to(**kw))
        self.c = nn.Parameter(torch.zeros(self.n_vis, **kw))

    def encode(self, x_tilde: torch.Tensor) -> torch.Tensor:
        """h = act(b + W x̃), shape (B, h)."""
        return self._encode(self._check_x("x_tilde", x_tilde))

    def logits(self, x_tilde: torch.Tensor) -> torch.Tensor:
        """The logits c + V h of the reconstruction distribution, shape (B, d)."""
        return self._logits(self._check_x("x_tilde", x_tilde))

    def forward(self, x_tilde: torch.Tensor) -> torch.Tensor:
        """The mean p = E_θ[X | x̃] = sigmoid(logits) in (0, 1), shape (B, d)."""
        return torch.sigmoid(self.logits(x_tilde))

    def _encode(self, x_tilde: torch.Tensor) -> torch.Tensor:
        a = nn.functional.linear(x_tilde, self.W, self.b)
        return torch.tanh(a) if self.activation == "tanh" else torch.sigmoid(a)

    def _logits(self, x_tilde: torch.Tensor) -> torch.Tensor:
        V = self.W.T if self.V is None else self.V
        return nn.functional.linear(self._encode(x_tilde), V, self.c)

    def nll(self, x: torch.Tensor, x_tilde: torch.Tensor) -> torch.Tensor:
        """Per-example cross-entropy −Σ_i [x_i log p_i + (1 − x_i) log(1 − p_i)], shape (B,).

        For binary ``x`` this is −log P_θ(x | x̃); grey levels in [0, 1] are accepted as soft targets
        (as the GSN reference code does on grey-scale MNIST).
        """
        x = self._check_x("x", x)
        x_tilde = self._check_x("x_tilde", x_tilde)
        if x.shape != x_tilde.shape:
            raise ValueError(f"x must have the shape of x_tilde {tuple(x_tilde.shape)}, got {tuple(x.shape)}")
        return _nll(self._logits(x_tilde), x)

    def log_prob(self, x: torch.Tensor, x_tilde: torch.Tensor) -> torch.Tensor:
        """log P_θ(x | x̃) for binary ``x``, shape (B,)."""
        self._check_x("x", x, binary=True)
        return -self.nll(x, x_tilde)

    def sample(self, x_tilde: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x ~ P_θ(X | x̃), shape (B, d), binary."""
        p = self(x_tilde)
        return _bernoulli(p, checks.generator("generator", generator, x_tilde))

    def step(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One chain step x_t → x̃_t ~ C(· | x_t) → x_{t+1} ~ P_θ(· | x̃_t); returns (x_{t+1}, p_{t+1})."""
        x = self._check_x("x", x)
        checks.generator("generator", generator, x)
        x_next, logits = self._chain_step(x, generator, True)[1:]
        return x_next, torch.sigmoid(logits)

    def loss(
        self, x: torch.Tensor, generator: torch.Generator | None = None, *, walkback_steps: int = 1
    ) -> torch.Tensor:
        """Denoising criterion: the batch mean of Σ_k −log P_θ(x | x̃_k) (a scalar to minimise).

        With ``walkback_steps = 1`` this is [GDAE] eq. 1, x̃ ~ C(x̃ | x) salt-and-pepper. With
        k > 1 it is the walkback criterion with all k intermediate pairs kept ([GDAE] Algorithm 2;
        the MNIST experiment's "chain of 5 steps … 5 corrupted examples per training
        example", thesis §5.5.1): x̃_1 ~ C(· | x), x_1 ~ P_θ(· | x̃_1), x̃_2 ~ C(· | x_1), …, each x̃_j
        reconstructing the original x. Samples carry no gradient.

        Args:
            x: (B, d) training batch with values in [0, 1].
            generator: ``torch.Generator`` on ``x``'s device.
            walkback_steps: number k of corrupted examples per training example (>= 1).
        """
        x = self._check_x("x", x)
        checks.generator("generator", generator, x)
        k = checks.positive_int("walkback_steps", walkback_steps)
        total = x.new_zeros(())
        current = x
        for _ in range(k):
            current, logits = self._chain_step(current, generator, True)[1:]
            total = total + _nll(logits, x).mean()
        return total

    def _chain_step(
        self, state: torch.Tensor, generator: torch.Generator | None, sample_x: bool, alpha: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = alpha * self._logits(
            corruption.salt_and_pepper(state, self.input_noise, generator, check=False)
        )
        x = _bernoulli(torch.sigmoid(logits), generator) if sample_x else torch.sigmoid(logits).detach()
        return x, x, logits

    def _initial(self, x0: torch.Tensor) -> torch.Tensor:
        return x0

    def _set_x(self, state: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x

    def extra_repr(self) -> str:
        return (
            f"n_vis={self.n_vis}, n_hid={self.n_hid}, input_noise={self.input_noise}, tied={self.tied}, "
            f"activation={self.activation!r}"
        )


class DeepGSN(_BinaryModel):
    """Deep generative stochastic network ([GSN14] §6, Fig. 1; thesis §5.5.2, Fig. 5.5).

    Layers x = h_0 (visible, binary), h_1, …, h_D, with one weight matrix W_i (n_{i+1} × n_i) per pair
    of adjacent layers, used upwards as W_i and downwards as W_iᵀ ("downward weight matrices have been
    fixed to the transpose of corresponding upward weight matrices", [GSN14] §6), and one bias b_i per layer.
    The state of the chain is (x_t, h_1, …, h_D), with H_0 = 0 (thesis §5.5.2). One step (one "update"
    of the authors' reference code, github.com/yaoli/GSN, linked in thesis §5.5) is one DBM-like sweep:

    1. x̃_t = salt_and_pepper(x_t, input_noise) ("all x_t's are corrupted … before entering the graph");
    2. odd layers i = 1, 3, …: h_i = η_out + tanh(η_in + a_i), a_i = b_i + W_{i−1} h_{i−1} + W_iᵀ h_{i+1}
       (h_0 = x̃_t; the top layer has no term from above), η_in, η_out ~ N(0, σ²) with σ = ``sigma_hidden``
       ("standard deviation 2, applied to all hidden layers except the first", [GSN14] §7);
    3. even layers: p_{t+1} = sigmoid(b_0 + W_0ᵀ h_1) and x_{t+1} ~ Bernoulli(p_{t+1}) (the factorized
       reconstruction P_θ2(X | H), [GSN14] Fig. 1 caption); hidden even layers as in 2.

    With one hidden layer the graph splits into separate reconstructions: this is the tied-weights DAE
    baseline of [GSN14] Table 1 (§7). The paper: 784–1500–1500 (or 1000 units) on MNIST, σ = 2,
    input_noise = 0.4, SGD with learning rate 0.25, momentum 0.5, ×0.99 per epoch.

    Args:
        layer_sizes: (n_vis, n_1, …, n_D) with D >= 1, e.g. (64, 256, 256) on 8×8 digits.
        sigma_hidden: σ of the pre- and post-activation Gaussian noise (>= 0; default 2).
        input_noise: salt-and-pepper probability applied to every x_t (default 0.4).
        noiseless_h1: no hidden noise on h_1 (default True, as in the papers).
        seed / generator: initialisation source (default seed 0); W_i ~ U(±√(6/(n_i+n_{i+1}))), biases 0.
        dtype, device: of the parameters.

    Parameters ``weights[i]`` (n_{i+1}, n_i) for i < D and ``biases[i]`` (n_i,) for i <= D: in all
    Σ_i n_i n_{i+1} + Σ_i n_i numbers.
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        *,
        sigma_hidden: float = 2.0,
        input_noise: float = 0.4,
        noiseless_h1: bool = True,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.layer_sizes = checks.int_sequence("layer_sizes", layer_sizes)
        if len(self.layer_sizes) < 2:
            raise ValueError(
                "layer_sizes must hold the visible size and at least one hidden size, "
                f"got {list(layer_sizes)}"
            )
        self.n_vis, self.depth = self.layer_sizes[0], len(self.layer_sizes) - 1
        self.sigma_hidden = checks.positive_float("sigma_hidden", sigma_hidden, allow_zero=True)
        self.input_noise = checks.probability("input_noise", input_noise)
        self.noiseless_h1 = checks.boolean("noiseless_h1", noiseless_h1)
        gen = initial_generator(seed, generator)
        kw = {"dtype": parameter_dtype(dtype), "device": device}
        self.weights = nn.ParameterList(
            nn.Parameter(_glorot(n_out, n_in, gen).to(**kw))
            for n_in, n_out in itertools.pairwise(self.layer_sizes)
        )
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(n, **kw)) for n in self.layer_sizes)

    # -- the chain

    def init_state(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The initial state [x, h_1 = 0, …, h_D = 0] (H_0 = 0, thesis §5.5.2) for a (B, n_vis) batch."""
        x = self._check_x("x", x)
        return self._initial(x)

    def _initial(self, x0: torch.Tensor) -> list[torch.Tensor]:
        return [x0, *(x0.new_zeros(x0.shape[0], n) for n in self.layer_sizes[1:])]

    def _set_x(self, state: list[torch.Tensor], x: torch.Tensor) -> list[torch.Tensor]:
        return [x, *state[1:]]

    def _hidden(
        self, layers: list[torch.Tensor], i: int, generator: torch.Generator | None, noisy: bool
    ) -> torch.Tensor:
        """h_i = η_out + tanh(η_in + b_i + W_{i−1} h_{i−1} + W_iᵀ h_{i+1}) for 1 <= i <= D."""
        a = nn.functional.linear(layers[i - 1], self.weights[i - 1], self.biases[i])
        if i < self.depth:
            a = a + layers[i + 1] @ self.weights[i]
        noisy = noisy and self.sigma_hidden > 0 and not (i == 1 and self.noiseless_h1)
        if noisy:
            a = corruption.gaussian(a, self.sigma_hidden, generator, check=False)
        h = torch.tanh(a)
        if noisy:
            h = corruption.gaussian(h, self.sigma_hidden, generator, check=False)
        return h

    def _step(
        self,
        state: list[torch.Tensor],
        generator: torch.Generator | None,
        noisy: bool = True,
        sample_x: bool = True,
        alpha: torch.Tensor | float = 1.0,
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """One odd-then-even sweep, unchecked; returns (new state, logits of p_{t+1}).

        ``alpha`` scales the visible logits (a walkback step's α_k, thesis §5.3.3)."""
        x = state[0]
        x_tilde = corruption.salt_and_pepper(x, self.input_noise, generator, check=False) if noisy else x
        layers = [x_tilde, *state[1:]]
        for i in range(1, self.depth + 1, 2):
            layers[i] = self._hidden(layers, i, generator, noisy)
        logits = alpha * (layers[1] @ self.weights[0] + self.biases[0])
        for i in range(2, self.depth + 1, 2):
            layers[i] = self._hidden(layers, i, generator, noisy)
        p = torch.sigmoid(logits.detach())
        layers[0] = torch.bernoulli(p, generator=generator) if sample_x else p
        return layers, logits

    def _chain_step(
        self, state: list[torch.Tensor], generator: torch.Generator | None, sample_x: bool, alpha: float = 1.0
    ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        state, logits = self._step(state, generator, True, sample_x, alpha)
        return state, state[0], logits

    def _check_state(self, state: object) -> list[torch.Tensor]:
        if not isinstance(state, (list, tuple)):
            raise TypeError(f"state must be a list of tensors [x, h_1, ..., h_D], got {type(state).__name__}")
        if len(state) != self.depth + 1:
            raise ValueError(f"state must hold {self.depth + 1} tensors [x, h_1, ..., h_D], got {len(state)}")
        x = self._check_x("state[0]", state[0])
        for i, h in enumerate(state[1:], start=1):
            checks.tensor(f"state[{i}]", h, ndim=2, last_dim=self.layer_sizes[i])
            if h.shape[0] != x.shape[0]:
                raise ValueError(f"state[{i}] must have batch size {x.shape[0]}, got shape {tuple(h.shape)}")
        return list(state)

    def step(
        self,
        state: list[torch.Tensor],
        generator: torch.Generator | None = None,
        *,
        noisy: bool = True,
        sample_x: bool = True,
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """One chain step (x_t, H_t) → (x_{t+1}, H_{t+1}) (the class docstring's steps 1–3).

        Args:
            state: [x_t, h_1, …, h_D], x_t of shape (B, n_vis) in [0, 1], h_i of shape (B, n_i)
                (start from :meth:`init_state`).
            generator: ``torch.Generator`` on the state's device (``None``: torch's global generator).
            noisy: False switches off the input corruption and the hidden noise (a deterministic sweep).
            sample_x: False keeps the mean p_{t+1} as the new x instead of a Bernoulli draw.

        Returns:
            (the new state, p_{t+1} = P_θ(X_{t+1,i} = 1 | H_{t+1}) of shape (B, n_vis)).
        """
        state = self._check_state(state)
        checks.generator("generator", generator, state[0])
        checks.boolean("noisy", noisy)
        checks.boolean("sample_x", sample_x)
        state, logits = self._step(state, generator, noisy, sample_x)
        return state, torch.sigmoid(logits)

    def walkback_loss(
        self,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        n_steps: int | None = None,
        per_step: bool = False,
        scales: ScaledHead | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Walkback training criterion: Σ_{t=1}^{T} mean_batch −log P_θ(X = x | H_t), T = 2D by default.

        The chain is unrolled from x_0 = x (with H_0 = 0) for T steps, each producing a reconstruction
        distribution P_θ2(X | H_t) under which the original x is scored ([GSN14] §6: "the graph was
        unfolded so that 2D sampled reconstructions would be produced … The training loss is the sum of
        the reconstruction negative log-likelihoods (of target X) over all those reconstruction steps";
        thesis Fig. 5.5 caption). The gradient flows through the Gaussian-noised hidden units
        (reparametrised, [GSN14] §6) and back through time, but not through the Bernoulli draws x_t.

        Args:
            x: (B, n_vis) training batch in [0, 1] (binary images; grey levels act as soft targets).
            generator: ``torch.Generator`` on ``x``'s device.
            n_steps: T (default 2 × depth).
            per_step: also return the T per-step NLLs (detached), shape (T,).
            scales: a :class:`ScaledHead` with at least T steps: step k's logits are multiplied by its
                learned α_k, both for the loss and for the sample x_k (thesis §5.3.3).

        Returns:
            the scalar loss (and the per-step NLLs when ``per_step``). Each term is a full NLL in nats
            (summed over the n_vis pixels); the reference code averages over pixels instead, so its
            learning rate 0.25 corresponds to about 0.25 / n_vis here with plain SGD.
        """
        x = self._check_x("x", x)
        checks.generator("generator", generator, x)
        n_steps = 2 * self.depth if n_steps is None else checks.positive_int("n_steps", n_steps)
        checks.boolean("per_step", per_step)
        if scales is not None:
            if not isinstance(scales, ScaledHead):
                raise TypeError(f"scales must be a ScaledHead or None, got {type(scales).__name__}")
            if scales.n_steps < n_steps:
                raise ValueError(f"scales must have at least n_steps = {n_steps} steps, got {scales.n_steps}")
        alphas = scales.alphas() if scales is not None else [1.0] * n_steps
        state = self._initial(x)
        terms = []
        for k in range(n_steps):
            state, logits = self._step(state, generator, alpha=alphas[k])
            terms.append(_nll(logits, x).mean())
        stacked = torch.stack(terms)
        loss = stacked.sum()
        return (loss, stacked.detach()) if per_step else loss

    def extra_repr(self) -> str:
        return (
            f"layer_sizes={self.layer_sizes}, sigma_hidden={self.sigma_hidden}, "
            f"input_noise={self.input_noise}, noiseless_h1={self.noiseless_h1}"
        )


class ScaledHead(nn.Module):
    """Per-step walkback scaling factors α_k = softplus(a_k) of a factorized Bernoulli decoder.

    Thesis §5.3.3: at walkback step k the reconstruction is
    p_i^k = sigmoid(α_k f_i(x̃)) with one learned α_k > 0 per step, so that later (more uncertain)
    steps can have more entropy (α_k smaller) without blurring the first step. Initialised at α_k = 1,
    where the head reproduces the unscaled decoder. Sample with α_1 ("sharper and more faithful to
    the data distribution").

    Args:
        n_steps: number of walkback steps K (>= 1).
        dtype, device: of the parameter ``a`` (K,).
    """

    def __init__(
        self, n_steps: int, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> None:
        super().__init__()
        self.n_steps = checks.positive_int("n_steps", n_steps)
        start = math.log(math.expm1(1.0))  # softplus(start) = 1
        self.a = nn.Parameter(torch.full((self.n_steps,), start, dtype=parameter_dtype(dtype), device=device))

    def alphas(self) -> torch.Tensor:
        """α_k = softplus(a_k) > 0, shape (K,)."""
        return nn.functional.softplus(self.a)

    def log_prob(self, x: torch.Tensor, logits: torch.Tensor, step: int) -> torch.Tensor:
        """log P(x | α_step · logits) of the factorized Bernoulli, summed over the last dimension.

        ``x``: (B, d) with values in [0, 1]; ``logits``: of the same shape.
        """
        x = checks.unit_interval("x", checks.tensor("x", x, ndim=2))
        logits = checks.tensor("logits", logits, ndim=2)
        if logits.shape != x.shape:
            raise ValueError(f"logits must have the shape of x {tuple(x.shape)}, got {tuple(logits.shape)}")
        step = checks.nonnegative_int("step", step)
        if step >= self.n_steps:
            raise ValueError(f"step must be in [0, {self.n_steps}), got {step}")
        return -_nll(self.alphas()[step] * logits, x)

    def extra_repr(self) -> str:
        return f"n_steps={self.n_steps}"


class ScaledGSN(nn.Module):
    """A :class:`DeepGSN` with walkback scaling factors (:class:`ScaledHead`), trained on random walk lengths.

    Thesis §5.3.3 / [GSN14] §6: each minibatch walks back T ~ U{2, …, K} steps and step k's logits are
    scaled by α_k (:meth:`walkback_loss`). Sample from ``self.gsn`` with ``logit_scale = α_1``.

    Args:
        layer_sizes: of the :class:`DeepGSN` (``gsn``).
        n_steps: K >= 2, the number of α_k of the :class:`ScaledHead` (``head``).
    """

    def __init__(self, layer_sizes: Sequence[int], n_steps: int = 6) -> None:
        super().__init__()
        if checks.positive_int("n_steps", n_steps) < 2:
            raise ValueError(f"n_steps must be >= 2 (T is drawn from 2 ... n_steps), got {n_steps}")
        self.gsn = DeepGSN(layer_sizes)
        self.head = ScaledHead(n_steps)

    def walkback_loss(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """:meth:`DeepGSN.walkback_loss` with ``scales = head`` over T ~ U{2, …, K} steps (T drawn first)."""
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        k = int(torch.randint(2, self.head.n_steps + 1, (1,), generator=generator, device=generator.device))
        return self.gsn.walkback_loss(x, generator, n_steps=k, scales=self.head)


def fit(
    model: nn.Module,
    loss_of: Callable[[nn.Module, torch.Tensor, torch.Generator], torch.Tensor],
    x: torch.Tensor,
    *,
    steps: int,
    batch: int,
    lr: float,
    optimizer: str = "sgd",
    optimizer_options: dict[str, Any] | None = None,
    epochs: int = 1,
    lr_decay: float = 1.0,
    seed: int = 0,
    snapshot_epochs: Sequence[int] = (),
    checkpoint_epochs: Sequence[int] = (),
    desc: str = "training",
) -> dict[str, Any]:
    """Minibatch training of a binary model: ``epochs`` × ``steps`` steps on batches drawn from ``x``.

    Epoch e (from 0) runs :func:`dae_tutor.train.train_loop` for ``steps`` steps at learning rate
    ``lr · lr_decay**e`` on ``loss_of(model, x[idx], generator)`` with ``batch`` indices drawn with
    replacement, all from one generator seeded ``seed`` on ``x``'s device. [GSN14] §7's recipe is SGD with
    momentum 0.5 (a fresh optimiser each epoch) and ``lr_decay = 0.99``.

    Returns:
        ``{"history": mean loss per epoch, "snapshots": {epoch: means}, "checkpoints": {epoch: state}}``
        where, after each epoch of ``snapshot_epochs`` (1-based), ``means`` are the 40 mean-field steps
        (40, n_vis) on the CPU of ``model.sample_chain`` from ``x[:1]`` (generator seeded ``seed + 1``),
        and after each epoch of ``checkpoint_epochs`` (1-based), ``state`` is a CPU copy of
        ``model.state_dict()`` (for curves of any measure against training time).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(loss_of):
        raise TypeError(f"loss_of must be callable, got {type(loss_of).__name__}")
    x = checks.nonempty("x", checks.tensor("x", x, ndim=2))
    steps = checks.positive_int("steps", steps)
    batch = checks.positive_int("batch", batch)
    epochs = checks.positive_int("epochs", epochs)
    lr_decay = checks.positive_float("lr_decay", lr_decay)
    seed = checks.nonnegative_int("seed", seed)
    snapshot_epochs = checks.int_sequence("snapshot_epochs", snapshot_epochs)
    if snapshot_epochs and not hasattr(model, "sample_chain"):
        raise ValueError("snapshot_epochs needs a model with a sample_chain method")
    checkpoint_epochs = checks.int_sequence("checkpoint_epochs", checkpoint_epochs)
    gen = runtime.generator(seed, x.device)
    history, snapshots, checkpoints = [], {}, {}
    for epoch in range(epochs):

        def loss_fn() -> torch.Tensor:
            idx = torch.randint(len(x), (batch,), generator=gen, device=x.device)
            return loss_of(model, x[idx], gen)

        epoch_losses = train.train_loop(
            loss_fn,
            model,
            steps=steps,
            optimizer=optimizer,
            lr=lr * lr_decay**epoch,
            optimizer_options=optimizer_options,
            progress=False,
            desc=desc,
        )
        history.append(float(np.mean(epoch_losses)))
        if epoch + 1 in snapshot_epochs:
            with torch.no_grad():
                means = model.sample_chain(
                    x[:1], 40, runtime.generator(seed + 1, x.device), return_means=True
                )[1]
            snapshots[epoch + 1] = means[:, 0].cpu()
        if epoch + 1 in checkpoint_epochs:
            checkpoints[epoch + 1] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return {"history": history, "snapshots": snapshots, "checkpoints": checkpoints}
