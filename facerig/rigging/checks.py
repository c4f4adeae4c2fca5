"""Checks on the network's output as a rig is made, reported as warnings and in the rig's metadata.

A network that does not recognise a head does not fail loudly: it moves it faintly. On the heads it learned from
(ICT-FaceKit and MakeHuman, held out), the median over the 47 actions of each action's largest offset in the finished
rig is 0.063–0.095 cranium radii with the bundled model (run 14; run 10: 0.061–0.092); on Suzanne (a cartoon
monkey) the check measures 0.007 and on the robot's head 0.005 (its network output, before the eyeballs are turned;
the whole robot, body included, measures 0.030). Such a
rig looks dead on a contact sheet, so the user is told, with what to do, instead of finding out in animation.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["FAINT_MEDIAN_PEAK", "FaintRigWarning", "faint_rig_message", "median_peak"]

# Cranium radii (the canonical unit). 2–3.5x under the faintest held-out human head (0.061 with run 10, 0.063 run 14).
FAINT_MEDIAN_PEAK = 0.025


class FaintRigWarning(UserWarning):
    """The network barely moves this head: it looks unlike the heads it learned from."""


def median_peak(predicted: np.ndarray, activations: np.ndarray) -> float:
    """Median over the single-action rows of each row's largest offset (canonical units: cranium radii).

    Args:
        predicted: (R, V, 3) canonical offsets per activation row (the neutral row subtracted).
        activations: (R, A) the rows' activations.
    """
    single = np.flatnonzero(activations.sum(axis=1) == 1.0)
    if not len(single) or not predicted.shape[1]:
        return 0.0
    return float(np.median([np.linalg.norm(predicted[row], axis=1).max() for row in single]))


def faint_rig_message(predicted: np.ndarray, activations: np.ndarray, name: str) -> str | None:
    """A warning for a rig whose :func:`median_peak` is under :data:`FAINT_MEDIAN_PEAK`, else None; also emitted
    as a :class:`FaintRigWarning` (printed on stderr by default)."""
    peak = median_peak(predicted, activations)
    if peak >= FAINT_MEDIAN_PEAK:
        return None
    message = (f"{name}: the network barely moves this head (median largest offset per action {peak:.3f} cranium "
               f"radii; 0.05-0.09 on held-out human heads with the bundled model), so it looks unlike the heads it "
               f"learned from. Check the contact sheet (facerig preview); --method transfer, or fine-tuning on a rig "
               f"of this style, may serve better.")
    warnings.warn(message, FaintRigWarning, stacklevel=3)
    return message
