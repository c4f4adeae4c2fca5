"""Training sets: plan, synthesise, re-mesh, annotate and write heads of any rigged-head source; read them back.

Every source is a :class:`facerig.trainer.source.RiggedSource` (one topology with identities, named FACS
deltas and unlabelled poses marked, parts, regions and landmarks): ICT-FaceKit (``facerig data ict``,
described below) and MakeHuman (``facerig data makehuman``, :mod:`facerig.trainer.makehuman`: sampled
identities wearing MakeHuman's expression units, 23 labelled actions, samples named ``mh_*``). Both go through
the same planning, re-meshing, augmentation, annotation, split and writing below; each manifest entry
records its ``source``. :func:`merge_datasets` (``facerig data merge``) lists several datasets' samples in
one manifest to train on them together.

What an ICT build makes (``facerig data ict SOURCE -o DATASET``):

- **Rigged heads**: ``--rigged N`` identities, each neutral + Σ wᵢ identity deltaᵢ with w ~ N(0, σ). Their
  ground truth per FACS action is the sum of its ICT expression deltas (:meth:`Vocabulary.ict_recipes`);
  in the linear ICT model expression deltas do not depend on the identity. Poses without an ICT
  counterpart (Corrugator, FlatPucker) are *unlabelled* (``labelled`` False, deltas zero but
  meaningless). A corrective's ground truth is ``combined − Σ singles``; ICT's combined pose is the plain
  sum of its bases' deltas, so **every labelled corrective target is exactly zero**. That is a true fact of
  this data, kept as is: the network learns "no correction" from ICT, and real correctives must come
  from rigs that have them. A corrective is labelled when all its bases are.
  ICT's eye-look shapes move only the lids (the kit turns its eyeballs with joints), so the four EyesLook
  targets also turn each eyeball about its own fitted centre by ``gaze_degrees`` (:func:`gaze_deltas`).
- **Unrigged heads** (stage 1, no 3D ground truth): identities far outside the rigged range (w ~ N(0, σᵤ),
  σᵤ ≫ σ), stylised by smooth spatial warps: regional non-uniform scaling around the eyes, nose, mouth,
  chin and brow, a global anisotropic scale and random smooth bumps. One warp field moves every
  component, so eyeballs stay in their sockets. Stored without deltas.
- **Splits by identity** (seeded): val/test identities never appear in training, not even as a blend
  partner. Training identities are multiplied by head interpolation (seed appendix D): sample 0 of an
  identity is the head itself, samples 1…factor−1 blend it linearly with another training identity of
  the same kind (source topology, before re-meshing). Val and test heads are used once each, as they are.
- **Topology variety**: every sample, in every split, is re-meshed (:mod:`facerig.geometry.remesh`) with a
  seeded random vertex budget (log-uniform in [min, max] for the whole head), random density, random
  relaxation and, for some samples, quads. Ground truth and annotations are carried to the new vertices by
  barycentric projection onto the source surface. No sample keeps the source topology.
- **Augmentations** (training samples, ``augment_fraction`` of them): a random neck cut, dropped inner
  components (eyeballs, eye shells, lashes, teeth, gums and tongue, mouth socket, eye sockets) or the back
  of the head, random re-meshing density, and a rotation (≤ 10°), scale (0.5–2×, sometimes a unit change
  to mm, m or inches) and translation jitter applied to vertices and deltas alike.

On disk::

    DATASET/manifest.json          format, builder version, seed, options, vocabulary id, pose names,
                                   regions, parts, eyelid pairs, counts, splits, one entry per sample
    DATASET/LICENSE-ICT-FaceKit.txt the kit's MIT licence (its terms require it to travel with the data;
                                   a MakeHuman build writes LICENSE-MakeHuman-assets.md, CC0)
    DATASET/samples/<name>.npz     one compressed archive per sample (no pickles):

        vertices              (V, 3) float32   neutral, in the sample's units (``meters_per_unit``)
        face_vertex_counts    (P,) int32       3 or 4 per polygon
        face_vertex_indices   (M,) int32       polygon corners; fan triangulation = :func:`sample_triangles`
        deltas                (S, V, 3) float16 per shape of ``manifest["shapes"]`` (47 actions, then 48
                                               correctives), same units and axes as ``vertices``; rigged only
        labelled              (S,) bool        True where ``deltas`` is a 3D ground truth; all False if unrigged
        regions               (V,) int8        index into ``manifest["regions"]``
        parts                 (V,) int8        index into ``manifest["parts"]`` (ICT's part names for every source)
        landmarks             (68,) int32      Multi-PIE landmarks: nearest vertex on the landmark's component
        landmark_triangles    (68,) int32      exact landmark points: triangle of :func:`sample_triangles` ...
        landmark_barycentrics (68, 3) float32  ... and barycentric weights there
        eyelid_pairs          (4, 2) int32     (upper, lower) indices into ``landmarks`` (:data:`EYELID_PAIRS`)
        source_vertices       (V, 3) int32     source triangle corners (ICT or cropped MakeHuman topology) ...
        source_barycentrics   (V, 3) float32   ... and the weights: the transfer used for the ground truth
        transform             (4, 4) float64   source frame (cm) -> sample frame: x' = s·R·x + t (deltas: s·R·d)
        meters_per_unit       () float64       0.01 for cm, 0.001 for mm, ...

ICT's own frame is kept: +Y up, the face looks along +Z, +X is the character's left (the trainer
canonicalises). Every sample is written atomically; ``manifest.json`` is written last, so a dataset
without a manifest is an unfinished build.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from facerig.eval.datasets import BUILDER_VERSION, FORMAT, load_sample, read_manifest, sample_triangles
from facerig.errors import DatasetError
from facerig.anatomy.eyes import GAZE_DEGREES
from facerig.fileio import atomic_path, write_bytes_atomic
from facerig.geometry.remesh import RemeshOptions, SurfaceIndex, connected_pieces, remesh
from facerig.trainer.ict import REGIONS, ICTModel, load_ict
from facerig.trainer.source import PART_NAMES, ICTSource, RiggedSource, gaze_deltas

__all__ = [
    "EYELID_PAIRS",
    "BuildContext",
    "BuildOptions",
    "HeadDataset",
    "SampleSpec",
    "build_dataset",
    "check_outdir",
    "build_ict_dataset",
    "build_sample",
    "gaze_deltas",
    "head_geometry",
    "make_context",
    "merge_datasets",
    "plan_samples",
    "stylise",
]

# (upper, lower) lid landmark pairs in 0-based Multi-PIE order. 36–41 is the character's right eye in ICT
# (negative x), 42–47 the left: right 37/41, 38/40, then left 43/47, 44/46.
EYELID_PAIRS = np.array([[37, 41], [38, 40], [43, 47], [44, 46]], np.int32)
EYELID_SIDES = ("right", "right", "left", "left")
# Landmark groups (Multi-PIE) used as centres of the unrigged stylisation.
_EYE_R, _EYE_L = range(36, 42), range(42, 48)
_NOSE_TIP, _CHIN, _BROW_MID = 30, 8, 27
_MOUTH = range(48, 68)
# Components an augmentation may drop, with their probability.
_DROPPABLE = (
    (("eyeball_left", "eyeball_right"), 0.2),
    (("lacrimal_left", "lacrimal_right", "eye_blend_left", "eye_blend_right", "eye_occlusion_left",
      "eye_occlusion_right"), 0.25),
    (("eyelashes_left", "eyelashes_right"), 0.25),
    (("teeth",), 0.2),
    (("gums_tongue",), 0.2),
    (("mouth_socket",), 0.1),
    (("eye_socket_left", "eye_socket_right"), 0.1),
    (("head_neck",), 0.1),
)  # fmt: skip
_UNITS = ((10.0, 0.001), (0.01, 1.0), (1 / 2.54, 0.0254))  # (scale from cm, meters_per_unit): mm, m, inch
_MIN_FRAGMENT = 12  # pieces a cut leaves with fewer source vertices are dropped


# ---------------------------------------------------------------------------------------------- options
@dataclass(frozen=True)
class BuildOptions:
    """Everything that decides a build; written into the manifest."""

    rigged: int = 161  # rigged identities (the paper's count)
    unrigged: int = 175  # unrigged (stylised) identities (the paper's count)
    factor_rigged: int = 25  # training samples per rigged training identity (seed appendix D)
    factor_unrigged: int = 50  # training samples per unrigged training identity
    seed: int = 0
    val_fraction: float = 0.05  # of identities, per kind
    test_fraction: float = 0.15  # of identities, per kind (the paper: 24 of 161 rigged)
    min_vertices: int = 1500  # re-meshing budget for the whole head, drawn log-uniformly
    max_vertices: int = 6000
    quad_fraction: float = 0.5  # samples written quad-dominant
    augment_fraction: float = 0.5  # training samples that get crop/drop/jitter augmentations
    identity_sigma: float = 1.0  # std of rigged identity weights (ICT modes are scaled for N(0, 1))
    unrigged_sigma: float = 2.5  # std of unrigged identity weights: far outside the rigged range
    # ICT's eye-look shapes move only the lids (the kit turns the eyeballs with joints), so the EyesLook ground
    # truth also turns each eyeball about its centre by this angle. ICT states no range; 25 degrees is our choice,
    # inside the usual full-look range of facial rigs. 0 keeps ICT's still eyeballs.
    gaze_degrees: float = GAZE_DEGREES

    def validate(self) -> None:
        """Raise :class:`DatasetError` for values no build can honour."""
        checks = [
            (self.rigged >= 0 and self.unrigged >= 0, "identity counts must be >= 0"),
            (self.rigged + self.unrigged > 0, "nothing to build: --rigged and --unrigged are both 0"),
            (self.factor_rigged >= 1 and self.factor_unrigged >= 1, "interpolation factors must be >= 1"),
            (0 <= self.val_fraction and 0 <= self.test_fraction and self.val_fraction + self.test_fraction < 1,
             "val and test fractions must be >= 0 and sum to less than 1"),
            (100 <= self.min_vertices <= self.max_vertices, "need 100 <= min_vertices <= max_vertices"),
            (0 <= self.quad_fraction <= 1 and 0 <= self.augment_fraction <= 1, "fractions must be in [0, 1]"),
            (self.identity_sigma > 0 and self.unrigged_sigma > 0, "identity sigmas must be > 0"),
            (0 <= self.gaze_degrees < 90, "gaze_degrees must be in [0, 90)"),
        ]  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise DatasetError(message)


@dataclass(frozen=True)
class SampleSpec:
    """One sample to build: which identities, blended how, into which split."""

    name: str
    kind: str  # "rigged" or "unrigged"
    index: int  # position among the samples of its kind (seeds its randomness)
    split: str  # "train", "val" or "test"
    identity: int  # base identity (of its kind)
    partner: int  # blend partner (== identity when not blended)
    alpha: float  # head = (1 − alpha)·identity + alpha·partner
    augment: bool


# ---------------------------------------------------------------------------------------------- planning
def _split_identities(n: int, options: BuildOptions, kind_code: int) -> dict[str, list[int]]:
    order = np.random.default_rng([options.seed, 3, kind_code]).permutation(n).tolist()
    n_test = round(n * options.test_fraction)
    n_val = round(n * options.val_fraction)
    if n >= 3:  # every split has at least one identity when there are enough to go round
        n_test = max(n_test, 1) if options.test_fraction > 0 else 0
        n_val = max(n_val, 1) if options.val_fraction > 0 else 0
    n_test = min(n_test, max(n - 1, 0))
    n_val = min(n_val, max(n - 1 - n_test, 0))
    return {
        "test": sorted(order[:n_test]),
        "val": sorted(order[n_test : n_test + n_val]),
        "train": sorted(order[n_test + n_val :]),
    }


def plan_samples(
    options: BuildOptions, prefix: str = ""
) -> tuple[list[SampleSpec], dict[str, dict[str, list[int]]]]:
    """Every sample of a build, in a fixed order, and the identity splits per kind (pure function of options).

    ``prefix`` starts every sample name, so datasets of different sources can be trained together.
    """
    specs: list[SampleSpec] = []
    splits: dict[str, dict[str, list[int]]] = {}
    for kind_code, (kind, n, factor) in enumerate(
        (("rigged", options.rigged, options.factor_rigged), ("unrigged", options.unrigged, options.factor_unrigged))
    ):
        if n == 0:
            continue
        split = _split_identities(n, options, kind_code)
        splits[kind] = split
        rng = np.random.default_rng([options.seed, 4, kind_code])
        index = 0
        for split_name in ("train", "val", "test"):
            for identity in split[split_name]:
                copies = factor if split_name == "train" else 1
                others = [i for i in split["train"] if i != identity]
                for copy in range(copies):
                    partner, alpha = identity, 0.0
                    if copy > 0 and others:
                        partner, alpha = int(rng.choice(others)), float(rng.uniform(0.0, 1.0))
                    augment = split_name == "train" and bool(rng.uniform() < options.augment_fraction)
                    name = f"{prefix}{kind}_{index:05d}"
                    specs.append(SampleSpec(name, kind, index, split_name, identity, partner, alpha, augment))
                    index += 1
    return specs, splits


# ---------------------------------------------------------------------------------------------- synthesis
def _bump(x: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    return np.exp(-((x - centre) ** 2).sum(1) / (2.0 * radius**2))[:, None]


def stylise(vertices: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A cartoon-like variant of a head: (V, 3) -> (V, 3), one smooth warp for every component.

    Regional scalings (s − 1)·(x − c)·g(x) with a Gaussian g stay fold-free while |s − 1| < 0.6 (their
    Jacobian is bounded by 1.6·|s − 1|), and each random bump's amplitude is under 0.35 of its radius.
    """
    x = np.asarray(vertices, np.float64).copy()
    size = float(np.ptp(x, axis=0).max())
    centre = x.mean(axis=0)
    x = centre + (x - centre) * np.exp(rng.uniform(-0.15, 0.15, 3))
    lm = x[landmarks]
    # Both eyes get the same scale and radius: stylised, not lopsided.
    eye_scale, eye_radius = rng.uniform(0.8, 1.45, 3), rng.uniform(0.08, 0.14)
    regions = [  # (centre, per-axis scale, radius as a fraction of the head size)
        (lm[list(_EYE_R)].mean(0), eye_scale, eye_radius),
        (lm[list(_EYE_L)].mean(0), eye_scale, eye_radius),
        (lm[_NOSE_TIP], rng.uniform(0.75, 1.45, 3), rng.uniform(0.08, 0.16)),
        (lm[list(_MOUTH)].mean(0), rng.uniform(0.75, 1.4, 3), rng.uniform(0.1, 0.18)),
        (lm[_CHIN], rng.uniform(0.75, 1.4, 3), rng.uniform(0.12, 0.22)),
        (lm[_BROW_MID] + np.array([0.0, 0.15 * size, 0.0]), rng.uniform(0.8, 1.3, 3), rng.uniform(0.15, 0.25)),
    ]
    for c, scale, radius in regions:
        x = x + (scale - 1.0) * (x - c) * _bump(x, c, radius * size)
    for _ in range(4):
        r = rng.uniform(0.2, 0.4) * size
        c = x[rng.integers(len(x))]
        direction = rng.normal(size=3)
        x = x + 0.35 * r * rng.uniform(0.3, 1.0) * direction / np.linalg.norm(direction) * _bump(x, c, r)
    return x


