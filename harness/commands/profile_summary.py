"""`seqbench profile-summary RESULTS...`: the top kernels of every profiled job, as tables in the terminal.

One table per job (implementation, mode, dtype, batch, seq_len, device) with its largest kernels (time per
step, share of the step's device time, the mixer part each belongs to), then the job's step totals, its
time per part, the launch overhead (host gap) and, where the core was profiled, the core's roofline
position. Jobs that failed are listed with their reason.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import click

from harness.commands.options import make_console
from harness.errors import UserError

JOB_KEY = ("run_id", "job_id")


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return number


def _time_text(microseconds: float) -> str:
    if math.isnan(microseconds):
        return "?"
    if abs(microseconds) >= 1000:
        return f"{microseconds / 1000:.2f} ms"
    return f"{microseconds:.1f} µs"


def _percent(fraction: float) -> str:
    return "?" if math.isnan(fraction) else f"{fraction:.1%}"


def _job_title(row: Any) -> str:
    bits = [str(row.get("implementation"))]
    for column in ("level", "mode", "dtype"):
        value = row.get(column)
        if value is not None and value == value and not (column == "level" and value == "layer"):
            bits.append(str(value))
    sizes = []
    for column, label in (("batch", "B"), ("seq_len", "L")):
        value = _number(row.get(column))
        if not math.isnan(value):
            sizes.append(f"{label}={int(value)}")
    if sizes:
        bits.append(" ".join(sizes))
    if row.get("device"):
        bits.append(str(row.get("device")))
    return " · ".join(bits)


def _as_frame(rows: Any) -> Any:
    import pandas as pd

    return rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))


def print_top_kernels(rows: Any, console: Any = None, top: int = 10) -> int:
    """Print one table per profiled job of `rows` (a DataFrame or row dicts, suite `profile`); returns
    the number of jobs shown."""
    from rich.table import Table

    console = console or make_console()
    frame = _as_frame(rows)
    if frame.empty:
        return 0
    if "suite" in frame.columns:
        frame = frame[frame["suite"] == "profile"]
    ok = frame[frame["status"] == "ok"] if "status" in frame.columns else frame
    if "kernel_name" in ok.columns:
        ok = ok[ok["kernel_name"].notna()]
    else:
        ok = ok.iloc[0:0]
    keys = [c for c in JOB_KEY if c in ok.columns]
    shown = 0
    groups = ok.groupby(keys, sort=False) if keys else [((), ok)]
    ordered = sorted(
        groups, key=lambda item: (str(item[1].iloc[0].get("implementation")), str(item[1].iloc[0].get("mode")))
    )
    for _, job in ordered:
        job = job.assign(_self_us=job["self_device_time_us"].map(_number)).sort_values("_self_us", ascending=False)
        first = job.iloc[0]
        table = Table(title=_job_title(first), title_justify="left")
        for column, justify in (
            ("#", "right"),
            ("kernel", "left"),
            ("part", "left"),
            ("calls", "right"),
            ("time/step", "right"),
            ("share", "right"),
            ("cumulative", "right"),
        ):
            table.add_column(column, justify=justify, overflow="fold", no_wrap=column == "kernel")
        cumulative = 0.0
        for rank, (_, kernel) in enumerate(job.head(top).iterrows(), start=1):
            share = _number(kernel.get("share"))
            cumulative += 0.0 if math.isnan(share) else share
            name = kernel.get("kernel_short") or kernel.get("kernel_name")
            calls = _number(kernel.get("calls"))
            table.add_row(
                str(rank),
                str(name),
                str(kernel.get("part") or "other"),
                "" if math.isnan(calls) else str(int(calls)),
                _time_text(_number(kernel.get("self_device_time_us"))),
                _percent(share),
                _percent(cumulative),
            )
        if len(job) > top:
            rest = job.iloc[top:]
            rest_share = sum(x for x in rest["share"].map(_number) if not math.isnan(x))
            table.add_row("", f"{len(rest)} more", "", "", _time_text(rest["_self_us"].sum()), _percent(rest_share), "")
        console.print(table)
        for line in _job_lines(job, first):
            console.print(line, markup=False, highlight=False)
        console.print()
        shown += 1
    failed = frame[frame["status"] != "ok"] if "status" in frame.columns else frame.iloc[0:0]
    for _, row in failed.iterrows():
        console.print(f"{_job_title(row)}: {row['status']}: {row.get('reason') or ''}", markup=False, highlight=False)
    return shown


def _job_lines(job: Any, first: Any) -> Iterable[str]:
    device_us = _number(first.get("step_device_time_us"))
    wall_us = _number(first.get("step_wall_time_us"))
    gap_us = _number(first.get("host_gap_us"))
    launches = _number(first.get("launches"))
    gap_fraction = gap_us / wall_us if wall_us and not math.isnan(wall_us) else float("nan")
    unit = "kernels" if str(first.get("device", "")).startswith("cuda") else "op calls"
    launches_text = "" if math.isnan(launches) else f", {int(launches)} {unit}"
    yield (
        f"  step: {_time_text(device_us)} device, {_time_text(wall_us)} wall, "
        f"host gap {_time_text(gap_us)} ({_percent(gap_fraction)} of wall){launches_text}"
    )
    parts = job.groupby(job["part"].fillna("other"))["_self_us"].sum().sort_values(ascending=False)
    total = parts.sum()
    if total > 0:
        yield "  parts: " + " · ".join(f"{name} {value / total:.0%}" for name, value in parts.items())
    if "achieved_tflops" in job.columns:
        core = job[job["achieved_tflops"].map(_number).map(lambda v: not math.isnan(v))]
        if not core.empty:
            row = core.iloc[0]
            tflops, gbps = _number(row.get("achieved_tflops")), _number(row.get("achieved_gbps"))
            frac_t, frac_g = _number(row.get("frac_peak_tflops")), _number(row.get("frac_peak_gbps"))
            peak_t = f" ({_percent(frac_t)} of peak)" if not math.isnan(frac_t) else ""
            peak_g = f" ({_percent(frac_g)} of peak)" if not math.isnan(frac_g) else ""
            yield (
                f"  core: {tflops:.3g} TFLOP/s{peak_t}, {gbps:.3g} GB/s{peak_g} over "
                f"{_time_text(_number(row.get('core_device_time_us')))}; largest kernel "
                f"{row.get('kernel_short')} ({_percent(_number(row.get('core_kernel_share')))} of the core)"
            )
    trace = first.get("trace_path")
    if isinstance(trace, str) and trace:
        yield f"  trace: {trace}"


@click.command("profile-summary")
@click.argument("results", nargs=-1, required=True, type=click.Path())
@click.option("--top", type=int, default=10, show_default=True, help="Kernels shown per job.")
@click.option("--name", "names", multiple=True, help="Only these implementations (repeatable).")
@click.option("--mode", "modes", multiple=True, help="Only these modes (repeatable).")
@click.option("--run", "run_ids", multiple=True, help="Only these run ids (repeatable).")
def command(
    results: tuple[str, ...], top: int, names: tuple[str, ...], modes: tuple[str, ...], run_ids: tuple[str, ...]
) -> None:
    """Print the top kernels of each profiled job in RESULTS (Parquet files or directories, e.g. the
    results directory of `seqbench run profile`)."""
    from harness.results import read_results

    if top < 1:
        raise UserError(f"--top must be a positive integer, got {top}")
    frame = read_results(results)
    if "suite" in frame.columns:
        frame = frame[frame["suite"] == "profile"]
    if frame.empty:
        raise UserError(f"no profile rows in {', '.join(results)}; run `seqbench run profile` first")
    for column, wanted in (("implementation", names), ("mode", modes), ("run_id", run_ids)):
        if wanted:
            present = sorted(frame[column].dropna().astype(str).unique())
            filtered = frame[frame[column].isin(wanted)]
            if filtered.empty:
                raise UserError(f"no profile rows with {column} in {', '.join(wanted)}{_suggestion(wanted, present)}")
            frame = filtered
    print_top_kernels(frame, make_console(), top=top)


def _suggestion(wanted: tuple[str, ...], present: list[str]) -> str:
    """ "; did you mean X?" for the closest value the rows do have, or the values there are, if few."""
    import difflib

    close = [match for value in wanted for match in difflib.get_close_matches(value, present, n=1, cutoff=0.5)]
    if close:
        return f"; did you mean {', '.join(dict.fromkeys(close))}?"
    return f"; the rows have {', '.join(present)}" if 0 < len(present) <= 8 else ""
