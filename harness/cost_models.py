"""Analytic cost models that several families share (a family's specs.py composes them with its own sizes)."""

from __future__ import annotations


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
