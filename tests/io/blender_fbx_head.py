"""Build FBX heads the way an artist's Blender scene exports them (bpy, headless, its own process).

Run in its own process, never imported by the test suite (bpy must not share a process with torch)::

    python tests/io/blender_fbx_head.py HEAD.obj OUTDIR

``HEAD.obj`` is a Y-up head in centimetres. Blender imports it with its stock OBJ importer (Y-up file ->
Blender's Z-up world), scales it to metres (Blender's default unit) and applies the scale, gives it a
material ("Skin") and binds it to a two-bone armature ("Rig": Neck, Head) with an Armature modifier, as
a game character is set up. Two files are exported with Blender's stock FBX exporter, default options
(axis forward -Z, up Y, FBX unit scale 100 cm per Blender metre):

* ``OUTDIR/head.fbx``: the armature and the head;
* ``OUTDIR/character.fbx``: the same plus a "Body" box under the head and a "Hat" box above it, each
  its own mesh object with its own material (the hat mirrored by its object's scale), saved with the Head bone posed (turned 30 degrees), so
  that the skinned head shows turned in Blender while its bind pose is the head as modelled.

It prints one line ``FACERIG_RESULT <json>`` with the head's world bounding box in Blender (metres, Z up).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import bpy

MARKER = "FACERIG_RESULT "


def material(name: str, colour: tuple[float, float, float, float]) -> bpy.types.Material:
    mat = bpy.data.materials.new(name)
    mat.diffuse_color = colour
    return mat


def box(name: str, centre: tuple[float, float, float], size: tuple[float, float, float], mat) -> bpy.types.Object:
    bpy.ops.mesh.primitive_cube_add(location=centre)
    obj = bpy.context.active_object
    obj.name = obj.data.name = name
    obj.scale = [s / 2 for s in size]
    bpy.ops.object.transform_apply(location=False, rotation=False, scale=True)
    obj.data.materials.append(mat)
    return obj


def main(head_obj: Path, outdir: Path) -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.wm.obj_import(filepath=str(head_obj), forward_axis="NEGATIVE_Z", up_axis="Y")
    head = bpy.context.selected_objects[0]
    head.name = head.data.name = "Head"
    head.scale = (0.01, 0.01, 0.01)  # centimetres -> Blender metres
    bpy.context.view_layer.objects.active = head
    bpy.ops.object.transform_apply(location=False, rotation=True, scale=True)
    head.data.materials.clear()
    head.data.materials.append(material("Skin", (0.8, 0.6, 0.5, 1.0)))

    corners = [head.matrix_world @ v.co for v in head.data.vertices]
    low = [min(c[i] for c in corners) for i in range(3)]
    high = [max(c[i] for c in corners) for i in range(3)]
    centre = [(a + b) / 2 for a, b in zip(low, high)]

    armature = bpy.data.armatures.new("Rig")
    rig = bpy.data.objects.new("Rig", armature)
    bpy.context.scene.collection.objects.link(rig)
    bpy.context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    neck = armature.edit_bones.new("Neck")
    neck.head, neck.tail = (centre[0], centre[1], low[2] - 0.05), (centre[0], centre[1], low[2])
    bone = armature.edit_bones.new("Head")
    bone.head, bone.tail, bone.parent = neck.tail, (centre[0], centre[1], high[2]), neck
    bpy.ops.object.mode_set(mode="OBJECT")

    group = head.vertex_groups.new(name="Head")
    group.add(list(range(len(head.data.vertices))), 1.0, "REPLACE")
    head.modifiers.new("Armature", "ARMATURE").object = rig
    head.parent = rig

    outdir.mkdir(parents=True, exist_ok=True)
    bpy.ops.export_scene.fbx(filepath=str(outdir / "head.fbx"))

    height = high[2] - low[2]
    posed = rig.pose.bones["Head"]
    posed.rotation_mode = "XYZ"
    posed.rotation_euler = (0.0, 0.0, 0.5236)
    box("Body", (centre[0], centre[1], low[2] - 0.6 * height), (2 * height, height, height), material("Cloth", (0.2, 0.2, 0.6, 1)))
    hat = box("Hat", (centre[0], centre[1], high[2] + 0.1 * height), (height, height, 0.2 * height), material("Felt", (0.1, 0.1, 0.1, 1)))
    hat.scale = (-1.0, 1.0, 1.0)  # left mirrored on the object, as mirrored props often are
    bpy.ops.export_scene.fbx(filepath=str(outdir / "character.fbx"))
    print(MARKER + json.dumps({"head_bbox_min": low, "head_bbox_max": high}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
