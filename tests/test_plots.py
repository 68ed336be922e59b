"""Unit tests of dae_tutor.plots: one arrow per grid point, image grids, spectra."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
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


def test_image_grid_and_spectrum():
    fig, ax = plt.subplots()
    plots.image_grid(ax, torch.rand(12, 16), side=4, columns=5)
    assert ax.images[0].get_array().shape == (3 * 5 + 1, 5 * 5 + 1)
    with pytest.raises(ValueError, match="images"):
        plots.image_grid(ax, torch.rand(3, 10), side=4)
    plots.spectrum(ax, torch.tensor([-1.0, 0.5, 2.0, 3.0]))
    plt.close(fig)
