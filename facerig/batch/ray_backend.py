"""The Ray backend: every item is a Ray task, scheduled by the cluster, results gathered into the same report.

Each task asks for ``ray_cpus_per_task`` CPUs and ``ray_gpus_per_task`` GPUs (by default one GPU when the
device may be CUDA and the cluster has GPUs); Ray re-runs a task whose worker or node is lost up to
``max_retries`` times. A Ray worker process keeps its loaded model between tasks, so the model loads once
per worker process, not once per item. Inputs, the model folder and OUTDIR must be on storage every node
sees (a farm's shared file system), and facerig must be installed on every node.

``--item-timeout`` holds as on the local backend: an item still running ``item_timeout_s`` after its task
started it (a task's wait for a free worker and its model load do not count; see
:func:`~facerig.batch.worker.item_deadline`) is cancelled with ``ray.cancel(force=True)``, which kills the Ray
worker process running it (a hung native call cannot be interrupted otherwise), and fails as timed out while
the rest of the batch goes on. Ray does not say when a queued task starts running, so each task notes when it
begins and when it starts its item on a small queue actor (:class:`ray.util.queue.Queue`, no CPUs); the driver
reads those notes every :data:`_POLL_S` seconds and times each item on its own clock.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

from facerig.batch.discover import InputItem
from facerig.batch.options import BatchOptions
from facerig.batch.report import ItemResult
from facerig.batch.worker import Worker, WorkerLostError, item_deadline, timed_out_result, worker_device

log = logging.getLogger(__name__)

_POLL_S = 0.5
# What a task notes on the clock queue, with its item's position: its task began on a Ray worker (a retry
# begins again), then the item started (the Worker, and so the model, ready).
_BEGAN, _STARTED = "began", "started"
_LOOPBACK = "127.0.0.1"
_PRIVATE_RAY_ENVIRONMENT = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def run_ray(
    items: Sequence[InputItem], outdir: Path, options: BatchOptions, stop: threading.Event
) -> Iterator[tuple[int, ItemResult]]:
    """Rig ``items`` as Ray tasks; yield (position in items, result) as they finish.

    Uses the Ray instance this process is already connected to; otherwise connects to
    ``options.ray_address``, or starts a private local instance with ``options.workers`` CPUs (loopback only,
    no usage statistics; see :func:`init_local_ray`) and shuts down what it started when done.
    An item still running ``options.item_timeout_s`` after its task started it is cancelled (its Ray worker
    process killed) and yielded as timed out (see the module's docstring).
    """
    if options.ray_address is None:
        _private_ray_environment()
    import ray
    from ray.util.queue import Queue

    started_here = not ray.is_initialized()
    if started_here:
        if options.ray_address is None:
            init_local_ray(ray, num_cpus=int(options.workers * options.ray_cpus_per_task))
        else:
            ray.init(address=options.ray_address, include_dashboard=False, log_to_driver=False)
    try:
        gpus = _gpus_per_task(options, ray.cluster_resources().get("GPU", 0.0))
        task = ray.remote(_rig_on_ray).options(
            num_cpus=options.ray_cpus_per_task,
            num_gpus=gpus,
            max_retries=options.max_retries,  # re-run on worker or node loss
            retry_exceptions=False,  # Worker.rig returns failures as results; anything raised is a bug
        )
        # No CPUs, so it never waits for the items' tasks; restarted (empty) should its process be lost.
        clock = Queue(actor_options={"num_cpus": 0, "max_restarts": -1})
        try:
            refs = {n: task.remote(options, outdir, item, gpus > 0, clock.actor, n) for n, item in enumerate(items)}
            pending = {ref: n for n, ref in refs.items()}
            began: dict[int, float] = {}  # driver's monotonic clock; only items whose task is running
            started: dict[int, float] = {}
            while pending:
                if stop.is_set():
                    for ref in pending:
                        ray.cancel(ref)
                    return
                deadlines = [item_deadline(began[n], started.get(n), options.item_timeout_s) for n in began]
                wait_s = min([_POLL_S, *(deadline - time.monotonic() for deadline in deadlines)])
                ready, _ = ray.wait(list(pending), num_returns=min(len(pending), 64), timeout=max(0.0, wait_s))
                for ref in ready:
                    n = pending.pop(ref)
                    began.pop(n, None)
                    started.pop(n, None)
                    yield n, _result(ray, ref, items[n], options.max_retries)
                _read_clock(ray, clock, pending.values(), began, started)
                now = time.monotonic()
                for n in [n for n in began if item_deadline(began[n], started.get(n), options.item_timeout_s) <= now]:
                    ray.cancel(refs[n], force=True, recursive=False)  # kills the Ray worker process running it
                    del pending[refs[n]], began[n]
                    started.pop(n, None)
                    yield n, timed_out_result(items[n], options.item_timeout_s)
        finally:
            clock.shutdown(force=True)
    finally:
        if started_here:
            ray.shutdown()


def init_local_ray(ray, num_cpus: int) -> None:
    """Start a private Ray instance: its services on the loopback address only, no usage statistics sent.

    A farm node's local instance must be reachable from nowhere else, and nothing may phone home (Ray
    reports usage statistics by default). :func:`_private_ray_environment` must have run before ``import ray``.
    """
    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, _node_ip_address=_LOOPBACK)


def _private_ray_environment() -> None:
    """Environment a private Ray instance needs, set before Ray is imported (it reads some at import).

    ``RAY_USAGE_STATS_ENABLED=0`` turns off usage reporting (the driver and the services Ray spawns read it).
    Ray resolves a loopback ``_node_ip_address`` to the machine's routable address unless clustering is off
    (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, its single-machine mode), so that is set too. A value the user
    set is kept.
    """
    for name, value in _PRIVATE_RAY_ENVIRONMENT.items():
        os.environ.setdefault(name, value)


def _result(ray, ref, item: InputItem, max_retries: int) -> ItemResult:
    """The task's ItemResult, or a failed one when Ray could not run it to the end."""
    try:
        return ray.get(ref)
    except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.OutOfMemoryError) as exc:
        error: Exception = WorkerLostError(
            f"the Ray worker rigging it was lost {max_retries + 1} times ({type(exc).__name__})", item.path
        )
    except ray.exceptions.RayError as exc:
        error = exc
    return ItemResult.failure(str(item.path), str(item.relative), item.content_hash, error)


