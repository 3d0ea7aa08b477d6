"""Registry entries of the Mamba family and its analytic cost models.

Sizes: D = d_model, E = d_inner = expand·D, N = d_state, K = d_conv, R = dt_rank.
FLOPs per token, forward: projections 2·(2DE + E(R+2N) + RE + ED), depthwise conv 2EK, and the
selective scan 9EN + 2E (mamba_ssm's own count for a real-valued scan: discretize, update, read out;
plus the D skip and the gate). Backward ≈ 2× forward (matmuls exactly; the scan's backward recomputes
the forward and runs a reverse scan), so fwd+bwd = 3× forward. Decoding costs the same per token
whatever the context: the state has a fixed size (conv window + SSM state), constant in L.
"""

from __future__ import annotations

import math

import torch

from harness.config import MixerConfig
from harness.cost_models import stateful_layer_bytes_model
from harness.interface import BytesModel, Implementation, Package, StateBytesModel
from implementations.mamba_ssm_import import CAUSAL_CONV1D_NAME, conv_backend_probe

FAMILY = "mamba"
_PKG = "implementations.mamba"
_KERNEL_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_MAMBA_SSM_NEEDS = (Package("mamba_ssm", "mamba-ssm"), Package("triton", "triton"))


def _sizes(config: MixerConfig) -> tuple[int, int, int, int, int]:
    rank = int(config.option("dt_rank", 0) or math.ceil(config.d_model / 16))
    return config.d_model, config.d_inner, config.d_state, config.d_conv, rank


def _tokens(batch: int, seq_len: int, mode: str) -> int:
    if mode not in ("fwd", "prefill", "fwd_bwd", "train", "decode"):
        raise ValueError(f"unknown mode {mode!r}")
    return batch if mode == "decode" else batch * seq_len


def _backward_factor(mode: str) -> float:
    return 3.0 if mode in ("fwd_bwd", "train") else 1.0


def mamba_core_flops(config: MixerConfig, batch: int, seq_len: int, mode: str) -> float:
    """The selective scan alone: 9EN + 2E per token (mamba_ssm's count), ×3 with the backward."""
    _, E, N, _, _ = _sizes(config)
    return _backward_factor(mode) * _tokens(batch, seq_len, mode) * (9.0 * E * N + 2.0 * E)


def mamba_flops(config: MixerConfig, batch: int, seq_len: int, mode: str) -> float:
    D, E, N, K, R = _sizes(config)
    projections = 2.0 * (2 * D * E + E * (R + 2 * N) + R * E + E * D)
    per_token = projections + 2.0 * E * K
    return _backward_factor(mode) * _tokens(batch, seq_len, mode) * per_token + mamba_core_flops(
        config, batch, seq_len, mode
    )


def _weight_elements(config: MixerConfig) -> int:
    D, E, N, K, R = _sizes(config)
    return D * 2 * E + E * K + E + E * (R + 2 * N) + R * E + E + E * N + E + E * D


def _ssm_state_itemsize(dtype: torch.dtype) -> int:
    return 8 if dtype == torch.float64 else 4  # the SSM state stays in float32 (float64 for float64)


def reference_state_bytes(config: MixerConfig, batch: int, seq_len: int, dtype: torch.dtype) -> float:
    """Our decoding state: the last K-1 conv inputs and h (E×N, float32): constant in seq_len."""
    _, E, N, K, _ = _sizes(config)
    return float(batch * (E * (K - 1) * dtype.itemsize + E * N * _ssm_state_itemsize(dtype)))


def mamba_ssm_state_bytes(config: MixerConfig, batch: int, seq_len: int, dtype: torch.dtype) -> float:
    """mamba_ssm's decoding state: a K-wide conv window (the current input included) and h (float32)."""
    _, E, N, K, _ = _sizes(config)
    return float(batch * (E * K * dtype.itemsize + E * N * _ssm_state_itemsize(dtype)))


