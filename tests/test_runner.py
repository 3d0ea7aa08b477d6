"""The runner: stable job ids, one row per failed job, provenance on every row, skip / redo / resume.
(The sweep of planted faults through a real suite is in test_suites.py.)"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from harness import results
from harness.errors import UserError
from harness.runner import Job, prepare_results_dir, run_jobs, run_suites

TARGET = "tests.fault_specs:behave"
CONFIG = {"d_model": 16, "n_heads": 2, "options": {"expand_k": 2}}


@pytest.fixture(autouse=True)
def planted_specs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQBENCH_EXTRA_SPECS", "tests.fault_specs")


def job(kind: str = "ok", implementation: str = "fault/ok", seq_len: int = 64, **params: object) -> Job:
    base = {"kind": kind, "device": "cpu", "dtype": "float32", "mode": "fwd", "batch": 2, "seq_len": seq_len}
    return Job("throughput", implementation, TARGET, {**base, "config": CONFIG, **params}, {"start": 60.0})


def test_job_id_is_the_hash_of_what_the_job_is() -> None:
    a, b = job(), job()
    assert a.job_id == b.job_id and len(a.job_id) == 16
    assert job(seq_len=128).job_id != a.job_id
    assert Job("memory", "fault/ok", TARGET, a.params).job_id != a.job_id
    # How it is run (target, timeouts) is not what it is.
    assert Job("throughput", "fault/ok", "elsewhere:f", a.params, {"warmup": 1.0}).job_id == a.job_id


def test_job_columns_flatten_the_config_and_name_the_family() -> None:
    columns = job().columns()
    assert columns["family"] == "fault" and columns["backend"] == "test"
    assert (columns["mode"], columns["batch"], columns["seq_len"], columns["dtype"]) == ("fwd", 2, 64, "float32")
    assert (columns["d_model"], columns["n_heads"], columns["head_dim"]) == (16, 2, 8)
    assert columns["opt_expand_k"] == 2
    assert "kind" not in columns  # params that are not result columns stay params


def test_a_sweep_gives_each_job_its_rows_with_provenance(tmp_path: Path) -> None:
    jobs = [
        job("ok", value=4.0),
        job("rows", seq_len=0),
        job("raise"),
        job("ok", value=2.0, seq_len=32),
        job("ok", implementation="fault/cuda_only"),
    ]
    summary = run_jobs(jobs, tmp_path, command="seqbench run throughput --preset test")
    frame = results.read_results(tmp_path)
    assert len(frame) == 6  # one row per job, two for the job that returns two
    by_status = summary.job_statuses()
    assert [by_status[j.job_id] for j in jobs] == ["ok", "ok", "error", "ok", "unavailable"]
    unavailable = frame[frame.status == "unavailable"].iloc[0]
    assert unavailable.reason == "runs on cuda only, not cpu"
    assert frame[frame.status == "error"].iloc[0].reason == "ValueError: planted failure"
    two = frame[frame.job_id == jobs[1].job_id]
    assert sorted(two.seq_len.tolist()) == [64, 128]  # a row's own columns win over the job's
    first = frame[frame.job_id == jobs[0].job_id].iloc[0]
    assert first.frac_peak_tflops == pytest.approx(8.0 / first.peak_matmul_tflops)
    assert first.command == "seqbench run throughput --preset test"
    assert first.run_id == summary.run_id and first.suite == "throughput"
    assert first.torch_version and first.host_fingerprint and first.seqbench_commit
    assert first.peak_matmul_tflops > 0 and first.peak_copy_gbps > 0
    assert math.isnan(frame[frame.status == "error"].iloc[0].median_ms)


def test_rerun_skips_done_jobs_unless_redo_and_resume_continues_an_interrupted_run(tmp_path: Path) -> None:
    jobs = [job("ok", seq_len=n) for n in (16, 32, 48, 64)]
    seen: list[str] = []

    def interrupt_after_two(row: dict) -> None:
        seen.append(row["job_id"])
        if len(seen) == 2:
            raise KeyboardInterrupt  # what Ctrl-C does in the middle of a sweep

    first = run_jobs(jobs, tmp_path, on_row=interrupt_after_two, measure_ceilings=False)
    assert first.interrupted
    assert results.done_job_ids(tmp_path, "throughput") == set(seen)  # finished rows were written

    resumed = run_jobs(jobs, tmp_path, resume=True, measure_ceilings=False)
    assert resumed.run_id == first.run_id  # the same run continues
    assert resumed.skipped == 2 and len(resumed.rows) == 2
    frame = results.read_results(tmp_path)
    assert sorted(frame.job_id) == sorted(j.job_id for j in jobs)  # each job exactly once

    again = run_jobs(jobs, tmp_path, measure_ceilings=False)
    assert again.skipped == 4 and again.rows == []
    redone = run_jobs(jobs[:1], tmp_path, redo=True, measure_ceilings=False)
    assert redone.skipped == 0 and len(redone.rows) == 1 and redone.run_id != first.run_id


def test_bad_results_directories_fail_before_any_job(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(UserError, match="exists and is not a directory"):
        prepare_results_dir(not_a_dir)
    with pytest.raises(UserError, match="is not writable"):
        prepare_results_dir(not_a_dir / "below")
    with pytest.raises(UserError, match="one run holds one suite"):
        run_jobs([job(), Job("memory", "fault/ok", TARGET, {})], tmp_path)


def test_several_suites_share_one_pass_one_worker_per_implementation_and_one_run_id(tmp_path: Path) -> None:
    """An implementation's jobs of every suite run on one worker (its kernels load once), each suite's
    rows go to its own directory under one run id, and skip / resume work per suite."""
    throughput = [job("pid", implementation=name, seq_len=n) for name in ("fault/ok", "fault/raise") for n in (16, 32)]
    memory = [Job("memory", j.implementation, TARGET, {**j.params, "batch": 1}, j.timeouts_s) for j in throughput]
    memory.append(Job("memory", "fault/ok", TARGET, {**memory[0].params, "kind": "raise"}, {"start": 60.0}))
    summaries = run_suites(throughput + memory, tmp_path, measure_ceilings=False)

    assert [s.suite for s in summaries] == ["throughput", "memory"]
    assert summaries[0].run_id == summaries[1].run_id
    assert (summaries[0].total, summaries[1].total) == (4, 5)
    frame = results.read_results(tmp_path)
    assert sorted(frame.suite.value_counts().items()) == [("memory", 5), ("throughput", 4)]
    assert set(frame.run_id) == {summaries[0].run_id}
    for suite in ("throughput", "memory"):
        assert list((tmp_path / suite / summaries[0].run_id).glob("*.parquet"))
    # Suite by suite: both implementations' throughput jobs, then fault/ok's memory jobs, in one process;
    # the memory job that raised (last of fault/ok's) restarted it, so fault/raise's memory jobs ran anew.
    ok = frame[frame.status == "ok"]
    before = ok[(ok.suite == "throughput") | (ok.implementation == "fault/ok")].worker_pid.unique()
    after = ok[(ok.suite == "memory") & (ok.implementation == "fault/raise")].worker_pid.unique()
    assert len(before) == 1 and len(after) == 1 and before[0] != after[0]
    assert summaries[1].job_statuses()[memory[-1].job_id] == "error"
    assert summaries[0].job_wall_s() > 0

    again = run_suites(throughput + memory, tmp_path, measure_ceilings=False)
    assert [(s.skipped, len(s.rows)) for s in again] == [(4, 0), (5, 0)]
    resumed = run_suites(throughput[:1] + memory[:1], tmp_path, resume=True, redo=True, measure_ceilings=False)
    assert resumed[0].run_id == summaries[0].run_id  # the latest run of these suites continues


def test_a_pass_runs_each_family_suite_by_suite_on_consecutive_chunks(tmp_path: Path) -> None:
    """With a process per family, a family's chunks run together, suite by suite in the pass's order,
    even when the suites list the families apart."""
    from harness.runner import _chunks_by_implementation, _families_together

    jobs = [
        Job("throughput", "fault/ok", TARGET, {"kind": "ok"}),
        Job("throughput", "attention/reference", TARGET, {"kind": "ok"}),
        Job("memory", "fault/raise", TARGET, {"kind": "ok"}),
        Job("memory", "attention/reference", TARGET, {"kind": "ok", "batch": 1}),
        Job("memory", "fault/ok", TARGET, {"kind": "ok"}),
    ]
    chunks = _families_together(_chunks_by_implementation(jobs))
    assert [(chunk[0].implementation, chunk[0].suite, len(chunk)) for chunk in chunks] == [
        ("fault/ok", "throughput", 1),
        ("fault/raise", "memory", 1),
        ("fault/ok", "memory", 1),
        ("attention/reference", "throughput", 1),
        ("attention/reference", "memory", 1),
    ]


def test_rows_record_the_head_dim_each_implementation_runs():
    """Mamba-2's heads split d_inner = expand·d_model: 32 heads over d_model 1024 (expand 2) are 64 wide,
    not d_model / n_heads = 32; attention's split d_model."""
    from harness.runner import Job

    config = {"d_model": 1024, "n_heads": 32, "expand": 2}
    mamba2 = Job("throughput", "mamba2/reference", "x:y", {"config": config}, {"measure": 1})
    attention = Job("throughput", "attention/reference", "x:y", {"config": config}, {"measure": 1})
    assert mamba2.columns()["head_dim"] == 64
    assert attention.columns()["head_dim"] == 32


