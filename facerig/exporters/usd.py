"""USD writer: a UsdSkel blendshape rig that usdview, Blender, Maya, Houdini and Omniverse deform.

Layout: what every UsdSkel consumer needs before shapes deform (``reference/formats-and-conventions.md``
§1.2), arranged as the USD asset structure guidelines ask (a defaultPrim of kind ``component``, geometry in a
``geo`` scope, prims named after the asset)::

    /<name>                SkelRoot, defaultPrim, kind = component
      /geo                 Scope
        /<name>            Mesh + SkelBindingAPI: skel:skeleton, skel:blendShapes, skel:blendShapeTargets
          /<shape>         BlendShape: offsets (+ pointIndices when sparse)
      /Skel                Skeleton with no joints + SkelBindingAPI: skel:animationSource
        /Anim              SkelAnimation: blendShapes, blendShapeWeights (time-sampled)

The mesh keeps the file's polygons, face-varying UVs (``primvars:st``), polygon groups (GeomSubsets), units
(``metersPerUnit``) and up axis (``upAxis``); its transform is identity (UsdSkel ignores transforms on skinned
prims). ``normals`` are smooth vertex normals computed from the neutral (facerig's Mesh does not keep a
file's own normals; vertices the file split, at hard edges or seams, keep their split). Corrective recipes
are in the mesh's and each corrective BlendShape's ``customData["facerig"]``.

A rig whose neutral came from a USD file can instead be written as a layer over that file
(:mod:`facerig.exporters.usd_layer`).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from pxr import Kind, Sdf, Usd, UsdGeom, UsdSkel, Vt

from facerig.exporters.common import (
    Exporter,
    ExportOptions,
    ExportRig,
    ExportShape,
    describe,
    export_name,
    unique_name,
)
from facerig.geometry import vertex_normals

PREVIEW_FPS = 24.0
GEOMETRY_SCOPE = "geo"
SKELETON_PRIM = "Skel"
ANIMATION_PRIM = "Anim"
# GeomSubset family of the polygon groups: they come from OBJ usemtl groups, glTF primitives and USD
# material subsets, so "materialBind" is what they mean, and DCCs turn that family into material slots.
GROUP_FAMILY = "materialBind"


def export_usd(ir: ExportRig, binary: bool = True, options: ExportOptions = ExportOptions()) -> bytes:
    """The rig as one USD layer: crate (.usdc) bytes when ``binary``, else usda text bytes."""
    stage = build_stage(ir, options)  # held: the anonymous root layer lives only as long as its stage
    return layer_bytes(stage.GetRootLayer(), binary)


def layer_bytes(layer: Sdf.Layer, binary: bool) -> bytes:
    """A layer as crate (.usdc) bytes when ``binary``, else as usda text bytes."""
    if not binary:
        return layer.ExportToString().encode()
    # The crate format can only be written to a file; the temp file never leaves this function.
    with tempfile.TemporaryDirectory(prefix="facerig-usd-") as tmp:
        path = Path(tmp) / "rig.usdc"
        layer.Export(str(path))
        return path.read_bytes()


def build_stage(ir: ExportRig, options: ExportOptions = ExportOptions()) -> Usd.Stage:
    """An in-memory stage holding the rig (the writer's only state; exposed for tests and tools)."""
    stage = Usd.Stage.CreateInMemory()
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z if ir.up_axis == "Z" else UsdGeom.Tokens.y)
    UsdGeom.SetStageMetersPerUnit(stage, ir.meters_per_unit)
    stage.GetRootLayer().documentation = f"FACS blendshape rig written by facerig ({ir.naming} names)"

    root = UsdSkel.Root.Define(stage, Sdf.Path(f"/{ir.name}"))
    stage.SetDefaultPrim(root.GetPrim())
    Usd.ModelAPI(root.GetPrim()).SetKind(Kind.Tokens.component)
    geometry = UsdGeom.Scope.Define(stage, root.GetPath().AppendChild(GEOMETRY_SCOPE))
    mesh = _define_mesh(stage, geometry.GetPath().AppendChild(ir.name), ir)
    skeleton = define_skeleton(stage, root.GetPath().AppendChild(SKELETON_PRIM), ir, options)
    bind_shapes(stage, mesh.GetPrim(), skeleton, ir, ir.shapes)
    return stage


def define_skeleton(stage: Usd.Stage, path: Sdf.Path, ir: ExportRig, options: ExportOptions) -> UsdSkel.Skeleton:
    """A Skeleton without joints whose animation source (``Anim`` below it) holds the shapes' weights."""
    skeleton = UsdSkel.Skeleton.Define(stage, path)
    skeleton.CreateJointsAttr(Vt.TokenArray())
    animation = _define_animation(stage, skeleton.GetPath().AppendChild(ANIMATION_PRIM), ir, options)
    UsdSkel.BindingAPI.Apply(skeleton.GetPrim()).CreateAnimationSourceRel().SetTargets([animation.GetPath()])
    return skeleton


