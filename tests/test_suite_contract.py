"""The suite contract (harness.suite): a suite registered from outside the harness is run by `seqbench run`
and `seqbench bench`, typed by results, paged by the report and timed by compare, with no edit to any of
them. The example suite is tests/example_suite.py (one module) with its preset tests/presets/echo/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

from harness import results
from harness import suite as suite_registry
from harness.cli import cli
from harness.commands import bench
from harness.report import build_report, compare_results
from tests import example_suite

IMPLEMENTATION = "attention/reference"


@pytest.fixture
def echo() -> Iterator[suite_registry.Suite]:
    with suite_registry.registered(example_suite.RECORD) as record:
        yield record
    assert suite_registry.get("echo") is None


def _run(*args: str) -> str:
    outcome = CliRunner().invoke(cli, list(args))
    assert outcome.exit_code == 0, outcome.output
    return outcome.output


def test_the_registry_lists_the_built_in_suites_in_report_and_bench_order() -> None:
    assert [s.name for s in suite_registry.suites()] == [
        "throughput",
        "memory",
        "profile",
        "recall",
        "classify",
        "check",
    ]
    assert [s.name for s in suite_registry.bench_suites()] == ["throughput", "memory", "recall", "profile"]
    assert suite_registry.timed_suites() == ["throughput"]


def test_a_column_typed_twice_differently_is_refused(echo: suite_registry.Suite) -> None:
    clash = suite_registry.Suite(name="clash", title="Clash", columns={"echo_tokens": pa.string()})
    with pytest.raises(ValueError, match="typed differently"):
        suite_registry.register(clash)


@pytest.mark.slow
def test_a_registered_suite_runs_and_reaches_results_report_bench_and_compare(
    echo: suite_registry.Suite, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    _run("run", "echo", "--name", IMPLEMENTATION, "--results", str(out))
    rows = results.read_results(out)
    assert sorted(rows["echo_tokens"].tolist()) == [16, 32] and set(rows["suite"]) == {"echo"}
    assert results.known_columns()["echo_tokens"] == pa.int64()  # its column is typed like a built-in one

    assert "echo" in bench._default_suites()
    _run("bench", "--suites", "echo", "--name", IMPLEMENTATION, "--results", str(tmp_path / "bench"))
    assert len(results.read_results(tmp_path / "bench")) == 2

    index = build_report(rows, tmp_path / "report")
    page = (index.parent / "echo.html").read_text()
    assert "<h1>Echo</h1>" in page and "echoed 48 tokens" in page
    assert 'href="echo.html">Echo</a>' in index.read_text()

    comparison = compare_results(rows, rows.assign(median_ms=rows["median_ms"] * 2))
    assert len(comparison.jobs) == 2  # echo is timed: its median times are compared
