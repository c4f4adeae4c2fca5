"""The canonical frame: axes, exact round trips, and stability of centre and size on the ICT-FaceKit neutral.

Stability is measured at the nose tip (the face vertex with the largest z, ICT being Y-up and looking +Z),
in canonical units (cranium radius 1). Measured on this head (see facerig/canonical/frame.py): neck cuts below the
chin and dropping the inner components change nothing (the fit converges to the same sphere), scaling changes
it by ~1e-15, ±10° rotations (once undone) by < 2e-6. The bounds below leave margin over those numbers and are all far
inside the 3 % of head size the frame is specified for.
"""

from __future__ import annotations

from dataclasses import replace

import json
from pathlib import Path

import numpy as np
import pytest

from facerig.canonical.frame import CanonicalFrame, axes_rotation, canonical_frame, parse_axis
from facerig.errors import ConfigError, FacerigError, MeshLoadError
from facerig.mesh import Mesh

FACE_VERTICES = 9409  # ICT-FaceKit: vertices 0–9408 are the face (data/README.md)
NARROW_FACE_VERTICES = 6706  # and 0–6705 the narrow face area, which ends at the chin
NECK_CUT_BOUND = 1e-3
INNER_PARTS_BOUND = 1e-3
SCALE_BOUND = 1e-9
ROTATION_BOUND = 1e-4
ROUND_TRIP = 1e-9


def read_obj(path: Path) -> Mesh:
    """Positions and polygons of an OBJ file (enough for these tests; facerig.io is the real reader)."""
    vertices, counts, corners = [], [], []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("v "):
                vertices.append([float(x) for x in line.split()[1:4]])
            elif line.startswith("f "):
                face = [int(token.split("/")[0]) for token in line.split()[1:]]
                counts.append(len(face))
                corners.extend(i - 1 if i > 0 else len(vertices) + i for i in face)
    return Mesh(np.array(vertices), np.array(counts), np.array(corners), name=path.stem)


def submesh(mesh: Mesh, keep: np.ndarray) -> tuple[Mesh, np.ndarray]:
    """The triangles whose corners are all kept, without unused vertices; and old -> new vertex index (-1: gone)."""
    triangles = mesh.triangles[keep[mesh.triangles].all(axis=1)]
    used = np.unique(triangles)
    remap = np.full(mesh.n_vertices, -1)
    remap[used] = np.arange(len(used))
    return Mesh.from_triangles(mesh.vertices[used], remap[triangles]), remap


def rotation_about(axis: int, degrees: float) -> np.ndarray:
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    i, j = [k for k in range(3) if k != axis]
    rotation = np.eye(3)
    rotation[i, i] = rotation[j, j] = c
    rotation[i, j], rotation[j, i] = -s, s
    return rotation


@pytest.fixture(scope="module")
def ict(ict_neutral_path: Path) -> Mesh:
    return read_obj(ict_neutral_path)


@pytest.fixture(scope="module")
def nose(ict: Mesh) -> int:
    return int(np.argmax(ict.vertices[:FACE_VERTICES, 2]))


@pytest.fixture(scope="module")
def reference(ict: Mesh, nose: int) -> np.ndarray:
    """Canonical nose tip of the untouched ICT neutral."""
    return canonical_frame(ict).to_canonical(ict.vertices[nose])


# ---------------------------------------------------------------------------------------------- the frame itself
def test_ict_frame_is_centred_on_the_cranium_with_unit_radius(ict: Mesh, reference: np.ndarray) -> None:
    frame = canonical_frame(ict)
    np.testing.assert_array_equal(frame.rotation, np.eye(3))  # ICT is Y-up, looking +Z: already canonical axes
    radius = 1.0 / frame.scale
    # An adult cranium: radius 8–11 cm (the ICT head is 25 × 34 × 22 cm with its neck).
    assert 8.0 < radius < 11.0
    canonical = frame.to_canonical(ict.vertices)
    top = canonical[:, 1].max()
    assert 0.9 < top < 1.2  # the top of the head is about one radius above the centre
    # The nose tip is on the midline, below the centre and about one radius in front of it.
    assert abs(reference[0]) < 1e-3
    assert -1.0 < reference[1] < 0.0
    assert 1.0 < reference[2] < 1.6


