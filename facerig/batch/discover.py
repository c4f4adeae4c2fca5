"""Which files a batch rigs, in which order, and where each one's outputs go.

Inputs are files and folders. Folders are searched recursively for the extensions facerig reads
(:data:`facerig.io.SUPPORTED_EXTENSIONS`, any case); a file named explicitly is taken whatever its extension,
so a wrong one is reported rather than silently dropped. Every item's outputs mirror its path below its input
root: ``heads/a/b.obj`` from the root ``heads/`` gives ``OUTDIR/a/b.facerig.npz``.

Filters are glob patterns (:func:`fnmatch.fnmatchcase`, case-sensitive on every platform so all farm nodes
agree): a pattern with a ``/`` is matched against the path below the root, one without against the file name.
``--include`` keeps only matching files; ``--exclude`` drops matching files (and symlinked folders).

Inputs are untrusted, so discovery never follows a symlink found inside a folder out of that input root
unless ``follow_symlinks`` is set (such an entry becomes a failed item naming the reason; a path named on the
command line is the user's own choice and is taken as given), never descends into
OUTDIR (its ``.glb`` outputs are inputs too; when an input folder is OUTDIR or inside it, facerig's own
outputs and state there are left out), reports an entry it cannot follow (a symlink loop) as a failed item
instead of stopping, rejects an item whose outputs would overwrite an input, and reads each file once to
hash it: the content hash keys the resume manifest and the shard partition.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Sequence

from facerig.batch.options import BatchOptions, Shard
from facerig.errors import BatchError
from facerig.exporters.common import SIDECAR_SUFFIX
from facerig.io import SUPPORTED_EXTENSIONS
from facerig.rigging.rig_and_write import output_paths, planned_files

STATE_DIR = ".facerig-batch"  # OUTDIR's resume records and lock (see facerig.batch.manifest)

_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class InputItem:
    """One input file and where its outputs go.

    Attributes:
        path: the file, absolute (symlinks not resolved).
        relative: its path below its input root; its outputs mirror it.
        output_stem: outputs are ``OUTDIR / (output_stem + suffix)``; usually ``relative`` without its
            extension, the whole file name when two inputs of one folder share a stem (``a.obj``, ``a.ply``).
        size: bytes.
        content_hash: SHA-256 hex of the bytes; "" when not read (over the size limit, unreadable, rejected).
        shard_key: hex digest deciding the shard: the content hash, else a digest of ``relative``.
        problem: why the item is rejected before rigging (None for a normal item).
    """

    path: Path
    relative: PurePosixPath
    output_stem: PurePosixPath
    size: int
    content_hash: str
    shard_key: str
    problem: str | None = None

    def output_path(self, outdir: Path, suffix: str) -> Path:
        """OUTDIR/<output_stem><suffix>: the name is concatenated, never parsed, so any stem stays a name."""
        return outdir.joinpath(*self.output_stem.parent.parts, self.output_stem.name + suffix)


def discover(inputs: Sequence[str | Path], outdir: str | Path, options: BatchOptions) -> list[InputItem]:
    """Every input item of a batch (all shards), in a deterministic order.

    Args:
        inputs: files and folders.
        outdir: the output root; never searched.
        options: filters, symlink policy and size limit (``max_file_mb``: larger files are not hashed).

    Returns:
        Items sorted by (relative path, absolute path), duplicates (the same file reached twice for the same
        output) removed, output-name clashes resolved or reported in ``problem``.

    Raises:
        BatchError: an input does not exist.
    """
    outdir_real = Path(outdir).resolve()
    found: list[tuple[Path, PurePosixPath, str | None]] = []  # (path, relative, problem)
    for given in inputs:
        path = Path(os.path.abspath(given))
        if not os.path.lexists(path):
            raise BatchError("input not found", given)
        if path.is_dir():
            found.extend(_walk(path, outdir_real, options))
        elif _selected(PurePosixPath(path.name), options):
            found.append((path, PurePosixPath(path.name), None))

    unique: dict[tuple[str, PurePosixPath], tuple[Path, PurePosixPath, str | None]] = {}
    for path, relative, problem in sorted(found, key=lambda entry: (str(entry[1]), str(entry[0]))):
        unique.setdefault((os.path.realpath(path), relative), (path, relative, problem))
    stems = _output_stems([relative for _, relative, _ in unique.values()])
    items = [
        _hashed(path, relative, stem, problem, options)
        for (path, relative, problem), stem in zip(unique.values(), stems)
    ]
    return _reject_overwrites(_reject_clashes(items), Path(os.path.abspath(outdir)), options)


def select_shard(items: Sequence[InputItem], shard: Shard | None) -> list[InputItem]:
    """The items of ``shard`` (all of them when None), order kept."""
    return list(items) if shard is None else [item for item in items if shard.contains(item.shard_key)]


# ------------------------------------------------------------------------------------------------- walking
def _walk(root: Path, outdir_real: Path, options: BatchOptions) -> list[tuple[Path, PurePosixPath, str | None]]:
    """Supported files below ``root`` and rejected symlinks, as (path, path below root, problem)."""
    root_real = root.resolve()
    # OUTDIR below the root is left out (its .glb outputs would be inputs next time); a root inside OUTDIR is the
    # user's explicit choice.
    avoid = outdir_real if not root_real.is_relative_to(outdir_real) else None
    extensions = {ext.lower() for ext in SUPPORTED_EXTENSIONS}
    found: list[tuple[Path, PurePosixPath, str | None]] = []
    visited = {root_real}  # folders already searched, by real path: symlink loops end here
    stack = [(root, PurePosixPath())]
    while stack:
        folder, folder_rel = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError as exc:
            found.append((folder, folder_rel, f"cannot list folder: {exc.strerror or exc}"))
            continue
        names = {entry.name for entry in entries}
        for entry in entries:
            path, relative = Path(entry.path), folder_rel / entry.name
            try:
                is_dir = entry.is_dir()  # follows symlinks
                real = path.resolve()
            except (OSError, RuntimeError) as exc:  # a symlink loop (RuntimeError) or an unreadable entry
                found.append((path, relative, f"cannot follow this entry: {getattr(exc, 'strerror', None) or exc}"))
                continue
            if is_dir and _excluded(relative, options):
                continue
            if not is_dir and (Path(entry.name).suffix.lower() not in extensions or not _selected(relative, options)):
                continue
            if avoid is not None and real.is_relative_to(avoid):
                continue
            if avoid is None and _is_facerig_output(real, entry.name, names, outdir_real):
                continue
            if entry.is_symlink() and not options.follow_symlinks and not real.is_relative_to(root_real):
                what = "folder" if is_dir else "file"
                problem = f"symlinked {what} leads outside the input root {root}; pass --follow-symlinks to allow"
                found.append((path, relative, problem))
            elif is_dir:
                if real not in visited:
                    visited.add(real)
                    stack.append((path, relative))
            elif entry.is_file():
                found.append((path, relative, None))
    return found


def _is_facerig_output(real: Path, name: str, names_beside: set[str], outdir_real: Path) -> bool:
    """Whether a file (or folder) found inside OUTDIR is facerig's own: its batch state, or an export (every
    export has a ``<file>.facerig.json`` sidecar beside it), so a second run never rigs the first one's outputs."""
    if not real.is_relative_to(outdir_real):
        return False
    return real.is_relative_to(outdir_real / STATE_DIR) or name + SIDECAR_SUFFIX in names_beside


