"""Batch rigging for render farms: ``run_batch(inputs, outdir, options) -> BatchReport``.

    from facerig.batch import BatchOptions, Shard, run_batch
    report = run_batch(["heads/"], "rigs/", BatchOptions(formats=("usd",), workers=4, shard=Shard(2, 8)))
    print(report.summary()); sys.exit(report.exit_code)

Modules: ``options`` (BatchOptions, Shard), ``discover`` (which files, in which order, output names),
``manifest`` (resume records), ``worker`` (rig and write one item), ``runner`` (run_batch and the local
process pool), ``ray_backend`` (Ray tasks), ``progress`` (bar / log lines), ``report`` (results, JSON, summary).
"""

from facerig.batch.options import BatchOptions, Shard
from facerig.batch.report import BatchReport, ItemResult, ItemStatus
from facerig.batch.runner import run_batch

__all__ = ["BatchOptions", "BatchReport", "ItemResult", "ItemStatus", "Shard", "run_batch"]
