"""`seqbench show`: the measurements as terminal tables, filtered; nothing to show is one line."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from harness.cli import cli
from harness.results import write_rows
from tests.test_report_synthetic import memory_rows, recall_rows, throughput_rows


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "results"
    throughput = throughput_rows("run-a")
    throughput[0] |= {"noisy": True, "noise_reason": "host busy"}
    for rows in (throughput, memory_rows("run-a"), recall_rows("run-a")):
        write_rows(rows, folder, "run-a")
    return folder


def test_show_prints_each_suites_numbers(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    outcome = CliRunner().invoke(cli, ["show", str(folder)], terminal_width=200)
    assert outcome.exit_code == 0, outcome.output
    for heading in ("median ms", "p10–p90 ms", "tokens/s", "peak memory", "accuracy", "noisy", "oom"):
        assert heading in outcome.output
    first = throughput_rows("run-a")[0]
    assert f"{first['median_ms']:.4g}" in outcome.output


def test_show_filters_and_says_when_nothing_matches(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    runner = CliRunner()
    only = runner.invoke(cli, ["show", str(folder), "--suite", "memory", "--name", "mamba2/mamba_ssm"])
    assert only.exit_code == 0, only.output
    assert "peak memory" in only.output and "median ms" not in only.output and "attention" not in only.output
    nothing = runner.invoke(cli, ["show", str(folder), "--name", "nobody/none"])
    assert nothing.exit_code == 2 and nothing.output.startswith("Error: no result rows under")
