"""`facerig eval`: accuracy of a model against the neutral and deformation-transfer baselines, on a dataset
split (``--dataset``) or on a folder of rigged heads a user brings (``--rigs``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from facerig.cli.app import app, fail


@app.command("eval")
def evaluate_command(
    dataset: Annotated[Optional[Path], typer.Option(help="Dataset folder built by `facerig data ict` (or `data rigs`).")] = None,
    rigs: Annotated[Optional[Path], typer.Option(help="Folder of rigged heads (glTF morph targets, USD blend shapes) to score against instead of a dataset.")] = None,
    mapping: Annotated[Optional[Path], typer.Option(help="With --rigs: JSON {their shape name: FACS name or null}.")] = None,
    select: Annotated[Optional[str], typer.Option(help="With --rigs: keep only meshes whose node/prim name contains this.")] = None,
    model: Annotated[Optional[Path], typer.Option(help="Packaged model folder (model.pt + model.json); default: the bundled model.")] = None,
    split: Annotated[str, typer.Option(help="Dataset split: test (held-out identities), val or train.")] = "test",
    out: Annotated[Path, typer.Option(help="Folder for eval.json and eval.md; created if missing.")] = Path("eval"),
    methods: Annotated[str, typer.Option(help="Comma-separated methods: model, transfer, neutral.")] = "model,transfer,neutral",
    heads: Annotated[Optional[list[Path]], typer.Option("--head", help="A head without a ground-truth rig to measure as well (repeatable).")] = None,
    max_heads: Annotated[Optional[int], typer.Option(help="Evaluate only the first N heads of the split.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    mirror_average: Annotated[bool, typer.Option(help="Rig as `facerig rig --mirror-average` does.")] = False,
) -> None:
    """Evaluate MODEL on a dataset split or on rigged heads: MAE/Q95 (mm), after gain, per pose (with the cosine
    of predicted and true deltas), per region, penetration ratio."""
    from facerig.eval.evaluate import evaluate, evaluate_rigs

    if (dataset is None) == (rigs is None):
        fail("give exactly one of --dataset and --rigs")
    if rigs is None and (mapping is not None or select is not None):
        fail("--mapping and --select go with --rigs")
    chosen = [m.strip() for m in methods.split(",") if m.strip()]
    if rigs is not None:
        report = evaluate_rigs(model, rigs, methods=chosen, mapping=mapping, select=select, device=device,
                               progress=True, mirror_average=mirror_average)
        for file, rig in report.rigs.items():
            if "refused" in rig:
                typer.secho(f"refused {file}: {rig['refused']}", fg=typer.colors.YELLOW, err=True)
    else:
        report = evaluate(
            model,
            dataset,
            split,
            methods=chosen,
            extra_heads=heads or (),
            max_heads=max_heads,
            device=device,
            progress=True,
            mirror_average=mirror_average,
        )
    json_path, md_path = report.write(out)
    for name, metrics in report.methods.items():
        typer.echo(f"{name:>8}: MAE {metrics.mae:.3f} mm, Q95 {metrics.q95:.3f} mm, "
                   f"MAE after gain {metrics.mae_gain:.3f} mm, penetration {metrics.penetration:.4f}")
    typer.echo(f"wrote {json_path} and {md_path}")
