"""`facerig eval`: accuracy of a model against the neutral and deformation-transfer baselines."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from facerig.cli.app import app


@app.command("eval")
def evaluate_command(
    dataset: Annotated[Path, typer.Option(help="Dataset folder built by `facerig data ict`.")],
    model: Annotated[Optional[Path], typer.Option(help="Packaged model folder (model.pt + model.json); default: the bundled model.")] = None,
    split: Annotated[str, typer.Option(help="Dataset split: test (held-out identities), val or train.")] = "test",
    out: Annotated[Path, typer.Option(help="Folder for eval.json and eval.md; created if missing.")] = Path("eval"),
    methods: Annotated[str, typer.Option(help="Comma-separated methods: model, transfer, neutral.")] = "model,transfer,neutral",
    heads: Annotated[Optional[list[Path]], typer.Option("--head", help="A head without a ground-truth rig to measure as well (repeatable).")] = None,
    max_heads: Annotated[Optional[int], typer.Option(help="Evaluate only the first N heads of the split.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    mirror_average: Annotated[bool, typer.Option(help="Rig as `facerig rig --mirror-average` does.")] = False,
) -> None:
    """Evaluate MODEL on a dataset split: MAE/Q95 (mm), per pose, per region, penetration ratio."""
    from facerig.evaluate import evaluate

    report = evaluate(
        model,
        dataset,
        split,
        methods=[m.strip() for m in methods.split(",") if m.strip()],
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
