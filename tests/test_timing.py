"""Timing statistics against closed forms, and the warm-up and stopping rules on a synthetic clock."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.timing import HARD_MIN_REPS, measure, relative_standard_error, summarize


def test_summary_of_1_to_100_ms() -> None:
    samples = [float(i) for i in range(1, 101)]
    stats = summarize(samples)
    assert stats["reps"] == 100
    assert stats["median_ms"] == 50.5
    assert stats["mean_ms"] == 50.5
    # Linear interpolation at rank 0.1·99 = 9.9: 10 + 0.9·(11 − 10).
    assert stats["p10_ms"] == pytest.approx(10.9, abs=1e-12)
    assert stats["p90_ms"] == pytest.approx(90.1, abs=1e-12)
    # Sample std of 1..n: sqrt(n(n+1)/12) = sqrt(841.6̅).
    assert stats["std_ms"] == pytest.approx(math.sqrt(100 * 101 / 12), rel=1e-12)
    assert stats["cv"] == pytest.approx(math.sqrt(100 * 101 / 12) / 50.5, rel=1e-12)


def test_summary_edge_cases() -> None:
    assert summarize([2.0])["std_ms"] == 0.0 and summarize([2.0])["median_ms"] == 2.0
    assert summarize([])["reps"] == 0 and math.isnan(summarize([])["median_ms"])
    assert relative_standard_error([1.0]) == math.inf


class SyntheticClock:
    """A clock that advances only when the timed function runs, by scheduled durations (ms)."""

    def __init__(self, durations_ms: list[float], then_ms: float) -> None:
        self.now_ns = 0
        self.durations = list(durations_ms)
        self.then_ms = then_ms
        self.calls = 0

    def clock_ns(self) -> int:
        return self.now_ns

    def run(self) -> None:
        self.calls += 1
        duration = self.durations.pop(0) if self.durations else self.then_ms
        self.now_ns += int(duration * 1e6)


def no_phase(name: str) -> None:
    pass


def test_warmup_stops_when_two_consecutive_calls_agree_and_compile_time_is_apart() -> None:
    # A 900 ms compile, a 30 ms autotune, then a steady 10 ms (10.5 first: within 10% of 10).
    clock = SyntheticClock([900.0, 40.0, 10.5, 10.0], then_ms=10.0)
    timing = measure(clock.run, "cpu", clock_ns=clock.clock_ns, on_measure=no_phase, budget_s=1.0, min_reps=10)
    assert timing.warmup_calls == 4
    assert timing.warmup_ms == [900.0, 40.0, 10.5, 10.0]
    assert set(timing.samples_ms) == {10.0}  # warm-up never in the statistics
    # Excess of the warm-up over steady state: 890 + 30 + 0.5 + 0 ms.
    assert timing.compile_s == pytest.approx(0.9205, abs=1e-9)
    assert timing.timer == "host"


def test_reps_stop_once_the_estimate_is_tight() -> None:
    # Alternating 9/11 ms: cv ≈ 0.1, so the standard error of the mean falls below 0.5% once
    # 0.1/sqrt(n) <= 0.005, i.e. n >= 400 reps; the budget (100 s) is not the limit here.
    pattern = [9.0, 11.0] * 1000
    clock = SyntheticClock([10.0, 10.0, *pattern], then_ms=10.0)
    timing = measure(
        clock.run, "cpu", clock_ns=clock.clock_ns, on_measure=no_phase, budget_s=100.0, min_reps=10, max_reps=10_000
    )
    n = timing.to_row()["reps"]
    assert relative_standard_error(timing.samples_ms) <= 0.005
    assert 400 <= n <= 425  # checked after each round of at most 25 reps
    assert abs(np.mean(timing.samples_ms) - 10.0) < 0.01


def test_budget_bounds_the_reps_but_never_below_three() -> None:
    # 400 ms per call and a 1 s budget: 3 reps (the hard minimum), not min_reps.
    clock = SyntheticClock([], then_ms=400.0)
    timing = measure(clock.run, "cpu", clock_ns=clock.clock_ns, on_measure=no_phase, budget_s=1.0, min_reps=10)
    assert timing.to_row()["reps"] == HARD_MIN_REPS
    assert timing.warmup_calls == 2  # 400 and 400 agree at once


def test_warmup_is_bounded_when_calls_never_agree() -> None:
    noisy = [10.0, 20.0] * 50
    clock = SyntheticClock(noisy, then_ms=10.0)
    timing = measure(
        clock.run, "cpu", clock_ns=clock.clock_ns, on_measure=no_phase, warmup_max_calls=6, budget_s=0.5, min_reps=3
    )
    assert timing.warmup_calls == 6


def test_setup_runs_before_each_rep_outside_the_timing() -> None:
    clock = SyntheticClock([], then_ms=5.0)
    setups: list[int] = []
    timing = measure(
        clock.run,
        "cpu",
        setup=lambda: setups.append(clock.calls),
        clock_ns=clock.clock_ns,
        on_measure=no_phase,
        budget_s=0.1,
        min_reps=3,
    )
    assert len(setups) == clock.calls  # once per call, warm-up included
    assert set(timing.samples_ms) == {5.0}


def test_measure_reports_the_measure_phase_once() -> None:
    phases: list[str] = []
    clock = SyntheticClock([], then_ms=1.0)
    measure(clock.run, "cpu", clock_ns=clock.clock_ns, on_measure=phases.append, budget_s=0.01, min_reps=3)
    assert phases == ["measure"]


def test_timer_choice_is_checked() -> None:
    with pytest.raises(ValueError, match="needs a CUDA device"):
        measure(lambda: None, "cpu", timer="cuda_event")
    with pytest.raises(ValueError, match="unknown timer"):
        measure(lambda: None, "cpu", timer="sundial")


def test_real_host_clock_measures_a_known_sleep() -> None:
    import time

    timing = measure(lambda: time.sleep(0.002), "cpu", on_measure=no_phase, budget_s=0.05, min_reps=5)
    assert timing.median_ms >= 2.0  # sleep never returns early
    assert timing.median_ms < 50.0


def test_every_preset_timing_key_is_an_option_of_measure() -> None:
    import inspect

    from harness.timing import PRESET_TIMING_KEYS, measure

    assert PRESET_TIMING_KEYS <= set(inspect.signature(measure).parameters)
