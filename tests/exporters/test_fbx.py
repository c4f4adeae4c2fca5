"""Binary FBX 7.4 writer: container encoding, scene content read back by ufbx, determinism.

ufbx (the C library behind many engines' FBX import, PyPI ``ufbx``) is the independent reader. Its Python
binding (0.0.5) can crash the interpreter with a segfault when a scene is freed (reproduced with Blender's
own FBX files too), so :func:`read_fbx` reads in a forked child that copies what the tests need into plain
Python/numpy, sends it back and exits without freeing the scene.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import struct
import zlib

import numpy as np
import pytest
import ufbx

from facerig.errors import ExportError
from facerig.exporters import EXPORTERS, export_rig
from facerig.exporters.common import SIDECAR_SUFFIX, gather
from facerig.exporters.fbx import export_fbx, polygon_vertex_index, to_fbx_frame
from facerig.exporters.fbx_binary import HEADER_MAGIC, Record, encode_document
from facerig.mesh import Mesh
from facerig.rig import Rig

AXIS = ufbx.CoordinateAxis
OFFSET_TOL = 1e-5  # rig units; offsets are stored as float64 from float32 deltas
BLENDER_AXES = (AXIS.POSITIVE_X, AXIS.POSITIVE_Z, AXIS.NEGATIVE_Y)  # right, up, front: +Z up, face looks -Y


def in_file_frame(rig: Rig, array: np.ndarray) -> np.ndarray:
    """(..., 3) points or offsets of ``rig`` as the FBX stores them: +Z up, metres."""
    return array @ to_fbx_frame(gather(rig)).T


# ---------------------------------------------------------------------------------------------- helpers
def read_fbx(data: bytes) -> dict:
    """Everything the tests check, read by ufbx (strict mode) in a forked child: see the module docstring."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_read_in_child, args=(data, sender))
    child.start()
    sender.close()
    result = receiver.recv()
    child.join(timeout=60)
    if isinstance(result, BaseException):
        raise result
    assert result["version"] == 7400 and not result["ascii"] and result["n_meshes"] == 1
    return result


def _read_in_child(data: bytes, sender) -> None:
    try:
        scene = ufbx.load_memory(data, strict=True)
        sender.send(_extract(scene))
    except BaseException as exc:  # noqa: BLE001 - any failure goes to the parent, which re-raises it
        sender.send(exc)
    sender.close()
    os._exit(0)  # skip freeing the scene (the binding's crash) and the parent's inherited atexit handlers


def _extract(scene) -> dict:
    """Plain copies of a ufbx scene's facts; lists are indexed, never iterated (another binding crash)."""
    settings = scene.settings
    mesh = scene.meshes[0]
    faces = np.asarray(mesh.faces)  # (P, 2): first index, corner count
    out = {
        "version": scene.metadata.version,
        "ascii": scene.metadata.ascii,
        "n_meshes": len(scene.meshes),
        "unit_meters": settings.unit_meters,
        "axes": (settings.axes.right, settings.axes.up, settings.axes.front),
        "vertices": np.asarray(mesh.vertices, np.float64),
        "face_sizes": faces[:, 1].astype(np.int64),
        "corners": np.asarray(mesh.vertex_indices, np.int64),
        "uv_sets": [mesh.uv_sets[i].name for i in range(len(mesh.uv_sets))],
        "uvs": np.asarray(mesh.vertex_uv.values)[np.asarray(mesh.vertex_uv.indices)] if mesh.vertex_uv.exists else None,
        "normals": (np.asarray(mesh.vertex_normal.values)[np.asarray(mesh.vertex_normal.indices)]
                    if mesh.vertex_normal.exists else None),
        "materials": [mesh.materials[i].name for i in range(len(mesh.materials))],
        "face_material": np.asarray(mesh.face_material, np.int64),
        "shapes": {},
        "shape_order": [],
        "properties": {},
    }
    deformers = mesh.blend_deformers
    if len(deformers):
        channels = deformers[0].channels
        for i in range(len(channels)):
            channel = channels[i]
            shape = channel.target_shape
            out["shape_order"].append(channel.name)
            out["shapes"][channel.name] = {
                "shape_name": shape.name,
                "weight": channel.weight,
                "keyframes": [channel.keyframes[k].target_weight for k in range(len(channel.keyframes))],
                "indices": np.asarray(shape.offset_vertices, np.int64),
                "offsets": np.asarray(shape.position_offsets, np.float64).reshape(-1, 3),
            }
    node = mesh.instances[0]
    for name in ("facerig", "facerig_correctives"):
        prop = node.props.find_prop(name)
        out["properties"][name] = None if prop is None else prop.value_str
    return out


