"""`seqbench export --format pytest-benchmark`: pytest-benchmark's own `compare` reads the exported runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.results import write_rows
from tests.test_report_synthetic import throughput_rows

pytest.importorskip("pytest_benchmark")


def _export(rows: list[dict], tmp_path: Path, name: str) -> Path:
    write_rows(rows, tmp_path / name, rows[0]["run_id"])
    out = tmp_path / f"{name}.json"
    outcome = CliRunner().invoke(cli, ["export", "--format", "pytest-benchmark", str(tmp_path / name), "-o", str(out)])
    assert outcome.exit_code == 0, outcome.output
    return out


def test_pytest_benchmark_compare_reads_the_exported_runs(tmp_path: Path) -> None:
    rows_a = throughput_rows("run-a", seed=1)
    a = _export(rows_a, tmp_path, "a")
    b = _export(throughput_rows("run-b", scale=1.25, seed=2), tmp_path, "b")
    document = json.loads(a.read_text())
    ok = [r for r in rows_a if r["status"] == "ok"]
    assert len(document["benchmarks"]) == len(ok) < len(rows_a)  # a failed row is no benchmark
    first = next(b for b in document["benchmarks"] if b["extra_info"]["job_id"] == ok[0]["job_id"])
    assert first["stats"]["median"] == pytest.approx(ok[0]["median_ms"] / 1e3)
    assert first["stats"]["rounds"] == len(ok[0]["samples_ms"])
    compared = subprocess.run(
        [sys.executable, "-m", "pytest_benchmark", "compare", str(a), str(b), "--columns", "median,rounds"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert compared.returncode == 0, compared.stderr
    name = f"{ok[0]['implementation']}[fwd-bfloat16-B16-L1024]"
    sides = [line.split()[1] for line in compared.stdout.splitlines() if line.startswith(f"{name} (")]
    assert len(sides) == 2 and sides[0].endswith("a)") and sides[1].endswith("b)")  # one row per exported file
    assert "Failed to load" not in compared.stderr


def test_nothing_to_export_is_one_line(tmp_path: Path) -> None:
    rows = [{**r, "status": "error", "reason": "boom"} for r in throughput_rows("run-a")]
    write_rows(rows, tmp_path / "r", "run-a")
    outcome = CliRunner().invoke(cli, ["export", "--format", "pytest-benchmark", str(tmp_path / "r"), "-o", "x.json"])
    assert outcome.exit_code == 2 and outcome.output == "Error: no ok throughput rows with per-rep samples to export\n"