def _as_source(source: RiggedSource | ICTModel) -> RiggedSource:
    return ICTSource(source) if isinstance(source, ICTModel) else source


def _base_head(source: RiggedSource, options: BuildOptions, kind: str, identity: int) -> np.ndarray:
    head = source.head(options, kind, identity)
    if kind == "unrigged":
        head = stylise(head, source.landmarks, np.random.default_rng([options.seed, 5, identity]))
    return head


def head_geometry(source: RiggedSource | ICTModel, options: BuildOptions, spec: SampleSpec) -> np.ndarray:
    """(V, 3) float64 the sample's head in source topology and frame: before crops, re-meshing and jitter."""
    source = _as_source(source)
    head = _base_head(source, options, spec.kind, spec.identity)
    if spec.alpha > 0:
        head = (1.0 - spec.alpha) * head + spec.alpha * _base_head(source, options, spec.kind, spec.partner)
    return head


def _crop_faces(
    source: RiggedSource, head: np.ndarray, rng: np.random.Generator, record: dict[str, Any]
) -> np.ndarray:
    """(F,) bool mask of source triangles kept after a random neck cut and dropped components."""
    tris = source.triangles
    part = source.parts
    keep = np.ones(len(tris), bool)
    dropped = []
    for names, probability in _DROPPABLE:
        if rng.uniform() < probability:  # drawn for every group, so a source without some parts keeps the stream
            present = [n for n in names if n in PART_NAMES and (part == PART_NAMES.index(n)).any()]
            keep &= ~np.isin(part[tris], [PART_NAMES.index(n) for n in present]).any(axis=1)
            dropped.extend(present)
    if rng.uniform() < 0.5:
        chin = head[source.landmarks[_CHIN], 1]
        bottom = head[:, 1].min()
        cut = float(rng.uniform(bottom, chin - 0.15 * (chin - bottom)))
        keep &= (head[tris, 1] >= cut).all(axis=1)
        record["neck_cut_y"] = cut
    record["dropped"] = dropped
    return keep


