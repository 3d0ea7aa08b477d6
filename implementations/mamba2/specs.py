"""Registry entries of the Mamba-2 family and its analytic cost models.

Sizes: D = d_model, E = d_inner = expand·D, H heads of P = E/H channels, G groups, N = d_state,
K = d_conv, Q = chunk_size (Q' = min(Q, L): a sequence shorter than a chunk is one chunk).
FLOPs per token, forward: projections 2D(2E + 2GN + H) + 2ED, depthwise conv 2(E + 2GN)K, gate and
norm ~6E, and the chunked SSD 2(GQ'N + HQ'P + 2HPN) + E: C·B^T within chunks (per group), the
masked (Q'×Q') product with x (per head), chunk states and their read-out (per head), the D skip.
Backward ≈ 2× forward, so fwd+bwd = 3× forward. Decoding: the recurrent step, 5HPN + E per token for
the core (decay, input and read-out), independent of the context length.
"""

from __future__ import annotations

import torch

from harness.config import MixerConfig
from harness.cost_models import stateful_layer_bytes_model
from harness.interface import BytesModel, Implementation, Package, StateBytesModel

FAMILY = "mamba2"
_PKG = "implementations.mamba2"
_KERNEL_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_MAMBA_SSM_NEEDS = (Package("mamba_ssm", "mamba-ssm"), Package("triton", "triton"))
_FLA_NEEDS = (Package("fla", "flash-linear-attention"), Package("triton", "triton"))
_MODES = ("fwd", "prefill", "fwd_bwd", "train", "decode")


def _sizes(config: MixerConfig) -> tuple[int, int, int, int, int, int, int, int]:
    E = config.d_inner
    H = config.n_heads
    return config.d_model, E, H, E // H, config.n_groups, config.d_state, config.d_conv, config.chunk_size


def _check_mode(mode: str) -> None:
    if mode not in _MODES:
        raise ValueError(f"unknown mode {mode!r}")


def _backward_factor(mode: str) -> float:
    return 3.0 if mode in ("fwd_bwd", "train") else 1.0


def mamba2_core_flops(config: MixerConfig, batch: int, seq_len: int, mode: str) -> float:
    """SSD alone: chunked form per token 2(GQ'N + HQ'P + 2HPN) + E; decoding 5HPN + E per token."""
    _check_mode(mode)
    _, E, H, P, G, N, _, Q = _sizes(config)
    if mode == "decode":
        return batch * (5.0 * H * P * N + E)
    chunk = min(Q, seq_len)
    per_token = 2.0 * (G * chunk * N + H * chunk * P + 2 * H * P * N) + E
    return _backward_factor(mode) * batch * seq_len * per_token


def mamba2_flops(config: MixerConfig, batch: int, seq_len: int, mode: str) -> float:
    _check_mode(mode)
    D, E, H, _, G, N, K, _ = _sizes(config)
    per_token = 2.0 * D * (2 * E + 2 * G * N + H) + 2.0 * E * D + 2.0 * (E + 2 * G * N) * K + 6.0 * E
    tokens = batch if mode == "decode" else batch * seq_len
    return _backward_factor(mode) * tokens * per_token + mamba2_core_flops(config, batch, seq_len, mode)


def _weight_elements(config: MixerConfig) -> int:
    D, E, H, _, G, N, K, _ = _sizes(config)
    conv_dim = E + 2 * G * N
    return D * (E + conv_dim + H) + conv_dim * (K + 1) + 3 * H + E + E * D


def _ssm_state_itemsize(dtype: torch.dtype) -> int:
    return 8 if dtype == torch.float64 else 4  # the SSM state stays in float32 (float64 for float64)


def reference_state_bytes(config: MixerConfig, batch: int, seq_len: int, dtype: torch.dtype) -> float:
    """Our decoding state: the last K-1 conv inputs (E + 2GN channels) and H·P·N SSM state (float32)."""
    _, E, H, P, G, N, K, _ = _sizes(config)
    return float(batch * ((E + 2 * G * N) * (K - 1) * dtype.itemsize + H * P * N * _ssm_state_itemsize(dtype)))


def mamba_ssm_state_bytes(config: MixerConfig, batch: int, seq_len: int, dtype: torch.dtype) -> float:
    """mamba_ssm's decoding state: a K-wide conv window (the current input included), SSM state float32."""
    _, E, H, P, G, N, K, _ = _sizes(config)
    return float(batch * ((E + 2 * G * N) * K * dtype.itemsize + H * P * N * _ssm_state_itemsize(dtype)))


