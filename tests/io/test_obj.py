"""OBJ reader: real heads (ICT neutral, Suzanne, Spot) checked against facts and a line-by-line reference
parser, plus small files that exercise each corner of the format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facerig.io import load_mesh
from facerig.io.obj import load_obj

# ../shared/data/README.md: ICT components by vertex range (0-based, inclusive).
ICT_RANGES = [
    (0, 9408), (9409, 11247), (11248, 13293), (13294, 13677), (13678, 14061), (14062, 17038),
    (17039, 21450), (21451, 23020), (23021, 24590), (24591, 24794), (24795, 24998), (24999, 25022),
    (25023, 25046), (25047, 25198), (25199, 25350), (25351, 26034), (26035, 26718),
]  # fmt: skip


def reference_parse(path: Path) -> dict:
    """A deliberately plain per-line OBJ parser (v, vt, f with any slash form, negative indices)."""
    vertices, uvs, counts, corners, uv_corners = [], [], [], [], []
    for line in path.read_text(encoding="latin-1").splitlines():
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if words[0] == "v":
            vertices.append([float(w) for w in words[1:4]])
        elif words[0] == "vt":
            uvs.append([float(w) for w in words[1:3]])
        elif words[0] == "f":
            counts.append(len(words) - 1)
            for corner in words[1:]:
                fields = corner.split("/")
                v = int(fields[0])
                corners.append(v - 1 if v > 0 else len(vertices) + v)
                if len(fields) > 1 and fields[1]:
                    t = int(fields[1])
                    uv_corners.append(t - 1 if t > 0 else len(uvs) + t)
    return {
        "vertices": np.array(vertices),
        "uvs": np.array(uvs) if uvs else None,
        "counts": np.array(counts),
        "corners": np.array(corners),
        "uv_corners": np.array(uv_corners) if uv_corners else None,
    }


@pytest.fixture(scope="module")
def ict_neutral(ict_neutral_path: Path):
    return load_mesh(ict_neutral_path)


def test_ict_neutral_counts_match_the_data_readme(ict_neutral) -> None:
    mesh = ict_neutral
    assert mesh.n_vertices == 26_719
    assert mesh.n_polygons == 26_384
    assert int((mesh.face_vertex_counts == 4).sum()) == 25_836
    assert int((mesh.face_vertex_counts == 3).sum()) == 548
    assert mesh.uvs.shape == (28_911, 2)
    assert len(mesh.uv_indices) == len(mesh.face_vertex_indices) == 25_836 * 4 + 548 * 3
    assert mesh.warnings == ()
    assert mesh.up_axis is None and mesh.meters_per_unit is None  # OBJ states neither
    assert mesh.name == "generic_neutral_mesh"
    # About 25 x 34 x 22 cm.
    size = mesh.vertices.max(axis=0) - mesh.vertices.min(axis=0)
    np.testing.assert_allclose(size, [25, 34, 22], atol=1.5)


def test_ict_neutral_matches_a_line_by_line_parse(ict_neutral, ict_neutral_path: Path) -> None:
    ref = reference_parse(ict_neutral_path)
    np.testing.assert_array_equal(ict_neutral.vertices, ref["vertices"])
    np.testing.assert_array_equal(ict_neutral.face_vertex_counts, ref["counts"])
    np.testing.assert_array_equal(ict_neutral.face_vertex_indices, ref["corners"])
    np.testing.assert_array_equal(ict_neutral.uvs, ref["uvs"].astype(np.float32))
    np.testing.assert_array_equal(ict_neutral.uv_indices, ref["uv_corners"])


def test_ict_neutral_components_respect_the_readme_vertex_ranges(ict_neutral) -> None:
    range_of_vertex = np.empty(ict_neutral.n_vertices, np.int64)
    for k, (lo, hi) in enumerate(ICT_RANGES):
        range_of_vertex[lo : hi + 1] = k
    assert len(ICT_RANGES) == 17 and ICT_RANGES[-1][1] + 1 == ict_neutral.n_vertices
    labels = ict_neutral.component_labels
    spanning = [c for c in np.unique(labels) if len(np.unique(range_of_vertex[labels == c])) > 1]
    # The README ranges are parts: the skin (face, head and neck, mouth socket, both eye sockets:
    # ranges 0-4) is one connected surface; every other part (gums, teeth, eyes, lashes, ...) is made of
    # components of its own, so no other component crosses a range boundary.
    assert len(spanning) == 1
    skin = labels == spanning[0]
    np.testing.assert_array_equal(np.flatnonzero(skin), np.arange(ICT_RANGES[4][1] + 1))
    for k in range(5, 17):
        in_range = range_of_vertex == k
        assert not skin[in_range].any()
        assert set(labels[in_range]).isdisjoint(labels[~in_range])


def test_ict_neutral_groups_come_from_usemtl(ict_neutral, ict_neutral_path: Path) -> None:
    usemtl = [
        line.split()[1] for line in ict_neutral_path.read_text(encoding="latin-1").splitlines()
        if line.startswith("usemtl")
    ]  # fmt: skip
    assert list(ict_neutral.group_names) == list(dict.fromkeys(usemtl))
    assert len(ict_neutral.group_names) == 12
    face_group = ict_neutral.polygon_groups[0]
    assert ict_neutral.group_names[face_group] == "M_Face"
    # Eyelashes are the last block of vertices, and their polygons are the last group.
    lash_polys = ict_neutral.polygon_groups == ict_neutral.group_names.index("M_EyeLashes")
    lash_vertices = np.unique(ict_neutral.face_vertex_indices[np.repeat(lash_polys, ict_neutral.face_vertex_counts)])
    assert lash_vertices.min() == 25_351 and lash_vertices.max() == 26_718


@pytest.mark.parametrize(
    "name, n_vertices, n_quads, n_tris, has_uvs",
    [("suzanne.obj", 507, 468, 32, False), ("spot.obj", 2_930, 0, 5_856, True)],
)
def test_other_heads_match_readme_and_reference(
    heads_dir: Path, name: str, n_vertices: int, n_quads: int, n_tris: int, has_uvs: bool
) -> None:
    path = heads_dir / name
    mesh = load_mesh(path)
    assert mesh.n_vertices == n_vertices
    assert int((mesh.face_vertex_counts == 4).sum()) == n_quads
    assert int((mesh.face_vertex_counts == 3).sum()) == n_tris
    assert (mesh.uvs is not None) == has_uvs
    ref = reference_parse(path)
    np.testing.assert_array_equal(mesh.vertices, ref["vertices"])
    np.testing.assert_array_equal(mesh.face_vertex_indices, ref["corners"])
    if has_uvs:
        np.testing.assert_array_equal(mesh.uv_indices, ref["uv_corners"])
    assert mesh.source == str(path) and mesh.name == path.stem


def test_suzanne_v_double_slash_vn_form_and_disconnected_eyes(heads_dir: Path) -> None:
    mesh = load_mesh(heads_dir / "suzanne.obj")
    assert mesh.uvs is None and mesh.uv_indices is None
    # Suzanne is a head plus two separate eyes.
    assert mesh.n_components == 3
    sizes = sorted(np.bincount(mesh.component_labels))
    assert sizes[0] == sizes[1] and sizes[0] + sizes[1] + sizes[2] == 507


# The unit triangle (vertices 1-3) and square (1-4) that most small cases below put their faces on.
TRIANGLE = "v 0 0 0\nv 1 0 0\nv 0 1 0\n"
SQUARE = TRIANGLE + "v 1 1 0\n"


def write(tmp_path: Path, text: str, name: str = "m.obj") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


def test_all_face_forms_negative_indices_and_ngons(tmp_path: Path) -> None:
    text = """# a quad, a pentagon and a triangle, in all four corner forms
