"""Face-cropped, heat-mapped contact sheets of heads that are not ICT's: what an animator sees first.

    python bench/contact_sheets.py --out docs/contact-sheets [--model M] [--makehuman datasets/mh-cpu]

For each head (Suzanne, Spot the cow, the RobotExpressive head, and a held-out MakeHuman head when a MakeHuman
dataset is given), the bundled model's rig and the template transfer's rig of the poses an animator checks first
(jaw, blinks, lid raise, gaze, lips, brows, a corrective as its combined pose) are rendered with
:func:`facerig.render.preview.contact_sheet` (``heat_map=True``: grey is still, red is 5% of the head's size). The
MakeHuman head also gets its artist's own poses, so the three sheets can be read side by side.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from facerig.eval.datasets import load_sample, read_manifest  # noqa: E402
from facerig.io import load_mesh  # noqa: E402
from facerig.mesh import Mesh  # noqa: E402
from facerig.rigging.pipeline import load_model, rig_mesh  # noqa: E402
from facerig.render.preview import write_contact_sheet  # noqa: E402
from facerig.rig import Rig  # noqa: E402
from facerig.rigging.transfer import rig_by_transfer  # noqa: E402
from facerig.vocabulary import load_vocabulary  # noqa: E402

SHARED = Path(os.environ.get("FACERIG_SHARED", REPO.parent / "shared"))
POSES = ("JawDrop", "LeftEyeClosed", "RightEyeClosed", "LeftEyeUpperLidRaiser", "EyesLookLeft", "LipsTogether",
         "LeftLipCornerPuller", "Pucker", "LeftBrowLowerer", "LeftInnerBrowRaiser", "JawDrop_LeftLipCornerPuller")


def makehuman_head(dataset: Path) -> tuple[Mesh, Rig]:
    """The first held-out MakeHuman head of a dataset, and its artist's own rig (labelled poses only)."""
    manifest = read_manifest(dataset)
    entry = next(e for e in manifest["samples"] if e["split"] == "test" and e["kind"] == "rigged")
    arrays = load_sample(dataset / entry["file"])
    mesh = Mesh(arrays["vertices"].astype(np.float64), arrays["face_vertex_counts"], arrays["face_vertex_indices"],
                up_axis="Y", meters_per_unit=float(arrays["meters_per_unit"]), name=entry["name"])
    shapes = list(manifest["shapes"])
    labelled = [i for i, name in enumerate(shapes) if arrays["labelled"][i] and name in POSES]
    names = [shapes[i] for i in labelled]
    # the dataset stores corrective residuals: with their recipes the sheet shows the combined pose, as for the rigs
    recipes = {c.name: c.bases for c in load_vocabulary().correctives
               if c.name in names and all(base in names for base in c.bases)}
    truth = Rig(neutral=mesh, shape_names=names, deltas=arrays["deltas"][labelled].astype(np.float32),
                corrective_recipes=recipes)
    return mesh, truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "contact-sheets")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--makehuman", type=Path, default=None, help="a MakeHuman dataset (held-out head + truth)")
    parser.add_argument("--size", type=int, default=144, help="tile size in pixels")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model = load_model(args.model)
    heads: dict[str, tuple[Mesh, Rig | None]] = {
        "suzanne": (load_mesh(SHARED / "data" / "heads" / "suzanne.obj"), None),
        "spot": (load_mesh(SHARED / "data" / "heads" / "spot.obj"), None),
        "robot": (load_mesh(SHARED / "data" / "heads" / "robot_expressive.glb", select="Head"), None),
    }
    if args.makehuman is not None:
        heads["makehuman"] = makehuman_head(args.makehuman)
    for name, (mesh, truth) in heads.items():
        rigs = {"model": rig_mesh(mesh, model), "transfer": rig_by_transfer(mesh)}
        if truth is not None:
            rigs["artist"] = truth
        for method, rig in rigs.items():
            shapes = [pose for pose in POSES if pose in rig.shape_names]
            path = write_contact_sheet(rig, args.out / f"{name}-{method}.png", shapes, tile_size=args.size,
                                       columns=6, heat_map=True)
            warnings = "; ".join(rig.metadata.get("warnings", [])) or "none"
            print(f"{path} ({len(shapes)} poses; warnings: {warnings})")


if __name__ == "__main__":
    main()
