"""Mesh input: one reader module per format, dispatched on the file suffix.

    mesh = load_mesh("head.obj")                               # OBJ, PLY, glTF/GLB, USD
    mesh = load_mesh("robot.glb", select="Head")               # reader options pass through
    mesh = load_mesh("scan.ply", LoadLimits(max_vertices=500_000), up="Z")

Each module (``obj.py``, ``ply.py``, ``gltf.py``, ``usd.py``) ends with ``LOADERS = {suffix: loader}``;
a loader takes ``(path_or_bytes, limits, **options)`` and returns a :class:`facerig.mesh.Mesh` with the
file's own polygons, face-varying UVs and groups, no vertex welding, degenerate faces dropped and listed
in ``Mesh.warnings``. Every expected failure is a :class:`MeshLoadError` naming the file and the reason.

Inputs are untrusted: files an input references go through :class:`facerig.io.sandbox.Sandbox` (inside
the input's folder, regular files, counted against ``LoadLimits.max_file_bytes``), and every reader checks
vertex counts and :func:`facerig.io._common.estimate_peak_bytes` against ``LoadLimits`` before allocating.

Loader options: ``select`` (glTF, USD) keeps only the mesh nodes/prims whose own name or an ancestor's
name contains the string.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable

from facerig.errors import MeshLoadError
from facerig.io import gltf, obj, ply, usd
from facerig.io._common import LoadLimits
from facerig.mesh import Mesh

Loader = Callable[..., Mesh]

LOADERS: dict[str, Loader] = {**obj.LOADERS, **ply.LOADERS, **gltf.LOADERS, **usd.LOADERS}
SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(sorted(f".{suffix}" for suffix in LOADERS))

_UP_AXES = {"y": "Y", "+y": "Y", "z": "Z", "+z": "Z"}
_OTHER_AXES = {"x", "+x", "-x", "-y", "-z"}

__all__ = ["LOADERS", "SUPPORTED_EXTENSIONS", "LoadLimits", "MeshLoadError", "load_mesh"]


def load_mesh(path: str | Path, limits: LoadLimits | None = None, *, up: str | None = None, **options) -> Mesh:
    """Read a mesh file, choosing the reader from its (case-insensitive) suffix.

    Args:
        path: an .obj, .ply, .gltf, .glb, .usd, .usda, .usdc or .usdz file.
        limits: bounds on file size and vertex count (``LoadLimits()`` by default).
        up: the up axis to record when the file states none (OBJ, PLY): "Y"/"+Y" or "Z"/"+Z", any case.
            Other axes ("-Y", "X", ...) are accepted but cannot be stored in ``Mesh.up_axis``; pass them
            to the canonical frame instead. A file's own statement (glTF, USD) wins.
        **options: reader-specific keywords, e.g. ``select="Head"`` for glTF and USD.
    Raises:
        MeshLoadError: unsupported suffix (the message lists the supported ones) or any reader failure.
        TypeError: an option the chosen reader does not take.
    """
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    loader = LOADERS.get(suffix)
    if loader is None:
        what = f"unsupported extension {path.suffix!r}" if path.suffix else "no file extension"
        raise MeshLoadError(f"{what}; supported: {', '.join(SUPPORTED_EXTENSIONS)}", path)
    up_axis = _parse_up(up, path)
    mesh = loader(path, limits or LoadLimits(), **options)
    if up_axis is not None and mesh.up_axis is None:
        mesh = replace(mesh, up_axis=up_axis)
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