v 0 0 0
v 1 0 0
v 1 1 0
v 0 1 0
vt 0 0
vt 1 0
vt 1 1
vt 0 1
vn 0 0 1
f 1/1/1 2/2/1 3/3/1 4/4/1
v 2 0 0
v 3 0 0
v 3 1 0
v 2.5 2 0
v 2 1 0
vt 0.5 0.5
f -5/1 -4/2 -3/3 -2/4 -1/5
f 1/1 2/2 4/4
"""
    mesh = load_mesh(write(tmp_path, text))
    np.testing.assert_array_equal(mesh.face_vertex_counts, [4, 5, 3])
    np.testing.assert_array_equal(mesh.face_vertex_indices, [0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 3])
    np.testing.assert_array_equal(mesh.uv_indices, [0, 1, 2, 3, 0, 1, 2, 3, 4, 0, 1, 3])
    np.testing.assert_array_equal(mesh.vertices[7], [2.5, 2, 0])
    # Two disconnected components, kept apart (no welding).
    assert mesh.n_components == 2


def test_v_only_and_v_double_slash_forms(tmp_path: Path) -> None:
    plain = load_mesh(write(tmp_path, TRIANGLE + "f 1 2 3\n", "a.obj"))
    normals = load_mesh(write(tmp_path, TRIANGLE + "vn 0 0 1\nf 1//1 2//1 3//1\n", "b.obj"))
    for mesh in (plain, normals):
        np.testing.assert_array_equal(mesh.face_vertex_indices, [0, 1, 2])
        assert mesh.uvs is None


def test_groups_from_o_and_g_win_over_usemtl(tmp_path: Path) -> None:
    text = SQUARE + """f 1 2 3
