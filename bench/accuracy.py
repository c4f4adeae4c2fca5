"""The accuracy table (SPEC §9) in one command: model vs deformation transfer vs zero displacement.

Rigs every rigged head of a dataset's test split (held-out identities, each re-meshed) with the packaged model,
the template deformation transfer (facerig.rigging.transfer) and the neutral baseline, plus the CC0 heads in
../shared/data/heads (no ground truth: side correctness, displacement size, penetration), and writes
``accuracy.json`` + ``accuracy.md`` (the README table is the first table of the Markdown).

    python bench/accuracy.py --model facerig/models/default --dataset DATASET [--mirror-average]
    python bench/accuracy.py --model M            # builds a test-only dataset from the ICT archive first
    python bench/accuracy.py --methods transfer,neutral --max-heads 4   # quick, no model needed

Without ``--dataset``, the rigged identities, seed and split fractions of the default ``facerig data ict``
build are used with one sample per identity, so the test heads are the same held-out identities as the
training set's (with their own re-meshings); the dataset is cached under ``.facerig-cache/accuracy-dataset-N``.
Building all 161 identities takes a while (the whole split plan is built, about 2–10 s per head);
``--rigged 24`` gives a quick 4-head test split of other identities.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from facerig.eval.evaluate import METHODS, evaluate  # noqa: E402

SHARED = Path(os.environ.get("FACERIG_SHARED", REPO.parent / "shared"))
CC0_HEADS = ("suzanne.obj", "spot.obj", "robot_expressive.glb")


def test_dataset(cache: Path, rigged: int, workers: int) -> Path:
    """A dataset with one sample per rigged identity (built once per identity count, then reused)."""
    from facerig.trainer.dataset import BuildOptions, build_ict_dataset

    cache = cache.with_name(f"{cache.name}-{rigged}")
    if (cache / "manifest.json").is_file():
        return cache
    archive = SHARED / "data" / "ICT-FaceKit.tar.xz"
    options = BuildOptions(rigged=rigged, unrigged=0, factor_rigged=1, augment_fraction=0.0)
    print(f"building {cache} from {archive} (one sample per identity) ...", flush=True)
    build_ict_dataset(archive, cache, options, workers=workers, overwrite=True, progress=True)
    return cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="packaged model (default: the bundled one)")
    parser.add_argument("--dataset", type=Path, default=None, help="a built dataset (default: build one)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--max-heads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--rigged", type=int, default=161,
                        help="identities of the built dataset (161: the default build's split; fewer: quicker)")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    parser.add_argument("--mirror-average", action="store_true", help="rig as `facerig rig --mirror-average`")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    dataset = args.dataset or test_dataset(REPO / ".facerig-cache" / "accuracy-dataset", args.rigged, args.workers)
    heads = [SHARED / "data" / "heads" / name for name in CC0_HEADS if (SHARED / "data" / "heads" / name).is_file()]
    started = time.perf_counter()
    report = evaluate(args.model, dataset, args.split, methods=args.methods.split(","), extra_heads=heads,
                      max_heads=args.max_heads, progress=True, mirror_average=args.mirror_average)
    json_path, md_path = report.write(args.out, stem="accuracy")
    markdown = md_path.read_text()
    print(markdown.split("\n## ")[0])
    print(f"{len(report.heads)} heads in {time.perf_counter() - started:.0f} s -> {json_path}, {md_path}")


if __name__ == "__main__":
    main()
