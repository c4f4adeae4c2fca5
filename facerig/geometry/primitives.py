"""Analytic meshes for tests, benchmarks and examples: shapes whose geometry is known in closed form."""

from __future__ import annotations

import numpy as np


def geodesic_sphere(frequency: int, radius: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Icosahedron with each face split into frequency^2 triangles, projected to a sphere: 10 f^2 + 2 vertices."""
    t = (1 + 5**0.5) / 2
    base = np.array([[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t],
                     [0, -1, -t], [0, 1, -t], [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]], float)  # fmt: skip
    faces = np.array([[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4],
                      [11, 10, 2], [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8],
                      [3, 8, 9], [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]])  # fmt: skip
    n = frequency
    i, j = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    keep = i + j <= n
    i, j = i[keep], j[keep]
    local = np.full((n + 1, n + 1), -1)
    local[i, j] = np.arange(len(i))
    a, b = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    up, down = a + b < n, a + b < n - 1
    patch = np.concatenate([
        np.stack([local[a[up], b[up]], local[a[up] + 1, b[up]], local[a[up], b[up] + 1]], axis=1),
        np.stack([local[a[down] + 1, b[down]], local[a[down] + 1, b[down] + 1], local[a[down], b[down] + 1]], axis=1),
    ])  # fmt: skip
    weights = np.stack([n - i - j, i, j], axis=1) / n
    points = np.einsum("pk,fkd->fpd", weights, base[faces]).reshape(-1, 3)
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    triangles = (patch[None] + (np.arange(20) * len(i))[:, None, None]).reshape(-1, 3)
    # Points on shared icosahedron edges appear once per face: merge them.
    _, first, inverse = np.unique(np.round(points, 9), axis=0, return_index=True, return_inverse=True)
    return radius * points[first], inverse.ravel()[triangles]
