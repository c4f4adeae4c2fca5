"""RigTimings and the Stopwatch that fills it (facerig/timings.py)."""

from __future__ import annotations

import pytest

from facerig.timings import RigTimings, Stopwatch


def test_stopwatch_adds_up_a_step_timed_twice_and_totals_from_its_start() -> None:
    watch = Stopwatch()
    with watch("canonicalize"):
        sum(range(10_000))
    first = watch.timings().canonicalize
    with watch("canonicalize"):
        sum(range(10_000))
    with watch("network"):
        pass
    timings = watch.timings()
    assert timings.canonicalize > first > 0
    assert timings.total >= timings.canonicalize + timings.network
    assert timings.export == 0.0  # a step never timed stays 0


def test_stopwatch_times_a_step_that_raises_and_refuses_unknown_steps() -> None:
    watch = Stopwatch()
    with pytest.raises(KeyError):
        with watch("load"):
            raise KeyError("missing")
    assert watch.timings().load > 0
    with pytest.raises(ValueError, match="not a step"):
        with watch("netwrok"):
            pass
    with pytest.raises(ValueError, match="not a step"):
        with watch("total"):
            pass
    assert RigTimings.phases()[-1] == "total"
