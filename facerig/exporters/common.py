"""The format-neutral export IR, built once per export and shared by every format writer.

Layering follows glTF-Blender-IO: :func:`gather` turns a :class:`~facerig.rig.Rig` into an :class:`ExportRig`
(names resolved for the chosen naming preset, shapes split into moving/static vertices, units and up axis
resolved); each format module then builds its own objects from the IR and serialises them to bytes. Writers
never touch the file system; :func:`facerig.exporters.export_rig` does.

Facts every writer shares live here too: the naming presets, the unit and up-axis policy, and the metadata
(corrective recipes and provenance) that travels inside each file and in its ``<file>.facerig.json`` sidecar.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Callable, Mapping, Protocol

import numpy as np

from facerig.canonical.frame import CanonicalFrame, canonical_frame
from facerig.errors import ExportError
from facerig.exporters.naming import roblox_shapes
from facerig.mesh import Mesh
from facerig.units import resolve_meters_per_unit
from facerig.vocabulary import Vocabulary, load_vocabulary


class RigLike(Protocol):
    """What an exporter reads from a rig (:class:`facerig.rig.Rig` is one): the exporters never import the rig
    module, so the rig can offer ``rig.export(...)`` and save itself through the exporters without a cycle."""

    neutral: Mesh
    shape_names: tuple[str, ...]
    deltas: np.ndarray
    corrective_recipes: Mapping[str, tuple[str, ...]]
    metadata: Mapping[str, Any]


class Naming(StrEnum):
    """Shape-name presets of an export: the rig's own FACS names, the 52 ARKit shapes built from them, or Roblox's
    FACS names (:mod:`facerig.exporters.naming`)."""

    facs = "facs"
    arkit = "arkit"
    roblox = "roblox"


NAMINGS = tuple(Naming)
SIDECAR_SUFFIX = ".facerig.json"
# Keys of the metadata block inside every file (USD customData, glTF extras) and of the sidecar.
METADATA_KEY = "facerig"
METADATA_VERSION = 1

# A shape is stored sparse (moving-vertex indices + their offsets) when it moves fewer than this fraction of
# the vertices. An index costs 4 bytes and saves a 12-byte zero offset, so sparse is smaller up to 75 %;
# below 50 % it is clearly smaller and consumers (Blender, UsdSkel) also do less work.
SPARSE_MAX_FRACTION = 0.5
# A vertex "moves" when its offset exceeds this fraction of the largest neutral coordinate: 2**-23 is the
# float32 spacing there, so smaller offsets cannot move a point stored as float32 (every format stores
# float32). Without it, network-predicted shapes (never exactly zero) would never be sparse.
ZERO_TOLERANCE_REL = 2.0**-23

# Up axis when the file does not state it: +Y, the OBJ/glTF convention and facerig's canonical frame.
DEFAULT_UP_AXIS = "Y"

# USD prim names and tokens: an identifier, at most 63 bytes (FBX and Maya truncate longer names).
MAX_NAME_BYTES = 63
_NOT_IDENTIFIER = re.compile(r"[^A-Za-z0-9_]")


# ---------------------------------------------------------------------------------------------- IR types
@dataclass(frozen=True, eq=False)
class ExportShape:
    """One named blendshape.

    Attributes:
        name: the exported name (a valid identifier, unique in the rig).
        deltas: (V, 3) float32 offsets in the mesh's units and axes; offsets below the zero tolerance are 0.
        indices: (K,) int64 sorted indices of the vertices that move (K may be 0).
    """

    name: str
    deltas: np.ndarray
    indices: np.ndarray

    @property
    def offsets(self) -> np.ndarray:
        """(K, 3) float32 offsets of the moving vertices, in ``indices`` order."""
        return self.deltas[self.indices]

    @property
    def is_sparse(self) -> bool:
        """True when the shape should be written as indices + offsets rather than dense."""
        return len(self.indices) < SPARSE_MAX_FRACTION * len(self.deltas)


@dataclass(frozen=True, eq=False)
class ExportRig:
    """Everything a format writer needs, in the mesh's own units and axes.

    Attributes:
        name: the rig's exported name (a valid identifier): the USD root prim, the glTF node and mesh.
        mesh: the neutral mesh: points, original polygons, face-varying UVs, polygon groups.
        shapes: the shapes in export order; correctives are ordinary shapes.
        correctives: corrective shape name -> names of the shapes whose weights multiply to drive it.
        up_axis: "Y" or "Z", resolved (see :data:`DEFAULT_UP_AXIS`).
        meters_per_unit: the mesh's unit in metres, resolved (see :func:`facerig.units.resolve_meters_per_unit`).
        naming: the naming preset the shapes were gathered with ("facs" or "arkit").
        metadata: the facts recorded beside the shapes (see :func:`describe`).
    """

    name: str
    mesh: Mesh
    shapes: tuple[ExportShape, ...]
    correctives: dict[str, tuple[str, ...]]
    up_axis: str
    meters_per_unit: float
    naming: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def shape_names(self) -> tuple[str, ...]:
        return tuple(shape.name for shape in self.shapes)

    @property
    def n_points(self) -> int:
        return self.mesh.n_vertices

    def dense_deltas(self) -> np.ndarray:
        """(S, V, 3) float32 deltas of every shape, in export order."""
        if not self.shapes:
            return np.zeros((0, self.n_points, 3), np.float32)
        return np.stack([shape.deltas for shape in self.shapes])

    def preview_weights(self) -> np.ndarray:
        """(S + 1, S) float32 preview animation: frame 0 is the neutral, frame k + 1 shows shape k at 1.

        A corrective's frame also sets its drivers to 1 (so it shows the combined pose the corrective
        exists for), and every corrective is driven by the product of its drivers' weights on every frame,
        as a DCC with the recipe wired up would evaluate it.
        """
        names = self.shape_names
        index = {name: i for i, name in enumerate(names)}
        weights = np.zeros((len(names) + 1, len(names)), np.float32)
        for k, name in enumerate(names):
            weights[k + 1, k] = 1.0
            for driver in self.correctives.get(name, ()):
                weights[k + 1, index[driver]] = 1.0
        for name, drivers in self.correctives.items():
            weights[:, index[name]] = np.prod(weights[:, [index[d] for d in drivers]], axis=1)
        return weights


@dataclass(frozen=True)
class ExportOptions:
    """Per-call choices a writer may need beside the IR.

    Attributes:
        preview_animation: add an animation that steps through every shape, one per frame.
        stem: the output file's name without its format suffix; multi-file formats name their side files
            from it (``<stem>.bin`` for .gltf).
    """

    preview_animation: bool = False
    stem: str = "rig"


# A writer turns the IR into one file's bytes, or {file name: bytes} for formats that write several files:
# the first entry is the main file (written to the requested path), the others go beside it.
Writer = Callable[[ExportRig, ExportOptions], "bytes | dict[str, bytes]"]


@dataclass(frozen=True)
class Exporter:
    """A registered output format.

    Attributes:
        name: the format name users pass (``--format usd``).
        suffixes: file suffixes that select this format, lower case, first is the default.
        write: the pure writer.
        sidecar: whether a ``<file>.facerig.json`` sidecar is written beside the file (a bundle carries its
            own metadata and gets none).
    """

    name: str
    suffixes: tuple[str, ...]
    write: Writer
    sidecar: bool = True


# ---------------------------------------------------------------------------------------------- policies
def export_name(name: str) -> str:
    """``name`` as a valid identifier of at most 63 bytes (invalid characters become ``_``)."""
    cleaned = _NOT_IDENTIFIER.sub("_", name) or "_"
    if cleaned[0].isdigit():
        cleaned = "_" + cleaned
    return cleaned[:MAX_NAME_BYTES]


def unique_name(name: str, used: set[str]) -> str:
    """``name``, or ``name_2``, ``name_3``, ... when ``used`` holds it already; the result is added to ``used``.

    Two polygon groups can clean to the same :func:`export_name` (``eye.L`` and ``eye L``), and USD subsets and
    FBX materials must be told apart by name. The base is cut to leave room for the suffix, so the name stays
    within :data:`MAX_NAME_BYTES` (up to ``_999``).
    """
    candidate, k = name, 1
    while candidate in used:
        k += 1
        candidate = f"{name[:MAX_NAME_BYTES - 4]}_{k}"
    used.add(candidate)
    return candidate


def _moving_indices(deltas: np.ndarray, tolerance: float) -> np.ndarray:
    """(K,) int64 indices of rows of (V, 3) ``deltas`` with a component above ``tolerance``."""
    return np.flatnonzero(np.abs(deltas).max(axis=1) > tolerance).astype(np.int64)


def _make_shape(name: str, deltas: np.ndarray, tolerance: float) -> ExportShape:
    indices = _moving_indices(deltas, tolerance)
    cleaned = np.zeros_like(deltas, dtype=np.float32)
    cleaned[indices] = deltas[indices]
    cleaned.setflags(write=False)
    indices.setflags(write=False)
    return ExportShape(name=name, deltas=cleaned, indices=indices)


# ---------------------------------------------------------------------------------------------- gather
def gather(rig: RigLike, naming: str = "facs", *, vocabulary: Vocabulary | None = None) -> ExportRig:
    """Build the export IR of ``rig`` with the shapes named by a preset.

    Args:
        rig: the rig to export.
        naming: "facs" keeps the rig's shapes and correctives; "arkit" builds the 52 ARKit shapes from the
            FACS shapes by the vocabulary's ARKit recipes (weighted sums, one-sided ones split across the
            face's midline in the rig's canonical frame). ARKit has no correctives, so they are left out;
            an ARKit shape whose FACS sources the rig lacks keeps only the terms the rig has (all 52 names
            are always written) and is listed in ``metadata["arkit_incomplete"]``; one with no FACS source
            at all (eyeSquint, jawForward, tongueOut) is written all-zero and listed in ``metadata["arkit_empty"]``.
            "roblox" keeps the shapes Roblox's 50 FACS poses name, with correctives in Roblox's base order
            (:mod:`facerig.exporters.naming`). :func:`facerig.exporters.naming.naming_notes` words what a
            preset dropped, renamed or left empty.
        vocabulary: the vocabulary whose ARKit recipes "arkit" uses; default: the bundled one.

    Raises:
        ExportError: unknown naming preset, a shape with NaN/infinite offsets, or a shape name that
            collides with another once made an identifier.
    """
    if naming not in NAMINGS:
        raise ExportError(f"unknown naming {naming!r}; choose one of {', '.join(NAMINGS)}")
    naming = str(Naming(naming))  # a plain str: USD's customData takes no str subclass
    mesh = rig.neutral
    bad = [name for name, deltas in zip(rig.shape_names, rig.deltas) if not np.isfinite(deltas).all()]
    if bad:
        raise ExportError(f"{len(bad)} shapes have NaN or infinite offsets: {', '.join(bad[:3])}", mesh.source)
    tolerance = ZERO_TOLERANCE_REL * float(np.abs(mesh.vertices).max())
    notes: dict[str, Any] = {}

    if naming == "facs":
        sources = [(name, rig.deltas[i]) for i, name in enumerate(rig.shape_names)]
        correctives = dict(rig.corrective_recipes)
    elif naming == "arkit":
        sources, incomplete = _arkit_shapes(rig, vocabulary or load_vocabulary())
        correctives = {}
        if rig.corrective_recipes:
            notes["correctives_dropped"] = sorted(rig.corrective_recipes)
        if incomplete:
            notes["arkit_incomplete"] = incomplete
        empty = [name for name, deltas in sources if not deltas.any()]
        if empty:
            notes["arkit_empty"] = empty
    else:
        sources, correctives, roblox_notes = roblox_shapes(rig.shape_names, rig.deltas, dict(rig.corrective_recipes))
        notes.update(roblox_notes)

    renames = {name: export_name(name) for name, _ in sources}
    exported = list(renames.values())
    if len(set(exported)) != len(exported):
        clash = sorted({n for n in exported if exported.count(n) > 1})
        raise ExportError(f"shape names collide once made identifiers: {clash[:3]}")
    changed = {old: new for old, new in renames.items() if old != new}
    if changed:
        notes["renamed"] = changed
    shapes = tuple(_make_shape(renames[name], deltas, tolerance) for name, deltas in sources)
    correctives = {renames[c]: tuple(renames[d] for d in drivers) for c, drivers in correctives.items()}

    meters_per_unit, guessed = resolve_meters_per_unit(mesh.meters_per_unit, mesh.vertices)
    unit_source = "inferred from head size" if guessed else "file"
    up_axis, up_source = (mesh.up_axis, "file") if mesh.up_axis else (DEFAULT_UP_AXIS, "default")

    metadata = {
        "units": {"meters_per_unit": meters_per_unit, "source": unit_source},
        "up_axis": {"axis": up_axis, "source": up_source},
        "zero_tolerance": tolerance,
        **notes,
        "rig": rig.metadata,
    }
    return ExportRig(
        name=export_name(mesh.name),
        mesh=mesh,
        shapes=shapes,
        correctives=correctives,
        up_axis=up_axis,
        meters_per_unit=meters_per_unit,
        naming=naming,
        metadata=metadata,
    )


def _arkit_shapes(rig: RigLike, vocabulary: Vocabulary) -> tuple[list[tuple[str, np.ndarray]], dict[str, list[str]]]:
    """The ARKit shapes built from the rig's FACS deltas, and {arkit_name: [FACS sources the rig lacks]}."""
    deltas = {name: rig.deltas[i] for i, name in enumerate(rig.shape_names)}
    canonical_x = None
    shapes, incomplete = [], {}
    for name, recipe in vocabulary.arkit_recipes().items():
        missing = [pose for pose, _ in recipe.terms if pose not in deltas]
        if missing or not recipe.terms:
            incomplete[name] = missing
        terms = tuple((pose, weight) for pose, weight in recipe.terms if pose in deltas)
        if not terms:
            shapes.append((name, np.zeros((rig.neutral.n_vertices, 3), np.float32)))
            continue
        if recipe.side is not None and canonical_x is None:
            canonical_x = _canonical_x(rig)
        shapes.append((name, replace(recipe, terms=terms).build(deltas, canonical_x).astype(np.float32)))
    return shapes, incomplete


