"""Batch progress on stderr: a tqdm bar (items/s, ETA) on a terminal, periodic plain lines in farm logs."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from facerig.batch.report import ItemResult, ItemStatus


class Progress:
    """Counts finished items; failures are always printed as they happen.

    Args:
        total: items to run.
        enabled: print anything at all.
        interval_s: seconds between plain lines when ``stream`` is not a terminal.
        stream: where to print (stderr by default).
    """

    def __init__(self, total: int, enabled: bool = True, interval_s: float = 10.0, stream: TextIO | None = None):
        self.total = total
        self.enabled = enabled
        self.interval_s = interval_s
        self.stream = stream or sys.stderr
        self.done = 0
        self.failed = 0
        self.start = time.monotonic()
        self._last_line = self.start
        self._bar = None
        self._closed = False
        if enabled and total and self.stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="head", file=self.stream, dynamic_ncols=True, desc="rigging")

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def advance(self, result: ItemResult) -> None:
        self.done += 1
        if result.status == ItemStatus.FAILED:
            self.failed += 1
            error = result.error or {}
            self._print(f"failed {result.relative}: {error.get('class')}: {error.get('message')}")
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(failed=self.failed, refresh=False)
        elif time.monotonic() - self._last_line >= self.interval_s:
            self._print(self.line())

    def line(self) -> str:
        """'12/40 heads (1 failed), 0.84 heads/s, ETA 0:00:33'."""
        elapsed = time.monotonic() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        eta_text = time.strftime("%H:%M:%S", time.gmtime(eta)) if eta == eta else "?"
        return f"{self.done}/{self.total} heads ({self.failed} failed), {rate:.2f} heads/s, ETA {eta_text}"

    def close(self) -> None:
        """Close the bar, or print the final plain line; once."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.enabled and self.total:
            self._print(self.line())

    def _print(self, text: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            self._last_line = time.monotonic()
            print(f"[facerig batch] {text}", file=self.stream, flush=True)
