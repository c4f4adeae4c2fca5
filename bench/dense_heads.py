"""Dense heads: time per phase and peak memory of rigging heads of 27k to 1.7M vertices, and the proxy's accuracy.

The heads are the ICT-FaceKit neutral (26,719 vertices) midpoint-subdivided 0-3 times (107k, 420k, 1.7M vertices,
written as OBJ), each rigged with the bundled model in its own process so peaks do not add up. Heads above
``facerig.rigging.proxy.PROXY_MIN_VERTICES`` welded vertices are rigged through a proxy (facerig/rigging/proxy.py). A head whose rig
would exceed the memory budget is refused; the bench then rigs it again under ``--over-budget-gb`` to show the cost.

The accuracy part rigs the 27k ICT head directly and through the proxy and compares both with the kit's own
expressions (45 labelled FACS poses, the vocabulary's ICT recipes): per-pose MAE in mm, and the proxy's cosine and
least-squares gain against the direct rig.

    python bench/dense_heads.py [--levels 0,1,2,3] [--ict FaceXModel-folder-or-archive] [--no-accuracy]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from facerig.geometry.subdivide import midpoint_subdivide  # noqa: E402
from facerig.io import load_mesh  # noqa: E402
from facerig.io.obj import write_obj  # noqa: E402
from facerig.mesh import Mesh  # noqa: E402

PHASES = ("load", "canonicalize", "proxy", "operators", "network", "eyes", "assemble")


def ict_folder(source: Path, workdir: Path) -> Path:
    """The ICT ``FaceXModel`` folder: ``source`` itself, or unpacked from the archive into ``workdir``."""
    if source.is_dir():
        return source if (source / "generic_neutral_mesh.obj").is_file() else source / "FaceXModel"
    with tarfile.open(source) as archive:
        archive.extractall(workdir, filter="data")
    return next(workdir.glob("*/FaceXModel"))


def subdivided(mesh: Mesh, times: int) -> Mesh:
    """``mesh`` midpoint-subdivided ``times`` times (groups kept, UVs dropped); original vertices come first."""
    for _ in range(times):
        vertices, counts, corners, source = midpoint_subdivide(mesh.vertices, mesh.face_vertex_counts,
                                                               mesh.face_vertex_indices)
        mesh = replace(mesh, vertices=vertices, face_vertex_counts=counts, face_vertex_indices=corners,
                       polygon_groups=mesh.polygon_groups[source], uvs=None, uv_indices=None)
    return mesh


def rig_child(path: Path, budget: int | None) -> dict:
    """Load and rig one head (in a fresh process); phases in seconds and this process's peak RSS."""
    from facerig.errors import FacerigError
    from facerig.io import LoadLimits
    from facerig.rigging.pipeline import rig_mesh

    # The loader's own limits (LoadLimits: 750k vertices, 2 GiB) refuse the 1.7M head; a raised budget raises them.
    limits = LoadLimits() if budget is None else LoadLimits(max_vertices=2**62, max_memory_bytes=budget)
    tick = time.perf_counter()
    try:
        mesh = load_mesh(path, limits=limits)
    except FacerigError as error:
        return {"refused": str(error)}  # the caller knows the vertex count
    load_s = time.perf_counter() - tick
    try:
        rig = rig_mesh(mesh, device="cpu", memory_budget=budget, cache_dir=path.parent / f"ops_{path.stem}")
    except FacerigError as error:
        return {"vertices": mesh.n_vertices, "refused": str(error)}
    timings = dict(rig.timings.to_dict(), load=load_s)
    timings["total"] = load_s + timings["total"] - timings["model_load"]
    return {
        "vertices": mesh.n_vertices,
        "proxy_vertices": rig.metadata["proxy_vertices"],
        "timings": timings,
        "model_load": rig.timings.model_load,
        "finite": bool(np.isfinite(rig.deltas).all()),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }


def run_child(path: Path, n_vertices: int, budget: int | None) -> dict:
    command = [sys.executable, __file__, "--child", str(path)] + ([] if budget is None else ["--budget", str(budget)])
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return {"vertices": n_vertices, **json.loads(done.stdout.strip().splitlines()[-1])}


def print_row(result: dict, note: str = "") -> None:
    if "refused" in result:
        print(f"{result['vertices']:>10,} refused: {result['refused'].split(': ', 1)[-1]}")
        return
    t = result["timings"]
    cells = " ".join(f"{t.get(phase, 0.0):>8.2f}" for phase in PHASES)
    print(f"{result['vertices']:>10,} {result['proxy_vertices']:>7,} {cells} {t['total']:>8.2f} "
          f"{result['peak_mb']:>8.0f} {note}")


