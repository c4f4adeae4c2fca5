"""USD reader (.usd, .usda, .usdc, .usdz) through pxr (usd-core): every UsdGeom.Mesh, in world space.

Meshes are gathered under the stage's default prim (the whole stage when it has none), including
instance proxies, at the earliest authored time (the neutral for an animated file). Meshes whose
purpose is ``guide`` or ``proxy`` are skipped: guides are not geometry and proxies duplicate the render
meshes. World transforms come from ``UsdGeom.XformCache``; ``primvars:st`` (or the first texture
coordinate primvar) with faceVarying or vertex interpolation becomes the UVs. The stage's
``upAxis`` and ``metersPerUnit`` (USD's fallbacks when unauthored: Y and 0.01) are recorded.

:func:`load_usd_blend_shapes` also reads each kept Mesh's UsdSkel blend shapes (``skel:blendShapes`` names,
``skel:blendShapeTargets`` BlendShape prims: ``offsets`` plus optional ``pointIndices``; inbetweens and
normal offsets are not read), turned by the prim's world transform like its points.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facerig.errors import MeshLoadError
from facerig.io._common import (
    BlendShapes,
    LoadLimits,
    Source,
    assemble_mesh,
    check_cost,
    check_shape_budget,
    concatenate_uvs,
    reversed_winding,
)
from facerig.io._crate import check_usd_file
from facerig.io._select import name_matches
from facerig.io.sandbox import Sandbox
from facerig.mesh import Mesh, source_name

try:
    from pxr import Ar, Sdf, Tf, Usd, UsdGeom, UsdSkel, UsdUtils
except ImportError as _exc:  # usd-core is optional for the other formats; say so on first USD use
    _PXR_IMPORT_ERROR: ImportError | None = _exc
else:
    _PXR_IMPORT_ERROR = None

# What a USD file starts with: text layer, binary crate, or a usdz (zip) package.
_SIGNATURES = (b"#usda", b"PXR-USDC", b"PK\x03\x04")
_MAX_LAYERS = 256  # layers one input may compose; real assets have a handful


def load_usd(source: str | Path, limits: LoadLimits | None = None, *, select: str | None = None) -> Mesh:
    """Read every mesh of a USD stage into one Mesh, one polygon group per Mesh prim.

    Args:
        source: path of a .usd/.usda/.usdc/.usdz file (USD resolves references relative to it, so
            bytes are not accepted).
        limits: file size and vertex count bounds.
        select: keep only Mesh prims whose own name or an ancestor's name matches (a substring, or a
            glob such as ``"Head*"``: :mod:`facerig.io._select`).
    Raises:
        MeshLoadError: not a USD file, USD cannot open it, no meshes, malformed mesh data, or over ``limits``.
    """
    limits = limits or LoadLimits()
    src, stage, checked = _open_stage(source, limits)
    return _read_checked(src, stage, checked, limits, select)


def load_usd_blend_shapes(source: str | Path, limits: LoadLimits | None = None, *,
                          select: str | None = None) -> BlendShapes:
    """Read a USD stage's meshes (as :func:`load_usd`) and the UsdSkel blend shapes bound to them.

    A blend shape is named by the mesh's ``skel:blendShapes`` token; the same name on several meshes is one
    shape. Offsets get the linear part of the prim's world transform, as points get the whole transform.

    Raises:
        MeshLoadError: as :func:`load_usd`; also names and targets of different lengths, a target that is
            not a BlendShape, offsets that do not match the points (or ``pointIndices``), indices out of
            range, or more offsets than :data:`facerig.io._common.MAX_SHAPE_OFFSETS`.
    """
    limits = limits or LoadLimits()
    src, stage, checked = _open_stage(source, limits)
    kept: list[_KeptPrim] = []
    mesh = _read_checked(src, stage, checked, limits, select, kept)
    bound = [(prim, *_bound_shapes(src, stage, prim)) for prim in kept]
    names = list(dict.fromkeys(name for _, shape_names, _ in bound for name in shape_names))
    check_shape_budget(len(names), mesh.n_vertices, src.label)
    row = {name: i for i, name in enumerate(names)}
    deltas = np.zeros((len(names), mesh.n_vertices, 3), np.float32)
    time = Usd.TimeCode.EarliestTime()
    for prim, shape_names, shapes in bound:
        for name, shape in zip(shape_names, shapes):
            where = f"{prim.path} blend shape {name!r} ({shape.GetPath()})"
            offsets = _array(shape.GetOffsetsAttr().Get(time), np.float64).reshape(-1, 3)
            indices = _array(shape.GetPointIndicesAttr().Get(time), np.int64)
            if not shape.GetPointIndicesAttr().HasAuthoredValue():
                indices = np.arange(len(offsets))
                if len(offsets) != prim.count:
                    raise MeshLoadError(f"{where}: {len(offsets):,} offsets for {prim.count:,} points", src.label)
            elif len(indices) != len(offsets):
                raise MeshLoadError(f"{where}: {len(offsets):,} offsets for {len(indices):,} pointIndices", src.label)
            if len(indices) and (indices.min() < 0 or indices.max() >= prim.count):
                raise MeshLoadError(f"{where}: point index out of range ({prim.count:,} points)", src.label)
            deltas[row[name], prim.start + indices] = offsets @ prim.linear  # row vectors, as points
    return BlendShapes(mesh=mesh, names=tuple(names), deltas=deltas)


@dataclass(frozen=True)
class _KeptPrim:
    """Where one Mesh prim's points landed in the assembled mesh."""

    path: str
    prim: "Usd.Prim"
    start: int
    count: int
    linear: np.ndarray  # (3, 3) linear part of its world transform, for row vectors