def _drop_fragments(n_vertices: int, tris: np.ndarray) -> np.ndarray:
    """Triangles minus those of pieces with fewer than _MIN_FRAGMENT vertices (cut leftovers)."""
    pieces = connected_pieces(n_vertices, tris)
    used = np.zeros(n_vertices, bool)
    used[tris.ravel()] = True
    size = np.bincount(pieces[used], minlength=pieces.max() + 1)
    return tris[size[pieces[tris[:, 0]]] >= _MIN_FRAGMENT]


def _rotation(axis_angle: np.ndarray) -> np.ndarray:
    angle = float(np.linalg.norm(axis_angle))
    if angle == 0.0:
        return np.eye(3)
    k = axis_angle / angle
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(angle) * kx + (1 - math.cos(angle)) * kx @ kx


def _jitter(head: np.ndarray, rng: np.random.Generator, record: dict[str, Any]) -> tuple[np.ndarray, float]:
    """(4, 4) transform x' = s·R·x + t and the sample's meters_per_unit."""
    axis = rng.normal(size=3)
    rot = _rotation(axis / np.linalg.norm(axis) * np.radians(rng.uniform(0.0, 10.0)))
    scale = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
    meters_per_unit = 0.01
    if rng.uniform() < 0.2:
        unit_scale, meters_per_unit = _UNITS[rng.integers(len(_UNITS))]
        scale *= unit_scale
    size = float(np.ptp(head, axis=0).max())
    transform = np.eye(4)
    transform[:3, :3] = scale * rot
    transform[:3, 3] = rng.normal(0.0, 0.1 * size, 3) * scale
    record.update(scale=scale, meters_per_unit=meters_per_unit)
    return transform, meters_per_unit


