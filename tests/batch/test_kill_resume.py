"""A batch SIGKILLed part-way leaves no partial output, and the next run finishes only what is missing, with
outputs byte-identical to an uninterrupted run's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from facerig.batch.discover import STATE_DIR
from facerig.cli import run
from facerig.fileio import TEMP_SUFFIX, temp_prefix
from facerig.rig import Rig

from batch_helpers import synthetic_head, write_obj

N_HEADS = 6


def output_files(out: Path) -> dict[str, bytes]:
    """{path below out: bytes} of every rig output (the run's report and resume records left out)."""
    return {
        path.relative_to(out).as_posix(): path.read_bytes()
        for path in sorted(out.rglob("*"))
        if path.is_file() and STATE_DIR not in path.parts and path.name != "batch-report.json"
    }


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path: Path, model_dir: Path) -> None:
    heads = tmp_path / "heads"
    for n in range(N_HEADS):
        write_obj(heads / f"group{n % 2}" / f"head{n}.obj", *synthetic_head(100 + n))
    out = tmp_path / "out"
    args = ["batch", str(heads), "-o", str(out), "--model", str(model_dir), "--threads-per-worker", "1", "-f", "glb"]
    args.append("--no-progress")

    # Start a batch, and kill it (its worker too) as soon as the first item is finished.
    records = out / ".facerig-batch" / "items"
    process = subprocess.Popen(
        [sys.executable, "-m", "facerig", *args], start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not (records.is_dir() and any(records.glob("*.json"))):
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "the batch finished no item within 120 s"
            time.sleep(0.02)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    finished = {json.loads(path.read_text())["relative"] for path in records.glob("*.json")}
    assert 1 <= len(finished) < N_HEADS

    # No partial file under a final name: every bundle present loads; temp files are hidden dot-files.
    for path in out.rglob("*.facerig.npz"):
        assert Rig.load(path).neutral.n_vertices == 162
    # A stale temp file as a kill during a write leaves it, for an item still to do.
    unfinished = sorted({f"group{n % 2}/head{n}.obj" for n in range(N_HEADS)} - finished)[0]
    folder, name = unfinished.split("/")
    target = out / folder / f"{name[:-4]}.facerig.npz"
    stale = target.with_name(f"{temp_prefix(target)}abcd1234{TEMP_SUFFIX}")
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"half a bundle")

    assert run(args) == 0
    report = json.loads((out / "batch-report.json").read_text())
    statuses = {item["relative"]: item["status"] for item in report["items"]}
    assert {r for r, s in statuses.items() if s == "skipped"} == finished
    assert {r for r, s in statuses.items() if s == "done"} == set(statuses) - finished
    assert [p for p in out.rglob("*") if p.name.endswith(".tmp")] == []

    # The outputs are byte for byte those of a run that was never interrupted: bundles, exports and sidecars.
    clean = tmp_path / "clean"
    assert run([*args[:3], str(clean), *args[4:]]) == 0
    resumed, uninterrupted = output_files(out), output_files(clean)
    assert len(uninterrupted) == 3 * N_HEADS  # a bundle, a .glb and its sidecar per head
    assert resumed.keys() == uninterrupted.keys()
    assert [key for key in resumed if resumed[key] != uninterrupted[key]] == []
