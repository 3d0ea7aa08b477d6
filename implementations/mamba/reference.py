"""The Mamba block (Gu & Dao, 2023, Figure 3 and Section 3.4), parameter for parameter as
mamba_ssm.modules.mamba_simple.Mamba, so that both load the same state dict:

    x, z  = in_proj(h)                          (d_model -> 2·d_inner, expand = 2)
    x     = silu(causal depthwise conv1d(x))    (width d_conv = 4, with bias)
    dt, B, C = x_proj(x)                        (d_inner -> dt_rank + 2·d_state, dt_rank = ceil(d_model / 16))
    delta = dt_proj.weight @ dt                 (dt_rank -> d_inner; its bias goes into the scan)
    y     = selective_scan(x, delta, A, B, C, D, z, delta_bias=dt_proj.bias, delta_softplus=True)
    out   = out_proj(y)

with A = -exp(A_log), S4D-real init A[d, n] = -(n + 1), D = 1, and the paper's dt init:
dt_proj.bias = softplus^{-1}(dt), dt log-uniform in [dt_min, dt_max] = [1e-3, 1e-1] (floored at 1e-4).

Decoding keeps a `MambaState`: the last d_conv - 1 conv inputs and the SSM state h (batch, d_inner, d_state).
`MambaBlock` is shared by the reference and the op-level adapter, which only swaps `scan_function`.
"""

from __future__ import annotations

import math
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
from implementations.mamba.scan import FORMS, compute_dtype, selective_scan, selective_scan_step

KNOWN_OPTIONS = {"dt_rank", "dt_min", "dt_max", "scan"}


def dt_rank(config: MixerConfig) -> int:
    rank = config.option("dt_rank", 0) or math.ceil(config.d_model / 16)
    if not isinstance(rank, int) or rank < 1:
        raise ConfigError("options", f"dt_rank must be a positive integer, got {rank!r}")
    return rank


def validate_mamba_config(config: MixerConfig) -> None:
    config.check_options("mamba", KNOWN_OPTIONS)
    dt_rank(config)
    dt_min, dt_max = float(config.option("dt_min", 1e-3)), float(config.option("dt_max", 1e-1))
    if not 0 < dt_min <= dt_max:
        raise ConfigError("options", f"need 0 < dt_min <= dt_max, got dt_min={dt_min}, dt_max={dt_max}")
    if config.option("scan", "parallel") not in FORMS:
        raise ConfigError("options", f"scan must be one of {', '.join(FORMS)}, got {config.option('scan', '')!r}")


def inverse_softplus(y: torch.Tensor) -> torch.Tensor:
    """x with softplus(x) = y, computed stably: x = y + log(1 - exp(-y))."""
    return y + torch.log(-torch.expm1(-y))


def init_dt_bias(size: int, dt_min: float, dt_max: float, floor: float = 1e-4) -> torch.Tensor:
    """softplus^{-1}(dt) with dt log-uniform in [dt_min, dt_max]: the paper's Δ initialization."""
    log_dt = torch.rand(size) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
    return inverse_softplus(torch.exp(log_dt).clamp(min=floor))


@dataclass(frozen=True)
class MambaState:
    conv: torch.Tensor  # (batch, d_inner, d_conv - 1): the last conv inputs, oldest first
    ssm: torch.Tensor  # (batch, d_inner, d_state), float32 (float64 for float64 inputs)


def last_steps(x: torch.Tensor, width: int) -> torch.Tensor:
    """The last `width` time steps of x (batch, channels, L), zero-padded on the left when L < width.
    A copy, not a view: a decoding state must not keep the whole prompt's activations alive."""
    if width == 0:
        return x[..., :0].clone()
    return F.pad(x, (max(width - x.shape[-1], 0), 0))[..., -width:].clone()


def causal_depthwise_conv1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """y[c, t] = bias[c] + Σ_k weight[c, 0, k] · x[c, t - (K-1) + k], zeros before the start.
    x (batch, channels, L); weight (channels, 1, K) as nn.Conv1d(groups=channels) holds it."""
    width, length = weight.shape[-1], x.shape[-1]
    if x.device.type == "cuda":  # cuDNN's depthwise kernel
        return F.conv1d(x, weight, bias, padding=width - 1, groups=x.shape[1])[..., :length]
    # On the CPU torch runs a depthwise conv as one convolution per channel (slow_conv2d: ~40 ms per
    # channel in float64); K shifted multiply-adds compute the same sum directly.
    padded = F.pad(x, (width - 1, 0))
    y = sum(weight[:, 0, k, None] * padded[..., k : k + length] for k in range(width))
    return y + bias[:, None] if bias is not None else y


