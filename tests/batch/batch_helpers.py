"""Small synthetic heads and bad inputs for the batch tests (imported by conftest.py and the tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facerig.geometry.primitives import geodesic_sphere
from facerig.io.obj import write_obj as write_mesh_obj
from facerig.mesh import Mesh


def synthetic_head(seed: int, level: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """A head-proportioned ellipsoid (cm, Y up, face toward +Z) with a nose bump and per-seed shape noise."""
    vertices, faces = geodesic_sphere(2**level)  # 10 * 4**level + 2 vertices
    rng = np.random.default_rng(seed)
    nose = np.exp(-((vertices[:, 0] / 0.25) ** 2 + ((vertices[:, 1] + 0.05) / 0.3) ** 2)) * (vertices[:, 2] > 0)
    vertices = vertices * (1 + 0.02 * rng.standard_normal((len(vertices), 1)))
    vertices[:, 2] += 0.25 * nose
    return vertices * np.array([8.0, 11.0, 9.5]), faces


def write_obj(path: Path, vertices: np.ndarray, faces: np.ndarray) -> Path:
    return write_mesh_obj(Mesh.from_triangles(vertices, faces), path)


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
