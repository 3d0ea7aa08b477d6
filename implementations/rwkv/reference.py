"""The RWKV-7 "Goose" time-mixing block, written to be read next to the paper (arXiv 2503.14456, §4)
and fla's `RWKV7Attention` (fla 0.6.0), with the pure-PyTorch op of `implementations.rwkv.wkv7` as core.

For each token, with x_{t-1} the previous token (the token shift; zero before the first):

    x^◇_t  = lerp(x_t, x_{t-1}, μ_◇)                 ◇ ∈ {r, w, k, v, a, g}  (per-channel μ)
    r_t    = x^r_t W_r      k_t = x^k_t W_k      v_t = x^v_t W_v
    d_t    = w0 + tanh(x^w_t W_w1) W_w2               decay LoRA
    w_t    = -e^{-1/2} σ(d_t)                         log decay, in (-e^{-1/2}, 0)
    a_t    = σ(a0 + x^a_t W_a1 W_a2)                  in-context learning rate (ICLR)
    v_t    = lerp(v_t, v_first_t, σ(v0 + x^v_t W_v1 W_v2))    value residual (see below)
    g_t    = σ(x^g_t W_g1) W_g2                       output gate
    κ̂_t    = normalize_per_head(k_t ⊙ ξ)             removal key (k normalisation)
    k̃_t    = k_t ⊙ lerp(1, a_t, α)                   replacement key
    o_t    = rwkv7(r, w, k̃, v, a = -κ̂, b = κ̂ ⊙ a)   S_t = S_{t-1}(diag(e^{w_t}) - κ̂ᵀ(a_t ⊙ κ̂)) + v k̃ᵀ
    p_t    = GroupNorm_heads(o_t) + ((r_t ⊙ ρ ⊙ k̃_t)·1) v_t     per-head norm + "bonus" term
    y_t    = (g_t ⊙ p_t) W_o

The official code writes the decay as exp(-exp(-softplus(-d) - 0.5)); since exp(-softplus(-d)) = σ(d)
that is exp(-e^{-1/2} σ(d)): the same function as above and as fla.

Value residual: in a stack, layers after the first mix their values with the first layer's values
v_first. A single mixer has no earlier layer. By default (`value_residual` off) this block is a first
layer: it owns no value LoRA and uses its own v, exactly like fla's layer 0. With option
`value_residual=True` it is a later layer: it owns the value LoRA and mixes with `v_first` when the
caller passes one (`forward(x, v_first=...)`, `step(x_t, state, v_first_t=...)`); without one it mixes
with its own values, which leaves v unchanged but computes everything a later layer computes, so
timings and FLOPs are those of a later layer.

Initialisation follows the official RWKV-7 / fla recipe for a layer halfway down a stack (μ, w0, a0,
v0, ξ, α, ρ, orthogonal r/k/v projections), with deliberate changes for a freshly built, untrained
mixer: the output projection is orthogonal, not zero (zero would make every output zero), and the
LoRAs have random down projections and unit-gain up projections instead of zero and 0.1 (the official
values make decay, ICLR, value mix and gate almost independent of the data, which is exactly what a
benchmark and a correctness check must exercise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from harness.config import MixerConfig
from harness.errors import ConfigError
from harness.interface import CoreCall, Mixer, part
from implementations.rwkv.wkv7 import rwkv7_chunked, rwkv7_recurrent, working_dtype

# w = -e^{-1/2} σ(d) lies in (LOG_DECAY_LOWER_BOUND, 0): the decay per token is at least e^{-0.6065} ≈ 0.545.
LOG_DECAY_LOWER_BOUND = -math.exp(-0.5)
NORM_EPS_PER_CHANNEL = 1e-5  # GroupNorm eps = head_dim · 1e-5 (the official 64e-5 for head_dim 64)

LOW_RANK_OPTIONS = ("decay_low_rank_dim", "a_low_rank_dim", "v_low_rank_dim", "gate_low_rank_dim")
KNOWN_OPTIONS: set[str] = {*LOW_RANK_OPTIONS, "value_residual"}


def default_low_rank_dims(d_model: int, head_dim: int) -> dict[str, int]:
    """fla's defaults (RWKV7Attention): multiples of 32 growing with sqrt(d_model), at least 32."""
    factor = head_dim / 64  # larger heads get larger decay / ICLR / value LoRAs

    def rounded(x: float) -> int:
        return max(32, int(round(x / 32) * 32))

    root = d_model**0.5
    return {
        "decay_low_rank_dim": rounded(2.5 * root * factor),
        "a_low_rank_dim": rounded(2.5 * root * factor),
        "v_low_rank_dim": rounded(1.7 * root * factor),
        "gate_low_rank_dim": rounded(5 * root),
    }


