"""`facerig data ict|makehuman|merge|rigs`: build training sets (see :mod:`facerig.trainer.dataset`; a studio's
rigged heads: :mod:`facerig.trainer.rigs`).

No ``from __future__ import annotations`` here: the builder commands' option defaults and help live in a
closure (:func:`_builder_command`), so their annotations must be evaluated where they are written.
"""

from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

from facerig.cli.app import CONTEXT_SETTINGS, app
from facerig.trainer.dataset import BuildOptions

# Every default below is BuildOptions' own (the per-source identity counts aside), so the command line and the
# Python API cannot drift apart.
_BUILD = BuildOptions()

data_app = typer.Typer(help="Build training datasets.", no_args_is_help=True, rich_markup_mode=None,
                       context_settings=CONTEXT_SETTINGS)
app.add_typer(data_app, name="data")


def _builder_command(name: str, source_help: str, summary: str, rigged_default: int, unrigged_default: int,
                     builder: Callable[[], Callable[..., dict]]) -> None:  # fmt: skip
    """Register ``facerig data NAME``: one option set for every rigged-head source (same BuildOptions)."""

    def command(
        source: Annotated[Path, typer.Argument(help=source_help)],
        output: Annotated[Path, typer.Option("--output", "-o", help="Dataset folder to create (must be empty or absent).")],
        rigged: Annotated[int, typer.Option(help="Rigged identities (3D ground truth).")] = rigged_default,
        unrigged: Annotated[int, typer.Option(help="Unrigged, stylised identities (stage 1, 2D supervision only).")] = unrigged_default,
        seed: Annotated[int, typer.Option(help="Seed of every random choice; same seed and options, same dataset.")] = _BUILD.seed,
        factor_rigged: Annotated[int, typer.Option(help="Training samples per rigged training identity (head interpolation).")] = _BUILD.factor_rigged,
        factor_unrigged: Annotated[int, typer.Option(help="Training samples per unrigged training identity.")] = _BUILD.factor_unrigged,
        val_fraction: Annotated[float, typer.Option(help="Fraction of identities held out for validation.")] = _BUILD.val_fraction,
        test_fraction: Annotated[float, typer.Option(help="Fraction of identities held out for testing.")] = _BUILD.test_fraction,
        min_vertices: Annotated[int, typer.Option(help="Smallest re-meshing budget (vertices per head).")] = _BUILD.min_vertices,
        max_vertices: Annotated[int, typer.Option(help="Largest re-meshing budget (vertices per head).")] = _BUILD.max_vertices,
        quad_fraction: Annotated[float, typer.Option(help="Fraction of samples written quad-dominant.")] = _BUILD.quad_fraction,
        augment_fraction: Annotated[float, typer.Option(help="Fraction of training samples augmented (crop, drop, jitter).")] = _BUILD.augment_fraction,
        unrigged_sigma: Annotated[float, typer.Option(help="Spread of the unrigged identities (ICT weights' std; MakeHuman modifiers' scale).")] = _BUILD.unrigged_sigma,
        gaze_degrees: Annotated[float, typer.Option(help="Eyeball turn of the EyesLook targets and of the trained rig (ICT's shapes move only the lids; MakeHuman has no eye-look units); 0 keeps them still.")] = _BUILD.gaze_degrees,
        workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
        force: Annotated[bool, typer.Option("--force", help="Replace an existing dataset in OUTPUT.")] = False,
    ) -> None:
        options = BuildOptions(
            rigged=rigged, unrigged=unrigged, factor_rigged=factor_rigged, factor_unrigged=factor_unrigged, seed=seed,
            val_fraction=val_fraction, test_fraction=test_fraction, min_vertices=min_vertices,
            max_vertices=max_vertices, quad_fraction=quad_fraction, augment_fraction=augment_fraction,
            unrigged_sigma=unrigged_sigma, gaze_degrees=gaze_degrees,
        )  # fmt: skip
        manifest = builder()(source, output, options, workers=workers, overwrite=force, progress=True)
        _echo_counts(f"wrote {output}", manifest, f" ({manifest['build_seconds']} s)")

    command.__doc__ = summary
    data_app.command(name)(command)


def _ict_builder() -> Callable[..., dict]:
    from facerig.trainer.dataset import build_ict_dataset

    return build_ict_dataset


def _makehuman_builder() -> Callable[..., dict]:
    from facerig.trainer.makehuman import build_makehuman_dataset

    return build_makehuman_dataset


_builder_command("ict", "ICT-FaceKit FaceXModel folder, or its .tar.xz archive.",
                 "Build a training set from ICT-FaceKit: re-meshed rigged and unrigged heads, split by identity.",
                 161, 175, _ict_builder)  # fmt: skip
_builder_command("makehuman", "MakeHuman-assets folder, or its .tar.xz archive.",
                 "Build a training set from MakeHuman: sampled identities wearing its expression units mapped to "
                 "FACS (facerig/data/makehuman_facs.json), split by identity.",
                 200, 0, _makehuman_builder)  # fmt: skip


@data_app.command("merge")
def merge(
    datasets: Annotated[list[Path], typer.Argument(help="Built datasets to train on together (two or more).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the merged manifest (empty or absent).")],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing dataset in OUTPUT.")] = False,
) -> None:
    """Train on several datasets together: a manifest that references their samples where they are."""
    from facerig.trainer.dataset import merge_datasets

    manifest = merge_datasets(list(datasets), output, overwrite=force)
    _echo_counts(f"wrote {output}/manifest.json", manifest, f" (sources: {', '.join(manifest['sources'])})")


def _echo_counts(prefix: str, manifest: dict[str, Any], suffix: str) -> None:
    counts = ", ".join(f"{key} {value}" for key, value in manifest["counts"].items())
    typer.echo(f"{prefix}: {counts}{suffix}")


@data_app.command("rigs")
def rigs(
    folder: Annotated[Path, typer.Argument(help="Folder of rigged heads: glTF/GLB morph targets, USD blend shapes or FBX blend shape channels (searched recursively).")],
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


@data_app.command("export")
def export(
    dataset: Annotated[Path, typer.Argument(help="A built dataset (facerig data ict|makehuman|rigs|merge).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the rigged files (empty or absent).")],
    split: Annotated[str, typer.Option(help="Which split's rigged heads to write: train, val or test.")] = "test",
    format: Annotated[str, typer.Option("--format", "-f", help="File format: glb, gltf, usd, usda, usdc or fbx.")] = "glb",
    force: Annotated[bool, typer.Option("--force", help="Add to (and replace files in) a non-empty OUTPUT.")] = False,
) -> None:
    """Write a split's rigged heads as rigged files (their labelled poses as shapes), e.g. for `facerig eval --rigs`."""
    from facerig.trainer.rigs import export_rigged_samples

    written = export_rigged_samples(dataset, output, split=split, format=format, overwrite=force)
    typer.echo(f"wrote {len(written)} rigged heads of the {split} split to {output}")
