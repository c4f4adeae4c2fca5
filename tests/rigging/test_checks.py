"""The faint-rig check (rigging/checks.py): a rig that barely moves is reported, with the bundled model on a cartoon."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from facerig import load_mesh, rig_mesh
from facerig.rigging.checks import FAINT_MEDIAN_PEAK, FaintRigWarning, faint_rig_message, median_peak


def _rows(peaks: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """A neutral row and one single-action row per peak, each moving one vertex by its peak."""
    predicted = np.zeros((len(peaks) + 1, 10, 3), np.float32)
    activations = np.zeros((len(peaks) + 1, len(peaks)), np.float32)
    for row, peak in enumerate(peaks, start=1):
        predicted[row, row % 10, 1] = peak
        activations[row, row - 1] = 1.0
    return predicted, activations


def test_median_peak_is_over_the_single_action_rows() -> None:
    predicted, activations = _rows([0.01, 0.05, 0.2])
    combined = np.concatenate([predicted, 5 * predicted[1:2] + 1.0])  # a two-action row is not counted
    both = np.concatenate([activations, np.ones((1, 3), np.float32)])
    assert median_peak(predicted, activations) == pytest.approx(0.05)
    assert median_peak(combined, both) == pytest.approx(0.05)


def test_a_faint_rig_is_reported_and_a_lively_one_is_not() -> None:
    with pytest.warns(FaintRigWarning, match="head.obj: the network barely moves this head"):
        message = faint_rig_message(*_rows([0.002, 0.004, 0.3]), "head.obj")
    assert message is not None and "--method transfer" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert faint_rig_message(*_rows([FAINT_MEDIAN_PEAK, 0.06, 0.3]), "head.obj") is None


def test_the_bundled_model_on_a_cartoon_head_says_it_is_faint(heads_dir, tmp_path) -> None:
    """Suzanne is unlike any training head: the bundled model's rig of her is faint, and the rig says so."""
    with pytest.warns(FaintRigWarning):
        rig = rig_mesh(load_mesh(heads_dir / "suzanne.obj"), cache_dir=tmp_path)
    assert any("barely moves" in warning for warning in rig.metadata["warnings"])
