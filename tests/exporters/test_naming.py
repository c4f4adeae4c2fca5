"""Naming presets say what they dropped, renamed or left empty; the Roblox preset uses Roblox's FACS names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from facerig.exporters import export_rig
from facerig.exporters.common import gather
from facerig.exporters.naming import ROBLOX_POSES, naming_notes, roblox_corrective_name
from facerig.rig import Rig
from facerig.vocabulary import load_vocabulary

ARKIT_WITHOUT_FACS_SOURCE = ["eyeSquintLeft", "eyeSquintRight", "jawForward", "tongueOut"]


def test_arkit_states_what_it_dropped_and_left_empty(small_rig: Rig, tmp_path: Path) -> None:
    reported: list[str] = []
    out = export_rig(small_rig, tmp_path / "arkit.glb", naming="arkit", report=reported.append)
    sidecar = json.loads((tmp_path / "arkit.glb.facerig.json").read_text())
    assert sidecar["correctives_dropped"] == ["JawDrop_LeftLipCornerPuller"]
    # The test rig has 9 FACS poses, so most ARKit shapes are empty here; these four are empty for every rig.
    assert set(ARKIT_WITHOUT_FACS_SOURCE) <= set(sidecar["arkit_empty"])
    assert "eyeBlinkLeft" not in sidecar["arkit_empty"]  # built from LeftEyeClosed, which the rig has
    assert len(sidecar["shapes"]) == 52
    assert reported == [f"arkit naming: {note}" for note in naming_notes(sidecar)]
    assert any("1 correctives dropped" in line and "JawDrop_LeftLipCornerPuller" in line for line in reported)
    assert any("ARKit shapes left empty" in line for line in reported)
    assert out.is_file()


def test_arkit_empty_shapes_are_zero_and_named(small_rig: Rig) -> None:
    ir = gather(small_rig, "arkit")
    for name in ARKIT_WITHOUT_FACS_SOURCE:
        assert name in ir.shape_names
        assert not ir.shapes[ir.shape_names.index(name)].deltas.any()
    assert ir.shapes[ir.shape_names.index("eyeBlinkLeft")].deltas.any()


def test_roblox_list_is_the_seed_plus_tongue() -> None:
    assert len(ROBLOX_POSES) == len(set(ROBLOX_POSES)) == 50
    seed = set(load_vocabulary().action_names)
    assert seed <= set(ROBLOX_POSES)
    assert set(ROBLOX_POSES) - seed == {"TongueDown", "TongueOut", "TongueUp"}


def test_roblox_corrective_order() -> None:
    assert roblox_corrective_name(("EyesLookDown", "LeftEyeClosed")) == "LeftEyeClosed_EyesLookDown"
    assert roblox_corrective_name(("Pucker", "LeftUpperLipRaiser")) == "Pucker_LeftUpperLipRaiser"
    assert roblox_corrective_name(("JawDrop", "Funneler", "Pucker")) == "Funneler_JawDrop_Pucker"
    renamed = [c.name for c in load_vocabulary().correctives if roblox_corrective_name(c.bases) != c.name]
    assert len(renamed) == 7


def test_roblox_preset_renames_drops_and_lists_missing(small_rig: Rig, tmp_path: Path) -> None:
    mesh = small_rig.neutral
    names = ("Pucker", "RightLipCornerPuller", "LeftEyeClosed", "Blink",
             "Pucker_RightLipCornerPuller", "LeftEyeClosed_RightLipCornerPuller")  # fmt: skip
    deltas = np.stack([np.full((mesh.n_vertices, 3), 0.01 * (k + 1), np.float32) for k in range(len(names))])
    recipes = {"Pucker_RightLipCornerPuller": ("Pucker", "RightLipCornerPuller"),
               "LeftEyeClosed_RightLipCornerPuller": ("LeftEyeClosed", "RightLipCornerPuller")}  # fmt: skip
    rig = Rig(mesh, names, deltas, recipes)
    ir = gather(rig, "roblox")
    assert ir.shape_names == ("Pucker", "RightLipCornerPuller", "LeftEyeClosed", "RightLipCornerPuller_Pucker")
    assert ir.correctives == {"RightLipCornerPuller_Pucker": ("Pucker", "RightLipCornerPuller")}
    np.testing.assert_array_equal(ir.shapes[3].deltas, deltas[4])
    assert set(ir.metadata["roblox_dropped"]) == {"Blink", "LeftEyeClosed_RightLipCornerPuller"}
    assert "mixing Left and Right" in ir.metadata["roblox_dropped"]["LeftEyeClosed_RightLipCornerPuller"]
    assert ir.metadata["roblox_renamed"] == {"Pucker_RightLipCornerPuller": "RightLipCornerPuller_Pucker"}
    assert len(ir.metadata["roblox_missing"]) == 47 and "TongueOut" in ir.metadata["roblox_missing"]
    reported: list[str] = []
    export_rig(rig, tmp_path / "roblox.usda", naming="roblox", report=reported.append)
    assert any("Blink dropped: not a Roblox FACS pose" in line for line in reported)
    assert any("Pucker_RightLipCornerPuller -> RightLipCornerPuller_Pucker" in line for line in reported)


def test_facs_naming_reports_nothing(small_rig: Rig, tmp_path: Path) -> None:
    reported: list[str] = []
    export_rig(small_rig, tmp_path / "facs.usda", report=reported.append)
    assert reported == []
