"""The cross-artist accuracy table: the bundled model against template transfer and the neutral baseline, on
held-out heads of every artist we have ground truth for, raw and gain-calibrated, per region and for the eye
poses on their own; plus the non-ICT heads of ../shared/data/heads, which have no ground truth (side score and
motion size only).

    python bench/cross_artist.py --dataset ict=datasets/ict-cpu --dataset makehuman=datasets/mh-cpu
    python bench/cross_artist.py ... --model runs/x/model --write docs/eval/cross-artist.md

Why this table and not the ICT one alone: ICT-made heads share the artist, the part layout and the template the
transfer baseline was made from; a studio judges facerig on its own characters. Each artist's own poses are
scored (MakeHuman labels 23 of the 47 actions; the others carry no 3D truth there), and "ratio" is the method's
MAE over the neutral baseline's on the same heads and poses (lower is better; 1 is doing nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from facerig.eval.evaluate import EvalReport, evaluate  # noqa: E402
from markdown_tables import markdown_table  # noqa: E402

SHARED = Path(os.environ.get("FACERIG_SHARED", REPO.parent / "shared"))
NO_TRUTH_HEADS = ("suzanne.obj", "spot.obj", "robot_expressive.glb")
METHODS = ("model", "transfer", "neutral")
REGIONS = ("face", "head", "mouth_interior", "teeth", "eye_socket", "eyeball", "eye_surface", "eyelashes")


def _mean(values: list[float]) -> float:
    values = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def summarise(artist: str, report: EvalReport) -> list[dict]:
    """One row per method: MAE raw / after gain, ratios to neutral, eye poses, per region."""
    neutral = report.methods["neutral"]
    eye_poses = [pose for pose in report.poses if "Eye" in pose]
    rows = []
    for method in METHODS:
        metrics = report.methods.get(method)
        if metrics is None:
            continue
        eyes = _mean([metrics.per_pose.get(p) for p in eye_poses])
        eyes_gain = _mean([metrics.per_pose_gain.get(p) for p in eye_poses])
        eyes_neutral = _mean([neutral.per_pose.get(p) for p in eye_poses])
        rows.append({
            "artist": artist,
            "heads": len(report.heads),
            "poses": len(report.poses),
            "method": method,
            "mae": metrics.mae,
            "mae_gain": metrics.mae_gain,
            "ratio": metrics.mae / neutral.mae,
            "ratio_gain": metrics.mae_gain / neutral.mae,
            "q95": metrics.q95,
            "mae_moving": metrics.mae_moving,
            "eyes": eyes,
            "eyes_gain": eyes_gain,
            "eyes_ratio": eyes / eyes_neutral if eyes_neutral > 0 else float("nan"),
            "cosine": _mean(list(metrics.per_pose_cosine.values())),
            "blink": metrics.blink_closure if method != "neutral" else 0.0,
            "blink_truth": report.truth_blink_closure,
            "regions": {region: metrics.per_region.get(region) for region in REGIONS if region in metrics.per_region},
        })
    return rows


def markdown(rows: list[dict], no_truth: dict[str, dict[str, dict]], settings: dict) -> str:
    lines = [
        "# Cross-artist accuracy",
        "",
        f"Model: `{settings['model']}`; `python bench/cross_artist.py {settings['command']}` "
        f"({settings['seconds']:.0f} s). Errors in mm on held-out identities (re-meshed), each artist's own "
        "labelled poses; *ratio* = MAE / the neutral baseline's MAE on the same heads (1 = doing nothing); "
        "*gain* = after the best per-pose gain; *eyes* = the EyeClosed, EyeUpperLidRaiser and EyesLook poses; "
        "*cos* = mean per-pose cosine between predicted and true deltas; *blink* = how much of each eyeball "
        "its EyeClosed covers from the front (`facerig.anatomy.contact`; the artist's own in brackets).",
        "",
        *markdown_table(
            ["artist (heads, poses)", "method", "MAE", "ratio", "MAE gain", "ratio gain", "Q95", "eyes", "eyes gain",
             "eyes ratio", "cos", "blink"],
            ([f"{r['artist']} ({r['heads']}, {r['poses']})", r["method"], f"{r['mae']:.3f}", f"{r['ratio']:.1%}",
              f"{r['mae_gain']:.3f}", f"{r['ratio_gain']:.1%}", f"{r['q95']:.3f}", f"{r['eyes']:.3f}",
              f"{r['eyes_gain']:.3f}", f"{r['eyes_ratio']:.1%}", f"{r['cosine']:.2f}",
              f"{r['blink']:.2f} ({r['blink_truth']:.2f})"] for r in rows),
        ),
    ]
    lines += ["", "Per region (MAE, mm):", ""]
    regions = [reg for reg in REGIONS if any(reg in r["regions"] for r in rows)]
    lines += markdown_table(
        ["artist", "method", *regions],
        ([r["artist"], r["method"],
          *(f"{r['regions'][reg]:.3f}" if r["regions"].get(reg) is not None else "" for reg in regions)]
         for r in rows),
    )
    if no_truth:
        lines += ["", "Heads without ground truth (side score: share of each one-sided pose's motion on its own side, "
                  "1 is perfect; peak: median largest displacement per pose, cranium radii):", ""]
        lines += markdown_table(
            ["head", "method", "side score", "peak (median)", "poses moving"],
            ([head, method, f"{m['side_correct']:.2f}", f"{m['peak_median']:.3f}", f"{m['moving_poses']}"]
             for head, methods in no_truth.items() for method, m in methods.items()),
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="packaged model (default: the bundled one)")
    parser.add_argument("--dataset", action="append", required=True, metavar="ARTIST=PATH",
                        help="a built dataset and its artist's name; repeat for each artist")
    parser.add_argument("--split", default="test")
    parser.add_argument("--max-heads", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--write", type=Path, default=None, help="also write the Markdown table here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    started = time.perf_counter()
    rows: list[dict] = []
    no_truth: dict[str, dict[str, dict]] = {}
    heads = [SHARED / "data" / "heads" / name for name in NO_TRUTH_HEADS]
    for index, spec in enumerate(args.dataset):
        artist, _, path = spec.partition("=")
        report = evaluate(args.model, path, args.split, methods=METHODS, max_heads=args.max_heads, progress=True,
                          extra_heads=heads if index == 0 else ())
        rows += summarise(artist, report)
        for head, methods in report.extra_heads.items():
            no_truth[head] = {method: vars(metrics) for method, metrics in methods.items()}
    command = " ".join(f"--dataset {spec}" for spec in args.dataset)
    if args.model is not None:
        command += f" --model {args.model}"
    settings = {"model": str(args.model or "facerig/models/default"), "command": command,
                "seconds": time.perf_counter() - started}
    text = markdown(rows, no_truth, settings)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cross_artist.json").write_text(json.dumps({"rows": rows, "no_truth": no_truth, **settings},
                                                           indent=1, default=float) + "\n")
    (args.out / "cross_artist.md").write_text(text)
    if args.write is not None:
        args.write.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
