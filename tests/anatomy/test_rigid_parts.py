"""Rigid parts found by shape and position and moved as bones: the ICT neutral against ICT's own jaw opening,
the bundled model's rig of the example head, and synthetic parts with known answers."""

from __future__ import annotations

import tarfile

import numpy as np
import pytest

from facerig import load_mesh
from facerig.anatomy.eyes import find_eyeballs
from facerig.anatomy.face_region import head_check, still_pieces
from facerig.anatomy.rigid_parts import (find_rigid_parts, make_rigid, network_moves_jaw, occlusal_plane, rigid_fit,
                                 rotation_fit)
from facerig.canonical.frame import canonical_frame
from facerig.mesh import Mesh
from facerig.rigging.pipeline import load_model, rig_mesh

EXAMPLE = "examples/ict_head.obj"
MM = 0.1  # the ICT head's unit is the centimetre


def _canonical(mesh):
    surface, to_surface = mesh.welded.surface, mesh.welded.to_surface
    frame = canonical_frame(surface)
    return surface, to_surface, frame.to_canonical(surface.vertices)


def _rigid_residual(points: np.ndarray, delta: np.ndarray) -> float:
    """RMS of what a rigid fit of ``delta`` on ``points`` leaves, over the RMS of ``delta``."""
    rotation, translation = rigid_fit(points, points + delta)
    residual = points @ rotation.T + translation - (points + delta)
    return float(np.sqrt((residual**2).sum(1).mean() / max((delta**2).sum(1).mean(), 1e-30)))


@pytest.fixture(scope="module")
def example_rig(request):
    return rig_mesh(request.config.rootpath / EXAMPLE, load_model())


def test_ict_mouth_parts_split_as_ict_opens_its_jaw(ict_dir) -> None:
    """Every tooth of the 26,719-vertex ICT neutral goes to the row ICT's own jawOpen moves it with, and
    >= 96% of the gums-and-tongue sheet, which crosses the occlusal plane, is split the same way."""
    mesh = load_mesh(ict_dir / "generic_neutral_mesh.obj")
    jaw_open = load_mesh(ict_dir / "jawOpen.obj").vertices - mesh.vertices
    surface, to_surface, points = _canonical(mesh)
    parts = find_rigid_parts(points, surface.triangles, surface.component_labels,
                             find_eyeballs(points, surface.component_labels))
    moves = np.linalg.norm(jaw_open, axis=1) > 0.05  # 0.5 mm; ICT's jaw parts move 19-42 mm, the rest 0
    lower = np.isin(to_surface, parts.lower)
    upper = np.isin(to_surface, parts.upper)
    teeth, gums_tongue = np.arange(17039, 21451), np.arange(14062, 17039)  # ICT's ranges (shared/data/README)
    assert len(parts.mouth_components) == 33 and len(parts.split_components) == 1  # 32 teeth + the sheet
    np.testing.assert_array_equal(lower[teeth], moves[teeth])
    np.testing.assert_array_equal(upper[teeth], ~moves[teeth])
    # 0.964: ICT keeps a strip of the throat behind the molars still, below the tilted plane of the teeth
    assert (lower[gums_tongue] == moves[gums_tongue]).mean() >= 0.96
    assert not (upper | lower)[: 14062].any() and not (upper | lower)[21451:].any()  # skin, eyes: not mouth


@pytest.fixture(scope="module")
def makehuman_body(ict_archive, tmp_path_factory) -> Mesh:
    """MakeHuman's full-body base mesh (decimetres, OBJ groups name its parts), from the shared archive."""
    archive = ict_archive.parent / "MakeHuman-assets.tar.xz"  # the shared data folder
    assert archive.is_file(), f"test data missing: {archive}"
    folder = tmp_path_factory.mktemp("makehuman")
    with tarfile.open(archive) as tar:
        tar.extract("MakeHuman-assets/3dobjs/base.obj", folder, filter="data")
    return load_mesh(folder / "MakeHuman-assets" / "3dobjs" / "base.obj")


