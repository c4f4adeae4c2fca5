"""The one way to rig a head and write its outputs: ``rig_and_write``, used by `facerig rig`, the batch worker
and the Python API, and the registry of rigging methods it dispatches on.

    from facerig.rigging.rig_and_write import RigMethod, rig_and_write
    result = rig_and_write("head.obj", "out/", formats=("usd", "glb"), method=RigMethod.transfer, naming="arkit")
    result.outputs  # (out/head.facerig.npz, out/head.usd, out/head.glb)

An item's files (the bundle, every format, their sidecars and side files) are written as one set: all of them
to temporary names first, then renamed together, so a failure leaves none of them (:mod:`facerig.fileio`).
Before any work the outputs are checked: none may be an input file, and none may land outside the output
folder through a symlinked subfolder; output subfolders are created only after that check.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

from facerig.errors import ConfigError, OutputError
from facerig.exporters import EXPORTERS, Naming, export_files, write_export_files
from facerig.exporters.common import SIDECAR_SUFFIX
from facerig.io import LoadLimits, load_mesh
from facerig.mesh import Mesh, source_name
from facerig.exporters.bundle import BUNDLE_SUFFIX
from facerig.rig import Rig
from facerig.timings import RigTimings

if TYPE_CHECKING:  # torch loads on first rig, so the CLI's parsing stays fast
    from facerig.nn.model import PackagedModel
    from facerig.vocabulary import Vocabulary


class RigMethod(StrEnum):
    """How a rig is made; each maps to its rigging function in :data:`METHODS`."""

    network = "network"  # the neural network (facerig.rigging.pipeline.rig_mesh)
    transfer = "transfer"  # deformation transfer from the bundled ICT template (facerig.rigging.transfer)


@dataclass(frozen=True)
class RigOptions:
    """How one head is rigged, whatever the method (a method ignores what it has no use for).

    Attributes:
        up, front: axis overrides ("+Y", "-Z", ...) for files without (or with wrong) orientation metadata.
        units: the input's length unit (m, dm, cm, mm, in, ft), replacing the file's own (None: the file's).
        select: read only the meshes named like this (substring or glob; see :func:`facerig.io.load_mesh`).
        mirror_average: network only: average with the mirror image's prediction (twice the network time).
        cache_dir: network only: where operators are cached (None: facerig's default cache folder).
        limits: bounds on the input file's size and vertex count.
    """

    up: str | None = None
    front: str | None = None
    units: str | None = None
    select: str | None = None
    mirror_average: bool = False
    cache_dir: Path | None = None
    limits: LoadLimits = LoadLimits()


# (mesh, loaded model or None, vocabulary or None, options) -> Rig
RigFunction = Callable[[Mesh, "PackagedModel | None", "Vocabulary | None", RigOptions], Rig]


def _rig_by_network(mesh: Mesh, model: PackagedModel | None, vocabulary: Vocabulary | None,
                    options: RigOptions) -> Rig:
    from facerig.rigging.pipeline import rig_mesh

    return rig_mesh(mesh, model, vocabulary=vocabulary, up=options.up, front=options.front,
                    cache_dir=options.cache_dir, mirror_average=options.mirror_average)


def _rig_by_transfer(mesh: Mesh, model: PackagedModel | None, vocabulary: Vocabulary | None,
                     options: RigOptions) -> Rig:
    from facerig.rigging.transfer import rig_by_transfer

    return rig_by_transfer(mesh, vocabulary=vocabulary, up=options.up, front=options.front)


METHODS: dict[RigMethod, RigFunction] = {
    RigMethod.network: _rig_by_network,
    RigMethod.transfer: _rig_by_transfer,
}


def uses_model(method: RigMethod | str) -> bool:
    """Whether ``method`` needs a packaged model (callers load it once and pass it to every head)."""
    return RigMethod(method) is RigMethod.network


@dataclass(frozen=True)
class RigResult:
    """What :func:`rig_and_write` did for one head.

    Attributes:
        rig: the rig (its :attr:`~facerig.rig.Rig.timings` are the rigging steps only).
        outputs: the main files written, the ``.facerig.npz`` bundle first, then one per format.
        timings: every step, loading and writing included.
    """

    rig: Rig
    outputs: tuple[Path, ...]
    timings: RigTimings


def output_paths(outdir: str | Path, stem: str | PurePath, formats: Sequence[str]) -> list[tuple[str, Path]]:
    """(format, path) of every main output, the bundle first: ``OUTDIR/<stem>.facerig.npz``, ``OUTDIR/<stem>.usd``.

    ``stem`` may have folders (``a/b`` -> ``OUTDIR/a/b.*``); the name is concatenated, never parsed, so any
    stem stays one name. "npz" in ``formats`` is the bundle, which is always written.
    """
    stem = PurePath(stem)
    folder = Path(outdir).joinpath(*stem.parent.parts)
    paths = [("npz", folder / (stem.name + BUNDLE_SUFFIX))]
    for fmt in dict.fromkeys(formats):
        if fmt != "npz":
            paths.append((fmt, folder / (stem.name + EXPORTERS[fmt].suffixes[0])))
    return paths


def planned_files(outputs: Sequence[Path]) -> list[Path]:
    """Every file writing ``outputs`` may create: each main file, its sidecar and a glTF's ``<stem>.bin``."""
    files = []
    for path in outputs:
        stem = path.name[: -len(path.suffix)] if path.suffix else path.name
        files += [path, path.with_name(path.name + SIDECAR_SUFFIX), path.with_name(stem + ".bin")]
    return files


def check_outputs(paths: Sequence[Path], outdir: str | Path, inputs: Sequence[Path] = ()) -> None:
    """Refuse outputs that would replace an input file or land outside ``outdir``; create their folders.

    A folder below ``outdir`` may be a symlink planted by someone else: its deepest existing part must resolve
    inside ``outdir``, and the missing parts are created only after that check.

    Raises:
        OutputError: naming the output and the reason.
    """
    root = prepare_outdir(outdir)
    root_real = root.resolve()
    originals = [Path(path) for path in inputs if os.path.isfile(path)]
    for path in planned_files(paths):
        clash = next((given for given in originals if path.exists() and os.path.samefile(path, given)), None)
        if clash is not None:
            raise OutputError(f"the output would overwrite the input {clash}; choose another output folder", path)
    for folder in dict.fromkeys(Path(path).parent for path in paths):
        existing = folder
        while not existing.exists() and existing != root:
            existing = existing.parent
        if not existing.resolve().is_relative_to(root_real):
            raise OutputError(f"this output folder leads outside the output folder {root}", folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the output folder ({exc.strerror or exc})", folder) from None
        if not folder.resolve().is_relative_to(root_real):  # a symlink planted while we looked
            raise OutputError(f"this output folder leads outside the output folder {root}", folder)


def prepare_outdir(outdir: str | Path) -> Path:
    """Create the output folder if needed; one clear :class:`OutputError` when it is a file or cannot be made."""
    path = Path(os.path.abspath(outdir))
    if path.exists() and not path.is_dir():
        raise OutputError("the output folder is a file", path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder ({exc.strerror or exc})", path) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError("the output folder is not writable", path)
    return path


def _choice(kind: type[StrEnum], value: str) -> StrEnum:
    try:
        return kind(value)
    except ValueError:
        raise ConfigError(f"unknown {kind.__name__} {value!r}; use {' or '.join(kind)}") from None


def rig_and_write(
    head: Mesh | str | Path,
    outdir: str | Path,
    formats: Sequence[str] = (),
    method: RigMethod | str = RigMethod.network,
    naming: Naming | str = Naming.facs,
    options: RigOptions | None = None,
    *,
    stem: str | PurePath | None = None,
    model: PackagedModel | None = None,
    vocabulary: Vocabulary | None = None,
    overwrite: bool = True,
    report: Callable[[str], None] | None = None,
) -> RigResult:
    """Rig one head and write ``OUTDIR/<stem>.facerig.npz`` plus one file per format, as one set.

    Args:
        head: a loaded :class:`Mesh` or a mesh file (read within ``options.limits``).
        outdir: the output folder, created if missing.
        formats: export formats (usd, usda, usdc, glb, gltf, fbx); the bundle ("npz") is always written.
        method: a :class:`RigMethod`.
        naming: shape names in the exported formats (the bundle keeps the rig's own).
        options: see :class:`RigOptions`.
        stem: output name below ``outdir`` (may have folders); default: the mesh's name.
        model: the loaded model for the network method (None: the bundled one, loaded for this head).
        vocabulary: the poses to build (None: the default vocabulary).
        overwrite: when False, refuse (before any work) to replace an existing output.
        report: called with each sentence the exports have for the user (what a naming preset dropped or left
            empty, why a source document was not kept; :func:`facerig.exporters.export_rig`).

    Returns:
        The rig, the files written and the timings.

    Raises:
        OutputError: an output would replace the input, leave ``outdir``, or replace an existing file while
            ``overwrite`` is False (checked before any work).
        MeshLoadError, ExportError, ...: any :class:`~facerig.errors.FacerigError` of loading, rigging or
            writing; no output of the set is left behind.
    """
    start = time.perf_counter()
    options = options or RigOptions()
    method, naming = _choice(RigMethod, method), _choice(Naming, naming)
    unknown = [fmt for fmt in formats if fmt not in EXPORTERS]
    if unknown:
        raise OutputError(f"unknown export format(s) {', '.join(unknown)}; formats: {', '.join(sorted(EXPORTERS))}")
    if isinstance(head, Mesh):  # its file, when it came from one, is protected too
        source = Path(head.source) if head.source else None
    else:
        source = Path(head)
    name = stem if stem is not None else (head.name if isinstance(head, Mesh) else source_name(head))
    targets = output_paths(outdir, name, formats)
    check_outputs([path for _, path in targets], outdir, inputs=[source] if source is not None else [])
    existing = [path for path in planned_files([path for _, path in targets]) if path.exists()]
    if existing and not overwrite:
        raise OutputError("the output exists and overwriting is off", existing[0])

    tick = time.perf_counter()
    if isinstance(head, Mesh):
        mesh = head
    else:
        mesh = load_mesh(head, options.limits, up=options.up, units=options.units, select=options.select)
    load_s = time.perf_counter() - tick
    rig = METHODS[method](mesh, model, vocabulary, options)

    tick = time.perf_counter()
    (_, bundle), *exports = targets
    files = {bundle: rig.bundle_bytes()}
    for fmt, path in exports:
        files.update(export_files(rig, path, fmt, naming, report=report))
    write_export_files(files, bundle)
    rigged = rig.timings or RigTimings()
    timings = replace(rigged, load=rigged.load + load_s, export=time.perf_counter() - tick,
                      total=time.perf_counter() - start)
    return RigResult(rig, tuple(path for _, path in targets), timings)
