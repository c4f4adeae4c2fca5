"""Read an FBX scene with ufbx in a child process and write plain arrays to stdout (see facerig.io.fbx).

This file is run as a script (``python -I _ufbx_child.py PATH MAX_VERTICES [SELECT]``, PATH ``-`` reads the
file's bytes from stdin), never imported by facerig: the ufbx Python binding (0.0.5) hands out element
objects without taking a reference for them, so an element dropped and fetched again, or freed with its
scene, crashes the interpreter. The child therefore takes the missing reference for every element it
touches (:func:`_keep`), never frees anything, and leaves with ``os._exit``; a crash on a hostile file
costs the child, not the caller.

Output: an uncompressed npz on stdout. ``meta`` holds a JSON document (units, axes, one entry per mesh
instance: names, material names, blend shape channel names, warnings); per instance ``i``: ``v{i}``
(V, 3) world positions, ``counts{i}``/``corners{i}`` polygons as stored (``mirrored``: the transform
mirrors them, so their winding must be reversed), ``face_material{i}``
(P,) index into the instance's materials, ``uv{i}``/``uv_index{i}`` when present, and per blend shape
channel ``k``: ``shape{i}_{k}_index`` (K,) vertex indices and ``shape{i}_{k}_offset`` (K, 3) world offsets.
An expected failure exits 2 with the reason as the last stderr line.
"""

from __future__ import annotations

import ctypes
import gc
import io
import json
import os
import sys
from pathlib import Path

import numpy as np
import ufbx

_incref = ctypes.pythonapi.Py_IncRef
_incref.argtypes = [ctypes.py_object]
_EXIT_FAILED = 2


def _keep(element):
    """Take the reference the binding did not (see the module docstring); None passes through."""
    if element is not None:
        _incref(element)
    return element


def _fail(reason: str) -> None:
    sys.stderr.write(reason.replace("\n", " ") + "\n")
    sys.stderr.flush()
    os._exit(_EXIT_FAILED)


def _load_select_module():
    """facerig.io._select, loaded from its file: this script cannot import facerig."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("facerig_select", Path(__file__).with_name("_select.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_SELECT = _load_select_module()


def _affine(matrix) -> tuple[np.ndarray, np.ndarray]:
    """(3, 3) linear part acting on row vectors and (3,) translation of a ufbx Matrix (4 columns of 3)."""
    columns = np.asarray(matrix, np.float64).reshape(4, 3)
    return columns[:3], columns[3]


def _ancestry(node) -> list[str]:
    """Names of a node and its ancestors, the node first (the unnamed FBX root left out)."""
    names = []
    while node is not None:
        if node.name:
            names.append(node.name)
        node = _keep(node.parent)
    return names


def _polygons(mesh, warnings: list[str], label: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(P,) corner counts, (N,) vertex index and (N,) ufbx corner slot per corner, and the (F,) bool mask of
    the mesh's faces kept (faces of fewer than 3 corners are dropped)."""
    faces = np.asarray(mesh.faces, np.int64).reshape(-1, 2)  # (P, 2): first corner slot, corner count
    keep = faces[:, 1] >= 3
    if not keep.all():
        warnings.append(f"{label}: skipped {int((~keep).sum()):,} point/line faces")
    faces = faces[keep]
    counts = faces[:, 1]
    starts = np.repeat(faces[:, 0] - (np.cumsum(counts) - counts), counts)
    slots = starts + np.arange(int(counts.sum()))
    corners = np.asarray(mesh.vertex_indices, np.int64)[slots]
    return counts, corners, slots, keep


def main(argv: list[str]) -> None:
    gc.disable()  # nothing here is freed: see the module docstring
    path, max_vertices = argv[1], int(argv[2])
    select = argv[3] if len(argv) > 3 else None
    options = dict(
        target_axes=ufbx.axes_right_handed_y_up,  # facerig's frame; the file's unit is kept
        file_format=ufbx.FileFormat.FBX,
        ignore_animation=True,
        ignore_embedded=True,
        load_external_files=False,
    )
    try:
        if path == "-":
            scene = ufbx.load_memory(sys.stdin.buffer.read(), **options)
        else:
            scene = ufbx.load_file(path, **options)
    except ufbx.UfbxError as exc:
        _fail(f"ufbx cannot read it: {type(exc).__name__}: {exc}")
    settings = scene.settings
    arrays: dict[str, np.ndarray] = {}
    meta: dict = {
        "unit_meters": float(settings.unit_meters),
        "instances": [],
        "mesh_nodes": [],
    }

    chosen = []
    n_vertices = 0
    nodes = scene.nodes
    for n in range(len(nodes)):
        node = _keep(nodes[n])
        mesh = _keep(node.mesh)
        if mesh is None:
            continue
        names = _ancestry(node)
        meta["mesh_nodes"].append(node.name)
        if select is not None and not _SELECT.name_matches(select, names):
            continue
        n_vertices += int(mesh.num_vertices)
        if n_vertices > max_vertices:
            _fail(f"{n_vertices:,} vertices, over the limit of {max_vertices:,} (LoadLimits.max_vertices)")
        chosen.append((node, mesh))

    for i, (node, mesh) in enumerate(chosen):
        label = node.name or mesh.name or f"mesh{i}"
        warnings: list[str] = []
        linear, translation = _affine(node.geometry_to_world)
        counts, corners, slots, kept_faces = _polygons(mesh, warnings, label)
        positions = np.asarray(mesh.vertices, np.float64).reshape(-1, 3)
        arrays[f"v{i}"] = positions @ linear + translation
        arrays[f"counts{i}"] = counts
        arrays[f"corners{i}"] = corners
        uv = mesh.vertex_uv
        if uv.exists:
            arrays[f"uv{i}"] = np.asarray(uv.values, np.float64).reshape(-1, 2)
            arrays[f"uv_index{i}"] = np.asarray(uv.indices, np.int64)[slots]
        materials = mesh.materials
        material_names = [_keep(materials[k]).name for k in range(len(materials))]
        if material_names:
            arrays[f"face_material{i}"] = np.asarray(mesh.face_material, np.int64)[kept_faces]
        channel_names = []
        deformers = mesh.blend_deformers
        for d in range(len(deformers)):
            channels = _keep(deformers[d]).channels
            for c in range(len(channels)):
                channel = _keep(channels[c])
                shape = _keep(channel.target_shape)  # the full-weight shape; in-betweens are not read
                if shape is None:
                    continue
                k = len(channel_names)
                channel_names.append(channel.name or shape.name)
                arrays[f"shape{i}_{k}_index"] = np.asarray(shape.offset_vertices, np.int64)
                arrays[f"shape{i}_{k}_offset"] = np.asarray(shape.position_offsets, np.float64).reshape(-1, 3) @ linear
        meta["instances"].append({
            "node": node.name, "mesh": mesh.name, "materials": material_names, "shapes": channel_names,
            "skinned": len(mesh.skin_deformers) > 0, "mirrored": bool(np.linalg.det(linear) < 0),
            "warnings": warnings,
        })  # fmt: skip

    arrays["meta"] = np.array(json.dumps(meta))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    sys.stdout.buffer.write(buffer.getvalue())
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv)
