"""The sLSTM cell in pure PyTorch: recurrent only, as the xLSTM paper defines it (arXiv 2405.04517,
section 2.2, equations 8-17).

Scalar memory per channel, exponential gating with a normalizer and a stabilizer, and recurrent
connections from the previous output h_{t-1} that are block-diagonal: channel groups ("heads") mix only
within themselves. For each head, with W x_t + b given as `input_preacts` (the gate pre-activations
computed from the input, in the order i, f, z, o):

    ĩ, f̃, z̃, õ = W x_t + b + R h_{t-1}           R: (4, heads, d_head, d_head), block-diagonal
    log i_t = ĩ_t                                   exponential input gate
    log f_t = logsigmoid(f̃_t)                       sigmoid forget gate ("exponential": log f_t = f̃_t)
    m_t = max(log f_t + m_{t-1}, log i_t)           stabilizer
    i'_t = exp(log i_t - m_t)     f'_t = exp(log f_t + m_{t-1} - m_t)
    c_t = f'_t c_{t-1} + i'_t tanh(z̃_t)            cell
    n_t = f'_t n_{t-1} + i'_t                       normalizer
    h_t = sigmoid(õ_t) · c_t / n_t                  hidden state (the output, and the recurrent input)

The stabilizer rescales c and n by the same factor, so h is exactly the unstabilized recurrence's; it
only keeps exp() from overflowing. The fresh state is all zeros (h_0 = c_0 = n_0 = 0, m_0 = 0).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from harness.errors import UserError

FORGET_GATES = ("sigmoid", "exponential")
GATES = ("i", "f", "z", "o")  # the order of the gate axis everywhere in this module


class SLSTMState(NamedTuple):
    h: torch.Tensor  # (B, heads, d_head) output of the last step, the recurrent input of the next
    c: torch.Tensor  # (B, heads, d_head) cell, stored scaled by exp(-m)
    n: torch.Tensor  # (B, heads, d_head) normalizer, stored scaled by exp(-m)
    m: torch.Tensor  # (B, heads, d_head) stabilizer


def work_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def slstm_zero_state(batch: int, heads: int, d_head: int, device: torch.device | str, dtype: torch.dtype) -> SLSTMState:
    zeros = torch.zeros(batch, heads, d_head, device=device, dtype=work_dtype(dtype))
    return SLSTMState(zeros, zeros.clone(), zeros.clone(), zeros.clone())


def slstm_step(
    input_preacts: torch.Tensor,  # (B, 4, heads, d_head): W x_t + b for the gates i, f, z, o
    recurrent_weight: torch.Tensor,  # (4, heads, d_head, d_head): R, one block per gate and head
    state: SLSTMState,
    forget_gate: str = "sigmoid",
) -> tuple[torch.Tensor, SLSTMState]:
    """One step of the recurrence in the module docstring: (h_t (B, heads, d_head), new state)."""
    work = work_dtype(input_preacts.dtype)
    h_prev, c, n, m_prev = (s.to(work) for s in state)
    recurrent = torch.einsum("bhd,ghde->bghe", h_prev, recurrent_weight.to(work))  # R h_{t-1}, per head
    i_tilde, f_tilde, z_tilde, o_tilde = (input_preacts.to(work) + recurrent).unbind(dim=1)
    if forget_gate == "sigmoid":
        log_f = F.logsigmoid(f_tilde)
    elif forget_gate == "exponential":
        log_f = f_tilde
    else:
        raise UserError(f"unknown sLSTM forget gate {forget_gate!r}; use one of {', '.join(FORGET_GATES)}")
    log_i = i_tilde

    m = torch.maximum(log_f + m_prev, log_i)
    write = torch.exp(log_i - m)
    forget = torch.exp(log_f + m_prev - m)
    c = forget * c + write * torch.tanh(z_tilde)
    n = forget * n + write
    h = torch.sigmoid(o_tilde) * c / n
    return h, SLSTMState(h, c, n, m)


def slstm_recurrent(
    input_preacts: torch.Tensor,  # (B, L, 4, heads, d_head)
    recurrent_weight: torch.Tensor,  # (4, heads, d_head, d_head)
    initial_state: SLSTMState | None = None,
    forget_gate: str = "sigmoid",
) -> tuple[torch.Tensor, SLSTMState]:
    """The sLSTM over a sequence (a loop of `slstm_step`): (h (B, L, heads, d_head), final state).
    There is no parallel form: the gates depend on h_{t-1} through R."""
    if input_preacts.dim() != 5 or input_preacts.shape[2] != len(GATES):
        raise UserError(
            f"sLSTM: input pre-activations must be (batch, L, 4, heads, d_head), got {tuple(input_preacts.shape)}"
        )
    batch, seq_len, _, heads, d_head = input_preacts.shape
    if tuple(recurrent_weight.shape) != (len(GATES), heads, d_head, d_head):
        raise UserError(
            f"sLSTM: recurrent weight must be (4, heads, d_head, d_head) = {(4, heads, d_head, d_head)}, "
            f"got {tuple(recurrent_weight.shape)}"
        )
    state = initial_state
    if state is None:
        state = slstm_zero_state(batch, heads, d_head, input_preacts.device, input_preacts.dtype)
    outputs = []
    for t in range(seq_len):
        h_t, state = slstm_step(input_preacts[:, t], recurrent_weight, state, forget_gate)
        outputs.append(h_t)
    return torch.stack(outputs, dim=1).to(input_preacts.dtype), state


def slstm_step_flops(d_model: int, d_head: int) -> float:
    """One step for one sequence: R h (4 gates × 2·d_model·d_head), ~15 pointwise ops per channel."""
    return float(8 * d_model * d_head + 15 * d_model)


SLSTM_STATE_TENSORS = 4  # h, c, n, m: d_model elements each
