"""torch.nn.LSTM behind the mixer interface: on a GPU it runs cuDNN's fused LSTM kernels (the whole
sequence in one call), elsewhere torch's own. Its parameters are named as the reference's."""

from __future__ import annotations

import torch
from torch import nn

from harness.config import MixerConfig
from harness.interface import CoreCall, Mixer, part
from implementations.lstm.reference import LSTMState


class TorchLSTM(Mixer):
    def __init__(self, config: MixerConfig) -> None:
        super().__init__()
        self.config = config
        self.lstm = nn.LSTM(config.d_model, config.d_model, num_layers=1, batch_first=True)

    def load_reference_weights(self, reference: Mixer) -> None:
        self.lstm.load_state_dict(reference.state_dict())

    def init_state(self, batch: int, device: torch.device | str, dtype: torch.dtype) -> LSTMState:
        zeros = torch.zeros(batch, self.config.d_model, device=device, dtype=dtype)
        return LSTMState(zeros, zeros.clone())

    def _run(self, x: torch.Tensor, state: LSTMState | None) -> tuple[torch.Tensor, LSTMState]:
        initial = None if state is None else (state.h[None].contiguous(), state.c[None].contiguous())
        with part("core"):
            y, (h, c) = self.lstm(x, initial)
        return y, LSTMState(h[0], c[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, None)[0]

    def prefill(self, x: torch.Tensor) -> tuple[torch.Tensor, LSTMState]:
        return self._run(x, None)

    def step(self, x_t: torch.Tensor, state: LSTMState) -> tuple[torch.Tensor, LSTMState]:
        y, state = self._run(x_t[:, None], state)
        return y[:, 0], state

    def core_call(self, x: torch.Tensor) -> CoreCall:
        """The library's call itself: cuDNN fuses the input projections with the recurrence."""
        return CoreCall(self.lstm, (x,))


def build_cudnn(config: MixerConfig) -> TorchLSTM:
    return TorchLSTM(config)
