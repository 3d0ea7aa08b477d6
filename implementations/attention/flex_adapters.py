"""FlexAttention (torch.nn.attention.flex_attention), compiled, with a causal block mask.

The block mask lets the compiled kernel skip fully-masked tiles, so causal attention costs about
half the FLOPs of full attention. Decoding does not use Flex (a new KV length per step would
recompile); `step` uses torch SDPA with torch's own backend choice, over the same cache.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from harness.config import MixerConfig
from implementations.attention.reference import CausalSelfAttention


def _causal(batch: Any, head: Any, q_index: torch.Tensor, kv_index: torch.Tensor) -> torch.Tensor:
    return q_index >= kv_index


FLEX_BLOCK_SIZE = 128  # create_block_mask's default tile

_compiled_flex: Callable[..., torch.Tensor] | None = None


def compiled_flex_attention() -> Callable[..., torch.Tensor]:
    """One compiled flex_attention per process (compilation takes seconds; reuse it)."""
    global _compiled_flex
    if _compiled_flex is None:
        from torch.nn.attention.flex_attention import flex_attention

        _compiled_flex = torch.compile(flex_attention, dynamic=False)
    return _compiled_flex


class FlexAttention(CausalSelfAttention):
    def __init__(self, config: MixerConfig) -> None:
        super().__init__(config)
        self._block_masks: dict[tuple[int, str], Any] = {}

    def _block_mask(self, seq_len: int, device: torch.device) -> Any:
        from torch.nn.attention.flex_attention import create_block_mask

        key = (seq_len, str(device))
        if key not in self._block_masks:
            self._block_masks[key] = create_block_mask(_causal, None, None, seq_len, seq_len, device=device)
        return self._block_masks[key]

    def attention_core(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        # Pad L to a whole number of mask blocks. With torch 2.13's compiled CPU kernel, lengths that
        # end inside a block (e.g. L = 24 or 40) gave wrong values or NaN from run to run; padding is
        # exact here because the padded keys lie in the future of every real query (causal mask).
        seq_len = q.shape[-2]
        padded = -(-seq_len // FLEX_BLOCK_SIZE) * FLEX_BLOCK_SIZE
        if padded != seq_len:
            q, k, v = (F.pad(t, (0, 0, 0, padded - seq_len)) for t in (q, k, v))
        block_mask = self._block_mask(padded, q.device)
        return compiled_flex_attention()(q, k, v, block_mask=block_mask)[..., :seq_len, :]

    def decode_core(self, q_t: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q_t, k, v)


def build_flex(config: MixerConfig) -> FlexAttention:
    return FlexAttention(config)
