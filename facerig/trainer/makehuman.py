"""MakeHuman as a training source: read the CC0 assets (folder or .tar archive) into a cropped rigged head model.

The assets (``MakeHuman-assets/``, from makehumancommunity/mpfb2) hold ``3dobjs/base.obj`` (a full body,
19,158 vertices, quads, decimetres, +Y up, face along +Z, +X the character's left), sparse
``targets/**.target.gz`` offsets on its vertices (gzip text, ``index dx dy dz`` per line), the modifier
list ``targets/target.json`` and two sets of 34 expression units (``targets/expression/units/{african,asian}``).

What this module makes of them (:class:`MakeHumanModel`):

- **The head**: the ``body`` group's faces whose corners all lie above :data:`HEAD_MIN_Y` on the base
  mesh (head and upper neck), plus the eyeballs, teeth, tongue and eyelashes as their own parts; the proxy
  helpers (hair, tights, skirt, genital) and the ``joint-*`` marker cubes are dropped. The crop is decided
  once on the base mesh, so every identity shares one topology. Positions are converted to centimetres,
  the ICT builder's unit, so one re-meshing and augmentation path serves both sources.
- **Identity targets**, restricted to the head's vertices: ethnic (ethnicity × gender × age), universal
  (gender × age × muscle × weight), proportions, and the local face modifiers of :data:`MODIFIER_GROUPS`.
  :func:`sample_identity` mixes them as MakeHuman's sliders do (:class:`IdentityMix`).
- **Expression units** per ethnic set, mapped to the vocabulary's FACS actions by
  ``facerig/data/makehuman_facs.json`` (:func:`load_facs_map`, which says why for every unit).

An archive (``.tar.xz``, ``.tar.gz``, ``.tar``) is streamed member by member in memory, never unpacked.
"""

from __future__ import annotations

import gzip
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facerig.errors import DatasetError
from facerig.geometry import fan_triangles
from facerig.trainer.assets import FileStream, archive_files, read_capped, source_files
from facerig.trainer.ict import PolygonModel
from facerig.trainer.source import RiggedSource

__all__ = [
    "EXPRESSION_SETS",
    "MakeHumanSource",
    "build_makehuman_dataset",
    "HEAD_MIN_Y",
    "IdentityMix",
    "MakeHumanModel",
    "MODIFIER_GROUPS",
    "FacsMap",
    "load_facs_map",
    "load_makehuman",
    "sample_identity",
]

BASE_FILE = "3dobjs/base.obj"
TARGET_INDEX_FILE = "targets/target.json"
LICENCE_FILE = "LICENSE.ASSETS.md"
DECIMETRE_IN_CM = 10.0
# The head and upper neck lie above this height on base.obj (decimetres; the chin is near 6.1).
HEAD_MIN_Y = 5.95
EXPRESSION_SETS = ("african", "asian")
# Local identity modifier groups of targets/target.json that shape a head.
MODIFIER_GROUPS = ("head", "eyes", "nose", "mouth", "chin", "cheek", "forehead", "eyebrows", "ears", "neck")
# base.obj groups kept with the skin, and the part (ICT part name) each becomes.
HELPER_PARTS = {
    "helper-l-eye": "eyeball_left",
    "helper-r-eye": "eyeball_right",
    "helper-upper-teeth": "teeth",
    "helper-lower-teeth": "teeth",
    "helper-tongue": "gums_tongue",
    "helper-l-eyelashes-1": "eyelashes_left",
    "helper-l-eyelashes-2": "eyelashes_left",
    "helper-r-eyelashes-1": "eyelashes_right",
    "helper-r-eyelashes-2": "eyelashes_right",
}
SKIN_GROUP = "body"
_ETHNICITIES = ("african", "asian", "caucasian")
_LEVELS = ("min", "average", "max")
# Bounds on what a source may hold (the assets have 19,158 vertices and about 700 targets).
_MAX_VERTICES = 200_000
_MAX_TARGETS = 5_000
FACS_MAP_FILE = Path(__file__).resolve().parent.parent / "data" / "makehuman_facs.json"


