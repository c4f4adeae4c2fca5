"""Accuracy evaluation (SPEC §9): the network against the neutral and deformation-transfer baselines.

``evaluate(model, dataset, split)`` rigs every rigged head of a dataset split (held-out identities, each
re-meshed) three ways and compares each rig with the ground truth:

- ``model``: :func:`facerig.pipeline.rig_mesh` with the given packaged model;
- ``transfer``: :func:`facerig.transfer.rig_by_transfer` (template deformation transfer);
- ``neutral``: zero displacement for every pose (the floor any method must beat).

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

from facerig.canonical import canonical_frame
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
ICT_CRANIUM_RADIUS_MM = 94.3  # facerig.canonical's cranium radius of the ICT neutral
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
    extra_heads: dict[str, dict[str, ExtraHeadMetrics]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

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
        lines = [
            f"# facerig accuracy: {self.dataset} ({self.split} split)",
            "",
            f"{model}. {len(self.heads)} heads, {len(self.poses)} labelled FACS poses. Errors in mm; "
            f"'moving' = vertices whose true displacement exceeds {self.settings.get('moving_threshold_mm')} mm; "
            "'gain' = after a best least-squares gain per pose and head.",
            "",
            "| method | MAE | Q95 | MAE moving | Q95 moving | MAE gain | Q95 gain | penetration |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name in methods:
            m = self.methods[name]
            values = (m.mae, m.q95, m.mae_moving, m.q95_moving, m.mae_gain, m.q95_gain)
            lines.append(f"| {name} | " + " | ".join(_fmt(v) for v in values) + f" | {_fmt(m.penetration, 4)} |")
        lines.append(f"| ground truth | | | | | | | {_fmt(self.truth_penetration, 4)} |")
        lines += ["", "## MAE per region (mm)", "", "| region | " + " | ".join(methods) + " |",
                  "|---|" + "---|" * len(methods)]
        for region in self.regions:
            cells = [_fmt(self.methods[n].per_region.get(region)) for n in methods]
            lines.append(f"| {region} | " + " | ".join(cells) + " |")
        lines += ["", "## MAE per pose (mm; raw / after gain)", "", "| pose | " + " | ".join(methods) + " |",
                  "|---|" + "---|" * len(methods)]
        for pose in self.poses:
            cells = [f"{_fmt(self.methods[n].per_pose[pose])} / {_fmt(self.methods[n].per_pose_gain[pose])}"
                     for n in methods]
            lines.append(f"| {pose} | " + " | ".join(cells) + " |")
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
    """Per-(pose, vertex) errors of one method, collected head by head."""

    errors: list[np.ndarray] = field(default_factory=list)  # (P, V) mm per head
    gain_errors: list[np.ndarray] = field(default_factory=list)
    crossings: int = 0
    checks: int = 0


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


def _rig_deltas(rig: Rig, poses: Sequence[str]) -> np.ndarray:
    return np.stack([rig.delta(p) for p in poses]).astype(np.float64)


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
        model: a :class:`facerig.model.PackagedModel` or a path to one (needed when "model" is in ``methods``).
        dataset: a dataset folder built by ``facerig data ict`` (``manifest.json`` + ``samples/``).
        split: "test" (held-out identities), "val" or "train".
        methods: any of "model", "transfer", "neutral", in table order.
        extra_heads: meshes (or mesh paths) without a ground-truth rig, measured without one.
        max_heads: evaluate only the first N rigged heads of the split (quick runs).
        cache_dir: operator cache of the network pipeline; device: where the network runs.
        mirror_average: rig with ``rig_mesh(..., mirror_average=True)`` (see :func:`facerig.pipeline.rig_mesh`).

    Raises:
        DatasetError: the dataset is unreadable, or the split has no rigged head.
        ConfigError: an unknown method.
    """
    from facerig.trainer.dataset import load_sample, read_manifest

    started = time.perf_counter()
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ConfigError(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
    root = Path(dataset)
    manifest = read_manifest(root)
    vocabulary = vocabulary or load_vocabulary()
    riggers, model_info = _riggers(model, methods, vocabulary, cache_dir, device, mirror_average)
    entries = _rigged_entries(manifest, split, max_heads)
    if not entries:
        raise DatasetError(f"the {split!r} split has no rigged heads", root)
    shapes = list(manifest["shapes"])
    poses = _labelled_poses(manifest, vocabulary)
    rows = [shapes.index(p) for p in poses]
    regions = list(manifest.get("regions", []))

    pools = {name: _Pool() for name in methods}
    truth_pool = _Pool()
    moving: list[np.ndarray] = []
    region_ids: list[np.ndarray] = []
    seconds = {name: 0.0 for name in methods}
    from tqdm import tqdm

    for entry in tqdm(entries, desc="evaluating", unit="head", disable=not progress):
        arrays = load_sample(root / entry["file"])
        if "deltas" not in arrays:
            raise DatasetError("a rigged sample has no deltas", root / entry["file"])
        mesh = _sample_mesh(arrays, entry["name"])
        triangles = mesh.triangles  # the fan triangulation the dataset's triangle indices use
        mm = float(arrays["meters_per_unit"]) * 1000.0
        truth = arrays["deltas"][rows].astype(np.float64)  # (P, V, 3)
        skin = skin_mask(mesh.vertices, triangles)
        tolerance = PENETRATION_TOLERANCE_MM / mm
        moving.append(np.linalg.norm(truth, axis=2) * mm > MOVING_THRESHOLD_MM)
        region_ids.append(np.asarray(arrays["regions"], np.int64))
        c, n = penetration_counts(mesh.vertices, triangles, truth, tolerance=tolerance, skin=skin)
        truth_pool.crossings += c
        truth_pool.checks += n
        for name in methods:
            tick = time.perf_counter()
            predicted = _rig_deltas(riggers[name](mesh), poses) if name != "neutral" else np.zeros_like(truth)
            seconds[name] += time.perf_counter() - tick
            pool = pools[name]
            pool.errors.append(vertex_errors(predicted, truth, mm))
            gains = best_gains(predicted, truth)
            pool.gain_errors.append(vertex_errors(predicted * gains[:, None, None], truth, mm))
            c, n = penetration_counts(mesh.vertices, triangles, predicted, tolerance=tolerance, skin=skin)
            pool.crossings += c
            pool.checks += n

    metrics = {name: _summarise(pools[name], poses, moving, region_ids, regions) for name in methods}
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
        regions=regions,
        methods=metrics,
        truth_penetration=_ratio(truth_pool),
        extra_heads=extra,
        settings={
            "moving_threshold_mm": MOVING_THRESHOLD_MM,
            "penetration_tolerance_mm": PENETRATION_TOLERANCE_MM,
            "vocabulary_id": vocabulary.id,
            "dataset_seed": manifest.get("seed"),
            "transfer": "template displacement transfer (facerig.transfer), bundled ICT template",
        },
        seconds={k: round(v, 3) for k, v in seconds.items()},
    )


