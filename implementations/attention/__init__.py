"""Softmax attention: the reference (explicit softmax, KV-cache decoding) and torch's fast backends."""

from implementations.attention.reference import AttentionReference, KVCache, apply_rope, causal_attention

__all__ = ["AttentionReference", "KVCache", "apply_rope", "causal_attention"]
