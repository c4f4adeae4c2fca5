"""glTF round trip: the user's own glTF document written back with the rig's shapes as morph targets.

When a rig's neutral was read from a glTF/GLB file (``Mesh.source``) and that file still holds the same
vertices, :func:`open_source_asset` reopens it and :func:`export_onto_asset` writes the whole document back:
scenes, node hierarchy and names, materials, textures, images, samplers, skins, animations, cameras and
extensions are kept as they are, and every glTF mesh the rig's vertices came from gets one morph target per
shape on each of its primitives. What changes:

* all buffers become one (the GLB chunk, or ``<stem>.bin``), images stored as files beside a .gltf are
  embedded, so the output is self-contained wherever it is written;
* morph targets are in the mesh's own space: the rig's offsets (in the file's world frame, as the reader
  placed the vertices) go through the inverse of the node's linear transform;
* a mesh's existing morph targets stay; one whose name is a rig shape's (a file facerig wrote before) is
  replaced; every primitive of the mesh gets the new targets (all-zero for primitives the reader skipped);
  ``mesh.weights``, ``node.weights`` and weight animations of its nodes are padded with zeros;
* ``mesh.extras.targetNames`` names every target and ``mesh.extras.facerig`` carries the recipe metadata
  (:func:`facerig.exporters.common.describe`).

The rig's vertex order is the reader's: the concatenation of the selected primitives in scene-walk order
(:func:`facerig.io.gltf.load_gltf`), one polygon group per primitive instance. The rig's groups are matched to
the document's primitive instances by name and by position (every vertex within a float32 step), so a file
changed since rigging, or a rig whose neutral was moved, falls back to the plain writer with the reason.
"""

from __future__ import annotations

import copy
import mimetypes
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facerig.errors import FacerigError
from facerig.exporters.common import ExportOptions, ExportRig, describe
from facerig.exporters.gltf import _Buffer, _morph_accessor, package
from facerig.io.gltf import GltfAsset, PrimitiveInstance, open_gltf_asset

GLTF_SUFFIXES = (".gltf", ".glb")
# Relative tolerance when matching the rig's neutral to the source file's vertices: both are the reader's
# float64 world positions of the same float32 data, so they agree exactly unless the file or rig changed.
MATCH_TOLERANCE_REL = 1e-6


@dataclass(frozen=True, eq=False)
class SourceAsset:
    """A rig's source glTF document and where each rig vertex lives in it.

    Attributes:
        asset: the opened document.
        slots: (instance, first rig vertex) per polygon group of the rig, in group order.
    """

    asset: GltfAsset
    slots: tuple[tuple[PrimitiveInstance, int], ...]


def open_source_asset(ir: ExportRig) -> tuple[SourceAsset | None, str]:
    """The rig's source glTF document matched to its vertices, or (None, why it cannot be used)."""
    source = ir.mesh.source
    if source is None or Path(source).suffix.lower() not in GLTF_SUFFIXES:
        return None, "the rig's neutral was not read from a glTF/GLB file"
    if not Path(source).is_file():
        return None, f"the source file {source} is no longer there"
    try:
        asset = open_gltf_asset(source)
    except FacerigError as exc:
        return None, f"the source file cannot be read again ({exc})"
    slots = _match_slots(ir, asset)
    if slots is None:
        return None, f"the source file {source} no longer holds the rig's neutral vertices"
    return SourceAsset(asset, slots), ""


def _match_slots(ir: ExportRig, asset: GltfAsset) -> tuple[tuple[PrimitiveInstance, int], ...] | None:
    """Each rig group's primitive instance and first vertex, or None when the document does not match."""
    vertices = ir.mesh.vertices
    tolerance = MATCH_TOLERANCE_REL * max(float(np.abs(vertices).max()), 1e-12)
    slots, start, used = [], 0, set()
    for group in ir.mesh.group_names:
        label, _, node_name = group.partition("@")
        for k, instance in enumerate(asset.instances):
            count = len(instance.positions)
            if k in used or instance.label != label or (node_name and instance.node_name != node_name):
                continue
            rows = vertices[start : start + count]
            if len(rows) == count and np.abs(rows - instance.positions).max(initial=0.0) <= tolerance:
                break
        else:
            return None
        used.add(k)
        slots.append((instance, start))
        start += count
    return tuple(slots) if start == len(vertices) else None


def export_onto_asset(
    ir: ExportRig, source: SourceAsset, binary: bool = True, options: ExportOptions = ExportOptions()
) -> bytes | dict[str, bytes]:
    """The source document with the rig's shapes as morph targets: GLB bytes, or {.gltf, .bin} when not ``binary``."""
    asset = source.asset
    document = copy.deepcopy(asset.document)
    document.pop("buffers", None)
    buffer = _Buffer()
    buffer.accessors = document.setdefault("accessors", [])
    buffer.views = document.setdefault("bufferViews", [])
    _consolidate_buffers(document, asset, buffer)
    _embed_images(document, asset, buffer)

    # The first instance of each mesh decides its targets (morph targets belong to the mesh, not the node).
    per_mesh: dict[int, dict[int, tuple[PrimitiveInstance, int]]] = {}
    for instance, start in source.slots:
        per_mesh.setdefault(instance.mesh, {}).setdefault(instance.primitive, (instance, start))
    description = describe(ir)
    for mesh_index, primitives in per_mesh.items():
        added = _add_targets(document, asset, buffer, ir, mesh_index, primitives)
        document["meshes"][mesh_index]["extras"]["facerig"] = description
        _pad_weights(document, asset, buffer, mesh_index, added)

    return package(document, buffer.to_bytes(), binary, options.stem)


