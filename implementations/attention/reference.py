"""Causal multi-head softmax attention, written to be read next to "Attention Is All You Need".

    q, k, v = x W_q, x W_k, x W_v              (per head: d_model -> head_dim)
    q, k    = RoPE(q, t), RoPE(k, t)           (optional rotary position embedding)
    y_t     = sum_{s <= t} softmax_s(q_t . k_s / sqrt(head_dim)) v_s
    out     = concat_heads(y) W_o

Decoding keeps a KV cache: `step` appends (k_t, v_t) and attends q_t over the cache.
`CausalSelfAttention` holds the projections, RoPE and the cache; subclasses only replace the two
attention cores, so every attention implementation shares the same weights and computes the
same function.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from harness.config import MixerConfig
from harness.interface import CoreCall, Mixer, part

KNOWN_OPTIONS: set[str] = set()


def rope_angles(positions: torch.Tensor, head_dim: int, base: float, dtype: torch.dtype) -> torch.Tensor:
    """Rotation angle theta_{t,i} = t * base^(-2i/head_dim), shape (len(positions), head_dim/2).
    Computed in at least float32: bf16 cannot represent positions beyond 256 exactly."""
    work = torch.float64 if dtype == torch.float64 else torch.float32
    inv_freq = base ** (-torch.arange(0, head_dim, 2, device=positions.device, dtype=work) / head_dim)
    return positions.to(work)[:, None] * inv_freq[None, :]


def apply_rope(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x_i, x_{i+d/2}) by the angles ("rotate half" convention of GPT-NeoX / Llama).
    x: (B, H, L, head_dim); angles: (L, head_dim/2)."""
    x1, x2 = x.float().chunk(2, dim=-1) if x.dtype != torch.float64 else x.chunk(2, dim=-1)
    cos, sin = angles.cos(), angles.sin()
    rotated = torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)
    return rotated.to(x.dtype)


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + causal mask) v, materialising the (L, L) scores.
    q, k, v: (B, H, L, d). The softmax runs in at least float32, like every fused kernel does."""
    seq_len, head_dim = q.shape[-2], q.shape[-1]
    work = torch.float64 if q.dtype == torch.float64 else torch.float32
    scores = (q.to(work) @ k.to(work).transpose(-1, -2)) / math.sqrt(head_dim)
    future = torch.ones(seq_len, seq_len, dtype=torch.bool, device=q.device).triu(diagonal=1)
    scores = scores.masked_fill(future, float("-inf"))
    return (scores.softmax(dim=-1) @ v.to(work)).to(q.dtype)


def attend_to_cache(q_t: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """One query (B, H, 1, d) over every cached key (B, H, T, d): no mask, all are in the past."""
    work = torch.float64 if q_t.dtype == torch.float64 else torch.float32
    scores = (q_t.to(work) @ k.to(work).transpose(-1, -2)) / math.sqrt(q_t.shape[-1])
    return (scores.softmax(dim=-1) @ v.to(work)).to(q_t.dtype)


@dataclass(frozen=True)
class KVCache:
    """Keys and values of the first `length` positions, in buffers of some capacity >= length.

    `step` writes position `length` in place and returns a cache one longer. Stepping twice from the
    same cache writes the same slot, so a benchmark can time `step` repeatedly at a fixed context.
    """

    k: torch.Tensor  # (B, H, capacity, head_dim)
    v: torch.Tensor
    length: int

    @property
    def capacity(self) -> int:
        return self.k.shape[2]

    def used_bytes(self) -> int:
        """Bytes of the `length` positions the cache holds, without the spare capacity `grown` keeps
        (read by the memory suite: allocated and used bytes apart)."""
        per_position = sum(t[:, :, :1].numel() * t.element_size() for t in (self.k, self.v))
        return per_position * self.length

    def grown(self, min_capacity: int) -> KVCache:
        if min_capacity <= self.capacity:
            return self
        new_capacity = max(min_capacity, 2 * self.capacity, 16)
        pad = (0, 0, 0, new_capacity - self.capacity)
        return KVCache(nn.functional.pad(self.k, pad), nn.functional.pad(self.v, pad), self.length)


def validate_attention_config(config: MixerConfig) -> None:
    config.check_options("attention", KNOWN_OPTIONS)


class CausalSelfAttention(Mixer):
    """Projections, RoPE and the KV cache shared by every attention implementation."""

    def __init__(self, config: MixerConfig) -> None:
        super().__init__()
        validate_attention_config(config)
        self.config = config
        self.n_heads = config.n_heads
        self.head_dim = config.resolved_head_dim
        inner = self.n_heads * self.head_dim
        self.qkv_proj = nn.Linear(config.d_model, 3 * inner, bias=False)
        self.out_proj = nn.Linear(inner, config.d_model, bias=False)

    # The two cores a subclass may replace. q, k, v: (B, H, L, d).
    def attention_core(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return causal_attention(q, k, v)

    def decode_core(self, q_t: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return attend_to_cache(q_t, k, v)

    def _project(self, x: torch.Tensor, start: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, seq_len, _ = x.shape
        with part("projection"):
            qkv = self.qkv_proj(x).view(batch, seq_len, 3, self.n_heads, self.head_dim)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, L, d)
        if self.config.rope:
            positions = torch.arange(start, start + seq_len, device=x.device)
            angles = rope_angles(positions, self.head_dim, self.config.rope_base, x.dtype)
            q, k = apply_rope(q, angles), apply_rope(k, angles)
        return q, k, v

    def _output(self, y: torch.Tensor) -> torch.Tensor:
        batch, _, seq_len, _ = y.shape
        with part("projection"):
            return self.out_proj(y.transpose(1, 2).reshape(batch, seq_len, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self._project(x, start=0)
        with part("core"):
            y = self.attention_core(q, k, v)
        return self._output(y)

    def core_call(self, x: torch.Tensor) -> CoreCall:
        q, k, v = self._project(x, start=0)
        return CoreCall(self.attention_core, (q, k, v))

    def init_state(self, batch: int, device: torch.device | str, dtype: torch.dtype) -> KVCache:
        empty = torch.zeros(batch, self.n_heads, 0, self.head_dim, device=device, dtype=dtype)
        return KVCache(empty, empty.clone(), 0)

    def step(self, x_t: torch.Tensor, state: KVCache) -> tuple[torch.Tensor, KVCache]:
        q, k, v = self._project(x_t[:, None, :], start=state.length)
        cache = state.grown(state.length + 1)
        cache.k[:, :, cache.length] = k[:, :, 0]
        cache.v[:, :, cache.length] = v[:, :, 0]
        length = cache.length + 1
        with part("core"):
            y = self.decode_core(q, cache.k[:, :, :length], cache.v[:, :, :length])
        return self._output(y)[:, 0], KVCache(cache.k, cache.v, length)

    def prefill(self, x: torch.Tensor) -> tuple[torch.Tensor, KVCache]:
        q, k, v = self._project(x, start=0)
        with part("core"):
            y = self.attention_core(q, k, v)
        # Room for 64 decoded tokens so the first steps after a prefill do not reallocate.
        cache = KVCache(k.contiguous(), v.contiguous(), x.shape[1]).grown(x.shape[1] + 64)
        return self._output(y), cache


class AttentionReference(CausalSelfAttention):
    """The readable reference: explicit scores, mask and softmax (above)."""


def build_reference(config: MixerConfig) -> AttentionReference:
    return AttentionReference(config)
