"""Registry entries of the LSTM family and its analytic cost models.

With hidden size H = d_model = D, a step computes the four gates from x_t and h_{t-1}: 2·4H·(D + H)
FLOPs of matmul, plus ~10H elementwise (three sigmoids, two tanh, the cell update); backward ≈ 2× forward.
The decoding state is (h, c): 2·B·H numbers whatever the context length.
"""

from __future__ import annotations

import torch

from harness.config import MixerConfig
from harness.cost_models import stateful_layer_bytes_model
from harness.interface import Implementation

FAMILY = "lstm"
_PKG = "implementations.lstm"
_MODES = ("fwd", "prefill", "fwd_bwd", "train", "decode")


def _check_mode(mode: str) -> None:
    if mode not in _MODES:
        raise ValueError(f"unknown mode {mode!r}")


def _tokens(batch: int, seq_len: int, mode: str) -> int:
    return batch if mode == "decode" else batch * seq_len


def _backward_factor(mode: str) -> float:
    return 3.0 if mode in ("fwd_bwd", "train") else 1.0


def lstm_flops(config: MixerConfig, batch: int, seq_len: int, mode: str) -> float:
    _check_mode(mode)
    hidden = config.d_model
    per_token = 2.0 * 4 * hidden * (config.d_model + hidden) + 10.0 * hidden
    return _backward_factor(mode) * _tokens(batch, seq_len, mode) * per_token


def lstm_core_flops(config: MixerConfig, batch: int, seq_len: int, mode: str) -> float:
    """The recurrence alone (the input projections of all steps excluded): 2·4H·H + 10H per token."""
    _check_mode(mode)
    hidden = config.d_model
    return _backward_factor(mode) * _tokens(batch, seq_len, mode) * (8.0 * hidden * hidden + 10.0 * hidden)


def lstm_state_bytes(config: MixerConfig, batch: int, seq_len: int, dtype: torch.dtype) -> float:
    """h and c, (batch, H) each: constant in the context length."""
    return 2.0 * batch * config.d_model * dtype.itemsize


def _weight_elements(config: MixerConfig) -> float:
    hidden = config.d_model
    return 4.0 * hidden * (config.d_model + hidden) + 8.0 * hidden


def _core_min_bytes(config: MixerConfig, batch: int, seq_len: int, mode: str, dtype: torch.dtype) -> float:
    """The gates' input projections (4H per token) read, h written, W_hh read; fwd+bwd about 3x."""
    _check_mode(mode)
    hidden = config.d_model
    elements = _tokens(batch, seq_len, mode) * 5.0 * hidden + 4.0 * hidden * hidden
    return _backward_factor(mode) * elements * dtype.itemsize


_MODELS = {
    "flops_model": lstm_flops,
    "bytes_model": stateful_layer_bytes_model(_weight_elements, lstm_state_bytes, _check_mode),
    "state_bytes_model": lstm_state_bytes,
    "core_flops_model": lstm_core_flops,
    "core_bytes_model": _core_min_bytes,
}

IMPLEMENTATIONS = [
    Implementation(
        family=FAMILY,
        name="lstm/reference",
        backend="reference",
        build=f"{_PKG}.reference:build_reference",
        description="the four gates written out in PyTorch, one step at a time (parameters as nn.LSTM's)",
        **_MODELS,
    ),
    Implementation(
        family=FAMILY,
        name="lstm/cudnn",
        backend="cudnn",
        build=f"{_PKG}.torch_adapters:build_cudnn",
        devices=("cuda",),
        dtypes=(torch.float32, torch.float16),
        reference="lstm/reference",
        requirement=f"{_PKG}.requirements:cudnn",
        description="torch.nn.LSTM on cuDNN's fused kernels (the whole sequence in one call)",
        **_MODELS,
    ),
]
