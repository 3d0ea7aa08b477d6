"""torch.nn.functional.scaled_dot_product_attention with one backend pinned per implementation.

Pinning (rather than letting torch choose) is what makes a row say which kernel ran: if the pinned
backend cannot take the inputs, torch raises instead of silently falling back to another kernel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from harness.config import MixerConfig
from implementations.attention.reference import CausalSelfAttention

BACKENDS: dict[str, SDPBackend] = {
    "flash": SDPBackend.FLASH_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "math": SDPBackend.MATH,
}


class SDPAAttention(CausalSelfAttention):
    def __init__(self, config: MixerConfig, backend: str) -> None:
        super().__init__(config)
        self.backend = backend
        self.sdp_backend = BACKENDS[backend]

    def attention_core(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        with sdpa_kernel(self.sdp_backend):
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    def decode_core(self, q_t: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        # One query at the end of the sequence sees every cached key: no mask (torch's is_causal
        # aligns the mask top-left, which would hide all but the first key).
        if k.shape[-2] == 1:
            # Softmax over a single key is 1: the output is that key's value, exactly. (cuDNN's SDPA
            # rejects a key/value length of 1, seen with torch 2.11 / cuDNN 9.19 on an H100.)
            return v.clone()
        with sdpa_kernel(self.sdp_backend):
            return F.scaled_dot_product_attention(q_t, k, v)


def build_flash(config: MixerConfig) -> SDPAAttention:
    return SDPAAttention(config, "flash")


def build_cudnn(config: MixerConfig) -> SDPAAttention:
    return SDPAAttention(config, "cudnn")


def build_efficient(config: MixerConfig) -> SDPAAttention:
    return SDPAAttention(config, "efficient")


def build_math(config: MixerConfig) -> SDPAAttention:
    return SDPAAttention(config, "math")
