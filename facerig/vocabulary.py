"""The pose vocabulary: FACS poses, correctives and their ARKit / ICT-FaceKit aliases, as data.

The defaults live in ``facerig/data/*.json`` (one section per file); a user file given with ``--poses`` has the
same schema in one JSON object, ``{"poses": [...], "correctives": [...], "arkit": [...], "ict": {...}}``, and
any section it leaves out comes from the defaults. Everything is validated on load, and
:meth:`Vocabulary.to_dict` writes exactly that schema, so a model's metadata can carry its vocabulary and
:func:`load_vocabulary` can read it back.

Names:

- A pose has a short name (``c_JD``) and a full name (``JawDrop``); ``l_``/``r_`` and ``Left``/``Right``
  are the character's own sides. Full names are the canonical names.
- A corrective is named by its bases' full names in plain (code point) alphabetical order joined with
  ``_`` (``JawDrop_LeftLipCornerPuller``). Its shape is ``combined − Σ single deltas`` and it is driven by
  the product of its bases' weights.
- ARKit names map to a weighted sum of FACS shapes, optionally restricted to one side of the face
  (:func:`side_weights`); ICT-FaceKit maps each FACS pose to the ICT shapes whose deltas sum to it, or to
  ``None`` where ICT has no counterpart ("unlabelled": no 3D loss, not a zero target).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
import stat
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from facerig.errors import VocabularyError
from facerig.safe_json import loads_bounded

SCHEMA_VERSION = 1
SECTIONS = ("poses", "correctives", "arkit", "ict")
MAX_VOCABULARY_BYTES = 16 * 1024**2  # the default vocabulary is ~40 KB
# Default section -> package data file holding it.
DEFAULT_FILES = {
    "poses": "facs_poses.json",
    "correctives": "correctives.json",
    "arkit": "arkit.json",
    "ict": "ict.json",
}
NEUTRAL = "neutral"
SIDES = ("l", "r", "c")
MAX_NAME_BYTES = 63  # Blender's name limit; USD and glTF accept more, so this is the binding one.
MAX_BASES = 3  # Roblox's limit, and what the network was trained with.
_USD_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Half-width, in canonical units (head radius 1), of the band across x = 0 where a one-sided ARKit shape
# fades from one side of the face to the other. ICT's own mouthPress_L fades over about this width.
SIDE_BLEND_HALF_WIDTH = 0.25


# ---------------------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class Pose:
    """One FACS pose: ``index`` is its 0-based position in the vocabulary (``neutral`` is 0)."""

    index: int
    short: str
    full: str
    side: str  # "l", "r" (the character's own side) or "c" (unsided)


@dataclass(frozen=True)
class Corrective:
    """A combination of 2–3 base poses (full names, alphabetical); ``name`` joins them with ``_``."""

    name: str
    bases: tuple[str, ...]
    note: str = ""


@dataclass(frozen=True)
class ArkitRecipe:
    """How one ARKit blend shape is built: ``Σ weight · FACS delta``, kept on ``side`` of the face if set.

    An empty ``terms`` means the vocabulary has no source for it; exporters write a zero shape.
    """

    name: str
    terms: tuple[tuple[str, float], ...]
    side: str | None = None  # "l" or "r": keep only that half of the face (see side_weights)
    aliases: tuple[str, ...] = ()
    note: str = ""

    def build(self, deltas: Mapping[str, np.ndarray], canonical_x: np.ndarray | None = None) -> np.ndarray:
        """The ARKit shape from FACS deltas.

        Args:
            deltas: FACS full name -> (V, 3) delta; must hold every pose in ``terms``.
            canonical_x: (V,) canonical x of each vertex; required when ``side`` is set.

        Returns:
            (V, 3) delta, shaped and typed like the values of ``deltas``; zeros when ``terms`` is empty.
        """
        if not deltas:
            raise VocabularyError(f"ARKit shape {self.name!r}: no FACS deltas given")
        template = next(iter(deltas.values()))
        shape = np.zeros_like(template)
        for pose, weight in self.terms:
            shape += weight * deltas[pose]
        if self.side is not None:
            if canonical_x is None:
                raise VocabularyError(f"ARKit shape {self.name!r} is one-sided and needs canonical x")
            shape *= side_weights(canonical_x, self.side)[:, None].astype(shape.dtype)
        return shape


@dataclass(frozen=True)
class IctMap:
    """ICT-FaceKit expression shapes and the FACS poses they make.

    Attributes:
        shapes: every ICT expression shape name the map may use.
        poses: (FACS full name, ICT shape names summed, or None when unlabelled) per mapped pose.
        unused: (ICT shape, why no pose uses it) for documentation.
    """

    shapes: tuple[str, ...]
    poses: tuple[tuple[str, tuple[str, ...] | None], ...]
    unused: tuple[tuple[str, str], ...] = ()


def side_weights(canonical_x: np.ndarray, side: str) -> np.ndarray:
    """Per-vertex weight of one side of the face: 1 on that side, 0 on the other, smooth across x = 0.

    The left and right weights sum to exactly 1 everywhere, so the two halves of a shape add up to the
    whole (mouthPressLeft + mouthPressRight = LipPresser).

    Args:
        canonical_x: (V,) x in the canonical frame (+X is the character's left, head radius 1).
        side: "l" or "r".

    Returns:
        (V,) float64 weights in [0, 1].
    """
    t = np.clip((np.asarray(canonical_x, np.float64) + SIDE_BLEND_HALF_WIDTH) / (2 * SIDE_BLEND_HALF_WIDTH), 0, 1)
    left = t * t * (3 - 2 * t)  # smoothstep: no crease where the fade starts and ends
    if side == "l":
        return left
    if side == "r":
        return 1.0 - left
    raise VocabularyError(f"side must be 'l' or 'r', got {side!r}")


def mirror_permutation(action_names: tuple[str, ...] | list[str]) -> np.ndarray:
    """Column order that turns an activation vector into its mirror image's: ``Left`` and ``Right`` swapped.

    The mirror image (x -> -x in the canonical frame) of a face doing LeftBrowLowerer is a face doing
    RightBrowLowerer, and of one doing EyesLookLeft, one doing EyesLookRight; unsided actions map to themselves.

    Returns:
        (A,) int64 ``perm`` with ``activations[:, perm]`` the mirrored activations.

    Raises:
        VocabularyError: an action's mirror counterpart is not among ``action_names``.
    """
    names = list(action_names)
    swapped = [re.sub("Left|Right", lambda m: "Right" if m.group(0) == "Left" else "Left", name) for name in names]
    missing = sorted(set(swapped) - set(names))
    if missing:
        raise VocabularyError(f"actions without their mirror counterpart: {missing}")
    return np.asarray([names.index(name) for name in swapped], np.int64)


# ---------------------------------------------------------------------------------------------- vocabulary
@dataclass(frozen=True)
class Vocabulary:
    """Poses (``neutral`` first), correctives and aliases. Build it with :func:`load_vocabulary`."""

    poses: tuple[Pose, ...]
    correctives: tuple[Corrective, ...]
    arkit: tuple[ArkitRecipe, ...]
    ict: IctMap

    # ---------------------------------------------------------------- names
    @property
    def actions(self) -> tuple[Pose, ...]:
        """The poses that move something: every pose but ``neutral`` (47 by default)."""
        return self.poses[1:]

    @property
    def action_names(self) -> tuple[str, ...]:
        """Full names of :attr:`actions`, in order: the columns of :meth:`activations`."""
        return tuple(pose.full for pose in self.actions)

    @property
    def shape_names(self) -> tuple[str, ...]:
        """The rig's shapes: the actions' full names, then the correctives' names (95 by default)."""
        return self.action_names + tuple(c.name for c in self.correctives)

    @cached_property
    def id(self) -> str:
        """12 hex digits identifying the vocabulary's content (not its file or key order)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def action_index(self, name: str) -> int:
        """Column of an action in :meth:`activations` (any accepted spelling of a single pose)."""
        full = self.resolve(name)
        index = self._action_columns.get(full)
        if index is None:
            raise VocabularyError(
                f"{name!r} is not an action pose (it is {full!r}); actions exclude neutral and correctives"
            )
        return index

    def resolve(self, name: str) -> str:
        """The canonical name of a shape: ``neutral``, an action's full name or a corrective's name.

        Accepts (case-sensitive) full and short pose names, corrective names with their bases in any order,
        ARKit names and raw ``_L/_R`` strings, and ICT-FaceKit shape names, where they stand for exactly one
        pose. Raises :class:`VocabularyError` otherwise, saying why.
        """
        if not isinstance(name, str):
            raise VocabularyError(f"pose names are strings, got {type(name).__name__}")
        found = self._aliases.get(name)
        if found is not None:
            return found
        parts = name.split("_")
        if 2 <= len(parts) <= MAX_BASES:
            key = "_".join(sorted(parts))
            if key in self._corrective_names:
                return key
        if name in self._not_one_to_one:
            raise VocabularyError(self._not_one_to_one[name])
        close = difflib.get_close_matches(name, list(self._aliases), n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise VocabularyError(f"unknown pose name {name!r}{hint}")

    # ---------------------------------------------------------------- activations
    def activations(self) -> tuple[np.ndarray, tuple[str, ...]]:
        """The FACS activation vectors the network is asked for: one row per pose to predict.

        Returns:
            (1 + A + C, A) float32 matrix and its row names: row 0 ``neutral`` (zeros), rows 1..A one-hot per
            action (named by full name), then one row per corrective with 1 on each base (named by the
            corrective). A = 47, C = 48 by default.
        """
        columns = self._action_columns
        matrix = np.zeros((1 + len(columns) + len(self.correctives), len(columns)), np.float32)
        matrix[1 : 1 + len(columns)] = np.eye(len(columns), dtype=np.float32)
        for row, corrective in enumerate(self.correctives, start=1 + len(columns)):
            matrix[row, [columns[base] for base in corrective.bases]] = 1.0
        return matrix, (NEUTRAL,) + self.shape_names

    # ---------------------------------------------------------------- aliases
    def arkit_recipes(self) -> dict[str, ArkitRecipe]:
        """ARKit name -> recipe, in ARKit order (52 by default)."""
        return {recipe.name: recipe for recipe in self.arkit}

    def ict_recipes(self) -> dict[str, tuple[str, ...] | None]:
        """Action full name -> ICT shapes whose deltas sum to it, or None (unlabelled), for every action."""
        mapped = dict(self.ict.poses)
        return {name: mapped.get(name) for name in self.action_names}

    # ---------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """The vocabulary as JSON-ready data in the user-file schema (readable by :meth:`from_dict`)."""
        return {
            "version": SCHEMA_VERSION,
            "poses": [{"index": p.index, "short": p.short, "full": p.full, "side": p.side} for p in self.poses],
            "correctives": [
                {"name": c.name, "bases": list(c.bases), **({"note": c.note} if c.note else {})}
                for c in self.correctives
            ],
            "arkit": [_arkit_to_dict(r) for r in self.arkit],
            "ict": {
                "shapes": list(self.ict.shapes),
                "poses": {name: (list(shapes) if shapes is not None else None) for name, shapes in self.ict.poses},
                "unused": dict(self.ict.unused),
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str | Path | None = None) -> "Vocabulary":
        """A vocabulary from :meth:`to_dict` data (all four sections required); validated."""
        if not isinstance(data, Mapping):
            raise VocabularyError("a vocabulary must be a JSON object", source)
        missing = [s for s in SECTIONS if s not in data]
        if missing:
            raise VocabularyError(f"vocabulary data lacks sections {missing}", source)
        if data.get("version", SCHEMA_VERSION) != SCHEMA_VERSION:
            raise VocabularyError(f"schema version {data['version']!r}; this facerig reads {SCHEMA_VERSION}", source)
        return _build(data, {s: source for s in SECTIONS}, source)

    # ---------------------------------------------------------------- derived lookups (cached)
    @cached_property
    def _action_columns(self) -> dict[str, int]:
        return {pose.full: i for i, pose in enumerate(self.actions)}

    @cached_property
    def _corrective_names(self) -> frozenset[str]:
        return frozenset(c.name for c in self.correctives)

    @cached_property
    def _alias_tables(self) -> tuple[dict[str, str], dict[str, str]]:
        return _alias_tables(self)

    @property
    def _aliases(self) -> dict[str, str]:
        return self._alias_tables[0]

    @property
    def _not_one_to_one(self) -> dict[str, str]:
        return self._alias_tables[1]


# ---------------------------------------------------------------------------------------------- loading
def load_vocabulary(poses_file: str | Path | None = None) -> Vocabulary:
    """The default vocabulary, or a user file's (missing sections taken from the defaults).

    Args:
        poses_file: a JSON file with any of the sections "poses", "correctives", "arkit", "ict" (the
            schema of ``facerig/data/*.json`` and of :meth:`Vocabulary.to_dict`), or None for the defaults.

    Raises:
        VocabularyError: naming the file (or the default data file) and the problem.
    """
    data: dict[str, Any] = {}
    origin: dict[str, str | Path] = {}
    for section, filename in DEFAULT_FILES.items():
        text = resources.files("facerig").joinpath("data", filename).read_text(encoding="utf-8")
        data[section] = _parse_json(text, f"facerig/data/{filename}")[section]
        origin[section] = f"facerig/data/{filename}"
    if poses_file is not None:
        path = Path(poses_file)
        text = _read_user_file(path)
        user = _parse_json(text, path)
        if not isinstance(user, dict):
            raise VocabularyError("a pose vocabulary file must hold a JSON object", path)
        unknown = sorted(set(user) - set(SECTIONS) - {"version", "description"})
        if unknown:
            raise VocabularyError(f"unknown keys {unknown}; expected some of {list(SECTIONS)}", path)
        if not any(s in user for s in SECTIONS):
            raise VocabularyError(f"the file has none of the sections {list(SECTIONS)}", path)
        if user.get("version", SCHEMA_VERSION) != SCHEMA_VERSION:
            raise VocabularyError(f"schema version {user['version']!r}; this facerig reads {SCHEMA_VERSION}", path)
        for section in SECTIONS:
            if section in user:
                data[section] = user[section]
                origin[section] = path
    return _build(data, origin, poses_file)


def _read_user_file(path: Path) -> str:
    """A user's vocabulary file as text: a regular file (a FIFO would block) of bounded size."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise VocabularyError("the pose vocabulary is not a regular file", path)
        if info.st_size > MAX_VOCABULARY_BYTES:
            raise VocabularyError(f"the pose vocabulary is {info.st_size:,} bytes, over {MAX_VOCABULARY_BYTES:,}", path)
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise VocabularyError(f"cannot read the pose vocabulary: {exc.strerror or exc}", path) from None
    except UnicodeDecodeError:
        raise VocabularyError("the pose vocabulary is not UTF-8 text", path) from None


def _parse_json(text: str, source: str | Path) -> Any:
    try:
        return loads_bounded(text)
    except json.JSONDecodeError as exc:
        raise VocabularyError(f"not valid JSON: {exc.msg} at line {exc.lineno}", source) from None
    except ValueError as exc:  # nested too deep
        raise VocabularyError(f"not accepted: {exc}", source) from None


# ---------------------------------------------------------------------------------------------- validation
def _check_name(name: Any, what: str, source: str | Path | None) -> str:
    if not isinstance(name, str) or not _USD_IDENTIFIER.fullmatch(name):
        raise VocabularyError(f"{what} {name!r} is not a valid USD identifier ([A-Za-z_][A-Za-z0-9_]*)", source)
    if len(name.encode()) > MAX_NAME_BYTES:
        size = len(name.encode())
        raise VocabularyError(f"{what} {name!r} is {size} bytes; names must be <= {MAX_NAME_BYTES}", source)
    return name


def _check_keys(entry: Any, required: set[str], optional: set[str], what: str, source: str | Path | None) -> None:
    if not isinstance(entry, dict):
        raise VocabularyError(f"{what} must be a JSON object, got {entry!r}", source)
    missing = sorted(required - set(entry))
    unknown = sorted(set(entry) - required - optional)
    if missing:
        raise VocabularyError(f"{what} lacks keys {missing}", source)
    if unknown:
        raise VocabularyError(f"{what} has unknown keys {unknown}", source)


def _build(data: Mapping[str, Any], origin: Mapping[str, str | Path | None], file: str | Path | None) -> Vocabulary:
    """Validate the four sections (``origin``: where each came from) into a Vocabulary; ``file`` is blamed for
    problems that span sections (an alias clash)."""
    poses = _build_poses(data["poses"], origin["poses"])
    correctives = _build_correctives(data["correctives"], poses, origin["correctives"])
    arkit = _build_arkit(data["arkit"], poses, origin["arkit"])
    ict = _build_ict(data["ict"], poses, origin["ict"])
    vocabulary = Vocabulary(poses=poses, correctives=correctives, arkit=arkit, ict=ict)
    try:
        vocabulary._alias_tables  # clashing aliases are file errors: report them on load, not on first use
    except VocabularyError as error:
        raise VocabularyError(error.reason, file) from None
    return vocabulary


def _build_poses(entries: Any, source: str | Path | None) -> tuple[Pose, ...]:
    if not isinstance(entries, list) or len(entries) < 2:
        raise VocabularyError("'poses' must be a list of neutral plus at least one pose", source)
    poses: list[Pose] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        what = f"pose #{i}"
        _check_keys(entry, {"index", "short", "full", "side"}, set(), what, source)
        short = _check_name(entry["short"], f"{what} short name", source)
        full = _check_name(entry["full"], f"{what} full name", source)
        side = entry["side"]
        if entry["index"] != i or isinstance(entry["index"], bool):
            raise VocabularyError(
                f"{what} ({full}) has index {entry['index']!r}; indices must be 0, 1, 2, ... in order", source
            )
        if side not in SIDES:
            raise VocabularyError(f"{what} ({full}) has side {side!r}; use one of {list(SIDES)}", source)
        if i == 0:
            if short != NEUTRAL or full != NEUTRAL or side != "c":
                raise VocabularyError(f"the first pose must be neutral/neutral/c, got {short}/{full}/{side}", source)
        else:
            if not short.startswith(f"{side}_"):
                raise VocabularyError(f"{what} short name {short!r} must start with its side, '{side}_'", source)
            expected = {"l": "Left", "r": "Right"}.get(side)
            if expected and not full.startswith(expected):
                raise VocabularyError(
                    f"{what} full name {full!r} is side {side!r} and must start with {expected!r}", source
                )
        for name in {short, full}:
            if name in seen:
                raise VocabularyError(f"duplicate pose name {name!r}", source)
            seen.add(name)
        poses.append(Pose(index=i, short=short, full=full, side=side))
    return tuple(poses)


def _build_correctives(entries: Any, poses: tuple[Pose, ...], source: str | Path | None) -> tuple[Corrective, ...]:
    if not isinstance(entries, list):
        raise VocabularyError("'correctives' must be a list", source)
    by_full = {p.full: p for p in poses}
    result: list[Corrective] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        what = f"corrective #{i}"
        _check_keys(entry, {"bases"}, {"name", "note"}, what, source)
        bases = entry["bases"]
        if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
            raise VocabularyError(f"{what}: 'bases' must be a list of pose full names", source)
        if not 2 <= len(bases) <= MAX_BASES:
            raise VocabularyError(
                f"{what} {bases}: a corrective combines 2 to {MAX_BASES} base poses, got {len(bases)}", source
            )
        if len(set(bases)) != len(bases):
            raise VocabularyError(f"{what} {bases}: a base pose appears twice", source)
        for base in bases:
            if base == NEUTRAL:
                raise VocabularyError(f"{what} {bases}: neutral cannot be part of a corrective", source)
            if base not in by_full:
                close = difflib.get_close_matches(base, list(by_full), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise VocabularyError(f"{what} {bases}: unknown base pose {base!r}{hint}; use full names", source)
        sides = {by_full[b].side for b in bases}
        if {"l", "r"} <= sides:
            raise VocabularyError(f"{what} {bases}: a corrective cannot mix Left and Right poses", source)
        name = "_".join(sorted(bases))
        given = entry.get("name", name)
        if given != name:
            raise VocabularyError(
                f"{what} is named {given!r}; name it {name!r} (base full names, alphabetical, joined by _)", source
            )
        _check_name(name, f"{what} name", source)
        if name in seen:
            raise VocabularyError(f"duplicate corrective {name!r}", source)
        if name in by_full:
            raise VocabularyError(f"corrective {name!r} has the name of a pose", source)
        seen.add(name)
        note = entry.get("note", "")
        if not isinstance(note, str):
            raise VocabularyError(f"{what}: 'note' must be a string", source)
        result.append(Corrective(name=name, bases=tuple(sorted(bases)), note=note))
    return tuple(result)


def _build_arkit(entries: Any, poses: tuple[Pose, ...], source: str | Path | None) -> tuple[ArkitRecipe, ...]:
    if not isinstance(entries, list):
        raise VocabularyError("'arkit' must be a list of {name, poses, side?, aliases?, note?}", source)
    actions = {p.full for p in poses[1:]}
    result: list[ArkitRecipe] = []
    for i, entry in enumerate(entries):
        what = f"ARKit entry #{i}"
        _check_keys(entry, {"name", "poses"}, {"side", "aliases", "note"}, what, source)
        name = _check_name(entry["name"], f"{what} name", source)
        what = f"ARKit shape {name!r}"
        terms: list[tuple[str, float]] = []
        if not isinstance(entry["poses"], list):
            raise VocabularyError(f"{what}: 'poses' must be a list of [pose full name, weight]", source)
        for term in entry["poses"]:
            ok = isinstance(term, list) and len(term) == 2 and isinstance(term[0], str)
            ok = ok and isinstance(term[1], (int, float)) and not isinstance(term[1], bool) and math.isfinite(term[1])
            if not ok:
                raise VocabularyError(f"{what}: term {term!r} is not [pose full name, finite weight]", source)
            if term[0] not in actions:
                raise VocabularyError(
                    f"{what} uses {term[0]!r}, which is not an action pose of this vocabulary", source
                )
            terms.append((term[0], float(term[1])))
        side = entry.get("side")
        if side not in (None, "l", "r"):
            raise VocabularyError(f"{what}: side must be 'l', 'r' or absent, got {side!r}", source)
        aliases = entry.get("aliases", [])
        if not isinstance(aliases, list):
            raise VocabularyError(f"{what}: 'aliases' must be a list of names", source)
        aliases = tuple(_check_name(a, f"{what} alias", source) for a in aliases)
        note = entry.get("note", "")
        if not isinstance(note, str):
            raise VocabularyError(f"{what}: 'note' must be a string", source)
        result.append(ArkitRecipe(name=name, terms=tuple(terms), side=side, aliases=aliases, note=note))
    names = [n for r in result for n in (r.name, *r.aliases)]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise VocabularyError(f"ARKit names or aliases appear twice: {duplicates}", source)
    return tuple(result)


def _build_ict(section: Any, poses: tuple[Pose, ...], source: str | Path | None) -> IctMap:
    what = "'ict'"
    _check_keys(section, {"shapes", "poses"}, {"unused"}, what, source)
    shapes = section["shapes"]
    if not isinstance(shapes, list) or not all(isinstance(s, str) for s in shapes) or len(set(shapes)) != len(shapes):
        raise VocabularyError("'ict.shapes' must be a list of distinct ICT shape names", source)
    known = set(shapes)
    actions = {p.full for p in poses[1:]}
    if not isinstance(section["poses"], dict):
        raise VocabularyError("'ict.poses' must map pose full names to ICT shape lists or null", source)
    mapped: list[tuple[str, tuple[str, ...] | None]] = []
    for pose, ict_shapes in section["poses"].items():
        if pose not in actions:
            raise VocabularyError(f"'ict.poses' names {pose!r}, which is not an action pose of this vocabulary", source)
        if ict_shapes is None:
            mapped.append((pose, None))
            continue
        if not isinstance(ict_shapes, list) or not ict_shapes:
            raise VocabularyError(
                f"'ict.poses.{pose}' must be a non-empty list of ICT shapes, or null for unlabelled", source
            )
        unknown = [s for s in ict_shapes if s not in known]
        if unknown:
            raise VocabularyError(f"'ict.poses.{pose}' uses shapes not in 'ict.shapes': {unknown}", source)
        mapped.append((pose, tuple(ict_shapes)))
    unused = section.get("unused", {})
    if not isinstance(unused, dict) or not all(isinstance(v, str) for v in unused.values()):
        raise VocabularyError("'ict.unused' must map ICT shape names to a reason", source)
    return IctMap(shapes=tuple(shapes), poses=tuple(mapped), unused=tuple(unused.items()))


def _alias_tables(vocabulary: Vocabulary) -> tuple[dict[str, str], dict[str, str]]:
    """(name -> canonical shape name, name -> why it is not one pose); raises on clashing aliases."""
    aliases: dict[str, str] = {}
    origins: dict[str, str] = {}

    def add(name: str, target: str, origin: str) -> None:
        if aliases.get(name, target) != target:
            raise VocabularyError(
                f"{origin} name {name!r} means {target!r} but {origins[name]} name {name!r} means {aliases[name]!r}"
            )
        aliases.setdefault(name, target)
        origins.setdefault(name, origin)

    for pose in vocabulary.poses:
        add(pose.full, pose.full, "pose")
        add(pose.short, pose.full, "pose")
    for corrective in vocabulary.correctives:
        add(corrective.name, corrective.name, "corrective")

    not_one: dict[str, str] = {}
    for recipe in vocabulary.arkit:
        one = len(recipe.terms) == 1 and recipe.terms[0][1] == 1.0 and recipe.side is None
        for name in (recipe.name, *recipe.aliases):
            if one:
                add(name, recipe.terms[0][0], "ARKit")
            elif not recipe.terms:
                not_one[name] = f"ARKit {name!r} has no FACS pose in this vocabulary ({recipe.note or 'no source'})"
            else:
                parts = " + ".join(f"{w:g}*{p}" for p, w in recipe.terms)
                half = f", {'left' if recipe.side == 'l' else 'right'} half only" if recipe.side else ""
                not_one[name] = f"ARKit {name!r} is not a single FACS pose: it is {parts}{half}"
    users: dict[str, list[str]] = {}
    for pose, shapes in vocabulary.ict.poses:
        for shape in shapes or ():
            users.setdefault(shape, []).append(pose)
    for pose, shapes in vocabulary.ict.poses:
        if shapes is not None and len(shapes) == 1 and users[shapes[0]] == [pose]:
            add(shapes[0], pose, "ICT")
    for shape, used_by in users.items():
        if shape not in aliases:
            not_one.setdefault(shape, f"ICT shape {shape!r} is part of {', '.join(used_by)}, not a pose by itself")
    for shape, reason in vocabulary.ict.unused:
        not_one.setdefault(shape, f"ICT shape {shape!r} has no FACS pose: {reason}")
    return aliases, not_one


def _arkit_to_dict(recipe: ArkitRecipe) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": recipe.name, "poses": [[p, w] for p, w in recipe.terms]}
    if recipe.side is not None:
        entry["side"] = recipe.side
    if recipe.aliases:
        entry["aliases"] = list(recipe.aliases)
    if recipe.note:
        entry["note"] = recipe.note
    return entry
