"""What the trainer sees of a head: the dataset's samples in the canonical frame, with pose-level ground truth.

The dataset builder (:mod:`facerig.trainer.dataset`) keeps each sample in its own (jittered) units and axes
and stores *shape* deltas: 47 actions, then 48 correctives as residuals (combined pose minus the sum of its
bases). The network sees canonical coordinates (:mod:`facerig.canonical.frame`, as at inference) and predicts
*poses*: a corrective's activation row has a 1 on each base, and its target is the combined pose. This
module does both conversions, so the trainer and the target sources only ever see :class:`Head`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from facerig.canonical.frame import canonical_frame
from facerig.errors import DatasetError
from facerig.mesh import Mesh


@dataclass(frozen=True, eq=False)
class Head:
    """One training head in the canonical frame (V vertices, F faces, P poses, A actions, L landmarks).

    Attributes:
        id: unique sample name (names DiskTargets folders).
        vertices: (V, 3) float32 canonical neutral positions.
        faces: (F, 3) int64 triangles.
        activations: (P, A) float32 FACS activation rows of the poses ``deltas`` holds.
        deltas: (P, V, 3) float32 ground-truth pose displacements, canonical units; None for an unrigged head.
        labelled: (P,) bool, True where ``deltas`` holds a 3D ground truth (ICT has no Corrugator, ...).
        landmarks: (L,) int64 landmark vertex indices (68 Multi-PIE points for ICT heads; may be empty).
        eyelid_pairs: (E, 2) int64 (upper, lower) indices into ``landmarks``.
    """

    id: str
    vertices: np.ndarray
    faces: np.ndarray
    activations: np.ndarray
    deltas: np.ndarray | None
    labelled: np.ndarray
    landmarks: np.ndarray
    eyelid_pairs: np.ndarray

    @property
    def rigged(self) -> bool:
        return self.deltas is not None


class TrainingHeads:
    """One split of a built dataset as canonical :class:`Head` objects (a map-style dataset).

    Attributes:
        root: the dataset folder; ``root/operators`` caches every head's operators across epochs and ranks.
        manifest: the builder's manifest (its ``seed`` and ``vocabulary_id`` go into the exported model).
        activations: (P, A) float32 activation rows of the dataset's shapes (P = 95: actions, then correctives).
    """

    def __init__(self, root: str | Path, split: str = "train") -> None:
        from facerig.trainer.dataset import HeadDataset
        from facerig.vocabulary import load_vocabulary

        self.root = Path(root)
        self._dataset = HeadDataset(self.root, split)
        self.manifest = self._dataset.manifest
        matrix, names = load_vocabulary().activations()  # rows: neutral, actions, correctives
        if tuple(self.manifest["shapes"]) != tuple(names[1:]):
            raise DatasetError("the dataset's shapes are not the pose vocabulary's; rebuild it", self.root)
        if not self._dataset.entries:
            raise DatasetError(f"split {split!r} has no samples", self.root)
        self.activations = matrix[1:]

    @property
    def operator_cache(self) -> Path:
        return self.root / "operators"

    def __len__(self) -> int:
        return len(self._dataset)

    def rigged(self) -> list[bool]:
        """Per sample, whether it has a 3D ground truth (from the manifest; no sample is read)."""
        return [entry["kind"] == "rigged" for entry in self._dataset.entries]

    def sources(self) -> list[str]:
        """Per sample, the rigged-head source it came from (manifest entries without one predate MakeHuman: ICT)."""
        return [entry.get("source", "ict") for entry in self._dataset.entries]

    def identities(self) -> list[tuple[int, int]]:
        """Per sample, its (identity, blend partner) numbers within its source (equal when not blended)."""
        return [(int(entry["identity"]), int(entry["partner"])) for entry in self._dataset.entries]

    def __getitem__(self, index: int) -> Head:
        return canonical_head(self._dataset[index], self.activations)


def weighted_indices(
    indices: list[int], sources: list[str], weights: Mapping[str, float], seed: Sequence[int]
) -> list[int]:
    """``indices`` with each source's heads repeated by its weight (see ``DataConfig.source_weights``).

    A weight w gives every head of the source floor(w) slots plus one more for a seeded round(frac(w)·n) of
    them; sources without a weight keep one slot per head. Pure function of its arguments.
    """
    if not weights:
        return list(indices)
    out: list[int] = []
    for code, name in enumerate(sorted({sources[i] for i in indices})):
        own = [i for i in indices if sources[i] == name]
        weight = float(weights.get(name, 1.0))
        whole, fraction = int(weight), weight - int(weight)
        extra = np.random.default_rng([*seed, 11, code]).permutation(own)[: round(fraction * len(own))]
        out += own * whole + sorted(int(i) for i in extra)
    return sorted(out)


def identity_subset(
    indices: list[int], sources: list[str], identities: list[tuple[int, int]], limits: Mapping[str, float],
    seed: Sequence[int],
) -> list[int]:
    """``indices`` keeping, for each source in ``limits``, the samples of a seeded choice of that many identities.

    A blended sample stays only when both its identity and its partner were chosen, so ``limits = {"makehuman": 1}``
    trains on exactly one MakeHuman head shape (the "one studio rig" case). Sources not in ``limits`` keep all.
    """
    keep: set[int] = set()
    for code, name in enumerate(sorted({sources[i] for i in indices})):
        own = [i for i in indices if sources[i] == name]
        if name not in limits:
            keep.update(own)
            continue
        available = sorted({identities[i][0] for i in own})
        chosen = set(np.random.default_rng([*seed, 13, code]).permutation(available)[: int(limits[name])].tolist())
        keep.update(i for i in own if identities[i][0] in chosen and identities[i][1] in chosen)
    return [i for i in indices if i in keep]


def canonical_head(item: dict[str, Any], activations: np.ndarray) -> Head:
    """A :class:`facerig.trainer.dataset.HeadDataset` item in the canonical frame, with pose deltas.

    Args:
        item: the dataset's dict (vertices, triangles, optional deltas (S, V, 3), labelled, landmarks, ...).
        activations: (S, A) activation rows of the S shapes: one-hot actions, then multi-hot correctives.
    """
    vertices = item["vertices"].numpy().astype(np.float64)
    triangles = item["triangles"].numpy()
    frame = canonical_frame(Mesh.from_triangles(vertices, triangles), up="+Y", front="+Z")  # samples keep ICT's axes
    deltas = None
    if "deltas" in item:
        shapes = item["deltas"].numpy()  # (S, V, 3) in the sample's units and axes
        n_actions = activations.shape[1]
        poses = shapes.copy()
        # a corrective's pose is its residual plus the sum of its bases
        poses[n_actions:] += np.einsum("ra,avk->rvk", activations[n_actions:], shapes[:n_actions])
        deltas = (frame.scale * poses @ frame.rotation.T).astype(np.float32)
    return Head(
        id=str(item["name"]),
        vertices=frame.to_canonical(vertices).astype(np.float32),
        faces=triangles.astype(np.int64),
        activations=activations,
        deltas=deltas,
        labelled=item["labelled"].numpy().astype(bool) & (deltas is not None),
        landmarks=item["landmarks"].numpy().astype(np.int64),
        eyelid_pairs=item["eyelid_pairs"].numpy().astype(np.int64),
    )
