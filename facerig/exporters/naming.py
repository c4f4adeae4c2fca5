"""The Roblox naming preset, and the plain-words notes every naming preset owes the user.

Roblox Dynamic Heads name their 50 base poses by ``Enum.FacsActionUnit`` (create.roblox.com/docs/reference/
engine/enums/FacsActionUnit), the FACS names facerig's vocabulary uses, and correctives by their 2–3 base
poses joined with ``_``. Differences from facerig's own ("facs") names, applied by the "roblox" preset:

* Roblox has three tongue poses (TongueDown, TongueOut, TongueUp) that facerig does not build (a neutral
  head rarely has a tongue that can move); they are not written, and are listed as missing.
* A corrective's bases are ordered alphabetically after dropping a leading ``Left``/``Right``, ignoring
  case (``LeftEyeClosed_EyesLookDown``, ``Pucker_LeftUpperLipRaiser``): the order of the Roblox FACS preset
  of the RBX_Toolbox add-on (shared reference ``correctives.md`` §2.1); facerig sorts plainly, so 7 of its
  48 correctives are renamed (``EyesLookDown_LeftEyeClosed`` -> ``LeftEyeClosed_EyesLookDown``, ...).
* Roblox rejects correctives of more than 3 poses, and ones mixing a Left and a Right pose; such
  correctives (none in facerig's default vocabulary) and shapes that are not Roblox poses are dropped.

Roblox drives faces with bone poses, not blend shapes (see the README's Formats section): the preset
names shapes for tools that convert them (e.g. a per-pose bone solve), and for FACS-named pipelines.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

# Enum.FacsActionUnit 0-49, in enum order.
ROBLOX_POSES = (
    "ChinRaiserUpperLip", "ChinRaiser", "FlatPucker", "Funneler", "LowerLipSuck", "LipPresser", "LipsTogether",
    "MouthLeft", "MouthRight", "Pucker", "UpperLipSuck", "LeftCheekPuff", "LeftDimpler", "LeftLipCornerDown",
    "LeftLowerLipDepressor", "LeftLipCornerPuller", "LeftLipStretcher", "LeftUpperLipRaiser", "RightCheekPuff",
    "RightDimpler", "RightLipCornerDown", "RightLowerLipDepressor", "RightLipCornerPuller", "RightLipStretcher",
    "RightUpperLipRaiser", "JawDrop", "JawLeft", "JawRight", "Corrugator", "LeftBrowLowerer",
    "LeftOuterBrowRaiser", "LeftNoseWrinkler", "LeftInnerBrowRaiser", "RightBrowLowerer", "RightOuterBrowRaiser",
    "RightInnerBrowRaiser", "RightNoseWrinkler", "EyesLookDown", "EyesLookLeft", "EyesLookUp", "EyesLookRight",
    "LeftCheekRaiser", "RightCheekRaiser", "LeftEyeUpperLidRaiser", "RightEyeUpperLidRaiser", "LeftEyeClosed",
    "RightEyeClosed", "TongueDown", "TongueOut", "TongueUp",
)  # fmt: skip
ROBLOX_MAX_CORRECTIVE_POSES = 3
_SIDE = re.compile(r"^(Left|Right)(?=[A-Z])")


def roblox_corrective_name(bases: tuple[str, ...] | list[str]) -> str:
    """The Roblox name of a corrective: its bases sorted ignoring a leading Left/Right and case, joined by ``_``."""
    return "_".join(sorted(bases, key=lambda name: (_SIDE.sub("", name).casefold(), name)))


def roblox_shapes(
    shape_names: tuple[str, ...], deltas: np.ndarray, recipes: dict[str, tuple[str, ...]]
) -> tuple[list[tuple[str, np.ndarray]], dict[str, tuple[str, ...]], dict[str, Any]]:
    """The rig's shapes under Roblox names: (name, (V, 3) deltas) list, corrective recipes, and notes.

    Notes (for :func:`facerig.exporters.common.describe`): ``roblox_missing`` (Roblox poses the rig lacks,
    not written), ``roblox_dropped`` ({shape: why} for shapes Roblox cannot take), ``roblox_renamed``
    ({facerig name: Roblox name}).
    """
    poses = set(ROBLOX_POSES)
    sources, correctives, dropped, renamed = [], {}, {}, {}
    for name, shape in zip(shape_names, deltas):
        bases = recipes.get(name)
        if bases is None:
            if name in poses:
                sources.append((name, shape))
            else:
                dropped[name] = "not a Roblox FACS pose"
            continue
        if len(bases) > ROBLOX_MAX_CORRECTIVE_POSES:
            dropped[name] = f"a corrective of {len(bases)} poses (Roblox takes at most 3)"
        elif not set(bases) <= poses:
            dropped[name] = "a corrective of poses Roblox does not have"
        elif {"Left", "Right"} <= {m.group(1) for m in map(_SIDE.match, bases) if m}:
            dropped[name] = "a corrective mixing Left and Right poses (Roblox rejects it)"
        else:
            roblox_name = roblox_corrective_name(bases)
            if roblox_name != name:
                renamed[name] = roblox_name
            sources.append((roblox_name, shape))
            correctives[roblox_name] = tuple(bases)
    notes: dict[str, Any] = {"roblox_missing": [p for p in ROBLOX_POSES if p not in set(shape_names)]}
    if dropped:
        notes["roblox_dropped"] = dropped
    if renamed:
        notes["roblox_renamed"] = renamed
    return sources, correctives, notes


def naming_notes(metadata: dict[str, Any]) -> list[str]:
    """One plain sentence per thing a naming preset dropped, renamed or left empty, from an export's metadata.

    ``metadata`` is :attr:`ExportRig.metadata` or a ``.facerig.json`` sidecar; an export that lost nothing
    gives no notes.
    """
    notes = []
    dropped = metadata.get("correctives_dropped") or []
    if dropped:
        notes.append(f"{len(dropped)} correctives dropped (ARKit has no correctives): {_few(dropped)}")
    empty = metadata.get("arkit_empty") or []
    if empty:
        notes.append(f"{len(empty)} ARKit shapes left empty (no FACS pose to build them from): {_few(empty)}")
    partial = [name for name, missing in (metadata.get("arkit_incomplete") or {}).items() if missing]
    if partial:
        notes.append(f"{len(partial)} ARKit shapes built without some FACS sources the rig lacks: {_few(partial)}")
    missing = metadata.get("roblox_missing") or []
    if missing:
        notes.append(f"{len(missing)} Roblox poses not written (the rig does not have them): {_few(missing)}")
    for name, why in (metadata.get("roblox_dropped") or {}).items():
        notes.append(f"{name} dropped: {why}")
    renamed = metadata.get("roblox_renamed") or {}
    if renamed:
        pairs = [f"{old} -> {new}" for old, new in renamed.items()]
        notes.append(f"{len(renamed)} correctives renamed to Roblox's base order: {_few(pairs)}")
    return notes


def _few(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


__all__ = ["ROBLOX_POSES", "naming_notes", "roblox_corrective_name", "roblox_shapes"]
