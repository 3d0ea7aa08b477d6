"""Registry entries of the attention family and its analytic cost models.

FLOPs follow FlashAttention's convention: the causal core costs 4·B·L²·H·d / 2 forward, backward
2.5× forward (fwd+bwd 3.5×); a projection (matmul) costs 2·m·n·k forward and 2× that backward.
"""

from __future__ import annotations

import torch

from harness.config import MixerConfig
from harness.interface import Implementation

FAMILY = "attention"
_PKG = "implementations.attention"
_LOW_PRECISION = (torch.bfloat16, torch.float16)


def attention_flops(config: MixerConfig, batch: int, seq_len: int, mode: str) -> float:
    inner = config.n_heads * config.resolved_head_dim
    if mode == "decode":  # one token attending over a context of seq_len
        return 8.0 * batch * config.d_model * inner + 4.0 * batch * seq_len * inner
    projections = 8.0 * batch * seq_len * config.d_model * inner  # qkv (3 matmuls) + output (1)
    core = 2.0 * batch * seq_len * seq_len * inner  # 4·B·L²·H·d, halved by the causal mask
    if mode in ("fwd", "prefill"):
        return projections + core
    if mode in ("fwd_bwd", "train"):
        return 3.0 * projections + 3.5 * core
    raise ValueError(f"unknown mode {mode!r}")


def attention_min_bytes(config: MixerConfig, batch: int, seq_len: int, mode: str, dtype: torch.dtype) -> float:
    """Fewest HBM bytes: each input read once, each output written once (fused kernels)."""
    inner = config.n_heads * config.resolved_head_dim
    weights = 4.0 * config.d_model * inner
    activations = batch * seq_len * config.d_model
    if mode == "fwd":
        elements = 2 * activations + weights  # x in, y out, weights
    elif mode == "prefill":
        elements = 2 * activations + weights + 2 * batch * seq_len * inner  # + the KV cache written
    elif mode in ("fwd_bwd", "train"):
        elements = 4 * activations + 2 * weights  # x, y, dy, dx; weights and their gradients
    elif mode == "decode":
        elements = 2 * batch * (seq_len + 1) * inner + weights + 2 * batch * config.d_model
    else:
        raise ValueError(f"unknown mode {mode!r}")
    return elements * dtype.itemsize


def attention_core_flops(config: MixerConfig, batch: int, seq_len: int, mode: str) -> float:
    """softmax(QK^T)V alone (what `core_call` runs): 4·B·L²·H·d/2 forward, 3.5× that fwd+bwd."""
    inner = config.n_heads * config.resolved_head_dim
    if mode == "decode":
        return 4.0 * batch * seq_len * inner
    core = 2.0 * batch * seq_len * seq_len * inner
    return core if mode in ("fwd", "prefill") else 3.5 * core


def attention_core_min_bytes(config: MixerConfig, batch: int, seq_len: int, mode: str, dtype: torch.dtype) -> float:
    """q, k, v read and o written once (4 tensors of B·L·H·d); fwd+bwd also dO in, dQ/dK/dV out."""
    tensor = batch * seq_len * config.n_heads * config.resolved_head_dim
    if mode == "decode":
        return (2 * tensor + 2 * batch * config.n_heads * config.resolved_head_dim) * dtype.itemsize
    return (4 if mode in ("fwd", "prefill") else 9) * tensor * dtype.itemsize


def kv_cache_bytes(config: MixerConfig, batch: int, seq_len: int, dtype: torch.dtype) -> float:
    """Keys and values of every past token: grows linearly with the context."""
    return 2.0 * batch * seq_len * config.n_heads * config.resolved_head_dim * dtype.itemsize


_MODELS = {
    "flops_model": attention_flops,
    "bytes_model": attention_min_bytes,
    "state_bytes_model": kv_cache_bytes,
    "core_flops_model": attention_core_flops,
    "core_bytes_model": attention_core_min_bytes,
}

IMPLEMENTATIONS = [
    Implementation(
        family=FAMILY,
        name="attention/reference",
        backend="reference",
        build=f"{_PKG}.reference:build_reference",
        description="explicit softmax(QK^T/sqrt(d)+mask)V in PyTorch, KV-cache decoding",
        **_MODELS,
    ),
    Implementation(
        family=FAMILY,
        name="attention/sdpa_math",
        backend="torch-math",
        build=f"{_PKG}.sdpa_adapters:build_math",
        reference="attention/reference",
        description="torch SDPA pinned to the MATH backend (unfused, any device and dtype)",
        **_MODELS,
    ),
    Implementation(
        family=FAMILY,
        name="attention/sdpa_flash",
        backend="flash",
        build=f"{_PKG}.sdpa_adapters:build_flash",
        devices=("cuda",),
        dtypes=_LOW_PRECISION,
        reference="attention/reference",
        requirement=f"{_PKG}.requirements:flash",
        description="torch SDPA pinned to FlashAttention-2 (CUDA, fp16/bf16)",
        **_MODELS,
    ),
    Implementation(
        family=FAMILY,
        name="attention/sdpa_cudnn",
        backend="cudnn",
        build=f"{_PKG}.sdpa_adapters:build_cudnn",
        devices=("cuda",),
        dtypes=_LOW_PRECISION,
        reference="attention/reference",
        requirement=f"{_PKG}.requirements:cudnn",
        description="torch SDPA pinned to cuDNN attention (CUDA, fp16/bf16)",
        **_MODELS,
    ),
    Implementation(
        family=FAMILY,
        name="attention/sdpa_efficient",
        backend="efficient",
        build=f"{_PKG}.sdpa_adapters:build_efficient",
        devices=("cuda",),
        dtypes=(torch.float32, *_LOW_PRECISION),
        reference="attention/reference",
        requirement=f"{_PKG}.requirements:efficient",
        description="torch SDPA pinned to memory-efficient attention (xFormers kernel, CUDA)",
        **_MODELS,
    ),
    Implementation(
        family=FAMILY,
        name="attention/flex",
        backend="flex",
        build=f"{_PKG}.flex_adapters:build_flex",
        dtypes=(torch.float32, *_LOW_PRECISION),
        reference="attention/reference",
        requirement=f"{_PKG}.requirements:flex",
        description="FlexAttention compiled by torch.compile with a causal block mask",
        **_MODELS,
    ),
]
