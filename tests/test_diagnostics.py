"""Tests of dae_tutor.diagnostics against hand-counted cases."""

import pytest
import torch

from dae_tutor.diagnostics import spurious_fraction


def test_spurious_fraction_counts_the_samples_off_the_data():
    data = torch.zeros(10, 2, dtype=torch.float64)
    pts = torch.tensor([[0.0, 0.05], [1.0, 0.0], [0.0, -2.0], [0.01, 0.0]], dtype=torch.float64)
    assert spurious_fraction(pts, data, 0.1) == 0.5
    with pytest.raises(ValueError, match="radius"):
        spurious_fraction(pts, data, 0.0)
