"""How close is close enough: the RMS-ratio metric and tolerances justified by dtype."""

from __future__ import annotations

import torch


def rms_ratio(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """RMS(expected - actual) / RMS(expected), in float64 (fla's `assert_close` metric).

    NaN or inf anywhere in `actual` gives inf: a non-finite output never passes.
    """
    if actual.shape != expected.shape:
        raise ValueError(f"shape mismatch: {tuple(actual.shape)} vs {tuple(expected.shape)}")
    a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
    if not torch.isfinite(a).all():
        return float("inf")
    denom = e.pow(2).mean().sqrt().item()
    num = (a - e).pow(2).mean().sqrt().item()
    if denom == 0.0:
        return 0.0 if num == 0.0 else float("inf")
    return num / denom


# RMS-ratio tolerance per dtype of the implementation under test, against a reference in float64 (CPU)
# or float32 (GPU). Unit roundoff u: fp64 1.1e-16, fp32 6.0e-8, fp16 4.9e-4, bf16 3.9e-3. A mixer chains
# a few matmuls, a nonlinearity and a reduction over the sequence, each adding O(u) relative error that
# grows slowly with length; the bounds leave ~10-50u for that, the range fla's kernel tests use for bf16
# (0.005-0.02). fp32 allows 1e-4 because TF32-free GPU kernels still reorder long sums (chunked scans).
TOLERANCE: dict[torch.dtype, float] = {
    torch.float64: 1e-10,
    torch.float32: 1e-4,
    torch.float16: 5e-3,
    torch.bfloat16: 2e-2,
}


def tolerance(dtype: torch.dtype) -> float:
    return TOLERANCE[dtype]
