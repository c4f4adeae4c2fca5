"""The rig's anatomy step, after the network: rigid parts move as bones do, and motion stays on the face.

One call for :func:`facerig.rigging.pipeline.rig_mesh`: :mod:`facerig.anatomy.rigid_parts` finds the mouth's inner
parts and stray eye-like pieces, :mod:`facerig.anatomy.face_region` weighs the network's offsets by the face's region
and holds hair, clothing and other pieces off the face still, then the rigid parts get their skeleton's motion. Its
record (what was found, what was held, warnings) goes into the rig's metadata.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from facerig.anatomy.eyes import Eyeball
from facerig.anatomy.face_region import confine_to_face, head_check, warn
from facerig.anatomy.rigid_parts import RigidParts, find_rigid_parts, make_rigid, network_moves_jaw
from facerig.mesh import Mesh


def constrain_to_anatomy(
    predicted: np.ndarray,
    canonical_vertices: np.ndarray,
    surface: Mesh,
    eyeballs: Sequence[Eyeball],
    to_surface: np.ndarray,
    parts: RigidParts | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Rigid parts rigid, the rest confined to the face; warns (and records) when the input is not a head.

    Args:
        predicted: (R, V, 3) canonical offsets per activation row of ``surface``'s vertices (not modified).
        canonical_vertices: (V, 3) ``surface``'s vertices in the canonical frame.
        surface: the welded mesh the network saw (its triangles and pieces).
        eyeballs: the eyeball pair the rig found (turned or left to the network by the caller), or ().
        to_surface: (N,) the input's vertex -> ``surface`` vertex, so counts are the input's.
        parts: :func:`find_rigid_parts` of ``surface`` when the caller has them already (the lip contact step
            needs them too); found here when None.

    Returns:
        the constrained (R, V, 3) offsets and metadata entries "rigid_parts", "face_region" and "warnings".
    """
    labels = surface.component_labels
    if parts is None:
        parts = find_rigid_parts(canonical_vertices, surface.triangles, labels, eyeballs)
    own_motion = np.concatenate([parts.vertices] + [eye.vertices for eye in eyeballs]).astype(np.int64)
    confined, region = confine_to_face(predicted, canonical_vertices, labels, exempt=own_motion)
    check = head_check(canonical_vertices, surface.triangles, labels, name=surface.name or "mesh")
    warn(check, stacklevel=3)  # attributed to whoever called rig_mesh
    region.update(outside_head_area=round(check.outside_area, 4), skull_cap_fraction=round(check.cap_fraction, 4))
    jaw_from_chin = not network_moves_jaw(confined, canonical_vertices, parts)
    found = {**parts.summary(to_surface), "jaw_follows": "chin" if jaw_from_chin else "inner_parts"}
    metadata = {"rigid_parts": found, "face_region": region, "warnings": list(check.warnings)}
    return make_rigid(confined, canonical_vertices, parts, jaw_from_chin), metadata
