"""Install facerig's driver add-on in bpy and run its operator on an imported export (own process: bpy).

    python tests/exporters/blender_addon_check.py ADDON.py FILE [SIDECAR]

Prints ``FACERIG_RESULT {"report": ..., "drivers": {object: [driven data paths]}}``.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import bpy

MARKER = "FACERIG_RESULT "


def main(addon_path: str, path: str, sidecar: str = "") -> None:
    spec = importlib.util.spec_from_file_location("facerig_blender_drivers", addon_path)
    addon = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = addon  # as Blender's add-on loader does (an import)
    spec.loader.exec_module(addon)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon.register()
    addon.import_file(Path(path))
    bpy.ops.object.select_all(action="DESELECT")
    result = bpy.ops.object.facerig_wire_correctives(filepath=sidecar)
    drivers = {}
    for obj in bpy.data.objects:
        keys = obj.data.shape_keys if obj.type == "MESH" else None
        if keys is not None and keys.animation_data is not None:
            drivers[obj.name] = [d.data_path for d in keys.animation_data.drivers]
    addon.unregister()
    print(MARKER + json.dumps({"operator": sorted(result), "drivers": drivers}))


if __name__ == "__main__":
    main(*sys.argv[1:])