# ---------------------------------------------------------------------------------------------- reading
def _wanted(relative: str) -> bool:
    return relative in (BASE_FILE, TARGET_INDEX_FILE, LICENCE_FILE) or (
        relative.startswith("targets/") and relative.endswith(".target.gz")
    )


def _folder_files(folder: Path) -> FileStream:
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_file() and not path.is_symlink() and _wanted(relative):
            yield relative, read_capped(path, relative, folder)


def _archive_files(archive_path: Path) -> FileStream:
    """Stream the archive once; member paths are taken relative to their first folder (``MakeHuman-assets/``)."""

    def pick(member: tarfile.TarInfo) -> str | None:
        parts = Path(member.name).parts
        if len(parts) < 2:
            return None
        relative = "/".join(parts[1:])
        if not _wanted(relative):
            return None
        return relative

    return archive_files(archive_path, pick)


def _parse_obj(data: bytes, where: Path) -> tuple[np.ndarray, list[np.ndarray], list[str]]:
    """base.obj: (V, 3) vertices, per group the (P, k) polygons, and the group names (file order)."""
    vertices: list[bytes] = []
    groups: dict[str, list[list[int]]] = {}
    current = "default"
    for line in data.split(b"\n"):
        if line.startswith(b"v "):
            vertices.append(line[2:])
        elif line.startswith(b"g "):
            current = line[2:].strip().decode("utf-8", errors="replace")
        elif line.startswith(b"f "):
            groups.setdefault(current, []).append([int(t.split(b"/")[0]) - 1 for t in line[2:].split()])
    if not vertices or not groups:
        raise DatasetError(f"{BASE_FILE} has no vertices or no faces", where)
    if len(vertices) > _MAX_VERTICES:
        raise DatasetError(f"{BASE_FILE} has {len(vertices)} vertices, more than {_MAX_VERTICES}", where)
    values = np.fromstring(b" ".join(vertices), sep=" ")
    if values.size != 3 * len(vertices) or not np.isfinite(values).all():
        raise DatasetError(f"{BASE_FILE}: malformed vertex lines", where)
    names = list(groups)
    polygons = []
    for name in names:
        faces = groups[name]
        if len({len(f) for f in faces}) != 1 or len(faces[0]) not in (3, 4):
            raise DatasetError(f"{BASE_FILE}: group {name} mixes polygon sizes", where)
        array = np.array(faces, np.int64)
        if array.min() < 0 or array.max() >= len(vertices):
            raise DatasetError(f"{BASE_FILE}: group {name} has a face index out of range", where)
        polygons.append(array)
    return values.reshape(-1, 3), polygons, names


def _parse_target(data: bytes, name: str, n_vertices: int, where: Path) -> tuple[np.ndarray, np.ndarray]:
    """(K,) vertex indices and (K, 3) offsets of one ``.target.gz`` (decimetres)."""
    try:
        text = gzip.decompress(data)
    except (OSError, EOFError) as exc:
        raise DatasetError(f"{name} is not gzip data ({exc})", where) from None
    lines = [line for line in text.split(b"\n") if line.strip() and not line.lstrip().startswith(b"#")]
    values = np.fromstring(b" ".join(lines), sep=" ") if lines else np.zeros(0)
    if values.size != 4 * len(lines) or not np.isfinite(values).all():
        raise DatasetError(f"{name}: malformed offset lines (expected 'index dx dy dz')", where)
    values = values.reshape(-1, 4)
    index = values[:, 0].astype(np.int64)
    if len(index) and (index.min() < 0 or index.max() >= n_vertices or (values[:, 0] != index).any()):
        raise DatasetError(f"{name}: vertex index out of range", where)
    return index, values[:, 1:]


