"""A corpus of hostile inputs for facerig's readers: meshes, rig bundles and pose vocabularies.

Each case is a file an attacker or a careless vendor could hand over: references that leave the input's
folder, FIFOs that block whoever opens them, headers and counts that promise gigabytes, JSON nested
thousands deep, values of the wrong type. ``write_corpus(folder)`` writes every case into its own
sub-folder (so that "outside the input's folder" has a sibling to point at) and returns the cases with
the file to load. Used by tests/io/test_hostile_corpus.py and bench/hostile_inputs.py.

    python tests/io/hostile_corpus.py OUTDIR      # write the corpus and list it
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import resource
import signal
import struct
import subprocess
import sys
import time
import tracemalloc
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

TRIANGLE_OBJ = "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n"
USD_TRIANGLE = """#usda 1.0
(
    defaultPrim = "Root"
)
def Xform "Root"
{
    def Mesh "M"
    {
        point3f[] points = [(0, 0, 0), (1, 0, 0), (0, 1, 0)]
        int[] faceVertexCounts = [3]
        int[] faceVertexIndices = [0, 1, 2]
    }
}
"""


@dataclass(frozen=True)
class Case:
    """One hostile input.

    Attributes:
        name: short identifier.
        kind: "mesh" (load_mesh, `facerig info`), "bundle" (Rig.load, `facerig info`), "vocabulary"
            (load_vocabulary, `facerig rig --poses`) or "batch" (`facerig batch` options).
        file: relative path of the input inside the case's folder.
        write: writes the case into its folder.
        reason: a fragment the error message must contain; None when the input is valid and must load.
    """

    name: str
    kind: str
    file: str
    write: Callable[[Path], None]
    reason: str | None


# ---------------------------------------------------------------------------------------------- helpers
def _at(relative: str, make: Callable[[Path], None]) -> Callable[[Path], None]:
    """A writer that creates the folders of ``relative`` inside the case's folder, then ``make(path)`` there."""

    def write(folder: Path) -> None:
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        make(path)

    return write


def _all(*writers: Callable[[Path], None]) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        for writer in writers:
            writer(folder)

    return write


def _text(relative: str, content: str | bytes) -> Callable[[Path], None]:
    return _at(relative, lambda path: path.write_bytes(content.encode() if isinstance(content, str) else content))


def _fifo(relative: str, *others: Callable[[Path], None]) -> Callable[[Path], None]:
    return _all(_at(relative, os.mkfifo), *others)


def _sparse(relative: str, size: int) -> Callable[[Path], None]:
    """A file of ``size`` bytes that takes no disk space (the readers must refuse it by its size)."""

    def make(path: Path) -> None:
        with open(path, "wb") as handle:
            handle.truncate(size)

    return _at(relative, make)


def _symlink(relative: str, target: str) -> Callable[[Path], None]:
    return _at(relative, lambda path: os.symlink(target, path))


_XYZ = "property float x\nproperty float y\nproperty float z\n"


def _ply(body: bytes, *, fmt: str = "binary_little_endian", n_vertices: int = 3, n_faces: int = 1,
         count_type: str = "uchar", vertex_props: str = _XYZ) -> bytes:
    header = (
        f"ply\nformat {fmt} 1.0\nelement vertex {n_vertices}\n{vertex_props}"
        f"element face {n_faces}\nproperty list {count_type} int vertex_indices\nend_header\n"
    )
    return header.encode() + body


_PLY_VERTICES = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], "<f4").tobytes()


def gltf_document(**overrides) -> dict:
    """One triangle in a data-URI buffer; ``overrides`` replace top-level keys."""
    blob = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32).tobytes()
    uri = "data:application/octet-stream;base64," + base64.b64encode(blob).decode()
    document = {
        "asset": {"version": "2.0"},
        "buffers": [{"uri": uri, "byteLength": 36}],
        "bufferViews": [{"buffer": 0, "byteLength": 36}],
        "accessors": [{"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3"}],
        "meshes": [{"name": "tri", "primitives": [{"attributes": {"POSITION": 0}}]}],
        "nodes": [{"name": "n", "mesh": 0}],
        "scenes": [{"nodes": [0]}],
    }
    document.update(overrides)
    return document


