"""glTF 2.0 writer (.glb, or .gltf + .bin): one mesh, one primitive per polygon group, one morph target per shape.

What consumers (three.js, Babylon, Unity glTFast, Unreal, Blender) need, and the validator checks:

* glTF is +Y-up metres: positions and deltas are rotated from Z-up when the rig is Z-up and scaled by
  ``meters_per_unit``; the conversion is recorded in ``mesh.extras.facerig.conversion``.
* Polygons are fan-triangulated; a vertex is split where its face-varying UVs differ, and the split copies
  carry the same delta (each primitive keeps the map to the rig's vertex indices).
* Every primitive has the same targets in the same order; ``mesh.extras.targetNames`` names them.
* Every POSITION accessor (base and morph) has min/max. A target is a sparse accessor (no bufferView) when
  that is smaller than dense, and an all-zero accessor (neither bufferView nor sparse) when it does not
  move the primitive (the schema forbids an empty sparse block).
* Correctives' driver recipes are in ``mesh.extras.facerig.correctives``.
"""

from __future__ import annotations

import json
import struct
import urllib.parse
from dataclasses import dataclass

import numpy as np

from facerig.exporters.common import Exporter, ExportOptions, ExportRig, describe
from facerig.geometry import vertex_normals

# Spec constants (glTF 2.0 §3.6.2, §5.1).
FLOAT, UNSIGNED_BYTE, UNSIGNED_SHORT, UNSIGNED_INT = 5126, 5121, 5123, 5125
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963
TRIANGLES = 4
GLB_MAGIC, GLB_VERSION, CHUNK_JSON, CHUNK_BIN = 0x46546C67, 2, 0x4E4F534A, 0x004E4942
COMPONENT_TYPE = {
    np.dtype(np.uint8): UNSIGNED_BYTE,
    np.dtype(np.uint16): UNSIGNED_SHORT,
    np.dtype(np.uint32): UNSIGNED_INT,
    np.dtype(np.float32): FLOAT,
}
PREVIEW_FPS = 24.0

# Rotation taking a +Z-up frame to glTF's +Y-up frame: (x, y, z) -> (x, z, -y). A Z-up head faces -Y (the
# Blender/USD convention), which lands on glTF's +Z front; +X (the character's left) is unchanged.
Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def export_gltf(
    ir: ExportRig, binary: bool = True, options: ExportOptions = ExportOptions()
) -> bytes | dict[str, bytes]:
    """The rig as GLB bytes (``binary``) or as ``{"<stem>.gltf": json, "<stem>.bin": buffer}``."""
    buffer = _Buffer()
    document = _build_document(ir, options, buffer)
    return package(document, buffer.to_bytes(), binary, options.stem)


def package(document: dict, blob: bytes, binary: bool, stem: str) -> bytes | dict[str, bytes]:
    """A document and its one buffer as GLB bytes (``binary``), or as ``{"<stem>.gltf": json, "<stem>.bin": blob}``."""
    if binary:
        document["buffers"] = [{"byteLength": len(blob)}]
        return _glb(_json_bytes(document), blob)
    bin_name = f"{stem}.bin"
    document["buffers"] = [{"byteLength": len(blob), "uri": urllib.parse.quote(bin_name)}]
    return {f"{stem}.gltf": _json_bytes(document), bin_name: blob}


def to_gltf_frame(ir: ExportRig) -> np.ndarray:
    """(3, 3) matrix taking the rig's units and axes to glTF's (+Y up, metres): ``p_gltf = M @ p``."""
    rotation = Z_UP_TO_Y_UP if ir.up_axis == "Z" else np.eye(3)
    return rotation * ir.meters_per_unit


# ---------------------------------------------------------------------------------------------- geometry
@dataclass(frozen=True)
class Primitive:
    """One polygon group, triangulated and with vertices split at UV seams.

    Attributes:
        group: index of the polygon group in the mesh.
        source_vertex: (n,) int64 rig vertex index of each primitive vertex.
        uv: (n,) int64 index into the mesh's UVs of each primitive vertex, or None.
        triangles: (t, 3) int64 primitive vertex indices.
    """

    group: int
    source_vertex: np.ndarray
    uv: np.ndarray | None
    triangles: np.ndarray


