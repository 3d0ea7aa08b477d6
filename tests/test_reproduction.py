"""The report's reproduction table: published numbers beside ours, matched by task, family, lengths and
(for variants of one family) the preset cell's name, with verdicts against the bars; learning curves."""

from __future__ import annotations

import json
import math

import pandas as pd

from harness.report.references import normalise
from harness.report.reproduction import curve_points, learning_curves, reproduction_table, verdict
from suites.recall.references import REFERENCE_POINTS


def _row(implementation: str, accuracy: float, task: str = "selective-copying", seq_len: int = 4096, **extra):
    return {
        "status": "ok",
        "suite": "recall",
        "task": task,
        "implementation": implementation,
        "family": implementation.split("/")[0],
        "seq_len": seq_len,
        "eval_seq_len": extra.pop("eval_seq_len", seq_len),
        "accuracy": accuracy,
        "setting": extra.get("setting", "curriculum"),
        "wall_s": 600.0,
        "steps": 20000,
        # one training per cell unless told otherwise: its tests at several lengths share run and job
        "run_id": extra.pop("run_id", "run-1"),
        "job_id": extra.pop("job_id", f"{implementation}|{extra.get('setting', 'curriculum')}|{task}|{seq_len}"),
        **extra,
    }


def test_verdicts_against_bars_and_published_numbers() -> None:
    assert verdict(98.0, 99.8, 97.0, math.nan) == ("reproduced", 1.0)
    text, gap = verdict(7.4, 99.8, 97.0, math.nan)
    assert text == "not reproduced: 89.6 points below the bar" and math.isclose(gap, -89.6)
    assert verdict(26.1, 18.3, math.nan, 30.0)[0] == "reproduced"
    assert verdict(35.0, 18.3, math.nan, 30.0)[0] == "not reproduced: 5.0 points above the bar"
    assert verdict(93.0, 96.31, math.nan, math.nan)[0] == "reproduced"  # within 5 points
    assert verdict(44.0, 96.31, math.nan, math.nan)[0] == "differs: -52.3 points"


def test_table1_and_the_attention_variants_of_table2() -> None:
    references = normalise(REFERENCE_POINTS)
    rows = pd.DataFrame(
        [
            _row("mamba/mamba_ssm", 0.999, best_step=3000),  # weights of step 3,000 of 20,000 tested
            _row("mamba/mamba_ssm", 0.074, setting="paper-recipe"),
            _row("s4/cufft", 0.26),
            _row("attention/sdpa_flash", 0.95),  # attention is not in Table 1: no row
            _row(
                "attention/sdpa_flash", 0.20, task="induction-heads", seq_len=256, eval_seq_len=1024, setting="MHA-Abs"
            ),
            _row(
                "attention/sdpa_flash", 0.70, task="induction-heads", seq_len=256, eval_seq_len=1024, setting="MHA-RoPE"
            ),
            _row("attention/sdpa_flash", 0.99, task="induction-heads", seq_len=256, setting="MHA-RoPE"),
        ]
    )
    table = reproduction_table(rows, references)
    table1 = table[table["task"] == "selective-copying"].set_index(["implementation", "setting"])
    assert table1.loc[("mamba/mamba_ssm", "curriculum"), "verdict"] == "reproduced"
    assert table1.loc[("mamba/mamba_ssm", "curriculum"), ["steps", "tested_step"]].tolist() == [20000, 3000]
    assert table1.loc[("mamba/mamba_ssm", "paper-recipe"), "verdict"].startswith("not reproduced")
    assert table1.loc[("s4/cufft", "curriculum"), "published"] == 18.3
    assert "attention/sdpa_flash" not in table1.index.get_level_values(0)
    table2 = table[table["task"] == "induction-heads"].set_index("model")
    # Each variant pairs with its own published row only (MHA-xPos has no cell of its name: not matched).
    assert table2.loc["MHA-Abs", "setting"] == "MHA-Abs"
    # MHA-Abs has no row at its training length here: a length test of it cannot be judged.
    assert table2.loc["MHA-Abs", "verdict"].startswith("not comparable")
    assert table2.loc["MHA-RoPE", "ours"] == 70.0 and table2.loc["MHA-RoPE", "verdict"].startswith("not reproduced")
    assert "MHA-xPos" not in table2.index


def test_learning_curves_come_from_the_rows() -> None:
    curve = [
        {
            "step": s,
            "wall_s": s / 100,
            "train_seq_len": 256,
            "lr": 1e-3,
            "train_loss": 1.0,
            "test_loss": 1.0,
            "test_accuracy": min(1.0, s / 1000),
        }
        for s in (250, 500, 1000)
    ]
    rows = pd.DataFrame(
        [
            _row("mamba/mamba_ssm", 1.0, curve=json.dumps(curve)),
            _row("s4/cufft", 0.2, curve=json.dumps(curve[:2])),
            _row("s4/cufft", 0.2, eval_seq_len=8192, curve=json.dumps(curve[:2])),  # a longer test: not a curve
        ]
    )
    points = curve_points(rows)
    assert len(points) == 5 and set(points["implementation"]) == {"mamba/mamba_ssm", "s4/cufft"}
    (plot,) = learning_curves(rows)
    assert plot.png.startswith(b"\x89PNG") and plot.slug == "curves-selective-copying"