def _glb(document: dict, blob: bytes = b"") -> bytes:
    json_chunk = json.dumps(document).encode()
    json_chunk += b" " * (-len(json_chunk) % 4)
    chunks = struct.pack("<II", len(json_chunk), 0x4E4F534A) + json_chunk
    if blob:
        blob += b"\0" * (-len(blob) % 4)
        chunks += struct.pack("<II", len(blob), 0x004E4942) + blob
    return b"glTF" + struct.pack("<II", 2, 12 + len(chunks)) + chunks


def _zero_filled_glb(count: int) -> bytes:
    """A GLB whose POSITION accessor has no bufferView: ``count`` zero vertices, 600-odd bytes of file."""
    return _glb(gltf_document(
        buffers=[], bufferViews=[],
        accessors=[{"componentType": 5126, "count": count, "type": "VEC3"}],
    ))  # fmt: skip


def _external_gltf(uri: str, byte_length: int = 36) -> str:
    return json.dumps(gltf_document(buffers=[{"uri": uri, "byteLength": byte_length}]))


def _shared_buffer_gltf(n_buffers: int, size: int) -> str:
    """``n_buffers`` buffers all naming one file of ``size`` bytes, one accessor reading each."""
    return json.dumps(gltf_document(
        buffers=[{"uri": "big.bin", "byteLength": size}] * n_buffers,
        bufferViews=[{"buffer": i, "byteLength": 36} for i in range(n_buffers)],
        accessors=[{"bufferView": i, "componentType": 5126, "count": 3, "type": "VEC3"} for i in range(n_buffers)],
        meshes=[{"name": "tri", "primitives": [{"attributes": {"POSITION": i}} for i in range(n_buffers)]}],
    ))  # fmt: skip


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _usda(metadata: str = "", body: str = "") -> str:
    return USD_TRIANGLE.replace('    defaultPrim = "Root"\n', f'    defaultPrim = "Root"\n{metadata}').replace(
        'def Xform "Root"\n{\n', f'def Xform "Root"\n{{\n{body}'
    )


def _usd_reference(arc: str) -> str:
    """A layer whose /Root/Extra prim composes ``arc`` (a references or payload clause)."""
    return _usda(body=f"    def Xform \"Extra\" (\n        {arc}\n    )\n    {{\n    }}\n")


def _usd_clip(asset: str) -> str:
    clip = (
        '    def Xform "C" (\n        clips = {\n            dictionary default = {\n'
        f"                asset[] assetPaths = [@{asset}@]\n"
        '                string primPath = "/Root"\n                double2[] active = [(0, 0)]\n'
        "            }\n        }\n    )\n    {\n    }\n"
    )
    return _usda(body=clip)


