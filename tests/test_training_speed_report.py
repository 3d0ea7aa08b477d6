"""The recall page's training-speed table: step time, distance from the floor, speed-up over eager."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from harness.report.plots import Palette
from harness.report.training_speed import speed_plot, speed_table


def _row(implementation: str, mode: str, steps_per_s: float, **extra: object) -> dict:
    return {
        "implementation": implementation,
        "dtype": "float32",
        "status": "ok",
        "step_mode": mode,
        "steps_per_s": steps_per_s,
        "step_floor_ms": 0.5,
        "task": "mqar",
        "seq_len": 64,
        "eval_seq_len": 64,
        "batch": 512,
        "d_model": 64,
        "setting": mode,
        "first_step_s": 0.1,
        "step_mode_note": "",
        **extra,
    }


def test_speed_table_by_hand() -> None:
    rows = pd.DataFrame(
        [
            _row("attention/sdpa_efficient", "eager", 250.0),
            _row("attention/sdpa_efficient", "graph", 500.0),
            _row("mamba/mamba_ssm", "graph", 200.0),  # no eager row of its cell: no speed-up
            _row("attention/sdpa_efficient", "graph", 400.0, eval_seq_len=128),  # a longer test: not a speed
            _row("lstm/cudnn", "graph", 300.0, status="error"),
        ]
    )
    table = speed_table(rows)
    assert list(table["implementation"]) == ["attention/sdpa_efficient"] * 2 + ["mamba/mamba_ssm"]
    graph = table[(table["implementation"] == "attention/sdpa_efficient") & (table["step_mode"] == "graph")].iloc[0]
    assert graph["step_ms"] == pytest.approx(2.0)  # 1000 / 500
    assert graph["times_floor"] == pytest.approx(4.0)  # 2 ms over a 0.5 ms floor
    assert graph["speedup_vs_eager"] == pytest.approx(2.0)  # 500 / 250
    assert math.isnan(table[table["implementation"] == "mamba/mamba_ssm"].iloc[0]["speedup_vs_eager"])
    (plot,) = speed_plot(table, Palette(list(table["implementation"])))
    assert plot.png.startswith(b"\x89PNG") and len(plot.table) == 3


def test_rows_without_speed_columns_give_no_table() -> None:
    assert speed_table(pd.DataFrame([{"implementation": "a/b", "status": "ok"}])).empty
    assert speed_plot(speed_table(pd.DataFrame()), Palette([])) == []
