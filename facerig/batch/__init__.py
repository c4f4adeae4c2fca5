"""Batch rigging for render farms: ``run_batch(inputs, outdir, options) -> BatchReport``.

    from facerig.batch import BatchOptions, Shard, run_batch
    report = run_batch(["heads/"], "rigs/", BatchOptions(formats=("usd",), workers=4, shard=Shard(2, 8)))
    print(report.summary()); sys.exit(report.exit_code)

Modules: ``options`` (BatchOptions, Shard), ``discover`` (which files, in which order, output names),
``manifest`` (resume records), ``worker`` (rig and write one item), ``runner`` (run_batch and the local
process pool), ``ray_backend`` (Ray tasks), ``progress`` (bar / log lines), ``report`` (results, JSON, summary).
"""

from facerig.batch.options import Backend, BatchOptions, Shard
from facerig.batch.report import BatchReport, ItemResult, ItemStatus

__all__ = ["Backend", "BatchOptions", "BatchReport", "ItemResult", "ItemStatus", "Shard", "run_batch"]


def __getattr__(name: str):
    # The runner imports torch (its workers rig); loading it on first use keeps `facerig --help` fast.
    if name == "run_batch":
        from facerig.batch.runner import run_batch

        return run_batch
    raise AttributeError(f"module 'facerig.batch' has no attribute {name!r}")
