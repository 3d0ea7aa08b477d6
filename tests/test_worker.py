"""The isolated worker: each way a job can fail becomes one Outcome with the right status, and the worker
is reused while it lives. One worker serves the module (a spawn imports torch: seconds)."""

from __future__ import annotations

import pytest

from harness.worker import Worker, cache_environment, classify_exception

TARGET = "tests.fault_specs:behave"


@pytest.fixture(scope="module")
def worker():
    with Worker() as w:
        yield w


def test_ok_call_returns_the_value_and_reuses_the_process(worker: Worker) -> None:
    first = worker.call("tests.fault_specs:process_id", {}, 60)
    outcome = worker.call(TARGET, {"kind": "ok", "value": 3.0}, 60)
    second = worker.call("tests.fault_specs:process_id", {}, 60)
    assert outcome.status == "ok" and outcome.reason == ""
    assert outcome.value == {"median_ms": 3.0, "achieved_tflops": 6.0}
    assert first.value == second.value == worker.pid  # same process, not a fresh one per call


def test_exception_is_an_error_with_a_one_line_reason_and_the_worker_survives(worker: Worker) -> None:
    pid = worker.call("tests.fault_specs:process_id", {}, 60).value
    outcome = worker.call(TARGET, {"kind": "raise"}, 60)
    assert outcome.status == "error"
    assert outcome.reason == "ValueError: planted failure"
    assert "Traceback" in outcome.value  # the full traceback travels along, for the log
    assert worker.call("tests.fault_specs:process_id", {}, 60).value == pid


@pytest.mark.parametrize(
    ("kind", "reason"),
    [("cuda_oom", "OutOfMemoryError"), ("memory_error", "MemoryError"), ("cpu_alloc", "RuntimeError")],
)
def test_out_of_memory_errors_are_oom(worker: Worker, kind: str, reason: str) -> None:
    outcome = worker.call(TARGET, {"kind": kind}, 60)
    assert outcome.status == "oom"
    assert outcome.reason.startswith(reason)


def test_unavailable_inside_a_job(worker: Worker) -> None:
    outcome = worker.call(TARGET, {"kind": "unavailable"}, 60)
    assert (outcome.status, outcome.reason) == ("unavailable", "planted: not here")


def test_abort_is_a_crash_naming_the_signal_and_the_next_call_restarts(worker: Worker) -> None:
    starts = worker.starts
    outcome = worker.call(TARGET, {"kind": "abort"}, 60)
    assert outcome.status == "crash"
    assert "SIGABRT" in outcome.reason
    assert not worker.alive
    assert worker.call(TARGET, {"kind": "ok"}, 60).status == "ok"
    assert worker.starts == starts + 1


def test_timeouts_per_phase(worker: Worker) -> None:
    # Generous warm-up, tight measurement: the job reports "measure", then sleeps.
    outcome = worker.call(TARGET, {"kind": "sleep_in_measure"}, {"warmup": 60, "measure": 1.5})
    assert outcome.status == "timeout"
    assert outcome.reason == "exceeded 1.5 s in phase measure"
    assert 1.5 <= outcome.elapsed_s < 30
    # A single limit applies to the whole call.
    outcome = worker.call(TARGET, {"kind": "sleep"}, 1.0)
    assert (outcome.status, outcome.reason) == ("timeout", "exceeded 1 s in phase start")


def test_shared_compile_caches_unless_the_user_set_them(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("TRITON_CACHE_DIR", raising=False)
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/mine")
    env = cache_environment()
    assert env["TRITON_CACHE_DIR"] == str(tmp_path / "seqbench" / "triton")
    assert env["TRITON_CACHE_AUTOTUNING"] == "1"
    assert "TORCHINDUCTOR_CACHE_DIR" not in env  # the user's choice stands


def test_worker_sees_the_cache_environment(worker: Worker) -> None:
    expected = cache_environment().get("TRITON_CACHE_DIR")
    if expected is None:
        pytest.skip("TRITON_CACHE_DIR set by the user")
    assert worker.call("tests.fault_specs:environment", {"name": "TRITON_CACHE_DIR"}, 60).value == expected


def test_preloaded_modules_are_imported_before_the_first_job_and_a_missing_one_is_skipped() -> None:
    with Worker(preload=("colorsys", "no_such_module_anywhere")) as preloading, Worker() as plain:
        assert preloading.call("tests.fault_specs:loaded", {"module": "colorsys"}, 60).value is True
        assert plain.call("tests.fault_specs:loaded", {"module": "colorsys"}, 60).value is False


def test_classify_exception_recognises_oom_messages() -> None:
    assert classify_exception(RuntimeError("CUDA error: out of memory")).status == "oom"
    assert classify_exception(RuntimeError("out of resource: shared memory")).status == "error"


def test_not_implemented_is_unavailable() -> None:
    outcome = classify_exception(NotImplementedError("Backward pass for fused_recurrent is not implemented"))
    assert outcome.status == "unavailable" and "NotImplementedError: Backward pass" in outcome.reason


def test_runner_restarts_the_worker_after_an_error_but_not_after_unavailable(worker: Worker) -> None:
    from harness.executors.base import run_job
    from harness.runner import Job

    def job(kind: str) -> Job:
        return Job("throughput", "attention/reference", TARGET, {"kind": kind}, {"warmup": 60, "measure": 60})

    pid = worker.call("tests.fault_specs:process_id", {}, 60).value
    assert run_job(worker, job("unavailable"), None).status == "unavailable"
    assert worker.call("tests.fault_specs:process_id", {}, 60).value == pid  # same process: nothing to reset
    assert run_job(worker, job("raise"), None).status == "error"
    assert worker.call("tests.fault_specs:process_id", {}, 60).value != pid  # restarted after a failure
