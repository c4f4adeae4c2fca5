"""Accuracy evaluation (SPEC §9): the network against the neutral and deformation-transfer baselines.

``evaluate(model, dataset, split)`` rigs every rigged head of a dataset split (held-out identities, each
re-meshed) three ways and compares each rig with the ground truth:

- ``model``: :func:`facerig.rigging.pipeline.rig_mesh` with the given packaged model;
- ``transfer``: :func:`facerig.rigging.transfer.rig_by_transfer` (template deformation transfer);
- ``neutral``: zero displacement for every pose (the floor any method must beat).

``evaluate_rigs(model, folder)`` does the same on the rigged heads a user brings (glTF morph targets, USD
blend shapes, read by :mod:`facerig.io.rigged_heads`): each head on the poses its file has, in mm from the file's
own units; heads that cannot be read are listed with the reason.

Definitions (the numbers every table shows, for each method on the same heads):

- **Error** of a vertex in a pose: Euclidean distance in millimetres between the predicted and the true
  displacement (= between the posed meshes), units from the sample's ``meters_per_unit`` (ICT is cm: ×10).
- **Poses**: the FACS actions whose ground truth is labelled (ICT has none for Corrugator and FlatPucker:
  they are left out). Correctives are left out too: ICT's combined poses are sums, so every ICT corrective
  target is exactly zero and would only dilute the numbers.
- **MAE / Q95**: the mean and the 95th percentile of the errors pooled over every (head, pose, vertex).
- **Moving**: the same, restricted to (pose, vertex) pairs whose true displacement exceeds
  :data:`MOVING_THRESHOLD_MM` (0.1 mm): the part of the face a pose is about.
- **Gain**: before measuring, each predicted pose of each head is multiplied by its least-squares gain
  ``g = <pred, gt> / <pred, pred>`` (0 for an all-zero prediction), so an artist-style amplitude
  difference does not count as error (SPEC §4).
- **Per pose / per region**: the MAE over one pose's, or one region's (the sample's region labels), errors.
- **Cosine** (per pose): the cosine between a head's predicted and true displacement of the pose (all vertices'
  offsets as one vector), averaged over heads: 1 is the right direction whatever the amplitude; NaN (shown
  "–") when the method does not move the pose.
- **Unlabelled** poses of a head (no ground truth in its source) are left out of its numbers, never compared
  with zero.
- **Penetration ratio**: see :func:`penetration_counts`: the fraction of (inner vertex, pose) pairs where a
  vertex of an inner component has crossed the skin surface relative to its side at rest. The ground
  truth's own ratio is reported as the reference.

Heads without a ground-truth rig (``extra_heads``, e.g. the CC0 heads in ``../shared/data/heads``) get what
can be measured without one, for the model and the transfer: side correctness of one-sided poses, the size
of the displacements relative to the head, and the penetration ratio.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from facerig.canonical.frame import canonical_frame
from facerig.errors import ConfigError, DatasetError
from facerig.fileio import write_bytes_atomic
from facerig.mesh import Mesh
from facerig.geometry import SurfaceIndex, skin_mask, vertex_normals
from facerig.rig import Rig
from facerig.vocabulary import Vocabulary, load_vocabulary

METHODS = ("model", "transfer", "neutral")
MOVING_THRESHOLD_MM = 0.1
PENETRATION_TOLERANCE_MM = 0.1
REPORT_VERSION = 1
ICT_CRANIUM_RADIUS_MM = 94.3  # facerig.canonical.frame's cranium radius of the ICT neutral
# Candidate offset floors in canonical units (a human head: 1 unit is about 9 cm, so 6e-4 is about 0.055 mm).
OFFSET_FLOORS = (0.0, 5e-5, 1e-4, 2e-4, 3e-4, 4e-4, 6e-4, 8e-4, 1.2e-3, 1.6e-3, 2.4e-3)


# ---------------------------------------------------------------------------------------------- metrics
def vertex_errors(predicted: np.ndarray, truth: np.ndarray, mm_per_unit: float) -> np.ndarray:
    """(P, V) float64 Euclidean error in mm of (P, V, 3) predicted vs true displacements."""
    diff = np.asarray(predicted, np.float64) - np.asarray(truth, np.float64)
    return np.sqrt(np.einsum("pvk,pvk->pv", diff, diff)) * mm_per_unit


def best_gains(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(P,) least-squares scalar per pose: argmin_g |g·pred − gt|² = <pred, gt> / <pred, pred> (0 if pred = 0)."""
    predicted = np.asarray(predicted, np.float64)
    num = np.einsum("pvk,pvk->p", predicted, np.asarray(truth, np.float64))
    den = np.einsum("pvk,pvk->p", predicted, predicted)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def mae_q95(errors: np.ndarray) -> tuple[float, float]:
    """(mean, 95th percentile) of an error array; NaNs when it is empty."""
    errors = np.asarray(errors, np.float64).ravel()
    if errors.size == 0:
        return float("nan"), float("nan")
    return float(errors.mean()), float(np.quantile(errors, 0.95))


