"""A batch never destroys or escapes: its own outputs and inputs in one folder, OUTDIR's lock, a planted state
folder, a hung item, and the rigging method reaching every worker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facerig.batch import Shard
from facerig.batch.manifest import outdir_lock
from facerig.cli import run
from facerig.errors import OutputError
from facerig.rig import Rig

from batch_helpers import synthetic_head, write_obj


def report_items(out: Path) -> dict[str, dict]:
    return {item["relative"]: item for item in json.loads((out / "batch-report.json").read_text())["items"]}


def test_a_batch_into_its_own_input_folder_destroys_nothing_and_skips_its_outputs(
    tmp_path: Path, heads_dir: Path, model_dir: Path
) -> None:
    folder = tmp_path / "d"
    write_obj(folder / "s.obj", *synthetic_head(1))
    (folder / "t.glb").write_bytes((heads_dir / "robot_expressive.glb").read_bytes())
    before = (folder / "t.glb").read_bytes()
    args = ["batch", str(folder), "-o", str(folder), "-f", "glb", "--model", str(model_dir),
            "--threads-per-worker", "1", "--no-progress"]
    for attempt in ("first", "second"):
        assert run(args) == 1, attempt  # t.glb is refused both times
        items = report_items(folder)
        assert sorted(items) == ["s.obj", "t.glb"], attempt  # s.glb, facerig's output, is never an input
        assert items["s.obj"]["status"] == ("done" if attempt == "first" else "skipped")
        assert items["t.glb"]["status"] == "failed"
        assert "would overwrite the input" in items["t.glb"]["error"]["message"]
        assert (folder / "t.glb").read_bytes() == before
    assert not (folder / "t.facerig.npz").exists() and not (folder / "s.glb.glb").exists()


def test_a_second_batch_on_a_locked_output_folder_is_one_red_line(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    write_obj(tmp_path / "heads" / "a.obj", *synthetic_head(1))
    out = tmp_path / "out"
    out.mkdir()
    with outdir_lock(out, None):  # another run is writing OUTDIR
        assert run(["batch", str(tmp_path / "heads"), "-o", str(out), "--model", str(model_dir)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "another facerig batch" in lines[0]
    assert not (out / "a.facerig.npz").exists() and not (out / "batch-report.json").exists()


def test_shards_share_an_output_folder_but_one_shard_runs_once(tmp_path: Path) -> None:
    with outdir_lock(tmp_path, Shard(1, 2)):
        with outdir_lock(tmp_path, Shard(2, 2)):  # another shard of the same farm job: fine
            pass
        for clash in (Shard(1, 2), None):  # the same shard again, or an unsharded run over every item
            with pytest.raises(OutputError, match="another facerig batch"):
                with outdir_lock(tmp_path, clash):
                    pass
    with outdir_lock(tmp_path, None):  # released when the runs ended
        pass


def test_a_planted_state_folder_symlink_is_refused(tmp_path: Path, model_dir: Path, capsys) -> None:
    write_obj(tmp_path / "heads" / "a.obj", *synthetic_head(1))
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    out.mkdir()
    (out / ".facerig-batch").symlink_to(elsewhere, target_is_directory=True)
    assert run(["batch", str(tmp_path / "heads"), "-o", str(out), "--model", str(model_dir)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and ".facerig-batch" in lines[0] and "symlink" in lines[0]
    assert list(elsewhere.iterdir()) == [] and not (out / "a.facerig.npz").exists()


def test_an_item_past_its_timeout_fails_and_the_batch_goes_on(tmp_path: Path, model_dir: Path) -> None:
    """A 0.5 s budget against heads of 10,242 vertices, whose operators and network take seconds: each item is
    still running at its deadline (counted from when its worker started it), and its worker is killed."""
    for n in range(2):
        write_obj(tmp_path / "heads" / f"h{n}.obj", *synthetic_head(n, level=5))
    out = tmp_path / "out"
    args = ["batch", str(tmp_path / "heads"), "-o", str(out), "--model", str(model_dir), "--item-timeout", "0.5",
            "--threads-per-worker", "1", "--no-progress"]
    assert run(args) == 1
    items = report_items(out)
    assert sorted(items) == ["h0.obj", "h1.obj"]
    for item in items.values():
        assert item["status"] == "failed" and item["error"]["class"] == "ItemTimeoutError"
        assert "timed out" in item["error"]["message"] and item["input"] in item["error"]["message"]
    leftovers = [path.name for path in out.iterdir() if path.name not in (".facerig-batch", "batch-report.json")]
    assert leftovers == []


def test_batch_method_reaches_every_worker_and_the_resume_key(tmp_path: Path, heads_dir: Path,
                                                              model_dir: Path) -> None:
    (tmp_path / "heads").mkdir()
    (tmp_path / "heads" / "suzanne.obj").write_bytes((heads_dir / "suzanne.obj").read_bytes())
    out = tmp_path / "out"
    args = ["batch", str(tmp_path / "heads"), "-o", str(out), "--model", str(model_dir),
            "--threads-per-worker", "1", "--no-progress"]
    assert run(args) == 0
    assert Rig.load(out / "suzanne.facerig.npz").metadata["method"] == "network"
    assert run([*args, "--method", "transfer", "--naming", "arkit"]) == 0
    item = report_items(out)["suzanne.obj"]
    assert item["status"] == "done"  # another method is another output: not skipped
    assert Rig.load(out / "suzanne.facerig.npz").metadata["method"] == "transfer"
    assert item["timings_s"]["total"] >= item["timings_s"]["export"] > 0