# ---------------------------------------------------------------------------------------------- buffers
def _consolidate_buffers(document: dict, asset: GltfAsset, buffer: _Buffer) -> None:
    """Put every source buffer into ``buffer`` (4-byte aligned) and re-point the bufferViews at it."""
    base = []
    for data in asset.buffers:
        base.append(buffer.size)
        padded = data + b"\x00" * (-len(data) % 4)
        buffer.chunks.append(padded)
        buffer.size += len(padded)
    for view in document.get("bufferViews") or []:
        view["byteOffset"] = base[view["buffer"]] + int(view.get("byteOffset", 0))
        view["buffer"] = 0


def _embed_images(document: dict, asset: GltfAsset, buffer: _Buffer) -> None:
    """Images stored as files beside a .gltf become bufferView images (mimeType from the file's suffix)."""
    for index, data in asset.images.items():
        image = document["images"][index]
        mime = image.get("mimeType") or mimetypes.guess_type(urllib.parse.unquote(image["uri"]))[0] or "image/png"
        del image["uri"]
        image["bufferView"] = buffer.view(data)
        image["mimeType"] = mime


# ---------------------------------------------------------------------------------------------- targets
def _target_names(gltf_mesh: dict, count: int) -> list[str]:
    given = (gltf_mesh.get("extras") or {}).get("targetNames") if isinstance(gltf_mesh.get("extras"), dict) else None
    if isinstance(given, list) and len(given) == count and all(isinstance(n, str) for n in given):
        return list(given)
    return [f"target{k}" for k in range(count)]


def _add_targets(
    document: dict,
    asset: GltfAsset,
    buffer: _Buffer,
    ir: ExportRig,
    mesh_index: int,
    primitives: dict[int, tuple[PrimitiveInstance, int]],
) -> int:
    """Give every primitive of one mesh the rig's shapes as targets; returns how many targets were appended."""
    gltf_mesh = document["meshes"][mesh_index]
    n_existing = max((len(p.get("targets") or []) for p in gltf_mesh["primitives"]), default=0)
    names = _target_names(gltf_mesh, n_existing)
    slot = {name: k for k, name in enumerate(names)}
    appended = [shape.name for shape in ir.shapes if shape.name not in slot]
    for name in appended:
        slot[name] = len(names)
        names.append(name)
    for p, primitive in enumerate(gltf_mesh["primitives"]):
        count = asset.document["accessors"][primitive["attributes"]["POSITION"]]["count"]
        targets = primitive.setdefault("targets", [])
        targets.extend({} for _ in range(len(names) - len(targets)))
        for k, target in enumerate(targets):
            if "POSITION" not in target:  # the schema needs every target of a mesh to have the same attributes
                target["POSITION"] = _morph_accessor(buffer, count, np.zeros(0, np.int64), np.zeros((0, 3), np.float32))
        if p not in primitives:
            continue
        instance, start = primitives[p]
        # Offsets are in the file's world frame; morph targets live in the mesh's space.
        to_local = np.linalg.inv(instance.world[:3, :3]).T
        for shape in ir.shapes:
            deltas = shape.deltas[start : start + count]
            rows = np.flatnonzero(np.abs(deltas).max(axis=1) > 0)
            offsets = (deltas[rows].astype(np.float64) @ to_local).astype(np.float32)
            targets[slot[shape.name]] = {"POSITION": _morph_accessor(buffer, count, rows, offsets)}
    gltf_mesh.setdefault("extras", {})
    if not isinstance(gltf_mesh["extras"], dict):
        gltf_mesh["extras"] = {}
    gltf_mesh["extras"]["targetNames"] = names
    if "weights" in gltf_mesh or appended:
        gltf_mesh["weights"] = list(gltf_mesh.get("weights") or [0.0] * n_existing) + [0.0] * len(appended)
    return len(appended)


def _pad_weights(document: dict, asset: GltfAsset, buffer: _Buffer, mesh_index: int, added: int) -> None:
    """Pad ``node.weights`` and the weight animations of the mesh's nodes with ``added`` zeros per key."""
    if not added:
        return
    nodes = {i for i, node in enumerate(document.get("nodes") or []) if node.get("mesh") == mesh_index}
    for i in nodes:
        node = document["nodes"][i]
        if "weights" in node:
            node["weights"] = list(node["weights"]) + [0.0] * added
    n_before = len(document["meshes"][mesh_index]["extras"]["targetNames"]) - added
    if n_before == 0:  # a mesh without targets has nothing to animate
        return
    for animation in document.get("animations") or []:
        padded_samplers = set()
        for channel in animation.get("channels") or []:
            target = channel.get("target") or {}
            if target.get("path") != "weights" or target.get("node") not in nodes:
                continue
            if channel["sampler"] in padded_samplers:
                continue
            padded_samplers.add(channel["sampler"])
            sampler = animation["samplers"][channel["sampler"]]
            values = asset.read_accessor(sampler["output"]).reshape(-1, n_before)
            padded = np.hstack([values, np.zeros((len(values), added))]).astype(np.float32).reshape(-1)
            sampler["output"] = buffer.dense(padded, "SCALAR")


__all__ = ["SourceAsset", "export_onto_asset", "open_source_asset"]
