"""Verify the xLSTM family on a CUDA machine with mlstm_kernels (and xlstm) installed.

    python scripts/gpu/verify_xlstm.py                  # everything (about 4 minutes with cold Triton caches)
    python scripts/gpu/verify_xlstm.py --skip-check     # op accuracy and timings only
    python scripts/gpu/verify_xlstm.py --force-unsafe   # also run chunkwise--triton_xl_chunk, which aborts
                                                        # under triton 3.6: expect crash rows, not a dead script
    OUT=/some/dir python scripts/gpu/verify_xlstm.py    # also writes /some/dir/verify_xlstm.json

1. `seqbench check` rows for every xlstm implementation on cuda, bf16 and fp32 where supported, each
   against its reference in fp32 (harness.check.run_checks: an isolated worker, so an abort is a row).
   Implementations that cannot run are listed with their reason (xl_chunk under triton 3.6: the probe).
2. Op accuracy at the first sweep shape (B 4, 16 heads x 64, L 2048; its compiled kernels are reused by
   the timings): each Triton kernel on bf16 inputs vs our chunkwise form in fp32 on the same inputs (RMS
   ratio of h); the sigmoid-input-gate kernel against our form with input_gate="sigmoid".
3. Op timings (triton.testing.do_bench: median and p10/p90 ms; the first call, which compiles, is timed
   on its own and kept out): chunkwise--triton_limit_chunk and chunkwise--triton_xl_chunk_siging (and
   triton_xl_chunk only where its probe allows or with --force-unsafe) with each kernel's default chunk
   size (64; 128 for the TFLA kernels), bf16, fwd and fwd+bwd:
     a. B = 4, 16 heads x 64, L = 2K / 8K / 32K;
     b. constant tokens B·L = 65,536 at L 512 and 8192, 16 heads, d_qk 128, d_v 256, beside the numbers
        probed earlier on an H100 (REFERENCES.md).
   Accuracy and timing items run in one reusable worker subprocess (Triton compiles once per process and
   shape); a kernel that aborts kills only the worker, whose row then says so, and the next item starts a
   new one. The mLSTM kernels compile per shape (~10-20 s each, cold): --lengths trims the sweep.

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

SCRIPT_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPT_DIR.parents[1]))  # the repository root: harness, implementations
sys.path.insert(0, str(SCRIPT_DIR))  # this module, importable in the worker as `verify_xlstm`

from harness.provenance import software_versions  # noqa: E402  (after the path insert)

DEVICE = "cuda"
SAFE_KERNELS = ("chunkwise--triton_limit_chunk", "chunkwise--triton_xl_chunk_siging")
UNSAFE_KERNEL = "chunkwise--triton_xl_chunk"
SWEEP = {"batch": 4, "heads": 16, "d_qk": 64, "d_v": 64, "lengths": (2048, 8192, 32768)}
CONSTANT_TOKENS = 65536
CONSTANT_TOKEN_SHAPE = {"heads": 16, "d_qk": 128, "d_v": 256, "lengths": (512, 8192)}
# Probed on an H100 (REFERENCES.md, "Our probe, constant tokens"): (fwd ms, fwd+bwd ms) by (kernel, L).
PROBED_MS: dict[tuple[str, int], tuple[float, float]] = {
    ("chunkwise--triton_limit_chunk", 8192): (4.06, 13.66),
    ("chunkwise--triton_limit_chunk", 512): (4.04, 13.66),
    ("chunkwise--triton_xl_chunk_siging", 8192): (3.21, 10.05),
    ("chunkwise--triton_xl_chunk_siging", 512): (3.30, 10.29),
}
ITEM_TIMEOUTS_S = {"start": 600.0}


def one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


# ---- 1. check rows ---------------------------------------------------------------------------------


def check_rows() -> list[dict[str, Any]]:
    from harness import registry
    from harness.check import run_checks

    impls = [impl for impl in registry.implementations() if impl.family == "xlstm"]

    def progress(impl: Any, dtype: torch.dtype) -> None:
        print(f"  checking {impl.name} ({dtype}) ...", flush=True)

    rows, skipped = run_checks(impls, device=DEVICE, dtypes=(torch.bfloat16, torch.float32), progress=progress)
    out = [row.to_dict() for row in rows]
    for impl, reason in skipped:
        out.append({"implementation": impl.name, "dtype": "-", "test": "-", "status": "unavailable", "reason": reason})
    return out


# ---- items that run inside the worker ----------------------------------------------------------------


def _op_inputs(
    batch: int,
    heads: int,
    seq_len: int,
    d_qk: int,
    d_v: int,
    dtype: torch.dtype,
    requires_grad: bool,
    forget_bias: float = 0.0,
    seed: int = 0,
) -> list[torch.Tensor]:
    """q, k, v (B, H, L, d) and gate pre-activations i, f (B, H, L), standard normal as in mlstm_kernels'
    own benchmarks (f shifted by forget_bias), cast to `dtype`."""
    generator = torch.Generator(device=DEVICE).manual_seed(seed)
    shapes = [(batch, heads, seq_len, d_qk)] * 2 + [(batch, heads, seq_len, d_v)] + [(batch, heads, seq_len)] * 2
    tensors = [torch.randn(s, device=DEVICE, generator=generator) for s in shapes]
    tensors[4] += forget_bias
    tensors = [t.to(dtype) for t in tensors]
    for t in tensors:
        t.requires_grad_(requires_grad)
    return tensors


def accuracy_item(kernel: str, batch: int, heads: int, seq_len: int, d_qk: int, d_v: int) -> dict[str, Any]:
    """The kernel on bf16 inputs vs our chunkwise form in fp32 on the same (bf16-rounded) inputs."""
    from mlstm_kernels.torch import get_mlstm_kernel

    from harness.numerics import rms_ratio
    from implementations.xlstm.mlstm import mlstm_chunkwise

    # Forget pre-activations around 3 (gates ~0.95, as the blocks initialise them): memory spans chunks.
    inputs = _op_inputs(batch, heads, seq_len, d_qk, d_v, torch.bfloat16, requires_grad=False, forget_bias=3.0)
    input_gate = "sigmoid" if kernel.endswith("_siging") else "exponential"
    with torch.no_grad():
        expected = mlstm_chunkwise(*(t.float() for t in inputs), chunk_size=64, input_gate=input_gate)
        h = get_mlstm_kernel(kernel)(*inputs)
        torch.cuda.synchronize()
    return {"rms_ratio_h": rms_ratio(h, expected), "input_gate": input_gate}


def time_item(kernel: str, mode: str, batch: int, heads: int, seq_len: int, d_qk: int, d_v: int) -> dict[str, Any]:
    """Median/p10/p90 ms of one kernel call (fwd) or call + backward (fwd_bwd), bf16."""
    import triton.testing
    from mlstm_kernels.torch import get_mlstm_kernel

    torch.cuda.empty_cache()  # what the previous item cached
    fn = get_mlstm_kernel(kernel)
    training = mode == "fwd_bwd"
    inputs = _op_inputs(batch, heads, seq_len, d_qk, d_v, torch.bfloat16, requires_grad=training)
    grad_h = torch.randn(batch, heads, seq_len, d_v, device=DEVICE, dtype=torch.bfloat16) if training else None

    def run() -> None:
        if training:
            fn(*inputs).backward(grad_h)
        else:
            with torch.no_grad():
                fn(*inputs)

    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    start = time.perf_counter()
    run()  # compilation and autotuning, kept out of the statistics
    torch.cuda.synchronize()
    first_call_s = time.perf_counter() - start
    median, p10, p90 = triton.testing.do_bench(
        run, warmup=25, rep=200, grad_to_none=inputs if training else None, quantiles=[0.5, 0.1, 0.9]
    )
    peak = torch.cuda.max_memory_allocated() - base  # the inputs are freed (and the cache emptied) on return
    return {
        "median_ms": median,
        "p10_ms": p10,
        "p90_ms": p90,
        "first_call_s": round(first_call_s, 2),
        "peak_memory_bytes": peak,
        "tokens_per_s": batch * seq_len / (median * 1e-3),
    }


# ---- 2./3. driving the worker ------------------------------------------------------------------------


def kernels_to_run(force_unsafe: bool) -> tuple[list[str], dict[str, str]]:
    """The kernels to run in this process tree, and those left out with their reason."""
    from implementations.xlstm.requirements import known_abort, triton_version

    chosen, left_out = list(SAFE_KERNELS), {}
    reason = known_abort(UNSAFE_KERNEL, triton_version())
    if reason and not force_unsafe:
        left_out[UNSAFE_KERNEL] = reason
    else:
        chosen.insert(1, UNSAFE_KERNEL)
    return chosen, left_out


def run_items(worker: Any, items: list[tuple[dict[str, Any], str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """items: (row labels, worker target, kwargs), run one after another in `worker` (restarted after a
    crash by its next call)."""
    rows = []
    for labels, target, kwargs in items:
        outcome = worker.call(f"verify_xlstm:{target}", kwargs, ITEM_TIMEOUTS_S)
        row = dict(labels)
        if outcome.status == "ok":
            row.update(status="ok", **(outcome.value if isinstance(outcome.value, dict) else {"value": outcome.value}))
        else:
            row.update(status=outcome.status, reason=outcome.reason)
        print(f"  {row}", flush=True)
        rows.append(row)
    return rows


SWEEP_SHAPE = {key: SWEEP[key] for key in ("batch", "heads", "d_qk", "d_v")}


def accuracy_rows(worker: Any, kernels: list[str], seq_len: int) -> list[dict[str, Any]]:
    shape = {**SWEEP_SHAPE, "seq_len": seq_len}
    return run_items(worker, [({"kernel": k, **shape}, "accuracy_item", {"kernel": k, **shape}) for k in kernels])


def timing_rows(worker: Any, kernels: list[str], lengths: tuple[int, ...]) -> list[dict[str, Any]]:
    items = []
    for kernel in kernels:
        for mode in ("fwd", "fwd_bwd"):
            for seq_len in lengths:
                labels = {"suite": "sweep", "kernel": kernel, "mode": mode, "seq_len": seq_len, **SWEEP_SHAPE}
                items.append((labels, "time_item", {"kernel": kernel, "mode": mode, "seq_len": seq_len, **SWEEP_SHAPE}))
            for seq_len in CONSTANT_TOKEN_SHAPE["lengths"]:
                shape = {"batch": CONSTANT_TOKENS // seq_len, "heads": 16, "d_qk": 128, "d_v": 256}
                labels = {"suite": "constant_tokens", "kernel": kernel, "mode": mode, "seq_len": seq_len, **shape}
                probed = PROBED_MS.get((kernel, seq_len))
                if probed is not None:
                    labels["probed_ms"] = probed[0 if mode == "fwd" else 1]
                items.append((labels, "time_item", {"kernel": kernel, "mode": mode, "seq_len": seq_len, **shape}))
    return run_items(worker, items)


# ---- report ------------------------------------------------------------------------------------------


def print_tables(results: dict[str, Any]) -> None:
    print("\n=== versions ===")
    for key, value in results["versions"].items():
        print(f"  {key}: {value}")
    for kernel, reason in results.get("left_out", {}).items():
        print(f"  left out {kernel}: {reason}")
    print("\n=== seqbench check (cuda; reference in fp32) ===")
    print(f"  {'implementation':38s} {'dtype':9s} {'test':10s} {'error':>9s} {'tol':>7s}  status")
    for row in results.get("check", []):
        error, tol = row.get("rms_ratio", float("nan")), row.get("tolerance", float("nan"))
        print(
            f"  {row['implementation']:38s} {row['dtype']:9s} {row['test']:10s} {error:9.2e} {tol:7.0e}  "
            f"{row['status']} {row.get('reason', '')}"
        )
    print("\n=== op accuracy: kernel (bf16) vs our chunkwise form (fp32) on the same inputs, RMS ratio of h ===")
    for row in results.get("accuracy", []):
        if row["status"] == "ok":
            gate = f"({row['input_gate']} input gate)"
            print(f"  {row['kernel']:36s} L={row['seq_len']:<6d} {row['rms_ratio_h']:.2e}  {gate}")
        else:
            print(f"  {row['kernel']:36s} {row['status']}: {row.get('reason', '')}")
    print("\n=== op timings, bf16 (median ms [p10, p90]; first call s; peak memory above inputs) ===")
    for row in results.get("timing", []):
        shape = f"B={row['batch']:<3d} H={row['heads']} qk={row['d_qk']} v={row['d_v']}"
        head = f"  {row['suite']:15s} {row['kernel']:36s} {row['mode']:8s} L={row['seq_len']:<6d} {shape:26s}"
        if row["status"] == "ok":
            probed = f"  probed {row['probed_ms']:.2f}" if "probed_ms" in row else ""
            print(
                f"{head} {row['median_ms']:8.3f} [{row['p10_ms']:.3f}, {row['p90_ms']:.3f}]  "
                f"first {row['first_call_s']:5.1f} s  {row['peak_memory_bytes'] / 2**30:6.2f} GiB{probed}"
            )
        else:
            print(f"{head} {row['status']}: {row.get('reason', '')}")


def write_json(results: dict[str, Any]) -> None:
    out_dir = os.environ.get("OUT")
    if out_dir:
        path = Path(out_dir) / "verify_xlstm.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2, default=str))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-check", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--force-unsafe", action="store_true", help="run triton_xl_chunk even where it aborts")
    parser.add_argument("--lengths", type=int, nargs="+", default=list(SWEEP["lengths"]))
    args = parser.parse_args()

    if not torch.cuda.is_available():
        print("no CUDA device visible to torch: nothing to verify here")
        return 1
    if args.force_unsafe:
        from implementations.xlstm.requirements import FORCE_UNSAFE_ENV

        os.environ[FORCE_UNSAFE_ENV] = "1"  # read by the probe here and inherited by the workers
    results: dict[str, Any] = {"versions": software_versions()}
    try:
        kernels, results["left_out"] = kernels_to_run(args.force_unsafe)
    except Exception as exc:
        print(f"  cannot list the kernels: {one_line(exc)}")
        kernels, results["left_out"] = list(SAFE_KERNELS), {}
    from harness.worker import Worker

    started = time.perf_counter()
    with Worker() as worker:  # one process for accuracy and timings: shared compiled kernels
        steps: list[tuple[str, bool, Callable[[], Any]]] = [
            ("check", args.skip_check, check_rows),
            ("accuracy", args.skip_accuracy, lambda: accuracy_rows(worker, kernels, args.lengths[0])),
            ("timing", args.skip_timing, lambda: timing_rows(worker, kernels, tuple(args.lengths))),
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
            # Save and show each step as soon as it is done: a later one may outlast the caller's limit
            # (on the H100 the timings did, and the check table printed only at the end was lost).
            write_json(results)
            print_tables({"versions": {}, "left_out": {}, key: results.get(key, [])})
    results["total_s"] = round(time.perf_counter() - started, 1)
    write_json(results)
    print_tables(results)
    print(f"\ntotal {results['total_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