def _usdz(members: dict[str, str]) -> bytes:
    """A usdz package: stored (uncompressed) members, as USD requires."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def _triangles_usdc(path: Path, n_faces: int) -> None:
    """A crate file of ``n_faces`` triangles on 3 points: its face arrays compress to almost nothing."""
    from pxr import Usd, UsdGeom, Vt

    path.parent.mkdir(parents=True, exist_ok=True)
    stage = Usd.Stage.CreateNew(str(path))
    mesh = UsdGeom.Mesh.Define(stage, "/Root/M")
    stage.SetDefaultPrim(stage.GetPrimAtPath("/Root"))
    mesh.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)))
    mesh.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(np.full(n_faces, 3, np.int32)))
    mesh.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(np.tile(np.arange(3, dtype=np.int32), n_faces)))
    stage.Save()


def _expanding_usdc(n_faces: int) -> Callable[[Path], None]:
    """A small crate file that really holds ``n_faces`` triangles (their arrays compress ~2,000 to 1)."""
    return lambda folder: _triangles_usdc(folder / "expand.usdc", n_faces)


def _declaring_usdc(relative: str, faces: int = 0, corners: int = 0) -> Callable[[Path], None]:
    """A crate file of 100,003 triangles whose face arrays declare ``faces`` counts / ``corners`` indices
    (0: the true length): only the element count before the array is rewritten, its few compressed bytes stay.
    USD allocates the declared length before it decompresses anything."""
    n_faces = 100_003  # a count whose bytes occur once in the file

    def write(folder: Path) -> None:
        path = folder / relative
        _triangles_usdc(path, n_faces)
        data = path.read_bytes()
        for actual, declared in ((n_faces, faces), (3 * n_faces, corners)):
            if declared:
                field = struct.pack("<Q", actual)
                assert data.count(field) == 1, f"the element count {actual} is not unique in {path}"
                data = data.replace(field, struct.pack("<Q", declared))
        path.write_bytes(data)

    return write


def _usdz_of(relative: str, layer: Callable[[Path], None], layer_name: str) -> Callable[[Path], None]:
    """A usdz package of the crate file ``layer`` writes (as ``layer_name``), written as USD aligns it."""

    def write(folder: Path) -> None:
        from pxr import Sdf, UsdUtils

        layer(folder / "package-source")
        package = folder / relative
        package.parent.mkdir(parents=True, exist_ok=True)
        assert UsdUtils.CreateNewUsdzPackage(Sdf.AssetPath(str(folder / "package-source" / layer_name)),
                                             str(package))

    return write


def _garbled_usdc_tokens(folder: Path) -> None:
    """A crate file whose token text does not decompress: only USD's own reading finds that."""
    path = folder / "tokens.usdc"
    _triangles_usdc(path, 10)
    data = bytearray(path.read_bytes())
    (toc,) = struct.unpack_from("<q", data, 16)
    (count,) = struct.unpack_from("<Q", data, toc)
    for index in range(count):
        name, start, size = struct.unpack_from("<16sqq", data, toc + 8 + 32 * index)
        if name.rstrip(b"\0") == b"TOKENS":  # count, text bytes, compressed bytes, then LZ4 data
            data[start + 25:start + size] = b"\xff" * (size - 25)
    path.write_bytes(bytes(data))


def _corrupt_usdc(folder: Path) -> None:
    """A crate file with most of its bytes zeroed: its tables claim impossible sizes."""
    from pxr import Usd, UsdGeom, Vt

    path = folder / "corrupt.usdc"
    rng = np.random.default_rng(0)
    stage = Usd.Stage.CreateNew(str(path))
    mesh = UsdGeom.Mesh.Define(stage, "/Root/M")
    stage.SetDefaultPrim(stage.GetPrimAtPath("/Root"))
    mesh.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(rng.random((5000, 3)).astype(np.float32)))
    mesh.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(np.full(3000, 3, np.int32)))
    mesh.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(rng.integers(0, 5000, 9000).astype(np.int32)))
    stage.Save()
    data = bytearray(path.read_bytes())
    data[16:60000] = bytes(60000 - 16)
    path.write_bytes(bytes(data))


# ---------------------------------------------------------------------------------------------- bundles
def _bundle_arrays(**header_overrides) -> dict[str, np.ndarray]:
    header = {
        "shape_names": ["JawDrop", "JawDrop_Corrective"],
        "corrective_recipes": {"JawDrop_Corrective": ["JawDrop", "JawDrop"]},
        "group_names": ["head"], "mesh_name": "tri", "up_axis": "Y", "meters_per_unit": 1.0,
        "source": None, "metadata": {},
    }  # fmt: skip
    header.update(header_overrides)
    return {
        "format_version": np.array(1, np.int64),
        "vertices": np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float64),
        "face_vertex_counts": np.array([3], np.int32),
        "face_vertex_indices": np.array([0, 1, 2], np.int64),
        "polygon_groups": np.array([0], np.int32),
        "deltas": np.zeros((2, 3, 3), np.float32),
        "header": np.array(json.dumps(header)),
    }


def _npz(relative: str, arrays: dict[str, np.ndarray], raw: dict[str, bytes] | None = None,
         compression: int = zipfile.ZIP_STORED) -> Callable[[Path], None]:
    """A bundle from arrays, plus ``raw`` members written byte for byte (lying npy headers)."""

    def write(folder: Path) -> None:
        path = folder / relative
        with zipfile.ZipFile(path, "w", compression) as archive:
            for key, value in arrays.items():
                stream = io.BytesIO()
                np.lib.format.write_array(stream, value, allow_pickle=True)
                archive.writestr(f"{key}.npy", stream.getvalue())
            for key, data in (raw or {}).items():
                archive.writestr(f"{key}.npy", data)

    return write


