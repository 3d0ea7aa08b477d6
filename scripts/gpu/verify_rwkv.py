"""Verify the RWKV family on a CUDA machine with flash-linear-attention installed.

    python scripts/gpu/verify_rwkv.py                 # everything (about 4 minutes with cold Triton caches)
    python scripts/gpu/verify_rwkv.py --skip-check    # timings only
    OUT=/some/dir python scripts/gpu/verify_rwkv.py   # also writes /some/dir/verify_rwkv.json

1. `seqbench check` rows for every rwkv implementation on cuda, bf16 and fp32, each against the
   reference in fp32 (harness.check.run_checks: one isolated worker process, so a kernel that aborts
   becomes a failed row).
2. Op-level accuracy at a longer sequence than the check's: fla chunk_rwkv7 / fused_recurrent_rwkv7 on
   bf16 inputs vs our chunked form in fp32 on the same inputs (RMS ratio).
3. Op-level timings (triton.testing.do_bench, median and p10/p90 ms; the first call, which compiles and
   autotunes, is timed separately and excluded): fla chunk_rwkv7 (called as fla's RWKV7Attention calls
   it: chunk 64, safe_gate, lower_bound) and fused_recurrent_rwkv7 at B=4, 16 heads x 64, L = 2K / 8K /
   32K, bf16, fwd and fwd+bwd (fla has no backward for fused_recurrent: reported as such); our
   reference chunked form where cheap. Everything runs in this one process so Triton compiles once.

Every item is wrapped: a failure prints its one-line reason and the rest goes on. The compact table
comes last.
"""

from __future__ import annotations

import argparse
import json
import math
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
BATCH, HEADS, HEAD_DIM = 4, 16, 64
LENGTHS = (2048, 8192, 32768)
# Our reference builds (chunk, chunk, head_dim) decay ratios per chunk and autograd keeps them all:
# time it only where that stays small.
REFERENCE_FWD_MAX_LEN = 32768
REFERENCE_FWD_BWD_MAX_LEN = 2048


def one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


# ---- 1. check rows ---------------------------------------------------------------------------------


def check_rows() -> list[dict[str, Any]]:
    from harness import registry
    from harness.check import run_checks
    from harness.interface import parse_dtype

    impls = [impl for impl in registry.implementations() if impl.family == "rwkv"]

    def progress(impl: Any, dtype: torch.dtype) -> None:
        print(f"  checking {impl.name} ({dtype}) ...", flush=True)

    # RWKV_CHECK_DTYPES=bfloat16 halves the cold-compile time (every dtype compiles its own kernels).
    dtypes = tuple(parse_dtype(d) for d in os.environ.get("RWKV_CHECK_DTYPES", "bfloat16,float32").split(","))
    rows, skipped = run_checks(impls, device="cuda", dtypes=dtypes, progress=progress)
    out = [row.to_dict() for row in rows]
    for impl, reason in skipped:
        out.append({"implementation": impl.name, "dtype": "-", "test": "-", "status": "unavailable", "reason": reason})
    return out


# ---- inputs shaped like the block's ------------------------------------------------------------------


def op_inputs(seq_len: int, dtype: torch.dtype, requires_grad: bool = False, seed: int = 0) -> list[torch.Tensor]:
    """r, w, k, v, a, b (B, L, H, d) as the RWKV-7 block makes them: w = -e^-0.5 σ(.), a = -κ̂, b = κ̂ ⊙ σ(.)."""
    generator = torch.Generator(device=DEVICE).manual_seed(seed)
    shape = (BATCH, seq_len, HEADS, HEAD_DIM)

    def randn() -> torch.Tensor:
        return torch.randn(shape, device=DEVICE, dtype=torch.float32, generator=generator)

    r, k, v = randn(), randn() * 0.25, randn()
    w = -math.exp(-0.5) * torch.sigmoid(randn())
    removal_key = torch.nn.functional.normalize(randn(), dim=-1)
    a, b = -removal_key, removal_key * torch.sigmoid(randn())
    tensors = [t.to(dtype).contiguous() for t in (r, w, k, v, a, b)]
    for t in tensors:
        t.requires_grad_(requires_grad)
    return tensors


def ops() -> dict[str, Callable[..., Any]]:
    from implementations.rwkv.fla_adapters import fla_chunk_rwkv7, fla_fused_recurrent_rwkv7
    from implementations.rwkv.wkv7 import rwkv7_chunked

    def reference(*args: Any) -> Any:
        return rwkv7_chunked(*args, chunk_size=64, validate=False)

    return {
        "fla chunk_rwkv7": lambda *args: fla_chunk_rwkv7(*args, chunk_size=64),
        "fla fused_recurrent_rwkv7": fla_fused_recurrent_rwkv7,
        "reference rwkv7_chunked": reference,
    }


# ---- 2. op accuracy ----------------------------------------------------------------------------------


def accuracy_rows(seq_len: int = 2048) -> list[dict[str, Any]]:
    from harness.numerics import rms_ratio

    table = ops()
    rows = []
    with torch.no_grad():
        try:
            expected, expected_state = table["reference rwkv7_chunked"](
                *op_inputs(seq_len, torch.float32), 1.0, None, True
            )
        except Exception as exc:
            return [{"op": "reference rwkv7_chunked", "seq_len": seq_len, "status": "error", "reason": one_line(exc)}]
        for name in ("fla chunk_rwkv7", "fla fused_recurrent_rwkv7"):
            for dtype in (torch.bfloat16, torch.float32):
                row: dict[str, Any] = {"op": name, "seq_len": seq_len, "dtype": str(dtype).removeprefix("torch.")}
                try:
                    o, state = table[name](*op_inputs(seq_len, dtype), 1.0, None, True)
                    row.update(
                        status="ok",
                        rms_ratio_o=rms_ratio(o, expected),
                        rms_ratio_state=rms_ratio(state, expected_state),
                    )
                except Exception as exc:
                    row.update(status="error", reason=one_line(exc))
                print(f"  accuracy {row}", flush=True)
                rows.append(row)
    return rows


