"""Open one facerig export in Blender (bpy, headless) and report what a user would see.

Run in its own process, never imported by the test suite (bpy must not share a process with torch)::

    python tests/exporters/blender_import.py FILE EXPECTED.json

``EXPECTED.json`` is ``{"key": <shape name>}``: the shape key to set to 1. The script imports ``FILE`` with
Blender's stock importer for its suffix (USD, glTF, FBX), default options, and prints one line
``FACERIG_RESULT <json>`` with:

* ``operator``: the importer's return set;
* ``objects``: per imported mesh object: name, vertex/polygon counts, shape key names (the reference
  key excluded), custom property names on the object and on its mesh, its world matrix and parent, and
  whether the mesh got the file's normals (custom normals);
* ``key``: for the first object that has the key: ``basis`` (V, 3) world positions with every key at 0
  and ``displacement`` (V, 3) world-space change when the key alone is at 1, from the evaluated
  (depsgraph) mesh, i.e. after Blender's own axis/unit conversion and any modifiers the importer added.

The test (``test_blender.py``) maps these back to the rig's frame and compares them with the rig's deltas.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import bpy
import numpy as np

MARKER = "FACERIG_RESULT "


def import_file(path: Path) -> set[str]:
    """Import ``path`` with Blender's importer for its suffix; returns the operator's result set."""
    suffix = path.suffix.lower()
    if suffix in (".usd", ".usda", ".usdc", ".usdz"):
        return bpy.ops.wm.usd_import(filepath=str(path))
    if suffix in (".glb", ".gltf"):
        return bpy.ops.import_scene.gltf(filepath=str(path))
    if suffix == ".fbx":
        return bpy.ops.import_scene.fbx(filepath=str(path))
    raise SystemExit(f"no Blender importer for {path.name}")


def evaluated_world_positions(obj: bpy.types.Object) -> np.ndarray:
    """(V, 3) float64 world positions of the evaluated mesh (shape keys and modifiers applied)."""
    bpy.context.view_layer.update()
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        co = np.empty(len(mesh.vertices) * 3, np.float64)
        mesh.vertices.foreach_get("co", co)
    finally:
        evaluated.to_mesh_clear()
    matrix = np.array(evaluated.matrix_world, np.float64)
    co = co.reshape(-1, 3)
    return co @ matrix[:3, :3].T + matrix[:3, 3]


def shape_key_names(obj: bpy.types.Object) -> list[str]:
    keys = obj.data.shape_keys
    if keys is None:
        return []
    return [block.name for block in keys.key_blocks if block != keys.reference_key]


def describe_key(obj: bpy.types.Object, key: str) -> dict:
    keys = obj.data.shape_keys
    # Importers may animate key values (USD blendShapeWeights); the animation would override ours.
    keys.animation_data_clear()
    for block in keys.key_blocks:
        block.value = 0.0
    basis = evaluated_world_positions(obj)
    keys.key_blocks[key].value = 1.0
    posed = evaluated_world_positions(obj)
    keys.key_blocks[key].value = 0.0
    return {"object": obj.name, "basis": basis.tolist(), "displacement": (posed - basis).tolist()}


def main(path: Path, expected_path: Path) -> dict:
    expected = json.loads(expected_path.read_text())
    bpy.ops.wm.read_factory_settings(use_empty=True)
    result = {"file": path.name, "operator": sorted(import_file(path)), "objects": [], "key": None}
    for obj in sorted(bpy.context.scene.objects, key=lambda o: o.name):
        if obj.type != "MESH":
            continue
        names = shape_key_names(obj)
        result["objects"].append(
            {
                "name": obj.name,
                "vertices": len(obj.data.vertices),
                "polygons": len(obj.data.polygons),
                "polygon_sizes": sorted({len(p.vertices) for p in obj.data.polygons}),
                "shape_keys": names,
                "object_properties": sorted(obj.keys()),
                "mesh_properties": sorted(obj.data.keys()),
                "custom": {k: obj[k] for k in obj.keys() if k.startswith("facerig") and isinstance(obj[k], str)},
                "matrix_world": [list(row) for row in obj.matrix_world],
                "parent": obj.parent.name if obj.parent else None,
                "has_custom_normals": obj.data.has_custom_normals,
            }
        )
        if result["key"] is None and expected["key"] in names:
            result["key"] = describe_key(obj, expected["key"])
    return result


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    report = main(Path(sys.argv[1]), Path(sys.argv[2]))
    print(MARKER + json.dumps(report), flush=True)
