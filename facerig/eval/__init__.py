"""Measuring rigs: accuracy against ground truth, checks on one rig, and the reader of built datasets.

Modules: ``evaluate`` (:func:`evaluate` on a dataset split, :func:`evaluate_rigs` on a user's rigged heads: error
tables per method and region), ``rig_checks`` (:func:`suspicious_shapes`: shapes that move off the face, bend
rigid parts or do nothing) and ``datasets`` (reading the dataset format :mod:`facerig.trainer.dataset` writes;
evaluation, the trainer and benchmarks read it, so it lives here and inference never imports the trainer).
"""
