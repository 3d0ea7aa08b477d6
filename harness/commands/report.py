"""`seqbench report RESULTS... -o reports/NAME/`: the HTML report of result rows; prints index.html's path."""

from __future__ import annotations

from pathlib import Path

import click

from harness.errors import UserError


@click.command("report")
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--out",
    "out_dir",
    default=Path("reports/latest"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of the site: new, empty, or an earlier seqbench report (replaced; files it did not write are kept).",
)
@click.option(
    "--baseline",
    "baseline_paths",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Results to compare against (repeatable): adds a compare page, A = baseline, B = RESULTS.",
)
@click.option("--title", default="seqbench report", show_default=True, help="Title of the overview page.")
def command(results: tuple[Path, ...], out_dir: Path, baseline_paths: tuple[Path, ...], title: str) -> None:
    """Write a static HTML site (overview, one page per suite) for RESULTS (Parquet files or directories)."""
    from harness.report import build_report
    from harness.results import read_results

    frame = read_results(results)
    if frame.empty:
        raise UserError(f"no result rows under {', '.join(map(str, results))}")
    baseline = None
    if baseline_paths:
        baseline = read_results(baseline_paths)
        if baseline.empty:
            raise UserError(f"no result rows under the baseline {', '.join(map(str, baseline_paths))}")
    try:
        index = build_report(frame, out_dir, baseline=baseline, title=title, sources=[str(p) for p in results])
    except OSError as exc:
        raise UserError(f"cannot write the report into {out_dir}: {exc.strerror or exc}") from exc
    click.echo(str(index.resolve()))
