"""Export speed and file size per format, one row per registered exporter (issue: exporters).

The rig is production-shaped: the 26,719-vertex ICT-FaceKit head (17 components, 12 groups, face-varying UVs)
with the vocabulary's 95 shapes (47 FACS actions + 48 correctives with their recipes; the vocabulary's 96
poses minus the neutral, which is the base mesh). Shape deltas are the real ICT expression deltas
(expression − neutral) taken in turn, cycling through the 57 expressions. Target: < 1 s per format.

Time is the median wall time of ``export_rig`` (gather + write + atomic file writes) over ``--repeats`` runs;
size is every file the export writes except the ``.facerig.json`` sidecar (reported apart).

    python bench/export_speed.py [--repeats 3] [--formats usd,glb]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from facerig.exporters import EXPORTERS, export_rig  # noqa: E402
from facerig.exporters.common import SIDECAR_SUFFIX  # noqa: E402
from facerig.io import load_mesh  # noqa: E402
from facerig.rig import Rig  # noqa: E402
from facerig.vocabulary import load_vocabulary  # noqa: E402


def ict_dir() -> Path:
    sys.path.insert(0, str(REPO / "tests"))
    import conftest  # the test suite's data locator: unpacks ICT-FaceKit once

    return conftest.ict_dir.__wrapped__()


def benchmark_rig() -> Rig:
    """The ICT head with the vocabulary's 95 shapes, deltas cycled from the ICT expressions."""
    folder = ict_dir()
    neutral = load_mesh(folder / "generic_neutral_mesh.obj")
    expressions = sorted(p for p in folder.glob("*.obj") if not p.stem.startswith(("identity", "generic")))
    vocabulary = load_vocabulary()
    names = vocabulary.shape_names
    deltas = np.empty((len(names), neutral.n_vertices, 3), np.float32)
    for k in range(len(names)):
        if k < len(expressions):
            deltas[k] = load_mesh(expressions[k]).vertices - neutral.vertices
        else:
            deltas[k] = deltas[k % len(expressions)]
    recipes = {c.name: c.bases for c in vocabulary.correctives}
    return Rig(neutral, names, deltas, recipes, metadata={"vocabulary": vocabulary.id, "note": "export benchmark"})


def measure(rig: Rig, format_name: str, repeats: int, workdir: Path) -> dict:
    exporter = EXPORTERS[format_name]
    folder = workdir / format_name
    path = folder / f"head{exporter.suffixes[0]}"
    seconds = []
    for _ in range(repeats):
        tick = time.perf_counter()
        export_rig(rig, path, format=format_name)
        seconds.append(time.perf_counter() - tick)
    files = [p for p in folder.iterdir() if p.is_file()]
    sidecars = [p for p in files if p.name.endswith(SIDECAR_SUFFIX)]
    return {
        "format": format_name,
        "seconds": statistics.median(seconds),
        "mb": sum(p.stat().st_size for p in files if p not in sidecars) / 1e6,
        "files": len(files) - len(sidecars),
        "sidecar_kb": sum(p.stat().st_size for p in sidecars) / 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="runs per format; the median is reported")
    parser.add_argument("--formats", default=",".join(EXPORTERS), help="comma-separated formats (default: all)")
    args = parser.parse_args()
    formats = [f.strip().lower() for f in args.formats.split(",") if f.strip()]
    unknown = sorted(set(formats) - set(EXPORTERS))
    if unknown:
        parser.error(f"unknown formats {unknown}; registered: {', '.join(EXPORTERS)}")

    rig = benchmark_rig()
    print(f"rig: {rig.neutral.n_vertices} vertices, {rig.neutral.n_polygons} polygons, {rig.n_shapes} shapes "
          f"({len(rig.corrective_recipes)} correctives), {len(rig.neutral.group_names)} groups")
    print(f"{'format':<8}{'seconds':>9}{'MB':>9}{'files':>7}{'sidecar kB':>12}  target < 1 s")
    with tempfile.TemporaryDirectory(prefix="facerig-export-bench-") as tmp:
        for format_name in formats:
            row = measure(rig, format_name, args.repeats, Path(tmp))
            verdict = "ok" if row["seconds"] < 1.0 else "SLOW"
            print(
                f"{row['format']:<8}{row['seconds']:>9.3f}{row['mb']:>9.2f}{row['files']:>7}"
                f"{row['sidecar_kb']:>12.1f}  {verdict}"
            )


if __name__ == "__main__":
    main()
