"""Verify the profile suite on a CUDA machine: every available implementation at L = 8K, one training
step (fwd_bwd) and one decode step, kernel by kernel.

    python scripts/gpu/verify_profile.py                    # the quick preset's config, fwd_bwd + decode
    python scripts/gpu/verify_profile.py --budget-s 240     # start no new implementation after 240 s (default 150)
    python scripts/gpu/verify_profile.py --with-references  # also the pure-PyTorch references (at 2K)
    OUT=/some/dir python scripts/gpu/verify_profile.py      # results, traces and verify_profile.json there

What it does:
1. Builds the jobs of `seqbench run profile --preset quick --mode fwd_bwd --mode decode --seq-len 8192`
   (suites.profile.build_jobs) for every available implementation, one family's first implementation
   before any family's second, so that a budget cut still covers every family.
2. Runs them with harness.runner.run_jobs, one isolated worker per implementation (a kernel that
   aborts becomes a failed row), until the time budget is spent; the device ceilings are measured once.
3. Prints, per implementation, the mixer parts its kernels were attributed to (a CUDA kernel is
   attributed through correlation ids to the operator that launched it; `other` = unattributed), then
   the top kernels of each job (what `seqbench profile-summary` prints), and last a compact table: the
   top kernel and its share, the step's device and wall time, launches, the host gap (launch overhead:
   wall time not covered by kernels, the decode metric), the fraction of device time attributed to a
   part, and the core's achieved TFLOP/s and GB/s against the measured ceilings.
4. Checks every trace: a JSON file with trace events and the seqbench::step ranges. Traces over 20 MB
   are deleted after the check unless --keep-traces (they come back from the device machine otherwise).

Every item is wrapped: a failure prints its one-line reason and the rest goes on.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from anywhere in a checkout

from harness.provenance import software_versions

SEQ_LEN = 8192
REFERENCE_SEQ_LEN = 2048
MODES = ("fwd_bwd", "decode")
BIG_TRACE_BYTES = 20 * 1024 * 1024


def one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


def build_jobs(seq_len: int, modes: tuple[str, ...], with_references: bool) -> list[Any]:
    """The quick preset's jobs at `seq_len` (references at REFERENCE_SEQ_LEN), interleaved by family."""
    from harness import registry
    from harness.commands.run import RunOptions
    from suites import load_preset
    from suites.profile import build_jobs as profile_jobs

    preset = load_preset("profile", "quick")

    def options(lengths: tuple[int, ...]) -> RunOptions:
        return RunOptions(None, Path("results"), True, False, "cuda", (), (), lengths, (), (), modes, None)

    jobs = profile_jobs(preset, options((seq_len,)), "cuda")
    if with_references:
        preset = {**preset, "reference_max_seq_len": REFERENCE_SEQ_LEN}
        jobs += [
            job
            for job in profile_jobs(preset, options((REFERENCE_SEQ_LEN,)), "cuda")
            if registry.get(job.implementation).is_reference
        ]
    # One family's first implementation before any family's second: a budget cut still covers every family.
    by_impl: dict[str, list[Any]] = {}
    for job in jobs:
        by_impl.setdefault(job.implementation, []).append(job)
    rank_in_family: dict[str, int] = {}
    order = []
    for name in by_impl:
        family = name.split("/")[0]
        order.append((rank_in_family.get(family, 0), name))
        rank_in_family[family] = rank_in_family.get(family, 0) + 1
    return [job for _, name in sorted(order) for job in by_impl[name]]


def run(jobs: list[Any], results_dir: Path, budget_s: float) -> tuple[list[dict[str, Any]], list[str], str]:
    """Run jobs implementation by implementation until the budget is spent; (rows, skipped names, run id)."""
    from harness import results
    from harness.runner import run_jobs
    from suites.profile import TRACE_DIR_ENV, trace_root

    run_id = results.new_run_id()
    env = {TRACE_DIR_ENV: str(trace_root(results_dir, run_id))}
    names = list(dict.fromkeys(job.implementation for job in jobs))
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    began = time.monotonic()
    for index, name in enumerate(names):
        elapsed = time.monotonic() - began
        if elapsed > budget_s:
            skipped = names[index:]
            break
        impl_jobs = [job for job in jobs if job.implementation == name]
        print(f"[{elapsed:6.1f} s] profiling {name} ({len(impl_jobs)} job(s)) ...", flush=True)
        try:
            summary = run_jobs(
                impl_jobs,
                results_dir,
                run_id=run_id,
                redo=True,
                command="scripts/gpu/verify_profile.py",
                device="cuda",
                measure_ceilings=index == 0,  # once per run: later rows take the first call's ceilings
                worker_env=env,
            )
            rows += summary.rows
            for row in summary.rows:
                if row["status"] != "ok":
                    print(f"  {row['mode']}: {row['status']}: {row['reason']}", flush=True)
        except Exception as exc:
            print(f"  {name}: FAILED {one_line(exc)}", flush=True)
    return rows, skipped, run_id