def _read_clock(ray, clock: Any, pending: Any, began: dict[int, float], started: dict[int, float]) -> None:
    """Apply the tasks' notes queued on ``clock`` since the last call, timed now on this process's clock.

    Notes of items no longer ``pending`` (finished or timed out meanwhile) are dropped. A lost clock actor (its
    node died) costs only the notes it held: it is restarted, and items already noted keep their deadlines.
    """
    try:
        count = clock.qsize()
        notes = clock.get_nowait_batch(count) if count else []
    except ray.exceptions.RayError as exc:
        log.warning("could not read the Ray tasks' start times (%s); trying again", exc)
        return
    now, running = time.monotonic(), set(pending)
    for n, event in notes:
        if n not in running:
            continue
        if event == _BEGAN:  # a first run, or a retry after its worker was lost: timed afresh
            began[n] = now
            started.pop(n, None)
        else:
            began.setdefault(n, now)
            started[n] = now


def _gpus_per_task(options: BatchOptions, cluster_gpus: float) -> float:
    if options.ray_gpus_per_task is not None:
        return options.ray_gpus_per_task
    return 1.0 if options.device.lower() in ("auto", "cuda") and cluster_gpus > 0 else 0.0


# Ray worker processes only: Workers loaded by earlier tasks of this process, by (options, OUTDIR, GPU or not).
_RAY_WORKERS: dict[tuple[BatchOptions, Path, bool], Worker] = {}


def _rig_on_ray(
    options: BatchOptions, outdir: Path, item: InputItem, use_gpu: bool, clock: Any, position: int
) -> ItemResult:
    _note(clock, position, _BEGAN)
    worker = _ray_worker(options, outdir, use_gpu)
    _note(clock, position, _STARTED)
    return worker.rig(item)


def _note(clock: Any, position: int, event: str) -> None:
    """Queue ``(position, event)`` on the clock actor; a lost clock costs the item its deadline, never its rig."""
    import ray

    try:
        ray.get(clock.put_nowait.remote((position, event)))
    except ray.exceptions.RayError as exc:
        log.warning("could not note the item's start for --item-timeout (%s)", exc)


def _ray_worker(options: BatchOptions, outdir: Path, use_gpu: bool) -> Worker:
    key = (options, outdir, use_gpu)
    if key not in _RAY_WORKERS:
        # Ray makes the task's reserved GPU the only visible one; "auto" without a reserved GPU stays on the
        # CPU rather than share a GPU nobody reserved.
        requested = "cpu" if options.device.lower() == "auto" and not use_gpu else options.device
        threads = max(1, int(options.ray_cpus_per_task))
        _RAY_WORKERS[key] = Worker.start(options, outdir, worker_device(requested, 0), threads)
    return _RAY_WORKERS[key]
