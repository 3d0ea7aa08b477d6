"""The xLSTM blocks as mixers, in pure PyTorch: the references of the xlstm family.

MLSTMBlock  the mLSTM block of the xLSTM paper (arXiv 2405.04517, figure 11; xlstm's
            `blocks.mlstm.layer.mLSTMLayer`), "pre up-projection":
                x_mlstm, z = split(W_up x)                        (d_model -> 2 · d_inner, d_inner = expand·d_model)
                x_conv = swish(causal_conv(x_mlstm))              depthwise, width d_conv
                q, k = blockdiag(x_conv), v = blockdiag(x_mlstm)  block-diagonal projections (blocks of 4)
                i, f = W_i [q k v] + b_i, W_f [q k v] + b_f       one gate pre-activation per head
                h = mLSTM(q, k, v, i, f)                          heads of d_inner / n_heads (mlstm.py)
                h = (multihead_norm(h) + skip ⊙ x_conv) ⊙ swish(z)   swish(z) is the output gate
                y = W_down h                                      (d_inner -> d_model)
SLSTMBlock  the sLSTM layer of the paper (figure 10; xlstm's `blocks.slstm.layer.sLSTMLayer`), "post
            up-projection" kind: gates from swish(conv(x)) (i, f) and x (z, o) through block-diagonal
            input projections, the sLSTM recurrence (slstm.py), a multi-head norm. The gated MLP that
            follows it in the paper's block is a separate residual branch there (and in xlstm), so it is
            not part of this mixer, just as the attention mixer holds no MLP.
MLSTMLargeLayer  the mLSTM layer of xLSTM 7B (arXiv 2503.13427; xlstm's `xlstm_large.model.mLSTMLayer`):
            no up-projection and no convolution; q, k (d_model·qk_dim_factor), v and the output gate
            (d_model) straight from x; soft-capped gate pre-activations; multi-head layer norm; sigmoid
            output gate; output projection. The reference of the `xlstm` package adapter.

Each block keeps its cell op behind `cell_sequence` / `cell_step`, which the kernel adapters replace, so
an adapter shares every weight and computes the same function around a different cell.

Options (MixerConfig.options) of the family:
    input_gate   "exponential" (default) or "sigmoid" (mLSTM; the TFLA mLSTMsig kernels)
    forget_gate  "sigmoid" (default) or "exponential" (mLSTM and sLSTM)
    mlstm_form   "chunkwise" (default) or "parallel": the form the references' forward and prefill use
    qkv_blocksize  4: block size of the mLSTM block's block-diagonal q, k, v projections
    qk_dim_factor  0.5: q/k width of the large layer as a fraction of d_model
    gate_soft_cap  15.0: the large layer's soft cap on gate pre-activations
    eps          1e-6: the mLSTM normalizer's eps
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from harness.config import MixerConfig
from harness.errors import ConfigError
from harness.interface import CoreCall, Mixer, part
from implementations.xlstm.mlstm import (
    DEFAULT_EPS,
    FORGET_GATES,
    INPUT_GATES,
    MLSTMState,
    mlstm_chunkwise,
    mlstm_parallel,
    mlstm_recurrent_step,
    zero_state,
)
from implementations.xlstm.slstm import SLSTMState, slstm_recurrent, slstm_step, slstm_zero_state

FAMILY = "xlstm"
KNOWN_OPTIONS = {
    "input_gate",
    "forget_gate",
    "mlstm_form",
    "qkv_blocksize",
    "qk_dim_factor",
    "gate_soft_cap",
    "eps",
}
MLSTM_FORMS = ("chunkwise", "parallel")
NORM_EPS = 1e-5  # the paper blocks' multi-head norm (xlstm's MultiHeadLayerNorm)
LARGE_NORM_EPS = 1e-6  # xLSTM 7B's norms


# ---------------------------------------------------------------------------------------------
# Options and dimensions


def _choice(config: MixerConfig, name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = config.option(name, default)
    if value not in allowed:
        raise ConfigError("options", f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _positive_int(config: MixerConfig, name: str, default: int) -> int:
    value = config.option(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError("options", f"{name} must be a positive integer, got {value!r}")
    return value


def _positive_float(config: MixerConfig, name: str, default: float) -> float:
    value = config.option(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError("options", f"{name} must be a positive number, got {value!r}")
    return float(value)


def mlstm_eps(config: MixerConfig) -> float:
    value = config.option("eps", DEFAULT_EPS)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError("options", f"eps must be a number >= 0, got {value!r}")
    return float(value)


def mlstm_block_dims(config: MixerConfig) -> tuple[int, int]:
    """(d_inner, d_head) of the mLSTM block: its heads split the up-projected width expand·d_model."""
    config.check_options(FAMILY, KNOWN_OPTIONS)
    d_inner = config.d_inner
    if d_inner % config.n_heads:
        raise ConfigError(
            "n_heads",
            f"the mLSTM block splits expand·d_model = {d_inner} into heads; n_heads={config.n_heads} does not divide",
        )
    d_head = d_inner // config.n_heads
    if config.head_dim is not None and config.head_dim != d_head:
        raise ConfigError(
            "head_dim",
            f"the mLSTM block's heads have expand·d_model/n_heads = {d_head} channels; leave head_dim unset "
            f"or set it to {d_head} (got {config.head_dim})",
        )
    blocksize = _positive_int(config, "qkv_blocksize", 4)
    if d_inner % blocksize:
        raise ConfigError("options", f"qkv_blocksize={blocksize} must divide expand·d_model = {d_inner}")
    return d_inner, d_head


def slstm_dims(config: MixerConfig) -> int:
    """d_head of the sLSTM block: its heads split d_model (the cell runs at the model width)."""
    config.check_options(FAMILY, KNOWN_OPTIONS)
    d_head = config.d_model // config.n_heads
    if config.head_dim is not None and config.head_dim * config.n_heads != config.d_model:
        raise ConfigError(
            "head_dim",
            f"the sLSTM block's heads split d_model={config.d_model}: head_dim must be "
            f"{d_head} or unset, got {config.head_dim}",
        )
    return d_head


def large_layer_dims(config: MixerConfig) -> tuple[int, int]:
    """(qk_dim, v_dim) of the xLSTM 7B layer: v_dim = n_heads·head_dim (= d_model by default) and
    qk_dim = d_model·qk_dim_factor, both split over the heads."""
    config.check_options(FAMILY, KNOWN_OPTIONS)
    v_dim = config.n_heads * config.resolved_head_dim
    factor = _positive_float(config, "qk_dim_factor", 0.5)
    qk_dim = int(config.d_model * factor)
    if qk_dim < config.n_heads or qk_dim % config.n_heads:
        raise ConfigError(
            "options",
            f"qk_dim_factor={factor} gives q/k width {qk_dim}, which n_heads={config.n_heads} does not divide",
        )
    return qk_dim, v_dim


# ---------------------------------------------------------------------------------------------
# Components


class CausalConv(nn.Module):
    """Depthwise causal convolution over time with bias; `step` keeps the last width-1 inputs."""

    def __init__(self, channels: int, width: int) -> None:
        super().__init__()
        self.width = width
        self.weight = nn.Parameter(torch.empty(channels, width))
        self.bias = nn.Parameter(torch.zeros(channels))
        nn.init.normal_(self.weight, std=width**-0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, C) -> (B, L, C)
        padded = F.pad(x.transpose(1, 2), (self.width - 1, 0))  # zeros before the sequence: causal
        y = F.conv1d(padded, self.weight[:, None, :], self.bias, groups=self.weight.shape[0])
        return y.transpose(1, 2)

    def history(self, x: torch.Tensor) -> torch.Tensor:
        """The last width-1 inputs of x (B, L, C), zero-padded on the left: the state after x.
        A copy, not a view: a decoding state must not keep the whole prompt's activations alive."""
        keep = self.width - 1
        return F.pad(x.transpose(1, 2), (keep, 0))[:, :, x.shape[1] :].transpose(1, 2).clone()

    def step(self, x_t: torch.Tensor, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x_t (B, C), history (B, width-1, C) -> (y_t (B, C), new history)."""
        window = torch.cat([history, x_t[:, None]], dim=1)  # (B, width, C), oldest first
        y_t = (window * self.weight.t()[None]).sum(dim=1) + self.bias
        return y_t, window[:, 1:]


class BlockDiagonalLinear(nn.Module):
    """y = x W with W block-diagonal: `blocks` independent (size × size) maps, no bias
    (xlstm's LinearHeadwiseExpand with expand 1)."""

    def __init__(self, features: int, blocks: int) -> None:
        super().__init__()
        size = features // blocks
        self.weight = nn.Parameter(torch.empty(blocks, size, size))  # (block, out, in)
        nn.init.normal_(self.weight, std=math.sqrt(2 / 5 / size))  # xlstm's small init

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blocks = self.weight.shape[0]
        y = torch.einsum("...bi,boi->...bo", x.unflatten(-1, (blocks, -1)), self.weight)
        return y.flatten(-2)


class MultiHeadNorm(nn.Module):
    """Layer norm over each head's channels separately (a group norm with one group per head), with a
    weight per channel and no bias. Computed in at least float32."""

    def __init__(self, heads: int, d_head: int, eps: float) -> None:
        super().__init__()
        self.heads, self.eps = heads, eps
        self.weight = nn.Parameter(torch.ones(heads * d_head))

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (..., heads, d_head) -> (..., heads·d_head)
        work = torch.float64 if h.dtype == torch.float64 else torch.float32
        normed = F.layer_norm(h.to(work), h.shape[-1:], eps=self.eps)
        return (normed.flatten(-2) * self.weight.to(work)).to(h.dtype)


# ---------------------------------------------------------------------------------------------
# The mLSTM block


class MLSTMBlockState(NamedTuple):
    conv: torch.Tensor  # (B, d_conv - 1, d_inner): the last inputs of the convolution
    cell: MLSTMState


class MLSTMBlock(Mixer):
    """The paper's mLSTM block (module docstring). The reference computes the cell with the chunkwise
    form (or the parallel form, option mlstm_form) and decodes with the recurrent step."""

    def __init__(self, config: MixerConfig) -> None:
        super().__init__()
        self.config = config
        self.d_inner, self.d_head = mlstm_block_dims(config)
        self.n_heads = config.n_heads
        self.input_gate = _choice(config, "input_gate", "exponential", INPUT_GATES)
        self.forget_gate = _choice(config, "forget_gate", "sigmoid", FORGET_GATES)
        self.form = _choice(config, "mlstm_form", "chunkwise", MLSTM_FORMS)
        self.eps = mlstm_eps(config)
        self.chunk_size = config.chunk_size
        blocks = self.d_inner // _positive_int(config, "qkv_blocksize", 4)

        self.proj_up = nn.Linear(config.d_model, 2 * self.d_inner, bias=False)
        self.conv = CausalConv(self.d_inner, config.d_conv)
        self.q_proj = BlockDiagonalLinear(self.d_inner, blocks)
        self.k_proj = BlockDiagonalLinear(self.d_inner, blocks)
        self.v_proj = BlockDiagonalLinear(self.d_inner, blocks)
        self.igate = nn.Linear(3 * self.d_inner, self.n_heads)
        self.fgate = nn.Linear(3 * self.d_inner, self.n_heads)
        self.norm = MultiHeadNorm(self.n_heads, self.d_head, NORM_EPS)
        self.skip = nn.Parameter(torch.ones(self.d_inner))
        self.proj_down = nn.Linear(self.d_inner, config.d_model, bias=False)
        # Gates that depend on the input (xlstm starts their weights at zero; random here, so that a
        # check exercises time-varying gates), a forget bias for long memory as in xlstm.
        nn.init.normal_(self.igate.weight, std=(3 * self.d_inner) ** -0.5)
        nn.init.normal_(self.fgate.weight, std=(3 * self.d_inner) ** -0.5)
        nn.init.normal_(self.igate.bias, std=0.1)
        with torch.no_grad():
            self.fgate.bias.copy_(torch.linspace(3.0, 6.0, self.n_heads))

    # The cell ops an adapter replaces. q, k: (B, H, L, d_qk); v: (B, H, L, d_v); i, f: (B, H, L).
    def cell_sequence(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        i: torch.Tensor,
        f: torch.Tensor,
        initial_state: MLSTMState | None = None,
        return_final_state: bool = False,
    ) -> Any:
        """h (B, H, L, d_v), or (h, final state) with return_final_state."""
        gates = {"input_gate": self.input_gate, "forget_gate": self.forget_gate, "eps": self.eps}
        if self.form == "parallel":
            return mlstm_parallel(
                q, k, v, i, f, initial_state=initial_state, return_final_state=return_final_state, **gates
            )
        return mlstm_chunkwise(
            q,
            k,
            v,
            i,
            f,
            chunk_size=self.chunk_size,
            initial_state=initial_state,
            return_final_state=return_final_state,
            **gates,
        )

    def cell_step(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, i: torch.Tensor, f: torch.Tensor, state: Any
    ) -> tuple[torch.Tensor, Any]:
        """One step: q, k (B, H, d_qk), v (B, H, d_v), i, f (B, H) -> (h (B, H, d_v), state)."""
        return mlstm_recurrent_step(
            q, k, v, i, f, state, eps=self.eps, input_gate=self.input_gate, forget_gate=self.forget_gate
        )

    def cell_zero_state(self, batch: int, device: torch.device | str, dtype: torch.dtype) -> Any:
        return zero_state(batch, self.n_heads, self.d_head, self.d_head, device, dtype)

    # The block around the cell.
    def _up(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with part("projection"):
            x_mlstm, z = self.proj_up(x).chunk(2, dim=-1)
        return x_mlstm, z

    def _cell_inputs(self, x_mlstm: torch.Tensor, x_conv: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(B, L, d_inner) -> q, k, v (B, H, L, d_head) and gate pre-activations i, f (B, H, L)."""
        with part("projection"):
            q, k, v = self.q_proj(x_conv), self.k_proj(x_conv), self.v_proj(x_mlstm)
        with part("gating"):
            qkv = torch.cat([q, k, v], dim=-1)
            i, f = self.igate(qkv).transpose(1, 2), self.fgate(qkv).transpose(1, 2)

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.unflatten(-1, (self.n_heads, self.d_head)).transpose(1, 2)

        return heads(q), heads(k), heads(v), i, f

    def _output(self, h: torch.Tensor, x_conv: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """h (B, H, L, d_head) -> y (B, L, d_model)."""
        with part("norm"):
            h = self.norm(h.transpose(1, 2))
        with part("gating"):
            h = (h + self.skip * x_conv) * F.silu(z)
        with part("projection"):
            return self.proj_down(h)

    def _prepare(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x_mlstm, z = self._up(x)
        with part("convolution"):
            x_conv = F.silu(self.conv(x_mlstm))
        return x_mlstm, z, x_conv, *self._cell_inputs(x_mlstm, x_conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, z, x_conv, q, k, v, i, f = self._prepare(x)
        with part("core"):
            h = self.cell_sequence(q, k, v, i, f)
        return self._output(h, x_conv, z)

    def core_call(self, x: torch.Tensor) -> CoreCall:
        _, _, _, q, k, v, i, f = self._prepare(x)
        return CoreCall(self.cell_sequence, (q, k, v, i, f))

    def init_state(self, batch: int, device: torch.device | str, dtype: torch.dtype) -> MLSTMBlockState:
        conv = torch.zeros(batch, self.conv.width - 1, self.d_inner, device=device, dtype=dtype)
        return MLSTMBlockState(conv, self.cell_zero_state(batch, device, dtype))

    def prefill(self, x: torch.Tensor) -> tuple[torch.Tensor, MLSTMBlockState]:
        x_mlstm, z, x_conv, q, k, v, i, f = self._prepare(x)
        with part("core"):
            h, cell = self.cell_sequence(q, k, v, i, f, return_final_state=True)
        return self._output(h, x_conv, z), MLSTMBlockState(self.conv.history(x_mlstm), cell)

    def step(self, x_t: torch.Tensor, state: MLSTMBlockState) -> tuple[torch.Tensor, MLSTMBlockState]:
        x_mlstm, z = self._up(x_t[:, None])
        with part("convolution"):
            conv_t, history = self.conv.step(x_mlstm[:, 0], state.conv)
            x_conv = F.silu(conv_t)[:, None]
        q, k, v, i, f = self._cell_inputs(x_mlstm, x_conv)
        with part("core"):
            h_t, cell = self.cell_step(q[:, :, 0], k[:, :, 0], v[:, :, 0], i[:, :, 0], f[:, :, 0], state.cell)
        return self._output(h_t[:, :, None], x_conv, z)[:, 0], MLSTMBlockState(history, cell)


def build_mlstm_reference(config: MixerConfig) -> MLSTMBlock:
    return MLSTMBlock(config)


def mlstm_sig_config(config: MixerConfig) -> MixerConfig:
    """`config` with the sigmoid input gate that the mLSTMsig implementations always have."""
    if config.option("input_gate", "sigmoid") != "sigmoid":
        raise ConfigError("options", "mLSTMsig has a sigmoid input gate; drop input_gate or set it to sigmoid")
    return config.with_options(input_gate="sigmoid")


def build_mlstm_sig_reference(config: MixerConfig) -> MLSTMBlock:
    """The mLSTM block with a sigmoid input gate (mLSTMsig, TFLA section 4): a different function,
    the reference of the `chunkwise--triton_xl_chunk_siging` kernel."""
    return MLSTMBlock(mlstm_sig_config(config))


# ---------------------------------------------------------------------------------------------
# The sLSTM block


class SLSTMBlockState(NamedTuple):
    conv: torch.Tensor  # (B, d_conv - 1, d_model)
    cell: SLSTMState


class SLSTMBlock(Mixer):
    """The paper's sLSTM layer (module docstring). Recurrent only: forward is the loop of the cell."""

    def __init__(self, config: MixerConfig) -> None:
        super().__init__()
        self.config = config
        self.d_head = slstm_dims(config)
        self.n_heads = config.n_heads
        self.forget_gate = _choice(config, "forget_gate", "sigmoid", FORGET_GATES)
        d_model = config.d_model
        self.conv = CausalConv(d_model, config.d_conv)
        # Input projections of the gates i, f (from the convolved input) and z, o (from the input itself),
        # block-diagonal with one block per head, as in xlstm.
        self.gate_proj = nn.ModuleList(BlockDiagonalLinear(d_model, self.n_heads) for _ in range(4))
        self.recurrent_weight = nn.Parameter(torch.empty(4, self.n_heads, self.d_head, self.d_head))
        self.bias = nn.Parameter(torch.zeros(4, self.n_heads, self.d_head))
        self.norm = MultiHeadNorm(self.n_heads, self.d_head, NORM_EPS)
        # Recurrent weights that matter (xlstm starts them at zero, which would hide the recurrence from a
        # check); forget bias in [3, 6] per head for long memory.
        nn.init.normal_(self.recurrent_weight, std=self.d_head**-0.5)
        with torch.no_grad():
            self.bias[1].copy_(torch.linspace(3.0, 6.0, self.d_head).expand(self.n_heads, -1))

    def _input_preacts(self, x: torch.Tensor, x_conv: torch.Tensor) -> torch.Tensor:
        """W x + b for the gates i, f, z, o: (B, L, d_model) -> (B, L, 4, heads, d_head)."""
        with part("projection"):
            sources = (x_conv, x_conv, x, x)
            preacts = torch.stack([proj(s) for proj, s in zip(self.gate_proj, sources, strict=True)], dim=2)
        return preacts.unflatten(-1, (self.n_heads, self.d_head)) + self.bias

    def cell_sequence(self, input_preacts: torch.Tensor, initial_state: SLSTMState | None = None) -> Any:
        return slstm_recurrent(input_preacts, self.recurrent_weight, initial_state, self.forget_gate)

    def _prepare(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with part("convolution"):
            x_conv = F.silu(self.conv(x))
        return x, self._input_preacts(x, x_conv)

    def _output(self, h: torch.Tensor) -> torch.Tensor:  # (B, L, heads, d_head) -> (B, L, d_model)
        with part("norm"):
            return self.norm(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, preacts = self._prepare(x)
        with part("core"):
            h, _ = self.cell_sequence(preacts)
        return self._output(h)

    def core_call(self, x: torch.Tensor) -> CoreCall:
        _, preacts = self._prepare(x)
        return CoreCall(self.cell_sequence, (preacts,))

    def init_state(self, batch: int, device: torch.device | str, dtype: torch.dtype) -> SLSTMBlockState:
        conv = torch.zeros(batch, self.conv.width - 1, self.config.d_model, device=device, dtype=dtype)
        return SLSTMBlockState(conv, slstm_zero_state(batch, self.n_heads, self.d_head, device, dtype))

    def prefill(self, x: torch.Tensor) -> tuple[torch.Tensor, SLSTMBlockState]:
        _, preacts = self._prepare(x)
        with part("core"):
            h, cell = self.cell_sequence(preacts)
        return self._output(h), SLSTMBlockState(self.conv.history(x), cell)

    def step(self, x_t: torch.Tensor, state: SLSTMBlockState) -> tuple[torch.Tensor, SLSTMBlockState]:
        with part("convolution"):
            conv_t, history = self.conv.step(x_t, state.conv)
            x_conv = F.silu(conv_t)
        preacts = self._input_preacts(x_t[:, None], x_conv[:, None])[:, 0]
        with part("core"):
            h_t, cell = slstm_step(preacts, self.recurrent_weight, state.cell, self.forget_gate)
        return self._output(h_t.to(x_t.dtype)[:, None])[:, 0], SLSTMBlockState(history, cell)


def build_slstm_reference(config: MixerConfig) -> SLSTMBlock:
    return SLSTMBlock(config)


# ---------------------------------------------------------------------------------------------
# The xLSTM 7B mLSTM layer


def soft_cap(x: torch.Tensor, cap: float) -> torch.Tensor:
    """cap · tanh(x / cap): about x for |x| << cap, never beyond ±cap (xLSTM 7B's gate stabilization)."""
    return cap * torch.tanh(x / cap)


class MLSTMLargeLayer(Mixer):
    """xLSTM 7B's mLSTM layer (module docstring) with the mLSTM cell of mlstm.py."""

    def __init__(self, config: MixerConfig) -> None:
        super().__init__()
        self.config = config
        self.qk_dim, self.v_dim = large_layer_dims(config)
        self.n_heads = config.n_heads
        self.gate_soft_cap = _positive_float(config, "gate_soft_cap", 15.0)
        self.form = _choice(config, "mlstm_form", "chunkwise", MLSTM_FORMS)
        for name in ("input_gate", "forget_gate"):
            if name in dict(config.options):
                raise ConfigError("options", f"the xLSTM 7B layer has fixed gates; {name} does not apply to it")
        self.eps = mlstm_eps(config)
        d_model = config.d_model
        self.q_proj = nn.Linear(d_model, self.qk_dim, bias=False)
        self.k_proj = nn.Linear(d_model, self.qk_dim, bias=False)
        self.v_proj = nn.Linear(d_model, self.v_dim, bias=False)
        self.ogate = nn.Linear(d_model, self.v_dim, bias=False)
        self.igate = nn.Linear(d_model, self.n_heads, bias=True)
        self.fgate = nn.Linear(d_model, self.n_heads, bias=True)
        self.norm = MultiHeadNorm(self.n_heads, self.v_dim // self.n_heads, LARGE_NORM_EPS)
        self.out_proj = nn.Linear(self.v_dim, d_model, bias=False)
        with torch.no_grad():
            self.fgate.bias.copy_(torch.linspace(3.0, 6.0, self.n_heads))

    def cell_sequence(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        i: torch.Tensor,
        f: torch.Tensor,
        initial_state: MLSTMState | None = None,
        return_final_state: bool = False,
    ) -> Any:
        form = mlstm_parallel if self.form == "parallel" else mlstm_chunkwise
        extra = {} if self.form == "parallel" else {"chunk_size": self.config.chunk_size}
        return form(
            q, k, v, i, f, eps=self.eps, initial_state=initial_state, return_final_state=return_final_state, **extra
        )

    def _prepare(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """x (B, L, d_model) -> q, k, v (B, H, L, d), i, f (B, H, L), output-gate pre-activation (B, L, v_dim)."""
        with part("projection"):
            q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        with part("gating"):
            o = self.ogate(x)
            i = soft_cap(self.igate(x), self.gate_soft_cap).transpose(1, 2)
            f = soft_cap(self.fgate(x), self.gate_soft_cap).transpose(1, 2)

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.unflatten(-1, (self.n_heads, -1)).transpose(1, 2)

        return heads(q), heads(k), heads(v), i, f, o

    def _output(self, h: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        with part("norm"):
            h = self.norm(h.transpose(1, 2))
        with part("gating"):
            h = torch.sigmoid(o) * h
        with part("projection"):
            return self.out_proj(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v, i, f, o = self._prepare(x)
        with part("core"):
            h = self.cell_sequence(q, k, v, i, f)
        return self._output(h, o)

    def core_call(self, x: torch.Tensor) -> CoreCall:
        q, k, v, i, f, _ = self._prepare(x)
        return CoreCall(self.cell_sequence, (q, k, v, i, f))

    def init_state(self, batch: int, device: torch.device | str, dtype: torch.dtype) -> MLSTMState:
        return zero_state(batch, self.n_heads, self.qk_dim // self.n_heads, self.v_dim // self.n_heads, device, dtype)

    def prefill(self, x: torch.Tensor) -> tuple[torch.Tensor, MLSTMState]:
        q, k, v, i, f, o = self._prepare(x)
        with part("core"):
            h, state = self.cell_sequence(q, k, v, i, f, return_final_state=True)
        return self._output(h, o), state

    def step(self, x_t: torch.Tensor, state: MLSTMState) -> tuple[torch.Tensor, MLSTMState]:
        q, k, v, i, f, o = self._prepare(x_t[:, None])
        with part("core"):
            h_t, state = mlstm_recurrent_step(
                q[:, :, 0], k[:, :, 0], v[:, :, 0], i[:, :, 0], f[:, :, 0], state, eps=self.eps
            )
        return self._output(h_t[:, :, None], o)[:, 0], state


def build_mlstm_large_reference(config: MixerConfig) -> MLSTMLargeLayer:
    return MLSTMLargeLayer(config)
