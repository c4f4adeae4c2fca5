"""The resume manifest: one small JSON record per finished item, under ``OUTDIR/.facerig-batch/items/``.

A record is written (atomically) only after all of an item's outputs are in place, so "has a record" means
"finished". Its key covers the input's content hash, the model id, every output-shaping option and the
output name: a changed input, model or option gives a different key and the item is redone. One file per
item (named by its output path) rather than one shared file lets farm shards and Ray workers that share
OUTDIR write records side by side without locking, and a newer run simply replaces a stale record.
Records are plain JSON: nothing in OUTDIR is ever unpickled.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterator

from facerig.batch.discover import STATE_DIR, InputItem
from facerig.batch.options import Shard
from facerig.batch.report import ItemResult
from facerig.errors import OutputError
from facerig.fileio import write_bytes_atomic

LOCK_NAME = "lock"


def state_folder(outdir: Path, *parts: str) -> Path:
    """``OUTDIR/.facerig-batch[/parts]``, created if missing.

    Raises:
        OutputError: a part of it is a symlink or not a folder: records written through a planted symlink
            would land outside OUTDIR.
    """
    folder = Path(outdir)
    for part in (STATE_DIR, *parts):
        folder = folder / part
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise OutputError("facerig's batch state must be a plain folder, not a symlink or a file; remove it",
                              folder)
        folder.mkdir(exist_ok=True)
    return folder


@contextlib.contextmanager
def outdir_lock(outdir: Path, shard: Shard | None) -> Iterator[None]:
    """Hold OUTDIR's advisory lock (:func:`fcntl.flock`) for a batch run; fail at once when another run holds it.

    A run without ``--shard`` takes the lock exclusively. A sharded run shares it and takes its own shard's
    lock exclusively, so the shards of one farm job share OUTDIR while two runs of one shard (or a sharded and
    an unsharded run) never do: they would rig the same items and remove each other's temporary files.

    Raises:
        OutputError: another run holds the lock.
    """
    folder = state_folder(outdir)
    wanted = [(folder / LOCK_NAME, fcntl.LOCK_SH if shard else fcntl.LOCK_EX)]
    if shard is not None:
        wanted.append((folder / f"{LOCK_NAME}.shard{shard.index}of{shard.count}", fcntl.LOCK_EX))
    with contextlib.ExitStack() as held:
        for path, mode in wanted:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise OutputError(f"cannot open the batch lock ({exc.strerror or exc})", path) from None
            held.callback(os.close, fd)  # closing the descriptor releases its lock
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
            except BlockingIOError:
                raise OutputError("another facerig batch is writing this output folder; wait for it to finish "
                                  "or choose another --output", outdir) from None
        yield


def item_key(item: InputItem, output_fingerprint: str) -> str:
    """SHA-256 over the item's content, the output-shaping options (with the model id) and its output name."""
    text = f"{item.content_hash}|{output_fingerprint}|{item.output_stem}"
    return hashlib.sha256(text.encode()).hexdigest()


class Manifest:
    """Finished-item records of one OUTDIR."""

    def __init__(self, outdir: Path) -> None:
        self.outdir = Path(outdir)
        self.folder = state_folder(self.outdir, "items")

    def record_path(self, item: InputItem) -> Path:
        name = hashlib.sha256(str(item.output_stem).encode()).hexdigest()[:32]
        return self.folder / f"{name}.json"

    def finished(self, item: InputItem, key: str) -> dict[str, Any] | None:
        """The item's record when it finished with this key and its outputs are still there, else None."""
        path = self.record_path(item)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # no record, or one damaged by hand: not finished
            return None
        if not isinstance(record, dict) or record.get("key") != key:
            return None
        outputs = record.get("outputs")
        if not isinstance(outputs, list) or not outputs:
            return None
        for output in outputs:
            try:
                if (self.outdir / output["path"]).stat().st_size != output["bytes"]:
                    return None
            except (OSError, KeyError, TypeError):
                return None
        return record

    def write(self, item: InputItem, key: str, result: ItemResult) -> Path:
        """Record a finished item (after its outputs are written)."""
        record = {
            "key": key,
            "input": result.input,
            "relative": result.relative,
            "content_hash": item.content_hash,
            "vertices": result.vertices,
            "outputs": [{"path": p, "bytes": (self.outdir / p).stat().st_size} for p in result.outputs],
            "timings_s": result.timings_s,
            "worker": result.worker,
        }
        data = (json.dumps(record, indent=1, allow_nan=False) + "\n").encode()
        return write_bytes_atomic(self.record_path(item), data)
