"""The learning-rate schedule of both stages (SPEC §5, seed appendix A).

Linear warm-up for ``warmup_steps`` optimizer steps, then one cosine period of
``CosineAnnealingWarmRestarts`` whose ``T_0`` is the remaining steps, so the rate falls from ``base_lr`` to
nearly ``eta_min`` at the stage's last step and never restarts. :func:`lr_at` is the schedule as a pure
function (for logging, plotting and tests); :func:`build_scheduler` is the same schedule as torch
schedulers, whose state goes into checkpoints. ``tests/trainer/test_schedule.py`` checks they agree.
"""

from __future__ import annotations

import math

import torch

from facerig.errors import ConfigError


def check_schedule(total_steps: int, warmup_steps: int) -> None:
    """Raise :class:`ConfigError` unless ``0 <= warmup_steps < total_steps`` (some steps must decay)."""
    if total_steps < 1 or not 0 <= warmup_steps < total_steps:
        raise ConfigError(
            f"learning-rate schedule needs 0 <= warmup_steps < total_steps, got warmup_steps={warmup_steps} "
            f"and total_steps={total_steps}"
        )


def lr_at(step: int, *, base_lr: float, total_steps: int, warmup_steps: int, eta_min: float) -> float:
    """Learning rate of optimizer step ``step`` (0-based) of a stage.

    1. warm-up, ``step < warmup_steps``: ``base_lr * (step + 1) / warmup_steps``, a straight line that
       reaches ``base_lr`` on the last warm-up step (never 0, so no step is wasted);
    2. cosine, ``t = step - warmup_steps`` of ``T_0 = total_steps - warmup_steps``:
       ``eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_0)) / 2``, from ``base_lr`` down to
       ``eta_min + O(1 / T_0^2)`` at the last step;
    3. past the end (``step >= total_steps``): ``eta_min``, rather than the warm restart torch would make.
    """
    check_schedule(total_steps, warmup_steps)
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if step >= total_steps:
        return eta_min
    t, period = step - warmup_steps, total_steps - warmup_steps
    return eta_min + (base_lr - eta_min) * (1.0 + math.cos(math.pi * t / period)) / 2.0


def build_scheduler(
    optimizer: torch.optim.Optimizer, *, total_steps: int, warmup_steps: int, eta_min: float
) -> torch.optim.lr_scheduler.LRScheduler:
    """The torch form of :func:`lr_at` for an optimizer whose groups start at ``base_lr``.

    Call ``scheduler.step()`` once after every ``optimizer.step()``; the rate of step ``s`` is then
    ``lr_at(s)`` for ``s < total_steps``.
    """
    check_schedule(total_steps, warmup_steps)
    cosine = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        optimizer, T_0=total_steps - warmup_steps, eta_min=eta_min
    )
    if warmup_steps == 0:
        return cosine
    # LinearLR's factor is start + (1 - start) * s / total_iters: (s + 1) / W with start = 1 / W, total_iters = W - 1.
    warmup = torch.optim.lr_scheduler.LinearLR(
        optimizer, start_factor=1.0 / warmup_steps, end_factor=1.0, total_iters=max(warmup_steps - 1, 1)
    )
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [warmup, cosine], milestones=[warmup_steps])
