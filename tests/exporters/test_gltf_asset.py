"""glTF round trip: the robot GLB comes back whole (materials, skins, animations, hierarchy) plus morph targets."""

from __future__ import annotations

import json
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from facerig.errors import ExportError, MeshLoadError
from facerig.exporters import export_rig
from facerig.io import LoadLimits, load_blend_shapes, load_mesh
from facerig.io.gltf import open_gltf_asset
from facerig.mesh import Mesh
from facerig.render.png import write_png
from facerig.rig import Rig

CORRECTIVE = "JawDrop_LeftLipCornerPuller"
SHAPES = ("JawDrop", "LeftLipCornerPuller", CORRECTIVE)


def glb_json(path: Path) -> dict:
    data = path.read_bytes()
    (length,) = struct.unpack_from("<I", data, 12)
    return json.loads(data[20 : 20 + length])


def shaped_rig(mesh: Mesh, names: tuple[str, ...] = SHAPES) -> Rig:
    """A rig whose shapes move the lower half of ``mesh`` (down, sideways on the left, a mix): distinct per shape."""
    v = mesh.vertices
    size = float(np.ptp(v, axis=0).max())
    centre = v.mean(axis=0)
    low = np.clip((centre[1] - v[:, 1]) / size, 0.0, None)
    left = (v[:, 0] > centre[0]).astype(float)
    zero = np.zeros_like(low)
    patterns = [
        np.stack([zero, -0.1 * low, zero], axis=1),
        np.stack([0.05 * left * low, zero, zero], axis=1),
        np.stack([0.02 * low, 0.01 * low, 0.03 * low], axis=1),
    ]
    deltas = np.stack([patterns[k % 3] * (1 + k // 3) for k in range(len(names))]).astype(np.float32)
    recipes = {CORRECTIVE: ("JawDrop", "LeftLipCornerPuller")} if CORRECTIVE in names else {}
    return Rig(neutral=mesh, shape_names=names, deltas=deltas, corrective_recipes=recipes)


def error_codes(report: dict) -> Counter:
    return Counter((m["code"], m["pointer"]) for m in report["issues"]["messages"] if m["severity"] == 0)


@pytest.fixture(scope="module")
def robot_path(heads_dir: Path) -> Path:
    return heads_dir / "robot_expressive.glb"


@pytest.fixture(scope="module")
def robot_rig(robot_path: Path) -> Rig:
    return shaped_rig(load_mesh(robot_path, select="Head"))


@pytest.fixture(scope="module")
def robot_export(robot_rig: Rig, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_rig(robot_rig, tmp_path_factory.mktemp("asset") / "robot_rig.glb")


def test_robot_document_is_kept(robot_path: Path, robot_export: Path) -> None:
    source, output = glb_json(robot_path), glb_json(robot_export)
    assert [n.get("name") for n in output["nodes"]] == [n.get("name") for n in source["nodes"]]
    assert len(output["nodes"]) == 74
    assert [a["name"] for a in output["animations"]] == [a["name"] for a in source["animations"]]
    assert len(output["animations"]) == 14
    assert output["materials"] == source["materials"]
    assert output["skins"] == source["skins"]
    assert output["scenes"] == source["scenes"]
    # Only the Head mesh (index 2) changed; every other mesh is byte-for-byte the same JSON.
    assert [m for i, m in enumerate(output["meshes"]) if i != 2] == [m for i, m in enumerate(source["meshes"]) if i != 2]
    head = output["meshes"][2]
    assert head["extras"]["targetNames"] == ["Angry", "Surprised", "Sad", *SHAPES]
    assert head["weights"] == [0.0] * 6
    assert all(len(p["targets"]) == 6 for p in head["primitives"])
    recipe = head["extras"]["facerig"]["correctives"][CORRECTIVE]
    assert recipe == {"drivers": ["JawDrop", "LeftLipCornerPuller"], "rule": "product"}
    sidecar = json.loads(robot_export.with_name(robot_export.name + ".facerig.json").read_text())
    assert sidecar["source_document"] == {"kept": True, "file": "robot_expressive.glb"}


def test_robot_morph_targets_match_rig(robot_rig: Rig, robot_path: Path, robot_export: Path) -> None:
    shapes = load_blend_shapes(robot_export, select="Head")
    original = load_blend_shapes(robot_path, select="Head")
    assert shapes.mesh.n_vertices == robot_rig.neutral.n_vertices == 1742
    np.testing.assert_array_equal(shapes.mesh.vertices, robot_rig.neutral.vertices)
    for k, name in enumerate(SHAPES):
        np.testing.assert_allclose(shapes.deltas[shapes.names.index(name)], robot_rig.deltas[k], atol=1e-5)
        assert np.abs(robot_rig.deltas[k]).max() > 0.005  # 500x the tolerance: not a comparison of zeros
    for k, name in enumerate(original.names):  # the robot's own expressions are untouched
        np.testing.assert_array_equal(shapes.deltas[shapes.names.index(name)], original.deltas[k])


def test_robot_validator_adds_no_error(robot_path: Path, robot_export: Path, gltf_validator) -> None:
    source, output = gltf_validator(robot_path), gltf_validator(robot_export)
    # The robot ships with non-normalised skin weights (752 errors of its own); facerig adds none.
    assert error_codes(output) == error_codes(source)
    assert set(code for code, _ in error_codes(source)) == {"ACCESSOR_WEIGHTS_NON_NORMALIZED"}
    assert output["info"]["animationCount"] == 14 and output["info"]["hasSkins"]


def test_reexport_replaces_its_own_targets(robot_export: Path, tmp_path: Path) -> None:
    """A file facerig wrote, rigged again: targets of the same name are replaced, not added twice."""
    again = shaped_rig(load_mesh(robot_export, select="Head"))
    again = Rig(again.neutral, again.shape_names, 2 * again.deltas, again.corrective_recipes)
    out = export_rig(again, tmp_path / "again.glb")
    head = glb_json(out)["meshes"][2]
    assert head["extras"]["targetNames"] == ["Angry", "Surprised", "Sad", *SHAPES]
    shapes = load_blend_shapes(out, select="Head")
    np.testing.assert_allclose(shapes.deltas[shapes.names.index("JawDrop")], again.deltas[0], atol=1e-5)


def test_weight_animation_padded_and_gltf_output(small_rig: Rig, tmp_path: Path, gltf_validator) -> None:
    """A source whose mesh has targets and a weights animation (facerig's own preview) gets one more target."""
    source = export_rig(small_rig, tmp_path / "source.glb", preview_animation=True)
    n_frames = len(small_rig.shape_names) + 1
    mesh = load_mesh(source)
    rig = shaped_rig(mesh, ("Extra",))
    out = export_rig(rig, tmp_path / "out.gltf")
    assert (tmp_path / "out.bin").is_file()
    report = gltf_validator(out)
    assert report["issues"]["numErrors"] == 0, report["issues"]["messages"][:5]
    document = json.loads(out.read_text())
    names = document["meshes"][0]["extras"]["targetNames"]
    assert names == [*small_rig.shape_names, "Extra"]
    sampler = document["animations"][0]["samplers"][0]
    assert document["accessors"][sampler["output"]]["count"] == n_frames * len(names)
    shapes = load_blend_shapes(out)
    np.testing.assert_allclose(shapes.deltas[shapes.names.index("Extra")], rig.deltas[0], atol=1e-5)


def test_plain_writer_when_source_is_not_gltf(small_rig: Rig, tmp_path: Path) -> None:
    out = export_rig(small_rig, tmp_path / "plain.glb")
    assert [n["name"] for n in glb_json(out)["nodes"]] == [small_rig.neutral.name]
    with pytest.raises(ExportError, match="not read from a glTF"):
        export_rig(small_rig, tmp_path / "forced.glb", preserve_source=True)
    assert not (tmp_path / "forced.glb").exists()


def test_moved_neutral_falls_back_with_reason(robot_rig: Rig, tmp_path: Path) -> None:
    moved = Rig(robot_rig.neutral.with_vertices(robot_rig.neutral.vertices * 2), robot_rig.shape_names,
                robot_rig.deltas, robot_rig.corrective_recipes)
    out = export_rig(moved, tmp_path / "moved.glb")
    assert len(glb_json(out)["nodes"]) == 1
    sidecar = json.loads((tmp_path / "moved.glb.facerig.json").read_text())
    assert sidecar["source_document"]["kept"] is False
    assert "no longer holds the rig's neutral" in sidecar["source_document"]["reason"]


def test_gltf_source_with_external_files_becomes_self_contained(small_rig: Rig, tmp_path: Path, gltf_validator) -> None:
    """A .gltf whose buffer and texture are files beside it: the output GLB embeds both, wherever it is written."""
    source_dir = tmp_path / "source"
    source = export_rig(small_rig, source_dir / "eye.gltf")
    (source_dir / "eye.gltf.facerig.json").unlink()
    texture = np.zeros((4, 4, 3), np.uint8)
    texture[:, :, 0] = 200
    write_png(source_dir / "skin tex.png", texture)
    document = json.loads(source.read_text())
    document["images"] = [{"uri": "skin%20tex.png"}]
    document["textures"] = [{"source": 0}]
    document["materials"][0]["pbrMetallicRoughness"] = {"baseColorTexture": {"index": 0}}
    source.write_text(json.dumps(document))

    rig = shaped_rig(load_mesh(source), ("Extra",))
    out = export_rig(rig, tmp_path / "elsewhere" / "eye_rig.glb")
    output = glb_json(out)
    image = output["images"][0]
    assert "uri" not in image and image["mimeType"] == "image/png"
    view = output["bufferViews"][image["bufferView"]]
    data = out.read_bytes()
    chunk_start = 20 + struct.unpack_from("<I", data, 12)[0] + 8
    embedded = data[chunk_start + view["byteOffset"] : chunk_start + view["byteOffset"] + view["byteLength"]]
    assert embedded == (source_dir / "skin tex.png").read_bytes()
    assert output["buffers"] == [{"byteLength": len(data) - chunk_start}]
    report = gltf_validator(out)
    assert report["issues"]["numErrors"] == 0, report["issues"]["messages"][:5]
    assert report["info"]["hasTextures"]
    assert output["meshes"][0]["extras"]["targetNames"] == [*small_rig.shape_names, "Extra"]


def test_source_document_within_vertex_limit(robot_path: Path) -> None:
    with pytest.raises(MeshLoadError, match="LoadLimits.max_vertices|over the limit"):
        open_gltf_asset(robot_path, LoadLimits(max_vertices=1000))
    assert len(open_gltf_asset(robot_path).instances) == 19  # every triangle primitive of the robot