def test_a_row_the_schema_cannot_hold_becomes_an_error_row_and_the_batch_is_kept(tmp_path: Path) -> None:
    summary = run_jobs([job("huge"), job("ok", seq_len=32)], tmp_path, measure_ceilings=False)
    frame = results.read_results(tmp_path).set_index("seq_len")
    assert frame.loc[32, "status"] == "ok" and frame.loc[32, "median_ms"] == 1.0  # the other job's row is kept
    (huge,) = [row for row in summary.rows if row["status"] == "error"]
    assert huge["reason"].startswith("row could not be stored: column 'oom_frontier_seq_len' does not fit type int64")
    stored = results.read_results(tmp_path)
    assert sorted(stored["status"]) == ["error", "ok"]
    assert "does not fit type int64" in stored.loc[stored.status == "error", "reason"].item()


def test_a_second_writer_into_a_locked_results_folder_is_refused(tmp_path: Path) -> None:
    with results.writer_lock(tmp_path):
        with pytest.raises(UserError, match=f"another seqbench run is writing to {tmp_path}") as refused:
            run_jobs([job()], tmp_path, measure_ceilings=False)
        assert "\n" not in str(refused.value)
        assert not list(tmp_path.glob("throughput/*/*.parquet"))  # no job ran
    assert len(run_jobs([job()], tmp_path, measure_ceilings=False).rows) == 1  # free again once released
    assert (tmp_path / results.LOCK_NAME).stat().st_size == 0  # empty: dataset readers skip it


def test_a_killed_writers_temporary_file_is_removed_by_the_next_run(tmp_path: Path) -> None:
    stale = tmp_path / "throughput" / "r0" / f"{results.TEMP_PREFIX}part-x{results.TEMP_SUFFIX}"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"PAR1 half a file")
    run_jobs([job()], tmp_path, measure_ceilings=False)
    assert not stale.exists()


def test_an_unwritable_log_folder_beside_the_results_fails_before_any_job(tmp_path: Path) -> None:
    (tmp_path / "results-logs").write_text("a file where the logs would go")
    with pytest.raises(UserError, match="results-logs is not writable"):
        run_jobs([job()], tmp_path / "results", measure_ceilings=False)
    assert not list((tmp_path / "results").rglob("*.parquet"))
