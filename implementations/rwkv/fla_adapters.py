"""Adapters over flash-linear-attention (fla 0.6.0): its RWKV-7 Triton kernels and its RWKV-7 layer.

Op level (`FlaChunkRWKV7`, `FlaFusedRecurrentRWKV7`): our block (`RWKV7TimeMix`) with its core op
swapped for `fla.ops.rwkv7.chunk_rwkv7` / `fused_recurrent_rwkv7`; weights, projections, norms and
gate are ours, so the check compares the kernels alone. The chunk adapter is called as fla's own layer
calls it: chunk_size 64 (or the config's 16/32), `safe_gate=True` and `lower_bound=-e^{-1/2}`, which
our block guarantees (w = -e^{-1/2} σ(d)) and which lets fla use its tensor-core path. Decoding one
token has nothing to chunk: the chunk adapter's `step` calls `fused_recurrent_rwkv7`, as fla's layer
does. `fused_recurrent_rwkv7` has no backward in fla (inference only).

Layer level (`FlaRWKV7Layer`): fla's `RWKV7Attention` itself (its token shift, fused addcmul, LoRAs,
l2-norm, k update, GroupNorm and gate/bonus kernels), with our reference's weights mapped onto its
parameters one to one: every part of the block maps, so `check` compares the same function. fla's
layer chooses its kernel by itself: `chunk_rwkv7` (chunk 64) for 64 tokens or more or when autograd
is on, `fused_mul_recurrent_rwkv7` otherwise (decoding, short prompts).

fla's kernels are Triton and refuse CPU tensors: every adapter is CUDA-only.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from harness.config import MixerConfig
from harness.errors import ConfigError
from harness.interface import CoreCall, Mixer, part
from implementations.fla_import import import_fla
from implementations.rwkv.reference import (
    LOG_DECAY_LOWER_BOUND,
    RWKV7State,
    RWKV7TimeMix,
    rwkv7_settings,
)
from implementations.rwkv.wkv7 import check_rwkv7_inputs

MAX_HEAD_DIM = 256  # fla's chunked RWKV-7 kernels assert next_power_of_2(head_dim) <= 256
CHUNK_SIZES = (16, 32, 64)  # the chunk sizes fla's safe-gate (tensor-core) inversion supports


def check_fla_config(config: MixerConfig, chunked: bool) -> None:
    head_dim = config.resolved_head_dim
    if head_dim > MAX_HEAD_DIM:
        raise ConfigError("head_dim", f"fla's RWKV-7 kernels take head_dim <= {MAX_HEAD_DIM}, got {head_dim}")
    if chunked and config.chunk_size not in CHUNK_SIZES:
        raise ConfigError(
            "chunk_size",
            f"fla's chunk_rwkv7 takes chunk_size {', '.join(map(str, CHUNK_SIZES))}, got {config.chunk_size}",
        )


def fla_chunk_rwkv7(
    r: torch.Tensor,
    w: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    scale: float = 1.0,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    *,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """fla's chunk_rwkv7 as fla's RWKV7Attention calls it. Needs lower_bound <= w < 0 (not checked:
    reading w would sync the device; the RWKV-7 block builds w in that range)."""
    chunk_rwkv7 = import_fla("fla.ops.rwkv7").chunk_rwkv7

    check_rwkv7_inputs(r, w, k, v, a, b, initial_state, check_decay=False)
    if r.shape[-1] > MAX_HEAD_DIM:
        raise ConfigError("head_dim", f"fla's chunk_rwkv7 takes head_dim <= {MAX_HEAD_DIM}, got {r.shape[-1]}")
    # The tensor-core settings fla's layer uses; fla versions before them take none of the three.
    tuning = {"safe_gate": True, "lower_bound": LOG_DECAY_LOWER_BOUND, "chunk_size": chunk_size}
    accepted = _keywords_of(chunk_rwkv7)
    return chunk_rwkv7(
        r=r,
        w=w,
        k=k,
        v=v,
        a=a,
        b=b,
        scale=scale,
        initial_state=initial_state,
        output_final_state=output_final_state,
        **{name: value for name, value in tuning.items() if name in accepted},
    )


@functools.cache
def _keywords_of(function: Callable[..., Any]) -> frozenset[str]:
    return frozenset(inspect.signature(function).parameters)


def fla_fused_recurrent_rwkv7(
    r: torch.Tensor,
    w: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    scale: float = 1.0,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """fla's fused_recurrent_rwkv7 with an explicit scale (fla's default would be 1/sqrt(head_dim))."""
    fused_recurrent_rwkv7 = import_fla("fla.ops.rwkv7").fused_recurrent_rwkv7

    check_rwkv7_inputs(r, w, k, v, a, b, initial_state, check_decay=False)
    if r.shape[-1] > MAX_HEAD_DIM:
        raise ConfigError("head_dim", f"fla's fused_recurrent_rwkv7 takes head_dim <= {MAX_HEAD_DIM}")
    return fused_recurrent_rwkv7(
        r=r,
        w=w,
        k=k,
        v=v,
        a=a,
        b=b,
        scale=scale,
        initial_state=initial_state,
        output_final_state=output_final_state,
    )


class _FlaRWKV7(RWKV7TimeMix):
    """Our block with an fla core; decoding steps through fused_recurrent_rwkv7, as fla's layer does."""

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
        o, new_state = fla_fused_recurrent_rwkv7(r, w, k, v, a, b, 1.0, state, True)
        assert new_state is not None
        return o, new_state