def _matches(relative: PurePosixPath, pattern: str) -> bool:
    return fnmatchcase(str(relative) if "/" in pattern else relative.name, pattern)


def _excluded(relative: PurePosixPath, options: BatchOptions) -> bool:
    return any(_matches(relative, pattern) for pattern in options.exclude)


def _selected(relative: PurePosixPath, options: BatchOptions) -> bool:
    """Whether a file passes the include and exclude patterns."""
    if options.include and not any(_matches(relative, pattern) for pattern in options.include):
        return False
    return not _excluded(relative, options)


# ------------------------------------------------------------------------------------------------- naming
def _output_stems(relatives: list[PurePosixPath]) -> list[PurePosixPath]:
    """``a/b.obj`` -> ``a/b``; files of one folder whose stems differ only by case or extension keep their
    full name (``a/b.obj``, ``a/b.ply``) so neither overwrites the other."""
    groups: dict[tuple[str, str], int] = defaultdict(int)
    for relative in relatives:
        groups[(str(relative.parent), relative.stem.casefold())] += 1
    return [
        relative if groups[(str(relative.parent), relative.stem.casefold())] > 1 else relative.with_suffix("")
        for relative in relatives
    ]


def _reject_clashes(items: list[InputItem]) -> list[InputItem]:
    """Items whose outputs would land on an earlier item's outputs (same path below two roots) are rejected."""
    owner: dict[str, InputItem] = {}
    checked = []
    for item in items:
        key = str(item.output_stem).casefold()
        first = owner.setdefault(key, item)
        if first is not item and item.problem is None:
            item = replace(item, problem=f"its outputs would overwrite those of {first.path}; rig it separately")
        checked.append(item)
    return checked


def _reject_overwrites(items: list[InputItem], outdir: Path, options: BatchOptions) -> list[InputItem]:
    """Items one of whose outputs would be an input file of this batch (``batch d -o d -f glb`` with a
    ``d/t.glb`` input) are rejected: the input would be destroyed."""
    inputs = {os.path.realpath(item.path): item.path for item in items}
    checked = []
    for item in items:
        outputs = planned_files([path for _, path in output_paths(outdir, item.output_stem, options.formats)])
        victim = next((inputs[os.path.realpath(p)] for p in outputs if os.path.realpath(p) in inputs), None)
        if victim is not None and item.problem is None:
            item = replace(item, problem=f"its outputs would overwrite the input {victim}; choose another -o")
        checked.append(item)
    return checked


def _hashed(
    path: Path, relative: PurePosixPath, stem: PurePosixPath, problem: str | None, options: BatchOptions
) -> InputItem:
    """Build the item, reading the file once for its content hash (unless rejected or over the size limit)."""
    path_key = hashlib.sha256(f"path:{relative}".encode()).hexdigest()
    size, digest = 0, ""
    if problem is None:
        try:
            size = path.stat().st_size
            if size <= options.limits.max_file_bytes:
                digest = _sha256(path)
        except OSError as exc:
            problem = f"cannot read: {exc.strerror or exc}"
    return InputItem(path, relative, stem, size, digest, digest or path_key, problem)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
