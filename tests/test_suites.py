"""The throughput and memory suites on CPU: a sweep with planted faults ends with one row per job and the
right status; derived metrics follow their definitions; the memory frontier and state bytes match
closed forms; bad input is a one-line error before any job starts."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner

from harness import results
from harness.cli import cli
from harness.commands.run import RunOptions
from harness.runner import run_jobs
from suites import PRESETS_DIR, load_preset, preset_names
from suites import memory as memory_suite
from suites import throughput as throughput_suite

CONFIG = {"d_model": 16, "n_heads": 2}


@pytest.fixture(autouse=True)
def planted_specs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQBENCH_EXTRA_SPECS", "tests.fault_specs")


def options(**overrides: object) -> RunOptions:
    values = dict(
        preset=None,
        results=Path("results"),
        redo=False,
        resume=False,
        device="auto",
        names=(),
        families=(),
        seq_lens=(),
        batches=(),
        dtypes=(),
        modes=(),
        timeout_s=None,
    )
    return RunOptions(**{**values, **overrides})


def throughput_preset(**overrides: object) -> dict:
    preset = {
        "name": "test",
        "device": "cpu",
        "dtypes": ["float32"],
        "modes": ["fwd"],
        "levels": ["layer"],
        "config": CONFIG,
        "sweeps": [{"shape": "fixed_batch", "batch": 2, "seq_lens": [16]}],
        "timing": {"budget_s": 0.01, "min_reps": 3, "min_time_s": 0.0, "warmup_max_calls": 2},
        "timeouts": {"warmup_s": 4, "measure_s": 3},
    }
    return {**preset, **overrides}


EXPECTED = {
    "attention/reference": ("ok", ""),
    "fault/ok": ("ok", ""),
    "fault/raise": ("error", "RuntimeError: planted failure while building"),
    "fault/abort": ("crash", "worker killed by SIGABRT"),
    "fault/sleep": ("timeout", "exceeded 4 s in phase warmup"),
    "fault/slow_measure": ("timeout", "exceeded 3 s in phase measure"),
    "fault/cuda_oom": ("oom", "OutOfMemoryError: CUDA out of memory"),
    "fault/memory_error": ("oom", "MemoryError: planted"),
    "fault/cuda_only": ("unavailable", "runs on cuda only, not cpu"),
}


def test_a_sweep_with_planted_faults_finishes_with_one_row_per_job(tmp_path: Path) -> None:
    jobs = throughput_suite.build_jobs(throughput_preset(), options(names=tuple(EXPECTED)), "cpu")
    assert len(jobs) == len(EXPECTED)
    summary = run_jobs(jobs, tmp_path, command="test")
    frame = results.read_results(tmp_path)
    assert len(frame) == len(jobs) and set(frame.job_id) == {j.job_id for j in jobs}  # exactly one row each
    for name, (status, reason) in EXPECTED.items():
        row = frame[frame.implementation == name].iloc[0]
        assert row.status == status, (name, row.reason)
        assert row.reason.startswith(reason), (name, row.reason)
    ok = frame[frame.status == "ok"]
    assert (ok.median_ms > 0).all() and (ok.reps >= 3).all() and (ok.timer == "host").all()
    assert frame[frame.status != "ok"].median_ms.isna().all()
    assert summary.counts() == {"ok": 2, "error": 1, "crash": 1, "timeout": 2, "oom": 2, "unavailable": 1}


def test_every_mode_and_level_and_the_derived_metrics(tmp_path: Path) -> None:
    preset = throughput_preset(
        modes=["fwd", "fwd_bwd", "prefill", "decode"], levels=["layer", "op"], op_modes=["fwd", "fwd_bwd"]
    )
    jobs = throughput_suite.build_jobs(preset, options(names=("attention/reference",)), "cpu")
    assert len(jobs) == 6  # 4 layer modes + 2 op modes
    run_jobs(jobs, tmp_path)
    frame = results.read_results(tmp_path).set_index(["level", "mode"])
    assert (frame.status == "ok").all(), frame.reason.tolist()
    from harness.config import MixerConfig
    from implementations.attention.specs import attention_core_flops, attention_flops

    cfg = MixerConfig(**CONFIG)
    batch, seq_len = 2, 16
    for (level, mode), row in frame.iterrows():
        seconds = row.median_ms / 1e3
        tokens = batch if mode == "decode" else batch * seq_len
        assert row.tokens_per_second == pytest.approx(tokens / seconds)
        model = attention_core_flops if level == "op" else attention_flops
        assert row.flops == pytest.approx(model(cfg, batch, seq_len, mode))
        assert row.achieved_tflops == pytest.approx(row.flops / seconds / 1e12)
        assert row.achieved_gbps == pytest.approx(row.min_bytes / seconds / 1e9)
        assert row.frac_peak_tflops == pytest.approx(row.achieved_tflops / row.peak_matmul_tflops)
        assert len(row.samples_ms) == row.reps and row.compile_s >= 0


def test_memory_frontier_doubles_until_oom_then_bisects_once(tmp_path: Path) -> None:
    preset = {
        "name": "test",
        "device": "cpu",
        "dtypes": ["float32"],
        "modes": ["fwd", "decode"],
        "batch": 2,
        "seq_lens": [64, 128],
        "frontier": True,
        "max_seq_len": 1024,
        "state_seq_lens": [32, 64],
        "config": {**CONFIG, "n_heads": 4},
    }
    jobs = memory_suite.build_jobs(preset, options(names=("fault/oom_above_256", "attention/reference")), "cpu")
    run_jobs(jobs, tmp_path)
    frame = results.read_results(tmp_path)
    fwd = frame[(frame.implementation == "fault/oom_above_256") & (frame["mode"] == "fwd")].sort_values("probe")
    tried = dict(zip(fwd.seq_len, fwd.status, strict=True))
    # 64, 128 (the sweep), 256 fits, 512 does not, bisection (256 + 512) / 2 = 384 does not.
    assert tried == {64: "ok", 128: "ok", 256: "ok", 512: "oom", 384: "oom"}
    assert (fwd.oom_frontier_seq_len == 256).all()
    assert set(fwd.probe) == {"sweep", "frontier", "bisection"}
    assert (fwd[fwd.status == "ok"].peak_memory_bytes > 0).all()
    # Attention never runs out at these sizes: no frontier, searched up to max_seq_len.
    attention = frame[(frame.implementation == "attention/reference") & (frame["mode"] == "fwd")]
    assert attention.oom_frontier_seq_len.isna().all() and attention.searched_up_to_seq_len.max() == 1024
    # The causal score matrix (B, H, L, L) in float32 is alive at the peak.
    at_1k = attention[attention.seq_len == 1024].iloc[0]
    assert at_1k.peak_memory_bytes >= 2 * 4 * 1024 * 1024 * 4
    # Decode state: a KV cache of K and V; prefill leaves room for max(L + 64, 2L) positions.
    state = frame[(frame.implementation == "attention/reference") & (frame["mode"] == "decode")]
    for _, row in state.iterrows():
        per_position = 2 * 2 * 4 * 4 * 4  # K and V, B = 2, H = 4, head_dim 4, float32
        assert row.state_bytes_analytic == per_position * row.seq_len
        assert row.state_bytes_measured == per_position * max(row.seq_len + 64, 2 * row.seq_len)
        # Used: the filled positions only, which is what the analytic model counts.
        assert row.state_bytes_used == per_position * row.seq_len


def test_cpu_peak_memory_of_a_known_allocation() -> None:
    n = 1 << 20
    peak, method = memory_suite.peak_bytes(lambda: torch.ones(n, dtype=torch.float32), "cpu")
    assert method == "cpu_heap_per_op"
    assert peak == pytest.approx(4 * n, rel=0.01)


def test_storage_bytes_counts_each_storage_once() -> None:
    buffer = torch.zeros(10, 8, dtype=torch.float64)  # 640 bytes
    state = {"k": buffer[:4], "v": (buffer[4:], torch.zeros(3, dtype=torch.int32)), "n": 5}
    assert memory_suite.storage_bytes(state) == 640 + 12


def test_used_bytes_counts_a_cache_without_its_spare_capacity() -> None:
    from implementations.attention import KVCache

    # B 2, H 3, capacity 10, head_dim 4, float32; 7 positions filled: used 2 * (2*3*7*4) * 4 bytes.
    cache = KVCache(torch.zeros(2, 3, 10, 4), torch.zeros(2, 3, 10, 4), 7)
    other = torch.zeros(5, dtype=torch.float64)  # 40 bytes, counted whole
    state = {"cache": cache, "extra": [other, other[:2]]}
    assert memory_suite.used_bytes(state) == 2 * 2 * 3 * 7 * 4 * 4 + 40
    assert memory_suite.storage_bytes(state) == 2 * 2 * 3 * 10 * 4 * 4 + 40


def test_sweep_points() -> None:
    sweeps = [
        {"shape": "constant_tokens", "tokens": 4096, "seq_lens": [1024, 2048, 8192]},
        {"shape": "fixed_batch", "batch": 2, "seq_lens": [1024, 2048]},
    ]
    assert throughput_suite.sweep_points(sweeps) == [(4, 1024), (2, 2048), (2, 1024)]  # (2, 2048) once
    assert throughput_suite.sweep_points(sweeps, seq_lens=(64,)) == [(64, 64), (2, 64)]
    assert throughput_suite.sweep_points(sweeps, batches=(1,), seq_lens=(8,)) == [(1, 8)]


@pytest.mark.parametrize("suite", ["throughput", "memory"])
def test_every_preset_parses_and_builds_jobs(suite: str) -> None:
    names = preset_names(suite)
    assert {"cpu", "quick", "full"} <= set(names)
    build = throughput_suite.build_jobs if suite == "throughput" else memory_suite.build_jobs
    for name in names:
        preset = load_preset(suite, name)
        jobs = build(preset, options(), preset["device"])
        assert jobs, name
        assert len({j.job_id for j in jobs}) == len(jobs)
    cpu_jobs = build(load_preset(suite, "cpu"), options(), "cpu")
    assert {j.implementation for j in cpu_jobs} >= {"attention/reference"}
    assert all(j.implementation.split("/")[0] != "fault" for j in cpu_jobs)  # references only
    assert (PRESETS_DIR / suite / "cpu.toml").is_file()


@pytest.mark.parametrize("suite", ["throughput", "memory"])
def test_gpu_quick_presets_leave_references_to_check_unless_named(suite: str) -> None:
    from harness import registry

    build = throughput_suite.build_jobs if suite == "throughput" else memory_suite.build_jobs
    preset = load_preset(suite, "quick")
    assert preset["references"] is False
    chosen = {job.implementation for job in build(preset, options(), "cuda")}
    assert chosen and not any(registry.get(name).is_reference for name in chosen)
    assert "attention/sdpa_flash" in chosen
    named = build(preset, options(names=("attention/reference",)), "cuda")
    assert {job.implementation for job in named} == {"attention/reference"}


# ---------------------------------------------------------------------------------------------
# the command line


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["run", *args])
    return result.exit_code, result.output


def test_run_lists_the_discovered_suites() -> None:
    code, output = invoke("--help")
    assert code == 0 and "throughput" in output and "memory" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["throughput", "--preset", "quik"], "Error: unknown throughput preset 'quik'; did you mean quick?"),
        (["memory", "--seq-len", "0"], "Error: --seq-len must be a positive integer, got 0"),
        (["throughput", "--batch", "-2"], "Error: --batch must be a positive integer, got -2"),
        (["throughput", "--mode", "sideways"], "Error: unknown throughput mode 'sideways'"),
        (["throughput", "--timeout", "0"], "Error: --timeout must be positive, got 0"),
    ],
)
def test_bad_input_is_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    extra = [] if "--preset" in args else ["--preset", "cpu"]
    code, output = invoke(*args, *extra, "--results", str(tmp_path))
    assert code == 2
    assert output.startswith(message), output
    assert output.count("\n") == 1
    assert not any(tmp_path.iterdir())  # nothing ran, nothing written


def test_unwritable_or_foreign_results_directory_is_refused_before_any_job(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    code, output = invoke("throughput", "--preset", "cpu", "--results", str(a_file / "sub"))
    assert code == 2 and "is not writable" in output.splitlines()[-1]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    pq.write_table(pa.table({"x": [1]}), foreign / "data.parquet")
    code, output = invoke("memory", "--preset", "cpu", "--results", str(foreign))
    assert code == 2 and "is not a seqbench results file" in output.splitlines()[-1]
    assert sorted(p.name for p in foreign.iterdir()) == ["data.parquet"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
def test_a_gpu_preset_without_a_gpu_is_refused() -> None:
    code, output = invoke("throughput", "--preset", "quick")
    assert code == 2 and "no CUDA device is visible" in output


def test_bench_runs_several_suites_in_one_pass_under_one_run_id(tmp_path: Path) -> None:
    """`seqbench bench`: each suite's rows in its own directory under one run id, each suite's summary,
    and the time per suite (also as JSON, for `nox -s bench`)."""
    import json

    times = tmp_path / "times.json"
    args = ["bench", "--suites", "throughput,memory,profile", "--preset", "cpu", "--name", "attention/reference"]
    args += ["--seq-len", "16", "--results", str(tmp_path / "results"), "--times-json", str(times)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    frame = results.read_results(tmp_path / "results")
    assert set(frame.suite) == {"throughput", "memory", "profile"}
    assert frame.run_id.nunique() == 1 and set(frame.implementation) == {"attention/reference"}
    assert (frame.status == "ok").all()
    assert "time per suite (its jobs' wall time): throughput" in result.output
    # Each finished job's line says its suite's progress and time left (harness.progress); the last one, done.
    assert re.search(r"\[throughput 1/\d+, ~\d+ (s|min) left, stage ETA \d\d:\d\d\]", result.output)
    assert re.search(r"\[profile (\d+)/\1, done\]", result.output)
    # and it ends with the measured numbers, as `seqbench show` prints them
    assert "throughput: " in result.output and "median ms" in result.output and "peak memory" in result.output
    recorded = json.loads(times.read_text())
    assert list(recorded["suites_s"]) == ["throughput", "memory", "profile"]
    assert recorded["pass_s"] >= sum(recorded["suites_s"].values()) > 0


def test_bench_plans_recall_with_its_own_preset_and_refuses_unknown_suites() -> None:
    from harness.commands.bench import _plans

    plans = _plans(["throughput", "recall"], options(preset="cpu", modes=("fwd",), seq_lens=(16,)), None)
    assert [plan.suite for plan in plans] == ["throughput", "recall"]
    assert {plan.device for plan in plans} == {"cpu"}
    # recall-cpu's cells (MQAR at L 16, selective copying at L 32): --mode and --seq-len are the other suites'
    assert {(job.params["task"], job.params["seq_len"]) for job in plans[1].jobs} == {
        ("mqar", 16),
        ("selective-copying", 32),
    }
    result = CliRunner().invoke(cli, ["bench", "--suites", "throughput,speed"])
    assert result.exit_code == 2 and "--suites: unknown speed" in result.output
    result = CliRunner().invoke(cli, ["bench", "--suites", " , "])
    assert result.exit_code == 2 and result.output == "Error: --suites names no suite\n"


@pytest.mark.parametrize("preset", ["cpu", "quick", "full"])
def test_every_suite_of_the_pass_has_the_presets_nox_bench_names(preset: str) -> None:
    """`nox -s bench -- --preset P` runs P of throughput, memory and profile in one pass: each has it."""
    from harness.commands.bench import _plans

    device = "cpu" if preset == "cpu" else "cuda"
    for suite in ("throughput", "memory", "profile"):
        assert preset in preset_names(suite), suite
        assert load_preset(suite, preset)["device"] == device
    if device == "cpu" or torch.cuda.is_available():
        plans = _plans(["throughput", "memory", "profile"], options(preset=preset), None)
        assert all(plan.jobs for plan in plans)


def test_a_run_into_a_folder_another_run_writes_is_one_line(tmp_path: Path) -> None:
    from harness import results

    args = ["throughput", "--preset", "cpu", "--name", "attention/reference", "--results", str(tmp_path)]
    with results.writer_lock(tmp_path):
        code, output = invoke(*args)
    assert code == 2
    assert output == (
        f"Error: another seqbench run is writing to {tmp_path} (it holds {tmp_path / results.LOCK_NAME}); "
        "wait for it to finish, or give another --results folder\n"
    )


def test_a_family_may_be_timed_in_its_own_dtypes() -> None:
    """dtypes_by_family (the quick presets' LSTM in float16: cuDNN's LSTM takes no bf16 here) replaces the
    preset's dtypes for that family alone; --dtype replaces both; an unknown family is a one-line error."""
    from harness.errors import UserError

    preset = throughput_preset(dtypes_by_family={"lstm": ["float64"]})
    chosen = options(names=("lstm/reference", "attention/reference"))
    jobs = throughput_suite.build_jobs(preset, chosen, "cpu")
    assert {(j.implementation, j.params["dtype"]) for j in jobs} == {
        ("lstm/reference", "float64"),
        ("attention/reference", "float32"),
    }
    forced = throughput_suite.build_jobs(preset, options(names=chosen.names, dtypes=("float32",)), "cpu")
    assert {j.params["dtype"] for j in forced} == {"float32"}
    with pytest.raises(UserError, match="dtypes_by_family names unknown family 'lstn'"):
        throughput_suite.build_jobs(throughput_preset(dtypes_by_family={"lstn": ["float16"]}), chosen, "cpu")
    for suite in ("throughput", "memory", "profile"):
        quick = load_preset(suite, "quick")
        assert quick["dtypes"] == ["bfloat16"] and quick["dtypes_by_family"] == {"lstm": ["float16"]}
