"""The mLSTM cell in pure PyTorch, in three forms that compute the same function.

Written to be read next to the xLSTM paper (Beck et al. 2024, arXiv 2405.04517, section 2.3 and appendix
A.3) and TFLA (Beck et al. 2025, arXiv 2503.14376), with the conventions of mlstm_kernels 2.0.6:

    q, k: (batch, heads, L, d_qk)   v: (batch, heads, L, d_v)   i, f: (batch, heads, L) gate pre-activations

    log i_t = i_t               (exponential input gate; "sigmoid": log i_t = logsigmoid(i_t))
    log f_t = logsigmoid(f_t)   (sigmoid forget gate;     "exponential": log f_t = f_t)

    m_t = max(log f_t + m_{t-1}, log i_t)                        stabilizer (a running log-scale)
    C_t = exp(log f_t + m_{t-1} - m_t) C_{t-1} + exp(log i_t - m_t) k_t v_tᵀ      (d_qk, d_v)
    n_t = exp(log f_t + m_{t-1} - m_t) n_{t-1} + exp(log i_t - m_t) k_t           (d_qk)
    h_t = (q̂_tᵀ C_t) / (max(|q̂_tᵀ n_t|, exp(-m_t)) + eps),    q̂_t = q_t / sqrt(d_qk)

The state (C, n, m) stores the true memory scaled down: C_true = C·exp(m), n_true = n·exp(m). Dividing
numerator and denominator by exp(m) shows that h_t = q̂ᵀC_true / (max(|q̂ᵀn_true|, 1) + eps·exp(m_t)):
the stabilizer never changes the function except where eps enters. The fresh state is C = 0, n = 0,
m = 0, as in mlstm_kernels' recurrent and chunkwise kernels.

Forms:
  mlstm_parallel        the stabilized parallel form: an (L, L) matrix of decays, like attention
  mlstm_chunkwise       the chunkwise form: a recurrence over chunk states, the parallel form inside chunks
  mlstm_recurrent_step  one step of the recurrence above (mlstm_recurrent loops it over a sequence)

All three carry an initial state and can return the final state, so a prompt can be prefilled in
parallel and decoded step by step. Note: mlstm_kernels' `parallel--native_*` kernels take no initial
state and leave the initial state's term out of the max that defines m_t (m_0 = -inf instead of 0); that
changes only the eps term, so they agree with these forms exactly at eps = 0.

Inputs in float64 are computed in float64; anything else in float32 (the kernels' accumulation type),
and h is returned in the dtype of q.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from harness.errors import UserError

INPUT_GATES = ("exponential", "sigmoid")
FORGET_GATES = ("sigmoid", "exponential")
DEFAULT_EPS = 1e-6


class MLSTMState(NamedTuple):
    """The mLSTM memory of every (batch, head), stored scaled by exp(-m)."""

    C: torch.Tensor  # (B, H, d_qk, d_v) matrix memory
    n: torch.Tensor  # (B, H, d_qk) normalizer
    m: torch.Tensor  # (B, H) stabilizer: log of the scale the other two are stored at


def work_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; every other dtype is computed in float32, as the kernels accumulate."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def zero_state(
    batch: int, heads: int, d_qk: int, d_v: int, device: torch.device | str, dtype: torch.dtype
) -> MLSTMState:
    """The fresh state: no memory, stabilizer 0 (mlstm_kernels' convention)."""
    work = work_dtype(dtype)
    return MLSTMState(
        torch.zeros(batch, heads, d_qk, d_v, device=device, dtype=work),
        torch.zeros(batch, heads, d_qk, device=device, dtype=work),
        torch.zeros(batch, heads, device=device, dtype=work),
    )


def log_input_gate(i: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "exponential":
        return i
    if kind == "sigmoid":
        return F.logsigmoid(i)
    raise UserError(f"unknown mLSTM input gate {kind!r}; use one of {', '.join(INPUT_GATES)}")


def log_forget_gate(f: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "sigmoid":
        return F.logsigmoid(f)
    if kind == "exponential":
        return f
    raise UserError(f"unknown mLSTM forget gate {kind!r}; use one of {', '.join(FORGET_GATES)}")


def check_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, i: torch.Tensor, f: torch.Tensor) -> None:
    """One-line errors for shapes the mLSTM cannot take."""
    if q.dim() != 4:
        raise UserError(f"mLSTM: q must be (batch, heads, L, d_qk), got shape {tuple(q.shape)}")
    if k.shape != q.shape:
        raise UserError(f"mLSTM: k must have the shape of q {tuple(q.shape)}, got {tuple(k.shape)}")
    if v.dim() != 4 or v.shape[:3] != q.shape[:3]:
        raise UserError(
            f"mLSTM: v must be (batch, heads, L, d_v) = {tuple(q.shape[:3])} + (d_v,), got {tuple(v.shape)}"
        )
    for name, gate in (("i", i), ("f", f)):
        if gate.shape != q.shape[:3]:
            raise UserError(
                f"mLSTM: gate pre-activation {name} must be (batch, heads, L) = {tuple(q.shape[:3])}, "
                f"got {tuple(gate.shape)}"
            )


def _check_state(state: MLSTMState, q: torch.Tensor, v: torch.Tensor) -> None:
    batch, heads, _, d_qk = q.shape
    d_v = v.shape[-1]
    expected = ((batch, heads, d_qk, d_v), (batch, heads, d_qk), (batch, heads))
    for name, tensor, shape in zip("Cnm", state, expected, strict=True):
        if tuple(tensor.shape) != shape:
            raise UserError(f"mLSTM: initial state {name} must have shape {shape}, got {tuple(tensor.shape)}")


def _prepare(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    i: torch.Tensor,
    f: torch.Tensor,
    input_gate: str,
    forget_gate: str,
    initial_state: MLSTMState | None,
) -> tuple[torch.Tensor, ...]:
    """Validate, cast to the work dtype and take the gates to log space."""
    check_inputs(q, k, v, i, f)
    work = work_dtype(q.dtype)
    if initial_state is None:
        batch, heads, _, d_qk = q.shape
        initial_state = zero_state(batch, heads, d_qk, v.shape[-1], q.device, q.dtype)
    else:
        _check_state(initial_state, q, v)
    state = MLSTMState(*(s.to(work) for s in initial_state))
    log_i = log_input_gate(i.to(work), input_gate)
    log_f = log_forget_gate(f.to(work), forget_gate)
    return q.to(work), k.to(work), v.to(work), log_i, log_f, state


# ---------------------------------------------------------------------------------------------
# The two building blocks of the parallel and chunkwise forms. Leading dimensions (...) are any:
# (B, H) for a whole sequence, (B, H, chunks) for every chunk at once.


def block_outputs(
    q: torch.Tensor,  # (..., T, d_qk), already in the work dtype
    k: torch.Tensor,  # (..., T, d_qk)
    v: torch.Tensor,  # (..., T, d_v)
    log_i: torch.Tensor,  # (..., T)
    log_f: torch.Tensor,  # (..., T)
    state: MLSTMState,  # the state before the block: C (..., d_qk, d_v), n (..., d_qk), m (...)
    eps: float,
) -> torch.Tensor:  # h (..., T, d_v)
    """h for T steps in parallel, given the state before them (the stabilized parallel form)."""
    steps, d_qk = q.shape[-2], q.shape[-1]
    log_f_sum = log_f.cumsum(-1)  # b_t = sum_{r <= t} log f_r
    # log_decay[t, s] = sum_{r = s+1..t} log f_r + log i_s: how much of step s's input reaches step t.
    log_decay = log_f_sum[..., :, None] - log_f_sum[..., None, :] + log_i[..., None, :]
    future = torch.ones(steps, steps, dtype=torch.bool, device=q.device).triu(diagonal=1)
    log_decay = log_decay.masked_fill(future, float("-inf"))
    # The state before the block reaches step t with log weight b_t + m (its stored scale is exp(m)).
    log_decay_state = log_f_sum + state.m[..., None]
    m = torch.maximum(log_decay.amax(dim=-1), log_decay_state)  # m_t, exactly the recurrence's stabilizer
    decay = torch.exp(log_decay - m[..., None])
    decay_state = torch.exp(log_decay_state - m)

    q_scaled = q * (d_qk**-0.5)
    scores = (q_scaled @ k.transpose(-1, -2)) * decay  # (..., T, T)
    numerator = scores @ v + decay_state[..., None] * (q_scaled @ state.C)
    normalizer = scores.sum(dim=-1) + decay_state * (q_scaled @ state.n[..., None]).squeeze(-1)
    denominator = torch.maximum(normalizer.abs(), torch.exp(-m)) + eps
    return numerator / denominator[..., None]


def block_final_state(
    k: torch.Tensor,  # (..., T, d_qk)
    v: torch.Tensor,  # (..., T, d_v)
    log_i: torch.Tensor,  # (..., T)
    log_f: torch.Tensor,  # (..., T)
    state: MLSTMState,  # before the block
) -> MLSTMState:
    """The state after T steps, from the state before them, in one go (no loop over steps)."""
    log_f_sum = log_f.cumsum(-1)
    log_f_total = log_f_sum[..., -1]  # the decay of the whole block
    log_weight = log_f_total[..., None] - log_f_sum + log_i  # how much of step s's input stays at the end
    m = torch.maximum(log_f_total + state.m, log_weight.amax(dim=-1))
    weight = torch.exp(log_weight - m[..., None])
    decay_state = torch.exp(log_f_total + state.m - m)
    k_weighted = k * weight[..., None]
    C = decay_state[..., None, None] * state.C + k_weighted.transpose(-1, -2) @ v
    n = decay_state[..., None] * state.n + k_weighted.sum(dim=-2)
    return MLSTMState(C, n, m)


# ---------------------------------------------------------------------------------------------
# The three forms


def mlstm_parallel(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    i: torch.Tensor,
    f: torch.Tensor,
    *,
    eps: float = DEFAULT_EPS,
    input_gate: str = "exponential",
    forget_gate: str = "sigmoid",
    initial_state: MLSTMState | None = None,
    return_final_state: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, MLSTMState]:
    """The stabilized parallel form: h (B, H, L, d_v), materialising the (L, L) decay matrix."""
    q_w, k_w, v_w, log_i, log_f, state = _prepare(q, k, v, i, f, input_gate, forget_gate, initial_state)
    h = block_outputs(q_w, k_w, v_w, log_i, log_f, state, eps).to(q.dtype)
    if return_final_state:
        return h, block_final_state(k_w, v_w, log_i, log_f, state)
    return h


def mlstm_chunkwise(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    i: torch.Tensor,
    f: torch.Tensor,
    *,
    chunk_size: int = 64,
    eps: float = DEFAULT_EPS,
    input_gate: str = "exponential",
    forget_gate: str = "sigmoid",
    initial_state: MLSTMState | None = None,
    return_final_state: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, MLSTMState]:
    """The chunkwise form (TFLA's two phases): first the recurrence over chunk states, then every chunk's
    outputs in parallel from the state before it. Memory grows as L·chunk_size, not L²."""
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise UserError(f"mLSTM: chunk_size must be a positive integer, got {chunk_size!r}")
    q_w, k_w, v_w, log_i, log_f, state = _prepare(q, k, v, i, f, input_gate, forget_gate, initial_state)
    batch, heads, seq_len, _ = q.shape
    d_v = v.shape[-1]
    chunks = -(-seq_len // chunk_size)
    pad = chunks * chunk_size - seq_len
    if pad:
        # Padded steps take no input (log i = -inf, k = v = 0) and forget nothing (log f = 0): the state
        # passes through them unchanged, exactly.
        q_w, k_w, v_w = (F.pad(t, (0, 0, 0, pad)) for t in (q_w, k_w, v_w))
        log_i = F.pad(log_i, (0, pad), value=float("-inf"))
        log_f = F.pad(log_f, (0, pad), value=0.0)

    def chunked(t: torch.Tensor) -> torch.Tensor:  # (B, H, chunks·c, ...) -> (B, H, chunks, c, ...)
        return t.reshape(batch, heads, chunks, chunk_size, *t.shape[3:])

    q_c, k_c, v_c, log_i_c, log_f_c = (chunked(t) for t in (q_w, k_w, v_w, log_i, log_f))

    # Phase 1, sequential over chunks: the state before every chunk.
    states_before = []
    for chunk in range(chunks):
        states_before.append(state)
        state = block_final_state(k_c[:, :, chunk], v_c[:, :, chunk], log_i_c[:, :, chunk], log_f_c[:, :, chunk], state)
    before = MLSTMState(*(torch.stack(parts, dim=2) for parts in zip(*states_before, strict=True)))

    # Phase 2, parallel over chunks: the outputs inside every chunk.
    h = block_outputs(q_c, k_c, v_c, log_i_c, log_f_c, before, eps)
    h = h.reshape(batch, heads, chunks * chunk_size, d_v)[:, :, :seq_len].to(q.dtype)
    return (h, state) if return_final_state else h


def mlstm_recurrent_step(
    q: torch.Tensor,  # (B, H, d_qk)
    k: torch.Tensor,  # (B, H, d_qk)
    v: torch.Tensor,  # (B, H, d_v)
    i: torch.Tensor,  # (B, H)
    f: torch.Tensor,  # (B, H)
    state: MLSTMState,
    *,
    eps: float = DEFAULT_EPS,
    input_gate: str = "exponential",
    forget_gate: str = "sigmoid",
) -> tuple[torch.Tensor, MLSTMState]:
    """One step of the recurrence in the module docstring: (h_t (B, H, d_v), new state)."""
    if q.dim() != 3 or k.shape != q.shape or v.shape[:2] != q.shape[:2] or i.shape != q.shape[:2]:
        raise UserError(
            "mLSTM step: q, k must be (batch, heads, d_qk), v (batch, heads, d_v), i and f (batch, heads); got "
            f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}, i {tuple(i.shape)}"
        )
    if f.shape != i.shape:
        raise UserError(f"mLSTM step: f must have the shape of i {tuple(i.shape)}, got {tuple(f.shape)}")
    work = work_dtype(q.dtype)
    C, n, m_prev = (s.to(work) for s in state)
    q_w, k_w, v_w = q.to(work), k.to(work), v.to(work)
    log_i = log_input_gate(i.to(work), input_gate)
    log_f = log_forget_gate(f.to(work), forget_gate)

    m = torch.maximum(log_f + m_prev, log_i)
    forget = torch.exp(log_f + m_prev - m)
    write = torch.exp(log_i - m)
    C = forget[..., None, None] * C + write[..., None, None] * (k_w[..., :, None] * v_w[..., None, :])
    n = forget[..., None] * n + write[..., None] * k_w

    q_scaled = q_w * (q.shape[-1] ** -0.5)
    numerator = (q_scaled[..., None, :] @ C).squeeze(-2)  # (B, H, d_v)
    normalizer = (q_scaled * n).sum(dim=-1)
    denominator = torch.maximum(normalizer.abs(), torch.exp(-m)) + eps
    h = numerator / denominator[..., None]
    return h.to(q.dtype), MLSTMState(C, n, m)


def mlstm_recurrent(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    i: torch.Tensor,
    f: torch.Tensor,
    *,
    eps: float = DEFAULT_EPS,
    input_gate: str = "exponential",
    forget_gate: str = "sigmoid",
    initial_state: MLSTMState | None = None,
    return_final_state: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, MLSTMState]:
    """The recurrent form over a sequence: a loop of `mlstm_recurrent_step`."""
    check_inputs(q, k, v, i, f)
    batch, heads, seq_len, d_qk = q.shape
    state = zero_state(batch, heads, d_qk, v.shape[-1], q.device, q.dtype) if initial_state is None else initial_state
    outputs = []
    for t in range(seq_len):
        h_t, state = mlstm_recurrent_step(
            q[:, :, t],
            k[:, :, t],
            v[:, :, t],
            i[:, :, t],
            f[:, :, t],
            state,
            eps=eps,
            input_gate=input_gate,
            forget_gate=forget_gate,
        )
        outputs.append(h_t)
    h = torch.stack(outputs, dim=2)
    return (h, state) if return_final_state else h


# ---------------------------------------------------------------------------------------------
# Cost of the cell (per batch element and head), for the analytic models of specs.py


def mlstm_chunkwise_flops(seq_len: int, d_qk: int, d_v: int, chunk_size: int) -> float:
    """Forward FLOPs of the chunkwise form for one sequence and one head (TFLA's count, matmuls only):
    per chunk of c steps, the state update kᵀv (2·c·d_qk·d_v) and the outputs: q kᵀ (2·c²·d_qk),
    scores·v (2·c²·d_v), q·C (2·c·d_qk·d_v), plus the normalizer (2·c·d_qk + 2·c²). The causal half of the
    intra-chunk matrices is computed too, as the kernels do."""
    c = min(chunk_size, seq_len)
    chunks = math.ceil(seq_len / c)
    per_chunk = 2 * c * d_qk * d_v + 2 * c * c * (d_qk + d_v) + 2 * c * d_qk * d_v + 2 * c * d_qk + 2 * c * c
    return float(chunks * per_chunk)


def mlstm_step_flops(d_qk: int, d_v: int) -> float:
    """One recurrent step, one head: C update (3·d_qk·d_v), n update (3·d_qk), q·C (2·d_qk·d_v), q·n."""
    return float(5 * d_qk * d_v + 5 * d_qk)


def mlstm_state_elements(d_qk: int, d_v: int) -> int:
    """C (d_qk × d_v) + n (d_qk) + m (1) per head: constant in the sequence length."""
    return d_qk * d_v + d_qk + 1
