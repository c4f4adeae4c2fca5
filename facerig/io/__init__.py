"""Mesh input: one reader module per format, dispatched on the file suffix.

    mesh = load_mesh("head.obj")                               # OBJ, PLY, glTF/GLB, USD, FBX
    mesh = load_mesh("robot.glb", select="Head*")              # reader options pass through
    mesh = load_mesh("scan.ply", LoadLimits(max_vertices=500_000), up="Z", units="mm")

Each module (``obj.py``, ``ply.py``, ``gltf.py``, ``usd.py``, ``fbx.py``) ends with ``LOADERS = {suffix: loader}``;
a loader takes ``(path_or_bytes, limits, **options)`` and returns a :class:`facerig.mesh.Mesh` with the
file's own polygons, face-varying UVs and groups, no vertex welding, degenerate faces dropped and listed
in ``Mesh.warnings``. Every expected failure is a :class:`MeshLoadError` naming the file and the reason.

``select`` keeps part of a multi-part file: the glTF/USD/FBX readers keep the mesh nodes/prims whose own
name or an ancestor's name matches (contains the string, or matches it as a glob when it has ``*``, ``?``
or ``[``: :mod:`facerig.io._select`); for OBJ and PLY, :func:`load_mesh` keeps the matching polygon groups.

Rigged files: ``load_blend_shapes("head.glb")`` returns the same mesh plus its named blend shapes
(:class:`BlendShapes`); formats that carry them register ``SHAPE_LOADERS`` beside ``LOADERS``.
:mod:`facerig.io.rigged_heads` reads such a file as the vocabulary's FACS deltas (``load_rigged_head``).

Inputs are untrusted: files an input references go through :class:`facerig.io.sandbox.Sandbox` (inside
the input's folder, regular files, counted against ``LoadLimits.max_file_bytes``), and every reader checks
vertex counts and :func:`facerig.io._common.estimate_peak_bytes` against ``LoadLimits`` before allocating.
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from pathlib import Path
from typing import Callable

from facerig.errors import MeshLoadError
from facerig.io import fbx, gltf, obj, ply, usd
from facerig.io._common import BlendShapes, LoadLimits, select_groups
from facerig.mesh import Mesh
from facerig.units import parse_units

Loader = Callable[..., Mesh]

LOADERS: dict[str, Loader] = {**obj.LOADERS, **ply.LOADERS, **gltf.LOADERS, **usd.LOADERS, **fbx.LOADERS}
SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(sorted(f".{suffix}" for suffix in LOADERS))

_UP_AXES = {"y": "Y", "+y": "Y", "z": "Z", "+z": "Z"}
_OTHER_AXES = {"x", "+x", "-x", "-y", "-z"}

__all__ = ["LOADERS", "SHAPE_LOADERS", "SUPPORTED_EXTENSIONS", "BlendShapes", "LoadLimits", "MeshLoadError",
           "load_blend_shapes", "load_mesh"]


def load_mesh(
    path: str | Path,
    limits: LoadLimits | None = None,
    *,
    up: str | None = None,
    units: str | None = None,
    select: str | None = None,
    **options,
) -> Mesh:
    """Read a mesh file, choosing the reader from its (case-insensitive) suffix.

    Args:
        path: an .obj, .ply, .gltf, .glb, .usd, .usda, .usdc, .usdz or .fbx file.
        limits: bounds on file size and vertex count (``LoadLimits()`` by default).
        up: the up axis to record when the file states none (OBJ, PLY): "Y"/"+Y" or "Z"/"+Z", any case.
            Other axes ("-Y", "X", ...) are accepted but cannot be stored in ``Mesh.up_axis``; pass them
            to the canonical frame instead. A file's own statement (glTF, USD, FBX) wins.
        units: the file's length unit ("m", "dm", "cm", "mm", "in", "ft"); sets ``Mesh.meters_per_unit``,
            replacing what the file states (None: the file's unit, or None for OBJ/PLY, which the
            exporters then guess from the head's size: :func:`facerig.units.infer_meters_per_unit`).
        select: keep only the parts named like this (see the module docstring), e.g. ``"Head"`` or ``"Head*"``.
        **options: reader-specific keywords.
    Raises:
        MeshLoadError: unsupported suffix (the message lists the supported ones), nothing matching ``select``
            or any reader failure.
        ConfigError: an unknown unit name.
        TypeError: an option the chosen reader does not take.
    """
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    loader = LOADERS.get(suffix)
    if loader is None:
        what = f"unsupported extension {path.suffix!r}" if path.suffix else "no file extension"
        raise MeshLoadError(f"{what}; supported: {', '.join(SUPPORTED_EXTENSIONS)}", path)
    up_axis = _parse_up(up, path)
    meters_per_unit = None if units is None else parse_units(units)
    if select is not None and "select" in inspect.signature(loader).parameters:
        options["select"] = select
        select = None
    mesh = loader(path, limits or LoadLimits(), **options)
    if select is not None:
        mesh = select_groups(mesh, select)
    if up_axis is not None and mesh.up_axis is None:
        mesh = replace(mesh, up_axis=up_axis)
    if meters_per_unit is not None:
        mesh = replace(mesh, meters_per_unit=meters_per_unit)
    return mesh


def _parse_up(up: str | None, path: Path) -> str | None:
    if up is None:
        return None
    key = up.strip().lower()
    if key in _UP_AXES:
        return _UP_AXES[key]
    if key in _OTHER_AXES:
        return None
    raise MeshLoadError(f"invalid up axis {up!r}; use one of +Y, +Z, -Y, -Z, +X, -X", path)


# ---------------------------------------------------------------------------------------------- blend shapes
ShapeLoader = Callable[..., BlendShapes]
# Formats whose files carry named blend shapes. A reader module adds its own with ``SHAPE_LOADERS = {suffix:
# loader}``: a loader takes ``(path, limits, **options)`` and returns :class:`BlendShapes`.
SHAPE_LOADERS: dict[str, ShapeLoader] = {**gltf.SHAPE_LOADERS, **usd.SHAPE_LOADERS, **fbx.SHAPE_LOADERS}


def load_blend_shapes(path: str | Path, limits: LoadLimits | None = None, **options) -> BlendShapes:
    """Read a rigged file's neutral mesh and its named blend shapes, choosing the reader from the suffix.

    Args:
        path: a .gltf/.glb (morph targets), .usd/.usda/.usdc/.usdz (UsdSkel BlendShapes) or .fbx (blend shape
            channels) file.
        limits: bounds on file size and vertex count; shapes × vertices is bounded too.
        **options: reader-specific keywords, e.g. ``select="Head"``.
    Raises:
        MeshLoadError: a format without blend shape support (the message lists those with it) or any
            reader failure.
    """
    path = Path(path)
    loader = SHAPE_LOADERS.get(path.suffix.lower().lstrip("."))
    if loader is None:
        supported = ", ".join(sorted(f".{suffix}" for suffix in SHAPE_LOADERS))
        raise MeshLoadError(f"cannot read blend shapes from {path.suffix or 'a file without suffix'!r}; "
                            f"supported: {supported}", path)
    return loader(path, limits or LoadLimits(), **options)
