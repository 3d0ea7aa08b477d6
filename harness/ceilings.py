"""Device ceilings, measured once per run: the matmul rate and the copy bandwidth that achieved TFLOP/s
and GB/s are divided by (`frac_peak_tflops`, `frac_peak_gbps`).

On CUDA: a bf16 8192³ matmul (the rate dense tensor-core work can reach; datasheet dense bf16 for an
H100 SXM is ~989 TFLOP/s, measured values are typically 600-800) and a 1 GiB device-to-device copy
(bytes read + bytes written; H100 SXM HBM3 datasheet 3.35 TB/s). The best of several reps: a ceiling
is what the device can do, not what it usually does.

On CPU the same quantities are measured cheaply (float32 matmul 1024³, 64 MiB copy, a fraction of a
second) so that CPU rows carry fractions too; `peak_matmul_dtype` says which dtype the rate is for.
"""

from __future__ import annotations

import time
from typing import Any


def _best_cuda_ms(fn, reps: int) -> float:
    import torch

    fn()  # warm-up: cuBLAS picks its algorithm, memory is allocated
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return min(times)


def _best_host_ms(fn, reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        began = time.perf_counter_ns()
        fn()
        times.append((time.perf_counter_ns() - began) / 1e6)
    return min(times)


def _matmul(n: int, dtype, device: str):
    import torch

    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    return lambda: torch.mm(a, b, out=out)


def _copy(n_bytes: int, device: str):
    import torch

    source = torch.empty(n_bytes, device=device, dtype=torch.uint8)
    target = torch.empty_like(source)
    return lambda: target.copy_(source)


def matmul_tflops(device: str, dtype, n: int, reps: int) -> float:
    """The best dense n³ matmul rate of `reps` (TFLOP/s) in `dtype` on `device`."""
    import torch

    best_ms = _best_cuda_ms if torch.device(device).type == "cuda" else _best_host_ms
    return 2.0 * n**3 / (best_ms(_matmul(n, dtype, device), reps) * 1e-3) / 1e12


def measure(device: str = "cpu") -> dict[str, Any]:
    """{'peak_matmul_tflops', 'peak_copy_gbps', 'peak_matmul_dtype'} for `device`."""
    import torch

    kind = torch.device(device).type
    if kind == "cuda":
        n, dtype, copy_bytes, reps, best_ms = 8192, torch.bfloat16, 1 << 30, 20, _best_cuda_ms
    else:
        n, dtype, copy_bytes, reps, best_ms = 1024, torch.float32, 64 << 20, 5, _best_host_ms
    peak_matmul_tflops = matmul_tflops(device, dtype, n, reps)
    copy_ms = best_ms(_copy(copy_bytes, device), reps)
    if kind == "cuda":
        torch.cuda.empty_cache()
    return {
        "peak_matmul_tflops": peak_matmul_tflops,
        "peak_copy_gbps": 2.0 * copy_bytes / (copy_ms * 1e-3) / 1e9,  # read + write
        "peak_matmul_dtype": str(dtype).removeprefix("torch."),
    }