# ---------------------------------------------------------------------------------------------- one sample
@dataclass(frozen=True, eq=False)
class BuildContext:
    """What every sample of a build shares (built once, inherited by forked workers)."""

    source: RiggedSource
    options: BuildOptions
    shape_names: tuple[str, ...]
    labelled: np.ndarray  # (S,) bool
    regions: np.ndarray  # (V,) region per source vertex
    parts: np.ndarray  # (V,) part per source vertex
    outdir: Path

    @property
    def model(self) -> ICTModel:
        """The ICT model of an ICT build (kept for callers that read ``ctx.model``)."""
        return self.source.model  # type: ignore[attr-defined]


def make_context(source: RiggedSource | ICTModel, options: BuildOptions, outdir: Path) -> BuildContext:
    """The shared part of a build: the source (an :class:`ICTModel` is wrapped), label mask, annotations."""
    from facerig.vocabulary import load_vocabulary

    source = _as_source(source)
    return BuildContext(
        source=source,
        options=options,
        shape_names=load_vocabulary().shape_names,
        labelled=source.labelled,
        regions=source.regions,
        parts=source.parts,
        outdir=outdir,
    )


def build_sample(ctx: BuildContext, spec: SampleSpec) -> dict[str, Any]:
    """Synthesise, re-mesh and write one sample; returns its manifest entry."""
    source, options = ctx.source, ctx.options
    kind_code = 1 if spec.kind == "rigged" else 2
    rng = np.random.default_rng([options.seed, 6, kind_code, spec.index])
    head = head_geometry(source, options, spec)

    record: dict[str, Any] = {}
    tris = source.triangles
    if spec.augment:
        tris = _drop_fragments(source.n_vertices, tris[_crop_faces(source, head, rng, record)])
    remesh_options = RemeshOptions(
        budget=int(round(np.exp(rng.uniform(np.log(options.min_vertices), np.log(options.max_vertices))))),
        quads=bool(rng.uniform() < options.quad_fraction),
        relax=float(rng.uniform(0.0, 0.6)),
        density_contrast=float(rng.uniform(0.0, 1.0)),
    )
    mesh = remesh(head, tris, remesh_options, rng)
    transfer = mesh.transfer
    dominant = transfer.source_vertices[np.arange(len(mesh.vertices)), transfer.barycentrics.argmax(axis=1)]

    # Landmarks: exact points on the new surface, on the same component as the source landmark vertex.
    lm_source = source.landmarks
    lm_pieces = mesh.source_pieces[lm_source]
    if (lm_pieces < 0).any():
        raise DatasetError(f"{spec.name}: an augmentation removed a landmark's component")
    index = SurfaceIndex(mesh.vertices, mesh.triangles, mesh.pieces[mesh.triangles[:, 0]])
    lm_tri, lm_bary, _ = index.query(head[lm_source], lm_pieces)
    lm_points = index.points(lm_tri, lm_bary)
    distance = np.linalg.norm(mesh.vertices[None] - lm_points[:, None], axis=2)
    distance[mesh.pieces[None, :] != lm_pieces[:, None]] = np.inf
    lm_vertex = distance.argmin(axis=1)

    transform = np.eye(4)
    meters_per_unit = 0.01
    if spec.augment:
        transform, meters_per_unit = _jitter(head, rng, record)
    linear, offset = transform[:3, :3], transform[:3, 3]
    arrays: dict[str, np.ndarray] = {
        "vertices": (mesh.vertices @ linear.T + offset).astype(np.float32),
        "face_vertex_counts": mesh.face_vertex_counts.astype(np.int32),
        "face_vertex_indices": mesh.face_vertex_indices.astype(np.int32),
        "labelled": ctx.labelled if spec.kind == "rigged" else np.zeros(len(ctx.labelled), bool),
        "regions": ctx.regions[dominant].astype(np.int8),
        "parts": ctx.parts[dominant].astype(np.int8),
        "landmarks": lm_vertex.astype(np.int32),
        "landmark_triangles": lm_tri.astype(np.int32),
        "landmark_barycentrics": lm_bary.astype(np.float32),
        "eyelid_pairs": EYELID_PAIRS,
        "source_vertices": transfer.source_vertices.astype(np.int32),
        "source_barycentrics": transfer.barycentrics.astype(np.float32),
        "transform": transform,
        "meters_per_unit": np.float64(meters_per_unit),
    }
    if spec.kind == "rigged":
        actions = transfer.apply(source.action_deltas(head, spec, options)) @ linear.T  # (A, N, 3)
        correctives = np.zeros((len(ctx.shape_names) - len(actions),) + actions.shape[1:], actions.dtype)
        arrays["deltas"] = np.concatenate([actions, correctives]).astype(np.float16)

    path = ctx.outdir / "samples" / f"{spec.name}.npz"
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)
    return {
        **asdict(spec),
        "source": source.name,
        "file": f"samples/{spec.name}.npz",
        "vertices": int(len(mesh.vertices)),
        "polygons": int(len(mesh.face_vertex_counts)),
        "quads": remesh_options.quads,
        "budget": remesh_options.budget,
        "components": int(mesh.pieces.max()) + 1,
        **record,
    }


