"""``select`` across formats: substring or glob, on node/prim names (glTF, USD, FBX) or polygon groups (OBJ, PLY)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facerig.errors import MeshLoadError
from facerig.io import load_mesh
from facerig.io._select import name_matches


def test_substring_or_glob_on_own_or_ancestor_names() -> None:
    assert name_matches("Head", ["HeadGeo"]) and name_matches("Head", ["eye", "Hero_Head"])
    assert name_matches("Head*", ["HeadGeo"]) and not name_matches("Head*", ["Hero_Head"])
    assert name_matches("*_geo", ["body_geo"]) and not name_matches("*_geo", ["body_geo_1"])
    assert name_matches("Arm.[LR]", ["Arm.L"]) and not name_matches("head", ["Head"])  # case-sensitive


def test_gltf_select_takes_a_glob(heads_dir: Path) -> None:
    robot = heads_dir / "robot_expressive.glb"
    assert load_mesh(robot, select="Head*").group_names == ("Head.0", "Head.1", "Head.2")
    hands = load_mesh(robot, select="Hand.?")
    assert hands.group_names == ("Hand.R.0", "Hand.R.1", "Hand.L.0", "Hand.L.1")


def test_obj_select_keeps_matching_groups_reindexed(ict_neutral_path: Path) -> None:
    full = load_mesh(ict_neutral_path)  # ICT's usemtl groups: M_Face, M_BackHead, ..., M_ScleraLeft, M_IrisLeft, ...
    chosen = ["M_ScleraLeft", "M_IrisLeft"]
    part = load_mesh(ict_neutral_path, select="M_*Left")
    assert part.group_names == tuple(chosen)
    keep = np.isin(np.asarray(full.group_names)[full.polygon_groups], chosen)
    assert part.n_polygons == int(keep.sum())
    # Every kept polygon has the same corner positions as in the full mesh.
    corners = np.repeat(keep, full.face_vertex_counts)
    np.testing.assert_array_equal(part.vertices[part.face_vertex_indices], full.vertices[full.face_vertex_indices[corners]])
    assert part.n_vertices == len(np.unique(full.face_vertex_indices[corners]))
    np.testing.assert_array_equal(part.uvs[part.uv_indices], full.uvs[full.uv_indices[corners]])


def test_obj_select_without_a_match_lists_the_groups(heads_dir: Path) -> None:
    with pytest.raises(MeshLoadError, match="suzanne.obj: no group named like 'Head'; groups: suzanne"):
        load_mesh(heads_dir / "suzanne.obj", select="Head")