def _npy_header_only(shape: tuple[int, ...], dtype: str = "<f4") -> bytes:
    """An npy member that claims ``shape`` but carries only its header and a few bytes."""
    stream = io.BytesIO()
    np.lib.format.write_array_header_1_0(stream, {"descr": dtype, "fortran_order": False, "shape": shape})
    return stream.getvalue() + bytes(64)


def _deflated_zeros(shape: tuple[int, ...], data_bytes: int, dtype: str = "<f4") -> bytes:
    """An npy member claiming ``shape`` with ``data_bytes`` of zeros, to be stored deflated (a zip bomb's shape)."""
    return _npy_header_only(shape, dtype)[:-64] + bytes(data_bytes)


def _bundle_without(key: str, **arrays: np.ndarray) -> dict[str, np.ndarray]:
    base = _bundle_arrays()
    base.pop(key)
    base.update(arrays)
    return base


# ---------------------------------------------------------------------------------------------- cases
VOCABULARY_POSES = {"poses": [{"name": "neutral", "description": "rest", "facs": []}]}


def cases() -> list[Case]:
    """Every hostile input, across OBJ, PLY, glTF/GLB, USD/usda/usdc/usdz, bundles and vocabularies."""
    many_groups = "".join(f"g part{i}\n" for i in range(100_000)) + TRIANGLE_OBJ
    return [
        # ------------------------------------------------------------------ OBJ
        Case("obj png renamed", "mesh", "head.obj", _text("head.obj", b"\x89PNG\r\n\x1a\n" + bytes(200)), "PNG image"),
        Case("obj fifo", "mesh", "head.obj", _fifo("head.obj"), "not a regular file"),
        Case("obj symlink loop", "mesh", "head.obj", _symlink("head.obj", "head.obj"), "symbolic links"),
        Case("obj directory", "mesh", "head.obj", lambda f: (f / "head.obj").mkdir(), "is a directory"),
        Case("obj vertex count over limit", "mesh", "dense.obj",
             _text("dense.obj", "v 0 0 0\n" * 750_001 + "f 1 2 3\n"), "over the limit of 750,000"),
        Case("obj face index out of range", "mesh", "head.obj", _text("head.obj", TRIANGLE_OBJ + "f 1 2 99\n"),
             "out of range"),
        Case("obj nan vertex", "mesh", "head.obj", _text("head.obj", TRIANGLE_OBJ.replace("v 1 0 0", "v nan 0 0")),
             "NaN"),
        Case("obj truncated face", "mesh", "head.obj", _text("head.obj", TRIANGLE_OBJ + "f 1 2\n"), "at least 3"),
        Case("obj 100k group lines", "mesh", "groups.obj", _text("groups.obj", many_groups), None),
        # ------------------------------------------------------------------ PLY
        Case("ply negative list count", "mesh", "head.ply",
             _text("head.ply", _ply(_PLY_VERTICES + struct.pack("<b", -3) + bytes(12), count_type="char")),
             "negative list length"),
        Case("ply huge list count", "mesh", "head.ply",
             _text("head.ply", _ply(_PLY_VERTICES + struct.pack("<I", 4_000_000_000) + bytes(12), count_type="uint")),
             "truncated"),
        Case("ply ascii nan list count", "mesh", "head.ply",
             _text("head.ply", _ply(b"0 0 0\n1 0 0\n0 1 0\nnan 0 1 2\n", fmt="ascii")), "malformed 'face' row"),
        Case("ply ascii list past its row", "mesh", "head.ply",
             _text("head.ply", _ply(b"0 0 0\n1 0 0\n0 1 0\n9 0 1 2\n", fmt="ascii")), "runs past the end"),
        Case("ply billion faces declared", "mesh", "head.ply",
             _text("head.ply", _ply(_PLY_VERTICES + bytes([3]) + bytes(12), n_faces=1_000_000_000)),
             "over the memory budget"),
        Case("ply faces past the body", "mesh", "head.ply",
             _text("head.ply", _ply(_PLY_VERTICES + bytes([3]) + bytes(12), n_faces=100_000)), "truncated"),
        Case("ply vertex count over limit", "mesh", "head.ply", _text("head.ply", _ply(b"", n_vertices=10_000_000)),
             "over the limit of 750,000"),
        Case("ply x as a list", "mesh", "head.ply",
             _text("head.ply", _ply(b"", vertex_props=_XYZ.replace("property float x", "property list uchar float x"))),
             "no x, y, z"),
        # ------------------------------------------------------------------ glTF / GLB
        Case("gltf asset is a list", "mesh", "head.gltf", _text("head.gltf", json.dumps(gltf_document(asset=[]))),
             "asset must be an object"),
        Case("gltf asset is a string", "mesh", "head.gltf", _text("head.gltf", json.dumps(gltf_document(asset="2.0"))),
             "asset must be an object"),
        Case("gltf nested 100k deep", "mesh", "head.gltf",
             _text("head.gltf", json.dumps(gltf_document())[:-1] + ', "extras": ' + _nested(100_000) + "}"), "nested"),
        Case("glb zero-filled accessor 2e8", "mesh", "head.glb", _text("head.glb", _zero_filled_glb(200_000_000)),
             "over the limit of 750,000"),
        Case("glb zero-filled accessor 2e9", "mesh", "head.glb", _text("head.glb", _zero_filled_glb(2_000_000_000)),
             "over the limit of 750,000"),
        Case("glb zero-filled indices", "mesh", "head.glb", _text("head.glb", _glb(gltf_document(
            accessors=[{"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3"},
                       {"componentType": 5125, "count": 600_000_000, "type": "SCALAR"}],
            meshes=[{"name": "tri", "primitives": [{"attributes": {"POSITION": 0}, "indices": 1}]}],
        ))), "over the memory budget"),  # fmt: skip
        Case("gltf 20 buffers naming one file", "mesh", "head.gltf",
             _all(_text("head.gltf", _shared_buffer_gltf(20, 200 * 2**20)), _sparse("big.bin", 200 * 2**20)),
             "over the limit of 536,870,912"),
        Case("gltf buffer outside", "mesh", "in/head.gltf",
             _all(_text("in/head.gltf", _external_gltf("../outside.bin")), _text("outside.bin", bytes(36))),
             "outside the file's folder"),
        Case("gltf buffer absolute", "mesh", "head.gltf", _text("head.gltf", _external_gltf("/etc/hostname")),
             "outside the file's folder"),
        Case("gltf buffer symlink out", "mesh", "in/head.gltf",
             _all(_text("in/head.gltf", _external_gltf("link.bin")), _text("outside.bin", bytes(36)),
                  _symlink("in/link.bin", "../outside.bin")),
             "outside the file's folder"),
        Case("gltf buffer fifo", "mesh", "head.gltf",
             _fifo("pipe.bin", _text("head.gltf", _external_gltf("pipe.bin"))), "not a regular file"),
        Case("gltf accessor count negative", "mesh", "head.gltf", _text("head.gltf", json.dumps(gltf_document(
            accessors=[{"bufferView": 0, "componentType": 5126, "count": -3, "type": "VEC3"}]))), "bad count"),
        Case("gltf node cycle", "mesh", "head.gltf", _text("head.gltf", json.dumps(gltf_document(
            nodes=[{"name": "a", "mesh": 0, "children": [1]}, {"name": "b", "children": [0]}]))), "appears twice"),
        Case("gltf sparse count over accessor", "mesh", "head.gltf", _text("head.gltf", json.dumps(gltf_document(
            accessors=[{"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3", "sparse": {
                "count": 1_000_000_000, "indices": {"bufferView": 0, "componentType": 5125},
                "values": {"bufferView": 0}}}]))), "sparse count"),
        Case("glb truncated", "mesh", "head.glb", _text("head.glb", _glb(gltf_document())[:40]), "truncated"),
        # ------------------------------------------------------------------ USD
        Case("usda sublayer absolute outside", "mesh", "in/head.usda",
             _all(_text("outside.usda", USD_TRIANGLE),
                  lambda f: _text("in/head.usda", _usda(f"    subLayers = [@{f / 'outside.usda'}@]\n"))(f)),
             "outside the file's folder"),
        Case("usda reference to parent", "mesh", "in/head.usda",
             _all(_text("outside.usda", USD_TRIANGLE),
                  _text("in/head.usda", _usd_reference("references = @../outside.usda@</Root>"))),
             "outside the file's folder"),
        Case("usda payload outside", "mesh", "in/head.usda",
             _all(_text("outside.usda", USD_TRIANGLE),
                  _text("in/head.usda", _usd_reference("payload = @../outside.usda@</Root>"))),
             "outside the file's folder"),
        Case("usda sublayer fifo", "mesh", "head.usda",
             _fifo("pipe.usda", _text("head.usda", _usda("    subLayers = [@./pipe.usda@]\n"))), "not a regular file"),
        Case("usda sublayer by search path", "mesh", "head.usda",
             _text("head.usda", _usda("    subLayers = [@somewhere/else.usda@]\n")), "cannot be resolved"),
        Case("usda value clip outside", "mesh", "in/head.usda",
             _all(_text("outside.usda", USD_TRIANGLE), _text("in/head.usda", _usd_clip("../outside.usda"))),
             "outside the file's folder"),
        Case("usda sublayer too big", "mesh", "head.usda",
             _all(_sparse("big.usda", 600 * 1024**2), _text("head.usda", _usda("    subLayers = [@./big.usda@]\n"))),
             "over the limit"),
        Case("usdz layer pointing outside", "mesh", "in/head.usdz",
             _all(_text("outside.usda", USD_TRIANGLE),
                  lambda f: _text("in/head.usdz", _usdz({"head.usda": _usda(
                      f"    subLayers = [@{f / 'outside.usda'}@]\n")}))(f)),
             "outside the file's folder"),
        Case("usda metersPerUnit 0", "mesh", "head.usda", _text("head.usda", _usda("    metersPerUnit = 0\n")),
             "invalid metersPerUnit"),
        Case("usda metersPerUnit negative", "mesh", "head.usda", _text("head.usda", _usda("    metersPerUnit = -1\n")),
             "invalid metersPerUnit"),
        Case("usda metersPerUnit nan", "mesh", "head.usda", _text("head.usda", _usda("    metersPerUnit = nan\n")),
             "invalid metersPerUnit"),
        Case("usda metersPerUnit inf", "mesh", "head.usda", _text("head.usda", _usda("    metersPerUnit = inf\n")),
             "invalid metersPerUnit"),
        Case("usdc faces expanding past the budget", "mesh", "expand.usdc", _expanding_usdc(8_000_000),
             "over the memory budget"),
        Case("usdc zeroed tables", "mesh", "corrupt.usdc", _corrupt_usdc, "binary USD is corrupt"),
        Case("usdc garbled tokens", "mesh", "tokens.usdc", _garbled_usdc_tokens, "USD cannot open it"),
        Case("usdc declaring 60M faces", "mesh", "declare.usdc", _declaring_usdc("declare.usdc", faces=60_000_000),
             "binary USD is corrupt: an array declares 60,000,000 int values"),
        Case("usdc declaring 200M face corners", "mesh", "declare.usdc",
             _declaring_usdc("declare.usdc", corners=200_000_000), "declares 200,000,000 int values"),
        Case("usdc sublayer declaring 60M faces", "mesh", "head.usda",
             _all(_declaring_usdc("declare.usdc", faces=60_000_000),
                  _text("head.usda", '#usda 1.0\n(\n    subLayers = [@./declare.usdc@]\n)\n')),
             "binary USD layer declare.usdc is corrupt"),
        Case("usdz member declaring 60M faces", "mesh", "head.usdz",
             _usdz_of("head.usdz", _declaring_usdc("declare.usdc", faces=60_000_000), "declare.usdc"),
             "binary USD member 'declare.usdc' is corrupt"),
        # ------------------------------------------------------------------ rig bundles
        Case("bundle npy header claims 538 GiB", "bundle", "r.facerig.npz",
             _npz("r.facerig.npz", _bundle_without("deltas"), {"deltas": _npy_header_only((96, 500_000_000, 3))}),
             "over the memory budget"),
        Case("bundle deflated deltas claiming 2.3 GB", "bundle", "r.facerig.npz",
             _npz("r.facerig.npz", _bundle_without("deltas"),
                  {"deltas": _deflated_zeros((96, 2_000_000, 3), 16 * 1024**2)}, zipfile.ZIP_DEFLATED),
             "over the memory budget"),
        Case("bundle vertices over limit", "bundle", "r.facerig.npz",
             _npz("r.facerig.npz", _bundle_without("vertices"), {"vertices": _npy_header_only((1_000_000, 3), "<f8")}),
             "over the limit of 750,000"),
        Case("bundle header is a list", "bundle", "r.facerig.npz",
             _npz("r.facerig.npz", _bundle_without("header", header=np.array("[1, 2]"))), "not an object"),
        Case("bundle header nested deep", "bundle", "r.facerig.npz",
             _npz("r.facerig.npz", _bundle_without("header", header=np.array(_nested(50_000)))), "nested"),
        Case("bundle header not a string", "bundle", "r.facerig.npz",
             _npz("r.facerig.npz", _bundle_without("header", header=np.arange(4))), "not a JSON string"),
        Case("bundle shape names a string", "bundle", "r.facerig.npz",
             _npz("r.facerig.npz", _bundle_arrays(shape_names="JawDrop")), "'shape_names' is a str"),
        Case("bundle corrective of unknown base", "bundle", "r.facerig.npz",
             _npz("r.facerig.npz", _bundle_arrays(corrective_recipes={"JawDrop_Corrective": ["NoSuchShape"]})),
             "driven by shapes the rig lacks"),
        Case("bundle pickled objects", "bundle", "r.facerig.npz",
             _npz("r.facerig.npz", _bundle_without("vertices", vertices=np.array([object()] * 3))), "Python objects"),
        Case("bundle not a zip", "bundle", "r.facerig.npz", _text("r.facerig.npz", b"PK\x03\x04" + bytes(100)),
             "not a readable rig bundle"),
        Case("bundle fifo", "bundle", "r.facerig.npz", _fifo("r.facerig.npz"), "not a regular file"),
        # ------------------------------------------------------------------ vocabularies
        Case("vocabulary nested deep", "vocabulary", "poses.json", _text("poses.json", _nested(100_000)), "nested"),
        Case("vocabulary fifo", "vocabulary", "poses.json", _fifo("poses.json"), "not a regular file"),
        Case("vocabulary is a list", "vocabulary", "poses.json", _text("poses.json", "[1, 2]"), "JSON object"),
        Case("vocabulary not utf-8", "vocabulary", "poses.json", _text("poses.json", b'{"poses": "\xff\xfe"}'),
             "UTF-8"),
        Case("vocabulary too big", "vocabulary", "poses.json", _sparse("poses.json", 64 * 1024**2), "over"),
        Case("vocabulary pose of wrong type", "vocabulary", "poses.json",
             _text("poses.json", json.dumps({"poses": [[], 1]})), "must be a JSON object"),
        # ------------------------------------------------------------------ option values
        Case("batch --max-file-mb inf", "batch", "in/head.obj", _text("in/head.obj", TRIANGLE_OBJ),
             "positive and finite"),
    ]


