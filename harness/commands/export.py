"""`seqbench export --format pytest-benchmark RESULTS -o FILE.json`: throughput rows as a pytest-benchmark
run, so that `pytest-benchmark compare A.json B.json` (its tables, `--histogram`, `--csv`) reads them.

Each ok throughput job (the latest row of a job run more than once) is one benchmark: its per-rep times
(`samples_ms`, in seconds there) are the rounds, pytest-benchmark's own statistics are computed from them,
the group is the shape (mode, dtype, batch, seq_len) so implementations line up within a group, and the
job's id, run, tokens/s, noise flag and command are its `extra_info`.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from harness.errors import UserError

if TYPE_CHECKING:
    import pandas as pd


def _text(value: Any) -> str:
    from harness.report.data import key_text

    return key_text(value)


def _plain(value: Any) -> Any:
    """A cell as JSON holds it (numpy scalars, pandas' NA)."""
    from harness.report.data import is_missing

    if is_missing(value):
        return None
    return value.item() if hasattr(value, "item") else value


def pytest_benchmark_json(frame: pd.DataFrame) -> dict[str, Any]:
    """The throughput rows of `frame` as the JSON document `pytest --benchmark-json` writes."""
    import pytest_benchmark
    from pytest_benchmark.stats import Stats

    from harness.report.data import latest_per_key, samples_list

    rows = frame[(frame["suite"] == "throughput") & (frame["status"] == "ok")]
    rows = latest_per_key(rows, ["job_id"])
    benchmarks = []
    for _, row in rows.iterrows():
        samples = samples_list(row.get("samples_ms"))
        if not samples:
            continue
        stats = Stats()
        for sample in samples:
            stats.update(sample / 1e3)
        params = {key: _plain(row.get(key)) for key in ("mode", "dtype", "batch", "seq_len", "level", "d_model")}
        shape = f"{params['mode']}-{params['dtype']}-B{params['batch']}-L{params['seq_len']}"
        benchmarks.append(
            {
                "group": shape,
                "name": f"{row['implementation']}[{shape}]",
                "fullname": f"seqbench::throughput::{row['implementation']}[{shape}]",
                "params": params,
                "param": shape,
                "extra_info": {
                    key: _plain(row.get(key))
                    for key in ("job_id", "run_id", "tokens_per_second", "noisy", "noise_reason", "command")
                },
                "options": {"timer": _text(row.get("timer")), "device": _text(row.get("device"))},
                "stats": {**stats.as_dict(), "data": stats.data, "iterations": 1},
            }
        )
    if not benchmarks:
        raise UserError("no ok throughput rows with per-rep samples to export")
    first = rows.iloc[0]
    return {
        "machine_info": {
            "node": _text(first.get("host_fingerprint")),
            "processor": _text(first.get("gpu_name")) or platform.processor(),
            "machine": _text(first.get("device")),
            "python_implementation": platform.python_implementation(),
            "python_version": platform.python_version(),
            "torch_version": _text(first.get("torch_version")),
        },
        "commit_info": {
            "id": _text(first.get("seqbench_commit")),
            "dirty": bool(_plain(first.get("seqbench_dirty"))),
            "project": "seqbench",
        },
        "benchmarks": benchmarks,
        "datetime": _text(rows["timestamp"].max()),
        "version": pytest_benchmark.__version__,
    }


@click.command("export")
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "format_", type=click.Choice(["pytest-benchmark"]), required=True, help="Output format.")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="File to write.")
def command(results: tuple[Path, ...], format_: str, out: Path) -> None:
    """Write the throughput rows of RESULTS in another tool's format: pytest-benchmark's JSON, read by
    `pytest-benchmark compare A.json B.json` (install pytest-benchmark for it)."""
    from harness.results import read_results

    try:
        import pytest_benchmark  # noqa: F401
    except ImportError:
        raise UserError("--format pytest-benchmark needs pytest-benchmark: pip install pytest-benchmark") from None
    document = pytest_benchmark_json(read_results(results))
    try:
        out.write_text(json.dumps(document, indent=1), encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from exc
    click.echo(f"{len(document['benchmarks'])} benchmark(s) -> {out} (pytest-benchmark compare {out} ...)")
