"""Rigged heads read back as FACS deltas (facerig.io.rigged_heads): our own exports (FACS and ARKit names, glTF and
USD), shape-name matching, the RobotExpressive head's non-FACS shapes, and every refused input."""

from __future__ import annotations

import json
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from facerig.errors import FacerigError, MeshLoadError
from facerig.exporters import export_rig
from facerig.io.rigged_heads import (
    RiggedHeadError,
    find_rigged_heads,
    load_mapping,
    load_rigged_head,
    match_shapes,
    name_key,
)
from facerig.units import infer_meters_per_unit
from facerig.vocabulary import load_vocabulary

ARKIT_UNLABELLED = {"Corrugator", "FlatPucker", "LeftCheekPuff", "RightCheekPuff", "LeftInnerBrowRaiser",
                    "RightInnerBrowRaiser"}


@pytest.fixture(scope="module")
def vocabulary():
    return load_vocabulary()


@pytest.fixture(scope="module")
def exports(synthetic_rig, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("rigged")
    return {
        "glb": export_rig(synthetic_rig, folder / "facs.glb"),
        "usda": export_rig(synthetic_rig, folder / "facs.usda"),
        "fbx": export_rig(synthetic_rig, folder / "facs.fbx"),
        "arkit_glb": export_rig(synthetic_rig, folder / "arkit.glb", naming="arkit"),
        "arkit_usd": export_rig(synthetic_rig, folder / "arkit.usd", naming="arkit"),
    }


def _rig_delta(rig, name: str) -> np.ndarray:
    return rig.deltas[rig.shape_names.index(name)]


def _read_glb(path: Path) -> tuple[dict, bytes]:
    data = path.read_bytes()
    json_length = struct.unpack_from("<I", data, 12)[0]
    document = json.loads(data[20 : 20 + json_length])
    blob_start = 20 + json_length + 8
    return document, data[blob_start:]


def _write_glb(path: Path, document: dict, blob: bytes) -> Path:
    text = json.dumps(document).encode()
    text += b" " * (-len(text) % 4)
    blob += b"\0" * (-len(blob) % 4)
    total = 12 + 8 + len(text) + 8 + len(blob)
    path.write_bytes(struct.pack("<III", 0x46546C67, 2, total) + struct.pack("<II", len(text), 0x4E4F534A) + text
                     + struct.pack("<II", len(blob), 0x004E4942) + blob)
    return path


# ---------------------------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("kind", ["glb", "usda", "fbx"])
def test_our_facs_export_reads_back_every_action(kind, exports, synthetic_rig, vocabulary):
    head = load_rigged_head(exports[kind])
    assert head.action_names == vocabulary.action_names
    assert head.labelled.all() and head.report.unlabelled == ()
    assert head.deltas.shape == (47, synthetic_rig.neutral.n_vertices, 3) and head.deltas.dtype == np.float32
    np.testing.assert_allclose(head.mesh.vertices, synthetic_rig.neutral.vertices, atol=1e-6)
    np.testing.assert_allclose(head.deltas, synthetic_rig.deltas[:47], atol=1e-5)
    assert head.meters_per_unit == 1.0
    # the 48 correctives are reported as not imported, nothing else is left over
    assert len(head.report.unmatched) == 48
    assert all(why.startswith("corrective") for why in head.report.unmatched.values())
    assert head.report.matched["JawDrop"] == "JawDrop"


@pytest.mark.parametrize("kind", ["arkit_glb", "arkit_usd"])
def test_arkit_export_maps_back_to_the_right_poses_and_sides(kind, exports, synthetic_rig, vocabulary):
    head = load_rigged_head(exports[kind])
    assert set(head.report.unlabelled) == ARKIT_UNLABELLED
    assert head.labelled.sum() == 47 - len(ARKIT_UNLABELLED)
    for a, action in enumerate(head.action_names):
        if head.labelled[a]:  # one-to-one shapes and the sums of one-sided halves give the FACS delta back
            np.testing.assert_allclose(head.deltas[a], _rig_delta(synthetic_rig, action), atol=1e-5, err_msg=action)
        else:  # unlabelled: zero, and flagged so nobody reads it as a target
            assert not head.deltas[a].any()
    assert head.report.matched["eyeBlinkLeft"] == "LeftEyeClosed"
    assert head.report.matched["eyeBlinkRight"] == "RightEyeClosed"
    assert head.report.summed == {
        "EyesLookDown": ["eyeLookDownLeft", "eyeLookDownRight"],
        "EyesLookLeft": ["eyeLookOutLeft", "eyeLookInRight"],
        "EyesLookRight": ["eyeLookInLeft", "eyeLookOutRight"],
        "EyesLookUp": ["eyeLookUpLeft", "eyeLookUpRight"],
        "LipPresser": ["mouthPressLeft", "mouthPressRight"],
    }
    assert set(head.report.unmatched) == {"eyeSquintLeft", "eyeSquintRight", "jawForward", "browInnerUp",
                                          "cheekPuff", "tongueOut"}
    assert "not one FACS pose" in head.report.unmatched["browInnerUp"]


def test_node_transforms_turn_deltas_like_positions(exports, synthetic_rig, tmp_path):
    document, blob = _read_glb(exports["glb"])
    angle = np.radians(90.0)
    document["nodes"][0].update(rotation=[0.0, float(np.sin(angle / 2)), 0.0, float(np.cos(angle / 2))],
                                scale=[2.0, 2.0, 2.0], translation=[1.0, 2.0, 3.0])
    head = load_rigged_head(_write_glb(tmp_path / "moved.glb", document, blob))
    turn = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]]) * 2.0  # 90° about +Y, scaled 2x
    np.testing.assert_allclose(head.mesh.vertices, synthetic_rig.neutral.vertices @ turn.T + [1, 2, 3], atol=1e-5)
    np.testing.assert_allclose(head.deltas, synthetic_rig.deltas[:47] @ turn.T.astype(np.float32), atol=2e-5)