class MambaBlock(Mixer):
    """The Mamba block; `scan_function` is the core (reference: our PyTorch selective scan)."""

    conv_backend = "torch conv1d"  # which causal conv runs (suites may record it); ours on every device

    def __init__(self, config: MixerConfig) -> None:
        super().__init__()
        validate_mamba_config(config)
        self.config = config
        self.d_inner, self.d_state, self.d_conv = config.d_inner, config.d_state, config.d_conv
        self.dt_rank = dt_rank(config)
        d_model, d_inner = config.d_model, self.d_inner
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)
        self.conv1d = nn.Conv1d(d_inner, d_inner, self.d_conv, groups=d_inner, padding=self.d_conv - 1, bias=True)
        self.x_proj = nn.Linear(d_inner, self.dt_rank + 2 * self.d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, d_inner, bias=True)
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)
        with torch.no_grad():
            std = self.dt_rank**-0.5  # keeps the variance of dt_proj's output at init
            self.dt_proj.weight.uniform_(-std, std)
            self.dt_proj.bias.copy_(
                init_dt_bias(d_inner, float(config.option("dt_min", 1e-3)), float(config.option("dt_max", 1e-1)))
            )
        # S4D-real: A[d, n] = -(n + 1), stored as its log so A stays negative under training.
        self.A_log = nn.Parameter(torch.log(torch.arange(1, self.d_state + 1, dtype=torch.float32)).repeat(d_inner, 1))
        self.D = nn.Parameter(torch.ones(d_inner))
        # mamba_ssm's mark, read by training code that decays weight matrices only: decay would pull A_log
        # (the decay rates) towards 0 and D towards 0, which is not regularisation but a change of dynamics.
        self.A_log._no_weight_decay = True
        self.D._no_weight_decay = True
        self.scan_form = str(config.option("scan", "parallel"))

    # -- the core, replaced by the op-level adapter ---------------------------------------------
    def scan_function(self) -> Callable[..., Any]:
        return partial(selective_scan, form=self.scan_form)

    def _scan_inputs(self, x: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], dict[str, Any], torch.Tensor]:
        """Everything before the scan: (u, delta, A, B, C), (D, z, delta_bias, delta_softplus), and
        the conv inputs (batch, d_inner, L) whose tail is the decoding state."""
        with part("projection"):
            xz = self.in_proj(x).transpose(1, 2)  # (batch, 2·d_inner, L)
            x_in, z = xz.chunk(2, dim=1)
        with part("convolution"):
            u = F.silu(causal_depthwise_conv1d(x_in, self.conv1d.weight, self.conv1d.bias))
        with part("projection"):
            dt, B, C = self.x_proj(u.transpose(1, 2)).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
            delta = (dt @ self.dt_proj.weight.T).transpose(1, 2)  # (batch, d_inner, L); bias added in the scan
        # The CUDA kernel wants A, D and the bias in float32; B, C contiguous in (batch, n, L).
        param_dtype = compute_dtype(x.dtype)
        args = (
            u,
            delta.contiguous(),
            -torch.exp(self.A_log.to(param_dtype)),
            B.transpose(1, 2).contiguous(),
            C.transpose(1, 2).contiguous(),
        )
        kwargs = {
            "D": self.D.to(param_dtype),
            "z": z,
            "delta_bias": self.dt_proj.bias.to(param_dtype),
            "delta_softplus": True,
        }
        return args, kwargs, x_in

    def _output(self, y: torch.Tensor) -> torch.Tensor:
        with part("projection"):
            return self.out_proj(y.transpose(1, 2))

    # -- the Mixer interface ----------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        args, kwargs, _ = self._scan_inputs(x)
        with part("core"):
            y = self.scan_function()(*args, **kwargs)
        return self._output(y)

    def core_call(self, x: torch.Tensor) -> CoreCall:
        args, kwargs, _ = self._scan_inputs(x)
        return CoreCall(self.scan_function(), args, kwargs)

    def prefill(self, x: torch.Tensor) -> tuple[torch.Tensor, MambaState]:
        args, kwargs, x_in = self._scan_inputs(x)
        with part("core"):
            y, last_state = self.scan_function()(*args, **kwargs, return_last_state=True)
        state = MambaState(last_steps(x_in, self.d_conv - 1), last_state.to(compute_dtype(x.dtype)))
        return self._output(y), state

    def init_state(self, batch: int, device: torch.device | str, dtype: torch.dtype) -> MambaState:
        conv = torch.zeros(batch, self.d_inner, self.d_conv - 1, device=device, dtype=dtype)
        ssm = torch.zeros(batch, self.d_inner, self.d_state, device=device, dtype=compute_dtype(dtype))
        return MambaState(conv, ssm)

    def step(self, x_t: torch.Tensor, state: MambaState) -> tuple[torch.Tensor, MambaState]:
        with part("projection"):
            x_in, z = self.in_proj(x_t).chunk(2, dim=-1)  # (batch, d_inner) each
        with part("convolution"):
            window = torch.cat([state.conv, x_in[..., None]], dim=-1)  # (batch, d_inner, d_conv)
            u = F.silu((window * self.conv1d.weight[:, 0, :]).sum(-1) + self.conv1d.bias)
        with part("projection"):
            dt, B, C = self.x_proj(u).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
            delta = dt @ self.dt_proj.weight.T
        with part("core"):
            work = compute_dtype(x_t.dtype)
            delta = F.softplus(delta.to(work) + self.dt_proj.bias.to(work))
            A = -torch.exp(self.A_log.to(work))
            y, h = selective_scan_step(
                state.ssm,
                u.to(work),
                delta,
                A,
                B.to(work)[:, None],
                C.to(work)[:, None],
                self.D.to(work),
                z.to(work),
            )
        with part("projection"):
            out = self.out_proj(y.to(x_t.dtype))
        return out, MambaState(window[..., 1:], h)


class MambaReference(MambaBlock):
    """The readable reference: the block above with the PyTorch selective scan."""


def build_reference(config: MixerConfig) -> MambaReference:
    return MambaReference(config)
