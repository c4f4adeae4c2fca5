"""`facerig rig`, `facerig export` and `facerig info`: one head at a time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from facerig.cli.app import app

FORMATS_HELP = "Comma-separated output formats: npz (the rig bundle), usd, usda, usdc, glb, gltf, fbx."
UNITS_HELP = "Length unit of the input: m, dm, cm, mm, in or ft; replaces the file's own (default: the file's, else guessed from the head's size)."
SELECT_HELP = "Read only the meshes (OBJ/PLY: groups) whose own or a parent's name contains this text, or matches it as a glob ('Head*')."


def parse_formats(formats: str) -> list[str]:
    """'usd, glb' -> ['usd', 'glb'] (lower-case, order kept, duplicates dropped)."""
    seen: list[str] = []
    for item in formats.split(","):
        item = item.strip().lower().lstrip(".")
        if item and item not in seen:
            seen.append(item)
    return seen


@app.command()
def rig(
    heads: Annotated[list[Path], typer.Argument(help="Neutral head meshes (OBJ, PLY, glTF/GLB, USD, FBX).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder; created if missing.")],
    formats: Annotated[str, typer.Option("--format", "-f", help=FORMATS_HELP)] = "npz",
    model: Annotated[Optional[Path], typer.Option(help="Packaged model folder; default: the bundled model.")] = None,
    method: Annotated[str, typer.Option(help="'network' (default) or 'transfer' (template deformation transfer).")] = "network",
    poses: Annotated[Optional[Path], typer.Option(help="Pose vocabulary JSON replacing the default 48 poses + 48 correctives.")] = None,
    naming: Annotated[str, typer.Option(help="Shape names in exported files: 'facs' (default), 'arkit' or 'roblox'.")] = "facs",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    up: Annotated[Optional[str], typer.Option(help="Up axis of the input, e.g. +Y or +Z, when the file does not say.")] = None,
    front: Annotated[Optional[str], typer.Option(help="Axis the face looks along, e.g. +Z or -Y.")] = None,
    units: Annotated[Optional[str], typer.Option(help=UNITS_HELP)] = None,
    select: Annotated[Optional[str], typer.Option(help=SELECT_HELP)] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace existing outputs.")] = True,
    mirror_average: Annotated[bool, typer.Option(help="Average with the mirror image's prediction: lower error, twice the network time.")] = False,
) -> None:
    """Rig neutral heads: write OUTPUT/<name>.facerig.npz and the requested formats."""
    from facerig.exporters import export_rig
    from facerig.io import load_mesh
    from facerig.pipeline import load_model, rig_mesh
    from facerig.vocabulary import load_vocabulary

    wanted = parse_formats(formats)
    vocabulary = load_vocabulary(poses)
    packaged = load_model(model, device) if method == "network" else None
    for head in heads:
        mesh = load_mesh(head, up=up, units=units, select=select)
        chosen = units_summary(mesh, given=units is not None)["units"]
        typer.echo(f"{head}: units {chosen['name']} ({chosen['source']})", err=True)
        if method == "network":
            result = rig_mesh(mesh, packaged, vocabulary=vocabulary, up=up, front=front, mirror_average=mirror_average)
        elif method == "transfer":
            from facerig.transfer import rig_by_transfer

            result = rig_by_transfer(mesh, vocabulary=vocabulary, up=up, front=front)
        else:
            raise typer.BadParameter(f"unknown method {method!r}; use 'network' or 'transfer'")
        written = [export_rig(result, output / f"{mesh.name}.facerig.npz", format="npz", overwrite=overwrite)]
        for fmt in wanted:
            if fmt != "npz":
                written.append(
                    export_rig(result, output / f"{mesh.name}.{fmt}", format=fmt, naming=naming, overwrite=overwrite,
                               report=lambda note, fmt=fmt: typer.echo(f"{head} ({fmt}): {note}", err=True))
                )
        seconds = result.metadata.get("timings_s", {}).get("total", float("nan"))
        typer.echo(f"{head}: {result.n_shapes} shapes in {seconds:.2f} s -> " + ", ".join(str(p) for p in written))


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
    formats: Annotated[str, typer.Option("--format", "-f", help=FORMATS_HELP)] = "usd",
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Output folder; default: beside the bundle.")] = None,
    naming: Annotated[str, typer.Option(help="Shape names: 'facs' (default), 'arkit' or 'roblox'.")] = "facs",
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
    from facerig.rig import BUNDLE_SUFFIX, Rig

    if file.name.endswith(BUNDLE_SUFFIX):
        loaded = Rig.load(file)
        magnitudes = (loaded.deltas**2).sum(-1) ** 0.5
        summary = {
            "kind": "rig",
            "mesh": loaded.neutral.summary(),
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
        typer.echo("  largest shapes: " + ", ".join(f"{n} {v:.3g}" for n, v in largest))
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
