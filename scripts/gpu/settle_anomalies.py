"""Settle the open parts of docs/anomalies.md on one CUDA machine (not run yet; about 5 minutes cold).

    python scripts/gpu/settle_anomalies.py                 # every case, a table on stdout
    python scripts/gpu/settle_anomalies.py --only mamba2   # one group: mlstm, mamba2, state
    python scripts/gpu/settle_anomalies.py --list          # the cases, no GPU needed
    OUT=/some/dir python scripts/gpu/settle_anomalies.py   # also writes /some/dir/settle_anomalies.json

Every case runs at B·L = 65,536, L 8192 (B 8), bf16, on the same GPU, so the ratios between cases do not
depend on which H100/H200 runs it. Our timing: triton.testing.do_bench (25 ms warm-up, 200 ms reps, L2
flushed, gradients cleared); "paper harness": the TFLA paper's own benchmark classes as shipped in
mlstm_kernels 2.0.6 (mlstm_kernels/utils/benchmark: 10 warm-up + 30 timed iterations, median, gradients
never cleared, torch.cuda.empty_cache() after every rep).

mlstm (anomaly 1): chunkwise--triton_xl_chunk_siging, chunk 128, 16 heads.
  m1 paper harness, q/k 128, v 256, normalize=False      expect ~12.8 ms fwd+bwd if the GPU matches the paper's
  m2 do_bench, same shape                                  m1 - m2: the paper harness' own overhead
  m3 do_bench, q/k 256, v 256, normalize=False             m3 / m2: the shape alone (FLOP ratio 1.71)
  m4 do_bench, q/k 256, v 256, normalize=True              m4 - m3: our default normalize=True
  m5 do_bench, m4 on transposed (B, L, H, D) views         m5 - m4: the copies our adapter's inputs cost;
                                                           m5 should match the H100 anchor rows (22.66 / 7.90 ms)
mamba2 (anomaly 2): 64 heads × 64, chunk 256, ngroups 1.
  a1 paper harness "mamba2" (mamba_split_conv1d_scan_combined), d_state 64   expect ~27 ms fwd+bwd on an H100
  a2 do_bench, same function, bf16 leaves                  a1 - a2: fp32 leaves, accumulated gradients, allocator
  a3 do_bench, mamba_chunk_scan_combined with z, D, d_state 64              a2 - a3: the conv1d (fwd, recompute, bwd)
  a4 do_bench, a3 without z                                a3 - a4: the z gate
  a5 do_bench, a4 with d_state 128 (our anchor job)         a5 should match the H100 anchor rows (14.25 / 3.10 ms)
state (anomaly 3): mamba/mamba_ssm_scan's decode state after a prefill (d_model 1024, as the memory suite):
  storage bytes vs the bytes of the views themselves, L 1024 / 16384 / 65536; predicted storage
  12,288 + 262,144·ceil(L/2048): 274,432 / 2,109,440 / 8,400,896 (the view itself: 143,360).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

SCRIPT_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPT_DIR.parents[1]))  # the repository root: harness, implementations, suites

B, L = 8, 8192


def _leaves(shapes: list[tuple[int, ...]], dtype: Any, grad: bool) -> list[Any]:
    import torch

    return [torch.randn(s, device="cuda").to(dtype).requires_grad_(grad) for s in shapes]


def _do_bench(fn: Callable[[], Any], grads: list[Any]) -> float:
    import triton.testing

    fn()  # compile and autotune outside the statistics
    return float(triton.testing.do_bench(fn, warmup=25, rep=200, grad_to_none=grads, return_mode="median"))


def _paper_harness(benchmark: Any, **params: Any) -> float:
    benchmark.set_params({"device": "cuda", "dtype": "bfloat16", "warmup": 10, "rep": 30, **params})
    benchmark.setup_benchmark()
    return float(benchmark.run_benchmark().runtime)


def mlstm_case(case: str, fwbw: bool) -> float:
    import torch
    from mlstm_kernels.torch import get_mlstm_kernel

    heads, d_qk = 16, 128 if case in ("m1", "m2") else 256
    if case == "m1":
        from mlstm_kernels.utils.benchmark.benchmarks.training_kernel_benchmarks import mLSTMBenchmark

        params = {"kernel_name": "chunkwise--triton_xl_chunk_siging", "chunk_size": 128, "normalize": False}
        shape = {"batch_size": B, "sequence_length": L, "num_heads": heads, "head_dim_qk": d_qk, "head_dim_v": 256}
        return _paper_harness(mLSTMBenchmark(), fwbw=fwbw, **params, **shape)
    kernel = get_mlstm_kernel("chunkwise--triton_xl_chunk_siging")
    normalize = case in ("m4", "m5")
    bf16 = torch.bfloat16  # every input bf16, gates too, as the paper's benchmark casts them
    if case == "m5":  # as our adapter gets them: heads split off (B, L, H·D) projections, then transposed
        bases = _leaves([(B, L, heads * 256)] * 3 + [(B, L, heads)] * 2, bf16, fwbw)
        leaves = [t.view(B, L, heads, 256).transpose(1, 2) for t in bases[:3]] + [t.transpose(1, 2) for t in bases[3:]]
    else:
        bases = _leaves([(B, heads, L, d_qk)] * 2 + [(B, heads, L, 256)] + [(B, heads, L)] * 2, bf16, fwbw)
        leaves = bases
    grad_h = torch.randn(B, heads, L, 256, device="cuda", dtype=torch.bfloat16)

    def run() -> None:
        if fwbw:
            kernel(*leaves, chunk_size=128, normalize=normalize).backward(grad_h)
        else:
            with torch.no_grad():
                kernel(*leaves, chunk_size=128, normalize=normalize)

    return _do_bench(run, bases if fwbw else [])


def mamba2_case(case: str, fwbw: bool) -> float:
    import torch
    from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined, mamba_split_conv1d_scan_combined

    heads, head_dim, d_state = 64, 64, 128 if case == "a5" else 64
    dim = heads * head_dim
    if case == "a1":
        from mlstm_kernels.utils.benchmark.benchmarks.training_kernel_benchmarks import MambaKernelBenchmark

        shape = {"batch_size": B, "sequence_length": L, "num_heads": heads, "head_dim_qk": d_state}
        return _paper_harness(
            MambaKernelBenchmark(), kernel_name="mamba2", fwbw=fwbw, chunk_size=256, head_dim_v=64, **shape
        )
    bf16, fp32 = torch.bfloat16, torch.float32
    if case == "a2":
        zxbcdt, weight, bias, dt_bias, D = _leaves(
            [
                (B, L, 2 * dim + 2 * d_state + heads),
                (dim + 2 * d_state, 4),
                (dim + 2 * d_state,),
                (heads,),
                (heads, head_dim),
            ],
            bf16,
            fwbw,
        )
        A = torch.randn(heads, device="cuda").requires_grad_(fwbw)  # as the paper's benchmark draws it
        leaves = [zxbcdt, weight, bias, dt_bias, A, D]

        def call() -> Any:
            return mamba_split_conv1d_scan_combined(zxbcdt, weight, bias, dt_bias, A, D, 256)
    else:
        x, dt, Bm, Cm, z = _leaves(
            [(B, L, heads, head_dim), (B, L, heads), (B, L, 1, d_state), (B, L, 1, d_state), (B, L, heads, head_dim)],
            bf16,
            fwbw,
        )
        A = (-torch.rand(heads, device="cuda") - 0.5).requires_grad_(fwbw)
        D, dt_bias = _leaves([(heads,), (heads,)], fp32, fwbw)
        gate = z if case == "a3" else None
        leaves = [x, dt, Bm, Cm, A, D, dt_bias] + ([z] if gate is not None else [])

        def call() -> Any:
            return mamba_chunk_scan_combined(x, dt, A, Bm, Cm, 256, D=D, z=gate, dt_bias=dt_bias, dt_softplus=True)

    grad = torch.randn(B, L, dim, device="cuda", dtype=bf16)

    def run() -> None:
        if fwbw:
            out = call()
            out.backward(grad.view(out.shape))
        else:
            with torch.no_grad():
                call()

    return _do_bench(run, leaves if fwbw else [])


def state_case(seq_len: int) -> dict[str, float]:
    import torch

    from harness import registry
    from harness.config import MixerConfig
    from suites.memory import measure_state_memory

    config = {"d_model": 1024, "n_heads": 16, "d_state": 16, "expand": 2, "d_conv": 4}
    row = measure_state_memory("mamba/mamba_ssm_scan", "cuda", "bfloat16", 1, seq_len, config)
    impl = registry.get("mamba/mamba_ssm_scan")
    analytic = impl.state_bytes(MixerConfig.from_dict(config), 1, seq_len, torch.bfloat16)
    predicted = 12288 + 262144 * -(-seq_len // 2048)
    return {"storage_bytes": row["state_bytes_measured"], "predicted_storage_bytes": predicted, "analytic": analytic}


CASES = {
    "mlstm": [("m1", mlstm_case), ("m2", mlstm_case), ("m3", mlstm_case), ("m4", mlstm_case), ("m5", mlstm_case)],
    "mamba2": [(c, mamba2_case) for c in ("a1", "a2", "a3", "a4", "a5")],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("mlstm", "mamba2", "state"), action="append")
    parser.add_argument("--list", action="store_true", help="print the cases and exit (no GPU needed)")
    args = parser.parse_args()
    groups = args.only or ["mlstm", "mamba2", "state"]
    if args.list:
        print(__doc__)
        return 0
    import torch

    from harness.provenance import software_versions

    results: dict[str, Any] = {"gpu": torch.cuda.get_device_name(), "versions": software_versions(), "cases": {}}
    for group in groups:
        if group == "state":
            for seq_len in (1024, 16384, 65536):
                results["cases"][f"state-L{seq_len}"] = state_case(seq_len)
                print(f"state L {seq_len}: {results['cases'][f'state-L{seq_len}']}", flush=True)
            continue
        for name, fn in CASES[group]:
            line: dict[str, Any] = {}
            for mode, fwbw in (("fwd", False), ("fwd_bwd", True)):
                try:
                    line[f"{mode}_ms"] = round(fn(name, fwbw), 3)
                except Exception as exc:  # one failed case must not hide the others
                    line[f"{mode}_ms"] = None
                    line[f"{mode}_error"] = f"{type(exc).__name__}: {exc}"[:300]
                torch.cuda.empty_cache()
            results["cases"][name] = line
            print(f"{group} {name}: {line}", flush=True)
    if os.environ.get("OUT"):
        out = Path(os.environ["OUT"]) / "settle_anomalies.json"
        out.write_text(json.dumps(results, indent=2, default=str))
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