class FlaChunkRWKV7(_FlaRWKV7):
    """Our block, core = fla chunk_rwkv7 (decoding: fused_recurrent_rwkv7)."""

    def __init__(self, config: MixerConfig) -> None:
        check_fla_config(config, chunked=True)
        super().__init__(config)

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
        return fla_chunk_rwkv7(r, w, k, v, a, b, 1.0, initial_state, output_final_state, chunk_size=self.chunk_size)


class FlaFusedRecurrentRWKV7(_FlaRWKV7):
    """Our block, core = fla fused_recurrent_rwkv7 everywhere (forward only: fla has no backward)."""

    def __init__(self, config: MixerConfig) -> None:
        check_fla_config(config, chunked=False)
        super().__init__(config)

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
        return fla_fused_recurrent_rwkv7(r, w, k, v, a, b, 1.0, initial_state, output_final_state)


def build_chunk(config: MixerConfig) -> FlaChunkRWKV7:
    return FlaChunkRWKV7(config)


def build_fused_recurrent(config: MixerConfig) -> FlaFusedRecurrentRWKV7:
    return FlaFusedRecurrentRWKV7(config)


# ---- layer level ----------------------------------------------------------------------------------

# Our parameter name -> fla RWKV7Attention's. The LoRAs map down -> lora.0, up -> lora.2.
_LORA_NAMES = {"decay_lora": "w_lora", "iclr_lora": "a_lora", "value_lora": "v_lora", "gate_lora": "g_lora"}
_PLAIN_NAMES = {
    "removal_key_scale": "k_k",
    "iclr_key_mix": "k_a",
    "bonus": "r_k",
    "receptance_proj.weight": "r_proj.weight",
    "key_proj.weight": "k_proj.weight",
    "value_proj.weight": "v_proj.weight",
    "output_proj.weight": "o_proj.weight",
    "group_norm.weight": "g_norm.weight",
    "group_norm.bias": "g_norm.bias",
}
_SHIFT_MIX_NAMES = {f"mu_{c}": f"x_{c}" for c in "rwkvag"}  # (D,) ours, (1, 1, D) fla's


