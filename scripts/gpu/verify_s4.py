"""Verify the S4 family (S4 with a DPLR state matrix, and S4D) on a CUDA machine. Needs only torch (+ triton
for do_bench; without it a CUDA-event loop times the same calls).

    python scripts/gpu/verify_s4.py                  # everything (well under 2 minutes on an H100)
    python scripts/gpu/verify_s4.py --skip-check     # timings only
    OUT=/some/dir python scripts/gpu/verify_s4.py    # also writes /some/dir/verify_s4.json

1. `seqbench check` rows for every s4-family implementation on cuda, bf16 and fp32, each against its
   reference in fp32 (harness.check.run_checks: d_model 256, L 256, batch 2; isolated worker).
2. Long-sequence accuracy: forward on the GPU (fp32 and bf16) vs the same weights in float64 on the CPU,
   d_model 64, d_state 64, L 8192, batch 1: the kernel at long L is where float32 could hurt.
3. Timings (triton.testing.do_bench, median and p10/p90 ms, warm-up first): `forward` (kernel generation
   + FFT convolution + D, GELU, output projection) and the core op alone (`core_call`: kernel + FFT
   convolution) at d_model 1024, d_state 64 (the S4 papers' N), batch 4, L = 2K / 8K / 32K, fp32 and
   bf16 (the SSM runs in fp32 either way; bf16 is the activations and the projection), under no_grad,
   with the peak memory of one call.

Every item is wrapped: a failure prints its one-line reason and the rest goes on. The compact table
comes last.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from anywhere in a checkout

from harness.provenance import software_versions

DEVICE = "cuda"
D_MODEL, D_STATE, BATCH = 1024, 64, 4
LENGTHS = (2048, 8192, 32768)
MODELS = {"s4": "s4/cufft", "s4d": "s4/s4d_cufft"}


def one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


# ---- 1. check rows ---------------------------------------------------------------------------------


def check_rows() -> list[dict[str, Any]]:
    from harness import registry
    from harness.check import run_checks

    impls = [impl for impl in registry.implementations() if impl.family == "s4"]

    def progress(impl: Any, dtype: torch.dtype) -> None:
        print(f"  checking {impl.name} ({dtype}) ...", flush=True)

    rows, skipped = run_checks(impls, device=DEVICE, dtypes=(torch.bfloat16, torch.float32), progress=progress)
    out = [row.to_dict() for row in rows]
    for impl, reason in skipped:
        out.append({"implementation": impl.name, "dtype": "-", "test": "-", "status": "unavailable", "reason": reason})
    return out


# ---- 2. long-sequence accuracy -----------------------------------------------------------------------


def build(name: str, d_model: int, d_state: int, seed: int = 0) -> torch.nn.Module:
    from harness import registry
    from harness.config import MixerConfig

    torch.manual_seed(seed)
    return registry.get(name).create(MixerConfig(d_model=d_model, d_state=d_state)).eval()


def accuracy_rows(seq_len: int = 8192, d_model: int = 64) -> list[dict[str, Any]]:
    from harness.numerics import rms_ratio

    rows = []
    for label, name in MODELS.items():
        try:
            reference = build(name, d_model, D_STATE).double()
            x = torch.randn(1, seq_len, d_model, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
            with torch.no_grad():
                expected = reference(x)
        except Exception as exc:
            rows.append({"model": label, "status": "error", "reason": one_line(exc)})
            continue
        for dtype in (torch.float32, torch.bfloat16):
            row: dict[str, Any] = {"model": label, "dtype": str(dtype).removeprefix("torch."), "seq_len": seq_len}
            try:
                mixer = build(name, d_model, D_STATE)
                mixer.load_state_dict(reference.state_dict())
                mixer = mixer.to(DEVICE, dtype)
                with torch.no_grad():
                    row.update(status="ok", rms_ratio=rms_ratio(mixer(x.to(DEVICE, dtype)), expected))
            except Exception as exc:
                row.update(status="error", reason=one_line(exc))
            print(f"  accuracy {row}", flush=True)
            rows.append(row)
    return rows


# ---- 3. timings --------------------------------------------------------------------------------------


def bench(fn: Callable[[], Any]) -> tuple[float, float, float]:
    """(median, p10, p90) ms after warm-up; triton's do_bench (L2 flushed between reps) when available."""
    try:
        import triton.testing

        median, p10, p90 = triton.testing.do_bench(fn, warmup=25, rep=200, quantiles=[0.5, 0.1, 0.9])
        return float(median), float(p10), float(p90)
    except ImportError:
        for _ in range(3):
            fn()
        times = []
        for _ in range(20):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        times.sort()
        return times[len(times) // 2], times[len(times) // 10], times[(9 * len(times)) // 10]


def time_one(label: str, what: str, seq_len: int, dtype: torch.dtype) -> dict[str, Any]:
    row: dict[str, Any] = {"model": label, "op": what, "seq_len": seq_len, "dtype": str(dtype).removeprefix("torch.")}
    row.update(batch=BATCH, d_model=D_MODEL, d_state=D_STATE)
    try:
        mixer = build(MODELS[label], D_MODEL, D_STATE).to(DEVICE, dtype)
        x = torch.randn(BATCH, seq_len, D_MODEL, device=DEVICE, dtype=dtype)
        if what == "forward":

            def run() -> None:
                with torch.no_grad():
                    mixer(x)

        else:
            with torch.no_grad():
                call = mixer.core_call(x)

            def run() -> None:
                with torch.no_grad():
                    call.run()

        torch.cuda.synchronize()
        start = time.perf_counter()
        run()
        torch.cuda.synchronize()
        row["first_call_s"] = round(time.perf_counter() - start, 3)
        torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated()
        run()
        torch.cuda.synchronize()
        row["peak_memory_gib"] = round((torch.cuda.max_memory_allocated() - baseline) / 2**30, 2)
        median, p10, p90 = bench(run)
        row.update(status="ok", median_ms=median, p10_ms=p10, p90_ms=p90)
        row["tokens_per_s"] = BATCH * seq_len / (median * 1e-3)
    except Exception as exc:
        row.update(status="error", reason=one_line(exc))
    finally:
        torch.cuda.empty_cache()
    print(f"  timing {row}", flush=True)
    return row


def timing_rows(lengths: tuple[int, ...]) -> list[dict[str, Any]]:
    return [
        time_one(label, what, seq_len, dtype)
        for label in MODELS
        for what in ("forward", "core")
        for dtype in (torch.float32, torch.bfloat16)
        for seq_len in lengths
    ]


# ---- report --------------------------------------------------------------------------------------------


def print_tables(results: dict[str, Any]) -> None:
    print("\n=== versions ===")
    for key, value in results["versions"].items():
        print(f"  {key}: {value}")
    print("\n=== seqbench check on cuda (RMS ratio vs the family reference in fp32) ===")
    for row in results.get("check", []):
        error, tol = row.get("rms_ratio", float("nan")), row.get("tolerance", float("nan"))
        print(
            f"  {row['implementation']:18s} {row['dtype']:9s} {row['test']:10s} {error:9.2e} {tol:7.0e}  "
            f"{row['status']} {row.get('reason', '')}"
        )
    print("\n=== long-sequence accuracy: GPU forward vs CPU float64 (d_model 64, d_state 64, batch 1) ===")
    for row in results.get("accuracy", []):
        if row.get("status") == "ok":
            print(f"  {row['model']:4s} {row['dtype']:9s} L={row['seq_len']:<6d} rms ratio {row['rms_ratio']:.2e}")
        else:
            print(f"  {row['model']:4s} {row.get('dtype', '-'):9s} {row.get('status')}: {row.get('reason', '')}")
    print(
        f"\n=== timings: d_model {D_MODEL}, d_state {D_STATE}, batch {BATCH}, no_grad "
        "(median ms [p10, p90]; peak GiB of one call) ==="
    )
    for row in results.get("timing", []):
        head = f"  {row['model']:4s} {row['op']:8s} {row['dtype']:9s} L={row['seq_len']:<6d}"
        if row["status"] == "ok":
            print(
                f"{head} {row['median_ms']:9.3f} [{row['p10_ms']:.3f}, {row['p90_ms']:.3f}]  "
                f"{row['tokens_per_s'] / 1e6:8.2f} Mtok/s  peak {row['peak_memory_gib']:.2f} GiB"
            )
        else:
            print(f"{head} {row['status']}: {row.get('reason', '')}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-check", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS))
    args = parser.parse_args()

    if not torch.cuda.is_available():
        print("no CUDA device visible to torch: nothing to verify here")
        return 1
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    results: dict[str, Any] = {"versions": software_versions()}
    started = time.perf_counter()
    steps: list[tuple[str, bool, Callable[[], Any]]] = [
        ("check", args.skip_check, check_rows),
        ("accuracy", args.skip_accuracy, accuracy_rows),
        ("timing", args.skip_timing, lambda: timing_rows(tuple(args.lengths))),
    ]
    for key, skip, produce in steps:
        if skip:
            continue
        print(f"--- {key} ---", flush=True)
        step_start = time.perf_counter()
        try:
            results[key] = produce()
        except Exception as exc:
            print(f"  {key} failed: {one_line(exc)}", flush=True)
            results[key + "_error"] = one_line(exc)
        results[key + "_s"] = round(time.perf_counter() - step_start, 1)
    results["total_s"] = round(time.perf_counter() - started, 1)

    out_dir = os.environ.get("OUT")
    if out_dir:
        path = Path(out_dir) / "verify_s4.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2, default=str))
        print(f"\nwrote {path}")
    print_tables(results)
    print(f"\ntotal {results['total_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