# ---- 3. timings --------------------------------------------------------------------------------------


def time_one(name: str, mode: str, seq_len: int) -> dict[str, Any]:
    import triton.testing

    row: dict[str, Any] = {"op": name, "mode": mode, "seq_len": seq_len, "batch": BATCH, "heads": HEADS}
    row["head_dim"], row["dtype"] = HEAD_DIM, "bfloat16"
    op = ops()[name]
    try:
        if mode == "fwd":
            inputs = op_inputs(seq_len, torch.bfloat16)

            def run() -> None:
                with torch.no_grad():
                    op(*inputs, 1.0, None, False)

        else:
            inputs = op_inputs(seq_len, torch.bfloat16, requires_grad=True)
            grad_out = torch.randn(BATCH, seq_len, HEADS, HEAD_DIM, device=DEVICE, dtype=torch.bfloat16)

            def run() -> None:
                o, _ = op(*inputs, 1.0, None, False)
                o.backward(grad_out)

        torch.cuda.synchronize()
        start = time.perf_counter()
        run()  # compile + autotune, kept out of the measurement
        torch.cuda.synchronize()
        row["first_call_s"] = round(time.perf_counter() - start, 2)
        median, p10, p90 = triton.testing.do_bench(
            run, warmup=25, rep=200, grad_to_none=inputs if mode != "fwd" else None, quantiles=[0.5, 0.1, 0.9]
        )
        row.update(status="ok", median_ms=median, p10_ms=p10, p90_ms=p90)
        row["tokens_per_s"] = BATCH * seq_len / (median * 1e-3)
    except Exception as exc:
        row.update(status="error", reason=one_line(exc))
    finally:
        torch.cuda.empty_cache()
    print(f"  timing {row}", flush=True)
    return row


def timing_rows(lengths: tuple[int, ...]) -> list[dict[str, Any]]:
    rows = []
    for name in ("fla chunk_rwkv7", "fla fused_recurrent_rwkv7", "reference rwkv7_chunked"):
        for mode in ("fwd", "fwd_bwd"):
            for seq_len in lengths:
                if name.startswith("reference"):
                    limit = REFERENCE_FWD_MAX_LEN if mode == "fwd" else REFERENCE_FWD_BWD_MAX_LEN
                    if seq_len > limit:
                        continue
                if name == "fla fused_recurrent_rwkv7" and mode == "fwd_bwd" and seq_len != lengths[0]:
                    continue  # fla raises on backward; one row says so
                rows.append(time_one(name, mode, seq_len))
    return rows


# ---- report ------------------------------------------------------------------------------------------


def print_tables(results: dict[str, Any]) -> None:
    print("\n=== versions ===")
    for key, value in results["versions"].items():
        print(f"  {key}: {value}")
    print("\n=== seqbench check (cuda; reference in fp32) ===")
    print(f"  {'implementation':34s} {'dtype':9s} {'test':10s} {'error':>9s} {'tol':>7s}  status")
    for row in results.get("check", []):
        error = row.get("rms_ratio", float("nan"))
        tol = row.get("tolerance", float("nan"))
        print(
            f"  {row['implementation']:34s} {row['dtype']:9s} {row['test']:10s} {error:9.2e} {tol:7.0e}  "
            f"{row['status']} {row.get('reason', '')}"
        )
    print("\n=== op accuracy vs our chunked form in fp32 (same inputs) ===")
    for row in results.get("accuracy", []):
        if row.get("status") == "ok":
            print(
                f"  {row['op']:28s} {row['dtype']:9s} L={row['seq_len']:<6d} "
                f"o {row['rms_ratio_o']:.2e}  state {row['rms_ratio_state']:.2e}"
            )
        else:
            print(f"  {row['op']:28s} {row.get('dtype', '-'):9s} {row.get('status')}: {row.get('reason', '')}")
    print(f"\n=== op timings: B={BATCH}, {HEADS} heads x {HEAD_DIM}, bf16 (median ms [p10, p90]; first call s) ===")
    for row in results.get("timing", []):
        head = f"  {row['op']:28s} {row['mode']:8s} L={row['seq_len']:<6d}"
        if row["status"] == "ok":
            print(
                f"{head} {row['median_ms']:9.3f} [{row['p10_ms']:.3f}, {row['p90_ms']:.3f}]  "
                f"{row['tokens_per_s'] / 1e6:8.2f} Mtok/s  first {row['first_call_s']:.1f} s"
            )
        else:
            print(f"{head} {row['status']}: {row.get('reason', '')}")


def write_json(results: dict[str, Any]) -> None:
    out_dir = os.environ.get("OUT")
    if out_dir:
        path = Path(out_dir) / "verify_rwkv.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2, default=str))


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
    results: dict[str, Any] = {"versions": software_versions(extra=("transformers",))}
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
        # Write and show each step as soon as it is done: a later step may outlast the caller's time limit
        # (cold Triton compilation of chunk_rwkv7 fwd+bwd takes minutes).
        write_json(results)
        print_tables({"versions": {}, key: results.get(key, [])})
    results["total_s"] = round(time.perf_counter() - started, 1)
    write_json(results)
    print_tables(results)
    print(f"\ntotal {results['total_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