def _bound_shapes(src: Source, stage: "Usd.Stage", kept: _KeptPrim) -> tuple[list[str], list["UsdSkel.BlendShape"]]:
    """The names and BlendShape prims bound to a mesh by ``skel:blendShapes`` and ``skel:blendShapeTargets``."""
    binding = UsdSkel.BindingAPI(kept.prim)
    names = [str(n) for n in (binding.GetBlendShapesAttr().Get() or [])]
    targets = binding.GetBlendShapeTargetsRel().GetTargets() if binding.GetBlendShapeTargetsRel() else []
    if len(names) != len(targets):
        raise MeshLoadError(
            f"{kept.path}: {len(names)} skel:blendShapes names but {len(targets)} skel:blendShapeTargets", src.label
        )
    if len(set(names)) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise MeshLoadError(f"{kept.path}: skel:blendShapes names {', '.join(map(repr, repeated))} twice", src.label)
    shapes = []
    for name, target in zip(names, targets):
        shape = UsdSkel.BlendShape(stage.GetPrimAtPath(target))
        if not shape:
            raise MeshLoadError(f"{kept.path}: blend shape {name!r} targets {target}, which is not a BlendShape",
                                src.label)
        shapes.append(shape)
    return names, shapes


def _open_stage(source: str | Path, limits: LoadLimits) -> tuple[Source, "Usd.Stage", set[str]]:
    """The checked file as a Source (no bytes: USD reads the path), its stage (every payload loaded, composed only
    from layers the sandbox admitted: :func:`_confined_layers`) and those layers' identifiers."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        raise MeshLoadError("USD is read from a file path, not from bytes", "<bytes>")
    sandbox = Sandbox(source, limits)
    path = sandbox.entry
    if _PXR_IMPORT_ERROR is not None:
        raise MeshLoadError(f"reading USD needs usd-core (pip install usd-core): {_PXR_IMPORT_ERROR}", path)
    with open(path, "rb") as handle:
        head = handle.read(16)
    if not head.startswith(_SIGNATURES):
        raise MeshLoadError("not a USD file (it starts with neither '#usda', 'PXR-USDC' nor a usdz header)", path)
    try:
        layers = _confined_layers(sandbox)
        stage = Usd.Stage.Open(layers[0], Usd.Stage.LoadAll)
    except Tf.ErrorException as exc:
        raise MeshLoadError(f"USD cannot open it: {_usd_reason(exc)}", path) from None
    checked = {layer.identifier for layer in layers}
    _refuse_unchecked_layers(stage, checked, path)
    return Source(b"", str(path), source_name(path), str(path)), stage, checked


def _read_checked(src: Source, stage: "Usd.Stage", checked: set[str], limits: LoadLimits, select: str | None,
                  kept: "list[_KeptPrim] | None" = None) -> Mesh:
    """:func:`_read_stage`, with crate errors found while reading values as MeshLoadError and the stage's layers
    checked again afterwards (value clips open while values are read)."""
    try:
        mesh = _read_stage(src, stage, limits, select, kept)
    except Tf.ErrorException as exc:  # a corrupt crate value, found when it is read
        raise MeshLoadError(f"USD cannot read it: {_usd_reason(exc)}", src.label) from None
    _refuse_unchecked_layers(stage, checked, Path(src.label))
    return mesh


def _refuse_unchecked_layers(stage: "Usd.Stage", checked: set[str], path: Path) -> None:
    """Refuse a stage that composed a layer the dependency walk did not admit, rather than trust it."""
    used = stage.GetUsedLayers()
    stray = [layer.identifier for layer in used if not (layer.anonymous or layer.identifier in checked)]
    if stray:
        raise MeshLoadError(f"USD composed layers outside its checked dependencies: {', '.join(stray)}", path)


def _confined_layers(sandbox: Sandbox) -> list["Sdf.Layer"]:
    """The input's root layer and every layer it composes (sublayers, references, payloads, value clips),
    each admitted by the sandbox and its binary arrays' declared sizes checked (:mod:`facerig.io._crate`)
    before it is opened; the root first.

    Holding the opened layers makes the stage compose from exactly these: USD finds them in its layer
    registry instead of resolving the asset paths again.
    """
    check_usd_file(sandbox.entry, sandbox.limits, sandbox.entry)
    checked_files = {sandbox.entry.resolve()}
    root = Sdf.Layer.FindOrOpen(str(sandbox.entry))
    if root is None:
        raise sandbox.fail("USD cannot open it")
    layers = {root.identifier: root}
    pending = [root]
    while pending:
        layer = pending.pop()
        sublayers, references, payloads = UsdUtils.ExtractExternalReferences(layer.identifier)
        # References also list asset-valued attributes (textures); only layers are composed.
        composed = [*sublayers, *payloads, *(asset for asset in references if _is_layer(asset))]
        for asset in composed:
            where = f"layer {asset!r} (named in {layer.GetDisplayName()})"
            identifier = Sdf.ComputeAssetPathRelativeToLayer(layer, asset)
            if identifier in layers:
                continue
            file = _admit_layer(sandbox, identifier, where)
            if len(layers) >= _MAX_LAYERS:
                raise sandbox.fail(f"composes more than {_MAX_LAYERS} layers")
            if file.resolve() not in checked_files:  # a package's members are checked with the package
                check_usd_file(file, sandbox.limits, sandbox.entry)
                checked_files.add(file.resolve())
            dependency = Sdf.Layer.FindOrOpen(identifier)
            if dependency is None:
                raise sandbox.fail(f"{where} cannot be opened")
            layers[identifier] = layers[dependency.identifier] = dependency
            pending.append(dependency)
    return list(dict.fromkeys(layers.values()))


def _is_layer(asset: str) -> bool:
    extension = Sdf.FileFormat.GetFileExtension(asset)
    return bool(extension) and Sdf.FileFormat.FindByExtension(extension) is not None


def _admit_layer(sandbox: Sandbox, identifier: str, where: str) -> Path:
    """Apply the sandbox to a layer's anchored path; a layer inside a usdz must stay inside its package.

    Returns the file USD will read: the layer's, or its package's.
    """
    if Ar.IsPackageRelativePath(identifier):
        package, inner = Ar.SplitPackageRelativePathOuter(identifier)
        own = Path(package).resolve() == sandbox.entry.resolve()
        file = sandbox.entry if own else sandbox.admit(package, where)
        if ".." in Path(inner).parts or os.path.isabs(inner):
            raise sandbox.fail(f"{where} leaves its package")
        return file
    if not os.path.isabs(identifier):  # left to USD's search paths: anywhere on the machine
        raise sandbox.fail(f"{where} cannot be resolved inside the input's folder")
    return sandbox.admit(identifier, where)


def _usd_reason(exc: Exception) -> str:
    """The quoted reasons of a Tf error report, without C++ file names and line numbers."""
    reasons = re.findall(r": '(.*)'\s*$", str(exc), flags=re.MULTILINE)
    return "; ".join(dict.fromkeys(reasons)) or str(exc).strip().splitlines()[-1]


def _read_stage(src: Source, stage: "Usd.Stage", limits: LoadLimits, select: str | None,
                kept: list[_KeptPrim] | None = None) -> Mesh:
    """Every kept Mesh prim as one Mesh; ``kept``, when given, gets where each prim's points went."""
    time = Usd.TimeCode.EarliestTime()
    root = stage.GetDefaultPrim() or stage.GetPseudoRoot()
    xforms = UsdGeom.XformCache(time)
    vertices, counts, corners, groups, names = [], [], [], [], []
    uvs: list[np.ndarray | None] = []
    uv_indices: list[np.ndarray | None] = []
    warnings: list[str] = []
    empty: list[str] = []  # Mesh prims without points or faces
    n_vertices = n_corners = 0
    for prim in Usd.PrimRange(root, Usd.TraverseInstanceProxies(Usd.PrimDefaultPredicate)):
        if not prim.IsA(UsdGeom.Mesh):
            continue
        if UsdGeom.Imageable(prim).ComputePurpose() in (UsdGeom.Tokens.guide, UsdGeom.Tokens.proxy):
            continue
        if select is not None and not name_matches(select, str(prim.GetPath()).split("/")):
            continue
        mesh = UsdGeom.Mesh(prim)
        where = str(prim.GetPath())
        # One array at a time, each counted before numpy copies it and before the next is read.
        counts_value = mesh.GetFaceVertexCountsAttr().Get(time)
        n_faces = 0 if counts_value is None else len(counts_value)
        check_cost(limits, src.label, n_vertices=n_vertices, n_corners=n_corners + 3 * n_faces)
        points_value = mesh.GetPointsAttr().Get(time)
        n_points = 0 if points_value is None else len(points_value)
        check_cost(limits, src.label, n_vertices=n_vertices + n_points, n_corners=n_corners + 3 * n_faces)
        if n_points == 0 or n_faces == 0:
            empty.append(where)
            continue
        points = _array(points_value, np.float64).reshape(-1, 3)
        poly_counts = _array(counts_value, np.int64)
        n_listed = int(poly_counts.sum())
        check_cost(limits, src.label, n_vertices=n_vertices + n_points, n_corners=n_corners + n_listed)
        corners_value = mesh.GetFaceVertexIndicesAttr().Get(time)
        n_indices = 0 if corners_value is None else len(corners_value)
        if n_listed != n_indices:
            raise MeshLoadError(
                f"{where}: faceVertexCounts sum to {n_listed} but faceVertexIndices has {n_indices} entries",
                src.label,
            )
        poly_corners = _array(corners_value, np.int64)
        if len(poly_corners) and (poly_corners.min() < 0 or poly_corners.max() >= len(points)):
            raise MeshLoadError(f"{where}: face vertex index out of range ({len(points)} points)", src.label)
        uv, uv_index = _texture_coordinates(src, mesh, time, len(points), poly_corners, warnings)

        # USD matrices act on row vectors: p' = [p, 1] @ M.
        matrix = np.array(xforms.GetLocalToWorldTransform(prim), dtype=np.float64)
        points = points @ matrix[:3, :3] + matrix[3, :3]
        left_handed = mesh.GetOrientationAttr().Get(time) == UsdGeom.Tokens.leftHanded
        if left_handed != (np.linalg.det(matrix[:3, :3]) < 0):  # store right-handed (counter-clockwise) winding
            order = reversed_winding(poly_counts)
            poly_corners = poly_corners[order]
            uv_index = None if uv_index is None else uv_index[order]

        if kept is not None:
            kept.append(_KeptPrim(where, prim, n_vertices, len(points), matrix[:3, :3]))
        name = prim.GetName() if prim.GetName() not in names else where
        vertices.append(points)
        counts.append(poly_counts)
        corners.append(poly_corners + n_vertices)
        groups.append(np.full(len(poly_counts), len(names)))
        names.append(name)
        uvs.append(uv)
        uv_indices.append(uv_index)
        n_vertices += len(points)
        n_corners += len(poly_corners)

    if not names:
        if empty:
            raise MeshLoadError(f"no faces: every Mesh prim lacks points or faces ({', '.join(empty)})", src.label)
        scope = f"matching {select!r} " if select is not None else ""
        raise MeshLoadError(f"no Mesh prims {scope}under {root.GetPath()}", src.label)
    if empty:
        warnings.append(f"skipped Mesh prims without points or faces: {', '.join(empty)}")
    all_uvs, all_uv_indices = concatenate_uvs(uvs, uv_indices, "meshes", warnings)
    meters_per_unit = float(UsdGeom.GetStageMetersPerUnit(stage))
    if not (math.isfinite(meters_per_unit) and meters_per_unit > 0):
        raise MeshLoadError(f"invalid metersPerUnit {meters_per_unit!r}: it must be positive and finite", src.label)
    up_axis = str(UsdGeom.GetStageUpAxis(stage))
    if up_axis not in ("Y", "Z"):
        raise MeshLoadError(f"invalid upAxis {up_axis!r}: USD allows Y or Z", src.label)
    return assemble_mesh(
        src, np.concatenate(vertices), np.concatenate(counts), np.concatenate(corners),
        uvs=all_uvs, uv_indices=all_uv_indices, groups=np.concatenate(groups), group_names=names,
        up_axis=up_axis, meters_per_unit=meters_per_unit, warnings=warnings,
    )  # fmt: skip


