"""mamba_ssm's Mamba kernels behind the Mixer interface.

Op level (`MambaSsmScan`): our `MambaBlock` with its core swapped for mamba_ssm's CUDA
`selective_scan_fn`: same parameters, same projections and convolution, only the scan differs;
`core_call` times the bare CUDA scan. Decoding uses our PyTorch step (the library's decode kernels
are exercised by the layer-level adapter).

Layer level (`MambaSsmLayer`): `mamba_ssm.Mamba` itself, with the reference's weights loaded
(our block names its parameters as mamba_ssm does, so the state dicts map one to one). Its forward
is mamba_ssm's: the fused `mamba_inner_fn` when causal_conv1d is importable, else torch's conv1d
followed by `selective_scan_fn`; `kernels` records which. Decoding is `Mamba.step` (Triton
`selective_state_update`), which updates the state tensors in place. The SSM state is kept in
float32 whatever the activation dtype (mamba_ssm's kernels accept it), as in our reference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch

from harness.config import MixerConfig
from harness.interface import CoreCall, Mixer
from implementations.mamba.reference import MambaBlock, dt_rank, validate_mamba_config
from implementations.mamba_ssm_import import import_mamba_ssm


class MambaSsmScan(MambaBlock):
    def __init__(self, config: MixerConfig) -> None:
        super().__init__(config)
        self.kernels = import_mamba_ssm(require_selective_scan=True)
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

        self._selective_scan_fn = selective_scan_fn

    def scan_function(self) -> Callable[..., Any]:
        return self._selective_scan_fn

    def extra_repr(self) -> str:
        return f"core=mamba_ssm selective_scan_fn (selective_scan_cuda: {self.kernels.selective_scan}), conv: ours"


@dataclass(frozen=True)
class MambaSsmState:
    conv: torch.Tensor  # (batch, d_inner, d_conv): mamba_ssm keeps the current input in the window too
    ssm: torch.Tensor  # (batch, d_inner, d_state), float32


class MambaSsmLayer(Mixer):
    def __init__(self, config: MixerConfig) -> None:
        super().__init__()
        validate_mamba_config(config)
        self.config = config
        self.kernels = import_mamba_ssm(require_selective_scan=True)
        from mamba_ssm import Mamba

        self.mamba = Mamba(
            d_model=config.d_model,
            d_state=config.d_state,
            d_conv=config.d_conv,
            expand=config.expand,
            dt_rank=dt_rank(config),
            dt_min=float(config.option("dt_min", 1e-3)),
            dt_max=float(config.option("dt_max", 1e-1)),
            layer_idx=0,
        )

    @property
    def conv_backend(self) -> str:
        return self.kernels.conv

    def extra_repr(self) -> str:
        return self.kernels.describe()

    def load_reference_weights(self, reference: Mixer) -> None:
        self.mamba.load_state_dict(reference.state_dict())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mamba(x)

    def core_call(self, x: torch.Tensor) -> CoreCall:
        raise NotImplementedError("mamba/mamba_ssm is layer level; its scan alone is mamba/mamba_ssm_scan's core_call")

    def init_state(self, batch: int, device: torch.device | str, dtype: torch.dtype) -> MambaSsmState:
        d_inner = self.mamba.d_inner
        conv = torch.zeros(batch, d_inner, self.mamba.d_conv, device=device, dtype=dtype)
        ssm = torch.zeros(batch, d_inner, self.mamba.d_state, device=device, dtype=torch.float32)
        return MambaSsmState(conv, ssm)

    def step(self, x_t: torch.Tensor, state: MambaSsmState) -> tuple[torch.Tensor, MambaSsmState]:
        out, conv, ssm = self.mamba.step(x_t[:, None], state.conv, state.ssm)
        return out[:, 0], MambaSsmState(conv, ssm)

    def prefill(self, x: torch.Tensor) -> tuple[torch.Tensor, MambaSsmState]:
        state = self.init_state(x.shape[0], x.device, x.dtype)
        # What mamba_ssm's generation utilities pass: the states to fill, at offset 0 (a prompt).
        inference_params = SimpleNamespace(key_value_memory_dict={0: (state.conv, state.ssm)}, seqlen_offset=0)
        y = self.mamba(x, inference_params=inference_params)
        return y, state


def build_scan(config: MixerConfig) -> MambaSsmScan:
    return MambaSsmScan(config)


def build_layer(config: MixerConfig) -> MambaSsmLayer:
    return MambaSsmLayer(config)
