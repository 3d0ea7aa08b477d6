"""Registry entries of the xlstm family and their analytic cost models.

FLOPs count matmuls as 2·m·n·k and the mLSTM cell as its chunkwise form does (mlstm.py,
`mlstm_chunkwise_flops`, chunk = config.chunk_size); backward is taken as 2× forward, so fwd+bwd is 3×
forward (the convention of the other families' projections). Minimum bytes: every input read once, every
output written once, weights once (fused kernels). The recurrent states are kept in at least float32
(the kernels' and our state dtype), the convolution history in the model dtype. State bytes are constant
in the sequence length: per head C (d_qk × d_v) + n (d_qk) + m (1) for the mLSTM; h, c, n, m per channel
for the sLSTM; plus the last d_conv - 1 convolution inputs where a block has a convolution.
"""

from __future__ import annotations

import torch

from harness.config import MixerConfig
from harness.interface import Implementation, Package
from implementations.xlstm.mlstm import mlstm_chunkwise_flops, mlstm_state_elements, mlstm_step_flops
from implementations.xlstm.reference import large_layer_dims, mlstm_block_dims, slstm_dims
from implementations.xlstm.slstm import SLSTM_STATE_TENSORS, slstm_step_flops

FAMILY = "xlstm"
_PKG = "implementations.xlstm"
_LOW_PRECISION = (torch.float32, torch.bfloat16, torch.float16)
MLSTM_KERNELS = Package("mlstm_kernels", "mlstm-kernels")
XLSTM = Package("xlstm", "xlstm")
TRITON = Package("triton", "triton")


def _state_itemsize(dtype: torch.dtype) -> int:
    return max(dtype.itemsize, 4)


def _cost(fwd: float, mode: str, decode: float) -> float:
    if mode in ("fwd", "prefill"):
        return fwd
    if mode in ("fwd_bwd", "train"):
        return 3.0 * fwd
    if mode == "decode":
        return decode
    raise ValueError(f"unknown mode {mode!r}")


def _bytes(
    mode: str,
    dtype: torch.dtype,
    activation_elements: float,  # x (or the core's inputs + outputs) of the whole sequence
    grad_elements: float,  # what fwd+bwd reads and writes on top of the forward's activations
    weight_elements: float,
    token_elements: float,  # one decoded token's inputs and outputs
    state_elements: float,  # in the state dtype (>= float32)
    history_elements: float = 0.0,  # convolution history, in the model dtype
) -> float:
    item, state_item = dtype.itemsize, _state_itemsize(dtype)
    if mode == "fwd":
        return (activation_elements + weight_elements) * item
    if mode == "prefill":
        return (activation_elements + weight_elements + history_elements) * item + state_elements * state_item
    if mode in ("fwd_bwd", "train"):
        return (activation_elements + grad_elements + 2 * weight_elements) * item
    if mode == "decode":
        return (token_elements + weight_elements + 2 * history_elements) * item + 2 * state_elements * state_item
    raise ValueError(f"unknown mode {mode!r}")


# ---------------------------------------------------------------------------------------------
# mLSTM block (the paper's): the reference, the mLSTMsig reference and the mlstm_kernels op adapters


def _mlstm_block_sizes(config: MixerConfig) -> dict[str, int]:
    d_inner, d_head = mlstm_block_dims(config)
    blocksize = int(config.option("qkv_blocksize", 4))
    weights = (
        2 * config.d_model * d_inner  # up-projection
        + d_inner * (config.d_conv + 1)  # convolution and its bias
        + 3 * d_inner * blocksize  # block-diagonal q, k, v
        + 2 * (3 * d_inner * config.n_heads + config.n_heads)  # input and forget gates
        + 2 * d_inner  # norm weight, skip
        + d_inner * config.d_model  # down-projection
    )
    per_token = (
        6 * config.d_model * d_inner
        + 2 * config.d_conv * d_inner
        + 6 * d_inner * blocksize
        + 12 * d_inner * config.n_heads
        + 15 * d_inner  # norm, skip, swish output gate
    )
    return {"d_inner": d_inner, "d_head": d_head, "weights": weights, "per_token": per_token}


def mlstm_block_flops(config: MixerConfig, batch: int, seq_len: int, mode: str) -> float:
    s = _mlstm_block_sizes(config)
    cell = config.n_heads * mlstm_chunkwise_flops(seq_len, s["d_head"], s["d_head"], config.chunk_size)
    fwd = batch * (seq_len * s["per_token"] + cell)
    decode = batch * (s["per_token"] + config.n_heads * mlstm_step_flops(s["d_head"], s["d_head"]))
    return _cost(fwd, mode, decode)


