"""Registry entries of the RWKV family and its analytic cost models.

FLOPs count matmul-like work (2 per multiply-add); elementwise work (token shift, sigmoids, norms) is
left out, as the attention family leaves out its softmax. Backward is taken as 2x forward (fwd+bwd 3x).
Per token, with D = d_model, I = heads·head_dim, d = head_dim, C = chunk_size:

    projections   r, k, v, output: 8·D·I; each LoRA of rank R: 2·R·(D + I)
                  (decay, ICLR, gate; the value LoRA only with option value_residual)
    core, recurrent   9·I·d   (decay, removal aᵀS, rank-one write, k vᵀ write, readout rᵀS)
    core, chunked     I·(8·C + 8·d + 7·C)   (four intra-chunk C×C score matrices over d, the
                      triangular solve, and the chunk's state products; the fla chunk kernel's
                      algorithm has the same terms)

Decoding one token always costs the recurrent core, whatever the context length. The state is
constant in the context: heads·d·d per sequence (float32 for bf16/fp16 mixers, as fla keeps it)
plus the previous token (d_model values) for the token shift.
"""

from __future__ import annotations

import torch

from harness.config import MixerConfig
from harness.cost_models import stateful_layer_min_bytes
from harness.interface import Implementation, Package
from implementations.rwkv.reference import rwkv7_settings

FAMILY = "rwkv"
_PKG = "implementations.rwkv"
FLA = Package(module="fla", pip="flash-linear-attention")
_FLA_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _state_itemsize(dtype: torch.dtype) -> int:
    return 8 if dtype == torch.float64 else 4  # the recurrence runs in float32 below float64


def _weight_count(config: MixerConfig) -> int:
    s = rwkv7_settings(config)
    d, inner = s.d_model, s.inner
    ranks = [s.decay_low_rank_dim, s.a_low_rank_dim, s.gate_low_rank_dim]
    ranks += [s.v_low_rank_dim] if s.value_residual else []
    lora = sum(rank * (d + inner) for rank in ranks) + inner * (3 if s.value_residual else 2)  # + biases
    return 6 * d + 4 * d * inner + lora + 3 * inner + 2 * inner  # μ, projections, LoRAs, ξ α ρ, GroupNorm


def _projection_flops_per_token(config: MixerConfig) -> float:
    s = rwkv7_settings(config)
    ranks = [s.decay_low_rank_dim, s.a_low_rank_dim, s.gate_low_rank_dim]
    ranks += [s.v_low_rank_dim] if s.value_residual else []
    return 8.0 * s.d_model * s.inner + sum(2.0 * rank * (s.d_model + s.inner) for rank in ranks)


def _recurrent_core_flops_per_token(config: MixerConfig) -> float:
    s = rwkv7_settings(config)
    return 9.0 * s.inner * s.head_dim


def _chunked_core_flops_per_token(config: MixerConfig, seq_len: int) -> float:
    s = rwkv7_settings(config)
    chunk = max(1, min(s.chunk_size, seq_len))  # a sequence shorter than a chunk is one short chunk
    return s.inner * (8.0 * chunk + 8.0 * s.head_dim + 7.0 * chunk)


def _scale_for_mode(forward: float, decode: float, mode: str) -> float:
    if mode in ("fwd", "prefill"):
        return forward
    if mode in ("fwd_bwd", "train"):
        return 3.0 * forward
    if mode == "decode":
        return decode
    raise ValueError(f"unknown mode {mode!r}")


def _core_flops(config: MixerConfig, batch: int, seq_len: int, mode: str, chunked: bool) -> float:
    if chunked:
        per_token = _chunked_core_flops_per_token(config, seq_len)
    else:
        per_token = _recurrent_core_flops_per_token(config)
    return _scale_for_mode(batch * seq_len * per_token, batch * _recurrent_core_flops_per_token(config), mode)


def rwkv7_chunked_core_flops(config: MixerConfig, batch: int, seq_len: int, mode: str) -> float:
    return _core_flops(config, batch, seq_len, mode, chunked=True)


def rwkv7_recurrent_core_flops(config: MixerConfig, batch: int, seq_len: int, mode: str) -> float:
    return _core_flops(config, batch, seq_len, mode, chunked=False)


def rwkv7_chunked_flops(config: MixerConfig, batch: int, seq_len: int, mode: str) -> float:
    projections = _projection_flops_per_token(config)
    decode = batch * (projections + _recurrent_core_flops_per_token(config))
    return _scale_for_mode(batch * seq_len * projections, decode, mode) + (
        0.0 if mode == "decode" else rwkv7_chunked_core_flops(config, batch, seq_len, mode)
    )


def rwkv7_recurrent_flops(config: MixerConfig, batch: int, seq_len: int, mode: str) -> float:
    projections = _projection_flops_per_token(config)
    decode = batch * (projections + _recurrent_core_flops_per_token(config))
    return _scale_for_mode(batch * seq_len * projections, decode, mode) + (
        0.0 if mode == "decode" else rwkv7_recurrent_core_flops(config, batch, seq_len, mode)
    )


