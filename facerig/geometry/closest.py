"""Closest points on a triangle mesh: the one search the rig, the template transfer, the evaluation and the
dataset builder share."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from facerig.geometry.triangles import closest_point_on_triangles, face_normals, norm_rows

__all__ = ["SurfaceIndex", "closest_points", "triangle_samples"]


def triangle_samples(tri_xyz: np.ndarray, step: float | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Points covering every triangle, independent of how it is tessellated: (S,) owner triangle, (S, 3)
    positions, covering radius h. Deterministic.

    A triangle is split into n² similar sub-triangles, n = ⌈longest edge / step⌉, and each sub-triangle
    contributes its centroid. A point of a sub-triangle is within 2/3 of a median, hence within 2/3 of the
    sub-triangle's longest edge, of that centroid. Corners are never samples, so the k nearest samples come
    from about k different triangles.

    Args:
        tri_xyz: (F, 3, 3) triangle corners.
        step: the largest sub-triangle edge; default the lower quartile of the triangles' longest edges.
    """
    edges = np.linalg.norm(tri_xyz - np.roll(tri_xyz, 1, axis=1), axis=2)  # (F, 3)
    longest = edges.max(axis=1)
    step = max(float(np.quantile(longest, 0.25)) if step is None else float(step), 1e-12)
    levels = np.maximum(np.ceil(longest / step).astype(np.int64), 1)
    spacing = float((longest / levels).max()) * 2.0 / 3.0
    owners, points = [], []
    for n in np.unique(levels):
        faces = np.flatnonzero(levels == n)
        i, j = np.triu_indices(n)  # j >= i: cell (i, j - i) with a + b <= n - 1
        up = np.stack([i + 1 / 3, j - i + 1 / 3], axis=1)
        i, j = np.triu_indices(n - 1) if n > 1 else (np.zeros(0, np.int64), np.zeros(0, np.int64))
        down = np.stack([i + 2 / 3, j - i + 2 / 3], axis=1)
        ab = np.concatenate([up, down]) / n
        bary = np.stack([1.0 - ab[:, 0] - ab[:, 1], ab[:, 0], ab[:, 1]], axis=1)  # (G, 3)
        owners.append(np.repeat(faces, len(bary)))
        points.append(np.einsum("gk,fkd->fgd", bary, tri_xyz[faces]).reshape(-1, 3))
    return np.concatenate(owners), np.concatenate(points), spacing


