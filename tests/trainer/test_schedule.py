"""The learning-rate schedule: warm-up, then one cosine period to nearly 0 (seed appendix A)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from facerig.errors import ConfigError
from facerig.trainer.schedule import build_scheduler, lr_at

BASE = 1e-4
ETA_MIN = 1e-8


def _torch_rates(total: int, warmup: int) -> list[float]:
    """The rate the optimizer actually uses at each step, driven like the trainer drives it."""
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([parameter], lr=BASE)
    scheduler = build_scheduler(optimizer, total_steps=total, warmup_steps=warmup, eta_min=ETA_MIN)
    rates = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SequentialLR's internal step(0) deprecation notice
        for _ in range(total):
            rates.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
    return rates


def test_paper_numbers_at_landmark_steps() -> None:
    """Seed: lr 1e-4, 20,000 warm-up steps, CosineAnnealingWarmRestarts decaying to nearly 0 by the end."""
    total, warmup = 100_000, 20_000
    at = lambda step: lr_at(step, base_lr=BASE, total_steps=total, warmup_steps=warmup, eta_min=ETA_MIN)  # noqa: E731
    assert at(0) == pytest.approx(BASE / warmup)
    assert at(9_999) == pytest.approx(BASE / 2)  # half-way up the ramp
    assert at(19_999) == pytest.approx(BASE)  # warm-up ends at the base rate ...
    assert at(20_000) == pytest.approx(BASE)  # ... where the cosine starts
    assert at(60_000) == pytest.approx((BASE + ETA_MIN) / 2)  # half-way down the cosine
    assert at(total - 1) < 1e-3 * BASE  # nearly 0 at the last step
    assert at(total - 1) >= ETA_MIN
    assert at(total) == ETA_MIN  # no warm restart after the end


@pytest.mark.parametrize(("total", "warmup"), [(50, 10), (37, 1), (20, 0)])
def test_pure_function_matches_the_torch_schedulers_at_every_step(total: int, warmup: int) -> None:
    rates = _torch_rates(total, warmup)
    expected = [lr_at(s, base_lr=BASE, total_steps=total, warmup_steps=warmup, eta_min=ETA_MIN) for s in range(total)]
    for step, (got, want) in enumerate(zip(rates, expected)):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-15), f"step {step}"


def test_warmup_is_linear_and_cosine_is_monotone() -> None:
    total, warmup = 200, 40
    rates = [lr_at(s, base_lr=BASE, total_steps=total, warmup_steps=warmup, eta_min=ETA_MIN) for s in range(total)]
    ramps = [b - a for a, b in zip(rates[:warmup], rates[1:warmup])]
    assert all(math.isclose(r, BASE / warmup, rel_tol=1e-9) for r in ramps)
    assert all(b <= a for a, b in zip(rates[warmup:], rates[warmup + 1 :]))


@pytest.mark.parametrize(("total", "warmup"), [(10, 10), (10, 11), (0, 0), (10, -1)])
def test_schedule_without_a_decay_phase_is_a_config_error(total: int, warmup: int) -> None:
    with pytest.raises(ConfigError, match="warmup_steps"):
        lr_at(0, base_lr=BASE, total_steps=total, warmup_steps=warmup, eta_min=ETA_MIN)
