"""Training: dataset builder, losses (:mod:`facerig.trainer.losses`) and the two-stage trainer."""
