"""The S4 and S4D layers as mixers, written to be read next to the papers.

One layer maps x: (batch, L, H) to y: (batch, L, H), H = d_model, running H independent single-input
single-output SSMs, one per channel (S4 arXiv 2111.00396, Sec. 3.4, "architecture details"):

    u        = x, channel by channel                              (H channels; no input projection)
    y_ssm    = K * u + D u                                        K: each channel's SSM kernel (S4 eq. 5), D: skip
    y        = W GELU(y_ssm) + b                                   the output projection mixes the channels
             (option output = "glu": y = GLU(W' GELU(y_ssm) + b'), W' (2H, H), GLU(a, g) = a sigmoid(g): the
             S4 repository's postact "glu", its LRA recipe; a multiplicative gate, so not the Mamba paper's
             "S4 (no gate)")

Each channel's SSM has N = d_state states, stored as N/2 complex modes (one of each conjugate pair, as in
the S4 code: d_state = 64 means 32 complex numbers of state per channel) and a learnable step size
Delta = exp(log_dt), initialised log-uniformly in [dt_min, dt_max] (default [0.001, 0.1], as in the S4 code).

    S4   A = Lambda - P P* in the DPLR form of HiPPO-LegS (`hippo.legs_dplr`), bilinear transform,
         kernel by Algorithm 1 (`ssm_kernel.s4_kernel`: generating function, Cauchy, Woodbury, iFFT).
    S4D  diagonal A (S4D arXiv 2206.11893): S4D-Lin A_n = -1/2 + i pi n, S4D-Inv A_n = -1/2 + i (N/pi)(N/(2n+1) - 1),
         or S4D-LegS (the diagonal part of HiPPO-LegS's DPLR form); zero-order hold (default) or the
         generalized bilinear transform; kernel by a Vandermonde product (`kernels.vandermonde_kernel`).

The three forms compute one function:
    forward   the convolution y = K * u by FFT of length 2L (parallel, training / prefill),
    step      the recurrence x_k = A-bar x_{k-1} + B-bar u_k, y_k = 2 Re(C x_k) + D u_k (decoding),
    prefill   forward's output plus the state after the prompt, computed without a loop over time
              (S4: by the generating function; S4D: by a transposed Vandermonde product).
Options (MixerConfig.options), both layers: dt_min, dt_max, output = gelu | glu, and ssm_lr (the learning rate
of dt, A, P, B, as the S4 repository's `register(..., lr)` gives them; default: the model's); S4D also
init = lin | inv | legs, discretization = zoh | bilinear, and alpha (the GBT's alpha, default 1/2, with
discretization = bilinear).

Truncating the kernel at the sequence's own length L (C~ = C (I - A-bar^L), S4 Algorithm 1, step 1) is
what makes forward equal a loop of step exactly, at every L.

Precision. The SSM (its parameters, the kernel, the FFT convolution and the state) is computed in
float64 when the layer is float64 and in float32 / complex64 otherwise: cuFFT has no bfloat16 transform,
and a kernel computed in bfloat16 would be a different model. So the SSM parameters stay in at least
float32 when the layer is cast to bfloat16 or float16 (like mixed-precision S4 training keeps them);
only the activations and the output projection follow the layer's dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from harness.config import MixerConfig
from harness.errors import ConfigError
from harness.interface import CoreCall, Mixer, part
from implementations.s4.discretization import bilinear, check_alpha, zoh
from implementations.s4.hippo import legs_dplr
from implementations.s4.ssm_kernel import (
    causal_fft_convolution,
    dplr_power,
    s4_final_state,
    s4_kernel,
    vandermonde_final_state,
    vandermonde_kernel,
)

S4_OPTIONS: set[str] = {"dt_min", "dt_max", "output", "ssm_lr"}
S4D_OPTIONS: set[str] = {"dt_min", "dt_max", "output", "ssm_lr", "init", "discretization", "alpha"}
OUTPUTS = ("gelu", "glu")  # W GELU(.) + b, or GLU(W' GELU(.) + b')
S4D_INITS = ("lin", "inv", "legs")
S4D_DISCRETIZATIONS = ("zoh", "bilinear")


def no_weight_decay(*parameters: nn.Parameter, lr: float | None = None) -> None:
    """Mark the state-space parameters (dt, A, P, B) as the S4 repository registers them: trained without
    weight decay (training code that decays weight matrices only reads the mark, as mamba_ssm's does) and,
    with option ssm_lr, at their own learning rate (`_lr`: suites.training.parameter_groups reads it; S4's
    recipes train them at 0.001 while the rest of the model trains at up to 0.01)."""
    for parameter in parameters:
        parameter._no_weight_decay = True
        if lr is not None:
            parameter._lr = lr


def _complex_parameter(value: torch.Tensor) -> nn.Parameter:
    """Complex parameters are stored as (..., 2) real pairs: `Module.to(dtype)` would drop an imaginary part."""
    return nn.Parameter(torch.view_as_real(value.to(torch.complex64)).clone())


def _as_complex(value: torch.Tensor) -> torch.Tensor:
    return torch.view_as_complex(value.contiguous())


def conjugate_pair_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a* b over the full conjugate-symmetric vectors, from their halves: sum_n conj(a_n) b_n + c.c. = 2 Re(a* b)."""
    return 2 * (a.conj() * b).sum(-1).real


class SSMLayer(Mixer):
    """What S4 and S4D share: Delta, C, D, the GELU and output projection, and the three forms.

    Subclasses define the SSM through three methods: `kernel(L)`, `recurrence(u_t, x)` and `final_state(u)`.
    Parameters registered directly on the layer are the SSM's and stay in at least float32 (`_apply`);
    the output projection is a submodule and follows the layer's dtype.
    """

    def __init__(self, config: MixerConfig, family_options: set[str], name: str) -> None:
        super().__init__()
        config.check_options(name, family_options)
        if config.d_state % 2:
            raise ConfigError(
                "d_state", f"{name} keeps conjugate pairs of modes, so d_state must be even, got {config.d_state}"
            )
        self.config = config
        self.H = config.d_model  # channels
        self.N = config.d_state  # states per channel (the papers' N)
        self.M = config.d_state // 2  # complex modes per channel: one of each conjugate pair
        dt_min, dt_max = float(config.option("dt_min", 0.001)), float(config.option("dt_max", 0.1))
        if not dt_min > 0:
            raise ConfigError("dt_min", f"the step size Delta must be > 0, got {dt_min!r}")
        if not dt_max >= dt_min:
            raise ConfigError("dt_max", f"must be >= dt_min={dt_min!r}, got {dt_max!r}")
        # log Delta uniform in [log dt_min, log dt_max], one per channel.
        uniform = torch.rand(self.H, dtype=torch.float64)
        self.log_dt = nn.Parameter((math.log(dt_min) + uniform * (math.log(dt_max) - math.log(dt_min))).float())
        self.C = _complex_parameter(torch.randn(self.H, self.M, dtype=torch.complex128))  # E|C_n|^2 = 1
        self.D = nn.Parameter(torch.randn(self.H))
        self.output = str(config.option("output", "gelu"))
        if self.output not in OUTPUTS:
            raise ConfigError("output", f"must be one of {', '.join(OUTPUTS)}, got {self.output!r}")
        self.out_proj = nn.Linear(self.H, 2 * self.H if self.output == "glu" else self.H)
        ssm_lr = config.option("ssm_lr", None)
        if ssm_lr is not None and (isinstance(ssm_lr, bool) or not isinstance(ssm_lr, int | float) or ssm_lr <= 0):
            raise ConfigError("ssm_lr", f"the SSM parameters' learning rate must be a number > 0, got {ssm_lr!r}")
        self.ssm_lr = None if ssm_lr is None else float(ssm_lr)
        no_weight_decay(self.log_dt, lr=self.ssm_lr)

    # ---- the SSM, defined by subclasses -------------------------------------------------------

    def kernel(self, L: int) -> torch.Tensor:
        """K (H, L), real, in the SSM's working dtype."""
        raise NotImplementedError

    def recurrence(self, u_t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """x_k = A-bar x_{k-1} + B-bar u_k for u_t (batch, H) and the half state x (batch, H, M)."""
        raise NotImplementedError

    def final_state(self, u: torch.Tensor) -> torch.Tensor:
        """The half state (batch, H, M) after the whole input u (batch, H, L), from x_{-1} = 0."""
        raise NotImplementedError

    # ---- precision ------------------------------------------------------------------------------

    @property
    def real_dtype(self) -> torch.dtype:
        return self.log_dt.dtype  # float32 or float64, see _apply

    @property
    def complex_dtype(self) -> torch.dtype:
        return torch.complex128 if self.real_dtype == torch.float64 else torch.complex64

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> SSMLayer:
        # Casting the layer to bfloat16 / float16 keeps the SSM parameters (registered on the layer itself)
        # in float32, rounded from their values before the cast; see the module docstring.
        saved = {name: p.detach().clone() for name, p in self.named_parameters(recurse=False)}
        super()._apply(fn, recurse)
        for name, param in self.named_parameters(recurse=False):
            if param.dtype in (torch.bfloat16, torch.float16):
                param.data = saved[name].to(device=param.device, dtype=torch.float32)
                if param.grad is not None:
                    param.grad = param.grad.float()
        return self

    def dt(self) -> torch.Tensor:
        return torch.exp(self.log_dt)

    # ---- the three forms ----------------------------------------------------------------------

    def _channels_first(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] < 1:
            raise ConfigError("seq_len", f"the sequence length must be >= 1, got {x.shape[1]}")
        return x.transpose(1, 2).to(self.real_dtype)  # u: (batch, H, L)

    def ssm_convolution(self, u: torch.Tensor) -> torch.Tensor:
        """The core op: the kernel for this length and the causal FFT convolution K * u; u (batch, H, L)."""
        return causal_fft_convolution(u, self.kernel(u.shape[-1]))

    def _output(self, y_ssm: torch.Tensor, u: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """W GELU(y_ssm + D u) + b (or its GLU), for y_ssm and u with channels at dim 1: (batch, H) or
        (batch, H, L)."""
        D = self.D.view(-1, *([1] * (u.dim() - 2)))
        y = F.gelu(y_ssm + D * u).movedim(1, -1)
        with part("projection"):
            y = self.out_proj(y.to(self.out_proj.weight.dtype))
            return (F.glu(y, dim=-1) if self.output == "glu" else y).to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self._channels_first(x)
        with part("core"):
            y_ssm = self.ssm_convolution(u)
        return self._output(y_ssm, u, x.dtype)

    def core_call(self, x: torch.Tensor) -> CoreCall:
        return CoreCall(self.ssm_convolution, (self._channels_first(x),))

    def init_state(self, batch: int, device: torch.device | str, dtype: torch.dtype) -> torch.Tensor:
        """The half state: (batch, H, N/2) complex, constant in the context length."""
        return torch.zeros(batch, self.H, self.M, dtype=self.complex_dtype, device=device)

    def step(self, x_t: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u_t = x_t.to(self.real_dtype)  # (batch, H)
        with part("core"):
            state = self.recurrence(u_t, state)
            y_ssm = 2 * (self.C_complex() * state).sum(-1).real  # y_k = C x_k over the full conjugate-symmetric state
        return self._output(y_ssm, u_t, x_t.dtype), state

    def prefill(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u = self._channels_first(x)
        with part("core"):
            y_ssm = self.ssm_convolution(u)
            state = self.final_state(u)
        return self._output(y_ssm, u, x.dtype), state

    def C_complex(self) -> torch.Tensor:
        return _as_complex(self.C)


class S4(SSMLayer):
    """S4 (DPLR): A = Lambda - P P* initialised from HiPPO-LegS, bilinear transform, Cauchy kernel."""

    def __init__(self, config: MixerConfig) -> None:
        super().__init__(config, S4_OPTIONS, "s4")
        dplr = legs_dplr(self.N)
        # Re Lambda = -exp(log_neg_real) < 0 keeps every mode stable while training; HiPPO-LegS has Re Lambda = -1/2.
        self.Lambda_log_neg_real = nn.Parameter(torch.log(-dplr.Lambda.real).float().repeat(self.H, 1))
        self.Lambda_imag = nn.Parameter(dplr.Lambda.imag.float().repeat(self.H, 1))
        self.P = _complex_parameter(dplr.P.repeat(self.H, 1))
        self.B = _complex_parameter(dplr.B.repeat(self.H, 1))
        no_weight_decay(self.Lambda_log_neg_real, self.Lambda_imag, self.P, self.B, lr=self.ssm_lr)

    def ssm(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(Lambda, P, B, C, Delta): (H, M) complex each and (H,), in the working dtype."""
        Lambda = torch.complex(-torch.exp(self.Lambda_log_neg_real), self.Lambda_imag)
        return Lambda, _as_complex(self.P), _as_complex(self.B), self.C_complex(), self.dt()

    def kernel(self, L: int) -> torch.Tensor:
        Lambda, P, B, C, dt = self.ssm()
        return s4_kernel(Lambda, P, B, C, dt, L)

    def recurrence(self, u_t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The bilinear step x_k = (I - Delta/2 A)^{-1} [(I + Delta/2 A) x_{k-1} + Delta B u_k] in O(N) per channel:
        A x = Lambda x - P (P* x), and (I - Delta/2 A)^{-1} by Sherman-Morrison around the diagonal I - Delta/2 Lambda.
        P* x is taken over the full conjugate-symmetric state, so it is real: the low-rank term couples each
        mode with its conjugate, which is why this step is not a complex-linear map of the half state."""
        Lambda, P, B, _, dt = self.ssm()
        half_dt = dt[:, None] / 2  # (H, 1)
        v = x + half_dt * (Lambda * x - P * conjugate_pair_dot(P, x)[..., None]) + 2 * half_dt * B * u_t[..., None]
        d = 1 / (1 - half_dt * Lambda)  # (I - Delta/2 Lambda)^{-1}, diagonal
        dv, dp = d * v, d * P
        correction = half_dt[:, 0] * conjugate_pair_dot(P, dv) / (1 + half_dt[:, 0] * conjugate_pair_dot(P, dp))
        return dv - dp * correction[..., None]

    def final_state(self, u: torch.Tensor) -> torch.Tensor:
        Lambda, P, B, _, dt = self.ssm()
        return s4_final_state(Lambda, P, B, dt, dplr_power(Lambda, P, B, dt, u.shape[-1]), u)


def s4d_init(init: str, N: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, B) of S4D's initialisations for N states (N/2 modes), float64 complex (the S4D paper's names):
    lin  A_n = -1/2 + i pi n,                    B_n = 1    (S4D-Lin: Fourier-like frequencies)
    inv  A_n = -1/2 + i (N/pi)(N/(2n+1) - 1),    B_n = 1    (S4D-Inv: approximates S4-LegS's imaginary parts)
    legs Lambda and V* B of HiPPO-LegS's DPLR form, the low-rank term dropped (S4D-LegS)."""
    n = torch.arange(N // 2, dtype=torch.float64)
    ones = torch.ones(N // 2, dtype=torch.complex128)
    if init == "lin":
        return torch.complex(-0.5 * torch.ones_like(n), math.pi * n), ones
    if init == "inv":
        return torch.complex(-0.5 * torch.ones_like(n), N / math.pi * (N / (2 * n + 1) - 1)), ones
    if init == "legs":
        dplr = legs_dplr(N)
        return dplr.Lambda, dplr.B
    raise ConfigError("init", f"unknown S4D initialisation {init!r}; known: {', '.join(S4D_INITS)}")


class S4D(SSMLayer):
    """S4D: diagonal A (Lin / Inv / LegS init), zero-order hold or generalized bilinear, Vandermonde kernel."""

    def __init__(self, config: MixerConfig) -> None:
        super().__init__(config, S4D_OPTIONS, "s4d")
        self.init = str(config.option("init", "lin"))
        self.discretization = str(config.option("discretization", "zoh"))
        self.alpha = float(config.option("alpha", 0.5))
        if self.discretization not in S4D_DISCRETIZATIONS:
            raise ConfigError(
                "discretization", f"unknown {self.discretization!r}; known: {', '.join(S4D_DISCRETIZATIONS)}"
            )
        check_alpha(self.alpha)
        if "alpha" in dict(config.options) and self.discretization != "bilinear":
            raise ConfigError("alpha", "is the generalized bilinear transform's; set discretization=bilinear to use it")
        A, B = s4d_init(self.init, self.N)
        self.A_log_neg_real = nn.Parameter(torch.log(-A.real).float().repeat(self.H, 1))
        self.A_imag = nn.Parameter(A.imag.float().repeat(self.H, 1))
        self.B = _complex_parameter(B.repeat(self.H, 1))
        no_weight_decay(self.A_log_neg_real, self.A_imag, self.B, lr=self.ssm_lr)

    def discrete(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(log A-bar, B-bar), (H, M) each: the diagonal discretized by ZOH or the GBT."""
        A = torch.complex(-torch.exp(self.A_log_neg_real), self.A_imag)
        B, dt = _as_complex(self.B), self.dt()
        if self.discretization == "zoh":
            _, B_bar = zoh(A, B, dt, diagonal=True)
            return dt[:, None] * A, B_bar  # log exp(Delta A) = Delta A exactly
        A_bar, B_bar = bilinear(A, B, dt, self.alpha, diagonal=True)
        return torch.log(A_bar), B_bar

    def kernel(self, L: int) -> torch.Tensor:
        log_A_bar, B_bar = self.discrete()
        return vandermonde_kernel(log_A_bar, self.C_complex() * B_bar, L)

    def recurrence(self, u_t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        log_A_bar, B_bar = self.discrete()
        return torch.exp(log_A_bar) * x + B_bar * u_t[..., None]

    def final_state(self, u: torch.Tensor) -> torch.Tensor:
        log_A_bar, B_bar = self.discrete()
        return vandermonde_final_state(log_A_bar, B_bar, u)


def build_s4(config: MixerConfig) -> S4:
    return S4(config)


def build_s4d(config: MixerConfig) -> S4D:
    return S4D(config)