def dense_offsets(shape: dict, n_vertices: int) -> np.ndarray:
    dense = np.zeros((n_vertices, 3))
    dense[shape["indices"]] = shape["offsets"]
    return dense


def parse_records(data: bytes, offset: int, end: int) -> tuple[list[tuple], int]:
    """A minimal independent FBX 7.4 decoder: [(name, props, children)] of one nested list."""
    records = []
    while offset < end:
        end_offset, n_props, props_len, name_len = struct.unpack_from("<3IB", data, offset)
        if end_offset == 0:  # the null record closing this list
            return records, offset + 13
        name = data[offset + 13 : offset + 13 + name_len].decode()
        cursor = offset + 13 + name_len
        props_end = cursor + props_len
        props = []
        for _ in range(n_props):
            code = chr(data[cursor])
            cursor += 1
            scalar = {"C": "<?", "Y": "<h", "I": "<i", "L": "<q", "F": "<f", "D": "<d"}
            if code in scalar:
                (value,) = struct.unpack_from(scalar[code], data, cursor)
                cursor += struct.calcsize(scalar[code])
            elif code in "SR":
                (length,) = struct.unpack_from("<I", data, cursor)
                value = data[cursor + 4 : cursor + 4 + length]
                value = value.decode() if code == "S" else value
                cursor += 4 + length
            else:
                count, encoding, stored = struct.unpack_from("<3I", data, cursor)
                raw = data[cursor + 12 : cursor + 12 + stored]
                raw = zlib.decompress(raw) if encoding == 1 else raw
                dtype = {"b": np.bool_, "i": "<i4", "l": "<i8", "f": "<f4", "d": "<f8"}[code]
                value = (np.frombuffer(raw, dtype=dtype), encoding)
                assert len(value[0]) == count
                cursor += 12 + stored
            props.append((code, value))
        assert cursor == props_end
        children = []
        if props_end < end_offset:
            children, cursor = parse_records(data, props_end, end_offset)
        assert cursor == end_offset, f"record {name} ends at {cursor}, header says {end_offset}"
        records.append((name, props, children))
        offset = end_offset
    return records, offset


def find(records: list[tuple], name: str) -> list[tuple]:
    return [r for r in records if r[0] == name]


@pytest.fixture
def quad_rig() -> Rig:
    """Two quads and a triangle, two groups, UVs, three shapes (one a corrective), Y-up centimetres."""
    vertices = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [2, 0, 0], [2, 1, 0], [3, 0.5, 0]], float)
    corners = [0, 1, 2, 3, 1, 4, 5, 2, 4, 6, 5]
    mesh = Mesh(
        vertices, [4, 4, 3], corners,
        uvs=np.array([[0, 0], [0.5, 0], [0.5, 1], [0, 1], [1, 0], [1, 1], [0.9, 0.5]], np.float32),
        uv_indices=corners, polygon_groups=[0, 0, 1], group_names=("skin", "eye"),
        up_axis="Y", meters_per_unit=0.01, name="head",
    )
    deltas = np.zeros((3, 7, 3), np.float32)
    deltas[0, 2] = [0, 0, 1.25]
    deltas[1, [5, 6]] = [[0.5, 0, 0], [0, -0.25, 0.125]]
    deltas[2, 2] = [0, 0.1, 0]
    names = ("JawDrop", "Pucker", "JawDrop_Pucker")
    return Rig(mesh, names, deltas, {"JawDrop_Pucker": ("JawDrop", "Pucker")})


