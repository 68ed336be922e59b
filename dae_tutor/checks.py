"""Argument checks shared by every public function.

Each helper raises ``TypeError`` for a wrong kind of value and ``ValueError`` for
a wrong shape or range, and always names the argument, so that a reader who
passes bad input learns at once which argument was wrong and what was expected.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral, Real

import numpy as np
import torch


def positive_int(name: str, value: object, *, minimum: int = 1) -> int:
    """Return ``value`` as an ``int`` after checking it is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def boolean(name: str, value: object) -> bool:
    """Return ``value`` after checking it is a ``bool`` (not merely truthy)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


def real(name: str, value: object) -> float:
    """Return ``value`` as a finite ``float`` after checking it is a real number (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return float(value)


def positive_float(name: str, value: object, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a finite ``float`` > 0 (or >= 0 with ``allow_zero``)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def probability(name: str, value: object) -> float:
    """Return ``value`` as a float in [0, 1]."""
    value = positive_float(name, value, allow_zero=True)
    if value > 1:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return value


def int_sequence(name: str, value: object, *, minimum: int = 1, length: int | None = None) -> tuple[int, ...]:
    """``value`` as a tuple: a sequence (not a string) of integers >= ``minimum`` (``length`` of them)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a sequence of integers, got {type(value).__name__}")
    if length is not None and len(value) != length:
        raise ValueError(f"{name} must hold {length} integers, got {len(value)}")
    return tuple(positive_int(f"{name}[{i}]", v, minimum=minimum) for i, v in enumerate(value))


def one_of(name: str, value: object, choices: Sequence[str]) -> str:
    """Return ``value`` after checking it is one of the strings in ``choices``."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {type(value).__name__}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def tensor(
    name: str,
    value: object,
    *,
    ndim: int | None = None,
    last_dim: int | None = None,
    floating: bool = True,
    finite: bool = True,
    nonempty: bool = False,
) -> torch.Tensor:
    """Check that ``value`` is a tensor of the expected rank, width and dtype.

    ``ndim`` fixes the number of dimensions, ``last_dim`` the size of the last
    one; ``floating`` asks for a floating dtype; ``finite`` rejects NaN/inf;
    ``nonempty`` rejects a tensor with no entries. Inside ``torch.func.vmap`` the
    finiteness check is skipped (see :func:`holds`).
    """
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if floating and not value.is_floating_point():
        raise TypeError(f"{name} must have a floating dtype, got {value.dtype}")
    if ndim is not None and value.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {tuple(value.shape)}")
    if last_dim is not None and (value.dim() == 0 or value.shape[-1] != last_dim):
        raise ValueError(f"{name} must have last dimension {last_dim}, got shape {tuple(value.shape)}")
    if nonempty and value.numel() == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(value.shape)}")
    if finite and value.is_floating_point() and not holds(torch.isfinite(value).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return value


def holds(condition: torch.Tensor) -> bool:
    """``bool(condition)`` of a one-element boolean tensor; ``True`` inside ``torch.func.vmap``.

    ``vmap`` refuses data-dependent control flow (``bool`` of a batched tensor raises its
    ``RuntimeError``) and torch has no public test for being inside it, so that error is
    taken as the sign: the caller's own call, outside the transform, has made the check.
    Any other ``RuntimeError`` propagates.
    """
    try:
        return bool(condition)
    except RuntimeError as err:
        if "vmap" not in str(err):
            raise
        return True


def as_tensor(
    name: str,
    value: object,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``value`` (a tensor or any array-like of real numbers) as a finite tensor of ``dtype``.

    A tensor keeps its device unless ``device`` is given; anything else goes through NumPy
    (so views with negative strides work) onto ``device`` (default the CPU).
    """
    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bool or value.is_complex():
            raise TypeError(f"{name} must hold real numbers, got dtype {value.dtype}")
        t = value.to(dtype=dtype, device=device if device is not None else value.device)
    else:
        try:
            t = torch.as_tensor(np.ascontiguousarray(value, dtype=np.float64), device=device).to(dtype)
        except (TypeError, ValueError) as err:
            raise TypeError(
                f"{name} must be a tensor or array-like of numbers, got {type(value).__name__}"
            ) from err
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return t


def generator(name: str, value: object, like: torch.Tensor | None = None) -> torch.Generator | None:
    """Check that ``value`` is ``None`` or a ``torch.Generator`` (on the device of ``like``, if given)."""
    if value is not None and not isinstance(value, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator or None, got {type(value).__name__}")
    if value is not None and like is not None and value.device.type != like.device.type:
        raise ValueError(
            f"{name} must live on the device of the data ({like.device}), got one on {value.device}"
        )
    return value


def log_density(name: str, x: torch.Tensor) -> torch.Tensor:
    """Check that the floating tensor ``x`` holds log-densities: no NaN, no +inf (-inf is a zero density)."""
    if bool(torch.isnan(x).any()) or bool((x == math.inf).any()):
        raise ValueError(f"{name} must not contain NaN or +inf (-inf, a zero density, is allowed)")
    return x


def unit_interval(name: str, x: torch.Tensor) -> torch.Tensor:
    """Check that the floating tensor ``x`` has all its values in [0, 1] (probabilities or pixels)."""
    if x.numel() and bool(((x < 0) | (x > 1)).any()):
        raise ValueError(f"{name} must lie in [0, 1], got values in [{x.min().item()}, {x.max().item()}]")
    return x


def binary(name: str, x: torch.Tensor) -> torch.Tensor:
    """Check that the floating tensor ``x`` holds only 0s and 1s."""
    if x.numel() and not bool(((x == 0) | (x == 1)).all()):
        raise ValueError(
            f"{name} must be binary (only 0s and 1s); binarize it first (dae_tutor.data.binarize)"
        )
    return x