def write_corpus(folder: str | Path) -> list[tuple[Case, Path]]:
    """Write every case into ``folder/<index>/`` and return (case, input path) pairs."""
    folder = Path(folder)
    written = []
    for index, case in enumerate(cases()):
        case_folder = folder / f"{index:02d}"
        case_folder.mkdir(parents=True, exist_ok=True)
        case.write(case_folder)
        written.append((case, case_folder / case.file))
    return written


# ---------------------------------------------------------------------------------------------- running
CASE_TIMEOUT_S = 20  # a case still running after this is hung (a FIFO opened, a quadratic loop)


@dataclass(frozen=True)
class Outcome:
    """What one case did: the error (None: it loaded), and what it cost."""

    error: BaseException | None  # the library's exception; for the CLI, None
    exit_code: int | None  # the CLI's exit code; for the library, None
    stderr: str
    seconds: float
    peak_python_mb: float  # tracemalloc peak: numpy and Python allocations
    rss_growth_mb: float  # growth of the process's peak resident set (catches native allocations, e.g. USD's)


class CaseTimeout(Exception):
    pass


def library_call(case: Case, path: Path) -> Callable[[], object]:
    """The library entry point the case goes through."""
    if case.kind == "mesh":
        from facerig.io import load_mesh

        return lambda: load_mesh(path)
    if case.kind == "bundle":
        from facerig.rig import Rig

        return lambda: Rig.load(path)
    if case.kind == "vocabulary":
        from facerig.vocabulary import load_vocabulary

        return lambda: load_vocabulary(path)
    from facerig.batch.options import BatchOptions

    return lambda: BatchOptions(max_file_mb=float(case.name.rsplit(" ", 1)[1]))


