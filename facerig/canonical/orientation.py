"""Which way a head faces, from its shape alone: for files that state no orientation (OBJ, PLY, most scans).

DCC exports put heads on the coordinate axes, so the answer is one of the 24 axis-aligned frames, found
in three steps on points spread evenly over the head's skin (its largest piece by area, as the canonical
frame's sphere fit uses; points, not vertices, so that a sparse game LOD reads like its source), scaled to
unit size, and on its eyeballs when it has them:

1. **Left-right**: a face is mirror-symmetric across its midline, so the lateral axis is the one whose
   mirror image lands closest to the head itself (median nearest-neighbour distance of the mirrored
   vertices).
2. **Front**: open eyes look out through the lids' opening, the one direction from an eyeball's centre
   that meets no skin. Without eyeballs (or with closed eyes, or a mask open at the back), the nose makes
   the narrowest extreme of the four directions along the two other axes: the skin within a little depth
   of the farthest point is a nose tip (2 to 3 cm wide) from the front, but a broad cap of the dome from
   the top and the back, and the neck's whole ring from below.
3. **Up**: a head with separate eyeballs (a left/right pair of sphere-like parts mirrored across the
   midline) has them above the nose tip. Without them, along the midline profile seen from the front (the
   skin farthest forward, per slice along the remaining axis), the forehead above the nose tip stays close
   to the front while below the chin the profile falls back to the neck (or ends): the side of the nose
   tip whose profile stays nearer the front is up. The profile is the weaker cue: a head cropped just
   under the chin (MakeHuman's) falls away about as much on both sides, and more than half of the
   MakeHuman and ICT heads of the training data were found upside down or unsure by it alone.

Each step's margin (how much better the chosen answer is than the runner-up) makes the confidence, the
smallest of the three; below :data:`CONFIDENT` the answer should be reported as a guess.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from facerig.errors import MeshLoadError
from facerig.geometry.closest import triangle_samples
from facerig.geometry.sphere import sphere_parts
from facerig.mesh import Mesh

CONFIDENT = 0.2  # below this, say the frame is a guess and suggest --up/--front (ICT heads: 0.9; a monkey: 0.007)
_MIDLINE = 0.04  # half-width of the midline slab, as a fraction of the head's size
_SLICES = 48  # profile resolution across the head
_CAP_DEPTH = 0.04  # how far below an extreme its cap reaches (1.3 cm on a 33 cm head), as a fraction of size
_AXES = "XYZ"
_GAZE_CONE = 12.0  # degrees: well inside the lids' opening seen from the eye's centre (about +-20 degrees)
_LID_REACH = 1.5  # eyeball radii: skin nearer an eye's centre is its lids, which hug the eyeball
_EYE_RADIUS = (0.02, 0.15)  # an eyeball's radius, as a fraction of the head's size (ICT 0.04, MakeHuman 0.06)
_MIRROR_POINTS = 6000  # about this many surface points score each axis's mirror symmetry
_MAX_SAMPLES = 200_000  # the most surface points the detector reads (a head at the step has ~50k)
_SAMPLE_STEP = 1.0 / 50  # surface sample spacing, as a fraction of the head's size (~6 mm on a 33 cm head)


@dataclass(frozen=True)
class Orientation:
    """A head's detected frame.

    Attributes:
        up: the input axis pointing to the top of the head, e.g. "+Y" or "-Z".
        front: the input axis the face looks along.
        confidence: 0 (a coin toss) to 1 (unambiguous): the smallest margin of the three steps.
        margins: the margin of each step ("lateral", "front", "up"), for reports.
        up_cue: what decided up: "eyes" (the eyeballs above the nose tip) or "profile" (the midline profile).
    """

    up: str
    front: str
    confidence: float
    margins: dict[str, float]
    up_cue: str = "profile"

    @property
    def confident(self) -> bool:
        return self.confidence >= CONFIDENT


def detect_orientation(mesh: Mesh) -> Orientation:
    """The up and front axes of a head mesh, from its geometry (see the module docstring)."""
    # the outline of the head: eyeballs, teeth and lashes are not part of it
    surface = mesh.welded.surface
    vertices = surface.vertices[mesh.welded.skin]
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    size = float((high - low).max())
    if not size > 0:
        raise MeshLoadError("the head has no extent, so no orientation", mesh.source or mesh.name)
    points = (_skin_samples(surface.vertices, surface.triangles, mesh.welded.skin) - (low + high) / 2) / size

    lateral, lateral_margin = _lateral_axis(points)
    others = [axis for axis in range(3) if axis != lateral]
    eyes = _eye_pair((surface.vertices - (low + high) / 2) / size, surface.component_labels, lateral)
    front = _front_from_eyes(points, eyes, others) if eyes is not None else None
    if front is None:
        # (cap width, axis, sign): the nose is the narrowest extreme; the crown, the back and the neck are broad.
        candidates = sorted((_cap_width(points, axis, sign), axis, sign) for axis in others for sign in (1.0, -1.0))
        best, runner_up = candidates[0][0], candidates[1][0]
        front = candidates[0][1], candidates[0][2], 1.0 - best / runner_up if runner_up > 0 else 0.0
    front_axis, front_sign, front_margin = front
    up_axis = others[0] if front_axis == others[1] else others[1]

    nose_tip = points[np.argmax(points[:, front_axis] * front_sign)]
    if eyes is not None:
        rise = float(0.5 * (eyes[0][up_axis] + eyes[1][up_axis]) - nose_tip[up_axis])
        up_sign, up_margin, up_cue = (1.0 if rise > 0 else -1.0), min(1.0, abs(rise) / (2.0 * eyes[2])), "eyes"
    else:
        midline = points[np.abs(points[:, lateral]) < _MIDLINE]
        if len(midline) < _SLICES:
            midline = points  # a sparse mesh: use every vertex
        profile = _profile(midline[:, front_axis] * front_sign, midline[:, up_axis])
        (up_sign, up_margin), up_cue = _up_sign(profile), "profile"
    return Orientation(
        up=_axis_name(up_axis, up_sign),
        front=_axis_name(front_axis, front_sign),
        confidence=float(min(lateral_margin, front_margin, up_margin)),
        margins={"lateral": float(lateral_margin), "front": float(front_margin), "up": float(up_margin)},
        up_cue=up_cue,
    )


def _eye_pair(points: np.ndarray, component_labels: np.ndarray,
              lateral: int) -> tuple[np.ndarray, np.ndarray, float] | None:
    """The centres and mean radius of the head's two eyeballs, or None without a clear pair.

    A pair is two sphere-like parts of an eye's size (:data:`_EYE_RADIUS`) on either side of the midline
    whose centres mirror each other across it to within half a radius: the best-matching such pair.
    """
    parts = sphere_parts(points, component_labels, _EYE_RADIUS)
    best, best_error = None, np.inf
    for i, first in enumerate(parts):
        for second in parts[i + 1:]:
            radius = 0.5 * (first.radius + second.radius)
            mirrored = second.centre.copy()
            mirrored[lateral] *= -1.0
            apart = abs(first.centre[lateral] - second.centre[lateral])
            error = float(np.linalg.norm(first.centre - mirrored)) / radius
            if (error < 0.5 and apart > 2.0 * radius and abs(first.radius - second.radius) < 0.25 * radius
                    and error < best_error):
                best, best_error = (first.centre, second.centre, radius), error
    return best


def _front_from_eyes(points: np.ndarray, eyes: tuple[np.ndarray, np.ndarray, float],
                     others: list[int]) -> tuple[int, float, float] | None:
    """(axis, sign, margin) of the way open eyes look, or None when no direction is clearly open.

    An open eye looks out through the lids' opening: the narrow cone of :data:`_GAZE_CONE` degrees from its
    centre along the front meets no skin, while up meets the brow, down the cheek and back the skull. A
    chest or a chin that juts out further than the nose fools the nose-tip cue, but not this one. A face
    cropped behind the eyes (a mask) is open to the back too: a tie, so None.
    """
    cosine = np.cos(np.radians(_GAZE_CONE))
    counts = []
    for axis in others:
        for sign in (1.0, -1.0):
            count = 0
            for centre in eyes[:2]:
                offsets = points - centre
                distance = np.linalg.norm(offsets, axis=1)
                outside = distance > _LID_REACH * eyes[2]  # the lids hug the eyeball
                count += int(np.count_nonzero(sign * offsets[outside, axis] > cosine * distance[outside]))
            counts.append((count, axis, sign))
    counts.sort()
    (fewest, axis, sign), runner_up, most = counts[0], counts[1][0], counts[-1][0]
    if runner_up < 0.1 * most:
        return None  # two nearly empty directions (a mask's front and back) tie
    margin = 1.0 - fewest / runner_up
    return (axis, sign, margin) if margin >= 0.5 else None


def _skin_samples(vertices: np.ndarray, triangles: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """Points spread evenly over the skin's triangles, :data:`_SAMPLE_STEP` of the head's size apart.

    Why not the vertices: a game LOD or a remeshed scan puts few, unevenly spaced vertices on the midline, and
    the profile and mirror tests then read the tessellation instead of the face (a 1,750-vertex ICT head was
    found upside down). A mesh already denser than the step keeps one point per triangle, every
    :data:`_MAX_SAMPLES`-th of them at most, and a surface folded over and over inside its box (more area than
    a head has) gets a coarser step instead of an unbounded number of points.
    """
    corners = vertices[triangles[skin[triangles].all(axis=1)]]
    if not len(corners):
        return vertices[skin]
    step = _SAMPLE_STEP * float(np.ptp(vertices[skin], axis=0).max())
    longest = np.linalg.norm(corners - np.roll(corners, 1, axis=1), axis=2).max(axis=1)
    while np.square(np.ceil(longest / step)).sum() > max(_MAX_SAMPLES, len(corners)):  # what triangle_samples makes
        step *= 1.5
    points = triangle_samples(corners, step=step)[1]
    return points[:: max(1, len(points) // _MAX_SAMPLES)]


def _axis_name(axis: int, sign: float) -> str:
    return f"{'+' if sign > 0 else '-'}{_AXES[axis]}"


def _lateral_axis(points: np.ndarray) -> tuple[int, float]:
    """The axis across which the head is most mirror-symmetric, and the margin over the next best."""
    points = points[:: max(1, len(points) // _MIRROR_POINTS)]  # a median needs no more; the tree is the cost
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
    """(S,) the largest ``height`` per slice of ``across`` over [-0.5, 0.5]; NaN beyond the head's ends.

    A sparse mesh (a game LOD of under 2,000 vertices) leaves some slices of the thin midline slab empty, or
    holding only a vertex of the back of the head: read raw, such a slice is a deep notch in the face's
    profile, and two of them on the forehead made it look like the neck, so a 1,750-vertex ICT head was
    found upside down with confidence 0.27. Empty slices between filled ones are interpolated and a one-slice
    notch is raised to the lower of its neighbours; the chin's fall to the neck spans many slices and stays.
    """
    edges = np.linspace(-0.5, 0.5, _SLICES + 1)
    slot = np.clip(np.searchsorted(edges, across, side="right") - 1, 0, _SLICES - 1)
    raw = np.full(_SLICES, -np.inf)
    np.maximum.at(raw, slot, height)
    filled = np.flatnonzero(np.isfinite(raw))
    profile = np.full(_SLICES, np.nan)
    if not len(filled):
        return profile
    inside = np.arange(filled[0], filled[-1] + 1)
    profile[inside] = np.interp(inside, filled, raw[filled])
    notch_floor = np.minimum(profile[inside][:-2], profile[inside][2:])  # the lower neighbour of each inner slice
    profile[inside[1:-1]] = np.maximum(profile[inside[1:-1]], notch_floor)
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
    side and falls away past the chin; a slice beyond the head's ends counts as the profile's lowest value.
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
