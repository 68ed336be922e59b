"""Small building blocks for continuous data: the thesis's auto-encoder, an MLP, a deep auto-encoder.

The thesis's reconstruction function (§3.3.4, the model of Fig. 3.5) is an
encoder ``f(x) = tanh(b + W x)`` followed by a linear decoder ``g(h) = c + V h``:

    r(x) = c + V tanh(b + W x),          V = Wᵀ when the weights are tied.

Parameters are initialised from an explicit seed or ``torch.Generator`` (never
torch's global generator), drawn on the CPU in float64 and then cast, so the
same seed gives the same starting point on every device and dtype (up to the
final rounding): :func:`initial_generator`, :func:`uniform` and :func:`parameter_dtype`
do this for every model of the package.

The binary-data models of chapter 2 (``BernoulliDAE``, ``DeepGSN``) are in :mod:`dae_tutor.gsn`. The
Gaussian-head DAE of continuous data has its chain step in :mod:`dae_tutor.chains`
(``gaussian_dae_step``) and its walkback criterion in :mod:`dae_tutor.train` (``gaussian_walkback_loss``).

Sources: "the thesis" is G. Alain's PhD thesis (2018).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from dae_tutor import checks, runtime

ACTIVATIONS = ("tanh", "relu")


def initial_generator(seed: int | None, generator: torch.Generator | None) -> torch.Generator:
    """The CPU generator that initialises a model: ``generator`` if given, else one seeded with ``seed``."""
    checks.generator("generator", generator)
    if generator is not None:
        if seed is not None:
            raise ValueError("pass either seed or generator, not both")
        if generator.device.type != "cpu":
            raise ValueError(
                f"generator must be a CPU generator (initialisation is drawn on the CPU), "
                f"got one on {generator.device}"
            )
        return generator
    return runtime.generator(0 if seed is None else checks.nonnegative_int("seed", seed))


def uniform(shape: tuple[int, ...], bound: float, generator: torch.Generator) -> torch.Tensor:
    """U(-bound, bound) of ``shape``, drawn in float64 on the CPU."""
    return (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1) * bound


def _check_input(name: str, x: object, width: int) -> torch.Tensor:
    """The input of a forward: a floating tensor (..., ``width``); an empty batch gives an empty output.

    Not its finiteness: a forward's input may be another network's output (D on G(z), r on the
    walkback chain's samples), where a NaN is a training failure that the training loops report as
    :class:`~dae_tutor.errors.DivergenceError`.
    """
    return checks.tensor(name, x, last_dim=width, finite=False)


def parameter_dtype(dtype: torch.dtype | None) -> torch.dtype:
    """``dtype`` (default: torch's default dtype) after checking it is a floating dtype."""
    dtype = torch.get_default_dtype() if dtype is None else dtype
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    return dtype


class TrainedAtSigma:
    """Mixin of the DAE reconstruction functions: ``sigma``, the corruption std σ they were trained at.

    :func:`~dae_tutor.train.fit_dae` sets it; :func:`~dae_tutor.score.dae_score` reads it, so the σ of
    (r(x) − x)/σ² (thesis eq. 3.5) travels with the model. It is saved in the ``state_dict`` (as
    torch's extra state), so a model loaded from the cache knows its σ. ``None``: not recorded.
    """

    sigma: float | None = None

    def get_extra_state(self) -> dict[str, float | None]:
        return {"sigma": self.sigma}

    def set_extra_state(self, state: dict[str, float | None]) -> None:
        self.sigma = state["sigma"]


class AutoEncoder(TrainedAtSigma, nn.Module):
    """One-hidden-layer auto-encoder r(x) = c + V tanh(b + W x) (thesis §3.3.4, Fig. 3.5).

    Args:
        dim: input (and output) dimension d.
        hidden: number of tanh hidden units h.
        tied: share the weights, V = Wᵀ (the thesis found untied weights better).
        seed / generator: where the initial parameters come from (default seed 0).
            Initialisation follows ``nn.Linear``: W, b ~ U(±1/(ℓ√d)), V, c ~ U(±1/√h).
        length_scale: ℓ, the length over which the initial tanh units vary (default 1, as
            ``nn.Linear``). Data with finer structure need a smaller ℓ: on the spiral, whose arms
            are 0.25 apart, ℓ = 1 left L-BFGS barely better than the identity after 300 iterations
            while ℓ = 0.1 reached the noise floor (chapter 1, §1.5).
        dtype, device: of the parameters (default: torch's default dtype, CPU).

    Parameters ``W`` (h, d), ``b`` (h,), ``V`` (d, h) unless tied, ``c`` (d,).
    Inputs of shape (..., d) give outputs of the same shape.
    """

    def __init__(
        self,
        dim: int,
        hidden: int,
        *,
        tied: bool = False,
        length_scale: float = 1.0,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.dim = checks.positive_int("dim", dim)
        self.hidden = checks.positive_int("hidden", hidden)
        length_scale = checks.positive_float("length_scale", length_scale)
        self.tied = checks.boolean("tied", tied)
        gen = initial_generator(seed, generator)
        kw = {"dtype": parameter_dtype(dtype), "device": device}
        enc, dec = 1 / (length_scale * math.sqrt(self.dim)), 1 / math.sqrt(self.hidden)
        self.W = nn.Parameter(uniform((self.hidden, self.dim), enc, gen).to(**kw))
        self.b = nn.Parameter(uniform((self.hidden,), enc, gen).to(**kw))
        self.V = None if tied else nn.Parameter(uniform((self.dim, self.hidden), dec, gen).to(**kw))
        self.c = nn.Parameter(uniform((self.dim,), dec, gen).to(**kw))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """f(x) = tanh(b + W x), shape (..., h)."""
        x = _check_input("x", x, self.dim)
        return torch.tanh(nn.functional.linear(x, self.W, self.b))

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """g(h) = c + V h (V = Wᵀ when tied), shape (..., d)."""
        return self._decode(_check_input("h", h, self.hidden))

    def _decode(self, h: torch.Tensor) -> torch.Tensor:
        V = self.W.T if self.V is None else self.V
        return nn.functional.linear(h, V, self.c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """r(x) = g(f(x)), same shape as ``x``."""
        return self._decode(self.encode(x))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, hidden={self.hidden}, tied={self.tied}"


class MLP(nn.Sequential):
    """A plain multi-layer perceptron: Linear layers with ``activation`` between them (not after the last).

    ``sizes = [d_in, h_1, ..., d_out]``. Layers are named ``linear0, act0, linear1, ...`` so that
    forward hooks (probes) can find them. Initialisation follows ``nn.Linear`` but draws from
    ``seed`` / ``generator``.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str = "tanh",
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        sizes = checks.int_sequence("sizes", sizes)
        if len(sizes) < 2:
            raise ValueError(f"sizes must hold at least an input and an output size, got {list(sizes)}")
        checks.one_of("activation", activation, ACTIVATIONS)
        gen = initial_generator(seed, generator)
        kw = {"dtype": parameter_dtype(dtype), "device": device}
        super().__init__()
        for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
            layer = nn.utils.skip_init(
                nn.Linear, n_in, n_out, dtype=kw["dtype"], device=kw["device"] or "cpu"
            )
            bound = 1 / math.sqrt(n_in)
            with torch.no_grad():
                layer.weight.copy_(uniform((n_out, n_in), bound, gen))
                layer.bias.copy_(uniform((n_out,), bound, gen))
            self.add_module(f"linear{i}", layer)
            if i < len(sizes) - 2:
                self.add_module(f"act{i}", nn.Tanh() if activation == "tanh" else nn.ReLU())
        self.sizes = tuple(sizes)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The network's output, shape (..., d_out), for ``x`` of shape (..., d_in)."""
        return super().forward(_check_input("x", x, self.sizes[0]))


class DeepAutoEncoder(TrainedAtSigma, MLP):
    """A deeper reconstruction function r: R^d → R^d, an :class:`MLP` d → hidden... → d.

    The 10-d manifold DAE of Fig. 3.6 uses ``DeepAutoEncoder(10, (512, 512))``
    (10 → 512 tanh → 512 tanh → 10). Inputs (..., d) give outputs of the same shape.
    """

    def __init__(
        self, dim: int, hidden: Sequence[int] = (512, 512), activation: str = "tanh", **options: Any
    ) -> None:
        """``options``: ``seed``, ``generator``, ``dtype``, ``device``, as for :class:`MLP`."""
        dim = checks.positive_int("dim", dim)
        hidden = checks.int_sequence("hidden", hidden)
        if len(hidden) == 0:
            raise ValueError("hidden must hold at least one layer size, got an empty sequence")
        super().__init__([dim, *hidden, dim], activation, **options)
        self.dim = dim
