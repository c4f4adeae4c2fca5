"""`run_batch`: discover the inputs, skip what is finished, rig the rest, record each item, write the report.

The local backend lives here too: a pool of ``spawn``-ed worker processes, each loading the model once (in
its initializer) and rigging one item at a time. Running every item in a child process, even with one
worker, means a crash in native code or an out-of-memory kill costs that item (retried up to
``max_retries`` times in a fresh pool), never the batch.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import threading
import time
from collections import Counter, deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

from facerig.batch.discover import InputItem, discover, select_shard
from facerig.batch.manifest import Manifest, item_key, outdir_lock
from facerig.batch.options import BatchOptions
from facerig.batch.progress import Progress
from facerig.batch.report import BatchReport, ItemResult, ItemStatus
from facerig.batch.worker import Worker, WorkerLostError, cpu_count, item_deadline, timed_out_result, worker_device
from facerig.errors import BatchError
from facerig.nn.model import PackagedModel, default_model_path
from facerig.rigging.rig_and_write import prepare_outdir, uses_model
from facerig.vocabulary import load_vocabulary

# Thread-count variables of the BLAS/OpenMP runtimes numpy, scipy and torch use; read once when a process
# loads them, so they must be in the environment a worker process starts with.
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# OpenMP threads that spin while waiting turn any oversubscription (other jobs on a farm node) into a rout:
# on a busy 2-core machine the network phase of a 2k-vertex head took 4-14 s with 2 spinning threads and
# 0.7 s with passive ones. Users who set the policy themselves keep theirs.
_DEFAULT_WAIT_POLICY = "PASSIVE"
_POLL_S = 0.25


def run_batch(
    inputs: Sequence[str | Path], outdir: str | Path, options: BatchOptions | None = None
) -> BatchReport:
    """Rig every mesh found in ``inputs`` into ``outdir``, mirroring the input folders.

    For each input ``<rel>/<name>.<ext>`` it writes ``outdir/<rel>/<name>.facerig.npz`` and one file per
    ``options.formats``. Bad inputs are recorded and skipped over; the report says what happened to each.

    Args:
        inputs: mesh files and folders (searched recursively; see :mod:`facerig.batch.discover`).
        outdir: output root, created if needed; it also holds the resume records (``.facerig-batch/``)
            and, unless ``options.report`` says otherwise, the JSON report.
        options: see :class:`BatchOptions`.

    Returns:
        The report, also written as JSON; ``report.exit_code`` is 1 when any item failed.

    Raises:
        BatchError: an input does not exist. ModelError / VocabularyError: the model or pose file is
            unusable (checked before any work starts). KeyboardInterrupt: after the report of what finished
            has been written.
    """
    options = options or BatchOptions()
    outdir = prepare_outdir(outdir)
    with outdir_lock(outdir, options.shard):
        return _run_locked(inputs, outdir, options)


def _run_locked(inputs: Sequence[str | Path], outdir: Path, options: BatchOptions) -> BatchReport:
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    clock = time.perf_counter()

    # Loading the model here checks it before any worker starts, so a bad --model is one clear error.
    model_info = {"id": "", "name": ""}
    vocabulary_id = load_vocabulary(options.poses).id
    if uses_model(options.method):
        model = PackagedModel.load(options.model or default_model_path(), device="cpu")
        model_info = {"id": model.model_id, "name": model.name}
        fingerprint = options.output_fingerprint(model.model_id, vocabulary_id, model.rig_settings)
    else:
        fingerprint = options.output_fingerprint("", vocabulary_id)
    items = select_shard(discover(inputs, outdir, options), options.shard)
    manifest = Manifest(outdir)
    keys = [item_key(item, fingerprint) for item in items]

    results: list[ItemResult | None] = [None] * len(items)
    todo: list[int] = []
    for n, item in enumerate(items):
        record = manifest.finished(item, keys[n]) if options.resume and item.problem is None else None
        if item.problem is not None:
            results[n] = _failed(item, BatchError(item.problem, item.path))
        elif record is not None:
            results[n] = _skipped(item, record)
        else:
            todo.append(n)

    stop = threading.Event()  # set on --fail-fast's first failure: backends finish what runs, start nothing new
    if options.fail_fast and any(result is not None and result.status == ItemStatus.FAILED for result in results):
        stop.set()
    backend = _backend(options.backend)
    try:
        with Progress(len(todo), options.progress, options.progress_interval_s) as progress:
            if todo and not stop.is_set():
                with contextlib.closing(backend([items[n] for n in todo], outdir, options, stop)) as finished:
                    for position, result in finished:
                        n = todo[position]
                        results[n] = result
                        if result.status == ItemStatus.DONE:
                            manifest.write(items[n], keys[n], result)
                        progress.advance(result)
                        if result.status == ItemStatus.FAILED and options.fail_fast:
                            stop.set()
    finally:  # also on KeyboardInterrupt: the report says what finished
        report = BatchReport(
            outdir=str(outdir),
            model=model_info,
            options=options.to_dict(),
            items=[result or _cancelled(item) for item, result in zip(items, results)],
            started_at=started_at,
            wall_s=time.perf_counter() - clock,
        )
        report.write(options.report or outdir / _report_name(options))
    return report


# ------------------------------------------------------------------------------------------- local backend
def run_local(
    items: Sequence[InputItem], outdir: Path, options: BatchOptions, stop: threading.Event
) -> Iterator[tuple[int, ItemResult]]:
    """Rig ``items`` in ``options.workers`` spawned processes; yield (position in items, result) as they finish.

    Torch and BLAS threads per worker are ``options.threads_per_worker`` or cores // workers, so the workers
    together do not oversubscribe the cores. CUDA devices are dealt round-robin over the workers.
    """
    workers = max(1, min(options.workers, len(items)))
    threads = options.threads_per_worker or max(1, cpu_count() // workers)
    context = multiprocessing.get_context("spawn")  # fork would copy the parent's torch threads and locks
    counter = context.Value("i", 0)  # hands each new worker process its number (for its CUDA device)
    # When a worker starts each item (monotonic seconds; 0: not yet): the item's timeout runs from then.
    started = context.Array("d", len(items), lock=False)
    queue = deque(range(len(items)))
    crashes: Counter[int] = Counter()
    environment = {name: str(threads) for name in _THREAD_VARIABLES}
    environment["OMP_WAIT_POLICY"] = os.environ.get("OMP_WAIT_POLICY", _DEFAULT_WAIT_POLICY)
    with _environment(environment):
        while queue and not stop.is_set():
            pool = ProcessPoolExecutor(
                workers, mp_context=context, initializer=_init_process, initargs=(options, outdir, counter, started, threads)
            )
            try:
                yield from _drain(pool, workers, items, queue, crashes, options, stop, started)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)


def _drain(
    pool: ProcessPoolExecutor,
    workers: int,
    items: Sequence[InputItem],
    queue: deque[int],
    crashes: Counter[int],
    options: BatchOptions,
    stop: threading.Event,
    started: Any,
) -> Iterator[tuple[int, ItemResult]]:
    """Feed ``pool`` from ``queue`` (one item per worker) until it is empty, stopped or broken.

    When a worker process dies the pool breaks and every item in flight fails with it; those items go back
    to the front of the queue (up to ``max_retries`` times each) for the caller's next pool, so only the item
    that keeps killing its worker ends up failed. An item still running ``item_timeout_s`` after its worker
    started it (``started[n]``, written by the worker) fails as timed out: the pool's processes are killed (a
    hung native call cannot be interrupted otherwise) and the other items in flight go back to the queue without
    counting as crashes. A worker's start-up (importing torch, loading the model) is not the item's time (see
    :func:`~facerig.batch.worker.item_deadline`).
    Only one item per worker is in flight, so an item waits for no other before it starts.
    """
    in_flight: dict[Future, int] = {}
    submitted: dict[int, float] = {}
    timed_out: set[int] = set()
    broken = False
    while True:
        while queue and not broken and not stop.is_set() and len(in_flight) < workers:
            n = queue.popleft()
            started[n] = 0.0
            try:
                future = pool.submit(_rig_in_process, n, items[n])
            except BrokenProcessPool:
                queue.appendleft(n)
                broken = True
                break
            in_flight[future], submitted[n] = n, time.monotonic()
        if stop.is_set():
            for future in in_flight:
                future.cancel()  # only those not started yet; running ones finish and are reported
        if not in_flight:
            return
        def deadline(n: int) -> float:
            return item_deadline(submitted[n], started[n] if started[n] > 0 else None, options.item_timeout_s)

        # Wake at the next deadline, and at least every _POLL_S: a worker starting an item moves its deadline.
        next_deadline = min(map(deadline, in_flight.values()))
        done, _ = wait(in_flight, timeout=min(_POLL_S, max(0.0, next_deadline - time.monotonic())),
                       return_when=FIRST_COMPLETED)
        if not done:
            # A worker may have started an item while we waited, moving its deadline: judge each one afresh.
            overdue = {n for n in in_flight.values() if deadline(n) <= time.monotonic()}
            if overdue and not timed_out:
                timed_out |= overdue
                _kill_workers(pool)
                broken = True
            continue
        for future in done:
            n = in_flight.pop(future)
            if future.cancelled():
                continue
            item = items[n]
            try:
                result = future.result()
            except BrokenProcessPool:
                broken = True
                if n in timed_out:
                    result = timed_out_result(item, options.item_timeout_s)
                elif timed_out:  # its worker was killed for another item's timeout: run it again
                    queue.appendleft(n)
                    continue
                else:
                    crashes[n] += 1
                    if crashes[n] <= options.max_retries:
                        queue.appendleft(n)
                        continue
                    result = _failed(item, WorkerLostError(
                        f"the worker process died while rigging it, {crashes[n]} times (a crash in native code, "
                        "or out of memory: try a lower --max-vertices)", item.path))
            except Exception as exc:  # the result could not come back (e.g. not picklable): record it
                result = _failed(item, exc)
            yield n, result


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    """SIGKILL every worker process of ``pool`` (the executor has no public way to stop one running call)."""
    for process in list(pool._processes.values()):  # noqa: SLF001
        process.kill()


# Worker processes only: the Worker loaded by the initializer, used by every item this process rigs, and the
# shared array where it notes when it starts each item.
_PROCESS_WORKER: Worker | None = None
_PROCESS_STARTED: Any = None


def _init_process(options: BatchOptions, outdir: Path, counter: Any, started: Any, threads: int) -> None:
    global _PROCESS_WORKER, _PROCESS_STARTED
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    _exit_with_parent()
    _PROCESS_STARTED = started
    _PROCESS_WORKER = Worker.start(options, outdir, worker_device(options.device, index), threads)


def _rig_in_process(position: int, item: InputItem) -> ItemResult:
    if _PROCESS_WORKER is None or _PROCESS_STARTED is None:
        raise RuntimeError("worker process used before its initializer ran")
    _PROCESS_STARTED[position] = time.monotonic()  # the same system-wide clock the parent reads
    return _PROCESS_WORKER.rig(item)


def _exit_with_parent() -> None:
    """End this worker when its parent dies (e.g. SIGKILLed by a farm scheduler) instead of lingering."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)  # unfinished outputs are temp files; the next run removes them

    threading.Thread(target=watch, name="facerig-parent-watch", daemon=True).start()


# ------------------------------------------------------------------------------------------------- helpers
def _backend(name: str):
    if name == "ray":
        from facerig.batch.ray_backend import run_ray

        return run_ray
    return run_local


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the child processes started inside the block; restore them after.

    The parent has loaded its own BLAS already, so this changes only the children it spawns meanwhile.
    """
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _report_name(options: BatchOptions) -> str:
    shard = f".shard{options.shard.index}of{options.shard.count}" if options.shard else ""
    return f"batch-report{shard}.json"


def _failed(item: InputItem, exc: BaseException) -> ItemResult:
    return ItemResult.failure(str(item.path), str(item.relative), item.content_hash, exc)


def _skipped(item: InputItem, record: dict[str, Any]) -> ItemResult:
    return ItemResult(
        input=str(item.path),
        relative=str(item.relative),
        status=ItemStatus.SKIPPED,
        content_hash=item.content_hash,
        vertices=record.get("vertices"),
        outputs=[output["path"] for output in record["outputs"]],
        worker=record.get("worker"),
    )


def _cancelled(item: InputItem) -> ItemResult:
    return ItemResult(str(item.path), str(item.relative), ItemStatus.CANCELLED, item.content_hash)
