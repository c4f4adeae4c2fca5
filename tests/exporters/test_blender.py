"""Blender 4.5 (bpy) opens the USD, GLB and FBX exports of one rig: the studio check, headless.

Each export is imported by Blender's stock importer, default options, in a subprocess running
``blender_import.py`` (bpy must never share a process with torch). One key is set to 1 and the evaluated
world-space displacement is compared with the rig's delta. Every importer converts to Blender's frame
(+Z up, metres), so the comparison maps Blender's world back to the rig's frame with the one conversion a
user expects: rotate +Y-up to +Z-up ((x, y, z) -> (x, -z, y)) and scale by metres per unit. A file with
the wrong size or the wrong side fails. Importers may split vertices (glTF splits at UV seams and
triangulates), so imported vertices are matched to rig vertices by position. A Z-up copy of the rig
must land unrotated (FBX: Blender only honours axis settings it finds in its table of right-handed
systems, and falls back to Z-up otherwise; facerig writes the two entries Blender itself writes).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import cKDTree

from facerig.exporters import export_rig
from facerig.exporters.common import gather
from facerig.rig import Rig

SCRIPT = Path(__file__).with_name("blender_import.py")
MARKER = "FACERIG_RESULT "
FORMATS = ("usd", "glb", "fbx")
KEY = "LeftEyeClosed"  # moves the left eyelid by up to ~1 cm: well above every tolerance below
# Y-up rig frame -> Blender's Z-up world, before scaling by metres per unit.
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
# Tolerances in the rig's units (cm): Blender stores float32 metres, ~1e-8 m apart at head size.
MATCH_TOL = 1e-3
DELTA_TOL = 1e-4


def run_blender(path: Path, key: str, workdir: Path) -> dict:
    expected = workdir / f"{path.name}.expected.json"
    expected.write_text(json.dumps({"key": key}))
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(path), str(expected)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARKER)]
    assert len(lines) == 1, proc.stdout[-2000:]
    return json.loads(lines[0][len(MARKER):])


@pytest.fixture(scope="module")
def imported(small_rig: Rig, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Format -> what Blender reported for that export of ``small_rig``."""
    workdir = tmp_path_factory.mktemp("blender")
    results = {}
    for fmt in FORMATS:
        path = export_rig(small_rig, workdir / f"small.{fmt}")
        results[fmt] = run_blender(path, KEY, workdir)
    return results


def to_rig_frame(world: np.ndarray, meters_per_unit: float) -> np.ndarray:
    """(N, 3) Blender world coordinates (metres, +Z up) -> the Y-up rig's frame and units."""
    return world @ Y_UP_TO_Z_UP / meters_per_unit  # row vectors: x @ R == R.T @ x


@pytest.mark.parametrize("fmt", FORMATS)
def test_blender_imports_every_shape_by_name_in_order(imported: dict, small_rig: Rig, fmt: str) -> None:
    report = imported[fmt]
    assert report["operator"] == ["FINISHED"]
    meshes = [obj for obj in report["objects"] if obj["shape_keys"]]
    assert len(meshes) == 1
    assert meshes[0]["shape_keys"] == list(small_rig.shape_names)
    assert len(meshes[0]["shape_keys"]) == 10


@pytest.mark.parametrize("fmt", FORMATS)
def test_blender_key_displacement_equals_rig_delta(imported: dict, small_rig: Rig, fmt: str) -> None:
    ir = gather(small_rig)
    assert ir.up_axis == "Y"  # the conversion below is for a Y-up rig
    key = imported[fmt]["key"]
    basis = to_rig_frame(np.array(key["basis"]), ir.meters_per_unit)
    displacement = to_rig_frame(np.array(key["displacement"]), ir.meters_per_unit)
    delta = small_rig.delta(KEY).astype(np.float64)

    # Map every imported vertex to the rig vertices at its position (several when the rig has coincident
    # vertices, e.g. at component seams) and keep the one whose delta it reproduces best.
    neighbours = cKDTree(small_rig.neutral.vertices).query_ball_point(basis, r=MATCH_TOL)
    assert all(neighbours), f"{fmt}: {sum(not n for n in neighbours)} imported vertices match no rig vertex"
    errors = np.array([np.linalg.norm(delta[c] - displacement[i], axis=1).min() for i, c in enumerate(neighbours)])
    # Nothing dropped: every rig vertex has an imported vertex at its position.
    gap, _ = cKDTree(basis).query(small_rig.neutral.vertices)
    assert gap.max() < MATCH_TOL, f"{fmt}: a rig vertex is {gap.max():.3g} cm from every imported vertex"
    assert errors.max() < DELTA_TOL, f"{fmt}: max displacement error {errors.max():.3g} cm"
    moving = np.linalg.norm(delta, axis=1) > 0.05
    assert moving.sum() > 100  # the key really moves the eyelid, so the check above has teeth
    # Right size: the largest displacement is the rig's (the per-vertex check above also fixes the side).
    largest = np.linalg.norm(displacement, axis=1).max()
    np.testing.assert_allclose(largest, np.linalg.norm(delta, axis=1).max(), rtol=1e-4)