def fill_ceilings(rows: list[dict[str, Any]]) -> None:
    """Rows of later implementations lack the ceilings measured with the first: copy them over."""
    ceilings = next((r for r in rows if _finite(r.get("peak_matmul_tflops"))), None)
    if ceilings is None:
        return
    for row in rows:
        for key, fraction, peak in (
            ("achieved_tflops", "frac_peak_tflops", "peak_matmul_tflops"),
            ("achieved_gbps", "frac_peak_gbps", "peak_copy_gbps"),
        ):
            if not _finite(row.get(peak)):
                row[peak] = ceilings[peak]
            if _finite(row.get(key)):
                row[fraction] = row[key] / row[peak]


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not math.isnan(value)


def job_summaries(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per job: its top kernel, step totals, attribution and core roofline."""
    by_job: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_job.setdefault(row["job_id"], []).append(row)
    out = []
    for job_rows in by_job.values():
        first = job_rows[0]
        line: dict[str, Any] = {
            "implementation": first["implementation"],
            "mode": first.get("mode"),
            "seq_len": first.get("seq_len"),
            "status": first["status"],
        }
        if first["status"] != "ok":
            line["reason"] = first.get("reason", "")
            out.append(line)
            continue
        top = max(job_rows, key=lambda r: r["self_device_time_us"])
        parts: dict[str, float] = {}
        for row in job_rows:
            parts[row["part"]] = parts.get(row["part"], 0.0) + row["share"]
        core = next((r for r in job_rows if _finite(r.get("achieved_tflops"))), None)
        line.update(
            top_kernel=top["kernel_short"],
            top_kernel_name=top["kernel_name"],
            top_part=top["part"],
            top_share=top["share"],
            step_device_ms=first["step_device_time_us"] / 1e3,
            step_wall_ms=first["step_wall_time_us"] / 1e3,
            host_gap_us=first["host_gap_us"],
            host_gap_fraction=first["host_gap_us"] / first["step_wall_time_us"],
            launches=first["launches"],
            attributed=1.0 - parts.get("other", 0.0),
            parts={k: round(v, 4) for k, v in sorted(parts.items(), key=lambda kv: -kv[1])},
            core_tflops=core["achieved_tflops"] if core else float("nan"),
            core_gbps=core["achieved_gbps"] if core else float("nan"),
            core_frac_peak_tflops=core.get("frac_peak_tflops", float("nan")) if core else float("nan"),
            core_frac_peak_gbps=core.get("frac_peak_gbps", float("nan")) if core else float("nan"),
            core_kernel=core["kernel_short"] if core else "",
            trace_path=first.get("trace_path"),
        )
        out.append(line)
    return out


def check_traces(summaries: list[dict[str, Any]], keep: bool) -> None:
    for line in summaries:
        path = line.get("trace_path")
        if not path:
            continue
        try:
            size = os.path.getsize(path)
            with open(path) as handle:
                events = json.load(handle)["traceEvents"]
            steps = sum(1 for e in events if e.get("name") == "seqbench::step" and e.get("ph") == "X")
            kernels = sum(1 for e in events if e.get("cat") == "kernel")
            line["trace_check"] = f"ok: {len(events)} events, {kernels} kernels, {steps} steps, {size / 1e6:.1f} MB"
            if size > BIG_TRACE_BYTES and not keep:
                os.remove(path)
                line["trace_check"] += " (deleted: large)"
        except Exception as exc:
            line["trace_check"] = f"FAILED {one_line(exc)}"


def print_parts(summaries: list[dict[str, Any]]) -> None:
    print("\nparts the kernels were attributed to (share of device time; other = no seqbench:: range):")
    for line in summaries:
        if line["status"] == "ok":
            parts = " ".join(f"{k}={v:.0%}" for k, v in line["parts"].items())
            print(f"  {line['implementation']:36s} {line['mode']:8s} {parts}")


def print_table(summaries: list[dict[str, Any]]) -> None:
    header = (
        f"{'implementation':36s} {'mode':8s} {'L':>5s} {'top kernel':44s} {'part':11s} {'share':>6s} "
        f"{'dev ms':>8s} {'wall ms':>8s} {'launch':>6s} {'gap us':>9s} {'gap%':>5s} {'attr':>5s} "
        f"{'core TF/s':>9s} {'%pk':>5s} {'core GB/s':>9s} {'%pk':>5s}"
    )
    print("\n" + header)
    print("-" * len(header))
    for s in summaries:
        if s["status"] != "ok":
            print(f"{s['implementation']:36s} {s['mode']!s:8s} {s['status']}: {s.get('reason', '')[:120]}")
            continue

        def pct(value: float) -> str:
            return f"{value:5.0%}" if _finite(value) else "    -"

        def num(value: float, fmt: str) -> str:
            return format(value, fmt) if _finite(value) else "-"

        print(
            f"{s['implementation']:36s} {s['mode']:8s} {s['seq_len']:5d} {s['top_kernel'][:44]:44s} "
            f"{s['top_part']:11s} {s['top_share']:6.1%} {s['step_device_ms']:8.3f} {s['step_wall_ms']:8.3f} "
            f"{s['launches']:6d} {s['host_gap_us']:9.1f} {pct(s['host_gap_fraction'])} {pct(s['attributed'])} "
            f"{num(s['core_tflops'], '9.2f'):>9s} {pct(s['core_frac_peak_tflops'])} "
            f"{num(s['core_gbps'], '9.1f'):>9s} {pct(s['core_frac_peak_gbps'])}"
        )
    decode = [s for s in summaries if s["status"] == "ok" and s["mode"] == "decode"]
    if decode:
        print("\nlaunch overhead of a decode step (host gap = wall - kernel time):")
        for s in sorted(decode, key=lambda s: -s["host_gap_fraction"]):
            print(
                f"  {s['implementation']:36s} {s['host_gap_us']:8.1f} us of {s['step_wall_ms'] * 1e3:8.1f} us "
                f"({s['host_gap_fraction']:.0%}), {s['launches']} kernels"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=SEQ_LEN)
    parser.add_argument("--mode", dest="modes", action="append", help="repeatable (default: fwd_bwd, decode)")
    parser.add_argument("--budget-s", type=float, default=150.0, help="no new implementation starts after this")
    parser.add_argument("--with-references", action="store_true", help=f"also references, at L={REFERENCE_SEQ_LEN}")
    parser.add_argument("--keep-traces", action="store_true", help="keep traces over 20 MB")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to verify")
        return 1
    info = software_versions()
    print(" ".join(f"{k}={v}" for k, v in info.items()), flush=True)
    out_dir = Path(os.environ["OUT"]) if os.environ.get("OUT") else Path(tempfile.mkdtemp(prefix="verify_profile_"))
    results_dir = out_dir / "results"
    report: dict[str, Any] = {"versions": info}
    began = time.monotonic()
    summaries: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    try:
        jobs = build_jobs(args.seq_len, tuple(args.modes or MODES), args.with_references)
        print(f"{len(jobs)} job(s) over {len({j.implementation for j in jobs})} implementation(s)", flush=True)
        rows, skipped, run_id = run(jobs, results_dir, args.budget_s)
        report.update(run_id=run_id, skipped_for_time=skipped)
        fill_ceilings(rows)
        summaries = job_summaries(rows)
        check_traces(summaries, args.keep_traces)
    except Exception as exc:
        print(f"run FAILED {one_line(exc)}")
        report["error"] = one_line(exc)
    try:
        from harness.commands.profile_summary import print_top_kernels

        ok_rows = [row for row in rows if row.get("status") == "ok"]
        print_top_kernels(ok_rows, top=5)
    except Exception as exc:
        print(f"profile-summary FAILED {one_line(exc)}")
    for line in summaries:
        if "trace_check" in line:
            print(f"trace {line['implementation']} {line['mode']}: {line['trace_check']}")
    print_parts(summaries)
    print_table(summaries)
    if report.get("skipped_for_time"):
        print(f"\nnot profiled (budget of {args.budget_s:g} s spent): {', '.join(report['skipped_for_time'])}")
    print(f"\nresults: {results_dir} ({time.monotonic() - began:.0f} s)")
    report["jobs"] = summaries
    (out_dir / "verify_profile.json").write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