def mlstm_block_min_bytes(config: MixerConfig, batch: int, seq_len: int, mode: str, dtype: torch.dtype) -> float:
    s = _mlstm_block_sizes(config)
    x = batch * seq_len * config.d_model
    state = batch * config.n_heads * mlstm_state_elements(s["d_head"], s["d_head"])
    history = batch * (config.d_conv - 1) * s["d_inner"]
    return _bytes(mode, dtype, 2 * x, 2 * x, s["weights"], 2 * batch * config.d_model, state, history)


def mlstm_block_state_bytes(config: MixerConfig, batch: int, seq_len: int, dtype: torch.dtype) -> float:
    s = _mlstm_block_sizes(config)
    cell = batch * config.n_heads * mlstm_state_elements(s["d_head"], s["d_head"]) * _state_itemsize(dtype)
    return float(cell + batch * (config.d_conv - 1) * s["d_inner"] * dtype.itemsize)


def _cell_flops(batch: int, heads: int, seq_len: int, d_qk: int, d_v: int, chunk: int, mode: str) -> float:
    fwd = batch * heads * mlstm_chunkwise_flops(seq_len, d_qk, d_v, chunk)
    return _cost(fwd, mode, batch * heads * mlstm_step_flops(d_qk, d_v))


def _cell_bytes(batch: int, heads: int, seq_len: int, d_qk: int, d_v: int, mode: str, dtype: torch.dtype) -> float:
    """q, k, v, i, f in and h out; fwd+bwd also dh in and dq, dk, dv, di, df out; decode one token
    plus the state read and written."""
    per_step = 2 * d_qk + 2 * d_v + 2
    activations = batch * heads * seq_len * per_step
    state = batch * heads * mlstm_state_elements(d_qk, d_v)
    return _bytes(mode, dtype, activations, activations, 0.0, batch * heads * per_step, state)


def mlstm_block_core_flops(config: MixerConfig, batch: int, seq_len: int, mode: str) -> float:
    d_head = mlstm_block_dims(config)[1]
    return _cell_flops(batch, config.n_heads, seq_len, d_head, d_head, config.chunk_size, mode)


def mlstm_block_core_min_bytes(config: MixerConfig, batch: int, seq_len: int, mode: str, dtype: torch.dtype) -> float:
    d_head = mlstm_block_dims(config)[1]
    return _cell_bytes(batch, config.n_heads, seq_len, d_head, d_head, mode, dtype)


# ---------------------------------------------------------------------------------------------
# sLSTM block


def _slstm_sizes(config: MixerConfig) -> dict[str, int]:
    d, d_head = config.d_model, slstm_dims(config)
    weights = d * (config.d_conv + 1) + 4 * d * d_head + 4 * d * d_head + 4 * d + d
    per_token = 2 * config.d_conv * d + 8 * d * d_head + 4 * d + 8 * d  # conv, W x, bias, norm
    return {"d_head": d_head, "weights": weights, "per_token": per_token}


def slstm_block_flops(config: MixerConfig, batch: int, seq_len: int, mode: str) -> float:
    s = _slstm_sizes(config)
    per_token = s["per_token"] + slstm_step_flops(config.d_model, s["d_head"])
    return _cost(batch * seq_len * per_token, mode, batch * per_token)


def slstm_block_min_bytes(config: MixerConfig, batch: int, seq_len: int, mode: str, dtype: torch.dtype) -> float:
    s = _slstm_sizes(config)
    x = batch * seq_len * config.d_model
    state = batch * SLSTM_STATE_TENSORS * config.d_model
    history = batch * (config.d_conv - 1) * config.d_model
    return _bytes(mode, dtype, 2 * x, 2 * x, s["weights"], 2 * batch * config.d_model, state, history)


def slstm_block_state_bytes(config: MixerConfig, batch: int, seq_len: int, dtype: torch.dtype) -> float:
    cell = batch * SLSTM_STATE_TENSORS * config.d_model * _state_itemsize(dtype)
    return float(cell + batch * (config.d_conv - 1) * config.d_model * dtype.itemsize)


def slstm_core_flops(config: MixerConfig, batch: int, seq_len: int, mode: str) -> float:
    """The recurrence alone: R h and the pointwise cell, per step."""
    per_token = slstm_step_flops(config.d_model, slstm_dims(config))
    return _cost(batch * seq_len * per_token, mode, batch * per_token)


