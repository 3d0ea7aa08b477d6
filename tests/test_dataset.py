"""A results folder is a plain Parquet dataset: pandas, pyarrow, polars and duckdb read it with no options
and keep every measurement; logs live beside it; old folders still read through seqbench."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import seqbench
from harness import results
from harness.cli import cli

RUN = "20261201T000000Z-abcdef"


def row(job_id: str, suite: str = "throughput", status: str = "ok", **extra: object) -> dict[str, object]:
    return {
        "schema_version": results.SCHEMA_VERSION,
        "run_id": RUN,
        "job_id": job_id,
        "timestamp": "2026-12-01T00:00:00+00:00",
        "suite": suite,
        "implementation": "attention/reference",
        "status": status,
        "device": "cpu",
        "batch": 1,
        "seq_len": 64,
        **extra,
    }


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Three suites' part files, the first throughput file holding only a failed row (the case that made
    pandas and pyarrow drop `median_ms`), extras of a family, and a worker log where the runner puts it."""
    out = tmp_path / "results"
    results.write_rows([row("failed", status="oom", reason="out of memory")], out, RUN, part="part-0")
    fast = row("fast", median_ms=1.5, samples_ms=[1.4, 1.5, 1.6], opt_expand_k=2)
    results.write_rows([fast], out, RUN, part="part-1")
    results.write_rows([row("mem", suite="memory", peak_memory_bytes=1e6)], out, RUN)
    results.write_rows([row("acc", suite="recall", accuracy=0.75, train_loss=0.1, target_reached=True)], out, RUN)
    (out / ".gitkeep").write_text("")
    with results.writer_lock(out):  # leaves its (empty) lock file, as every run does
        pass
    log = results.log_dir(out, "throughput", RUN) / "worker.log"
    log.parent.mkdir(parents=True)
    log.write_text("=== a traceback\n")
    return out


def _check(frame: pd.DataFrame) -> None:
    assert len(frame) == 4
    by_job = frame.set_index("job_id")
    assert by_job.loc["fast", "median_ms"] == 1.5
    assert by_job.loc["mem", "peak_memory_bytes"] == 1e6
    assert by_job.loc["acc", "accuracy"] == 0.75 and by_job.loc["acc", "train_loss"] == 0.1
    assert math.isnan(by_job.loc["failed", "median_ms"])


def test_pandas_and_pyarrow_read_the_folder_with_no_options(folder: Path) -> None:
    _check(pd.read_parquet(folder))
    _check(ds.dataset(folder).to_table().to_pandas())


def test_a_glob_keeps_every_measurement(folder: Path) -> None:
    files = sorted(str(p) for p in folder.glob("*/*/*.parquet"))
    assert len(files) == 4
    _check(ds.dataset(files).to_table().to_pandas())  # schema from the first file: the failed row's
    schemas = {pq.read_schema(f).remove_metadata() for f in files}
    assert len(schemas) == 1  # every file, whatever its suite or status, has the same columns


def test_polars_reads_the_folder_with_no_options(folder: Path) -> None:
    polars = pytest.importorskip("polars")
    _check(polars.scan_parquet(folder).collect().to_pandas())


def test_duckdb_reads_the_folder_with_no_options(folder: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    _check(duckdb.sql(f"select * from read_parquet('{folder}/**/*.parquet')").df())


def test_logs_and_traces_live_beside_the_dataset(folder: Path) -> None:
    assert results.sidecar_dir(folder) == folder.parent / "results-logs"
    hidden = {".gitkeep", results.LOCK_NAME}
    assert [p.suffix for p in folder.rglob("*") if p.is_file() and p.name not in hidden] == [".parquet"] * 4


def test_read_results_is_public_typed_and_unpacks_the_extras(folder: Path) -> None:
    frame = seqbench.read_results(folder).set_index("job_id")
    assert frame.loc["fast", "opt_expand_k"] == 2 and "extra_json" not in frame.columns
    assert str(frame["batch"].dtype) == "Int64" and str(frame["target_reached"].dtype) == "boolean"
    assert list(frame.loc["fast", "samples_ms"]) == [1.4, 1.5, 1.6]
    assert json.loads(pd.read_parquet(folder).set_index("job_id").loc["fast", "extra_json"]) == {"opt_expand_k": 2}


def _version_1_file(path: Path) -> None:
    """A file as seqbench wrote them before schema version 2: its own column set, extras as columns, a log
    beside it in the run folder."""
    table = pa.table(
        {
            "schema_version": [1],
            "run_id": ["20261122T000000Z-old000"],
            "job_id": ["old"],
            "timestamp": ["2026-11-22T00:00:00+00:00"],
            "suite": ["throughput"],
            "implementation": ["attention/reference"],
            "status": ["ok"],
            "median_ms": [2.5],
            "warmup_calls": [3],
            "opt_chunk": ["x"],
            "searched_up_to_seq_len": pa.array([None], type=pa.string()),  # an all-null extra: typed string
        }
    )
    extras = b'{"warmup_calls": "int64", "opt_chunk": "string", "searched_up_to_seq_len": "string"}'
    metadata = {results.SCHEMA_KEY: b"1", results.EXTRA_COLUMNS_KEY: extras}
    path.parent.mkdir(parents=True)
    pq.write_table(table.replace_schema_metadata(metadata), path)
    (path.parent / "worker.log").write_text("old log\n")


def test_old_folders_still_read_and_upgrade_in_place(folder: Path) -> None:
    old = folder / "throughput" / "20261122T000000Z-old000" / "part-000000-00000000.parquet"
    _version_1_file(old)
    frame = seqbench.read_results(folder).set_index("job_id")  # the mix of old and new files, through seqbench
    assert frame.loc["old", "median_ms"] == 2.5 and frame.loc["old", "opt_chunk"] == "x"
    assert str(frame["searched_up_to_seq_len"].dtype) == "Int64"  # the known type, not the inferred string
    assert frame.loc["fast", "opt_expand_k"] == 2

    outcome = CliRunner().invoke(cli, ["upgrade", str(folder)])
    assert outcome.exit_code == 0, outcome.output
    assert "1 part file(s) rewritten, 1 log or trace file(s) moved" in outcome.output
    assert not (old.parent / "worker.log").exists()
    assert (results.log_dir(folder, "throughput", "20261122T000000Z-old000") / "worker.log").read_text() == "old log\n"
    upgraded = pd.read_parquet(folder).set_index("job_id")  # now a plain dataset too
    assert upgraded.loc["old", "median_ms"] == 2.5 and upgraded.loc["old", "warmup_calls"] == 3
    again = seqbench.read_results(folder).set_index("job_id")
    assert again.loc["old", "opt_chunk"] == "x"


def test_a_truncated_part_file_is_skipped_with_a_warning(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = folder / "throughput" / RUN / "part-2.parquet"
    broken.write_bytes((folder / "throughput" / RUN / "part-1.parquet").read_bytes()[:100])
    assert len(seqbench.read_results(folder)) == 4
    assert f"warning: skipped {broken}: not a readable Parquet file" in capsys.readouterr().err
    results.check_results_dir(folder)  # a run into the folder is not blocked either
