"""glTF export: read back with pygltflib (accessors decoded here, sparse included), checked by Khronos' validator."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pygltflib
import pytest
from scipy.spatial import cKDTree

from facerig.exporters import export_rig
from facerig.mesh import Mesh
from facerig.rig import Rig

N_COMPONENTS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}
DTYPES = {5121: np.uint8, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}


# ---------------------------------------------------------------------------------------------- reading
def load(path: Path) -> tuple[pygltflib.GLTF2, bytes]:
    """The document and its binary buffer (GLB chunk, or the external .bin it names)."""
    gltf = pygltflib.GLTF2().load(str(path))
    if path.suffix == ".glb":
        return gltf, gltf.binary_blob()
    return gltf, (path.parent / gltf.buffers[0].uri).read_bytes()


def _view_array(gltf: pygltflib.GLTF2, blob: bytes, view_index: int, offset: int, dtype, count: int) -> np.ndarray:
    view = gltf.bufferViews[view_index]
    assert view.byteStride in (None, 0)  # tightly packed: the writer never interleaves
    start = (view.byteOffset or 0) + (offset or 0)
    assert start + count * np.dtype(dtype).itemsize <= (view.byteOffset or 0) + view.byteLength
    return np.frombuffer(blob, dtype, count, start)


def read_accessor(gltf: pygltflib.GLTF2, blob: bytes, index: int) -> np.ndarray:
    """(count, components) values of an accessor, with sparse substitution applied."""
    accessor = gltf.accessors[index]
    k, dtype = N_COMPONENTS[accessor.type], DTYPES[accessor.componentType]
    if accessor.bufferView is None:
        values = np.zeros((accessor.count, k), dtype)
    else:
        values = _view_array(gltf, blob, accessor.bufferView, accessor.byteOffset, dtype, accessor.count * k)
        values = values.reshape(accessor.count, k).copy()
    if accessor.sparse is not None:
        sparse = accessor.sparse
        indices, sparse_values = sparse.indices, sparse.values
        rows = _view_array(
            gltf, blob, indices.bufferView, indices.byteOffset, DTYPES[indices.componentType], sparse.count
        )
        assert (np.diff(rows.astype(np.int64)) > 0).all() and rows.max() < accessor.count
        substituted = _view_array(gltf, blob, sparse_values.bufferView, sparse_values.byteOffset, dtype, sparse.count * k)
        values[rows] = substituted.reshape(-1, k)
    return values


def accessor_kind(accessor: pygltflib.Accessor) -> str:
    if accessor.sparse is not None:
        return "sparse"
    return "dense" if accessor.bufferView is not None else "zero"


def assert_valid(report: dict) -> None:
    issues = report["issues"]
    problems = [m for m in issues["messages"] if m["severity"] <= 1]
    assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, problems[:5]


# ---------------------------------------------------------------------------------------------- checks
def check_round_trip(path: Path, rig: Rig, to_gltf: np.ndarray) -> dict[str, int]:
    """Every glTF vertex is a rig vertex with one of its UVs, and every morph offset its delta (within 1e-5).

    ``to_gltf`` is the (3, 3) map from rig units/axes to glTF's; the correspondence glTF vertex -> rig
    vertex is recovered from positions alone (coincident rig vertices: any of them may match). Returns the
    count of morph accessors of each kind.
    """
    gltf, blob = load(path)
    (mesh,) = gltf.meshes
    assert mesh.extras["targetNames"] == list(rig.shape_names)
    assert mesh.weights == [0.0] * rig.n_shapes
    assert len(mesh.primitives) == len(set(rig.neutral.polygon_groups.tolist()))
    from_gltf = np.linalg.inv(to_gltf)
    tree = cKDTree(rig.neutral.vertices)
    neutral = rig.neutral
    # The UVs each rig vertex has at its polygon corners, v flipped to glTF's top-left origin.
    uvs_of_vertex: dict[int, list] = {}
    for vertex, (u, v) in zip(neutral.face_vertex_indices.tolist(), neutral.uvs[neutral.uv_indices].tolist()):
        uvs_of_vertex.setdefault(vertex, []).append((u, 1.0 - v))
    covered, kinds = set(), {"dense": 0, "sparse": 0, "zero": 0}
    for primitive in mesh.primitives:
        assert primitive.mode == pygltflib.TRIANGLES
        position = gltf.accessors[primitive.attributes.POSITION]
        points = read_accessor(gltf, blob, primitive.attributes.POSITION)
        assert position.min == points.min(axis=0).tolist() and position.max == points.max(axis=0).tolist()
        local = points.astype(np.float64) @ from_gltf.T  # back to rig units and axes
        distances, _ = tree.query(local)
        assert distances.max() < 1e-4
        candidates = tree.query_ball_point(local, r=1e-4)
        covered.update(c for group in candidates for c in group)
        uvs = read_accessor(gltf, blob, primitive.attributes.TEXCOORD_0)
        uv_error = max(
            min(np.abs(np.array(uvs_of_vertex[c]) - uv).max(axis=1).min() for c in group)
            for group, uv in zip(candidates, uvs)
        )
        assert uv_error < 1e-6
        triangles = read_accessor(gltf, blob, primitive.indices).reshape(-1, 3)
        assert triangles.max() < len(points)

        assert len(primitive.targets) == rig.n_shapes
        for k, target in enumerate(primitive.targets):
            accessor = gltf.accessors[target["POSITION"]]
            kinds[accessor_kind(accessor)] += 1
            offsets = read_accessor(gltf, blob, target["POSITION"])
            assert accessor.count == len(points)
            assert accessor.min == offsets.min(axis=0).tolist() and accessor.max == offsets.max(axis=0).tolist()
            local_offsets = offsets.astype(np.float64) @ from_gltf.T
            error = max(
                np.abs(rig.deltas[k][group] - local_offsets[i]).max(axis=1).min()
                for i, group in enumerate(candidates)
            )
            assert error < 1e-5, f"{rig.shape_names[k]}: offset off by {error}"
    assert covered == set(range(rig.neutral.n_vertices))
    return kinds


def test_glb_round_trip_full_head(tmp_path: Path, full_rig: Rig, gltf_validator) -> None:
    path = export_rig(full_rig, tmp_path / "head.glb")
    assert path.read_bytes()[:4] == b"glTF"
    report = gltf_validator(path)
    assert_valid(report)
    assert report["info"]["hasMorphTargets"] and report["info"]["drawCallCount"] == 12
    # ICT is Y-up centimetres: glTF gets the same axes in metres.
    kinds = check_round_trip(path, full_rig, np.eye(3) * 0.01)
    # Corrugator is zero everywhere; localized shapes are sparse; the jaw moves the whole face primitive.
    assert kinds["zero"] >= 12 and kinds["sparse"] > 0 and kinds["dense"] > 0, kinds

    gltf, _ = load(path)
    assert [m.name for m in gltf.materials] == list(full_rig.neutral.group_names)
    record = gltf.meshes[0].extras["facerig"]
    assert record["correctives"] == {
        "JawDrop_LeftLipCornerPuller": {"drivers": ["JawDrop", "LeftLipCornerPuller"], "rule": "product"}
    }
    matrix = (np.eye(3) * 0.01).tolist()
    assert record["conversion"] == {"from_up_axis": "Y", "from_meters_per_unit": 0.01, "matrix": matrix}
    sidecar = json.loads((tmp_path / "head.glb.facerig.json").read_text())
    assert sidecar["correctives"] == record["correctives"] and sidecar["format"] == "glb"


def test_gltf_writes_json_and_bin_with_the_same_content(tmp_path: Path, small_rig: Rig, gltf_validator) -> None:
    gltf_path = export_rig(small_rig, tmp_path / "eye.gltf")
    glb_path = export_rig(small_rig, tmp_path / "eye.glb")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "eye.bin", "eye.glb", "eye.glb.facerig.json", "eye.gltf", "eye.gltf.facerig.json"
    ]
    assert_valid(gltf_validator(gltf_path))
    gltf, blob = load(gltf_path)
    assert gltf.buffers[0].uri == "eye.bin"
    glb, glb_blob = load(glb_path)
    assert len(gltf.accessors) == len(glb.accessors)
    for i in range(len(gltf.accessors)):
        np.testing.assert_array_equal(read_accessor(gltf, blob, i), read_accessor(glb, glb_blob, i))
    check_round_trip(gltf_path, small_rig, np.eye(3) * 0.1)  # the 4.3-unit eye crop reads as decimetres


def test_z_up_millimetres_become_y_up_metres(tmp_path: Path, small_rig: Rig, gltf_validator) -> None:
    """The same head stated as Z-up millimetres lands where the Y-up centimetre one does."""
    y_up = Rig(replace(small_rig.neutral, up_axis="Y", meters_per_unit=0.01), small_rig.shape_names, small_rig.deltas)
    # (x, y, z) Y-up -> (x, -z, y) Z-up keeps the face's front (+Z) pointing at -Y, as Blender's convention.
    to_z_up = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]]) * 10
    z_vertices = small_rig.neutral.vertices @ to_z_up.T
    z_mesh = replace(small_rig.neutral, vertices=z_vertices, up_axis="Z", meters_per_unit=0.001)
    z_up = Rig(z_mesh, small_rig.shape_names, small_rig.deltas @ to_z_up.T.astype(np.float32))
    a = export_rig(y_up, tmp_path / "y.glb")
    b = export_rig(z_up, tmp_path / "z.glb")
    assert_valid(gltf_validator(b))
    (ga, blob_a), (gb, blob_b) = load(a), load(b)
    for pa, pb in zip(ga.meshes[0].primitives, gb.meshes[0].primitives):
        points_a = read_accessor(ga, blob_a, pa.attributes.POSITION)
        np.testing.assert_allclose(read_accessor(gb, blob_b, pb.attributes.POSITION), points_a, atol=1e-7)
    assert gb.meshes[0].extras["facerig"]["conversion"]["from_up_axis"] == "Z"
    check_round_trip(b, z_up, np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]]) * 0.001)


def test_preview_animation_steps_through_every_shape(tmp_path: Path, small_rig: Rig, gltf_validator) -> None:
    path = export_rig(small_rig, tmp_path / "eye.glb", preview_animation=True)
    assert_valid(gltf_validator(path))
    gltf, blob = load(path)
    (animation,) = gltf.animations
    (channel,) = animation.channels
    assert channel.target.path == "weights" and channel.target.node == 0
    sampler = animation.samplers[channel.sampler]
    assert sampler.interpolation == "STEP"
    n = small_rig.n_shapes
    times = read_accessor(gltf, blob, sampler.input)[:, 0]
    np.testing.assert_allclose(times, np.arange(n + 1) / 24.0, atol=1e-6)
    weights = read_accessor(gltf, blob, sampler.output).reshape(n + 1, n)
    assert (weights[0] == 0).all()
    names = list(small_rig.shape_names)
    corrective = names.index("JawDrop_LeftLipCornerPuller")
    for k in range(n):
        assert weights[k + 1, k] == 1.0
        off_diagonal = np.delete(weights[k + 1], [k, corrective])
        if names[k] != "JawDrop_LeftLipCornerPuller":
            assert (off_diagonal == 0).all(), names[k]
    # The corrective's frame shows its drivers too: the combined pose it corrects.
    frame = weights[corrective + 1]
    assert frame[names.index("JawDrop")] == frame[names.index("LeftLipCornerPuller")] == 1


@pytest.mark.parametrize(("rows", "columns", "component_type"), [(13107, 5, 5123), (16384, 4, 5125)])
def test_index_type_at_the_16_bit_boundary(
    tmp_path: Path, rows: int, columns: int, component_type: int, gltf_validator
) -> None:
    """u16 indices up to 65,535 vertices (index 65,535 is the primitive-restart value), u32 from 65,536."""
    r, c = np.meshgrid(np.arange(rows - 1), np.arange(columns - 1), indexing="ij")
    first = (r * columns + c).ravel()
    quads = np.stack([first, first + 1, first + columns + 1, first + columns], axis=1)
    grid = np.stack(np.meshgrid(np.arange(columns), np.arange(rows), indexing="xy"), -1).reshape(-1, 2) * 0.01
    vertices = np.column_stack([grid, np.zeros(len(grid))])
    mesh = Mesh(vertices, np.full(len(quads), 4), quads.ravel(), meters_per_unit=1.0)
    delta = np.zeros((1, mesh.n_vertices, 3), np.float32)
    delta[0, -1] = [0.0, 0.0, 0.5]  # one moving vertex: the one with the highest index
    path = export_rig(Rig(mesh, ("Lift",), delta), tmp_path / "grid.glb")
    assert_valid(gltf_validator(path))
    gltf, blob = load(path)
    (primitive,) = gltf.meshes[0].primitives
    assert gltf.accessors[primitive.attributes.POSITION].count == rows * columns
    assert gltf.accessors[primitive.indices].componentType == component_type
    target = primitive.targets[0]["POSITION"]
    assert gltf.accessors[target].sparse.count == 1
    offsets = read_accessor(gltf, blob, target)
    (moved,) = np.flatnonzero(offsets.any(axis=1))
    np.testing.assert_allclose(offsets[moved], [0.0, 0.0, 0.5])
    points = read_accessor(gltf, blob, primitive.attributes.POSITION)
    np.testing.assert_allclose(points[moved], mesh.vertices[-1], atol=1e-6)