def bind_shapes(
    stage: Usd.Stage,
    prim: Usd.Prim,
    skeleton: UsdSkel.Skeleton | None,
    ir: ExportRig,
    shapes: list[ExportShape] | tuple[ExportShape, ...],
) -> None:
    """Define ``shapes`` as BlendShapes under mesh ``prim`` (offsets in its point space) and bind them to it.

    ``skeleton`` None leaves the prim's skeleton binding as it is (a skinned character keeps its own).
    """
    binding = UsdSkel.BindingAPI.Apply(prim)
    if skeleton is not None:
        binding.CreateSkeletonRel().SetTargets([skeleton.GetPath()])
    targets = [_define_blend_shape(stage, prim.GetPath(), shape, ir) for shape in shapes]
    # Blender names shape keys after these tokens and skips the mesh unless both lists have equal length.
    binding.CreateBlendShapesAttr(Vt.TokenArray([shape.name for shape in shapes]))
    binding.CreateBlendShapeTargetsRel().SetTargets(targets)

    description = describe(ir)
    prim.SetCustomDataByKey(
        "facerig",
        {
            "naming": ir.naming,
            "correctives": description["correctives"],
            # The whole record (provenance, units policy, rig metadata) exactly, as the sidecar has it.
            "json": json.dumps(description, allow_nan=False),
        },
    )


def _define_mesh(stage: Usd.Stage, path: Sdf.Path, ir: ExportRig) -> UsdGeom.Mesh:
    source = ir.mesh
    mesh = UsdGeom.Mesh.Define(stage, path)
    points = Vt.Vec3fArray.FromNumpy(source.vertices.astype(np.float32))
    mesh.CreatePointsAttr(points)
    mesh.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(source.face_vertex_counts.astype(np.int32)))
    mesh.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(source.face_vertex_indices.astype(np.int32)))
    # The file's polygons are the final surface, not a subdivision cage (USD's fallback is catmullClark).
    mesh.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
    mesh.CreateExtentAttr(UsdGeom.PointBased.ComputeExtent(points))
    normals = vertex_normals(source.vertices, source.triangles).astype(np.float32)
    mesh.CreateNormalsAttr(Vt.Vec3fArray.FromNumpy(normals))
    mesh.SetNormalsInterpolation(UsdGeom.Tokens.vertex)
    if source.uvs is not None:
        st = UsdGeom.PrimvarsAPI(mesh).CreatePrimvar(
            "st", Sdf.ValueTypeNames.TexCoord2fArray, UsdGeom.Tokens.faceVarying
        )
        st.Set(Vt.Vec2fArray.FromNumpy(source.uvs.astype(np.float32)))
        st.SetIndices(Vt.IntArray.FromNumpy(source.uv_indices.astype(np.int32)))
    if len(source.group_names) > 1:
        used: set[str] = set()
        for group, group_name in enumerate(source.group_names):
            faces = np.flatnonzero(source.polygon_groups == group).astype(np.int32)
            if len(faces) == 0:
                continue
            name = unique_name(export_name(group_name), used)
            UsdGeom.Subset.CreateGeomSubset(
                mesh, name, UsdGeom.Tokens.face, Vt.IntArray.FromNumpy(faces), GROUP_FAMILY, UsdGeom.Tokens.partition
            )
    return mesh


def _define_blend_shape(stage: Usd.Stage, mesh_path: Sdf.Path, shape: ExportShape, ir: ExportRig) -> Sdf.Path:
    blend_shape = UsdSkel.BlendShape.Define(stage, mesh_path.AppendChild(shape.name))
    if shape.is_sparse:
        # Blender skips a target with empty offsets, so a shape that moves nothing keeps one zero offset.
        indices = shape.indices if len(shape.indices) else np.zeros(1, np.int64)
        blend_shape.CreateOffsetsAttr(Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(shape.deltas[indices])))
        blend_shape.CreatePointIndicesAttr(Vt.IntArray.FromNumpy(indices.astype(np.int32)))
    else:
        blend_shape.CreateOffsetsAttr(Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(shape.deltas)))
    drivers = ir.correctives.get(shape.name)
    if drivers:
        blend_shape.GetPrim().SetCustomDataByKey("facerig", {"drivers": list(drivers), "rule": "product"})
    return blend_shape.GetPath()


def _define_animation(stage: Usd.Stage, path: Sdf.Path, ir: ExportRig, options: ExportOptions) -> UsdSkel.Animation:
    animation = UsdSkel.Animation.Define(stage, path)
    animation.CreateBlendShapesAttr(Vt.TokenArray(list(ir.shape_names)))
    weights = animation.CreateBlendShapeWeightsAttr(Vt.FloatArray(len(ir.shapes)))
    # Blender imports the weights only from time samples, so the rest pose is sampled at frame 0 too.
    frames = ir.preview_weights() if options.preview_animation else np.zeros((1, len(ir.shapes)), np.float32)
    for frame, values in enumerate(frames):
        weights.Set(Vt.FloatArray.FromNumpy(values), Usd.TimeCode(frame))
    stage.SetStartTimeCode(0)
    stage.SetEndTimeCode(len(frames) - 1)
    stage.SetTimeCodesPerSecond(PREVIEW_FPS)
    stage.SetFramesPerSecond(PREVIEW_FPS)
    return animation


EXPORTERS = {
    "usd": Exporter("usd", (".usd",), lambda ir, options: export_usd(ir, True, options)),
    "usdc": Exporter("usdc", (".usdc",), lambda ir, options: export_usd(ir, True, options)),
    "usda": Exporter("usda", (".usda",), lambda ir, options: export_usd(ir, False, options)),
}
