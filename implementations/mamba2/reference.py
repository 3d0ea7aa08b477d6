"""The Mamba-2 block (Dao & Gu, 2024, Section 7 and Figure 6), parameter for parameter as
mamba_ssm.modules.mamba2.Mamba2 with its defaults (rmsnorm=True, norm_before_gate=False, D per head,
no extra MLP channels), so that both load the same state dict:

    z, xBC, dt = in_proj(u)                        (d_model -> 2·d_inner + 2·groups·d_state + heads)
    x, B, C    = silu(causal depthwise conv1d(xBC))  (width d_conv, over x, B and C together)
    y          = ssd(x, dt, A, B, C, chunk_size, D, dt_bias, dt_softplus=True)    (per head: scalar A)
    y          = RMSNorm(y · silu(z)) · weight     (gated RMSNorm, normalised within each group)
    out        = out_proj(y)

with A = -exp(A_log), A_log = log(uniform(1, 16)) per head, D = 1, and dt_bias = softplus^{-1}(dt)
with dt log-uniform in [1e-3, 1e-1] (floored at 1e-4).

Heads: n_heads of MixerConfig is the number of SSD heads; headdim = d_inner / n_heads (an explicitly
set head_dim must agree). n_groups groups share B and C (n_groups must divide n_heads).

Decoding keeps a `Mamba2State`: the last d_conv - 1 inputs of the convolution and the SSM state
(batch, heads, headdim, d_state). `Mamba2Block` is shared by the reference and the op-level
adapters, which only swap `ssd_function`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from harness.config import MixerConfig
from harness.errors import ConfigError
from harness.interface import CoreCall, Mixer, part
from implementations.mamba.reference import causal_depthwise_conv1d, init_dt_bias, last_steps
from implementations.mamba2.ssd import FORMS, compute_dtype, ssd, ssd_step

KNOWN_OPTIONS = {"dt_min", "dt_max", "ssd"}
NORM_EPS = 1e-5  # mamba_ssm's Mamba2 gated RMSNorm


def mamba2_head_dim(config: MixerConfig) -> int:
    """d_inner / n_heads, or a one-line error naming the field to change."""
    if config.d_inner % config.n_heads:
        raise ConfigError(
            "n_heads", f"must divide d_inner = expand·d_model = {config.d_inner} (Mamba-2 heads split d_inner)"
        )
    head_dim = config.d_inner // config.n_heads
    if config.head_dim is not None and config.head_dim != head_dim:
        raise ConfigError(
            "head_dim",
            f"Mamba-2 heads split d_inner = {config.d_inner}: n_heads·head_dim must equal it; "
            f"with n_heads = {config.n_heads} head_dim is {head_dim}, got {config.head_dim}",
        )
    return head_dim


def validate_mamba2_config(config: MixerConfig) -> None:
    config.check_options("mamba2", KNOWN_OPTIONS)
    mamba2_head_dim(config)
    if config.n_heads % config.n_groups:
        raise ConfigError("n_groups", f"must divide n_heads = {config.n_heads}, got {config.n_groups}")
    dt_min, dt_max = float(config.option("dt_min", 1e-3)), float(config.option("dt_max", 1e-1))
    if not 0 < dt_min <= dt_max:
        raise ConfigError("options", f"need 0 < dt_min <= dt_max, got dt_min={dt_min}, dt_max={dt_max}")
    if config.option("ssd", "chunked") not in FORMS:
        raise ConfigError("options", f"ssd must be one of {', '.join(FORMS)}, got {config.option('ssd', '')!r}")


class GatedRMSNorm(nn.Module):
    """RMSNorm(y · silu(z)) · weight, normalised over each group of `group_size` channels
    (mamba_ssm's RMSNormGated with norm_before_gate=False). Computed in float32 (float64 for float64)."""

    def __init__(self, width: int, group_size: int, eps: float = NORM_EPS) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.group_size, self.eps = group_size, eps

    def forward(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        work = compute_dtype(y.dtype)
        with part("gating"):
            gated = y.to(work) * F.silu(z.to(work))
        with part("norm"):
            grouped = gated.unflatten(-1, (-1, self.group_size))
            normed = grouped * torch.rsqrt(grouped.pow(2).mean(-1, keepdim=True) + self.eps)
            return (normed.flatten(-2) * self.weight.to(work)).to(y.dtype)


@dataclass(frozen=True)
class Mamba2State:
    conv: torch.Tensor  # (batch, d_inner + 2·groups·d_state, d_conv - 1): the last conv inputs, oldest first
    ssm: torch.Tensor  # (batch, heads, headdim, d_state), float32 (float64 for float64 inputs)


class Mamba2Block(Mixer):
    """The Mamba-2 block; `ssd_function` is the core (reference: our PyTorch SSD)."""

    conv_backend = "torch conv1d"  # which causal conv runs (suites may record it); ours on every device

    def __init__(self, config: MixerConfig) -> None:
        super().__init__()
        validate_mamba2_config(config)
        self.config = config
        self.d_inner, self.d_state, self.d_conv = config.d_inner, config.d_state, config.d_conv
        self.n_heads, self.head_dim, self.n_groups = config.n_heads, mamba2_head_dim(config), config.n_groups
        self.chunk_size = config.chunk_size
        self.conv_dim = self.d_inner + 2 * self.n_groups * self.d_state
        self.in_proj = nn.Linear(config.d_model, self.d_inner + self.conv_dim + self.n_heads, bias=False)
        self.conv1d = nn.Conv1d(
            self.conv_dim, self.conv_dim, self.d_conv, groups=self.conv_dim, padding=self.d_conv - 1, bias=True
        )
        dt_min, dt_max = float(config.option("dt_min", 1e-3)), float(config.option("dt_max", 1e-1))
        self.dt_bias = nn.Parameter(init_dt_bias(self.n_heads, dt_min, dt_max))
        self.A_log = nn.Parameter(torch.log(torch.empty(self.n_heads).uniform_(1, 16)))
        self.D = nn.Parameter(torch.ones(self.n_heads))
        for dynamics in (self.dt_bias, self.A_log, self.D):  # mamba_ssm's mark: no weight decay on these
            dynamics._no_weight_decay = True
        self.norm = GatedRMSNorm(self.d_inner, group_size=self.d_inner // self.n_groups)
        self.out_proj = nn.Linear(self.d_inner, config.d_model, bias=False)
        self.ssd_form = str(config.option("ssd", "chunked"))

    # -- the core, replaced by the op-level adapters ----------------------------------------------
    def ssd_function(self) -> Callable[..., Any]:
        return partial(ssd, form=self.ssd_form)

    def _split(self, zxbcdt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return zxbcdt.split([self.d_inner, self.conv_dim, self.n_heads], dim=-1)  # z, xBC, dt

    def _ssd_inputs(self, u: torch.Tensor) -> tuple[tuple[Any, ...], dict[str, Any], torch.Tensor, torch.Tensor]:
        """(x, dt, A, B, C, chunk_size), (D, dt_bias, dt_softplus), the gate z and the conv inputs xBC."""
        with part("projection"):
            z, xBC, dt = self._split(self.in_proj(u))
        with part("convolution"):
            conv_out = F.silu(causal_depthwise_conv1d(xBC.transpose(1, 2), self.conv1d.weight, self.conv1d.bias))
            conv_out = conv_out.transpose(1, 2)
        x, B, C = conv_out.split([self.d_inner, self.n_groups * self.d_state, self.n_groups * self.d_state], dim=-1)
        param_dtype = compute_dtype(u.dtype)  # the kernels want A (and take D, dt_bias) in float32
        args = (
            x.unflatten(-1, (self.n_heads, self.head_dim)),
            dt,
            -torch.exp(self.A_log.to(param_dtype)),
            B.unflatten(-1, (self.n_groups, self.d_state)),
            C.unflatten(-1, (self.n_groups, self.d_state)),
            self.chunk_size,
        )
        kwargs = {"D": self.D.to(param_dtype), "dt_bias": self.dt_bias.to(param_dtype), "dt_softplus": True}
        return args, kwargs, z, xBC

    def _output(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        y = self.norm(y.flatten(-2), z)  # (batch, L, d_inner)
        with part("projection"):
            return self.out_proj(y)

    # -- the Mixer interface ----------------------------------------------------------------------
    def forward(self, u: torch.Tensor) -> torch.Tensor:
        args, kwargs, z, _ = self._ssd_inputs(u)
        with part("core"):
            y = self.ssd_function()(*args, **kwargs)
        return self._output(y, z)

    def core_call(self, u: torch.Tensor) -> CoreCall:
        args, kwargs, _, _ = self._ssd_inputs(u)
        return CoreCall(self.ssd_function(), args, kwargs)

    def prefill(self, u: torch.Tensor) -> tuple[torch.Tensor, Mamba2State]:
        args, kwargs, z, xBC = self._ssd_inputs(u)
        with part("core"):
            y, final = self.ssd_function()(*args, **kwargs, return_final_states=True)
        state = Mamba2State(last_steps(xBC.transpose(1, 2), self.d_conv - 1), final.to(compute_dtype(u.dtype)))
        return self._output(y, z), state

    def init_state(self, batch: int, device: torch.device | str, dtype: torch.dtype) -> Mamba2State:
        conv = torch.zeros(batch, self.conv_dim, self.d_conv - 1, device=device, dtype=dtype)
        ssm = torch.zeros(batch, self.n_heads, self.head_dim, self.d_state, device=device, dtype=compute_dtype(dtype))
        return Mamba2State(conv, ssm)

    def step(self, u_t: torch.Tensor, state: Mamba2State) -> tuple[torch.Tensor, Mamba2State]:
        batch = u_t.shape[0]
        with part("projection"):
            z, xBC, dt = self._split(self.in_proj(u_t))
        with part("convolution"):
            window = torch.cat([state.conv, xBC[..., None]], dim=-1)  # (batch, conv_dim, d_conv)
            conv_out = F.silu((window * self.conv1d.weight[:, 0, :]).sum(-1) + self.conv1d.bias)
        x, B, C = conv_out.split([self.d_inner, self.n_groups * self.d_state, self.n_groups * self.d_state], dim=-1)
        with part("core"):
            work = compute_dtype(u_t.dtype)
            dt = F.softplus(dt.to(work) + self.dt_bias.to(work))
            y, h = ssd_step(
                state.ssm,
                x.to(work).view(batch, self.n_heads, self.head_dim),
                dt,
                -torch.exp(self.A_log.to(work)),
                B.to(work).view(batch, self.n_groups, self.d_state),
                C.to(work).view(batch, self.n_groups, self.d_state),
                self.D.to(work),
            )
        y = self.norm(y.to(u_t.dtype).flatten(-2), z)
        with part("projection"):
            out = self.out_proj(y)
        return out, Mamba2State(window[..., 1:], h)


class Mamba2Reference(Mamba2Block):
    """The readable reference: the block above with the PyTorch SSD (chunked form by default)."""


def build_reference(config: MixerConfig) -> Mamba2Reference:
    return Mamba2Reference(config)
