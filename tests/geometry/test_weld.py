"""The one weld policy (facerig.geometry.weld) and the welded view every consumer of a Mesh uses."""

from __future__ import annotations

import numpy as np

from facerig.canonical.frame import canonical_frame
from facerig.geometry import coincident_points, skin_mask, weld_vertices, welded_pieces
from facerig.io import load_mesh
from facerig.mesh import Mesh
from facerig.trainer.ict import PARTS


def _split_per_face(mesh: Mesh) -> Mesh:
    """The same surface with every triangle's corners its own vertices: a flat-shaded export."""
    triangles = mesh.triangles
    return Mesh.from_triangles(mesh.vertices[triangles.ravel()], np.arange(triangles.size).reshape(-1, 3))


def test_split_vertices_are_welded_for_the_network(heads_dir) -> None:
    robot_head = load_mesh(heads_dir / "robot_expressive.glb", select="Head")
    surface, to_surface = robot_head.welded.surface, robot_head.welded.to_surface
    assert robot_head.n_vertices == 1742
    assert surface.n_vertices == 511
    np.testing.assert_array_equal(surface.vertices[to_surface], robot_head.vertices)
    assert surface.n_components < robot_head.n_components


def test_a_seam_welds_but_a_sheet_on_the_same_edge_stays_apart() -> None:
    # two unit squares split along x = 1 (a UV seam), and a fin standing on that same edge (a lash on a lid rim)
    left = [(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0)]
    right = [(1, 0, 0), (2, 0, 0), (2, 1, 0), (1, 1, 0)]
    fin = [(1, 0, 0), (1, 1, 0), (1, 0.5, 1)]
    vertices = np.array(left + right + fin, float)
    triangles = np.array([(0, 1, 2), (0, 2, 3), (4, 5, 6), (4, 6, 7), (8, 9, 10)])
    mesh = Mesh.from_triangles(vertices, triangles)
    surface, to_surface = mesh.welded.surface, mesh.welded.to_surface
    assert surface.n_vertices == 6 + 3 and surface.n_components == 2
    assert to_surface[1] == to_surface[4] and to_surface[2] == to_surface[7]  # the seam welds
    assert to_surface[8] != to_surface[1] and to_surface[9] != to_surface[2]  # the fin does not
    np.testing.assert_array_equal(surface.vertices[to_surface], vertices)
    np.testing.assert_array_equal(welded_pieces(vertices, triangles), mesh.welded.component_labels)


def test_copies_within_the_tolerance_weld_wherever_they_fall() -> None:
    """Round-off in a written file moves copies of a point by ~1e-9 of the head; no grid line splits them."""
    rng = np.random.default_rng(0)
    points = rng.uniform(-1, 1, (200, 3))
    # copies straddling every multiple of 1e-6 (where a rounding grid would cut) and a far-off distinct point
    copies = np.concatenate([points, points + 3e-9, points - 3e-9])
    ids = coincident_points(copies)
    np.testing.assert_array_equal(ids[:200], ids[200:400])
    np.testing.assert_array_equal(ids[:200], ids[400:])
    assert len(np.unique(ids)) == 200
    assert len(np.unique(coincident_points(points))) == 200


def test_a_flat_shaded_head_welds_back_to_its_surface(request) -> None:
    """Every face its own piece (Blender's flat-shaded export): the welded surface has the original's pieces,
    and the canonical frame is the original's."""
    head = load_mesh(request.config.rootpath / "examples" / "ict_head.obj")
    flat = _split_per_face(head)
    assert flat.n_components == len(head.triangles)
    welded = flat.welded
    assert welded.surface.n_components == head.welded.surface.n_components
    original, split = canonical_frame(head), canonical_frame(flat)
    np.testing.assert_allclose(split.center, original.center, atol=1e-6 / original.scale)
    assert abs(split.scale / original.scale - 1.0) < 1e-6
    # every copy of a vertex is one point of the welded surface (copies within the weld tolerance included)
    diagonal = np.linalg.norm(np.ptp(flat.vertices, axis=0))
    np.testing.assert_allclose(welded.surface.vertices[welded.to_surface], flat.vertices, rtol=0, atol=1e-6 * diagonal)


def test_ict_eye_shells_stay_their_own_pieces(ict_neutral_path) -> None:
    """ICT's lashes, tear lines and occlusion shells sit on the lid's own vertex positions; welded, they would
    crowd the lid's edges and join the skin, unlike every head the network was trained on."""
    head = load_mesh(ict_neutral_path)
    surface, to_surface = head.welded.surface, head.welded.to_surface
    assert surface.n_components == head.n_components == 56
    welded = surface.triangles
    edges = np.sort(np.concatenate([welded[:, [0, 1]], welded[:, [1, 2]], welded[:, [2, 0]]]), axis=1)
    assert np.unique(edges, axis=0, return_counts=True)[1].max() == 2
    lashes = [lo for name, lo, _, _ in PARTS if name.startswith("eyelashes")]
    skin = surface.component_labels[to_surface[0]]
    assert all(surface.component_labels[to_surface[lo]] != skin for lo in lashes)
    # the skin of the array-level API is the same piece
    mask = skin_mask(head.vertices, head.triangles)
    assert mask[0] and not mask[[lo for _, lo, _, _ in PARTS if _.startswith("eyeball")]].any()


def test_nothing_to_weld_is_the_identity() -> None:
    vertices = np.array([(0, 0, 0), (1, 0, 0), (0, 1, 0)], float)
    mesh = Mesh.from_triangles(vertices, [(0, 1, 2)])
    assert mesh.welded.surface is mesh and mesh.welded.is_identity
    np.testing.assert_array_equal(weld_vertices(vertices, mesh.triangles, mesh.component_labels), [0, 1, 2])
