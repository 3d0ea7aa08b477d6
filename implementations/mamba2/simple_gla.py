"""SSD computed by a simple-GLA kernel (fla's `chunk_simple_gla`): the exact mapping between the two.

Simple GLA (gated linear attention with one scalar gate per head and token), per head, with state
S_t of shape (K × V):

    S_t = exp(g_t) S_{t-1} + k_t^T v_t,          o_t = scale · q_t S_t

SSD (implementations/mamba2/ssd.py), per head, with state h_t of shape (headdim × d_state):

    h_t = exp(dt_t A) h_{t-1} + (dt_t x_t) B_t^T,   y_t = h_t C_t + D x_t

Transposing the SSD state, S = h^T (d_state × headdim), turns one into the other with

    q = C_t (its group's, repeated per head)   K = d_state
    k = B_t (likewise)
    v = dt_t · x_t                              V = headdim
    g = dt_t · A                                (log of the decay; kept in float32)
    scale = 1                                   (fla's default is K^-1/2: it must be passed)
    initial_state = initial_states^T, final_state^T = final state   (fla: (batch, heads, K, V))

and the D skip (D x_t, with x not scaled by dt) and the gate silu(z) applied outside, since simple
GLA has neither. On an H100 (bf16) fla's chunk_simple_gla with this mapping agrees with mamba_ssm's
mamba_chunk_scan_combined to ~4e-3. fla chooses its own chunk length (64); `chunk_size` is ignored.

`simple_gla_recurrent` below is a readable simple-GLA reference, so the mapping is tested on the CPU
(tests/test_mamba2.py) without fla.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from implementations.mamba2.ssd import compute_dtype, discretize_dt, heads_of_groups, validate_ssd_inputs

SimpleGla = Callable[..., tuple[torch.Tensor, torch.Tensor | None]]


def simple_gla_recurrent(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """fla's simple GLA by its definition (same argument names and layout as `chunk_simple_gla`):
    q, k (batch, T, heads, K); v (batch, T, heads, V); g (batch, T, heads); state (batch, heads, K, V)."""
    work = compute_dtype(q.dtype)
    batch, length, heads, key_dim = q.shape
    scale = key_dim**-0.5 if scale is None else scale
    state = (
        initial_state.to(work)
        if initial_state is not None
        else q.new_zeros(batch, heads, key_dim, v.shape[-1], dtype=work)
    )
    outputs = []
    for t in range(length):
        q_t, k_t, v_t = q[:, t].to(work), k[:, t].to(work), v[:, t].to(work)
        state = torch.exp(g[:, t].to(work))[..., None, None] * state + k_t[..., :, None] * v_t[..., None, :]
        outputs.append(scale * torch.einsum("bhk,bhkv->bhv", q_t, state))
    return torch.stack(outputs, dim=1).to(q.dtype), (state if output_final_state else None)


def ssd_to_simple_gla_inputs(
    x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(q, k, v, g) from SSD inputs, dt already discretized (compute dtype). q, k, v in x's dtype."""
    heads = x.shape[2]
    q = heads_of_groups(C, heads).to(x.dtype)
    k = heads_of_groups(B, heads).to(x.dtype)
    v = (dt[..., None] * x.to(dt.dtype)).to(x.dtype)
    g = dt * A.to(dt.dtype)
    return q, k, v, g


def ssd_via_simple_gla(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    chunk_size: int,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    dt_bias: torch.Tensor | None = None,
    initial_states: torch.Tensor | None = None,
    dt_softplus: bool = False,
    return_final_states: bool = False,
    simple_gla: SimpleGla = simple_gla_recurrent,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """`ssd` (same arguments) computed by `simple_gla` through the mapping in the module docstring."""
    validate_ssd_inputs(x, dt, A, B, C, chunk_size, D, z, dt_bias, initial_states)
    work = compute_dtype(x.dtype)
    dt = discretize_dt(dt, dt_bias, dt_softplus, work)
    q, k, v, g = ssd_to_simple_gla_inputs(x, dt, A, B, C)
    initial_state = initial_states.transpose(-1, -2).contiguous() if initial_states is not None else None
    o, final_state = simple_gla(
        q, k, v, g, scale=1.0, initial_state=initial_state, output_final_state=return_final_states
    )
    y = o.to(work)
    if D is not None:
        y = y + (D.to(work)[:, None] if D.dim() == 1 else D.to(work)) * x.to(work)
    if z is not None:
        y = y * F.silu(z.to(work))
    out = y.to(x.dtype)
    if not return_final_states:
        return out
    assert final_state is not None
    return out, final_state.transpose(-1, -2).to(work)
