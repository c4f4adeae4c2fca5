"""Per-triangle and per-vertex quantities of a triangle mesh given as arrays.

Everything here takes ``vertices`` (V, 3) and ``triangles`` (F, 3) int arrays and nothing else, so the
loaders, the rig, the template transfer and the dataset builder all use the same definitions.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "closest_point_on_triangles",
    "cross_rows",
    "dot_rows",
    "face_normals",
    "fan_triangles",
    "norm_rows",
    "triangle_quality",
    "vertex_areas",
    "vertex_normals",
]


# Row-wise 3-vector helpers: numpy's generic reductions over a length-3 axis are several times slower.
def dot_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) row-wise dot products of two (N, 3) arrays."""
    return a[:, 0] * b[:, 0] + a[:, 1] * b[:, 1] + a[:, 2] * b[:, 2]


def cross_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 3) row-wise cross products of two (N, 3) arrays."""
    x = a[:, 1] * b[:, 2] - a[:, 2] * b[:, 1]
    y = a[:, 2] * b[:, 0] - a[:, 0] * b[:, 2]
    z = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
    return np.stack([x, y, z], axis=1)


def norm_rows(a: np.ndarray) -> np.ndarray:
    """(N,) Euclidean length of each row of an (N, 3) array."""
    return np.sqrt(dot_rows(a, a))


def face_normals(vertices: np.ndarray, triangles: np.ndarray, unit: bool = False) -> np.ndarray:
    """(F, 3) face normals: length twice the triangle's area, or unit length (zero for degenerate faces)."""
    a = vertices[triangles[:, 0]]
    normals = cross_rows(vertices[triangles[:, 1]] - a, vertices[triangles[:, 2]] - a)
    if unit:
        normals = normals / np.maximum(norm_rows(normals), 1e-300)[:, None]
    return normals


def vertex_areas(vertices: np.ndarray, triangles: np.ndarray, *, normals_f: np.ndarray | None = None) -> np.ndarray:
    """(V,) a third of the area of the triangles around each vertex (the lumped mass of a vertex).
    ``normals_f``: :func:`face_normals` of the same mesh when the caller has them already."""
    area = 0.5 * norm_rows(face_normals(vertices, triangles) if normals_f is None else normals_f)
    return np.bincount(triangles.ravel(), np.repeat(area / 3.0, 3), minlength=len(vertices))


def vertex_normals(
    vertices: np.ndarray, triangles: np.ndarray, fallback: tuple[float, float, float] = (0.0, 0.0, 1.0), *,
    normals_f: np.ndarray | None = None,
) -> np.ndarray:
    """(V, 3) float64 unit area-weighted vertex normals.

    A vertex on no triangle, or only on degenerate ones, has no normal; it gets ``fallback`` so callers can
    divide and project without guarding against zero vectors. ``normals_f``: :func:`face_normals` of the same
    mesh when the caller has them already.
    """
    if normals_f is None:
        normals_f = face_normals(vertices, triangles)
    corner_vertex = triangles.ravel()
    normals = np.stack(
        [np.bincount(corner_vertex, np.repeat(normals_f[:, d], 3), minlength=len(vertices)) for d in range(3)],
        axis=1,
    )
    length = norm_rows(normals)
    scale = float(norm_rows(normals_f).max()) if len(normals_f) else 0.0
    degenerate = length <= 1e-12 * max(scale, np.finfo(float).tiny)
    normals[degenerate] = fallback
    length[degenerate] = 1.0
    return normals / length[:, None]


def triangle_quality(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(F,) shape quality 4·√3·area / Σ edge², 1 for equilateral, 0 for degenerate triangles."""
    a, b, c = (vertices[triangles[:, k]] for k in range(3))
    area2 = norm_rows(cross_rows(b - a, c - a))
    ab, bc, ca = b - a, c - b, a - c
    edges2 = dot_rows(ab, ab) + dot_rows(bc, bc) + dot_rows(ca, ca)
    return 2.0 * np.sqrt(3.0) * area2 / np.maximum(edges2, 1e-300)


def closest_point_on_triangles(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(N, 3) barycentric weights of the point of triangle (a[i], b[i], c[i]) closest to p[i].

    Ericson, *Real-Time Collision Detection* §5.1.5, vectorised: the Voronoi region of p decides between a
    corner, an edge and the interior. All inputs are (N, 3).
    """
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = dot_rows(ab, ap), dot_rows(ac, ap)
    bp = p - b
    d3, d4 = dot_rows(ab, bp), dot_rows(ac, bp)
    cp = p - c
    d5, d6 = dot_rows(ab, cp), dot_rows(ac, cp)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    tiny = 1e-300
    # The three weights are kept as separate (N,) arrays and each region overwrites them in place (masked
    # copies, no (N, 3) gathers): this runs for every candidate triangle of every closest-point query.
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = va + vb + vc
        inside = np.abs(denom) > tiny
        v = np.where(inside, vb / denom, 1.0 / 3.0)
        w = np.where(inside, vc / denom, 1.0 / 3.0)
        u = 1.0 - v - w
        # Regions in reverse priority: each later assignment wins, so the corner tests (checked first in
        # Ericson's scalar code) are applied last.
        d43, d56 = d4 - d3, d5 - d6
        t = d43 / np.maximum(d43 + d56, tiny)  # edge bc
        m = (va <= 0) & (d43 >= 0) & (d56 >= 0)
        np.copyto(u, 0.0, where=m)
        np.copyto(v, 1.0 - t, where=m)
        np.copyto(w, t, where=m)
        t = d2 / np.maximum(d2 - d6, tiny)  # edge ac
        m = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
        np.copyto(u, 1.0 - t, where=m)
        np.copyto(v, 0.0, where=m)
        np.copyto(w, t, where=m)
        m = (d6 >= 0) & (d5 <= d6)  # corner c
        np.copyto(u, 0.0, where=m)
        np.copyto(v, 0.0, where=m)
        np.copyto(w, 1.0, where=m)
        t = d1 / np.maximum(d1 - d3, tiny)  # edge ab
        m = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
        np.copyto(u, 1.0 - t, where=m)
        np.copyto(v, t, where=m)
        np.copyto(w, 0.0, where=m)
        m = (d3 >= 0) & (d4 <= d3)  # corner b
        np.copyto(u, 0.0, where=m)
        np.copyto(v, 1.0, where=m)
        np.copyto(w, 0.0, where=m)
        m = (d1 <= 0) & (d2 <= 0)  # corner a
        np.copyto(u, 1.0, where=m)
        np.copyto(v, 0.0, where=m)
        np.copyto(w, 0.0, where=m)
    return np.clip(np.stack([u, v, w], axis=1), 0.0, 1.0)


def fan_triangles(counts: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """(F, 3) int64 fan triangulation of polygons, in polygon order (as :attr:`facerig.mesh.Mesh.triangles`)."""
    counts = np.asarray(counts, np.int64)
    per = counts - 2
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    first = np.repeat(starts, per)
    k = np.arange(int(per.sum())) - np.repeat(np.cumsum(per) - per, per)
    return np.stack([corners[first], corners[first + k + 1], corners[first + k + 2]], axis=1).astype(np.int64)
