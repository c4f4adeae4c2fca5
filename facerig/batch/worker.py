"""One batch worker: the model loaded once, then one item at a time rigged and written under OUTDIR.

Both backends run :meth:`Worker.rig` (the local backend in its worker processes, the Ray backend in its tasks),
so an item gives the same outputs and the same result whatever ran it. Writing the resume record is left to
the coordinating process (see :mod:`facerig.batch.manifest`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from facerig.batch.discover import InputItem
from facerig.batch.options import BatchOptions
from facerig.batch.report import ItemResult, ItemStatus
from facerig.errors import BatchError
from facerig.fileio import remove_stale_temps
from facerig.nn.model import PackagedModel, default_model_path, select_device
from facerig.rigging.rig_and_write import RigOptions, output_paths, planned_files, rig_and_write, uses_model
from facerig.vocabulary import Vocabulary, load_vocabulary


class WorkerLostError(BatchError):
    """The process rigging an item died (a crash in native code, out of memory, a lost node) too often."""


class ItemTimeoutError(BatchError):
    """An item ran past the batch's per-item timeout and its worker was stopped."""


# Seconds a worker may take to start (import torch, load the model) before the item it was handed counts against
# its timeout anyway: a worker that hangs while starting must not hang the batch.
START_GRACE_S = 300.0


def item_deadline(began: float, started: float | None, timeout_s: float) -> float:
    """When an item still running fails as timed out (both backends).

    ``started``: when its worker started the item (None: not yet); the timeout runs from then, so a worker's
    start-up is not the item's time. ``began``: when the item was handed to a worker (local backend: submitted
    to the pool; Ray: its task began on a Ray worker); a worker that has not started it :data:`START_GRACE_S`
    after that counts as hung all the same. Times in seconds of one monotonic clock.
    """
    return (started if started is not None else began + START_GRACE_S) + timeout_s


def timed_out_result(item: InputItem, timeout_s: float) -> ItemResult:
    """The failed result of an item stopped at its deadline."""
    error = ItemTimeoutError(f"timed out: still running after {timeout_s:g} s (--item-timeout)", item.path)
    return ItemResult.failure(str(item.path), str(item.relative), item.content_hash, error)


def worker_device(requested: str, index: int) -> torch.device:
    """The device worker number ``index`` runs on: CUDA devices are dealt round-robin over the workers.

    Args:
        requested: "auto" (CUDA, then MPS, then CPU), "cuda", "mps" or "cpu".
        index: 0-based worker number.
    """
    device = select_device(requested)
    if device.type == "cuda":
        return torch.device("cuda", index % torch.cuda.device_count())
    return device


def cpu_count() -> int:
    """CPU cores this process may run on (the affinity mask, which container and farm limits set)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass
class Worker:
    """A loaded model (for the network method) and vocabulary, and the options every item is rigged with."""

    options: BatchOptions
    outdir: Path
    model: PackagedModel | None
    vocabulary: Vocabulary
    label: str

    @classmethod
    def start(cls, options: BatchOptions, outdir: Path, device: torch.device, threads: int | None) -> "Worker":
        """Load the model on ``device``; set this process's torch threads to ``threads`` (None: leave them)."""
        if threads is not None:
            torch.set_num_threads(threads)
        model = None
        if uses_model(options.method):
            model = PackagedModel.load(options.model or default_model_path(), device=device)
        label = f"{socket.gethostname()}:{os.getpid()} {device}"
        return cls(options, Path(outdir), model, load_vocabulary(options.poses), label)

    def rig(self, item: InputItem) -> ItemResult:
        """Rig one input and write its outputs; any failure is caught and returned as a failed result."""
        try:
            outputs = [path for _, path in output_paths(self.outdir, item.output_stem, self.options.formats)]
            # Under the OUTDIR lock only this run writes these outputs: what temporaries exist are a killed run's.
            remove_stale_temps(planned_files(outputs))
            with _operator_cache(self.options.cache_dir) as cache_dir:
                rig_options = RigOptions(up=self.options.up, front=self.options.front, units=self.options.units,
                                         select=self.options.select, mirror_average=self.options.mirror_average,
                                         cache_dir=cache_dir, limits=self.options.limits)
                result = rig_and_write(item.path, self.outdir, self.options.formats, self.options.method,
                                       self.options.naming, rig_options, stem=item.output_stem, model=self.model,
                                       vocabulary=self.vocabulary)
        except Exception as exc:  # one bad input must never stop the batch: record it and go on
            return ItemResult.failure(str(item.path), str(item.relative), item.content_hash, exc, worker=self.label)
        return ItemResult(
            input=str(item.path),
            relative=str(item.relative),
            status=ItemStatus.DONE,
            content_hash=item.content_hash,
            vertices=result.rig.neutral.n_vertices,
            outputs=[path.relative_to(self.outdir).as_posix() for path in result.outputs],
            timings_s=result.timings.to_dict(),
            worker=self.label,
        )


@contextlib.contextmanager
def _operator_cache(cache_dir: Path | None) -> Iterator[Path]:
    """The operator cache folder for one item: the given one, or a temporary one removed afterwards.

    A batch sees each head once, so keeping every head's operators (megabytes each) would only fill the disk.
    """
    if cache_dir is not None:
        yield Path(cache_dir)
        return
    with tempfile.TemporaryDirectory(prefix="facerig-batch-ops-") as folder:
        yield Path(folder)