def test_two_runs_of_one_cell_draw_one_curve_the_tables_training() -> None:
    """Two trainings of one cell: their evaluations never interleave into one line; the curve drawn is the
    training the reproduction table reads (the best at its training length)."""
    early = [{"step": s, "test_accuracy": 0.14} for s in (500, 1000, 1500)]
    later = [{"step": s, "test_accuracy": a} for s, a in ((700, 0.2), (1400, 0.7))]
    rows = pd.DataFrame(
        [
            _row("mamba/mamba_ssm", 0.14, run_id="run-1", curve=json.dumps(early)),
            _row("mamba/mamba_ssm", 0.70, run_id="run-2", curve=json.dumps(later)),
        ]
    )
    points = curve_points(rows)
    assert points["step"].tolist() == [700, 1400] and points["test_accuracy"].tolist() == [0.2, 0.7]
    table = reproduction_table(rows, normalise(REFERENCE_POINTS))
    assert table["ours"].tolist() == [70.0]


def test_length_tests_come_from_one_training_the_best_at_its_training_length() -> None:
    """Two trainings of one cell (two runs): the table reads every length from the one with the best
    accuracy at the training length (the longer on a tie), never the best of both per length; a cell
    named after a variant and a suffix (MHA-Abs-scaled) pairs with that variant's points."""
    references = normalise(REFERENCE_POINTS)

    def induction(accuracy: float, eval_seq_len: int, run_id: str, steps: int, setting: str = "baseline"):
        row = _row(
            "mamba/mamba_ssm",
            accuracy,
            task="induction-heads",
            seq_len=256,
            eval_seq_len=eval_seq_len,
            setting=setting,
            run_id=run_id,
            steps=steps,
        )
        return row | ({"implementation": "attention/sdpa_flash", "family": "attention"} if "MHA" in setting else {})

    rows = pd.DataFrame(
        [
            induction(0.999, 256, "early-stop", 3000),
            induction(0.45, 32768, "early-stop", 3000),  # better at 2^15 than the chosen training below
            induction(1.0, 256, "ten-minutes", 18859),
            induction(0.40, 32768, "ten-minutes", 18859),
            induction(1.0, 256, "tie", 100),  # as good at L 256 but trained less: not chosen
            induction(0.99, 32768, "tie", 100),
            induction(0.08, 256, "scaled", 22000, setting="MHA-Abs-scaled"),
            induction(0.06, 1024, "scaled", 22000, setting="MHA-Abs-scaled"),
        ]
    )
    table = reproduction_table(rows, references).set_index(["model", "eval_seq_len"])
    assert table.loc[("Mamba", 32768), "ours"] == 40.0
    assert table.loc[("Mamba", 32768), "steps"] == 18859
    scaled = table.loc[("MHA-Abs", 1024)]
    assert scaled["setting"] == "MHA-Abs-scaled" and scaled["verdict"].startswith("not comparable")
    assert "MHA-xPos" not in table.index.get_level_values(0)


def test_extrapolation_lines_are_one_training_each_and_settings_apart() -> None:
    """Table 2's shape: MHA-Abs and MHA-RoPE (two settings of one implementation) are two lines, and of two
    runs of one cell the line is the run best at its training length, every length from it (not the best
    of the runs per length, which would mix a run's 2^9 with another's 2^10)."""
    from harness.report.pages.recall import recall_extrapolation

    def training(setting: str, run_id: str, accuracies: dict[int, float]) -> list[dict]:
        return [
            _row(
                "attention/sdpa_flash",
                a,
                task="induction-heads",
                seq_len=256,
                eval_seq_len=length,
                setting=setting,
                run_id=run_id,
            )
            for length, a in accuracies.items()
        ]

    rows = pd.DataFrame(
        training("MHA-Abs", "run-1", {256: 0.9, 512: 0.5, 1024: 0.1})
        + training("MHA-Abs", "run-2", {256: 0.8, 512: 0.6, 1024: 0.3})  # worse at 256, better beyond
        + training("MHA-RoPE", "run-1", {256: 1.0, 512: 0.8, 1024: 0.3})
    )
    (plot,) = recall_extrapolation(rows)
    lines = {
        series: group.set_index("eval_seq_len")["accuracy"].to_dict() for series, group in plot.table.groupby("series")
    }
    assert lines == {
        "attention/sdpa_flash · MHA-Abs": {256.0: 0.9, 512.0: 0.5, 1024.0: 0.1},
        "attention/sdpa_flash · MHA-RoPE": {256.0: 1.0, 512.0: 0.8, 1024.0: 0.3},
    }
