"""Which way a head faces, from its shape alone: for files that state no orientation (OBJ, PLY, most scans).

DCC exports put heads on the coordinate axes, so the answer is one of the 24 axis-aligned frames, found
in three steps on the vertices of the head's skin (its largest piece by area, as the canonical frame's
sphere fit uses), scaled to unit size:

1. **Left-right**: a face is mirror-symmetric across its midline, so the lateral axis is the one whose
   mirror image lands closest to the head itself (median nearest-neighbour distance of the mirrored
   vertices).
2. **Front**: of the four directions along the two other axes, the nose makes the narrowest extreme: the
   skin within a little depth of the farthest point is a nose tip (2 to 3 cm wide) from the front, but a
   broad cap of the dome from the top and the back, and the neck's whole ring from below.
3. **Up**: along the midline profile seen from the front (the skin farthest forward, per slice along the
   remaining axis), the forehead above the nose tip stays close to the front while below the chin the
   profile falls back to the neck (or ends): the side of the nose tip whose profile stays nearer the
   front is up.

Each step's margin (how much better the chosen answer is than the runner-up) makes the confidence, the
smallest of the three; below :data:`CONFIDENT` the answer should be reported as a guess.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from facerig.errors import MeshLoadError
from facerig.mesh import Mesh

CONFIDENT = 0.2  # below this, say the frame is a guess and suggest --up/--front (ICT heads: 0.27; a monkey: 0.11)
_MIDLINE = 0.04  # half-width of the midline slab, as a fraction of the head's size
_SLICES = 48  # profile resolution across the head
_CAP_DEPTH = 0.04  # how far below an extreme its cap reaches (1.3 cm on a 33 cm head), as a fraction of size
_AXES = "XYZ"


@dataclass(frozen=True)
class Orientation:
    """A head's detected frame.

    Attributes:
        up: the input axis pointing to the top of the head, e.g. "+Y" or "-Z".
        front: the input axis the face looks along.
        confidence: 0 (a coin toss) to 1 (unambiguous): the smallest margin of the three steps.
        margins: the margin of each step ("lateral", "front", "up"), for reports.
    """

    up: str
    front: str
    confidence: float
    margins: dict[str, float]

    @property
    def confident(self) -> bool:
        return self.confidence >= CONFIDENT


def detect_orientation(mesh: Mesh) -> Orientation:
    """The up and front axes of a head mesh, from its geometry (see the module docstring)."""
    # the outline of the head: eyeballs, teeth and lashes are not part of it
    vertices = mesh.welded.surface.vertices[mesh.welded.skin]
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    size = float((high - low).max())
    if not size > 0:
        raise MeshLoadError("the head has no extent, so no orientation", mesh.source or mesh.name)
    points = (vertices - (low + high) / 2) / size

    lateral, lateral_margin = _lateral_axis(points)
    others = [axis for axis in range(3) if axis != lateral]
    # (cap width, axis, sign): the nose is the narrowest extreme; the crown, the back and the neck are broad.
    candidates = sorted((_cap_width(points, axis, sign), axis, sign) for axis in others for sign in (1.0, -1.0))
    best, runner_up = candidates[0][0], candidates[1][0]
    front_margin = 1.0 - best / runner_up if runner_up > 0 else 0.0
    _, front_axis, front_sign = candidates[0]
    up_axis = others[0] if front_axis == others[1] else others[1]

    midline = points[np.abs(points[:, lateral]) < _MIDLINE]
    if len(midline) < _SLICES:
        midline = points  # a sparse mesh: use every vertex
    profile = _profile(midline[:, front_axis] * front_sign, midline[:, up_axis])
    up_sign, up_margin = _up_sign(profile)
    return Orientation(
        up=_axis_name(up_axis, up_sign),
        front=_axis_name(front_axis, front_sign),
        confidence=float(min(lateral_margin, front_margin, up_margin)),
        margins={"lateral": float(lateral_margin), "front": float(front_margin), "up": float(up_margin)},
    )


def _axis_name(axis: int, sign: float) -> str:
    return f"{'+' if sign > 0 else '-'}{_AXES[axis]}"


def _lateral_axis(points: np.ndarray) -> tuple[int, float]:
    """The axis across which the head is most mirror-symmetric, and the margin over the next best."""
    tree = cKDTree(points)
    errors = []
    for axis in range(3):
        mirrored = points.copy()
        mirrored[:, axis] *= -1.0
        errors.append(float(np.median(tree.query(mirrored)[0])))
    order = np.argsort(errors)
    best, second = errors[order[0]], errors[order[1]]
    return int(order[0]), 1.0 - best / second if second > 0 else 0.0


def _profile(height: np.ndarray, across: np.ndarray) -> np.ndarray:
    """(S,) the largest ``height`` per slice of ``across`` over [-0.5, 0.5]; NaN where a slice is empty."""
    edges = np.linspace(-0.5, 0.5, _SLICES + 1)
    slot = np.clip(np.searchsorted(edges, across, side="right") - 1, 0, _SLICES - 1)
    profile = np.full(_SLICES, -np.inf)
    np.maximum.at(profile, slot, height)
    profile[~np.isfinite(profile)] = np.nan
    return profile


def _cap_width(points: np.ndarray, axis: int, sign: float) -> float:
    """Widest extent, across ``axis``, of the points within :data:`_CAP_DEPTH` of the extreme along ``sign * axis``."""
    height = points[:, axis] * sign
    cap = points[height > height.max() - _CAP_DEPTH]
    across = [a for a in range(3) if a != axis]
    return float(np.ptp(cap[:, across], axis=0).max())


def _up_sign(profile: np.ndarray) -> tuple[float, float]:
    """+1 when the top of the head lies toward increasing slice index of the front profile, and the margin.

    From the nose tip, the profile over the next half of the head stays near the front on the forehead's
    side and falls away past the chin; an empty slice counts as the profile's lowest value.
    """
    filled = np.isfinite(profile)
    floor = np.nanmin(profile)
    heights = np.where(filled, profile, floor)
    tip = int(np.nanargmax(profile))
    reach = _SLICES // 3
    above = heights[tip + 1 : tip + 1 + reach]
    below = heights[max(tip - reach, 0) : tip][::-1]
    above = np.concatenate([above, np.full(reach - len(above), floor)])
    below = np.concatenate([below, np.full(reach - len(below), floor)])
    top = profile[tip]
    drop_above, drop_below = float(np.mean(top - above)), float(np.mean(top - below))
    larger = max(drop_above, drop_below)
    margin = abs(drop_above - drop_below) / larger if larger > 0 else 0.0
    return (1.0 if drop_above < drop_below else -1.0), margin
