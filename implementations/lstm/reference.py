"""The LSTM as a sequence mixer, parameter for parameter as torch.nn.LSTM (one layer, hidden size =
d_model), so both load the same state dict. With x_t the input and (h, c) the state, gates in nn.LSTM's
order (i, f, g, o):

    i_t = sigmoid(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)      input gate
    f_t = sigmoid(W_if x_t + b_if + W_hf h_{t-1} + b_hf)      forget gate
    g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)         candidate cell
    o_t = sigmoid(W_io x_t + b_io + W_ho h_{t-1} + b_ho)      output gate
    c_t = f_t * c_{t-1} + i_t * g_t                           cell state: the gradient's highway
    h_t = o_t * tanh(c_t)                                     output y_t = h_t

W_i* are `weight_ih_l0` (4H x D, the four gates stacked), W_h* `weight_hh_l0` (4H x H), and the two
biases `bias_ih_l0`, `bias_hh_l0`; all start uniform in [-1/sqrt(H), 1/sqrt(H)], nn.LSTM's initialisation.
Only the input projections of all steps are one matmul; the recurrence is sequential by nature (h_t needs
h_{t-1}), which is the LSTM's cost against the parallel scans of S4 and Mamba.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from harness.config import MixerConfig
from harness.interface import CoreCall, Mixer, part


@dataclass(frozen=True)
class LSTMState:
    h: torch.Tensor  # (batch, hidden): the last output
    c: torch.Tensor  # (batch, hidden): the cell state


def lstm_cell(gates_x: torch.Tensor, state: LSTMState, weight_hh: torch.Tensor, bias_hh: torch.Tensor) -> LSTMState:
    """One step: `gates_x` = W_ih x_t + b_ih (batch, 4H) already computed; returns (h_t, c_t)."""
    gates = gates_x + state.h @ weight_hh.T + bias_hh
    i, f, g, o = gates.chunk(4, dim=-1)
    c = torch.sigmoid(f) * state.c + torch.sigmoid(i) * torch.tanh(g)
    return LSTMState(torch.sigmoid(o) * torch.tanh(c), c)


def lstm_recurrence(
    gates_x: torch.Tensor, state: LSTMState, weight_hh: torch.Tensor, bias_hh: torch.Tensor
) -> tuple[torch.Tensor, LSTMState]:
    """The recurrence over a sequence: gates_x (batch, L, 4H) -> (h for every step (batch, L, H), last state)."""
    outputs = []
    for t in range(gates_x.shape[1]):
        state = lstm_cell(gates_x[:, t], state, weight_hh, bias_hh)
        outputs.append(state.h)
    return torch.stack(outputs, dim=1), state


class LSTMReference(Mixer):
    def __init__(self, config: MixerConfig) -> None:
        super().__init__()
        self.config = config
        hidden = self.hidden = config.d_model
        self.weight_ih_l0 = nn.Parameter(torch.empty(4 * hidden, config.d_model))
        self.weight_hh_l0 = nn.Parameter(torch.empty(4 * hidden, hidden))
        self.bias_ih_l0 = nn.Parameter(torch.empty(4 * hidden))
        self.bias_hh_l0 = nn.Parameter(torch.empty(4 * hidden))
        bound = 1.0 / math.sqrt(hidden)
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -bound, bound)

    def _input_gates(self, x: torch.Tensor) -> torch.Tensor:
        with part("projection"):
            return x @ self.weight_ih_l0.T + self.bias_ih_l0

    def init_state(self, batch: int, device: torch.device | str, dtype: torch.dtype) -> LSTMState:
        zeros = torch.zeros(batch, self.hidden, device=device, dtype=dtype)
        return LSTMState(zeros, zeros.clone())

    def prefill(self, x: torch.Tensor) -> tuple[torch.Tensor, LSTMState]:
        state = self.init_state(x.shape[0], x.device, x.dtype)
        gates_x = self._input_gates(x)
        with part("core"):
            return lstm_recurrence(gates_x, state, self.weight_hh_l0, self.bias_hh_l0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prefill(x)[0]

    def step(self, x_t: torch.Tensor, state: LSTMState) -> tuple[torch.Tensor, LSTMState]:
        gates_x = self._input_gates(x_t)
        with part("core"):
            state = lstm_cell(gates_x, state, self.weight_hh_l0, self.bias_hh_l0)
        return state.h, state

    def core_call(self, x: torch.Tensor) -> CoreCall:
        """The recurrence alone, on the input projections of every step (what cuDNN's kernel fuses)."""
        state = self.init_state(x.shape[0], x.device, x.dtype)
        return CoreCall(lstm_recurrence, (self._input_gates(x), state, self.weight_hh_l0, self.bias_hh_l0))


def build_reference(config: MixerConfig) -> LSTMReference:
    return LSTMReference(config)
