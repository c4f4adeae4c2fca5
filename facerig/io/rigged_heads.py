"""Rigged heads a studio brings: a neutral mesh and its blend shapes, read as the vocabulary's FACS deltas.

    head = load_rigged_head("hero.glb")                        # glTF morph targets, USD BlendShapes
    head = load_rigged_head("hero.usd", "our_names.json")      # plus a mapping {their name: FACS name}
    head.deltas[head.labelled]                                  # (A, V, 3): the FACS actions the file has

Reading goes through :func:`facerig.io.load_blend_shapes` (its per-format ``SHAPE_LOADERS`` registry: an FBX
reader plugs in there), so the neutral is exactly what ``load_mesh`` reads and the file's limits apply.

Matching a file's shape name to a FACS action, in this order:

1. the mapping, when given: exact name -> any spelling :meth:`Vocabulary.resolve` accepts for an action, or
   ``null`` to ignore the shape;
2. the vocabulary's names, compared case-insensitively and with ``_ . -`` and spaces ignored, a side suffix
   (``Left``/``Right``, ``_L``/``_R``, ``.L``, ...) read as one token: FACS full and short names
   (``JawDrop``, ``c_JD``), ARKit names and their aliases (``jawOpen``, ``eyeBlinkLeft``, ``eyeBlink_L``,
   ``EyeBlink_Left``), and ICT-FaceKit names that stand for one pose.
3. Some poses are sums of several shapes (the vocabulary's ARKit halves, ``mouthPressLeft`` +
   ``mouthPressRight`` = ``LipPresser``; ICT's ``eyeLookOut_L`` + ``eyeLookIn_R`` = ``EyesLookLeft``): the pose
   is labelled when every part is present, and its delta is their sum.

Nothing is guessed: a name that matches nothing, or a vocabulary name that is not one pose (``browInnerUp`` is
both inner brows, ``jawForward`` has no pose), is reported with the reason and not used. Poses the file does not
have are *unlabelled*: their deltas are zero and must never be read as a zero target.

A head is refused (:class:`RiggedHeadError`, naming the file) when no shape matches a pose, when two shapes
give the same pose (``jawOpen`` and ``JawDrop``; ``eyeBlinkLeft`` and ``eyeBlink_L``), or when a shape has NaN
or infinite offsets; the readers refuse shapes whose offsets do not fit the mesh.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from facerig.errors import FacerigError, VocabularyError
from facerig.io import SHAPE_LOADERS, LoadLimits, load_blend_shapes
from facerig.mesh import Mesh
from facerig.units import infer_meters_per_unit
from facerig.vocabulary import Vocabulary, load_vocabulary

MAX_MAPPING_BYTES = 1024**2  # a mapping names at most a few hundred shapes
# "eyeBlinkLeft", "eyeBlink_Left", "eyeBlink.L", "eyeBlink_L": a side word with or without a separator, a side
# letter only after one (so "mouthRollUpper" keeps its r).
_SIDE_SUFFIX = re.compile(r"(.+?)(?:[_.\- ]?(left|right)|[_.\- ](l|r))")
_SEPARATORS = re.compile(r"[_.\- ]")


class RiggedHeadError(FacerigError):
    """A rigged head (or its mapping file) cannot be read as FACS deltas.

    ``report`` is the head's :class:`MatchReport` when its shape names were matched before it was refused.
    """

    def __init__(self, message: str, path: str | Path | None = None, report: "MatchReport | None" = None) -> None:
        super().__init__(message, path)
        self.report = report


# ---------------------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class MatchReport:
    """How a file's shapes became FACS poses.

    Attributes:
        matched: file shape -> the FACS action it gives (alone, or as one part of a sum in ``summed``).
        summed: FACS action -> the file shapes whose sum it is, for actions made of several shapes.
        unmatched: file shape -> why it is not used (unknown name, not a single pose, ignored by the mapping,
            an incomplete sum).
        labelled: actions with a ground truth, vocabulary order.
        unlabelled: actions without one (never a zero target), vocabulary order.
    """

    matched: dict[str, str]
    summed: dict[str, list[str]]
    unmatched: dict[str, str]
    labelled: tuple[str, ...]
    unlabelled: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"matched": dict(self.matched), "summed": {k: list(v) for k, v in self.summed.items()},
                "unmatched": dict(self.unmatched), "labelled": list(self.labelled),
                "unlabelled": list(self.unlabelled)}


@dataclass(frozen=True, eq=False)
class RiggedHead:
    """A rigged head as FACS ground truth.

    Attributes:
        path: the file it was read from.
        mesh: the neutral, as :func:`facerig.io.load_mesh` reads the file (its units and axes).
        action_names: (A,) the vocabulary's actions, in order.
        deltas: (A, V, 3) float32 per-action displacement in the mesh's units and axes; zero where unlabelled.
        labelled: (A,) bool, True where the file gives the action.
        report: which shapes gave which action, and which were not used.
    """

    path: Path
    mesh: Mesh
    action_names: tuple[str, ...]
    deltas: np.ndarray
    labelled: np.ndarray
    report: MatchReport

    @property
    def meters_per_unit(self) -> float:
        """The mesh's unit in metres: the file's own (glTF: 1, USD: metersPerUnit), else inferred from its size."""
        if self.mesh.meters_per_unit is not None:
            return float(self.mesh.meters_per_unit)
        return infer_meters_per_unit(self.mesh.vertices)


# ---------------------------------------------------------------------------------------------- names
def name_key(name: str) -> str:
    """The form names are compared in: lower case, separators dropped, a side suffix as ``|l`` or ``|r``.

    ``eyeBlinkLeft``, ``EyeBlink_L``, ``eyeblink.left`` -> ``eyeblink|l``; ``JawDrop``, ``jaw_drop`` -> ``jawdrop``.
    """
    lowered = name.strip().lower()
    match = _SIDE_SUFFIX.fullmatch(lowered)
    if match is None:
        return _SEPARATORS.sub("", lowered)
    side = (match.group(2) or match.group(3))[0]
    return f"{_SEPARATORS.sub('', match.group(1))}|{side}"


@dataclass(frozen=True)
class _Aliases:
    """The vocabulary's names by :func:`name_key`.

    whole: key -> (action, where the name comes from) for names that are one action.
    parts: key -> action for names that are one part of a sum making an action.
    sums: action -> the key sets whose shapes add up to it.
    reasons: key -> why a vocabulary name is not an action (several poses, or none).
    """

    whole: dict[str, tuple[str, str]]
    parts: dict[str, str]
    sums: dict[str, list[frozenset[str]]]
    reasons: dict[str, str]


def _aliases(vocabulary: Vocabulary) -> _Aliases:
    whole: dict[str, tuple[str, str]] = {}
    parts: dict[str, str] = {}
    sums: dict[str, list[frozenset[str]]] = {}
    reasons: dict[str, str] = {}

    def claim_whole(name: str, action: str, origin: str) -> None:
        key = name_key(name)
        if key in parts or whole.get(key, (action,))[0] != action:
            raise VocabularyError(f"{origin} name {name!r} reads as {key!r}, which names another pose")
        whole.setdefault(key, (action, origin))

    def claim_sum(action: str, keys: frozenset[str]) -> None:
        for key in keys:
            if key in whole or parts.get(key, action) != action:
                raise VocabularyError(f"{key!r} is part of {action} and also names another pose")
            parts[key] = action
        if keys not in sums.setdefault(action, []):
            sums[action].append(keys)

    for pose in vocabulary.actions:
        for name in (pose.full, pose.short):
            claim_whole(name, pose.full, "FACS")
    halves: dict[str, dict[str, set[str]]] = {}  # action -> side -> keys of the ARKit names of that half
    for recipe in vocabulary.arkit:
        names = (recipe.name, *recipe.aliases)
        single = len(recipe.terms) == 1 and recipe.terms[0][1] == 1.0
        if single and recipe.side is None:
            for name in names:
                claim_whole(name, recipe.terms[0][0], "ARKit")
        elif single:  # one side of a pose: the two sides' weights sum to 1 (vocabulary.side_weights)
            halves.setdefault(recipe.terms[0][0], {}).setdefault(recipe.side, set()).update(map(name_key, names))
        else:
            terms = " + ".join(f"{w:g}*{p}" for p, w in recipe.terms)
            why = (f"ARKit {recipe.name} is {terms}, not one FACS pose" if recipe.terms
                   else f"ARKit {recipe.name} has no FACS pose ({recipe.note or 'no source'})")
            for name in names:
                reasons.setdefault(name_key(name), why)
    for action, sides in halves.items():
        for left in sorted(sides.get("l", ())):
            for right in sorted(sides.get("r", ())):
                claim_sum(action, frozenset((left, right)))
    users: dict[str, list[str]] = {}
    for action, shapes in vocabulary.ict.poses:
        for shape in shapes or ():
            users.setdefault(shape, []).append(action)
    for action, shapes in vocabulary.ict.poses:
        if not shapes or any(len(users[s]) > 1 for s in shapes):
            continue
        if len(shapes) == 1:
            claim_whole(shapes[0], action, "ICT")
        else:
            claim_sum(action, frozenset(map(name_key, shapes)))
    for shape, used_by in users.items():
        if len(used_by) > 1:
            reasons.setdefault(name_key(shape), f"ICT {shape} is part of {', '.join(used_by)}, not one pose")
    for shape, why in vocabulary.ict.unused:
        reasons.setdefault(name_key(shape), f"ICT {shape}: {why}")
    for corrective in vocabulary.correctives:
        reasons.setdefault(name_key(corrective.name), f"corrective {corrective.name}: correctives are not imported "
                           "(only the single FACS poses are)")
    reasons = {key: why for key, why in reasons.items() if key not in whole and key not in parts}
    return _Aliases(whole, parts, sums, reasons)


def load_mapping(path: str | Path, vocabulary: Vocabulary | None = None) -> dict[str, str | None]:
    """A user mapping file: JSON ``{"their shape name": "FACS action name" or null}``.

    Values may be any spelling :meth:`Vocabulary.resolve` accepts for an action (full, short, ARKit or ICT name
    standing for one pose); they come back as full names. ``null`` means "do not use this shape".

    Raises:
        RiggedHeadError: unreadable, too large, not a JSON object of strings, or a value that is not an action.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_MAPPING_BYTES:
            raise RiggedHeadError(f"mapping file is {size:,} bytes, over the limit of {MAX_MAPPING_BYTES:,}", path)
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RiggedHeadError(f"cannot read the mapping file: {exc.strerror or exc}", path) from None
    except ValueError as exc:
        raise RiggedHeadError(f"the mapping file is not valid JSON: {exc}", path) from None
    return _check_mapping(data, vocabulary or load_vocabulary(), path)


