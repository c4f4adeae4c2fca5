"""`RigTimings`: seconds per step of rigging one head, a typed record instead of a dict of string keys.

Timings describe a run, not a rig: they live on :attr:`facerig.rig.Rig.timings` and in batch reports and
logs, never inside an output file, so two runs on the same head write byte-identical files.
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator


@dataclass(frozen=True)
class RigTimings:
    """Wall-clock seconds per step; a step a method does not have stays 0.

    Attributes:
        load: reading the mesh file.
        model_load: loading the packaged model (0 when it was loaded already).
        proxy: building the proxy a dense head is rigged on (:mod:`facerig.rigging.proxy`; 0 when rigged directly).
        canonicalize: welding and the canonical frame.
        operators: the DiffusionNet operators (cached by content hash).
        network: the network's prediction and its offset floor.
        eyes: turning the eyeballs and binding the eye shells.
        anatomy: rigid teeth and jaw, motion kept on the face, the head check (:mod:`facerig.anatomy.constrain`).
        assemble: the shapes and correctives, back in the input's units and axes.
        export: writing the output files.
        total: from the first step to the last one timed.
    """

    load: float = 0.0
    model_load: float = 0.0
    proxy: float = 0.0
    canonicalize: float = 0.0
    operators: float = 0.0
    network: float = 0.0
    eyes: float = 0.0
    anatomy: float = 0.0
    assemble: float = 0.0
    export: float = 0.0
    total: float = 0.0

    @classmethod
    def phases(cls) -> tuple[str, ...]:
        """The step names, in the order a head goes through them (``total`` last)."""
        return tuple(field.name for field in dataclasses.fields(cls))

    def to_dict(self) -> dict[str, float]:
        """{step: seconds rounded to the microsecond}, in :meth:`phases` order."""
        return {name: round(getattr(self, name), 6) for name in self.phases()}


class Stopwatch:
    """Times the steps of one run into a :class:`RigTimings`, so a pipeline says which step it is in, not how
    to read a clock: ``with watch("network"): ...``, then ``watch.timings()``. A step timed twice adds up."""

    def __init__(self) -> None:
        self._start = time.perf_counter()
        self._seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        if step not in RigTimings.phases() or step == "total":
            raise ValueError(f"not a step of RigTimings: {step!r}")
        tick = time.perf_counter()
        try:
            yield
        finally:
            self._seconds[step] = self._seconds.get(step, 0.0) + time.perf_counter() - tick

    def timings(self) -> RigTimings:
        """The steps timed so far, and ``total`` from the stopwatch's creation to now."""
        return RigTimings(**self._seconds, total=time.perf_counter() - self._start)