def test_a_lopsided_cranium_keeps_the_face_on_the_midline(ict: Mesh, nose: int, reference: np.ndarray) -> None:
    """A bulge on one side of the skull cap (a hair bun, a sculpt) pulls the cap's sphere sideways; the frame then
    takes the face's mirror plane, so the nose stays on X = 0 and the eyes stay mirror images."""
    canonical = canonical_frame(ict).to_canonical(ict.vertices)
    cap = (canonical[:, 1] > 0.2) & (canonical[:, 0] > 0.2)
    bulged = ict.vertices.copy()
    bulged[cap] += 0.25 * (ict.vertices[cap] - canonical_frame(ict).center) * canonical[cap, 0:1]
    lopsided = replace(ict, vertices=bulged)
    from facerig.canonical.frame import _cranium_sphere, _skin

    points, weights = _skin(lopsided)
    drifted, radius = _cranium_sphere(points, weights)
    assert drifted[0] / radius > 0.05  # without the mirror plane the cap's centre moves off the face
    moved = canonical_frame(lopsided).to_canonical(bulged[nose])
    assert abs(moved[0]) < 0.01 and abs(reference[0]) < 1e-3


@pytest.mark.parametrize("fraction", [0.2, 0.6, 1.0])
def test_neck_cut_height_does_not_move_the_nose(ict: Mesh, nose: int, reference: np.ndarray, fraction: float) -> None:
    lowest = ict.vertices[:, 1].min()
    chin = ict.vertices[:NARROW_FACE_VERTICES, 1].min()
    cut_at = lowest + fraction * (chin - lowest)
    cut, remap = submesh(ict, ict.vertices[:, 1] > cut_at)
    assert cut.n_vertices < ict.n_vertices and remap[nose] >= 0
    moved = canonical_frame(cut).to_canonical(cut.vertices[remap[nose]])
    assert np.linalg.norm(moved - reference) < NECK_CUT_BOUND


def test_dropping_inner_components_does_not_move_the_nose(ict: Mesh, nose: int, reference: np.ndarray) -> None:
    skin_only, remap = submesh(ict, ict.component_labels == ict.component_labels[nose])
    assert skin_only.n_components == 1 and ict.n_components > 10
    moved = canonical_frame(skin_only).to_canonical(skin_only.vertices[remap[nose]])
    assert np.linalg.norm(moved - reference) < INNER_PARTS_BOUND


@pytest.mark.parametrize("factor", [0.01, 10.0])
def test_units_do_not_change_canonical_coordinates(ict: Mesh, nose: int, reference: np.ndarray, factor: float) -> None:
    scaled = ict.with_vertices(ict.vertices * factor + np.array([3.0, -200.0, 50.0]) * factor)
    frame = canonical_frame(scaled)
    assert frame.scale == pytest.approx(canonical_frame(ict).scale / factor, rel=1e-9)
    moved = frame.to_canonical(scaled.vertices[nose])
    assert np.linalg.norm(moved - reference) < SCALE_BOUND


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("degrees", [-10.0, 10.0])
def test_small_rotations_move_the_frame_with_the_head(
    ict: Mesh, nose: int, reference: np.ndarray, axis: int, degrees: float
) -> None:
    # The frame does not undo head tilt (by design); its centre and size must follow the head, so the rotated
    # head's canonical nose, rotated back, is where the upright head's was.
    turn = rotation_about(axis, degrees)
    frame = canonical_frame(ict.with_vertices(ict.vertices @ turn.T))
    moved = frame.to_canonical(ict.vertices[nose] @ turn.T) @ turn
    assert np.linalg.norm(moved - reference) < ROTATION_BOUND


def test_round_trips_are_exact(ict: Mesh) -> None:
    frame = canonical_frame(ict.with_vertices(ict.vertices @ rotation_about(1, 7.0).T * 3.3), up="+Y", front="+Z")
    points = ict.vertices[::7]
    assert np.abs(frame.from_canonical(frame.to_canonical(points)) - points).max() < ROUND_TRIP
    canonical = frame.to_canonical(points)
    assert np.abs(frame.to_canonical(frame.from_canonical(canonical)) - canonical).max() < ROUND_TRIP
    # A canonical displacement maps back exactly as the difference of the mapped-back positions.
    deltas = np.random.default_rng(0).normal(size=canonical.shape) * 0.01
    expected = frame.from_canonical(canonical + deltas) - frame.from_canonical(canonical)
    np.testing.assert_allclose(frame.deltas_from_canonical(deltas), expected, atol=ROUND_TRIP)
    as_float32 = frame.deltas_from_canonical(deltas.astype(np.float32)[None])
    assert as_float32.dtype == np.float32 and as_float32.shape == (1,) + deltas.shape


