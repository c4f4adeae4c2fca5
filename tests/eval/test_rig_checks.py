"""Suspicious shapes found on a rig of the example head with planted bad shapes, and written by `facerig preview`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facerig import load_mesh
from facerig.anatomy.eyes import find_eyeballs
from facerig.anatomy.rigid_parts import find_rigid_parts
from facerig.canonical.frame import canonical_frame
from facerig.cli import run
from facerig.eval.rig_checks import suspicious_shapes
from facerig.rig import Rig

EXAMPLE = "examples/ict_head.obj"


@pytest.fixture(scope="module")
def planted(request) -> tuple[Rig, object]:
    """Shapes: a good jaw-like motion of the chin and lower teeth, one that moves nothing, one that moves the
    neck base, one that bends a lower tooth, one that pulls apart vertices sharing a position."""
    mesh = load_mesh(request.config.rootpath / EXAMPLE)
    surface, to_surface = mesh.welded.surface, mesh.welded.to_surface
    frame = canonical_frame(surface)
    points = frame.to_canonical(mesh.vertices)
    welded_points = frame.to_canonical(surface.vertices)
    labels = surface.component_labels
    parts = find_rigid_parts(welded_points, surface.triangles, labels, find_eyeballs(welded_points, labels))
    lower = np.isin(to_surface, parts.lower)
    tooth = next(c for c in parts.mouth_components if c not in parts.split_components
                 and np.isin(np.flatnonzero(labels == c), parts.lower).all())
    tooth_vertices = np.isin(to_surface, np.flatnonzero(labels == tooth))
    down = np.array([0.0, -0.08, 0.0])  # canonical units

    good = np.zeros_like(points)
    good[(points[:, 1] < -1.0) & (points[:, 1] > -1.6) & (points[:, 2] > 0.3)] = down
    good[lower] = down
    neck = np.zeros_like(points)
    neck[points[:, 1] < -2.3] = down
    bent = good.copy()
    bent[tooth_vertices] = down * (points[tooth_vertices, 1:2] - points[tooth_vertices, 1].min()) * 20.0
    _, first, group = np.unique(mesh.vertices, axis=0, return_index=True, return_inverse=True)
    shared = np.flatnonzero(first[group.reshape(-1)] != np.arange(mesh.n_vertices))
    assert len(shared) > 0  # the example keeps eye shells on the lid's own positions
    torn = good.copy()
    torn[shared] += [0.05, 0.0, 0.0]
    names = ("Good", "Still", "Neck", "BentTooth", "Torn")
    canonical = np.stack([good, np.zeros_like(points), neck, bent, torn])
    deltas = frame.deltas_from_canonical(canonical)
    return Rig(mesh, names, deltas, metadata={"canonical_frame": frame.to_dict()}), frame


def test_planted_bad_shapes_are_flagged_and_the_good_one_is_not(planted) -> None:
    rig, frame = planted
    found = {(s.shape, s.problem) for s in suspicious_shapes(rig, frame)}
    assert found == {("Still", "still"), ("Neck", "off_face"), ("BentTooth", "not_rigid"), ("Torn", "torn")}


def test_preview_prints_and_writes_the_list_beside_the_sheet(planted, tmp_path, capsys) -> None:
    rig, _ = planted
    bundle = rig.save(tmp_path / "planted.facerig.npz")
    assert run(["preview", str(bundle), "-o", str(tmp_path / "sheet.png"), "--size", "48"]) == 0
    document = json.loads((tmp_path / "sheet.suspicious.json").read_text())
    assert document["shapes_checked"] == 5
    assert {(s["shape"], s["problem"]) for s in document["suspicious"]} == {
        ("Still", "still"), ("Neck", "off_face"), ("BentTooth", "not_rigid"), ("Torn", "torn")}
    assert "suspicious: Neck: off_face" in capsys.readouterr().out