def slstm_core_min_bytes(config: MixerConfig, batch: int, seq_len: int, mode: str, dtype: torch.dtype) -> float:
    """Gate pre-activations (4 per channel) in, h out, R once; fwd+bwd also dh in, their gradients out."""
    d = config.d_model
    weights = 4 * d * slstm_dims(config)
    activations = batch * seq_len * 5 * d
    return _bytes(mode, dtype, activations, activations, weights, batch * 5 * d, batch * SLSTM_STATE_TENSORS * d)


# ---------------------------------------------------------------------------------------------
# xLSTM 7B mLSTM layer: our reference and the xlstm package's


def _large_sizes(config: MixerConfig) -> dict[str, int]:
    qk_dim, v_dim = large_layer_dims(config)
    d, heads = config.d_model, config.n_heads
    weights = 2 * d * qk_dim + 2 * d * v_dim + 2 * d * heads + 2 * heads + v_dim + v_dim * d
    per_token = 4 * d * qk_dim + 4 * d * v_dim + 4 * d * heads + 6 * heads + 10 * v_dim + 2 * v_dim * d
    return {"d_qk": qk_dim // heads, "d_v": v_dim // heads, "weights": weights, "per_token": per_token}


def large_layer_flops(config: MixerConfig, batch: int, seq_len: int, mode: str) -> float:
    s = _large_sizes(config)
    cell = config.n_heads * mlstm_chunkwise_flops(seq_len, s["d_qk"], s["d_v"], config.chunk_size)
    decode = batch * (s["per_token"] + config.n_heads * mlstm_step_flops(s["d_qk"], s["d_v"]))
    return _cost(batch * (seq_len * s["per_token"] + cell), mode, decode)


def large_layer_min_bytes(config: MixerConfig, batch: int, seq_len: int, mode: str, dtype: torch.dtype) -> float:
    s = _large_sizes(config)
    x = batch * seq_len * config.d_model
    state = batch * config.n_heads * mlstm_state_elements(s["d_qk"], s["d_v"])
    return _bytes(mode, dtype, 2 * x, 2 * x, s["weights"], 2 * batch * config.d_model, state)


def large_layer_state_bytes(config: MixerConfig, batch: int, seq_len: int, dtype: torch.dtype) -> float:
    s = _large_sizes(config)
    return float(batch * config.n_heads * mlstm_state_elements(s["d_qk"], s["d_v"]) * _state_itemsize(dtype))


def large_layer_core_flops(config: MixerConfig, batch: int, seq_len: int, mode: str) -> float:
    s = _large_sizes(config)
    return _cell_flops(batch, config.n_heads, seq_len, s["d_qk"], s["d_v"], config.chunk_size, mode)


def large_layer_core_min_bytes(config: MixerConfig, batch: int, seq_len: int, mode: str, dtype: torch.dtype) -> float:
    s = _large_sizes(config)
    return _cell_bytes(batch, config.n_heads, seq_len, s["d_qk"], s["d_v"], mode, dtype)


# ---------------------------------------------------------------------------------------------

MLSTM_MODELS = {
    "flops_model": mlstm_block_flops,
    "bytes_model": mlstm_block_min_bytes,
    "state_bytes_model": mlstm_block_state_bytes,
    "core_flops_model": mlstm_block_core_flops,
    "core_bytes_model": mlstm_block_core_min_bytes,
}
SLSTM_MODELS = {
    "flops_model": slstm_block_flops,
    "bytes_model": slstm_block_min_bytes,
    "state_bytes_model": slstm_block_state_bytes,
    "core_flops_model": slstm_core_flops,
    "core_bytes_model": slstm_core_min_bytes,
}
LARGE_MODELS = {
    "flops_model": large_layer_flops,
    "bytes_model": large_layer_min_bytes,
    "state_bytes_model": large_layer_state_bytes,
    "core_flops_model": large_layer_core_flops,
    "core_bytes_model": large_layer_core_min_bytes,
}


def mlstm_head_dim(config: MixerConfig) -> int:
    """The mLSTM block's heads split the up-projected width expand·d_model, not d_model."""
    return mlstm_block_dims(config)[1]


IMPLEMENTATIONS = [
    Implementation(
        family=FAMILY,
        name="xlstm/mlstm_reference",
        head_dim_model=mlstm_head_dim,
        backend="reference",
        build=f"{_PKG}.reference:build_mlstm_reference",
        description="mLSTM block of the xLSTM paper in PyTorch: chunkwise cell, recurrent-step decoding",
        **MLSTM_MODELS,
    ),
    Implementation(
        family=FAMILY,
        name="xlstm/mlstm_sig_reference",
        head_dim_model=mlstm_head_dim,
        backend="reference",
        build=f"{_PKG}.reference:build_mlstm_sig_reference",
        description="the mLSTM block with a sigmoid input gate (mLSTMsig, TFLA): reference of xl_chunk_siging",
        **MLSTM_MODELS,
    ),
    Implementation(
        family=FAMILY,
        name="xlstm/slstm_reference",
        backend="reference",
        build=f"{_PKG}.reference:build_slstm_reference",
        description="sLSTM layer of the xLSTM paper in PyTorch: block-diagonal recurrence, recurrent only",
        **SLSTM_MODELS,
    ),
    Implementation(
        family=FAMILY,
        name="xlstm/mlstm_large_reference",
        backend="reference",
        build=f"{_PKG}.reference:build_mlstm_large_reference",
        description="xLSTM 7B's mLSTM layer in PyTorch (soft-capped gates, no up-projection or conv)",
        **LARGE_MODELS,
    ),
    Implementation(
        family=FAMILY,
        name="xlstm/mlstm_kernels_native",
        head_dim_model=mlstm_head_dim,
        backend="torch",
        build=f"{_PKG}.mlstm_kernels_adapters:build_native",
        needs=(MLSTM_KERNELS,),
        reference="xlstm/mlstm_reference",
        level="op",
        description="mLSTM block, cell = mlstm_kernels chunkwise--native_autograd + native step (PyTorch)",
        **MLSTM_MODELS,
    ),
    Implementation(
        family=FAMILY,
        name="xlstm/mlstm_kernels_limit_chunk",
        head_dim_model=mlstm_head_dim,
        backend="triton",
        build=f"{_PKG}.mlstm_kernels_adapters:build_limit_chunk",
        devices=("cuda",),
        dtypes=_LOW_PRECISION,
        needs=(MLSTM_KERNELS, TRITON),
        reference="xlstm/mlstm_reference",
        level="op",
        description="mLSTM block, cell = mlstm_kernels chunkwise--triton_limit_chunk + Triton step",
        **MLSTM_MODELS,
    ),
    Implementation(
        family=FAMILY,
        name="xlstm/mlstm_kernels_xl_chunk",
        head_dim_model=mlstm_head_dim,
        backend="triton",
        build=f"{_PKG}.mlstm_kernels_adapters:build_xl_chunk",
        devices=("cuda",),
        dtypes=_LOW_PRECISION,
        needs=(MLSTM_KERNELS, TRITON),
        reference="xlstm/mlstm_reference",
        requirement=f"{_PKG}.requirements:xl_chunk",
        level="op",
        description="mLSTM block, cell = mlstm_kernels chunkwise--triton_xl_chunk (TFLA) + Triton step",
        **MLSTM_MODELS,
    ),
    Implementation(
        family=FAMILY,
        name="xlstm/mlstm_kernels_xl_chunk_siging",
        head_dim_model=mlstm_head_dim,
        backend="triton",
        build=f"{_PKG}.mlstm_kernels_adapters:build_xl_chunk_siging",
        devices=("cuda",),
        dtypes=_LOW_PRECISION,
        needs=(MLSTM_KERNELS, TRITON),
        reference="xlstm/mlstm_sig_reference",
        level="op",
        description="mLSTMsig block, cell = mlstm_kernels chunkwise--triton_xl_chunk_siging (TFLA, sigmoid input gate)",
        **MLSTM_MODELS,
    ),
    Implementation(
        family=FAMILY,
        name="xlstm/xlstm_large_native",
        backend="torch",
        build=f"{_PKG}.xlstm_adapters:build_native",
        needs=(XLSTM, MLSTM_KERNELS),
        reference="xlstm/mlstm_large_reference",
        description="xlstm package's xLSTM 7B mLSTM layer with mlstm_kernels' native (PyTorch) kernels",
        **LARGE_MODELS,
    ),
    Implementation(
        family=FAMILY,
        name="xlstm/xlstm_large_triton",
        backend="triton",
        build=f"{_PKG}.xlstm_adapters:build_triton",
        devices=("cuda",),
        dtypes=_LOW_PRECISION,
        needs=(XLSTM, MLSTM_KERNELS, TRITON),
        reference="xlstm/mlstm_large_reference",
        description="xlstm package's xLSTM 7B mLSTM layer with triton_limit_chunk and the Triton step kernel",
        **LARGE_MODELS,
    ),
]
