"""Rig latency per phase and peak memory against vertex count (issue: foundation).

Builds heads of about 1.7k, 5k, 10k and 27k vertices from the ICT-FaceKit neutral (re-meshed, all components
kept), rigs each with the packaged model (the bundled one, or a freshly initialised default-configuration model
with --fresh) and prints one table row per head: load, canonicalize, operators cold and cached, network, total,
peak resident memory.

    python bench/rig_latency.py [--fresh] [--threads N] [--sizes 1750,5000,10000,27000]
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from facerig.io import load_mesh  # noqa: E402
from facerig.rigging.pipeline import load_model, rig_mesh  # noqa: E402


def heads_at_sizes(sizes: list[int], ict_source: Path, workdir: Path) -> list[Path]:
    """Write OBJ heads of roughly the requested vertex counts: the ICT neutral re-meshed (all parts kept);
    a size at or above the source's 26,719 vertices is the source topology itself (quads)."""
    from facerig.io.obj import write_obj
    from facerig.mesh import Mesh
    from facerig.trainer.ict import load_ict
    from facerig.geometry.remesh import RemeshOptions, remesh

    ict = load_ict(ict_source)
    paths = []
    for size in sizes:
        if size >= len(ict.neutral):
            mesh = Mesh(ict.neutral, ict.face_vertex_counts, ict.face_vertex_indices, name="ict_source")
        else:
            result = remesh(ict.neutral, ict.triangles, RemeshOptions(budget=size), np.random.default_rng(0))
            mesh = Mesh(result.vertices, result.face_vertex_counts, result.face_vertex_indices, name=f"ict_{size}")
        paths.append(write_obj(mesh, workdir / f"head_{size}.obj"))
    return paths


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fresh", action="store_true", help="use a freshly initialised default model")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", default="1750,5000,10000,27000")
    parser.add_argument("--ict", type=Path, default=REPO.parent / "shared" / "data" / "ICT-FaceKit.tar.xz",
                        help="ICT-FaceKit archive or FaceXModel folder the heads are made from")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]

    if args.fresh:
        from facerig.nn.model import fresh_model

        model = fresh_model()
    else:
        model = load_model(None, "cpu")

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        paths = heads_at_sizes(sizes, args.ict, workdir)
        header = f"{'vertices':>9} {'load':>7} {'canon':>7} {'ops cold':>9} {'ops warm':>9} {'network':>8} {'total cold':>11} {'peak MB':>8}"
        print(f"model: {model.name} ({model.model_id[:12]}), torch threads {args.threads}, device cpu")
        print(header)
        print("-" * len(header))
        for path in paths:
            gc.collect()
            cache = workdir / f"cache_{path.stem}"
            tick = time.perf_counter()
            mesh = load_mesh(path)
            load_s = time.perf_counter() - tick
            cold = rig_mesh(mesh, model, cache_dir=cache)
            warm = rig_mesh(mesh, model, cache_dir=cache)
            t_cold, t_warm = cold.timings, warm.timings
            total = load_s + t_cold.total
            print(
                f"{mesh.n_vertices:>9} {load_s:>7.3f} {t_cold.canonicalize:>7.3f} {t_cold.operators:>9.3f} "
                f"{t_warm.operators:>9.3f} {t_cold.network:>8.3f} {total:>11.3f} {peak_rss_mb():>8.0f}"
            )


if __name__ == "__main__":
    main()
