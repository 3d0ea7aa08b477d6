"""Analytic cost models that several families share (a family's specs.py composes them with its own sizes)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from harness.config import MixerConfig
from harness.interface import BytesModel, StateBytesModel


def stateful_layer_min_bytes(
    mode: str, *, batch: int, seq_len: int, d_model: int, itemsize: int, weight_elements: float, state_bytes: float
) -> float:
    """Fewest HBM bytes of a layer with a decoding state (an SSM or linear-recurrence block): x read once,
    y written once, weights read once; fwd+bwd also reads dy, writes dx and the weights' gradients; prefill
    also writes the state; a decode step reads and writes the state and one token in and out."""
    weights = weight_elements * itemsize
    activations = batch * seq_len * d_model * itemsize
    if mode == "fwd":
        return 2 * activations + weights
    if mode == "prefill":
        return 2 * activations + weights + state_bytes
    if mode in ("fwd_bwd", "train"):
        return 4 * activations + 2 * weights
    if mode == "decode":
        return weights + 2 * state_bytes + 2 * batch * d_model * itemsize
    raise ValueError(f"unknown mode {mode!r}")


def stateful_layer_bytes_model(
    weight_elements: Callable[[MixerConfig], float],
    state_model: StateBytesModel,
    check_mode: Callable[[str], None] | None = None,
) -> BytesModel:
    """`stateful_layer_min_bytes` as an implementation's bytes model, for a layer of `weight_elements`
    weights whose decoding state is `state_model` (its layout differs per backend); `check_mode` may
    refuse modes the family does not model."""

    def min_bytes(config: MixerConfig, batch: int, seq_len: int, mode: str, dtype: torch.dtype) -> float:
        if check_mode is not None:
            check_mode(mode)
        return stateful_layer_min_bytes(
            mode,
            batch=batch,
            seq_len=seq_len,
            d_model=config.d_model,
            itemsize=dtype.itemsize,
            weight_elements=weight_elements(config),
            state_bytes=state_model(config, batch, seq_len, dtype),
        )

    return min_bytes