def fla_layer_state_dict(reference_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our RWKV7TimeMix state dict renamed (and reshaped) for fla's RWKV7Attention. Every tensor maps."""
    mapped: dict[str, torch.Tensor] = {}
    for name, tensor in reference_state.items():
        if name in _PLAIN_NAMES:
            mapped[_PLAIN_NAMES[name]] = tensor
        elif name in _SHIFT_MIX_NAMES:
            mapped[_SHIFT_MIX_NAMES[name]] = tensor.view(1, 1, -1)
        else:
            lora, _, rest = name.partition(".")
            if lora not in _LORA_NAMES:
                raise KeyError(f"no fla RWKV7Attention parameter for {name!r}")
            part_name, _, kind = rest.partition(".")  # down.weight / up.weight / up.bias
            index = {"down": 0, "up": 2}[part_name]  # fla's LoRA: Sequential(Linear, activation, Linear)
            mapped[f"{_LORA_NAMES[lora]}.lora.{index}.{kind}"] = tensor
    return mapped


class _OneLayerCache:
    """The two methods of fla's Cache that RWKV7Attention uses, for one layer (so no transformers
    Cache object is needed): `cache[layer_idx]` -> dict of states, and `update(...)`."""

    def __init__(self, layer_idx: int, conv_state: torch.Tensor, recurrent_state: torch.Tensor) -> None:
        self.layer_idx = layer_idx
        self.state: dict[str, Any] = {"conv_state": conv_state, "recurrent_state": recurrent_state}

    def __len__(self) -> int:
        return self.layer_idx + 1

    def __getitem__(self, layer_idx: int) -> dict[str, Any]:
        return self.state

    def update(
        self, recurrent_state: Any = None, conv_state: Any = None, layer_idx: int = 0, offset: int = 1, **_: Any
    ) -> dict[str, Any]:
        if recurrent_state is not None:
            self.state["recurrent_state"] = recurrent_state
        if conv_state is not None:
            self.state["conv_state"] = conv_state
        return self.state


class FlaRWKV7Layer(Mixer):
    """fla's RWKV7Attention (mode 'chunk', fuse_norm off) behind the Mixer interface.

    Layer index 0 (no value LoRA) unless option value_residual is on (layer index 1, which needs
    v_first: given by the caller, or else this layer's own values, as our block does)."""

    def __init__(self, config: MixerConfig) -> None:
        super().__init__()
        settings = rwkv7_settings(config)
        check_fla_config(config, chunked=True)
        if settings.inner != settings.d_model:
            raise ConfigError(
                "head_dim",
                f"fla's RWKV7Attention needs n_heads * head_dim == d_model, got {settings.n_heads} * "
                f"{settings.head_dim} != {settings.d_model}",
            )
        if settings.chunk_size != 64:
            raise ConfigError("chunk_size", "fla's RWKV7Attention always uses chunk_size 64; set chunk_size=64")
        RWKV7Attention = import_fla("fla.layers.rwkv7").RWKV7Attention

        self.config = config
        self.settings = settings
        self.layer_idx = 1 if settings.value_residual else 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # fla warns about its RWKV port on every construction
            self.layer = RWKV7Attention(
                mode="chunk",
                hidden_size=settings.d_model,
                head_dim=settings.head_dim,
                decay_low_rank_dim=settings.decay_low_rank_dim,
                gate_low_rank_dim=settings.gate_low_rank_dim,
                a_low_rank_dim=settings.a_low_rank_dim,
                v_low_rank_dim=settings.v_low_rank_dim,
                norm_eps=1e-5,
                layer_idx=self.layer_idx,
                num_hidden_layers=2,
                fuse_norm=False,
            )

    def load_reference_weights(self, reference: Mixer) -> None:
        self.layer.load_state_dict(fla_layer_state_dict(reference.state_dict()), strict=True)

    def _own_values(self, x: torch.Tensor, previous_token: torch.Tensor) -> torch.Tensor:
        """The values fla's layer computes from x: v_first for a value-residual layer with no first layer."""
        shifted = torch.cat([previous_token[:, None, :], x[:, :-1]], dim=1)
        return self.layer.v_proj(torch.addcmul(x, shifted - x, self.layer.x_v))

    def _run(
        self, x: torch.Tensor, state: RWKV7State | None, v_first: torch.Tensor | None
    ) -> tuple[torch.Tensor, RWKV7State | None]:
        if self.layer_idx != 0 and v_first is None:
            previous = state.shifted if state is not None else x.new_zeros(x.shape[0], x.shape[-1])
            v_first = self._own_values(x, previous)
        if state is None:
            with part("core"):
                y = self.layer(x, v_first=v_first)[0]
            return y, None
        cache = _OneLayerCache(self.layer_idx, state.shifted, state.wkv)
        with part("core"):
            y = self.layer(x, past_key_values=cache, use_cache=True, v_first=v_first)[0]
        return y, RWKV7State(shifted=cache.state["conv_state"], wkv=cache.state["recurrent_state"])

    def forward(self, x: torch.Tensor, v_first: torch.Tensor | None = None) -> torch.Tensor:
        y, _ = self._run(x, None, v_first)
        return y

    def init_state(self, batch: int, device: torch.device | str, dtype: torch.dtype) -> RWKV7State:
        s = self.settings
        return RWKV7State(
            shifted=torch.zeros(batch, s.d_model, device=device, dtype=dtype),
            wkv=torch.zeros(batch, s.n_heads, s.head_dim, s.head_dim, device=device, dtype=torch.float32),
        )

    def step(
        self, x_t: torch.Tensor, state: RWKV7State, v_first_t: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, RWKV7State]:
        y, new_state = self._run(x_t[:, None], state, None if v_first_t is None else v_first_t[:, None])
        assert new_state is not None
        return y[:, 0], new_state

    def prefill(self, x: torch.Tensor, v_first: torch.Tensor | None = None) -> tuple[torch.Tensor, RWKV7State]:
        y, state = self._run(x, self.init_state(x.shape[0], x.device, x.dtype), v_first)
        assert state is not None
        return y, state

    def core_call(self, x: torch.Tensor) -> CoreCall:
        """chunk_rwkv7 (chunk 64, as the layer calls it) on r, w, k, v, a, b built as fla's layer builds
        them: the kernel fla's layer runs for training and for prompts of 64 tokens or more. (Below 64
        tokens without autograd the layer switches to fused_mul_recurrent_rwkv7.)"""
        return CoreCall(fla_chunk_rwkv7, _fla_layer_core_inputs(self.layer, x), {"chunk_size": 64})


def _fla_layer_core_inputs(layer: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """r, w, k, v, a, b as fla's RWKV7Attention builds them, in plain torch. A value-residual layer
    mixes v with v_first; with no first layer, v_first is its own v and the mix leaves v unchanged."""
    batch, seq_len, d_model = x.shape
    heads = (batch, seq_len, layer.num_heads, layer.head_dim)
    shifted = torch.cat([x.new_zeros(batch, 1, d_model), x[:, :-1]], dim=1)
    delta = shifted - x
    x_r, x_w, x_k, x_v, x_a = (
        torch.addcmul(x, delta, mu) for mu in (layer.x_r, layer.x_w, layer.x_k, layer.x_v, layer.x_a)
    )
    r = layer.r_proj(x_r)
    w = LOG_DECAY_LOWER_BOUND * layer.w_lora(x_w).sigmoid()
    k = layer.k_proj(x_k)
    v = layer.v_proj(x_v)
    iclr = layer.a_lora(x_a).sigmoid()
    removal_key = nn.functional.normalize((k * layer.k_k).view(heads), dim=-1, p=2.0)
    k = k.addcmul(k * (iclr - 1), layer.k_a)
    iclr = iclr.view(heads)
    return (r.view(heads), w.view(heads), k.view(heads), v.view(heads), -removal_key, removal_key * iclr)


def build_layer(config: MixerConfig) -> FlaRWKV7Layer:
    return FlaRWKV7Layer(config)