# ---------------------------------------------------------------------------------------------- container
def test_encoder_writes_every_property_type_and_valid_offsets() -> None:
    big = np.arange(100, dtype=np.float64)  # 800 bytes: compressed
    small = np.arange(4, dtype=np.int32)  # 16 bytes: stored raw
    scalars = [True, np.int16(-7), np.int32(-70000), np.int64(2**40), np.float32(1.5), 2.25, "txt", b"\x00\x01"]
    root = Record("Root", scalars)
    root.add("Arrays", big, small, np.array([True, False]), np.arange(3, dtype=np.int64), np.ones(2, np.float32))
    root.add("Empty")
    data = encode_document([root, Record("Second", [np.int32(1)])])

    assert data[:23] == HEADER_MAGIC and struct.unpack_from("<I", data, 23)[0] == 7400
    records, end = parse_records(data, 27, len(data))
    assert [r[0] for r in records] == ["Root", "Second"]
    (name, props, children) = records[0]
    assert [code for code, _ in props] == list("CYILFDSR")
    assert [value for _, value in props] == [True, -7, -70000, 2**40, 1.5, 2.25, "txt", b"\x00\x01"]
    arrays = children[0][1]
    assert [code for code, _ in arrays] == ["d", "i", "b", "l", "f"]
    np.testing.assert_array_equal(arrays[0][1][0], big)
    assert arrays[0][1][1] == 1 and arrays[1][1][1] == 0  # zlib only above 128 bytes
    np.testing.assert_array_equal(arrays[1][1][0], small)
    assert children[1] == ("Empty", [], [])  # a property-less record still closes with a null record
    # Footer: 16-byte aligned version, 120 zeros, 16-byte magic.
    tail = data[end:]
    assert struct.unpack_from("<I", data, len(data) - 140)[0] == 7400
    assert (len(data) - 140) % 16 == 0 and tail[-136:-16] == b"\x00" * 120


def test_encoder_rejects_untyped_int() -> None:
    with pytest.raises(TypeError, match="explicit numpy type"):
        encode_document([Record("Bad", [3])])


def test_polygon_vertex_index_negates_last_corner() -> None:
    pvi = polygon_vertex_index(np.array([4, 3]), np.array([0, 1, 2, 3, 3, 2, 4]))
    assert pvi.dtype == np.int32
    assert pvi.tolist() == [0, 1, 2, -4, 3, 2, -5]