@dataclass(frozen=True, eq=False)
class MakeHumanModel(PolygonModel):
    """The cropped MakeHuman head, in centimetres (+Y up, face along +Z, +X the character's left).

    Attributes:
        neutral: (V, 3) float64 base head positions.
        quads: (P, 4) int64 polygons (base.obj is all quads).
        groups: (V,) the base.obj group name of each vertex (a vertex belongs to one group).
        base_index: (V,) int64 the vertex's index in base.obj (what target files index).
        targets: target name (path under ``targets/`` without ``.target.gz``) -> (V, 3) float32 offset in cm.
        modifiers: targets/target.json's categories of :data:`MODIFIER_GROUPS` (name, sided, opposites).
        licence: the CC0 notice shipped with the assets, when the source had it.
        source: the folder or archive it was read from.
    """

    neutral: np.ndarray
    quads: np.ndarray
    groups: np.ndarray
    base_index: np.ndarray
    targets: dict[str, np.ndarray]
    modifiers: tuple[dict[str, Any], ...]
    licence: str | None
    source: str

    @property
    def face_vertex_counts(self) -> np.ndarray:
        """(P,) int32: base.obj is all quads."""
        return np.full(len(self.quads), 4, np.int32)

    @property
    def face_vertex_indices(self) -> np.ndarray:
        """(4P,) int64 quad corners, flattened."""
        return self.quads.ravel()

    def target(self, name: str) -> np.ndarray:
        """(V, 3) float32 offset of one target, in cm."""
        if name not in self.targets:
            raise DatasetError(f"no target {name}", self.source)
        return self.targets[name]

    def expression_unit(self, ethnic_set: str, unit: str) -> np.ndarray:
        """(V, 3) float32 offset of one expression unit of one ethnic set, in cm."""
        return self.target(f"expression/units/{ethnic_set}/{unit}")


