"""USD export: read back with pxr (the reference implementation), baked with UsdSkel, validated."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from pxr import Gf, Sdf, Usd, UsdGeom, UsdSkel, UsdValidation, Vt

from facerig.exporters import export_rig
from facerig.exporters.common import ExportOptions, gather
from facerig.exporters.usd import export_usd
from facerig.rig import Rig


def _parts(stage: Usd.Stage) -> tuple[UsdSkel.Root, UsdGeom.Mesh, UsdSkel.Skeleton, UsdSkel.Animation]:
    root = UsdSkel.Root(stage.GetDefaultPrim())
    assert root, "defaultPrim is not a SkelRoot"
    # The asset structure guidelines' layout: the mesh, named after the asset, in a geo scope.
    mesh = UsdGeom.Mesh(stage.GetPrimAtPath(root.GetPath().AppendPath(f"geo/{root.GetPrim().GetName()}")))
    skeleton_path = UsdSkel.BindingAPI(mesh.GetPrim()).GetSkeletonRel().GetTargets()[0]
    skeleton = UsdSkel.Skeleton(stage.GetPrimAtPath(skeleton_path))
    anim_path = UsdSkel.BindingAPI(skeleton.GetPrim()).GetAnimationSourceRel().GetTargets()[0]
    return root, mesh, skeleton, UsdSkel.Animation(stage.GetPrimAtPath(anim_path))


def _validation_errors(stage: Usd.Stage) -> list[str]:
    validators = UsdValidation.ValidationRegistry().GetOrLoadAllValidators()
    assert len(validators) >= 20  # the stock suite (stage metadata, composition, usdGeom, usdSkel, ...)
    errors = UsdValidation.ValidationContext(validators).Validate(stage)
    error = UsdValidation.ValidationErrorType.Error
    return [f"{e.GetName()}: {e.GetMessage()}" for e in errors if e.GetType() == error]


def _bake(stage: Usd.Stage, weights: np.ndarray) -> np.ndarray:
    """(F, V, 3) points UsdSkel bakes for F frames of (F, S) weights authored on the rig's animation."""
    root, mesh, _, anim = _parts(stage)
    attr = anim.GetBlendShapeWeightsAttr()
    attr.Clear()
    for frame, values in enumerate(weights, start=1):
        attr.Set(Vt.FloatArray.FromNumpy(values.astype(np.float32)), frame)
    assert UsdSkel.BakeSkinning(root, Gf.Interval(1, len(weights)))
    return np.stack([np.array(mesh.GetPointsAttr().Get(frame)) for frame in range(1, len(weights) + 1)])


def test_usdc_round_trip_full_head(tmp_path: Path, full_rig: Rig) -> None:
    """The full 17-component head: geometry, names, and every shape baked by UsdSkel at weight 1."""
    path = export_rig(full_rig, tmp_path / "head.usd")
    assert path.read_bytes()[:8] == b"PXR-USDC"  # .usd is written as crate
    stage = Usd.Stage.Open(str(path))
    assert _validation_errors(stage) == []
    assert UsdGeom.GetStageUpAxis(stage) == "Y"
    assert UsdGeom.GetStageMetersPerUnit(stage) == pytest.approx(0.01)  # ICT is centimetres (inferred)

    _, mesh, skeleton, anim = _parts(stage)
    neutral = full_rig.neutral
    np.testing.assert_allclose(np.array(mesh.GetPointsAttr().Get()), neutral.vertices, atol=1e-5)
    np.testing.assert_array_equal(np.array(mesh.GetFaceVertexCountsAttr().Get()), neutral.face_vertex_counts)
    np.testing.assert_array_equal(np.array(mesh.GetFaceVertexIndicesAttr().Get()), neutral.face_vertex_indices)
    st = UsdGeom.PrimvarsAPI(mesh).GetPrimvar("st")
    assert st.GetInterpolation() == UsdGeom.Tokens.faceVarying
    np.testing.assert_allclose(np.array(st.ComputeFlattened()), neutral.uvs[neutral.uv_indices], atol=1e-7)
    subsets = UsdGeom.Subset.GetGeomSubsets(mesh, UsdGeom.Tokens.face, "materialBind")
    assert sorted(s.GetPrim().GetName() for s in subsets) == sorted(neutral.group_names)
    assert mesh.GetPrim().GetAttribute("xformOpOrder").Get() is None  # identity transform
    assert list(skeleton.GetJointsAttr().Get()) == []

    binding = UsdSkel.BindingAPI(mesh.GetPrim())
    names = list(binding.GetBlendShapesAttr().Get())
    assert names == list(full_rig.shape_names)
    assert len(binding.GetBlendShapeTargetsRel().GetTargets()) == full_rig.n_shapes == 10
    assert list(anim.GetBlendShapesAttr().Get()) == names
    for target in binding.GetBlendShapeTargetsRel().GetTargets():
        indices = UsdSkel.BlendShape(stage.GetPrimAtPath(target)).GetPointIndicesAttr().Get()
        if indices is not None:
            assert 0 <= min(indices) and max(indices) < neutral.n_vertices

    # Frames 1..S: each shape alone at weight 1; last frame: a corrective on top of its two drivers.
    combined = {"JawDrop": 1.0, "LeftLipCornerPuller": 1.0, "JawDrop_LeftLipCornerPuller": 1.0}
    weights = np.vstack([np.eye(full_rig.n_shapes), [[combined.get(n, 0.0) for n in full_rig.shape_names]]])
    baked = _bake(stage, weights)  # (S + 1, V, 3); baking turns the SkelRoot into a plain Xform
    for k, name in enumerate(full_rig.shape_names):
        error = np.abs(baked[k] - (neutral.vertices + full_rig.deltas[k])).max()
        assert error < 1e-5, f"{name}: baked shape differs from neutral + delta by {error} cm"
    expected = full_rig.evaluate({"JawDrop": 1.0, "LeftLipCornerPuller": 1.0})  # corrective driven by product
    assert np.abs(baked[-1] - expected).max() < 1e-5


