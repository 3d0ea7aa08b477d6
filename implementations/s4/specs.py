"""Registry entries of the S4 family (S4 with a DPLR state matrix, and S4D) and their analytic cost models.

S4 and S4D compute different functions, so each has its own reference; the GPU entries run the same
modules on CUDA, where torch.fft is cuFFT, and are checked against those references.

Cost conventions (per channel H = d_model, N = d_state states = M = N/2 complex modes, batch B, length L):
  - real FLOPs; a complex multiply is 6, a complex add 2, a complex multiply-add 8, a complex division 11,
    a complex exponential 5 (exp, cos, sin, two multiplies: transcendentals count one each);
  - an FFT of n complex points costs 5 n log2 n, a real FFT (rfft / irfft) half of that;
  - a dense n x n complex matrix product costs 8 n^3; an LU solve with n right-hand sides 8 (2/3 + 2) n^3;
  - backward costs twice the forward (fwd_bwd = 3x fwd), as for matmuls;
  - GELU and other elementwise work outside the SSM are not counted; the D skip is (2 per element).
Minimum bytes assume an ideal fused kernel: every input read once, every output written once, nothing
else (the kernel K and FFT buffers stay on chip). The SSM works in float32 (float64 for a float64 layer),
so its parameters, its state and the core op's activations count 4 (8) bytes per real number.
"""

from __future__ import annotations

import math

import torch

from harness.config import MixerConfig
from harness.interface import Implementation

FAMILY = "s4"
_PKG = "implementations.s4"
_ALL_DTYPES = (torch.float64, torch.float32, torch.bfloat16, torch.float16)
_GPU_DTYPES = (torch.float32, torch.bfloat16, torch.float16)

COMPLEX_MUL, COMPLEX_ADD, COMPLEX_FMA, COMPLEX_DIV, COMPLEX_EXP = 6, 2, 8, 11, 5


def _log2(n: int) -> float:
    return math.log2(n) if n > 1 else 0.0


def fft_flops(n: int) -> float:
    """A complex FFT of n points: 5 n log2 n (the usual convention)."""
    return 5.0 * n * _log2(n)


def real_fft_flops(n: int) -> float:
    return 0.5 * fft_flops(n)


def _ssm_itemsize(dtype: torch.dtype) -> int:
    return 8 if dtype == torch.float64 else 4


def _modes(config: MixerConfig) -> int:
    return config.d_state // 2


# ---------------------------------------------------------------------------------------------
# The kernel (batch-independent) and the FFT convolution


def s4_dense_power_flops(config: MixerConfig, seq_len: int) -> float:
    """A-bar = (I - Delta/2 A)^{-1}(I + Delta/2 A) by an LU solve and A-bar^L by repeated squaring, N x N complex."""
    n = config.d_state
    products = math.floor(_log2(seq_len)) + bin(seq_len).count("1") - 1
    return config.d_model * (8.0 * (2 / 3 + 2) * n**3 + products * 8.0 * n**3)


def s4_kernel_flops(config: MixerConfig, seq_len: int) -> float:
    """Algorithm 1: C~ = C (I - A-bar^L); four Cauchy sums over both modes of each pair at ceil(L/2) nodes
    (per node and mode: one subtraction, one division, four multiply-adds); Woodbury; irfft of length L."""
    n, m, nodes = config.d_state, _modes(config), seq_len // 2 + 1
    cauchy = nodes * 2 * m * (COMPLEX_ADD + COMPLEX_DIV + 4 * COMPLEX_FMA)
    woodbury = nodes * (COMPLEX_DIV + 2 * COMPLEX_MUL + 2 * COMPLEX_ADD)
    per_channel = COMPLEX_FMA * n * n + cauchy + woodbury + real_fft_flops(seq_len)
    return s4_dense_power_flops(config, seq_len) + config.d_model * per_channel


def s4d_kernel_flops(config: MixerConfig, seq_len: int) -> float:
    """Vandermonde: per mode and position, l * log A-bar (2), a complex exp and a complex multiply-add."""
    return config.d_model * _modes(config) * seq_len * (2 + COMPLEX_EXP + COMPLEX_FMA)


