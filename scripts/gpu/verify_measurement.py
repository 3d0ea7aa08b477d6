"""GPU check of the measurement core (issue 7): is the harness's number the kernel's number?

    python scripts/gpu/verify_measurement.py                 # everything (core ~1 min, each preset ~4 min warm)
    python scripts/gpu/verify_measurement.py --part core     # 1-3 only
    python scripts/gpu/verify_measurement.py --part throughput --part memory

1. Harness vs bare do_bench: SDPA pinned to cuDNN, causal forward, B=4, 16 heads x 64, L=8K, bf16.
   harness.timing.measure's median against triton.testing.do_bench(return_mode="median") of the same
   call in the same process (both flush L2 with a 256 MB write before each rep). Target: within 2%.
2. Repeatability: 10 harness measurements of the same call; CV of their medians. Target: <= 2%.
3. A real CUDA OOM: through the runner, attention/reference forward at B=8, L=64K (a 2 TB score
   matrix) then B=1, L=1K: the first must be an `oom` row, the second `ok` (the worker restarts).
   Then the memory suite's frontier on attention/sdpa_math (B=8, from L=4K, doubling to 256K): real
   OOMs inside one job, recorded as rows, and the frontier found.
4. `seqbench run throughput --preset quick` and `seqbench run memory --preset quick`: wall time and
   rows by status (each in a subprocess with a 9-minute limit; rerun with --resume to finish).

Every item is wrapped so one failure never stops the rest. A compact summary prints last; JSON goes to
$OUT/verify_measurement.json when OUT is set (and the preset runs' Parquet to $OUT/results).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

PARTS = ("core", "throughput", "memory")
PRESET_LIMIT_S = 540


def one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


def sdpa_cudnn_call():
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    generator = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (torch.randn(4, 16, 8192, 64, device="cuda", dtype=torch.bfloat16, generator=generator) for _ in range(3))

    def call():
        with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    return call


def harness_vs_do_bench(report: dict[str, Any]) -> None:
    """Alternate harness and do_bench (8 rounds, medians compared): a drift of the GPU's clocks between the two would
    otherwise read as a difference between the timers."""
    import triton.testing

    from harness.timing import measure

    call = sdpa_cudnn_call()
    harness_ms, rested_ms, bare_ms, cvs, compile_s = [], [], [], [], []
    for _ in range(8):
        timing = measure(call, "cuda", on_measure=lambda phase: None, budget_s=1.0, min_reps=20)
        harness_ms.append(timing.median_ms)
        cvs.append(statistics.stdev(timing.samples_ms) / statistics.mean(timing.samples_ms))
        compile_s.append(timing.compile_s)
        bare_ms.append(float(triton.testing.do_bench(call, warmup=100, rep=500, return_mode="median")))
        # settle_s=0: the timed reps start right after the synchronised warm-up (the earlier behaviour).
        rested = measure(call, "cuda", on_measure=lambda p: None, budget_s=1.0, min_reps=20, settle_s=0)
        rested_ms.append(rested.median_ms)
    print("without settling:", rested_ms, flush=True)
    harness, bare = statistics.median(harness_ms), statistics.median(bare_ms)
    report["harness_vs_do_bench"] = {
        "harness_median_ms": harness,
        "do_bench_median_ms": bare,
        "harness_each_ms": harness_ms,
        "harness_without_settle_ms": rested_ms,
        "do_bench_each_ms": bare_ms,
        "relative_difference": abs(harness - bare) / bare,
        "harness_cv": statistics.median(cvs),
        "compile_s": compile_s[0],
        "target": "<= 0.02",
    }
    print("harness vs do_bench, alternating:", harness_ms, bare_ms, flush=True)


def repeatability(report: dict[str, Any]) -> None:
    from harness.timing import measure

    call = sdpa_cudnn_call()
    medians = [measure(call, "cuda", on_measure=lambda p: None, budget_s=0.5).median_ms for _ in range(10)]
    report["repeatability"] = {
        "medians_ms": medians,
        "cv_of_medians": statistics.stdev(medians) / statistics.mean(medians),
        "target": "<= 0.02",
    }


def real_oom(report: dict[str, Any], results_dir: Path) -> None:
    from harness.commands.run import RunOptions
    from harness.runner import run_jobs
    from suites import throughput

    base = {
        "name": "verify",
        "device": "cuda",
        "dtypes": ["bfloat16"],
        "modes": ["fwd"],
        "levels": ["layer"],
        "config": {"d_model": 1024, "n_heads": 16},
        "timing": {"budget_s": 0.1},
    }
    options = RunOptions(None, results_dir, True, False, "cuda", ("attention/reference",), (), (), (), (), (), None)
    jobs = []
    for batch, seq_len in ((8, 65536), (1, 1024)):
        preset = {**base, "sweeps": [{"shape": "fixed_batch", "batch": batch, "seq_lens": [seq_len]}]}
        jobs += throughput.build_jobs(preset, options, "cuda")
    summary = run_jobs(jobs, results_dir / "oom", redo=True, command="verify_measurement real_oom")
    statuses = summary.job_statuses()
    rows = [{"batch": j.params["batch"], "seq_len": j.params["seq_len"], "status": statuses[j.job_id]} for j in jobs]
    reasons = {r["job_id"]: r["reason"] for r in summary.rows}
    rows[0]["reason"] = reasons[jobs[0].job_id]
    report["real_oom_throughput"] = {"rows": rows, "expected": ["oom", "ok"]}


def real_oom_frontier(report: dict[str, Any], results_dir: Path) -> None:
    from harness.commands.run import RunOptions
    from harness.results import read_results
    from harness.runner import run_jobs
    from suites import memory

    preset = {
        "name": "verify",
        "device": "cuda",
        "dtypes": ["bfloat16"],
        "modes": ["fwd"],
        "batch": 8,
        "seq_lens": [4096],
        "frontier": True,
        "max_seq_len": 262144,
        "config": {"d_model": 1024, "n_heads": 16},
    }
    options = RunOptions(None, results_dir, True, False, "cuda", ("attention/sdpa_math",), (), (), (), (), (), None)
    jobs = memory.build_jobs(preset, options, "cuda")
    run_jobs(jobs, results_dir / "frontier", redo=True, command="verify_measurement frontier")
    import pandas as pd

    frame = read_results(results_dir / "frontier")
    frame = frame[frame.run_id == frame.run_id.max()].sort_values("seq_len")
    report["real_oom_frontier"] = {
        "rows": [
            {
                "seq_len": None if pd.isna(r.seq_len) else int(r.seq_len),
                "status": r.status,
                "reason": r.reason,
                "peak_memory_gib": None
                if pd.isna(getattr(r, "peak_memory_bytes", None))
                else r.peak_memory_bytes / 2**30,
                "probe": getattr(r, "probe", None),
            }
            for r in frame.itertuples()
        ],
        "oom_frontier_seq_len": None
        if "oom_frontier_seq_len" not in frame or frame.oom_frontier_seq_len.isna().all()
        else int(frame.oom_frontier_seq_len.dropna().iloc[0]),
    }


def preset_run(report: dict[str, Any], suite: str, results_dir: Path) -> None:
    from harness.results import read_results

    command = [sys.executable, "-m", "harness.cli", "run", suite, "--preset", "quick", "--results", str(results_dir)]
    began = time.monotonic()
    try:
        completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=PRESET_LIMIT_S)
        exit_code, tail = completed.returncode, (completed.stdout + completed.stderr)[-3000:]
    except subprocess.TimeoutExpired as exc:
        exit_code, tail = None, f"stopped after {PRESET_LIMIT_S} s (rerun with --resume to finish)"
        del exc
    wall_s = time.monotonic() - began
    entry: dict[str, Any] = {"command": " ".join(command[2:]), "wall_s": wall_s, "exit_code": exit_code}
    suite_dir = results_dir / suite
    if suite_dir.is_dir():
        frame = read_results(suite_dir)
        latest = frame[frame.run_id == frame.run_id.max()]
        jobs = latest.drop_duplicates("job_id")
        entry["jobs_by_status"] = dict(Counter(jobs.status))
        entry["rows_by_status"] = dict(Counter(latest.status))
        entry["rows"] = len(latest)
        failed = latest[~latest.status.isin(["ok"])]
        entry["failure_reasons"] = (
            failed.groupby(["implementation", "status", "reason"]).size().reset_index().head(40).values.tolist()
        )
    entry["output_tail"] = tail
    report[f"preset_{suite}_quick"] = entry


def record(report: dict[str, Any], name: str, fn, *args: Any) -> None:
    began = time.monotonic()
    try:
        fn(report, *args)
    except Exception as exc:
        report[name] = {"error": one_line(exc), "traceback": traceback.format_exc(limit=6)}
    print(f"[{name}] done in {time.monotonic() - began:.1f} s", flush=True)


def summary_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    item = report.get("harness_vs_do_bench", {})
    if "error" in item:
        lines.append(f"harness vs do_bench: ERROR {item['error']}")
    elif item:
        lines.append(
            f"harness vs do_bench (SDPA cuDNN fwd, B=4 16x64 L=8K bf16): harness {item['harness_median_ms']:.4f} ms,"
            f" do_bench {item['do_bench_median_ms']:.4f} ms, diff {100 * item['relative_difference']:.2f}%"
            " (target <= 2%)"
        )
    item = report.get("repeatability", {})
    if "error" in item:
        lines.append(f"repeatability: ERROR {item['error']}")
    elif item:
        lines.append(f"CV of 10 harness medians: {100 * item['cv_of_medians']:.2f}% (target <= 2%)")
    item = report.get("real_oom_throughput", {})
    if "error" in item:
        lines.append(f"real OOM: ERROR {item['error']}")
    elif item:
        got = [r["status"] for r in item["rows"]]
        lines.append(f"real OOM through the runner: statuses {got} (expected {item['expected']})")
    item = report.get("real_oom_frontier", {})
    if "error" in item:
        lines.append(f"OOM frontier: ERROR {item['error']}")
    elif item:
        tried = ", ".join(f"{r['seq_len']}:{r['status']}" for r in item["rows"])
        lines.append(f"sdpa_math frontier B=8: {tried}; frontier L = {item['oom_frontier_seq_len']}")
    for suite in ("throughput", "memory"):
        item = report.get(f"preset_{suite}_quick")
        if not item:
            continue
        if "error" in item:
            lines.append(f"{suite} --preset quick: ERROR {item['error']}")
            continue
        lines.append(
            f"seqbench run {suite} --preset quick: {item['wall_s']:.0f} s, exit {item['exit_code']}, "
            f"jobs {item.get('jobs_by_status')}, rows {item.get('rows_by_status')}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", action="append", choices=PARTS, help="what to run (repeatable; default all)")
    args = parser.parse_args()
    parts = args.part or list(PARTS)
    out = os.environ.get("OUT")
    results_dir = Path(out) / "results" if out else Path(tempfile.mkdtemp(prefix="seqbench-verify-"))
    report: dict[str, Any] = {"parts": parts, "results_dir": str(results_dir)}
    try:
        import torch

        report["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA"
        report["torch"] = torch.__version__
    except Exception as exc:
        report["device"] = one_line(exc)
    if "core" in parts:
        record(report, "harness_vs_do_bench", harness_vs_do_bench)
        record(report, "repeatability", repeatability)
        record(report, "real_oom_throughput", real_oom, results_dir)
        record(report, "real_oom_frontier", real_oom_frontier, results_dir)
    for suite in ("throughput", "memory"):
        if suite in parts:
            record(report, f"preset_{suite}_quick", preset_run, suite, results_dir)
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "verify_measurement.json").write_text(json.dumps(report, indent=2, default=str))
    for suite in ("throughput", "memory"):
        item = report.get(f"preset_{suite}_quick") or {}
        for implementation, status, reason, count in item.get("failure_reasons", []):
            print(f"  {suite}: {implementation} {status} x{count}: {reason}")
    print(f"\n=== verify_measurement summary ({report.get('device')}, torch {report.get('torch')}) ===")
    for line in summary_lines(report):
        print(line)


if __name__ == "__main__":
    main()