def accuracy(face_x: Path, cache_dir: Path) -> None:
    """Direct and proxy rigs of the 27k ICT head against ICT's expressions; proxy against direct."""
    from facerig.eval.evaluate import BlinkMeter
    from facerig.rigging.pipeline import rig_mesh
    from facerig.vocabulary import load_vocabulary

    vocabulary = load_vocabulary()
    mesh = load_mesh(face_x / "generic_neutral_mesh.obj")
    direct = rig_mesh(mesh, device="cpu", proxy_min_vertices=sys.maxsize, cache_dir=cache_dir)
    proxy = rig_mesh(mesh, device="cpu", proxy_min_vertices=0, cache_dir=cache_dir)
    recipes = vocabulary.ict_recipes()
    expressions: dict[str, np.ndarray] = {}
    rows = []
    truths: dict[str, np.ndarray] = {}
    for action in vocabulary.action_names:
        if not recipes.get(action):
            continue
        for shape in recipes[action]:
            if shape not in expressions:
                expressions[shape] = load_mesh(face_x / f"{shape}.obj").vertices - mesh.vertices
        truth = truths[action] = sum(expressions[shape] for shape in recipes[action])
        d, p = direct.delta(action).astype(np.float64), proxy.delta(action).astype(np.float64)
        mae_mm = [10.0 * float(np.linalg.norm(x - truth, axis=1).mean()) for x in (d, p)]  # ICT is in cm
        cosine = float((d * p).sum() / max(np.linalg.norm(d) * np.linalg.norm(p), 1e-30))
        gain = float((d * p).sum() / max((d * d).sum(), 1e-30))
        rows.append((action, *mae_mm, cosine, gain))
    print(f"\nproxy accuracy on the {mesh.n_vertices:,}-vertex ICT head ({proxy.metadata['proxy_vertices']:,}-vertex "
          f"proxy), {len(rows)} labelled poses, MAE in mm against ICT's expressions")
    print(f"{'pose':<26} {'MAE direct':>10} {'MAE proxy':>10} {'cosine':>7} {'gain':>6}")
    for action, mae_d, mae_p, cosine, gain in rows:
        print(f"{action:<26} {mae_d:>10.3f} {mae_p:>10.3f} {cosine:>7.3f} {gain:>6.3f}")
    table = np.array([row[1:] for row in rows])
    print(f"{'mean':<26} {table[:, 0].mean():>10.3f} {table[:, 1].mean():>10.3f} {table[:, 2].mean():>7.3f} "
          f"{table[:, 3].mean():>6.3f}")
    print(f"{'worst':<26} {table[:, 0].max():>10.3f} {table[:, 1].max():>10.3f} {table[:, 2].min():>7.3f} "
          f"{table[:, 3].min():>6.3f}")
    blinks = ("LeftEyeClosed", "RightEyeClosed")
    meter = BlinkMeter(mesh, blinks)
    for name, deltas in (("ICT's own", [truths[b] for b in blinks]), ("direct", [direct.delta(b) for b in blinks]),
                         ("proxy", [proxy.delta(b) for b in blinks])):
        closures = meter.measure(np.stack(deltas))
        print(f"blink closure, {name}: " + ", ".join(f"{pose} {closures.get(pose, float('nan')):.2f}" for pose in blinks))
    print(f"lid gains: direct {direct.metadata.get('lid_gains')}, proxy {proxy.metadata.get('lid_gains')}")
    print(f"rig time: direct {direct.timings.total:.2f} s, "
          f"proxy {proxy.timings.total:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_ict = Path(os.environ.get("FACERIG_TEST_CACHE", REPO / ".facerig-cache")) / "ICT-FaceKit" / "FaceXModel"
    if not default_ict.is_dir():
        default_ict = REPO.parent / "shared" / "data" / "ICT-FaceKit.tar.xz"
    parser.add_argument("--ict", type=Path, default=default_ict, help="FaceXModel folder or ICT-FaceKit archive")
    parser.add_argument("--levels", default="0,1,2,3", help="subdivision levels (0: the 27k head, 3: 1.7M; empty: only the accuracy part)")
    parser.add_argument("--over-budget-gb", type=float, default=8.0,
                        help="budget for a second try at a head the default budget refuses (0: no second try)")
    parser.add_argument("--no-accuracy", action="store_true")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--budget", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(rig_child(args.child, args.budget)))
        return

    import torch

    print(f"machine: {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        face_x = ict_folder(args.ict, workdir)
        neutral = load_mesh(face_x / "generic_neutral_mesh.obj")
        phases = " ".join(f"{p[:8]:>8}" for p in PHASES)
        print(f"{'vertices':>10} {'proxy':>7} {phases} {'total':>8} {'peak MB':>8}")
        for level in (int(x) for x in args.levels.split(",") if x.strip()):
            head = subdivided(neutral, level)
            path = write_obj(head, workdir / f"ict_sub{level}.obj")
            result = run_child(path, head.n_vertices, None)
            print_row(result)
            if "refused" in result and args.over_budget_gb > 0:
                print_row(run_child(path, head.n_vertices, int(args.over_budget_gb * 1024**3)),
                          f"(budget {args.over_budget_gb:g} GB)")
            path.unlink()
        print(f"load average {os.getloadavg()[0]:.1f} at the end")
        if not args.no_accuracy:
            accuracy(face_x, workdir / "ops")


if __name__ == "__main__":
    main()
