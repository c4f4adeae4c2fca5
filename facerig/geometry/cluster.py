"""Vertex clustering: a coarse triangle mesh of a dense one in a single linear-time pass.

Quadric decimation (:func:`facerig.geometry.remesh.decimate`) gives better triangles but runs tens of rounds over
the whole mesh (7 s for the 27k-vertex ICT head, over 28 s at 107k on this project's machine), so a dense head is
coarsened by clustering instead: vertices sharing a grid cell, a connected piece and a normal direction become one
vertex (the member nearest the cell's mean, so it stays on the surface), and the triangles whose corners land in
three different clusters make the coarse mesh. Keeping pieces apart means an eyeball never fuses with a lid;
splitting cells by normal direction keeps the two sides of a thin gap (upper and lower lip, the lids) apart
where a plain grid would weld the mouth shut.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facerig.geometry.triangles import face_normals, norm_rows, vertex_areas, vertex_normals

__all__ = ["Clustered", "cluster_mesh"]


@dataclass(frozen=True)
class Clustered:
    """A clustered mesh.

    Attributes:
        vertices: (C,) int64 the source vertex each coarse vertex is (coarse positions are ``source[vertices]``).
        triangles: (F, 3) int64 coarse triangles, oriented as the source triangle they came from.
    """

    vertices: np.ndarray
    triangles: np.ndarray


def _normal_buckets(normals: np.ndarray) -> np.ndarray:
    """(V,) int64 in 0..5: the signed axis a unit normal points along most (+x, -x, +y, ...)."""
    axis = np.abs(normals).argmax(axis=1)
    negative = normals[np.arange(len(normals)), axis] < 0
    return 2 * axis + negative


def cluster_mesh(
    vertices: np.ndarray, triangles: np.ndarray, pieces: np.ndarray, n_target: int, min_piece_vertices: int = 40
) -> Clustered:
    """Cluster a triangle mesh down to about ``n_target`` vertices, every connected piece kept.

    Args:
        vertices: (V, 3) positions; triangles: (F, 3); pieces: (V,) connected piece of each vertex.
        n_target: vertex budget, shared between pieces by surface area.
        min_piece_vertices: a piece with at most this many vertices, or whose area share is under it, keeps its
            own vertices unclustered when small enough, else gets a cell size that leaves it about this many; so
            small parts (teeth, lash strips) keep a shape.

    Returns:
        The coarse mesh as source vertex indices and triangles over them (unreferenced clusters dropped).
    """
    v = np.asarray(vertices, np.float64)
    tris = np.asarray(triangles, np.int64)
    pieces = np.asarray(pieces, np.int64)
    n_pieces = int(pieces.max()) + 1
    normals_f = face_normals(v, tris)  # once for both the areas and the normals
    area = np.bincount(pieces, vertex_areas(v, tris, normals_f=normals_f), minlength=n_pieces)
    have = np.bincount(pieces, minlength=n_pieces)
    share = np.maximum(n_target * area / max(float(area.sum()), 1e-300), min_piece_vertices)
    keep_whole = have <= 2 * share  # clustering would barely thin these: keep their own vertices
    cell = np.sqrt(area / share)

    normals = vertex_normals(v, tris, normals_f=normals_f)
    del normals_f
    lo = np.full((n_pieces, 3), np.inf)
    np.minimum.at(lo, pieces, v)
    size = np.where(keep_whole, 1.0, cell)[pieces]
    grid = np.floor((v - lo[pieces]) / np.maximum(size, 1e-300)[:, None]).astype(np.int64)
    keys = np.column_stack([pieces, 1 + _normal_buckets(normals), grid])
    whole = keep_whole[pieces]
    keys[whole, 1] = 0
    keys[whole, 2] = np.flatnonzero(whole)  # each vertex of a kept piece is its own cluster
    keys[whole, 3:] = 0
    try:  # one integer per key sorts several times faster than rows
        flat = np.ravel_multi_index(tuple(keys.T), tuple(keys.max(axis=0) + 1))
        _, cluster_of, counts = np.unique(flat, return_inverse=True, return_counts=True)
    except ValueError:  # more cells than an int64 holds
        _, cluster_of, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    cluster_of = cluster_of.ravel()

    # Representative: the member nearest its cluster's mean, so coarse vertices lie on the source surface.
    means = np.stack([np.bincount(cluster_of, v[:, d]) for d in range(3)], axis=1) / counts[:, None]
    distance = norm_rows(v - means[cluster_of])
    order = np.lexsort((distance, cluster_of))
    first = np.r_[True, cluster_of[order][1:] != cluster_of[order][:-1]]
    representative = order[first]  # indexed by cluster id

    coarse = cluster_of[tris]
    distinct = (coarse[:, 0] != coarse[:, 1]) & (coarse[:, 1] != coarse[:, 2]) & (coarse[:, 2] != coarse[:, 0])
    coarse = coarse[distinct]
    n_clusters = len(counts)
    ordered = np.sort(coarse, axis=1)
    _, unique_rows = np.unique((ordered[:, 0] * n_clusters + ordered[:, 1]) * n_clusters + ordered[:, 2],
                               return_index=True)
    coarse = coarse[np.sort(unique_rows)]
    # Drop faces that collapse to a line at the representatives' positions: their cotangents are infinite.
    positions = v[representative]
    doubled_area = norm_rows(face_normals(positions, coarse))
    coarse = coarse[doubled_area > 1e-12 * float(np.ptp(v, axis=0).max()) ** 2]

    used = np.unique(coarse.ravel())
    renumber = np.full(n_clusters, -1, np.int64)
    renumber[used] = np.arange(len(used))
    return Clustered(vertices=representative[used], triangles=renumber[coarse])