def test_sparse_shapes_use_point_indices(small_rig: Rig) -> None:
    stage = Usd.Stage.Open(Sdf.Layer.CreateAnonymous(".usda"))
    stage.GetRootLayer().ImportFromString(export_usd(gather(small_rig), binary=False).decode())
    _, mesh, _, _ = _parts(stage)
    n_points = len(mesh.GetPointsAttr().Get())
    shapes = {p.GetName(): UsdSkel.BlendShape(p) for p in mesh.GetPrim().GetChildren() if p.IsA(UsdSkel.BlendShape)}
    moving = {name: int((np.abs(small_rig.delta(name)).max(axis=1) > 0).sum()) for name in small_rig.shape_names}

    eyes_look = shapes["EyesLookLeft"]  # moves only the eyeball and its neighbours: 1,403 of 3,018 points
    assert moving["EyesLookLeft"] < n_points / 2
    assert len(eyes_look.GetPointIndicesAttr().Get()) == len(eyes_look.GetOffsetsAttr().Get()) == moving["EyesLookLeft"]
    # A shape that moves nothing keeps one zero offset: Blender drops a target whose offsets are empty.
    zero = shapes["Corrugator"]
    assert list(zero.GetPointIndicesAttr().Get()) == [0]
    assert tuple(zero.GetOffsetsAttr().Get()[0]) == (0.0, 0.0, 0.0)
    assert _validation_errors(stage) == []


def test_corrective_recipe_in_custom_data_and_sidecar(tmp_path: Path, small_rig: Rig) -> None:
    path = export_rig(small_rig, tmp_path / "eye.usda")
    stage = Usd.Stage.Open(str(path))
    _, mesh, _, _ = _parts(stage)
    recipe = {"drivers": ["JawDrop", "LeftLipCornerPuller"], "rule": "product"}
    data = mesh.GetPrim().GetCustomDataByKey("facerig")
    assert {k: {"drivers": list(v["drivers"]), "rule": v["rule"]} for k, v in data["correctives"].items()} == {
        "JawDrop_LeftLipCornerPuller": recipe
    }
    corrective = stage.GetPrimAtPath(mesh.GetPath().AppendChild("JawDrop_LeftLipCornerPuller"))
    assert list(corrective.GetCustomDataByKey("facerig")["drivers"]) == recipe["drivers"]

    sidecar = json.loads((tmp_path / "eye.usda.facerig.json").read_text())
    assert sidecar["format"] == "usda" and sidecar["file"] == "eye.usda"
    assert sidecar["correctives"] == {"JawDrop_LeftLipCornerPuller": recipe}
    assert sidecar["shapes"] == list(small_rig.shape_names)
    # The left-eye crop is 4.3 units across: by the head-size rule (facerig.units) a decimetre head.
    assert sidecar["units"] == {"meters_per_unit": 0.1, "source": "inferred from head size"}
    # The file carries the same record as its sidecar.
    assert json.loads(data["json"]) == {k: v for k, v in sidecar.items() if k not in ("file", "format")}


def test_preview_animation_one_pose_per_frame(small_rig: Rig) -> None:
    stage = Usd.Stage.Open(Sdf.Layer.CreateAnonymous(".usda"))
    text = export_usd(gather(small_rig), binary=False, options=ExportOptions(preview_animation=True))
    stage.GetRootLayer().ImportFromString(text.decode())
    _, _, _, anim = _parts(stage)
    attr = anim.GetBlendShapeWeightsAttr()
    n = small_rig.n_shapes
    assert attr.GetTimeSamples() == [float(f) for f in range(n + 1)]
    assert (stage.GetStartTimeCode(), stage.GetEndTimeCode()) == (0, n)
    assert list(attr.Get(0)) == [0.0] * n
    names = list(small_rig.shape_names)
    for k, name in enumerate(names):
        on = {name, *small_rig.corrective_recipes.get(name, ())}
        if {"JawDrop", "LeftLipCornerPuller"} <= on:
            on.add("JawDrop_LeftLipCornerPuller")  # driven by the product of its drivers
        assert list(attr.Get(k + 1)) == [1.0 if n_ in on else 0.0 for n_ in names], name

    # Without the preview, the rest pose is still time-sampled (Blender only imports sampled weights).
    plain = Usd.Stage.Open(Sdf.Layer.CreateAnonymous(".usda"))
    plain.GetRootLayer().ImportFromString(export_usd(gather(small_rig), binary=False).decode())
    assert _parts(plain)[3].GetBlendShapeWeightsAttr().GetTimeSamples() == [0.0]


def test_stated_up_axis_and_units_are_kept(small_rig: Rig) -> None:
    """A Z-up millimetre mesh stays Z-up millimetres: USD records axes and units instead of converting."""
    mesh = replace(small_rig.neutral, vertices=small_rig.neutral.vertices * 10, up_axis="Z", meters_per_unit=0.001)
    rig = Rig(mesh, small_rig.shape_names, small_rig.deltas * 10, small_rig.corrective_recipes)
    stage = Usd.Stage.Open(Sdf.Layer.CreateAnonymous(".usda"))
    stage.GetRootLayer().ImportFromString(export_usd(gather(rig), binary=False).decode())
    assert UsdGeom.GetStageUpAxis(stage) == "Z"
    assert UsdGeom.GetStageMetersPerUnit(stage) == pytest.approx(0.001)
    np.testing.assert_allclose(np.array(_parts(stage)[1].GetPointsAttr().Get()), mesh.vertices, atol=1e-4)
