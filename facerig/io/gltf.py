"""glTF 2.0 reader (.gltf and .glb): every mesh primitive of the default scene, placed by its nodes.

pygltflib gives typed objects for the JSON; the GLB container, buffers and accessors are decoded here
with numpy so that truncated or inconsistent files give a precise error instead of a parser traceback.
Objects are converted lazily, only those the default scene reaches: pygltflib's dataclass decoding
costs about a millisecond per object, and animated characters carry hundreds of unused accessors.

What is read, per glTF 2.0: node transforms (``matrix`` or TRS, composed down the hierarchy) are
applied to POSITION; TEXCOORD_0 becomes the UVs; triangle lists, strips and fans, indexed or not;
one polygon group per primitive instance. :func:`load_gltf` ignores morph targets (weights 0: the
neutral); :func:`load_gltf_blend_shapes` reads them too (POSITION offsets, dense or sparse, named by the
mesh's ``extras.targetNames``, turned by the node's transform like the positions). Skinned meshes are taken
in their bind pose: positions as stored, with their node's transform. glTF is Y-up in metres by
definition, so ``up_axis="Y"`` and ``meters_per_unit=1.0``.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn, TypeVar
from urllib.parse import unquote

import numpy as np
import pygltflib

from facerig.errors import MeshLoadError
from facerig.io._common import (
    BlendShapes,
    LoadLimits,
    MeshSource,
    Source,
    assemble_mesh,
    check_cost,
    check_shape_budget,
    check_vertex_count,
    read_source,
    reject_binary,
)
from facerig.io._select import name_matches
from facerig.io.sandbox import Sandbox
from facerig.mesh import Mesh
from facerig.safe_json import loads_bounded

_COMPONENT_TYPES = {5120: "i1", 5121: "u1", 5122: "i2", 5123: "u2", 5125: "u4", 5126: "f4"}
_COMPONENTS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_TRIANGLES, _TRIANGLE_STRIP, _TRIANGLE_FAN = 4, 5, 6
_UNSUPPORTED_EXTENSIONS = {"KHR_draco_mesh_compression", "EXT_meshopt_compression"}
_Result = TypeVar("_Result")
_JSON_BYTES_PER_BYTE = 16  # Python objects per byte of glTF JSON, while it is parsed


def load_gltf(source: MeshSource, limits: LoadLimits | None = None, *, select: str | None = None) -> Mesh:
    """Read a glTF/GLB file (path, or GLB bytes) into one Mesh of all its triangles.

    Args:
        source: a .gltf/.glb path, or the bytes of a .glb (a .gltf with external buffers needs its path).
        limits: file size and vertex count bounds.
        select: keep only mesh nodes whose own name or an ancestor's name matches (a substring, or a glob
            such as ``"Head*"``: :mod:`facerig.io._select`), e.g. ``select="Head"`` keeps a character's head
            and drops its body.
    Returns:
        A Mesh with one group per primitive instance, named ``"<mesh name>.<primitive index>"``.
    Raises:
        MeshLoadError: truncated or malformed container/JSON/buffers, compressed meshes, no triangles,
            nothing matching ``select``, or over ``limits``.
    """
    return _read(source, limits, lambda reader: reader.read(select))


def load_gltf_blend_shapes(source: MeshSource, limits: LoadLimits | None = None, *,
                           select: str | None = None) -> BlendShapes:
    """Read a glTF/GLB file's mesh (as :func:`load_gltf`) and the morph targets of every primitive it keeps.

    A target is named by its mesh's ``extras.targetNames`` (``"<mesh>.target<k>"`` when the mesh has none);
    targets of the same name in several meshes are one shape. Offsets get the linear part of the node's
    world transform, as positions get the whole transform.

    Raises:
        MeshLoadError: as :func:`load_gltf`; also a target whose offset count differs from its primitive's
            vertex count, a name repeated within one mesh, or more offsets than
            :data:`facerig.io._common.MAX_SHAPE_OFFSETS`.
    """
    return _read(source, limits, lambda reader: reader.read_blend_shapes(select))


@dataclass(frozen=True, eq=False)
class PrimitiveInstance:
    """One triangle primitive of the default scene as placed by one node, in the reader's walk order.

    Attributes:
        node: index of the node that instances the mesh.
        mesh: index of the glTF mesh.
        primitive: index of the primitive in the mesh.
        label: the polygon group name :func:`load_gltf` gives it (``"<mesh>.<p>"``, without an ``@node`` suffix).
        node_name: the node's name (or its index as text): what :func:`load_gltf` appends after ``@``.
        world: (4, 4) float64 world transform of the node.
        positions: (n, 3) float64 world positions of the primitive's vertices, in the order they are stored.
    """

    node: int
    mesh: int
    primitive: int
    label: str
    node_name: str
    world: np.ndarray
    positions: np.ndarray


@dataclass(frozen=True, eq=False)
class GltfAsset:
    """A whole glTF document, opened to be written back with additions (see :mod:`facerig.exporters.gltf_asset`).

    Attributes:
        document: the glTF JSON as parsed (not to be modified in place).
        buffers: the bytes of every buffer, in ``document["buffers"]`` order (GLB chunk, data URI or file).
        images: image index -> bytes of the images stored as files beside a .gltf (data URIs and bufferView
            images are in the document already).
        instances: every triangle primitive of the default scene, in :func:`load_gltf`'s vertex order when
            nothing is selected.
        read_accessor: accessor index -> its (count, components) float64 values (sparse applied).
    """

    document: dict
    buffers: tuple[bytes, ...]
    images: dict[int, bytes]
    instances: tuple[PrimitiveInstance, ...]
    read_accessor: Callable[[int], np.ndarray]


def open_gltf_asset(source: MeshSource, limits: LoadLimits | None = None) -> GltfAsset:
    """Open a glTF/GLB file as a whole document: JSON, buffers, external images, triangle primitives.

    Raises:
        MeshLoadError: as :func:`load_gltf`; also an external image outside the file's folder or over ``limits``.
    """
    return _read(source, limits, lambda reader: reader.asset())


def _read(source: MeshSource, limits: LoadLimits | None, action: Callable[["_Reader"], _Result]) -> _Result:
    """Open the container and JSON of ``source`` and run ``action`` on a reader of it."""
    limits = limits or LoadLimits()
    src = read_source(source, limits)
    json_text, blob = _split_container(src)
    check_cost(limits, src.label, parse_bytes=len(src.data) + len(json_text) * _JSON_BYTES_PER_BYTE)
    try:
        document = loads_bounded(json_text)
    except ValueError as exc:
        raise MeshLoadError(f"malformed glTF JSON: {exc}", src.label) from None
    asset = document.get("asset") if isinstance(document, dict) else None
    if not isinstance(asset, dict) or not str(asset.get("version", "")).startswith("2"):
        raise MeshLoadError("not a glTF 2.0 document (asset must be an object whose version is 2.x)", src.label)
    sandbox = Sandbox(src.path, limits) if src.path is not None else None
    try:
        return action(_Reader(src, limits, _Document(document), blob, sandbox))
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        # pygltflib does not check types or references; a broken document surfaces as one of these.
        raise MeshLoadError(f"malformed glTF ({type(exc).__name__}: {exc})", src.label) from None


# ---------------------------------------------------------------------------------------------- container
def _split_container(src: Source) -> tuple[str, bytes | None]:
    """The JSON text and the GLB binary chunk (None for a .gltf) of a file."""
    data = src.data
    if not data.startswith(b"glTF"):
        reject_binary(data, src.label, "glTF")
        try:
            return data.decode("utf-8-sig"), None
        except UnicodeDecodeError:
            raise MeshLoadError("not a glTF file: neither GLB nor UTF-8 JSON", src.label) from None
    if len(data) < 20:
        raise MeshLoadError("truncated GLB: shorter than its header", src.label)
    version, length = struct.unpack_from("<II", data, 4)
    if version != 2:
        raise MeshLoadError(f"GLB version {version} is not supported (only glTF 2.0)", src.label)
    if length > len(data):
        raise MeshLoadError(f"truncated GLB: header says {length:,} bytes, the file has {len(data):,}", src.label)
    json_text, blob, offset = None, None, 12
    while offset + 8 <= length:
        chunk_length, chunk_type = struct.unpack_from("<II", data, offset)
        offset += 8
        if offset + chunk_length > length:
            raise MeshLoadError("truncated GLB: a chunk runs past the end of the file", src.label)
        chunk = data[offset : offset + chunk_length]
        if chunk_type == 0x4E4F534A and json_text is None:  # "JSON"
            try:
                json_text = chunk.decode("utf-8")
            except UnicodeDecodeError:
                raise MeshLoadError("the GLB JSON chunk is not UTF-8", src.label) from None
        elif chunk_type == 0x004E4942 and blob is None:  # "BIN\0"
            blob = chunk
        offset += chunk_length + (-chunk_length % 4)
    if json_text is None:
        raise MeshLoadError("GLB has no JSON chunk", src.label)
    return json_text, blob


# ---------------------------------------------------------------------------------------------- transforms
def node_matrix(node: pygltflib.Node) -> np.ndarray:
    """(4, 4) float64 local transform of a node: its ``matrix``, else translation @ rotation @ scale.

    The rotation is glTF's (x, y, z, w) quaternion.
    """
    if node.matrix is not None and len(node.matrix) == 16:
        return np.asarray(node.matrix, np.float64).reshape(4, 4).T  # glTF stores column-major
    matrix = np.eye(4)
    quaternion = np.asarray(node.rotation if node.rotation is not None else (0, 0, 0, 1), np.float64)
    # Exporters write float32 quaternions that are unit length only to ~1e-7; normalise so the
    # matrix is a pure rotation.
    norm = np.linalg.norm(quaternion)
    x, y, z, w = quaternion / norm if norm > 0 else (0.0, 0.0, 0.0, 1.0)
    matrix[:3, :3] = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ]
    if node.scale is not None:
        matrix[:3, :3] *= np.asarray(node.scale, np.float64)
    if node.translation is not None:
        matrix[:3, 3] = node.translation
    return matrix


# ---------------------------------------------------------------------------------------------- reading
class _Document:
    """The glTF JSON with typed pygltflib objects made on first access (and index checks)."""

    _TYPES = {
        "nodes": pygltflib.Node,
        "meshes": pygltflib.Mesh,
        "accessors": pygltflib.Accessor,
        "bufferViews": pygltflib.BufferView,
        "buffers": pygltflib.Buffer,
        "scenes": pygltflib.Scene,
    }

    def __init__(self, raw: dict) -> None:
        self.raw = raw
        self._cache: dict[tuple[str, int], object] = {}

    def count(self, kind: str) -> int:
        return len(self.raw.get(kind) or [])

    def get(self, kind: str, index: int) -> Any:
        """The typed object ``raw[kind][index]``; KeyError (reported as a malformed file) when missing."""
        key = (kind, index)
        if key not in self._cache:
            items = self.raw.get(kind) or []
            if not isinstance(index, int) or not 0 <= index < len(items):
                raise KeyError(f"{kind}[{index}] does not exist (the file has {len(items)})")
            item = self._TYPES[kind].from_dict(items[index], infer_missing=True)
            if kind == "meshes":  # pygltflib leaves attribute dicts as dicts outside GLTF2.from_json
                for primitive in item.primitives:
                    if isinstance(primitive.attributes, dict):
                        primitive.attributes = pygltflib.Attributes(**primitive.attributes)
            self._cache[key] = item
        return self._cache[key]


@dataclass
class _Parts:
    """Accumulated primitives, concatenated once at the end."""

    vertices: list[np.ndarray] = field(default_factory=list)
    triangles: list[np.ndarray] = field(default_factory=list)
    uvs: list[np.ndarray | None] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    n_vertices: int = 0


@dataclass(frozen=True)
class _Morphs:
    """The morph targets of one primitive instance, read only when blend shapes are asked for."""

    label: str  # "<mesh name>.<primitive index>"
    mesh: int  # index of the glTF mesh (its extras name the targets)
    start: int  # the primitive's first vertex in the assembled mesh
    count: int  # its vertex count
    accessors: tuple[int | None, ...]  # POSITION accessor per target (None: the target moves no point)
    linear: np.ndarray  # (3, 3) linear part of the node's world transform


class _Reader:
    """Walks the default scene and gathers its triangle primitives into one Mesh."""

    def __init__(
        self, src: Source, limits: LoadLimits, document: _Document, blob: bytes | None, sandbox: Sandbox | None
    ) -> None:
        self.src, self.limits, self.doc, self.blob, self.sandbox = src, limits, document, blob, sandbox
        self.buffers: dict[int, bytes] = {}
        self.external: dict[int, Path] = {}  # buffer index -> its file, admitted by the sandbox
        self.warnings: list[str] = []
        self.morphs: list[_Morphs] = []

    def fail(self, reason: str) -> NoReturn:
        raise MeshLoadError(reason, self.src.label)

    def read(self, select: str | None) -> Mesh:
        required = set(self.doc.raw.get("extensionsRequired") or ()) & _UNSUPPORTED_EXTENSIONS
        if required:
            self.fail(f"compressed meshes ({', '.join(sorted(required))}) are not supported; decompress first")
        parts = _Parts()
        scene = list(self._walk_scene(select))
        mesh_nodes = [(index, world) for index, world, chosen in scene if chosen and self._mesh_of(index)]
        seen_mesh_node = any(self._mesh_of(index) for index, _, _ in scene)
        self._admit_buffers()
        self._check_size(mesh_nodes)
        for node_index, world in mesh_nodes:
            self._add_mesh(parts, node_index, world)
        if select is not None and not parts.names:
            names = sorted({n.get("name") for n in self.doc.raw.get("nodes", []) if n.get("name")})
            self.fail(f"no mesh node or ancestor named like {select!r}; node names: {', '.join(names) or 'none'}")
        if not seen_mesh_node:
            self.fail("the default scene has no mesh nodes")
        if not parts.triangles:
            self.fail("no triangle primitives (only points or lines)")

        vertices = np.concatenate(parts.vertices)
        triangles = np.concatenate(parts.triangles)
        groups = np.concatenate([np.full(len(t), i) for i, t in enumerate(parts.triangles)])
        uvs = uv_indices = None
        if all(uv is not None for uv in parts.uvs):
            uvs, uv_indices = np.concatenate(parts.uvs), triangles.reshape(-1)
        elif any(uv is not None for uv in parts.uvs):
            missing = sum(uv is None for uv in parts.uvs)
            self.warnings.append(f"UVs dropped: {missing} of {len(parts.uvs)} primitives have no TEXCOORD_0")
        return assemble_mesh(
            self.src, vertices, np.full(len(triangles), 3), triangles.reshape(-1),
            uvs=uvs, uv_indices=uv_indices, groups=groups, group_names=parts.names,
            up_axis="Y", meters_per_unit=1.0, warnings=self.warnings,
        )  # fmt: skip

    def asset(self) -> GltfAsset:
        required = set(self.doc.raw.get("extensionsRequired") or ()) & _UNSUPPORTED_EXTENSIONS
        if required:
            self.fail(f"compressed meshes ({', '.join(sorted(required))}) are not supported; decompress first")
        self._admit_buffers()
        instances, n_points = [], 0
        for node_index, world, _ in self._walk_scene(None):
            node = self.doc.get("nodes", node_index)
            if node.mesh is None:
                continue
            mesh = self.doc.get("meshes", node.mesh)
            for p, primitive in enumerate(mesh.primitives):
                if (_TRIANGLES if primitive.mode is None else primitive.mode) not in (
                        _TRIANGLES, _TRIANGLE_STRIP, _TRIANGLE_FAN) or primitive.attributes.POSITION is None:
                    continue
                positions = self._accessor(primitive.attributes.POSITION, "POSITION")
                n_points += len(positions)
                check_vertex_count(n_points, self.limits, self.src.label)
                instances.append(PrimitiveInstance(
                    node=node_index, mesh=node.mesh, primitive=p, label=f"{mesh.name or f'mesh{node.mesh}'}.{p}",
                    node_name=str(node.name or node_index), world=world,
                    positions=positions @ world[:3, :3].T + world[:3, 3],
                ))  # fmt: skip
        buffers = tuple(self._buffer(i) for i in range(self.doc.count("buffers")))
        images = {}
        for i, image in enumerate(self.doc.raw.get("images") or []):
            uri = image.get("uri") if isinstance(image, dict) else None
            if isinstance(uri, str) and not uri.startswith("data:"):
                images[i] = self._external(uri, i, what="image")
        return GltfAsset(self.doc.raw, buffers, images, tuple(instances), lambda i: self._accessor(i, "accessor"))

    def read_blend_shapes(self, select: str | None) -> BlendShapes:
        mesh = self.read(select)
        target_names = [self._target_names(morphs.mesh, len(morphs.accessors)) for morphs in self.morphs]
        names = list(dict.fromkeys(name for per_primitive in target_names for name in per_primitive))
        check_shape_budget(len(names), mesh.n_vertices, self.src.label)
        row = {name: i for i, name in enumerate(names)}
        deltas = np.zeros((len(names), mesh.n_vertices, 3), np.float32)
        for morphs, morph_names in zip(self.morphs, target_names):
            for name, accessor in zip(morph_names, morphs.accessors):
                if accessor is None:
                    continue
                offsets = self._accessor(accessor, f"morph target {name!r} of {morphs.label}")
                if offsets.shape != (morphs.count, 3):
                    self.fail(f"morph target {name!r} of primitive {morphs.label} has {len(offsets):,} offsets "
                              f"for its {morphs.count:,} vertices")
                deltas[row[name], morphs.start : morphs.start + morphs.count] = offsets @ morphs.linear.T
        return BlendShapes(mesh=mesh, names=tuple(names), deltas=deltas)

    def _target_names(self, mesh_index: int, count: int) -> tuple[str, ...]:
        """The mesh's ``extras.targetNames`` when they name its ``count`` targets, else ``<mesh>.target<k>``."""
        mesh = self.doc.get("meshes", mesh_index)
        mesh_name = mesh.name or f"mesh{mesh_index}"
        given = (mesh.extras or {}).get("targetNames") if isinstance(mesh.extras, dict) else None
        if isinstance(given, list) and len(given) == count and all(isinstance(n, str) for n in given):
            if len(set(given)) != len(given):
                repeated = sorted({n for n in given if given.count(n) > 1})
                self.fail(f"mesh {mesh_name!r} names several morph targets {', '.join(map(repr, repeated))}")
            return tuple(given)
        return tuple(f"{mesh_name}.target{k}" for k in range(count))

    def _walk_scene(self, select: str | None) -> Iterator[tuple[int, np.ndarray, bool]]:
        """Yield (node index, (4, 4) world matrix, selected?) for every node of the default scene."""
        if self.doc.count("scenes"):
            roots = self.doc.get("scenes", self.doc.raw.get("scene") or 0).nodes or []
        else:  # no scene: every node that is nobody's child is a root
            children = {c for n in self.doc.raw.get("nodes", []) for c in (n.get("children") or [])}
            roots = [i for i in range(self.doc.count("nodes")) if i not in children]
        stack = [(root, np.eye(4), select is None) for root in reversed(roots)]
        visited: set[int] = set()
        while stack:
            index, parent, chosen = stack.pop()
            if index in visited:
                self.fail(f"node {index} appears twice in the hierarchy (a cycle or a shared child)")
            visited.add(index)
            node = self.doc.get("nodes", index)
            world = parent @ node_matrix(node)
            chosen = chosen or (select is not None and name_matches(select, [node.name or ""]))
            yield index, world, chosen
            stack.extend((child, world, chosen) for child in reversed(node.children or []))

    def _mesh_of(self, node_index: int) -> pygltflib.Mesh | None:
        node = self.doc.get("nodes", node_index)
        return None if node.mesh is None else self.doc.get("meshes", node.mesh)

    def _triangle_primitives(self, mesh: pygltflib.Mesh) -> Iterator[tuple[int, pygltflib.Primitive]]:
        for p, primitive in enumerate(mesh.primitives):
            mode = _TRIANGLES if primitive.mode is None else primitive.mode
            if mode in (_TRIANGLES, _TRIANGLE_STRIP, _TRIANGLE_FAN):
                yield p, primitive

    def _check_size(self, mesh_nodes: list[tuple[int, np.ndarray]]) -> None:
        """Vertex and corner counts from the accessors' headers, against the limits, before reading data."""
        n_vertices = n_corners = 0
        for node_index, _ in mesh_nodes:
            for _, primitive in self._triangle_primitives(self._mesh_of(node_index)):
                if primitive.attributes.POSITION is None:
                    continue  # reported by _add_mesh
                count = self._count(primitive.attributes.POSITION)
                n_vertices += count
                if primitive.indices is not None:
                    count = self._count(primitive.indices)
                mode = _TRIANGLES if primitive.mode is None else primitive.mode
                n_corners += count if mode == _TRIANGLES else 3 * max(count - 2, 0)
        check_cost(self.limits, self.src.label, n_vertices=n_vertices, n_corners=n_corners,
                   parse_bytes=len(self.src.data))  # fmt: skip

    def _count(self, accessor_index: int) -> int:
        count = self.doc.get("accessors", accessor_index).count
        if not isinstance(count, int) or count < 0:
            self.fail(f"accessor {accessor_index}: bad count {count!r}")
        return count

    def _add_mesh(self, parts: _Parts, node_index: int, world: np.ndarray) -> None:
        node = self.doc.get("nodes", node_index)
        mesh = self.doc.get("meshes", node.mesh)
        mesh_name = mesh.name or f"mesh{node.mesh}"
        # A mirroring transform flips triangle winding; swap two corners to keep faces pointing out.
        mirrored = np.linalg.det(world[:3, :3]) < 0
        for p, primitive in enumerate(mesh.primitives):
            mode = _TRIANGLES if primitive.mode is None else primitive.mode
            if mode not in (_TRIANGLES, _TRIANGLE_STRIP, _TRIANGLE_FAN):
                self.warnings.append(f"skipped primitive {mesh_name}.{p}: mode {mode} is points or lines")
                continue
            if primitive.attributes.POSITION is None:
                self.fail(f"primitive {mesh_name}.{p} has no POSITION")
            positions = self._accessor(primitive.attributes.POSITION, "POSITION")
            if positions.shape[1] != 3:
                self.fail(f"primitive {mesh_name}.{p}: POSITION is not VEC3")
            if primitive.indices is None:
                indices = np.arange(len(positions))
            else:
                indices = self._accessor(primitive.indices, "indices", integer=True).reshape(-1)
            if len(indices) and (indices.min() < 0 or indices.max() >= len(positions)):
                bad = int(indices.max())
                self.fail(f"primitive {mesh_name}.{p}: index {bad} out of range ({len(positions)} vertices)")
            triangles = self._triangles(indices, mode, f"{mesh_name}.{p}")
            if mirrored:
                triangles = triangles[:, [0, 2, 1]]
            uv = None
            if primitive.attributes.TEXCOORD_0 is not None:
                if self._count(primitive.attributes.TEXCOORD_0) != len(positions):
                    self.fail(f"primitive {mesh_name}.{p}: TEXCOORD_0 and POSITION counts differ")
                uv = self._accessor(primitive.attributes.TEXCOORD_0, "TEXCOORD_0")[:, :2]
            name = f"{mesh_name}.{p}"
            if name in parts.names:  # the same mesh instanced by several nodes
                name = f"{name}@{node.name or node_index}"
            if primitive.targets:
                self.morphs.append(_Morphs(
                    label=name, mesh=node.mesh, start=parts.n_vertices, count=len(positions),
                    accessors=tuple(t.get("POSITION") if isinstance(t, dict) else None for t in primitive.targets),
                    linear=world[:3, :3],
                ))  # fmt: skip
            world_positions = positions.astype(np.float64) @ world[:3, :3].T + world[:3, 3]
            parts.vertices.append(world_positions)
            parts.triangles.append(triangles + parts.n_vertices)
            parts.uvs.append(uv)
            parts.names.append(name)
            parts.n_vertices += len(positions)

    def _triangles(self, indices: np.ndarray, mode: int, label: str) -> np.ndarray:
        """(F, 3) triangles from a list, strip or fan of indices."""
        if mode == _TRIANGLES:
            if len(indices) % 3:
                self.fail(f"primitive {label}: {len(indices)} indices is not a multiple of 3")
            return indices.reshape(-1, 3)
        n = len(indices) - 2
        if n < 1:
            return np.zeros((0, 3), np.int64)
        i = np.arange(n)
        if mode == _TRIANGLE_STRIP:  # every other triangle is reversed to keep one winding
            odd = i % 2
            return np.stack([indices[i], indices[i + 1 + odd], indices[i + 2 - odd]], axis=1)
        return np.stack([indices[i + 1], indices[i + 2], np.full(n, indices[0])], axis=1)

    # ------------------------------------------------------------------ buffers and accessors
    def _buffer(self, index: int) -> bytes:
        if index in self.buffers:
            return self.buffers[index]
        buffer = self.doc.get("buffers", index)
        uri = buffer.uri
        if uri is None:
            if self.blob is None:
                self.fail(f"buffer {index} has no uri and the file has no GLB binary chunk")
            data = self.blob
        elif uri.startswith("data:"):
            try:
                data = base64.b64decode(uri.split(",", 1)[1], validate=True)
            except (IndexError, ValueError):
                self.fail(f"buffer {index}: malformed data URI")
        else:
            data = self._external(uri, index)
        if buffer.byteLength is not None and len(data) < buffer.byteLength:
            self.fail(f"truncated: buffer {index} has {len(data):,} of its {buffer.byteLength:,} bytes")
        self.buffers[index] = data
        return data

    def _admit_buffers(self) -> None:
        """Put every external buffer file through the sandbox (each reference counts) before reading any."""
        for index in range(self.doc.count("buffers")):
            uri = self.doc.get("buffers", index).uri
            if uri is not None and not isinstance(uri, str):
                self.fail(f"buffer {index}: uri is not a string")
            if uri is None or uri.startswith("data:"):
                continue
            if self.sandbox is None:
                self.fail(f"buffer {index} refers to file {uri!r}; read .gltf files from a path, not bytes")
            self.external[index] = self.sandbox.admit(unquote(uri), f"buffer {index} ({uri})")

    def _external(self, uri: str, index: int, what: str = "buffer") -> bytes:
        """Bytes of an external buffer file admitted by :meth:`_admit_buffers`, or of an image file (admitted by
        the sandbox here: only the asset round trip reads images)."""
        if what == "buffer":
            return self.sandbox.read_bytes(self.external[index], f"buffer {index} ({uri})")
        if self.sandbox is None:
            self.fail(f"{what} {index} refers to file {uri!r}; read .gltf files from a path, not bytes")
        label = f"{what} {index} ({uri})"
        return self.sandbox.read_bytes(self.sandbox.admit(unquote(uri), label), label)

    def _accessor(self, index: int, what: str, integer: bool = False) -> np.ndarray:
        """(count, components) array of an accessor: float64, or int64 when ``integer``."""
        accessor = self.doc.get("accessors", index)
        code = _COMPONENT_TYPES.get(accessor.componentType)
        components = _COMPONENTS.get(accessor.type)
        if code is None or components is None or accessor.count is None or accessor.count < 0:
            self.fail(f"accessor {index} ({what}): bad componentType/type/count")
        if integer and code not in ("u1", "u2", "u4"):
            self.fail(f"accessor {index} ({what}): indices must be unsigned integers")
        dtype = np.dtype("<" + code)
        # A bufferView-less accessor is zeros of any count: bound what it (and its float64 copy) costs.
        if accessor.count * components * 8 > self.limits.max_memory_bytes:
            self.fail(f"accessor {index} ({what}): {accessor.count:,} elements, over the memory budget")
        if accessor.bufferView is None:
            values = np.zeros((accessor.count, components), dtype)
        else:
            offset = accessor.byteOffset or 0
            values = self._view_slice(accessor.bufferView, offset, dtype, accessor.count, components, index)
        if accessor.sparse is not None and accessor.sparse.count:
            values = values.copy()
            sparse = accessor.sparse
            if not isinstance(sparse.count, int) or not 0 < sparse.count <= accessor.count:
                self.fail(f"accessor {index} ({what}): sparse count {sparse.count!r} for {accessor.count:,} elements")
            sparse_code = _COMPONENT_TYPES.get(sparse.indices.componentType)
            if sparse_code not in ("u1", "u2", "u4"):
                self.fail(f"accessor {index} ({what}): sparse indices must be unsigned integers")
            row_type = np.dtype("<" + sparse_code)
            row_offset = sparse.indices.byteOffset or 0
            rows = self._view_slice(sparse.indices.bufferView, row_offset, row_type, sparse.count, 1, index).reshape(-1)
            if len(rows) and rows.max() >= accessor.count:
                self.fail(f"accessor {index} ({what}): sparse index out of range")
            values[rows] = self._view_slice(
                sparse.values.bufferView, sparse.values.byteOffset or 0, dtype, sparse.count, components, index
            )
        if integer:
            return values.astype(np.int64)
        result = values.astype(np.float64)
        if accessor.normalized and code != "f4":
            info = np.iinfo(dtype)
            result = np.maximum(result / info.max, -1.0)  # glTF's normalized-integer rule
        return result

    def _view_slice(
        self, view_index: int, offset: int, dtype: np.dtype, count: int, components: int, accessor: int
    ) -> np.ndarray:
        view = self.doc.get("bufferViews", view_index)
        data = self._buffer(view.buffer)
        start, length = view.byteOffset or 0, view.byteLength or 0
        if start + length > len(data):
            end = start + length
            self.fail(f"truncated: bufferView {view_index} ends at byte {end:,}, its buffer has {len(data):,}")
        element = dtype.itemsize * components
        stride = view.byteStride or element
        needed = offset + (count - 1) * stride + element if count else 0
        if needed > length or stride < element:
            self.fail(f"accessor {accessor} reads past the end of bufferView {view_index}")
        if count == 0:
            return np.zeros((0, components), dtype)
        return np.ndarray(
            (count, components), dtype, buffer=data, offset=start + offset, strides=(stride, dtype.itemsize)
        ).copy()


LOADERS = {"gltf": load_gltf, "glb": load_gltf}
SHAPE_LOADERS = {"gltf": load_gltf_blend_shapes, "glb": load_gltf_blend_shapes}