def _check_mapping(data: Any, vocabulary: Vocabulary, source: str | Path | None) -> dict[str, str | None]:
    if not isinstance(data, dict):
        raise RiggedHeadError("a mapping must be a JSON object {their shape name: FACS name or null}", source)
    mapping: dict[str, str | None] = {}
    for name, target in data.items():
        if target is None:
            mapping[name] = None
            continue
        if not isinstance(target, str):
            raise RiggedHeadError(f"mapping of {name!r} must be a FACS name or null, got {target!r}", source)
        try:
            mapping[name] = vocabulary.action_names[vocabulary.action_index(target)]
        except VocabularyError as exc:
            raise RiggedHeadError(f"mapping of {name!r}: {exc.reason}", source) from None
    return mapping


# ---------------------------------------------------------------------------------------------- matching
def match_shapes(names: tuple[str, ...] | list[str], vocabulary: Vocabulary,
                 mapping: Mapping[str, str | None] | None = None,
                 source: str | Path | None = None) -> tuple[dict[str, list[int]], MatchReport]:
    """Which file shapes make which action (see the module docstring).

    Args:
        names: the file's shape names, in file order.
        mapping: checked user mapping (:func:`load_mapping`), exact names.
        source: the file, for error messages.

    Returns:
        (action full name -> indices into ``names`` to sum, for every labelled action; the report).

    Raises:
        RiggedHeadError: two shapes give the same action.
    """
    aliases = _aliases(vocabulary)
    mapping = mapping or {}
    whole: dict[str, list[int]] = {}  # action -> shapes that are the whole action
    parts: dict[str, dict[str, list[int]]] = {}  # action -> part key -> shapes
    unmatched: dict[str, str] = {}
    for i, name in enumerate(names):
        key = name_key(name)
        if name in mapping:
            if mapping[name] is None:
                unmatched[name] = "ignored by the mapping"
            else:
                whole.setdefault(mapping[name], []).append(i)
        elif key in aliases.whole:
            whole.setdefault(aliases.whole[key][0], []).append(i)
        elif key in aliases.parts:
            parts.setdefault(aliases.parts[key], {}).setdefault(key, []).append(i)
        else:
            unmatched[name] = aliases.reasons.get(key, "unknown name: not a FACS, ARKit or ICT name of one pose")

    sources: dict[str, list[int]] = {}
    summed: dict[str, list[str]] = {}
    for action in vocabulary.action_names:
        given = whole.get(action, [])
        pieces = parts.get(action, {})
        used = given + [i for shapes in pieces.values() for i in shapes]
        repeated = [shapes for shapes in pieces.values() if len(shapes) > 1]
        if len(given) > 1 or repeated or (given and pieces):
            clash = ", ".join(repr(names[i]) for i in used)
            raise RiggedHeadError(
                f"shapes {clash} all give the FACS pose {action}; keep one, or map the others to null in a "
                "mapping file", source)
        if given:
            sources[action] = given
            continue
        if not pieces:
            continue
        present = frozenset(pieces)
        if present in aliases.sums.get(action, []):
            sources[action] = sorted(used)
            summed[action] = [names[i] for i in sorted(used)]
        else:
            wanted = min(aliases.sums[action], key=lambda keys: len(keys - present))
            for i in used:
                unmatched[names[i]] = (f"only part of {action}, which is the sum of shapes named like "
                                       f"{sorted(wanted)}; the others are missing")
    matched = {names[i]: action for action, shapes in sources.items() for i in shapes}
    report = MatchReport(
        matched=dict(sorted(matched.items(), key=lambda item: names.index(item[0]))),
        summed=summed,
        unmatched=unmatched,
        labelled=tuple(a for a in vocabulary.action_names if a in sources),
        unlabelled=tuple(a for a in vocabulary.action_names if a not in sources),
    )
    return sources, report


