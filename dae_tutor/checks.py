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


def _integer_at_least(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def positive_int(name: str, value: object, *, minimum: int = 1) -> int:
    """Return ``value`` as an ``int`` after checking it is an integer >= ``minimum`` (itself >= 1)."""
    if minimum < 1:
        raise ValueError(f"minimum must be >= 1 for a positive int, got {minimum}; use nonnegative_int")
    return _integer_at_least(name, value, minimum)


def nonnegative_int(name: str, value: object) -> int:
    """Return ``value`` as an ``int`` after checking it is an integer >= 0 (a seed, an index, a count)."""
    return _integer_at_least(name, value, 0)


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
    return tuple(_integer_at_least(f"{name}[{i}]", v, minimum) for i, v in enumerate(value))


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


# ------------------------------------------------------------------ finite state spaces (Markov chains)
STOCHASTIC_ATOL = 1e-9
"""Tolerance on row sums (and on negative round-off) of float64 input: the round-off of a product of a
few stochastic matrices is ~1e-15, so anything above 1e-9 is a genuine error."""


def _input_eps(value: object) -> float:
    """Machine epsilon of ``value``'s own floating dtype (float64's for integers and Python lists)."""
    dtype = value.dtype if isinstance(value, (torch.Tensor, np.ndarray)) else None
    if isinstance(dtype, torch.dtype) and dtype.is_floating_point:
        return torch.finfo(dtype).eps
    if isinstance(dtype, np.dtype) and np.issubdtype(dtype, np.floating):
        return float(np.finfo(dtype).eps)
    return float(np.finfo(np.float64).eps)


def stochastic(
    name: str,
    value: object,
    *,
    atol: float = STOCHASTIC_ATOL,
    square: bool = True,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Return ``value`` as a float64 row-stochastic matrix: ``(K, K)``, or ``(n, m)`` with ``square=False``
    (an encoder ``f[x, h]`` or a decoder ``g[h, x]``).

    Entries must be ``>= -atol`` and every row must sum to 1 within ``atol`` (widened to ``64 eps``
    for float32/float16 input); the accepted round-off is then removed (negatives set to 0, rows
    divided by their sums), so exact computations start from an exactly stochastic float64 matrix.
    """
    atol = max(atol, 64 * _input_eps(value))
    m = as_tensor(name, value, device=device)
    if square and (m.dim() != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0):
        raise ValueError(f"{name} must be a non-empty square (K, K) matrix, got shape {tuple(m.shape)}")
    if not square and (m.dim() != 2 or m.numel() == 0):
        raise ValueError(f"{name} must be a non-empty 2-D (rows, cols) matrix, got shape {tuple(m.shape)}")
    low = float(m.min())
    if low < -atol:
        raise ValueError(f"{name} must have non-negative entries, got minimum {low:.3g}")
    m = m.clamp_min(0.0)
    sums = m.sum(dim=1)
    err = (sums - 1).abs()
    if float(err.max()) > atol:
        row = int(err.argmax())
        raise ValueError(
            f"{name} must be row-stochastic (rows summing to 1 within {atol:.2g}); "
            f"row {row} sums to {float(sums[row]):.12g} (build it in float64, or divide each row by its sum)"
        )
    return m / sums[:, None]


def pmf(name: str, value: object, device: torch.device | str | None = None) -> torch.Tensor:
    """``value`` as a float64 probability vector (non-negative, summing to 1 within ``STOCHASTIC_ATOL``)."""
    p = as_tensor(name, value, device=device)
    if p.dim() != 1 or p.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D probability vector, got shape {tuple(p.shape)}")
    if float(p.min()) < -STOCHASTIC_ATOL:
        raise ValueError(f"{name} must be non-negative, got minimum {float(p.min()):.3g}")
    total = float(p.sum())
    if abs(total - 1) > STOCHASTIC_ATOL:
        raise ValueError(f"{name} must sum to 1, got {total:.12g} (divide it by its sum first)")
    return p.clamp_min(0.0)


def same_states(name_a: str, k_a: int, name_b: str, k_b: int) -> None:
    """Check that two objects on a finite state space have the same number of states."""
    if k_a != k_b:
        raise ValueError(f"{name_b} has {k_b} states but {name_a} has {k_a}; they must match")


def open_probability(name: str, value: object) -> float:
    """Return ``value`` as a float strictly inside (0, 1)."""
    v = probability(name, value)
    if not 0.0 < v < 1.0:
        raise ValueError(f"{name} must be in the open interval (0, 1), got {v}")
    return v


def states(name: str, value: object, k: int, device: torch.device | str | None) -> torch.Tensor:
    """Integer state(s) in ``[0, k)`` as an int64 tensor on ``device`` (0-d for a single state)."""
    if isinstance(value, torch.Tensor):
        if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{name} must hold integer states, got dtype {value.dtype}")
        s = value.to(dtype=torch.int64, device=device)
    else:
        arr = np.asarray(value)
        if arr.size == 0:
            arr = arr.astype(np.int64)  # an empty list is a valid (empty) set of states
        if not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"{name} must hold integer states, got {arr.dtype} ({type(value).__name__})")
        s = torch.as_tensor(arr.astype(np.int64), device=device)
    if s.dim() > 1:
        raise ValueError(f"{name} must be a state or a 1-D tensor of states, got shape {tuple(s.shape)}")
    if s.numel() and (int(s.min()) < 0 or int(s.max()) >= k):
        lo, hi = int(s.min()), int(s.max())
        raise ValueError(f"{name} must hold states in [0, {k}), got values in [{lo}, {hi}]")
    return s


def bit_count(name: str, value: object, *, maximum: int) -> int:
    """Return ``value`` as a number of bits ``d`` with ``1 <= d <= maximum``."""
    d = positive_int(name, value)
    if d > maximum:
        raise ValueError(f"{name} must be <= {maximum} (an exact kernel has 4**{name} entries), got {d}")
    return d


def bits_of_size(name: str, k: int) -> int:
    """``d`` such that ``k == 2**d`` (a matrix or vector over all binary vectors of length ``d``)."""
    d = k.bit_length() - 1
    if k < 2 or k != 1 << d:
        raise ValueError(f"{name} must have 2**d entries per axis (all binary vectors of length d), got {k}")
    return d


# ------------------------------------------------------------------ samples and models applied to them
def nonempty(name: str, x: torch.Tensor) -> torch.Tensor:
    """Check that the tensor ``x`` has at least one row (one sample, one chain, one point)."""
    if x.dim() == 0 or x.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one row, got shape {tuple(x.shape)}")
    return x


def class_labels(name: str, y: object, n: int) -> torch.Tensor:
    """Check that ``y`` is a 1-d integer tensor of ``n`` class indices >= 0 (one per example)."""
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.shape[0] != n:
        raise ValueError(f"{name} must be a 1-d tensor of {n} labels")
    if y.is_floating_point() or y.dtype == torch.bool or not bool((y >= 0).all()):
        raise ValueError(f"{name} must hold class indices >= 0, got dtype {y.dtype}")
    return y


def same_width(name: str, y: torch.Tensor, ref_name: str, x: torch.Tensor) -> torch.Tensor:
    """Check that the 2-D tensors ``y`` and ``x`` have the same last dimension (points of one space)."""
    if y.shape[-1] != x.shape[-1]:
        raise ValueError(
            f"{name} must have the width of {ref_name} ({x.shape[-1]}), got shapes {tuple(y.shape)} "
            f"and {tuple(x.shape)}"
        )
    return y


def applied(name: str, fn: object, x_name: str, x: torch.Tensor) -> torch.Tensor:
    """``fn(x)``, checked: ``fn`` must be callable and map ``x`` to a tensor of ``x``'s shape.

    A ``RuntimeError`` raised inside ``fn`` for ``x`` (e.g. ``x`` of the wrong width for a model) becomes
    a ``ValueError`` naming both; running out of memory stays what it is.
    """
    if not callable(fn):
        raise TypeError(f"{name} must be callable, got {type(fn).__name__}")
    try:
        out = fn(x)
    except torch.OutOfMemoryError:
        raise
    except RuntimeError as err:
        raise ValueError(f"{name} cannot be applied to {x_name} of shape {tuple(x.shape)}: {err}") from err
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"{name} must map {x_name} to a tensor of its shape {tuple(x.shape)}, got {got}")
    return out
