"""The 68 Multi-PIE landmarks on MakeHuman's base head, found by fitting ICT's neutral to it (run once).

``python -m facerig.trainer.makehuman_landmarks ICT_SOURCE MAKEHUMAN_SOURCE`` writes
``facerig/data/makehuman_landmarks.json``: per Multi-PIE landmark the base.obj vertex index (MakeHuman's own
numbering, so the file does not depend on the crop). The builder reads that file; no ICT data is needed to
build a MakeHuman dataset.

Method: ICT's neutral skin (whose 68 landmark vertices the kit lists) is scaled and moved so its eyeball
centres land on MakeHuman's, then registered to the cropped MakeHuman skin with the transfer baseline's fit
(:func:`facerig.rigging.transfer.register`: similarity ICP, then a membrane fit). Each registered ICT landmark takes
the nearest MakeHuman skin vertex. The eyelid landmarks then go through one check and repair: the upper lid
landmarks must be vertices that MakeHuman's own eye-closure unit moves down most strongly near that spot,
the lower ones vertices it hardly moves, so the trainer's eye-closure loss measures a lid gap that the
source's closure really closes (:func:`snap_eyelids`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from facerig.geometry import fit_sphere
from facerig.fileio import write_bytes_atomic

LANDMARKS_FILE = Path(__file__).resolve().parent.parent / "data" / "makehuman_landmarks.json"
# (upper, lower) Multi-PIE eyelid landmarks per side of the character (see dataset.EYELID_PAIRS).
_LIDS = {"r": ((37, 41), (38, 40)), "l": ((43, 47), (44, 46))}


def fit_landmarks(ict_source: str | Path, makehuman_source: str | Path) -> dict[str, object]:
    """The landmark file's content: base.obj vertex index per landmark, with the fit's residuals."""
    from facerig.trainer.ict import PARTS, load_ict
    from facerig.trainer.makehuman import load_makehuman
    from facerig.rigging.transfer import register

    ict = load_ict(ict_source)
    mh = load_makehuman(makehuman_source)
    part_names = [name for name, *_ in PARTS]
    ict_parts = ict.part_of_vertex()
    ict_skin = np.isin(ict_parts, [part_names.index(n) for n in ("face", "face_outer", "head_neck")])

    def centres(points_l: np.ndarray, points_r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return fit_sphere(points_l)[0], fit_sphere(points_r)[0]

    ict_l, ict_r = centres(*(ict.neutral[ict_parts == part_names.index(n)] for n in ("eyeball_left", "eyeball_right")))
    mh_l, mh_r = centres(*(mh.neutral[mh.groups == g] for g in ("helper-l-eye", "helper-r-eye")))
    scale = np.linalg.norm(mh_l - mh_r) / np.linalg.norm(ict_l - ict_r)
    template = (ict.neutral - (ict_l + ict_r) / 2) * scale + (mh_l + mh_r) / 2

    mh_skin = mh.groups == "body"
    registration = register(template, ict.triangles, ict_skin, mh.neutral, mh.triangles, mh_skin)
    skin_index = np.flatnonzero(mh_skin)
    points = registration.vertices[ict.landmarks]
    distance = np.linalg.norm(mh.neutral[skin_index][None] - points[:, None], axis=2)
    nearest = skin_index[distance.argmin(axis=1)]
    local = snap_eyelids(mh, nearest)
    return {
        "about": "68 Multi-PIE landmarks on MakeHuman base.obj (vertex indices, 0-based), fitted from ICT's "
        "neutral by facerig.trainer.makehuman_landmarks; eyelid landmarks snapped to the eye-closure unit",
        "landmarks": [int(mh.base_index[i]) for i in local],
        "fit_rms_cm": round(registration.skin_rms, 4),
        "landmark_offset_cm": [round(float(x), 4) for x in np.linalg.norm(mh.neutral[local] - points, axis=1)],
    }


def snap_eyelids(mh: object, landmarks: np.ndarray) -> np.ndarray:
    """Landmarks with the lid pairs and the inner lips moved onto the margins MakeHuman's units close or open.

    Eyelids: the upper landmark becomes the skin vertex near it that the eye-closure unit moves down most,
    the lower one the still vertex nearest to where that closed upper lid lands. Inner lips (61-63 upper,
    65-67 lower): MakeHuman's lips touch, so the fit can put both on one vertex; among the front skin
    vertices in the landmark's column, the upper takes the lowest one the mouth-open unit leaves still and
    the lower the highest one it moves. Both ethnic sets' units are averaged, as the builder's identities
    blend them.
    """
    from facerig.trainer.makehuman import EXPRESSION_SETS

    out = landmarks.copy()
    skin = np.flatnonzero(mh.groups == "body")
    v = mh.neutral

    def unit(name: str) -> np.ndarray:
        return np.mean([mh.expression_unit(s, name) for s in EXPRESSION_SETS], axis=0)

    for side, pairs in _LIDS.items():
        closure = unit("eye-left-closure" if side == "l" else "eye-right-closure")
        moved = np.linalg.norm(closure, axis=1)
        for upper, lower in pairs:
            near = skin[np.linalg.norm(v[skin] - v[out[upper]], axis=1) < 0.6]
            up = near[np.argmax(-closure[near, 1] - 2.0 * np.abs(v[near, 0] - v[out[upper], 0]))]
            landing = v[up] + closure[up]
            still = skin[moved[skin] < 0.1 * moved.max()]
            out[upper], out[lower] = up, still[np.argmin(np.linalg.norm(v[still] - landing, axis=1))]
    opening = np.linalg.norm(unit("mouth-open"), axis=1)
    for landmark, moving in ((61, False), (62, False), (63, False), (65, True), (66, True), (67, True)):
        point = v[out[landmark]]
        column = skin[(np.abs(v[skin, 0] - point[0]) < 0.3) & (np.abs(v[skin, 1] - point[1]) < 1.5)]
        column = column[v[column, 2] > v[column, 2].max() - 1.0]
        if moving:
            pick = column[opening[column] > 0.5 * opening.max()]
            out[landmark] = pick[np.argmax(v[pick, 1])]
        else:
            pick = column[opening[column] < 0.1 * opening.max()]
            out[landmark] = pick[np.argmin(v[pick, 1])]
    return out


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit("usage: python -m facerig.trainer.makehuman_landmarks ICT_SOURCE MAKEHUMAN_SOURCE")
    content = fit_landmarks(argv[0], argv[1])
    write_bytes_atomic(LANDMARKS_FILE, (json.dumps(content, indent=1) + "\n").encode())
    print(f"wrote {LANDMARKS_FILE} (skin fit rms {content['fit_rms_cm']} cm)")


if __name__ == "__main__":
    main(sys.argv[1:])
