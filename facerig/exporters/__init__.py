"""Rig exporters: one module per format, a registry, and the one function that writes files.

Each format module ends with ``EXPORTERS = {name: Exporter(...)}``; its writer is pure (IR in, bytes out,
see :mod:`facerig.exporters.common`). :func:`export_rig` gathers the IR once, runs the writer and writes the
file(s) and the ``<file>.facerig.json`` sidecar atomically: a failed export leaves nothing behind.

=========  ===================  ==================================================================
format     suffixes             what is written
=========  ===================  ==================================================================
usd        .usd                 UsdSkel rig, crate (binary) encoding
usdc       .usdc                the same, explicitly crate
usda       .usda                the same as text
glb        .glb                 glTF 2.0 binary container
gltf       .gltf                glTF 2.0 JSON + ``<stem>.bin`` beside it
npz        .npz                 the ``.facerig.npz`` rig bundle (no sidecar: the bundle has it all)
fbx        .fbx                 binary FBX 7.4 (registered by ``facerig.exporters.fbx``)
=========  ===================  ==================================================================
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import replace
from pathlib import Path
from typing import Callable

from facerig.errors import ExportError
from facerig.exporters import gltf, usd
from facerig.exporters.common import (
    SIDECAR_SUFFIX,
    ExportOptions,
    Exporter,
    ExportRig,
    Naming,
    RigLike,
    Writer,
    gather,
    sidecar_bytes,
)
from facerig.exporters.bundle import encode_bundle
from facerig.exporters.gltf_asset import GLTF_SUFFIXES, export_onto_asset, open_source_asset
from facerig.exporters.naming import naming_notes
from facerig.exporters.usd_layer import export_usd_rig_layer
from facerig.fileio import write_files_atomic


def _export_npz(ir: ExportRig, options: ExportOptions) -> bytes:
    """The IR as a rig bundle (with the naming preset's shapes): :func:`facerig.exporters.bundle.encode_bundle`."""
    return encode_bundle(ir.mesh, ir.shape_names, ir.dense_deltas(), ir.correctives, ir.metadata.get("rig", {}))


EXPORTERS: dict[str, Exporter] = {
    **usd.EXPORTERS,
    **gltf.EXPORTERS,
    "npz": Exporter("npz", (".npz",), _export_npz, sidecar=False),
}
# FBX is written by another module of this package; register it when it is there (an error inside it
# must surface, so only its absence is tolerated).
if importlib.util.find_spec("facerig.exporters.fbx") is not None:
    EXPORTERS.update(importlib.import_module("facerig.exporters.fbx").EXPORTERS)


def format_for_path(path: str | Path) -> str:
    """The format a file name selects by its suffix; raises :class:`ExportError` listing the formats."""
    suffix = Path(path).suffix.lower()
    for name, exporter in EXPORTERS.items():
        if suffix in exporter.suffixes:
            return name
    raise ExportError(f"cannot tell the export format from suffix {suffix!r}; formats: {_format_list()}", path)


def export_rig(
    rig: RigLike,
    path: str | Path,
    format: str | None = None,
    naming: str = "facs",
    preview_animation: bool = False,
    overwrite: bool = True,
    preserve_source: bool | None = None,
    report: Callable[[str], None] | None = None,
) -> Path:
    """Write ``rig`` to ``path`` (plus a ``<file>.facerig.json`` sidecar, and ``<stem>.bin`` for .gltf).

    Args:
        rig: the rig.
        path: the output file; its suffix selects the format when ``format`` is None.
        format: one of :data:`EXPORTERS` (usd, usda, usdc, glb, gltf, npz, fbx), case-insensitive.
        naming: a :class:`Naming`: "facs" (the rig's own FACS names, correctives included), "arkit" (the 52 ARKit
            shapes) or "roblox" (Roblox's FACS names; see :mod:`facerig.exporters.naming`).
        preview_animation: add an animation stepping through every shape, one per frame.
        overwrite: when False, refuse to replace an existing file.
        preserve_source: keep the user's own asset. glTF/GLB: write the rig's source glTF document back
            (materials, skins, animations, hierarchy kept) with the shapes as morph targets on the head's
            meshes (:mod:`facerig.exporters.gltf_asset`); None (default) does so when the neutral came from a
            glTF file that still holds its vertices, else uses the plain writer (the reason is in the
            metadata's ``source_document``). USD: True writes a rig layer that sublayers the source USD file
            (by a relative path) and adds the BlendShapes over its meshes (:mod:`facerig.exporters.usd_layer`);
            None/False write the stand-alone asset. True raises ExportError when the source cannot be kept;
            False always writes the stand-alone file.
        report: called with one sentence per thing the user should know about this export: what the naming
            preset dropped, renamed or left empty (:func:`facerig.exporters.naming.naming_notes`), and why a
            glTF source document could not be kept. The same facts are in the file's metadata and sidecar.

    Returns:
        The path of the main file written.

    Raises:
        ExportError: unknown format or naming, the file exists and ``overwrite`` is False, or the writer
            failed; nothing is left on disk in that case.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise ExportError("file exists and overwrite is off", path)
    files = export_files(rig, path, format, naming, preview_animation, preserve_source, report)
    if not overwrite:
        existing = [p for p in files if p.exists()]
        if existing:
            raise ExportError("file exists and overwrite is off", existing[0])
    write_export_files(files, path, f"{(format or format_for_path(path)).lower()} export")
    return path


def export_files(
    rig: RigLike,
    path: str | Path,
    format: str | None = None,
    naming: str = "facs",
    preview_animation: bool = False,
    preserve_source: bool | None = None,
    report: Callable[[str], None] | None = None,
) -> dict[Path, bytes]:
    """The files :func:`export_rig` would write for ``path``, as {path: bytes}, the main file first (the
    arguments are :func:`export_rig`'s).

    For callers that write several exports as one set (:func:`facerig.fileio.write_files_atomic`).
    """
    path = Path(path)
    name = format_for_path(path) if format is None else format.lower()
    if name not in EXPORTERS:
        raise ExportError(f"unknown export format {format!r}; formats: {_format_list()}", path)
    exporter = EXPORTERS[name]
    ir = gather(rig, naming)
    write = exporter.write
    if name in ("glb", "gltf") and preserve_source is not False:
        ir, write = _source_document_writer(ir, write, binary=name == "glb", required=bool(preserve_source))
    elif name in ("usd", "usda", "usdc") and preserve_source:
        kept = {"kept": True, "file": Path(ir.mesh.source or "").name, "as": "sublayer"}
        ir = replace(ir, metadata={**ir.metadata, "source_document": kept})
        binary = name != "usda"
        write = lambda ir, options: export_usd_rig_layer(ir, path, binary, options)  # noqa: E731
    elif preserve_source:
        raise ExportError(f"keeping the source asset is supported for glTF and USD outputs, not {name}", path)
    if report is not None:
        for note in naming_notes(ir.metadata):
            report(f"{naming} naming: {note}")
        kept = ir.metadata.get("source_document", {})
        if kept.get("kept") is False:
            report(f"the source glTF document is not kept, the plain writer is used: {kept['reason']}")
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    written = write(ir, ExportOptions(preview_animation=preview_animation, stem=stem))
    if isinstance(written, bytes):
        files = {path: written}
    else:  # the first entry is the main file; the others go beside it under their own names
        (_, main), *others = written.items()
        files = {path: main, **{path.with_name(other): data for other, data in others}}
    if exporter.sidecar:
        files[path.with_name(path.name + SIDECAR_SUFFIX)] = sidecar_bytes(ir, name, path.name)
    return files


def write_export_files(files: dict[Path, bytes], main: str | Path, what: str = "outputs") -> list[Path]:
    """Write export files all or none; an OS failure (disk full, read-only) becomes an :class:`ExportError`
    naming ``main`` (the file the user asked for) and ``what`` was being written."""
    try:
        return write_files_atomic(files)
    except OSError as exc:
        raise ExportError(f"cannot write the {what} ({exc.strerror or exc})", main) from None


def _source_document_writer(ir: ExportRig, plain: Writer, binary: bool, required: bool) -> tuple[ExportRig, Writer]:
    """The glTF writer that keeps the rig's source document when it can, and the IR noting which was used."""
    source, why = open_source_asset(ir)
    if source is None:
        if required:
            raise ExportError(f"cannot keep the source glTF document: {why}", ir.mesh.source)
        from_gltf = ir.mesh.source is not None and Path(ir.mesh.source).suffix.lower() in GLTF_SUFFIXES
        if not from_gltf:
            return ir, plain
        return replace(ir, metadata={**ir.metadata, "source_document": {"kept": False, "reason": why}}), plain
    kept = {"kept": True, "file": Path(ir.mesh.source).name}
    ir = replace(ir, metadata={**ir.metadata, "source_document": kept})
    return ir, lambda ir, options: export_onto_asset(ir, source, binary, options)



def _format_list() -> str:
    return ", ".join(sorted(EXPORTERS))


__all__ = [
    "EXPORTERS", "ExportOptions", "ExportRig", "Exporter", "Naming", "export_files", "export_rig", "format_for_path",
    "gather", "write_export_files",
]
