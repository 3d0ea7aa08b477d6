"""The classifier: the shared trunk (suites/backbone.py: embedding, N pre-norm blocks of any mixer, final
norm), the mean of its outputs over a review's own (non-pad) positions, and a linear head to 2 classes.

Why the mean over non-pad positions. S4's LRA models pool by the mean over positions (its SequenceDecoder,
mode "pool", restricted to each sequence's own length with use_lengths); LRA's Transformer baselines pool
too. Our mixers are causal, so position t has read tokens 0..t: the last position alone would be the only
one that read the whole review, and an RNN-style "last state" is the weakest summary for a 4,096-byte review
(most of which a forgetting mixer has lost by its end). The mean gives every position's reading a vote.
Leaving the padding out matters twice: a short review padded to 4,096 would otherwise be mostly pad in its
summary, and with the padding left out a causal model's prediction is the same whatever length the review
is padded to (padding comes after the review, so no kept position has seen it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from harness.interface import Mixer
from suites.backbone import Backbone, ModelSettings
from suites.classify.data import PAD

N_CLASSES = 2


def masked_mean(hidden: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """(B, L, D) outputs, (B, L) ids -> (B, D): the mean over each row's non-PAD positions (0 for none)."""
    keep = (tokens != PAD).unsqueeze(-1).to(hidden.dtype)
    return (hidden * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)


class ClassifyModel(Backbone):
    """tokens -> trunk -> masked mean -> Linear(d_model, 2). ModelSettings' `tied` and `head_bias` are the
    language-model head's and do not apply: this head is its own, with a bias."""

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        make_mixer: Callable[[], Mixer] | Sequence[Callable[[], Mixer]],
        settings: ModelSettings,
        max_seq_len: int = 0,
    ) -> None:
        super().__init__(vocab_size, d_model, make_mixer, settings, max_seq_len)
        self.head = nn.Linear(d_model, N_CLASSES)
        # GPT-2's N(0, 0.02) for the embedding, head and MLPs; the mixers keep their own initialisation.
        self.init_normal([self.embedding, self.head, self.positions, *(b.mlp for b in self.blocks)])
        if settings.init == "zoology":
            self.init_like_zoology()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, L) token ids (PAD after each review) -> (B, 2) logits."""
        tokens = tokens.long()  # the sets are stored as int16 (bytes, small vocabularies) to halve their memory
        return self.head(masked_mean(self.encode(tokens), tokens))

    def dense_flops(self, batch: int, seq_len: int) -> float:
        """Forward FLOPs of the matmuls outside the mixers: the MLPs at every position, the head per review."""
        per_token = sum(
            sub.in_features * sub.out_features
            for block in self.blocks
            if block.mlp is not None
            for sub in block.mlp.modules()
            if isinstance(sub, nn.Linear)
        )
        return 2.0 * batch * (seq_len * per_token + self.head.in_features * N_CLASSES)
