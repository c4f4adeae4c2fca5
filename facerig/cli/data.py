"""`facerig data ict` / `facerig data makehuman`: build a training set (see :mod:`facerig.trainer.dataset`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Callable

import typer

from facerig.cli.app import app

data_app = typer.Typer(help="Build training datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("ict")
def ict(
    source: Annotated[Path, typer.Argument(help="ICT-FaceKit FaceXModel folder, or its .tar.xz archive.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Dataset folder to create (must be empty or absent).")],
    rigged: Annotated[int, typer.Option(help="Rigged identities (3D ground truth).")] = 161,
    unrigged: Annotated[int, typer.Option(help="Unrigged, stylised identities (stage 1, 2D supervision only).")] = 175,
    seed: Annotated[int, typer.Option(help="Seed of every random choice; same seed and options, same dataset.")] = 0,
    factor_rigged: Annotated[int, typer.Option(help="Training samples per rigged training identity (head interpolation).")] = 25,
    factor_unrigged: Annotated[int, typer.Option(help="Training samples per unrigged training identity.")] = 50,
    val_fraction: Annotated[float, typer.Option(help="Fraction of identities held out for validation.")] = 0.05,
    test_fraction: Annotated[float, typer.Option(help="Fraction of identities held out for testing.")] = 0.15,
    min_vertices: Annotated[int, typer.Option(help="Smallest re-meshing budget (vertices per head).")] = 1500,
    max_vertices: Annotated[int, typer.Option(help="Largest re-meshing budget (vertices per head).")] = 6000,
    quad_fraction: Annotated[float, typer.Option(help="Fraction of samples written quad-dominant.")] = 0.5,
    augment_fraction: Annotated[float, typer.Option(help="Fraction of training samples augmented (crop, drop, jitter).")] = 0.5,
    gaze_degrees: Annotated[float, typer.Option(help="Eyeball turn of the EyesLook targets (ICT's shapes move only the lids); 0 keeps them still.")] = 25.0,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing dataset in OUTPUT.")] = False,
) -> None:
    """Build a training set from ICT-FaceKit: re-meshed rigged and unrigged heads, split by identity."""
    from facerig.trainer.dataset import build_ict_dataset

    _build(build_ict_dataset, source, output, workers, force, rigged=rigged, unrigged=unrigged,
           factor_rigged=factor_rigged, factor_unrigged=factor_unrigged, seed=seed, val_fraction=val_fraction,
           test_fraction=test_fraction, min_vertices=min_vertices, max_vertices=max_vertices,
           quad_fraction=quad_fraction, augment_fraction=augment_fraction, gaze_degrees=gaze_degrees)


@data_app.command("makehuman")
def makehuman(
    source: Annotated[Path, typer.Argument(help="MakeHuman-assets folder, or its .tar.xz archive.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Dataset folder to create (must be empty or absent).")],
    rigged: Annotated[int, typer.Option(help="Rigged identities (sampled from MakeHuman's identity targets).")] = 200,
    unrigged: Annotated[int, typer.Option(help="Unrigged, stylised identities (stage 1, 2D supervision only).")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of every random choice; same seed and options, same dataset.")] = 0,
    factor_rigged: Annotated[int, typer.Option(help="Training samples per rigged training identity (head interpolation).")] = 25,
    factor_unrigged: Annotated[int, typer.Option(help="Training samples per unrigged training identity.")] = 50,
    val_fraction: Annotated[float, typer.Option(help="Fraction of identities held out for validation.")] = 0.05,
    test_fraction: Annotated[float, typer.Option(help="Fraction of identities held out for testing.")] = 0.15,
    min_vertices: Annotated[int, typer.Option(help="Smallest re-meshing budget (vertices per head).")] = 1500,
    max_vertices: Annotated[int, typer.Option(help="Largest re-meshing budget (vertices per head).")] = 6000,
    quad_fraction: Annotated[float, typer.Option(help="Fraction of samples written quad-dominant.")] = 0.5,
    augment_fraction: Annotated[float, typer.Option(help="Fraction of training samples augmented (crop, drop, jitter).")] = 0.5,
    unrigged_sigma: Annotated[float, typer.Option(help="Spread of the unrigged identities' face modifiers (1 = rigged).")] = 2.5,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing dataset in OUTPUT.")] = False,
) -> None:
    """Build a training set from MakeHuman: sampled identities wearing its expression units, split by identity."""
    from facerig.trainer.makehuman import build_makehuman_dataset

    _build(build_makehuman_dataset, source, output, workers, force, rigged=rigged, unrigged=unrigged,
           factor_rigged=factor_rigged, factor_unrigged=factor_unrigged, seed=seed, val_fraction=val_fraction,
           test_fraction=test_fraction, min_vertices=min_vertices, max_vertices=max_vertices,
           quad_fraction=quad_fraction, augment_fraction=augment_fraction, unrigged_sigma=unrigged_sigma)


@data_app.command("merge")
def merge(
    datasets: Annotated[list[Path], typer.Argument(help="Built datasets to train on together (two or more).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the merged manifest (empty or absent).")],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing dataset in OUTPUT.")] = False,
) -> None:
    """Train on several datasets together: a manifest that references their samples where they are."""
    from facerig.trainer.dataset import merge_datasets

    manifest = merge_datasets(list(datasets), output, overwrite=force)
    counts = ", ".join(f"{key} {value}" for key, value in manifest["counts"].items())
    typer.echo(f"wrote {output}/manifest.json: {counts} (sources: {', '.join(manifest['sources'])})")


def _build(builder: Callable[..., dict], source: Path, output: Path, workers: int, force: bool, **options: Any) -> None:
    """Run one dataset builder with :class:`BuildOptions` from the command line and print the counts."""
    from facerig.trainer.dataset import BuildOptions

    manifest = builder(source, output, BuildOptions(**options), workers=workers, overwrite=force, progress=True)
    counts = ", ".join(f"{key} {value}" for key, value in manifest["counts"].items())
    typer.echo(f"wrote {output}: {counts} ({manifest['build_seconds']} s)")
