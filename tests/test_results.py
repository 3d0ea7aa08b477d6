"""The results dataset: types survive a round trip, foreign files are refused in one line, and a writer
killed mid-write leaves nothing a reader can see."""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness import results
from harness.errors import UserError


def row(job_id: str = "j1", status: str = "ok", **extra: object) -> dict[str, object]:
    return {
        "schema_version": results.SCHEMA_VERSION,
        "run_id": "20260101T000000Z-abcdef",
        "job_id": job_id,
        "timestamp": results.utc_now(),
        "suite": "throughput",
        "implementation": "attention/reference",
        "status": status,
        "batch": 2,
        "seq_len": 64,
        "rope": False,
        **extra,
    }


def test_round_trip_keeps_types_and_extra_columns(tmp_path: Path) -> None:
    rows = [
        row("a", median_ms=1.5, samples_ms=[1.0, 2.0], reps=2, opt_expand_k=True),
        row("b", "oom", reason="CUDA out of memory", median_ms=None, samples_ms=None, reps=None, opt_expand_k=False),
    ]
    path = results.write_rows(rows, tmp_path, "20260101T000000Z-abcdef")
    assert path.parent == tmp_path / "throughput" / "20260101T000000Z-abcdef"
    frame = results.read_results(tmp_path)
    assert list(frame.job_id) == ["a", "b"]
    assert str(frame.batch.dtype) == "Int64" and str(frame.reps.dtype) == "Int64"  # nullable ints stay ints
    assert frame.reps.isna().tolist() == [False, True]
    assert frame.median_ms[0] == 1.5 and math.isnan(frame.median_ms[1])
    assert list(frame.samples_ms[0]) == [1.0, 2.0]
    assert frame.opt_expand_k.tolist() == [True, False]
    # Every common column is there, null where nobody set it.
    assert set(results.COMMON_COLUMNS) <= set(frame.columns)
    extra = pq.read_schema(path).metadata[results.EXTRA_COLUMNS_KEY]
    assert b"opt_expand_k" in extra


def test_writer_rejects_bad_rows(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lacks identity column"):
        results.write_rows([{**row(), "job_id": None}], tmp_path, "r")
    with pytest.raises(ValueError, match="status 'fine' is not one of"):
        results.write_rows([row(status="fine")], tmp_path, "r")
    with pytest.raises(ValueError, match="does not fit type"):
        results.write_rows([row(median_ms="fast")], tmp_path, "r")


def test_foreign_file_is_a_one_line_error(tmp_path: Path) -> None:
    pq.write_table(pa.table({"x": [1, 2]}), tmp_path / "other.parquet")
    with pytest.raises(UserError, match="is not a seqbench results file") as info:
        results.read_results(tmp_path)
    assert "\n" not in str(info.value)
    with pytest.raises(UserError):
        results.check_results_dir(tmp_path)


def test_other_schema_version_and_wrong_column_type_are_refused(tmp_path: Path) -> None:
    table = results.rows_to_table([row()])
    old = table.replace_schema_metadata({results.SCHEMA_KEY: b"0"})
    pq.write_table(old, tmp_path / "old.parquet")
    with pytest.raises(UserError, match="schema version 0; this seqbench reads version 1"):
        results.read_results(tmp_path / "old.parquet")
    retyped = table.set_column(table.schema.get_field_index("batch"), "batch", pa.array(["2"]))
    pq.write_table(retyped.replace_schema_metadata(table.schema.metadata), tmp_path / "typed.parquet")
    with pytest.raises(UserError, match="column 'batch' has type string, expected int64"):
        results.read_results(tmp_path / "typed.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(UserError, match="not a readable Parquet file"):
        results.read_results(tmp_path / "junk.parquet")


WRITER = textwrap.dedent(
    """
    import sys, time
    import pyarrow.parquet as pq
    from harness import results

    real_write = pq.write_table

    def slow_write(table, where, **kwargs):
        where.write(b"PAR1" + b"x" * 4096)  # a partial file on disk ...
        where.flush()
        print("writing", flush=True)
        time.sleep(60)  # ... and the writer is killed here

    pq.write_table = slow_write
    row = {"schema_version": results.SCHEMA_VERSION, "run_id": "r2", "job_id": "late", "timestamp": "t",
           "suite": "throughput", "implementation": "attention/reference", "status": "ok"}
    results.write_rows([row], sys.argv[1], "r2")
    """
)


def test_a_writer_killed_mid_write_leaves_no_visible_partial_file(tmp_path: Path) -> None:
    results.write_rows([row("early")], tmp_path, "r1")
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[1]
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
        writer.send_signal(signal.SIGKILL)
    finally:
        writer.wait(timeout=30)
    leftovers = list((tmp_path / "throughput" / "r2").iterdir())
    assert len(leftovers) == 1 and leftovers[0].name.startswith(results.TEMP_PREFIX)  # the partial temp file
    frame = results.read_results(tmp_path)  # readers skip it, and read the complete file
    assert frame.job_id.tolist() == ["early"]
    results.check_results_dir(tmp_path)  # a later run is not refused because of it


def test_done_jobs_and_latest_run(tmp_path: Path) -> None:
    results.write_rows(
        [row("a", host_fingerprint="h1"), row("b", "unavailable", host_fingerprint="h1")], tmp_path, "r1"
    )
    time.sleep(0.01)
    results.write_rows([row("c", "crash", host_fingerprint="h2")], tmp_path, "r2")
    assert results.done_job_ids(tmp_path, "throughput") == {"a", "c"}  # unavailable is not done
    assert results.done_job_ids(tmp_path, "throughput", host_fingerprint="h1") == {"a"}
    assert results.done_job_ids(tmp_path, "throughput", run_id="r2") == {"c"}
    assert results.done_job_ids(tmp_path, "memory") == set()
    assert results.latest_run_id(tmp_path, "throughput") == "r2"
    assert results.new_run_id() > "20260101"  # sortable by time


def test_missing_path_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such results file or directory"):
        results.read_results(tmp_path / "nowhere")
    assert len(results.read_results(tmp_path)) == 0  # an empty directory: no rows, the common columns
