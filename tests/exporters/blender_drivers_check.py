"""Open a .blend written by ``facerig.exporters.blender_drivers`` and report what its corrective drivers do.

Run in its own process (bpy must not share a process with torch)::

    python tests/exporters/blender_drivers_check.py FILE.blend CORRECTIVE BASE_A BASE_B

Prints one line ``FACERIG_RESULT <json>``: the object holding ``CORRECTIVE``, the driver's expression and
variables, and the corrective key's value after the depsgraph evaluated the drivers, for each pair of base
values in :data:`SETTINGS`.
"""

from __future__ import annotations

import json
import sys

import bpy

MARKER = "FACERIG_RESULT "
SETTINGS = ((0.0, 0.0), (1.0, 1.0), (1.0, 0.0), (0.0, 1.0), (0.5, 0.5))


def main(blend: str, corrective: str, base_a: str, base_b: str) -> None:
    bpy.ops.wm.open_mainfile(filepath=blend)
    obj = next(o for o in bpy.data.objects if o.type == "MESH" and o.data.shape_keys
               and corrective in o.data.shape_keys.key_blocks)  # fmt: skip
    keys = obj.data.shape_keys
    fcurve = keys.animation_data.drivers.find(f'key_blocks["{corrective}"].value')
    driver = fcurve.driver
    values = []
    for a, b in SETTINGS:
        keys.key_blocks[base_a].value = a
        keys.key_blocks[base_b].value = b
        bpy.context.view_layer.update()
        evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
        values.append(evaluated.data.shape_keys.key_blocks[corrective].value)
    report = {
        "object": obj.name,
        "expression": driver.expression,
        "is_simple_expression": driver.is_simple_expression,
        "variables": [v.targets[0].data_path for v in driver.variables],
        "n_drivers": len(keys.animation_data.drivers),
        "values": values,
    }
    print(MARKER + json.dumps(report))


if __name__ == "__main__":
    main(*sys.argv[1:5])
