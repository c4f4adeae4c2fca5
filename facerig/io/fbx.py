"""FBX reader (.fbx, binary and ASCII) through ufbx: every mesh node in world space, Y up, in the file's unit.

ufbx (PyPI ``ufbx``, the C library many engines import FBX with) parses the file in a child process
(``_ufbx_child.py``): its Python binding crashes the interpreter when scene objects are freed, so the
child copies what facerig needs into plain arrays, hands them over as an npz on a pipe and exits
without freeing anything. A crash or a hang on a hostile file ends the child, and the caller gets a
:class:`MeshLoadError`.

What is read: each mesh node's geometry placed by its geometry-to-world transform (node hierarchy,
FBX geometric transforms and pivots) with the axes converted to facerig's +Y up, +Z front (ufbx's
root transform, from the file's ``UpAxis``/``FrontAxis`` settings); the file's unit is kept and
recorded (``meters_per_unit`` from ``UnitScaleFactor``: 0.01 for FBX's default centimetres, also for
Blender's default export of a scene in metres). Skinned meshes are taken as stored, i.e. in their
bind pose (the skin is not evaluated, animation is not read). Polygons are kept as they are; UVs are
the first UV set; each polygon group is one material of one mesh node. Blend shape channels are read
by :func:`read_fbx_blendshapes` (full-weight targets; in-between shapes are ignored).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from facerig.errors import MeshLoadError
from facerig.io._common import (
    BYTES_LABEL,
    BlendShapes,
    LoadLimits,
    MeshSource,
    Source,
    assemble_mesh,
    check_file,
    check_shape_budget,
    concatenate_uvs,
    reversed_winding,
)
from facerig.mesh import Mesh, source_name

_CHILD = Path(__file__).with_name("_ufbx_child.py")
_CHILD_TIMEOUT_S = 600.0  # a hostile file must not hold a batch worker forever
_FBX_BINARY_MAGIC = b"Kaydara FBX Binary"


def load_fbx(source: MeshSource, limits: LoadLimits | None = None, *, select: str | None = None) -> Mesh:
    """Read every mesh node of an FBX file (path or bytes) into one Mesh.

    Args:
        source: an .fbx path, or the file's bytes.
        limits: file size and vertex count bounds (the vertex count is checked before arrays are built).
        select: keep only mesh nodes whose own or an ancestor's name matches (see :mod:`facerig.io._select`:
            a substring, or a glob such as ``"Head*"``).
    Returns:
        A Mesh with ``up_axis="Y"`` and the file's ``meters_per_unit``; one group per (mesh node, material),
        named after the material when one mesh node is read, ``"<node>/<material>"`` (or the node's name
        alone when it has at most one material) when several are.
    Raises:
        MeshLoadError: not an FBX file, ufbx cannot read it, no mesh nodes (or none matching ``select``),
            over ``limits``.
    """
    mesh, _ = _read(source, limits or LoadLimits(), select, with_shapes=False)
    return mesh


def read_fbx_blendshapes(
    source: MeshSource, limits: LoadLimits | None = None, *, select: str | None = None
) -> tuple[Mesh, dict[str, np.ndarray]]:
    """The FBX's mesh (as :func:`load_fbx`) and its blend shapes as dense per-vertex offsets.

    Returns:
        ``(mesh, shapes)``: ``shapes`` maps each blend shape channel name to a (V, 3) float64 array of
        world-space offsets in the mesh's units and axes, zero where the channel does not move a vertex.
        A channel name found on several mesh nodes (a jaw shape on the head and the teeth) is one entry
        moving all of them.
    """
    return _read(source, limits or LoadLimits(), select, with_shapes=True)


def load_fbx_blend_shapes(source: MeshSource, limits: LoadLimits | None = None, *,
                          select: str | None = None) -> BlendShapes:
    """:func:`read_fbx_blendshapes` as the :class:`BlendShapes` record every rigged-file reader returns."""
    mesh, shapes = read_fbx_blendshapes(source, limits, select=select)
    names = tuple(shapes)
    check_shape_budget(len(names), mesh.n_vertices, mesh.source or mesh.name)
    deltas = np.stack([shapes[name] for name in names]).astype(np.float32) if names else (
        np.zeros((0, mesh.n_vertices, 3), np.float32))
    return BlendShapes(mesh=mesh, names=names, deltas=deltas)


# ---------------------------------------------------------------------------------------------- reading
def _read(
    source: MeshSource, limits: LoadLimits, select: str | None, with_shapes: bool
) -> tuple[Mesh, dict[str, np.ndarray]]:
    src, path_argument, stdin = _resolve(source, limits)
    arrays = _run_child(src, path_argument, stdin, limits, select)
    meta = json.loads(str(arrays["meta"]))
    instances = meta["instances"]
    if not instances:
        if select is not None:
            names = ", ".join(meta["mesh_nodes"]) or "none"
            raise MeshLoadError(f"no mesh node or ancestor named like {select!r}; mesh nodes: {names}", src.label)
        raise MeshLoadError("no mesh nodes", src.label)

    vertices, counts, corners, groups, group_names = [], [], [], [], []
    uvs: list[np.ndarray | None] = []
    uv_indices: list[np.ndarray | None] = []
    warnings: list[str] = []
    offset = 0
    for i, instance in enumerate(instances):
        positions = arrays[f"v{i}"]
        poly_counts = arrays[f"counts{i}"]
        materials = instance["materials"]
        face_material = np.zeros(len(poly_counts), np.int64)
        if materials:
            face_material = arrays[f"face_material{i}"]
            if len(face_material) and (face_material.min() < 0 or face_material.max() >= len(materials)):
                face_material = np.clip(face_material, 0, len(materials) - 1)
                warnings.append(f"{instance['node']}: face material index out of range, clamped")
        names = _group_names(instance, single_node=len(instances) == 1)
        groups.append(face_material + len(group_names))
        group_names.extend(names)
        poly_corners, uv_index = arrays[f"corners{i}"], arrays.get(f"uv_index{i}")
        if instance["mirrored"]:  # a mirroring transform turns faces inside out
            order = reversed_winding(poly_counts)
            poly_corners, uv_index = poly_corners[order], None if uv_index is None else uv_index[order]
        vertices.append(positions)
        counts.append(poly_counts)
        corners.append(poly_corners + offset)
        uvs.append(arrays.get(f"uv{i}"))
        uv_indices.append(uv_index)
        warnings.extend(instance["warnings"])
        offset += len(positions)

    all_uvs, all_uv_indices = concatenate_uvs(uvs, uv_indices, "mesh nodes", warnings)
    mesh = assemble_mesh(
        src, np.concatenate(vertices), np.concatenate(counts), np.concatenate(corners),
        uvs=all_uvs, uv_indices=all_uv_indices, groups=np.concatenate(groups), group_names=group_names,
        up_axis="Y", meters_per_unit=float(meta["unit_meters"]), warnings=warnings,
    )  # fmt: skip
    shapes = _dense_shapes(arrays, instances, [len(v) for v in vertices], src.label) if with_shapes else {}
    return mesh, shapes


def _group_names(instance: dict, single_node: bool) -> list[str]:
    """One name per material of a mesh node (the node's name when it has none)."""
    node = instance["node"] or instance["mesh"] or "mesh"
    materials = instance["materials"]
    if not materials:
        return [node]
    if single_node:
        return [material or node for material in materials]
    if len(materials) == 1:
        return [node]
    return [f"{node}/{material}" for material in materials]


def _dense_shapes(
    arrays: dict[str, np.ndarray], instances: list[dict], sizes: list[int], label: str
) -> dict[str, np.ndarray]:
    n_vertices = sum(sizes)
    shapes: dict[str, np.ndarray] = {}
    start = 0
    for i, (instance, size) in enumerate(zip(instances, sizes)):
        for k, name in enumerate(instance["shapes"]):
            index, offsets = arrays[f"shape{i}_{k}_index"], arrays[f"shape{i}_{k}_offset"]
            if len(index) != len(offsets) or (len(index) and (index.min() < 0 or index.max() >= size)):
                raise MeshLoadError(f"blend shape {name!r} of {instance['node']}: vertex index out of range", label)
            dense = shapes.setdefault(name, np.zeros((n_vertices, 3)))
            np.add.at(dense, index + start, offsets)
        start += size
    return shapes


def _resolve(source: MeshSource, limits: LoadLimits) -> tuple[Source, str, bytes | None]:
    """The Source naming the input, the child's path argument, and the bytes to pipe to it (or None)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise MeshLoadError("input is empty", BYTES_LABEL)
        if len(data) > limits.max_file_bytes:
            raise MeshLoadError(f"input is {len(data):,} bytes, over the limit of {limits.max_file_bytes:,}", BYTES_LABEL)
        _check_signature(data[:1024], BYTES_LABEL)
        return Source(b"", BYTES_LABEL, "mesh", None), "-", data
    path = check_file(source, limits)
    with open(path, "rb") as handle:
        _check_signature(handle.read(1024), str(path))
    return Source(b"", str(path), source_name(path), str(path)), str(path), None


def _check_signature(head: bytes, label: str) -> None:
    """Reject what is neither binary FBX nor text (ASCII FBX starts with comments or ``FBXHeaderExtension``)."""
    if head.startswith(_FBX_BINARY_MAGIC):
        return
    if b"\x00" in head:
        raise MeshLoadError("not an FBX file: binary data without the 'Kaydara FBX Binary' header", label)
    if b"FBXHeaderExtension" not in head and not head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b";"):
        raise MeshLoadError("not an FBX file: neither binary FBX nor an ASCII FBX header", label)


def _run_child(
    src: Source, path_argument: str, stdin: bytes | None, limits: LoadLimits, select: str | None
) -> dict[str, np.ndarray]:
    command = [sys.executable, "-I", str(_CHILD), path_argument, str(limits.max_vertices)]
    if select is not None:
        command.append(select)
    try:
        done = subprocess.run(command, input=stdin or b"", capture_output=True, timeout=_CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise MeshLoadError(f"the FBX reader gave no answer in {_CHILD_TIMEOUT_S:.0f} s", src.label) from None
    reason = done.stderr.decode("utf-8", "replace").strip().splitlines()
    if done.returncode != 0:
        if done.returncode < 0:
            raise MeshLoadError(f"the FBX reader (ufbx) crashed on it (signal {-done.returncode})", src.label)
        raise MeshLoadError(reason[-1] if reason else f"the FBX reader failed (exit {done.returncode})", src.label)
    try:
        with np.load(io.BytesIO(done.stdout), allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (ValueError, OSError) as exc:
        raise MeshLoadError(f"the FBX reader's output is unreadable: {exc}", src.label) from None


LOADERS = {"fbx": load_fbx}
SHAPE_LOADERS = {"fbx": load_fbx_blend_shapes}