@pytest.mark.parametrize("fmt", FORMATS)
def test_blender_z_up_rig_keeps_its_side(small_rig: Rig, tmp_path, fmt: str) -> None:
    """A Z-up rig (the same head turned to face -Y) lands in Blender unrotated: +X stays the left side."""
    mesh = small_rig.neutral
    z_up = Rig(
        replace(mesh, vertices=mesh.vertices @ Y_UP_TO_Z_UP.T, up_axis="Z", meters_per_unit=0.01, name="zup"),
        small_rig.shape_names,
        small_rig.deltas @ Y_UP_TO_Z_UP.T.astype(np.float32),
        dict(small_rig.corrective_recipes),
    )
    key = run_blender(export_rig(z_up, tmp_path / f"zup.{fmt}"), KEY, tmp_path)["key"]
    basis = np.array(key["basis"]) / 0.01
    displacement = np.array(key["displacement"]) / 0.01
    gap, nearest = cKDTree(z_up.neutral.vertices).query(basis)
    assert gap.max() < MATCH_TOL
    moving = np.linalg.norm(z_up.delta(KEY), axis=1) > 0.05
    error = np.abs(displacement - z_up.delta(KEY)[nearest])[moving[nearest]].max()
    assert error < DELTA_TOL, f"{fmt}: Z-up displacement error {error:.3g} cm"


def test_blender_fbx_keeps_quads_and_corrective_recipe(imported: dict, small_rig: Rig) -> None:
    (obj,) = [o for o in imported["fbx"]["objects"] if o["shape_keys"]]
    assert obj["vertices"] == small_rig.neutral.n_vertices
    assert obj["polygons"] == small_rig.neutral.n_polygons
    assert obj["polygon_sizes"] == sorted(set(small_rig.neutral.face_vertex_counts.tolist()))
    recipe = json.loads(obj["custom"]["facerig_correctives"])
    assert recipe == {"JawDrop_LeftLipCornerPuller": {"drivers": ["JawDrop", "LeftLipCornerPuller"], "rule": "product"}}


@pytest.mark.parametrize(("units", "meters_per_unit"), [("cm", 0.01), ("m", 1.0)])
def test_blender_fbx_object_is_identity_and_metres(small_rig: Rig, tmp_path, units: str, meters_per_unit: float) -> None:
    """FBX lands with an identity object transform, upright, at its size in metres, with the file's normals:
    the centimetre ICT eye region and the same region in metres."""
    mesh = small_rig.neutral
    scale = 0.01 / meters_per_unit  # the rig is in centimetres
    rig = Rig(replace(mesh, vertices=mesh.vertices * scale, meters_per_unit=meters_per_unit, name=f"eye_{units}"),
              small_rig.shape_names, small_rig.deltas * np.float32(scale), dict(small_rig.corrective_recipes))
    report = run_blender(export_rig(rig, tmp_path / f"eye_{units}.fbx"), KEY, tmp_path)
    (obj,) = [o for o in report["objects"] if o["shape_keys"]]
    np.testing.assert_array_equal(obj["matrix_world"], np.eye(4))
    assert obj["parent"] is None and obj["has_custom_normals"]
    basis = np.array(report["key"]["basis"])  # world metres, +Z up
    height_m = np.ptp(mesh.vertices[:, 1]) * 0.01  # the rig's Y extent, in metres
    assert np.ptp(basis[:, 2]) == pytest.approx(height_m, rel=1e-6)
    np.testing.assert_allclose(basis, mesh.vertices @ Y_UP_TO_Z_UP.T * 0.01, atol=1e-6)

