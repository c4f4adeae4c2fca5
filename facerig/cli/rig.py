"""`facerig rig`, `facerig export` and `facerig info`: one head at a time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from facerig.cli.app import app, error_line, fail
from facerig.errors import FacerigError
from facerig.exporters.common import Naming
from facerig.rigging.rig_and_write import RigMethod, RigOptions

FORMATS_HELP = "Comma-separated output formats: npz (the rig bundle), usd, usda, usdc, glb, gltf, fbx."
UNITS_HELP = "Length unit of the input: m, dm, cm, mm, in or ft; replaces the file's own (default: the file's, else guessed from the head's size)."
SELECT_HELP = "Read only the meshes (OBJ/PLY: groups) whose own or a parent's name contains this text, or matches it as a glob ('Head*')."


def checked_formats(value: str) -> str:
    parse_formats(value)  # a wrong format is a usage error at parse time, before any work
    return value


FORMAT_OPTION = typer.Option("--format", "-f", help=FORMATS_HELP, callback=checked_formats)


def parse_formats(formats: str) -> list[str]:
    """'usd, glb' -> ['usd', 'glb'] (lower-case, order kept, duplicates dropped); an unknown one is a usage error."""
    from facerig.exporters import EXPORTERS

    seen: list[str] = []
    for item in formats.split(","):
        item = item.strip().lower().lstrip(".")
        if item and item not in seen:
            seen.append(item)
    unknown = [item for item in seen if item not in EXPORTERS]
    if unknown:
        raise typer.BadParameter(f"unknown format {', '.join(unknown)}; formats: {', '.join(sorted(EXPORTERS))}")
    return seen


@app.command()
def rig(
    heads: Annotated[list[Path], typer.Argument(help="Neutral head meshes (OBJ, PLY, glTF/GLB, USD, FBX).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder; created if missing.")],
    formats: Annotated[str, FORMAT_OPTION] = "npz",
    model: Annotated[Optional[Path], typer.Option(help="Packaged model folder; default: the bundled model.")] = None,
    method: Annotated[RigMethod, typer.Option(help="network: the neural network; transfer: template deformation transfer.")] = RigMethod.network,
    poses: Annotated[Optional[Path], typer.Option(help="Pose vocabulary JSON replacing the default 48 poses + 48 correctives.")] = None,
    naming: Annotated[Naming, typer.Option(help="Shape names in exported files: FACS (with correctives), the 52 ARKit shapes or Roblox's FACS names.")] = Naming.facs,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    up: Annotated[Optional[str], typer.Option(help="Up axis of the input, e.g. +Y or +Z, when the file does not say.")] = None,
    front: Annotated[Optional[str], typer.Option(help="Axis the face looks along, e.g. +Z or -Y.")] = None,
    units: Annotated[Optional[str], typer.Option(help=UNITS_HELP)] = None,
    select: Annotated[Optional[str], typer.Option(help=SELECT_HELP)] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace existing outputs (never an input file).")] = True,
    mirror_average: Annotated[bool, typer.Option(help="Average with the mirror image's prediction: lower error, twice the network time.")] = RigOptions.mirror_average,
) -> None:
    """Rig neutral heads: write OUTPUT/<name>.facerig.npz and the requested formats.

    A head that fails is reported and the others are rigged; the exit code is then 1.
    """
    from facerig.mesh import source_name
    from facerig.rigging.rig_and_write import prepare_outdir, rig_and_write, uses_model
    from facerig.vocabulary import load_vocabulary

    owners: dict[str, Path] = {}
    for head in heads:
        first = owners.setdefault(source_name(head).casefold(), head)
        if first != head:
            fail(f"{first} and {head} would both be written as {output / source_name(head)}.*: "
                 "rig them into separate output folders")
    prepare_outdir(output)
    vocabulary = load_vocabulary(poses)
    packaged = None
    if uses_model(method):
        from facerig.rigging.pipeline import load_model

        packaged = load_model(model, device)
    options = RigOptions(up=up, front=front, units=units, select=select, mirror_average=mirror_average)
    failed: list[Path] = []
    for head in heads:
        try:
            result = rig_and_write(head, output, parse_formats(formats), method, naming, options, model=packaged,
                                   vocabulary=vocabulary, overwrite=overwrite,
                                   report=lambda note, head=head: typer.echo(f"{head}: {note}", err=True))
        except FacerigError as exc:
            if len(heads) == 1:
                raise
            error_line(str(exc))
            failed.append(head)
            continue
        chosen = units_summary(result.rig.neutral, given=units is not None)["units"]
        axes = result.rig.metadata.get("canonical_frame", {}).get("axes")
        frame = f", up {axes['up']} front {axes['front']} ({axes['source']})" if axes else ""
        typer.echo(f"{head}: units {chosen['name']} ({chosen['source']}){frame}", err=True)
        for warning in result.rig.metadata.get("warnings", []):
            typer.echo(f"{head}: warning: {warning}", err=True)
        written = ", ".join(str(path) for path in result.outputs)
        typer.echo(f"{head}: {result.rig.n_shapes} shapes in {result.timings.total:.2f} s -> {written}")
    if failed:
        fail(f"{len(failed)} of {len(heads)} heads failed: {', '.join(str(head) for head in failed)}")


def units_summary(mesh, given: bool) -> dict:
    """``mesh.summary()`` plus ``units`` (name, metres per unit, source: "--units", "file" or "guessed")
    and ``size_m`` (the bounding box's extent in metres); ``given``: the unit came from ``--units``."""
    from facerig.units import resolve_meters_per_unit, unit_name

    summary = mesh.summary()
    meters, guessed = resolve_meters_per_unit(mesh.meters_per_unit, mesh.vertices)
    source = "--units" if given else "guessed" if guessed else "file"
    summary["units"] = {"name": unit_name(meters), "meters_per_unit": meters, "source": source}
    extent = np.asarray(summary["bbox_max"]) - np.asarray(summary["bbox_min"])
    summary["size_m"] = [float(v) for v in extent * meters]
    return summary


@app.command()
def export(
    bundle: Annotated[Path, typer.Argument(help="A .facerig.npz rig bundle written by `facerig rig` or `facerig batch`.")],
    formats: Annotated[str, FORMAT_OPTION] = "usd",
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Output folder; default: beside the bundle.")] = None,
    naming: Annotated[Naming, typer.Option(help="Shape names: FACS (with correctives), the 52 ARKit shapes or Roblox's FACS names.")] = Naming.facs,
    preview_animation: Annotated[bool, typer.Option(help="Add an animation that steps through every shape.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace existing outputs.")] = True,
    keep_source: Annotated[Optional[bool], typer.Option(
        "--keep-source/--standalone",
        help="Keep the head's own file: glTF -> its document with morph targets added (default when possible); "
             "USD -> a layer over it. --standalone writes facerig's own file.")] = None,
) -> None:
    """Export a rig bundle to USD, glTF/GLB or FBX."""
    from facerig.exporters import export_rig
    from facerig.mesh import source_name
    from facerig.rig import Rig

    loaded = Rig.load(bundle)
    folder = output or bundle.parent
    stem = source_name(bundle)
    for fmt in parse_formats(formats):
        path = export_rig(
            loaded, folder / f"{stem}.{fmt}", format=fmt, naming=naming,
            preview_animation=preview_animation, overwrite=overwrite, preserve_source=keep_source,
            report=lambda note, fmt=fmt: typer.echo(f"{bundle} ({fmt}): {note}", err=True),
        )
        typer.echo(str(path))


@app.command()
def info(
    file: Annotated[Path, typer.Argument(help="A mesh file or a .facerig.npz rig bundle.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
    units: Annotated[Optional[str], typer.Option(help=UNITS_HELP)] = None,
    select: Annotated[Optional[str], typer.Option(help=SELECT_HELP)] = None,
) -> None:
    """Summarise a mesh or a rig bundle."""
    from facerig.exporters.bundle import BUNDLE_SUFFIX
    from facerig.rig import Rig

    if file.name.endswith(BUNDLE_SUFFIX):
        loaded = Rig.load(file)
        magnitudes = (loaded.deltas**2).sum(-1) ** 0.5
        summary = {
            "kind": "rig",
            "mesh": units_summary(loaded.neutral, given=False),
            "shapes": loaded.n_shapes,
            "correctives": len(loaded.corrective_recipes),
            "max_offset_per_shape": {n: float(m.max()) for n, m in zip(loaded.shape_names, magnitudes)},
            "metadata": loaded.metadata,
        }
    else:
        from facerig.io import load_mesh

        summary = {"kind": "mesh", **units_summary(load_mesh(file, units=units, select=select), given=units is not None)}
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    if summary["kind"] == "rig":
        mesh = summary["mesh"]
        typer.echo(f"rig bundle {file}")
        typer.echo(f"  mesh: {mesh['vertices']} vertices, {mesh['polygons']} polygons, {mesh['components']} components")
        typer.echo(f"  shapes: {summary['shapes']} ({summary['correctives']} correctives)")
        meta = summary["metadata"]
        typer.echo(f"  model: {meta.get('model_name', '?')} ({str(meta.get('model_id', '?'))[:12]})")
        largest = sorted(summary["max_offset_per_shape"].items(), key=lambda kv: -kv[1])[:5]
        unit = mesh["units"]
        typer.echo(f"  largest shapes ({unit['name']}, {unit['source']}): "
                   + ", ".join(f"{n} {v:.3g}" for n, v in largest))
    else:
        typer.echo(f"mesh {file}")
        for key in ("vertices", "polygons", "triangles", "components", "groups", "up_axis", "meters_per_unit"):
            typer.echo(f"  {key}: {summary[key]}")
        typer.echo(f"  bbox: {summary['bbox_min']} .. {summary['bbox_max']}")
        size = " x ".join(f"{extent:.3g}" for extent in summary["size_m"])
        unit = summary["units"]
        label = {"file": "file units", "guessed": "guessed units"}.get(unit["source"], unit["source"])
        typer.echo(f"  size: {size} m ({label}: {unit['name']})")
        for warning in summary["warnings"]:
            typer.echo(f"  warning: {warning}")