def _riggers(model: Any, methods: Sequence[str], vocabulary: Vocabulary, cache_dir: str | Path | None,
             device: str, mirror_average: bool = False) -> tuple[dict[str, Rigger], dict[str, Any]]:
    riggers: dict[str, Rigger] = {}
    info: dict[str, Any] = {}
    if "model" in methods:
        from facerig.pipeline import load_model, rig_mesh

        packaged = load_model(model, device)
        riggers["model"] = lambda mesh: rig_mesh(mesh, packaged, vocabulary=vocabulary, cache_dir=cache_dir,
                                                 mirror_average=mirror_average)
        info = {"name": packaged.name, "id": packaged.model_id, "mirror_average": mirror_average,
                "offset_floor": packaged.offset_floor,
                "source": str(packaged.source) if packaged.source else None}
    if "transfer" in methods:
        from facerig.transfer import load_template, rig_by_transfer

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
    """The offset floor (canonical units, :func:`facerig.pipeline.shrink_offsets`) with the lowest MAE on a split.

    Every rigged head of the split is rigged once with the floor off; each candidate then shrinks those
    offsets (converted to the head's units through its canonical scale, as the rig does) and is measured as
    :func:`evaluate` measures. Choose on ``val``: the test split is what the accuracy tables report.

    Raises:
        DatasetError: the dataset is unreadable, or the split has no rigged head.
    """
    from facerig.pipeline import load_model, rig_mesh, shrink_offsets
    from facerig.trainer.dataset import load_sample, read_manifest

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
        truth = arrays["deltas"][[shapes.index(p) for p in poses]].astype(np.float64)
        predicted = _rig_deltas(rig, poses)
        for floor in errors:
            errors[floor].append(vertex_errors(shrink_offsets(predicted, floor / per_unit), truth, mm).ravel())
    pooled = {floor: np.concatenate(values) for floor, values in errors.items()}
    mae = {floor: float(values.mean()) for floor, values in pooled.items()}
    q95 = {floor: float(np.quantile(values, 0.95)) for floor, values in pooled.items()}
    return FloorChoice(min(mae, key=mae.__getitem__), mae, q95, len(entries))


def _ratio(pool: _Pool) -> float:
    return pool.crossings / pool.checks if pool.checks else float("nan")


def _summarise(pool: _Pool, poses: list[str], moving: list[np.ndarray], region_ids: list[np.ndarray],
               regions: list[str]) -> MethodMetrics:
    errors = np.concatenate([e.ravel() for e in pool.errors])
    gain = np.concatenate([e.ravel() for e in pool.gain_errors])
    is_moving = np.concatenate([m.ravel() for m in moving])
    pose_of = np.concatenate([np.repeat(np.arange(len(poses)), e.shape[1]) for e in pool.errors])
    region_of = np.concatenate([np.tile(r, len(poses)) for r in region_ids])
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
