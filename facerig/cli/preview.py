"""`facerig preview`: a labelled contact sheet of every shape of a rig bundle, as a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from facerig.cli.app import app

SUFFIX = ".preview.png"
SUSPICIOUS_SUFFIX = ".suspicious.json"  # beside the sheet: the shapes facerig.eval.rig_checks flags


@app.command()
def preview(
    bundle: Annotated[Path, typer.Argument(help="A .facerig.npz rig bundle (from `facerig rig` or `facerig batch`).")],
    output: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", help=f"PNG to write; default: <bundle name>{SUFFIX} beside the bundle."),
    ] = None,
    shapes: Annotated[
        Optional[str],
        typer.Option(help="Comma-separated shape names or patterns (e.g. 'JawDrop,Left*'); default: all."),
    ] = None,
    size: Annotated[int, typer.Option(min=32, max=2048, help="Tile size in pixels.")] = 256,
    columns: Annotated[Optional[int], typer.Option(min=1, help="Tiles per row; default: a near-square grid.")] = None,
    heat: Annotated[
        bool, typer.Option("--heat", help="Frame the face only and colour it by motion size (grey still, red 5% "
                                          "of the cranium's radius and more).")
    ] = False,
    alone: Annotated[
        bool, typer.Option("--corrections-alone", help="Show each corrective's correction alone, and LipsTogether "
                                                       "without JawDrop, instead of the poses they make.")
    ] = False,
) -> None:
    """Render the neutral and each shape at weight 1 on one labelled grid, to check a rig at a glance; list the
    shapes that look wrong (moving nothing, off the face, bending a rigid piece, tearing a seam) beside it."""
    import torch

    from facerig.eval.rig_checks import write_suspicious_shapes
    from facerig.mesh import source_name
    from facerig.render.preview import write_contact_sheet
    from facerig.rig import Rig

    # Each tile is a few small tensor ops: intra-op threads only add contention. Measured on the 96-tile
    # ICT sheet at 128 px on a busy 2-core machine: 6.9 s with one thread, 49 s with two.
    torch.set_num_threads(1)
    rig = Rig.load(bundle)
    patterns = [p.strip() for p in shapes.split(",") if p.strip()] if shapes is not None else None
    path = output if output is not None else bundle.parent / f"{source_name(bundle)}{SUFFIX}"
    write_contact_sheet(rig, path, shapes=patterns, tile_size=size, columns=columns, heat_map=heat, combined=not alone)
    typer.echo(str(path))
    report = write_suspicious_shapes(rig, path.with_suffix(SUSPICIOUS_SUFFIX))
    for line in report.lines:
        typer.echo(f"  suspicious: {line}")
    typer.echo(str(report.path))