def fft_convolution_flops(config: MixerConfig, batch: int, seq_len: int) -> float:
    """rfft of u and irfft of the product at length 2L per (batch, channel), the product, and rfft of K per channel."""
    n = 2 * seq_len
    per_sequence = 2 * real_fft_flops(n) + COMPLEX_MUL * (seq_len + 1)
    return config.d_model * (batch * per_sequence + real_fft_flops(n))


def _kernel_flops(variant: str, config: MixerConfig, seq_len: int) -> float:
    return s4_kernel_flops(config, seq_len) if variant == "s4" else s4d_kernel_flops(config, seq_len)


def _final_state_flops(variant: str, config: MixerConfig, batch: int, seq_len: int) -> float:
    """The state after a prompt, by the parallel forms (`ssm_kernel.s4_final_state`, `vandermonde_final_state`)."""
    h, n, m = config.d_model, config.d_state, _modes(config)
    if variant == "s4d":  # Vandermonde matrix once per channel, real-times-complex multiply-add per batch row
        return h * m * seq_len * (2 + COMPLEX_EXP) + batch * h * m * seq_len * 4
    cauchy = h * seq_len * 2 * m * (COMPLEX_ADD + COMPLEX_DIV + 2 * COMPLEX_FMA)  # sigma: two sums over pairs
    products = batch * h * seq_len * m * 2 * COMPLEX_FMA  # two Cauchy products per batch row
    per_row = fft_flops(seq_len) + COMPLEX_FMA * n * n  # FFT of u, then (I - A-bar^L) y
    return s4_dense_power_flops(config, seq_len) + cauchy + products + batch * h * per_row


def _step_flops(variant: str, config: MixerConfig, batch: int) -> float:
    """One recurrence step and readout y = 2 Re(C x), per mode: S4's Sherman-Morrison bilinear step, S4D's
    diagonal update; plus the discretization redone every step (batch-independent)."""
    h, m = config.d_model, _modes(config)
    if variant == "s4":
        per_row, per_channel = 48 + 4, 27
    else:
        per_row, per_channel = COMPLEX_MUL + 2 + COMPLEX_ADD + 4, COMPLEX_EXP + COMPLEX_DIV + 2 * COMPLEX_MUL
    return batch * h * m * per_row + h * m * per_channel


def _outputs(config: MixerConfig) -> int:
    """The output projection's width: H, or 2H under output = "glu" (its two halves, value and gate)."""
    return 2 * config.d_model if config.option("output", "gelu") == "glu" else config.d_model


def _flops(variant: str, config: MixerConfig, batch: int, seq_len: int, mode: str, core: bool) -> float:
    h, out = config.d_model, _outputs(config)
    glu = 2.0 * batch * h if out > h else 0.0  # the gate: a sigmoid and a product per channel
    # per token: the projection and its bias, the D skip, the GLU
    outside = 0.0 if core else 2.0 * batch * h * out + batch * out + 2.0 * batch * h + glu
    if mode == "decode":
        return _step_flops(variant, config, batch) + outside
    forward = _kernel_flops(variant, config, seq_len) + fft_convolution_flops(config, batch, seq_len)
    forward += outside * seq_len
    if mode == "fwd" or (mode == "prefill" and core):
        return forward
    if mode == "prefill":
        return forward + _final_state_flops(variant, config, batch, seq_len)
    if mode in ("fwd_bwd", "train"):
        return 3.0 * forward
    raise ValueError(f"unknown mode {mode!r}")


def _ssm_parameters(variant: str, config: MixerConfig) -> int:
    """Real numbers in the SSM: log Delta and D per channel; Lambda / A, B, C (and S4's P), complex, per mode."""
    complex_vectors = 4 if variant == "s4" else 3
    return config.d_model * (2 + 2 * complex_vectors * _modes(config))


def _bytes(
    variant: str, config: MixerConfig, batch: int, seq_len: int, mode: str, dtype: torch.dtype, core: bool
) -> float:
    h, w, s = config.d_model, _ssm_itemsize(dtype), dtype.itemsize
    ssm_weights = _ssm_parameters(variant, config) * w
    state = batch * h * config.d_state * w  # M complex = N real numbers per channel
    if core:  # u in and y out in the SSM's dtype; the projection and its weights are outside
        activation, weights = batch * h * w, ssm_weights
    else:
        activation, weights = batch * h * s, ssm_weights + (h * _outputs(config) + _outputs(config)) * s
    if mode == "decode":
        return 2 * activation + weights + 2 * state
    sequence = activation * seq_len
    if mode == "fwd" or (mode == "prefill" and core):
        return 2 * sequence + weights
    if mode == "prefill":
        return 2 * sequence + weights + state
    if mode in ("fwd_bwd", "train"):
        return 4 * sequence + 2 * weights
    raise ValueError(f"unknown mode {mode!r}")