# Forked workers read the build context from here; set only by _init_worker in a child process.
_WORKER_CONTEXT: BuildContext | None = None


def _init_worker(ctx: BuildContext) -> None:
    global _WORKER_CONTEXT
    _WORKER_CONTEXT = ctx


def _build_in_worker(spec: SampleSpec) -> dict[str, Any]:
    assert _WORKER_CONTEXT is not None
    return build_sample(_WORKER_CONTEXT, spec)


# ---------------------------------------------------------------------------------------------- build
def check_outdir(outdir: str | Path, overwrite: bool) -> None:
    """Refuse an output that is a file, a non-empty folder (unless ``overwrite``) or a folder of something else."""
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise DatasetError("output exists and is not a folder", outdir)
    if outdir.is_dir() and any(outdir.iterdir()):
        if not overwrite:
            raise DatasetError("output folder is not empty (pass overwrite / --force to replace a dataset)", outdir)
        if not (outdir / "manifest.json").is_file() and not (outdir / "samples").is_dir():
            raise DatasetError("output folder holds something that is not a facerig dataset; not touching it", outdir)


def _prepare_outdir(outdir: Path, overwrite: bool) -> None:
    check_outdir(outdir, overwrite)
    if outdir.is_dir() and any(outdir.iterdir()):
        (outdir / "manifest.json").unlink(missing_ok=True)
        shutil.rmtree(outdir / "samples", ignore_errors=True)
    (outdir / "samples").mkdir(parents=True, exist_ok=True)


