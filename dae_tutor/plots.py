"""Plotting helpers shared by the chapters: vector fields, image grids, spectra."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes

from dae_tutor import checks


def grid_2d(xlim: tuple[float, float], ylim: tuple[float, float], n: int) -> torch.Tensor:
    """An ``n x n`` grid of points over ``xlim x ylim``, as an ``(n*n, 2)`` float64 tensor."""
    n = checks.positive_int("n", n, minimum=2)
    for name, lim in (("xlim", xlim), ("ylim", ylim)):
        bounds = checks.as_tensor(name, lim)
        if bounds.shape != (2,) or not bounds[0] < bounds[1]:
            raise ValueError(f"{name} must be (low, high) with low < high, got {lim}")
    xs = torch.linspace(xlim[0], xlim[1], n, dtype=torch.float64)
    ys = torch.linspace(ylim[0], ylim[1], n, dtype=torch.float64)
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)


def arrow_scale(
    fields: Sequence[Callable[[torch.Tensor], torch.Tensor]],
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    *,
    n: int = 25,
) -> float:
    """One ``scale`` for :func:`vector_field` shared by several panels or slider frames.

    The longest arrow of all ``fields`` on the ``n x n`` grid of :func:`grid_2d` is drawn one grid
    spacing long: scale = max ‖field(x)‖ / spacing (matplotlib's ``quiver`` with
    ``scale_units="xy"`` draws an arrow u as u / scale in data units). Reused across panels, equal
    arrows have equal lengths, which per-panel autoscaling does not give (review ch. 1 §5).
    """
    if not isinstance(fields, Sequence) or isinstance(fields, str) or len(fields) == 0:
        raise TypeError(f"fields must be a non-empty sequence of callables, got {type(fields).__name__}")
    for i, f in enumerate(fields):
        if not callable(f):
            raise TypeError(f"fields[{i}] must be callable, got {type(f).__name__}")
    points = grid_2d(xlim, ylim, n)
    spacing = min(xlim[1] - xlim[0], ylim[1] - ylim[0]) / (n - 1)
    longest = max(_arrows(f, points).norm(dim=1).max().item() for f in fields)
    if not math.isfinite(longest):
        raise ValueError("a field returned non-finite arrows")
    return max(longest, torch.finfo(torch.float64).tiny) / spacing


def _arrows(field: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        arrows = field(points).detach().cpu().double()
    return checks.tensor("field(x)", arrows, ndim=2, last_dim=2)


def vector_field(
    ax: Axes,
    field: Callable[[torch.Tensor], torch.Tensor],
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    *,
    n: int = 25,
    color: str = "tab:blue",
    scale: float | None = None,
    key: float | None = None,
) -> float:
    """Draw the arrows ``field(x)`` at the points of :func:`grid_2d` (e.g. ``r(x) - x``); return the scale.

    ``scale`` (field units per data unit of arrow length): ``None`` gives this panel's own
    :func:`arrow_scale` (the longest arrow one grid spacing); pass the returned value, or
    :func:`arrow_scale` of all panels, to draw several panels on one scale. ``key``: the length, in
    field units, of a reference arrow drawn in the upper right corner (none when ``None``).
    """
    if scale is None:
        scale = arrow_scale([field], xlim, ylim, n=n)
    scale = checks.positive_float("scale", scale)
    points = grid_2d(xlim, ylim, n)
    arrows = _arrows(field, points)
    quiver = ax.quiver(
        points[:, 0],
        points[:, 1],
        arrows[:, 0],
        arrows[:, 1],
        color=color,
        angles="xy",
        scale_units="xy",
        scale=scale,
        width=0.003,
    )
    if key is not None:
        key = checks.positive_float("key", key)
        ax.quiverkey(quiver, 0.8, 1.02, key, f"{key:.2g}", labelpos="E", coordinates="axes")
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    return scale


def image_grid(ax: Axes, images: torch.Tensor, *, side: int = 28, columns: int = 10) -> None:
    """Tile flattened square images (rows of ``images``) into one picture on ``ax``."""
    images = checks.tensor("images", images, ndim=2, last_dim=side * side)
    columns = checks.positive_int("columns", columns)
    n = images.shape[0]
    rows = -(-n // columns)
    canvas = np.ones((rows * (side + 1) + 1, columns * (side + 1) + 1))
    pixels = images.detach().cpu().reshape(n, side, side).numpy()
    for i in range(n):
        r, c = divmod(i, columns)
        canvas[
            1 + r * (side + 1) : 1 + r * (side + 1) + side, 1 + c * (side + 1) : 1 + c * (side + 1) + side
        ] = pixels[i]
    ax.imshow(canvas, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()


def spectrum(
    ax: Axes,
    eigenvalues: torch.Tensor,
    *,
    bins: int = 30,
    linthresh: float | None = None,
    limit: float | None = None,
) -> None:
    """Histogram of eigenvalues on a symmetric-log axis: ``bins`` log-spaced bins on each side between
    ``linthresh`` and ``limit`` (so every bar has the same width on the axis), one bin for
    abs(λ) < ``linthresh`` (grey), negatives in red. Fix ``linthresh`` and ``limit`` to compare frames
    (defaults: 1e-4 and 1.05 times the largest abs(λ) of these eigenvalues)."""
    values = checks.tensor("eigenvalues", eigenvalues, ndim=1, nonempty=True).detach().cpu().double().numpy()
    bins = checks.positive_int("bins", bins)
    top = float(np.abs(values).max())
    limit = 1.05 * max(top, 1e-12) if limit is None else checks.positive_float("limit", limit)
    linthresh = 1e-4 * limit if linthresh is None else checks.positive_float("linthresh", linthresh)
    if not linthresh < limit or top > limit:
        raise ValueError(
            f"need linthresh < limit and every abs(eigenvalue) <= limit, got linthresh={linthresh:g}, "
            f"limit={limit:g}, largest abs(eigenvalue) {top:g}"
        )
    edges = np.geomspace(linthresh, limit, bins + 1)
    ax.hist(values[values >= linthresh], bins=edges, color="tab:blue", label=f"λ ≥ {linthresh:g}")
    ax.hist(values[values <= -linthresh], bins=-edges[::-1], color="tab:red", label=f"λ ≤ −{linthresh:g}")
    ax.hist(
        values[np.abs(values) < linthresh],
        bins=[-linthresh, linthresh],
        color="gray",
        label=f"|λ| < {linthresh:g}",
    )
    ax.set_xscale("symlog", linthresh=linthresh, linscale=0.5)
    ax.set_xlim(-limit, limit)
    ax.set_yscale("log")
    ax.set_xlabel("eigenvalue (symmetric log scale)")
    ax.set_ylabel("count")
    ax.legend(fontsize=8)


def small_figure(width: float = 6.0, height: float = 4.0, **kwargs) -> tuple[plt.Figure, Axes]:
    """A figure sized for the book (lean PNGs in committed notebooks)."""
    return plt.subplots(figsize=(width, height), dpi=kwargs.pop("dpi", 90), **kwargs)
