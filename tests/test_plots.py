"""Unit tests of dae_tutor.plots: one arrow per grid point, image grids, spectra."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from dae_tutor import plots


def test_grid_and_vector_field_draw_one_arrow_per_point():
    points = plots.grid_2d((-1, 1), (0, 2), 5)
    assert points.shape == (25, 2) and points[:, 1].min() == 0 and points[:, 1].max() == 2
    fig, ax = plt.subplots()
    plots.vector_field(ax, lambda x: -x, (-1, 1), (-1, 1), n=6)
    assert ax.collections[0].N == 36
    plt.close(fig)
    with pytest.raises(ValueError, match="xlim"):
        plots.grid_2d((1, -1), (0, 1), 4)


def test_arrow_scale_is_shared_across_panels():
    # f(x) = -x on the 5 x 5 grid of [-1, 1]^2: longest arrow sqrt(2) at the corners, spacing 0.5.
    assert plots.arrow_scale([lambda x: -x], (-1, 1), (-1, 1), n=5) == pytest.approx(2 * 2**0.5)
    shared = plots.arrow_scale([lambda x: -x, lambda x: -3 * x], (-1, 1), (-1, 1), n=5)
    assert shared == pytest.approx(6 * 2**0.5)
    fig, axes = plt.subplots(1, 2)
    own = plots.vector_field(axes[0], lambda x: -x, (-1, 1), (-1, 1), n=5)
    assert own == pytest.approx(2 * 2**0.5)  # autoscaled: the panel's own longest arrow, one spacing
    for ax, k in zip(axes, (1, 3), strict=True):
        used = plots.vector_field(ax, lambda x, k=k: -k * x, (-1, 1), (-1, 1), n=5, scale=shared, key=1.0)
        assert used == shared and ax.collections[-1].scale == shared
    # On the shared scale the 3x field's arrows are drawn 3x longer; autoscaled they would be equal.
    with pytest.raises(TypeError, match="fields"):
        plots.arrow_scale([], (-1, 1), (-1, 1))
    with pytest.raises(ValueError, match="scale"):
        plots.vector_field(axes[0], lambda x: -x, (-1, 1), (-1, 1), scale=-1.0)
    plt.close(fig)


def test_image_grid_and_spectrum():
    fig, ax = plt.subplots()
    plots.image_grid(ax, torch.rand(12, 16), side=4, columns=5)
    assert ax.images[0].get_array().shape == (3 * 5 + 1, 5 * 5 + 1)
    with pytest.raises(ValueError, match="images"):
        plots.image_grid(ax, torch.rand(3, 10), side=4)
    plt.close(fig)


def test_spectrum_bins_are_log_spaced_and_count_every_eigenvalue():
    values = torch.tensor([-1.0, -0.02, 0.0, 1e-7, 0.5, 2.0, 3.0, 3.0])
    fig, ax = plt.subplots()
    plots.spectrum(ax, values, bins=4, linthresh=1e-3, limit=10.0)
    bars = ax.patches
    heights = np.array([b.get_height() for b in bars])
    assert heights.sum() == len(values)  # every eigenvalue in exactly one bar
    lefts = np.array([b.get_x() for b in bars[:4]])
    assert np.allclose(np.diff(np.log10(lefts)), 1.0)  # 4 bins per side over 4 decades: one decade each
    assert heights[-1] == 2  # 0 and 1e-7 in the grey bin of abs(λ) < linthresh
    assert ax.get_xlim() == (-10.0, 10.0)
    with pytest.raises(ValueError, match="limit"):
        plots.spectrum(ax, values, limit=2.0)  # 3.0 would fall outside the axis
    plt.close(fig)
