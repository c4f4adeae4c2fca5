"""Midpoint subdivision (facerig.geometry.subdivide) and vertex clustering (facerig.geometry.cluster) on real
heads: Spot (one quad-dominant piece) and the robot (many pieces, seam-split copies)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facerig.geometry import SurfaceIndex, connected_components, vertex_areas
from facerig.geometry.cluster import cluster_mesh
from facerig.geometry.remesh import fan_triangles
from facerig.geometry.subdivide import midpoint_subdivide
from facerig.io import load_mesh


@pytest.fixture(scope="module")
def spot(heads_dir: Path):
    return load_mesh(heads_dir / "spot.obj")


@pytest.fixture(scope="module")
def robot_surface(heads_dir: Path):
    return load_mesh(heads_dir / "robot_expressive.glb").welded.surface


def test_subdivision_keeps_the_vertices_shape_and_pieces(spot, robot_surface) -> None:
    for mesh in (spot, robot_surface):
        vertices, counts, corners, source = midpoint_subdivide(mesh.vertices, mesh.face_vertex_counts,
                                                               mesh.face_vertex_indices)
        n_edges = len(np.unique(np.sort(mesh.triangles[:, [0, 1]], axis=1), axis=0))  # lower bound
        assert len(vertices) > mesh.n_vertices + n_edges // 2
        np.testing.assert_array_equal(vertices[: mesh.n_vertices], mesh.vertices)  # originals first, unmoved
        assert len(counts) == int(np.where(mesh.face_vertex_counts == 3, 4, mesh.face_vertex_counts).sum())
        assert len(source) == len(counts) and source.max() == mesh.n_polygons - 1
        triangles = fan_triangles(counts, corners)
        # same surface: same area, and every new vertex lies on the original surface
        assert vertex_areas(vertices, triangles).sum() == pytest.approx(
            vertex_areas(mesh.vertices, mesh.triangles).sum(), rel=1e-6)
        distance = SurfaceIndex(mesh.vertices, mesh.triangles).query(vertices[mesh.n_vertices:])[2]
        assert distance.max() < 1e-9 * np.ptp(mesh.vertices)
        # pieces: the same number, each original vertex in its original piece's counterpart
        before = connected_components(mesh.n_vertices, mesh.triangles)
        after = connected_components(len(vertices), triangles)[: mesh.n_vertices]
        assert after.max() == before.max()
        assert len(np.unique(before * (after.max() + 1) + after)) == before.max() + 1


def test_clustering_reaches_its_budget_keeps_every_piece_and_stays_on_the_surface(robot_surface) -> None:
    surface = robot_surface
    pieces = surface.component_labels
    clustered = cluster_mesh(surface.vertices, surface.triangles, pieces, 600)
    assert 300 <= len(clustered.vertices) <= surface.n_vertices
    assert len(np.unique(clustered.vertices)) == len(clustered.vertices)
    assert clustered.triangles.min() == 0 and clustered.triangles.max() == len(clustered.vertices) - 1
    # every piece with a triangle is still there, and no coarse triangle spans two pieces
    kept = pieces[clustered.vertices]
    assert set(np.unique(kept)) == set(np.unique(pieces[surface.triangles.ravel()]))
    corner_pieces = kept[clustered.triangles]
    assert (corner_pieces == corner_pieces[:, :1]).all()
    # no degenerate triangle
    positions = surface.vertices[clustered.vertices][clustered.triangles]
    doubled_area = np.linalg.norm(np.cross(positions[:, 1] - positions[:, 0], positions[:, 2] - positions[:, 0]),
                                  axis=1)
    assert doubled_area.min() > 0


def test_clustering_a_dense_sheet_thins_it_to_the_budget(spot) -> None:
    vertices, counts, corners, _ = midpoint_subdivide(spot.vertices, spot.face_vertex_counts,
                                                      spot.face_vertex_indices)
    triangles = fan_triangles(counts, corners)
    clustered = cluster_mesh(vertices, triangles, np.zeros(len(vertices), np.int64), 2000)
    assert 1200 <= len(clustered.vertices) <= 3000
    # the coarse surface covers the sheet: every dense vertex is close to it
    coarse = vertices[clustered.vertices]
    distance = SurfaceIndex(coarse, clustered.triangles).query(vertices)[2]
    spacing = np.sqrt(vertex_areas(vertices, triangles).sum() / len(clustered.vertices))
    assert np.quantile(distance, 0.99) < 0.5 * spacing
