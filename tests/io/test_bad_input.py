"""Every kind of bad input gives a MeshLoadError whose message names the file and the reason."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from pxr import Usd, UsdGeom, Vt

from facerig.errors import FacerigError, MeshLoadError
from facerig.io import SUPPORTED_EXTENSIONS, LoadLimits, load_mesh
from hostile_corpus import gltf_document

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00" + bytes(range(256)) * 4
TRIANGLE_OBJ = "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n"


def expect_error(path: Path, reason: str, **kwargs) -> MeshLoadError:
    with pytest.raises(MeshLoadError) as info:
        load_mesh(path, **kwargs)
    message = str(info.value)
    assert path.name in message, message
    assert reason in message, message
    assert isinstance(info.value, FacerigError) and info.value.path is not None
    return info.value


def ply_text(vertices: str, faces: str, n_vertices: int, n_faces: int, fmt: str = "ascii") -> str:
    return (
        f"ply\nformat {fmt} 1.0\nelement vertex {n_vertices}\nproperty float x\nproperty float y\nproperty float z\n"
        f"element face {n_faces}\nproperty list uchar int vertex_indices\nend_header\n{vertices}{faces}"
    )


def binary_ply(n_faces_declared: int = 1, index: int = 2, nan: bool = False) -> bytes:
    head = ply_text("", "", 3, n_faces_declared, "binary_little_endian").encode()
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], "<f4")
    if nan:
        vertices[1, 1] = np.nan
    return head + vertices.tobytes() + bytes([3]) + np.array([0, 1, index], "<i4").tobytes()


def usd_stage(path: Path, points, counts, indices) -> Path:
    stage = Usd.Stage.CreateNew(str(path))
    mesh = UsdGeom.Mesh.Define(stage, "/Root/M")
    stage.SetDefaultPrim(stage.GetPrimAtPath("/Root"))
    if points is not None:
        mesh.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(np.asarray(points, np.float32)))
    if counts is not None:
        mesh.CreateFaceVertexCountsAttr(counts)
        mesh.CreateFaceVertexIndicesAttr(indices)
    stage.Save()
    return path


# name -> (file name, content: bytes | str | callable(path) writing it, expected reason)
Writer = Callable[[Path], None]
CASES: dict[str, tuple[str, bytes | str | Writer | None, str]] = {
    # ------------------------------------------------------------------ any format
    "missing file": ("nothing.obj", None, "file not found"),
    "directory": ("folder.obj", lambda p: p.mkdir(), "is a directory"),
    "unsupported extension": ("head.stl", "solid x\n", "unsupported extension '.stl'; supported: .fbx, .glb, .gltf, .obj"),
    "no extension": ("head", TRIANGLE_OBJ, "no file extension"),
    "empty obj": ("empty.obj", b"", "file is empty"),
    "empty ply": ("empty.ply", b"", "file is empty"),
    "empty glb": ("empty.glb", b"", "file is empty"),
    "empty usda": ("empty.usda", b"", "file is empty"),
    # ------------------------------------------------------------------ OBJ
    "obj vertices only": ("cloud.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\n", "3 vertices but no faces"),
    "obj text that is not a mesh": ("notes.obj", "hello, this is a README\n", "no vertex ('v') lines"),
    "obj nan": ("nan.obj", TRIANGLE_OBJ.replace("v 1 0 0", "v nan 0 0"), "1 vertices have NaN or infinite"),
    "obj inf": ("inf.obj", TRIANGLE_OBJ.replace("v 1 0 0", "v 1e999 0 0"), "NaN or infinite"),
    "obj index out of range": ("range.obj", TRIANGLE_OBJ.replace("f 1 2 3", "f 1 2 9"), "line 4: vertex index 9 is out of range (3 defined)"),
    "obj zero index": ("zero.obj", TRIANGLE_OBJ.replace("f 1 2 3", "f 0 1 2"), "index 0 is invalid (OBJ indices start at 1)"),
    "obj relative index before the first vertex": ("rel.obj", TRIANGLE_OBJ.replace("f 1 2 3", "f -4 1 2"), "vertex index -4 is out of range"),
    "obj malformed index": ("bad.obj", TRIANGLE_OBJ.replace("f 1 2 3", "f 1 2 x"), "line 4: cannot read 'x' as a number"),
    "obj float index": ("float.obj", TRIANGLE_OBJ.replace("f 1 2 3", "f 1 2 3.5"), "cannot read '3.5'"),
    "obj malformed coordinate": ("coord.obj", TRIANGLE_OBJ.replace("v 1 0 0", "v 1 0 zero"), "line 2: cannot read 'zero'"),
    "obj corner with four fields": ("slash.obj", TRIANGLE_OBJ.replace("f 1 2 3", "f 1/1/1/1 2 3"), "malformed face"),
    "obj uv index out of range": ("uv.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nf 1/1 2/2 3/1\n", "texture index 2 is out of range"),
    "obj mixed corners in a face": ("mixed.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nf 1/1 2 3/1\n", "some corners of the face"),
    "obj two-corner face": ("edge.obj", "v 0 0 0\nv 1 0 0\nf 1 2\n", "a face needs at least 3 corners, got 2"),
    "obj only degenerate faces": ("flat.obj", "v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\nf 1 1 2\n", "every face is degenerate"),
    "png renamed obj": ("picture.obj", PNG, "it looks like a PNG image"),
    "binary junk obj": ("junk.obj", bytes([7, 0, 255, 13, 0, 1]) * 100, "it contains binary data"),
    # ------------------------------------------------------------------ PLY
    "png renamed ply": ("picture.ply", PNG, "not a PLY file"),
    "ply without end_header": ("nohead.ply", "ply\nformat ascii 1.0\nelement vertex 3\n", "no 'end_header'"),
    "ply unknown type": ("type.ply", "ply\nformat ascii 1.0\nelement vertex 1\nproperty float128 x\nend_header\n", "header line 4: malformed"),
    "ply unknown format": ("fmt.ply", "ply\nformat binary_middle_endian 1.0\nend_header\n", "unknown format"),
    "ply no faces": ("cloud.ply", ply_text("0 0 0\n1 0 0\n0 1 0\n", "", 3, 0), "3 vertices but no faces"),
    "ply no xyz": ("noxyz.ply", "ply\nformat ascii 1.0\nelement vertex 1\nproperty float a\nelement face 0\nend_header\n1\n", "no x, y, z"),
    "ply ascii truncated": ("short.ply", ply_text("0 0 0\n1 0 0\n0 1 0\n", "3 0 1 2\n", 3, 2), "truncated: element 'face' has 2 rows, the file has 1"),
    "ply ascii malformed row": ("row.ply", ply_text("0 0 0\n1 0 0\n0 1 0\n", "4 0 1 2\n", 3, 1), "line 13: malformed 'face' row"),
    "ply ascii non-number": ("nn.ply", ply_text("0 0 0\n1 zero 0\n0 1 0\n", "3 0 1 2\n", 3, 1), "malformed 'vertex' row"),
    "ply binary truncated": ("cut.ply", binary_ply()[:-5], "truncated"),
    "ply binary missing face": ("cut2.ply", binary_ply(n_faces_declared=2), "truncated"),
    "ply index out of range": ("range.ply", binary_ply(index=7), "face vertex index 7 out of range for 3 vertices"),
    "ply nan": ("nan.ply", binary_ply(nan=True), "NaN or infinite"),
    # ------------------------------------------------------------------ glTF / GLB
    "png renamed glb": ("picture.glb", PNG, "it looks like a PNG image"),
    "gltf malformed json": ("broken.gltf", '{"asset": {"version": "2.0"}, "meshes": [', "malformed glTF JSON"),
    "gltf json that is not gltf": ("other.gltf", '{"name": "not a model"}', "not a glTF 2.0 document"),
    "gltf missing accessor": ("ref.gltf", json.dumps(gltf_document(accessors=[])), "accessors[0] does not exist"),
    "gltf buffer outside its folder": (
        "escape.gltf",
        json.dumps(gltf_document(buffers=[{"uri": "../../etc/passwd", "byteLength": 36}])),
        "outside the file's folder",
    ),
    "gltf missing buffer file": (
        "lost.gltf", json.dumps(gltf_document(buffers=[{"uri": "lost.bin", "byteLength": 36}])), "buffer 0 (lost.bin): file not found"
    ),  # fmt: skip
    "gltf short buffer": (
        "short.gltf",
        json.dumps(gltf_document(bufferViews=[{"buffer": 0, "byteLength": 48}])),
        "bufferView 0 ends at byte 48, its buffer has 36",
    ),
    "gltf points only": (
        "points.gltf",
        json.dumps(gltf_document(meshes=[{"primitives": [{"attributes": {"POSITION": 0}, "mode": 0}]}])),
        "no triangle primitives",
    ),
    "gltf draco": ("draco.gltf", json.dumps(gltf_document(extensionsRequired=["KHR_draco_mesh_compression"])), "compressed meshes"),
    "gltf nan": (
        "nan.gltf",
        json.dumps(gltf_document(buffers=[{"uri": "data:application/octet-stream;base64,"
                                           + __import__("base64").b64encode(np.full(9, np.nan, np.float32).tobytes()).decode(),
                                           "byteLength": 36}])),  # fmt: skip
        "NaN or infinite",
    ),
    # ------------------------------------------------------------------ USD
    "png renamed usda": ("picture.usda", PNG, "not a USD file"),
    "usda syntax error": ("syntax.usda", '#usda 1.0\ndef Mesh "M" {\n  point3f[] points = [(0, 0, 0)\n', "USD cannot open it"),
    "usd without meshes": ("empty_stage.usda", '#usda 1.0\ndef Xform "Root" {\n}\n', "no Mesh prims under /"),
    "usd mesh without faces": ("cloud.usda", lambda p: usd_stage(p, [[0, 0, 0], [1, 0, 0]], None, None), "no faces"),
    "usd index out of range": ("range.usda", lambda p: usd_stage(p, [[0, 0, 0], [1, 0, 0], [0, 1, 0]], [3], [0, 1, 5]), "/Root/M: face vertex index out of range"),
    "usd nan": ("nan.usda", lambda p: usd_stage(p, [[0, 0, 0], [np.nan, 0, 0], [0, 1, 0]], [3], [0, 1, 2]), "NaN or infinite"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_raises_mesh_load_error_naming_the_file(tmp_path: Path, case: str) -> None:
    name, content, reason = CASES[case]
    path = tmp_path / name
    if callable(content):
        content(path)
    elif content is not None:
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    expect_error(path, reason)


def test_truncated_obj_cut_mid_line(tmp_path: Path, heads_dir: Path) -> None:
    text = (heads_dir / "suzanne.obj").read_text()
    last_face = text.rindex("\nf ") + 1
    # "f 14//14 8//8 6/" : cut right after a slash of the third corner, as an interrupted copy leaves it.
    third = last_face
    for _ in range(3):
        third = text.index(" ", third) + 1
    path = tmp_path / "cut_face.obj"
    path.write_text(text[: text.index("/", third) + 1])
    expect_error(path, "malformed face")
    path.write_text(text[: text.index("/", last_face) + 1])  # "f 14/": one corner left
    expect_error(path, "a face needs at least 3 corners, got 1 (truncated file?)")
    cut_vertex = text.index("\nv ") + 1 + len("v 0.4")
    path = tmp_path / "cut_vertex.obj"
    path.write_text(text[:cut_vertex])
    expect_error(path, "'v' needs at least 3 values, got 1 (truncated file?)")


@pytest.mark.parametrize("keep", [10, 100, 0.5, -1])
def test_truncated_glb(tmp_path: Path, heads_dir: Path, keep: float) -> None:
    data = (heads_dir / "robot_expressive.glb").read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else (len(data) + keep if keep < 0 else keep)
    path = tmp_path / "robot_cut.glb"
    path.write_bytes(data[:n])
    expect_error(path, "truncated")


def test_truncated_usdc(tmp_path: Path, heads_dir: Path) -> None:
    layer = usd_stage(tmp_path / "whole.usdc", np.random.default_rng(0).random((300, 3)), [3] * 100, list(range(300)))
    data = layer.read_bytes()
    path = tmp_path / "cut.usdc"
    path.write_bytes(data[: len(data) // 2])
    expect_error(path, "binary USD is corrupt: possibly truncated")


def test_glb_with_bad_version_and_missing_json(tmp_path: Path) -> None:
    path = tmp_path / "v1.glb"
    path.write_bytes(struct.pack("<4sII", b"glTF", 1, 20) + bytes(8))
    expect_error(path, "GLB version 1 is not supported")
    path = tmp_path / "nojson.glb"
    path.write_bytes(struct.pack("<4sII", b"glTF", 2, 20) + struct.pack("<II", 0, 0x004E4942))
    expect_error(path, "GLB has no JSON chunk")


def test_gltf_select_matching_nothing_lists_node_names(tmp_path: Path, heads_dir: Path) -> None:
    error = expect_error(heads_dir / "robot_expressive.glb", "no mesh node or ancestor named like 'Tail'", select="Tail")
    assert "Head" in error.reason and "Torso" in error.reason


@pytest.mark.parametrize("suffix", [".obj", ".ply", ".gltf", ".usda"])
def test_vertex_limit(tmp_path: Path, heads_dir: Path, suffix: str) -> None:
    source = load_mesh(heads_dir / "suzanne.obj")
    path = tmp_path / f"monkey{suffix}"
    if suffix == ".obj":
        path.write_bytes((heads_dir / "suzanne.obj").read_bytes())
    elif suffix == ".ply":
        rows = "".join(f"{x} {y} {z}\n" for x, y, z in source.vertices)
        faces = "".join(f"3 {a} {b} {c}\n" for a, b, c in source.triangles)
        path.write_text(ply_text(rows, faces, source.n_vertices, len(source.triangles)))
    elif suffix == ".gltf":
        path.write_text(json.dumps(gltf_document()))
    else:
        usd_stage(path, source.vertices, source.face_vertex_counts.tolist(), source.face_vertex_indices.tolist())
    limit = 2
    expect_error(path, f"over the limit of {limit:,} (LoadLimits.max_vertices)", limits=LoadLimits(max_vertices=limit))
    assert load_mesh(path, limits=LoadLimits(max_vertices=507)).n_vertices in (3, 507)


def test_file_size_limit(tmp_path: Path, heads_dir: Path) -> None:
    path = tmp_path / "spot.obj"
    path.write_bytes((heads_dir / "spot.obj").read_bytes())
    expect_error(path, "over the limit of 1,000 (LoadLimits.max_file_bytes)", limits=LoadLimits(max_file_bytes=1000))


def test_invalid_up_axis(tmp_path: Path) -> None:
    path = tmp_path / "tri.obj"
    path.write_text(TRIANGLE_OBJ)
    expect_error(path, "invalid up axis 'sideways'", up="sideways")


def test_supported_extensions_are_listed() -> None:
    assert SUPPORTED_EXTENSIONS == (".fbx", ".glb", ".gltf", ".obj", ".ply", ".usd", ".usda", ".usdc", ".usdz")
