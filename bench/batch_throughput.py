"""Batch throughput: heads per minute with 1 and 2 local workers, at about 2k and 27k vertices (issue 6).

Heads: the ICT-FaceKit neutral (26,719 vertices) and a re-meshed version of it (about 2,000 vertices, every
component kept), each copied N times with a little noise so every copy is a distinct input. The model is the
bundled one when present, else a freshly initialised default-configuration model (same cost per head). Each
configuration is one ``run_batch`` into a fresh folder; the table shows wall-clock throughput (start-up
included: model check, worker spawn, model load per worker), a steady-state estimate (workers x 60 / mean
seconds per head) and the report's mean seconds per phase, which says where the time goes.

    python bench/batch_throughput.py [--heads-2k 8] [--heads-27k 2] [--workers 1,2] [--model DIR]

Target (SPEC §8 / issue 6): >= 60 heads/min at 2k vertices on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from facerig.batch import BatchOptions, run_batch  # noqa: E402
from facerig.batch.report import PHASES  # noqa: E402
from facerig.batch.worker import cpu_count  # noqa: E402
from facerig.io import load_mesh  # noqa: E402
from facerig.mesh import Mesh  # noqa: E402
from facerig.nn.model import METADATA_FILE, MODEL_FILE, default_model_path, save_packaged  # noqa: E402


def ict_neutral_path() -> Path:
    sys.path.insert(0, str(REPO / "tests"))
    import conftest  # the test suite's data locator: unpacks ICT-FaceKit once

    return conftest.ict_dir.__wrapped__() / "generic_neutral_mesh.obj"


def write_obj(path: Path, vertices: np.ndarray, counts: np.ndarray, corners: np.ndarray) -> None:
    """A plain OBJ (positions and polygons only)."""
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    lines += ["f " + " ".join(str(i + 1) for i in corners[s : s + c]) for s, c in zip(starts, counts)]
    path.write_text("\n".join(lines) + "\n")


def write_copies(mesh: Mesh, folder: Path, count: int, seed: int) -> int:
    """``count`` noisy copies of ``mesh`` in ``folder``; returns the vertex count."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    scale = 1e-4 * float(np.ptp(mesh.vertices, axis=0).max())
    for n in range(count):
        vertices = mesh.vertices + scale * rng.standard_normal(mesh.vertices.shape)
        write_obj(folder / f"head{n:03d}.obj", vertices, mesh.face_vertex_counts, mesh.face_vertex_indices)
    return mesh.n_vertices


def remeshed_head(source: Mesh, budget: int) -> Mesh:
    from facerig.geometry.remesh import RemeshOptions, remesh

    result = remesh(source.vertices, source.triangles, RemeshOptions(budget=budget), np.random.default_rng(0))
    return Mesh(result.vertices, result.face_vertex_counts, result.face_vertex_indices, name="head")


def model_folder(given: Path | None, workdir: Path) -> tuple[Path, str]:
    if given is not None:
        return given, "given"
    bundled = default_model_path()
    if (bundled / MODEL_FILE).is_file() and (bundled / METADATA_FILE).is_file():
        return bundled, "bundled"
    from facerig.nn.network import NetworkConfig, RigNetwork
    from facerig.vocabulary import load_vocabulary

    folder = workdir / "fresh-model"
    save_packaged(RigNetwork(NetworkConfig.default()), folder, {"action_names": list(load_vocabulary().action_names)})
    return folder, "fresh default-config (no bundled model yet)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heads-2k", type=int, default=8, help="heads per run at ~2k vertices")
    parser.add_argument("--heads-27k", type=int, default=2, help="heads per run at 27k vertices (0: skip)")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--model", type=Path, default=None, help="packaged model folder")
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]

    with tempfile.TemporaryDirectory(prefix="facerig-bench-batch-") as tmp:
        work = Path(tmp)
        model, model_kind = model_folder(args.model, work)
        neutral = load_mesh(ict_neutral_path())
        sets = []
        if args.heads_2k:
            small = remeshed_head(neutral, 2000)
            sets.append(("~2k", work / "heads2k", write_copies(small, work / "heads2k", args.heads_2k, 1)))
        if args.heads_27k:
            sets.append(("27k", work / "heads27k", write_copies(neutral, work / "heads27k", args.heads_27k, 2)))

        print(f"model: {model_kind}; cores available: {cpu_count()}")
        columns = ("size", "verts", "workers", "heads", "wall s", "heads/min", "steady/min", *PHASES)
        print(" ".join(f"{name:>10}" for name in columns))
        for label, folder, n_vertices in sets:
            for count in workers:
                out = work / f"out-{label}-{count}"
                options = BatchOptions(
                    model=model, workers=count, progress=False, resume=False, report=work / f"{label}-{count}.json"
                )
                report = run_batch([folder], out, options)
                if report.failed:
                    raise SystemExit(report.summary())
                means = report.phase_means()
                steady = 60.0 * count / means["total"]
                row = [label, n_vertices, count, len(report.items), f"{report.wall_s:.1f}"]
                row += [f"{report.heads_per_minute():.1f}", f"{steady:.1f}", *(f"{means[p]:.3f}" for p in PHASES)]
                print(" ".join(f"{value:>10}" for value in row))
        print("phases: mean seconds per head inside a worker; wall includes start-up (model check, spawn, load).")


if __name__ == "__main__":
    main()
