"""Executors: one sweep with planted faults (tests/fault_specs.py) run by the local executor with two worker
slots, by Ray (a local instance with 2 CPUs) and by submitit's local executor gives the same job ids, the
same statuses and reasons, the same job columns; only `executor` (and provenance) differ. Parquet reads
back, resume finishes only the missing jobs, a task lost as a whole becomes crash rows, and GPU slots are
planned from CUDA_VISIBLE_DEVICES without a GPU."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import harness.worker
from harness import results
from harness.cli import cli
from harness.commands.run import RunOptions
from harness.errors import UserError
from harness.executors import LocalExecutor, RunContext, make_executor
from harness.executors import base as executors_base
from harness.executors import local as local_executor
from harness.executors.base import JobDone
from harness.runner import Job, RunSummary, run_jobs
from suites import throughput as throughput_suite

SPECS = {"SEQBENCH_EXTRA_SPECS": "tests.fault_specs"}
PRESET = {
    "name": "test",
    "device": "cpu",
    "dtypes": ["float32"],
    "modes": ["fwd"],
    "levels": ["layer"],
    "config": {"d_model": 16, "n_heads": 2},
    "sweeps": [{"shape": "fixed_batch", "batch": 2, "seq_lens": [16, 32]}],
    "timing": {"budget_s": 0.01, "min_reps": 3, "min_time_s": 0.0, "warmup_max_calls": 2},
    # Generous: on 2 busy cores a worker's first job includes importing torch. The sleeper gets its own.
    "timeouts": {"warmup_s": 60, "measure_s": 30},
}
SLEEP_TIMEOUTS_S = {"warmup": 2.0, "measure": 2.0}
EXPECTED = {  # implementation -> (status, reason), every job of it
    "attention/reference": ("ok", ""),
    "fault/raise": ("error", "RuntimeError: planted failure while building"),
    "fault/abort": ("crash", "worker killed by SIGABRT: worker closed its pipe"),
    "fault/sleep": ("timeout", "exceeded 2 s in phase warmup"),
    "fault/cuda_oom": ("oom", "OutOfMemoryError: CUDA out of memory. Tried to allocate 80.00 GiB (planted)"),
    "fault/cuda_only": ("unavailable", "runs on cuda only, not cpu"),
}
TWO_LENGTHS = ("attention/reference", "fault/abort")  # a chunk of two jobs; the others keep L=16 only
JOB_COLUMNS = ["job_id", "suite", "implementation", "family", "backend", "level", "mode", "device", "dtype"]
JOB_COLUMNS += ["batch", "seq_len", "d_model", "n_heads", "head_dim", "status", "reason"]


def planted_sweep() -> list[Job]:
    options = RunOptions(None, Path("unused"), False, False, "cpu", tuple(EXPECTED), (), (), (), (), (), None)
    jobs = throughput_suite.build_jobs(PRESET, options, "cpu")
    jobs = [j for j in jobs if j.implementation in TWO_LENGTHS or j.params.get("seq_len") == 16]
    for job in jobs:
        if job.implementation == "fault/sleep":
            job.timeouts_s = dict(SLEEP_TIMEOUTS_S)  # not part of the job id
    return jobs


@pytest.fixture(scope="module")
def specs() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in SPECS.items():
            patch.setenv(key, value)
        yield


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[object]:
    """One Ray instance for the module (starting one takes seconds); executors find it and leave it up."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def sweep(
    executor_name: str, directory: Path, extra: list[Job] | None = None, **options: object
) -> tuple[RunSummary, pd.DataFrame]:
    jobs = planted_sweep() + (extra or [])
    summary = run_jobs(jobs, directory, executor=make_executor(executor_name, **options), command="test")
    return summary, results.read_results(directory)


def kill_parent(**_: object) -> dict:
    """A job target that kills the process running the worker (the Ray worker, the Slurm job): the task
    is lost as a whole, as when its node dies. Never run it with the local executor (it would kill pytest)."""
    os.kill(os.getppid(), signal.SIGKILL)
    return {}


