"""Choose a model's offset floor (facerig.pipeline.shrink_offsets) on a dataset's validation split.

Rigs every rigged head of the split once with the floor off, then shrinks the predicted offsets by each
candidate floor (in canonical units, as the rig does; converted per head through its canonical scale) and
prints MAE and Q95 against the ground truth. The smallest-MAE floor is the one to record; ``--write`` stores
it as ``offset_floor`` in the model's ``model.json`` (``model.pt`` and the model id are unchanged).

    python bench/offset_floor.py --model facerig/models/default --dataset DATASET [--split val] [--write]

Choose on ``val``, never on ``test``: the test split is what the accuracy table reports.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from facerig.evaluate import _sample_mesh, vertex_errors  # noqa: E402
from facerig.fileio import write_bytes_atomic  # noqa: E402
from facerig.model import PackagedModel  # noqa: E402
from facerig.pipeline import rig_mesh, shrink_offsets  # noqa: E402
from facerig.trainer.dataset import load_sample, read_manifest  # noqa: E402
from facerig.vocabulary import load_vocabulary  # noqa: E402

FLOORS = (0.0, 5e-5, 1e-4, 2e-4, 3e-4, 4e-4, 6e-4, 8e-4, 1.2e-3)  # canonical units (a human head: 1 ~ 9 cm)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "facerig" / "models" / "default")
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--mirror-average", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", action="store_true", help="record the best floor in the model's model.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = PackagedModel.load(args.model)
    vocabulary = load_vocabulary()
    manifest = read_manifest(args.dataset)
    shapes, labelled = list(manifest["shapes"]), np.asarray(manifest["labelled"], bool)
    poses = [p for p in vocabulary.action_names if p in shapes and labelled[shapes.index(p)]]
    entries = [e for e in manifest["samples"] if e["split"] == args.split and e["kind"] == "rigged"]
    errors: dict[float, list[np.ndarray]] = {floor: [] for floor in FLOORS}
    for entry in entries:
        arrays = load_sample(args.dataset / entry["file"])
        mesh = _sample_mesh(arrays, entry["name"])
        rig = rig_mesh(mesh, model, vocabulary=vocabulary, cache_dir=args.dataset / "operators",
                       mirror_average=args.mirror_average, offset_floor=0.0)
        scale = float(rig.metadata["canonical_frame"]["scale"])  # canonical length per mesh unit
        mm = float(arrays["meters_per_unit"]) * 1000.0
        truth = arrays["deltas"][[shapes.index(p) for p in poses]].astype(np.float64)
        predicted = np.stack([rig.delta(p) for p in poses]).astype(np.float64)
        for floor in FLOORS:
            errors[floor].append(vertex_errors(shrink_offsets(predicted, floor / scale), truth, mm).ravel())

    print(f"{args.model.name} on {args.dataset.name}/{args.split}: {len(entries)} heads, {len(poses)} poses\n")
    print("| offset floor (canonical) | MAE (mm) | Q95 (mm) |\n|---|---|---|")
    mae = {}
    for floor in FLOORS:
        values = np.concatenate(errors[floor])
        mae[floor] = float(values.mean())
        print(f"| {floor:g} | {mae[floor]:.4f} | {np.quantile(values, 0.95):.3f} |")
    best = min(mae, key=mae.get)
    print(f"\nbest: {best:g}")
    if args.write:
        path = args.model / "model.json"
        document = json.loads(path.read_text(encoding="utf-8"))
        document["offset_floor"] = best
        write_bytes_atomic(path, (json.dumps(document, indent=2, allow_nan=False) + "\n").encode())
        print(f"wrote offset_floor = {best:g} to {path}")


if __name__ == "__main__":
    main()
