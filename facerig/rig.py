"""A FACS blendshape rig and its `.facerig.npz` bundle.

A :class:`Rig` is the neutral :class:`~facerig.mesh.Mesh` plus one named per-vertex delta per shape, in the
mesh's own units and axes. Shapes are the vocabulary's FACS poses (``neutral`` excluded: it is the base mesh)
followed by its correctives. A corrective's delta is ``combined − Σ single deltas`` and its driver recipe
(the base shapes whose weights multiply to drive it) is kept in :attr:`Rig.corrective_recipes`.

The ``.facerig.npz`` bundle format is :mod:`facerig.exporters.bundle`'s (bytes in, bytes out, like every format);
a rig saves and loads itself through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facerig.errors import BundleError
from facerig.fileio import write_bytes_atomic
from facerig.mesh import Mesh
from facerig.timings import RigTimings
from facerig.version import __version__

if TYPE_CHECKING:
    from facerig.canonical.frame import CanonicalFrame
    from facerig.io._common import LoadLimits
    from facerig.vocabulary import Vocabulary

# The exporters (the bundle format among them) are imported on first use: they bring pxr, which takes seconds.


@dataclass(frozen=True, eq=False)
class Rig:
    """A neutral mesh and its named blendshape deltas.

    Attributes:
        neutral: the neutral mesh, as read (file units and axes).
        shape_names: S shape names; FACS poses first, then correctives.
        deltas: (S, V, 3) float32 per-vertex offsets from the neutral, same units and axes as ``neutral``.
        corrective_recipes: corrective name -> names of the base shapes that drive it (weight = product).
        metadata: JSON-serialisable facts: vocabulary, model id, canonical frame, facerig version; saved with
            the rig, so nothing that differs between two runs on the same head (such as timings) belongs here.
        timings: seconds per step of the run that made this rig (None for a loaded bundle); never saved.
    """

    neutral: Mesh
    shape_names: tuple[str, ...]
    deltas: np.ndarray
    corrective_recipes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    timings: RigTimings | None = None

    def __post_init__(self) -> None:
        deltas = np.ascontiguousarray(self.deltas, dtype=np.float32)
        deltas.setflags(write=False)
        object.__setattr__(self, "deltas", deltas)
        object.__setattr__(self, "shape_names", tuple(self.shape_names))
        recipes = {name: tuple(bases) for name, bases in self.corrective_recipes.items()}
        object.__setattr__(self, "corrective_recipes", recipes)
        if deltas.shape != (len(self.shape_names), self.neutral.n_vertices, 3):
            raise BundleError(
                f"deltas have shape {deltas.shape}, expected "
                f"({len(self.shape_names)}, {self.neutral.n_vertices}, 3)"
            )
        if len(set(self.shape_names)) != len(self.shape_names):
            raise BundleError("shape names are not unique")
        unknown = [n for n in recipes if n not in self.shape_names]
        if unknown:
            raise BundleError(f"corrective recipes name shapes the rig lacks: {unknown[:3]}")
        unknown_bases = sorted({b for bases in recipes.values() for b in bases if b not in self.shape_names})
        if unknown_bases:
            raise BundleError(f"corrective recipes are driven by shapes the rig lacks: {unknown_bases[:3]}")

    @classmethod
    def from_vocabulary(
        cls,
        neutral: Mesh,
        vocabulary: "Vocabulary",
        deltas: np.ndarray,
        *,
        method: str,
        frame: "CanonicalFrame",
        eyeballs_turned: int,
        timings: RigTimings | None = None,
        **facts: Any,
    ) -> "Rig":
        """A rig of ``vocabulary``'s shapes and correctives, with the metadata every rigging method records
        (facerig version, method, vocabulary id, canonical frame, eyeballs turned) followed by its own ``facts``.

        Args:
            deltas: (S, V, 3) in ``vocabulary.shape_names`` order, in the neutral's units and axes.
        """
        # Warnings for the user: a guessed orientation (facerig.canonical.frame.AxesChoice), then the method's own.
        warnings = [w for w in (frame.axes.warning if frame.axes is not None else None,) if w]
        warnings += list(facts.pop("warnings", ()))
        metadata = {
            "facerig_version": __version__,
            "method": method,
            "vocabulary_id": vocabulary.id,
            "canonical_frame": frame.to_dict(),
            "eyeballs_turned": eyeballs_turned,
            **facts,
            "warnings": warnings,
        }
        recipes = {corrective.name: corrective.bases for corrective in vocabulary.correctives}
        return cls(neutral, vocabulary.shape_names, deltas, recipes, metadata, timings)

    # ------------------------------------------------------------------ access
    @property
    def n_shapes(self) -> int:
        return len(self.shape_names)

    @property
    def base_shape_names(self) -> tuple[str, ...]:
        """Shapes that are not correctives."""
        return tuple(n for n in self.shape_names if n not in self.corrective_recipes)

    def index(self, name: str) -> int:
        try:
            return self.shape_names.index(name)
        except ValueError:
            raise KeyError(f"the rig has no shape {name!r}") from None

    def delta(self, name: str) -> np.ndarray:
        """(V, 3) offsets of one shape."""
        return self.deltas[self.index(name)]

    def evaluate(self, weights: dict[str, float]) -> np.ndarray:
        """(V, 3) posed vertices for shape weights, as a DCC evaluates the rig.

        Correctives not named in ``weights`` are driven by the product of their base weights, so
        ``evaluate({"JawDrop": 1, "LeftLipCornerPuller": 1})`` gives the network's combined pose.
        """
        posed = self.neutral.vertices.copy()
        for name in self.shape_names:
            if name in weights:
                w = float(weights[name])
            elif name in self.corrective_recipes:
                w = float(np.prod([weights.get(b, 0.0) for b in self.corrective_recipes[name]]))
            else:
                w = 0.0
            if w:
                posed += w * self.deltas[self.index(name)]
        return posed

    # ------------------------------------------------------------------ bundle IO
    def save(self, path: str | Path) -> Path:
        """Write the rig as a `.facerig.npz` bundle, atomically."""
        return write_bytes_atomic(Path(path), self.bundle_bytes())

    def bundle_bytes(self) -> bytes:
        """The `.facerig.npz` bundle's bytes: a pure function of the rig (equal rigs give equal bytes)."""
        from facerig.exporters.bundle import encode_bundle

        return encode_bundle(self.neutral, self.shape_names, self.deltas, self.corrective_recipes, self.metadata)

    @classmethod
    def load(cls, path: str | Path, limits: "LoadLimits | None" = None) -> "Rig":
        """Read a `.facerig.npz` bundle (:func:`facerig.exporters.bundle.decode_bundle`: untrusted input, limits
        checked before anything is unpacked); raise :class:`BundleError` naming the problem."""
        from facerig.exporters.bundle import decode_bundle

        contents = decode_bundle(path, limits)
        try:
            return cls(
                neutral=contents.neutral,
                shape_names=contents.shape_names,
                deltas=contents.deltas,
                corrective_recipes=contents.corrective_recipes,
                metadata=contents.metadata,
            )
        except BundleError as exc:  # shapes and recipes that do not make a rig
            raise BundleError(f"corrupt rig bundle: {exc.reason}", path) from None

    def export(self, path: str | Path, format: str | None = None, **options: Any) -> Path:
        """Write the rig in an interchange format (usd, usda, glb, gltf, fbx, npz); see facerig.exporters."""
        from facerig.exporters import export_rig

        return export_rig(self, path, format=format, **options)
