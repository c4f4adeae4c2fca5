"""export_rig: format registry, atomic writes, overwrite policy, naming presets and the rig bundle."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from pxr import Usd, UsdSkel

from facerig.errors import ExportError
from facerig.exporters import EXPORTERS, export_rig, format_for_path
from facerig.exporters.common import MAX_NAME_BYTES, export_name, gather, unique_name
from facerig.rig import Rig
from facerig.vocabulary import load_vocabulary


def test_registry_and_suffixes() -> None:
    assert {"usd", "usda", "usdc", "glb", "gltf", "npz"} <= set(EXPORTERS)
    expected = {
        "a.usd": "usd", "a.USDA": "usda", "a.usdc": "usdc", "a.glb": "glb", "a.gltf": "gltf", "a.facerig.npz": "npz"
    }
    assert {name: format_for_path(name) for name in expected} == expected
    with pytest.raises(ExportError, match=r"suffix '\.obj'.*glb, gltf, npz.*usd, usda, usdc"):
        format_for_path("head.obj")


def test_group_names_that_clean_alike_get_numbered_within_the_name_limit() -> None:
    used: set[str] = set()
    names = [unique_name(export_name(group), used) for group in ("eye.L", "eye L", "eye-L", "x" * 80, "x" * 70)]
    assert names == ["eye_L", "eye_L_2", "eye_L_3", "x" * MAX_NAME_BYTES, "x" * (MAX_NAME_BYTES - 4) + "_2"]
    assert used == set(names)


def test_unknown_format_lists_formats(tmp_path: Path, small_rig: Rig) -> None:
    with pytest.raises(ExportError, match="unknown export format 'abc'; formats: .*glb"):
        export_rig(small_rig, tmp_path / "head.usd", format="abc")
    assert list(tmp_path.iterdir()) == []


def test_format_argument_wins_over_suffix(tmp_path: Path, small_rig: Rig) -> None:
    path = export_rig(small_rig, tmp_path / "head.bin3d", format="GLB")
    assert path.read_bytes()[:4] == b"glTF"
    assert json.loads((tmp_path / "head.bin3d.facerig.json").read_text())["format"] == "glb"


def test_overwrite_off_refuses_and_keeps_the_file(tmp_path: Path, small_rig: Rig) -> None:
    path = tmp_path / "head.glb"
    path.write_bytes(b"precious")
    with pytest.raises(ExportError, match="exists"):
        export_rig(small_rig, path, overwrite=False)
    assert path.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["head.glb"]
    export_rig(small_rig, path)  # overwrite is the default
    assert path.read_bytes()[:4] == b"glTF"


def test_failed_export_leaves_no_file(tmp_path: Path, small_rig: Rig) -> None:
    # A network that produced NaN: refused before anything is written.
    deltas = small_rig.deltas.copy()
    deltas[2, 10, 1] = np.nan
    broken = Rig(small_rig.neutral, small_rig.shape_names, deltas)
    with pytest.raises(ExportError, match="RightEyeClosed"):
        export_rig(broken, tmp_path / "head.usd")
    # The .bin beside a .gltf cannot be written (a folder holds its name): the .gltf and its sidecar, already
    # written to temp files, must not appear either, and no temp file may stay behind.
    (tmp_path / "head.bin").mkdir()
    with pytest.raises(ExportError, match="cannot write the gltf export"):
        export_rig(small_rig, tmp_path / "head.gltf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["head.bin"]
    assert list((tmp_path / "head.bin").iterdir()) == []


def test_npz_bundle_round_trip(tmp_path: Path, small_rig: Rig) -> None:
    path = small_rig.export(tmp_path / "eye.facerig.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eye.facerig.npz"]  # the bundle carries its metadata
    loaded = Rig.load(path)
    assert loaded.shape_names == small_rig.shape_names
    assert loaded.corrective_recipes == small_rig.corrective_recipes
    np.testing.assert_array_equal(loaded.deltas, small_rig.deltas)
    np.testing.assert_array_equal(loaded.neutral.face_vertex_indices, small_rig.neutral.face_vertex_indices)


def test_arkit_naming(tmp_path: Path, full_rig: Rig) -> None:
    recipes = load_vocabulary().arkit_recipes()
    ir = gather(full_rig, "arkit")
    assert ir.shape_names == tuple(recipes) and len(ir.shapes) == 52
    assert ir.correctives == {}
    assert ir.metadata["correctives_dropped"] == ["JawDrop_LeftLipCornerPuller"]
    shapes = {s.name: s.deltas for s in ir.shapes}
    tolerance = ir.metadata["zero_tolerance"]  # offsets below float32 resolution are written as 0
    assert tolerance < 5e-6  # well inside the 1e-5 round-trip bound
    np.testing.assert_allclose(shapes["jawOpen"], full_rig.delta("JawDrop"), rtol=0, atol=tolerance)
    np.testing.assert_allclose(shapes["eyeBlinkLeft"], full_rig.delta("LeftEyeClosed"), rtol=0, atol=tolerance)
    # EyesLookLeft is split across the midline: the left eye turns out, the right eye turns in.
    eyes = full_rig.delta("EyesLookLeft")
    np.testing.assert_allclose(shapes["eyeLookOutLeft"] + shapes["eyeLookInRight"], eyes, rtol=0, atol=2 * tolerance)
    x = full_rig.neutral.vertices[:, 0]  # cm; +X is the character's left, the blend zone is |x| < 2.4 cm
    left, right = x > 3.0, x < -3.0
    assert np.abs(eyes[right]).max() > 0.1 and np.abs(shapes["eyeLookOutLeft"][right]).max() == 0
    np.testing.assert_allclose(shapes["eyeLookOutLeft"][left], eyes[left], rtol=0, atol=tolerance)
    assert "mouthRollLower" in ir.metadata["arkit_incomplete"]  # the test rig has no LowerLipSuck

    path = export_rig(full_rig, tmp_path / "arkit.usda", naming="arkit")
    stage = Usd.Stage.Open(str(path))
    mesh = stage.GetDefaultPrim().GetChild("geo").GetChild(stage.GetDefaultPrim().GetName())
    assert list(UsdSkel.BindingAPI(mesh).GetBlendShapesAttr().Get()) == list(recipes)
    assert json.loads((tmp_path / "arkit.usda.facerig.json").read_text())["naming"] == "arkit"


def test_exported_files_get_ordinary_permissions(tmp_path: Path, small_rig: Rig) -> None:
    """Atomic writes go through mkstemp (mode 0600); the final files must be readable like any other output."""
    umask = os.umask(0o022)
    os.umask(umask)
    export_rig(small_rig, tmp_path / "eye.gltf")
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {name: 0o666 & ~umask for name in ("eye.gltf", "eye.bin", "eye.gltf.facerig.json")}
