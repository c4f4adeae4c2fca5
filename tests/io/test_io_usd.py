"""USD reader: stages written here with pxr from real meshes (ICT neutral, Suzanne) read back exactly,
with transforms, several Mesh prims, UV interpolations, stage metadata and the usda/usdc/usdz flavours."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pxr import Gf, Sdf, Usd, UsdGeom, UsdUtils, Vt

from facerig.io import load_mesh
from facerig.mesh import Mesh


@pytest.fixture(scope="module")
def ict(ict_neutral_path: Path) -> Mesh:
    return load_mesh(ict_neutral_path)


@pytest.fixture(scope="module")
def suzanne(heads_dir: Path) -> Mesh:
    return load_mesh(heads_dir / "suzanne.obj")


def new_stage(path: Path, up: str | None = "Y", meters: float | None = 0.01) -> Usd.Stage:
    stage = Usd.Stage.CreateNew(str(path))
    if up is not None:
        UsdGeom.SetStageUpAxis(stage, up)
    if meters is not None:
        UsdGeom.SetStageMetersPerUnit(stage, meters)
    root = UsdGeom.Xform.Define(stage, "/Root")
    stage.SetDefaultPrim(root.GetPrim())
    return stage


def define_mesh(stage: Usd.Stage, prim_path: str, mesh: Mesh, uv: str | None = "faceVarying") -> UsdGeom.Mesh:
    usd_mesh = UsdGeom.Mesh.Define(stage, prim_path)
    usd_mesh.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(mesh.vertices.astype(np.float32)))
    usd_mesh.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(mesh.face_vertex_counts.astype(np.int32)))
    usd_mesh.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(mesh.face_vertex_indices.astype(np.int32)))
    primvars = UsdGeom.PrimvarsAPI(usd_mesh)
    if uv == "faceVarying":  # indexed, as DCCs write them
        st = primvars.CreatePrimvar("st", Sdf.ValueTypeNames.TexCoord2fArray, UsdGeom.Tokens.faceVarying)
        st.Set(Vt.Vec2fArray.FromNumpy(mesh.uvs))
        st.SetIndices(Vt.IntArray.FromNumpy(mesh.uv_indices.astype(np.int32)))
    elif uv == "vertex":
        st = primvars.CreatePrimvar("st", Sdf.ValueTypeNames.TexCoord2fArray, UsdGeom.Tokens.vertex)
        st.Set(Vt.Vec2fArray.FromNumpy(mesh.vertices[:, :2].astype(np.float32)))
    return usd_mesh


@pytest.mark.parametrize("suffix", [".usda", ".usdc"])
def test_ict_neutral_round_trips_exactly(tmp_path: Path, ict: Mesh, suffix: str) -> None:
    path = tmp_path / f"head{suffix}"
    stage = new_stage(path)
    define_mesh(stage, "/Root/Head", ict)
    stage.Save()
    back = load_mesh(path)
    np.testing.assert_array_equal(back.vertices, ict.vertices.astype(np.float32))  # USD points are float3
    np.testing.assert_array_equal(back.face_vertex_counts, ict.face_vertex_counts)
    np.testing.assert_array_equal(back.face_vertex_indices, ict.face_vertex_indices)
    np.testing.assert_array_equal(back.uvs, ict.uvs)
    np.testing.assert_array_equal(back.uv_indices, ict.uv_indices)
    assert back.group_names == ("Head",)
    assert back.up_axis == "Y" and back.meters_per_unit == pytest.approx(0.01)
    assert back.name == "head" and back.source == str(path) and back.warnings == ()


def test_world_transforms_several_meshes_and_vertex_uvs(tmp_path: Path, suzanne: Mesh, ict: Mesh) -> None:
    path = tmp_path / "two.usda"
    stage = new_stage(path, up="Z", meters=1.0)
    xform = UsdGeom.Xform.Define(stage, "/Root/Rig")
    xform.AddTranslateOp().Set(Gf.Vec3d(1, 2, 3))
    xform.AddRotateYOp().Set(90.0)
    xform.AddScaleOp().Set(Gf.Vec3f(2, 2, 2))
    define_mesh(stage, "/Root/Rig/Monkey", suzanne, uv="vertex")
    small = Mesh.from_triangles(ict.vertices[:3], [[0, 1, 2]])
    define_mesh(stage, "/Root/Tri", small, uv="vertex")
    stage.Save()
    back = load_mesh(path)

    # USD applies ops in order to column vectors: p' = T(R(S p)).
    rot_y = np.array([[0, 0, 1], [0, 1, 0], [-1, 0, 0]], float)
    expected = suzanne.vertices.astype(np.float32).astype(float) * 2 @ rot_y.T + [1, 2, 3]
    np.testing.assert_allclose(back.vertices[:507], expected, atol=1e-12)
    np.testing.assert_array_equal(back.vertices[507:], small.vertices.astype(np.float32))
    assert back.group_names == ("Monkey", "Tri")
    np.testing.assert_array_equal(np.bincount(back.polygon_groups), [suzanne.n_polygons, 1])
    np.testing.assert_array_equal(back.face_vertex_indices[-3:], [507, 508, 509])
    # Vertex-interpolated UVs: one per point, indexed by the vertex indices.
    np.testing.assert_array_equal(back.uv_indices, back.face_vertex_indices)
    np.testing.assert_array_equal(back.uvs[:507], suzanne.vertices[:, :2].astype(np.float32))
    assert back.up_axis == "Z" and back.meters_per_unit == 1.0


def test_unauthored_metadata_reports_usd_fallbacks(tmp_path: Path, suzanne: Mesh) -> None:
    path = tmp_path / "bare.usda"
    stage = new_stage(path, up=None, meters=None)
    define_mesh(stage, "/Root/M", suzanne, uv=None)
    stage.Save()
    back = load_mesh(path)
    assert back.up_axis == UsdGeom.GetFallbackUpAxis() == "Y"
    assert back.meters_per_unit == pytest.approx(0.01)  # USD's documented fallback: centimetres
    assert back.uvs is None


def test_left_handed_and_mirrored_meshes_are_stored_counter_clockwise(tmp_path: Path) -> None:
    quad = Mesh(np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], float), [4], [0, 1, 2, 3])
    path = tmp_path / "hands.usda"
    stage = new_stage(path)
    define_mesh(stage, "/Root/Right", quad, uv=None)
    define_mesh(stage, "/Root/Left", quad, uv=None).CreateOrientationAttr(UsdGeom.Tokens.leftHanded)
    mirror = UsdGeom.Xform.Define(stage, "/Root/Mirror")
    mirror.AddScaleOp().Set(Gf.Vec3f(-1, 1, 1))
    define_mesh(stage, "/Root/Mirror/Quad", quad, uv=None)
    stage.Save()
    back = load_mesh(path)
    np.testing.assert_array_equal(back.face_vertex_indices[:4], [0, 1, 2, 3])
    np.testing.assert_array_equal(back.face_vertex_indices[4:8], [7, 6, 5, 4])
    np.testing.assert_array_equal(back.face_vertex_indices[8:], [11, 10, 9, 8])
    # Stored winding is right-handed: the right-handed and the mirrored quad face +Z (a mirror across
    # x keeps a z-facing surface facing z), the left-handed quad's front is -Z.
    for k, facing in enumerate([1, -1, 1]):
        a, b, c = back.vertices[back.face_vertex_indices[4 * k : 4 * k + 3]]
        assert np.sign(np.cross(b - a, c - a)[2]) == facing


def test_default_prim_guides_select_and_time_samples(tmp_path: Path, suzanne: Mesh) -> None:
    path = tmp_path / "scene.usda"
    stage = new_stage(path)
    animated = define_mesh(stage, "/Root/Face/Skin", suzanne, uv=None)
    points = animated.GetPointsAttr()
    points.Clear()  # only time samples: the neutral is the earliest
    points.Set(Vt.Vec3fArray.FromNumpy(suzanne.vertices.astype(np.float32)), 1.0)
    points.Set(Vt.Vec3fArray.FromNumpy(suzanne.vertices.astype(np.float32) + 1), 2.0)
    define_mesh(stage, "/Root/Body", suzanne, uv=None)
    UsdGeom.Imageable(define_mesh(stage, "/Root/Face/Helper", suzanne, uv=None)).CreatePurposeAttr(UsdGeom.Tokens.guide)
    define_mesh(stage, "/Outside", suzanne, uv=None)  # not under the default prim
    stage.Save()
    everything = load_mesh(path)
    assert everything.group_names == ("Skin", "Body")
    np.testing.assert_array_equal(everything.vertices[:507], suzanne.vertices.astype(np.float32))
    face = load_mesh(path, select="Face")
    assert face.group_names == ("Skin",)


def test_usdz_package_reads_like_its_layer(tmp_path: Path, suzanne: Mesh) -> None:
    layer = tmp_path / "monkey.usdc"
    stage = new_stage(layer)
    define_mesh(stage, "/Root/Monkey", suzanne, uv="vertex")
    stage.Save()
    package = tmp_path / "monkey.usdz"
    assert UsdUtils.CreateNewUsdzPackage(Sdf.AssetPath(str(layer)), str(package))
    assert load_mesh(package).content_hash == load_mesh(layer).content_hash
