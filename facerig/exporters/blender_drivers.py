"""Correctives that drive themselves in Blender: each corrective shape key gets a driver = product of its bases.

facerig writes every corrective as an ordinary shape plus a recipe, ``{"drivers": [base names], "rule":
"product"}``: its weight is the product of its bases' weights. The recipes travel in the file (glTF
``mesh.extras.facerig``, which Blender imports as the mesh's custom property ``facerig``; FBX user property
``facerig`` on the model, imported as the object's custom property; USD ``customData["facerig"]``, which
Blender does not import) and in the ``<file>.facerig.json`` sidecar every export has beside it.

This file is three things, and imports nothing from facerig so that it runs inside any Blender:

* a Blender add-on (Edit > Preferences > Add-ons > Install from disk, this file): *Object > facerig: Wire
  Corrective Drivers* wires the selected objects (all mesh objects when none is selected), reading the
  recipes from their custom properties, or from a sidecar JSON the operator asks for;
* a script: ``blender --background --python blender_drivers.py -- FILE OUT.blend`` imports ``FILE`` (USD,
  glTF/GLB, FBX) with Blender's stock importer, wires the drivers and saves ``OUT.blend``; the same with a
  ``bpy`` module: ``python -m facerig.exporters.blender_drivers FILE OUT.blend``;
* a library function for Python outside Blender, :func:`write_blend_with_drivers`, behind
  ``facerig blender-drivers FILE``: runs the script in a child process (bpy must never share a process
  with torch) and returns what it wired.

Drivers are scripted expressions ``w0 * w1 [* w2]`` over single-property variables reading the bases'
``key_blocks["<name>"].value``: Blender evaluates such expressions without Python, so they work with
"Auto Run Python Scripts" off.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

bl_info = {
    "name": "facerig corrective drivers",
    "author": "facerig",
    "version": (1, 0, 0),
    "blender": (3, 6, 0),
    "location": "View3D > Object > facerig: Wire Corrective Drivers",
    "description": "Drive every facerig corrective shape key by the product of its base shape keys",
    "category": "Animation",
}

METADATA_KEY = "facerig"
SIDECAR_SUFFIX = ".facerig.json"
RESULT_MARKER = "FACERIG_DRIVERS "
# A child Blender imports, wires and saves one head in seconds; a stuck one must not hang the caller.
CHILD_TIMEOUT_S = 600


class RecipeError(ValueError):
    """A recipe block that is not facerig's corrective format."""


