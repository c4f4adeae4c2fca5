"""The Ray backend on a local Ray instance gives the same outputs and per-item report as the local backend."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import ray

from facerig.batch import BatchOptions, ItemStatus, run_batch
from facerig.cli import run

from batch_helpers import synthetic_head, write_bad_inputs, write_obj


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield
    ray.shutdown()


def test_ray_backend_matches_local_backend(
    local_ray, tmp_path: Path, good_heads: Path, heads_dir: Path, model_dir: Path
) -> None:
    bad = write_bad_inputs(tmp_path / "bad", heads_dir)
    inputs = [good_heads, tmp_path / "bad" / "empty.obj", tmp_path / "bad" / "picture.obj"]
    common = dict(model=model_dir, formats=("glb",), threads_per_worker=1, progress=False)
    on_ray = run_batch(inputs, tmp_path / "ray", BatchOptions(backend="ray", ray_cpus_per_task=1, **common))
    on_local = run_batch(inputs, tmp_path / "local", BatchOptions(backend="local", workers=2, **common))

    assert ray.is_initialized()  # run_batch used the instance it found and left it running
    assert [item.relative for item in on_ray.items] == [item.relative for item in on_local.items]
    assert [item.status for item in on_ray.items] == [item.status for item in on_local.items]
    assert on_ray.count(ItemStatus.DONE) == 3 and on_ray.count(ItemStatus.FAILED) == 2
    assert on_ray.exit_code == on_local.exit_code == 1
    for ray_item, local_item in zip(on_ray.items, on_local.items):
        assert ray_item.outputs == local_item.outputs and ray_item.vertices == local_item.vertices
        assert (ray_item.error or {}).get("class") == (local_item.error or {}).get("class")
        if ray_item.status == ItemStatus.FAILED:
            assert bad[Path(ray_item.relative).name] in ray_item.error["message"]
        for output in ray_item.outputs:
            assert (tmp_path / "ray" / output).stat().st_size > 0
            if output.endswith(".facerig.npz"):
                with np.load(tmp_path / "ray" / output) as a, np.load(tmp_path / "local" / output) as b:
                    np.testing.assert_array_equal(a["deltas"], b["deltas"])
    assert {item.worker.split()[-1] for item in on_ray.items if item.worker} == {"cpu"}
    # The Ray run's report is written like the local one, and a rerun on Ray resumes from its manifest.
    assert (tmp_path / "ray" / "batch-report.json").is_file()
    again = run_batch(inputs, tmp_path / "ray", BatchOptions(backend="ray", **common))
    assert [item.status for item in again.items if item.status != ItemStatus.FAILED] == [ItemStatus.SKIPPED] * 3


def test_an_item_past_its_timeout_on_ray_is_cancelled_and_the_batch_goes_on(
    local_ray, tmp_path: Path, model_dir: Path
) -> None:
    """As on the local backend (test_batch_safety), a hung item is a dense one against a short budget: a
    163,842-vertex head takes tens of seconds (proxy, network, carrying the shapes back), a 162-vertex one well
    under a second. The dense item's Ray task is cancelled at its deadline, its worker process killed (its CPU
    comes back), the small heads are rigged, and the run ends long before the dense head could have."""
    heads = tmp_path / "heads"
    write_obj(heads / "a.obj", *synthetic_head(1))
    write_obj(heads / "b.obj", *synthetic_head(2))
    write_obj(heads / "dense.obj", *synthetic_head(3, level=7))
    out = tmp_path / "out"
    args = ["batch", str(heads), "-o", str(out), "--model", str(model_dir), "-f", "glb", "--backend", "ray",
            "--ray-cpus", "1", "--item-timeout", "5", "--no-progress"]
    codes: list[int] = []
    batch = threading.Thread(target=lambda: codes.append(run(args)), daemon=True)
    batch.start()
    batch.join(timeout=240)  # worker start-up (model load: not the items' time) + 5 s, with room for a busy machine
    assert not batch.is_alive(), "the batch did not finish: the dense item was never stopped"
    assert codes == [1]

    items = {item["relative"]: item for item in json.loads((out / "batch-report.json").read_text())["items"]}
    assert [items[name]["status"] for name in ("a.obj", "b.obj", "dense.obj")] == ["done", "done", "failed"]
    error = items["dense.obj"]["error"]
    assert error["class"] == "ItemTimeoutError" and "traceback" not in error
    assert error["message"] == f"{heads / 'dense.obj'}: timed out: still running after 5 s (--item-timeout)"
    written = {path.name for path in out.iterdir()} - {".facerig-batch", "batch-report.json"}
    assert {*items["a.obj"]["outputs"], *items["b.obj"]["outputs"]} <= written
    assert all(name.startswith(("a.", "b.")) for name in written), written  # nothing of dense.obj's, no temps
    # The cancelled task's worker process was killed, not left computing: both CPUs are free again.
    deadline = time.monotonic() + 60
    while ray.available_resources().get("CPU", 0) < 2:
        assert time.monotonic() < deadline, ray.available_resources()
        time.sleep(0.2)


PRIVATE_RAY_PROBE = """
import json, os
from facerig.batch.ray_backend import _private_ray_environment, init_local_ray
_private_ray_environment()
import ray
from ray._common.usage import usage_lib
init_local_ray(ray, num_cpus=1)
try:
    nodes = ray.nodes()
    print(json.dumps({"addresses": [node["NodeManagerAddress"] for node in nodes],
                      "usage_stats": usage_lib.usage_stats_enabled()}))
finally:
    ray.shutdown()
"""


def test_a_local_ray_instance_is_private(tmp_path: Path) -> None:
    """The instance run_batch starts listens on the loopback address only and sends no usage statistics."""
    import json
    import os
    import subprocess
    import sys

    environment = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    done = subprocess.run([sys.executable, "-c", PRIVATE_RAY_PROBE], capture_output=True, text=True, timeout=300,
                          env=environment, cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    assert probe == {"addresses": ["127.0.0.1"], "usage_stats": False}
