"""Layer-level adapter: the `xlstm` package's xLSTM 7B mLSTM layer (`xlstm.xlstm_large.model.mLSTMLayer`).

The whole layer is the library's: projections, soft-capped gates, the mLSTM backend of mlstm_kernels,
the multi-head layer norm, the output gate and the output projection (profiler ranges come from hooks
on its submodules). Its reference is our PyTorch
`MLSTMLargeLayer` (reference.py), whose weights map one to one (`WEIGHT_NAMES`), so `seqbench check`
compares the same function.

It is not the paper's mLSTM block (`xlstm/mlstm_reference`): xLSTM 7B has no up-projection, no causal
convolution, no learnable skip and no block-diagonal q/k/v; its q/k are half as wide as v; its gates come
from x and are soft-capped at 15; its output gate is sigmoid(W_o x) instead of swish(z). Those weights have
no counterpart in the paper block, which is why this adapter has a reference of its own.

Modes of the library's backend: `forward` uses "train" (the chunkwise kernel alone, the training path,
when the length is a multiple of the chunk size) or else "inference", which pads at the end (harmless to
the outputs: the mLSTM is causal); `step` uses "inference" (the library's step kernel); `prefill` runs the
chunkwise kernel on the longest multiple of the chunk size and steps through the rest. Two kernel sets:
    native  chunkwise--native_autograd + native step: pure PyTorch, CPU and GPU
    triton  chunkwise--triton_limit_chunk + Triton step (xLSTM 7B's defaults that run on triton 3.6)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from harness.config import MixerConfig
from harness.errors import ConfigError
from harness.interface import CoreCall, Mixer, part
from implementations.xlstm.mlstm_kernels_adapters import check_triton_head_dims
from implementations.xlstm.reference import (
    LARGE_NORM_EPS,
    MLSTMLargeLayer,
    _positive_float,
    large_layer_dims,
    mlstm_eps,
)

KERNEL_SETS: dict[str, dict[str, str]] = {
    "native": {
        "chunkwise_kernel": "chunkwise--native_autograd",
        "sequence_kernel": "native_sequence__native",
        "step_kernel": "native",
    },
    "triton": {
        "chunkwise_kernel": "chunkwise--triton_limit_chunk",
        "sequence_kernel": "native_sequence__triton",
        "step_kernel": "triton",
    },
}

# The library layer's submodules, marked as parts for the profiler (forward hooks open and close the range).
SUBMODULE_PARTS: dict[str, str] = {
    "q": "projection",
    "k": "projection",
    "v": "projection",
    "out_proj": "projection",
    "ogate_preact": "gating",
    "igate_preact": "gating",
    "fgate_preact": "gating",
    "multihead_norm": "norm",
}

# our MLSTMLargeLayer parameter -> the xlstm mLSTMLayer parameter (weight_mode="single")
WEIGHT_NAMES: dict[str, str] = {
    "q_proj.weight": "q.weight",
    "k_proj.weight": "k.weight",
    "v_proj.weight": "v.weight",
    "ogate.weight": "ogate_preact.weight",
    "igate.weight": "igate_preact.weight",
    "igate.bias": "igate_preact.bias",
    "fgate.weight": "fgate_preact.weight",
    "fgate.bias": "fgate_preact.bias",
    "norm.weight": "multihead_norm.weight",
    "out_proj.weight": "out_proj.weight",
}


def mark_part(module: torch.nn.Module, name: str) -> None:
    """Wrap every forward of `module` in the profiler range of part `name` (hooks: the module is not ours)."""
    open_ranges: list[Any] = []

    def enter(_module: torch.nn.Module, _args: Any) -> None:
        marker = part(name)
        marker.__enter__()
        open_ranges.append(marker)

    def leave(_module: torch.nn.Module, _args: Any, _output: Any) -> None:
        open_ranges.pop().__exit__(None, None, None)

    module.register_forward_pre_hook(enter)
    module.register_forward_hook(leave)


class XLSTMLargeLayer(Mixer):
    def __init__(self, config: MixerConfig, kernels: str) -> None:
        super().__init__()
        from mlstm_kernels.torch.backend_module import mLSTMBackend, mLSTMBackendConfig
        from xlstm.xlstm_large.model import mLSTMLayer, mLSTMLayerConfig

        self.config = config
        qk_dim, v_dim = large_layer_dims(config)
        for name in ("input_gate", "forget_gate", "mlstm_form"):
            if name in dict(config.options):
                raise ConfigError(
                    "options", f"the xlstm package's layer has fixed gates and kernels; {name} does not apply"
                )
        if kernels == "triton":
            check_triton_head_dims(qk_dim // config.n_heads, v_dim // config.n_heads)
            if config.chunk_size not in (16, 32, 64):
                raise ConfigError(
                    "chunk_size", f"triton_limit_chunk takes chunk sizes 16, 32 or 64, got {config.chunk_size}"
                )
        self.kernels = kernels
        self.n_heads = config.n_heads
        self.qk_dim, self.v_dim = qk_dim, v_dim
        self._backend_class, self._backend_config_class = mLSTMBackend, mLSTMBackendConfig
        self._backends: dict[tuple[str, torch.dtype], Any] = {}
        self.layer = mLSTMLayer(
            mLSTMLayerConfig(
                embedding_dim=config.d_model,
                num_heads=config.n_heads,
                use_bias=False,
                norm_eps=LARGE_NORM_EPS,
                norm_reduction_force_float32=True,
                qk_dim_factor=qk_dim / config.d_model,
                v_dim_factor=v_dim / config.d_model,
                gate_soft_cap=_positive_float(config, "gate_soft_cap", 15.0),
                mlstm_backend=self._backend_config("train", torch.float32),
                weight_mode="single",
            )
        )
        for submodule, name in SUBMODULE_PARTS.items():
            mark_part(getattr(self.layer, submodule), name)
        if (self.layer.qk_dim, self.layer.v_dim) != (qk_dim, v_dim):  # int(d_model · factor) rounded down
            raise ConfigError(
                "head_dim",
                f"xlstm's layer rounds its widths to q/k {self.layer.qk_dim}, v {self.layer.v_dim} "
                f"instead of {qk_dim}, {v_dim}; choose n_heads·head_dim and qk_dim_factor that d_model divides evenly",
            )

    def _backend_config(self, mode: str, state_dtype: torch.dtype) -> Any:
        return self._backend_config_class(
            **KERNEL_SETS[self.kernels],
            mode=mode,
            chunk_size=self.config.chunk_size,
            return_last_states=True,  # the layer unpacks (h, state) whatever the mode
            autocast_kernel_dtype="bfloat16",
            eps=mlstm_eps(self.config),
            inference_state_dtype=str(state_dtype).removeprefix("torch."),
        )

    @contextmanager
    def _mode(self, mode: str, dtype: torch.dtype) -> Iterator[None]:
        """Run the layer with a backend in `mode` whose inference state has the right dtype (float64 for a
        float64 check, else float32). The backends hold no parameters: swapping them changes no weight."""
        state_dtype = torch.float64 if dtype == torch.float64 else torch.float32
        key = (mode, state_dtype)
        if key not in self._backends:
            self._backends[key] = self._backend_class(self._backend_config(mode, state_dtype))
            mark_part(self._backends[key], "core")
        saved = self.layer.mlstm_backend
        self.layer.mlstm_backend = self._backends[key]
        # "force float32 reductions" would round a float64 check's norm to float32: at least float32 is meant.
        self.layer.multihead_norm.force_float32_reductions = dtype != torch.float64
        try:
            yield
        finally:
            self.layer.mlstm_backend = saved

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mode = "train" if x.shape[1] % self.config.chunk_size == 0 else "inference"
        with self._mode(mode, x.dtype):
            y, _ = self.layer(x)
        return y

    def core_call(self, x: torch.Tensor) -> CoreCall:
        """The library's mLSTM backend on the layer's own q, k, v and gates (computed as the layer does)."""
        layer = self.layer
        batch, seq_len, _ = x.shape
        with torch.no_grad():
            q, k, v = layer.q(x), layer.k(x), layer.v(x)
            cap = layer.config.gate_soft_cap
            i = (cap * torch.tanh(layer.igate_preact(x) / cap)).transpose(1, 2)
            f = (cap * torch.tanh(layer.fgate_preact(x) / cap)).transpose(1, 2)
        q, k, v = (t.reshape(batch, seq_len, self.n_heads, -1).transpose(1, 2) for t in (q, k, v))
        mode = "train" if seq_len % self.config.chunk_size == 0 else "inference"

        def cell(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, i: torch.Tensor, f: torch.Tensor) -> Any:
            with self._mode(mode, q.dtype):
                h, _ = self.layer.mlstm_backend(q=q, k=k, v=v, i=i, f=f)
            return h

        return CoreCall(cell, (q, k, v, i, f))

    def init_state(self, batch: int, device: torch.device | str, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        state_dtype = torch.float64 if dtype == torch.float64 else torch.float32
        d_qk, d_v = self.qk_dim // self.n_heads, self.v_dim // self.n_heads
        return (
            torch.zeros(batch, self.n_heads, d_qk, d_v, device=device, dtype=state_dtype),
            torch.zeros(batch, self.n_heads, d_qk, device=device, dtype=state_dtype),
            torch.zeros(batch, self.n_heads, 1, device=device, dtype=state_dtype),
        )

    def prefill(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """The chunkwise kernel over the longest multiple of the chunk size, then the step kernel over the
        rest. Exact, unlike the library's inference mode, which pads with a forget pre-activation of 25 and
        so decays the state by 1e-11 per padded step: more than a float64 check allows."""
        whole = x.shape[1] - x.shape[1] % self.config.chunk_size
        outputs, state = [], None
        if whole:
            with self._mode("train", x.dtype):
                y, state = self.layer(x[:, :whole])
            outputs.append(y)
        if state is None:
            state = self.init_state(x.shape[0], x.device, x.dtype)
        for t in range(whole, x.shape[1]):
            y_t, state = self.step(x[:, t], state)
            outputs.append(y_t[:, None])
        return torch.cat(outputs, dim=1), state

    def step(self, x_t: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        with self._mode("inference", x_t.dtype):
            y, state = self.layer(x_t[:, None], state)
        return y[:, 0], state

    def load_reference_weights(self, reference: Mixer) -> None:
        if not isinstance(reference, MLSTMLargeLayer):
            raise TypeError(f"the xlstm layer maps weights from MLSTMLargeLayer, not {type(reference).__name__}")
        ours = reference.state_dict()
        self.layer.load_state_dict({theirs: ours[name] for name, theirs in WEIGHT_NAMES.items()}, strict=True)


def build_native(config: MixerConfig) -> XLSTMLargeLayer:
    return XLSTMLargeLayer(config, "native")


def build_triton(config: MixerConfig) -> XLSTMLargeLayer:
    return XLSTMLargeLayer(config, "triton")
