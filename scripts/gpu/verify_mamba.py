"""Verify the Mamba and Mamba-2 families on a CUDA machine with mamba_ssm (and fla) installed.

    python scripts/gpu/verify_mamba.py                # everything (~3-4 minutes with cold Triton caches)
    python scripts/gpu/verify_mamba.py --build        # first `seqbench kernels build` (~3.5 min on 16 cores)
    python scripts/gpu/verify_mamba.py --skip-check   # op accuracy and timings only
    OUT=/some/dir python scripts/gpu/verify_mamba.py  # also writes /some/dir/verify_mamba.json

Assumes mamba_ssm was installed from its sdist with MAMBA_SKIP_CUDA_BUILD=TRUE (Python files only);
`seqbench kernels build` may or may not have run. Without the compiled selective_scan_cuda the Mamba-1
rows say so and the Mamba-2 rows still run (a stub module lets mamba_ssm import).

0. What this machine has: versions, where selective_scan_cuda comes from (installed / cached build /
   missing), which causal conv mamba_ssm will use, availability of every mamba/mamba2 implementation.
1. `seqbench check` rows for every mamba/mamba2 implementation on cuda, bf16 and fp32, each against
   its family reference in fp32 (harness.check.run_checks: one isolated worker, so a kernel that
   aborts becomes a failed row).
2. Op accuracy at L = 2K: mamba_ssm's selective_scan_fn, mamba_chunk_scan_combined and fla's
   chunk_simple_gla (through our SSD mapping) on bf16 inputs, vs our references in fp32 on the same
   inputs (RMS ratio of the outputs and of the final states).
3. Op-level forward timings (triton.testing.do_bench: median, p10, p90 ms; the first call, which
   compiles and autotunes, is timed apart and excluded), bf16, B = 4, L = 2K / 8K / 32K:
     Mamba    selective_scan_fn, d = 2048 channels, d_state 16 (with z, D, dt bias + softplus, as the block calls it)
     Mamba-2  mamba_chunk_scan_combined, 32 heads x 64 = 2048 channels, d_state 128, chunk 256 (mamba_ssm's default)
     fla      chunk_simple_gla on the mapped inputs (bare kernel), and the whole mapping (ssd_via_simple_gla)
   and the Mamba-2 vs Mamba speed ratio per L (Mamba-2's state is 8x larger: 2048x128 vs 2048x16).

Every item is wrapped: a failure prints its one-line reason and the rest goes on. The compact tables
come last.
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

DEVICE = "cuda"
BATCH = 4
MAMBA_CHANNELS, MAMBA_STATE = 2048, 16
MAMBA2_HEADS, MAMBA2_HEAD_DIM, MAMBA2_STATE, MAMBA2_CHUNK = 32, 64, 128, 256
LENGTHS = (2048, 8192, 32768)
ACCURACY_LEN = 2048
FAMILIES = ("mamba", "mamba2")


def one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


# ---- 0. environment ----------------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    from harness.provenance import software_versions

    found: dict[str, Any] = software_versions(extra=("transformers",))
    if torch.cuda.is_available():
        found["gpu"] = f"{torch.cuda.get_device_name()} sm_{''.join(map(str, torch.cuda.get_device_capability()))}"
    from harness.kernel_build import SELECTIVE_SCAN, cache_root, cached_library, extension_installed
    from implementations.mamba_ssm_import import conv_backend_probe

    if extension_installed(SELECTIVE_SCAN.module):
        found["selective_scan_cuda"] = "installed with mamba_ssm"
    else:
        cached = cached_library(SELECTIVE_SCAN)
        found["selective_scan_cuda"] = f"cached build {cached}" if cached else f"missing (cache {cache_root()})"
    found["causal conv"] = conv_backend_probe()
    from harness import registry

    for impl in registry.implementations():
        if impl.family in FAMILIES:
            availability = impl.availability(DEVICE)
            found[f"available {impl.name}"] = "yes" if availability else f"no: {availability.reason}"
    return found


def build_kernels() -> dict[str, Any]:
    from harness.kernel_build import SELECTIVE_SCAN, build_extension

    started = time.perf_counter()
    path = build_extension(SELECTIVE_SCAN, echo=lambda line: print(f"  {line}", flush=True))
    return {"path": str(path), "seconds": round(time.perf_counter() - started, 1)}


# ---- 1. check rows ---------------------------------------------------------------------------------


def check_rows() -> list[dict[str, Any]]:
    from harness import registry
    from harness.check import run_checks

    impls = [impl for impl in registry.implementations() if impl.family in FAMILIES]

    def progress(impl: Any, dtype: torch.dtype) -> None:
        print(f"  checking {impl.name} ({dtype}) ...", flush=True)

    rows, skipped = run_checks(impls, device=DEVICE, dtypes=(torch.bfloat16, torch.float32), progress=progress)
    out = [row.to_dict() for row in rows]
    for impl, reason in skipped:
        out.append({"implementation": impl.name, "dtype": "-", "test": "-", "status": "unavailable", "reason": reason})
    return out


# ---- inputs shaped like the blocks make them ---------------------------------------------------------


def mamba_inputs(seq_len: int, dtype: torch.dtype, seed: int = 0) -> tuple[tuple[torch.Tensor, ...], dict[str, Any]]:
    """selective_scan_fn's arguments as the Mamba block passes them (A = -(n+1), dt near softplus^-1(0.01))."""
    g = torch.Generator(device=DEVICE).manual_seed(seed)
    d, n = MAMBA_CHANNELS, MAMBA_STATE

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, device=DEVICE, generator=g)

    u, z = randn(BATCH, d, seq_len).to(dtype), randn(BATCH, d, seq_len).to(dtype)
    delta = (0.5 * randn(BATCH, d, seq_len)).to(dtype)
    A = -torch.arange(1, n + 1, device=DEVICE, dtype=torch.float32).repeat(d, 1)
    B, C = randn(BATCH, n, seq_len).to(dtype), randn(BATCH, n, seq_len).to(dtype)
    D = torch.ones(d, device=DEVICE)
    delta_bias = torch.log(torch.expm1(torch.full((d,), 0.01, device=DEVICE)))  # softplus^-1(0.01)
    return (u, delta, A, B, C), {"D": D, "z": z, "delta_bias": delta_bias, "delta_softplus": True}


