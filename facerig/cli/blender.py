"""`facerig blender-drivers`: a facerig export opened in Blender with every corrective driven, saved as .blend."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from facerig.cli.app import app


@app.command("blender-drivers")
def blender_drivers(
    file: Annotated[Path, typer.Argument(help="A facerig export: .usd/.usda/.usdc, .glb/.gltf or .fbx.")],
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="The .blend to write; default: <file stem>.blend beside it.")
    ] = None,
) -> None:
    """Import FILE into Blender (bpy), drive each corrective shape key by the product of its bases, save a .blend."""
    from facerig.exporters.blender_drivers import write_blend_with_drivers

    result = write_blend_with_drivers(file, output)
    typer.echo(f"{result.blend}: {result.n_drivers} corrective drivers on {', '.join(result.wired) or 'no object'}")
