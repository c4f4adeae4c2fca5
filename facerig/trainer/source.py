"""A rigged-head source: what every dataset builder reads, whatever artist made the heads.

A source is one topology (all its parts: skin, eyeballs, teeth, ...) in the builders' frame (centimetres,
+Y up, face along +Z, +X the character's left) with

- identities: ``head(options, kind, identity)`` gives a seeded identity's neutral positions;
- named FACS ground truth: ``action_deltas(head, spec)`` gives the vocabulary's 47 action deltas for one
  sample (the identity may change them, e.g. MakeHuman's ethnic expression sets), and ``labelled`` marks
  the shapes (actions, then correctives) the source truly has; the others are unlabelled, never zero-as-truth;
- per-vertex ``parts`` and ``regions`` (indices into :data:`PART_NAMES` and :data:`REGIONS`, ICT's names,
  so datasets of different sources share one manifest vocabulary) and the 68 Multi-PIE ``landmarks``.

:mod:`facerig.trainer.dataset` re-meshes, augments, annotates, splits and writes samples of any source the
same way. :class:`ICTSource` wraps ICT-FaceKit; :class:`facerig.trainer.makehuman.MakeHumanSource` MakeHuman.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facerig.anatomy.eyes import GAZE_ROTATIONS, axis_rotation
from facerig.geometry import fit_sphere
from facerig.trainer.ict import PARTS, REGIONS, ICTModel

if TYPE_CHECKING:
    from facerig.trainer.dataset import BuildOptions, SampleSpec

__all__ = ["ICTSource", "PART_NAMES", "REGIONS", "RiggedSource", "gaze_deltas", "labelled_shapes"]

PART_NAMES: tuple[str, ...] = tuple(name for name, *_ in PARTS)
_EYEBALLS = ("eyeball_left", "eyeball_right")


def labelled_shapes(action_labelled: dict[str, bool]) -> np.ndarray:
    """(S,) bool over the vocabulary's shapes: actions as given, a corrective when all its bases are."""
    from facerig.vocabulary import load_vocabulary

    vocabulary = load_vocabulary()
    labelled = [action_labelled[name] for name in vocabulary.action_names]
    labelled += [all(action_labelled[b] for b in c.bases) for c in vocabulary.correctives]
    return np.array(labelled, bool)


class RiggedSource(ABC):
    """One source topology with identities and FACS ground truth (see the module docstring).

    Attributes:
        name: recorded in every manifest entry ("ict", "makehuman").
        triangles: (F, 3) int64 source triangles (fan triangulation of its polygons).
        parts, regions: (V,) int64 indices into :data:`PART_NAMES` / :data:`REGIONS`.
        landmarks: (68,) int64 Multi-PIE landmark vertices.
        labelled: (S,) bool per vocabulary shape (actions, then correctives).
        licence_files: file name -> text written beside the dataset (terms that travel with the data).
        description: the manifest's ``source`` entry.
    """

    name: str
    triangles: np.ndarray
    parts: np.ndarray
    regions: np.ndarray
    landmarks: np.ndarray
    labelled: np.ndarray
    licence_files: dict[str, str]
    description: dict[str, Any]

    @property
    def n_vertices(self) -> int:
        return len(self.parts)

    @abstractmethod
    def head(self, options: "BuildOptions", kind: str, identity: int) -> np.ndarray:
        """(V, 3) float64 neutral of one seeded identity ("rigged" or "unrigged" kind), before stylisation."""

    @abstractmethod
    def action_deltas(self, head: np.ndarray, spec: "SampleSpec", options: "BuildOptions") -> np.ndarray:
        """(A, V, 3) float32 the sample's action deltas in the source frame (zero where unlabelled)."""


def gaze_deltas(head: np.ndarray, parts: np.ndarray, degrees: float) -> np.ndarray:
    """(A, V, 3) float32: each eyeball turned about its own centre for the EyesLook actions, zero elsewhere.

    Args:
        head: (V, 3) the sample's head in ICT topology and frame (its eyeballs sit where its identity puts them).
        parts: (V,) index into :data:`PART_NAMES` of each vertex.
        degrees: the full-look angle (:attr:`BuildOptions.gaze_degrees`).
    """
    from facerig.vocabulary import load_vocabulary

    actions = load_vocabulary().action_names
    deltas = np.zeros((len(actions), len(head), 3), np.float32)
    if degrees == 0:
        return deltas
    for eyeball in _EYEBALLS:  # ICT's frame has the canonical axes, so the rig's gaze convention applies as is
        vertices = np.flatnonzero(parts == PART_NAMES.index(eyeball))
        offsets = head[vertices] - fit_sphere(head[vertices])[0]
        for action, (axis, sign) in GAZE_ROTATIONS.items():
            turned = offsets @ axis_rotation(axis, sign * np.radians(degrees)).T
            deltas[actions.index(action), vertices] = turned - offsets
    return deltas


class ICTSource(RiggedSource):
    """ICT-FaceKit: linear identities w ~ N(0, σ), identity-independent expression deltas (ICT recipes),
    plus eyeball turns for the EyesLook actions (:func:`gaze_deltas`)."""

    name = "ict"

    def __init__(self, model: ICTModel) -> None:
        from facerig.vocabulary import load_vocabulary

        self.model = model
        vocabulary = load_vocabulary()
        recipes = vocabulary.ict_recipes()
        actions = vocabulary.action_names
        deltas = np.zeros((len(actions), model.n_vertices, 3), np.float32)
        for i, name in enumerate(actions):
            for shape in recipes[name] or ():
                deltas[i] += model.expression(shape)
        self.expression_deltas = deltas
        self.labelled = labelled_shapes({name: recipes[name] is not None for name in actions})
        self.triangles = model.triangles
        self.parts = model.part_of_vertex()
        self.regions = model.region_of_vertex()
        self.landmarks = model.landmarks
        self.licence_files = {"LICENSE-ICT-FaceKit.txt": model.licence} if model.licence else {}
        self.description = {"kind": "ICT-FaceKit FaceXModel", "name": Path(model.source).name, "licence": "MIT"}

    def head(self, options: "BuildOptions", kind: str, identity: int) -> np.ndarray:
        code, sigma = (1, options.identity_sigma) if kind == "rigged" else (2, options.unrigged_sigma)
        weights = np.random.default_rng([options.seed, code, identity]).normal(0.0, sigma, len(self.model.identity_deltas))
        return self.model.head(weights)

    def action_deltas(self, head: np.ndarray, spec: "SampleSpec", options: "BuildOptions") -> np.ndarray:
        return self.expression_deltas + gaze_deltas(head, self.parts, options.gaze_degrees)
