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

import contextlib
import importlib
import importlib.util
import os
import tempfile
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
    Writer,
    gather,
    sidecar_bytes,
)
from facerig.exporters.gltf_asset import GLTF_SUFFIXES, export_onto_asset, open_source_asset
from facerig.exporters.naming import naming_notes
from facerig.exporters.usd_layer import export_usd_rig_layer
from facerig.fileio import atomic_path
from facerig.rig import BUNDLE_SUFFIX, Rig


def _export_npz(ir: ExportRig, options: ExportOptions) -> bytes:
    """The IR as a rig bundle (with the naming preset's shapes), through :meth:`Rig.save`."""
    rig = Rig(
        neutral=ir.mesh,
        shape_names=ir.shape_names,
        deltas=ir.dense_deltas(),
        corrective_recipes=ir.correctives,
        metadata=ir.metadata.get("rig", {}),
    )
    with tempfile.TemporaryDirectory(prefix="facerig-npz-") as tmp:
        return rig.save(Path(tmp) / f"rig{BUNDLE_SUFFIX}").read_bytes()


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
    rig: Rig,
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
        naming: "facs" (the rig's own FACS names, correctives included), "arkit" (the 52 ARKit shapes) or
            "roblox" (Roblox's FACS names; see :mod:`facerig.exporters.naming`).
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
    name = format_for_path(path) if format is None else format.lower()
    if name not in EXPORTERS:
        raise ExportError(f"unknown export format {format!r}; formats: {_format_list()}", path)
    exporter = EXPORTERS[name]
    if not overwrite and path.exists():
        raise ExportError("file exists and overwrite is off", path)

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
    if not overwrite:
        existing = [p for p in files if p.exists()]
        if existing:
            raise ExportError("file exists and overwrite is off", existing[0])
    try:
        _write_all_atomic(files)
    except OSError as exc:
        raise ExportError(f"cannot write the {name} export ({exc.strerror or exc})", path) from None
    return path


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


def _write_all_atomic(files: dict[Path, bytes]) -> None:
    """Write every file to a temp name, then rename them all; on any failure leave no new file behind.

    The first file is the main one. Renames run in reverse order, so the main file appears last and only
    when its side files are complete; side files this call created are removed again if a later step fails.
    """
    side_files = list(files)[1:]
    new_side_files = [p for p in side_files if not p.exists()]
    try:
        with contextlib.ExitStack() as stack:
            for target, data in files.items():
                tmp = stack.enter_context(atomic_path(target))
                with open(tmp, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
    except BaseException:
        for path in new_side_files:
            if path.is_file():
                path.unlink()
        raise


def _format_list() -> str:
    return ", ".join(sorted(EXPORTERS))


__all__ = ["EXPORTERS", "ExportOptions", "ExportRig", "Exporter", "export_rig", "format_for_path", "gather"]
