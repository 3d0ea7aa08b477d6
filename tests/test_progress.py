"""The time left per suite: expected seconds from earlier times, corrected by the run's own pace (fake clocks)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from harness.progress import (
    DEFAULT_JOB_S,
    Eta,
    PlannedJob,
    expected_seconds,
    minutes_text,
    previous_job_seconds,
)
from harness.results import write_rows
from tests.test_report_synthetic import throughput_rows


class FakeClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


JOBS = [PlannedJob(f"t{i}", "throughput") for i in range(4)] + [PlannedJob(f"m{i}", "memory") for i in range(2)]


def test_expected_seconds_prefer_the_job_then_its_suite_then_the_default() -> None:
    previous = {"t0": ("throughput", 10.0), "t9": ("throughput", 30.0), "x": ("throughput", 20.0)}
    # t0: its own 10 s; t1-t3: the median of the throughput times (10, 30, 20) = 20; memory: the default.
    expected = expected_seconds(JOBS, previous)
    assert expected == [10.0, 20.0, 20.0, 20.0, DEFAULT_JOB_S["memory"], DEFAULT_JOB_S["memory"]]


def test_time_left_per_suite_counts_every_job_before_its_last_one() -> None:
    clock, wall = FakeClock(), FakeClock(1_800_000_000.0)
    eta = Eta(JOBS, [10.0, 10.0, 10.0, 10.0, 30.0, 30.0], clock=clock, wall=wall)
    assert eta.seconds_left("throughput") == 40.0
    assert eta.seconds_left("memory") == 100.0  # it ends after the throughput jobs
    clock.now = 20.0  # the first job took 20 s, twice its 10 expected: the rest is scaled by 2
    eta.done("t0")
    assert eta.pace() == 2.0
    assert eta.seconds_left("throughput") == 2 * 30.0
    assert eta.seconds_left("memory") == 2 * 90.0
    at = datetime.fromtimestamp(wall.now + 60.0).strftime("%H:%M")
    assert eta.line("throughput") == f"[throughput 1/4, ~1 min left, stage ETA {at}]"
    for job in JOBS[1:4]:
        eta.done(job.job_id)
    assert eta.line("throughput") == "[throughput 4/4, done]"


def test_no_correction_until_enough_has_finished() -> None:
    clock = FakeClock()
    eta = Eta(JOBS, [1.0] * 6, clock=clock)
    clock.now = 100.0  # one job of 1 s expected took 100 s (a compile): not yet a pace
    eta.done("t0")
    assert eta.pace() == 1.0 and eta.seconds_left("memory") == 5.0


@pytest.mark.parametrize(("seconds", "text"), [(0.2, "~1 s"), (42, "~42 s"), (240, "~4 min"), (9000, "~2.5 h")])
def test_minutes_text(seconds: float, text: str) -> None:
    assert minutes_text(seconds) == text


def test_previous_job_seconds_reads_job_wall_s_and_skips_missing_folders(tmp_path: Path) -> None:
    rows = throughput_rows("run-a", seed=1)
    for i, row in enumerate(rows):
        row["job_wall_s"] = float(i)
    write_rows(rows, tmp_path / "results", "run-a")
    found = previous_job_seconds([tmp_path / "results", tmp_path / "absent"])
    assert found == {row["job_id"]: ("throughput", float(i)) for i, row in enumerate(rows)}


def test_nox_stage_estimates_come_from_the_last_run_else_the_fresh_h200(tmp_path: Path) -> None:
    import time

    import noxfile

    path = noxfile.stage_times_path(str(tmp_path / "results"))
    assert path == tmp_path / "results-logs" / "stage-times.json"
    assert noxfile.earlier_stage_times(path) == {}  # a first run
    now = 1_800_000_000.0
    at = time.strftime("%H:%M", time.localtime(now + 195.0))
    line = noxfile.stage_eta_line("check", {}, cuda=True, now=now)
    assert line == f"stage check: ~3 min expected (a fresh H200), ETA {at}"
    assert "no earlier time" in noxfile.stage_eta_line("check", {}, cuda=False, now=now)
    noxfile.record_stage_time(path, "check", 42.04)
    noxfile.record_stage_time(path, "install", 7.0)
    earlier = noxfile.earlier_stage_times(path)
    assert earlier == {"check": 42.0, "install": 7.0}
    at = time.strftime("%H:%M", time.localtime(now + 42.0))
    line = noxfile.stage_eta_line("check", earlier, cuda=True, now=now)
    assert line == f"stage check: ~42 s expected (this results folder's last run), ETA {at}"
