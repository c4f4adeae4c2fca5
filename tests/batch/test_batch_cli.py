"""`facerig batch` end to end: good heads rigged, bad ones reported with their reason, resume, safety, fail-fast."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from facerig.batch import BatchOptions, ItemStatus, run_batch
from facerig.cli import run
from facerig.rig import Rig
from facerig.vocabulary import load_vocabulary

from batch_helpers import synthetic_head, write_bad_inputs, write_obj

NASTY = "..;$(touch pwned) \n ünï `..` -"


def by_relative(report: dict) -> dict[str, dict]:
    return {item["relative"]: item for item in report["items"]}


def test_good_and_bad_heads_then_resume(tmp_path: Path, good_heads: Path, heads_dir: Path, model_dir: Path) -> None:
    reasons = write_bad_inputs(good_heads / "bad", heads_dir)
    write_obj(good_heads / "..." / f"{NASTY}.obj", *synthetic_head(3))  # a hostile but valid file name
    write_obj(good_heads / "big.obj", *synthetic_head(4, level=3))  # 642 vertices: over --max-vertices 600
    write_obj(good_heads / "escape" / "head.obj", *synthetic_head(5))
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    out.mkdir()
    (out / "escape").symlink_to(elsewhere, target_is_directory=True)  # planted: writing through it would escape

    args = [
        "batch", str(good_heads), "-o", str(out), "--model", str(model_dir), "--format", "glb",
        "--threads-per-worker", "1", "--max-vertices", "600", "--no-progress",
    ]
    assert run(args) == 1  # some items failed

    report = json.loads((out / "batch-report.json").read_text())
    items = by_relative(report)
    good = ["suzanne.obj", "synth_a.obj", "studio/synth_b.obj", f".../{NASTY}.obj"]
    assert sorted(items) == sorted(good + [f"bad/{name}" for name in reasons] + ["big.obj", "escape/head.obj"])
    assert report["counts"] == {"done": 4, "skipped": 0, "failed": 7, "cancelled": 0}

    shape_count = len(load_vocabulary().shape_names)
    for relative in good:
        item = items[relative]
        assert item["status"] == "done", item
        stem = relative[: -len(".obj")]
        assert item["outputs"] == [f"{stem}.facerig.npz", f"{stem}.glb"]
        assert set(item["timings_s"]) >= {"load", "operators", "network", "export", "total"}
        rig = Rig.load(out / item["outputs"][0])
        assert rig.neutral.n_vertices == item["vertices"] and rig.deltas.shape == (shape_count, item["vertices"], 3)
        assert np.isfinite(rig.deltas).all() and np.abs(rig.deltas).max() > 0
        assert (out / item["outputs"][1]).read_bytes()[:4] == b"glTF"
    assert items["suzanne.obj"]["vertices"] == 507 and items["synth_a.obj"]["vertices"] == 162
    assert (out / "..." / f"{NASTY}.facerig.npz").is_file()  # inside OUTDIR, named after the file

    for name, reason in reasons.items():
        error = items[f"bad/{name}"]["error"]
        assert items[f"bad/{name}"]["status"] == "failed"
        assert error["class"] == "MeshLoadError" and reason in error["message"] and name in error["message"]
        assert "traceback" not in error  # an expected failure, not a bug
    assert "600" in items["big.obj"]["error"]["message"] and "642" in items["big.obj"]["error"]["message"]
    escape = items["escape/head.obj"]["error"]
    assert escape["class"] == "OutputError" and "outside the output folder" in escape["message"]
    assert list(elsewhere.iterdir()) == []
    assert not (tmp_path / "pwned").exists() and not (out / "pwned").exists()

    # Second run: finished items are skipped, a changed input is redone, failures are tried again.
    before = (out / "suzanne.facerig.npz").stat().st_mtime_ns
    write_obj(good_heads / "synth_a.obj", *synthetic_head(11))
    assert run(args) == 1
    items = by_relative(json.loads((out / "batch-report.json").read_text()))
    assert items["synth_a.obj"]["status"] == "done"
    assert [items[r]["status"] for r in good if r != "synth_a.obj"] == ["skipped"] * 3
    assert items["suzanne.obj"]["outputs"] == ["suzanne.facerig.npz", "suzanne.glb"]
    assert items["suzanne.obj"]["vertices"] == 507  # carried over from the manifest
    assert (out / "suzanne.facerig.npz").stat().st_mtime_ns == before
    assert items["bad/empty.obj"]["status"] == "failed"
    leftovers = [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_fail_fast_stops_and_a_deleted_output_is_redone(tmp_path: Path, good_heads: Path, model_dir: Path) -> None:
    (good_heads / "aaa_broken.obj").write_text("v 0 0 0\n")  # sorts first
    out = tmp_path / "out"
    options = BatchOptions(model=model_dir, fail_fast=True, threads_per_worker=1, progress=False)
    report = run_batch([good_heads], out, options)
    statuses = [item.status for item in report.items]
    assert report.items[0].relative == "aaa_broken.obj" and statuses[0] == ItemStatus.FAILED
    assert report.count(ItemStatus.CANCELLED) >= 2  # two workers' worth of look-ahead at most had started
    assert report.exit_code == 1

    # Without fail-fast the rest is rigged; a finished item whose output was deleted is redone.
    shutil.rmtree(out)
    relaxed = BatchOptions(model=model_dir, threads_per_worker=1, progress=False)
    run_batch([good_heads], out, relaxed)
    os.remove(out / "suzanne.facerig.npz")
    again = {item.relative: item.status for item in run_batch([good_heads], out, relaxed).items}
    assert again == {
        "aaa_broken.obj": ItemStatus.FAILED,
        "studio/synth_b.obj": ItemStatus.SKIPPED,
        "suzanne.obj": ItemStatus.DONE,
        "synth_a.obj": ItemStatus.SKIPPED,
    }


def test_mirror_average_reaches_every_worker_and_the_resume_key(tmp_path: Path, model_dir: Path) -> None:
    heads = tmp_path / "heads"
    write_obj(heads / "a.obj", *synthetic_head(1))
    out = tmp_path / "out"
    args = ["batch", str(heads), "-o", str(out), "--model", str(model_dir), "--threads-per-worker", "1",
            "--no-progress"]
    assert run(args) == 0
    assert not Rig.load(out / "a.facerig.npz").metadata["mirror_averaged"]
    assert run([*args, "--mirror-average"]) == 0  # a different output: not skipped as already done
    report = json.loads((out / "batch-report.json").read_text())
    assert report["counts"]["done"] == 1 and report["counts"]["skipped"] == 0
    assert Rig.load(out / "a.facerig.npz").metadata["mirror_averaged"]
