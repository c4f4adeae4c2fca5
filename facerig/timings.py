"""`RigTimings`: seconds per step of rigging one head, a typed record instead of a dict of string keys.

Timings describe a run, not a rig: they live on :attr:`facerig.rig.Rig.timings` and in batch reports and
logs, never inside an output file, so two runs on the same head write byte-identical files.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


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
