"""PLY reader: files written here from real meshes (ascii, binary little/big endian) read back exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facerig.io import load_mesh
from facerig.mesh import Mesh

FORMATS = ("ascii", "binary_little_endian", "binary_big_endian")


def write_ply(
    path: Path,
    vertices: np.ndarray,
    counts: np.ndarray,
    corners: np.ndarray,
    fmt: str,
    *,
    uv: np.ndarray | None = None,
    uv_names: tuple[str, str] = ("s", "t"),
    list_name: str = "vertex_indices",
    count_type: str = "uchar",
    index_type: str = "int",
    extra_vertex_colour: bool = False,
    trailing_edges: bool = False,
) -> Path:
    """A straightforward PLY writer for tests (doubles for positions, so values round-trip exactly)."""
    header = [f"ply", f"format {fmt} 1.0", "comment written by facerig tests", f"element vertex {len(vertices)}"]
    header += [f"property double {axis}" for axis in "xyz"]
    if extra_vertex_colour:
        header.append("property uchar red")
    if uv is not None:
        header += [f"property float {uv_names[0]}", f"property float {uv_names[1]}"]
    header += [f"element face {len(counts)}", f"property list {count_type} {index_type} {list_name}"]
    if trailing_edges:
        header += ["element edge 1", "property int vertex1", "property int vertex2"]
    header.append("end_header")
    head = ("\n".join(header) + "\n").encode()
    starts = np.cumsum(counts) - counts
    polygons = [corners[s : s + n] for s, n in zip(starts, counts)]
    if fmt == "ascii":
        rows = []
        for i, v in enumerate(vertices):
            row = [repr(float(x)) for x in v]
            if extra_vertex_colour:
                row.append("200")
            if uv is not None:
                row += [repr(float(np.float32(x))) for x in uv[i]]
            rows.append(" ".join(row))
        rows += [" ".join(map(str, [len(p), *p])) for p in polygons]
        if trailing_edges:
            rows.append("0 1")
        return _write(path, head + ("\n".join(rows) + "\n").encode())
    order = "<" if fmt == "binary_little_endian" else ">"
    fields = [("x", order + "f8"), ("y", order + "f8"), ("z", order + "f8")]
    if extra_vertex_colour:
        fields.append(("red", "u1"))
    if uv is not None:
        fields += [(uv_names[0], order + "f4"), (uv_names[1], order + "f4")]
    table = np.zeros(len(vertices), fields)
    table["x"], table["y"], table["z"] = vertices.T
    if uv is not None:
        table[uv_names[0]], table[uv_names[1]] = uv.T
    codes = {"uchar": "u1", "ushort": "u2", "int": "i4", "uint": "u4"}
    body = bytearray(table.tobytes())
    for p in polygons:
        body += np.array([len(p)], order + codes[count_type]).tobytes()
        body += np.asarray(p, order + codes[index_type]).tobytes()
    if trailing_edges:
        body += np.array([0, 1], order + "i4").tobytes()
    return _write(path, head + bytes(body))


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def suzanne(heads_dir: Path) -> Mesh:
    """Quads and triangles (variable polygon sizes), three components."""
    return load_mesh(heads_dir / "suzanne.obj")


@pytest.fixture(scope="module")
def spot(heads_dir: Path) -> Mesh:
    """Triangles only: the constant-size fast path."""
    return load_mesh(heads_dir / "spot.obj")


def planar_uv(mesh: Mesh) -> np.ndarray:
    """Per-vertex UVs derived from positions (known values to read back)."""
    lo, hi = mesh.vertices.min(axis=0), mesh.vertices.max(axis=0)
    return ((mesh.vertices[:, :2] - lo[:2]) / (hi - lo)[:2]).astype(np.float32)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("which", ["suzanne", "spot"])
def test_round_trip_is_exact(tmp_path: Path, fmt: str, which: str, request: pytest.FixtureRequest) -> None:
    mesh: Mesh = request.getfixturevalue(which)
    uv = planar_uv(mesh)
    counts, corners = mesh.face_vertex_counts, mesh.face_vertex_indices
    path = write_ply(tmp_path / f"{which}.ply", mesh.vertices, counts, corners, fmt, uv=uv)
    back = load_mesh(path)
    np.testing.assert_array_equal(back.vertices, mesh.vertices)
    np.testing.assert_array_equal(back.face_vertex_counts, mesh.face_vertex_counts)
    np.testing.assert_array_equal(back.face_vertex_indices, mesh.face_vertex_indices)
    np.testing.assert_array_equal(back.uvs, uv)
    # Per-vertex UVs become face-varying ones that follow the vertex indices.
    np.testing.assert_array_equal(back.uv_indices, mesh.face_vertex_indices)
    assert back.n_components == mesh.n_components
    assert back.name == which and back.source == str(path)
    assert back.up_axis is None and back.meters_per_unit is None and back.warnings == ()


@pytest.mark.parametrize("uv_names", [("s", "t"), ("u", "v"), ("texture_u", "texture_v")])
def test_uv_property_names(tmp_path: Path, suzanne: Mesh, uv_names: tuple[str, str]) -> None:
    uv = planar_uv(suzanne)
    path = write_ply(
        tmp_path / "uv.ply", suzanne.vertices, suzanne.face_vertex_counts, suzanne.face_vertex_indices,
        "binary_little_endian", uv=uv, uv_names=uv_names,
    )  # fmt: skip
    np.testing.assert_array_equal(load_mesh(path).uvs, uv)


@pytest.mark.parametrize("fmt", FORMATS)
def test_vertex_index_name_other_types_extra_properties_and_elements(tmp_path: Path, suzanne: Mesh, fmt: str) -> None:
    path = write_ply(
        tmp_path / "extra.ply", suzanne.vertices, suzanne.face_vertex_counts, suzanne.face_vertex_indices, fmt,
        list_name="vertex_index", count_type="ushort", index_type="uint", extra_vertex_colour=True,
        trailing_edges=True,
    )  # fmt: skip
    back = load_mesh(path)
    np.testing.assert_array_equal(back.vertices, suzanne.vertices)
    np.testing.assert_array_equal(back.face_vertex_indices, suzanne.face_vertex_indices)
    assert back.uvs is None


def test_ascii_and_binary_agree_on_a_hand_written_file(tmp_path: Path) -> None:
    text = b"""ply
format ascii 1.0
element vertex 5
property float x
property float y
property float z
element face 2
property list uchar int vertex_indices
end_header
0 0 0
1 0 0
1 1 0
0 1 0
2 0.5 0
4 0 1 2 3
3 1 4 2
"""
    ascii_mesh = load_mesh(_write(tmp_path / "hand.ply", text))
    np.testing.assert_array_equal(ascii_mesh.face_vertex_counts, [4, 3])
    np.testing.assert_array_equal(ascii_mesh.face_vertex_indices, [0, 1, 2, 3, 1, 4, 2])
    binary = write_ply(
        tmp_path / "hand_bin.ply", ascii_mesh.vertices, ascii_mesh.face_vertex_counts, ascii_mesh.face_vertex_indices,
        "binary_big_endian",
    )  # fmt: skip
    assert load_mesh(binary).content_hash == ascii_mesh.content_hash
