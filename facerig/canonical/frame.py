"""The canonical frame: the one pose, place and size the network sees every head in.

Canonical axes: +Y up, the face looks along +Z, +X is the character's own left (a right-handed frame).
Canonical size: the head's *cranium radius* is 1. The origin is the cranium's centre.

Why the cranium: heads arrive cut at any neck height, with or without eyes, teeth and lashes, in any unit and
slightly rotated, so neither the bounding box nor the vertex mean is stable. The skull cap is present in all of
them and is close to a sphere. :func:`canonical_frame` fits that sphere robustly:

1. Take the skin: the piece of the welded surface (:attr:`Mesh.welded`) with the largest surface area
   (inner parts are separate, smaller pieces). Weight each vertex by its share of the surface area, so the triangulation
   density does not matter.
2. Get into the cranium's basin: fit a sphere (algebraic least squares) to the whole skin, then refit to
   the part above the sphere's centre along up until it settles. This is the only step that uses "up",
   and only to choose where to start.
3. Refine with iteratively reweighted least squares, each vertex weighted by Tukey's biweight of its
   distance to the sphere (cut-off 0.2 radius). This keeps the skull cap and forehead and drops the face,
   jaw and neck, and it does not depend on the axes, so a small rotation of the input moves the frame
   with the head instead of changing which vertices count.

On the ICT-FaceKit neutral (cm) this gives radius 9.43 and centre (0, 4.89, 0.90); the nose tip sits at
about (0, -0.51, 1.29) canonical. Neck cuts anywhere up to the chin, dropping all inner components and
changing units leave that point where it is (to 1e-13); ±10° rotations move it, once the rotation is undone,
by < 2e-6; a cut through the mouth (no chin left) by 0.022. ``tests/canonical/test_frame.py`` states the bounds.
When the cap's centre lies off the face's mirror plane by more than 5% of the radius (the cap of some heads is
lopsided), the plane sets the centre's X instead (:func:`_mirror_plane`). This frame does not undo small rotations (the network is trained with rotation jitter for that); it only
moves its centre and size with the head. 25 ms of CPU for the 26,719-vertex ICT head, plus 11 ms for the
mesh's connected components, which the mesh caches.

Axes: ``up``/``front`` arguments ("+Y", "-Z", ...) win; otherwise the mesh's stated ``up_axis``: Z-up files
are assumed to look along -Y (the Blender / USD Z-up convention: the front view looks along +Y at the face),
Y-up files along +Z (glTF, ICT-FaceKit). A file that states nothing (OBJ, PLY) is oriented by its own shape
(:mod:`facerig.canonical.orientation`); when that is unclear, +Y up and +Z front, flagged as a guess
(:class:`AxesChoice`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from facerig.errors import ConfigError, FacerigError, MeshLoadError
from facerig.geometry import SphereFitter
from facerig.mesh import Mesh

FRAME_VERSION = 1
_AXES = {"X": 0, "Y": 1, "Z": 2}
# Tukey biweight cut-off, as a fraction of the radius: wide enough to keep the whole skull cap (which is
# not a perfect sphere), narrow enough to drop the face below the brows and the neck.
ROBUST_CUTOFF = 0.2
MAX_ITERATIONS = 200
TOLERANCE = 1e-6  # of the radius: far below anything the network can see
# The mirror-plane check (_mirror_plane), in radii: how far to look, how far off the cap's centre the plane must be
# to replace it, and how well the reflected skin must land on itself to count as a symmetric head.
MIRROR_SEARCH = 0.4
MIRROR_DRIFT = 0.05
MIRROR_MATCH = 0.03
MIRROR_SAMPLE = 4000  # skin points used for it (a stride sample)


@dataclass(frozen=True, eq=False)
class CanonicalFrame:
    """A rigid rotation, a centre and a uniform scale taking a mesh's points to canonical coordinates.

    ``canonical = scale * (point - center) @ rotation.T``.

    Attributes:
        rotation: (3, 3) float64 orthonormal; its rows are the canonical X, Y, Z axes in input coordinates.
        center: (3,) float64 the canonical origin, in input coordinates and units.
        scale: canonical units per input unit (1 / cranium radius).
        axes: how the up and front axes were chosen (:class:`AxesChoice`), when known.
    """

    rotation: np.ndarray
    center: np.ndarray
    scale: float
    axes: "AxesChoice | None" = None

    def __post_init__(self) -> None:
        rotation = np.array(self.rotation, dtype=np.float64)
        center = np.array(self.center, dtype=np.float64)
        if rotation.shape != (3, 3) or not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-9):
            raise FacerigError(f"canonical frame: rotation must be an orthonormal 3x3 matrix, got {self.rotation!r}")
        if center.shape != (3,) or not np.isfinite(center).all():
            raise FacerigError(f"canonical frame: center must be 3 finite numbers, got {self.center!r}")
        scale = float(self.scale)
        if not np.isfinite(scale) or scale <= 0:
            raise FacerigError(f"canonical frame: scale must be a positive number, got {self.scale!r}")
        rotation.setflags(write=False)
        center.setflags(write=False)
        object.__setattr__(self, "rotation", rotation)
        object.__setattr__(self, "center", center)
        object.__setattr__(self, "scale", scale)

    def to_canonical(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) input-frame points -> (..., 3) float64 canonical points."""
        return self.scale * (np.asarray(points, np.float64) - self.center) @ self.rotation.T

    def from_canonical(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) canonical points -> (..., 3) float64 points in the input's axes and units."""
        return np.asarray(points, np.float64) @ self.rotation / self.scale + self.center

    def deltas_from_canonical(self, deltas: np.ndarray) -> np.ndarray:
        """(..., 3) canonical displacements -> input axes and units (rotation and scale only, no centre).

        Keeps a floating input's dtype (so an (S, V, 3) float32 stack is not doubled in memory).
        """
        deltas = np.asarray(deltas)
        dtype = deltas.dtype if np.issubdtype(deltas.dtype, np.floating) else np.float64
        return (deltas.astype(dtype, copy=False) @ (self.rotation / self.scale).astype(dtype)).astype(dtype, copy=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: {"version", "rotation": 3x3 list, "center": 3 list, "scale"[, "axes"]}; exact round trip."""
        document = {
            "version": FRAME_VERSION,
            "rotation": self.rotation.tolist(),
            "center": self.center.tolist(),
            "scale": self.scale,
        }
        if self.axes is not None:
            document["axes"] = self.axes.to_dict()
        return document

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CanonicalFrame":
        """Inverse of :meth:`to_dict`; raises :class:`FacerigError` on malformed data."""
        if not isinstance(data, Mapping) or not {"rotation", "center", "scale"} <= set(data):
            raise FacerigError(f"canonical frame: expected rotation, center and scale, got {data!r}")
        if data.get("version", FRAME_VERSION) != FRAME_VERSION:
            raise FacerigError(f"canonical frame: version {data['version']!r}, this facerig reads {FRAME_VERSION}")
        try:
            rotation = np.array(data["rotation"], np.float64)
            center = np.array(data["center"], np.float64)
            axes = AxesChoice.from_dict(data["axes"]) if isinstance(data.get("axes"), Mapping) else None
            return cls(rotation=rotation, center=center, scale=float(data["scale"]), axes=axes)
        except (TypeError, ValueError) as exc:
            raise FacerigError(f"canonical frame: malformed numbers ({exc})") from None


def parse_axis(spec: str) -> np.ndarray:
    """"+Y", "-z", "Z" -> (3,) float64 unit vector. Raises :class:`ConfigError` for anything else."""
    text = spec.strip().upper() if isinstance(spec, str) else ""
    sign = -1.0 if text.startswith("-") else 1.0
    letter = text.lstrip("+-")
    if len(text) - len(letter) > 1 or letter not in _AXES:
        raise ConfigError(f"axis {spec!r} is not one of +X, -X, +Y, -Y, +Z, -Z")
    axis = np.zeros(3)
    axis[_AXES[letter]] = sign
    return axis


def axes_rotation(up: str | None = None, front: str | None = None, up_axis: str | None = None) -> np.ndarray:
    """The (3, 3) rotation taking input axes to canonical ones (rows: canonical X, Y, Z in input coordinates).

    Args:
        up, front: the input's up axis and the axis the face looks along ("+Y", "-Z", ...), if known.
        up_axis: the file's stated up axis ("Y", "Z" or None); used when ``up`` is None.

    Defaults: up = +Z when ``up_axis`` is "Z", else +Y; front = -Y when up is along Z, else +Z.
    """
    up_vec = parse_axis(up) if up is not None else parse_axis("+Z" if up_axis == "Z" else "+Y")
    if front is not None:
        front_vec = parse_axis(front)
    else:
        front_vec = parse_axis("-Y" if up_vec[2] != 0 else "+Z")
    if abs(float(up_vec @ front_vec)) > 0:
        raise ConfigError(
            f"up {up or 'default'} and front {front or 'default'} are the same axis; give two different axes"
        )
    # Canonical X = Y × Z, so the frame stays right-handed and +X lands on the character's left.
    return np.stack([np.cross(up_vec, front_vec), up_vec, front_vec])


@dataclass(frozen=True)
class AxesChoice:
    """Which input axes are up and front, and where that came from.

    Attributes:
        up, front: input axes such as "+Y", "-Z".
        source: "arguments" (``up``/``front`` given), "file" (the file states its up axis), "geometry" (found
            from the head's shape: :mod:`facerig.canonical.orientation`) or "default" (+Y up, +Z front: nothing said and
            the shape was not clear enough; the rig carries a warning).
        confidence: the detector's confidence when it was asked, else None.
    """

    up: str
    front: str
    source: str
    confidence: float | None = None

    @property
    def warning(self) -> str | None:
        """A line for the user when the axes are a guess."""
        if self.source != "default":
            return None
        return (f"orientation is a guess (up {self.up}, front {self.front}): the file states none and the head's "
                f"shape was not clear enough (confidence {self.confidence:.2f}); pass --up/--front if it is wrong")

    def to_dict(self) -> dict[str, Any]:
        return {"up": self.up, "front": self.front, "source": self.source, "confidence": self.confidence}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "AxesChoice":
        try:
            confidence = data.get("confidence")
            return cls(str(data["up"]), str(data["front"]), str(data["source"]),
                       None if confidence is None else float(confidence))
        except (KeyError, TypeError, ValueError) as exc:
            raise FacerigError(f"canonical frame: malformed axes record ({exc})") from None


def choose_axes(mesh: Mesh, up: str | None = None, front: str | None = None) -> AxesChoice:
    """Up and front of a head: the arguments, else the file's statement, else the head's own shape.

    The shape is looked at only when neither the arguments nor the file say anything (OBJ and PLY state no axes;
    glTF, USD and FBX readers always set ``up_axis``): mirror symmetry, the eyeballs, the nose and the chin decide
    (:func:`facerig.canonical.orientation.detect_orientation`); a head whose shape does not decide keeps the default
    +Y up, +Z front, flagged as a guess.
    """
    if up is not None or front is not None:
        rotation = axes_rotation(up, front, mesh.up_axis)
        return AxesChoice(axis_label(rotation[1]), axis_label(rotation[2]), "arguments")
    if mesh.up_axis is not None:
        rotation = axes_rotation(None, None, mesh.up_axis)
        return AxesChoice(axis_label(rotation[1]), axis_label(rotation[2]), "file")
    from facerig.canonical.orientation import detect_orientation

    found = detect_orientation(mesh)
    if found.confident:
        return AxesChoice(found.up, found.front, "geometry", round(found.confidence, 4))
    return AxesChoice("+Y", "+Z", "default", round(found.confidence, 4))


def axis_label(axis: np.ndarray) -> str:
    """The name ("+Y", "-Z", ...) of the coordinate axis nearest to a (3,) direction; :func:`parse_axis`'s inverse."""
    index = int(np.argmax(np.abs(axis)))
    return ("+" if axis[index] > 0 else "-") + "XYZ"[index]


def axis_rotations() -> list[np.ndarray]:
    """The 24 proper rotations that map coordinate axes to coordinate axes: every pose a DCC export can put a head
    in, which is what the orientation detector chooses among (its tests and ``bench/orientation.py`` try them all)."""
    rotations = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            matrix = np.zeros((3, 3))
            matrix[range(3), perm] = signs
            if np.linalg.det(matrix) > 0:
                rotations.append(matrix)
    return rotations


def canonical_frame(mesh: Mesh, up: str | None = None, front: str | None = None) -> CanonicalFrame:
    """The canonical frame of a head mesh: axes from ``up``/``front``, the file or the head's shape
    (:func:`choose_axes`), centre and size from a robust sphere fit to the cranium (see the module docstring).

    Raises:
        ConfigError: ``up``/``front`` are not axes or are the same axis.
        MeshLoadError: the mesh has no surface area.
    """
    axes = choose_axes(mesh, up, front)
    rotation = axes_rotation(axes.up, axes.front)
    points, weights = _skin(mesh)
    # Work in canonical axes so "above the centre" is along canonical +Y; the fit itself is axis-free.
    points = points @ rotation.T
    center, radius = _cranium_sphere(points, weights)
    if not np.isfinite(radius) or radius <= 0:
        raise MeshLoadError("cannot find a head size: the surface is degenerate", mesh.source or mesh.name)
    center = center.copy()
    center[0] = _mirror_plane(points, center, radius)
    return CanonicalFrame(rotation=rotation, center=center @ rotation, scale=1.0 / radius, axes=axes)


# ---------------------------------------------------------------------------------------------- fitting
def _skin(mesh: Mesh) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) float64 vertices of the welded surface's largest-area piece and (N,) their surface-area shares.

    The welded surface (:attr:`Mesh.welded`), not the file's vertices: a head split along UV or normal seams
    (a flat-shaded export is one piece per face) would otherwise offer a panel of a few coplanar vertices as
    its "largest piece", and a sphere through a plane is not defined.
    """
    welded = mesh.welded
    if not welded.vertex_areas.sum() > 0:
        raise MeshLoadError("cannot find a head size: the mesh has no surface area", mesh.source or mesh.name)
    return welded.surface.vertices[welded.skin], welded.vertex_areas[welded.skin]


def _refit_until_still(fitter: SphereFitter, center: np.ndarray, radius: float, weigh) -> tuple[np.ndarray, float]:
    """Refit with weights ``weigh(center, radius)`` until the centre moves less than TOLERANCE radii."""
    for _ in range(MAX_ITERATIONS):
        new_center, new_radius = fitter.fit(weigh(center, radius))
        if not np.isfinite(new_radius):
            break
        moved = np.abs(new_center - center).max()
        center, radius = new_center, new_radius
        if moved <= TOLERANCE * radius:
            break
    return center, radius


def _mirror_plane(points: np.ndarray, center: np.ndarray, radius: float) -> float:
    """The X of the head's left-right mirror plane when the cranium's centre has drifted off it, else the centre's.

    A cap fit is only as symmetric as the cap: on some MakeHuman identities it lands 0.13 radii to one side of
    the face, and then the eyes are no longer mirror images about X = 0 (so the eyeballs are not found and the
    network sees a head it was never shown). The plane is found by reflecting the skin about candidate planes
    X = s and taking the one whose reflection lands closest to the skin (median nearest distance). It replaces
    the centre's X only when the head is clearly symmetric about it (:data:`MIRROR_MATCH`) and it is more than
    :data:`MIRROR_DRIFT` away, so a centred head keeps exactly the cap's frame (and its invariances, above).
    """
    from scipy.spatial import cKDTree

    sample = points[:: max(1, len(points) // MIRROR_SAMPLE)]
    tree = cKDTree(sample)

    def mismatch(plane: float) -> float:
        mirrored = sample * np.array([-1.0, 1.0, 1.0]) + np.array([2.0 * plane, 0.0, 0.0])
        return float(np.median(tree.query(mirrored)[0]))

    coarse = center[0] + radius * np.linspace(-MIRROR_SEARCH, MIRROR_SEARCH, 25)
    best = coarse[int(np.argmin([mismatch(x) for x in coarse]))]
    step = coarse[1] - coarse[0]
    fine = best + np.linspace(-step, step, 21)
    best = fine[int(np.argmin([mismatch(x) for x in fine]))]
    if abs(best - center[0]) > MIRROR_DRIFT * radius and mismatch(best) < MIRROR_MATCH * radius:
        return float(best)
    return float(center[0])


def _cranium_sphere(points: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, float]:
    """Robust sphere through the skull cap of canonically-oriented skin points; returns (centre, radius)."""
    fitter = SphereFitter(points, weights)
    center, radius = fitter.fit()
    # Step 2: into the cranium's basin. Converges in a handful of steps from any neck length.
    center, radius = _refit_until_still(fitter, center, radius, lambda c, r: points[:, 1] >= c[1])
    # Step 3: axis-free robust refinement (Tukey biweight on the distance to the sphere).
    def biweight(c: np.ndarray, r: float) -> np.ndarray:
        residual = (fitter.distances(c) - r) / (ROBUST_CUTOFF * r)
        return np.clip(1.0 - residual * residual, 0.0, None) ** 2

    center, radius = _refit_until_still(fitter, center, radius, biweight)
    return center, radius
