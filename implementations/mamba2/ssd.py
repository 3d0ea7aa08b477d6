"""SSD, the state-space dual layer of Mamba-2, in pure PyTorch, with the shapes and semantics of
mamba_ssm's `mamba_chunk_scan_combined`. Read next to "Transformers are SSMs: Generalized Models and
Efficient Algorithms Through Structured State Space Duality" (Dao & Gu, 2024), Sections 3-6.

Per batch element and head h, reading group g(h) = h // (heads / groups) of B and C, with the
state h_{-1} = initial_states (zero by default), a (headdim × d_state) matrix:

    dt_t   = softplus(dt_t + dt_bias)         (bias and softplus only when asked for; dt_t >= 0)
    h_t    = exp(dt_t A_h) h_{t-1} + dt_t x_t B_t^T          scalar decay per head and token
    y_t    = h_t C_t + D_h x_t
    out_t  = y_t · silu(z_t)                                  (only when z is given)

Shapes: x, z (batch, L, heads, headdim); dt (batch, L, heads); A (heads,); B, C (batch, L, groups, d_state);
D (heads,) or (heads, headdim); dt_bias (heads,); initial_states and final states
(batch, heads, headdim, d_state). `out` has x's dtype; the final state the compute dtype (float32,
or float64 for float64 inputs).

Three forms, equal up to rounding (tests/test_mamba2.py checks it in float64):
  ssd_recurrent  the definition: one `ssd_step` per token (linear time, sequential);
  ssd_quadratic  the dual form: y = (L ∘ C B^T) (dt·x), an attention-like (L × L) matrix whose mask
                 L[t, s] = exp(dt_{s+1} A + ... + dt_t A) for s <= t (0 above) is 1-semiseparable;
  ssd_chunked    the four-step chunked algorithm (Section 6): the quadratic form inside chunks of
                 `chunk_size` tokens, the recurrence across chunks. L need not be a multiple of
                 chunk_size: the tail is padded with dt = 0, which neither decays nor feeds the state.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from harness.errors import ConfigError

FORMS = ("chunked", "quadratic", "recurrent")


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _shape_error(name: str, expected: str, got: torch.Tensor) -> ConfigError:
    return ConfigError(name, f"expected shape {expected}, got {tuple(got.shape)}")


def validate_ssd_inputs(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    chunk_size: int,
    D: torch.Tensor | None,
    z: torch.Tensor | None,
    dt_bias: torch.Tensor | None,
    initial_states: torch.Tensor | None,
) -> None:
    if x.dim() != 4:
        raise _shape_error("x", "(batch, L, heads, headdim)", x)
    batch, seq_len, heads, headdim = x.shape
    if dt.shape != (batch, seq_len, heads):
        raise _shape_error("dt", f"(batch, L, heads) = {(batch, seq_len, heads)}", dt)
    if A.shape != (heads,):
        raise _shape_error("A", f"(heads,) = ({heads},): one scalar per head", A)
    if B.dim() != 4 or B.shape[:2] != (batch, seq_len):
        raise _shape_error("B", f"(batch, L, groups, d_state) with (batch, L) = {(batch, seq_len)}", B)
    groups, d_state = B.shape[2], B.shape[3]
    if heads % groups:
        raise ConfigError("B", f"{groups} groups do not divide {heads} heads")
    if C.shape != B.shape:
        raise _shape_error("C", f"{tuple(B.shape)} like B", C)
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ConfigError("chunk_size", f"must be a positive integer, got {chunk_size!r}")
    if D is not None and D.shape not in ((heads,), (heads, headdim)):
        raise _shape_error("D", f"(heads,) or (heads, headdim) = ({heads},) or {(heads, headdim)}", D)
    if z is not None and z.shape != x.shape:
        raise _shape_error("z", f"{tuple(x.shape)} like x", z)
    if dt_bias is not None and dt_bias.shape != (heads,):
        raise _shape_error("dt_bias", f"(heads,) = ({heads},)", dt_bias)
    if initial_states is not None and initial_states.shape != (batch, heads, headdim, d_state):
        expected = f"(batch, heads, headdim, d_state) = {(batch, heads, headdim, d_state)}"
        raise _shape_error("initial_states", expected, initial_states)


def discretize_dt(
    dt: torch.Tensor, dt_bias: torch.Tensor | None, dt_softplus: bool, dtype: torch.dtype
) -> torch.Tensor:
    """dt + dt_bias, through softplus when asked; rejects negative or NaN step sizes (one line)."""
    dt = dt.to(dtype)
    if dt_bias is not None:
        dt = dt + dt_bias.to(dtype)
    if dt_softplus:
        return F.softplus(dt)
    smallest = dt.min().item() if dt.numel() else 0.0
    if not smallest >= 0:  # also catches NaN
        raise ConfigError(
            "dt",
            f"step sizes must be >= 0 (exp(dt·A) would grow the state), got min {smallest:.3g}; "
            "pass raw projections with dt_softplus=True",
        )
    return dt


def heads_of_groups(BC: torch.Tensor, heads: int) -> torch.Tensor:
    """(..., groups, n) -> (..., heads, n): head h reads group h // (heads / groups)."""
    return BC.repeat_interleave(heads // BC.shape[-2], dim=-2)


def ssd_step(
    h: torch.Tensor,
    x_t: torch.Tensor,
    dt_t: torch.Tensor,
    A: torch.Tensor,
    B_t: torch.Tensor,
    C_t: torch.Tensor,
    D: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One token of the recurrence, dt already discretized, all in the compute dtype.
    h (batch, heads, headdim, n); x_t (batch, heads, headdim); dt_t (batch, heads); B_t, C_t (batch, groups, n).
    Returns (y_t (batch, heads, headdim), h_t)."""
    heads = x_t.shape[1]
    B_t, C_t = heads_of_groups(B_t, heads), heads_of_groups(C_t, heads)
    decay = torch.exp(dt_t * A)[..., None, None]
    h = decay * h + (dt_t[..., None] * x_t)[..., None] * B_t[:, :, None, :]
    y = (h * C_t[:, :, None, :]).sum(-1)
    if D is not None:
        y = y + (D[:, None] if D.dim() == 1 else D) * x_t
    return y, h


def segment_sum(a: torch.Tensor) -> torch.Tensor:
    """S[..., t, s] = a_{s+1} + ... + a_t for s <= t (0 on the diagonal), -inf above it.

    exp(S) is the 1-semiseparable decay mask. Each entry is summed directly rather than as a difference
    of two prefix sums, which would cancel catastrophically once the prefix sums grow large."""
    length = a.shape[-1]
    terms = a[..., :, None].expand(*a.shape, length)  # terms[..., r, s] = a_r
    ones = torch.ones(length, length, dtype=torch.bool, device=a.device)
    sums = terms.masked_fill(~ones.tril(-1), 0).cumsum(dim=-2)  # Σ_{s < r <= t} a_r
    return sums.masked_fill(~ones.tril(), float("-inf"))


def _check_form(form: str) -> None:
    if form not in FORMS:
        raise ConfigError("form", f"unknown SSD form {form!r}; use one of {', '.join(FORMS)}")


def ssd(
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
    form: str = "chunked",
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """mamba_ssm's `mamba_chunk_scan_combined` in PyTorch (see the module docstring). `form` picks the
    algorithm: "chunked" (default), "quadratic" or "recurrent"; chunk_size matters to "chunked" only."""
    _check_form(form)
    validate_ssd_inputs(x, dt, A, B, C, chunk_size, D, z, dt_bias, initial_states)
    work = compute_dtype(x.dtype)
    dt = discretize_dt(dt, dt_bias, dt_softplus, work)
    heads = x.shape[2]
    x_work, A_work = x.to(work), A.to(work)
    B_heads, C_heads = heads_of_groups(B.to(work), heads), heads_of_groups(C.to(work), heads)
    h0 = initial_states.to(work) if initial_states is not None else None
    if form == "recurrent":
        y, final = _ssd_recurrent(x_work, dt, A_work, B_heads, C_heads, h0)
    elif form == "quadratic":
        y, final = _ssd_quadratic(x_work, dt, A_work, B_heads, C_heads, h0)
    else:
        y, final = _ssd_chunked(x_work, dt, A_work, B_heads, C_heads, h0, chunk_size)
    if D is not None:
        y = y + (D.to(work)[:, None] if D.dim() == 1 else D.to(work)) * x_work
    if z is not None:
        y = y * F.silu(z.to(work))
    out = y.to(x.dtype)
    return (out, final) if return_final_states else out


def ssd_recurrent(*args, **kwargs) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    return ssd(*args, **kwargs, form="recurrent")


def ssd_quadratic(*args, **kwargs) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    return ssd(*args, **kwargs, form="quadratic")


def ssd_chunked(*args, **kwargs) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    return ssd(*args, **kwargs, form="chunked")


# The three algorithms. Inputs in the compute dtype, B and C already per head: (batch, L, heads, n).
# They return y without the D skip and the gate, and the final state (batch, heads, headdim, n).


def _zero_state(x: torch.Tensor, n: int) -> torch.Tensor:
    batch, _, heads, headdim = x.shape
    return x.new_zeros(batch, heads, headdim, n)


def _ssd_recurrent(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, h0: Tensor | None) -> tuple[Tensor, Tensor]:
    h = h0 if h0 is not None else _zero_state(x, B.shape[-1])
    ys = []
    for t in range(x.shape[1]):
        # B, C are per head already; ssd_step's group expansion is the identity for them.
        y_t, h = ssd_step(h, x[:, t], dt[:, t], A, B[:, t], C[:, t])
        ys.append(y_t)
    return torch.stack(ys, dim=1), h


def _ssd_quadratic(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, h0: Tensor | None) -> tuple[Tensor, Tensor]:
    dA = (dt * A).transpose(1, 2)  # (batch, heads, L): log-decay of each step
    mask = torch.exp(segment_sum(dA))  # (batch, heads, L, L), the 1-semiseparable mask
    scores = torch.einsum("bthn,bshn->bhts", C, B)  # C_t · B_s, like q · k in attention
    weights = scores * mask * dt.transpose(1, 2)[:, :, None, :]  # dt_s scales the input at s
    y = torch.einsum("bhts,bshp->bthp", weights, x)
    # Log-decay from step s (exclusive) to the end: a suffix sum, summed directly (no cancellation).
    decay_to_end = torch.exp(dA.flip(-1).cumsum(-1).flip(-1) - dA)  # (batch, heads, L)
    final = torch.einsum("bhs,bshp,bshn->bhpn", decay_to_end * dt.transpose(1, 2), x, B)
    if h0 is not None:
        decay_from_start = torch.exp(dA.cumsum(-1))  # through step t, inclusive
        y = y + torch.einsum("bthn,bhpn->bthp", C, h0) * decay_from_start.transpose(1, 2)[..., None]
        final = final + decay_from_start[..., -1, None, None] * h0
    return y, final


def _ssd_chunked(
    x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, h0: Tensor | None, chunk_size: int
) -> tuple[Tensor, Tensor]:
    batch, seq_len, heads, headdim = x.shape
    n = B.shape[-1]
    pad = -seq_len % chunk_size
    if pad:  # dt = 0 on the padding: exp(0·A) = 1 keeps the state, dt·x·B = 0 adds nothing
        x, B, C = (F.pad(t, (0, 0, 0, 0, 0, pad)) for t in (x, B, C))
        dt = F.pad(dt, (0, 0, 0, pad))
    chunks = (seq_len + pad) // chunk_size
    x, B, C = (t.reshape(batch, chunks, chunk_size, heads, -1) for t in (x, B, C))  # (b, c, Q, h, ·)
    dt = dt.reshape(batch, chunks, chunk_size, heads)
    dA = (dt * A).permute(0, 3, 1, 2)  # (b, h, c, Q)
    dA_cumsum = dA.cumsum(-1)  # log-decay from the chunk start through step l

    # 1. Diagonal blocks: the quadratic form inside each chunk.
    mask = torch.exp(segment_sum(dA))  # (b, h, c, Q, Q)
    scores = torch.einsum("bclhn,bcshn->bhcls", C, B)
    y_diag = torch.einsum("bhcls,bhcs,bcshp->bclhp", scores * mask, dt.permute(0, 3, 1, 2), x)

    # 2. Each chunk's own contribution to the state at its end (B terms): sum of dt·x·B^T, decayed.
    decay_to_chunk_end = torch.exp(dA.flip(-1).cumsum(-1).flip(-1) - dA)  # (b, h, c, Q)
    chunk_states = torch.einsum("bhcs,bcsh,bcshp,bcshn->bchpn", decay_to_chunk_end, dt, x, B)

    # 3. Across chunks, the recurrence on chunk-boundary states (chunks in sequence).
    chunk_decay = torch.exp(dA.sum(-1))  # (b, h, c): decay over a whole chunk
    state = h0 if h0 is not None else x.new_zeros(batch, heads, headdim, n)
    entering = []
    for c in range(chunks):
        entering.append(state)
        state = chunk_decay[:, :, c, None, None] * state + chunk_states[:, c]
    states_in = torch.stack(entering, dim=1)  # (b, c, h, p, n): the state entering each chunk

    # 4. The entering state read out at every position of its chunk (C terms), decayed to it.
    y_off = torch.einsum("bclhn,bchpn,bhcl->bclhp", C, states_in, torch.exp(dA_cumsum))

    y = (y_diag + y_off).reshape(batch, chunks * chunk_size, heads, headdim)[:, :seq_len]
    return y, state