def test_frame_serialises_exactly(ict: Mesh) -> None:
    frame = canonical_frame(ict, up="+Z", front="-Y")
    restored = CanonicalFrame.from_dict(json.loads(json.dumps(frame.to_dict())))
    np.testing.assert_array_equal(restored.rotation, frame.rotation)
    np.testing.assert_array_equal(restored.center, frame.center)
    assert restored.scale == frame.scale
    with pytest.raises(FacerigError, match="orthonormal"):
        CanonicalFrame.from_dict({"rotation": [[2, 0, 0], [0, 1, 0], [0, 0, 1]], "center": [0, 0, 0], "scale": 1})
    with pytest.raises(FacerigError, match="scale"):
        CanonicalFrame.from_dict({"rotation": np.eye(3).tolist(), "center": [0, 0, 0], "scale": -1})
    with pytest.raises(FacerigError, match="rotation, center and scale"):
        CanonicalFrame.from_dict({"center": [0, 0, 0]})


# ---------------------------------------------------------------------------------------------- axes
def test_z_up_files_are_assumed_to_look_along_minus_y(ict: Mesh, reference: np.ndarray, nose: int) -> None:
    # ICT turned into the Blender/USD Z-up convention: (x, y, z) -> (x, -z, y); the face now looks along -Y.
    to_z_up = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])
    z_up = Mesh(ict.vertices @ to_z_up.T, ict.face_vertex_counts, ict.face_vertex_indices, up_axis="Z")
    frame = canonical_frame(z_up)
    np.testing.assert_allclose(frame.rotation @ to_z_up, np.eye(3), atol=0)
    np.testing.assert_allclose(frame.to_canonical(z_up.vertices[nose]), reference, atol=1e-9)
    # Explicit axes say the same thing and win over the file's up axis.
    explicit = canonical_frame(z_up.with_vertices(z_up.vertices), up="+Z", front="-Y")
    np.testing.assert_array_equal(explicit.rotation, frame.rotation)
    wrong = Mesh(ict.vertices, ict.face_vertex_counts, ict.face_vertex_indices, up_axis="Z")
    np.testing.assert_array_equal(canonical_frame(wrong, up="+Y", front="+Z").rotation, np.eye(3))


def test_character_left_stays_plus_x_for_every_axis_pair() -> None:
    for up in ("+X", "-X", "+Y", "-Y", "+Z", "-Z"):
        for front in ("+X", "-X", "+Y", "-Y", "+Z", "-Z"):
            if up[1] == front[1]:
                continue
            rotation = axes_rotation(up, front)
            assert np.linalg.det(rotation) == pytest.approx(1.0)
            np.testing.assert_array_equal(rotation @ parse_axis(up), [0, 1, 0])
            np.testing.assert_array_equal(rotation @ parse_axis(front), [0, 0, 1])


def test_bad_axes_are_config_errors(ict: Mesh) -> None:
    with pytest.raises(ConfigError, match="'up'"):
        parse_axis("up")
    with pytest.raises(ConfigError, match="same axis"):
        canonical_frame(ict, up="+Y", front="-Y")
    with pytest.raises(ConfigError, match=r"\+-Y"):
        axes_rotation(up="+-Y")


def test_flat_mesh_has_no_head_size() -> None:
    line = Mesh.from_triangles(np.array([[0.0, 0, 0], [1, 0, 0], [2, 0, 0]]), np.array([[0, 1, 2]]), name="line")
    with pytest.raises(MeshLoadError, match="line: .*surface"):
        canonical_frame(line)


def test_non_ict_head_gets_a_sensible_frame(heads_dir: Path) -> None:
    suzanne = read_obj(heads_dir / "suzanne.obj")
    frame = canonical_frame(suzanne)
    low, high = suzanne.vertices.min(axis=0), suzanne.vertices.max(axis=0)
    assert np.all(frame.center > low) and np.all(frame.center < high)
    extent = np.ptp(frame.to_canonical(suzanne.vertices), axis=0)
    assert np.all(extent > 0.5) and np.all(extent < 6.0)
