"""Rigid parts: teeth, gums and tongue follow the skull or the jaw; stray eye-like parts turn, never warp.

A network that predicts per-vertex offsets bends what a studio rig moves with joints: on heads unlike its
training data it tears the upper teeth into a V when the jaw opens. So, after the network, the rig finds the
mouth's inner parts by shape and position in the canonical frame (+Y up, face along +Z, cranium radius 1;
never by names) and gives them the motion of a skeleton:

- **Mouth interior** (:func:`find_rigid_parts`): pieces other than the skin that lie wholly in the mouth's box,
  behind the skin's surface (teeth, gums, tongue; not a beard in front of the lips). They are split at the
  *occlusal plane*, the plane between the upper and the lower teeth, found by two-line clustering of the
  pieces' heights along the face's depth; a piece wholly on one side goes to that side, a piece that crosses it
  (ICT's gums-and-tongue sheet, one mesh for both rows of teeth) is split along its surface, and the part of it
  behind the last lower piece (the throat) stays with the skull. On the ICT neutral all 32 teeth and 96% of the
  gums-and-tongue sheet land where ICT's own jawOpen moves them; on MakeHuman's head its two rows of teeth and its
  tongue do (``tests/anatomy/test_rigid_parts.py``).
- **Upper** parts follow the skull: they do not move in any pose.
- **Lower** parts follow the jaw: in each pose their offsets are replaced by the one rigid motion that best
  fits the network's offsets of those parts (:func:`rigid_fit`), so the lower teeth and tongue open as one
  piece with the chin. Where the network moves them far less than the chin, or another way
  (:func:`network_moves_jaw`), the rigid motion is fitted to the chin's skin instead.
- **Eye-like parts that were not paired** (:mod:`facerig.anatomy.eyes` finds a left/right pair and turns it for gaze):
  any other closed, sphere-like piece in the upper face turns about its own centre by the rotation that best
  fits the network's offsets on it, so it stays in its socket instead of being pushed out.

What was found is reported (:meth:`RigidParts.summary`) in the rig's metadata.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import scipy.sparse
from scipy.ndimage import maximum_filter
from scipy.sparse.csgraph import dijkstra

from facerig.anatomy.eyes import Eyeball, sphere_like_parts

# The mouth's box in the canonical frame (ICT's teeth span |x| < 0.36, y in [-1.15, -0.59], z in [0.45, 1.05];
# its gums and tongue reach back to z = 0): generous for other proportions, clear of the eyes and the neck.
MOUTH_BOX = ((-0.75, 0.75), (-1.7, -0.35), (-0.4, 1.5))
MAX_CENTRE_OFFSET_X = 0.45  # a mouth part is centred near the midline; an earring or a cheek piece is not
MIN_HIDDEN_FRACTION = 0.6  # of a part's vertices with skin in front of them: inside the mouth, not on the lips
HIDDEN_CELL = 0.04  # canonical units per cell of the skin's front-depth map
HIDDEN_REACH = 2  # cells each side whose skin counts as in front of a point (the map has holes between vertices)
MIN_MOUTH_VERTICES = 12  # fewer vertices in the mouth's pieces than this: nothing worth splitting
# Vertices this far below / above the plane decide the side of a crossing piece's vertices near them. Upward
# the bar is higher: a tongue's back rises above the teeth's line, the palate and upper gums lie far above it.
SEED_DEPTH = (0.04, 0.12)
SPLIT_DEPTH = 0.08  # a piece reaching this far (canonical units) to both sides of the plane is split; others go whole
THROAT_MARGIN = 0.2  # canonical units behind the rearmost lower piece where a crossing piece stays with the skull
PLANE_ITERATIONS = 10
EYE_LEVEL = -0.6  # canonical y above which a sphere-like piece counts as an eye
# The chin: skin within this half-width of the midline, this far below the lowest lower part, and in front of
# the lower parts' mean depth. Its rigid fit stands in for the jaw where the network moves the inner parts badly.
CHIN_HALF_WIDTH = 0.3
CHIN_DEPTH = 0.45
# The network's own motion of the lower parts is trusted when, in the row that moves the chin most, it is at
# least this share of what the chin's rigid motion would give them, and points the same way (cosine above).
MIN_JAW_SHARE = 0.5
MIN_JAW_COSINE = 0.5


@dataclass(frozen=True, eq=False)
class RigidParts:
    """The rigid parts of a head, as vertex indices of the mesh they were found on.

    Attributes:
        upper: (U,) int64 vertices that follow the skull (upper teeth and gums; the throat of a crossing piece).
        lower: (L,) int64 vertices that follow the jaw (lower teeth and gums, tongue).
        loose_eyes: sphere-like pieces in the upper face that are not the turned eyeball pair.
        mouth_components: component ids of the mouth's inner pieces.
        split_components: those of them that cross the occlusal plane and were split vertex by vertex.
        occlusal_plane: (height, slope) of the plane y = height + slope * z between the rows of teeth, or None.
        chin: (C,) int64 skin vertices of the chin, in front of and below the lower parts (empty without them).
    """

    upper: np.ndarray
    lower: np.ndarray
    loose_eyes: tuple[Eyeball, ...]
    mouth_components: tuple[int, ...]
    split_components: tuple[int, ...]
    occlusal_plane: tuple[float, float] | None
    chin: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def vertices(self) -> np.ndarray:
        """(N,) int64 every vertex whose motion :func:`make_rigid` decides."""
        parts = [self.upper, self.lower] + [eye.vertices for eye in self.loose_eyes]
        return np.unique(np.concatenate(parts)).astype(np.int64)

    def summary(self, to_surface: np.ndarray | None = None) -> dict[str, Any]:
        """JSON-ready record for the rig's metadata; vertex counts in the original mesh when ``to_surface``
        (original vertex -> vertex of the mesh the parts were found on) is given."""

        def count(vertices: np.ndarray) -> int:
            if to_surface is None:
                return int(len(vertices))
            return int(np.count_nonzero(np.isin(to_surface, vertices)))

        return {
            "mouth_components": len(self.mouth_components),
            "mouth_components_split": len(self.split_components),
            "upper_vertices": count(self.upper),
            "lower_vertices": count(self.lower),
            "chin_vertices": count(self.chin),
            "loose_eyes": len(self.loose_eyes),
            "occlusal_plane": None if self.occlusal_plane is None else [round(v, 4) for v in self.occlusal_plane],
        }


def find_rigid_parts(
    canonical_vertices: np.ndarray,
    triangles: np.ndarray,
    component_labels: np.ndarray,
    eyeballs: Sequence[Eyeball] = (),
) -> RigidParts:
    """Find the mouth's inner parts, split them at the occlusal plane, and the eye-like parts not in ``eyeballs``.

    Args:
        canonical_vertices: (V, 3) the head in the canonical frame.
        triangles: (F, 3) its triangles (a piece that crosses the occlusal plane is split along its surface).
        component_labels: (V,) connected piece of each vertex (of the welded surface, as for
            :mod:`facerig.anatomy.eyes`).
        eyeballs: the eyeball pair :func:`facerig.anatomy.eyes.find_eyeballs` found (left alone here), or ().
    """
    points = np.asarray(canonical_vertices, np.float64)
    labels = np.asarray(component_labels)
    pieces = _pieces(labels)
    skin = int(np.argmax([len(p) for p in pieces]))
    paired = set(labels[np.concatenate([eye.vertices for eye in eyeballs])].tolist()) if eyeballs else set()
    loose_eyes = tuple(part for part in sphere_like_parts(points, labels)
                       if part.centre[1] > EYE_LEVEL and not paired & set(labels[part.vertices].tolist()))
    eye_pieces = paired | {int(c) for eye in loose_eyes for c in np.unique(labels[eye.vertices])}

    front = _FrontDepth(points[pieces[skin]])
    mouth = [
        c for c, vertices in enumerate(pieces)
        if c != skin and c not in eye_pieces and _in_mouth(points[vertices], front)
    ]
    empty = np.zeros(0, np.int64)
    mouth_vertices = np.concatenate([pieces[c] for c in mouth]) if mouth else empty
    if len(mouth_vertices) < MIN_MOUTH_VERTICES:
        return RigidParts(empty, empty, loose_eyes, tuple(mouth), (), None)
    piece_weights = np.concatenate([np.full(len(pieces[c]), len(pieces[c]) ** -0.5) for c in mouth])
    height, slope = occlusal_plane(points[mouth_vertices], piece_weights)

    above_plane = points[:, 1] - (height + slope * points[:, 2])  # signed height over the plane
    upper, lower, crossing = [], [], []
    for c in mouth:
        heights = above_plane[pieces[c]]
        if heights.max() > SPLIT_DEPTH and heights.min() < -SPLIT_DEPTH:
            crossing.append(c)  # reaches well into both rows: not a tooth that overlaps the other row a little
        elif heights.mean() < 0:
            lower.append(pieces[c])
        else:
            upper.append(pieces[c])
    # A crossing piece (gums and tongue in one sheet, both rows of teeth in one mesh) is split vertex by vertex:
    # each vertex takes the side of the geodesically nearest vertex that lies clearly off the plane, which
    # follows the gum line where the rows overlap (a straight plane puts ICT's rear lower gums with the skull);
    # its throat, behind the rearmost whole lower piece, stays with the skull, as ICT's does.
    throat = (min(points[v, 2].min() for v in lower) - THROAT_MARGIN) if lower else -np.inf
    for c in crossing:
        vertices = pieces[c]
        follows_jaw = (_geodesic_side(points, triangles, vertices, above_plane) < 0) & (points[vertices, 2] >= throat)
        lower.append(vertices[follows_jaw])
        upper.append(vertices[~follows_jaw])
    lower_vertices = np.sort(np.concatenate(lower or [empty])).astype(np.int64)
    return RigidParts(
        upper=np.sort(np.concatenate(upper or [empty])).astype(np.int64),
        lower=lower_vertices,
        loose_eyes=loose_eyes,
        mouth_components=tuple(mouth),
        split_components=tuple(crossing),
        occlusal_plane=(float(height), float(slope)),
        chin=_chin(points, pieces[skin], lower_vertices),
    )


def occlusal_plane(points: np.ndarray, weights: np.ndarray | None = None) -> tuple[float, float]:
    """(height, slope) of the plane y = height + slope * z that best separates the mouth's upper and lower parts.

    Two-line clustering in the (z, y) profile: start from the best single threshold on y (weighted Otsu), then
    refit a line y = a + b z to each side (weighted least squares) and move the boundary to the mean of the two
    lines until it settles. The lines follow the tilt of the teeth rows, so a head pitched forward still splits
    between them. ``weights`` (N,) default to 1; :func:`find_rigid_parts` weighs each piece by the square root
    of its vertex count, so a dense tongue does not outweigh a row of teeth (MakeHuman's one piece per row), nor
    32 separate teeth a gums sheet (ICT).
    """
    weights = np.ones(len(points)) if weights is None else np.asarray(weights, np.float64)
    order = np.argsort(points[:, 1], kind="stable")
    heights, mass = points[order, 1], weights[order]
    # Otsu: the threshold that maximises the between-class variance of the heights
    low_mass = np.cumsum(mass)[:-1]
    high_mass = mass.sum() - low_mass
    low_moment = np.cumsum(mass * heights)[:-1]
    mean_low = low_moment / np.maximum(low_mass, 1e-30)
    mean_high = ((mass * heights).sum() - low_moment) / np.maximum(high_mass, 1e-30)
    k = int(np.argmax(low_mass * high_mass * (mean_high - mean_low) ** 2))
    height, slope = 0.5 * (heights[k] + heights[k + 1]), 0.0
    root = np.sqrt(weights)
    design = np.column_stack([np.ones(len(points)), points[:, 2]]) * root[:, None]
    target = points[:, 1] * root
    for _ in range(PLANE_ITERATIONS):
        below = points[:, 1] < height + slope * points[:, 2]
        if below.sum() < 3 or (~below).sum() < 3:
            break
        low_line, *_ = np.linalg.lstsq(design[below], target[below], rcond=None)
        high_line, *_ = np.linalg.lstsq(design[~below], target[~below], rcond=None)
        new_height, new_slope = 0.5 * (low_line + high_line)
        if abs(new_height - height) < 1e-6 and abs(new_slope - slope) < 1e-6:
            break
        height, slope = float(new_height), float(new_slope)
    return float(height), float(slope)


def rigid_fit(points: np.ndarray, moved: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rotation R and translation t minimising Σ |R p + t − m|² over (N, 3) ``points`` and ``moved`` (Kabsch)."""
    centre, moved_centre = points.mean(axis=0), moved.mean(axis=0)
    covariance = (moved - moved_centre).T @ (points - centre)
    u, _, vt = np.linalg.svd(covariance)
    reflection = np.sign(np.linalg.det(u @ vt)) or 1.0
    rotation = u @ np.diag([1.0, 1.0, reflection]) @ vt
    return rotation, moved_centre - rotation @ centre


def rotation_fit(offsets: np.ndarray, moved: np.ndarray) -> np.ndarray:
    """The rotation R minimising Σ |R o − m|² for (N, 3) offsets from a fixed centre (a turn about that centre)."""
    u, _, vt = np.linalg.svd(moved.T @ offsets)
    reflection = np.sign(np.linalg.det(u @ vt)) or 1.0
    return u @ np.diag([1.0, 1.0, reflection]) @ vt


def network_moves_jaw(predicted: np.ndarray, canonical_vertices: np.ndarray, parts: RigidParts) -> bool:
    """Whether the network's offsets of the lower parts can be trusted to carry the jaw.

    In the row that moves the chin most (the jaw's opening, whatever the pose is called), the lower parts must
    move at least :data:`MIN_JAW_SHARE` as far as the chin's rigid motion would carry them, and the same way
    (:data:`MIN_JAW_COSINE`). True when there is no chin to compare with or no row moves it.
    """
    if len(parts.chin) < 3 or len(parts.lower) < 3:
        return True
    points = np.asarray(canonical_vertices, np.float64)
    row = int(np.argmax((predicted[:, parts.chin] ** 2).sum(axis=(1, 2))))
    chin, lower = points[parts.chin], points[parts.lower]
    rotation, translation = rigid_fit(chin, chin + predicted[row, parts.chin])
    carried = (lower @ rotation.T + translation - lower).ravel()
    own = np.asarray(predicted[row, parts.lower], np.float64).ravel()
    carried_length = np.linalg.norm(carried)
    if carried_length == 0:
        return True
    cosine = float(own @ carried) / (np.linalg.norm(own) * carried_length or 1.0)
    return bool(np.linalg.norm(own) >= MIN_JAW_SHARE * carried_length and cosine >= MIN_JAW_COSINE)


def make_rigid(predicted: np.ndarray, canonical_vertices: np.ndarray, parts: RigidParts,
               jaw_from_chin: bool = False) -> np.ndarray:
    """Give the rigid parts a skeleton's motion in every row.

    Args:
        predicted: (R, V, 3) canonical offsets per activation row (not modified).
        canonical_vertices: (V, 3) the neutral head in the canonical frame.
        parts: :func:`find_rigid_parts` of the same vertices.
        jaw_from_chin: fit the jaw's motion to the chin's skin instead of the lower parts' own offsets (where
            :func:`network_moves_jaw` says the network's inner parts are not to be trusted).

    Returns:
        (R, V, 3) a copy of ``predicted`` in which the upper parts are still, the lower parts move by each row's
        best rigid fit to their (or the chin's) predicted offsets, and each loose eye turns about its centre.
    """
    if len(parts.vertices) == 0:
        return predicted
    rigid = predicted.copy()
    points = np.asarray(canonical_vertices, np.float64)
    rigid[:, parts.upper] = 0.0
    lower = points[parts.lower]
    reference = parts.chin if jaw_from_chin and len(parts.chin) >= 3 else parts.lower
    for row in range(len(predicted)):
        # a row that leaves a part's reference exactly still leaves the part exactly still (sparse export)
        if len(lower) >= 3 and predicted[row, reference].any():
            rotation, translation = rigid_fit(points[reference], points[reference] + predicted[row, reference])
            rigid[row, parts.lower] = lower @ rotation.T + translation - lower
        elif len(lower):
            rigid[row, parts.lower] = 0.0
        for eye in parts.loose_eyes:
            if not predicted[row, eye.vertices].any():
                rigid[row, eye.vertices] = 0.0
                continue
            offsets = points[eye.vertices] - eye.centre
            rotation = rotation_fit(offsets, offsets + predicted[row, eye.vertices])
            rigid[row, eye.vertices] = offsets @ rotation.T - offsets
    return rigid.astype(predicted.dtype, copy=False)


def _geodesic_side(points: np.ndarray, triangles: np.ndarray, vertices: np.ndarray,
                   above_plane: np.ndarray) -> np.ndarray:
    """(N,) signed height over the plane of the vertex, among those clearly off it (:data:`SEED_DEPTH`), that is
    nearest to each of ``vertices`` along the piece's edges (the vertex's own height where none is reachable)."""
    local = np.full(len(points), -1, np.int64)
    local[vertices] = np.arange(len(vertices))
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    edges = local[edges[(local[edges] >= 0).all(axis=1)]]
    lengths = np.linalg.norm(points[vertices[edges[:, 0]]] - points[vertices[edges[:, 1]]], axis=1)
    graph = scipy.sparse.coo_matrix((lengths + 1e-12, (edges[:, 0], edges[:, 1])), (len(vertices),) * 2).tocsr()
    heights = above_plane[vertices]
    seeds = np.flatnonzero((heights < -SEED_DEPTH[0]) | (heights > SEED_DEPTH[1]))
    if len(seeds) == 0:
        return heights
    _, _, nearest = dijkstra(graph, directed=False, indices=seeds, min_only=True, return_predecessors=True)
    return np.where(nearest >= 0, heights[np.maximum(nearest, 0)], heights)


def _chin(points: np.ndarray, skin: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """(C,) int64 skin vertices of the chin: near the midline, below the lower parts, in front of them."""
    if len(lower) == 0:
        return np.zeros(0, np.int64)
    bottom, depth = points[lower, 1].min(), points[lower, 2].mean()
    candidate = points[skin]
    chin = ((np.abs(candidate[:, 0]) < CHIN_HALF_WIDTH) & (candidate[:, 1] < bottom)
            & (candidate[:, 1] > bottom - CHIN_DEPTH) & (candidate[:, 2] > depth))
    return np.sort(skin[chin]).astype(np.int64)


def _pieces(labels: np.ndarray) -> list[np.ndarray]:
    """Vertex indices of each component id 0..max (labels are consecutive)."""
    order = np.argsort(labels, kind="stable")
    starts = np.flatnonzero(np.diff(labels[order], prepend=-1))
    return np.split(order, starts[1:])


class _FrontDepth:
    """The skin's frontmost depth (largest z) over the mouth's box, on a grid in (x, y): what hides a point."""

    def __init__(self, skin: np.ndarray) -> None:
        (x0, x1), (y0, y1), _ = MOUTH_BOX
        self.origin = np.array([x0, y0])
        self.shape = np.array([int(np.ceil((x1 - x0) / HIDDEN_CELL)) + 1, int(np.ceil((y1 - y0) / HIDDEN_CELL)) + 1])
        cells = np.floor((skin[:, :2] - self.origin) / HIDDEN_CELL).astype(np.int64)
        inside = (cells >= 0).all(axis=1) & (cells < self.shape).all(axis=1)
        depth = np.full(self.shape, -np.inf)
        np.maximum.at(depth, (cells[inside, 0], cells[inside, 1]), skin[inside, 2])
        self.depth = maximum_filter(depth, size=2 * HIDDEN_REACH + 1, mode="nearest")

    def hidden(self, points: np.ndarray) -> np.ndarray:
        """(N,) bool: skin lies in front of each point (points outside the box take the nearest cell)."""
        cells = np.clip(np.floor((points[:, :2] - self.origin) / HIDDEN_CELL).astype(np.int64), 0, self.shape - 1)
        return self.depth[cells[:, 0], cells[:, 1]] > points[:, 2]


def _in_mouth(part: np.ndarray, front: _FrontDepth) -> bool:
    """Whether a piece's (N, 3) points lie wholly in the mouth's box, near the midline and behind the skin."""
    for axis, (low, high) in enumerate(MOUTH_BOX):
        if part[:, axis].min() < low or part[:, axis].max() > high:
            return False
    if abs(part[:, 0].mean()) > MAX_CENTRE_OFFSET_X:
        return False
    return bool(front.hidden(part).mean() >= MIN_HIDDEN_FRACTION)
