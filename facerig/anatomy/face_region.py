"""The face region: motion stays on the face, hair and clothing stay still, and non-heads are flagged.

A network that sees the whole head lets a jaw drop drag the collar, the ponytail and the neck base. A FACS
shape moves the face, the jaw and the mouth's interior; everything else follows the skull and stays still in
a blendshape rig. So, after the network, the rig weighs every offset by a smooth field of the canonical
position (+Y up, face along +Z, cranium radius 1, origin at the cranium's centre; see
:mod:`facerig.canonical.frame`):

- :func:`face_weights` is 1 over the face, the jaw and the throat under it, and ramps smoothly (a C¹
  smoothstep) to 0 towards the neck's base and the back of the skull. The ramps sit where ICT-FaceKit's own
  expressions stop moving the skin (its jaw opening still moves the neck by ~1 mm at canonical y = -2.5), so
  the field trims the network's stray motion there, not the face's.
- Separate pieces other than the skin that reach outside the core of the face (:data:`CORE_BOX`: a hair
  shell, a collar, glasses' temples) are held wholly still, so a piece moves as one or not at all. Pieces
  that the rig binds or turns itself (eyeballs, eye shells, teeth, gums, tongue) are left to those steps.
- :func:`head_check` measures whether the input looks like a head at all: most of the skin's area within
  a head-and-neck box around the fitted cranium, and a skull cap on the fitted sphere. A body or an animal
  fails, and the rig carries a warning instead of silently rigging its legs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Ramps (canonical units), each (where the weight is 0, where it is 1): below the chin the throat and neck.
NECK_RAMP = (-2.9, -2.0)
# The back of the skull: ICT's expressions move skin back to z = -0.6 around the jaw's hinge and ears.
BACK_RAMP = (-1.05, -0.6)
# A separate piece moves only if it lies wholly in this box: the front of the head, from above the brows (ICT's
# are near y = 0.2) to below the chin. Hair cards hanging over the face start on the scalp, above it
# (MakeHuman's at y = 0.86-0.94), glasses' temples and collars reach out of it behind and below.
CORE_BOX = ((-1.1, 1.1), (-1.9, 0.6), (-0.25, 2.0))
# What a head looks like in the canonical frame (see head_check).
HEAD_BOX = ((-2.2, 2.2), (-4.5, 1.6), (-1.8, 2.2))  # head, neck and a little shoulder
MAX_OUTSIDE_AREA = 0.25  # share of the skin's area outside HEAD_BOX
CAP_BAND = 0.15  # |distance to the cranium's centre - 1| of skin points that belong to the skull cap
CAP_HEIGHT = 0.3  # canonical y above which the skin should be skull cap
# Share of the skin above CAP_HEIGHT that lies on the cap. Real heads vary a lot here (measured on the re-meshed,
# cropped and stylised heads of the ICT and MakeHuman datasets: 0.44 to 1.0; 0.75 flagged 12 of 103 of them),
# so only a top that is mostly not a skull cap warns; a body or an animal is caught by the box (a cow: 29%).
MIN_CAP_FRACTION = 0.35


class NotAHeadWarning(UserWarning):
    """The input does not look like a head (a body, an animal, a prop): the rig is likely meaningless."""


@dataclass(frozen=True)
class HeadCheck:
    """How head-like the input's skin is (see :func:`head_check`)."""

    outside_area: float
    cap_fraction: float
    warnings: tuple[str, ...] = field(default=())

    @property
    def is_head(self) -> bool:
        return not self.warnings