def load_makehuman(source: str | Path) -> MakeHumanModel:
    """Read the MakeHuman assets from the ``MakeHuman-assets/`` folder or its ``.tar.xz``/``.tar.gz``/``.tar``.

    Raises:
        DatasetError: naming the source and the problem (no base.obj, malformed target, index out of range,
            an unreadable archive).
    """
    source = Path(source)
    stream = source_files(source, _folder_files, _archive_files,
                          "MakeHuman source not found (expected MakeHuman-assets/ or its archive)")
    raw_targets: dict[str, bytes] = {}
    base = index_json = licence = None
    for relative, data in stream:
        if relative == BASE_FILE:
            base = data
        elif relative == TARGET_INDEX_FILE:
            index_json = data
        elif relative == LICENCE_FILE:
            licence = data.decode("utf-8", errors="replace")
        else:
            raw_targets[relative[len("targets/") : -len(".target.gz")]] = data
            if len(raw_targets) > _MAX_TARGETS:
                raise DatasetError(f"more than {_MAX_TARGETS} target files", source)
    if base is None:
        raise DatasetError(f"MakeHuman source lacks {BASE_FILE}", source)
    if index_json is None:
        raise DatasetError(f"MakeHuman source lacks {TARGET_INDEX_FILE}", source)
    try:
        categories = json.loads(index_json)
        modifiers = tuple(
            {"name": c["name"], "sided": bool(c["has_left_and_right"]), "opposites": dict(c.get("opposites", {})),
             "targets": list(c["targets"])}
            for group in MODIFIER_GROUPS for c in categories[group]["categories"]
        )  # fmt: skip
    except (ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{TARGET_INDEX_FILE} is malformed ({exc})", source) from None

    vertices, polygons, names = _parse_obj(base, source)
    keep_polygons, keep_groups = [], []
    for name, faces in zip(names, polygons):
        if name == SKIN_GROUP:
            faces = faces[(vertices[faces, 1] > HEAD_MIN_Y).all(axis=1)]
        elif name not in HELPER_PARTS:
            continue  # proxy helpers and joint cubes
        keep_polygons.append(faces)
        keep_groups += [name] * len(faces)
    missing = [g for g in (SKIN_GROUP, *HELPER_PARTS) if g not in names]
    if missing:
        raise DatasetError(f"{BASE_FILE} lacks the group {missing[0]}", source)
    if {len(p[0]) for p in keep_polygons} != {4}:
        raise DatasetError(f"{BASE_FILE}: the head is not all quads", source)
    quads = np.concatenate(keep_polygons)
    base_index, local = np.unique(quads, return_inverse=True)
    quads = local.reshape(quads.shape)
    group_of_vertex = np.empty(len(base_index), object)
    group_of_vertex[quads.ravel()] = np.repeat(np.array(keep_groups, object), 4)
    slot = np.full(len(vertices), -1, np.int64)
    slot[base_index] = np.arange(len(base_index))

    targets: dict[str, np.ndarray] = {}
    for name, data in raw_targets.items():
        index, offsets = _parse_target(data, name, len(vertices), source)
        dense = np.zeros((len(base_index), 3), np.float32)
        inside = slot[index] >= 0
        dense[slot[index[inside]]] = offsets[inside] * DECIMETRE_IN_CM
        targets[name] = dense
    for ethnic_set in EXPRESSION_SETS:
        if not any(name.startswith(f"expression/units/{ethnic_set}/") for name in targets):
            raise DatasetError(f"MakeHuman source lacks targets/expression/units/{ethnic_set}/", source)
    return MakeHumanModel(
        neutral=vertices[base_index] * DECIMETRE_IN_CM,
        quads=quads,
        groups=group_of_vertex.astype(str),
        base_index=base_index,
        targets=targets,
        modifiers=modifiers,
        licence=licence,
        source=str(source),
    )


# ---------------------------------------------------------------------------------------------- identities
@dataclass(frozen=True)
class IdentityMix:
    """One MakeHuman identity: macro slider values, local modifier weights and its expression-set blend.

    Attributes:
        ethnicity: (african, asian, caucasian) proportions summing to 1.
        gender: 0 female … 1 male. age: 0 baby, 0.1875 child, 0.5 young, 1 old (MakeHuman's slider).
        muscle, weight, proportions: 0 … 1 (0.5 average; proportions 1 ideal, 0 uncommon).
        targets: target name -> weight (every identity target the mix uses, local modifiers included).
        expression_sets: ethnic set name -> weight (sums to 1): the units this identity wears.
    """

    ethnicity: tuple[float, float, float]
    gender: float
    age: float
    muscle: float
    weight: float
    proportions: float
    targets: dict[str, float] = field(default_factory=dict)
    expression_sets: dict[str, float] = field(default_factory=dict)


def _segments(value: float, stops: tuple[float, ...], names: tuple[str, ...]) -> dict[str, float]:
    """Linear weights of the two named stops around ``value`` (MakeHuman's piecewise macro sliders)."""
    value = float(np.clip(value, stops[0], stops[-1]))
    for i in range(len(stops) - 1):
        lo, hi = stops[i], stops[i + 1]
        if value <= hi:
            t = (value - lo) / (hi - lo)
            return {k: w for k, w in ((names[i], 1.0 - t), (names[i + 1], t)) if w > 0}
    return {names[-1]: 1.0}


def _macro_targets(mix: IdentityMix) -> dict[str, float]:
    """Weights of the macrodetails targets for the mix's sliders (MakeHuman's combination rule)."""
    gender = {"female": 1.0 - mix.gender, "male": mix.gender}
    age = _segments(mix.age, (0.0, 0.1875, 0.5, 1.0), ("baby", "child", "young", "old"))
    muscle = _segments(mix.muscle, (0.0, 0.5, 1.0), tuple(f"{x}muscle" for x in _LEVELS))
    weight = _segments(mix.weight, (0.0, 0.5, 1.0), tuple(f"{x}weight" for x in _LEVELS))
    proportions = {"idealproportions": max(mix.proportions - 0.5, 0.0) * 2,
                   "uncommonproportions": max(0.5 - mix.proportions, 0.0) * 2}  # fmt: skip
    out: dict[str, float] = {}

    def add(name: str, w: float) -> None:
        if w > 1e-6:
            out[name] = out.get(name, 0.0) + w

    for g, wg in gender.items():
        for a, wa in age.items():
            for e, we in zip(_ETHNICITIES, mix.ethnicity):
                add(f"macrodetails/{e}-{g}-{a}", we * wg * wa)
            for m, wm in muscle.items():
                for w_name, ww in weight.items():
                    add(f"macrodetails/universal-{g}-{a}-{m}-{w_name}", wg * wa * wm * ww)
                    if a != "baby":  # MakeHuman has no proportions for babies
                        for p, wp in proportions.items():
                            add(f"macrodetails/proportions/{g}-{a}-{m}-{w_name}-{p}", wg * wa * wm * ww * wp)
    return out


def sample_identity(model: MakeHumanModel, rng: np.random.Generator, spread: float = 1.0) -> IdentityMix:
    """A random identity: macro sliders, then every local face modifier with a small random value.

    Args:
        model: the loaded assets (for the modifier list and the targets present).
        rng: the identity's own generator (seeded by the builder per identity).
        spread: scale of the local modifier values (1: N(0, 0.35) clipped to [-1, 1]; larger for stylised
            unrigged heads).
    """
    ethnicity = tuple(float(x) for x in rng.dirichlet((0.7, 0.7, 0.7)))
    mix = IdentityMix(
        ethnicity=ethnicity,  # type: ignore[arg-type]
        gender=float(rng.uniform()),
        age=float(rng.uniform(0.3, 1.0)),  # child/young to old; babies' heads are out of this data's range
        muscle=float(rng.uniform()),
        weight=float(rng.uniform()),
        proportions=float(rng.uniform()),
    )
    targets = _macro_targets(mix)
    local = {name.rsplit("/", 1)[-1]: name for name in model.targets if name.split("/", 1)[0] in MODIFIER_GROUPS}
    for category in model.modifiers:
        value = float(np.clip(rng.normal(0.0, 0.35 * spread), -1.0, 1.0))
        asymmetry = float(rng.normal(0.0, 0.05 * spread))
        opposites = category["opposites"]
        if len(category["targets"]) == 1:  # a one-way shape (head-oval, chin-triangle): weight in [0, 1]
            names = [(category["targets"][0], abs(value))]
        else:
            pole = "positive" if value > 0 else "negative"
            if category["sided"]:
                names = [(opposites[f"{pole}-left"], abs(value + asymmetry)),
                         (opposites[f"{pole}-right"], abs(value - asymmetry))]  # fmt: skip
            else:
                names = [(opposites[f"{pole}-unsided"], abs(value))]
        for name, w in names:
            if name in local and w > 1e-6:
                targets[local[name]] = min(w, 1.0)
    african, asian = ethnicity[0], ethnicity[1]
    total = african + asian
    sets = {"african": african / total, "asian": asian / total} if total > 1e-9 else {"african": 0.5, "asian": 0.5}
    return IdentityMix(**{**mix.__dict__, "targets": targets, "expression_sets": sets})


def identity_head(model: MakeHumanModel, mix: IdentityMix) -> np.ndarray:
    """(V, 3) float64 the identity's head: base + Σ target weight × offset (cm)."""
    head = model.neutral.copy()
    for name, weight in mix.targets.items():
        if name in model.targets:
            head += weight * model.targets[name]
    return head


# ---------------------------------------------------------------------------------------------- FACS map
@dataclass(frozen=True)
class FacsMap:
    """The expression units mapped to vocabulary actions (``facerig/data/makehuman_facs.json``).

    Attributes:
        actions: action full name -> list of (unit, side) recipes; side "" for the whole unit, "l"/"r" for one
            half of a symmetric unit (:func:`facerig.vocabulary.side_weights`).
        unmapped: unit -> why it matches no vocabulary pose.
        unlabelled: action -> why no unit gives it.
    """

    actions: dict[str, tuple[tuple[str, str], ...]]
    unmapped: dict[str, str]
    unlabelled: dict[str, str]


def load_facs_map(path: str | Path | None = None) -> FacsMap:
    """Read and check the MakeHuman FACS map: every action named once, every name a vocabulary action."""
    from facerig.vocabulary import load_vocabulary

    path = Path(path) if path is not None else FACS_MAP_FILE
    try:
        data = json.loads(path.read_text())
        mapped = {
            entry["action"]: tuple((str(u["unit"]), str(u.get("side", ""))) for u in entry["units"])
            for entry in data["mapped"]
        }
        unmapped = {str(k): str(v) for k, v in data["unmapped"].items()}
        unlabelled = {str(k): str(v) for k, v in data["unlabelled"].items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"MakeHuman FACS map is unreadable ({exc})", path) from None
    actions = load_vocabulary().action_names
    named = list(mapped) + list(unlabelled)
    unknown = [n for n in named if n not in actions]
    if unknown:
        raise DatasetError(f"MakeHuman FACS map names {unknown[0]!r}, not a vocabulary action", path)
    if sorted(named) != sorted(actions):
        missing = sorted(set(actions) - set(named)) or sorted({n for n in named if named.count(n) > 1})
        raise DatasetError(f"MakeHuman FACS map must name every action once as mapped or unlabelled: {missing}", path)
    for recipe in mapped.values():
        for _, side in recipe:
            if side not in ("", "l", "r"):
                raise DatasetError(f"MakeHuman FACS map: side must be '', 'l' or 'r', got {side!r}", path)
    return FacsMap(actions=mapped, unmapped=unmapped, unlabelled=unlabelled)


# ---------------------------------------------------------------------------------------------- source
LANDMARKS_FILE = Path(__file__).resolve().parent.parent / "data" / "makehuman_landmarks.json"
UNIT_PREFIX = "expression/units"


def load_landmarks(model: MakeHumanModel, path: str | Path | None = None) -> np.ndarray:
    """(68,) int64 landmark vertices of the cropped head, from the base.obj indices of ``makehuman_landmarks.json``."""
    path = Path(path) if path is not None else LANDMARKS_FILE
    try:
        base = np.asarray(json.loads(path.read_text())["landmarks"], np.int64)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"MakeHuman landmark file is unreadable ({exc})", path) from None
    slot = {int(b): i for i, b in enumerate(model.base_index)}
    if base.shape != (68,) or any(int(b) not in slot for b in base):
        raise DatasetError("MakeHuman landmarks must be 68 base.obj vertices of the cropped head", path)
    return np.array([slot[int(b)] for b in base], np.int64)


