"""What a batch run did: one `ItemResult` per input, gathered into a `BatchReport` (JSON + a human summary)."""

from __future__ import annotations

import json
import traceback
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from facerig.errors import FacerigError, OutputError
from facerig.fileio import write_bytes_atomic
from facerig.timings import RigTimings

# Phases in the order an item goes through them; the summary and the bench print them in this order.
PHASES = RigTimings.phases()


class ItemStatus(StrEnum):
    DONE = "done"  # rigged and written by this run
    SKIPPED = "skipped"  # already finished by an earlier run with the same input, model and options
    FAILED = "failed"  # see ItemResult.error
    CANCELLED = "cancelled"  # not run: --fail-fast stopped the batch, or it was interrupted


@dataclass
class ItemResult:
    """The outcome of one input.

    Attributes:
        input: the input file as discovered (absolute).
        relative: its path below its input root (POSIX); outputs mirror it under OUTDIR.
        status: see :class:`ItemStatus`.
        content_hash: SHA-256 of the input's bytes ("" when it was not read).
        vertices: vertex count of the loaded mesh (None when it did not load).
        outputs: files written for it, relative to OUTDIR (POSIX), the ``.facerig.npz`` bundle first.
        timings_s: seconds per phase (:data:`PHASES`); empty unless rigged by this run.
        error: {"class", "message"} (and "traceback" for unexpected errors) when failed.
        worker: host, process and device that rigged it.
    """

    input: str
    relative: str
    status: ItemStatus
    content_hash: str = ""
    vertices: int | None = None
    outputs: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    error: dict[str, str] | None = None
    worker: str | None = None

    @classmethod
    def failure(cls, input: str, relative: str, content_hash: str, exc: BaseException, **extra: Any) -> "ItemResult":
        """A failed result recording ``exc``'s class and message (and traceback unless it is a FacerigError).

        A FacerigError's message names its file already; any other's is prefixed with the input's path.
        """
        expected = isinstance(exc, FacerigError)
        error = {"class": type(exc).__name__, "message": str(exc) if expected else f"{input}: {exc}"}
        if not expected:  # an expected failure needs no traceback; a bug does
            error["traceback"] = "".join(traceback.format_exception(exc)).strip()
        return cls(input, relative, ItemStatus.FAILED, content_hash, error=error, **extra)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["status"] = str(self.status)
        return out


@dataclass
class BatchReport:
    """Everything a run did, in the order of its (sorted) inputs.

    Attributes:
        outdir: the output root (absolute).
        model: {"id", "name"} of the packaged model.
        options: :meth:`BatchOptions.to_dict` of the run.
        items: one result per input of this run's shard.
        started_at: ISO 8601 UTC start time.
        wall_s: seconds from start to the end of the run.
        path: where the JSON report was written.
    """

    outdir: str
    model: dict[str, str]
    options: dict[str, Any]
    items: list[ItemResult]
    started_at: str
    wall_s: float
    path: str | None = None

    # ---------------------------------------------------------------------------------------- summaries
    def count(self, status: ItemStatus) -> int:
        return sum(1 for item in self.items if item.status == status)

    @property
    def failed(self) -> list[ItemResult]:
        return [item for item in self.items if item.status == ItemStatus.FAILED]

    @property
    def exit_code(self) -> int:
        """0 when every item is done or skipped, 1 when any failed or was cancelled."""
        bad = (ItemStatus.FAILED, ItemStatus.CANCELLED)
        return 1 if any(item.status in bad for item in self.items) else 0

    def phase_means(self) -> dict[str, float]:
        """Mean seconds per phase over the items rigged by this run (empty when none was)."""
        rigged = [item.timings_s for item in self.items if item.status == ItemStatus.DONE]
        if not rigged:
            return {}
        return {phase: sum(t.get(phase, 0.0) for t in rigged) / len(rigged) for phase in PHASES}

    def heads_per_minute(self) -> float:
        """Items rigged by this run per minute of wall time."""
        return 60.0 * self.count(ItemStatus.DONE) / self.wall_s if self.wall_s > 0 else 0.0

    def summary(self, max_failures: int = 20) -> str:
        """A few human lines: counts, throughput, where time went, and why items failed."""
        done, skipped = self.count(ItemStatus.DONE), self.count(ItemStatus.SKIPPED)
        failed, cancelled = self.count(ItemStatus.FAILED), self.count(ItemStatus.CANCELLED)
        parts = [f"{done} rigged", f"{skipped} skipped (already done)", f"{failed} failed"]
        if cancelled:
            parts.append(f"{cancelled} cancelled")
        lines = [
            f"facerig batch: {len(self.items)} inputs: {', '.join(parts)} in {self.wall_s:.1f} s"
            f" ({self.heads_per_minute():.1f} heads/min)"
        ]
        means = self.phase_means()
        if means:
            lines.append("  mean seconds per rigged head: " + ", ".join(f"{p} {means[p]:.3f}" for p in PHASES))
        for item in self.failed[:max_failures]:
            error = item.error or {}
            lines.append(f"  failed {item.relative}: {error.get('class')}: {error.get('message')}")
        if failed > max_failures:
            lines.append(f"  ... and {failed - max_failures} more failures (see the report)")
        if self.path:
            lines.append(f"  report: {self.path}")
        return "\n".join(lines)

    # ---------------------------------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "facerig-batch-report",
            "format_version": 1,
            "outdir": self.outdir,
            "model": self.model,
            "options": self.options,
            "started_at": self.started_at,
            "wall_s": round(self.wall_s, 3),
            "counts": {str(status): self.count(status) for status in ItemStatus},
            "heads_per_minute": round(self.heads_per_minute(), 3),
            "phase_means_s": {k: round(v, 6) for k, v in self.phase_means().items()},
            "items": [item.to_dict() for item in self.items],
        }

    def write(self, path: str | Path) -> Path:
        """Write the JSON report atomically and remember where; :class:`OutputError` when it cannot be written."""
        path = Path(path)
        try:
            write_bytes_atomic(path, (json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n").encode())
        except OSError as exc:
            raise OutputError(f"cannot write the batch report ({exc.strerror or exc})", path) from None
        self.path = str(path)
        return path
