"""Midpoint subdivision of polygon meshes: dense versions of a head whose shape does not change.

Used to make dense test and benchmark heads from a real one (the ICT neutral at 27k vertices becomes 107k, 420k,
1.7M): every polygon is split, no vertex moves, so a rig of the dense head can be compared with a rig of the
original one vertex for vertex.
"""

from __future__ import annotations

import numpy as np

__all__ = ["midpoint_subdivide"]


def midpoint_subdivide(
    vertices: np.ndarray, face_vertex_counts: np.ndarray, face_vertex_indices: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split every polygon once: a triangle into 4 triangles, an n-gon (n >= 4) into n quads about its centroid.

    Args:
        vertices: (V, 3) positions; face_vertex_counts: (P,) corners per polygon; face_vertex_indices: (N,) the
            polygons' corners, flattened.

    Returns:
        vertices (V + E + Q, 3) float64: the original vertices first (same indices), then one midpoint per
        distinct edge, then one centroid per polygon with 4 or more corners; face_vertex_counts (P',) int32;
        face_vertex_indices (N',) int64; and (P',) int64 the source polygon of each new polygon. Polygons that
        share an edge share its midpoint, so connected pieces stay connected and separate pieces separate.
    """
    v = np.asarray(vertices, np.float64)
    counts = np.asarray(face_vertex_counts, np.int64)
    corners = np.asarray(face_vertex_indices, np.int64)
    n_v, n_poly = len(v), len(counts)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    polygon = np.repeat(np.arange(n_poly), counts)  # owner polygon of each corner
    slot = np.arange(len(corners)) - starts[polygon]
    following = corners[starts[polygon] + (slot + 1) % counts[polygon]]
    previous_corner = starts[polygon] + (slot - 1) % counts[polygon]  # index of the corner before, per corner

    # One midpoint per distinct edge, numbered after the original vertices.
    a, b = np.minimum(corners, following), np.maximum(corners, following)
    edge_keys, edge_of_corner = np.unique(a * n_v + b, return_inverse=True)
    edge_a, edge_b = edge_keys // n_v, edge_keys % n_v
    midpoint = n_v + edge_of_corner  # midpoint vertex of the edge leaving each corner
    midpoint_before = midpoint[previous_corner]  # ... and of the edge arriving at it

    is_triangle = counts == 3
    ngon = np.flatnonzero(~is_triangle)
    centroid_index = np.full(n_poly, -1, np.int64)
    centroid_index[ngon] = n_v + len(edge_keys) + np.arange(len(ngon))
    centroid_sum = np.zeros((n_poly, 3))
    np.add.at(centroid_sum, polygon, v[corners])
    centroids = centroid_sum[ngon] / counts[ngon, None]

    new_vertices = np.concatenate([v, 0.5 * (v[edge_a] + v[edge_b]), centroids])

    # Triangles: three corner triangles and the middle one.
    tri_corner = np.flatnonzero(is_triangle[polygon])
    corner_tris = np.stack([corners[tri_corner], midpoint[tri_corner], midpoint_before[tri_corner]], axis=1)
    first = starts[is_triangle]
    middle_tris = np.stack([midpoint[first], midpoint[first + 1], midpoint[first + 2]], axis=1)
    # N-gons: one quad per corner (corner, leaving midpoint, centroid, arriving midpoint).
    ngon_corner = np.flatnonzero(~is_triangle[polygon])
    quads = np.stack([corners[ngon_corner], midpoint[ngon_corner], centroid_index[polygon[ngon_corner]],
                      midpoint_before[ngon_corner]], axis=1)
    new_counts = np.r_[np.full(len(corner_tris) + len(middle_tris), 3, np.int32), np.full(len(quads), 4, np.int32)]
    new_corners = np.concatenate([corner_tris.ravel(), middle_tris.ravel(), quads.ravel()])
    source_polygon = np.concatenate([polygon[tri_corner], np.flatnonzero(is_triangle), polygon[ngon_corner]])
    return new_vertices, new_counts, new_corners, source_polygon
