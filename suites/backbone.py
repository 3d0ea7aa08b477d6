"""The trunk every training suite's model shares: token embedding (+ positions) -> pre-norm residual blocks
of any registered mixer -> final norm. The recall model (suites/recall/model.py) puts a language-model head
on it, the classification model (suites/classify/model.py) a pooled linear head.

    tokens -> embedding (+ learned or sinusoidal positions, optional) -> dropout
           -> n_layers x [ x + mixer(norm(x)) ; x + mlp(norm(x)) (optional) ]
           -> final norm                                                       (B, L, d_model)

The mixer of every block is built through the registry by implementation name, so attention, S4, Mamba, ...
plug in unchanged; a hybrid gives each block its own (a layer pattern across families, suites/mixers.py).
Moved here from the recall model unchanged (same attribute names, same order of construction, so the same
seed gives the same weights).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn

from harness.config import Settings
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


@dataclass(frozen=True)
class ModelSettings(Settings):
    KIND = "model"

    n_layers: int = 2
    mlp: str = "none"  # none | identity | gelu | swiglu
    mlp_expand: int = 4  # hidden width = mlp_expand * d_model (SwiGLU: 2/3 of that, as in Llama)
    tied: bool = True  # head weight = embedding weight
    head_bias: bool = False  # the output layer has a bias (MAD's untied unembedding has one)
    # auto | none | learned (absolute, a table up to max_seq_len) | sinusoidal (absolute, fixed, any
    # length). auto follows Zoology: learned positions for attention without RoPE (it has no other sense
    # of order), none for the recurrent mixers.
    position: str = "auto"
    # The sinusoidal code's amplitude. Vaswani et al. scale the token embeddings by sqrt(d_model) so that
    # tokens and the unit-amplitude code weigh alike; with GPT-2's N(0, 0.02) embeddings (no scaling) the code
    # is ~50x the token at initialisation, and the token identity an induction head must match is nearly
    # drowned. 0.02 puts the code on the embeddings' footing. 1.0: the code as Vaswani et al. write it.
    position_scale: float = 1.0
    norm: str = "layernorm"
    init: str = "mixer"  # mixer | zoology (INITS)
    embedding_dropout: float = 0.0  # dropout on the token (+ position) embeddings; Zoology's is 0.1

    def __post_init__(self) -> None:
        if not isinstance(self.n_layers, int) or self.n_layers < 1:
            raise ConfigError("n_layers", f"must be a positive integer, got {self.n_layers!r}")
        if not isinstance(self.mlp_expand, int) or self.mlp_expand < 1:
            raise ConfigError("mlp_expand", f"must be a positive integer, got {self.mlp_expand!r}")
        if not self.position_scale > 0:
            raise ConfigError("position_scale", f"must be positive, got {self.position_scale!r}")
        if not 0.0 <= self.embedding_dropout < 1.0:
            raise ConfigError("embedding_dropout", f"must be in [0, 1), got {self.embedding_dropout!r}")
        for name, allowed in (("mlp", MLPS), ("position", POSITIONS), ("norm", NORMS), ("init", INITS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(name, f"must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")


def resolve_position(settings: ModelSettings, family: str | Sequence[str], rope: bool) -> ModelSettings:
    """position 'auto' -> 'learned' for attention without RoPE, else 'none'. `family` may be every layer's
    family (a hybrid): learned only when every layer is attention; a pattern with any recurrent layer gets
    none, as Jamba (arXiv 2403.19887) has no positional encoding at all: its SSM layers give the order."""
    if settings.position != "auto":
        return settings
    families = (family,) if isinstance(family, str) else tuple(family)
    attention_only = all(f == "attention" for f in families)
    return replace(settings, position="learned" if attention_only and not rope else "none")


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


def sinusoidal_positions(seq_len: int, d_model: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(seq_len, d_model): sin on the first half, cos on the second, frequencies 10000^(-i/(d/2)). Built
    on `device`: a copy from the host inside a CUDA graph capture is refused (the step would run eagerly)."""
    half = d_model // 2
    arange = functools.partial(torch.arange, dtype=torch.float32, device=device)
    frequency = torch.exp(-math.log(10000.0) * arange(half) / max(half, 1))
    angle = arange(seq_len)[:, None] * frequency[None, :]
    table = torch.zeros(seq_len, d_model, device=device)
    table[:, :half], table[:, half : 2 * half] = angle.sin(), angle.cos()
    return table