def triangulate_corners(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fan triangulation by corner: (F, 3) int64 corner indices and (F,) int64 polygon of each triangle.

    ``counts`` is (P,) corners per polygon; corner 0 of each polygon fans to (k, k + 1), as Mesh.triangles.
    """
    counts = counts.astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    per_poly = counts - 2
    polygon = np.repeat(np.arange(len(counts)), per_poly)
    first = starts[polygon]
    k = np.arange(len(polygon)) - np.repeat(np.cumsum(per_poly) - per_poly, per_poly)
    return np.stack([first, first + k + 1, first + k + 2], axis=1), polygon


def split_primitives(ir: ExportRig) -> list[Primitive]:
    """One :class:`Primitive` per non-empty polygon group, in group order."""
    mesh = ir.mesh
    corners, polygon = triangulate_corners(mesh.face_vertex_counts)
    vertex_of_corner = mesh.face_vertex_indices
    n_uv = 1 if mesh.uvs is None else len(mesh.uvs)
    # A primitive vertex is a distinct (vertex, uv) pair; the key orders them by rig vertex.
    key_of_corner = vertex_of_corner * n_uv + (0 if mesh.uv_indices is None else mesh.uv_indices)
    triangle_group = mesh.polygon_groups[polygon]
    primitives = []
    for group in range(len(mesh.group_names)):
        tri_corners = corners[triangle_group == group]
        if len(tri_corners) == 0:
            continue
        keys, inverse = np.unique(key_of_corner[tri_corners.ravel()], return_inverse=True)
        primitives.append(
            Primitive(
                group=group,
                source_vertex=keys // n_uv,
                uv=None if mesh.uvs is None else keys % n_uv,
                triangles=inverse.reshape(-1, 3).astype(np.int64),
            )
        )
    return primitives


# ---------------------------------------------------------------------------------------------- document
class _Buffer:
    """The binary buffer and the bufferView/accessor lists that point into it."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def view(self, data: bytes, target: int | None = None) -> int:
        # Every view starts 4-byte aligned, which every component type and the GLB chunk need.
        view = {"buffer": 0, "byteOffset": self.size, "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        self.views.append(view)
        padded = data + b"\x00" * (-len(data) % 4)
        self.chunks.append(padded)
        self.size += len(padded)
        return len(self.views) - 1

    def accessor(self, accessor: dict) -> int:
        self.accessors.append(accessor)
        return len(self.accessors) - 1

    def dense(self, array: np.ndarray, kind: str, target: int | None = None, bounds: bool = False) -> int:
        """An accessor over (n, k) or (n,) ``array`` (float32 or unsigned int) in its own view."""
        component = COMPONENT_TYPE[array.dtype]
        accessor = {
            "bufferView": self.view(np.ascontiguousarray(array).tobytes(), target),
            "componentType": component,
            "count": int(len(array)),
            "type": kind,
        }
        if bounds:
            accessor["min"], accessor["max"] = _bounds(array)
        return self.accessor(accessor)

    def to_bytes(self) -> bytes:
        return b"".join(self.chunks)


def _bounds(array: np.ndarray) -> tuple[list, list]:
    values = array.reshape(len(array), -1)
    # float32 -> Python float is exact, so the validator's comparison with the data matches bit for bit.
    return [float(v) for v in values.min(axis=0)], [float(v) for v in values.max(axis=0)]


def _build_document(ir: ExportRig, options: ExportOptions, buffer: _Buffer) -> dict:
    mesh = ir.mesh
    frame = to_gltf_frame(ir)
    points = (mesh.vertices @ frame.T).astype(np.float32)  # (V, 3) metres, +Y up
    moves = np.zeros((len(ir.shapes), mesh.n_vertices), bool)  # (S, V) which rig vertices each shape moves
    for k, shape in enumerate(ir.shapes):
        moves[k, shape.indices] = True
    normals = vertex_normals(mesh.vertices @ frame.T, mesh.triangles, fallback=(0.0, 1.0, 0.0)).astype(np.float32)
    # glTF's UV origin is the top-left corner, USD's and OBJ's the bottom-left.
    uvs = None if mesh.uvs is None else np.stack([mesh.uvs[:, 0], 1.0 - mesh.uvs[:, 1]], axis=1).astype(np.float32)

    primitives = []
    for prim in split_primitives(ir):
        attributes = {
            "POSITION": buffer.dense(points[prim.source_vertex], "VEC3", ARRAY_BUFFER, bounds=True),
            "NORMAL": buffer.dense(normals[prim.source_vertex], "VEC3", ARRAY_BUFFER),
        }
        if uvs is not None:
            attributes["TEXCOORD_0"] = buffer.dense(uvs[prim.uv], "VEC2", ARRAY_BUFFER)
        n = len(prim.source_vertex)
        # u16 indices up to 65,535 vertices (index 65,535 itself is the forbidden primitive-restart value).
        index_type = np.uint16 if n <= 65535 else np.uint32
        entry = {
            "attributes": attributes,
            "indices": buffer.dense(prim.triangles.astype(index_type).ravel(), "SCALAR", ELEMENT_ARRAY_BUFFER),
            "material": prim.group,
            "mode": TRIANGLES,
        }
        if ir.shapes:
            entry["targets"] = []
            # Only moving rows are gathered and converted: most shapes move a few primitives.
            for shape, moving in zip(ir.shapes, moves[:, prim.source_vertex]):
                rows = np.flatnonzero(moving)
                offsets = (shape.deltas[prim.source_vertex[rows]] @ frame.T).astype(np.float32)
                entry["targets"].append({"POSITION": _morph_accessor(buffer, n, rows, offsets)})
        primitives.append(entry)

    description = describe(ir)
    description["conversion"] = {
        "from_up_axis": ir.up_axis,
        "from_meters_per_unit": ir.meters_per_unit,
        "matrix": frame.tolist(),  # p_gltf = matrix @ p_rig
    }
    gltf_mesh = {
        "name": ir.name,
        "primitives": primitives,
        "extras": {"targetNames": list(ir.shape_names), "facerig": description},
    }
    if ir.shapes:
        gltf_mesh["weights"] = [0.0] * len(ir.shapes)
    document = {
        "asset": {"version": "2.0", "generator": description["generator"]},
        "scene": 0,
        "scenes": [{"name": ir.name, "nodes": [0]}],
        "nodes": [{"name": ir.name, "mesh": 0}],
        "meshes": [gltf_mesh],
        "materials": [{"name": name} for name in mesh.group_names],
    }
    if options.preview_animation and ir.shapes:
        document["animations"] = [_preview_animation(ir, buffer)]
    document["accessors"] = buffer.accessors
    document["bufferViews"] = buffer.views
    return document


def _morph_accessor(buffer: _Buffer, count: int, rows: np.ndarray, offsets: np.ndarray) -> int:
    """A POSITION morph accessor of ``count`` deltas, nonzero only at sorted ``rows`` ((k,) int64) where
    they are (k, 3) float32 ``offsets``: zero, sparse or dense, whichever is smallest."""
    if len(rows) == 0:
        zero = {"componentType": FLOAT, "count": count, "type": "VEC3", "min": [0.0] * 3, "max": [0.0] * 3}
        return buffer.accessor(zero)
    # min/max are over all ``count`` deltas, so the implicit zeros count when some rows do not move.
    with_zero = offsets if len(rows) == count else np.vstack([offsets, np.zeros((1, 3), np.float32)])
    minimum, maximum = _bounds(with_zero)
    index_type = np.uint8 if rows[-1] < 256 else np.uint16 if rows[-1] < 65536 else np.uint32
    sparse_size = len(rows) * (np.dtype(index_type).itemsize + 12) + 3  # + index padding
    if sparse_size >= count * 12:
        dense = np.zeros((count, 3), np.float32)
        dense[rows] = offsets
        return buffer.accessor(
            {
                "bufferView": buffer.view(dense.tobytes(), ARRAY_BUFFER),
                "componentType": FLOAT,
                "count": count,
                "type": "VEC3",
                "min": minimum,
                "max": maximum,
            }
        )
    component = COMPONENT_TYPE[np.dtype(index_type)]
    return buffer.accessor(
        {
            "componentType": FLOAT,
            "count": count,
            "type": "VEC3",
            "min": minimum,
            "max": maximum,
            "sparse": {
                "count": int(len(rows)),
                "indices": {"bufferView": buffer.view(rows.astype(index_type).tobytes()), "componentType": component},
                "values": {"bufferView": buffer.view(np.ascontiguousarray(offsets).tobytes())},
            },
        }
    )


def _preview_animation(ir: ExportRig, buffer: _Buffer) -> dict:
    """A STEP animation of the node's ``weights``: frame 0 neutral, frame k + 1 shape k at full weight."""
    weights = ir.preview_weights()  # (S + 1, S)
    times = (np.arange(len(weights)) / PREVIEW_FPS).astype(np.float32)
    sampler = {
        "input": buffer.dense(times, "SCALAR", bounds=True),
        "output": buffer.dense(weights.ravel(), "SCALAR"),
        "interpolation": "STEP",
    }
    return {
        "name": "facerig_preview",
        "samplers": [sampler],
        "channels": [{"sampler": 0, "target": {"node": 0, "path": "weights"}}],
    }


def _json_bytes(document: dict) -> bytes:
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode()


def _glb(json_chunk: bytes, bin_chunk: bytes) -> bytes:
    """A GLB container: 12-byte header, JSON chunk padded with spaces, BIN chunk padded with zeros."""
    json_chunk += b" " * (-len(json_chunk) % 4)
    bin_chunk += b"\x00" * (-len(bin_chunk) % 4)
    length = 12 + 8 + len(json_chunk) + 8 + len(bin_chunk)
    return b"".join(
        [
            struct.pack("<III", GLB_MAGIC, GLB_VERSION, length),
            struct.pack("<II", len(json_chunk), CHUNK_JSON),
            json_chunk,
            struct.pack("<II", len(bin_chunk), CHUNK_BIN),
            bin_chunk,
        ]
    )


EXPORTERS = {
    "glb": Exporter("glb", (".glb",), lambda ir, options: export_gltf(ir, True, options)),
    "gltf": Exporter("gltf", (".gltf",), lambda ir, options: export_gltf(ir, False, options)),
}
