"""mamba_ssm's Mamba-2 kernels behind the Mixer interface. Both run without mamba_ssm's compiled
`selective_scan_cuda`: its Triton SSD never calls it, and a stub module lets the package import
(implementations/mamba_ssm_import.py).

Op level (`Mamba2SsmSsd`): our `Mamba2Block` with its core swapped for the Triton
`mamba_chunk_scan_combined` (same arguments as our `ssd`); `core_call` times the bare kernel.
Decoding uses our PyTorch step (the library's decode kernel is exercised by the layer level).

Layer level (`Mamba2SsmLayer`): `mamba_ssm.Mamba2` itself with the reference's weights loaded (our
block names its parameters as mamba_ssm does). Its forward is the fused
`mamba_split_conv1d_scan_combined` when causal_conv1d is importable (that path needs it), else
torch's conv1d followed by `mamba_chunk_scan_combined`; `kernels` records which. Decoding is
`Mamba2.step` (Triton `selective_state_update`), which updates the state in place; the SSM state is
kept in float32, as in our reference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch

from harness.config import MixerConfig
from harness.interface import CoreCall, Mixer
from implementations.mamba2.reference import Mamba2Block, mamba2_head_dim, validate_mamba2_config
from implementations.mamba_ssm_import import CAUSAL_CONV1D_NAME, import_mamba_ssm


class Mamba2SsmSsd(Mamba2Block):
    def __init__(self, config: MixerConfig) -> None:
        super().__init__(config)
        self.kernels = import_mamba_ssm(require_selective_scan=False)
        from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined

        self._mamba_chunk_scan_combined = mamba_chunk_scan_combined

    def ssd_function(self) -> Callable[..., Any]:
        return self._mamba_chunk_scan_combined

    def extra_repr(self) -> str:
        return (
            f"core=mamba_ssm mamba_chunk_scan_combined (Triton; selective_scan_cuda: {self.kernels.selective_scan}), "
            "conv: ours"
        )


@dataclass(frozen=True)
class Mamba2SsmState:
    conv: torch.Tensor  # (batch, conv_dim, d_conv), channels contiguous: mamba_ssm keeps the current input too
    ssm: torch.Tensor  # (batch, heads, headdim, d_state), float32


class Mamba2SsmLayer(Mixer):
    def __init__(self, config: MixerConfig) -> None:
        super().__init__()
        validate_mamba2_config(config)
        self.config = config
        self.kernels = import_mamba_ssm(require_selective_scan=False)
        from mamba_ssm import Mamba2

        self.mamba2 = Mamba2(
            d_model=config.d_model,
            d_state=config.d_state,
            d_conv=config.d_conv,
            expand=config.expand,
            headdim=mamba2_head_dim(config),
            ngroups=config.n_groups,
            chunk_size=config.chunk_size,
            rmsnorm=True,
            norm_before_gate=False,
            dt_min=float(config.option("dt_min", 1e-3)),
            dt_max=float(config.option("dt_max", 1e-1)),
            # The fused path calls causal_conv1d's CUDA functions unconditionally.
            use_mem_eff_path=self.kernels.conv == CAUSAL_CONV1D_NAME,
            layer_idx=0,
        )

    @property
    def conv_backend(self) -> str:
        return self.kernels.conv

    def extra_repr(self) -> str:
        path = "fused mamba_split_conv1d_scan_combined" if self.mamba2.use_mem_eff_path else "conv1d + SSD"
        return f"{self.kernels.describe()}; forward: {path}"

    def load_reference_weights(self, reference: Mixer) -> None:
        self.mamba2.load_state_dict(reference.state_dict())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mamba2(x)

    def core_call(self, x: torch.Tensor) -> CoreCall:
        raise NotImplementedError("mamba2/mamba_ssm is layer level; its SSD alone is mamba2/mamba_ssm_ssd's core_call")

    def init_state(self, batch: int, device: torch.device | str, dtype: torch.dtype) -> Mamba2SsmState:
        m = self.mamba2
        # The layout of Mamba2.allocate_inference_cache: channels contiguous, as causal_conv1d_update wants.
        conv = torch.zeros(batch, m.d_conv, m.conv1d.weight.shape[0], device=device, dtype=dtype).transpose(1, 2)
        ssm = torch.zeros(batch, m.nheads, m.headdim, m.d_state, device=device, dtype=torch.float32)
        return Mamba2SsmState(conv, ssm)

    def step(self, x_t: torch.Tensor, state: Mamba2SsmState) -> tuple[torch.Tensor, Mamba2SsmState]:
        out, conv, ssm = self.mamba2.step(x_t[:, None], state.conv, state.ssm)
        return out[:, 0], Mamba2SsmState(conv, ssm)

    def prefill(self, x: torch.Tensor) -> tuple[torch.Tensor, Mamba2SsmState]:
        state = self.init_state(x.shape[0], x.device, x.dtype)
        inference_params = SimpleNamespace(key_value_memory_dict={0: (state.conv, state.ssm)}, seqlen_offset=0)
        y = self.mamba2(x, inference_params=inference_params)
        return y, state


def build_ssd(config: MixerConfig) -> Mamba2SsmSsd:
    return Mamba2SsmSsd(config)


def build_layer(config: MixerConfig) -> Mamba2SsmLayer:
    return Mamba2SsmLayer(config)