def _canonical_x(rig: RigLike) -> np.ndarray:
    """(V,) canonical x of the neutral (+X the character's left): the rig's own frame when it recorded one."""
    recorded = rig.metadata.get("canonical_frame")
    frame = CanonicalFrame.from_dict(recorded) if recorded is not None else canonical_frame(rig.neutral)
    return frame.to_canonical(rig.neutral.vertices)[:, 0]


# ---------------------------------------------------------------------------------------------- metadata
def describe(ir: ExportRig) -> dict[str, Any]:
    """The metadata block every file carries: shapes, corrective recipes, naming, units and provenance.

    JSON-serialisable. Each corrective is ``{"drivers": [...], "rule": "product"}``: its weight is the
    product of its drivers' weights.
    """
    from facerig.version import __version__

    return {
        "version": METADATA_VERSION,
        "generator": f"facerig {__version__}",
        "naming": ir.naming,
        "shapes": list(ir.shape_names),
        "correctives": {
            name: {"drivers": list(drivers), "rule": "product"} for name, drivers in ir.correctives.items()
        },
        **ir.metadata,
    }


def sidecar_bytes(ir: ExportRig, format_name: str, file_name: str) -> bytes:
    """The ``<file>.facerig.json`` sidecar: :func:`describe` plus which file and format it belongs to."""
    payload = {"file": file_name, "format": format_name, **describe(ir)}
    return (json.dumps(payload, indent=2, allow_nan=False) + "\n").encode()
