"""FBX input through ufbx: facerig's own FBX export read back, and a Blender character's FBX rigged as is.

Two kinds of real files:

* facerig's binary FBX 7.4 export of a rig of suzanne (rigged by deformation transfer: no network), in Y-up
  and in Z-up centimetres, read back with its blend shapes;
* FBX files written by Blender's stock exporter (bpy, headless, in a subprocess running
  ``blender_fbx_head.py``) from the example ICT head: a skinned head with a material under an armature,
  and a character whose head is one of three mesh objects.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from facerig.cli import run
from facerig.errors import MeshLoadError
from facerig.exporters import export_rig
from facerig.io import LoadLimits, load_mesh
from facerig.io.fbx import load_fbx, read_fbx_blendshapes
from facerig.rig import Rig
from facerig.rigging.pipeline import rig_mesh
from facerig.rigging.transfer import rig_by_transfer

REPO_ROOT = Path(__file__).resolve().parents[2]
ICT_HEAD = REPO_ROOT / "examples" / "ict_head.obj"  # 4,000 vertices, Y up, centimetres
BLENDER_SCRIPT = Path(__file__).with_name("blender_fbx_head.py")
MARKER = "FACERIG_RESULT "
REL_TOL = 1e-5  # of the head's size: FBX stores float64 positions and offsets from float32 deltas
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # row vectors: (x, y, z) -> (x, -z, y)


@pytest.fixture(scope="module")
def suzanne_rig(heads_dir: Path) -> Rig:
    return rig_by_transfer(load_mesh(heads_dir / "suzanne.obj"))


@pytest.fixture(scope="module")
def blender_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """head.fbx and character.fbx exported by Blender from the example ICT head (see the module docstring)."""
    outdir = tmp_path_factory.mktemp("blender_fbx")
    proc = subprocess.run(
        [sys.executable, str(BLENDER_SCRIPT), str(ICT_HEAD), str(outdir)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARKER)]
    assert len(lines) == 1, proc.stdout[-2000:]
    bbox = json.loads(lines[0][len(MARKER) :])
    return {"head": outdir / "head.fbx", "character": outdir / "character.fbx", "bbox": bbox}


def size_of(vertices: np.ndarray) -> float:
    return float(np.ptp(vertices, axis=0).max())


# ---------------------------------------------------------------------------------------------- own exports
def test_own_export_reads_back_with_positions_polygons_units_and_shapes(suzanne_rig: Rig, tmp_path: Path) -> None:
    path = export_rig(suzanne_rig, tmp_path / "suzanne.fbx")
    mesh, shapes = read_fbx_blendshapes(path)
    source = suzanne_rig.neutral
    tolerance = REL_TOL * size_of(source.vertices)

    assert mesh.n_vertices == source.n_vertices == 507 and mesh.name == "suzanne"
    # suzanne.obj states no unit; the exporter guessed decimetres (2.7 units tall) and wrote metres, the
    # unit of Blender's frame that facerig's FBX files use.
    np.testing.assert_allclose(mesh.vertices, source.vertices * 0.1, atol=tolerance * 0.1, rtol=0)
    np.testing.assert_array_equal(mesh.face_vertex_counts, source.face_vertex_counts)
    np.testing.assert_array_equal(mesh.face_vertex_indices, source.face_vertex_indices)
    assert mesh.up_axis == "Y" and mesh.meters_per_unit == pytest.approx(1.0)
    assert mesh.group_names == ("suzanne",)

    assert list(shapes) == list(suzanne_rig.shape_names) and len(shapes) == 95
    moving = 0
    for name, deltas in zip(suzanne_rig.shape_names, suzanne_rig.deltas):
        assert shapes[name].shape == (507, 3)
        np.testing.assert_allclose(shapes[name], deltas * 0.1, atol=tolerance * 0.1, rtol=0, err_msg=name)
        moving += bool(np.abs(deltas).max() > 100 * tolerance)
    assert moving >= 40  # not vacuous: the 47 single poses move the head (transfer's correctives are small)


def test_z_up_centimetre_export_comes_back_y_up_in_metres(suzanne_rig: Rig, tmp_path: Path) -> None:
    source = suzanne_rig.neutral
    z_up = replace(source, vertices=source.vertices @ Y_UP_TO_Z_UP, up_axis="Z", meters_per_unit=0.01)
    rig = Rig(z_up, suzanne_rig.shape_names, suzanne_rig.deltas @ Y_UP_TO_Z_UP.astype(np.float32),
              suzanne_rig.corrective_recipes)  # fmt: skip
    mesh, shapes = read_fbx_blendshapes(export_rig(rig, tmp_path / "zup.fbx"))

    tolerance = REL_TOL * size_of(source.vertices) * 0.01
    assert mesh.up_axis == "Y" and mesh.meters_per_unit == pytest.approx(1.0)  # facerig writes FBX in metres
    np.testing.assert_allclose(mesh.vertices, source.vertices * 0.01, atol=tolerance, rtol=0)
    jaw = suzanne_rig.shape_names.index("JawDrop")
    np.testing.assert_allclose(shapes["JawDrop"], suzanne_rig.deltas[jaw] * 0.01, atol=tolerance, rtol=0)


def test_bytes_input_matches_the_path(suzanne_rig: Rig, tmp_path: Path) -> None:
    path = export_rig(suzanne_rig, tmp_path / "suzanne.fbx")
    from_bytes = load_fbx(path.read_bytes())
    np.testing.assert_array_equal(from_bytes.vertices, load_fbx(path).vertices)
    assert from_bytes.source is None and from_bytes.meters_per_unit == pytest.approx(1.0)


ASCII_Z_UP_PLATE = """; FBX 7.4.0 project file
FBXHeaderExtension:  {
	FBXHeaderVersion: 1003
	FBXVersion: 7400
}
GlobalSettings:  {
	Version: 1000
	Properties70:  {
		P: "UpAxis", "int", "Integer", "",2
		P: "UpAxisSign", "int", "Integer", "",1
		P: "FrontAxis", "int", "Integer", "",1
		P: "FrontAxisSign", "int", "Integer", "",-1
		P: "CoordAxis", "int", "Integer", "",0
		P: "CoordAxisSign", "int", "Integer", "",1
		P: "UnitScaleFactor", "double", "Number", "",0.1
	}
}
Objects:  {
	Geometry: 100, "Geometry::Plate", "Mesh" {
		Vertices: *12 {
			a: 0,0,0,2,0,0,2,0,3,0,0,3
		}
		PolygonVertexIndex: *4 {
			a: 0,1,2,-4
		}
		GeometryVersion: 124
	}
	Model: 200, "Model::Plate", "Mesh" {
		Version: 232
	}
}
Connections:  {
	C: "OO",200,0
	C: "OO",100,200
}
"""


def test_ascii_z_up_file_in_millimetres_comes_back_y_up(tmp_path: Path) -> None:
    """An ASCII FBX stating Z up and UnitScaleFactor 0.1 (0.1 cm = 1 mm): a standing plate, read Y up in mm."""
    path = tmp_path / "plate.fbx"
    path.write_text(ASCII_Z_UP_PLATE)
    mesh = load_mesh(path)
    assert mesh.up_axis == "Y" and mesh.meters_per_unit == pytest.approx(0.001)
    assert mesh.group_names == ("Plate",) and mesh.warnings == ()
    np.testing.assert_allclose(mesh.vertices, [[0, 0, 0], [2, 0, 0], [2, 3, 0], [0, 3, 0]], atol=1e-12)  # (x, z, -y)
    assert mesh.face_vertex_indices.tolist() == [0, 1, 2, 3]


# ---------------------------------------------------------------------------------------------- bad input
def test_bad_fbx_is_a_load_error_naming_the_file(suzanne_rig: Rig, tmp_path: Path) -> None:
    data = export_rig(suzanne_rig, tmp_path / "suzanne.fbx").read_bytes()
    truncated = tmp_path / "truncated.fbx"
    truncated.write_bytes(data[: len(data) // 3])
    with pytest.raises(MeshLoadError, match="truncated.fbx.*ufbx cannot read it"):
        load_mesh(truncated)

    png = tmp_path / "picture.fbx"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    with pytest.raises(MeshLoadError, match="picture.fbx.*not an FBX file"):
        load_mesh(png)

    with pytest.raises(MeshLoadError, match=r"507 vertices, over the limit of 100 \(LoadLimits.max_vertices\)"):
        load_mesh(tmp_path / "suzanne.fbx", LoadLimits(max_vertices=100))
    with pytest.raises(MeshLoadError, match="over the limit"):
        load_mesh(tmp_path / "suzanne.fbx", LoadLimits(max_file_bytes=1000))


# ---------------------------------------------------------------------------------------------- Blender
def test_blender_head_reads_in_centimetres_y_up_as_modelled(blender_files: dict) -> None:
    """Blender (metres, Z up) exports with FBX's 100 cm scale and Y up: the head comes back as the OBJ it was."""
    mesh = load_mesh(blender_files["head"])
    original = load_mesh(ICT_HEAD)
    assert mesh.up_axis == "Y" and mesh.meters_per_unit == pytest.approx(0.01)
    assert mesh.group_names == ("Skin",)  # the material
    np.testing.assert_array_equal(mesh.face_vertex_indices, original.face_vertex_indices)
    # Blender keeps float32 metres: ~1e-7 of the head's size apart.
    np.testing.assert_allclose(mesh.vertices, original.vertices, atol=REL_TOL * size_of(original.vertices), rtol=0)
    # Blender's own world box (metres, Z up) is the same head.
    low, high = np.array(blender_files["bbox"]["head_bbox_min"]), np.array(blender_files["bbox"]["head_bbox_max"])
    np.testing.assert_allclose(np.ptp(mesh.vertices, axis=0) * 0.01, (high - low)[[0, 2, 1]], rtol=1e-5)


