"""FBX writer: a binary FBX 7.4 blendshape rig that Blender, Maya, Unity, Unreal and ufbx import.

No Autodesk SDK is installable, so the scene is built here as FBX records and encoded by
:mod:`facerig.exporters.fbx_binary` (Blender does not import ASCII FBX). Object graph (children point at
parents through "OO" connections, see ``reference/formats-and-conventions.md`` §3.1)::

    Model "<name>" (Mesh)                      → scene root (id 0)
      Geometry "<name>" (Mesh)                 → Model: Vertices, PolygonVertexIndex, UVs, material layer
        Deformer "<name>" (BlendShape)         → Geometry
          Deformer "<shape>" (BlendShapeChannel) → BlendShape, one per shape, in export order
            Geometry "<shape>" (Shape)         → Channel: Indexes, Vertices (offsets), Normals (zeros)
      Material "<group>"                       → Model, one per polygon group

The mesh keeps the file's polygons (quads stay quads) and face-varying UVs. Points and offsets are written
in Blender's frame, +Z up, -Y front, metres (``UpAxis`` Z, ``UnitScaleFactor`` 100): Blender's importer then
leaves the object's transform at identity (a file in any other frame gets a 90° rotation or a 0.01 scale on
the object), and Maya, Unity and Unreal convert this frame, the one Blender's own exports use, on import.
The conversion from the rig's units and axes is recorded in the metadata (``conversion``, as glTF's).
Normals (``LayerElementNormal``, by polygon vertex) are smooth vertex normals of the neutral: facerig's Mesh
does not keep a file's own normals; vertices the file split keep their split. Correctives are ordinary shapes; their recipes travel as string user
properties on the Model (``facerig_correctives``: {name: {"drivers": [...], "rule": "product"}}, and
``facerig``: the full metadata block every format carries), which Blender imports as custom properties.

The bytes are a pure function of the IR: object ids are hashes of object names, the creation time is fixed.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from facerig.errors import ExportError
from facerig.exporters.common import Exporter, ExportOptions, ExportRig, describe, export_name, unique_name
from facerig.exporters.gltf import Z_UP_TO_Y_UP
from facerig.geometry import vertex_normals
from facerig.exporters.fbx_binary import CREATION_TIME, FBX_VERSION, FILE_ID, Record, encode_document

# Record versions the FBX SDK writes for 7.4 files (readers key behaviour on some of them).
HEADER_VERSION = 1003
MODEL_VERSION = 232
GEOMETRY_VERSION = 124
UV_LAYER_VERSION = 101
MATERIAL_LAYER_VERSION = 101
NORMAL_LAYER_VERSION = 101
LAYER_VERSION = 100
MATERIAL_VERSION = 102
DEFORMER_VERSION = 100  # BlendShape, BlendShapeChannel and Shape all use 100

# GlobalSettings axes as (axis index 0=X 1=Y 2=Z, sign) for up, front and coord (right), per up axis.
# Both are right-handed with +X to the side: Y-up is Maya's convention, Z-up (front -Y) is 3ds Max's and
# Blender's. FBX's unit is the centimetre: UnitScaleFactor = centimetres per file unit.
AXES = {
    "Y": {"Up": (1, 1), "Front": (2, 1), "Coord": (0, 1)},
    "Z": {"Up": (2, 1), "Front": (1, -1), "Coord": (0, 1)},
}
CM_PER_M = 100.0
# Rotation taking a +Y-up frame (face looking +Z) to Blender's +Z-up frame (face looking -Y).
Y_UP_TO_Z_UP = Z_UP_TO_Y_UP.T
# Default timeline: one second at 30 fps (TimeMode 6), in FBX ticks.
KTIME_PER_SECOND = 46_186_158_000
TIME_MODE_30FPS = 6
UV_SET_NAME = "UVMap"
CORRECTIVES_PROPERTY = "facerig_correctives"
METADATA_PROPERTY = "facerig"


def export_fbx(ir: ExportRig, options: ExportOptions = ExportOptions()) -> bytes:
    """The rig as binary FBX 7.4 bytes.

    ``options.preview_animation`` is not written: FBX shape animation (AnimationCurveNode "DeformPercent")
    is not implemented yet, and the shapes themselves are complete without it.

    Raises:
        ExportError: the file would exceed FBX 7.4's 4 GiB limit, or two object names hash to one id.
    """
    return encode_document(build_records(ir))


def to_fbx_frame(ir: ExportRig) -> np.ndarray:
    """(3, 3) matrix taking the rig's units and axes to the file's (+Z up, metres): ``p_fbx = M @ p``.

    Raises:
        ExportError: an up axis other than Y or Z.
    """
    if ir.up_axis not in ("Y", "Z"):
        raise ExportError(f"FBX export needs up axis Y or Z, got {ir.up_axis!r}")
    rotation = np.eye(3) if ir.up_axis == "Z" else Y_UP_TO_Z_UP
    return rotation * ir.meters_per_unit


def build_records(ir: ExportRig) -> list[Record]:
    """The top-level FBX records of the rig (the writer's only state; exposed for tests and tools)."""
    metadata = describe(ir)
    frame = to_fbx_frame(ir)
    metadata["conversion"] = {
        "from_up_axis": ir.up_axis,
        "from_meters_per_unit": ir.meters_per_unit,
        "matrix": frame.tolist(),  # p_fbx = matrix @ p_rig
    }
    ids = _ObjectIds()
    model_id = ids.get("Model", ir.name)
    geometry_id = ids.get("Geometry", ir.name)
    blend_id = ids.get("BlendShape", ir.name)
    materials = _material_names(ir)
    material_ids = [ids.get("Material", name) for name in materials]

    objects = Record("Objects")
    objects.children.append(_geometry(ir, geometry_id, frame))
    objects.children.append(_model(ir, model_id, metadata))
    for name, material_id in zip(materials, material_ids):
        objects.children.append(_material(name, material_id))
    connections = Record("Connections")
    _connect(connections, model_id, 0)
    _connect(connections, geometry_id, model_id)
    # Material order on the Model is the index space of the geometry's material layer.
    for material_id in material_ids:
        _connect(connections, material_id, model_id)

    if ir.shapes:
        objects.add("Deformer", blend_id, _name(ir.name, "Deformer"), "BlendShape").add(
            "Version", np.int32(DEFORMER_VERSION)
        )
        _connect(connections, blend_id, geometry_id)
        for shape in ir.shapes:
            channel_id = ids.get("BlendShapeChannel", shape.name)
            shape_id = ids.get("Shape", shape.name)
            objects.children.append(_channel(shape.name, channel_id))
            objects.children.append(_shape(shape.name, shape_id, shape.indices, shape.offsets @ frame.T))
            _connect(connections, channel_id, blend_id)
            _connect(connections, shape_id, channel_id)

    counts = {
        "GlobalSettings": 1,
        "Model": 1,
        "Geometry": 1 + len(ir.shapes),
        "Material": len(materials),
        "Deformer": (1 + len(ir.shapes)) if ir.shapes else 0,
    }
    takes = Record("Takes")
    takes.add("Current", "")
    return [
        _header_extension(ir, metadata["generator"]),
        Record("FileId", [FILE_ID]),
        Record("CreationTime", [CREATION_TIME]),
        Record("Creator", [metadata["generator"]]),
        _global_settings(),
        _documents(ids.get("Document", "Scene")),
        Record("References"),
        _definitions(counts),
        objects,
        connections,
        takes,
    ]


# ---------------------------------------------------------------------------------------------- ids, names
class _ObjectIds:
    """Deterministic int64 object ids: a hash of (kind, name), checked for collisions."""

    def __init__(self) -> None:
        self._seen: dict[int, tuple[str, str]] = {}

    def get(self, kind: str, name: str) -> np.int64:
        digest = hashlib.blake2b(f"{kind}\x00{name}".encode(), digest_size=8).digest()
        # Positive and non-zero: 0 is the scene root, and some readers treat negative ids as invalid.
        value = (int.from_bytes(digest, "little") & (2**62 - 1)) + 1
        if self._seen.setdefault(value, (kind, name)) != (kind, name):
            raise ExportError(f"FBX object ids collide for {self._seen[value]} and {(kind, name)}; rename one")
        return np.int64(value)


def _name(name: str, fbx_class: str) -> str:
    """FBX's binary object name: ``Name\\x00\\x01Class`` (the ASCII form is ``Class::Name``)."""
    return f"{name}\x00\x01{fbx_class}"


def _connect(connections: Record, child: np.int64 | int, parent: np.int64 | int) -> None:
    connections.add("C", "OO", np.int64(child), np.int64(parent))


def _p(props70: Record, name: str, type_name: str, label: str, flags: str, *values) -> None:
    """A Properties70 entry: name, type, data-type label, flags ("A" animatable, "U" user), value(s)."""
    props70.add("P", name, type_name, label, flags, *values)


def _material_names(ir: ExportRig) -> list[str]:
    """One unique, identifier-safe material name per polygon group, in group order."""
    used: set[str] = set()
    return [unique_name(export_name(group), used) for group in ir.mesh.group_names]


# ---------------------------------------------------------------------------------------------- sections
def _header_extension(ir: ExportRig, creator: str) -> Record:
    header = Record("FBXHeaderExtension")
    header.add("FBXHeaderVersion", np.int32(HEADER_VERSION))
    header.add("FBXVersion", np.int32(FBX_VERSION))
    header.add("EncryptionType", np.int32(0))
    stamp = header.add("CreationTimeStamp")
    # Matches CREATION_TIME (fbx_binary): the fixed time that keeps the bytes reproducible.
    for key, value in (("Version", 1000), ("Year", 1970), ("Month", 1), ("Day", 1), ("Hour", 10),
                       ("Minute", 0), ("Second", 0), ("Millisecond", 0)):
        stamp.add(key, np.int32(value))
    header.add("Creator", creator)
    info = header.add("SceneInfo", _name("GlobalInfo", "SceneInfo"), "UserData")
    info.add("Type", "UserData")
    info.add("Version", np.int32(100))
    meta = info.add("MetaData")
    meta.add("Version", np.int32(100))
    meta.add("Title", ir.name)
    for key in ("Subject", "Author", "Keywords", "Revision", "Comment"):
        meta.add(key, "")
    return header


def _global_settings() -> Record:
    settings = Record("GlobalSettings")
    settings.add("Version", np.int32(1000))
    props = settings.add("Properties70")
    axes = AXES["Z"]
    for role in ("Up", "Front", "Coord"):
        axis, sign = axes[role]
        _p(props, f"{role}Axis", "int", "Integer", "", np.int32(axis))
        _p(props, f"{role}AxisSign", "int", "Integer", "", np.int32(sign))
    _p(props, "OriginalUpAxis", "int", "Integer", "", np.int32(axes["Up"][0]))
    _p(props, "OriginalUpAxisSign", "int", "Integer", "", np.int32(axes["Up"][1]))
    scale = CM_PER_M  # the file's unit is the metre: UnitScaleFactor counts centimetres per unit
    _p(props, "UnitScaleFactor", "double", "Number", "", scale)
    _p(props, "OriginalUnitScaleFactor", "double", "Number", "", scale)
    _p(props, "AmbientColor", "ColorRGB", "Color", "", 0.0, 0.0, 0.0)
    _p(props, "DefaultCamera", "KString", "", "", "Producer Perspective")
    _p(props, "TimeMode", "enum", "", "", np.int32(TIME_MODE_30FPS))
    _p(props, "TimeSpanStart", "KTime", "Time", "", np.int64(0))
    _p(props, "TimeSpanStop", "KTime", "Time", "", np.int64(KTIME_PER_SECOND))
    _p(props, "CustomFrameRate", "double", "Number", "", -1.0)
    return settings


def _documents(document_id: np.int64) -> Record:
    documents = Record("Documents")
    documents.add("Count", np.int32(1))
    document = documents.add("Document", document_id, "Scene", "Scene")
    props = document.add("Properties70")
    _p(props, "SourceObject", "object", "", "")
    _p(props, "ActiveAnimStackName", "KString", "", "", "")
    document.add("RootNode", np.int64(0))
    return documents


def _definitions(counts: dict[str, int]) -> Record:
    present = {kind: n for kind, n in counts.items() if n}
    definitions = Record("Definitions")
    definitions.add("Version", np.int32(100))
    definitions.add("Count", np.int32(sum(present.values())))
    for kind, n in present.items():
        definitions.add("ObjectType", kind).add("Count", np.int32(n))
    return definitions


# ---------------------------------------------------------------------------------------------- objects
def _model(ir: ExportRig, model_id: np.int64, metadata: dict) -> Record:
    model = Record("Model", [model_id, _name(ir.name, "Model"), "Mesh"])
    model.add("Version", np.int32(MODEL_VERSION))
    props = model.add("Properties70")
    _p(props, "DefaultAttributeIndex", "int", "Integer", "", np.int32(0))
    correctives = json.dumps(metadata["correctives"], sort_keys=True, allow_nan=False)
    _p(props, CORRECTIVES_PROPERTY, "KString", "", "U", correctives)
    _p(props, METADATA_PROPERTY, "KString", "", "U", json.dumps(metadata, sort_keys=True, allow_nan=False))
    model.add("MultiLayer", np.int32(0))
    model.add("MultiTake", np.int32(0))
    model.add("Shading", True)
    model.add("Culling", "CullingOff")
    return model


def _geometry(ir: ExportRig, geometry_id: np.int64, frame: np.ndarray) -> Record:
    mesh = ir.mesh
    geometry = Record("Geometry", [geometry_id, _name(ir.name, "Geometry"), "Mesh"])
    geometry.add("Properties70")
    geometry.add("GeometryVersion", np.int32(GEOMETRY_VERSION))
    points = mesh.vertices @ frame.T
    geometry.add("Vertices", np.ascontiguousarray(points, np.float64).reshape(-1))
    geometry.add("PolygonVertexIndex", polygon_vertex_index(mesh.face_vertex_counts, mesh.face_vertex_indices))

    layer = Record("Layer", [np.int32(0)])
    layer.add("Version", np.int32(LAYER_VERSION))
    normals = geometry.add("LayerElementNormal", np.int32(0))
    normals.add("Version", np.int32(NORMAL_LAYER_VERSION))
    normals.add("Name", "")
    normals.add("MappingInformationType", "ByPolygonVertex")
    normals.add("ReferenceInformationType", "Direct")
    per_vertex = vertex_normals(points, mesh.triangles, fallback=(0.0, 0.0, 1.0))
    normals.add("Normals", np.ascontiguousarray(per_vertex[mesh.face_vertex_indices], np.float64).reshape(-1))
    element = layer.add("LayerElement")
    element.add("Type", "LayerElementNormal")
    element.add("TypedIndex", np.int32(0))
    if mesh.uvs is not None:
        uv = geometry.add("LayerElementUV", np.int32(0))
        uv.add("Version", np.int32(UV_LAYER_VERSION))
        uv.add("Name", UV_SET_NAME)
        uv.add("MappingInformationType", "ByPolygonVertex")
        uv.add("ReferenceInformationType", "IndexToDirect")
        uv.add("UV", np.ascontiguousarray(mesh.uvs, np.float64).reshape(-1))
        uv.add("UVIndex", _int32(mesh.uv_indices, "UV index"))
        element = layer.add("LayerElement")
        element.add("Type", "LayerElementUV")
        element.add("TypedIndex", np.int32(0))
    # Polygon groups (OBJ usemtl, glTF primitives, USD subsets) become material slots: one Material per
    # group, indexed by polygon. A mesh always has at least one group.
    material = geometry.add("LayerElementMaterial", np.int32(0))
    material.add("Version", np.int32(MATERIAL_LAYER_VERSION))
    material.add("Name", "")
    material.add("MappingInformationType", "ByPolygon")
    material.add("ReferenceInformationType", "IndexToDirect")
    material.add("Materials", _int32(mesh.polygon_groups, "polygon group"))
    element = layer.add("LayerElement")
    element.add("Type", "LayerElementMaterial")
    element.add("TypedIndex", np.int32(0))
    geometry.children.append(layer)
    return geometry


def _material(name: str, material_id: np.int64) -> Record:
    material = Record("Material", [material_id, _name(name, "Material"), ""])
    material.add("Version", np.int32(MATERIAL_VERSION))
    material.add("ShadingModel", "lambert")
    material.add("MultiLayer", np.int32(0))
    props = material.add("Properties70")
    _p(props, "DiffuseColor", "Color", "", "A", 0.8, 0.8, 0.8)
    return material


def _channel(name: str, channel_id: np.int64) -> Record:
    channel = Record("Deformer", [channel_id, _name(name, "SubDeformer"), "BlendShapeChannel"])
    channel.add("Version", np.int32(DEFORMER_VERSION))
    channel.add("DeformPercent", 0.0)
    # One Shape per channel, fully reached at 100 % (FBX SDK semantics); Blender reads a single value as
    # "every index at full weight".
    channel.add("FullWeights", np.array([100.0]))
    props = channel.add("Properties70")
    _p(props, "DeformPercent", "Number", "", "A", 0.0)
    return channel


def _shape(name: str, shape_id: np.int64, indices: np.ndarray, offsets: np.ndarray) -> Record:
    """A sparse Shape: (K,) vertex indices and their (K, 3) offsets; normals zero (importers recompute)."""
    if len(indices) == 0:
        # An empty Indexes array trips Blender's importer; one zero offset is the same shape.
        indices, offsets = np.zeros(1, np.int64), np.zeros((1, 3), np.float32)
    shape = Record("Geometry", [shape_id, _name(name, "Geometry"), "Shape"])
    shape.add("Version", np.int32(DEFORMER_VERSION))
    shape.add("Indexes", _int32(indices, "shape index"))
    vertices = np.ascontiguousarray(offsets, np.float64).reshape(-1)
    shape.add("Vertices", vertices)
    shape.add("Normals", np.zeros_like(vertices))
    return shape


# ---------------------------------------------------------------------------------------------- arrays
def polygon_vertex_index(counts: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """FBX ``PolygonVertexIndex``: (N,) int32 corners, each polygon's last corner stored as ``-(i + 1)``.

    Args:
        counts: (P,) corners per polygon.
        corners: (N,) vertex index of each corner, polygons concatenated.
    """
    out = _int32(corners, "vertex index").copy()
    last = np.cumsum(np.asarray(counts, np.int64)) - 1
    out[last] = ~out[last]  # ~i == -(i + 1)
    return out


def _int32(values: np.ndarray, what: str) -> np.ndarray:
    values = np.asarray(values)
    if len(values) and (values.min() < 0 or values.max() > np.iinfo(np.int32).max):
        raise ExportError(f"FBX stores {what}s as int32; got a value out of range")
    return values.astype(np.int32)


EXPORTERS = {"fbx": Exporter("fbx", (".fbx",), export_fbx)}