def skin_parts(vertices: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(V,) part name per skin vertex: "face" (the narrow face an animator rigs), "head_neck" (back of the
    head and the neck) or "face_outer" (sides, ears, forehead top, under the chin), from the landmarks.

    The face is what lies in front of the jaw-line landmarks (0, 16) by 1 cm, from 1 cm under the chin (8)
    to 45% of the chin-to-brow height above the brows (17-26); the back of the head lies 1.5 cm behind them
    and the neck 2.5 cm under the chin.
    """
    lm = vertices[landmarks]
    ear_z = lm[[0, 16], 2].mean()
    chin_y = lm[8, 1]
    brow_y = lm[17:27, 1].mean()
    top_y = brow_y + 0.45 * (brow_y - chin_y)
    x, y, z = vertices.T
    part = np.full(len(vertices), "face_outer", object)
    part[(z < ear_z - 1.5) | (y < chin_y - 2.5)] = "head_neck"
    part[(z > ear_z + 1.0) & (y > chin_y - 1.0) & (y < top_y)] = "face"
    return part.astype(str)


def subdivide_quads(quads: np.ndarray, n_vertices: int) -> tuple[Any, np.ndarray, np.ndarray]:
    """One linear subdivision of a quad mesh: each quad becomes four (edge midpoints and the quad's centre).

    The shape does not change (new vertices lie on the old flat quads); the vertex count grows about fourfold,
    so the re-mesher can reach every budget by decimation, as it does from ICT's 26k vertices.

    Returns:
        (V', V) scipy CSR matrix mapping old per-vertex values to new ones (the first V rows are the identity),
        (4P, 4) int64 new quads with the old winding, and (V',) int64 one old vertex each new vertex lies on.
    """
    import scipy.sparse

    quads = np.asarray(quads, np.int64)
    corners = quads.reshape(-1)
    following = np.roll(quads, -1, axis=1).reshape(-1)
    edges, edge_of = np.unique(np.sort(np.stack([corners, following], axis=1), axis=1), axis=0, return_inverse=True)
    edge_of = edge_of.reshape(-1, 4) + n_vertices  # new vertex of the edge (corner i, corner i+1)
    centre = np.arange(len(quads)) + n_vertices + len(edges)
    n_new = n_vertices + len(edges) + len(quads)
    rows = np.concatenate([np.arange(n_vertices), np.repeat(np.arange(len(edges)) + n_vertices, 2), np.repeat(centre, 4)])
    cols = np.concatenate([np.arange(n_vertices), edges.reshape(-1), corners])
    weights = np.concatenate([np.ones(n_vertices), np.full(2 * len(edges), 0.5), np.full(4 * len(quads), 0.25)])
    matrix = scipy.sparse.csr_matrix((weights, (rows, cols)), shape=(n_new, n_vertices))
    before = np.roll(edge_of, 1, axis=1)  # edge (corner i-1, corner i)
    new_quads = np.stack([quads, edge_of, np.repeat(centre[:, None], 4, axis=1), before], axis=2).reshape(-1, 4)
    parent = np.concatenate([np.arange(n_vertices), edges[:, 0], quads[:, 0]])
    return matrix, new_quads, parent


class MakeHumanSource(RiggedSource):
    """MakeHuman identities (:func:`sample_identity`) wearing the expression units of ``makehuman_facs.json``.

    An identity wears a blend of the african and asian unit sets weighted by its own african and asian
    ethnicity shares (both halves when it is all caucasian: MakeHuman ships no caucasian set here). The
    units are offsets on base.obj's vertices, so they apply to every identity unchanged, as in MakeHuman.
    MakeHuman has no eye-look units, so EyesLook is unlabelled (the eyeballs are never turned).
    The cropped head (5,016 vertices) is subdivided once (:func:`subdivide_quads`, about 20k vertices) so that
    every re-meshing budget decimates it, as for ICT; landmark vertices keep their indices.
    """

    name = "makehuman"

    def __init__(self, model: MakeHumanModel, facs_map: FacsMap | None = None,
                 landmarks_file: str | Path | None = None) -> None:
        from facerig.canonical.frame import canonical_frame
        from facerig.mesh import Mesh
        from facerig.trainer.ict import PARTS
        from facerig.trainer.source import PART_NAMES, REGIONS, labelled_shapes
        from facerig.vocabulary import load_vocabulary, side_weights

        self.model = model
        self.facs_map = facs_map or load_facs_map()
        self.subdivision, quads, parent = subdivide_quads(model.quads, model.n_vertices)
        self.triangles = fan_triangles(np.full(len(quads), 4, np.int32), quads.ravel())
        self.landmarks = load_landmarks(model, landmarks_file)
        skin = model.groups == SKIN_GROUP
        names = np.array([HELPER_PARTS.get(g, "") for g in model.groups], object)
        names[skin] = skin_parts(model.neutral[skin], np.searchsorted(np.flatnonzero(skin), self.landmarks))
        self.parts = np.array([PART_NAMES.index(n) for n in names], np.int64)[parent]
        region_of_part = np.array([REGIONS.index(region) for *_, region in PARTS])
        self.regions = region_of_part[self.parts]

        frame = canonical_frame(Mesh.from_triangles(model.neutral, model.triangles), up="+Y", front="+Z")
        canonical_x = frame.to_canonical(model.neutral)[:, 0]
        actions = load_vocabulary().action_names
        self.unit_deltas: dict[str, np.ndarray] = {}
        for ethnic_set in EXPRESSION_SETS:
            deltas = np.zeros((len(actions), model.n_vertices, 3), np.float32)
            for action, recipe in self.facs_map.actions.items():
                for unit, side in recipe:
                    offset = model.expression_unit(ethnic_set, unit)
                    if side:
                        offset = offset * side_weights(canonical_x, side)[:, None].astype(np.float32)
                    deltas[actions.index(action)] += offset
            self.unit_deltas[ethnic_set] = self._subdivided(deltas)
        self.labelled = labelled_shapes({a: a in self.facs_map.actions for a in actions})
        self.licence_files = {"LICENSE-MakeHuman-assets.md": model.licence} if model.licence else {}
        self.description = {"kind": "MakeHuman assets (makehumancommunity/mpfb2)", "name": Path(model.source).name,
                            "licence": "CC0-1.0"}  # fmt: skip

    def identity(self, options: Any, kind: str, identity: int) -> IdentityMix:
        """The seeded identity mix (rigged identities with ``identity_sigma``, unrigged with ``unrigged_sigma``)."""
        code, spread = (1, options.identity_sigma) if kind == "rigged" else (2, options.unrigged_sigma)
        return sample_identity(self.model, np.random.default_rng([options.seed, code, identity]), spread)

    def head(self, options: Any, kind: str, identity: int) -> np.ndarray:
        return self.subdivision @ identity_head(self.model, self.identity(options, kind, identity))

    def _subdivided(self, deltas: np.ndarray) -> np.ndarray:
        """(A, V', 3) float32 per-action deltas on the subdivided head from (A, V, 3) on the crop."""
        n_actions, n_vertices, _ = deltas.shape
        flat = self.subdivision @ deltas.transpose(1, 0, 2).reshape(n_vertices, -1)
        return flat.reshape(-1, n_actions, 3).transpose(1, 0, 2).astype(np.float32)

    def action_deltas(self, head: np.ndarray, spec: Any, options: Any) -> np.ndarray:
        weights = dict.fromkeys(EXPRESSION_SETS, 0.0)
        for who, share in ((spec.identity, 1.0 - spec.alpha), (spec.partner, spec.alpha)):
            for ethnic_set, w in self.identity(options, spec.kind, who).expression_sets.items():
                weights[ethnic_set] += share * w
        return sum(w * self.unit_deltas[s] for s, w in weights.items() if w > 0).astype(np.float32)


def build_makehuman_dataset(
    source: str | Path,
    outdir: str | Path,
    options: Any = None,
    *,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = False,
    model: MakeHumanModel | None = None,
) -> dict[str, Any]:
    """Build a training set from the MakeHuman assets (the on-disk format of :mod:`facerig.trainer.dataset`).

    Samples are named ``mh_rigged_NNNNN`` / ``mh_unrigged_NNNNN`` so the dataset can be merged with an ICT one.

    Args:
        source: ``MakeHuman-assets/`` or its archive (ignored when ``model`` is given).
        options: a :class:`facerig.trainer.dataset.BuildOptions` (default: 200 rigged identities, no unrigged).
    """
    from facerig.trainer.dataset import BuildOptions, build_dataset, check_outdir

    options = options if options is not None else BuildOptions(rigged=200, unrigged=0)
    options.validate()
    check_outdir(outdir, overwrite)
    model = model if model is not None else load_makehuman(source)
    return build_dataset(MakeHumanSource(model), outdir, options, workers=workers, overwrite=overwrite,
                         progress=progress, prefix="mh_")  # fmt: skip