def _min_bytes(state_model: StateBytesModel) -> BytesModel:
    """The bytes model of a backend whose decoding state is `state_model` (layouts differ per backend):
    harness.cost_models.stateful_layer_min_bytes with this family's weights."""
    return stateful_layer_bytes_model(_weight_elements, state_model, _check_mode)


def mamba2_core_min_bytes(config: MixerConfig, batch: int, seq_len: int, mode: str, dtype: torch.dtype) -> float:
    """mamba_chunk_scan_combined's tensors, each once: x, dt, B, C in and y out (2E + H + 2GN per token);
    the backward reads x, dt, B, C, dy and writes dx, ddt, dB, dC (3E + 2H + 4GN more). A, D, dt_bias
    are float32; prefill adds the final state, decoding reads and writes it."""
    _check_mode(mode)
    _, E, H, P, G, N, _, _ = _sizes(config)
    params = 3 * H * 4
    state = batch * H * P * N * 4
    forward_elements = 2 * E + H + 2 * G * N
    if mode == "decode":
        return batch * forward_elements * dtype.itemsize + 2 * state + params
    per_token = forward_elements if mode in ("fwd", "prefill") else 5 * E + 3 * H + 6 * G * N
    return batch * seq_len * per_token * dtype.itemsize + params + (state if mode == "prefill" else 0)


_CORE_MODELS = {"core_flops_model": mamba2_core_flops, "core_bytes_model": mamba2_core_min_bytes}
_REFERENCE_MODELS = {
    "flops_model": mamba2_flops,
    "bytes_model": _min_bytes(reference_state_bytes),
    "state_bytes_model": reference_state_bytes,
    **_CORE_MODELS,
}
_NO_EXTENSION_NOTE = (
    "runs without mamba_ssm's compiled selective_scan_cuda (a stub module stands in so the package imports)"
)


def mamba2_head_dim(config: MixerConfig) -> int:
    """Mamba-2's heads split d_inner = expand·d_model, not d_model."""
    return config.d_inner // config.n_heads


IMPLEMENTATIONS = [
    Implementation(
        family=FAMILY,
        head_dim_model=mamba2_head_dim,
        name="mamba2/reference",
        backend="reference",
        build=f"{_PKG}.reference:build_reference",
        description="Mamba-2 block in PyTorch: SSD by the chunked four-step algorithm (option ssd=quadratic|"
        "recurrent: the dual or the recurrent form), step keeps conv window + SSM state",
        **_REFERENCE_MODELS,
    ),
    Implementation(
        family=FAMILY,
        head_dim_model=mamba2_head_dim,
        name="mamba2/mamba_ssm_ssd",
        backend="triton",
        build=f"{_PKG}.mamba_ssm_adapters:build_ssd",
        devices=("cuda",),
        dtypes=_KERNEL_DTYPES,
        needs=_MAMBA_SSM_NEEDS,
        reference="mamba2/reference",
        level="op",
        description="our Mamba-2 block with mamba_ssm's Triton mamba_chunk_scan_combined as its core (same "
        f"weights); decode: the PyTorch step; {_NO_EXTENSION_NOTE}",
        **_REFERENCE_MODELS,
    ),
    Implementation(
        family=FAMILY,
        head_dim_model=mamba2_head_dim,
        name="mamba2/mamba_ssm",
        backend="triton",
        build=f"{_PKG}.mamba_ssm_adapters:build_layer",
        devices=("cuda",),
        dtypes=_KERNEL_DTYPES,
        needs=_MAMBA_SSM_NEEDS,
        reference="mamba2/reference",
        level="layer",
        description="mamba_ssm.Mamba2 with the reference's weights (fused conv+SSD path when causal_conv1d is "
        f"importable, else conv1d + SSD); decode: Mamba2.step (Triton); {_NO_EXTENSION_NOTE}",
        flops_model=mamba2_flops,
        bytes_model=_min_bytes(mamba_ssm_state_bytes),
        state_bytes_model=mamba_ssm_state_bytes,
        **_CORE_MODELS,
    ),
    Implementation(
        family=FAMILY,
        head_dim_model=mamba2_head_dim,
        name="mamba2/fla_simple_gla",
        backend="triton",
        build=f"{_PKG}.fla_adapters:build",
        devices=("cuda",),
        dtypes=_KERNEL_DTYPES,
        needs=_FLA_NEEDS,
        reference="mamba2/reference",
        level="op",
        description="our Mamba-2 block with fla's chunk_simple_gla as its SSD (q=C, k=B, v=dt·x, g=dt·A, "
        "scale=1; D skip outside); decode: the PyTorch step",
        **_REFERENCE_MODELS,
    ),
]
