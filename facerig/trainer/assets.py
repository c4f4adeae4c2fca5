"""A training source's files, read from its unpacked folder or streamed from its archive.

ICT-FaceKit (:mod:`facerig.trainer.ict`) and MakeHuman (:mod:`facerig.trainer.makehuman`) are each given as a
folder or as the ``.tar.xz``/``.tar.gz``/``.tar`` it ships in. The archives are large (ICT unpacks to 387 MB),
so they are streamed member by member, in memory, never unpacked to disk; each source says which members it
wants and under what name, and both report an unreadable archive the same way.
"""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Callable, Iterator

from facerig.errors import DatasetError

__all__ = ["MAX_FILE_BYTES", "FileStream", "archive_files", "read_capped", "source_files"]

# (name, bytes) of each file a source reads, in the order the folder or the archive gives them.
FileStream = Iterator[tuple[str, bytes]]
# No file of either source comes near this (ICT's largest is 2.6 MB, MakeHuman's base mesh a few MB); a tar header
# or a folder entry claiming more is refused before a byte of it is read into memory.
MAX_FILE_BYTES = 64 << 20


def read_capped(path: Path, name: str, where: Path, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """``path``'s bytes, refusing a file over ``max_bytes`` (by its size on disk) before reading it."""
    if path.stat().st_size > max_bytes:
        raise DatasetError(f"{name} is larger than {max_bytes >> 20} MB", where)
    return path.read_bytes()


def source_files(
    source: Path, folder_files: Callable[[Path], FileStream], archive_files: Callable[[Path], FileStream], missing: str
) -> FileStream:
    """The files of ``source``: ``folder_files`` of a folder, ``archive_files`` of a file.

    Raises:
        DatasetError: ``missing`` (naming what was expected), when ``source`` is neither.
    """
    if source.is_dir():
        return folder_files(source)
    if source.is_file():
        return archive_files(source)
    raise DatasetError(missing, source)


def archive_files(archive_path: Path, pick: Callable[[tarfile.TarInfo], str | None],
                  max_bytes: int = MAX_FILE_BYTES) -> FileStream:
    """Stream a tar archive (any compression) once: (name, bytes) of every regular file ``pick`` names.

    ``pick`` sees each member before it is read: it returns the name to yield it under, None to skip it, or
    raises (a :class:`DatasetError`) to refuse it. A picked member whose header declares more than ``max_bytes``
    is refused before it is read.

    Raises:
        DatasetError: the archive is unreadable or truncated.
    """
    try:
        with tarfile.open(archive_path, "r|*") as archive:
            for member in archive:
                if not member.isfile():
                    continue
                name = pick(member)
                if name is None:
                    continue
                if member.size > max_bytes:
                    raise DatasetError(f"{name} is larger than {max_bytes >> 20} MB", archive_path)
                yield name, archive.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DatasetError(f"not a readable tar archive ({exc})", archive_path) from None
