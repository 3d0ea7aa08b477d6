"""The recall page's accuracy-against-state-size plot (harness/report/recall_state.py)."""

from __future__ import annotations

import pandas as pd
import pytest

from harness.report.plots import Palette
from harness.report.recall_state import state_size_plots, state_size_table


def _row(implementation: str, d_model: int, lr: float, seed: int, accuracy: float, state: float, **extra) -> dict:
    return {
        "task": "mqar",
        "implementation": implementation,
        "status": "ok",
        "seq_len": 64,
        "eval_seq_len": 64,
        "d_model": d_model,
        "lr": lr,
        "seed": seed,
        "accuracy": accuracy,
        "state_bytes_analytic": state,
        **extra,
    }


def test_state_size_table_is_mean_over_seeds_then_best_lr() -> None:
    rows = pd.DataFrame(
        [
            _row("mamba/mamba_ssm", 64, 1e-3, 0, 0.4, 1000.0),
            _row("mamba/mamba_ssm", 64, 1e-3, 1, 0.6, 1000.0),  # lr 1e-3: mean 0.5
            _row("mamba/mamba_ssm", 64, 1e-2, 0, 0.45, 1000.0),  # lr 1e-2: 0.45 -> best 0.5
            _row("mamba/mamba_ssm", 128, 1e-3, 0, 0.9, 2000.0),
            _row("mamba/mamba_ssm", 128, 1e-3, 0, 0.1, 2000.0, eval_seq_len=512),  # a longer test: left out
            _row("mamba/mamba_ssm", 256, 1e-3, 0, 0.95, 4000.0, status="oom"),  # failed: left out
        ]
    )
    table = state_size_table(rows)
    assert table["d_model"].tolist() == [64, 128]
    assert table["accuracy"].tolist() == pytest.approx([0.5, 0.9])
    assert table["state_bytes"].tolist() == [1000.0, 2000.0]
    (plot,) = state_size_plots(rows, Palette(["mamba/mamba_ssm"]))
    assert plot.png.startswith(b"\x89PNG") and len(plot.table) == 2


def test_one_width_per_mixer_draws_nothing() -> None:
    attention = _row("attention/sdpa_flash", 64, 1e-3, 0, 1.0, 5e5)
    rows = pd.DataFrame([attention, _row("mamba/mamba_ssm", 64, 1e-3, 0, 0.3, 1e3)])
    assert len(state_size_table(rows)) == 2 and state_size_plots(rows, Palette(["a/b"])) == []
    assert state_size_table(pd.DataFrame([{"implementation": "a/b", "status": "ok"}])).empty