# ---------------------------------------------------------------------------------------------- scene
def test_quad_rig_reads_back_through_ufbx(quad_rig: Rig) -> None:
    ir = gather(quad_rig)
    got = read_fbx(export_fbx(ir))
    mesh = quad_rig.neutral

    # Blender's frame: the Y-up centimetre quad lies in the XZ plane, in metres.
    np.testing.assert_allclose(got["vertices"], in_file_frame(quad_rig, mesh.vertices), rtol=0, atol=1e-15)
    np.testing.assert_allclose(got["vertices"][6], [0.03, 0.0, 0.005], atol=1e-15)
    # Normals: the flat quad faces +Z in the rig (towards the viewer), so -Y in the file.
    np.testing.assert_allclose(got["normals"], np.tile([0.0, -1.0, 0.0], (11, 1)), atol=1e-12)
    assert got["face_sizes"].tolist() == [4, 4, 3]
    assert got["corners"].tolist() == mesh.face_vertex_indices.tolist()
    assert got["uv_sets"] == ["UVMap"]
    np.testing.assert_allclose(got["uvs"], mesh.uvs[mesh.uv_indices], atol=1e-7)
    assert got["materials"] == ["skin", "eye"] and got["face_material"].tolist() == [0, 0, 1]
    assert got["unit_meters"] == pytest.approx(1.0)
    assert got["axes"] == BLENDER_AXES

    assert got["shape_order"] == ["JawDrop", "Pucker", "JawDrop_Pucker"]
    for k, name in enumerate(got["shape_order"]):
        shape = got["shapes"][name]
        assert shape["shape_name"] == name and shape["weight"] == 0.0 and shape["keyframes"] == [1.0]
        np.testing.assert_array_equal(shape["indices"], np.flatnonzero(np.abs(quad_rig.deltas[k]).max(1)))
        expected = in_file_frame(quad_rig, quad_rig.deltas[k])
        np.testing.assert_allclose(dense_offsets(shape, 7), expected, atol=OFFSET_TOL * 0.01)
    recipe = json.loads(got["properties"]["facerig_correctives"])
    assert recipe == {"JawDrop_Pucker": {"drivers": ["JawDrop", "Pucker"], "rule": "product"}}
    metadata = json.loads(got["properties"]["facerig"])
    assert metadata["shapes"] == list(quad_rig.shape_names) and metadata["units"]["meters_per_unit"] == 0.01
    assert metadata["conversion"]["from_meters_per_unit"] == 0.01 and metadata["conversion"]["from_up_axis"] == "Y"


def test_z_up_metres_rig_writes_its_axes_and_unit(quad_rig: Rig) -> None:
    mesh = Mesh(quad_rig.neutral.vertices / 100, [4, 4, 3], quad_rig.neutral.face_vertex_indices,
                up_axis="Z", meters_per_unit=1.0, name="zup")
    rig = Rig(mesh, quad_rig.shape_names, quad_rig.deltas / 100, dict(quad_rig.corrective_recipes))
    data = export_fbx(gather(rig))
    got = read_fbx(data)
    assert got["unit_meters"] == pytest.approx(1.0)
    assert got["axes"] == BLENDER_AXES
    assert got["uvs"] is None and got["materials"] == ["mesh"]
    # Already Blender's frame: stored as they are.
    np.testing.assert_array_equal(got["vertices"], mesh.vertices)
    np.testing.assert_allclose(dense_offsets(got["shapes"]["Pucker"], 7), rig.deltas[1], atol=OFFSET_TOL / 100)
    # The raw GlobalSettings say the same: UnitScaleFactor is centimetres per unit.
    records, _ = parse_records(data, 27, len(data))
    props70 = find(find(records, "GlobalSettings")[0][2], "Properties70")[0][2]
    settings = {p[1][0][1]: p[1][4][1] for p in props70}
    assert settings["UnitScaleFactor"] == 100.0
    axes = [settings[f"{role}Axis{part}"] for role in ("Up", "Front", "Coord") for part in ("", "Sign")]
    assert axes == [2, 1, 1, -1, 0, 1]


def test_object_graph_and_connections(quad_rig: Rig) -> None:
    data = export_fbx(gather(quad_rig))
    records, _ = parse_records(data, 27, len(data))
    objects = find(records, "Objects")[0][2]
    by_id = {r[1][0][1]: (r[0], r[1][1][1].split("\x00\x01"), r[1][2][1]) for r in objects}
    links = [(by_id.get(c[1][1][1]), by_id.get(c[1][2][1])) for c in find(records, "Connections")[0][2]]
    assert all(c[1][0] == ("S", "OO") for c in find(records, "Connections")[0][2])
    kinds = [(child[2], parent[2] if parent else "root") for child, parent in links]
    assert kinds[:2] == [("Mesh", "root"), ("Mesh", "Mesh")]
    assert kinds.count(("BlendShape", "Mesh")) == 1
    assert kinds.count(("BlendShapeChannel", "BlendShape")) == 3 and kinds.count(("Shape", "BlendShapeChannel")) == 3
    channel = next(r for r in objects if r[1][2][1] == "BlendShapeChannel")
    fields = {c[0]: c[1] for c in channel[2]}
    assert fields["Version"] == [("I", 100)] and fields["DeformPercent"] == [("D", 0.0)]
    np.testing.assert_array_equal(fields["FullWeights"][0][1][0], [100.0])
    shape = next(r for r in objects if r[1][2][1] == "Shape")
    normals = {c[0]: c[1][0][1][0] for c in shape[2] if c[0] in ("Vertices", "Normals")}
    assert normals["Normals"].shape == normals["Vertices"].shape and not normals["Normals"].any()


