"""Motion stays on the face: the bundled model's rig of the example head wearing a collar and a hair shell,
the weight field's ramps, and the non-head warning on a cow."""

from __future__ import annotations

import numpy as np
import pytest

from facerig import load_mesh
from facerig.anatomy.face_region import NECK_RAMP, NotAHeadWarning, face_weights, head_check, smoothstep
from facerig.canonical.frame import canonical_frame
from facerig.mesh import Mesh
from facerig.rigging.pipeline import load_model, rig_mesh

EXAMPLE = "examples/ict_head.obj"
MM = 0.1  # the ICT head's unit is the centimetre


def _band(rows: int, columns: int, point) -> tuple[np.ndarray, np.ndarray]:
    """A (rows x columns) grid of points ``point(u, v)`` (u, v in [0, 1], v wrapping) and its triangles."""
    u, v = np.meshgrid(np.linspace(0, 1, rows), np.arange(columns) / columns, indexing="ij")
    points = np.stack(point(u.ravel(), v.ravel()), axis=1)
    triangles = []
    for i in range(rows - 1):
        for j in range(columns):
            a, b = i * columns + j, i * columns + (j + 1) % columns
            triangles += [[a, b, a + columns], [b, b + columns, a + columns]]
    return points, np.array(triangles)


def dressed_head(head: Mesh) -> tuple[Mesh, np.ndarray, np.ndarray]:
    """``head`` with a shirt collar around the neck and a hair shell over the crown, each a separate piece.

    Returns the mesh and the vertex indices of the collar and of the hair.
    """
    surface = head.welded.surface
    frame = canonical_frame(surface)
    neck = frame.to_canonical(head.vertices)
    ring = neck[np.abs(neck[:, 1] + 2.3) < 0.1]
    centre = ring.mean(axis=0)
    radius = 1.15 * np.linalg.norm((ring - centre)[:, [0, 2]], axis=1).max()
    collar, collar_tris = _band(4, 32, lambda u, v: (centre[0] + radius * np.cos(2 * np.pi * v), -2.55 + 0.4 * u,
                                                     centre[2] + radius * np.sin(2 * np.pi * v)))
    # a cap from the crown to 60 degrees down, on a sphere just outside the cranium (radius 1)
    polar = lambda u: np.radians(5 + 55 * u)  # noqa: E731
    hair, hair_tris = _band(8, 32, lambda u, v: (1.08 * np.sin(polar(u)) * np.cos(2 * np.pi * v),
                                                 1.08 * np.cos(polar(u)),
                                                 1.08 * np.sin(polar(u)) * np.sin(2 * np.pi * v) - 0.1))
    n = head.n_vertices
    vertices = np.vstack([head.vertices, frame.from_canonical(collar), frame.from_canonical(hair)])
    triangles = np.vstack([head.triangles, collar_tris + n, hair_tris + n + len(collar)])
    mesh = Mesh.from_triangles(vertices, triangles, up_axis=head.up_axis, name="dressed_head")
    return mesh, np.arange(n, n + len(collar)), np.arange(n + len(collar), len(vertices))


@pytest.fixture(scope="module")
def model():
    return load_model()


@pytest.mark.slow  # two rigs of the dressed example head by the bundled model
def test_jaw_drop_leaves_collar_and_hair_still(model, request) -> None:
    # The dressed head has 4,365 vertices and 45+ pieces: the operators' approximate eigen path (above 4,000)
    # falls back to the exact solve when its basis loses directions, so it rigs like the head alone.
    head = load_mesh(request.config.rootpath / EXAMPLE)
    mesh, collar, hair = dressed_head(head)
    rig = rig_mesh(mesh, model)
    raw = rig_mesh(mesh, model, anatomy=False)
    jaw, raw_jaw = rig.delta("JawDrop"), raw.delta("JawDrop")
    assert np.linalg.norm(raw_jaw[collar], axis=1).max() > 0.1 * MM  # the network alone drags the collar
    for piece in (collar, hair):
        assert np.linalg.norm(rig.deltas[:, piece], axis=2).max() < 0.1 * MM  # JawDrop and every other shape
    assert rig.metadata["face_region"]["pieces_held_still"] == 2
    assert rig.metadata["warnings"] == []
    # the face itself still moves as the network says: the chin drops by centimetres
    chin = np.argmin(np.where(np.abs(head.vertices[:, 0]) < 0.5, head.vertices[:, 1] - 3 * head.vertices[:, 2], 1e9))
    assert np.linalg.norm(jaw[chin]) > 5 * MM
    np.testing.assert_allclose(jaw[chin], raw_jaw[chin], rtol=1e-4, atol=1e-6)


def test_weights_ramp_smoothly_from_the_face_to_the_neck_base_and_the_back() -> None:
    ys = np.linspace(-3.5, 1.0, 4501)
    weights = face_weights(np.column_stack([np.zeros_like(ys), ys, np.full_like(ys, 0.5)]))
    assert weights[ys <= NECK_RAMP[0]].max() == 0.0 and weights[ys >= NECK_RAMP[1]].min() == 1.0
    assert np.all(np.diff(weights) >= 0) and np.abs(np.diff(weights)).max() < 2e-3  # monotone, no jump
    slope = np.diff(weights) / np.diff(ys)
    assert abs(slope[0]) < 1e-2 and abs(slope[-1]) < 1e-2  # C1: the ramp starts and ends flat
    assert face_weights(np.array([[0.0, 0.5, -1.1]]))[0] == 0.0  # the back of the skull
    assert face_weights(np.array([[0.0, -0.5, 1.3]]))[0] == 1.0  # the nose tip
    np.testing.assert_allclose(smoothstep(np.array([0.0, 0.5, 1.0]), 0.0, 1.0), [0.0, 0.5, 1.0])


@pytest.mark.slow  # the bundled model rigs the cow
def test_a_cow_gets_a_warning_and_heads_do_not(model, heads_dir, request) -> None:
    with pytest.warns(NotAHeadWarning, match="spot: does not look like a head"):
        rig = rig_mesh(heads_dir / "spot.obj", model)
    # the cow's shape does not decide its orientation either: that warning comes first, then the head check's
    not_a_head = [w for w in rig.metadata["warnings"] if "does not look like a head" in w]
    assert len(not_a_head) == 1 and not_a_head[0].startswith("spot:")
    assert rig.metadata["warnings"][0].startswith("orientation is a guess")
    for path in (request.config.rootpath / EXAMPLE, heads_dir / "suzanne.obj"):
        mesh = load_mesh(path)
        surface = mesh.welded.surface
        points = canonical_frame(surface).to_canonical(surface.vertices)
        check = head_check(points, surface.triangles, surface.component_labels, name=path.name)
        assert check.is_head, check.warnings