def _head_of(body: Mesh, below: float = 5.3) -> tuple[Mesh, np.ndarray]:
    """The polygons of ``body`` wholly above y = ``below`` (head, neck, inner parts, hair), without the clothes
    and joint markers; and the group name of each of its vertices."""
    names = np.array(body.group_names)
    kept_group = np.array([n == "body" or (n.startswith("helper-") and not any(
        k in n for k in ("tights", "skirt", "genital"))) for n in names])
    starts = np.r_[0, np.cumsum(body.face_vertex_counts)[:-1]]
    lowest = np.minimum.reduceat(body.vertices[body.face_vertex_indices, 1], starts)
    keep = kept_group[body.polygon_groups] & (lowest > below)
    corner_keep = np.repeat(keep, body.face_vertex_counts)
    corners = body.face_vertex_indices[corner_keep]
    used, remapped = np.unique(corners, return_inverse=True)
    head = Mesh(body.vertices[used], body.face_vertex_counts[keep], remapped.reshape(-1), up_axis="Y", name="mh")
    group_of = np.empty(len(used), object)
    group_of[remapped.reshape(-1)] = np.repeat(names[body.polygon_groups[keep]], body.face_vertex_counts[keep])
    return head, group_of


def test_makehuman_teeth_and_tongue_go_with_their_rows_and_its_hair_stays(makehuman_body) -> None:
    """A second artist's head (MakeHuman: one piece per row of teeth, a tongue, hair cards): rows found by
    position, not by the file's group names, which only check the answer."""
    head, group_of = _head_of(makehuman_body)
    surface, to_surface, points = _canonical(head)
    labels = surface.component_labels
    eyes = find_eyeballs(points, labels)
    parts = find_rigid_parts(points, surface.triangles, labels, eyes)
    assert len(eyes) == 2 and len(parts.mouth_components) == 3
    upper, lower = np.isin(to_surface, parts.upper), np.isin(to_surface, parts.lower)
    assert upper[group_of == "helper-upper-teeth"].all() and not lower[group_of == "helper-upper-teeth"].any()
    for group in ("helper-lower-teeth", "helper-tongue"):
        assert lower[group_of == group].all() and not upper[group_of == group].any()
    assert not (upper | lower)[~np.isin(group_of, ["helper-upper-teeth", "helper-lower-teeth", "helper-tongue"])].any()
    held = still_pieces(points, labels, np.concatenate([parts.vertices] + [eye.vertices for eye in eyes]))
    held_vertices = held[labels[to_surface]]
    # only hair is held still, and all of it, the cards hanging over the face included
    np.testing.assert_array_equal(held_vertices, group_of == "helper-hair")


def test_a_full_body_is_not_a_head(makehuman_body) -> None:
    surface, _, points = _canonical(makehuman_body)
    check = head_check(points, surface.triangles, surface.component_labels, name="base")
    assert not check.is_head and check.outside_area > 0.5
    assert "base: does not look like a head" in check.warnings[0]
    head, _ = _head_of(makehuman_body)
    surface, _, points = _canonical(head)
    assert head_check(points, surface.triangles, surface.component_labels).is_head


def test_jaw_drop_moves_the_lower_teeth_rigidly_and_the_upper_teeth_not_at_all(example_rig, request) -> None:
    mesh = load_mesh(request.config.rootpath / EXAMPLE)
    surface, to_surface, points = _canonical(mesh)
    parts = find_rigid_parts(points, surface.triangles, surface.component_labels,
                             find_eyeballs(points, surface.component_labels))
    summary = example_rig.metadata["rigid_parts"]
    assert summary["mouth_components"] == 33 and summary["upper_vertices"] > 0 and summary["lower_vertices"] > 0
    labels = surface.component_labels[to_surface]
    upper = np.isin(to_surface, parts.upper)
    assert np.linalg.norm(example_rig.deltas[:, upper], axis=2).max() < 0.1 * MM  # every shape
    jaw = example_rig.delta("JawDrop")
    lower_teeth = [c for c in parts.mouth_components if c not in parts.split_components
                   and np.isin(np.flatnonzero(labels == c), np.flatnonzero(np.isin(to_surface, parts.lower))).all()]
    assert len(lower_teeth) >= 10
    for c in lower_teeth:
        vertices = np.flatnonzero(labels == c)
        assert np.linalg.norm(jaw[vertices], axis=1).mean() > 1.0 * MM  # the jaw opens ...
        assert _rigid_residual(mesh.vertices[vertices], jaw[vertices]) < 0.05  # ... and the tooth stays whole
    lower = np.isin(to_surface, parts.lower)
    assert _rigid_residual(mesh.vertices[lower], jaw[lower]) < 1e-3  # all lower parts: one rigid motion


