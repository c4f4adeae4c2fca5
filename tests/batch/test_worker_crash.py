"""A worker process that dies mid-batch costs a retry, not the batch: its items run again in a fresh pool."""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import threading
import time
from pathlib import Path

from facerig.batch import BatchOptions, ItemStatus, run_batch

from batch_helpers import synthetic_head, write_obj


def test_killed_worker_process_is_replaced_and_its_items_retried(tmp_path: Path, model_dir: Path) -> None:
    heads = tmp_path / "heads"
    for n in range(6):
        write_obj(heads / f"head{n}.obj", *synthetic_head(200 + n))
    out = tmp_path / "out"
    options = BatchOptions(model=model_dir, threads_per_worker=1, max_retries=1, progress=False)
    reports = []
    batch = threading.Thread(target=lambda: reports.append(run_batch([heads], out, options)))
    batch.start()

    # Once the worker is warm and has finished an item, kill it (as the kernel's OOM killer would).
    records = out / ".facerig-batch" / "items"
    deadline = time.monotonic() + 120
    while not (records.is_dir() and any(records.glob("*.json"))):
        assert batch.is_alive() and time.monotonic() < deadline
        time.sleep(0.02)
    (worker,) = multiprocessing.active_children()
    os.kill(worker.pid, signal.SIGKILL)
    batch.join(timeout=180)

    (report,) = reports
    assert [item.status for item in report.items] == [ItemStatus.DONE] * 6
    assert report.exit_code == 0
    pids = {item.worker.split()[0] for item in report.items}
    assert len(pids) == 2 and f"{socket.gethostname()}:{worker.pid}" in pids  # a second worker took over
