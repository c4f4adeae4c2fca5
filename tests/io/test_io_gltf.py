"""glTF/GLB reader: the RobotExpressive character (node hierarchy, skins, morph targets) against a manual
transform composition, and small documents written here for strips, mirroring, instancing, sparse
accessors, normalized UVs, data URIs, external buffers and GLB."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import numpy as np
import pygltflib
import pytest
from scipy.spatial.transform import Rotation

from facerig.io import load_mesh
from facerig.io.gltf import load_gltf

# ------------------------------------------------------------------------------------------ RobotExpressive


@pytest.fixture(scope="module")
def robot_path(heads_dir: Path) -> Path:
    return heads_dir / "robot_expressive.glb"


@pytest.fixture(scope="module")
def robot_doc(robot_path: Path) -> pygltflib.GLTF2:
    return pygltflib.GLTF2().load(str(robot_path))


def trs_matrix(node: pygltflib.Node) -> np.ndarray:
    """Local matrix by scipy's quaternion code (independent of the reader's own)."""
    m = np.eye(4)
    if node.matrix:
        return np.array(node.matrix, float).reshape(4, 4).T
    if node.rotation:
        m[:3, :3] = Rotation.from_quat(node.rotation).as_matrix()
    if node.scale:
        m[:3, :3] = m[:3, :3] @ np.diag(node.scale)
    if node.translation:
        m[:3, 3] = node.translation
    return m


def world_matrix(doc: pygltflib.GLTF2, node_index: int) -> np.ndarray:
    parent = {c: i for i, n in enumerate(doc.nodes) for c in (n.children or [])}
    chain = [node_index]
    while chain[-1] in parent:
        chain.append(parent[chain[-1]])
    world = np.eye(4)
    for index in reversed(chain):
        world = world @ trs_matrix(doc.nodes[index])
    return world


def raw_accessor(doc: pygltflib.GLTF2, index: int) -> np.ndarray:
    accessor = doc.accessors[index]
    view = doc.bufferViews[accessor.bufferView]
    dtype = {5126: np.float32, 5125: np.uint32, 5123: np.uint16}[accessor.componentType]
    width = {"VEC3": 3, "SCALAR": 1}[accessor.type]
    assert view.byteStride in (None, width * np.dtype(dtype).itemsize)
    start = (view.byteOffset or 0) + (accessor.byteOffset or 0)
    return np.frombuffer(doc.binary_blob(), dtype, accessor.count * width, start).reshape(accessor.count, width)


def mesh_nodes(doc: pygltflib.GLTF2) -> list[int]:
    """Mesh nodes of the default scene in depth-first order."""
    out, stack = [], list(reversed(doc.scenes[doc.scene or 0].nodes))
    while stack:
        index = stack.pop()
        if doc.nodes[index].mesh is not None:
            out.append(index)
        stack.extend(reversed(doc.nodes[index].children or []))
    return out


def test_robot_loads_every_primitive_of_the_scene(robot_path: Path, robot_doc: pygltflib.GLTF2) -> None:
    mesh = load_mesh(robot_path)
    nodes = mesh_nodes(robot_doc)
    primitives = [
        (robot_doc.meshes[robot_doc.nodes[n].mesh], p)
        for n in nodes
        for p in range(len(robot_doc.meshes[robot_doc.nodes[n].mesh].primitives))
    ]
    assert mesh.group_names == tuple(f"{m.name}.{p}" for m, p in primitives)
    assert mesh.n_vertices == sum(robot_doc.accessors[m.primitives[p].attributes.POSITION].count for m, p in primitives)
    triangles = [raw_accessor(robot_doc, m.primitives[p].indices).reshape(-1, 3) for m, p in primitives]
    repeated = sum(int(((t[:, 0] == t[:, 1]) | (t[:, 1] == t[:, 2]) | (t[:, 0] == t[:, 2])).sum()) for t in triangles)
    assert repeated > 0  # the file has a few; they are dropped and reported
    assert mesh.warnings == (f"dropped {repeated} degenerate faces ({repeated} with a repeated vertex)",)
    assert mesh.n_polygons == sum(len(t) for t in triangles) - repeated
    assert (mesh.face_vertex_counts == 3).all()
    assert mesh.up_axis == "Y" and mesh.meters_per_unit == 1.0
    assert mesh.uvs is None  # the robot has no TEXCOORD_0
    # Standing on the ground, Y-up, about 4.4 units tall once node transforms are applied.
    assert mesh.vertices[:, 1].min() == pytest.approx(0.0, abs=0.05)
    assert 4.0 < mesh.vertices[:, 1].max() < 5.0


def test_robot_head_primitive_matches_manual_node_composition(robot_path: Path, robot_doc: pygltflib.GLTF2) -> None:
    mesh = load_mesh(robot_path)
    head_node = next(i for i in mesh_nodes(robot_doc) if robot_doc.meshes[robot_doc.nodes[i].mesh].name == "Head")
    head_mesh = robot_doc.meshes[robot_doc.nodes[head_node].mesh]
    world = world_matrix(robot_doc, head_node)
    group = mesh.group_names.index("Head.1")
    primitive = head_mesh.primitives[1]
    positions = raw_accessor(robot_doc, primitive.attributes.POSITION).astype(np.float64)
    expected = positions @ world[:3, :3].T + world[:3, 3]
    corners = mesh.face_vertex_indices[np.repeat(mesh.polygon_groups == group, mesh.face_vertex_counts)]
    first = int(corners.min())
    np.testing.assert_allclose(mesh.vertices[first : first + len(positions)], expected, rtol=0, atol=1e-9)
    indices = raw_accessor(robot_doc, primitive.indices).reshape(-1).astype(np.int64)
    np.testing.assert_array_equal(corners - first, indices)  # positive-determinant chain: winding kept
    # The transform matters: the stored positions are in centimetre-scale bone space.
    assert not np.allclose(positions, expected, atol=1e-3)


def test_robot_select_head_gives_the_spec_head(robot_path: Path) -> None:
    head = load_mesh(robot_path, select="Head")
    full = load_mesh(robot_path)
    assert head.n_vertices == 1_742  # ../shared/data/README.md: 1,742 vertices over 3 primitives
    assert head.group_names == ("Head.0", "Head.1", "Head.2")
    start = sum(
        int(np.ptp(full.face_vertex_indices[np.repeat(full.polygon_groups == g, full.face_vertex_counts)]) + 1)
        for g in range(full.group_names.index("Head.0"))
    )
    np.testing.assert_array_equal(head.vertices, full.vertices[start : start + 1_742])
    # The head sits on top of the robot.
    assert head.vertices[:, 1].min() > 0.5 * full.vertices[:, 1].max()


# ------------------------------------------------------------------------------------------ written here


class DocumentBuilder:
    """Builds a glTF document and one binary buffer from numpy arrays."""

    def __init__(self) -> None:
        self.blob = bytearray()
        self.doc: dict = {"asset": {"version": "2.0"}, "buffers": [], "bufferViews": [], "accessors": [],
                          "meshes": [], "nodes": [], "scenes": [{"nodes": []}], "scene": 0}  # fmt: skip

    def accessor(self, array: np.ndarray, component_type: int, kind: str, **extra) -> int:
        data = np.ascontiguousarray(array).tobytes()
        self.blob += b"\0" * (-len(self.blob) % 4)
        self.doc["bufferViews"].append({"buffer": 0, "byteOffset": len(self.blob), "byteLength": len(data)})
        self.blob += data
        self.doc["accessors"].append(
            {"bufferView": len(self.doc["bufferViews"]) - 1, "componentType": component_type,
             "count": len(array), "type": kind, **extra}
        )  # fmt: skip
        return len(self.doc["accessors"]) - 1

    def positions(self, points: np.ndarray) -> int:
        points = np.asarray(points, np.float32)
        return self.accessor(points, 5126, "VEC3", min=points.min(0).tolist(), max=points.max(0).tolist())

    def mesh(self, name: str, primitives: list[dict]) -> int:
        self.doc["meshes"].append({"name": name, "primitives": primitives})
        return len(self.doc["meshes"]) - 1

    def node(self, root: bool = True, **fields) -> int:
        self.doc["nodes"].append(fields)
        index = len(self.doc["nodes"]) - 1
        if root:
            self.doc["scenes"][0]["nodes"].append(index)
        return index

    def gltf(self, path: Path) -> Path:
        doc = json.loads(json.dumps(self.doc))
        uri = "data:application/octet-stream;base64," + base64.b64encode(bytes(self.blob)).decode()
        doc["buffers"] = [{"uri": uri, "byteLength": len(self.blob)}]
        path.write_text(json.dumps(doc))
        return path

    def gltf_external(self, path: Path, bin_name: str) -> Path:
        doc = json.loads(json.dumps(self.doc))
        (path.parent / bin_name).write_bytes(bytes(self.blob))
        doc["buffers"] = [{"uri": bin_name, "byteLength": len(self.blob)}]
        path.write_text(json.dumps(doc))
        return path

    def glb(self, path: Path) -> Path:
        doc = json.loads(json.dumps(self.doc))
        doc["buffers"] = [{"byteLength": len(self.blob)}]
        text = json.dumps(doc).encode()
        text += b" " * (-len(text) % 4)
        blob = bytes(self.blob) + b"\0" * (-len(self.blob) % 4)
        chunks = struct.pack("<II", len(text), 0x4E4F534A) + text + struct.pack("<II", len(blob), 0x004E4942) + blob
        path.write_bytes(struct.pack("<4sII", b"glTF", 2, 12 + len(chunks)) + chunks)
        return path


QUAD = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float32)
QUAD_TRIS = np.array([0, 1, 2, 0, 2, 3], np.uint16)


@pytest.fixture
def scene() -> DocumentBuilder:
    """Parent (matrix) > child (TRS) with an indexed, textured quad; a mirrored root with a strip and
    non-indexed triangles; a points primitive that is skipped."""
    b = DocumentBuilder()
    uv = QUAD[:, :2]
    quad = b.mesh("quad", [{
        "attributes": {"POSITION": b.positions(QUAD), "TEXCOORD_0": b.accessor(uv, 5126, "VEC2")},
        "indices": b.accessor(QUAD_TRIS, 5123, "SCALAR"),
    }])  # fmt: skip
    strip_points = np.array([[0, 0, 0], [0, 1, 0], [1, 0, 0], [1, 1, 0], [2, 0, 0]], np.float32)
    loose = np.array([[0, 0, 1], [1, 0, 1], [0, 1, 1]], np.float32)
    strip_uv = np.array([[0, 0], [0, 65535], [65535, 0], [65535, 65535], [0, 0]], np.uint16)
    loose_uv = np.zeros((3, 2), np.float32)
    other = b.mesh("other", [
        {"attributes": {"POSITION": b.positions(strip_points),
                        "TEXCOORD_0": b.accessor(strip_uv, 5123, "VEC2", normalized=True)}, "mode": 5},
        {"attributes": {"POSITION": b.positions(loose), "TEXCOORD_0": b.accessor(loose_uv, 5126, "VEC2")}},
        {"attributes": {"POSITION": b.positions(loose)}, "mode": 0},
    ])  # fmt: skip
    child = b.node(root=False, name="child", mesh=quad, translation=[0, 0, 5],
                   rotation=Rotation.from_euler("z", 90, degrees=True).as_quat().tolist(), scale=[2, 2, 2])  # fmt: skip
    parent_matrix = np.eye(4)
    parent_matrix[:3, 3] = [10, 0, 0]
    b.node(name="parent", children=[child], matrix=parent_matrix.T.reshape(-1).tolist())
    b.node(name="mirror", mesh=other, scale=[-1, 1, 1])
    return b


def check_scene(mesh) -> None:
    rot = Rotation.from_euler("z", 90, degrees=True).as_matrix()
    quad_world = (QUAD @ (2 * rot).T) + [10, 0, 5]
    np.testing.assert_allclose(mesh.vertices[:4], quad_world, atol=1e-6)
    np.testing.assert_array_equal(mesh.face_vertex_indices[:6], QUAD_TRIS)
    # Mirrored node: x negated, every triangle's winding reversed to stay outward-facing.
    np.testing.assert_allclose(mesh.vertices[4:9, 0], [0, 0, -1, -1, -2])
    strip = [[0, 1, 2], [1, 3, 2], [2, 3, 4]]  # glTF: {v_i, v_(i+1+i%2), v_(i+2-i%2)}
    expected_strip = [[a, c, b] for a, b, c in strip]
    np.testing.assert_array_equal(mesh.face_vertex_indices[6:15].reshape(-1, 3) - 4, expected_strip)
    np.testing.assert_array_equal(mesh.face_vertex_indices[15:18] - 9, [0, 2, 1])  # non-indexed, mirrored
    assert mesh.group_names == ("quad.0", "other.0", "other.1")
    np.testing.assert_array_equal(mesh.polygon_groups, [0, 0, 1, 1, 1, 2])
    assert mesh.n_vertices == 12  # the points primitive is not included
    assert mesh.warnings == ("skipped primitive other.2: mode 0 is points or lines",)
    # UVs: float, and normalized uint16 (65535 -> 1.0).
    np.testing.assert_array_equal(mesh.uvs[:4], QUAD[:, :2])
    np.testing.assert_array_equal(mesh.uvs[4:9], [[0, 0], [0, 1], [1, 0], [1, 1], [0, 0]])
    np.testing.assert_array_equal(mesh.uv_indices, mesh.face_vertex_indices)
    # The normal of the mirrored non-indexed triangle still points +Z after mirroring.
    a, b, c = mesh.vertices[mesh.face_vertex_indices[15:18]]
    assert np.cross(b - a, c - a)[2] > 0


def test_gltf_with_data_uri(tmp_path: Path, scene: DocumentBuilder) -> None:
    check_scene(load_mesh(scene.gltf(tmp_path / "scene.gltf")))


def test_glb_and_external_buffer_read_the_same(tmp_path: Path, scene: DocumentBuilder) -> None:
    glb = load_mesh(scene.glb(tmp_path / "scene.glb"))
    external = load_mesh(scene.gltf_external(tmp_path / "ext.gltf", "ext.bin"))
    check_scene(glb)
    check_scene(external)
    from_bytes = load_gltf((tmp_path / "scene.glb").read_bytes())
    assert glb.content_hash == external.content_hash == from_bytes.content_hash


def test_select_keeps_subtree_by_node_or_ancestor_name(tmp_path: Path, scene: DocumentBuilder) -> None:
    path = scene.gltf(tmp_path / "scene.gltf")
    by_ancestor = load_mesh(path, select="parent")  # the mesh sits on "child", below "parent"
    assert by_ancestor.group_names == ("quad.0",) and by_ancestor.n_vertices == 4
    assert load_mesh(path, select="mirr").group_names == ("other.0", "other.1")


def test_instanced_mesh_and_sparse_positions(tmp_path: Path) -> None:
    b = DocumentBuilder()
    positions = b.positions(QUAD)
    # Sparse accessor: same base positions with vertex 2 moved to z = 3.
    sparse_rows = b.accessor(np.array([2], np.uint16), 5123, "SCALAR")
    sparse_values = b.accessor(np.array([[1, 1, 3]], np.float32), 5126, "VEC3")
    view = b.doc["accessors"][positions]["bufferView"]
    b.doc["accessors"].append({
        "bufferView": view, "componentType": 5126, "count": 4, "type": "VEC3",
        "sparse": {"count": 1,
                   "indices": {"bufferView": b.doc["accessors"][sparse_rows]["bufferView"], "componentType": 5123},
                   "values": {"bufferView": b.doc["accessors"][sparse_values]["bufferView"]}},
    })  # fmt: skip
    bent = len(b.doc["accessors"]) - 1
    indices = b.accessor(QUAD_TRIS, 5123, "SCALAR")
    quad = b.mesh("quad", [{"attributes": {"POSITION": bent}, "indices": indices}])
    b.node(name="first", mesh=quad)
    b.node(name="second", mesh=quad, translation=[0, 0, 10])
    mesh = load_mesh(b.gltf(tmp_path / "inst.gltf"))
    assert mesh.group_names == ("quad.0", "quad.0@second")
    expected = QUAD.astype(float).copy()
    expected[2, 2] = 3
    np.testing.assert_array_equal(mesh.vertices[:4], expected)
    np.testing.assert_array_equal(mesh.vertices[4:], expected + [0, 0, 10])
    np.testing.assert_array_equal(mesh.face_vertex_indices, np.r_[QUAD_TRIS, QUAD_TRIS + 4])


def test_document_without_scenes_uses_root_nodes(tmp_path: Path) -> None:
    b = DocumentBuilder()
    indices = b.accessor(QUAD_TRIS, 5123, "SCALAR")
    quad = b.mesh("quad", [{"attributes": {"POSITION": b.positions(QUAD)}, "indices": indices}])
    b.node(mesh=quad, translation=[1, 2, 3])
    del b.doc["scenes"], b.doc["scene"]
    mesh = load_mesh(b.gltf(tmp_path / "noscene.gltf"))
    np.testing.assert_array_equal(mesh.vertices, QUAD + [1, 2, 3])
    assert mesh.group_names == ("quad.0",)
