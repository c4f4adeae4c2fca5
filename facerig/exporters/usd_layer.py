"""USD round trip: a rig layer that adds the BlendShapes over the user's own USD asset, which stays untouched.

When a rig's neutral was read from a USD file, :func:`export_usd_rig_layer` writes a layer that sublayers that
file (by a path relative to the layer) and authors only opinions over it:

* each Mesh prim the rig's vertices came from gets ``SkelBindingAPI``, ``skel:blendShapes``,
  ``skel:blendShapeTargets`` and one ``BlendShape`` child per shape (offsets in the prim's own point space:
  the rig's offsets, in the stage's world frame as the reader placed the points, through the inverse of the
  prim's world transform), and ``customData["facerig"]`` with the recipes;
* the nearest ancestor of those meshes below the root (the default prim when they share nothing closer)
  becomes a ``SkelRoot`` (a ``SkelRoot`` ancestor is reused) holding ``facerig_Skel``, a Skeleton without
  joints whose ``Anim`` carries the shapes' weights; a mesh already bound to a skeleton (a skinned character)
  keeps it, and its weights come from that skeleton's animation;
* the source's ``defaultPrim``, ``upAxis`` and ``metersPerUnit`` are repeated (stage metadata is read from
  the root layer only).

The rig's vertex order is the reader's (:func:`facerig.io.usd.load_usd`): the kept Mesh prims in traversal
order, one polygon group per prim (named by the prim, or its path when the name repeats). Groups are matched
to prims by name and by their points, so a file changed since rigging is refused with the reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pxr import Sdf, Usd, UsdGeom, UsdSkel

from facerig.errors import ExportError
from facerig.exporters.common import ExportOptions, ExportRig, ExportShape
from facerig.exporters.usd import bind_shapes, define_skeleton, layer_bytes

USD_SUFFIXES = (".usd", ".usda", ".usdc", ".usdz")
SKELETON_NAME = "facerig_Skel"
# The layer and the reader see the same float32 points through the same transforms: they agree exactly
# unless the file changed since rigging.
MATCH_TOLERANCE_REL = 1e-6


@dataclass(frozen=True, eq=False)
class SourcePrim:
    """One Mesh prim of the source stage and where its points are in the rig."""

    path: Sdf.Path
    start: int
    count: int
    world: np.ndarray  # (4, 4) local-to-world matrix, for row vectors (USD's convention)


def match_source_prims(ir: ExportRig) -> tuple[Usd.Stage, list[SourcePrim]]:
    """Open the rig's source USD file and find the Mesh prim of each of the rig's polygon groups.

    Raises:
        ExportError: the neutral was not read from a USD file, or the file no longer holds its points.
    """
    source = ir.mesh.source
    if source is None or Path(source).suffix.lower() not in USD_SUFFIXES:
        raise ExportError("a USD rig layer needs a rig whose neutral was read from a USD file", source)
    if not Path(source).is_file():
        raise ExportError("the rig's source USD file is no longer there", source)
    stage = Usd.Stage.Open(str(source), Usd.Stage.LoadAll)
    time = Usd.TimeCode.EarliestTime()
    xforms = UsdGeom.XformCache(time)
    root = stage.GetDefaultPrim() or stage.GetPseudoRoot()
    candidates = [p for p in Usd.PrimRange(root, Usd.TraverseInstanceProxies(Usd.PrimDefaultPredicate))
                  if p.IsA(UsdGeom.Mesh)]  # fmt: skip
    vertices = ir.mesh.vertices
    tolerance = MATCH_TOLERANCE_REL * max(float(np.abs(vertices).max()), 1e-12)
    prims, start, used = [], 0, set()
    for group in ir.mesh.group_names:
        for prim in candidates:
            if prim.GetPath() in used or group not in (prim.GetName(), str(prim.GetPath())):
                continue
            points = np.asarray(UsdGeom.Mesh(prim).GetPointsAttr().Get(time) or [], np.float64).reshape(-1, 3)
            world = np.array(xforms.GetLocalToWorldTransform(prim), np.float64)
            placed = points @ world[:3, :3] + world[3, :3]
            rows = vertices[start : start + len(points)]
            if len(rows) == len(points) and np.abs(rows - placed).max(initial=0.0) <= tolerance:
                break
        else:
            raise ExportError(f"the source USD file no longer holds the rig's mesh {group!r} as rigged", source)
        if prim.IsInstanceProxy():
            raise ExportError(f"{prim.GetPath()} is inside an instance; a layer cannot add shapes to it", source)
        used.add(prim.GetPath())
        prims.append(SourcePrim(prim.GetPath(), start, len(points), world))
        start += len(points)
    if start != len(vertices):
        raise ExportError("the source USD file no longer holds the rig's neutral as rigged", source)
    return stage, prims


def build_rig_layer(ir: ExportRig, sublayer: str, options: ExportOptions = ExportOptions()) -> Sdf.Layer:
    """The rig layer: ``sublayer`` (the asset path to the user's file, as written in the layer) plus the rig."""
    source_stage, prims = match_source_prims(ir)
    stage = Usd.Stage.CreateInMemory()
    skel_root = _skel_root_path(source_stage, [p.path for p in prims])
    root_prim = source_stage.GetPrimAtPath(skel_root)
    if not root_prim.IsA(UsdSkel.Root):
        stage.OverridePrim(skel_root).SetTypeName("SkelRoot")
    skeleton = define_skeleton(stage, skel_root.AppendChild(SKELETON_NAME), ir, options)
    for prim in prims:
        bound = UsdSkel.BindingAPI(source_stage.GetPrimAtPath(prim.path)).GetInheritedSkeleton()
        to_local = np.linalg.inv(prim.world[:3, :3])  # row vectors: local = world @ inverse
        shapes = [_local_shape(shape, prim, to_local) for shape in ir.shapes]
        bind_shapes(stage, stage.OverridePrim(prim.path), None if bound else skeleton, ir, shapes)

    layer = Sdf.Layer.CreateAnonymous(".usda")
    layer.TransferContent(stage.GetRootLayer())
    layer.subLayerPaths.append(sublayer)
    source_info, rig_info, info = (
        source_stage.GetRootLayer().pseudoRoot, stage.GetRootLayer().pseudoRoot, layer.pseudoRoot
    )  # fmt: skip
    if source_stage.GetDefaultPrim():
        layer.defaultPrim = source_stage.GetDefaultPrim().GetName()
    for key in (UsdGeom.Tokens.upAxis, UsdGeom.Tokens.metersPerUnit):
        if source_info.HasInfo(key):
            info.SetInfo(key, source_info.GetInfo(key))
    # The weights' time range, unless the user's file has its own (their animation keeps its frame range).
    for key in ("startTimeCode", "endTimeCode", "timeCodesPerSecond", "framesPerSecond"):
        if source_info.HasInfo(key):
            info.ClearInfo(key)
        elif rig_info.HasInfo(key):
            info.SetInfo(key, rig_info.GetInfo(key))
    layer.documentation = f"facerig rig layer ({ir.naming} names) over {sublayer}"
    return layer


def export_usd_rig_layer(ir: ExportRig, path: Path, binary: bool, options: ExportOptions = ExportOptions()) -> bytes:
    """The rig layer's bytes for a file written at ``path`` (its sublayer path is relative to ``path``'s folder)."""
    source = Path(ir.mesh.source or "").resolve()
    sublayer = Path(os.path.relpath(source, path.resolve().parent)).as_posix()
    layer = build_rig_layer(ir, sublayer if sublayer.startswith(".") else f"./{sublayer}", options)
    return layer_bytes(layer, binary)


def _local_shape(shape: ExportShape, prim: SourcePrim, to_local: np.ndarray) -> ExportShape:
    """The part of ``shape`` on one prim's points, in the prim's point space."""
    deltas = (shape.deltas[prim.start : prim.start + prim.count].astype(np.float64) @ to_local).astype(np.float32)
    moving = shape.indices[(shape.indices >= prim.start) & (shape.indices < prim.start + prim.count)] - prim.start
    deltas[np.setdiff1d(np.arange(prim.count), moving)] = 0.0
    deltas.setflags(write=False)
    moving.setflags(write=False)
    return ExportShape(shape.name, deltas, moving)


def _skel_root_path(stage: Usd.Stage, meshes: list[Sdf.Path]) -> Sdf.Path:
    """The SkelRoot for the meshes: a SkelRoot ancestor they share, else their nearest common ancestor prim
    below the pseudo-root (a mesh that is itself a root prim cannot be wrapped)."""
    common = meshes[0].GetParentPath()
    for path in meshes[1:]:
        common = common.GetCommonPrefix(path.GetParentPath())
    probe = common
    while probe != Sdf.Path.absoluteRootPath:
        if stage.GetPrimAtPath(probe).IsA(UsdSkel.Root):
            return probe
        probe = probe.GetParentPath()
    if common == Sdf.Path.absoluteRootPath:
        raise ExportError(f"{meshes[0]} is a root prim; a rig layer needs the mesh under a parent prim to make a SkelRoot")
    return common


__all__ = ["build_rig_layer", "export_usd_rig_layer", "match_source_prims"]