def _array(value: object, dtype: type) -> np.ndarray:
    return np.zeros(0, dtype) if value is None else np.asarray(value, dtype=dtype)


def _texture_coordinates(
    src: Source, mesh: "UsdGeom.Mesh", time: "Usd.TimeCode", n_points: int, corners: np.ndarray, warnings: list[str]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(T, 2) UVs and (N,) per-corner indices into them, from ``primvars:st`` or another texcoord primvar."""
    api = UsdGeom.PrimvarsAPI(mesh.GetPrim())
    primvar = api.GetPrimvar("st")
    if not (primvar and primvar.HasValue()):
        primvar = next(
            (p for p in api.GetPrimvarsWithValues() if p.GetTypeName().role == Sdf.ValueTypeNames.TexCoord2f.role),
            None,
        )
    if primvar is None:
        return None, None
    where = f"{mesh.GetPath()} {primvar.GetPrimvarName()}"
    value = primvar.Get(time)
    if value is not None and len(value) > max(n_points, len(corners)):
        raise MeshLoadError(f"{where}: {len(value):,} texture coordinates for {len(corners):,} face corners", src.label)
    values = _array(value, np.float64)
    if values.size == 0 or values.size % 2:
        raise MeshLoadError(f"{where}: texture coordinates are not 2D", src.label)
    values = values.reshape(-1, 2)
    indices = _array(primvar.GetIndices(time), np.int64) if primvar.IsIndexed() else np.arange(len(values))
    interpolation = primvar.GetInterpolation()
    if interpolation == UsdGeom.Tokens.faceVarying:
        expected, per_corner = len(corners), indices
    elif interpolation in (UsdGeom.Tokens.vertex, UsdGeom.Tokens.varying):
        expected, per_corner = n_points, None
    else:
        warnings.append(f"UVs of {where} ignored: {interpolation} interpolation")
        return None, None
    if len(indices) != expected:
        raise MeshLoadError(
            f"{where}: {len(indices)} values/indices for {expected} {interpolation} elements", src.label
        )
    if len(indices) and (indices.min() < 0 or indices.max() >= len(values)):
        raise MeshLoadError(f"{where}: texture coordinate index out of range", src.label)
    return values, per_corner if per_corner is not None else indices[corners]


LOADERS = {"usd": load_usd, "usda": load_usd, "usdc": load_usd, "usdz": load_usd}
SHAPE_LOADERS = {suffix: load_usd_blend_shapes for suffix in LOADERS}