def test_a_head_whose_file_states_no_unit_gets_the_unit_guessed_from_its_size(exports):
    head = load_rigged_head(exports["glb"])
    unitless = replace(head, mesh=replace(head.mesh, meters_per_unit=None))
    assert unitless.meters_per_unit == infer_meters_per_unit(head.mesh.vertices)


# ---------------------------------------------------------------------------------------------- matching
def test_name_variants_are_read_as_one_name():
    for spelling in ("eyeBlinkLeft", "EyeBlink_L", "eyeblink.left", "EYEBLINK_Left", "eyeBlink-L"):
        assert name_key(spelling) == "eyeblink|l"
    assert name_key("mouthRollUpper") == "mouthrollupper"  # a trailing r is not a side
    assert name_key("jaw_drop") == name_key("JawDrop")


def test_match_shapes_accepts_arkit_ict_and_facs_spellings(vocabulary):
    names = ["EyeBlink_L", "eyeblink.right", "JAWOPEN", "mouthSmile_Left", "c_FN", "browInnerUp_L",
             "cheekRaiser_R", "mouthPress_L", "mouthPress_R", "Smirk"]
    sources, report = match_shapes(names, vocabulary)
    assert report.matched == {
        "EyeBlink_L": "LeftEyeClosed", "eyeblink.right": "RightEyeClosed", "JAWOPEN": "JawDrop",
        "mouthSmile_Left": "LeftLipCornerPuller", "c_FN": "Funneler",
        "browInnerUp_L": "LeftInnerBrowRaiser",  # an ICT name: one inner brow
        "cheekRaiser_R": "RightCheekRaiser", "mouthPress_L": "LipPresser", "mouthPress_R": "LipPresser",
    }  # fmt: skip
    assert sources["LipPresser"] == [7, 8] and report.summed == {"LipPresser": ["mouthPress_L", "mouthPress_R"]}
    assert report.unmatched == {"Smirk": "unknown name: not a FACS, ARKit or ICT name of one pose"}
    assert len(report.labelled) + len(report.unlabelled) == 47 and "JawDrop" in report.labelled


def test_half_a_sum_is_reported_and_left_unlabelled(vocabulary):
    sources, report = match_shapes(["mouthPressLeft", "jawOpen"], vocabulary)
    assert set(sources) == {"JawDrop"} and "LipPresser" in report.unlabelled
    assert report.unmatched["mouthPressLeft"].startswith("only part of LipPresser")


def test_a_mapping_names_shapes_and_ignores_others(vocabulary, tmp_path):
    path = tmp_path / "ours.json"
    path.write_text(json.dumps({"Surprised": "c_JD", "Angry": "LeftBrowLowerer", "Sad": None, "Unused": "jawOpen"}))
    mapping = load_mapping(path, vocabulary)
    assert mapping == {"Surprised": "JawDrop", "Angry": "LeftBrowLowerer", "Sad": None, "Unused": "JawDrop"}
    sources, report = match_shapes(["Angry", "Surprised", "Sad"], vocabulary, mapping)
    assert report.matched == {"Angry": "LeftBrowLowerer", "Surprised": "JawDrop"}
    assert report.unmatched == {"Sad": "ignored by the mapping"}


def test_the_robot_head_is_refused_naming_its_three_unknown_shapes(heads_dir, tmp_path):
    path = heads_dir / "robot_expressive.glb"
    with pytest.raises(RiggedHeadError, match="no blend shape matches a FACS pose") as caught:
        load_rigged_head(path, select="Head")
    assert str(path) in str(caught.value)
    for name in ("'Angry'", "'Surprised'", "'Sad'"):
        assert name in str(caught.value)
    assert {n: w.split(":")[0] for n, w in caught.value.report.unmatched.items()} == {
        "Angry": "unknown name", "Surprised": "unknown name", "Sad": "unknown name"}
    # with a mapping the same head is read: only the mapped pose is labelled
    head = load_rigged_head(path, {"Surprised": "JawDrop"}, select="Head")
    assert head.report.labelled == ("JawDrop",) and set(head.report.unmatched) == {"Angry", "Sad"}
    surprised = load_rigged_head(path, {"Surprised": "JawDrop"}).deltas[head.action_names.index("JawDrop")]
    assert np.abs(surprised).max() > 0.01  # the whole character loads too, the body's vertices still