# ---------------------------------------------------------------------------------------------- loading
def load_rigged_head(
    path: str | Path,
    mapping: str | Path | Mapping[str, str | None] | None = None,
    *,
    select: str | None = None,
    vocabulary: Vocabulary | None = None,
    limits: LoadLimits | None = None,
) -> RiggedHead:
    """Read a rigged head's neutral and blend shapes as the vocabulary's FACS action deltas.

    Args:
        path: a file a registered blend-shape reader takes (:data:`facerig.io.SHAPE_LOADERS`: glTF/GLB, USD).
        mapping: a mapping file (:func:`load_mapping`) or an already loaded ``{name: FACS name or None}``.
        select: keep only meshes whose node/prim (or an ancestor) name contains this (glTF, USD).
        vocabulary: the poses; the bundled vocabulary when None.
        limits: file size and vertex bounds.

    Raises:
        RiggedHeadError: no shape gives a FACS pose, two shapes give the same pose, NaN/infinite offsets, or
            a bad mapping.
        MeshLoadError: the file cannot be read (offsets that do not fit the mesh included).
    """
    path = Path(path)
    vocabulary = vocabulary or load_vocabulary()
    if isinstance(mapping, (str, Path)):
        mapping = load_mapping(mapping, vocabulary)
    elif mapping is not None:
        mapping = _check_mapping(dict(mapping), vocabulary, None)
    shapes = load_blend_shapes(path, limits, **({"select": select} if select is not None else {}))
    bad = [name for name, delta in zip(shapes.names, shapes.deltas) if not np.isfinite(delta).all()]
    if bad:
        raise RiggedHeadError(f"blend shapes with NaN or infinite offsets: {', '.join(map(repr, bad[:5]))}", path)
    sources, report = match_shapes(shapes.names, vocabulary, mapping, path)
    if not sources:
        unknown = [n for n, why in report.unmatched.items() if why.startswith("unknown name")]
        known = [n for n in report.unmatched if n not in unknown]
        found = "; ".join(f"{what}: {', '.join(map(repr, group[:10]))}{' ...' if len(group) > 10 else ''}"
                          for what, group in (("unknown names", unknown), ("not single poses", known)) if group)
        raise RiggedHeadError(
            f"no blend shape matches a FACS pose ({found or 'the file has no blend shapes'}); name them with FACS, "
            "ARKit or ICT-FaceKit names, or give a mapping file {\"their name\": \"FACS name\"}", path, report)
    actions = vocabulary.action_names
    deltas = np.zeros((len(actions), shapes.mesh.n_vertices, 3), np.float32)
    labelled = np.zeros(len(actions), bool)
    for a, action in enumerate(actions):
        if action in sources:
            deltas[a] = shapes.deltas[sources[action]].sum(axis=0)
            labelled[a] = True
    return RiggedHead(path=path, mesh=shapes.mesh, action_names=actions, deltas=deltas, labelled=labelled,
                      report=report)


def find_rigged_heads(folder: str | Path) -> list[Path]:
    """Every file under ``folder`` (recursively, hidden entries skipped) a blend-shape reader takes, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RiggedHeadError("not a folder of rigged heads", folder)
    suffixes = {f".{suffix}" for suffix in SHAPE_LOADERS}
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in suffixes
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
