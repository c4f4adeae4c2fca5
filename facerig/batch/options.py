"""`BatchOptions`: everything a batch run can be told, typed, validated once, frozen."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from facerig.errors import ConfigError
from facerig.exporters import Naming
from facerig.io import LoadLimits
from facerig.rigging.rig_and_write import RigMethod
from facerig.units import parse_units



class Backend(StrEnum):
    """Where a batch's items run."""

    local = "local"  # worker processes on this machine
    ray = "ray"  # Ray tasks, on a local instance or a cluster


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (1-based, as farm task arrays number them): ``Shard.parse("2/3")``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 1 <= self.index <= self.count:
            raise ConfigError(f"invalid shard {self.index}/{self.count}: need 1 <= K <= N")

    @classmethod
    def parse(cls, text: str) -> "Shard":
        """'K/N' -> Shard(K, N); raises :class:`ConfigError` on anything else."""
        try:
            index, count = (int(part) for part in text.strip().split("/"))
        except ValueError:
            raise ConfigError(f"invalid shard {text!r}: use K/N, e.g. 2/8") from None
        return cls(index, count)

    def contains(self, shard_key: str) -> bool:
        """Whether the item with hex digest ``shard_key`` belongs to this shard.

        The digest is uniform, so ``int(key) mod N`` spreads items evenly, and it depends on the item alone,
        so every node computes the same partition whatever order it lists the files in.
        """
        return int(shard_key[:16], 16) % self.count == self.index - 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class BatchOptions:
    """How :func:`facerig.batch.run_batch` rigs a set of heads.

    Output-shaping fields (method, model, poses, formats, naming, up, front, units, select, mirror_average) enter
    the resume key: changing any of them redoes every item. The others (workers, device, limits, ...) only change
    how the work is done.
    """

    # -- what each item produces
    method: RigMethod = RigMethod.network  # how each head is rigged (facerig.rigging.rig_and_write.METHODS)
    model: Path | None = None  # packaged model folder; None: the model bundled with facerig
    poses: Path | None = None  # pose vocabulary JSON; None: the default 48 poses + 48 correctives
    formats: tuple[str, ...] = ()  # export formats written beside the .facerig.npz bundle (usd, glb, fbx, ...)
    naming: Naming = Naming.facs  # shape names in exported files
    up: str | None = None  # up axis of inputs that do not state one, e.g. "+Z"
    front: str | None = None  # axis the faces look along, e.g. "+Z"
    units: str | None = None  # length unit of the inputs (m, dm, cm, mm, in, ft), replacing the files' own
    select: str | None = None  # read only the meshes named like this (substring or glob): glTF, USD, FBX
    mirror_average: bool = False  # average with the mirror image's prediction (twice the network time)
    # -- which inputs
    include: tuple[str, ...] = ()  # glob patterns; when given, a file must match one (see discover.py)
    exclude: tuple[str, ...] = ()  # glob patterns; a file matching any is left out
    follow_symlinks: bool = False  # allow symlinks that lead outside the input roots
    shard: Shard | None = None  # only this shard's items
    # -- limits on one (untrusted) input
    max_vertices: int = LoadLimits.max_vertices
    max_file_mb: float = LoadLimits.max_file_bytes / 1024**2
    # -- execution
    backend: Backend = Backend.local
    workers: int = 1  # local worker processes (ray: tasks in flight are up to the cluster)
    device: str = "auto"  # auto, cpu, cuda or mps; CUDA devices are spread over workers
    threads_per_worker: int | None = None  # torch/BLAS threads per worker; None: cores // workers
    ray_address: str | None = None  # existing cluster ("auto", "ray://host:10001"); None: a local instance
    ray_cpus_per_task: float = 1.0
    ray_gpus_per_task: float | None = None  # None: 1 when the device may be CUDA and the cluster has GPUs
    max_retries: int = 2  # re-runs of an item whose worker process died (crash, out of memory, lost node)
    item_timeout_s: float = 1800.0  # an item running longer fails as "timed out" (its worker process is killed)
    resume: bool = True  # skip items the manifest says are finished with the same input, model and options
    fail_fast: bool = False  # stop at the first failed item (remaining items are reported "cancelled")
    cache_dir: Path | None = None  # keep operator caches here; None: a temporary folder per item
    # -- reporting
    report: Path | None = None  # JSON report path; None: OUTDIR/batch-report[.shardKofN].json
    progress: bool = True  # tqdm bar on a terminal, periodic log lines otherwise, on stderr
    progress_interval_s: float = 10.0  # seconds between log lines when stderr is not a terminal

    def __post_init__(self) -> None:
        from facerig.exporters import EXPORTERS

        unknown = [fmt for fmt in self.formats if fmt not in EXPORTERS]
        if unknown:
            raise ConfigError(f"unknown export format(s) {unknown}; formats: {', '.join(sorted(EXPORTERS))}")
        for name, kind in (("method", RigMethod), ("naming", Naming), ("backend", Backend)):
            value = getattr(self, name)
            if value not in tuple(kind):
                raise ConfigError(f"unknown {name} {value!r}; use {' or '.join(kind)}")
            object.__setattr__(self, name, kind(value))
        if not self.item_timeout_s > 0:
            raise ConfigError(f"item timeout must be positive, got {self.item_timeout_s}")
        if self.workers < 1:
            raise ConfigError(f"workers must be at least 1, got {self.workers}")
        if self.threads_per_worker is not None and self.threads_per_worker < 1:
            raise ConfigError(f"threads per worker must be at least 1, got {self.threads_per_worker}")
        if self.max_vertices < 1 or not 0 < self.max_file_mb < float("inf"):  # NaN fails too
            raise ConfigError(f"max vertices and max file size must be positive and finite, got {self.max_file_mb}")
        if self.max_retries < 0:
            raise ConfigError(f"max retries must be 0 or more, got {self.max_retries}")
        if self.units is not None:
            parse_units(self.units)
        if self.device.lower() not in ("auto", "cpu", "cuda", "mps"):
            raise ConfigError(f"unknown device {self.device!r}; use auto, cpu, cuda or mps")

    @property
    def limits(self) -> LoadLimits:
        return LoadLimits(max_file_bytes=int(self.max_file_mb * 1024**2), max_vertices=self.max_vertices)

    def output_fingerprint(self, model_id: str, vocabulary_id: str,
                           model_settings: Mapping[str, Any] | None = None) -> str:
        """SHA-256 over everything that changes what an item's output files contain.

        ``model_settings`` is :attr:`facerig.nn.model.PackagedModel.rig_settings`: what the rig reads from
        ``model.json`` beside the weights, which the model id (a hash of ``model.pt``) does not cover.
        """
        shaping = {
            "method": str(self.method),
            "model_id": model_id,
            "model_settings": dict(model_settings or {}),
            "mirror_average": self.mirror_average,
            "vocabulary_id": vocabulary_id,
            "formats": sorted(self.formats),
            "naming": str(self.naming),
            "up": self.up,
            "front": self.front,
        }
        # Only when set, so that the resume records written before these options existed stay valid.
        shaping.update({key: value for key, value in (("units", self.units), ("select", self.select)) if value})
        return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (paths as strings) for the report."""
        out = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            out[field.name] = str(value) if isinstance(value, (Path, Shard, StrEnum)) else value
        out["formats"] = list(self.formats)
        out["include"], out["exclude"] = list(self.include), list(self.exclude)
        return out