@dataclass(frozen=True)
class RWKV7Settings:
    """What a RWKV-7 block reads from a MixerConfig, checked once."""

    d_model: int
    n_heads: int
    head_dim: int
    chunk_size: int
    value_residual: bool
    decay_low_rank_dim: int
    a_low_rank_dim: int
    v_low_rank_dim: int
    gate_low_rank_dim: int

    @property
    def inner(self) -> int:
        return self.n_heads * self.head_dim


def rwkv7_settings(config: MixerConfig) -> RWKV7Settings:
    config.check_options("rwkv", KNOWN_OPTIONS)
    if config.rope:
        raise ConfigError("rope", "RWKV-7 has no rotary position embedding; leave rope off")
    head_dim = config.resolved_head_dim
    ranks = default_low_rank_dims(config.d_model, head_dim)
    for name in LOW_RANK_OPTIONS:
        value = config.option(name, ranks[name])
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError("options", f"{name} must be a positive integer, got {value!r}")
        ranks[name] = value
    value_residual = config.option("value_residual", False)
    if not isinstance(value_residual, bool):
        raise ConfigError("options", f"value_residual must be true or false, got {value_residual!r}")
    return RWKV7Settings(
        d_model=config.d_model,
        n_heads=config.n_heads,
        head_dim=head_dim,
        chunk_size=config.chunk_size,
        value_residual=value_residual,
        **ranks,
    )


class LowRank(nn.Module):
    """x -> activation(x W_down) W_up (+ bias): the LoRA "MLPs" of RWKV-7 (fla's `LoRA`)."""

    def __init__(self, d_in: int, d_out: int, rank: int, activation: str | None, bias: bool) -> None:
        super().__init__()
        self.down = nn.Linear(d_in, rank, bias=False)
        self.up = nn.Linear(rank, d_out, bias=bias)
        self.activation = {None: nn.Identity(), "tanh": nn.Tanh(), "sigmoid": nn.Sigmoid()}[activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.activation(self.down(x)))


@dataclass(frozen=True)
class RWKV7State:
    """Decoding state: constant in the context length."""

    shifted: torch.Tensor  # (batch, d_model): the previous token x_{t-1}, for the token shift
    wkv: torch.Tensor  # (batch, heads, head_dim_k, head_dim_v), float32 (float64 for float64 mixers)


@dataclass
class TimeMixInputs:
    """The core op's inputs (batch, seq_len, heads, head_dim) and what the output stage needs."""

    r: torch.Tensor
    w: torch.Tensor  # log decay
    k: torch.Tensor  # k̃, the replacement key
    v: torch.Tensor
    a: torch.Tensor  # -κ̂
    b: torch.Tensor  # κ̂ ⊙ ICLR
    g: torch.Tensor  # (batch, seq_len, inner) output gate

    def op_args(self) -> tuple[torch.Tensor, ...]:
        return self.r, self.w, self.k, self.v, self.a, self.b


