"""How few of a studio's own rigs close the gap: the fine-tuning curve on held-out MakeHuman identities.

For k = 1, 4, 16 MakeHuman identities (a seeded, nested choice: ``data.identities``), fine-tune an ICT-only
model (``--base``; the README's table used run 8, the bundled model before MakeHuman) with
``configs/finetune.toml``, then score on the dataset's test identities, next to the ICT-only
model itself, an optional model trained on ICT + MakeHuman together (``--joint``), the template transfer and the
neutral baseline. Raw and gain-calibrated MAE, each as a ratio to the neutral baseline's (1 = doing nothing).

    git worktree add ../run8 2725aeb^      # run 8, the ICT-only model bundled before MakeHuman
    python bench/finetune_curve.py --dataset datasets/mh-cpu --base ../run8/facerig/models/default \
        --joint runs/ictmh/model --steps 400 --write docs/eval/finetune-curve.md

Fine-tuning runs go to ``--runs`` (default runs/finetune-curve/k<k>); a run whose model exists is not redone, and
one interrupted is resumed from its last checkpoint, so the script can be stopped and started again.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from facerig.eval.evaluate import EvalReport, evaluate  # noqa: E402
from markdown_tables import markdown_table  # noqa: E402


def fine_tune(dataset: Path, k: int, steps: int, out_dir: Path, threads: int, base: Path) -> Path:
    """The packaged model of a fine-tune on k identities (trained now unless it exists)."""
    model = out_dir / "model"
    if (model / "model.json").is_file():
        return model
    command = [sys.executable, "-m", "facerig", "train", "--config", str(REPO / "configs" / "finetune.toml"),
               "--data.dataset", str(dataset), "--data.identities", f"{{makehuman = {k}}}",
               "--run.out_dir", str(out_dir), "--run.threads", str(threads), "--stage2.max_steps", str(steps),
               "--stage2.init", str(base)]
    checkpoints = sorted((out_dir / "checkpoints").glob("stage2-*.pt"))
    if checkpoints:
        command += ["--resume", str(checkpoints[-1])]
    subprocess.run(command, check=True, cwd=REPO)
    return model


def row(label: str, report: EvalReport, method: str) -> dict:
    metrics, neutral = report.methods[method], report.methods["neutral"]
    cosines = [c for c in metrics.per_pose_cosine.values() if c is not None] if method != "neutral" else []
    return {"model": label, "mae": metrics.mae, "mae_gain": metrics.mae_gain, "ratio": metrics.mae / neutral.mae,
            "ratio_gain": metrics.mae_gain / neutral.mae,
            "cosine": sum(cosines) / len(cosines) if cosines else float("nan"),
            "blink": metrics.blink_closure if method != "neutral" else report.truth_blink_closure}


def _versus(r: dict, transfer: dict) -> str:
    """A model's MAE over the template transfer's (raw / gain); empty on the baselines' own rows."""
    if r["model"] in ("template transfer", "neutral (zero)"):
        return ""
    return f"{r['mae'] / transfer['mae']:.2f} / {r['mae_gain'] / transfer['mae_gain']:.2f}"


def markdown(rows: list[dict], settings: dict) -> str:
    transfer = next(r for r in rows if r["model"] == "template transfer")
    lines = [
        "# Fine-tuning curve on MakeHuman identities",
        "",
        f"`python bench/finetune_curve.py {settings['command']}` ({settings['seconds']:.0f} s). "
        f"{settings['heads']} held-out MakeHuman identities (test split of `{settings['dataset']}`), "
        f"{settings['poses']} labelled poses; mm. *ratio* = MAE / the neutral baseline's; *gain* = after the best "
        "per-pose gain; *cos* = mean per-pose cosine with the true deltas; *blink closure* = how much of each eyeball "
        "its EyeClosed covers (`facerig.anatomy.contact`; on the neutral row: MakeHuman's own blinks); *vs transfer* = the ratio of the model's "
        f"MAE to the template transfer's (raw / gain; below 1 beats it). Fine-tunes: `configs/finetune.toml`, "
        f"{settings['steps']} steps from the bundled model on k MakeHuman training identities (`data.identities`).",
        "",
        *markdown_table(
            ["model", "MAE", "ratio", "MAE gain", "ratio gain", "cos", "blink closure", "vs transfer (raw / gain)"],
            ([r["model"], f"{r['mae']:.3f}", f"{r['ratio']:.1%}", f"{r['mae_gain']:.3f}", f"{r['ratio_gain']:.1%}",
              f"{r['cosine']:.2f}", f"{r['blink']:.2f}", _versus(r, transfer)] for r in rows),
        ),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True, help="a MakeHuman dataset (facerig data makehuman)")
    parser.add_argument("--joint", type=Path, default=None, help="a model trained on ICT + MakeHuman, to compare")
    parser.add_argument("--base", type=Path, default=REPO / "facerig" / "models" / "default",
                        help="the ICT-only model to fine-tune and compare (the README's table: run 8, the bundled "
                             "model before commit 'Ship the ICT + MakeHuman model')")
    parser.add_argument("--ks", default="1,4,16", help="numbers of MakeHuman training identities to fine-tune on")
    parser.add_argument("--steps", type=int, default=400, help="fine-tuning steps per k")
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "finetune-curve")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (training and evaluation)")
    parser.add_argument("--write", type=Path, default=None, help="also write the Markdown table here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()

    models: list[tuple[str, Path | None]] = [("ICT-only (base)", args.base)]
    if args.joint is not None:
        models.append(("ICT + MakeHuman", args.joint))
    for k in (int(text) for text in args.ks.split(",")):
        label = f"ICT-only fine-tuned on {k} MakeHuman identit{'y' if k == 1 else 'ies'}"
        models.append((label, fine_tune(args.dataset, k, args.steps, args.runs / f"k{k}", args.threads, args.base)))

    rows, report = [], None
    for index, (label, model) in enumerate(models):
        methods = ("model", "transfer", "neutral") if index == 0 else ("model", "neutral")
        report = evaluate(model, args.dataset, "test", methods=methods, progress=True)
        rows.append(row(label, report, "model"))
        if index == 0:
            baselines = [row("template transfer", report, "transfer"), row("neutral (zero)", report, "neutral")]
    rows += baselines
    command = f"--dataset {args.dataset} --base {args.base} --ks {args.ks} --steps {args.steps}"
    if args.joint is not None:
        command += f" --joint {args.joint}"
    settings = {"command": command, "seconds": time.perf_counter() - started, "dataset": args.dataset.name,
                "heads": len(report.heads), "poses": len(report.poses), "steps": args.steps}
    text = markdown(rows, settings)
    print(text)
    print(json.dumps(rows, indent=1))
    if args.write is not None:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(text)


if __name__ == "__main__":
    main()
