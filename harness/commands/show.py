"""`seqbench show RESULTS [filters]`: the measured numbers as a table in the terminal, as pytest-benchmark
and asv print theirs: per implementation and shape, the median and its spread, tokens/s, peak memory or
accuracy. `run` and `bench` end with the same table for the jobs they ran."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from harness.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

SHAPE = ["implementation", "mode", "dtype", "batch", "seq_len"]


def _number(value: Any) -> float:
    try:
        return math.nan if value is None else float(value)
    except (TypeError, ValueError):
        return math.nan


def _ms(row: Any) -> str:
    median = _number(row.get("median_ms"))
    return "" if math.isnan(median) else f"{median:.4g}"


def _spread(row: Any) -> str:
    low, high = _number(row.get("p10_ms")), _number(row.get("p90_ms"))
    return "" if math.isnan(low) or math.isnan(high) else f"{low:.4g}–{high:.4g}"


def _rate(row: Any) -> str:
    rate = _number(row.get("tokens_per_second"))
    return "" if math.isnan(rate) else f"{rate:,.0f}"


def _bytes(row: Any) -> str:
    from harness.report.tables import format_bytes

    peak = _number(row.get("peak_memory_bytes"))
    return "" if math.isnan(peak) else format_bytes(peak)


def _accuracy(row: Any) -> str:
    accuracy = _number(row.get("accuracy"))
    return "" if math.isnan(accuracy) else f"{accuracy:.3f}"


def _noisy(row: Any) -> str:
    from harness.report.data import is_missing

    flag = row.get("noisy")
    return "noisy" if not is_missing(flag) and bool(flag) else ""


# suite -> its measurement columns after the shape and the status: (heading, the row's value as text)
MEASURES: dict[str, list[tuple[str, Callable[[Any], str]]]] = {
    "throughput": [("median ms", _ms), ("p10–p90 ms", _spread), ("tokens/s", _rate), ("noise", _noisy)],
    "memory": [("peak memory", _bytes)],
    "recall": [("task", lambda r: str(r.get("task") or "")), ("accuracy", _accuracy)],
    "classify": [
        ("task", lambda r: str(r.get("task") or "")),
        ("accuracy", _accuracy),
        ("ROC AUC", lambda r: "" if math.isnan(_number(r.get("roc_auc"))) else f"{_number(r.get('roc_auc')):.3f}"),
        ("train s", lambda r: "" if math.isnan(_number(r.get("wall_s"))) else f"{_number(r.get('wall_s')):.0f}"),
    ],
}


def _text(value: Any) -> str:
    from harness.report.data import key_text

    return key_text(value)


def print_measurements(frame: pd.DataFrame, console: Any) -> None:
    """One table per suite of `frame` that has measurements to show (profile and check have their own)."""
    from rich.table import Table

    for suite, measures in MEASURES.items():
        rows = frame[frame["suite"] == suite] if "suite" in frame.columns else frame.iloc[0:0]
        if rows.empty:
            continue
        shape = [c for c in SHAPE if c in rows.columns and rows[c].map(_text).ne("").any()]
        rows = rows.sort_values([c for c in shape if c != "implementation"] or shape, kind="stable")
        rows = rows.sort_values("implementation", kind="stable") if "implementation" in shape else rows
        table = Table(title=f"{suite}: {len(rows)} row(s)", title_justify="left")
        for column in shape:
            table.add_column(column, no_wrap=True, justify="right" if column in ("batch", "seq_len") else "left")
        table.add_column("status")
        for heading, _ in measures:
            table.add_column(heading, justify="right")
        for _, row in rows.iterrows():
            record = row.to_dict()
            table.add_row(
                *[_text(record.get(c)) for c in shape], _text(record.get("status")), *[f(record) for _, f in measures]
            )
        console.print(table)


@click.command("show")
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--suite", "suites", multiple=True, help="Only these suites (repeatable).")
@click.option("--name", "names", multiple=True, help="Only these implementations (repeatable).")
@click.option("--mode", "modes", multiple=True, help="Only these modes (repeatable).")
@click.option("--run", "run_ids", multiple=True, help="Only these run ids (repeatable).")
def command(
    results: tuple[Path, ...],
    suites: tuple[str, ...],
    names: tuple[str, ...],
    modes: tuple[str, ...],
    run_ids: tuple[str, ...],
) -> None:
    """Print the measurements of RESULTS (Parquet files or folders) as tables: median time and its
    p10–p90 spread, tokens/s, peak memory, accuracy, by implementation and shape (the latest row of a
    job run more than once is shown)."""
    from harness.commands.options import make_console
    from harness.report.data import latest_per_key
    from harness.results import read_results

    frame = read_results(results)
    for column, wanted in (("suite", suites), ("implementation", names), ("mode", modes), ("run_id", run_ids)):
        if wanted:
            frame = frame[frame[column].isin(wanted)]
    if frame.empty:
        raise UserError(f"no result rows under {', '.join(map(str, results))} match the filters")
    frame = latest_per_key(frame, ["suite", "job_id", *(["task", "eval_seq_len"] if "task" in frame.columns else [])])
    if not frame["suite"].isin(list(MEASURES)).any():
        raise UserError(
            f"no {', '.join(MEASURES)} rows to show (profile: seqbench profile-summary; check: seqbench check)"
        )
    print_measurements(frame, make_console())