def signed_skin_distance(vertices: np.ndarray, triangles: np.ndarray, skin: np.ndarray,
                         points: np.ndarray) -> np.ndarray:
    """(N,) signed distance of points to the skin surface: + on the side its normals point to.

    The sign uses the barycentric blend of the closest triangle's (area-weighted) vertex normals, which
    stays right where the closest point is on an edge or corner, unlike the bare face normal.
    """
    skin_tris = triangles[skin[triangles].all(axis=1)]
    # Exact closest points: an approximate one can pick a triangle facing elsewhere and flip the sign.
    surface = SurfaceIndex(vertices, skin_tris)
    tri, bary, dist = surface.query(points)
    normals = vertex_normals(vertices, skin_tris)
    n = np.einsum("nk,nkd->nd", bary, normals[skin_tris[tri]])
    side = np.einsum("nd,nd->n", points - surface.points(tri, bary), n)
    return np.where(side < 0, -dist, dist)


def penetration_counts(vertices: np.ndarray, triangles: np.ndarray, deltas: np.ndarray, *,
                       tolerance: float = 0.0, skin: np.ndarray | None = None) -> tuple[int, int]:
    """How often inner components cross the skin when posed: (crossings, checks).

    Definition: the skin is the connected component (vertices welded) with the largest area; every other
    vertex is *inner* (eyeballs, eye shells, lashes, teeth, gums and tongue). For each inner vertex, its
    signed distance to the skin (:func:`signed_skin_distance`) at rest fixes its side. In each pose (skin
    and inner parts both displaced) it *crosses* when its signed distance to the posed skin is beyond
    ``tolerance`` on the other side. Inner vertices within ``tolerance`` of the skin at rest have no clear
    side and are not checked. Checks = checked inner vertices × poses.

    In ICT the skin includes the mouth and eye sockets, so teeth through the lips or cheeks and eyeballs
    through the lids are crossings; inner parts passing through each other (tongue through teeth) are not
    measured.

    Args:
        vertices: (V, 3) neutral; triangles: (F, 3); deltas: (P, V, 3) per-pose displacements.
        tolerance: in the units of ``vertices``.
        skin: (V,) bool skin mask; computed when None.
    """
    vertices = np.asarray(vertices, np.float64)
    skin = skin_mask(vertices, triangles) if skin is None else np.asarray(skin, bool)
    inner = np.flatnonzero(~skin)
    if not len(inner):
        return 0, 0
    rest = signed_skin_distance(vertices, triangles, skin, vertices[inner])
    checked = inner[np.abs(rest) > tolerance]
    rest_side = np.sign(rest[np.abs(rest) > tolerance])
    crossings = 0
    for delta in np.asarray(deltas, np.float64):
        if not np.any(delta[skin]) and not np.any(delta[checked]):
            continue  # nothing moved: nothing can cross
        posed = vertices + delta
        now = signed_skin_distance(posed, triangles, skin, posed[checked])
        crossings += int(np.count_nonzero(rest_side * now < -tolerance))
    return crossings, len(checked) * len(deltas)


def side_share(deltas: np.ndarray, canonical_x: np.ndarray, side: str) -> float:
    """Share of the total displacement magnitude on the pose's own side (canonical +X is the left).

    1 is perfect; 0.5 is symmetric; NaN when nothing moves. deltas: (V, 3); canonical_x: (V,).
    """
    magnitude = np.linalg.norm(deltas, axis=1)
    total = float(magnitude.sum())
    if total <= 0:
        return float("nan")
    own = canonical_x > 0 if side == "l" else canonical_x < 0
    return float(magnitude[own].sum() / total)


# ---------------------------------------------------------------------------------------------- report
@dataclass
class MethodMetrics:
    """One method's numbers over all evaluated heads (errors in mm)."""

    mae: float
    q95: float
    mae_moving: float
    q95_moving: float
    mae_gain: float
    q95_gain: float
    penetration: float
    per_pose: dict[str, float]
    per_pose_gain: dict[str, float]
    per_region: dict[str, float]
    # mean over heads of the cosine between the predicted and the true delta (flattened); NaN when either is zero
    per_pose_cosine: dict[str, float] = field(default_factory=dict)
    # mean over heads and sides of how much of its eyeball each EyeClosed covers (facerig.anatomy.contact.closure;
    # 1 = shut); NaN when no head has an eyeball pair the neutral shows
    blink_closure: float = float("nan")


@dataclass
class ExtraHeadMetrics:
    """What can be measured on a head without a ground-truth rig, for one method."""

    side_correct: float  # mean own-side share of the one-sided poses (1 = all motion on the right side)
    peak_median: float  # median over poses of the largest displacement, in cranium radii
    peak_max: float  # largest displacement of any pose, in cranium radii
    moving_poses: int  # poses with any displacement
    penetration: float