class RWKV7TimeMix(Mixer):
    """The RWKV-7 time-mixing block around a replaceable core op (`core` for sequences, `core_step`
    for one decoded token). Adapters over fla's kernels subclass it and replace only those two."""

    def __init__(self, config: MixerConfig) -> None:
        super().__init__()
        self.config = config
        self.settings = s = rwkv7_settings(config)
        self.n_heads, self.head_dim, self.chunk_size = s.n_heads, s.head_dim, s.chunk_size
        d, inner = s.d_model, s.inner
        # Token-shift interpolation μ_◇ per channel (x^◇ = x + (x_{t-1} - x) μ_◇).
        self.mu_r, self.mu_w, self.mu_k, self.mu_v, self.mu_a, self.mu_g = (
            nn.Parameter(torch.zeros(d)) for _ in range(6)
        )
        self.receptance_proj = nn.Linear(d, inner, bias=False)
        self.key_proj = nn.Linear(d, inner, bias=False)
        self.value_proj = nn.Linear(d, inner, bias=False)
        self.output_proj = nn.Linear(inner, d, bias=False)
        self.decay_lora = LowRank(d, inner, s.decay_low_rank_dim, "tanh", bias=True)  # bias = w0
        self.iclr_lora = LowRank(d, inner, s.a_low_rank_dim, None, bias=True)  # bias = a0
        self.value_lora = LowRank(d, inner, s.v_low_rank_dim, None, bias=True) if s.value_residual else None
        self.gate_lora = LowRank(d, inner, s.gate_low_rank_dim, "sigmoid", bias=False)
        self.removal_key_scale = nn.Parameter(torch.zeros(inner))  # ξ (fla: k_k)
        self.iclr_key_mix = nn.Parameter(torch.zeros(inner))  # α (fla: k_a)
        self.bonus = nn.Parameter(torch.zeros(s.n_heads, s.head_dim))  # ρ (fla: r_k)
        self.group_norm = nn.GroupNorm(s.n_heads, inner, eps=s.head_dim * NORM_EPS_PER_CHANNEL, affine=True)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The official RWKV-7 init for a layer halfway down a stack (ratios 0.5), with the changes the
        module doc lists."""
        s = self.settings
        d, inner = s.d_model, s.inner
        ratio_0_to_1, ratio_1_to_almost0 = 0.5, 0.5
        position = torch.arange(d, dtype=torch.float64) / d
        for mu, power in (
            (self.mu_r, 0.2),
            (self.mu_w, 0.9),
            (self.mu_k, 0.7),
            (self.mu_v, 0.7),
            (self.mu_a, 0.9),
            (self.mu_g, 0.2),
        ):
            mu.copy_(1.0 - position ** (power * ratio_1_to_almost0))
        channel = torch.arange(inner, dtype=torch.float64)
        linear = channel / max(inner - 1, 1) - 0.5
        in_head = channel % s.head_dim
        half = max((s.head_dim - 1) / 2, 0.5)
        zigzag = (in_head - (s.head_dim - 1) / 2) / half
        zigzag = zigzag * zigzag.abs()
        decay_speed = -6 + 6 * (channel / max(inner - 1, 1)) ** (1 + ratio_0_to_1**0.3)
        self.removal_key_scale.copy_(0.71 - linear * 0.1)
        self.iclr_key_mix.fill_(1.02)
        self.bonus.fill_(-0.04)
        for lora, bias in (
            (self.decay_lora, decay_speed + 0.5 + zigzag * 2.5),
            (self.iclr_lora, -0.19 + zigzag * 0.3 + linear * 0.4),
            (self.value_lora, 0.73 - linear * 0.4),
            (self.gate_lora, None),
        ):
            if lora is None:
                continue
            nn.init.kaiming_uniform_(lora.down.weight, a=math.sqrt(5))  # torch's Linear default, not zero
            _orthogonal_(lora.up.weight, gain=1.0)  # official: 0.1; see the module doc
            if bias is not None:
                lora.up.bias.copy_(bias)
        _orthogonal_(self.receptance_proj.weight, gain=1.0)
        _orthogonal_(self.key_proj.weight, gain=0.1)
        _orthogonal_(self.value_proj.weight, gain=1.0)
        _orthogonal_(self.output_proj.weight, gain=1.0)  # official: zero; see the module doc
        nn.init.ones_(self.group_norm.weight)
        nn.init.zeros_(self.group_norm.bias)

    # ---- the core: replaced by the adapters -------------------------------------------------------

    def core(
        self,
        r: torch.Tensor,
        w: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        a: torch.Tensor,
        b: torch.Tensor,
        initial_state: torch.Tensor | None = None,
        output_final_state: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The sequence op; (B, L, H, d) inputs, returns (o, final state or None)."""
        return rwkv7_chunked(
            r, w, k, v, a, b, 1.0, initial_state, output_final_state, chunk_size=self.chunk_size, validate=False
        )

    def core_step(
        self,
        r: torch.Tensor,
        w: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        a: torch.Tensor,
        b: torch.Tensor,
        state: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One decoded token: (B, 1, H, d) inputs and the state; returns (o, new state)."""
        o, new_state = rwkv7_recurrent(r, w, k, v, a, b, 1.0, state, True, validate=False)
        assert new_state is not None
        return o, new_state

    # ---- the block ---------------------------------------------------------------------------------

    def time_mix_inputs(
        self, x: torch.Tensor, previous_token: torch.Tensor, v_first: torch.Tensor | None = None
    ) -> TimeMixInputs:
        """x: (B, L, D); previous_token: (B, D), the token before x[:, 0] (zeros at the start)."""
        batch, seq_len, _ = x.shape
        heads = (batch, seq_len, self.n_heads, self.head_dim)
        with part("convolution"):  # the token shift is a causal width-2 depthwise mix
            shifted = torch.cat([previous_token[:, None, :].to(x.dtype), x[:, :-1]], dim=1)
            delta = shifted - x
            x_r, x_w, x_k, x_v, x_a, x_g = (
                torch.addcmul(x, delta, mu) for mu in (self.mu_r, self.mu_w, self.mu_k, self.mu_v, self.mu_a, self.mu_g)
            )
        with part("projection"):
            r = self.receptance_proj(x_r)
            k = self.key_proj(x_k)
            v = self.value_proj(x_v)
            w = LOG_DECAY_LOWER_BOUND * torch.sigmoid(self.decay_lora(x_w))
            iclr = torch.sigmoid(self.iclr_lora(x_a))
            if self.value_lora is not None:
                first = v if v_first is None else v_first.to(v.dtype)
                v = torch.lerp(v, first, torch.sigmoid(self.value_lora(x_v)))
        with part("gating"):
            g = self.gate_lora(x_g)
        with part("norm"):
            removal_key = F.normalize((k * self.removal_key_scale).view(heads), p=2.0, dim=-1)
        k = k * (1 + (iclr - 1) * self.iclr_key_mix)  # k̃ = k ⊙ lerp(1, a, α)
        iclr = iclr.view(heads)
        return TimeMixInputs(
            r=r.view(heads),
            w=w.view(heads),
            k=k.view(heads),
            v=v.view(heads),
            a=-removal_key,
            b=removal_key * iclr,
            g=g,
        )

    def time_mix_output(self, o: torch.Tensor, inputs: TimeMixInputs) -> torch.Tensor:
        """o: (B, L, H, d) from the core -> y: (B, L, D)."""
        batch, seq_len = o.shape[:2]
        inner = self.n_heads * self.head_dim
        with part("norm"):
            normed = self.group_norm(o.reshape(batch * seq_len, inner)).view(batch, seq_len, inner)
        with part("gating"):
            bonus = (inputs.r * inputs.k * self.bonus).sum(dim=-1, keepdim=True) * inputs.v
            gated = (normed + bonus.reshape(batch, seq_len, inner)) * inputs.g
        with part("projection"):
            return self.output_proj(gated)

    def _zero_token(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(x.shape[0], x.shape[-1])

    def forward(self, x: torch.Tensor, v_first: torch.Tensor | None = None) -> torch.Tensor:
        inputs = self.time_mix_inputs(x, self._zero_token(x), v_first)
        with part("core"):
            o, _ = self.core(*inputs.op_args())
        return self.time_mix_output(o, inputs)

    def core_call(self, x: torch.Tensor) -> CoreCall:
        inputs = self.time_mix_inputs(x, self._zero_token(x))
        return CoreCall(self.core, inputs.op_args(), {"initial_state": None, "output_final_state": False})

    def init_state(self, batch: int, device: torch.device | str, dtype: torch.dtype) -> RWKV7State:
        wkv = torch.zeros(batch, self.n_heads, self.head_dim, self.head_dim, device=device, dtype=working_dtype(dtype))
        return RWKV7State(shifted=torch.zeros(batch, self.settings.d_model, device=device, dtype=dtype), wkv=wkv)

    def step(
        self, x_t: torch.Tensor, state: RWKV7State, v_first_t: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, RWKV7State]:
        inputs = self.time_mix_inputs(x_t[:, None], state.shifted, None if v_first_t is None else v_first_t[:, None])
        with part("core"):
            o, wkv = self.core_step(*inputs.op_args(), state.wkv)
        return self.time_mix_output(o, inputs)[:, 0], RWKV7State(shifted=x_t, wkv=wkv)

    def prefill(self, x: torch.Tensor, v_first: torch.Tensor | None = None) -> tuple[torch.Tensor, RWKV7State]:
        inputs = self.time_mix_inputs(x, self._zero_token(x), v_first)
        with part("core"):
            o, wkv = self.core(*inputs.op_args(), output_final_state=True)
        assert wkv is not None
        return self.time_mix_output(o, inputs), RWKV7State(shifted=x[:, -1].clone(), wkv=wkv)


def _orthogonal_(weight: torch.Tensor, gain: float) -> None:
    """Orthogonal init computed in float64 (QR in low precision is poor), copied into the weight."""
    values = torch.empty(weight.shape, dtype=torch.float64)
    nn.init.orthogonal_(values, gain=gain)
    with torch.no_grad():
        weight.copy_(values)


def build_reference(config: MixerConfig) -> RWKV7TimeMix:
    return RWKV7TimeMix(config)