def smoothstep(values: np.ndarray, zero: float, one: float) -> np.ndarray:
    """C¹ ramp: 0 at and beyond ``zero``, 1 at and beyond ``one``, 3t² - 2t³ between."""
    t = np.clip((np.asarray(values, np.float64) - zero) / (one - zero), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def face_weights(canonical_vertices: np.ndarray) -> np.ndarray:
    """(V,) float64 in [0, 1]: how much of the network's motion each point keeps (1 on the face)."""
    points = np.asarray(canonical_vertices, np.float64)
    return smoothstep(points[:, 1], *NECK_RAMP) * smoothstep(points[:, 2], *BACK_RAMP)


def still_pieces(canonical_vertices: np.ndarray, component_labels: np.ndarray, exempt: np.ndarray) -> np.ndarray:
    """(C,) bool per component: a separate piece (not the skin, the largest) that reaches outside
    :data:`CORE_BOX` and has no vertex in ``exempt`` (vertex indices that other steps move)."""
    points = np.asarray(canonical_vertices, np.float64)
    labels = np.asarray(component_labels)
    n = int(labels.max()) + 1
    outside = np.zeros(len(points), bool)
    for axis, (low, high) in enumerate(CORE_BOX):
        outside |= (points[:, axis] < low) | (points[:, axis] > high)
    reaches_out = np.bincount(labels, outside, minlength=n) > 0
    reaches_out[int(np.argmax(np.bincount(labels, minlength=n)))] = False
    reaches_out[np.unique(labels[np.asarray(exempt, np.int64)])] = False
    return reaches_out


def confine_to_face(predicted: np.ndarray, canonical_vertices: np.ndarray, component_labels: np.ndarray,
                    exempt: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """Weigh every row's offsets by :func:`face_weights` and hold :func:`still_pieces` still.

    Args:
        predicted: (R, V, 3) canonical offsets per activation row (not modified).
        canonical_vertices: (V, 3); component_labels: (V,) as for :mod:`facerig.anatomy.eyes`.
        exempt: vertex indices that later steps move themselves (rigid parts); their pieces are never held.

    Returns:
        the confined (R, V, 3) offsets and a JSON-ready record: pieces held still and their vertices, vertices
        the field scales down and those it zeroes.
    """
    weights = face_weights(canonical_vertices)
    held = still_pieces(canonical_vertices, component_labels, exempt)
    weights[held[np.asarray(component_labels)]] = 0.0
    confined = predicted.copy()
    scaled = np.flatnonzero(weights < 1.0)  # most of a head is face: scale only the rest
    confined[:, scaled] *= weights[scaled, None].astype(predicted.dtype)
    record = {
        "pieces_held_still": int(held.sum()),
        "vertices_held_still": int(np.count_nonzero(held[np.asarray(component_labels)])),
        "vertices_damped": int(np.count_nonzero((weights > 0) & (weights < 1))),
        "vertices_zeroed": int(np.count_nonzero(weights == 0)),
    }
    return confined, record


def head_check(canonical_vertices: np.ndarray, triangles: np.ndarray, component_labels: np.ndarray,
               name: str = "mesh") -> HeadCheck:
    """Whether the skin (the piece with the largest area) looks like a head in the canonical frame.

    A head's skin lies mostly within :data:`HEAD_BOX` around the fitted cranium (a cow's body, a figure's
    legs do not), and its upper part lies on the fitted sphere (a skull cap); either failing gives a warning.
    """
    points = np.asarray(canonical_vertices, np.float64)
    corners = points[triangles]
    areas = 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)
    vertex_area = np.bincount(np.asarray(triangles).ravel(), np.repeat(areas / 3.0, 3), minlength=len(points))
    labels = np.asarray(component_labels)
    skin = labels == np.argmax(np.bincount(labels, vertex_area))
    area = vertex_area[skin]
    skin_points = points[skin]
    inside = np.ones(len(skin_points), bool)
    for axis, (low, high) in enumerate(HEAD_BOX):
        inside &= (skin_points[:, axis] >= low) & (skin_points[:, axis] <= high)
    total = float(area.sum()) or 1.0
    outside_area = float(area[~inside].sum() / total)
    top = skin_points[:, 1] > CAP_HEIGHT
    on_cap = np.abs(np.linalg.norm(skin_points[top], axis=1) - 1.0) < CAP_BAND
    cap_fraction = float(area[top][on_cap].sum() / (area[top].sum() or 1.0))
    problems = []
    if outside_area > MAX_OUTSIDE_AREA:
        problems.append(f"{outside_area:.0%} of the surface lies outside a head-and-neck box")
    if cap_fraction < MIN_CAP_FRACTION:
        problems.append(f"only {cap_fraction:.0%} of the top of the surface lies on a skull cap")
    messages = (f"{name}: does not look like a head ({'; '.join(problems)}); the rig is likely meaningless",) \
        if problems else ()
    return HeadCheck(outside_area, cap_fraction, messages)


def warn(check: HeadCheck, stacklevel: int = 2) -> None:
    """Emit ``check``'s warnings as :class:`NotAHeadWarning` (printed on stderr by default), attributed
    ``stacklevel`` frames up from the caller (as for :func:`warnings.warn`)."""
    for message in check.warnings:
        warnings.warn(message, NotAHeadWarning, stacklevel=stacklevel + 1)