def cli_arguments(case: Case, path: Path, scratch: Path) -> list[str]:
    """``facerig`` arguments that make the CLI read the case's input (``scratch``: a writable folder)."""
    if case.kind in ("mesh", "bundle"):
        return ["info", str(path)]
    if case.kind == "vocabulary":
        head = scratch / "head.obj"
        head.write_text(TRIANGLE_OBJ)
        return ["rig", str(head), "-o", str(scratch / "out"), "--poses", str(path)]
    return ["batch", str(path.parent), "-o", str(scratch / "out"), "--max-file-mb", case.name.rsplit(" ", 1)[1]]


def _import_what_commands_import() -> None:
    """Import the heavy modules commands import lazily (torch, pxr), so a case's time and memory are its own."""
    import facerig.batch  # noqa: F401
    import facerig.exporters  # noqa: F401
    import facerig.io  # noqa: F401
    import facerig.rigging.pipeline  # noqa: F401


def run_case(case: Case, path: Path, *, cli_scratch: Path | None = None) -> Outcome:
    """Run one case through the library (default) or, given a scratch folder, the CLI in-process."""

    def alarm(signum: int, frame: object) -> None:
        raise CaseTimeout(f"{case.name}: still running after {CASE_TIMEOUT_S} s")

    if cli_scratch is not None:
        from facerig.cli import main  # noqa: F401  (every command registered)
        from facerig.cli.app import run

        _import_what_commands_import()
        arguments = cli_arguments(case, path, cli_scratch)
        call: Callable[[], object] = lambda: run(arguments)  # noqa: E731
    else:
        call = library_call(case, path)
    stderr = io.StringIO()
    error: BaseException | None = None
    result = None
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(CASE_TIMEOUT_S)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            result = call()
    except CaseTimeout:
        raise
    except Exception as exc:  # the library's answer; the test decides whether it is the right one
        error = exc
    finally:
        seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    rss_growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024  # KiB on Linux
    exit_code = result if cli_scratch is not None and isinstance(result, int) else None
    return Outcome(error, exit_code, stderr.getvalue(), seconds, peak / 2**20, rss_growth)


