"""The model the recall tasks train: any registered mixer between a token embedding and an output head.

    tokens -> embedding (+ learned positions, optional)
           -> n_layers x [ x + mixer(norm(x)) ; x + mlp(norm(x)) (optional) ]   (pre-norm residual blocks)
           -> norm -> head (tied to the embedding, or its own)

The mixer of every block is built through the registry by implementation name, so attention, S4,
Mamba, ... plug in unchanged. Zoology's MQAR models use no MLP (its "identity state mixer"); MAD's use
SwiGLU. The auto-encoder head is MAD's for the compression task: the last position's state, plus a
sinusoidal position code per output position, through a small MLP decoder.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch
from torch import nn

from harness.errors import ConfigError
from harness.interface import Mixer

# "identity" is Zoology's identity state mixer: the block's second half adds norm(x) itself back into the
# residual stream (x + norm(x)), which its blocks without an MLP do; "none" leaves that half out.
MLPS = ("none", "identity", "gelu", "swiglu")
# How the model's linear layers start. "mixer": GPT-2's N(0, 0.02) for the embedding, head and MLPs, the
# mixers their own (S4's HiPPO matrices, Mamba's dt range). "zoology": N(0, 0.02) for every linear layer,
# the mixers' too, with zero biases (Mamba's dt bias then starts at 0, dt = softplus(0) = 0.69) and each
# mixer's out_proj at 0.02 / sqrt(2 n_layers), as Zoology's _init_weights does for its Figure 2 models.
INITS = ("mixer", "zoology")
POSITIONS = ("auto", "none", "learned", "sinusoidal")
NORMS = ("layernorm", "rmsnorm")
HEADS = ("lm", "autoencoder")


@dataclass(frozen=True)
class ModelSettings:
    n_layers: int = 2
    mlp: str = "none"  # none | identity | gelu | swiglu
    mlp_expand: int = 4  # hidden width = mlp_expand * d_model (SwiGLU: 2/3 of that, as in Llama)
    tied: bool = True  # head weight = embedding weight
    head_bias: bool = False  # the output layer has a bias (MAD's untied unembedding has one)
    # auto | none | learned (absolute, a table up to max_seq_len) | sinusoidal (absolute, fixed, any
    # length). auto follows Zoology: learned positions for attention without RoPE (it has no other sense
    # of order), none for the recurrent mixers.
    position: str = "auto"
    norm: str = "layernorm"
    init: str = "mixer"  # mixer | zoology (INITS)
    embedding_dropout: float = 0.0  # dropout on the token (+ position) embeddings; Zoology's is 0.1

    def __post_init__(self) -> None:
        if not isinstance(self.n_layers, int) or self.n_layers < 1:
            raise ConfigError("n_layers", f"must be a positive integer, got {self.n_layers!r}")
        if not isinstance(self.mlp_expand, int) or self.mlp_expand < 1:
            raise ConfigError("mlp_expand", f"must be a positive integer, got {self.mlp_expand!r}")
        if not 0.0 <= self.embedding_dropout < 1.0:
            raise ConfigError("embedding_dropout", f"must be in [0, 1), got {self.embedding_dropout!r}")
        for name, allowed in (("mlp", MLPS), ("position", POSITIONS), ("norm", NORMS), ("init", INITS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(name, f"must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelSettings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(unknown[0], f"is not a model setting (settings: {', '.join(sorted(known))})")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_position(settings: ModelSettings, family: str, rope: bool) -> ModelSettings:
    """position 'auto' -> 'learned' for attention without RoPE, else 'none'."""
    if settings.position != "auto":
        return settings
    return replace(settings, position="learned" if family == "attention" and not rope else "none")


def make_norm(kind: str, d_model: int) -> nn.Module:
    return nn.LayerNorm(d_model) if kind == "layernorm" else nn.RMSNorm(d_model)


class GeluMLP(nn.Module):
    def __init__(self, d_model: int, hidden: int) -> None:
        super().__init__()
        self.up = nn.Linear(d_model, hidden)
        self.down = nn.Linear(hidden, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(nn.functional.gelu(self.up(x)))


class SwiGLU(nn.Module):
    def __init__(self, d_model: int, hidden: int) -> None:
        super().__init__()
        self.gate_up = nn.Linear(d_model, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(nn.functional.silu(gate) * up)


class Block(nn.Module):
    """Pre-norm residual block: the mixer, then (optionally) an MLP."""

    def __init__(self, mixer: Mixer, d_model: int, settings: ModelSettings) -> None:
        super().__init__()
        self.mixer_norm = make_norm(settings.norm, d_model)
        self.mixer = mixer
        self.mlp_norm: nn.Module | None = None
        self.mlp: nn.Module | None = None
        if settings.mlp == "identity":
            self.mlp_norm = make_norm(settings.norm, d_model)
            self.mlp = nn.Identity()
        elif settings.mlp != "none":
            hidden = settings.mlp_expand * d_model
            self.mlp_norm = make_norm(settings.norm, d_model)
            self.mlp = GeluMLP(d_model, hidden) if settings.mlp == "gelu" else SwiGLU(d_model, 2 * hidden // 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.mixer(self.mixer_norm(x))
        if self.mlp is not None:
            x = x + self.mlp(self.mlp_norm(x))
        return x


def sinusoidal_positions(seq_len: int, d_model: int) -> torch.Tensor:
    """(seq_len, d_model): sin on the first half, cos on the second, frequencies 10000^(-i/(d/2))."""
    half = d_model // 2
    frequency = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / max(half, 1))
    angle = torch.arange(seq_len, dtype=torch.float32)[:, None] * frequency[None, :]
    table = torch.zeros(seq_len, d_model)
    table[:, :half], table[:, half : 2 * half] = angle.sin(), angle.cos()
    return table


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
        code = sinusoidal_positions(seq_len, d_model).to(hidden.device, hidden.dtype)
        return self.decoder(hidden[:, -1:, :] + code[None])


class RecallModel(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        make_mixer: Callable[[], Mixer],
        settings: ModelSettings,
        head: str = "lm",
        max_seq_len: int = 0,
    ) -> None:
        super().__init__()
        if head not in HEADS:
            raise ConfigError("head", f"must be one of {', '.join(HEADS)}, got {head!r}")
        if settings.position == "auto":
            raise ConfigError("position", "resolve 'auto' with resolve_position() before building the model")
        if settings.position == "learned" and max_seq_len < 1:
            raise ConfigError("position", "learned positions need max_seq_len (the longest length evaluated)")
        self.settings = settings
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.embedding_dropout = nn.Dropout(settings.embedding_dropout)
        self.positions = nn.Embedding(max_seq_len, d_model) if settings.position == "learned" else None
        self.blocks = nn.ModuleList(Block(make_mixer(), d_model, settings) for _ in range(settings.n_layers))
        self.final_norm = make_norm(settings.norm, d_model)
        self.decoder = AutoEncoderHead(d_model, settings) if head == "autoencoder" else None
        self.head = nn.Linear(d_model, vocab_size, bias=settings.head_bias)
        self._init_own_weights()
        if settings.init == "zoology":
            self._init_like_zoology()
        if settings.tied:
            self.head.weight = self.embedding.weight

    def _init_own_weights(self) -> None:
        """GPT-2's N(0, 0.02) for the embedding, head and MLPs; the mixers keep their own initialisation
        (S4's HiPPO matrices, Mamba's dt and A_log ranges are part of what is being compared)."""
        own = [self.embedding, self.head, self.positions, self.decoder]
        own += [block.mlp for block in self.blocks]
        for module in own:
            if module is None:
                continue
            for sub in module.modules():
                if isinstance(sub, nn.Linear | nn.Embedding):
                    nn.init.normal_(sub.weight, mean=0.0, std=0.02)
                    if getattr(sub, "bias", None) is not None:
                        nn.init.zeros_(sub.bias)

    def _init_like_zoology(self) -> None:
        """Every linear layer N(0, 0.02) with zero bias, mixers included; out_proj at 0.02 / sqrt(2 n_layers)."""
        scaled_std = 0.02 / math.sqrt(2 * self.settings.n_layers)
        for block in self.blocks:
            for name, sub in block.mixer.named_modules():
                if isinstance(sub, nn.Linear):
                    nn.init.normal_(sub.weight, mean=0.0, std=scaled_std if name.endswith("out_proj") else 0.02)
                    if sub.bias is not None:
                        nn.init.zeros_(sub.bias)

    def forward(self, tokens: torch.Tensor, where: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) token ids -> (B, L, vocab) logits, or the logits at some positions only: with a vocabulary
        of 8192 the head costs far more than a small mixer, and MQAR asks for a few positions per sequence.
        `where` is a (B, L) bool mask -> (n, vocab) at its n true positions, or (B, W) position indices ->
        (B * W, vocab) (fixed shapes, as a CUDA graph needs; suites.training.target_positions)."""
        x = self.embedding(tokens)
        if self.positions is not None:
            if tokens.shape[1] > self.positions.num_embeddings:
                raise ConfigError(
                    "position", f"learned positions cover {self.positions.num_embeddings} tokens, got {tokens.shape[1]}"
                )
            x = x + self.positions.weight[: tokens.shape[1]]
        elif self.settings.position == "sinusoidal":
            x = x + sinusoidal_positions(tokens.shape[1], x.shape[-1]).to(x.device, x.dtype)
        x = self.embedding_dropout(x)
        for block in self.blocks:
            x = block(x)
        x = self.final_norm(x)
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


def count_parameters(model: nn.Module) -> int:
    """Distinct trainable parameters (a tied head counts once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters() if p.requires_grad}.values())