def build_ict_dataset(
    source: str | Path,
    outdir: str | Path,
    options: BuildOptions = BuildOptions(),
    *,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = False,
    model: ICTModel | None = None,
) -> dict[str, Any]:
    """Build a training set from ICT-FaceKit (see the module docstring); returns the manifest.

    Args:
        source: FaceXModel folder or ICT-FaceKit archive (ignored when ``model`` is given).
        outdir: the dataset folder; must be empty or absent unless ``overwrite``.
        options: what to build. workers: processes (samples are independent and seeded by their index,
            so the result does not depend on the worker count).
        model: an already loaded :class:`ICTModel`, to skip reading the source again.
    """
    options.validate()
    check_outdir(outdir, overwrite)
    if model is None:
        model = load_ict(source)
    return build_dataset(ICTSource(model), outdir, options, workers=workers, overwrite=overwrite, progress=progress)


def build_dataset(
    source: RiggedSource,
    outdir: str | Path,
    options: BuildOptions,
    *,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = False,
    prefix: str = "",
) -> dict[str, Any]:
    """Build a training set from any rigged-head source: plan, synthesise, re-mesh, annotate, write.

    Args:
        source: the heads and their FACS ground truth (:class:`facerig.trainer.source.RiggedSource`).
        outdir: the dataset folder; must be empty or absent unless ``overwrite``.
        options: what to build. workers: processes (the result does not depend on the count).
        prefix: starts every sample name (MakeHuman builds use ``mh_`` so they can be merged with ICT's).
    """
    options.validate()
    outdir = Path(outdir)
    _prepare_outdir(outdir, overwrite)
    ctx = make_context(source, options, outdir)
    specs, splits = plan_samples(options, prefix)
    started = time.perf_counter()
    entries = list(_run(ctx, specs, workers, progress))
    entries.sort(key=lambda entry: entry["name"])
    for name, text in source.licence_files.items():
        write_bytes_atomic(outdir / name, text.encode())

    from facerig.vocabulary import load_vocabulary

    manifest = {
        "format": FORMAT,
        "builder_version": BUILDER_VERSION,
        "seed": options.seed,
        "options": asdict(options),
        "source": source.description,
        "sources": [source.name],
        "vocabulary_id": load_vocabulary().id,
        "shapes": list(ctx.shape_names),
        "labelled": ctx.labelled.tolist(),
        "regions": list(REGIONS),
        "parts": list(PART_NAMES),
        "eyelid_pairs": EYELID_PAIRS.tolist(),
        "eyelid_sides": list(EYELID_SIDES),
        "units": "each sample's meters_per_unit; the source frame is in centimetres",
        "axes": "+Y up, face along +Z, +X the character's left (before each sample's transform)",
        "counts": _counts(entries),
        "identities": splits,
        "build_seconds": round(time.perf_counter() - started, 1),
        "samples": entries,
    }
    write_bytes_atomic(outdir / "manifest.json", json.dumps(manifest, indent=1, allow_nan=False).encode())
    return manifest


