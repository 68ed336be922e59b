"""Ablation: replace what one sub-module outputs by a constant and see whether the model notices
(thesis §9.5.1, the dead segment left by a long skip connection).

A segment of a network is *dead* when what it computes does not matter to the model. With a skip
connection h_m = branch(h_(m−1)) + h_s (:class:`dae_tutor.classifiers.DeepMLP`), the bypassed
segment reaches the rest of the network only through ``branch``; replacing that output by zero, or
by its mean over the data (the constant that keeps its first moment), removes every trace of the
input that the segment carries. If the model's error is unchanged, the segment was unused.

* :func:`replaced`: a context manager under which a named sub-module outputs a constant.
* :func:`ablation_errors`: the model's error intact, with the sub-module zeroed, and with it
  replaced by its mean over reference inputs.
* :func:`dead_segment_failures`: the thesis's claim about a skip connection, checked on measured
  numbers (each failed part named), so that a control that is not dead fails it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import nn

from dae_tutor import checks, probes


def _module(model: nn.Module, layer: str) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(layer, str):
        raise TypeError(f"layer must be a sub-module name, got {type(layer).__name__}")
    named = dict(model.named_modules())
    if layer not in named or not layer:
        known = [n for n in named if n]
        raise ValueError(f"layer {layer!r} is not a sub-module of the model; it has {known}")
    return named[layer]


@contextlib.contextmanager
def replaced(model: nn.Module, layer: str, value: torch.Tensor) -> Iterator[None]:
    """While open, sub-module ``layer`` of ``model`` outputs ``value`` (broadcast to its output's shape)
    whatever its input; the forward hook is removed on exit, even after an error."""
    module = _module(model, layer)
    value = checks.tensor("value", value)

    def hook(module: nn.Module, args: object, output: torch.Tensor) -> torch.Tensor:
        return value.to(output).expand_as(output)

    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _error(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    with torch.no_grad():
        wrong = sum(
            int((model(x[i : i + batch_size]).argmax(1) != y[i : i + batch_size]).sum())
            for i in range(0, x.shape[0], batch_size)
        )
    return wrong / x.shape[0]


def ablation_errors(
    model: nn.Module,
    layer: str,
    x: torch.Tensor,
    y: torch.Tensor,
    reference: torch.Tensor,
    *,
    batch_size: int = 1024,
) -> dict[str, float]:
    """The error rate of ``model`` (in eval mode) on (x, y): ``"intact"``; ``"zero"``, with the output of
    sub-module ``layer`` replaced by 0; ``"mean"``, replaced by its mean over the ``reference`` inputs
    (e.g. the training images), E[out(x')] for x' in ``reference``."""
    _module(model, layer)
    x = checks.tensor("x", x, nonempty=True)
    checks.class_labels("y", y, x.shape[0])
    reference = checks.tensor("reference", reference, nonempty=True)
    if reference.shape[1:] != x.shape[1:]:
        raise ValueError(
            f"reference must have x's shape per example {tuple(x.shape[1:])}, got {tuple(reference.shape)}"
        )
    batch_size = checks.positive_int("batch_size", batch_size)
    model.eval()
    total, count = 0.0, 0
    with probes.tap(model, [layer]) as store, torch.no_grad():
        for i in range(0, reference.shape[0], batch_size):
            model(reference[i : i + batch_size])
            total = total + store[layer].sum(0)
            count += store[layer].shape[0]
    out = {"intact": _error(model, x, y, batch_size)}
    for name, value in (("zero", torch.zeros_like(total)), ("mean", total / count)):
        with replaced(model, layer, value):
            out[name] = _error(model, x, y, batch_size)
    return out


def dead_segment_failures(
    with_skip: Mapping[str, float],
    without_skip_error: float,
    ablation: Mapping[str, float],
    bypassed: Sequence[float],
    *,
    chance: float,
    gain: float = 0.3,
    probe_tol: float = 0.05,
    ablation_tol: float = 0.02,
) -> list[str]:
    """The parts of thesis §9.5.1's claim that the measured numbers contradict (an empty list: it holds).

    The claim, for a model trained with a long skip connection:

    1. it trains where the same net without the skip does not: its error (``with_skip["model"]``) is
       below ``without_skip_error`` − ``gain``;
    2. the bypassed segment is dead: the probe errors ``bypassed`` at its end (e.g. at initialisation
       and after training) are all within ``probe_tol`` of ``chance`` (1 − the largest class
       frequency);
    3. it is unused: replacing what the segment hands to the merge by zero or by its mean
       (``ablation``, from :func:`ablation_errors`) changes the model's error by at most ``ablation_tol``.
    """
    if not isinstance(with_skip, Mapping) or "model" not in with_skip:
        raise TypeError("with_skip must be a mapping with the model's error under 'model'")
    if not isinstance(ablation, Mapping) or not {"intact", "zero", "mean"} <= set(ablation):
        raise TypeError("ablation must be the dict of ablation_errors (intact, zero, mean)")
    model_error = checks.probability("with_skip['model']", with_skip["model"])
    without_skip_error = checks.probability("without_skip_error", without_skip_error)
    if isinstance(bypassed, (str, bytes)) or not isinstance(bypassed, Sequence) or not bypassed:
        raise TypeError("bypassed must be a non-empty sequence of probe errors")
    bypassed = [checks.probability("bypassed", e) for e in bypassed]
    chance = checks.probability("chance", chance)
    gain, probe_tol, ablation_tol = (
        checks.probability(name, v)
        for name, v in (("gain", gain), ("probe_tol", probe_tol), ("ablation_tol", ablation_tol))
    )
    failures = []
    if not model_error < without_skip_error - gain:
        failures.append(
            f"the skip does not make it train: error {model_error:.3f} vs {without_skip_error:.3f} without"
        )
    alive = [e for e in bypassed if e < chance - probe_tol]
    if alive:
        failures.append(f"the bypassed segment is readable: probe errors {alive} below chance {chance:.3f}")
    for name in ("zero", "mean"):
        change = abs(ablation[name] - ablation["intact"])
        if change > ablation_tol:
            failures.append(f"the segment is used: its {name} ablation changes the error by {change:.3f}")
    return failures
