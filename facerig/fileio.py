"""Atomic file writes: every output facerig writes appears whole or not at all, and byte-reproducibly.

A file is written under a short hidden temporary name beside its target (:func:`temp_prefix` + 8 random
characters + ``.tmp``), flushed to disk, then renamed onto the target. The temporary name is derived from a
hash of the target's name rather than the name itself, so it stays 26 characters long whatever the target is
called (a target near the file system's 255-byte name limit still gets one) and the temporaries one target
may have left behind after a kill are found by prefix (:func:`remove_stale_temps`), never by parsing names.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Iterator

import numpy as np

TEMP_SUFFIX = ".tmp"
_TEMP_HASH_CHARS = 12
_TEMP_RANDOM_CHARS = 8  # what tempfile.mkstemp adds between prefix and suffix
# The time stamp of every member of an archive facerig writes: a fixed one, so equal contents give equal bytes.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

# The process umask, read once: os.umask can only be read by setting it.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def temp_prefix(path: str | Path) -> str:
    """The prefix of every temporary name :func:`atomic_path` uses for ``path``: ``.<12 hex chars>.``."""
    name = Path(path).name.encode("utf-8", "surrogateescape")
    return f".{hashlib.sha256(name).hexdigest()[:_TEMP_HASH_CHARS]}."


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    On any exception the temporary file is removed and ``path`` is left as it was, so a crash, a kill
    or a failed export never leaves a half-written file under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temp(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        _write_synced(tmp, data)
    return path


def write_files_atomic(files: Mapping[Path, bytes]) -> list[Path]:
    """Write a set of files all or none: every one to a temporary name first, then rename them together.

    The renames run in reverse order, so the first file (the main one) appears last, once every other file
    it refers to is complete. On any failure the temporaries are removed and files this call had already
    renamed into place that did not exist before are removed again (a file it replaced cannot be restored,
    but it was only replaced by its complete new version).

    Returns:
        The target paths, in the given order.
    """
    targets = [Path(target) for target in files]
    existed = {target: target.exists() for target in targets}
    temps: dict[Path, Path] = {}
    renamed: list[Path] = []
    try:
        for target, data in zip(targets, files.values()):
            target.parent.mkdir(parents=True, exist_ok=True)
            temps[target] = _new_temp(target)
            _write_synced(temps[target], data)
        for target in reversed(targets):
            os.replace(temps[target], target)
            del temps[target]
            renamed.append(target)
    except BaseException:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
        for target in renamed:
            if not existed[target]:
                target.unlink(missing_ok=True)
        raise
    return targets


def remove_stale_temps(targets: Iterable[Path]) -> list[Path]:
    """Delete the temporary files an interrupted write left for ``targets``; return what was removed.

    Only names :func:`atomic_path` made for exactly these targets match, so another target's temporaries,
    even ones being written right now, are never touched. Symlinks and folders are left alone.
    """
    by_folder: dict[Path, set[str]] = {}
    for target in targets:
        by_folder.setdefault(Path(target).parent, set()).add(temp_prefix(target))
    removed = []
    prefix_length = 1 + _TEMP_HASH_CHARS + 1
    length = prefix_length + _TEMP_RANDOM_CHARS + len(TEMP_SUFFIX)
    for folder, prefixes in by_folder.items():
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        for entry in entries:
            name = entry.name
            ours = len(name) == length and name.endswith(TEMP_SUFFIX) and name[:prefix_length] in prefixes
            if ours and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """``arrays`` as an uncompressed ``.npz`` archive (what :func:`numpy.savez` writes), byte-reproducible.

    :func:`numpy.savez` stamps every member with the current time, so two saves of the same arrays differ;
    here every member carries a fixed time stamp and the members are in the given order.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for key, value in arrays.items():
            member = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_EPOCH)
            member.external_attr = 0o644 << 16
            with archive.open(member, "w", force_zip64=True) as handle:
                np.lib.format.write_array(handle, np.asanyarray(value), allow_pickle=False)
    return buffer.getvalue()


def _new_temp(path: Path) -> Path:
    fd, tmp_name = tempfile.mkstemp(prefix=temp_prefix(path), suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates the file 0600; give the final file the permissions a plain open() would.
    os.chmod(tmp, 0o666 & ~_UMASK)
    return tmp


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