# ---------------------------------------------------------------------------------------------- refused input
def test_two_shapes_for_one_pose_are_refused(exports, tmp_path):
    document, blob = _read_glb(exports["glb"])
    names = document["meshes"][0]["extras"]["targetNames"]
    names[names.index("Corrugator")] = "jawOpen"  # jawOpen is JawDrop, which the file has already
    with pytest.raises(RiggedHeadError, match=r"'jawOpen', 'JawDrop' all give the FACS pose JawDrop") as caught:
        load_rigged_head(_write_glb(tmp_path / "twice.glb", document, blob))
    assert "twice.glb" in str(caught.value)


def test_spellings_of_one_arkit_name_are_duplicates(vocabulary):
    with pytest.raises(RiggedHeadError, match="all give the FACS pose LeftEyeClosed"):
        match_shapes(["eyeBlinkLeft", "eyeBlink_L"], vocabulary)


def test_a_morph_target_of_the_wrong_size_is_refused(exports, tmp_path):
    document, blob = _read_glb(exports["glb"])
    accessor = document["meshes"][0]["primitives"][0]["targets"][3]["POSITION"]
    assert "bufferView" in document["accessors"][accessor]  # dense: the synthetic shapes move every vertex
    document["accessors"][accessor]["count"] -= 1
    with pytest.raises(MeshLoadError, match=r"morph target 'EyesLookDown' of primitive suzanne.0 has 506 offsets for its 507"):
        load_rigged_head(_write_glb(tmp_path / "short.glb", document, blob))


def _edit_usd(source: Path, target: Path, shape: str, offsets: np.ndarray) -> Path:
    from pxr import Usd, UsdSkel, Vt

    target.write_bytes(source.read_bytes())
    stage = Usd.Stage.Open(str(target))
    prim = next(p for p in stage.Traverse() if p.IsA(UsdSkel.BlendShape) and p.GetName() == shape)
    blend_shape = UsdSkel.BlendShape(prim)
    blend_shape.GetPointIndicesAttr().Clear()
    blend_shape.GetOffsetsAttr().Set(Vt.Vec3fArray.FromNumpy(offsets.astype(np.float32)))
    stage.Save()
    return target


def test_usd_offsets_of_the_wrong_size_are_refused(exports, tmp_path):
    path = _edit_usd(exports["usda"], tmp_path / "short.usda", "JawDrop", np.zeros((10, 3)))
    with pytest.raises(MeshLoadError, match=r"blend shape 'JawDrop' .*: 10 offsets for 507 points") as caught:
        load_rigged_head(path)
    assert "short.usda" in str(caught.value)


def test_nan_offsets_are_refused(exports, tmp_path):
    offsets = np.zeros((507, 3))
    offsets[5, 1] = np.nan
    path = _edit_usd(exports["usda"], tmp_path / "nan.usda", "LeftEyeClosed", offsets)
    with pytest.raises(RiggedHeadError, match=r"NaN or infinite offsets: 'LeftEyeClosed'") as caught:
        load_rigged_head(path)
    assert "nan.usda" in str(caught.value)


def test_a_bad_mapping_is_refused_naming_its_file(tmp_path, vocabulary):
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"Smile": "Grin"}))
    with pytest.raises(RiggedHeadError, match=r"map.json: mapping of 'Smile': unknown pose name 'Grin'"):
        load_mapping(path, vocabulary)
    path.write_text(json.dumps({"Smile": "JawDrop_LeftLipCornerPuller"}))  # a corrective is not an action
    with pytest.raises(RiggedHeadError, match="not an action pose"):
        load_mapping(path, vocabulary)
    path.write_text("[1, 2]")
    with pytest.raises(RiggedHeadError, match="JSON object"):
        load_mapping(path, vocabulary)


def test_formats_without_blend_shapes_are_refused(heads_dir):
    with pytest.raises(MeshLoadError, match=r"cannot read blend shapes from '\.obj'; supported: \.fbx, \.glb, \.gltf"):
        load_rigged_head(heads_dir / "suzanne.obj")


def test_find_rigged_heads_lists_readable_files_only(exports, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "head.glb").write_bytes(exports["glb"].read_bytes())
    (tmp_path / "head.usda").write_bytes(exports["usda"].read_bytes())
    (tmp_path / "notes.txt").write_text("not a head")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.glb").write_bytes(b"glTF")
    assert find_rigged_heads(tmp_path) == [tmp_path / "a" / "head.glb", tmp_path / "head.usda"]
    with pytest.raises(FacerigError, match="not a folder"):
        find_rigged_heads(tmp_path / "notes.txt")