o Head
usemtl skin
f 2 4 3
g Teeth
f 1 2 4
g Head
f 1 3 4
"""
    mesh = load_mesh(write(tmp_path, text))
    assert mesh.group_names == ("default", "Head", "Teeth")
    np.testing.assert_array_equal(mesh.polygon_groups, [0, 1, 2, 1])


def test_usemtl_groups_when_no_o_or_g(tmp_path: Path) -> None:
    text = SQUARE + "usemtl A\nf 1 2 3\nusemtl B\nf 2 4 3\nusemtl A\nf 1 2 4\n"
    mesh = load_mesh(write(tmp_path, text))
    assert mesh.group_names == ("A", "B")
    np.testing.assert_array_equal(mesh.polygon_groups, [0, 1, 0])


def test_no_groups_means_one_group_named_after_the_file(tmp_path: Path) -> None:
    mesh = load_mesh(write(tmp_path, TRIANGLE + "f 1 2 3\n", "lonely.obj"))
    assert mesh.group_names == ("lonely",)


def test_crlf_comments_continuations_indentation_and_extras(tmp_path: Path) -> None:
    text = (
        "\ufeff# header\r\n"
        "mtllib x.mtl\r\n"
        "  v 0 0 0 1.0 # w and a comment\r\n"
        "v 1 0 0 0.5 0.5 0.5\r\n"  # vertex colours are ignored
        "\tv 0 1 0\r\n"
        "vt 0.25\r\n"  # one-value vt: v defaults to 0
        "vt 1 0 0\r\n"
        "vt 0 1\r\n"
        "s off\r\n"
        "l 1 2\r\n"
        "f 1/1 2/2 \\\r\n"
        "  3/3\r\n"
    )
    mesh = load_mesh(write(tmp_path, text))
    np.testing.assert_array_equal(mesh.vertices, [[0, 0, 0], [1, 0, 0], [0, 1, 0]])
    np.testing.assert_array_equal(mesh.uvs, [[0.25, 0], [1, 0], [0, 1]])
    np.testing.assert_array_equal(mesh.face_vertex_indices, [0, 1, 2])


def test_degenerate_faces_are_dropped_and_reported(tmp_path: Path) -> None:
    text = TRIANGLE + """v 2 0 0
v 0 0 0
f 1 2 3
f 1 2 2
f 1 2 4
f 1 5 2
f 3 1 2 3
"""
    mesh = load_mesh(write(tmp_path, text))
    # Kept: the real triangle. Dropped: two with a repeated index (1 2 2, 3 1 2 3), two collinear/zero-area.
    np.testing.assert_array_equal(mesh.face_vertex_indices, [0, 1, 2])
    assert mesh.n_vertices == 5  # nothing welded or removed
    assert mesh.warnings == ("dropped 4 degenerate faces (2 with a repeated vertex, 2 with zero area)",)


def test_faces_with_and_without_uvs_drop_the_uvs_with_a_warning(tmp_path: Path) -> None:
    text = SQUARE + "vt 0 0\nvt 1 0\nvt 0 1\nf 1/1 2/2 3/3\nf 2 4 3\n"
    mesh = load_mesh(write(tmp_path, text))
    assert mesh.uvs is None and mesh.n_polygons == 2
    assert mesh.warnings == ("UVs dropped: 1 of 2 faces have no texture indices",)


def test_bytes_input_and_upper_case_suffix(tmp_path: Path, heads_dir: Path) -> None:
    data = (heads_dir / "spot.obj").read_bytes()
    from_bytes = load_obj(data)
    from_path = load_mesh(write(tmp_path, data.decode("latin-1"), "SPOT.OBJ"))
    assert from_bytes.source is None and from_bytes.name == "mesh"
    assert from_path.name == "SPOT"
    assert from_bytes.content_hash == from_path.content_hash


def test_up_keyword_fills_in_what_obj_does_not_state(heads_dir: Path) -> None:
    assert load_mesh(heads_dir / "spot.obj", up="+z").up_axis == "Z"
    assert load_mesh(heads_dir / "spot.obj", up="Y").up_axis == "Y"
    assert load_mesh(heads_dir / "spot.obj", up="-Z").up_axis is None  # not storable; left to canonical_frame
