"""USD round trip: a rig layer composes the BlendShapes over the user's own USD asset, which stays untouched;
the stand-alone asset follows the USD asset structure guidelines."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from pxr import Gf, Kind, Sdf, Usd, UsdGeom, UsdShade, UsdSkel, Vt

from facerig.errors import ExportError
from facerig.exporters import export_rig
from facerig.errors import MeshLoadError
from facerig.io import load_blend_shapes, load_mesh
from facerig.rig import Rig

CORRECTIVE, BASES = "JawDrop_LeftLipCornerPuller", ("JawDrop", "LeftLipCornerPuller")


def author_character(small_rig: Rig, path: Path) -> Path:
    """A user's asset: /Character (Xform, defaultPrim) / Body (scaled, moved Xform) / Head (the small rig's
    neutral, with a material) and a Prop mesh beside it; centimetres, Y up."""
    stage = Usd.Stage.CreateNew(str(path))
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.y)
    UsdGeom.SetStageMetersPerUnit(stage, 0.01)
    character = UsdGeom.Xform.Define(stage, "/Character")
    stage.SetDefaultPrim(character.GetPrim())
    body = UsdGeom.Xform.Define(stage, "/Character/Body")
    body.AddTranslateOp().Set(Gf.Vec3d(0.0, 150.0, 2.0))
    body.AddRotateYOp().Set(30.0)
    body.AddScaleOp().Set(Gf.Vec3f(1.5, 1.5, 1.5))
    neutral = small_rig.neutral
    head = UsdGeom.Mesh.Define(stage, "/Character/Body/Head")
    head.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(neutral.vertices.astype(np.float32)))
    head.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(neutral.face_vertex_counts))
    head.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(neutral.face_vertex_indices.astype(np.int32)))
    material = UsdShade.Material.Define(stage, "/Character/Looks/Skin")
    UsdShade.MaterialBindingAPI.Apply(head.GetPrim()).Bind(material)
    prop = UsdGeom.Mesh.Define(stage, "/Character/Prop")
    prop.CreatePointsAttr([(0, 0, 0), (1, 0, 0), (0, 1, 0)])
    prop.CreateFaceVertexCountsAttr([3])
    prop.CreateFaceVertexIndicesAttr([0, 1, 2])
    stage.GetRootLayer().Save()
    return path


def shaped_rig(mesh, small_rig: Rig) -> Rig:
    """The small rig's real ICT deltas, carried to the asset's world frame (the Body transform's linear part)."""
    stage_points = mesh.vertices
    rest = small_rig.neutral.vertices
    # Solve the linear map rest -> world once (exact up to float32 rounding of the authored points).
    centred = rest - rest.mean(axis=0)
    linear = np.linalg.lstsq(centred, stage_points - stage_points.mean(axis=0), rcond=None)[0]  # row vectors
    deltas = (small_rig.deltas.astype(np.float64) @ linear).astype(np.float32)
    return Rig(mesh, small_rig.shape_names, deltas, small_rig.corrective_recipes)


@pytest.fixture()
def character(small_rig: Rig, tmp_path: Path) -> tuple[Path, Rig]:
    (tmp_path / "asset").mkdir()
    path = author_character(small_rig, tmp_path / "asset" / "character.usda")
    mesh = load_mesh(path, select="Head")
    return path, shaped_rig(mesh, small_rig)


def test_rig_layer_composes_over_untouched_asset(character: tuple[Path, Rig], tmp_path: Path) -> None:
    source, rig = character
    before = hashlib.sha256(source.read_bytes()).hexdigest()
    layer_path = export_rig(rig, tmp_path / "rigs" / "character_rig.usda", preserve_source=True)
    assert hashlib.sha256(source.read_bytes()).hexdigest() == before

    layer = Sdf.Layer.FindOrOpen(str(layer_path))
    assert list(layer.subLayerPaths) == ["../asset/character.usda"]
    assert layer.defaultPrim == "Character"
    stage = Usd.Stage.Open(str(layer_path))
    assert UsdGeom.GetStageMetersPerUnit(stage) == 0.01 and UsdGeom.GetStageUpAxis(stage) == "Y"
    head = stage.GetPrimAtPath("/Character/Body/Head")
    assert head.HasAPI(UsdSkel.BindingAPI)
    binding = UsdSkel.BindingAPI(head)
    assert list(binding.GetBlendShapesAttr().Get()) == list(rig.shape_names)
    targets = binding.GetBlendShapeTargetsRel().GetTargets()
    assert all(stage.GetPrimAtPath(t).IsA(UsdSkel.BlendShape) for t in targets) and len(targets) == rig.n_shapes
    assert stage.GetPrimAtPath("/Character/Body").IsA(UsdSkel.Root)
    skeleton = binding.GetInheritedSkeleton()
    assert skeleton and skeleton.GetPath() == Sdf.Path("/Character/Body/facerig_Skel")
    # The user's own opinions are still there, and what the rig did not touch is unchanged.
    assert UsdShade.MaterialBindingAPI(head).GetDirectBinding().GetMaterialPath() == Sdf.Path("/Character/Looks/Skin")
    assert not stage.GetPrimAtPath("/Character/Prop").HasAPI(UsdSkel.BindingAPI)
    recipe = json.loads(head.GetCustomDataByKey("facerig")["json"])["correctives"][CORRECTIVE]
    assert recipe == {"drivers": list(BASES), "rule": "product"}

    # The composed shapes, read in the world frame, are the rig's deltas (offsets under float32 resolution
    # at the head's 150 cm height, 2e-5 cm, are written as 0 by every exporter).
    tolerance = json.loads(layer_path.with_name(layer_path.name + ".facerig.json").read_text())["zero_tolerance"]
    assert tolerance < 3e-5
    # facerig's own reader confines composed layers to the input's folder (facerig.io.sandbox): the layer in
    # rigs/ composes ../asset, so the reader refuses it; a rig layer beside the asset's folder reads back.
    with pytest.raises(MeshLoadError, match="outside the file's folder"):
        load_blend_shapes(layer_path, select="Head")
    beside = export_rig(rig, source.parent.parent / "character_rig.usda", preserve_source=True)
    shapes = load_blend_shapes(beside, select="Head")
    np.testing.assert_allclose(shapes.mesh.vertices, rig.neutral.vertices, atol=1e-9)
    for k, name in enumerate(rig.shape_names):
        np.testing.assert_allclose(shapes.deltas[shapes.names.index(name)], rig.deltas[k], atol=tolerance + 1e-6)
    assert np.abs(rig.deltas[rig.index("LeftEyeClosed")]).max() > 0.5  # cm: a real blink, not zeros


def test_rig_layer_skinned_by_usdskel(character: tuple[Path, Rig], tmp_path: Path) -> None:
    """UsdSkel itself (the skinning query every consumer uses) sees the shapes on the user's mesh."""
    source, rig = character
    layer_path = export_rig(rig, tmp_path / "character_rig.usdc", preserve_source=True)
    stage = Usd.Stage.Open(str(layer_path))
    cache = UsdSkel.Cache()
    root = UsdSkel.Root(stage.GetPrimAtPath("/Character/Body"))
    cache.Populate(root, Usd.PrimDefaultPredicate)
    bindings = cache.ComputeSkelBindings(root, Usd.PrimDefaultPredicate)
    queries = [q for b in bindings for q in b.GetSkinningTargets()]
    assert [str(q.GetPrim().GetPath()) for q in queries] == ["/Character/Body/Head"]
    assert list(queries[0].GetBlendShapeOrder()) == list(rig.shape_names)


def test_rig_layer_refuses_a_changed_asset(character: tuple[Path, Rig], tmp_path: Path) -> None:
    source, rig = character
    moved = Rig(rig.neutral.with_vertices(rig.neutral.vertices + 1.0), rig.shape_names, rig.deltas,
                rig.corrective_recipes)  # fmt: skip
    with pytest.raises(ExportError, match="no longer holds the rig's mesh 'Head'"):
        export_rig(moved, tmp_path / "moved.usda", preserve_source=True)
    assert not (tmp_path / "moved.usda").exists()


def test_rig_layer_needs_a_usd_source(small_rig: Rig, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="read from a USD file"):
        export_rig(small_rig, tmp_path / "layer.usda", preserve_source=True)
    with pytest.raises(ExportError, match="glTF and USD outputs, not fbx"):
        export_rig(small_rig, tmp_path / "layer.fbx", preserve_source=True)


def test_standalone_asset_structure(small_rig: Rig, tmp_path: Path) -> None:
    stage = Usd.Stage.Open(str(export_rig(small_rig, tmp_path / "eye.usda")))
    root = stage.GetDefaultPrim()
    name = small_rig.neutral.name
    assert root.GetPath() == Sdf.Path(f"/{name}") and root.IsA(UsdSkel.Root)
    assert Usd.ModelAPI(root).GetKind() == Kind.Tokens.component
    assert stage.GetPrimAtPath(f"/{name}/geo").IsA(UsdGeom.Scope)
    mesh = UsdGeom.Mesh(stage.GetPrimAtPath(f"/{name}/geo/{name}"))
    assert mesh and [p.GetName() for p in root.GetChildren()] == ["geo", "Skel"]
    normals = np.asarray(mesh.GetNormalsAttr().Get())
    assert mesh.GetNormalsInterpolation() == UsdGeom.Tokens.vertex
    assert normals.shape == (small_rig.neutral.n_vertices, 3)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-5)


def test_cli_export_keep_source_writes_the_layer(character: tuple[Path, Rig], tmp_path: Path) -> None:
    from facerig.cli import run

    source, rig = character
    bundle = rig.save(tmp_path / "character.facerig.npz")
    assert run(["export", str(bundle), "--format", "usda", "--keep-source", "-o", str(tmp_path / "out")]) == 0
    layer = Sdf.Layer.FindOrOpen(str(tmp_path / "out" / "character.usda"))
    assert list(layer.subLayerPaths) == ["../asset/character.usda"]
    assert run(["export", str(bundle), "--format", "usda", "--standalone", "-o", str(tmp_path / "own")]) == 0
    assert not list(Sdf.Layer.FindOrOpen(str(tmp_path / "own" / "character.usda")).subLayerPaths)