def _counts(entries: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in entries:
        key = f"{entry['kind']}_{entry['split']}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items())) | {"total": len(entries)}


# Manifest keys that must agree for datasets to be trained together.
_MERGE_KEYS = ("format", "vocabulary_id", "shapes", "regions", "parts", "eyelid_pairs")


def merge_datasets(roots: list[str | Path], outdir: str | Path, *, overwrite: bool = False) -> dict[str, Any]:
    """Write a dataset that trains on several built datasets together, without copying a sample.

    The merged ``manifest.json`` lists every sample of every input with its ``file`` relative to ``outdir``
    (``../ict/samples/rigged_00000.npz``), so the inputs must stay where they are. Each sample keeps its
    ``source``; training reads each sample's own ``labelled`` array, and the merged manifest's ``labelled``
    (what ``facerig eval`` scores) is the intersection: the shapes every input has.
    ``options`` (the rig's gaze angle among them) are the first input's. Train with source weights in
    ``[data] source_weights``.

    Raises:
        DatasetError: fewer than two inputs, inputs with different shapes/regions/parts/vocabulary, or two
            samples with one name (build MakeHuman sets with their ``mh_`` prefix).
    """
    outdir = Path(outdir)
    if len(roots) < 2:
        raise DatasetError("merging needs at least two datasets", outdir)
    manifests = [(Path(root), read_manifest(root)) for root in roots]
    first_root, first = manifests[0]
    for root, manifest in manifests[1:]:
        for key in _MERGE_KEYS:
            if manifest.get(key) != first.get(key):
                raise DatasetError(f"its {key} differ from {first_root}'s; rebuild one of them", root)
    check_outdir(outdir, overwrite)
    outdir.mkdir(parents=True, exist_ok=True)
    entries: list[dict[str, Any]] = []
    names: set[str] = set()
    for root, manifest in manifests:
        for entry in manifest["samples"]:
            if entry["name"] in names:
                raise DatasetError(f"sample name {entry['name']} is in two inputs", root)
            names.add(entry["name"])
            relative = os.path.relpath((root / entry["file"]).resolve(), outdir.resolve())
            entries.append({**entry, "source": entry.get("source", "ict"), "file": Path(relative).as_posix()})
    # Training reads each sample's own ``labelled``; the manifest's (what evaluation scores) keeps only the
    # shapes every input has, so a source's unlabelled poses are never scored as zero truth.
    labelled = np.all([np.asarray(m["labelled"], bool) for _, m in manifests], axis=0)
    manifest = {
        **{key: first[key] for key in _MERGE_KEYS},
        "builder_version": max(m.get("builder_version", 0) for _, m in manifests),
        "seed": first.get("seed"),
        "options": first.get("options", {}),
        "merged_from": [{"path": str(root), "source": m.get("source"), "seed": m.get("seed"),
                         "counts": m.get("counts")} for root, m in manifests],  # fmt: skip
        "sources": sorted({e["source"] for e in entries}),
        "labelled": labelled.tolist(),
        "eyelid_sides": first.get("eyelid_sides", list(EYELID_SIDES)),
        "units": first.get("units"),
        "axes": first.get("axes"),
        "counts": _counts(entries),
        "samples": sorted(entries, key=lambda e: e["name"]),
    }
    write_bytes_atomic(outdir / "manifest.json", json.dumps(manifest, indent=1, allow_nan=False).encode())
    return manifest


def _run(ctx: BuildContext, specs: list[SampleSpec], workers: int, progress: bool) -> Iterator[dict[str, Any]]:
    from tqdm import tqdm

    bar = tqdm(total=len(specs), unit="head", disable=not progress, desc="building")
    try:
        if workers <= 1 or len(specs) <= 1:
            for spec in specs:
                yield build_sample(ctx, spec)
                bar.update()
            return
        # fork: workers inherit the loaded model instead of unpickling 60 MB of arrays each.
        with multiprocessing.get_context("fork").Pool(workers, _init_worker, (ctx,)) as pool:
            for entry in pool.imap_unordered(_build_in_worker, specs, chunksize=1):
                yield entry
                bar.update()
    finally:
        bar.close()


# ---------------------------------------------------------------------------------------------- reading
# The read side of the format lives in facerig.eval.datasets (evaluation reads datasets without the trainer).


class HeadDataset:
    """A torch-style dataset over one split of a built dataset.

    ``dataset[i]`` is a dict of tensors: ``vertices`` (V, 3) float32, ``triangles`` (F, 3) int64,
    ``deltas`` (S, V, 3) float32 (rigged heads only), ``labelled`` (S,) bool, ``regions`` (V,) int64,
    ``landmarks`` (68,) int64, ``landmark_triangles`` (68,) int64, ``landmark_barycentrics`` (68, 3)
    float32, ``eyelid_pairs`` (4, 2) int64, plus ``name`` and ``rigged`` (str, bool) and
    ``meters_per_unit`` (float). It is a plain sequence, usable with ``torch.utils.data.DataLoader``
    (batch size 1, or a collate function that keeps heads apart: their vertex counts differ).
    """

    def __init__(self, root: str | Path, split: str = "train", kind: str | None = None) -> None:
        if split not in ("train", "val", "test"):
            raise DatasetError(f"unknown split {split!r} (train, val or test)", root)
        if kind not in (None, "rigged", "unrigged"):
            raise DatasetError(f"unknown kind {kind!r} (rigged or unrigged)", root)
        self.root = Path(root)
        self.manifest = read_manifest(self.root)
        self.shapes: tuple[str, ...] = tuple(self.manifest["shapes"])
        self.entries = [
            e for e in self.manifest["samples"] if e["split"] == split and (kind is None or e["kind"] == kind)
        ]

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        entry = self.entries[i]
        arrays = load_sample(self.root / entry["file"])
        item: dict[str, Any] = {
            "name": entry["name"],
            "rigged": entry["kind"] == "rigged",
            "meters_per_unit": float(arrays["meters_per_unit"]),
            "vertices": torch.from_numpy(arrays["vertices"].astype(np.float32)),
            "triangles": torch.from_numpy(sample_triangles(arrays)),
            "labelled": torch.from_numpy(arrays["labelled"].astype(bool)),
        }
        for key in ("regions", "landmarks", "landmark_triangles", "eyelid_pairs"):
            item[key] = torch.from_numpy(arrays[key].astype(np.int64))
        item["landmark_barycentrics"] = torch.from_numpy(arrays["landmark_barycentrics"].astype(np.float32))
        if "deltas" in arrays:
            item["deltas"] = torch.from_numpy(arrays["deltas"].astype(np.float32))
        return item
