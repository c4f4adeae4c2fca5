"""The one containment policy for every file an input makes a reader open (glTF buffers, USD layers).

An input file may reference others; a vendor's asset is untrusted, so a reference may point anywhere
(``/etc/...``, ``../../``, a FIFO that blocks the reader forever, one 200 MB file named twenty times).
A :class:`Sandbox` admits a referenced file only when

- it resolves, after symlinks, inside the input's own folder (the folder of the resolved input);
- ``stat`` says it is a regular file (nothing is opened before that: opening a FIFO blocks);
- the input and every file it references, each counted as often as it is referenced, stay within
  ``LoadLimits.max_file_bytes``.

Refusals are :class:`MeshLoadError`\\ s naming the input and the offending reference.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from facerig.errors import MeshLoadError
from facerig.io._common import LoadLimits, check_file


class Sandbox:
    """The files one input may read, and the bytes it has read so far.

    Args:
        entry: the input file (checked with :func:`~facerig.io._common.check_file`; its size counts).
        limits: ``max_file_bytes`` bounds the input plus everything admitted.
    """

    def __init__(self, entry: str | Path, limits: LoadLimits) -> None:
        self.entry = check_file(entry, limits)
        self.root = self.entry.resolve().parent
        self.limits = limits
        self.used_bytes = self.entry.stat().st_size

    def fail(self, reason: str) -> MeshLoadError:
        return MeshLoadError(reason, self.entry)

    def admit(self, reference: str | Path, what: str) -> Path:
        """The resolved path of a referenced file, once it passes the policy; its size is counted.

        Args:
            reference: an absolute path, or one relative to the input's folder.
            what: how the input names it, for messages (e.g. ``"buffer 2 ('a.bin')"``).
        Raises:
            MeshLoadError: outside the input's folder, missing, not a regular file, or over the byte limit.
        """
        try:
            target = (self.root / Path(reference)).resolve(strict=False)
        except (OSError, RuntimeError) as exc:  # a symlink loop
            raise self.fail(f"{what}: cannot be resolved ({exc})") from None
        if not target.is_relative_to(self.root):
            raise self.fail(f"{what} is outside the file's folder {self.root}")
        try:
            info = os.stat(target)
        except FileNotFoundError:
            raise self.fail(f"{what}: file not found") from None
        except OSError as exc:
            raise self.fail(f"{what}: cannot read: {exc.strerror or exc}") from None
        if not stat.S_ISREG(info.st_mode):
            raise self.fail(f"{what} is not a regular file")
        self.used_bytes += info.st_size
        if self.used_bytes > self.limits.max_file_bytes:
            raise self.fail(
                f"{what}: with the files it references the input reaches {self.used_bytes:,} bytes, over the "
                f"limit of {self.limits.max_file_bytes:,} (LoadLimits.max_file_bytes)"
            )
        return target

    def read_bytes(self, target: Path, what: str) -> bytes:
        """The bytes of a file :meth:`admit` returned, no more than it measured (a file may grow since)."""
        size = os.stat(target).st_size
        try:
            with open(target, "rb") as handle:  # admitted: a regular file, so open cannot block
                data = handle.read(size)
        except OSError as exc:
            raise self.fail(f"{what}: cannot read: {exc.strerror or exc}") from None
        return data