# ---------------------------------------------------------------------------------------------- recipes
def recipes_from_metadata(block: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """{corrective: base names} from a facerig metadata block (a sidecar, or the ``facerig`` block in a file).

    Raises:
        RecipeError: ``correctives`` is not {name: {"drivers": [names], "rule": "product"}}.
    """
    correctives = block.get("correctives") or {}
    if not isinstance(correctives, Mapping):
        raise RecipeError("'correctives' is not a mapping")
    recipes = {}
    for name, recipe in correctives.items():
        drivers = recipe.get("drivers") if isinstance(recipe, Mapping) else None
        rule = recipe.get("rule", "product") if isinstance(recipe, Mapping) else None
        if rule != "product" or not isinstance(drivers, (list, tuple)) or not drivers:
            raise RecipeError(f"corrective {name!r} is not {{'drivers': [names], 'rule': 'product'}}")
        if not all(isinstance(d, str) for d in drivers):
            raise RecipeError(f"corrective {name!r} has a driver that is not a name")
        recipes[str(name)] = tuple(drivers)
    return recipes


def read_sidecar(path: str | Path) -> dict[str, tuple[str, ...]] | None:
    """The recipes in ``<path>.facerig.json`` (or in ``path`` itself when it is the sidecar); None if absent."""
    path = Path(path)
    sidecar = path if path.name.endswith(SIDECAR_SUFFIX) else path.with_name(path.name + SIDECAR_SUFFIX)
    if not sidecar.is_file():
        return None
    try:
        block = json.loads(sidecar.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise RecipeError(f"{sidecar}: not JSON ({exc})") from None
    if not isinstance(block, Mapping):
        raise RecipeError(f"{sidecar}: not a JSON object")
    return recipes_from_metadata(block)


def _property_block(value: Any) -> Mapping[str, Any] | None:
    """A custom property holding facerig metadata: a JSON string (FBX) or an ID property group (glTF)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    return value if isinstance(value, Mapping) else None


def driver_expression(n_bases: int) -> str:
    """The product expression over variables ``w0..w{n-1}``: Blender's Python-free simple-expression form."""
    return " * ".join(f"w{k}" for k in range(n_bases))


# ---------------------------------------------------------------------------------------------- in Blender
def object_recipes(obj: Any) -> dict[str, tuple[str, ...]]:
    """The recipes stored on a Blender object's or its mesh's custom properties (empty when there are none)."""
    for owner in (obj, getattr(obj, "data", None)):
        if owner is None or METADATA_KEY not in owner.keys():
            continue
        block = _property_block(owner[METADATA_KEY])
        if block is not None:
            return recipes_from_metadata(block)
    return {}


def wire_object(obj: Any, recipes: Mapping[str, tuple[str, ...]]) -> list[str]:
    """Drive each corrective shape key of ``obj`` found in ``recipes`` by its bases; returns the names wired.

    A corrective whose key or base keys the object lacks is skipped; an existing driver is replaced.
    """
    keys = obj.data.shape_keys if getattr(obj, "type", None) == "MESH" else None
    if keys is None:
        return []
    blocks = keys.key_blocks
    wired = []
    for name, bases in recipes.items():
        if name not in blocks or not all(base in blocks for base in bases):
            continue
        path = f'key_blocks["{name}"].value'
        keys.driver_remove(path)
        driver = keys.driver_add(path).driver
        driver.type = "SCRIPTED"
        for k, base in enumerate(bases):
            variable = driver.variables.new()
            variable.name = f"w{k}"
            variable.type = "SINGLE_PROP"
            target = variable.targets[0]
            target.id_type = "KEY"
            target.id = keys
            target.data_path = f'key_blocks["{base}"].value'
        driver.expression = driver_expression(len(bases))
        wired.append(name)
    return wired


def wire_objects(objects: Any, recipes: Mapping[str, tuple[str, ...]] | None = None) -> dict[str, list[str]]:
    """Wire every mesh object in ``objects``: {object name: correctives wired}.

    ``recipes`` None: each object's own (custom properties); objects without recipes are left alone.
    """
    result = {}
    for obj in objects:
        own = recipes if recipes is not None else object_recipes(obj)
        if own:
            wired = wire_object(obj, own)
            if wired:
                result[obj.name] = wired
    return result


def import_file(path: Path) -> None:
    """Import ``path`` into the current scene with Blender's stock importer for its suffix, default options."""
    import bpy

    suffix = path.suffix.lower()
    if suffix in (".usd", ".usda", ".usdc", ".usdz"):
        bpy.ops.wm.usd_import(filepath=str(path))
    elif suffix in (".glb", ".gltf"):
        bpy.ops.import_scene.gltf(filepath=str(path))
    elif suffix == ".fbx":
        bpy.ops.import_scene.fbx(filepath=str(path))
    else:
        raise RecipeError(f"{path}: no Blender importer for {suffix or 'a file without suffix'}")


def import_and_wire(path: str | Path, output: str | Path) -> dict[str, list[str]]:
    """In Blender: empty scene, import ``path``, wire its correctives, save ``output`` (.blend).

    Recipes come from the sidecar beside ``path`` when there is one, else from the imported objects.
    """
    import bpy

    path = Path(path)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    recipes = read_sidecar(path)
    import_file(path)
    meshes = [obj for obj in bpy.context.scene.objects if obj.type == "MESH"]
    wired = wire_objects(meshes, recipes)
    bpy.ops.wm.save_as_mainfile(filepath=str(Path(output).resolve()))
    return wired


# ---------------------------------------------------------------------------------------------- add-on
def _register_classes() -> tuple:
    import bpy

    class FACERIG_OT_wire_correctives(bpy.types.Operator):
        """Drive each facerig corrective shape key by the product of its base shape keys"""

        bl_idname = "object.facerig_wire_correctives"
        bl_label = "facerig: Wire Corrective Drivers"
        bl_options = {"REGISTER", "UNDO"}

        def execute(self, context):  # noqa: ANN001, ANN201 (Blender's signature)
            objects = context.selected_objects or list(context.scene.objects)
            try:
                recipes = read_sidecar(bpy.path.abspath(self.filepath)) if self.filepath else None
            except RecipeError as exc:
                self.report({"ERROR"}, str(exc))
                return {"CANCELLED"}
            wired = wire_objects(objects, recipes)
            count = sum(len(names) for names in wired.values())
            self.report({"INFO"}, f"wired {count} corrective drivers on {len(wired)} objects")
            return {"FINISHED"}

    # Blender reads properties from the class annotations as objects; this module's postponed (string)
    # annotations would hide them, so the property is set as an object here.
    FACERIG_OT_wire_correctives.__annotations__ = {
        "filepath": bpy.props.StringProperty(
            name="Sidecar", description="A .facerig.json sidecar; empty: the objects' own custom properties",
            subtype="FILE_PATH", default="",
        ),
    }  # fmt: skip

    def menu(self, context):  # noqa: ANN001, ANN202
        self.layout.operator(FACERIG_OT_wire_correctives.bl_idname)

    return FACERIG_OT_wire_correctives, menu


_REGISTERED: list = []


def register() -> None:
    import bpy

    operator, menu = _register_classes()
    bpy.utils.register_class(operator)
    bpy.types.VIEW3D_MT_object.append(menu)
    _REGISTERED[:] = [operator, menu]


def unregister() -> None:
    import bpy

    if _REGISTERED:
        operator, menu = _REGISTERED
        bpy.types.VIEW3D_MT_object.remove(menu)
        bpy.utils.unregister_class(operator)
        _REGISTERED.clear()


# ---------------------------------------------------------------------------------------------- outside Blender
@dataclass(frozen=True)
class BlendResult:
    """What :func:`write_blend_with_drivers` made: the .blend and {object name: correctives wired}."""

    blend: Path
    wired: dict[str, list[str]]

    @property
    def n_drivers(self) -> int:
        return sum(len(names) for names in self.wired.values())


def write_blend_with_drivers(path: str | Path, output: str | Path | None = None) -> BlendResult:
    """Import a facerig export into Blender (the ``bpy`` module, in a child process), wire every corrective
    as a driver and save a .blend (default: ``<file stem>.blend`` beside the file).

    Raises:
        facerig.errors.ExportError: no ``bpy`` module in this Python, the file is missing, or Blender failed
            (the message carries the end of its output).
    """
    import importlib.util

    from facerig.errors import ExportError
    from facerig.fileio import atomic_path

    path = Path(path)
    if not path.is_file():
        raise ExportError("file not found", path)
    if importlib.util.find_spec("bpy") is None:
        raise ExportError(
            "needs the bpy module (pip install bpy) or Blender itself: "
            f"blender --background --python {Path(__file__).resolve()} -- FILE OUT.blend",
            path,
        )
    output = Path(output) if output is not None else path.with_suffix(".blend")
    with atomic_path(output) as tmp:
        # Blender picks the format by suffix, so the temporary name ends in .blend too.
        blend_tmp = tmp.with_name(tmp.name + ".blend")
        try:
            # Run as a script, not as a facerig module: the child must not import facerig's readers (pxr)
            # or torch beside bpy.
            proc = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), str(path), str(blend_tmp)],
                capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
            )  # fmt: skip
            lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_MARKER)]
            if proc.returncode != 0 or len(lines) != 1 or not blend_tmp.is_file():
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
                raise ExportError(f"Blender could not wire the drivers: {' | '.join(tail) or 'no output'}", path)
            os.replace(blend_tmp, tmp)
        finally:
            blend_tmp.unlink(missing_ok=True)
    return BlendResult(output, json.loads(lines[0][len(RESULT_MARKER) :]))


def main(argv: list[str]) -> int:
    """``FILE OUT.blend``: import, wire, save; prints ``FACERIG_DRIVERS {object: [correctives]}``."""
    if len(argv) != 2:
        print("usage: blender --background --python blender_drivers.py -- FILE OUT.blend", file=sys.stderr)
        return 2
    try:
        wired = import_and_wire(argv[0], argv[1])
    except RecipeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(RESULT_MARKER + json.dumps(wired))
    return 0


if __name__ == "__main__":
    # Inside Blender (--python), the script's own arguments follow "--".
    arguments = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:]
    sys.exit(main(arguments))
