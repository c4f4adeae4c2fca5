"""How often the shape alone orients a head right (facerig/canonical/orientation.py), per source of heads.

For every head of the given built datasets (each sample's frame is known: +Y up, +Z front, before its transform) and
for the ICT neutral re-meshed to game-LOD sizes in every axis-aligned pose, prints how many were found right with
confidence, left unsure (the rig keeps +Y up, +Z front and warns) and found wrong with confidence (the harmful case:
the head is rigged in the wrong frame).

    python bench/orientation.py --dataset datasets/ict-cpu --dataset datasets/mh-cpu [--sizes 1500,1750,3000,6000]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.markdown_tables import markdown_table  # noqa: E402
from facerig.canonical.frame import axis_label, axis_rotations  # noqa: E402
from facerig.canonical.orientation import detect_orientation  # noqa: E402
from facerig.mesh import Mesh  # noqa: E402


def verdict(mesh: Mesh, rotation: np.ndarray) -> str:
    """"right", "unsure" or "wrong" for ``mesh`` (+Y up, +Z front) turned by ``rotation``."""
    found = detect_orientation(replace(mesh, vertices=mesh.vertices @ rotation.T))
    if not found.confident:
        return "unsure"
    truth = (axis_label(rotation @ np.array([0.0, 1.0, 0.0])), axis_label(rotation @ np.array([0.0, 0.0, 1.0])))
    return "right" if (found.up, found.front) == truth else "wrong"


def dataset_heads(root: Path):
    """(source, mesh, rotation) per sample: its vertices in the dataset frame, turned by the sample's transform."""
    import json

    manifest = json.loads((root / "manifest.json").read_text())
    for entry in manifest["samples"]:
        arrays = np.load(root / entry["file"])
        linear = arrays["transform"][:3, :3]
        rotation = linear / np.cbrt(np.linalg.det(linear))
        mesh = Mesh(arrays["vertices"], arrays["face_vertex_counts"], arrays["face_vertex_indices"], name=entry["name"])
        yield entry.get("source", root.name), replace(mesh, vertices=mesh.vertices @ rotation), rotation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, action="append", default=[], help="a built dataset (repeat)")
    parser.add_argument("--sizes", default="1500,1750,3000,6000", help="ICT re-mesh sizes ('' for none)")
    parser.add_argument("--ict", type=Path, default=REPO.parent / "shared" / "data" / "ICT-FaceKit.tar.xz")
    args = parser.parse_args()

    tallies: dict[str, Counter] = {}
    for root in args.dataset:
        for source, mesh, rotation in dataset_heads(root):
            tallies.setdefault(f"{source} dataset heads (their own pose)", Counter())[verdict(mesh, rotation)] += 1
    if args.sizes:
        from facerig.geometry.remesh import RemeshOptions, remesh
        from facerig.trainer.ict import load_ict

        ict = load_ict(args.ict)
        for size in (int(s) for s in args.sizes.split(",")):
            result = remesh(ict.neutral, ict.triangles, RemeshOptions(budget=size), np.random.default_rng(0))
            mesh = Mesh(result.vertices, result.face_vertex_counts, result.face_vertex_indices, name=f"ict_{size}")
            tally = tallies.setdefault(f"ICT neutral re-meshed to {mesh.n_vertices} vertices, 24 poses", Counter())
            for rotation in axis_rotations():
                tally[verdict(mesh, rotation)] += 1
    rows = [[name, str(t["right"]), str(t["unsure"]), str(t["wrong"])] for name, t in tallies.items()]
    print("\n".join(markdown_table(["heads", "right", "unsure (default kept, warned)", "wrong with confidence"], rows)))


if __name__ == "__main__":
    main()
