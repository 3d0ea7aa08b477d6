"""How long a run has left, per suite: `[throughput 37/120, ~4 min left, stage ETA 14:52]`.

Each job's expected seconds come from something measured: its `job_wall_s` in earlier results with the
same job id (the results folder being written, a committed baseline given with `--eta-from`), else the
median of the earlier jobs of its suite, else a per-suite default (DEFAULT_JOB_S). The expectation is
then corrected by how this run compares: once some jobs have finished, the time left is scaled by their
actual over their expected seconds, so a faster or slower machine than the one that left the times (or
cold caches) is followed as the run goes.

Jobs run in the order given (one worker at a time: the local executor on one GPU, or the references on
a CPU). A suite's stage ends with its last job in that order, so its ETA counts every job before that one,
of whatever suite; with several workers the estimates are upper bounds.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

# Mean job wall time per suite in the committed H100 baseline (baselines/h100, one value per job id):
# what a job of a suite costs when nothing better is known.
DEFAULT_JOB_S: Mapping[str, float] = {"throughput": 1.4, "memory": 1.9, "profile": 3.1, "recall": 20.0}
UNKNOWN_SUITE_JOB_S = 2.0
# The correction by this run's own pace starts after this many expected seconds of finished jobs (one
# job's compile time alone would otherwise swing the estimate).
CALIBRATE_AFTER_S = 10.0


@dataclass(frozen=True)
class PlannedJob:
    job_id: str
    suite: str


def previous_job_seconds(paths: Iterable[Path]) -> dict[str, tuple[str, float]]:
    """job id -> (suite, job_wall_s) of the latest ok-or-not row of each job in the results under `paths`
    (missing folders are skipped: a first run has none)."""
    from harness.results import read_results

    found: dict[str, tuple[str, float]] = {}
    for path in paths:
        if not Path(path).exists():
            continue
        frame = read_results(path)
        if frame.empty or not {"job_id", "suite", "job_wall_s"} <= set(frame.columns):
            continue
        if "timestamp" in frame.columns:
            frame = frame.sort_values("timestamp", kind="stable")
        for job_id, suite, seconds in zip(frame["job_id"], frame["suite"], frame["job_wall_s"], strict=True):
            if isinstance(seconds, int | float) and math.isfinite(seconds) and seconds >= 0:
                found[str(job_id)] = (str(suite), float(seconds))
    return found


def expected_seconds(jobs: Sequence[PlannedJob], previous: Mapping[str, tuple[str, float]]) -> list[float]:
    """Each job's expected seconds: its own earlier time, else its suite's earlier median, else the default."""
    per_suite: dict[str, list[float]] = {}
    for suite, seconds in previous.values():
        per_suite.setdefault(suite, []).append(seconds)
    suite_median = {suite: statistics.median(times) for suite, times in per_suite.items()}
    out = []
    for job in jobs:
        if job.job_id in previous:
            out.append(previous[job.job_id][1])
        elif job.suite in suite_median:
            out.append(suite_median[job.suite])
        else:
            out.append(DEFAULT_JOB_S.get(job.suite, UNKNOWN_SUITE_JOB_S))
    return out


def minutes_text(seconds: float) -> str:
    """`~4 min`, `~40 s` under a minute, `~1.5 h` beyond two hours."""
    if seconds < 60:
        return f"~{max(seconds, 1):.0f} s"
    if seconds < 7200:
        return f"~{seconds / 60:.0f} min"
    return f"~{seconds / 3600:.1f} h"


@dataclass
class Eta:
    """The time left of each suite of a run, from the jobs' expected seconds and the run's own pace."""

    jobs: list[PlannedJob]
    expected: list[float]
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time  # for the clock time the stage ends at
    started: float = field(init=False)
    finished: set[str] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()
        self._index = {job.job_id: i for i, job in enumerate(self.jobs)}

    def done(self, job_id: str) -> None:
        self.finished.add(job_id)

    def pace(self) -> float:
        """Actual over expected seconds of the finished jobs (1 until enough have finished)."""
        expected_done = sum(self.expected[self._index[j]] for j in self.finished if j in self._index)
        if expected_done < CALIBRATE_AFTER_S:
            return 1.0
        return (self.clock() - self.started) / expected_done

    def seconds_left(self, suite: str) -> float:
        """Until the last job of `suite` (in run order) finishes: every unfinished job up to it."""
        positions = [i for i, job in enumerate(self.jobs) if job.suite == suite]
        if not positions:
            return 0.0
        last = positions[-1]
        left = sum(self.expected[i] for i in range(last + 1) if self.jobs[i].job_id not in self.finished)
        return left * self.pace()

    def line(self, suite: str) -> str:
        """`[throughput 37/120, ~4 min left, stage ETA 14:52]`; `[throughput 120/120, done]` at the end."""
        of_suite = [job for job in self.jobs if job.suite == suite]
        done = sum(job.job_id in self.finished for job in of_suite)
        if done == len(of_suite):
            return f"[{suite} {done}/{len(of_suite)}, done]"
        left = self.seconds_left(suite)
        at = datetime.fromtimestamp(self.wall() + left).strftime("%H:%M")
        return f"[{suite} {done}/{len(of_suite)}, {minutes_text(left)} left, stage ETA {at}]"
