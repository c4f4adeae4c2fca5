"""The resume manifest: one small JSON record per finished item, under ``OUTDIR/.facerig-batch/items/``.

A record is written (atomically) only after all of an item's outputs are in place, so "has a record" means
"finished". Its key covers the input's content hash, the model id, every output-shaping option and the
output name: a changed input, model or option gives a different key and the item is redone. One file per
item (named by its output path) rather than one shared file lets farm shards and Ray workers that share
OUTDIR write records side by side without locking, and a newer run simply replaces a stale record.
Records are plain JSON: nothing in OUTDIR is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from facerig.batch.discover import InputItem
from facerig.batch.report import ItemResult
from facerig.fileio import write_bytes_atomic

STATE_DIR = ".facerig-batch"


def item_key(item: InputItem, output_fingerprint: str) -> str:
    """SHA-256 over the item's content, the output-shaping options (with the model id) and its output name."""
    text = f"{item.content_hash}|{output_fingerprint}|{item.output_stem}"
    return hashlib.sha256(text.encode()).hexdigest()


class Manifest:
    """Finished-item records of one OUTDIR."""

    def __init__(self, outdir: Path) -> None:
        self.outdir = Path(outdir)
        self.folder = self.outdir / STATE_DIR / "items"

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