@dataclass
class EvalReport:
    """The result of :func:`evaluate`; write it with :meth:`write` or format it with :meth:`to_markdown`."""

    dataset: str
    split: str
    model: dict[str, Any]
    heads: list[str]
    poses: list[str]
    regions: list[str]
    methods: dict[str, MethodMetrics]
    truth_penetration: float
    truth_blink_closure: float = float("nan")  # the same for the ground truth's blinks
    extra_heads: dict[str, dict[str, ExtraHeadMetrics]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    # evaluate_rigs: per file, how its shapes became poses (MatchReport.to_dict()), or {"refused": why}
    rigs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"version": REPORT_VERSION, **asdict(self)}

    def to_json(self) -> str:
        """JSON text; NaN (an empty subset) is written as null."""
        return json.dumps(_nan_to_none(self.to_dict()), indent=1, allow_nan=False) + "\n"

    def to_markdown(self) -> str:
        """The summary, per-region and per-pose tables, and the extra-head table when there is one."""
        methods = list(self.methods)
        model = f"Model: {self.model['name']} (`{str(self.model['id'])[:12]}`)" if self.model else "No model"
        if self.model.get("mirror_average"):
            model += ", mirror-averaged"
        if self.model.get("offset_floor"):
            model += f", offset floor {self.model['offset_floor']:g}"
        title = f"rigged heads in {self.dataset}" if self.rigs else f"{self.dataset} ({self.split} split)"
        lines = [
            f"# facerig accuracy: {title}",
            "",
            f"{model}. {len(self.heads)} heads, {len(self.poses)} labelled FACS poses. Errors in mm; "
            f"'moving' = vertices whose true displacement exceeds {self.settings.get('moving_threshold_mm')} mm; "
            "'gain' = after a best least-squares gain per pose and head.",
            "",
            "| method | MAE | Q95 | MAE moving | Q95 moving | MAE gain | Q95 gain | penetration | blink closure |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name in methods:
            m = self.methods[name]
            values = (m.mae, m.q95, m.mae_moving, m.q95_moving, m.mae_gain, m.q95_gain)
            lines.append(f"| {name} | " + " | ".join(_fmt(v) for v in values) + f" | {_fmt(m.penetration, 4)} | "
                         f"{_fmt(m.blink_closure, 2)} |")
        lines.append(f"| ground truth | | | | | | | {_fmt(self.truth_penetration, 4)} | "
                     f"{_fmt(self.truth_blink_closure, 2)} |")
        lines += ["", "Blink closure: how much of each eyeball its EyeClosed covers, seen from the front "
                  "(`facerig.anatomy.contact`; 1 = shut, 0 = still), mean over heads with an eyeball pair."]
        if self.regions:
            lines += ["", "## MAE per region (mm)", "", "| region | " + " | ".join(methods) + " |",
                      "|---|" + "---|" * len(methods)]
            for region in self.regions:
                cells = [_fmt(self.methods[n].per_region.get(region)) for n in methods]
                lines.append(f"| {region} | " + " | ".join(cells) + " |")
        lines += ["", "## MAE per pose (mm; raw / after gain; cosine of predicted and true delta)", "",
                  "| pose | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
        for pose in self.poses:
            cells = [f"{_fmt(m.per_pose[pose])} / {_fmt(m.per_pose_gain[pose])} / {_fmt(m.per_pose_cosine.get(pose))}"
                     for m in (self.methods[n] for n in methods)]
            lines.append(f"| {pose} | " + " | ".join(cells) + " |")
        if self.rigs:
            lines += ["", "## Rigged heads", "", "| file | labelled poses | unlabelled | shapes not used | refused |",
                      "|---|---|---|---|---|"]
            for file, rig in self.rigs.items():
                if "refused" in rig:
                    lines.append(f"| {file} | | | | {rig['refused']} |")
                else:
                    lines.append(f"| {file} | {len(rig['labelled'])} | {len(rig['unlabelled'])} | "
                                 f"{len(rig['unmatched'])} | |")
        if self.extra_heads:
            lines += ["", "## Heads without a ground-truth rig", "",
                      "Side = share of one-sided poses' motion on the named side (1 is right, 0.5 symmetric); "
                      "peak = largest displacement in cranium radii (median over poses / max).", "",
                      "| head | method | side | peak median | peak max | moving poses | penetration |",
                      "|---|---|---|---|---|---|---|"]
            for head, by_method in self.extra_heads.items():
                for name, e in by_method.items():
                    lines.append(f"| {head} | {name} | {_fmt(e.side_correct)} | {_fmt(e.peak_median, 4)} | "
                                 f"{_fmt(e.peak_max, 4)} | {e.moving_poses} | {_fmt(e.penetration, 4)} |")
        return "\n".join(lines) + "\n"

    def write(self, directory: str | Path, stem: str = "eval") -> tuple[Path, Path]:
        """Write ``<stem>.json`` and ``<stem>.md`` into ``directory`` (atomically); returns both paths."""
        directory = Path(directory)
        return (write_bytes_atomic(directory / f"{stem}.json", self.to_json().encode()),
                write_bytes_atomic(directory / f"{stem}.md", self.to_markdown().encode()))


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or not np.isfinite(value):
        return "–"
    return f"{value:.{digits}f}"


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------- evaluation
Rigger = Callable[[Mesh], Rig]


@dataclass
class _Pool:
    """Per-(pose, vertex) errors of one method, collected head by head (each head has its own labelled poses)."""

    errors: list[np.ndarray] = field(default_factory=list)  # (P_h, V) mm per head
    gain_errors: list[np.ndarray] = field(default_factory=list)
    cosines: list[np.ndarray] = field(default_factory=list)  # (P_h,) per head
    closures: list[float] = field(default_factory=list)  # blink closures, per head and side
    crossings: int = 0
    checks: int = 0


class _Scorer:
    """Heads scored one by one against their ground truth, pooled per method (see the module docstring).

    ``poses`` are the report's poses; each head gives the indices into them of the poses it has a truth for.
    """

    def __init__(self, methods: Sequence[str], poses: Sequence[str], regions: Sequence[str]) -> None:
        self.poses, self.regions = list(poses), list(regions)
        self.pools = {name: _Pool() for name in methods}
        self.truth = _Pool()
        self.pose_ids: list[np.ndarray] = []
        self.moving: list[np.ndarray] = []
        self.region_ids: list[np.ndarray] = []
        self.seconds = {name: 0.0 for name in methods}

    def add_head(self, mesh: Mesh, truth: np.ndarray, pose_ids: np.ndarray, mm: float,
                 predict: Callable[[str], np.ndarray], regions: np.ndarray | None = None) -> None:
        """Score one head: ``truth`` (P_h, V, 3) for ``pose_ids`` (P_h,), ``predict(method)`` the same poses."""
        triangles = mesh.triangles
        skin = skin_mask(mesh.vertices, triangles)
        tolerance = PENETRATION_TOLERANCE_MM / mm
        self.pose_ids.append(np.asarray(pose_ids, np.int64))
        self.moving.append(np.linalg.norm(truth, axis=2) * mm > MOVING_THRESHOLD_MM)
        self.region_ids.append(np.full(len(mesh.vertices), -1, np.int64) if regions is None
                               else np.asarray(regions, np.int64))
        _count_crossings(self.truth, mesh, truth, tolerance, skin)
        blinks = BlinkMeter(mesh, [self.poses[i] for i in pose_ids])
        blinks.add(self.truth, truth)
        for name, pool in self.pools.items():
            tick = time.perf_counter()
            predicted = predict(name)
            self.seconds[name] += time.perf_counter() - tick
            pool.errors.append(vertex_errors(predicted, truth, mm))
            gains = best_gains(predicted, truth)
            pool.gain_errors.append(vertex_errors(predicted * gains[:, None, None], truth, mm))
            pool.cosines.append(pose_cosines(predicted, truth))
            blinks.add(pool, predicted)
            _count_crossings(pool, mesh, predicted, tolerance, skin)

    def metrics(self) -> dict[str, MethodMetrics]:
        return {name: _summarise(pool, self.pose_ids, self.poses, self.moving, self.region_ids, self.regions)
                for name, pool in self.pools.items()}


class BlinkMeter:
    """How far each EyeClosed pose of one head covers its own eyeball (:func:`facerig.anatomy.contact.closure`).

    Args:
        mesh: the neutral head; head_poses: the pose name of each row of the deltas that :meth:`measure` gets.
    """

    def __init__(self, mesh: Mesh, head_poses: Sequence[str]) -> None:
        from facerig.anatomy.contact import BLINKS
        from facerig.anatomy.eyes import find_eyeballs
        from facerig.canonical.frame import canonical_frame

        self.rows = {row: BLINKS[pose] for row, pose in enumerate(head_poses) if pose in BLINKS}
        self.poses = list(head_poses)
        self.eyes: tuple = ()
        if self.rows:
            self.frame = canonical_frame(mesh)
            self.canonical = self.frame.to_canonical(mesh.vertices)
            self.eyes = find_eyeballs(self.canonical, mesh.welded.component_labels)
            self.skin = mesh.welded.skin[mesh.welded.to_surface]
            self.triangles = mesh.triangles

    def measure(self, deltas: np.ndarray) -> dict[str, float]:
        """Blink pose name -> closure, for the blinks whose eyeball was found and shows enough at rest.

        Args:
            deltas: (P, V, 3) displacements of ``head_poses``, in the mesh's own units and axes.
        """
        from facerig.anatomy.contact import closure

        closures: dict[str, float] = {}
        if not self.eyes:
            return closures
        for row, eye in self.rows.items():
            moved = self.frame.scale * np.asarray(deltas[row], np.float64) @ self.frame.rotation.T
            shut = closure(self.canonical, self.triangles, self.eyes[eye], self.skin, moved)
            if shut is not None:
                closures[self.poses[row]] = shut
        return closures

    def add(self, pool: _Pool, deltas: np.ndarray) -> None:
        pool.closures.extend(self.measure(deltas).values())


def _count_crossings(pool: _Pool, mesh: Mesh, deltas: np.ndarray, tolerance: float, skin: np.ndarray) -> None:
    crossings, checks = penetration_counts(mesh.vertices, mesh.triangles, deltas, tolerance=tolerance, skin=skin)
    pool.crossings += crossings
    pool.checks += checks


def pose_cosines(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(P,) cosine between each pose's predicted and true (V, 3) deltas, flattened; NaN where either is zero."""
    predicted, truth = np.asarray(predicted, np.float64), np.asarray(truth, np.float64)
    dot = np.einsum("pvk,pvk->p", predicted, truth)
    norms = np.sqrt(np.einsum("pvk,pvk->p", predicted, predicted) * np.einsum("pvk,pvk->p", truth, truth))
    return np.divide(dot, norms, out=np.full_like(dot, np.nan), where=norms > 0)


def _sample_mesh(arrays: dict[str, np.ndarray], name: str) -> Mesh:
    return Mesh(
        arrays["vertices"],
        arrays["face_vertex_counts"],
        arrays["face_vertex_indices"],
        up_axis="Y",  # dataset samples keep ICT's frame (see facerig.trainer.dataset)
        meters_per_unit=float(arrays["meters_per_unit"]),
        name=name,
    )


def _rigged_entries(manifest: dict[str, Any], split: str, max_heads: int | None) -> list[dict[str, Any]]:
    """The manifest's rigged samples of ``split``, the first ``max_heads`` of them when given."""
    return [e for e in manifest["samples"] if e["split"] == split and e["kind"] == "rigged"][:max_heads]


def _labelled_poses(manifest: dict[str, Any], vocabulary: Vocabulary) -> list[str]:
    """The vocabulary's actions that the dataset has a ground truth for, in vocabulary order."""
    shapes, labelled = list(manifest["shapes"]), np.asarray(manifest["labelled"], bool)
    return [p for p in vocabulary.action_names if p in shapes and labelled[shapes.index(p)]]


def _sample_poses(arrays: dict[str, np.ndarray], shapes: list[str], poses: list[str]) -> list[str]:
    """The ``poses`` a sample has a ground truth for: its own labels rule (each studio rig has its own poses)."""
    labelled = np.asarray(arrays["labelled"], bool)
    return [p for p in poses if labelled[shapes.index(p)]]


def _rig_deltas(rig: Rig, poses: Sequence[str]) -> np.ndarray:
    return np.stack([rig.delta(p) for p in poses]).astype(np.float64)


def _predict(riggers: dict[str, Rigger], method: str, mesh: Mesh, poses: Sequence[str]) -> np.ndarray:
    """(P, V, 3) float64 deltas of ``poses`` by one method ("neutral": zeros)."""
    if method == "neutral":
        return np.zeros((len(poses), mesh.n_vertices, 3))
    return _rig_deltas(riggers[method](mesh), poses)


def evaluate(
    model: Any,
    dataset: str | Path,
    split: str = "test",
    *,
    methods: Sequence[str] = METHODS,
    extra_heads: Sequence[str | Path | Mesh] = (),
    vocabulary: Vocabulary | None = None,
    max_heads: int | None = None,
    cache_dir: str | Path | None = None,
    device: str = "auto",
    progress: bool = False,
    mirror_average: bool = False,
) -> EvalReport:
    """Evaluate a model and the two baselines on a dataset split (see the module docstring).

    Args:
        model: a :class:`facerig.nn.model.PackagedModel` or a path to one (needed when "model" is in ``methods``).
        dataset: a dataset folder built by ``facerig data ict`` (``manifest.json`` + ``samples/``).
        split: "test" (held-out identities), "val" or "train".
        methods: any of "model", "transfer", "neutral", in table order.
        extra_heads: meshes (or mesh paths) without a ground-truth rig, measured without one.
        max_heads: evaluate only the first N rigged heads of the split (quick runs).
        cache_dir: operator cache of the network pipeline; device: where the network runs.
        mirror_average: rig with ``rig_mesh(..., mirror_average=True)`` (see :func:`facerig.rigging.pipeline.rig_mesh`).

    Raises:
        DatasetError: the dataset is unreadable, or the split has no rigged head.
        ConfigError: an unknown method.
    """
    from facerig.eval.datasets import load_sample, read_manifest

    started = time.perf_counter()
    _check_methods(methods)
    root = Path(dataset)
    manifest = read_manifest(root)
    vocabulary = vocabulary or load_vocabulary()
    riggers, model_info = _riggers(model, methods, vocabulary, cache_dir, device, mirror_average)
    entries = _rigged_entries(manifest, split, max_heads)
    if not entries:
        raise DatasetError(f"the {split!r} split has no rigged heads", root)
    shapes = list(manifest["shapes"])
    poses = _labelled_poses(manifest, vocabulary)
    scorer = _Scorer(methods, poses, manifest.get("regions", []))
    from tqdm import tqdm

    for entry in tqdm(entries, desc="evaluating", unit="head", disable=not progress):
        arrays = load_sample(root / entry["file"])
        if "deltas" not in arrays:
            raise DatasetError("a rigged sample has no deltas", root / entry["file"])
        mesh = _sample_mesh(arrays, entry["name"])
        head_poses = _sample_poses(arrays, shapes, poses)
        truth = arrays["deltas"][[shapes.index(p) for p in head_poses]].astype(np.float64)  # (P_h, V, 3)
        scorer.add_head(mesh, truth, np.asarray([poses.index(p) for p in head_poses]),
                        float(arrays["meters_per_unit"]) * 1000.0,
                        lambda name: _predict(riggers, name, mesh, head_poses), arrays["regions"])
    seconds = scorer.seconds
    extra = {}
    for head in extra_heads:
        head_mesh = head if isinstance(head, Mesh) else _load_head(head)
        extra[head_mesh.name] = {
            name: _extra_head_metrics(riggers[name](head_mesh), poses, vocabulary)
            for name in methods if name != "neutral"
        }
    seconds["total"] = time.perf_counter() - started
    return EvalReport(
        dataset=root.name,
        split=split,
        model=model_info,
        heads=[e["name"] for e in entries],
        poses=poses,
        regions=scorer.regions,
        methods=scorer.metrics(),
        truth_penetration=_ratio(scorer.truth),
        truth_blink_closure=float(np.mean(scorer.truth.closures)) if scorer.truth.closures else float("nan"),
        extra_heads=extra,
        settings={
            "moving_threshold_mm": MOVING_THRESHOLD_MM,
            "penetration_tolerance_mm": PENETRATION_TOLERANCE_MM,
            "vocabulary_id": vocabulary.id,
            "dataset_seed": manifest.get("seed"),
            "transfer": "template displacement transfer (facerig.rigging.transfer), bundled ICT template",
        },
        seconds={k: round(v, 3) for k, v in seconds.items()},
    )


def evaluate_rigs(
    model: Any,
    folder: str | Path,
    *,
    methods: Sequence[str] = METHODS,
    mapping: str | Path | dict[str, str | None] | None = None,
    select: str | None = None,
    vocabulary: Vocabulary | None = None,
    cache_dir: str | Path | None = None,
    device: str = "auto",
    progress: bool = False,
    mirror_average: bool = False,
) -> EvalReport:
    """Evaluate a model and the baselines against the rigged heads a user brings (glTF morph targets, USD
    blend shapes; :mod:`facerig.io.rigged_heads`), with the same numbers as :func:`evaluate`.

    Each head is scored on the FACS poses its file gives (unlabelled poses are left out, not taken as zero),
    in millimetres from the file's units (glTF: metres; USD: metersPerUnit). A head that cannot be read as
    FACS deltas is listed in ``report.rigs`` with the reason and the others are still scored.

    Args:
        model: as for :func:`evaluate` (needed when "model" is in ``methods``).
        folder: searched recursively for files a blend-shape reader takes (:func:`find_rigged_heads`).
        mapping: a user mapping file or dict ``{their shape name: FACS name or None}`` for every head.
        select: keep only meshes whose node/prim (or an ancestor) name contains this.

    Raises:
        DatasetError: the folder holds no rigged head, or every head was refused.
        ConfigError: an unknown method.
    """
    from facerig.errors import FacerigError
    from facerig.io.rigged_heads import find_rigged_heads, load_mapping, load_rigged_head

    started = time.perf_counter()
    _check_methods(methods)
    root = Path(folder)
    vocabulary = vocabulary or load_vocabulary()
    if isinstance(mapping, (str, Path)):
        mapping = load_mapping(mapping, vocabulary)
    files = find_rigged_heads(root)
    if not files:
        raise DatasetError("no rigged head files (glTF/GLB or USD) in the folder", root)
    riggers, model_info = _riggers(model, methods, vocabulary, cache_dir, device, mirror_average)
    actions = list(vocabulary.action_names)
    scorer = _Scorer(methods, actions, [])
    rigs: dict[str, dict[str, Any]] = {}
    heads: list[str] = []
    units: dict[str, float] = {}
    from tqdm import tqdm

    for path in tqdm(files, desc="evaluating", unit="head", disable=not progress):
        name = path.relative_to(root).as_posix()
        try:
            head = load_rigged_head(path, mapping, select=select, vocabulary=vocabulary)
        except FacerigError as error:
            matched = getattr(error, "report", None)
            rigs[name] = {"refused": error.reason, **({"unmatched": matched.unmatched} if matched else {})}
            continue
        rigs[name] = head.report.to_dict()
        heads.append(name)
        units[name] = head.meters_per_unit
        poses = list(head.report.labelled)
        scorer.add_head(head.mesh, head.deltas[head.labelled].astype(np.float64),
                        np.asarray([actions.index(p) for p in poses]), head.meters_per_unit * 1000.0,
                        lambda method: _predict(riggers, method, head.mesh, poses))
    if not heads:
        raise DatasetError(f"every rigged head was refused ({len(files)}): " +
                           "; ".join(f"{n}: {r['refused']}" for n, r in list(rigs.items())[:3]), root)
    found = set(np.concatenate(scorer.pose_ids).tolist())
    poses = [a for i, a in enumerate(actions) if i in found]
    metrics = scorer.metrics()
    for m in metrics.values():  # report only the poses some head has
        m.per_pose, m.per_pose_gain, m.per_pose_cosine = (
            {p: table[p] for p in poses} for table in (m.per_pose, m.per_pose_gain, m.per_pose_cosine))
    seconds = dict(scorer.seconds, total=time.perf_counter() - started)
    return EvalReport(
        dataset=root.name,
        split="rigs",
        model=model_info,
        heads=heads,
        poses=poses,
        regions=[],
        methods=metrics,
        truth_penetration=_ratio(scorer.truth),
        truth_blink_closure=float(np.mean(scorer.truth.closures)) if scorer.truth.closures else float("nan"),
        settings={
            "moving_threshold_mm": MOVING_THRESHOLD_MM,
            "penetration_tolerance_mm": PENETRATION_TOLERANCE_MM,
            "vocabulary_id": vocabulary.id,
            "meters_per_unit": units,
            "transfer": "template displacement transfer (facerig.rigging.transfer), bundled ICT template",
        },
        seconds={k: round(v, 3) for k, v in seconds.items()},
        rigs=rigs,
    )


def _check_methods(methods: Sequence[str]) -> None:
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ConfigError(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")


def report_path(path: str | Path) -> str:
    """A path as a report names it: relative to the working directory when it lies under it, else absolute. A report
    committed from a checkout (``docs/eval``) must not carry one machine's absolute path."""
    path = Path(path).resolve()
    try:
        return path.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def _riggers(model: Any, methods: Sequence[str], vocabulary: Vocabulary, cache_dir: str | Path | None,
             device: str, mirror_average: bool = False) -> tuple[dict[str, Rigger], dict[str, Any]]:
    riggers: dict[str, Rigger] = {}
    info: dict[str, Any] = {}
    if "model" in methods:
        from facerig.rigging.pipeline import load_model, rig_mesh

        packaged = load_model(model, device)
        riggers["model"] = lambda mesh: rig_mesh(mesh, packaged, vocabulary=vocabulary, cache_dir=cache_dir,
                                                 mirror_average=mirror_average)
        info = {"name": packaged.name, "id": packaged.model_id, "mirror_average": mirror_average,
                "offset_floor": packaged.offset_floor,
                "source": report_path(packaged.source) if packaged.source else None}
    if "transfer" in methods:
        from facerig.rigging.transfer import load_template, rig_by_transfer

        template = load_template()
        riggers["transfer"] = lambda mesh: rig_by_transfer(mesh, vocabulary=vocabulary, template=template)
    return riggers, info


@dataclass(frozen=True)
class FloorChoice:
    """The result of :func:`choose_offset_floor`: the chosen floor and every candidate's MAE and Q95 (mm)."""

    floor: float
    mae_mm: dict[float, float]
    q95_mm: dict[float, float]
    heads: int


def choose_offset_floor(
    model: Any,
    dataset: str | Path,
    split: str = "val",
    *,
    floors: Sequence[float] = OFFSET_FLOORS,
    max_heads: int | None = None,
    cache_dir: str | Path | None = None,
    mirror_average: bool = False,
) -> FloorChoice:
    """The offset floor (canonical units, :func:`facerig.rigging.pipeline.shrink_offsets`) with the lowest MAE on a split.

    Every rigged head of the split is rigged once with the floor off; each candidate then shrinks those
    offsets (converted to the head's units through its canonical scale, as the rig does) and is measured as
    :func:`evaluate` measures. Choose on ``val``: the test split is what the accuracy tables report.

    Raises:
        DatasetError: the dataset is unreadable, or the split has no rigged head.
    """
    from facerig.rigging.pipeline import load_model, rig_mesh, shrink_offsets
    from facerig.eval.datasets import load_sample, read_manifest

    root = Path(dataset)
    manifest = read_manifest(root)
    packaged = load_model(model, "cpu")
    vocabulary = load_vocabulary()
    shapes = list(manifest["shapes"])
    poses = _labelled_poses(manifest, vocabulary)
    entries = _rigged_entries(manifest, split, max_heads)
    if not entries:
        raise DatasetError(f"the {split!r} split has no rigged heads to choose an offset floor on", root)
    errors: dict[float, list[np.ndarray]] = {float(floor): [] for floor in floors}
    for entry in entries:
        arrays = load_sample(root / entry["file"])
        rig = rig_mesh(_sample_mesh(arrays, entry["name"]), packaged, vocabulary=vocabulary, cache_dir=cache_dir,
                       mirror_average=mirror_average, offset_floor=0.0)
        per_unit = float(rig.metadata["canonical_frame"]["scale"])  # canonical length per mesh unit
        mm = float(arrays["meters_per_unit"]) * 1000.0
        head_poses = _sample_poses(arrays, shapes, poses)
        truth = arrays["deltas"][[shapes.index(p) for p in head_poses]].astype(np.float64)
        predicted = _rig_deltas(rig, head_poses)
        for floor in errors:
            errors[floor].append(vertex_errors(shrink_offsets(predicted, floor / per_unit), truth, mm).ravel())
    pooled = {floor: np.concatenate(values) for floor, values in errors.items()}
    mae = {floor: float(values.mean()) for floor, values in pooled.items()}
    q95 = {floor: float(np.quantile(values, 0.95)) for floor, values in pooled.items()}
    return FloorChoice(min(mae, key=mae.__getitem__), mae, q95, len(entries))


def _ratio(pool: _Pool) -> float:
    return pool.crossings / pool.checks if pool.checks else float("nan")


def _summarise(pool: _Pool, pose_ids: list[np.ndarray], poses: list[str], moving: list[np.ndarray],
               region_ids: list[np.ndarray], regions: list[str]) -> MethodMetrics:
    errors = np.concatenate([e.ravel() for e in pool.errors])
    gain = np.concatenate([e.ravel() for e in pool.gain_errors])
    is_moving = np.concatenate([m.ravel() for m in moving])
    pose_of = np.concatenate([np.repeat(ids, e.shape[1]) for ids, e in zip(pose_ids, pool.errors)])
    region_of = np.concatenate([np.tile(r, len(ids)) for ids, r in zip(pose_ids, region_ids)])
    head_pose = np.concatenate(pose_ids)
    cosines = np.concatenate(pool.cosines)
    defined = np.isfinite(cosines)
    cosine_count = np.bincount(head_pose[defined], minlength=len(poses))
    cosine_sum = np.bincount(head_pose[defined], cosines[defined], len(poses))
    per_pose_cosine = np.divide(cosine_sum, cosine_count, out=np.full(len(poses), np.nan), where=cosine_count > 0)
    mae, q95 = mae_q95(errors)
    mae_moving, q95_moving = mae_q95(errors[is_moving])
    mae_gain, q95_gain = mae_q95(gain)
    count = np.bincount(pose_of, minlength=len(poses))
    per_pose = np.bincount(pose_of, errors, len(poses)) / np.maximum(count, 1)
    per_pose_gain = np.bincount(pose_of, gain, len(poses)) / np.maximum(count, 1)
    per_region = {}
    for i, region in enumerate(regions):
        selected = region_of == i
        if selected.any():
            per_region[region] = float(errors[selected].mean())
    return MethodMetrics(
        mae=mae, q95=q95, mae_moving=mae_moving, q95_moving=q95_moving, mae_gain=mae_gain, q95_gain=q95_gain,
        penetration=_ratio(pool),
        per_pose={p: float(v) for p, v in zip(poses, per_pose)},
        per_pose_gain={p: float(v) for p, v in zip(poses, per_pose_gain)},
        per_region=per_region,
        per_pose_cosine={p: float(v) for p, v in zip(poses, per_pose_cosine)},
        blink_closure=float(np.mean(pool.closures)) if pool.closures else float("nan"),
    )


def _load_head(path: str | Path) -> Mesh:
    from facerig.io import load_mesh

    path = Path(path)
    # The robot ships its head as a node of a whole character.
    return load_mesh(path, select="Head") if path.suffix.lower() in (".glb", ".gltf") else load_mesh(path)


def _extra_head_metrics(rig: Rig, poses: Sequence[str], vocabulary: Vocabulary) -> ExtraHeadMetrics:
    mesh = rig.neutral
    frame = canonical_frame(mesh)
    canonical_x = frame.to_canonical(mesh.vertices)[:, 0]
    deltas = _rig_deltas(rig, poses)
    canonical = deltas * frame.scale  # rotation keeps lengths: canonical size = scale × input size
    peaks = np.linalg.norm(canonical, axis=2).max(axis=1)
    side = {pose.full: pose.side for pose in vocabulary.actions}
    shares = [side_share(deltas[i], canonical_x, side[p]) for i, p in enumerate(poses) if side.get(p) in ("l", "r")]
    shares = [s for s in shares if np.isfinite(s)]
    # Files without units: the tolerance is the 0.1 mm of an ICT-sized head, as a fraction of the cranium.
    tolerance = PENETRATION_TOLERANCE_MM / ICT_CRANIUM_RADIUS_MM / frame.scale
    crossings, checks = penetration_counts(mesh.vertices, mesh.triangles, deltas, tolerance=tolerance)
    return ExtraHeadMetrics(
        side_correct=float(np.mean(shares)) if shares else float("nan"),
        peak_median=float(np.median(peaks)),
        peak_max=float(peaks.max()),
        moving_poses=int(np.count_nonzero(peaks > 0)),
        penetration=crossings / checks if checks else float("nan"),
    )
