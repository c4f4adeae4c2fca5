"""`facerig data ict` / `facerig data rigs`: build a training set from ICT-FaceKit (see
:mod:`facerig.trainer.dataset`) or from a studio's rigged heads (see :mod:`facerig.trainer.rigs`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from facerig.cli.app import CONTEXT_SETTINGS, app
from facerig.trainer.dataset import BuildOptions

# Every default below is BuildOptions' own, so the command line and the Python API cannot drift apart.
_BUILD = BuildOptions()

data_app = typer.Typer(help="Build training datasets.", no_args_is_help=True, rich_markup_mode=None,
                       context_settings=CONTEXT_SETTINGS)
app.add_typer(data_app, name="data")


@data_app.command("ict")
def ict(
    source: Annotated[Path, typer.Argument(help="ICT-FaceKit FaceXModel folder, or its .tar.xz archive.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Dataset folder to create (must be empty or absent).")],
    rigged: Annotated[int, typer.Option(help="Rigged identities (3D ground truth).")] = _BUILD.rigged,
    unrigged: Annotated[int, typer.Option(help="Unrigged, stylised identities (stage 1, 2D supervision only).")] = _BUILD.unrigged,
    seed: Annotated[int, typer.Option(help="Seed of every random choice; same seed and options, same dataset.")] = _BUILD.seed,
    factor_rigged: Annotated[int, typer.Option(help="Training samples per rigged training identity (head interpolation).")] = _BUILD.factor_rigged,
    factor_unrigged: Annotated[int, typer.Option(help="Training samples per unrigged training identity.")] = _BUILD.factor_unrigged,
    val_fraction: Annotated[float, typer.Option(help="Fraction of identities held out for validation.")] = _BUILD.val_fraction,
    test_fraction: Annotated[float, typer.Option(help="Fraction of identities held out for testing.")] = _BUILD.test_fraction,
    min_vertices: Annotated[int, typer.Option(help="Smallest re-meshing budget (vertices per head).")] = _BUILD.min_vertices,
    max_vertices: Annotated[int, typer.Option(help="Largest re-meshing budget (vertices per head).")] = _BUILD.max_vertices,
    quad_fraction: Annotated[float, typer.Option(help="Fraction of samples written quad-dominant.")] = _BUILD.quad_fraction,
    augment_fraction: Annotated[float, typer.Option(help="Fraction of training samples augmented (crop, drop, jitter).")] = _BUILD.augment_fraction,
    gaze_degrees: Annotated[float, typer.Option(help="Eyeball turn of the EyesLook targets (ICT's shapes move only the lids); 0 keeps them still.")] = _BUILD.gaze_degrees,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing dataset in OUTPUT.")] = False,
) -> None:
    """Build a training set from ICT-FaceKit: re-meshed rigged and unrigged heads, split by identity."""
    from facerig.trainer.dataset import build_ict_dataset

    options = BuildOptions(
        rigged=rigged,
        unrigged=unrigged,
        factor_rigged=factor_rigged,
        factor_unrigged=factor_unrigged,
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        min_vertices=min_vertices,
        max_vertices=max_vertices,
        quad_fraction=quad_fraction,
        augment_fraction=augment_fraction,
        gaze_degrees=gaze_degrees,
    )
    manifest = build_ict_dataset(source, output, options, workers=workers, overwrite=force, progress=True)
    counts = ", ".join(f"{key} {value}" for key, value in manifest["counts"].items())
    typer.echo(f"wrote {output}: {counts} ({manifest['build_seconds']} s)")


@data_app.command("rigs")
def rigs(
    folder: Annotated[Path, typer.Argument(help="Folder of rigged heads: glTF/GLB morph targets or USD blend shapes (searched recursively).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Dataset folder to create (must be empty or absent).")],
    mapping: Annotated[Optional[Path], typer.Option(help="JSON {their shape name: FACS name or null} for names the vocabulary does not know.")] = None,
    select: Annotated[Optional[str], typer.Option(help="Keep only meshes whose node/prim (or an ancestor) name contains this, e.g. Head.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the split of heads.")] = 0,
    val_fraction: Annotated[float, typer.Option(help="Fraction of heads held out for validation.")] = 0.0,
    test_fraction: Annotated[float, typer.Option(help="Fraction of heads held out for testing.")] = 0.0,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing dataset in OUTPUT.")] = False,
) -> None:
    """Build a dataset from a studio's rigged heads: shape names matched to FACS poses, one sample per head."""
    from facerig.trainer.rigs import REPORT_STEM, build_rigs_dataset

    summary = build_rigs_dataset(folder, output, mapping=mapping, select=select, seed=seed,
                                 val_fraction=val_fraction, test_fraction=test_fraction, overwrite=force,
                                 progress=True)
    for file, head in summary["heads"].items():
        if head["status"] == "refused":
            typer.secho(f"refused {file}: {head['reason']}", fg=typer.colors.YELLOW, err=True)
        else:
            typer.echo(f"{file}: {len(head['labelled'])} poses, {len(head['unlabelled'])} unlabelled "
                       f"-> {head['sample']} ({head['split']})")
    counts = summary["counts"]
    typer.echo(f"wrote {output}: {counts['imported']} of {counts['files']} heads "
               f"(report: {output / (REPORT_STEM + '.md')})")
