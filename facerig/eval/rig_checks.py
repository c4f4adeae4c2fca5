"""Suspicious shapes: what an animator would flag on a contact sheet, found automatically.

:func:`suspicious_shapes` looks at every base (non-corrective) shape of a rig in its canonical frame (cranium
radius 1) and reports:

- ``still``: the shape moves almost nothing (its largest offset is below :data:`STILL`);
- ``off_face``: a large share of its motion lies where :func:`facerig.anatomy.face_region.face_weights` says the face
  ends (neck base, back of the skull) or on separate pieces that reach off the face;
- ``not_rigid``: a rigid-looking piece (a tooth, an eye: :mod:`facerig.anatomy.rigid_parts`,
  :mod:`facerig.anatomy.eyes`) moves in a way no rigid motion explains;
- ``torn``: vertices that share a position in the neutral (a UV or normal seam, welded pieces) move apart.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from facerig.anatomy.eyes import sphere_like_parts
from facerig.anatomy.face_region import face_weights, still_pieces
from facerig.anatomy.rigid_parts import find_rigid_parts, rigid_fit
from facerig.canonical.frame import CanonicalFrame
from facerig.fileio import atomic_path
from facerig.rig import Rig

STILL = 0.002  # canonical units (0.2 mm on a 9.4 cm cranium): a shape that moves less moves nothing
OFF_FACE_SHARE = 0.2  # share of a shape's total motion off the face
MIN_MOTION = 0.005  # canonical units: pieces and seams moving less than this are not judged
NOT_RIGID = 0.25  # RMS residual of a rigid fit over the RMS motion of a rigid-looking piece
TORN = 0.01  # canonical units between the offsets of vertices that share a position


@dataclass(frozen=True)
class Suspicion:
    """One flagged shape: its name, the kind of problem (see the module docstring) and a measured detail."""

    shape: str
    problem: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def suspicious_shapes(rig: Rig, frame: CanonicalFrame) -> list[Suspicion]:
    """Every base shape of ``rig`` that looks wrong, in the rig's shape order (see the module docstring)."""
    surface, to_surface = rig.neutral.welded.surface, rig.neutral.welded.to_surface
    points = frame.to_canonical(surface.vertices)
    labels = surface.component_labels
    parts = find_rigid_parts(points, surface.triangles, labels)
    rigid_pieces = [np.flatnonzero(labels == c) for c in parts.mouth_components if c not in parts.split_components]
    rigid_pieces += [eye.vertices for eye in sphere_like_parts(points, labels)]
    off_face = 1.0 - face_weights(points)
    off_face[still_pieces(points, labels, np.concatenate(rigid_pieces + [np.zeros(0, np.int64)]))[labels]] = 1.0
    # vertices of the input that share a position: the first of each group and the others
    _, first, group = np.unique(rig.neutral.vertices, axis=0, return_index=True, return_inverse=True)
    seam = np.flatnonzero(first[group.reshape(-1)] != np.arange(rig.neutral.n_vertices))
    seam_partner = first[group.reshape(-1)][seam]

    found = []
    for name in rig.base_shape_names:
        offsets = _canonical_deltas(rig.delta(name), frame)
        lengths = np.linalg.norm(offsets, axis=1)
        if lengths.max() < STILL:
            found.append(Suspicion(name, "still", f"largest offset {lengths.max():.4f} cranium radii"))
            continue
        welded = np.zeros(len(points))
        np.maximum.at(welded, to_surface, lengths)
        share = float((welded * off_face).sum() / welded.sum())
        if share > OFF_FACE_SHARE:
            found.append(Suspicion(name, "off_face", f"{share:.0%} of its motion is off the face"))
        moved = np.zeros((len(points), 3))
        moved[to_surface] = offsets
        for piece in rigid_pieces:
            motion = np.sqrt((moved[piece] ** 2).sum(axis=1).mean())
            if motion < MIN_MOTION or len(piece) < 4:
                continue
            rotation, translation = rigid_fit(points[piece], points[piece] + moved[piece])
            residual = points[piece] @ rotation.T + translation - points[piece] - moved[piece]
            ratio = float(np.sqrt((residual**2).sum(axis=1).mean()) / motion)
            if ratio > NOT_RIGID:
                found.append(Suspicion(name, "not_rigid", f"piece {int(labels[piece[0]])}: a rigid fit leaves "
                                                          f"{ratio:.0%} of its motion"))
                break
        if len(seam):
            gap = np.linalg.norm(offsets[seam] - offsets[seam_partner], axis=1)
            if gap.max() > TORN:
                found.append(Suspicion(name, "torn", f"{int((gap > TORN).sum())} seam vertices move apart "
                                                     f"(up to {gap.max():.3f} cranium radii)"))
    return found


@dataclass(frozen=True)
class SuspiciousReport:
    """Where :func:`write_suspicious_shapes` wrote its JSON, and one printable line per suspicion."""

    path: Path
    lines: tuple[str, ...]


def write_suspicious_shapes(rig: Rig, path: str | Path) -> SuspiciousReport:
    """Write ``{"suspicious": [{"shape", "problem", "detail"}, ...], "shapes_checked": N}`` to ``path``
    (atomically) for :func:`suspicious_shapes` in the rig's recorded frame."""
    from facerig.render.preview import rig_frame

    found = suspicious_shapes(rig, rig_frame(rig))
    document = {"shapes_checked": len(rig.base_shape_names), "suspicious": [s.to_dict() for s in found]}
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(document, indent=2) + "\n")
    return SuspiciousReport(Path(path), tuple(f"{s.shape}: {s.problem} ({s.detail})" for s in found))


def _canonical_deltas(deltas: np.ndarray, frame: CanonicalFrame) -> np.ndarray:
    """(V, 3) input-frame offsets -> canonical offsets (rotation and scale only)."""
    return np.asarray(deltas, np.float64) @ frame.rotation.T * frame.scale