# ---------------------------------------------------------------------------------------------- ICT head
def test_full_ict_head_round_trips(full_rig: Rig) -> None:
    """The whole ICT head (26,719 vertices, quads + triangles, 17 components) with real ICT deltas."""
    ir = gather(full_rig)
    got = read_fbx(export_fbx(ir))
    mesh = full_rig.neutral
    assert len(got["vertices"]) == 26_719
    np.testing.assert_allclose(got["vertices"], in_file_frame(full_rig, mesh.vertices), rtol=0, atol=1e-12)
    assert np.ptp(got["vertices"][:, 2]) == pytest.approx(np.ptp(mesh.vertices[:, 1]) / 100)  # height in metres
    np.testing.assert_allclose(np.linalg.norm(got["normals"], axis=1), 1.0, atol=1e-9)
    # Quads stay quads: the polygon list is the OBJ's own.
    np.testing.assert_array_equal(got["face_sizes"], mesh.face_vertex_counts)
    assert (got["face_sizes"] == 4).sum() > 20_000
    np.testing.assert_allclose(got["uvs"], mesh.uvs[mesh.uv_indices], atol=1e-6)
    assert len(got["materials"]) == len(mesh.group_names) == 12
    assert got["unit_meters"] == pytest.approx(1.0)  # ICT is centimetres (inferred), written as metres
    assert got["shape_order"] == list(full_rig.shape_names) and len(got["shape_order"]) == 10
    worst = 0.0
    for k, (name, shape) in enumerate(zip(full_rig.shape_names, ir.shapes)):
        dense = dense_offsets(got["shapes"][name], mesh.n_vertices)
        worst = max(worst, float(np.abs(dense - in_file_frame(full_rig, full_rig.deltas[k])).max()) * 100)
        if len(shape.indices):  # Indexes are exactly the IR's moving vertices
            np.testing.assert_array_equal(got["shapes"][name]["indices"], shape.indices)
    assert worst < OFFSET_TOL
    # ICT's OBJ rounding noise (1e-5 cm) moves most vertices a little, so shapes are only as sparse as the
    # IR says (checked above); the all-zero Corrugator is one zero offset.
    assert len(got["shapes"]["Corrugator"]["indices"]) == 1 and not got["shapes"]["Corrugator"]["offsets"].any()


def test_export_is_byte_identical_and_registered(full_rig: Rig, tmp_path) -> None:
    assert "fbx" in EXPORTERS
    first = export_rig(full_rig, tmp_path / "a" / "head.fbx")
    second = export_rig(full_rig, tmp_path / "b" / "head.fbx")
    data = first.read_bytes()
    assert data == second.read_bytes()
    assert data == export_fbx(gather(full_rig))
    assert data.startswith(HEADER_MAGIC)
    sidecar = json.loads((tmp_path / "a" / f"head.fbx{SIDECAR_SUFFIX}").read_text())
    assert sidecar["format"] == "fbx"
    recipe = {"drivers": ["JawDrop", "LeftLipCornerPuller"], "rule": "product"}
    assert sidecar["correctives"] == {"JawDrop_LeftLipCornerPuller": recipe}


def test_unsupported_up_axis_is_an_export_error(quad_rig: Rig) -> None:
    ir = gather(quad_rig)
    object.__setattr__(ir, "up_axis", "X")
    with pytest.raises(ExportError, match="up axis"):
        export_fbx(ir)