class Backbone(nn.Module):
    """embedding (+ positions) -> blocks -> final norm. Subclasses add their head after `super().__init__`
    and initialise with `init_normal` (in their own order of modules) and `init_like_zoology`."""

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        make_mixer: Callable[[], Mixer] | Sequence[Callable[[], Mixer]],
        settings: ModelSettings,
        max_seq_len: int,
    ) -> None:
        """`make_mixer` builds every block's mixer, or is a list of one constructor per block (a hybrid's
        layer pattern, suites.mixers.ModelLayers.makers), called in block order."""
        super().__init__()
        makers = [make_mixer] * settings.n_layers if callable(make_mixer) else list(make_mixer)
        if len(makers) != settings.n_layers:
            raise ConfigError("n_layers", f"is {settings.n_layers} but {len(makers)} mixers were given, one per layer")
        if settings.position == "auto":
            raise ConfigError("position", "resolve 'auto' with resolve_position() before building the model")
        if settings.position == "learned" and max_seq_len < 1:
            raise ConfigError("position", "learned positions need max_seq_len (the longest length evaluated)")
        self.settings = settings
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.embedding_dropout = nn.Dropout(settings.embedding_dropout)
        self.positions = nn.Embedding(max_seq_len, d_model) if settings.position == "learned" else None
        self.blocks = nn.ModuleList(Block(make(), d_model, settings) for make in makers)
        self.final_norm = make_norm(settings.norm, d_model)

    @staticmethod
    def init_normal(modules: Iterable[nn.Module | None]) -> None:
        """GPT-2's N(0, 0.02) for every Linear and Embedding inside `modules` (zero biases), in their order."""
        for module in modules:
            if module is None:
                continue
            for sub in module.modules():
                if isinstance(sub, nn.Linear | nn.Embedding):
                    nn.init.normal_(sub.weight, mean=0.0, std=0.02)
                    if getattr(sub, "bias", None) is not None:
                        nn.init.zeros_(sub.bias)

    def init_like_zoology(self) -> None:
        """Every linear layer N(0, 0.02) with zero bias, mixers included; out_proj at 0.02 / sqrt(2 n_layers)."""
        scaled_std = 0.02 / math.sqrt(2 * self.settings.n_layers)
        for block in self.blocks:
            for name, sub in block.mixer.named_modules():
                if isinstance(sub, nn.Linear):
                    nn.init.normal_(sub.weight, mean=0.0, std=scaled_std if name.endswith("out_proj") else 0.02)
                    if sub.bias is not None:
                        nn.init.zeros_(sub.bias)

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, L) token ids -> (B, L, d_model), after the final norm."""
        x = self.embedding(tokens)
        if self.positions is not None:
            if tokens.shape[1] > self.positions.num_embeddings:
                raise ConfigError(
                    "position", f"learned positions cover {self.positions.num_embeddings} tokens, got {tokens.shape[1]}"
                )
            x = x + self.positions.weight[: tokens.shape[1]]
        elif self.settings.position == "sinusoidal":
            code = sinusoidal_positions(tokens.shape[1], x.shape[-1], x.device).to(x.dtype)
            x = x + self.settings.position_scale * code
        x = self.embedding_dropout(x)
        for block in self.blocks:
            x = block(x)
        return self.final_norm(x)


def count_parameters(model: nn.Module) -> int:
    """Distinct trainable parameters (a tied head counts once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters() if p.requires_grad}.values())
