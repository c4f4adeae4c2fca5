"""Small synthetic heads and bad inputs for the batch tests (imported by conftest.py and the tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def icosphere(level: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit icosphere: (V, 3) float64 vertices, (F, 3) int64 triangles; V = 10 * 4**level + 2."""
    t = (1 + 5**0.5) / 2
    vertices = [np.array(p, float) / np.linalg.norm(p) for p in (
        (-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t),
        (0, -1, -t), (0, 1, -t), (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1),
    )]
    faces = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2),
             (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5),
             (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    for _ in range(level):
        midpoints: dict[tuple[int, int], int] = {}

        def middle(a: int, b: int) -> int:
            key = (min(a, b), max(a, b))
            if key not in midpoints:
                point = vertices[a] + vertices[b]
                vertices.append(point / np.linalg.norm(point))
                midpoints[key] = len(vertices) - 1
            return midpoints[key]

        refined = []
        for a, b, c in faces:
            ab, bc, ca = middle(a, b), middle(b, c), middle(c, a)
            refined += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = refined
    return np.array(vertices), np.array(faces, np.int64)


def synthetic_head(seed: int, level: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """A head-proportioned ellipsoid (cm, Y up, face toward +Z) with a nose bump and per-seed shape noise."""
    vertices, faces = icosphere(level)
    rng = np.random.default_rng(seed)
    nose = np.exp(-((vertices[:, 0] / 0.25) ** 2 + ((vertices[:, 1] + 0.05) / 0.3) ** 2)) * (vertices[:, 2] > 0)
    vertices = vertices * (1 + 0.02 * rng.standard_normal((len(vertices), 1)))
    vertices[:, 2] += 0.25 * nose
    return vertices * np.array([8.0, 11.0, 9.5]), faces


def write_obj(path: Path, vertices: np.ndarray, faces: np.ndarray) -> Path:
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    lines += ["f " + " ".join(str(i + 1) for i in face) for face in faces]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def write_bad_inputs(folder: Path, heads_dir: Path) -> dict[str, str]:
    """The five bad inputs of the issue; returns {file name: words its failure reason must contain}."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.obj").write_bytes(b"")
    (folder / "truncated.obj").write_bytes((heads_dir / "suzanne.obj").read_bytes()[:20_000])
    (folder / "nan_vertices.obj").write_text("v 0 0 0\nv nan 1 0\nv 0 1 1\nv 1 0 1\nf 1 2 3\nf 1 3 4\n")
    (folder / "picture.obj").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    (folder / "no_faces.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    return {
        "empty.obj": "file is empty",
        "truncated.obj": "no faces",
        "nan_vertices.obj": "NaN",
        "picture.obj": "PNG image",
        "no_faces.obj": "no faces",
    }
