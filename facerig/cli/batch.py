"""`facerig batch`: many heads, resumable, shardable, on local worker processes or a Ray cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from facerig.batch.options import Backend, BatchOptions
from facerig.cli.app import app
from facerig.cli.rig import FORMATS_HELP, SELECT_HELP, UNITS_HELP, checked_formats, parse_formats
from facerig.exporters.common import Naming
from facerig.rigging.rig_and_write import RigMethod

# Every default below is BatchOptions' own, so the command line and the Python API cannot drift apart.
_DEFAULTS = BatchOptions()


@app.command()
def batch(
    inputs: Annotated[list[Path], typer.Argument(help="Mesh files and folders (searched recursively).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder; mirrors the input folders.")],
    formats: Annotated[
        str,
        typer.Option("--format", "-f", help=FORMATS_HELP + " The .facerig.npz bundle is always written.",
                     callback=checked_formats),
    ] = "npz",
    include: Annotated[
        Optional[list[str]],
        typer.Option(help="Only files matching this glob (repeatable); a glob with '/' matches the path below "
                     "the input folder, one without matches the file name."),
    ] = None,
    exclude: Annotated[
        Optional[list[str]],
        typer.Option(help="Leave out files matching this glob (repeatable)."),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(min=1, help="Worker processes, each loading the model once (a local Ray gets as many CPUs)."),
    ] = _DEFAULTS.workers,
    device: Annotated[
        str,
        typer.Option(help="auto, cpu, cuda or mps; CUDA devices are spread over the workers."),
    ] = _DEFAULTS.device,
    threads_per_worker: Annotated[
        Optional[int],
        typer.Option(min=1, help="Torch/BLAS threads per worker; default: cores // workers."),
    ] = None,
    shard: Annotated[
        Optional[str],
        typer.Option(help="K/N: rig only shard K of N (a stable partition by content hash) for farm task arrays."),
    ] = None,
    backend: Annotated[
        Backend,
        typer.Option(help="local: worker processes on this machine; ray: Ray tasks."),
    ] = _DEFAULTS.backend,
    ray_address: Annotated[
        Optional[str],
        typer.Option(help="Ray cluster to join ('auto', 'ray://host:10001'); default: start a local one."),
    ] = None,
    ray_cpus: Annotated[float, typer.Option(help="CPUs each Ray task requests.")] = _DEFAULTS.ray_cpus_per_task,
    ray_gpus: Annotated[
        Optional[float],
        typer.Option(help="GPUs each Ray task requests; default 1 when the cluster has GPUs and --device allows CUDA."),
    ] = None,
    max_retries: Annotated[
        int,
        typer.Option(min=0, help="Re-runs of an item whose worker process or node was lost."),
    ] = _DEFAULTS.max_retries,
    item_timeout: Annotated[
        float,
        typer.Option(min=0.001, help="Seconds one item may run; past it the item fails as timed out (its worker "
                     "process killed) and the batch goes on."),
    ] = _DEFAULTS.item_timeout_s,
    resume: Annotated[
        bool,
        typer.Option(help="Skip items already finished with the same input, model and options."),
    ] = _DEFAULTS.resume,
    fail_fast: Annotated[bool, typer.Option(help="Stop at the first failed item (for CI).")] = _DEFAULTS.fail_fast,
    report: Annotated[Optional[Path], typer.Option(help="JSON report path; default OUTPUT/batch-report.json.")] = None,
    model: Annotated[Optional[Path], typer.Option(help="Packaged model folder; default: the bundled model.")] = None,
    poses: Annotated[Optional[Path], typer.Option(help="Pose vocabulary JSON replacing the default poses.")] = None,
    method: Annotated[
        RigMethod, typer.Option(help="network: the neural network; transfer: template deformation transfer.")
    ] = _DEFAULTS.method,
    naming: Annotated[
        Naming, typer.Option(help="Shape names in exported files: FACS (with correctives) or the 52 ARKit shapes.")
    ] = _DEFAULTS.naming,
    up: Annotated[Optional[str], typer.Option(help="Up axis of inputs that do not state one, e.g. +Z.")] = None,
    front: Annotated[Optional[str], typer.Option(help="Axis the faces look along, e.g. +Z.")] = None,
    units: Annotated[Optional[str], typer.Option(help=UNITS_HELP)] = _DEFAULTS.units,
    select: Annotated[Optional[str], typer.Option(help=SELECT_HELP)] = _DEFAULTS.select,
    mirror_average: Annotated[
        bool,
        typer.Option(help="Average with the mirror image's prediction: lower error, twice the network time."),
    ] = _DEFAULTS.mirror_average,
    max_vertices: Annotated[int, typer.Option(min=1, help="Reject inputs with more vertices than this.")] = _DEFAULTS.max_vertices,
    max_file_mb: Annotated[float, typer.Option(min=0.001, help="Reject input files larger than this (MiB).")] = _DEFAULTS.max_file_mb,
    follow_symlinks: Annotated[bool, typer.Option(help="Follow symlinks that lead outside the input folders.")] = _DEFAULTS.follow_symlinks,
    cache_dir: Annotated[
        Optional[Path],
        typer.Option(help="Keep operator caches here (default: discarded per head)."),
    ] = None,
    progress: Annotated[
        bool,
        typer.Option(help="Progress bar on a terminal, periodic lines otherwise (stderr)."),
    ] = _DEFAULTS.progress,
) -> None:
    """Rig every head in INPUTS into OUTPUT: a .facerig.npz bundle plus the --format files for each.

    Bad inputs are reported and skipped over; the exit code is 1 when any item failed.
    """
    from facerig.batch import Shard, run_batch

    options = BatchOptions(
        method=method,
        model=model,
        poses=poses,
        formats=tuple(fmt for fmt in parse_formats(formats) if fmt != "npz"),
        naming=naming,
        up=up,
        front=front,
        units=units,
        select=select,
        mirror_average=mirror_average,
        include=tuple(include or ()),
        exclude=tuple(exclude or ()),
        follow_symlinks=follow_symlinks,
        shard=Shard.parse(shard) if shard else None,
        max_vertices=max_vertices,
        max_file_mb=max_file_mb,
        backend=backend,
        workers=workers,
        device=device,
        threads_per_worker=threads_per_worker,
        ray_address=ray_address,
        ray_cpus_per_task=ray_cpus,
        ray_gpus_per_task=ray_gpus,
        max_retries=max_retries,
        item_timeout_s=item_timeout,
        resume=resume,
        fail_fast=fail_fast,
        cache_dir=cache_dir,
        report=report,
        progress=progress,
    )
    result = run_batch(inputs, output, options)
    typer.echo(result.summary())
    if result.exit_code:
        raise typer.Exit(code=result.exit_code)
