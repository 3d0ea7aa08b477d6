"""The model the recall tasks train: any registered mixer between a token embedding and an output head.

    tokens -> suites.backbone.Backbone: embedding (+ learned positions, optional)
           -> n_layers x [ x + mixer(norm(x)) ; x + mlp(norm(x)) (optional) ]   (pre-norm residual blocks)
           -> norm -> head (tied to the embedding, or its own)

The trunk (embedding, blocks, final norm, the settings) is suites/backbone.py's, shared with the
classification model; its names are re-exported here so that `suites.recall.model.Block` and friends keep
working. Zoology's MQAR models use no MLP (its "identity state mixer"); MAD's use SwiGLU. The auto-encoder
head is MAD's for the compression task: the last position's state, plus a sinusoidal position code per
output position, through a small MLP decoder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from harness.errors import ConfigError
from harness.interface import Mixer
from suites.backbone import (
    INITS,
    MLPS,
    NORMS,
    POSITIONS,
    Backbone,
    Block,
    GeluMLP,
    ModelSettings,
    SwiGLU,
    count_parameters,
    make_norm,
    resolve_position,
    sinusoidal_positions,
)

__all__ = [
    "HEADS",
    "INITS",
    "MLPS",
    "NORMS",
    "POSITIONS",
    "AutoEncoderHead",
    "Block",
    "GeluMLP",
    "ModelSettings",
    "RecallModel",
    "SwiGLU",
    "count_parameters",
    "make_norm",
    "resolve_position",
    "sinusoidal_positions",
]

HEADS = ("lm", "autoencoder")


class AutoEncoderHead(nn.Module):
    """MAD's compression decoder: from the last position's state h, output position t gets
    MLP(h + sinusoid(t)) (two Linear+GELU layers with norms), then the unembedding."""

    def __init__(self, d_model: int, settings: ModelSettings) -> None:
        super().__init__()
        self.decoder = nn.Sequential(
            make_norm(settings.norm, d_model),
            nn.Linear(d_model, d_model),
            nn.GELU(),
            make_norm(settings.norm, d_model),
            nn.Linear(d_model, d_model),
            nn.GELU(),
            make_norm(settings.norm, d_model),
        )

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        seq_len, d_model = hidden.shape[1], hidden.shape[2]
        code = sinusoidal_positions(seq_len, d_model, hidden.device).to(hidden.dtype)
        return self.decoder(hidden[:, -1:, :] + code[None])


class RecallModel(Backbone):
    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        make_mixer: Callable[[], Mixer] | Sequence[Callable[[], Mixer]],
        settings: ModelSettings,
        head: str = "lm",
        max_seq_len: int = 0,
    ) -> None:
        if head not in HEADS:
            raise ConfigError("head", f"must be one of {', '.join(HEADS)}, got {head!r}")
        super().__init__(vocab_size, d_model, make_mixer, settings, max_seq_len)
        self.decoder = AutoEncoderHead(d_model, settings) if head == "autoencoder" else None
        self.head = nn.Linear(d_model, vocab_size, bias=settings.head_bias)
        # GPT-2's N(0, 0.02) for the embedding, head and MLPs; the mixers keep their own initialisation
        # (S4's HiPPO matrices, Mamba's dt and A_log ranges are part of what is being compared).
        self.init_normal([self.embedding, self.head, self.positions, self.decoder, *(b.mlp for b in self.blocks)])
        if settings.init == "zoology":
            self.init_like_zoology()
        if settings.tied:
            self.head.weight = self.embedding.weight

    def forward(self, tokens: torch.Tensor, where: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) token ids -> (B, L, vocab) logits, or the logits at some positions only: with a vocabulary
        of 8192 the head costs far more than a small mixer, and MQAR asks for a few positions per sequence.
        `where` is a (B, L) bool mask -> (n, vocab) at its n true positions, or (B, W) position indices ->
        (B * W, vocab) (fixed shapes, as a CUDA graph needs; suites.training.target_positions)."""
        x = self.encode(tokens)
        if self.decoder is not None:
            x = self.decoder(x)
        if where is not None and where.dtype == torch.bool:
            x = x[where]
        elif where is not None:
            x = x.gather(1, where[..., None].expand(-1, -1, x.shape[-1])).reshape(-1, x.shape[-1])
        return self.head(x)

    def dense_flops(self, batch: int, seq_len: int, head_positions: int) -> float:
        """Forward FLOPs of the matmuls outside the mixers (2 per multiply-add): the MLPs and the auto-encoder
        decoder at every position, the head at `head_positions` per sequence (backward: twice this)."""
        d_model, vocab = self.embedding.embedding_dim, self.head.out_features
        dense = [block.mlp for block in self.blocks if block.mlp is not None] + [self.decoder]
        per_token = sum(
            sub.in_features * sub.out_features
            for module in dense
            if module is not None
            for sub in module.modules()
            if isinstance(sub, nn.Linear)
        )
        return 2.0 * batch * (seq_len * per_token + head_positions * d_model * vocab)