def test_the_jaw_follows_the_chin_where_the_network_leaves_the_inner_parts_behind(request) -> None:
    """A hinge opening that moves the chin 10 degrees: lower parts left still by the 'network' are carried by
    the chin's rigid motion; lower parts that move with it keep their own motion."""
    mesh = load_mesh(request.config.rootpath / EXAMPLE)
    surface, _, points = _canonical(mesh)
    parts = find_rigid_parts(points, surface.triangles, surface.component_labels,
                             find_eyeballs(points, surface.component_labels))
    assert len(parts.chin) >= 10 and points[parts.chin, 1].max() < points[parts.lower, 1].min()
    angle = np.radians(10.0)
    hinge = np.array([0.0, -0.45, -0.1])  # near the jaw's joint, in front of the ears
    turn = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    opening = (points - hinge) @ turn.T - (points - hinge)
    left_behind = np.zeros((2, *points.shape))
    left_behind[1, parts.chin] = opening[parts.chin]  # row 1 opens the chin; the inner parts stay
    assert not network_moves_jaw(left_behind, points, parts)
    carried = make_rigid(left_behind, points, parts, jaw_from_chin=True)
    np.testing.assert_allclose(carried[1, parts.lower], opening[parts.lower], atol=1e-9)
    np.testing.assert_array_equal(carried[0, parts.lower], 0.0)
    following = left_behind.copy()
    following[1, parts.lower] = 0.8 * opening[parts.lower]  # moves with the chin, a little short
    assert network_moves_jaw(following, points, parts)


def test_occlusal_plane_follows_tilted_rows() -> None:
    rng = np.random.default_rng(0)
    z = rng.uniform(0.4, 1.0, 400)
    upper = np.column_stack([rng.uniform(-0.3, 0.3, 200), -0.7 + 0.2 * z[:200] + rng.normal(0, 0.02, 200), z[:200]])
    lower = np.column_stack([rng.uniform(-0.3, 0.3, 200), -0.9 + 0.2 * z[200:] + rng.normal(0, 0.02, 200), z[200:]])
    height, slope = occlusal_plane(np.vstack([upper, lower]))
    assert height == pytest.approx(-0.8, abs=0.02) and slope == pytest.approx(0.2, abs=0.05)


def test_rigid_fits_recover_a_known_motion() -> None:
    rng = np.random.default_rng(1)
    points = rng.normal(size=(50, 3))
    angle = np.radians(20)
    rotation = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    fitted, translation = rigid_fit(points, points @ rotation.T + [0.1, -0.2, 0.3])
    np.testing.assert_allclose(fitted, rotation, atol=1e-12)
    np.testing.assert_allclose(translation, [0.1, -0.2, 0.3], atol=1e-12)
    np.testing.assert_allclose(rotation_fit(points, points @ rotation.T), rotation, atol=1e-12)


def _sphere(centre, radius: float, rings: int = 10, segments: int = 14):
    thetas = np.linspace(0, np.pi, rings + 1)[1:-1]
    phis = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    ring = np.array([[np.sin(t) * np.cos(p), np.cos(t), np.sin(t) * np.sin(p)] for t in thetas for p in phis])
    points = np.vstack([[0, 1, 0], ring, [0, -1, 0]]) * radius + centre
    return points


def test_an_unpaired_eye_turns_about_its_centre_instead_of_leaving_its_socket() -> None:
    """One eye-like sphere, no pair: the network's warp plus push is replaced by a turn about its centre."""
    skin = np.array([[x, y, -2.0] for x in np.linspace(-3, 3, 12) for y in np.linspace(-3, 3, 12)])
    eye = _sphere(np.array([0.35, -0.1, 0.8]), 0.15)
    points = np.vstack([skin, eye])
    labels = np.r_[np.zeros(len(skin), np.int64), np.ones(len(eye), np.int64)]
    parts = find_rigid_parts(points, np.zeros((0, 3), np.int64), labels)
    assert len(parts.loose_eyes) == 1 and len(parts.mouth_components) == 0
    rng = np.random.default_rng(2)
    predicted = np.zeros((3, len(points), 3))
    predicted[1, len(skin):] = [0.0, 0.0, 0.05]  # pushed out of the socket
    predicted[2, len(skin):] = rng.normal(0, 0.02, (len(eye), 3))  # warped
    rigid = make_rigid(predicted, points, parts)
    centre = parts.loose_eyes[0].centre
    for row in rigid:
        radii_before = np.linalg.norm(points[len(skin):] - centre, axis=1)
        radii_after = np.linalg.norm(points[len(skin):] + row[len(skin):] - centre, axis=1)
        np.testing.assert_allclose(radii_after, radii_before, atol=1e-12)  # on its sphere: turned, not moved
    np.testing.assert_array_equal(rigid[:, : len(skin)], predicted[:, : len(skin)])  # the skin is not touched
