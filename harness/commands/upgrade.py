"""`seqbench upgrade RESULTS`: make a results folder of an older seqbench a plain Parquet dataset."""

from __future__ import annotations

from pathlib import Path

import click

from harness.errors import UserError


@click.command("upgrade")
@click.argument("results_dir", metavar="RESULTS", type=click.Path(path_type=Path))
def command(results_dir: Path) -> None:
    """Rewrite RESULTS' old part files with the full column set (same rows) and move its worker logs and
    traces to RESULTS-logs/, so pandas, pyarrow, polars and duckdb read it with no options."""
    from harness import results

    if not results_dir.is_dir():
        raise UserError(f"no such results directory: {results_dir}")
    with results.writer_lock(results_dir):  # not while a run writes into it
        rewritten, moved = results.upgrade_results_dir(results_dir)
    sidecar = results.sidecar_dir(results_dir)
    click.echo(f"{rewritten} part file(s) rewritten, {moved} log or trace file(s) moved to {sidecar}")
