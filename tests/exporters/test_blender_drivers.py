"""Correctives drive themselves in Blender: import + wiring, then the corrective key follows the product of its bases.

Each export is wired by :func:`write_blend_with_drivers` (bpy in a child process, Blender's stock importers)
and the saved .blend is opened in another child (``blender_drivers_check.py``) that sets the base keys and
reads the corrective key's value after the depsgraph evaluated the driver.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from facerig.cli import run
from facerig.errors import ExportError
from facerig.exporters import export_rig
from facerig.exporters.blender_drivers import RecipeError, driver_expression, recipes_from_metadata, write_blend_with_drivers
from facerig.exporters.common import describe, gather
from facerig.io import load_mesh
from facerig.rig import Rig
from test_gltf_asset import shaped_rig

CHECK = Path(__file__).with_name("blender_drivers_check.py")
MARKER = "FACERIG_RESULT "
CORRECTIVE, BASES = "JawDrop_LeftLipCornerPuller", ("JawDrop", "LeftLipCornerPuller")
# Corrective value for (JawDrop, LeftLipCornerPuller) = (0, 0), (1, 1), (1, 0), (0, 1), (0.5, 0.5).
EXPECTED = [0.0, 1.0, 0.0, 0.0, 0.25]


def check_blend(blend: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, str(CHECK), str(blend), CORRECTIVE, *BASES], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARKER)]
    assert len(lines) == 1, proc.stdout[-2000:]
    return json.loads(lines[0][len(MARKER) :])


@pytest.mark.parametrize(
    ("suffix", "sidecar"),
    [(".glb", False), (".fbx", False), (".usda", True)],
    ids=["glb-extras", "fbx-user-property", "usd-sidecar"],
)
def test_corrective_driven_by_product(small_rig: Rig, tmp_path: Path, suffix: str, sidecar: bool) -> None:
    """glTF and FBX carry the recipes inside the file (Blender imports them as custom properties); USD's
    customData is not imported, so the sidecar provides them."""
    path = export_rig(small_rig, tmp_path / f"head{suffix}")
    if not sidecar:
        (tmp_path / f"head{suffix}.facerig.json").unlink()
    result = write_blend_with_drivers(path)
    assert result.blend == tmp_path / "head.blend" and result.blend.is_file()
    assert result.n_drivers == 1 and list(result.wired.values()) == [[CORRECTIVE]]
    report = check_blend(result.blend)
    assert report["n_drivers"] == 1
    assert report["expression"] == "w0 * w1" and report["is_simple_expression"]
    assert report["variables"] == [f'key_blocks["{base}"].value' for base in BASES]
    assert report["values"] == pytest.approx(EXPECTED, abs=1e-6)


def test_cli_blender_drivers(small_rig: Rig, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = export_rig(small_rig, tmp_path / "head.glb")
    assert run(["blender-drivers", str(path), "-o", str(tmp_path / "wired.blend")]) == 0
    assert "1 corrective drivers" in capsys.readouterr().out
    assert check_blend(tmp_path / "wired.blend")["values"] == pytest.approx(EXPECTED, abs=1e-6)


def test_bad_sidecar_is_one_error(small_rig: Rig, tmp_path: Path) -> None:
    path = export_rig(small_rig, tmp_path / "head.glb")
    sidecar = tmp_path / "head.glb.facerig.json"
    block = json.loads(sidecar.read_text())
    block["correctives"][CORRECTIVE]["rule"] = "max"
    sidecar.write_text(json.dumps(block))
    with pytest.raises(ExportError, match="is not .*'rule': 'product'"):
        write_blend_with_drivers(path)
    assert not (tmp_path / "head.blend").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["head.glb", "head.glb.facerig.json"]


def test_recipes_from_every_metadata_block(small_rig: Rig) -> None:
    """The recipe format the README documents is what every file's metadata block carries."""
    block = describe(gather(small_rig))
    assert recipes_from_metadata(block) == {CORRECTIVE: BASES}
    assert recipes_from_metadata(json.loads(json.dumps(block))) == {CORRECTIVE: BASES}
    with pytest.raises(RecipeError):
        recipes_from_metadata({"correctives": {"A_B": {"drivers": [], "rule": "product"}}})
    assert driver_expression(3) == "w0 * w1 * w2"


@pytest.mark.parametrize("use_sidecar", [False, True], ids=["custom-properties", "sidecar"])
def test_addon_operator_wires_imported_file(small_rig: Rig, tmp_path: Path, use_sidecar: bool) -> None:
    """The same file installed as an add-on: its operator wires the scene's objects."""
    from facerig.exporters import blender_drivers

    path = export_rig(small_rig, tmp_path / "head.fbx")
    sidecar = str(tmp_path / "head.fbx.facerig.json") if use_sidecar else ""
    proc = subprocess.run(
        [sys.executable, str(CHECK.with_name("blender_addon_check.py")), blender_drivers.__file__, str(path), sidecar],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    (line,) = [line for line in proc.stdout.splitlines() if line.startswith(MARKER)]
    report = json.loads(line[len(MARKER) :])
    assert report["operator"] == ["FINISHED"]
    assert list(report["drivers"].values()) == [[f'key_blocks["{CORRECTIVE}"].value']]


@pytest.mark.slow  # Blender, in two child processes
def test_robot_glb_round_trip_drives_in_blender(heads_dir: Path, tmp_path: Path) -> None:
    """The robot's own document, kept by the glTF round trip, carries the recipes on its Head mesh: Blender
    imports them with the mesh, and the corrective is driven next to the robot's own expressions."""
    rig = shaped_rig(load_mesh(heads_dir / "robot_expressive.glb", select="Head"))
    path = export_rig(rig, tmp_path / "robot.glb")
    (tmp_path / "robot.glb.facerig.json").unlink()
    result = write_blend_with_drivers(path)
    assert result.n_drivers == 1 and [CORRECTIVE] in result.wired.values()
    report = check_blend(result.blend)
    assert report["values"] == pytest.approx(EXPECTED, abs=1e-6)
