"""Re-meshing on the real ICT head: budget, shape, validity, components, exact closest points, transfer."""

from __future__ import annotations

import numpy as np
import pytest

from facerig.io import load_mesh
from facerig.mesh import Mesh
from facerig.geometry.remesh import (
    RemeshOptions,
    SurfaceIndex,
    closest_point_on_triangles,
    connected_pieces,
    fan_triangles,
    remesh,
    triangle_quality,
)


@pytest.fixture(scope="module")
def ict_head(ict_neutral_path):
    mesh = load_mesh(ict_neutral_path)
    return np.asarray(mesh.vertices), np.asarray(mesh.triangles)


@pytest.fixture(scope="module")
def remeshed(ict_head):
    vertices, triangles = ict_head
    options = RemeshOptions(budget=2000, quads=True, relax=0.5, density_contrast=0.5)
    return remesh(vertices, triangles, options, np.random.default_rng(7))


def _brute_force_distance(points, vertices, triangles):
    p = np.repeat(points, len(triangles), axis=0)
    t = np.tile(vertices[triangles], (len(points), 1, 1))
    bary = closest_point_on_triangles(p, t[:, 0], t[:, 1], t[:, 2])
    return np.linalg.norm(np.einsum("nk,nkd->nd", bary, t) - p, axis=1).reshape(len(points), -1).min(axis=1)


def test_closest_point_regions_of_one_triangle():
    a, b, c = np.array([[0.0, 0, 0]]), np.array([[1.0, 0, 0]]), np.array([[0.0, 1, 0]])
    cases = {
        (0.2, 0.3, 5.0): (0.5, 0.2, 0.3),  # above the interior: straight down
        (-1.0, -1.0, 0.0): (1.0, 0.0, 0.0),  # beyond corner a
        (0.5, -2.0, 1.0): (0.5, 0.5, 0.0),  # beside edge ab
        (2.0, 2.0, 0.0): (0.0, 0.5, 0.5),  # beyond the hypotenuse bc
    }
    for point, expected in cases.items():
        bary = closest_point_on_triangles(np.array([point]), a, b, c)[0]
        np.testing.assert_allclose(bary, expected, atol=1e-12)


def test_surface_index_is_exact_against_brute_force():
    rng = np.random.default_rng(0)
    vertices = rng.normal(size=(80, 3))
    triangles = rng.integers(0, 80, (150, 3))
    distinct = (triangles[:, 0] != triangles[:, 1]) & (triangles[:, 1] != triangles[:, 2]) & (triangles[:, 0] != triangles[:, 2])
    triangles = triangles[distinct]
    points = rng.normal(size=(400, 3)) * 1.5
    _, _, distance = SurfaceIndex(vertices, triangles).query(points)
    np.testing.assert_allclose(distance, _brute_force_distance(points, vertices, triangles), atol=1e-12)


def test_grouped_queries_stay_in_their_group():
    # Two unit squares 0.1 apart: a point next to square 0 but in group 1 must land on square 1.
    square = np.array([[0.0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]])
    vertices = np.concatenate([square, square + [0, 0, 0.1]])
    triangles = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    index = SurfaceIndex(vertices, triangles, np.array([0, 0, 1, 1]))
    tri, _, distance = index.query(np.array([[0.5, 0.5, -0.01]]), np.array([1]))
    assert tri[0] in (2, 3)
    assert distance[0] == pytest.approx(0.11)


def test_budget_components_and_validity(ict_head, remeshed):
    vertices, triangles = ict_head
    n = len(remeshed.vertices)
    assert abs(n - 2000) <= 100, n
    # Every component survives, none merge: ICT has 56 connected pieces.
    assert connected_pieces(len(vertices), triangles).max() + 1 == 56
    assert connected_pieces(n, remeshed.triangles).max() + 1 == 56
    # No degenerate faces, no unreferenced vertices, a manifold (each edge in at most two faces).
    assert triangle_quality(remeshed.vertices, remeshed.triangles).min() > 0.02
    assert np.array_equal(np.unique(remeshed.triangles), np.arange(n))
    t = remeshed.triangles
    edges = np.sort(np.concatenate([t[:, [0, 1]], t[:, [1, 2]], t[:, [2, 0]]]), axis=1)
    assert np.unique(edges, axis=0, return_counts=True)[1].max() <= 2


def test_quads_triangulate_back_to_the_triangles(remeshed):
    counts = remeshed.face_vertex_counts
    assert set(np.unique(counts)) == {3, 4}
    assert (counts == 4).sum() > 0.2 * len(counts)
    np.testing.assert_array_equal(fan_triangles(counts, remeshed.face_vertex_indices), remeshed.triangles)
    mesh = Mesh(remeshed.vertices, counts, remeshed.face_vertex_indices)  # validates the polygons
    np.testing.assert_array_equal(mesh.triangles, remeshed.triangles)


def test_surface_stays_close_to_the_source(ict_head, remeshed):
    vertices, triangles = ict_head
    # New vertices lie on the source surface (relaxed ones were projected back) ...
    _, _, on_source = SurfaceIndex(vertices, triangles).query(remeshed.vertices)
    assert on_source.max() < 1e-9
    # ... and the source is close to the new surface (cm; the head is about 25 × 34 × 22 cm).
    _, _, to_new = SurfaceIndex(remeshed.vertices, remeshed.triangles).query(vertices)
    assert to_new.mean() < 0.12, to_new.mean()
    assert to_new.max() < 1.2, to_new.max()
    # Relaxation moved most vertices off the source vertices.
    assert (remeshed.transfer.barycentrics.max(axis=1) < 1 - 1e-6).mean() > 0.3


def test_transfer_reproduces_positions_and_carries_values(ict_head, remeshed):
    vertices, _ = ict_head
    transfer = remeshed.transfer
    np.testing.assert_allclose(transfer.apply(vertices), remeshed.vertices, atol=1e-9)
    np.testing.assert_allclose(transfer.barycentrics.sum(axis=1), 1.0, atol=1e-9)
    # A linear field is carried exactly; (P, V, 3) stacks carry pose by pose.
    field = vertices @ np.array([[1.0, 0, 2], [0, 3, 0], [0, 0, 1]])
    stack = np.stack([field, -field])
    carried = transfer.apply(stack)
    assert carried.shape == (2, len(remeshed.vertices), 3)
    np.testing.assert_allclose(carried[0], remeshed.vertices @ np.array([[1.0, 0, 2], [0, 3, 0], [0, 0, 1]]), atol=1e-9)
    np.testing.assert_allclose(carried[1], -carried[0])


def test_same_rng_same_mesh_and_different_seed_different_mesh(ict_head):
    vertices, triangles = ict_head
    options = RemeshOptions(budget=1500, relax=0.3)
    a = remesh(vertices, triangles, options, np.random.default_rng(3))
    b = remesh(vertices, triangles, options, np.random.default_rng(3))
    np.testing.assert_array_equal(a.vertices, b.vertices)
    np.testing.assert_array_equal(a.face_vertex_indices, b.face_vertex_indices)
    other = RemeshOptions(budget=1500, relax=0.3, density_contrast=1.0)
    c = remesh(vertices, triangles, other, np.random.default_rng(4))
    assert len(c.face_vertex_indices) != len(a.face_vertex_indices) or not np.array_equal(
        c.face_vertex_indices, a.face_vertex_indices
    )
