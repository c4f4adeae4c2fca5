"""Connected pieces of a triangle mesh: the one definition of "a piece" (eyeball, tooth, lash strip, skin)."""

from __future__ import annotations

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph

__all__ = ["connected_components", "largest_area_component"]


def connected_components(n_vertices: int, triangles: np.ndarray) -> np.ndarray:
    """(V,) int64 connected-piece id of each vertex (joined by triangle edges); a vertex on no triangle is
    a piece of its own."""
    triangles = np.asarray(triangles, np.int64)
    rows = triangles[:, [0, 1, 2]].ravel()
    cols = triangles[:, [1, 2, 0]].ravel()
    graph = scipy.sparse.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_vertices, n_vertices))
    return scipy.sparse.csgraph.connected_components(graph, directed=False)[1].astype(np.int64)


def largest_area_component(labels: np.ndarray, areas: np.ndarray) -> np.ndarray:
    """(V,) bool: the vertices of the piece with the largest total ``areas`` (per vertex): the skin."""
    return labels == np.argmax(np.bincount(labels, areas))
