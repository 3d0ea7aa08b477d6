"""`seqbench compare A B`: per job, B/A of the median time, significant or not; exit 1 on regressions if asked."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import click

from harness.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

    from harness.report.compare import Comparison
    from harness.report.hardware import HardwareRatios


def format_table(records: list[dict[str, str]], columns: list[str]) -> list[str]:
    """Plain aligned text (greppable in CI logs), a header line then one line per record."""
    widths = {c: max(len(c), *(len(r[c]) for r in records)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns).rstrip()]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in columns).rstrip() for r in records]
    return lines


def _ms(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.4g}"


@click.command("compare")
@click.argument("baseline", metavar="A", type=click.Path(path_type=Path))
@click.argument("results", metavar="B", type=click.Path(path_type=Path))
@click.option(
    "--fail-on-regression",
    "fail_percent",
    type=float,
    default=None,
    metavar="PCT",
    help="Exit with status 1 if a job is significantly slower by more than PCT percent, or newly failing.",
)
@click.option(
    "--factor",
    type=float,
    default=1.10,
    show_default=True,
    help="Changes smaller than this ratio either way are reported as unchanged (asv's --factor).",
)
@click.option(
    "--match-by",
    type=click.Choice(["auto", "job_id", "config"]),
    default="auto",
    show_default=True,
    help="Pair jobs by job id, or by their definition (implementation, config, sizes); auto: job id if any match.",
)
@click.option(
    "--across-devices",
    is_flag=True,
    help="Compare runs of different devices or GPU models, pairing jobs by their definition (not by id).",
)
@click.option("--only-changed", is_flag=True, help="List only jobs marked + - ~ ? ! or * (the summary counts all).")
def command(
    baseline: Path,
    results: Path,
    fail_percent: float | None,
    factor: float,
    match_by: str,
    across_devices: bool,
    only_changed: bool,
) -> None:
    """Compare the throughput of results B against baseline A (Parquet files or directories).

    \b
    Marks: + slower, - faster (significant and beyond --factor),
           ~ beyond --factor but within the noise, ? beyond --factor but a
           row is flagged noisy (busy host, wide spread), ! newly failing, * fixed,
           h a change between two devices (the hardware's, never a regression).
    Significance: Mann-Whitney U on the per-rep samples when there are
    enough, else non-overlapping 99% confidence intervals of the medians
    (as asv compare does). Across two GPUs (--match-by config or
    --across-devices) jobs pair by definition, the output names both devices
    with their measured copy-bandwidth and matmul ratios, and labels each job
    memory-bound, compute-bound, mixed, either or neither. Exits 2 when A and
    B share rows (a run against itself), ran on different devices (unless
    --match-by config or --across-devices), or have no job in common.
    """
    from harness.report.compare import compare_results, devices, summary_lines
    from harness.report.hardware import job_bound
    from harness.results import read_results

    if factor < 1:
        raise UserError(f"--factor must be at least 1, got {factor:g}")
    if fail_percent is not None and fail_percent < 0:
        raise UserError(f"--fail-on-regression must be a non-negative percentage, got {fail_percent:g}")
    frame_a, frame_b = read_results(baseline), read_results(results)
    for name, path, frame in (("A", baseline, frame_a), ("B", results, frame_b)):
        if frame.empty:
            raise UserError(f"no result rows in {name} ({path})")
    _refuse_self_compare(frame_a, frame_b)
    devices_a, devices_b = devices(frame_a), devices(frame_b)
    if devices_a != devices_b:
        where = f"A ran on {', '.join(devices_a) or 'no device'}, B on {', '.join(devices_b) or 'no device'}"
        if not across_devices and match_by != "config":
            raise UserError(
                f"{where}: their times do not compare as a regression test; give --match-by config "
                "(or --across-devices) to pair jobs by config and label the differences as hardware"
            )
        click.echo(f"note: {where}; jobs paired by their definition across devices.")
        across_devices, match_by = True, "config"
    comparison = compare_results(frame_a, frame_b, factor=factor, match_by=match_by, across_devices=across_devices)
    if not comparison.jobs:
        raise UserError("no throughput rows to compare in A or B")
    if not any(job.status_a and job.status_b for job in comparison.jobs):
        hint = "; --match-by config pairs runs of different presets" if comparison.matched_by == "job_id" else ""
        raise UserError(f"no job of B matches a job of A (paired by {comparison.matched_by}): nothing to compare{hint}")
    ratios = _hardware_header(comparison, frame_a, frame_b)

    records = []
    for job in comparison.jobs:
        if only_changed and not job.mark:
            continue
        label = job.label
        records.append(
            {
                "": job.mark,
                "implementation": label.get("implementation", ""),
                "mode": label.get("mode", ""),
                "dtype": label.get("dtype", ""),
                "batch": label.get("batch", ""),
                "seq_len": label.get("seq_len", ""),
                "A ms": _ms(job.median_a_ms) or job.status_a,
                "B ms": _ms(job.median_b_ms) or job.status_b,
                "B/A": "" if math.isnan(job.ratio) else f"{job.ratio:.3f}",
                "p": "" if math.isnan(job.p_value) else f"{job.p_value:.1g}",
                "change": job.change,
                **({"bound": job_bound(job, ratios)} if ratios is not None else {}),
            }
        )
    if records:
        for line in format_table(records, list(records[0])):
            click.echo(line)
        click.echo("")
    for line in summary_lines(comparison):
        click.echo(line)

    if fail_percent is not None and comparison.hardware:
        click.echo(f"No regression judged: {comparison.devices[0]} and {comparison.devices[1]} are different GPUs.")
        return
    if fail_percent is not None:
        regressions = comparison.regressions(fail_percent)
        if regressions:
            click.echo(
                f"FAIL: {len(regressions)} job(s) regressed beyond {fail_percent:g}% or newly failing:", err=True
            )
            for job in regressions:
                what = job.change if math.isnan(job.ratio) else f"x{job.ratio:.3f}"
                click.echo(f"  {what}  {job.key}", err=True)
            click.get_current_context().exit(1)
        if not any(not math.isnan(job.ratio) for job in comparison.jobs):
            raise UserError(
                f"--fail-on-regression {fail_percent:g} has nothing to judge: no job was timed in both A and B"
            )
        click.echo(f"No regression beyond {fail_percent:g}%.")


def _hardware_header(comparison: Comparison, frame_a: pd.DataFrame, frame_b: pd.DataFrame) -> HardwareRatios | None:
    """Across devices: say so, with both devices' measured ceilings and their ratios (None otherwise)."""
    from harness.report.hardware import hardware_ratios

    if not comparison.hardware:
        return None
    ratios = hardware_ratios(frame_a, frame_b, *comparison.devices)
    click.echo(f"hardware: {ratios.text()}.")
    click.echo(
        "Jobs paired by their definition across devices: changes are the hardware's (marked h), not regressions; "
        "bound: which ceiling ratio the speedup follows (harness/report/hardware.py)."
    )
    if ratios.missing():
        click.echo(f"note: {ratios.missing()}.")
    click.echo("")
    return ratios


def _refuse_self_compare(frame_a: pd.DataFrame, frame_b: pd.DataFrame) -> None:
    """A and B holding the same rows (one folder inside the other, the same run twice) compare nothing."""
    from harness.report.compare import shared_rows

    count, runs = shared_rows(frame_a, frame_b)
    if count:
        shown = ", ".join(runs[:3]) + (f" and {len(runs) - 3} more" if len(runs) > 3 else "")
        raise UserError(
            f"A and B share the rows of {count} job(s) (run {shown}): that compares a run with itself; "
            "give two different runs"
        )
