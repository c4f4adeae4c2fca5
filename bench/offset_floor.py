"""A model's offset floor (facerig.rigging.pipeline.shrink_offsets), chosen on a dataset's validation split.

Prints MAE and Q95 for every candidate floor (facerig.eval.evaluate.choose_offset_floor: each rigged head rigged once
with the floor off, then every candidate applied as the rig applies it). ``--write`` records the best floor
as ``offset_floor`` in the model's ``model.json`` (``model.pt`` and the model id are unchanged). ``facerig
train`` does the same for the model it exports, on up to 8 validation heads.

    python bench/offset_floor.py --model facerig/models/default --dataset DATASET [--split val] [--write]

Choose on ``val``, never on ``test``: the test split is what the accuracy table reports.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from facerig.eval.evaluate import choose_offset_floor  # noqa: E402
from facerig.fileio import write_bytes_atomic  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "facerig" / "models" / "default")
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--max-heads", type=int, default=None)
    parser.add_argument("--mirror-average", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", action="store_true", help="record the best floor in the model's model.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    choice = choose_offset_floor(args.model, args.dataset, args.split, max_heads=args.max_heads,
                                 cache_dir=args.dataset / "operators", mirror_average=args.mirror_average)
    print(f"{args.model.name} on {args.dataset.name}/{args.split}: {choice.heads} heads\n")
    print("| offset floor (canonical) | MAE (mm) | Q95 (mm) |\n|---|---|---|")
    for floor, mae in choice.mae_mm.items():
        print(f"| {floor:g} | {mae:.4f} | {choice.q95_mm[floor]:.3f} |")
    print(f"\nbest: {choice.floor:g}")
    if args.write:
        path = args.model / "model.json"
        document = json.loads(path.read_text(encoding="utf-8"))
        document["offset_floor"] = choice.floor
        write_bytes_atomic(path, (json.dumps(document, indent=2, allow_nan=False) + "\n").encode())
        print(f"wrote offset_floor = {choice.floor:g} to {path}")


if __name__ == "__main__":
    main()
