"""The report (JSON, summary, exit code, phase means) and the progress output, on hand-made results."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from facerig.batch import BatchOptions, BatchReport, ItemResult, ItemStatus
from facerig.batch.progress import Progress
from facerig.errors import ConfigError, MeshLoadError


def results() -> list[ItemResult]:
    done = [
        ItemResult(f"/in/h{n}.obj", f"h{n}.obj", ItemStatus.DONE, "ab" * 32, 100 * (n + 1), [f"h{n}.facerig.npz"],
                   {"load": 0.1, "operators": 1.0 + n, "network": 2.0, "export": 0.5, "total": 3.6 + n})
        for n in range(2)
    ]
    failed = ItemResult.failure("/in/bad.obj", "bad.obj", "cd" * 32, MeshLoadError("file is empty", "/in/bad.obj"))
    bug = ItemResult.failure("/in/odd.obj", "odd.obj", "ef" * 32, ZeroDivisionError("division by zero"))
    skipped = ItemResult("/in/old.obj", "old.obj", ItemStatus.SKIPPED, "01" * 32, 50, ["old.facerig.npz"])
    return [*done, failed, bug, skipped]


def report(items: list[ItemResult]) -> BatchReport:
    model = {"id": "x" * 64, "name": "m"}
    return BatchReport("/out", model, BatchOptions().to_dict(), items, "2025-01-01T00:00:00+00:00", 30.0)


def test_report_counts_exit_code_phase_means_and_json(tmp_path: Path) -> None:
    full = report(results())
    assert full.exit_code == 1 and [item.relative for item in full.failed] == ["bad.obj", "odd.obj"]
    assert full.heads_per_minute() == pytest.approx(4.0)  # 2 rigged in 30 s
    means = full.phase_means()
    assert means["operators"] == pytest.approx(1.5) and means["total"] == pytest.approx(4.1)
    assert means["canonicalize"] == 0.0  # a phase an item did not report counts as 0

    data = json.loads(full.write(tmp_path / "r.json").read_text())
    assert data["counts"] == {"done": 2, "skipped": 1, "failed": 2, "cancelled": 0}
    assert data["items"][2]["error"] == {"class": "MeshLoadError", "message": "/in/bad.obj: file is empty"}
    assert "ZeroDivisionError" in data["items"][3]["error"]["traceback"]  # a bug keeps its traceback
    assert data["items"][3]["error"]["message"] == "/in/odd.obj: division by zero"  # and names the file
    assert data["options"]["formats"] == [] and full.path == str(tmp_path / "r.json")

    text = full.summary()
    assert "2 rigged, 1 skipped (already done), 2 failed in 30.0 s (4.0 heads/min)" in text
    assert "failed bad.obj: MeshLoadError: /in/bad.obj: file is empty" in text
    assert report([results()[0], results()[4]]).exit_code == 0


def test_progress_plain_lines_when_not_a_terminal() -> None:
    stream = io.StringIO()
    with Progress(total=3, interval_s=0.0, stream=stream) as progress:
        for item in results()[1:4]:
            progress.advance(item)
    lines = stream.getvalue().splitlines()
    assert "[facerig batch] failed bad.obj: MeshLoadError: /in/bad.obj: file is empty" in lines
    assert lines[-1].startswith("[facerig batch] 3/3 heads (2 failed),") and "ETA 00:00:00" in lines[-1]


def test_progress_bar_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    with Progress(total=2, stream=stream) as progress:
        for item in results()[:2]:
            progress.advance(item)
    text = stream.getvalue()
    assert "rigging" in text and "2/2" in text and "head/s" in text and "[facerig batch]" not in text


def test_disabled_progress_prints_nothing() -> None:
    stream = io.StringIO()
    with Progress(total=5, enabled=False, stream=stream) as progress:
        progress.advance(results()[2])
    assert stream.getvalue() == ""


@pytest.mark.parametrize(
    "bad",
    [dict(formats=("obj",)), dict(naming="maya"), dict(backend="slurm"), dict(workers=0), dict(device="tpu"),
     dict(method="trnsfer"), dict(max_file_mb=float("inf")), dict(item_timeout_s=0.0)],
)
def test_options_are_validated(bad: dict) -> None:
    with pytest.raises(ConfigError):
        BatchOptions(**bad)


def test_the_resume_key_covers_everything_that_changes_a_rig() -> None:
    """The model id hashes model.pt only; the rig also reads settings from model.json, and mirror averaging."""
    settings = {"gaze_degrees": 25.0, "offset_floor": 6e-4}
    base = BatchOptions().output_fingerprint("m" * 64, "v" * 64, settings)
    assert base == BatchOptions().output_fingerprint("m" * 64, "v" * 64, dict(settings))
    changed = [
        BatchOptions().output_fingerprint("m" * 64, "v" * 64, {**settings, "offset_floor": 0.0}),
        BatchOptions().output_fingerprint("m" * 64, "v" * 64, {**settings, "gaze_degrees": 20.0}),
        BatchOptions(mirror_average=True).output_fingerprint("m" * 64, "v" * 64, settings),
        BatchOptions(naming="arkit").output_fingerprint("m" * 64, "v" * 64, settings),
        BatchOptions(method="transfer").output_fingerprint("m" * 64, "v" * 64, settings),
    ]
    assert len({base, *changed}) == 1 + len(changed)


def test_the_json_report_phases_are_the_timings_record_fields() -> None:
    from facerig.batch.report import PHASES
    from facerig.timings import RigTimings

    assert PHASES == RigTimings.phases() and "eyes" in PHASES and PHASES[-1] == "total"
    assert BatchOptions(method="transfer", naming="arkit").to_dict()["method"] == "transfer"


def test_a_report_that_cannot_be_written_is_one_clear_error(tmp_path: Path) -> None:
    from facerig.errors import OutputError

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the report's folder should be")
    with pytest.raises(OutputError, match="cannot write the batch report"):
        report(results()).write(blocker / "r.json")