def rwkv7_state_bytes(config: MixerConfig, batch: int, seq_len: int, dtype: torch.dtype) -> float:
    """heads·d·d state (float32 below float64) + the previous token: constant in seq_len."""
    s = rwkv7_settings(config)
    return float(batch * (s.n_heads * s.head_dim * s.head_dim * _state_itemsize(dtype) + s.d_model * dtype.itemsize))


def rwkv7_min_bytes(config: MixerConfig, batch: int, seq_len: int, mode: str, dtype: torch.dtype) -> float:
    """Fewest HBM bytes of the whole block (harness.cost_models.stateful_layer_min_bytes): x in, y out,
    weights once (and their gradients, and dy / dx, for fwd+bwd); prefill also writes the state, decode
    reads and writes it."""
    return stateful_layer_min_bytes(
        mode,
        batch=batch,
        seq_len=seq_len,
        d_model=rwkv7_settings(config).d_model,
        itemsize=dtype.itemsize,
        weight_elements=_weight_count(config),
        state_bytes=rwkv7_state_bytes(config, batch, seq_len, dtype),
    )


def rwkv7_core_min_bytes(config: MixerConfig, batch: int, seq_len: int, mode: str, dtype: torch.dtype) -> float:
    """The op alone: r, w, k, v, a, b read and o written once (7 tensors of B·L·I); fwd+bwd also
    dO in and six gradients out (14); prefill writes the final state; decode reads and writes it."""
    s = rwkv7_settings(config)
    tensor = batch * seq_len * s.inner * dtype.itemsize
    wkv = batch * s.n_heads * s.head_dim * s.head_dim * _state_itemsize(dtype)
    if mode == "fwd":
        return 7 * tensor
    if mode == "prefill":
        return 7 * tensor + wkv
    if mode in ("fwd_bwd", "train"):
        return 14 * tensor
    if mode == "decode":
        return 7 * batch * s.inner * dtype.itemsize + 2 * wkv
    raise ValueError(f"unknown mode {mode!r}")


_CHUNKED = {
    "flops_model": rwkv7_chunked_flops,
    "bytes_model": rwkv7_min_bytes,
    "state_bytes_model": rwkv7_state_bytes,
    "core_flops_model": rwkv7_chunked_core_flops,
    "core_bytes_model": rwkv7_core_min_bytes,
}
_RECURRENT = {**_CHUNKED, "flops_model": rwkv7_recurrent_flops, "core_flops_model": rwkv7_recurrent_core_flops}

IMPLEMENTATIONS = [
    Implementation(
        family=FAMILY,
        name="rwkv/rwkv7_reference",
        backend="reference",
        build=f"{_PKG}.reference:build_reference",
        description=(
            "RWKV-7 time mixing in PyTorch (token shift, decay/ICLR/value/gate LoRAs, k norm, GroupNorm, "
            "bonus, gate); core: exact chunked generalized delta rule, decoding: the recurrence"
        ),
        **_CHUNKED,
    ),
    Implementation(
        family=FAMILY,
        name="rwkv/rwkv7_fla_chunk",
        backend="triton",
        build=f"{_PKG}.fla_adapters:build_chunk",
        devices=("cuda",),
        dtypes=_FLA_DTYPES,
        needs=(FLA,),
        reference="rwkv/rwkv7_reference",
        requirement=f"{_PKG}.requirements:fla_ops",
        level="op",
        description=(
            "our RWKV-7 block around fla chunk_rwkv7 (chunk 64, safe_gate, lower_bound=-e^-0.5, as fla's "
            "layer calls it); decoding uses fla fused_recurrent_rwkv7; CUDA only (fla refuses CPU)"
        ),
        **_CHUNKED,
    ),
    Implementation(
        family=FAMILY,
        name="rwkv/rwkv7_fla_fused_recurrent",
        backend="triton",
        build=f"{_PKG}.fla_adapters:build_fused_recurrent",
        devices=("cuda",),
        dtypes=_FLA_DTYPES,
        needs=(FLA,),
        reference="rwkv/rwkv7_reference",
        requirement=f"{_PKG}.requirements:fla_ops",
        level="op",
        description=(
            "our RWKV-7 block around fla fused_recurrent_rwkv7 (one token at a time, forward only: fla has "
            "no backward for it); CUDA only (fla refuses CPU)"
        ),
        **_RECURRENT,
    ),
    Implementation(
        family=FAMILY,
        name="rwkv/rwkv7_fla_layer",
        backend="triton",
        build=f"{_PKG}.fla_adapters:build_layer",
        devices=("cuda",),
        dtypes=_FLA_DTYPES,
        needs=(FLA,),
        reference="rwkv/rwkv7_reference",
        requirement=f"{_PKG}.requirements:fla_layer",
        level="layer",
        description=(
            "fla's RWKV7Attention layer (its own fused token shift, LoRAs, k update, GroupNorm, gate kernels) "
            "with our weights mapped one to one; needs n_heads*head_dim == d_model, chunk_size 64; CUDA only"
        ),
        **_CHUNKED,
    ),
]