def lost_chunk() -> list[Job]:
    """One chunk of two jobs whose task dies under them: both must become crash rows."""
    base = {"device": "cpu", "dtype": "float32", "mode": "fwd", "batch": 2, "config": {"d_model": 16}}
    target = f"{__name__}:kill_parent"
    return [Job("throughput", "fault/memory_error", target, {**base, "seq_len": n}) for n in (16, 32)]


def check_lost(frame: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """The lost chunk's rows are crashes with the cluster's error in one line; the rest is returned."""
    lost_ids = {job.job_id for job in lost_chunk()}
    lost = frame[frame.job_id.isin(lost_ids)]
    assert set(lost.job_id) == lost_ids and (lost.status == "crash").all()
    assert all(reason.startswith(prefix) and "\n" not in reason for reason in lost.reason), lost.reason.tolist()
    return frame[~frame.job_id.isin(lost_ids)]


@pytest.fixture(scope="module")
def local_sweep(specs: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[RunSummary, pd.DataFrame]:
    return sweep("local", tmp_path_factory.mktemp("local"), workers=2)


def job_table(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[JOB_COLUMNS].sort_values(["job_id", "seq_len"]).reset_index(drop=True)


def check_sweep(summary: RunSummary, frame: pd.DataFrame, executor: str) -> None:
    jobs = planted_sweep()
    assert len(jobs) == len(EXPECTED) + len(TWO_LENGTHS)
    assert sorted(frame.job_id) == sorted(j.job_id for j in jobs)  # one row per job, none lost or doubled
    for name, (status, reason) in EXPECTED.items():
        rows = frame[frame.implementation == name]
        assert (rows.status == status).all(), (name, rows.reason.tolist())
        assert (rows.reason == reason).all(), (name, rows.reason.tolist())
    assert (frame.executor == executor).all() and frame.gpu_index.isna().all()  # CPU: no GPU index
    assert frame.host_fingerprint.notna().all() and frame.torch_version.notna().all()
    ok = frame[frame.status == "ok"]
    assert (ok.median_ms > 0).all() and (ok.reps >= 3).all()
    assert not summary.interrupted and summary.skipped == 0
    for path in results.result_files(summary.run_dir):  # every file is a checked seqbench file with the new columns
        schema = results.check_file_schema(path)
        assert schema.field("executor").type == results.STRING and schema.field("gpu_index").type == results.INT


def test_local_executor_with_two_slots_runs_the_planted_sweep(local_sweep: tuple[RunSummary, pd.DataFrame]) -> None:
    summary, frame = local_sweep
    check_sweep(summary, frame, "local")
    # Both slots ran jobs: each slot's worker log names the jobs it ran.
    logs = [summary.log_path.parent / f"worker-slot{i}.log" for i in (0, 1)]  # beside the results, not in them
    assert all("=== " in log.read_text() for log in logs)


def test_ray_gives_the_same_rows_as_local_and_a_lost_task_becomes_crash_rows(
    ray_instance: object, local_sweep: tuple[RunSummary, pd.DataFrame], tmp_path: Path
) -> None:
    summary, frame = sweep("ray", tmp_path, extra=lost_chunk())
    frame = check_lost(frame, "ray task lost: ")  # e.g. ActorDiedError / WorkerCrashedError: the worker died
    check_sweep(summary, frame, "ray")
    pd.testing.assert_frame_equal(job_table(frame), job_table(local_sweep[1]))
    assert ray_instance.is_initialized()  # an instance the executor did not start is left running


def test_submitit_gives_the_same_rows_as_local_and_a_lost_task_becomes_crash_rows(
    local_sweep: tuple[RunSummary, pd.DataFrame], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    submitit = pytest.importorskip("submitit")
    # submitit waits 15 s for a result file a slow shared file system may not show yet; locally there is none.
    monkeypatch.setattr(submitit.core.core.Job, "_results_timeout_s", 1)
    folder = tmp_path / "submitit" / "%j"
    summary, frame = sweep("submitit", tmp_path / "results", extra=lost_chunk(), cluster="local", folder=folder)
    # submitit's two first lines: which array task, and "has not produced any output (state: ...)"
    frame = check_lost(frame, "slurm task lost: UncompletedJobError: Job ")
    check_sweep(summary, frame, "submitit")
    pd.testing.assert_frame_equal(job_table(frame), job_table(local_sweep[1]))


# ---------------------------------------------------------------------------------------------
# resume


def quick_jobs(n: int, chunks: int = 2, target: str = "tests.fault_specs:behave") -> list[Job]:
    """Cheap jobs over `chunks` implementations, alternating (names only: the target decides what happens)."""
    names = ("fault/ok", "fault/cuda_oom", "fault/memory_error")[:chunks]
    base = {"kind": "ok", "device": "cpu", "dtype": "float32", "mode": "fwd", "batch": 2}
    return [
        Job("throughput", names[i % chunks], target, {**base, "seq_len": 16 * (i + 1), "config": {"d_model": 16}})
        for i in range(n)
    ]


@pytest.mark.parametrize("executor_name", ["local", "ray"])
def test_an_interrupted_run_resumes_with_only_the_missing_jobs(
    executor_name: str, specs: None, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if executor_name == "ray":
        request.getfixturevalue("ray_instance")
    jobs = quick_jobs(4)  # two chunks of two jobs
    seen: list[str] = []

    def interrupt_after_two(row: dict) -> None:
        seen.append(row["job_id"])
        if len(seen) == 2:
            raise KeyboardInterrupt  # what Ctrl-C does in the middle of a sweep

    executor = make_executor(executor_name, workers=2)
    first = run_jobs(jobs, tmp_path, on_row=interrupt_after_two, measure_ceilings=False, executor=executor)
    assert first.interrupted
    assert results.done_job_ids(tmp_path, "throughput") == set(seen)  # what finished was written, nothing else

    executor = make_executor(executor_name, workers=2)
    resumed = run_jobs(jobs, tmp_path, resume=True, measure_ceilings=False, executor=executor)
    assert resumed.run_id == first.run_id and not resumed.interrupted
    assert resumed.skipped == 2 and {row["job_id"] for row in resumed.rows} == {j.job_id for j in jobs} - set(seen)
    frame = results.read_results(tmp_path)
    assert sorted(frame.job_id) == sorted(j.job_id for j in jobs)  # each job exactly once
    assert (frame.status == "ok").all() and (frame.executor == executor_name).all()


# ---------------------------------------------------------------------------------------------
# GPU slots without a GPU, schema compatibility, options


@pytest.mark.parametrize(
    ("visible", "expected"),
    [("2,3", ["2", "3"]), ("0,-1,1", ["0"]), ("", []), ("GPU-8f3e,1", ["GPU-8f3e", "1"])],
)
def test_visible_gpus_follow_cuda_visible_devices(
    visible: str, expected: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert executors_base.visible_gpus() == expected


def test_local_slots_pin_one_gpu_each(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    context = RunContext("throughput", tmp_path, "cuda", {"X": "1"}, True)
    slots = LocalExecutor()._plan_slots(context)
    assert [(s.gpu_index, s.env["CUDA_VISIBLE_DEVICES"], s.env["X"]) for s in slots] == [(2, "2", "1"), (3, "3", "1")]
    assert [s.log_path.name for s in slots] == ["worker-gpu2.log", "worker-gpu3.log"]
    one = LocalExecutor(workers=1)._plan_slots(context)  # one slot: unpinned, as before executors existed
    assert len(one) == 1 and "CUDA_VISIBLE_DEVICES" not in one[0].env and one[0].gpu_index == 2
    assert LocalExecutor()._plan_slots(RunContext("throughput", tmp_path, "cuda:1", {}, True))[0].gpu_index == 3
    with pytest.raises(UserError, match="only 2 GPU"):
        LocalExecutor(workers=3)._plan_slots(context)
    cpu = LocalExecutor(workers=2)._plan_slots(RunContext("throughput", tmp_path, "cpu", {}, False))
    assert [s.gpu_index for s in cpu] == [None, None] and "CUDA_VISIBLE_DEVICES" not in cpu[0].env


def test_gpu_slots_pin_their_workers_and_leave_this_process_environment_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Two pretend GPUs on a CPU machine: each job's worker sees exactly its slot's GPU in
    CUDA_VISIBLE_DEVICES, both slots take chunks, and this process's environment is as it was (the pin
    travels to the worker as an argument, never through this process's os.environ)."""
    monkeypatch.setattr(local_executor, "visible_gpus", lambda: ["0", "1"])
    monkeypatch.setattr(Job, "unavailable_reason", lambda self: None)  # cuda "runs" here: nothing touches it
    seen: list[dict[str, str]] = []
    original_start = harness.worker.Worker.start

    def watching_start(self: harness.worker.Worker) -> None:
        seen.append(dict(os.environ))
        original_start(self)
        seen.append(dict(os.environ))

    monkeypatch.setattr(harness.worker.Worker, "start", watching_start)
    before = dict(os.environ)
    executor = LocalExecutor()
    executor.open(RunContext("throughput", tmp_path, "cuda", {}, False))
    target = "tests.fault_specs:environment"
    chunks = [[Job("throughput", f"fault/{i}", target, {"name": "CUDA_VISIBLE_DEVICES"})] for i in range(6)]
    done = [event for event in executor.run(chunks) if isinstance(event, JobDone)]
    assert len(done) == 6 and all(event.outcome.status == "ok" for event in done)
    assert all(event.outcome.value == str(event.placement["gpu_index"]) for event in done)
    assert {event.placement["gpu_index"] for event in done} == {0, 1}
    assert dict(os.environ) == before
    assert seen and all(environment == before for environment in seen)  # unchanged during every start, too


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process start times from /proc")
def test_the_next_familys_process_starts_while_the_current_family_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Job, "unavailable_reason", lambda self: None)  # bare targets, no registered adapter
    executor = LocalExecutor()
    executor.open(RunContext("throughput", tmp_path, "cpu", {}, True))  # a process per family, as on CUDA
    target = "tests.fault_specs:process_age_s"
    chunks = [
        [Job("throughput", "fault/first", target, {"sleep_s": 5.0})],
        [Job("throughput", "fault/second", target, {})],
    ]
    done = [event for event in executor.run(chunks) if isinstance(event, JobDone)]
    assert [event.outcome.status for event in done] == ["ok", "ok"], [event.outcome.reason for event in done]
    (first_pid, _), (second_pid, second_age_s) = (event.outcome.value for event in done)
    assert first_pid != second_pid  # still one process per family
    # Started as a spare when the first family began, 5 s of the first job ago (a start on demand would
    # be younger than its own torch import, ~2-3 s here).
    assert second_age_s >= 4.5
    assert not harness.worker.mp.active_children()  # the run leaves no spare behind


def test_a_spare_process_is_taken_by_the_next_start_and_shut_down_with_the_worker() -> None:
    worker = harness.worker.Worker()
    worker.start_spare()
    spare_pid = worker._spare[0].pid
    worker.start()
    assert worker.pid == spare_pid and worker.starts == 1
    worker.start_spare()
    spare = worker._spare[0]
    worker.shutdown()
    assert not worker.alive and not spare.is_alive()


def test_files_written_before_the_placement_columns_still_read(tmp_path: Path) -> None:
    row = {
        "schema_version": results.SCHEMA_VERSION,
        "run_id": "r",
        "job_id": "old",
        "timestamp": results.utc_now(),
        "suite": "throughput",
        "implementation": "fault/ok",
        "status": "ok",
    }
    table = results.rows_to_table([row]).drop_columns(["executor", "gpu_index"])
    (tmp_path / "throughput" / "r").mkdir(parents=True)
    pq.write_table(table, tmp_path / "throughput" / "r" / "old.parquet")
    results.write_rows([{**row, "job_id": "new", "executor": "local", "gpu_index": 1}], tmp_path, "r")
    results.check_results_dir(tmp_path)  # the old file passes the schema check
    frame = results.read_results(tmp_path).set_index("job_id")
    assert pd.isna(frame.loc["old", "gpu_index"]) and frame.loc["new", "gpu_index"] == 1
    assert pd.isna(frame.loc["old", "executor"]) and frame.loc["new", "executor"] == "local"


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["run", "throughput", "--preset", "cpu", "--name", "attention/reference", *args])
    return result.exit_code, result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--ray-address", "auto"), "Error: --ray-address needs --executor ray"),
        (("--slurm-partition", "gpu"), "Error: --slurm-partition need(s) --executor submitit"),
        (("--executor", "submitit", "--workers", "2"), "Error: --workers does not apply to --executor submitit"),
        (
            (
                "--workers",
                "0",
            ),
            "Error: --workers must be a positive integer, got 0",
        ),
        (("--executor", "ray"), "Error: --executor ray needs ray"),
        (("--executor", "submitit"), "Error: --executor submitit needs submitit"),
    ],
)
def test_executor_options_fail_in_one_line(
    args: tuple[str, ...], message: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed: `import ray` raises ImportError
    monkeypatch.setitem(sys.modules, "submitit", None)
    code, err = run_cli("--results", str(tmp_path), *args)
    assert code == 2 and err.startswith(message), err
    assert err.strip().count("\n") == 0
    if "needs ray" in message or "needs submitit" in message:
        assert "pip install 'seqbench[" in err


def test_training_slots_share_each_gpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """--slots-per-gpu 3 on two GPUs: three slots pinned to each (recall's trainings share a card), and the
    jobs of one implementation spread over the slots instead of running in a row."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    context = RunContext("recall", tmp_path, "cuda", {"X": "1"}, True)
    executor = LocalExecutor(slots_per_gpu=3)
    slots = executor._plan_slots(context)
    assert [(s.gpu_index, s.env["CUDA_VISIBLE_DEVICES"]) for s in slots] == [(2, "2")] * 3 + [(3, "3")] * 3
    assert slots[4].log_path.name == "worker-gpu3-slot1.log" and all(s.env["X"] == "1" for s in slots)
    assert executor.one_job_per_chunk and not LocalExecutor().one_job_per_chunk
    one_gpu = LocalExecutor(slots_per_gpu=2)._plan_slots(RunContext("recall", tmp_path, "cuda:1", {}, True))
    # cuda:1 is the second visible GPU, physical index 3; its slots see what this process sees
    assert [s.gpu_index for s in one_gpu] == [3, 3] and "CUDA_VISIBLE_DEVICES" not in one_gpu[0].env
    with pytest.raises(UserError, match="positive"):
        LocalExecutor(slots_per_gpu=0)


def test_slots_per_gpu_bad_uses_are_one_line_errors() -> None:
    result = CliRunner().invoke(cli, ["run", "throughput", "--preset", "cpu", "--slots-per-gpu", "2"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: --slots-per-gpu needs a GPU") and result.output.count("\n") == 1


def test_timed_suites_refuse_to_share_a_gpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from harness.execute import _check_slots_per_gpu
    from harness.suite import SuitePlan

    options = RunOptions(
        preset=None, results=tmp_path, redo=False, resume=False, device="cuda", names=(), families=(),
        seq_lens=(), batches=(), dtypes=(), modes=(), timeout_s=None, slots_per_gpu=4,
    )  # fmt: skip
    with pytest.raises(UserError, match="applies to --executor local"):
        RunOptions(**{**options.__dict__, "executor": "ray"}).make_executor()
    with pytest.raises(UserError, match="throughput's jobs must not share a GPU"):
        _check_slots_per_gpu(options, [SuitePlan("throughput", "cuda", [])], "cuda")
    _check_slots_per_gpu(options, [SuitePlan("recall", "cuda", [])], "cuda")  # trainings may
