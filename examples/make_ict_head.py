"""Regenerate examples/ict_head.obj: the ICT-FaceKit neutral re-meshed to about 4,000 vertices, all parts kept.

    python examples/make_ict_head.py PATH/TO/ICT-FaceKit.tar.xz   (or a FaceXModel folder)

ICT-FaceKit is MIT-licensed (LICENSES/ICT-FaceKit.txt). The re-meshed head is in quads where triangle pairs
allow it, so the example exercises the quad path of every reader and exporter.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from facerig.io.obj import write_obj
from facerig.mesh import Mesh
from facerig.trainer.ict import load_ict
from facerig.geometry.remesh import RemeshOptions, remesh

OUTPUT = Path(__file__).resolve().parent / "ict_head.obj"


def main(source: str) -> None:
    ict = load_ict(source)
    result = remesh(ict.neutral, ict.triangles, RemeshOptions(budget=4000, quads=True), np.random.default_rng(0))
    mesh = Mesh(result.vertices, result.face_vertex_counts, result.face_vertex_indices, name="ict_head")
    write_obj(mesh, OUTPUT)
    print(f"{OUTPUT}: {mesh.n_vertices} vertices, {mesh.n_polygons} polygons, {mesh.n_components} components")


if __name__ == "__main__":
    main(sys.argv[1])
