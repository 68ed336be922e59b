"""The one training loop, and denoising auto-encoders fitted with it.

* :func:`train_loop` minimises any scalar loss with Adam, SGD, RMSProp or L-BFGS: seeded
  callers, device-agnostic, a ``tqdm.auto`` progress bar (off by default), and a
  :class:`~dae_tutor.errors.DivergenceError` (a ``FloatingPointError``) naming the step as soon as
  the loss is NaN or infinite.
* :func:`classifier_checkpoints` trains a classifier on minibatches and keeps its parameters at
  chosen steps (the checkpoints whose Hessians ch. 11 studies).
* :func:`fit_dae` trains a DAE r on the squared-error denoising loss
  (thesis eq. 3.2)

      L_DAE(r) = E_x E_ε ‖r(x + ε) − x‖²,   ε ~ N(0, σ²I),

  either with fresh noise at every step (Adam/SGD, minibatches) or on a set of
  corruptions drawn once and for all and minimised full-batch by L-BFGS (the
  "10 000 fixed corrupted samples" of Fig. 3.5). Its minimiser is
  r*(x̃) = E[x | x̃] = x̃ + σ² ∇log p_σ(x̃) (thesis eq. 3.4–3.5).
* :func:`dsm_loss` is denoising score matching (Vincent 2011, thesis §3.3.7), whose minimiser ψ*(x̃) =
  ∇log p_σ(x̃) is the DAE's (r*(x̃) − x̃)/σ²; :func:`fit_decoder_least_squares` minimises either loss
  exactly over an auto-encoder's decoder (a linear least-squares problem, the encoder kept).
* :func:`gaussian_walkback_loss` is the walkback criterion of a DAE with a Gaussian reconstruction head
  ([GDAE] Algorithm 2), beside the plain criterion :func:`dae_loss`; :func:`fit_gaussian_walkback`
  minimises it on minibatches.
* :func:`fit_noise_mixture_dae` trains one DAE on a mixture of noise levels (each example's σ drawn
  from a list: the large-noise recipe of Fig. 3.7).
* :func:`fit_dae_ensemble` trains many such DAEs (one per σ) at once, as one
  model with stacked parameters and batched matmuls, and gives the same
  models as separate :func:`fit_dae` calls with the same seeds.

Sources: "the thesis" is G. Alain's PhD thesis (2018); [GDAE] = Bengio, Yao, Alain and Vincent (2013),
*Generalized Denoising Auto-Encoders as Generative Models*.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from dae_tutor import checks, corruption, runtime
from dae_tutor.errors import DivergenceError
from dae_tutor.nets import AutoEncoder, DeepAutoEncoder

OPTIMIZERS = ("adam", "sgd", "rmsprop", "lbfgs")
DEFAULT_LR = {"adam": 1e-3, "sgd": 1e-2, "rmsprop": 1e-3, "lbfgs": 1.0}
# How many random numbers (indices and noise) are drawn per call to the generator:
# pre-drawing a chunk of steps at once removes per-step generator overhead.
CHUNK_ELEMENTS = 1 << 17
LBFGS_MAX_LINE_SEARCH = 25


# ----------------------------------------------------------------------------- the loop


def _param_list(params: Iterable[torch.Tensor] | nn.Module) -> list[torch.Tensor]:
    if isinstance(params, nn.Module):
        params = params.parameters()
    if isinstance(params, (torch.Tensor, str, bytes)) or not isinstance(params, Iterable):
        raise TypeError(f"params must be an iterable of tensors or an nn.Module, got {type(params).__name__}")
    params = list(params)
    for p in params:
        if not isinstance(p, torch.Tensor) or not p.is_floating_point():
            raise TypeError(f"params must be floating tensors, got {getattr(p, 'dtype', type(p).__name__)}")
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("params holds no tensor that requires grad")
    return params


def _evaluate(loss_fn: Callable[[], torch.Tensor]) -> torch.Tensor:
    loss = loss_fn()
    if not isinstance(loss, torch.Tensor):
        raise TypeError(f"loss_fn must return a torch.Tensor, got {type(loss).__name__}")
    if loss.numel() != 1:
        raise ValueError(f"loss_fn must return a scalar tensor, got shape {tuple(loss.shape)}")
    return loss.reshape(())


class _LBFGSClosure:
    """The closure L-BFGS evaluates: loss and gradients at the current parameters.

    ``torch.optim.LBFGS.step`` starts by evaluating the loss at the current point, which its
    previous line search has usually just evaluated; the cache (keyed by the parameter values
    themselves, so it cannot be stale) saves that repeated forward/backward pass, making
    ``steps`` calls of ``max_iter=1`` as cheap as one call with ``max_iter=steps``.
    A NaN/inf loss at any evaluation, line-search trials included, raises :class:`DivergenceError`.
    """

    def __init__(
        self, loss_fn: Callable[[], torch.Tensor], params: list[torch.Tensor], steps: int, desc: str
    ) -> None:
        self.loss_fn, self.params, self.steps, self.desc = loss_fn, params, steps, desc
        self.at: list[torch.Tensor] | None = None
        self.loss = torch.tensor(math.nan)
        self.step = 0  # the current step
        self.trial = 0  # 0: the evaluation at the start of the step; k >= 1: the k-th line-search trial

    def __call__(self) -> torch.Tensor:
        if self.at is not None and all(torch.equal(p, q) for p, q in zip(self.params, self.at, strict=True)):
            return self.loss
        for p in self.params:
            p.grad = None
        with torch.enable_grad():
            loss = _evaluate(self.loss_fn)
            value = float(loss.detach())
            if not math.isfinite(value):
                where = f", line-search evaluation {self.trial}" if self.trial else ""
                raise DivergenceError(self.step, value, self.steps, self.desc, where)
            loss.backward()
        if self.trial:
            self.trial += 1
        self.at = [p.detach().clone() for p in self.params]
        self.loss = loss.detach()
        return self.loss


def train_loop(
    loss_fn: Callable[[], torch.Tensor],
    params: Iterable[torch.Tensor] | nn.Module,
    *,
    steps: int,
    optimizer: str = "adam",
    lr: float | None = None,
    progress: bool = False,
    desc: str = "training",
    optimizer_options: Mapping[str, Any] | None = None,
    check_every: int | None = None,
    callback: Callable[[int], None] | None = None,
) -> list[float]:
    """Minimise ``loss_fn()`` over ``params`` for ``steps`` steps and return the loss history.

    Args:
        loss_fn: called with no argument, returns a scalar tensor computed from ``params``. It draws
            its own minibatch / noise (keep it seeded). For ``"lbfgs"`` it must be deterministic
            (full batch, fixed noise): the line search compares several evaluations.
        params: the tensors to train (or an ``nn.Module``); training runs on whatever device they live.
        steps: optimiser steps; for L-BFGS one step is one iteration with a strong-Wolfe line search
            (up to 25 extra evaluations).
        optimizer: ``"adam"``, ``"sgd"``, ``"rmsprop"`` (torch's defaults: α = 0.99, ε = 1e-8, as
            thesis §11.2.1 trains) or ``"lbfgs"`` (full batch, ``line_search_fn="strong_wolfe"``).
        lr: learning rate; default 1e-3 (Adam, RMSProp), 1e-2 (SGD), 1.0 (L-BFGS's initial step).
        progress: show a ``tqdm.auto`` progress bar.
        desc: label of the bar and of error messages.
        optimizer_options: extra keyword arguments of the torch optimiser (betas, momentum, history_size).
        check_every: look at the loss every this many steps (default 1 on CPU, 50 on GPU, where
            reading it forces a synchronisation). The error names the first bad step either way.
        callback: called as ``callback(step)`` after step ``step``'s update (the parameters have
            then taken ``step + 1`` steps): save checkpoints, log a statistic.

    Returns:
        ``history[k]``: the loss at step k, evaluated before step k's update.

    Raises:
        DivergenceError: (a ``FloatingPointError``) when a loss is NaN or ±inf. With
            ``check_every == 1`` the parameters are left as they were before that step (for
            L-BFGS, unless the bad value came from a line-search trial point).
    """
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    params = _param_list(params)
    steps = checks.positive_int("steps", steps)
    progress = checks.boolean("progress", progress)
    optimizer = checks.one_of("optimizer", optimizer, OPTIMIZERS)
    lr = DEFAULT_LR[optimizer] if lr is None else checks.positive_float("lr", lr)
    if not isinstance(desc, str):
        raise TypeError(f"desc must be a string, got {type(desc).__name__}")
    options = dict(optimizer_options or {})
    if check_every is None:
        check_every = 1 if params[0].device.type == "cpu" else 50
    check_every = checks.positive_int("check_every", check_every)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")

    if optimizer == "adam":
        # The fused kernel (one call per tensor, not ~10) is 2-3x faster for small models.
        options.setdefault("fused", params[0].device.type in ("cpu", "cuda"))
        opt: torch.optim.Optimizer = torch.optim.Adam(params, lr=lr, **options)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, **options)
    elif optimizer == "rmsprop":
        opt = torch.optim.RMSprop(params, lr=lr, **options)
    else:
        options.setdefault("history_size", 100)
        opt = torch.optim.LBFGS(
            params,
            lr=lr,
            max_iter=1,
            max_eval=1 + LBFGS_MAX_LINE_SEARCH,
            line_search_fn="strong_wolfe",
            **options,
        )
        closure = _LBFGSClosure(loss_fn, params, steps, desc)

    history: list[float] = []
    pending: list[torch.Tensor] = []
    postfix_every = max(1, steps // 100)

    def flush(step: int) -> None:
        values = [float(pending[0])] if len(pending) == 1 else torch.stack(pending).tolist()
        first = step - len(values) + 1
        for offset, value in enumerate(values):
            if not math.isfinite(value):
                raise DivergenceError(first + offset, value, steps, desc)
        history.extend(values)
        pending.clear()

    with tqdm(total=steps, desc=desc, disable=not progress, leave=False) as bar:
        for step in range(steps):
            if optimizer == "lbfgs":
                closure.step, closure.trial = step, 0
                loss = closure()  # evaluated (or cached) here so that a NaN stops before the update
                closure.trial = 1  # opt.step re-reads this point from the cache, then line-searches
            else:
                opt.zero_grad(set_to_none=True)
                loss = _evaluate(loss_fn)
            pending.append(loss.detach())
            if len(pending) >= check_every or step == steps - 1:
                flush(step)
                if step % postfix_every == 0 or step == steps - 1:
                    bar.set_postfix(loss=f"{history[-1]:.4g}", refresh=False)
            if optimizer == "lbfgs":
                opt.step(closure)
            else:
                loss.backward()
                opt.step()
            if callback is not None:
                callback(step)
            bar.update(1)
    return history


def classifier_checkpoints(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int,
    save_at: Sequence[int],
    seed: int,
    optimizer: str = "rmsprop",
    lr: float = 1e-3,
    batch_size: int = 32,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Cross-entropy training of ``model`` on minibatches drawn with replacement, RMSProp by default
    (thesis §11.2.1: minibatches of 32), keeping the flat parameters at the steps in ``save_at``.

    All ``steps`` × ``batch_size`` indices are drawn at once from ``seed`` (CPU); returns the flat
    parameter vectors (``parameters_to_vector``) after each step of ``save_at`` (0 = before training),
    in increasing order, and the minibatch losses, shape (steps,).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    x = checks.tensor("x", x)
    checks.class_labels("y", y, x.shape[0])
    steps = checks.positive_int("steps", steps)
    save_at = checks.int_sequence("save_at", save_at, minimum=0)
    if save_at and max(save_at) > steps:
        raise ValueError(f"save_at must be <= steps ({steps}), got {max(save_at)}")
    batch_size = checks.positive_int("batch_size", batch_size)
    batches = iter(torch.randint(len(x), (steps, batch_size), generator=runtime.generator(seed)))
    saved = [nn.utils.parameters_to_vector(model.parameters()).clone()] if 0 in save_at else []

    def loss() -> torch.Tensor:
        rows = next(batches)
        return nn.functional.cross_entropy(model(x[rows]), y[rows])

    def save(step: int) -> None:
        if step + 1 in save_at:
            saved.append(nn.utils.parameters_to_vector(model.parameters()).clone())

    losses = train_loop(loss, model, steps=steps, optimizer=optimizer, lr=lr, callback=save, desc=optimizer)
    return saved, torch.tensor(losses)


# ----------------------------------------------------------------------------- DAE data


def dae_loss(
    r: Callable[[torch.Tensor], torch.Tensor], noisy: torch.Tensor, clean: torch.Tensor
) -> torch.Tensor:
    """Empirical DAE loss (1/n) Σ_i ‖r(x̃_i) − x_i‖² (thesis eq. 3.2), for (n, d) ``noisy``/``clean``."""
    if not callable(r):
        raise TypeError(f"r must be callable, got {type(r).__name__}")
    noisy, clean = _pair("noisy", noisy, "clean", clean)
    return (r(noisy) - clean).square().sum(-1).mean()


def _pair(a_name: str, a: object, b_name: str, b: object) -> tuple[torch.Tensor, torch.Tensor]:
    """Two non-empty (n, d) tensors of one shape."""
    a = checks.tensor(a_name, a, ndim=2)
    b = checks.tensor(b_name, b, ndim=2)
    if b.shape != a.shape or b.shape[0] < 1:
        raise ValueError(
            f"{b_name} must be non-empty with the shape of {a_name} {tuple(a.shape)}, got {tuple(b.shape)}"
        )
    return a, b


def dsm_loss(
    psi: Callable[[torch.Tensor], torch.Tensor], noisy: torch.Tensor, clean: torch.Tensor, sigma: float
) -> torch.Tensor:
    """Denoising score matching (1/n) Σ_i ‖ψ(x̃_i) − (x_i − x̃_i)/σ²‖² (Vincent 2011; thesis §3.3.7).

    (x − x̃)/σ² is the score of the corruption kernel q_σ(x̃ | x); the population minimiser is
    ψ*(x̃) = ∇log p_σ(x̃), the score that the optimal DAE gives as (r*(x̃) − x̃)/σ² (thesis eq. 3.12).
    """
    if not callable(psi):
        raise TypeError(f"psi must be callable, got {type(psi).__name__}")
    sigma = checks.positive_float("sigma", sigma)
    noisy, clean = _pair("noisy", noisy, "clean", clean)
    return dae_loss(psi, noisy, (clean - noisy) / sigma**2)


def fit_decoder_least_squares(
    net: AutoEncoder, inputs: torch.Tensor, targets: torch.Tensor, *, ridge: float = 1e-8
) -> AutoEncoder:
    """Fit the decoder (V, c) of an untied :class:`~dae_tutor.nets.AutoEncoder` exactly, encoder kept.

    Minimises (1/n) Σ_i ‖c + V h_i − y_i‖² + ``ridge`` ‖V‖²_F, h_i = tanh(b + W x_i), over (V, c) with
    ``inputs`` x_i and ``targets`` y_i, both ``(n, d)``, by its normal equations (Cholesky), and writes V, c
    into ``net`` in place. Tanh features of a low-dimensional input are nearly collinear (a condition number
    ~1e17 for 50 units on a line), so the plain least-squares solution depends on round-off; the small ridge
    (≥ 0; features lie in [−1, 1]) makes it well posed and changes the fit by O(``ridge``). With targets =
    clean points this is the DAE loss (thesis eq. 3.2) over the decoder; with targets = (x − x̃)/σ² it is
    :func:`dsm_loss`. Returns ``net``.
    """
    if not isinstance(net, AutoEncoder):
        raise TypeError(f"net must be an AutoEncoder, got {type(net).__name__}")
    if net.V is None:
        raise ValueError("net must have untied weights (its decoder V is fitted, W is kept)")
    inputs, targets = _pair("inputs", inputs, "targets", targets)
    checks.same_width("inputs", inputs, "the net's input", net.W)
    ridge = checks.positive_float("ridge", ridge, allow_zero=True)
    with torch.no_grad():
        features = net.encode(inputs.to(net.W))
        design = torch.cat([features, torch.ones_like(features[:, :1])], dim=1)
        n, k = design.shape
        penalty = torch.diag(torch.full((k,), ridge, dtype=design.dtype, device=design.device))
        penalty[-1, -1] = 0  # c is not penalised
        gram = design.T @ design / n + penalty
        solution = torch.linalg.solve(gram, design.T @ targets.to(net.W) / n)  # (h + 1, d)
        net.V.copy_(solution[:-1].T)
        net.c.copy_(solution[-1])
    return net


def gaussian_walkback_loss(
    r: nn.Module,
    x: torch.Tensor,
    sigma: float,
    s: float,
    generator: torch.Generator | None = None,
    *,
    walkback_steps: int = 1,
) -> torch.Tensor:
    """Walkback criterion of a Gaussian-head DAE: mean over the batch of Σ_k ‖r(x̃_k) − x‖² / (2 s²).

    x̃_1 = x + σε, x_k ~ N(r(x̃_k), s²I) (detached), x̃_{k+1} = x_k + σε: [GDAE] Algorithm 2 with all k
    pairs kept and a fixed walk length (the MNIST experiment's "chain of 5 steps", thesis §5.5.1). Each
    term is −log N(x; r(x̃_k), s²I) up to a constant. ``walkback_steps = 1`` is :func:`dae_loss` / 2s².
    The chain it walks is :func:`~dae_tutor.chains.gaussian_dae_step`.
    """
    x = checks.nonempty("x", checks.tensor("x", x, ndim=2))
    sigma = checks.positive_float("sigma", sigma)
    s = checks.positive_float("s", s)
    checks.generator("generator", generator, x)
    k = checks.positive_int("walkback_steps", walkback_steps)
    squared_errors, current = [], x
    for _ in range(k):
        out = checks.applied("r", r, "x", corruption.gaussian(current, sigma, generator, check=False))
        squared_errors.append((out - x).pow(2).sum(1).mean())
        current = corruption.gaussian(out.detach(), s, generator, check=False)
    return torch.stack(squared_errors).sum() / (2 * s**2)


def _check_samples(samples: object) -> torch.Tensor:
    samples = checks.tensor("samples", samples, ndim=2)
    if samples.shape[0] < 1 or samples.shape[1] < 1:
        raise ValueError(
            f"samples must have at least one row and one column, got shape {tuple(samples.shape)}"
        )
    return samples


def _noise_seed(seed: int) -> int:
    """The seed of the corruption stream, distinct from the initialisation seed (an odd-multiplier
    bijection modulo 2³², since torch's CPU generator keeps 32 bits of a seed)."""
    return (seed * 0x9E3779B1 + 0x7F4A7C15) % (1 << 32)


class _Corruptions:
    """The (x̃, x) pairs of one DAE, x̃ = x + ε with ε ~ N(0, σ²I), in chunks of steps.

    Every random number comes from one generator in a fixed order -- the fixed corruptions
    (if any), then for each chunk of steps the minibatch indices (drawn with replacement) and
    the noise -- so :func:`fit_dae_ensemble` replays exactly what :func:`fit_dae` draws.
    ``chunks()`` yields (noisy, clean) of shape (K, batch, d): one slice per step.
    """

    def __init__(
        self,
        samples: torch.Tensor,
        sigma: float,
        generator: torch.Generator,
        *,
        steps: int,
        batch_size: int | None,
        fixed_noise: bool,
        n_noise: int,
    ) -> None:
        self.samples, self.sigma, self.gen = samples, sigma, generator
        self.steps, self.batch_size, self.fixed_noise = steps, batch_size, fixed_noise
        self.pool: tuple[torch.Tensor, torch.Tensor] | None = None
        if fixed_noise:
            n = samples.shape[0]
            clean = samples if n_noise == n else samples[torch.arange(n_noise, device=samples.device) % n]
            self.pool = (corruption.gaussian(clean, sigma, generator, check=False), clean)
        rows = batch_size if batch_size is not None else (n_noise if fixed_noise else samples.shape[0])
        self.chunk = max(1, CHUNK_ELEMENTS // (rows * samples.shape[1]))

    def _randint(self, high: int, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randint(high, shape, generator=self.gen, device=self.samples.device)

    def chunks(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        done = 0
        while done < self.steps:
            k = min(self.chunk, self.steps - done)
            done += k
            if self.pool is not None:  # fixed corruptions
                noisy, clean = self.pool
                if self.batch_size is None:
                    yield noisy.expand(k, *noisy.shape), clean.expand(k, *clean.shape)
                else:
                    idx = self._randint(noisy.shape[0], (k, self.batch_size))
                    yield noisy[idx], clean[idx]
            else:  # fresh noise at every step
                if self.batch_size is None:
                    clean = self.samples.expand(k, *self.samples.shape)
                else:
                    clean = self.samples[self._randint(self.samples.shape[0], (k, self.batch_size))]
                yield corruption.gaussian(clean, self.sigma, self.gen, check=False), clean


def _steps_of(
    chunks: Iterator[tuple[torch.Tensor, torch.Tensor]],
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for noisy, clean in chunks:
        for k in range(noisy.shape[0]):
            yield noisy[k], clean[k]


def _regime(
    optimizer: str, batch_size: object, fixed_noise: object, n_noise: object, n: int
) -> tuple[int | None, bool, int]:
    """Check and complete (batch_size, fixed_noise, n_noise) for ``optimizer``."""
    if batch_size is not None:
        batch_size = checks.positive_int("batch_size", batch_size)
    if fixed_noise is not None and not isinstance(fixed_noise, bool):
        raise TypeError(f"fixed_noise must be a bool or None, got {type(fixed_noise).__name__}")
    if optimizer == "lbfgs":
        if batch_size is not None:
            raise ValueError("batch_size must be None with optimizer='lbfgs' (L-BFGS is full-batch)")
        if fixed_noise is False:
            raise ValueError(
                "fixed_noise must be True (or None) with optimizer='lbfgs': its line search needs the "
                "same loss at every evaluation"
            )
        fixed_noise = True
    fixed_noise = bool(fixed_noise)
    if n_noise is None:
        n_noise = n
    elif not fixed_noise:
        raise ValueError("n_noise is only used with fixed_noise=True (a fixed set of corruptions)")
    else:
        n_noise = checks.positive_int("n_noise", n_noise)
    return batch_size, fixed_noise, n_noise


# ----------------------------------------------------------------------------- one DAE


def fit_dae(
    samples: torch.Tensor,
    sigma: float,
    *,
    hidden: int | Sequence[int] = 256,
    steps: int = 2000,
    seed: int = 0,
    tied: bool = False,
    length_scale: float = 1.0,
    optimizer: str = "adam",
    lr: float | None = None,
    batch_size: int | None = None,
    fixed_noise: bool | None = None,
    n_noise: int | None = None,
    progress: bool = False,
    return_history: bool = False,
) -> nn.Module | tuple[nn.Module, list[float]]:
    """Train a denoising auto-encoder r on ``samples`` with Gaussian corruption of std ``sigma``.

    Minimises the DAE loss E‖r(x + ε) − x‖², ε ~ N(0, σ²I) (thesis eq. 3.2), whose minimiser
    satisfies (r(x) − x)/σ² → ∂log p(x)/∂x as σ → 0 (thesis eq. 3.5).

    Args:
        samples: (n, d) finite floating tensor; training runs on its device and dtype.
        sigma: corruption standard deviation σ > 0.
        hidden: an int h gives the thesis's :class:`~dae_tutor.nets.AutoEncoder`
            r(x) = c + V tanh(b + W x); a sequence gives a :class:`~dae_tutor.nets.DeepAutoEncoder`
            d → hidden... → d (tanh).
        steps: optimiser steps (L-BFGS: iterations).
        seed: initialisation uses ``seed``, the corruptions a stream derived from it; the
            global RNG is never touched, and the same seed gives the same model on the CPU.
        tied: V = Wᵀ (int ``hidden`` only).
        length_scale: initial length scale ℓ of the tanh units (int ``hidden`` only; see
            :class:`~dae_tutor.nets.AutoEncoder`).
        optimizer: ``"adam"``/``"sgd"`` (minibatches, fresh or fixed noise) or ``"lbfgs"`` (full batch,
            fixed noise: the Fig. 3.5 regime).
        lr: learning rate (default: :data:`DEFAULT_LR` of the optimiser).
        batch_size: minibatch size, rows drawn with replacement; ``None`` = the full batch.
        fixed_noise: draw ``n_noise`` corruptions once and for all and train on them (default: True
            for L-BFGS, False otherwise = fresh noise at every step).
        n_noise: size of the fixed corrupted set (default n); clean points cycle through ``samples``,
            so each is corrupted ``n_noise / n`` times.
        progress: show a progress bar.
        return_history: also return the per-step training loss.

    Returns:
        the trained r (an ``nn.Module`` mapping (..., d) to (..., d)), with ``r.sigma = sigma``
        recorded (:class:`~dae_tutor.nets.TrainedAtSigma`), and its loss history if asked.

    Example (Fig. 3.5): ``fit_dae(spiral, 0.01, hidden=1000, steps=1000, optimizer="lbfgs",
    n_noise=10_000)`` on a float64 tensor of 10 000 spiral points.

    Which settings give a good score: the defaults (Adam, fresh noise at every step) are cheap
    per step but the noise in the gradient swamps the O(σ²) signal; for a score estimate use
    ``optimizer="lbfgs"`` on a fixed set of corruptions (``n_noise`` ≥ 10,000). On the README's
    2-d mixture at σ = 0.1 the density-weighted cosine to ∇log p_σ was 0.99 with
    ``hidden=128, steps=300, optimizer="lbfgs"`` (6 s), against 0.89 for the defaults (66 s) and
    0.61–0.86 for Adam on minibatches of 256–512.
    """
    samples = _check_samples(samples)
    sigma = checks.positive_float("sigma", sigma)
    steps = checks.positive_int("steps", steps)
    progress, return_history = (
        checks.boolean("progress", progress),
        checks.boolean("return_history", return_history),
    )
    seed = checks.nonnegative_int("seed", seed)
    optimizer = checks.one_of("optimizer", optimizer, OPTIMIZERS)
    batch_size, fixed_noise, n_noise = _regime(optimizer, batch_size, fixed_noise, n_noise, samples.shape[0])
    dim = samples.shape[1]
    kw = {"seed": seed, "dtype": samples.dtype, "device": samples.device}
    if isinstance(hidden, Sequence) and not isinstance(hidden, (str, bytes)):
        if tied or length_scale != 1.0:
            raise ValueError("tied and length_scale need an int hidden (a one-hidden-layer AutoEncoder)")
        model: nn.Module = DeepAutoEncoder(dim, hidden, **kw)
    else:
        model = AutoEncoder(dim, hidden, tied=tied, length_scale=length_scale, **kw)

    data = _Corruptions(
        samples,
        sigma,
        runtime.generator(_noise_seed(seed), samples.device),
        steps=steps,
        batch_size=batch_size,
        fixed_noise=fixed_noise,
        n_noise=n_noise,
    )
    if optimizer == "lbfgs":
        noisy, clean = data.pool

        def loss_fn() -> torch.Tensor:
            return dae_loss(model, noisy, clean)
    else:
        batches = _steps_of(data.chunks())

        def loss_fn() -> torch.Tensor:
            return dae_loss(model, *next(batches))

    history = train_loop(
        loss_fn, model, steps=steps, optimizer=optimizer, lr=lr, progress=progress, desc=f"DAE σ={sigma:g}"
    )
    model.sigma = sigma
    return (model, history) if return_history else model


# ----------------------------------------------------------------------------- many DAEs at once


class _StackedAutoEncoders(torch.autograd.Function):
    """M auto-encoders at once, r_m(x_m) = c_m + V_m tanh(b_m + W_m x_m), x: (M, B, d) -> (M, B, d).

    The backward pass is written out (plain backpropagation; g = ∂L/∂r, δ = ∂L/∂a, a = b + W x):

        ∂L/∂V = gᵀ h,   ∂L/∂c = Σ_B g,   δ = (g V) ⊙ (1 − h²),   ∂L/∂W = (xᵀ δ)ᵀ,   ∂L/∂b = Σ_B δ,

    (tied, V = Wᵀ: ∂L/∂W gains (gᵀ h)ᵀ). Autograd computes the same numbers, but this version
    (a) writes the two (M, B, h) activations into buffers reused at every step instead of fresh
    allocations, and (b) forms ∂L/∂W as (xᵀ δ)ᵀ, a shape the CPU's batched matmul runs ~8x faster
    than autograd's δᵀ x. Only for training: it supports a single backward pass.
    """

    @staticmethod
    def forward(ctx, x, W, b, V, c, h_buf, dh_buf):  # type: ignore[override]
        h = torch.baddbmm(b.unsqueeze(1), x, W.transpose(1, 2), out=h_buf).tanh_()
        ctx.save_for_backward(x, W, V)
        ctx.h, ctx.dh_buf = h, dh_buf
        return torch.baddbmm(c.unsqueeze(1), h, W if V is None else V.transpose(1, 2))

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        x, W, V = ctx.saved_tensors
        h = ctx.h
        dV = torch.bmm(g.transpose(1, 2), h)  # (M, d, h)
        dc = g.sum(1)
        delta = torch.bmm(g, W.transpose(1, 2) if V is None else V, out=ctx.dh_buf)
        torch.ops.aten.tanh_backward.grad_input(delta, h, grad_input=delta)  # δ = ∂L/∂h ⊙ (1 − h²), in place
        dW = torch.bmm(x.transpose(1, 2), delta).transpose(1, 2)  # (M, h, d)
        db = delta.sum(1)
        if V is None:
            return None, dW + dV.transpose(1, 2), db, None, dc, None, None
        return None, dW, db, dV, dc, None, None


def _stacked_forward(
    members: Sequence[AutoEncoder], params: dict[str, torch.Tensor], rows: int
) -> Callable[[torch.Tensor], torch.Tensor]:
    """x̃ (M, rows, d) -> r_m(x̃_m) for all M ``members`` at once, from their stacked ``params``
    (``torch.func.stack_module_state``), by :class:`_StackedAutoEncoders`."""
    W, b, V, c = params["W"], params["b"], params.get("V"), params["c"]
    h_buf, dh_buf = (W.new_empty(len(members), rows, members[0].hidden) for _ in range(2))
    return lambda noisy: _StackedAutoEncoders.apply(noisy, W, b, V, c, h_buf, dh_buf)


def fit_dae_ensemble(
    samples: torch.Tensor,
    sigmas: Sequence[float] | torch.Tensor,
    *,
    hidden: int = 256,
    steps: int = 2000,
    seeds: int | Sequence[int] | None = None,
    tied: bool = False,
    length_scale: float = 1.0,
    optimizer: str = "adam",
    lr: float | None = None,
    batch_size: int | None = None,
    fixed_noise: bool | None = None,
    n_noise: int | None = None,
    progress: bool = False,
    return_history: bool = False,
) -> list[AutoEncoder] | tuple[list[AutoEncoder], list[list[float]]]:
    """Train one :class:`~dae_tutor.nets.AutoEncoder` per σ in ``sigmas``, all at once.

    The M models are one model with stacked parameters W (M, h, d), b (M, h), V (M, d, h), c (M, d),
    evaluated with batched matmuls (``torch.baddbmm``) and trained by one optimiser on the **sum** of
    the members' DAE losses (thesis eq. 3.2). Member m's gradient is then exactly its own, Adam and
    SGD act elementwise, and member m draws its initialisation, minibatches and noise from the same
    generators as ``fit_dae(samples, sigmas[m], seed=seeds[m], ...)``: the result equals M separate
    :func:`fit_dae` calls (to floating-point rounding) at a fraction of the Python overhead.

    The forward and backward passes are written out (``_StackedAutoEncoders``). torch's own
    ensemble recipe, ``torch.func.stack_module_state`` + ``torch.func.vmap`` over ``functional_call``
    with autograd's backward, gives the same losses (bit for bit in float32) but took 1.3–1.9x the CPU
    time on the same models, data and Adam steps (16 DAEs 2 → 256 → 2, batch 32 and 128, 1 CPU
    thread; ``python -m benchmarks ensemble``, numbers in ``benchmarks/README.md``).

    L-BFGS is not supported: its line search takes one step length for the whole parameter vector,
    which would couple the members. Train those one by one with :func:`fit_dae`.

    Args:
        samples: (n, d) finite floating tensor shared by all members.
        sigmas: the M corruption levels (repeats allowed, e.g. to vary only the seed).
        seeds: one seed per member, or one int for all (default 0 for all, like :func:`fit_dae`).
        hidden, steps, tied, length_scale, optimizer (``"adam"``/``"sgd"``), lr, batch_size,
            fixed_noise, n_noise, progress: as in :func:`fit_dae` (``hidden`` must be an int).
        return_history: also return each member's per-step loss.

    Returns:
        the M trained auto-encoders, each with its ``sigma`` recorded (and their loss histories if
        asked), in the order of ``sigmas``.
    """
    samples = _check_samples(samples)
    if isinstance(sigmas, torch.Tensor):
        sigmas = sigmas.detach().cpu().reshape(-1).tolist()
    if isinstance(sigmas, (str, bytes)) or not isinstance(sigmas, Sequence):
        raise TypeError(f"sigmas must be a sequence of positive numbers, got {type(sigmas).__name__}")
    if len(sigmas) == 0:
        raise ValueError("sigmas must hold at least one noise level, got an empty sequence")
    sigmas = [checks.positive_float(f"sigmas[{m}]", s) for m, s in enumerate(sigmas)]
    M = len(sigmas)
    if seeds is None or isinstance(seeds, int):
        seeds = [0 if seeds is None else seeds] * M
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence):
        raise TypeError(f"seeds must be an int, a sequence of ints or None, got {type(seeds).__name__}")
    if len(seeds) != M:
        raise ValueError(f"seeds must hold one seed per sigma ({M}), got {len(seeds)}")
    seeds = [checks.nonnegative_int(f"seeds[{m}]", s) for m, s in enumerate(seeds)]
    if isinstance(hidden, bool) or not isinstance(hidden, int):
        raise TypeError(
            f"hidden must be an int (the ensemble trains one-hidden-layer AutoEncoders), got {hidden!r}"
        )
    steps = checks.positive_int("steps", steps)
    progress, return_history = (
        checks.boolean("progress", progress),
        checks.boolean("return_history", return_history),
    )
    optimizer = checks.one_of("optimizer", optimizer, OPTIMIZERS)
    if optimizer == "lbfgs":
        raise ValueError(
            "optimizer='lbfgs' is not supported by fit_dae_ensemble: one line search for all members "
            "would couple them; call fit_dae for each sigma instead"
        )
    batch_size, fixed_noise, n_noise = _regime(optimizer, batch_size, fixed_noise, n_noise, samples.shape[0])
    dim = samples.shape[1]

    members = [
        AutoEncoder(
            dim,
            hidden,
            tied=tied,
            length_scale=length_scale,
            seed=s,
            dtype=samples.dtype,
            device=samples.device,
        )
        for s in seeds
    ]
    stacked, _ = torch.func.stack_module_state(members)  # W, b, (V,) c: (M, ...) leaves

    streams = [
        _Corruptions(
            samples,
            sigma,
            runtime.generator(_noise_seed(seed), samples.device),
            steps=steps,
            batch_size=batch_size,
            fixed_noise=fixed_noise,
            n_noise=n_noise,
        ).chunks()
        for sigma, seed in zip(sigmas, seeds, strict=True)
    ]

    def chunks() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for parts in zip(*streams, strict=True):  # every member's chunk covers the same steps
            yield torch.stack([p[0] for p in parts], 1), torch.stack([p[1] for p in parts], 1)

    batches = _steps_of(chunks())  # (M, B, d) per step
    rows = batch_size if batch_size is not None else (n_noise if fixed_noise else samples.shape[0])
    forward = _stacked_forward(members, stacked, rows)
    member_losses: list[torch.Tensor] = []

    def loss_fn() -> torch.Tensor:
        noisy, clean = next(batches)
        per_member = (forward(noisy) - clean).square().sum(-1).mean(-1)
        member_losses.append(per_member.detach())
        return per_member.sum()

    train_loop(
        loss_fn,
        list(stacked.values()),
        steps=steps,
        optimizer=optimizer,
        lr=lr,
        progress=progress,
        desc=f"{M} DAEs",
    )
    with torch.no_grad():
        for m, member in enumerate(members):
            for n, p in stacked.items():
                getattr(member, n).copy_(p[m])
            member.sigma = sigmas[m]
    if not return_history:
        return members
    return members, torch.stack(member_losses).T.tolist()


def fit_gaussian_walkback(
    r: nn.Module,
    x: torch.Tensor,
    sigma: float,
    s: float,
    *,
    steps: int,
    lr: float,
    walkback_steps: int = 1,
    batch: int = 256,
    seed: int = 0,
    desc: str = "walkback DAE",
) -> list[float]:
    """Adam on :func:`gaussian_walkback_loss` over minibatches of ``x`` drawn with replacement.

    One generator seeded ``seed`` (on ``x``'s device) draws each step's ``batch`` indices and then its
    corruptions ([GDAE] Algorithm 2 with a fixed walk length); returns the loss history.
    """
    x = checks.nonempty("x", checks.tensor("x", x, ndim=2))
    batch = checks.positive_int("batch", batch)
    g = runtime.generator(checks.nonnegative_int("seed", seed), x.device)

    def loss_fn() -> torch.Tensor:
        idx = torch.randint(len(x), (batch,), generator=g, device=x.device)
        return gaussian_walkback_loss(r, x[idx], sigma, s, g, walkback_steps=walkback_steps)

    return train_loop(loss_fn, r, steps=steps, lr=lr, progress=False, desc=desc)


def fit_noise_mixture_dae(
    samples: torch.Tensor,
    noise_levels: Sequence[float],
    *,
    hidden: int = 256,
    steps: int = 4000,
    seed: int = 0,
    noise_seed: int | None = None,
    lr: float = 3e-3,
    batch_size: int = 256,
    progress: bool = False,
) -> tuple[AutoEncoder, list[float]]:
    """Adam on the DAE loss (thesis eq. 3.2) with each example's σ drawn uniformly from ``noise_levels``.

    The loss is E_x E_σ E_ε ‖r(x + σε) − x‖², σ ~ Uniform(``noise_levels``), ε ~ N(0, I): a mixture
    of corruption levels, whose large levels train r far from the data (thesis §3.4.3, Fig. 3.7:
    spurious attractors). ``hidden`` tanh units in the dtype of ``samples``, initialised from ``seed``
    (default ``nn.Linear`` scale); one generator seeded ``noise_seed`` (default: a stream derived from
    ``seed``) draws, at each step, the ``batch_size`` rows (with replacement), their σ's, then the noise.

    Returns the trained r, with ``r.sigma = min(noise_levels)`` (the score's scale near the data),
    and its per-step loss history.
    """
    samples = _check_samples(samples)
    if isinstance(noise_levels, (str, bytes)) or not isinstance(noise_levels, Sequence) or not noise_levels:
        raise TypeError(f"noise_levels must be a non-empty sequence of floats, got {noise_levels!r}")
    levels_list = [checks.positive_float("noise_levels", s) for s in noise_levels]
    hidden = checks.positive_int("hidden", hidden)
    steps = checks.positive_int("steps", steps)
    seed = checks.nonnegative_int("seed", seed)
    noise_seed = _noise_seed(seed) if noise_seed is None else checks.nonnegative_int("noise_seed", noise_seed)
    batch_size = checks.positive_int("batch_size", batch_size)
    progress = checks.boolean("progress", progress)
    device, dtype = samples.device, samples.dtype
    net = AutoEncoder(samples.shape[1], hidden, seed=seed, dtype=dtype, device=device)
    gen = runtime.generator(noise_seed, device)
    levels = torch.tensor(levels_list, dtype=dtype, device=device)

    def loss_fn() -> torch.Tensor:
        batch = samples[torch.randint(len(samples), (batch_size,), generator=gen, device=device)]
        sigma = levels[torch.randint(len(levels), (batch_size, 1), generator=gen, device=device)]
        noise = torch.randn(batch.shape, generator=gen, dtype=dtype, device=device)
        return dae_loss(net, batch + sigma * noise, batch)

    history = train_loop(
        loss_fn, net, steps=steps, optimizer="adam", lr=lr, progress=progress, desc="DAE, σ mixture"
    )
    net.sigma = min(levels_list)
    return net, history
