"""One batch worker: the model loaded once, then one item at a time rigged and written under OUTDIR.

Both backends run :meth:`Worker.rig` (the local backend in its worker processes, the Ray backend in its tasks),
so an item gives the same outputs and the same result whatever ran it. Writing the resume record is left to
the coordinating process (see :mod:`facerig.batch.manifest`).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from facerig.batch.discover import InputItem
from facerig.batch.options import BatchOptions
from facerig.batch.report import ItemResult, ItemStatus
from facerig.errors import BatchError
from facerig.exporters import EXPORTERS, export_rig
from facerig.exporters.common import SIDECAR_SUFFIX
from facerig.io import load_mesh
from facerig.model import PackagedModel, default_model_path, select_device
from facerig.pipeline import rig_mesh
from facerig.rig import BUNDLE_SUFFIX
from facerig.vocabulary import Vocabulary, load_vocabulary

# The temporary names facerig.fileio.atomic_path gives: ".<final name>.<mkstemp's 8 random chars>.tmp".
_TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.[A-Za-z0-9_]{8}\.tmp$")
_RIG_PHASES = ("canonicalize", "operators", "network", "assemble")


class WorkerLostError(BatchError):
    """The process rigging an item died (a crash in native code, out of memory, a lost node) too often."""


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
    """A loaded model and vocabulary, and the options every item is rigged with."""

    options: BatchOptions
    outdir: Path
    model: PackagedModel
    vocabulary: Vocabulary
    label: str

    @classmethod
    def start(cls, options: BatchOptions, outdir: Path, device: torch.device, threads: int | None) -> "Worker":
        """Load the model on ``device``; set this process's torch threads to ``threads`` (None: leave them)."""
        if threads is not None:
            torch.set_num_threads(threads)
        model = PackagedModel.load(options.model or default_model_path(), device=device)
        label = f"{socket.gethostname()}:{os.getpid()} {device}"
        return cls(options, Path(outdir), model, load_vocabulary(options.poses), label)

    def output_names(self, item: InputItem) -> list[tuple[str, str]]:
        """(format, suffix) of every main output, the bundle first."""
        names = [("npz", BUNDLE_SUFFIX)]
        names += [(fmt, EXPORTERS[fmt].suffixes[0]) for fmt in self.options.formats if fmt != "npz"]
        return names

    def rig(self, item: InputItem) -> ItemResult:
        """Rig one input and write its outputs; any failure is caught and returned as a failed result."""
        start = time.perf_counter()
        timings: dict[str, float] = {}
        vertices = None
        try:
            targets = [(fmt, self._output_path(item, suffix)) for fmt, suffix in self.output_names(item)]
            _remove_stale_temps([path for _, path in targets])

            tick = time.perf_counter()
            mesh = load_mesh(item.path, self.options.limits, up=self.options.up, units=self.options.units,
                             select=self.options.select)
            vertices = mesh.n_vertices
            timings["load"] = time.perf_counter() - tick

            with _operator_cache(self.options.cache_dir) as cache_dir:
                rig = rig_mesh(
                    mesh, self.model, vocabulary=self.vocabulary, up=self.options.up, front=self.options.front,
                    cache_dir=cache_dir, mirror_average=self.options.mirror_average,
                )
            timings.update({phase: rig.metadata["timings_s"][phase] for phase in _RIG_PHASES})

            tick = time.perf_counter()
            for fmt, path in targets:
                if fmt == "npz":
                    rig.save(path)
                else:
                    export_rig(rig, path, format=fmt, naming=self.options.naming)
            timings["export"] = time.perf_counter() - tick
            timings["total"] = time.perf_counter() - start
        except Exception as exc:  # one bad input must never stop the batch: record it and go on
            return ItemResult.failure(
                str(item.path), str(item.relative), item.content_hash, exc, vertices=vertices, worker=self.label
            )
        return ItemResult(
            input=str(item.path),
            relative=str(item.relative),
            status=ItemStatus.DONE,
            content_hash=item.content_hash,
            vertices=vertices,
            outputs=[path.relative_to(self.outdir).as_posix() for _, path in targets],
            timings_s={k: round(v, 6) for k, v in timings.items()},
            worker=self.label,
        )

    def _output_path(self, item: InputItem, suffix: str) -> Path:
        """The output file for ``suffix``, its folder created, refused if it resolves outside OUTDIR."""
        path = item.output_path(self.outdir, suffix)
        path.parent.mkdir(parents=True, exist_ok=True)
        # A folder under OUTDIR may be a symlink planted by someone else; writing through it would escape.
        if not path.parent.resolve().is_relative_to(self.outdir.resolve()) or path.name in ("", ".", ".."):
            raise BatchError(f"output {path} would be written outside the output folder {self.outdir}", item.path)
        return path


def _remove_stale_temps(targets: list[Path]) -> None:
    """Delete temporary files a killed run left for these outputs (and their sidecar / .bin side files).

    Only names made by atomic_path for exactly these outputs match, so other items' files, even ones being
    written right now by another worker, are never touched.
    """
    wanted: set[str] = set()
    for path in targets:
        stem = path.name[: -len(path.suffix)] if path.suffix else path.name
        wanted |= {path.name, path.name + SIDECAR_SUFFIX, stem + ".bin"}
    folder = targets[0].parent
    for entry in os.scandir(folder):
        match = _TEMP_NAME.match(entry.name)
        if match and match["target"] in wanted and entry.is_file(follow_symlinks=False):
            os.unlink(entry.path)


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