_CHILD_LOAD = """
import json, sys
from facerig.io import load_mesh  # with pxr: the baseline holds what importing costs

def peak_kib():  # VmHWM: this process's own peak (ru_maxrss carries the forking parent's peak across exec)
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

before = peak_kib()
try:
    load_mesh(sys.argv[1])
    error = None
except Exception as exc:
    error = f"{type(exc).__name__}: {exc}"
print(json.dumps({"error": error, "rss_growth_mb": (peak_kib() - before) / 1024}))
"""


def load_in_child(path: Path) -> tuple[str | None, float]:
    """Load ``path`` in a fresh Python process: its error ("Class: message", None when it loaded) and how far
    its peak resident set grew during the load (Linux: ``/proc/self/status``).

    :func:`run_case` measures in the calling process, whose peak is the highest of everything it ran before, so
    an allocation below that peak does not show; a fresh process's peak after its imports is its own.
    """
    done = subprocess.run([sys.executable, "-c", _CHILD_LOAD, str(path)], capture_output=True, text=True,
                          timeout=3 * CASE_TIMEOUT_S, cwd=Path(__file__).resolve().parents[2])
    if done.returncode != 0:
        raise RuntimeError(f"loading {path} in a child process failed: {done.stderr[-2000:]}")
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    return outcome["error"], outcome["rss_growth_mb"]


if __name__ == "__main__":
    for case, path in write_corpus(sys.argv[1] if len(sys.argv) > 1 else "hostile-corpus"):
        print(f"{case.kind:10s} {case.name:40s} {path}")
