"""Op-level adapters over mlstm_kernels 2.0.6: our mLSTM block with its cell swapped for a library kernel.

The block's projections, convolution, gates, norm and output gate stay ours (same weights as the
reference, so `seqbench check` compares the same function); only `cell_sequence` (forward and prefill)
and `cell_step` (decoding) call the library:

    kernel                              sequence (forward, prefill)      step (decode)
    chunkwise--native_autograd          pure PyTorch, any device         mlstm_kernels native step
    chunkwise--triton_limit_chunk       Triton (chunk <= 64)             mlstm_kernels Triton step
    chunkwise--triton_xl_chunk          Triton TFLA (chunk multiple 64)  mlstm_kernels Triton step
    chunkwise--triton_xl_chunk_siging   Triton TFLA, sigmoid input gate  our recurrent step (the library
                                                                         has no sigmoid-gate step kernel)

The sigmoid-input-gate kernel computes a different function (mLSTMsig), so its adapter is checked against
its own reference, `xlstm/mlstm_sig_reference` (the same block with input_gate="sigmoid"). Its state has no
stabilizer (all its gates are <= 1): we convert between its (C, n) and our (C, n, m) with C_true = C·exp(m).

Sequences whose length is not a multiple of the chunk size are padded at the end with steps that take
no input (k = v = 0, input gate pre-activation -40) and forget nothing (forget pre-activation +40, a
forget gate of 1 - 4e-18, which rounds to 1 even in float64), like mlstm_kernels' own padding wrapper
(which uses ±25, a decay of 1e-11 per padded step); the padded outputs are dropped.
mlstm_kernels is imported only when a kernel runs.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from harness.config import MixerConfig
from harness.errors import ConfigError
from implementations.xlstm.mlstm import MLSTMState, mlstm_recurrent_step, work_dtype
from implementations.xlstm.reference import MLSTMBlock, mlstm_sig_config

PAD_INPUT_PREACT = -40.0  # exp(-40) ~ 4e-18: no input (and k = v = 0 there anyway)
PAD_FORGET_PREACT = 40.0  # sigmoid(40) = 1 - 4e-18, which is 1 even in float64: keep the state


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def check_triton_head_dims(d_qk: int, d_v: int) -> None:
    """The Triton kernels tile head dims in blocks of min(64, next power of 2) and multiply tiles with
    tl.dot, which needs at least 16 rows: head dims must be >= 16 and a power of 2 or a multiple of 64."""
    for name, dim in (("q/k", d_qk), ("v", d_v)):
        if dim < 16 or not (_is_power_of_two(dim) or dim % 64 == 0):
            raise ConfigError(
                "head_dim",
                f"mlstm_kernels' Triton kernels need head dims >= 16 that are a power of 2 or a multiple of 64; "
                f"the {name} head dim is {dim}",
            )


class MLSTMKernelsBlock(MLSTMBlock):
    """The reference mLSTM block with an mlstm_kernels chunkwise kernel as its cell."""

    def __init__(self, config: MixerConfig, kernel: str, step_kernel: str | None) -> None:
        super().__init__(config)
        self.kernel = kernel  # name for mlstm_kernels.torch.get_mlstm_kernel
        self.step_kernel = step_kernel  # name for get_mlstm_step_kernel; None: our recurrent step
        self.sigmoid_input_gate = kernel.endswith("_siging")
        if self.forget_gate != "sigmoid":
            raise ConfigError(
                "options", f"mlstm_kernels {kernel} has a sigmoid forget gate only, not {self.forget_gate}"
            )
        wanted = "sigmoid" if self.sigmoid_input_gate else "exponential"
        if self.input_gate != wanted:
            raise ConfigError("options", f"mlstm_kernels {kernel} has an {wanted} input gate, not {self.input_gate}")
        if "triton" in kernel:
            check_triton_head_dims(self.d_head, self.d_head)
            chunk = config.chunk_size
            if "xl_chunk" in kernel and chunk % 64:
                raise ConfigError(
                    "chunk_size", f"the TFLA kernel {kernel} takes chunk sizes that are multiples of 64, got {chunk}"
                )
            if "limit_chunk" in kernel and not (_is_power_of_two(chunk) and 16 <= chunk <= 64):
                raise ConfigError(
                    "chunk_size", f"{kernel} takes a chunk size that is a power of 2 in 16..64, got {chunk}"
                )

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
        from mlstm_kernels.torch import get_mlstm_kernel

        kernel = get_mlstm_kernel(self.kernel)
        seq_len = q.shape[2]
        pad = -seq_len % self.chunk_size
        if pad:
            q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
            i = F.pad(i, (0, pad), value=PAD_INPUT_PREACT)
            f = F.pad(f, (0, pad), value=PAD_FORGET_PREACT)
        initial = self._to_library_state(initial_state)
        out = kernel(
            q,
            k,
            v,
            i,
            f,
            *initial,
            return_last_states=return_final_state,
            eps=self.eps,
            chunk_size=self.chunk_size,
        )
        h, last = out if return_final_state else (out, None)
        h = h[:, :, :seq_len].to(q.dtype)
        if not return_final_state:
            return h
        return h, self._from_library_state(last, q.dtype)

    def _to_library_state(self, state: MLSTMState | None) -> tuple[torch.Tensor | None, ...]:
        """Our (C, n, m (B, H)) -> the kernel's (c_initial, n_initial, m_initial (B, H, 1))."""
        if state is None:
            return (None, None, None)
        if self.sigmoid_input_gate:  # true scale, no stabilizer
            scale = torch.exp(state.m)
            return (state.C * scale[..., None, None], state.n * scale[..., None], None)
        return (state.C, state.n, state.m[..., None])

    def _from_library_state(self, last: tuple[torch.Tensor, ...], dtype: torch.dtype) -> MLSTMState:
        # Copies, not views: the native kernels return views into every chunk's states, which a kept
        # decoding state would otherwise hold alive.
        last = tuple(t.clone() for t in last)
        work = work_dtype(dtype)
        if self.sigmoid_input_gate:
            C, n = last
            return MLSTMState(C.to(work), n.to(work), torch.zeros(C.shape[:2], device=C.device, dtype=work))
        C, n, m = last
        return MLSTMState(C.to(work), n.to(work), m[..., 0].to(work))

    def cell_step(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, i: torch.Tensor, f: torch.Tensor, state: Any
    ) -> tuple[torch.Tensor, Any]:
        if self.step_kernel is None:
            return mlstm_recurrent_step(q, k, v, i, f, state, eps=self.eps, input_gate=self.input_gate)
        from mlstm_kernels.torch import get_mlstm_step_kernel

        step = get_mlstm_step_kernel(self.step_kernel)
        work = work_dtype(q.dtype)
        h, (C, n, m) = step(
            q=q,
            k=k,
            v=v,
            i=i[..., None],
            f=f[..., None],
            c=state.C.to(work).contiguous(),
            n=state.n.to(work).contiguous(),
            m=state.m[..., None].to(work).contiguous(),
            eps=self.eps,
            dtype_state=work,
        )
        return h.to(q.dtype), MLSTMState(C, n, m[..., 0])


def build_native(config: MixerConfig) -> MLSTMKernelsBlock:
    return MLSTMKernelsBlock(config, "chunkwise--native_autograd", "native")


def build_limit_chunk(config: MixerConfig) -> MLSTMKernelsBlock:
    return MLSTMKernelsBlock(config, "chunkwise--triton_limit_chunk", "triton")


def build_xl_chunk(config: MixerConfig) -> MLSTMKernelsBlock:
    return MLSTMKernelsBlock(config, "chunkwise--triton_xl_chunk", "triton")


def build_xl_chunk_siging(config: MixerConfig) -> MLSTMKernelsBlock:
    return MLSTMKernelsBlock(mlstm_sig_config(config), "chunkwise--triton_xl_chunk_siging", None)