def mamba2_inputs(seq_len: int, dtype: torch.dtype, seed: int = 0) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """mamba_chunk_scan_combined's arguments as the Mamba-2 block passes them (one group)."""
    g = torch.Generator(device=DEVICE).manual_seed(seed)
    h, p, n = MAMBA2_HEADS, MAMBA2_HEAD_DIM, MAMBA2_STATE

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, device=DEVICE, generator=g)

    x = randn(BATCH, seq_len, h, p).to(dtype)
    dt = (0.5 * randn(BATCH, seq_len, h)).to(dtype)
    A = -torch.linspace(1, 16, h, device=DEVICE)
    B, C = randn(BATCH, seq_len, 1, n).to(dtype), randn(BATCH, seq_len, 1, n).to(dtype)
    dt_bias = torch.log(torch.expm1(torch.full((h,), 0.01, device=DEVICE)))
    kwargs = {"D": torch.ones(h, device=DEVICE), "dt_bias": dt_bias, "dt_softplus": True}
    return (x, dt, A, B, C, MAMBA2_CHUNK), kwargs


def fla_mapped_inputs(seq_len: int, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """chunk_simple_gla's q, k, v, g for the same SSD (q = C, k = B, v = dt·x, g = dt·A)."""
    from implementations.mamba2.simple_gla import ssd_to_simple_gla_inputs
    from implementations.mamba2.ssd import discretize_dt

    (x, dt, A, B, C, _), kwargs = mamba2_inputs(seq_len, dtype)
    dt = discretize_dt(dt, kwargs["dt_bias"], True, torch.float32)
    return tuple(t.contiguous() for t in ssd_to_simple_gla_inputs(x, dt, A, B, C))


def ops() -> dict[str, Callable[[int], Callable[[], Any]]]:
    """name -> (seq_len -> a no-argument call of the op on bf16 inputs)."""

    def mamba_ssm_scan(seq_len: int) -> Callable[[], Any]:
        from implementations.mamba_ssm_import import import_mamba_ssm

        import_mamba_ssm(require_selective_scan=True)
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

        args, kwargs = mamba_inputs(seq_len, torch.bfloat16)
        return lambda: selective_scan_fn(*args, **kwargs)

    def mamba_ssm_ssd(seq_len: int) -> Callable[[], Any]:
        from implementations.mamba_ssm_import import import_mamba_ssm

        import_mamba_ssm(require_selective_scan=False)
        from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined

        args, kwargs = mamba2_inputs(seq_len, torch.bfloat16)
        return lambda: mamba_chunk_scan_combined(*args, **kwargs)

    def fla_bare(seq_len: int) -> Callable[[], Any]:
        from fla.ops.simple_gla import chunk_simple_gla

        q, k, v, g = fla_mapped_inputs(seq_len, torch.bfloat16)
        return lambda: chunk_simple_gla(q, k, v, g, scale=1.0)

    def fla_mapped(seq_len: int) -> Callable[[], Any]:
        from fla.ops.simple_gla import chunk_simple_gla

        from implementations.mamba2.simple_gla import ssd_via_simple_gla

        args, kwargs = mamba2_inputs(seq_len, torch.bfloat16)
        return lambda: ssd_via_simple_gla(*args, **kwargs, simple_gla=chunk_simple_gla)

    return {
        "mamba: mamba_ssm selective_scan_fn": mamba_ssm_scan,
        "mamba2: mamba_ssm mamba_chunk_scan_combined": mamba_ssm_ssd,
        "mamba2: fla chunk_simple_gla (bare)": fla_bare,
        "mamba2: fla via ssd_via_simple_gla": fla_mapped,
    }


# ---- 2. op accuracy ----------------------------------------------------------------------------------


def accuracy_rows(seq_len: int = ACCURACY_LEN) -> list[dict[str, Any]]:
    from harness.numerics import rms_ratio
    from implementations.mamba.scan import selective_scan
    from implementations.mamba2.ssd import ssd

    rows = []

    def record(name: str, compute: Callable[[], tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]) -> None:
        row: dict[str, Any] = {"op": name, "seq_len": seq_len, "dtype": "bfloat16"}
        try:
            out, state, expected, expected_state = compute()
            row.update(
                status="ok", rms_ratio_out=rms_ratio(out, expected), rms_ratio_state=rms_ratio(state, expected_state)
            )
        except Exception as exc:
            row.update(status="error", reason=one_line(exc))
        finally:
            torch.cuda.empty_cache()
        print(f"  accuracy {row}", flush=True)
        rows.append(row)

    def fp32(tensors: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(t.float() if isinstance(t, torch.Tensor) else t for t in tensors)

    def scan() -> tuple[torch.Tensor, ...]:
        from implementations.mamba_ssm_import import import_mamba_ssm

        import_mamba_ssm(require_selective_scan=True)
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

        args, kwargs = mamba_inputs(seq_len, torch.bfloat16)
        out, state = selective_scan_fn(*args, **kwargs, return_last_state=True)
        expected, expected_state = selective_scan(
            *fp32(args), **kwargs | {"z": kwargs["z"].float()}, return_last_state=True
        )
        return out, state, expected, expected_state

    def reference_ssd() -> tuple[tuple[Any, ...], dict[str, Any], torch.Tensor, torch.Tensor]:
        args, kwargs = mamba2_inputs(seq_len, torch.bfloat16)
        expected, expected_state = ssd(*fp32(args), **kwargs, return_final_states=True)
        return args, kwargs, expected, expected_state

    def chunk_scan() -> tuple[torch.Tensor, ...]:
        from implementations.mamba_ssm_import import import_mamba_ssm

        import_mamba_ssm(require_selective_scan=False)
        from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined

        args, kwargs, expected, expected_state = reference_ssd()
        out, state = mamba_chunk_scan_combined(*args, **kwargs, return_final_states=True)
        return out, state, expected, expected_state

    def fla() -> tuple[torch.Tensor, ...]:
        from fla.ops.simple_gla import chunk_simple_gla

        from implementations.mamba2.simple_gla import ssd_via_simple_gla

        args, kwargs, expected, expected_state = reference_ssd()
        out, state = ssd_via_simple_gla(*args, **kwargs, return_final_states=True, simple_gla=chunk_simple_gla)
        return out, state, expected, expected_state

    with torch.no_grad():
        record("mamba: mamba_ssm selective_scan_fn", scan)
        record("mamba2: mamba_ssm mamba_chunk_scan_combined", chunk_scan)
        record("mamba2: fla via ssd_via_simple_gla", fla)
    return rows


# ---- 3. timings --------------------------------------------------------------------------------------


def time_one(name: str, seq_len: int) -> dict[str, Any]:
    import triton.testing

    row: dict[str, Any] = {"op": name, "mode": "fwd", "seq_len": seq_len, "batch": BATCH, "dtype": "bfloat16"}
    try:
        with torch.no_grad():
            run = ops()[name](seq_len)
            torch.cuda.synchronize()
            start = time.perf_counter()
            run()  # compile + autotune, kept out of the measurement
            torch.cuda.synchronize()
            row["first_call_s"] = round(time.perf_counter() - start, 2)
            median, p10, p90 = triton.testing.do_bench(run, warmup=25, rep=100, quantiles=[0.5, 0.1, 0.9])
        row.update(status="ok", median_ms=median, p10_ms=p10, p90_ms=p90)
        row["tokens_per_s"] = BATCH * seq_len / (median * 1e-3)
    except Exception as exc:
        row.update(status="error", reason=one_line(exc))
    finally:
        torch.cuda.empty_cache()
    print(f"  timing {row}", flush=True)
    return row


def timing_rows(lengths: tuple[int, ...]) -> list[dict[str, Any]]:
    return [time_one(name, seq_len) for name in ops() for seq_len in lengths]


def speed_ratios(timing: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mamba-1 scan time / Mamba-2 SSD time per L (> 1: Mamba-2 faster)."""
    by_key = {(r["op"], r["seq_len"]): r for r in timing if r.get("status") == "ok"}
    ratios = []
    for seq_len in sorted({r["seq_len"] for r in timing}):
        mamba = by_key.get(("mamba: mamba_ssm selective_scan_fn", seq_len))
        for other in ("mamba2: mamba_ssm mamba_chunk_scan_combined", "mamba2: fla chunk_simple_gla (bare)"):
            mamba2 = by_key.get((other, seq_len))
            if mamba and mamba2:
                ratios.append({"seq_len": seq_len, "vs": other, "ratio": mamba["median_ms"] / mamba2["median_ms"]})
    return ratios


# ---- report ------------------------------------------------------------------------------------------


def print_tables(results: dict[str, Any]) -> None:
    print("\n=== environment ===")
    for key, value in results["environment"].items():
        print(f"  {key}: {value}")
    if "build" in results:
        print(f"  kernels build: {results['build']}")
    print("\n=== seqbench check (cuda; reference in fp32; error = RMS(ref - impl) / RMS(ref)) ===")
    print(f"  {'implementation':24s} {'dtype':9s} {'test':10s} {'error':>9s} {'tol':>7s}  status")
    for row in results.get("check", []):
        error, tol = row.get("rms_ratio", float("nan")), row.get("tolerance", float("nan"))
        print(
            f"  {row['implementation']:24s} {row['dtype']:9s} {row['test']:10s} {error:9.2e} {tol:7.0e}  "
            f"{row['status']} {row.get('reason', '')}"
        )
    triton_fp32_failed = [
        r
        for r in results.get("check", [])
        if r.get("dtype") == "float32" and r.get("status") == "failed" and r.get("backend") == "triton"
    ]
    if triton_fp32_failed:
        print(
            "  note: Triton's tl.dot runs fp32 inputs as TF32 unless told otherwise (mamba_ssm's SSD kernels do "
            "not), ~1e-3 relative; rerun with TRITON_F32_DEFAULT=ieee to see IEEE fp32"
        )
    print(f"\n=== op accuracy, bf16 inputs vs our reference in fp32 on the same inputs (L={ACCURACY_LEN}) ===")
    for row in results.get("accuracy", []):
        if row.get("status") == "ok":
            print(f"  {row['op']:46s} out {row['rms_ratio_out']:.2e}  final state {row['rms_ratio_state']:.2e}")
        else:
            print(f"  {row['op']:46s} {row.get('status')}: {row.get('reason', '')}")
    print(
        f"\n=== op timings, fwd, bf16, B={BATCH}: Mamba d={MAMBA_CHANNELS} N={MAMBA_STATE}; Mamba-2 "
        f"{MAMBA2_HEADS}x{MAMBA2_HEAD_DIM} N={MAMBA2_STATE} chunk {MAMBA2_CHUNK} (median ms [p10, p90]) ==="
    )
    for row in results.get("timing", []):
        head = f"  {row['op']:46s} L={row['seq_len']:<6d}"
        if row["status"] == "ok":
            print(
                f"{head} {row['median_ms']:9.3f} [{row['p10_ms']:.3f}, {row['p90_ms']:.3f}]  "
                f"{row['tokens_per_s'] / 1e6:8.1f} Mtok/s  first call {row['first_call_s']:.1f} s"
            )
        else:
            print(f"{head} {row['status']}: {row.get('reason', '')}")
    print("\n=== speed ratio: Mamba-1 selective_scan_fn time / Mamba-2 time (> 1: Mamba-2 faster) ===")
    for row in results.get("ratios", []):
        print(f"  L={row['seq_len']:<6d} vs {row['vs']:46s} {row['ratio']:6.2f}x")
    if not results.get("ratios"):
        print("  (no pair of timings: see the errors above)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", action="store_true", help="run `seqbench kernels build` first")
    parser.add_argument("--skip-check", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS))
    args = parser.parse_args()

    if not torch.cuda.is_available():
        print("no CUDA device visible to torch: nothing to verify here")
        return 1
    torch.backends.cuda.matmul.allow_tf32 = False
    results: dict[str, Any] = {}
    started = time.perf_counter()
    steps: list[tuple[str, bool, Callable[[], Any]]] = [
        ("build", not args.build, build_kernels),
        ("environment", False, environment),
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
        except BaseException as exc:  # a UserError from the build, a failed import: report, go on
            if isinstance(exc, KeyboardInterrupt):
                raise
            print(f"  {key} failed: {one_line(exc)}", flush=True)
            results[key + "_error"] = one_line(exc)
        results[key + "_s"] = round(time.perf_counter() - step_start, 1)
    results["ratios"] = speed_ratios(results.get("timing", []))
    results["total_s"] = round(time.perf_counter() - started, 1)
    results.setdefault("environment", {})

    out_dir = os.environ.get("OUT")
    if out_dir:
        path = Path(out_dir) / "verify_mamba.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2, default=str))
        print(f"\nwrote {path}")
    print_tables(results)
    print(f"\ntotal {results['total_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
