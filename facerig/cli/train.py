"""`facerig train`: the two-stage trainer (a thin layer over :func:`facerig.trainer.train.train`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from facerig.cli.app import app


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train(
    ctx: typer.Context,
    config: Annotated[Optional[Path], typer.Option(
        exists=True, dir_okay=False, help="TOML config, e.g. configs/cpu.toml; the built-in defaults when omitted.")] = None,
    resume: Annotated[Optional[Path], typer.Option(
        exists=True, dir_okay=False, help="Checkpoint to continue from: finished stages are skipped and the "
        "stage in progress continues at its next step with the same losses.")] = None,
) -> None:
    """Train the rigging network: stage 1 (2D, all heads), then stage 2 (2D + 3D, rigged heads).

    Any config key can be overridden after the options as --table.key value, e.g.
    --data.dataset data/ict --stage1.max_steps 100 --run.out_dir runs/try. For several processes use
    torchrun -m facerig.trainer.train with the same arguments.
    """
    from facerig.trainer.config import load_config, parse_overrides
    from facerig.trainer.train import train as run_training

    settings = load_config(config, parse_overrides(ctx.args))
    result = run_training(settings, resume=resume)
    for name, summary in result.stages.items():
        total = summary.final_losses.get("total", float("nan"))
        typer.echo(f"{name}: {summary.steps} steps in {summary.wall_s:.0f} s, final loss {total:.4g}")
    if result.model_dir is not None:
        typer.echo(f"model: {result.model_dir}")
