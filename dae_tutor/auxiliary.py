"""Auxiliary classifier heads "lead" training (thesis §9.4.2 and app. 9.C, on Inception v3).

Inception v3 has an auxiliary head: a second classifier on an intermediate layer whose loss is
added to the main one (GoogLeNet weighs such losses 0.3: :data:`AUX_WEIGHT`). The thesis probes it during
training and finds it "leading training": its error is below the main head's in the first part of
training (by "just a little" there). The mechanism the probes can show: the head's gradient reaches
the layers below it through a short path, so they become linearly separable sooner than in the
same net trained without the head.

* :func:`head_loss`: the training criterion CE(main) + w · CE(aux) for
  :func:`dae_tutor.classifiers.fit_classifier` (``loss=``), with two controls: the head behind a
  diode (``detach=True``: it learns, the body does not hear it) and a head trained on shuffled
  labels (``targets``: a gradient that carries no information about the label).
* :func:`leading_failures`: the claim checked on probe readings taken during training (each failed
  part named), so that both controls fail it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dae_tutor import checks

# GoogLeNet weighs its auxiliary losses 0.3 (Szegedy et al. 2014, "Going deeper with convolutions", §5)
AUX_WEIGHT = 0.3


def head_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    weight: float = AUX_WEIGHT,
    targets: torch.Tensor | None = None,
    detach: bool = False,
) -> Callable[[nn.Module, torch.Tensor], torch.Tensor]:
    """``loss(model, idx)`` = mean CE(main(x[idx]), y[idx]) + ``weight`` · mean CE(aux(x[idx]), t[idx]).

    ``model`` must have ``forward_with_aux`` (:class:`dae_tutor.classifiers.DeepMLP` with ``aux_at``);
    t = ``targets`` (default ``y``: the same labels; a shuffled copy of ``y`` is the control whose
    gradient carries no label information); ``detach`` puts a diode before the head (the control
    whose gradient never reaches the body).
    """
    x = checks.tensor("x", x, nonempty=True)
    y = checks.class_labels("y", y, x.shape[0])
    weight = checks.positive_float("weight", weight)
    targets = y if targets is None else checks.class_labels("targets", targets, x.shape[0])
    checks.boolean("detach", detach)

    def loss(model: nn.Module, idx: torch.Tensor) -> torch.Tensor:
        main, aux = model.forward_with_aux(x[idx], detach=detach)
        return F.cross_entropy(main, y[idx]) + weight * F.cross_entropy(aux, targets[idx])

    return loss


def _readings(name: str, value: object, steps: Sequence[int], width: int | None) -> Mapping:
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must map training step to readings, got {type(value).__name__}")
    for step in steps:
        if step not in value:
            raise ValueError(f"{name} has no readings at step {step}")
        r = value[step]
        if not isinstance(r, Mapping) or not {"valid", "model_valid", "aux_valid"} <= set(r):
            raise TypeError(f"{name}[{step}] must hold 'valid' (probe errors), 'model_valid' and 'aux_valid'")
        if width is not None and len(r["valid"]) < width:
            raise ValueError(
                f"{name}[{step}]['valid'] has {len(r['valid'])} layers, need more than {width - 1}"
            )
    return value


def leading_failures(
    with_head: Mapping[int, Mapping],
    without_head: Mapping[int, Mapping],
    *,
    below: Sequence[int],
    steps: Sequence[int],
    margin: float,
) -> list[str]:
    """The parts of "the auxiliary head leads training" that the readings contradict (empty: it holds).

    Readings are ``{step: {"valid": [probe error per layer], "model_valid": main head's error,
    "aux_valid": auxiliary head's error}}`` of two nets trained from the same seed, with the head
    (``with_head``) and without it (``without_head``). At every step of ``steps``:

    1. the layers ``below`` the head (indices into ``"valid"``) are more linearly separable with it:
       their mean probe error is below the other net's by more than ``margin``;
    2. the auxiliary head is ahead of the main head (§9.4.2): its error is below the main head's by
       more than ``margin``.
    """
    below = checks.int_sequence("below", below, minimum=0)
    steps = checks.int_sequence("steps", steps, minimum=0)
    if not below or not steps:
        raise ValueError("below and steps must each name at least one layer / step")
    margin = checks.probability("margin", margin)
    with_head = _readings("with_head", with_head, steps, max(below) + 1)
    without_head = _readings("without_head", without_head, steps, max(below) + 1)
    failures = []
    for step in steps:
        mean = [sum(r[step]["valid"][k] for k in below) / len(below) for r in (with_head, without_head)]
        if not mean[0] < mean[1] - margin:
            failures.append(
                f"step {step}: the layers below the head are not more separable with it"
                f" (mean probe error {mean[0]:.3f} vs {mean[1]:.3f} without)"
            )
        aux, main = with_head[step]["aux_valid"], with_head[step]["model_valid"]
        if not aux < main - margin:
            failures.append(
                f"step {step}: the auxiliary head does not lead (error {aux:.3f} vs main {main:.3f})"
            )
    return failures
