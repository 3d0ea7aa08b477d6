"""Noise flags: wide spreads and busy hosts mark a timed row noisy, the throughput row carries the flag,
and the report says so."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from harness import noise
from harness.report import build_report
from tests.test_report_synthetic import throughput_rows


def test_thresholds() -> None:
    quiet = noise.noise_columns({"cv": 0.04, "p10_ms": 1.0, "p90_ms": 1.1}, 0.5, 0.7, 2)
    assert quiet["noisy"] is False and quiet["noise_reason"] == ""
    # The case: a small spread within the run, on a 2-core host with a load of 5.
    busy = noise.noise_columns({"cv": 0.04, "p10_ms": 60.0, "p90_ms": 64.0}, 5.1, 4.8, 2)
    assert busy["noisy"] is True and busy["noise_reason"] == "host busy: load average 5.1 on 2 CPU(s)"
    spread = noise.noise_columns({"cv": 0.3, "p10_ms": 1.0, "p90_ms": 2.0}, math.nan, math.nan, 2)
    assert spread["noise_reason"] == "cv 0.30 above 0.1; p90/p10 2.00 above 1.5"
    assert (spread["cpu_count"], math.isnan(spread["load_avg_before"])) == (2, True)


def test_a_throughput_row_measured_on_a_busy_host_is_flagged(monkeypatch: pytest.MonkeyPatch) -> None:
    from suites.throughput import measure_throughput

    monkeypatch.setattr(noise, "load_average", lambda: 64.0)
    monkeypatch.setattr(noise, "cpu_count", lambda: 2)
    config = {"d_model": 16, "n_heads": 2}
    timing = {"budget_s": 0.01, "min_reps": 3, "warmup_max_calls": 2}
    row = measure_throughput("attention/reference", "cpu", "float32", "fwd", "layer", 1, 16, config, timing)
    assert row["noisy"] is True and row["noise_reason"].endswith("host busy: load average 64.0 on 2 CPU(s)")
    assert (row["load_avg_before"], row["load_avg_after"], row["cpu_count"]) == (64.0, 64.0, 2)


def test_the_report_marks_noisy_rows(tmp_path) -> None:
    rows = throughput_rows("run-a")
    rows[0] |= {"noisy": True, "noise_reason": "host busy: load average 5.1 on 2 CPU(s)"}
    build_report(pd.DataFrame(rows), tmp_path / "site")
    page = (tmp_path / "site" / "throughput.html").read_text(encoding="utf-8")
    assert "1 of 25 row(s) flagged noisy" in page and "host busy: load average 5.1 on 2 CPU(s)" in page