def ssm_state_bytes(config: MixerConfig, batch: int, seq_len: int, dtype: torch.dtype) -> float:
    """N/2 complex modes per channel (complex64, complex128 for float64): constant in the context length."""
    return float(batch * config.d_model * config.d_state * _ssm_itemsize(dtype))


def s4_flops(config: MixerConfig, batch: int, seq_len: int, mode: str) -> float:
    return _flops("s4", config, batch, seq_len, mode, core=False)


def s4_min_bytes(config: MixerConfig, batch: int, seq_len: int, mode: str, dtype: torch.dtype) -> float:
    return _bytes("s4", config, batch, seq_len, mode, dtype, core=False)


def s4_core_flops(config: MixerConfig, batch: int, seq_len: int, mode: str) -> float:
    return _flops("s4", config, batch, seq_len, mode, core=True)


def s4_core_min_bytes(config: MixerConfig, batch: int, seq_len: int, mode: str, dtype: torch.dtype) -> float:
    return _bytes("s4", config, batch, seq_len, mode, dtype, core=True)


def s4d_flops(config: MixerConfig, batch: int, seq_len: int, mode: str) -> float:
    return _flops("s4d", config, batch, seq_len, mode, core=False)


def s4d_min_bytes(config: MixerConfig, batch: int, seq_len: int, mode: str, dtype: torch.dtype) -> float:
    return _bytes("s4d", config, batch, seq_len, mode, dtype, core=False)


def s4d_core_flops(config: MixerConfig, batch: int, seq_len: int, mode: str) -> float:
    return _flops("s4d", config, batch, seq_len, mode, core=True)


def s4d_core_min_bytes(config: MixerConfig, batch: int, seq_len: int, mode: str, dtype: torch.dtype) -> float:
    return _bytes("s4d", config, batch, seq_len, mode, dtype, core=True)


_S4_MODELS = {
    "flops_model": s4_flops,
    "bytes_model": s4_min_bytes,
    "state_bytes_model": ssm_state_bytes,
    "core_flops_model": s4_core_flops,
    "core_bytes_model": s4_core_min_bytes,
}
_S4D_MODELS = {
    "flops_model": s4d_flops,
    "bytes_model": s4d_min_bytes,
    "state_bytes_model": ssm_state_bytes,
    "core_flops_model": s4d_core_flops,
    "core_bytes_model": s4d_core_min_bytes,
}

IMPLEMENTATIONS = [
    Implementation(
        family=FAMILY,
        name="s4/reference",
        backend="reference",
        build=f"{_PKG}.reference:build_s4",
        dtypes=_ALL_DTYPES,
        description="S4: HiPPO-LegS DPLR, bilinear, Cauchy + Woodbury kernel, FFT convolution (PyTorch)",
        **_S4_MODELS,
    ),
    Implementation(
        family=FAMILY,
        name="s4/cufft",
        backend="cufft",
        build=f"{_PKG}.reference:build_s4",
        devices=("cuda",),
        dtypes=_GPU_DTYPES,
        reference="s4/reference",
        description="the S4 module on CUDA: torch.fft (cuFFT) convolution, torch Cauchy kernel",
        **_S4_MODELS,
    ),
    Implementation(
        family=FAMILY,
        name="s4/s4d_reference",
        backend="reference",
        build=f"{_PKG}.reference:build_s4d",
        dtypes=_ALL_DTYPES,
        description="S4D: diagonal SSM (Lin/Inv/LegS init), ZOH, Vandermonde kernel, FFT convolution (PyTorch)",
        **_S4D_MODELS,
    ),
    Implementation(
        family=FAMILY,
        name="s4/s4d_cufft",
        backend="cufft",
        build=f"{_PKG}.reference:build_s4d",
        devices=("cuda",),
        dtypes=_GPU_DTYPES,
        reference="s4/s4d_reference",
        description="the S4D module on CUDA: torch.fft (cuFFT) convolution, Vandermonde kernel",
        **_S4D_MODELS,
    ),
]