class SurfaceIndex:
    """Exact closest-point queries on a fixed triangle mesh, optionally restricted to matching groups.

    Candidates are the triangles owning the k nearest of a set of sample points that covers every
    triangle with spacing h (each surface point lies within h of a sample of its own triangle). A
    triangle with no sample among the k nearest is at least d_k − h away, so the answer is certified
    once the best distance found is ≤ d_k − h; uncertified points retry with a larger k.

    Args:
        vertices: (V, 3) mesh vertices; triangles: (F, 3) indices.
        triangle_groups: (F,) int group of each triangle, or None. With groups, a query point only matches
            triangles of its own group (an eyelash vertex never lands on a lid).
    """

    def __init__(self, vertices: np.ndarray, triangles: np.ndarray, triangle_groups: np.ndarray | None = None):
        self.vertices = np.asarray(vertices, np.float64)
        self.triangles = np.asarray(triangles, np.int64)
        self._tri_xyz = self.vertices[self.triangles]  # (F, 3, 3)
        self._owner, samples, self._spacing = triangle_samples(self._tri_xyz)
        self._grouped = triangle_groups is not None
        if self._grouped:
            # Groups become a 4th coordinate far apart, so one tree answers every group and the
            # certification bound (d_k − h) also rules out other groups.
            self._group_gap = 4.0 * (float(np.ptp(self.vertices, axis=0).max()) + 1.0)
            self._triangle_groups = np.asarray(triangle_groups, np.int64)
            groups = self._triangle_groups[self._owner, None].astype(np.float64)
            samples = np.concatenate([samples, groups * self._group_gap], axis=1)
        self._tree = cKDTree(samples)

    @property
    def face_normals(self) -> np.ndarray:
        """(F, 3) unit normals of the indexed triangles."""
        return face_normals(self.vertices, self.triangles, unit=True)

    def query(
        self, points: np.ndarray, point_groups: np.ndarray | None = None, k_start: int = 16,
        k_max: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(N,) int64 triangle, (N, 3) float64 barycentrics and (N,) distance of the closest surface points.

        ``points`` is (N, 3); ``point_groups`` (N,) is required exactly when the index has groups. Points
        farther than the group gap from the mesh are not supported with groups. ``k_max`` caps the search: a
        point still uncertified with that many samples gets the closest of their triangles (near-closest; this
        bounds time and memory for points far from a coarse mesh, whose search would otherwise widen fourfold
        again and again).
        """
        points = np.asarray(points, np.float64)
        if (point_groups is not None) != self._grouped:
            raise ValueError("point_groups must be given exactly when the index has triangle groups")
        query = points
        if self._grouped:
            query = np.concatenate([points, np.asarray(point_groups, np.float64)[:, None] * self._group_gap], 1)
        n, n_samples = len(points), len(self._owner)
        best_tri = np.zeros(n, np.int64)
        best_bary = np.zeros((n, 3))
        best_dist = np.full(n, np.inf)
        todo = np.arange(n)
        k = min(k_start, n_samples)
        while len(todo):
            dk, nearest = self._tree.query(query[todo], k=k)
            dk, nearest = dk.reshape(len(todo), k), nearest.reshape(len(todo), k)
            valid = np.isfinite(dk)
            cand = self._owner[np.where(valid, nearest, 0)]
            # A triangle owns several neighbouring samples, so a point's k nearest name about k/2 distinct
            # triangles: each (point, triangle) pair is measured once, at its first place in the row (a repeat
            # stays at infinity, so argmin picks what it would have picked among the copies).
            order = np.argsort(cand, axis=1, kind="stable")
            ranked = np.take_along_axis(cand, order, axis=1)
            repeat = np.zeros(cand.shape, bool)
            np.put_along_axis(repeat, order[:, 1:], ranked[:, 1:] == ranked[:, :-1], axis=1)
            fresh = np.flatnonzero(~repeat.ravel())  # flat (row, slot) positions, row-major
            p = points[todo[fresh // k]]
            t = self._tri_xyz[cand.ravel()[fresh]]
            bary = closest_point_on_triangles(p, t[:, 0], t[:, 1], t[:, 2])
            dist = np.full(cand.shape, np.inf)
            dist.ravel()[fresh] = norm_rows(np.einsum("nk,nkd->nd", bary, t) - p)
            dist[~valid] = np.inf
            if self._grouped:  # a candidate of another group shows up only when its own group is exhausted
                dist[self._triangle_groups[cand] != np.asarray(point_groups)[todo, None]] = np.inf
            j = dist.argmin(axis=1)  # a repeat is never the first minimum, and slot 0 is never a repeat
            rows = np.arange(len(todo))
            slot = np.zeros(cand.size, np.int64)
            slot[fresh] = np.arange(len(fresh))
            best_tri[todo] = cand[rows, j]
            best_bary[todo] = bary[slot[rows * k + j]]
            best_dist[todo] = dist[rows, j]
            if k >= min(n_samples, k_max or n_samples):
                break
            certified = dist[rows, j] <= dk[:, -1] - self._spacing
            todo = todo[~certified]
            k = min(4 * k, n_samples, k_max or n_samples)
        return best_tri, best_bary, best_dist

    def points(self, triangle: np.ndarray, barycentrics: np.ndarray) -> np.ndarray:
        """(N, 3) positions of barycentric points on this mesh."""
        return np.einsum("nk,nkd->nd", barycentrics, self._tri_xyz[triangle])


def closest_points(
    points: np.ndarray,
    vertices: np.ndarray,
    triangles: np.ndarray,
    point_groups: np.ndarray | None = None,
    triangle_groups: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-off :meth:`SurfaceIndex.query`: (N,) triangle, (N, 3) barycentrics, (N,) distance."""
    return SurfaceIndex(vertices, triangles, triangle_groups).query(points, point_groups)
