"""Blend shapes read with the mesh (facerig.io.load_blend_shapes): glTF morph targets turned by their node's
transform, USD blend shapes with pointIndices, and the bound on shapes × vertices."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from facerig.errors import MeshLoadError
from facerig.exporters import export_rig
from facerig.io import load_blend_shapes, load_mesh


def test_morph_targets_of_the_robot_head_get_its_node_transform(heads_dir):
    """RobotExpressive's Head node is rotated ~-91° about X: the loader's deltas are the file's offsets turned
    by it, primitive by primitive (three primitives share the three targets)."""
    import pygltflib
    from scipy.spatial.transform import Rotation

    path = heads_dir / "robot_expressive.glb"
    shapes = load_blend_shapes(path, select="Head")
    assert shapes.names == ("Angry", "Surprised", "Sad") and shapes.deltas.shape == (3, shapes.mesh.n_vertices, 3)
    doc = pygltflib.GLTF2().load(str(path))
    index = next(i for i, n in enumerate(doc.nodes) if n.name == "Head" and n.mesh is not None)
    node = doc.nodes[index]
    parent = {child: i for i, n in enumerate(doc.nodes) for child in (n.children or [])}
    linear = np.eye(3)
    while index is not None:  # the linear part of the world transform, by scipy's quaternion code
        n = doc.nodes[index]
        local = Rotation.from_quat(n.rotation or [0, 0, 0, 1]).as_matrix() @ np.diag(n.scale or [1, 1, 1])
        linear = local @ linear
        index = parent.get(index)
    blob = doc.binary_blob()
    start = 0
    for primitive in doc.meshes[node.mesh].primitives:
        count = doc.accessors[primitive.attributes.POSITION].count
        for k, target in enumerate(primitive.targets):
            accessor = doc.accessors[target["POSITION"]]
            view = doc.bufferViews[accessor.bufferView]
            offset = (view.byteOffset or 0) + (accessor.byteOffset or 0)
            raw = np.frombuffer(blob, np.float32, count * 3, offset).reshape(count, 3)
            np.testing.assert_allclose(shapes.deltas[k, start : start + count], raw @ linear.T, atol=1e-6)
        start += count
    assert start == shapes.mesh.n_vertices and np.abs(shapes.deltas).max() > 0.01


@pytest.mark.parametrize("suffix", [".usda", ".glb"])
def test_sparse_shapes_read_back_on_their_own_vertices(synthetic_rig, tmp_path, suffix):
    """Shapes that move a few vertices are written sparse (USD pointIndices, glTF sparse accessors)."""
    deltas = np.zeros_like(synthetic_rig.deltas)
    deltas[:, 10:20] = synthetic_rig.deltas[:, 10:20]
    rig = replace(synthetic_rig, deltas=deltas)
    shapes = load_blend_shapes(export_rig(rig, tmp_path / f"sparse{suffix}"))
    assert shapes.names == rig.shape_names
    np.testing.assert_allclose(shapes.deltas, deltas, atol=1e-6)
    np.testing.assert_array_equal(shapes.mesh.vertices, load_mesh(tmp_path / f"sparse{suffix}").vertices)


def test_shapes_times_vertices_are_bounded_before_allocating(synthetic_rig, tmp_path, monkeypatch):
    import facerig.io._common

    path = export_rig(synthetic_rig, tmp_path / "rig.glb")
    monkeypatch.setattr(facerig.io._common, "MAX_SHAPE_OFFSETS", 95 * 507 - 1)
    with pytest.raises(MeshLoadError, match=r"95 blend shapes × 507 vertices is over the limit of 48,164 offsets"):
        load_blend_shapes(path)