def test_select_picks_meshes_of_a_character_by_name_or_glob(blender_files: dict) -> None:
    character = blender_files["character"]
    assert load_mesh(character).group_names == ("Body", "Hat", "Head")
    head = load_mesh(character, select="Head")
    assert head.n_vertices == 4000 and head.group_names == ("Skin",)
    assert load_mesh(character, select="H*").group_names == ("Hat", "Head")
    assert load_mesh(character, select="[BH]*").n_vertices == 4016
    with pytest.raises(MeshLoadError, match="no mesh node or ancestor named like 'Face'; mesh nodes: Body, Hat, Head"):
        load_mesh(character, select="Face")


def test_mirrored_node_keeps_its_faces_pointing_out(blender_files: dict) -> None:
    """The hat's object scale is (-1, 1, 1): its polygons are reversed so the closed box has positive volume."""
    for name in ("Hat", "Body"):
        box = load_mesh(blender_files["character"], select=name)
        a, b, c = (box.vertices[box.triangles[:, k]] for k in range(3))
        volume = float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)
        extent = np.ptp(box.vertices, axis=0)
        assert volume == pytest.approx(float(np.prod(extent)), rel=1e-6), name


def test_blender_head_rigs_upright_without_flags(blender_files: dict, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert run(["rig", str(blender_files["head"]), "-o", str(out)]) == 0
    assert "units cm (file)" in capsys.readouterr().err
    rig = Rig.load(out / "head.facerig.npz")
    rotation = np.array(rig.metadata["canonical_frame"]["rotation"])
    np.testing.assert_allclose(rotation[1], [0.0, 1.0, 0.0], atol=1e-9)  # canonical up is the file's +Y
    np.testing.assert_allclose(rotation[2], [0.0, 0.0, 1.0], atol=1e-9)  # the face looks along +Z

    # The same rig as the OBJ the head was modelled from, pose by pose.
    reference = rig_mesh(load_mesh(ICT_HEAD))
    assert rig.shape_names == reference.shape_names
    a = rig.deltas.reshape(rig.n_shapes, -1).astype(np.float64)
    b = reference.deltas.reshape(rig.n_shapes, -1).astype(np.float64)
    moving = np.linalg.norm(b, axis=1) > 0
    cosine = (a * b).sum(1)[moving] / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))[moving]
    assert moving.sum() > 80 and cosine.min() >= 0.99


def test_info_prints_the_size_in_metres_and_the_file_unit(blender_files: dict, capsys) -> None:
    assert run(["info", str(blender_files["character"]), "--select", "Head"]) == 0
    out = capsys.readouterr().out
    assert "vertices: 4000" in out and "up_axis: Y" in out
    assert "size: 0.248 x 0.338 x 0.223 m (file units: cm)" in out
    assert run(["info", str(blender_files["head"]), "--units", "mm", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["units"] == {"name": "mm", "meters_per_unit": 0.001, "source": "--units"}
    np.testing.assert_allclose(summary["size_m"], [0.0248, 0.0338, 0.0223], atol=1e-4)


def test_skinned_head_is_read_in_its_bind_pose(blender_files: dict) -> None:
    """character.fbx was saved with the Head bone turned: the head is read as modelled, not as posed."""
    mesh = load_mesh(blender_files["character"], select="Head")
    original = load_mesh(ICT_HEAD).vertices
    np.testing.assert_allclose(mesh.vertices, original, atol=REL_TOL * size_of(original), rtol=0)
