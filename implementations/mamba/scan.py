"""The selective scan (S6) of Mamba, in pure PyTorch, with the shapes and semantics of mamba_ssm's
`selective_scan_fn` for real-valued A. Read next to "Mamba: Linear-Time Sequence Modeling with
Selective State Spaces" (Gu & Dao, 2023), Algorithm 2 and Section 3.5.

For every batch element, channel d and state index n (h_{-1} = 0):

    Δ_t     = softplus(delta_t + delta_bias)      (softplus and bias only when asked for)
    h_t[n]  = exp(Δ_t A[d, n]) h_{t-1}[n] + Δ_t B_t[n] u_t        ZOH on A, Euler on B
    y_t     = Σ_n C_t[n] h_t[n] + D u_t
    out_t   = y_t · silu(z_t)                                       (only when z is given)

Shapes (mamba_ssm's layout: channels before time):
    u, delta, z   (batch, d, L)
    A             (d, n), real (the Mamba block uses A = -exp(A_log) < 0)
    B, C          (batch, n, L), or (batch, groups, n, L) where channel d reads group d // (d / groups)
    D, delta_bias (d,)
    out           (batch, d, L) in u's dtype; last_state (batch, d, n) in the compute dtype

Two forms compute this:
  `selective_scan_sequential`  the definition: a loop of `selective_scan_step` over t;
  `selective_scan_parallel`    a chunked parallel scan: inside a chunk, a Hillis-Steele scan of the
                               associative operator (a1, b1) ∘ (a2, b2) = (a1 a2, a2 b1 + b2) over
                               the pairs (exp(Δ_t A), Δ_t B_t u_t); the state is carried between chunks.
They agree to rounding in float64 (tests/test_mamba.py). Everything runs in float32, or in float64
when u is float64; like the CUDA kernel, the state never drops to bf16/fp16.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness.errors import ConfigError

FORMS = ("parallel", "sequential")
PARALLEL_CHUNK_LEN = 64  # bounds the parallel form's memory to batch·d·n·64 states


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; everything else runs in float32 (as mamba_ssm's kernels do)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _shape_error(name: str, expected: str, got: torch.Tensor) -> ConfigError:
    return ConfigError(name, f"expected shape {expected}, got {tuple(got.shape)}")


def validate_selective_scan_inputs(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None,
    z: torch.Tensor | None,
    delta_bias: torch.Tensor | None,
) -> int:
    """One-line errors for inputs mamba_ssm would reject (or silently misread). Returns the group count."""
    if u.dim() != 3:
        raise _shape_error("u", "(batch, d, L)", u)
    batch, d, seq_len = u.shape
    if delta.shape != u.shape:
        raise _shape_error("delta", f"(batch, d, L) = {tuple(u.shape)} like u", delta)
    if A.is_complex():
        raise ConfigError("A", "complex A is not supported by this reference (real-valued A only)")
    if A.dim() != 2 or A.shape[0] != d:
        raise _shape_error("A", f"(d, n) with d = {d}", A)
    n = A.shape[1]
    group_counts = []
    for name, tensor in (("B", B), ("C", C)):
        if tensor.dim() == 3 and tensor.shape == (batch, n, seq_len):
            group_counts.append(1)
        elif tensor.dim() == 4 and (tensor.shape[0], tensor.shape[2], tensor.shape[3]) == (batch, n, seq_len):
            if d % tensor.shape[1]:
                raise ConfigError(name, f"{tensor.shape[1]} groups do not divide d = {d} channels")
            group_counts.append(tensor.shape[1])
        else:
            raise _shape_error(name, f"(batch, n, L) = {(batch, n, seq_len)} or (batch, groups, n, L)", tensor)
    if group_counts[0] != group_counts[1]:
        raise ConfigError("C", f"B has {group_counts[0]} group(s) but C has {group_counts[1]}; they must match")
    for name, vector in (("D", D), ("delta_bias", delta_bias)):
        if vector is not None and vector.shape != (d,):
            raise _shape_error(name, f"(d,) = ({d},)", vector)
    if z is not None and z.shape != u.shape:
        raise _shape_error("z", f"(batch, d, L) = {tuple(u.shape)} like u", z)
    return group_counts[0]


def _grouped(B: torch.Tensor) -> torch.Tensor:
    """(batch, n, L) -> (batch, 1, n, L): one group shared by every channel."""
    return B[:, None] if B.dim() == 3 else B


def discretize_delta(
    delta: torch.Tensor, delta_bias: torch.Tensor | None, delta_softplus: bool, dtype: torch.dtype
) -> torch.Tensor:
    """Δ = softplus(delta + delta_bias), in the compute dtype (bias and softplus only when asked for)."""
    delta = delta.to(dtype)
    if delta_bias is not None:
        delta = delta + delta_bias.to(dtype)[:, None]
    return F.softplus(delta) if delta_softplus else delta


def selective_scan_step(
    h: torch.Tensor,
    u_t: torch.Tensor,
    delta_t: torch.Tensor,
    A: torch.Tensor,
    B_t: torch.Tensor,
    C_t: torch.Tensor,
    D: torch.Tensor | None = None,
    z_t: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One token of the recurrence, Δ already discretized. All in the compute dtype.

    h (batch, d, n); u_t, delta_t, z_t (batch, d); A (d, n); B_t, C_t (batch, groups, n); D (d,).
    Returns (out_t (batch, d), h_t)."""
    d = u_t.shape[1]
    groups = B_t.shape[1]
    B_channel = B_t.repeat_interleave(d // groups, dim=1)  # (batch, d, n): channel d reads its group
    C_channel = C_t.repeat_interleave(d // groups, dim=1)
    h = torch.exp(delta_t[..., None] * A) * h + (delta_t * u_t)[..., None] * B_channel
    y = (h * C_channel).sum(-1)
    if D is not None:
        y = y + D * u_t
    if z_t is not None:
        y = y * F.silu(z_t)
    return y, h


def _check_form(form: str) -> None:
    if form not in FORMS:
        raise ConfigError("form", f"unknown selective-scan form {form!r}; use one of {', '.join(FORMS)}")


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    form: str = "parallel",
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """mamba_ssm's `selective_scan_fn` in PyTorch (see the module docstring). `form` picks the
    algorithm: "parallel" (chunked associative scan, the default) or "sequential" (the loop)."""
    _check_form(form)
    validate_selective_scan_inputs(u, delta, A, B, C, D, z, delta_bias)
    dtype = compute_dtype(u.dtype)
    delta = discretize_delta(delta, delta_bias, delta_softplus, dtype)
    A, B, C = A.to(dtype), _grouped(B).to(dtype), _grouped(C).to(dtype)
    u_work = u.to(dtype)
    D_work = D.to(dtype) if D is not None else None
    z_work = z.to(dtype) if z is not None else None
    scan = _scan_sequential if form == "sequential" else _scan_parallel
    y, last_state = scan(u_work, delta, A, B, C)
    if D_work is not None:
        y = y + D_work[:, None] * u_work
    if z_work is not None:
        y = y * F.silu(z_work)
    out = y.to(u.dtype)
    # The parallel form's last state is a view into every chunk's states: copy it, so a caller that
    # keeps the state (decoding) does not keep them all alive.
    return (out, last_state.clone()) if return_last_state else out


def selective_scan_sequential(*args, **kwargs) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The definition: one `selective_scan_step` per token."""
    return selective_scan(*args, **kwargs, form="sequential")


def selective_scan_parallel(*args, **kwargs) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Chunked associative scan (see the module docstring)."""
    return selective_scan(*args, **kwargs, form="parallel")


def _scan_sequential(
    u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """y without D and gate: (batch, d, L), and h_{L-1} (batch, d, n). B, C: (batch, groups, n, L)."""
    batch, d, seq_len = u.shape
    h = u.new_zeros(batch, d, A.shape[1])
    ys = []
    for t in range(seq_len):
        y_t, h = selective_scan_step(h, u[..., t], delta[..., t], A, B[..., t], C[..., t])
        ys.append(y_t)
    return torch.stack(ys, dim=-1), h


def linear_recurrence_scan(a: torch.Tensor, b: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All prefixes of h_t = a_t h_{t-1} + b_t (h_{-1} = 0) along `dim`, in log2(T) parallel rounds.

    Hillis-Steele inclusive scan with the associative operator
        (a_s, b_s) ∘ (a_t, b_t) = (a_s a_t, a_t b_s + b_t)     (s before t).
    After round k every position holds the composition of the last 2^k steps ending there.
    Returns (prod_{s<=t} a_s, h_t): the first lets a caller add the effect of an initial state."""
    a, b = a.movedim(dim, -1), b.movedim(dim, -1)
    length = a.shape[-1]
    offset = 1
    while offset < length:
        # combine position t with position t - offset (both hold blocks of `offset` steps)
        b = torch.cat([b[..., :offset], a[..., offset:] * b[..., :-offset] + b[..., offset:]], dim=-1)
        a = torch.cat([a[..., :offset], a[..., offset:] * a[..., :-offset]], dim=-1)
        offset *= 2
    return a.movedim(-1, dim), b.movedim(-1, dim)


def _scan_parallel(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    chunk_len: int = PARALLEL_CHUNK_LEN,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same as `_scan_sequential`, by a parallel scan inside chunks of `chunk_len` tokens."""
    batch, d, seq_len = u.shape
    groups, n = B.shape[1], A.shape[1]
    per_group = d // groups
    A_grouped = A.view(groups, per_group, n)
    h = u.new_zeros(batch, groups, per_group, n)
    ys = []
    for start in range(0, seq_len, chunk_len):
        stop = min(start + chunk_len, seq_len)
        delta_c = delta[..., start:stop].reshape(batch, groups, per_group, 1, -1)  # (b, g, c, 1, T)
        u_c = u[..., start:stop].reshape(batch, groups, per_group, 1, -1)
        B_c, C_c = B[:, :, None, :, start:stop], C[:, :, None, :, start:stop]  # (b, g, 1, n, T)
        decay = torch.exp(delta_c * A_grouped[None, ..., None])  # (b, g, c, n, T)
        inputs = delta_c * u_c * B_c  # (b, g, c, n, T)
        decay_prefix, states = linear_recurrence_scan(decay, inputs, dim=-1)
        states = states + decay_prefix * h[..., None]  # the state entering the chunk, decayed
        ys.append((states * C_c).sum(dim=-2).reshape(batch, d, -1))
        h = states[..., -1]
    y = torch.cat(ys, dim=-1) if ys else u.new_zeros(batch, d, 0)
    return y, h.reshape(batch, d, n)