def _min_bytes(state_model: StateBytesModel) -> BytesModel:
    """The bytes model of a backend whose decoding state is `state_model` (layouts differ per backend):
    harness.cost_models.stateful_layer_min_bytes with this family's weights."""
    return stateful_layer_bytes_model(_weight_elements, state_model)


def mamba_core_min_bytes(config: MixerConfig, batch: int, seq_len: int, mode: str, dtype: torch.dtype) -> float:
    """selective_scan_fn's tensors, each once: u, delta, z, B, C in and out written (4E + 2N per token);
    the backward reads u, delta, z, B, C, dout and writes du, ddelta, dz, dB, dC (7E + 4N more).
    A, D, delta_bias are float32. Prefill adds the last state; decoding reads and writes h."""
    _, E, N, _, _ = _sizes(config)
    params = (E * N + 2 * E) * 4
    h_bytes = batch * E * N * 4
    if mode == "decode":
        return batch * (4 * E + 2 * N) * dtype.itemsize + 2 * h_bytes + params
    per_token = {"fwd": 4 * E + 2 * N, "prefill": 4 * E + 2 * N, "fwd_bwd": 11 * E + 6 * N, "train": 11 * E + 6 * N}
    if mode not in per_token:
        raise ValueError(f"unknown mode {mode!r}")
    return batch * seq_len * per_token[mode] * dtype.itemsize + params + (h_bytes if mode == "prefill" else 0)


_CORE_MODELS = {"core_flops_model": mamba_core_flops, "core_bytes_model": mamba_core_min_bytes}


def _conv_note() -> str:
    backend = conv_backend_probe()
    if backend == CAUSAL_CONV1D_NAME:
        return "causal_conv1d here"
    return "torch conv1d here (causal_conv1d not importable)"


IMPLEMENTATIONS = [
    Implementation(
        family=FAMILY,
        name="mamba/reference",
        backend="reference",
        build=f"{_PKG}.reference:build_reference",
        description="Mamba block in PyTorch: selective scan as a chunked parallel scan (option scan=sequential: "
        "the loop), step keeps conv window + SSM state",
        flops_model=mamba_flops,
        bytes_model=_min_bytes(reference_state_bytes),
        state_bytes_model=reference_state_bytes,
        **_CORE_MODELS,
    ),
    Implementation(
        family=FAMILY,
        name="mamba/mamba_ssm_scan",
        backend="cuda",
        build=f"{_PKG}.mamba_ssm_adapters:build_scan",
        devices=("cuda",),
        dtypes=_KERNEL_DTYPES,
        needs=_MAMBA_SSM_NEEDS,
        reference="mamba/reference",
        requirement=f"{_PKG}.requirements:selective_scan_cuda",
        built_extensions=("selective_scan_cuda",),
        level="op",
        description="our Mamba block with mamba_ssm's CUDA selective_scan_fn as its core (same weights); "
        "decode: the PyTorch step",
        flops_model=mamba_flops,
        bytes_model=_min_bytes(reference_state_bytes),
        state_bytes_model=reference_state_bytes,
        **_CORE_MODELS,
    ),
    Implementation(
        family=FAMILY,
        name="mamba/mamba_ssm",
        backend="cuda",
        build=f"{_PKG}.mamba_ssm_adapters:build_layer",
        devices=("cuda",),
        dtypes=_KERNEL_DTYPES,
        needs=_MAMBA_SSM_NEEDS,
        reference="mamba/reference",
        requirement=f"{_PKG}.requirements:selective_scan_cuda",
        built_extensions=("selective_scan_cuda",),
        level="layer",
        description=f"mamba_ssm.Mamba with the reference's weights; conv: {_conv_note()}; decode: Mamba.step "
        "(Triton selective_state_update)",
        flops_model=mamba_flops,
        bytes_model=_min_bytes(mamba_ssm_state_bytes),
        state_bytes_model=mamba_ssm_state_bytes,
        **_CORE_MODELS,
    ),
]
