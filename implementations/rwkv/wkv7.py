"""The RWKV-7 state update ("generalized delta rule"), in pure PyTorch with the semantics of fla's
`chunk_rwkv7` / `fused_recurrent_rwkv7` (fla 0.6.0).

Per batch and head, with the state S_t of shape (head_dim_k, head_dim_v) in fla's orientation:

    S_t = (diag(exp(w_t)) + b_t a_tᵀ) S_{t-1} + k_t v_tᵀ
    o_t = scale · S_tᵀ r_t

which is the paper's S_t = S_{t-1} (diag(exp(w_t)) + a_t b_tᵀ) + v_t k_tᵀ read with S transposed.
`w` is the *log* decay (w <= 0, so the decay exp(w) lies in (0, 1]); the RWKV-7 block passes
a = -κ̂ (the normalised removal key) and b = κ̂ ⊙ ICLR, so the rank-one term removes the old value
stored at κ̂ before v k̃ᵀ writes the new one. Inputs are (batch, seq_len, heads, head_dim), states
(batch, heads, head_dim_k, head_dim_v), as in fla.

Two forms that agree to rounding:

- `rwkv7_recurrent`, the definition: one state update per token.
- `rwkv7_chunked` (exported as `rwkv7`): within a chunk of C tokens every state is the chunk's initial
  state S_0 plus decayed rank-one writes. With Γ_t = ∏_{s<=t} exp(w_s) (per key channel, from the chunk
  start) and the "removed values" u_t = a_tᵀ S_{t-1} (a row of length head_dim_v),

      S_t = diag(Γ_t) S_0 + Σ_{s<=t} diag(Γ_t / Γ_s) (b_s u_s + k_s v_sᵀ)
      u_t = (a_t ⊙ Γ_{t-1})ᵀ S_0 + Σ_{s<t} [a_tᵀ diag(Γ_{t-1}/Γ_s) b_s] u_s + [a_tᵀ diag(Γ_{t-1}/Γ_s) k_s] v_sᵀ

  so the C rows of U solve one unit lower-triangular system (I - A_ab) U = A_S0 + A_ak V: the
  "WY / UT transform" of fla's kernels, here done with an exact triangular solve. Outputs and the
  next chunk's state then follow from U with matrix products. Decay ratios Γ_t/Γ_s are formed as
  exp(log Γ_t - log Γ_s) with s <= t, so every exponent is <= 0: nothing overflows whatever w is.

Both compute in float32 when given bfloat16/float16 (fla's kernels accumulate in float32 too) and
return o in the input dtype and the state in the working dtype (float32, or float64 for float64).
"""

from __future__ import annotations

import torch

from harness.errors import UserError

_SHAPE = "(batch, seq_len, heads, head_dim)"


def working_dtype(*dtypes: torch.dtype) -> torch.dtype:
    """The dtype the recurrence runs in: float64 if any input is float64, else float32."""
    return torch.float64 if torch.float64 in dtypes else torch.float32


def check_rwkv7_inputs(
    r: torch.Tensor,
    w: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    check_decay: bool = True,
) -> None:
    """One-line UserError for inputs the op cannot take. `check_decay` reads w's maximum (a device
    sync on a GPU): the fast adapters skip it, their block builds w <= 0 by construction."""
    named = {"r": r, "w": w, "k": k, "v": v, "a": a, "b": b}
    for name, tensor in named.items():
        if not isinstance(tensor, torch.Tensor):
            raise UserError(f"rwkv7: {name} must be a tensor {_SHAPE}, got {type(tensor).__name__}")
        if tensor.dim() != 4:
            raise UserError(f"rwkv7: {name} must be 4-D {_SHAPE}, got shape {tuple(tensor.shape)}")
        if not tensor.is_floating_point():
            raise UserError(f"rwkv7: {name} must be a floating-point tensor, got {tensor.dtype}")
    for name in ("w", "k", "a", "b"):
        if named[name].shape != r.shape:
            raise UserError(
                f"rwkv7: {name} has shape {tuple(named[name].shape)} but r has {tuple(r.shape)}; "
                f"r, w, k, a, b must all be {_SHAPE}"
            )
    if v.shape[:3] != r.shape[:3]:
        raise UserError(
            f"rwkv7: v has shape {tuple(v.shape)} but r has {tuple(r.shape)}; v must be "
            "(batch, seq_len, heads, head_dim_v) with the batch, seq_len and heads of r"
        )
    batch, _, heads, head_dim_k = r.shape
    expected_state = (batch, heads, head_dim_k, v.shape[-1])
    if initial_state is not None and tuple(initial_state.shape) != expected_state:
        raise UserError(
            f"rwkv7: initial_state has shape {tuple(initial_state.shape)}, expected "
            f"(batch, heads, head_dim_k, head_dim_v) = {expected_state}"
        )
    if check_decay and w.numel() > 0:
        largest = w.max().item()
        if largest > 0.0:
            raise UserError(
                f"rwkv7: w is the log decay and must be <= 0, got max(w) = {largest:.4g}; "
                "pass log(decay) (e.g. -exp(...) or decay.log()), not the decay itself"
            )


def _heads_first(tensors: tuple[torch.Tensor, ...], dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """(B, L, H, d) -> (B, H, L, d) in the working dtype."""
    return tuple(t.transpose(1, 2).to(dtype) for t in tensors)


def rwkv7_recurrent(
    r: torch.Tensor,
    w: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    scale: float = 1.0,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    *,
    validate: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The definition: S_t = diag(exp(w_t)) S_{t-1} + b_t (a_tᵀ S_{t-1}) + k_t v_tᵀ, o_t = scale·S_tᵀ r_t.
    `validate=False` skips the input checks (the block, whose w is <= 0 by construction, uses it
    so that decoding does not wait on a device sync per token)."""
    if validate:
        check_rwkv7_inputs(r, w, k, v, a, b, initial_state)
    work, out_dtype = working_dtype(r.dtype, w.dtype, k.dtype, v.dtype, a.dtype, b.dtype), v.dtype
    batch, seq_len, heads, head_dim_k = r.shape
    head_dim_v = v.shape[-1]
    r, w, k, v, a, b = _heads_first((r, w, k, v, a, b), work)
    if initial_state is None:
        state = torch.zeros(batch, heads, head_dim_k, head_dim_v, dtype=work, device=r.device)
    else:
        state = initial_state.to(work)
    decay = w.exp()
    outputs = []
    for t in range(seq_len):
        removed = torch.einsum("bhk,bhkv->bhv", a[:, :, t], state)  # u_t = a_tᵀ S_{t-1}
        state = (
            decay[:, :, t, :, None] * state
            + b[:, :, t, :, None] * removed[:, :, None, :]
            + k[:, :, t, :, None] * v[:, :, t, None, :]
        )
        outputs.append(scale * torch.einsum("bhk,bhkv->bhv", r[:, :, t], state))
    if outputs:
        o = torch.stack(outputs, dim=1)
    else:
        o = torch.zeros(batch, 0, heads, head_dim_v, dtype=work, device=r.device)
    return o.to(out_dtype), (state if output_final_state else None)


def _decay_ratios(log_decay_to: torch.Tensor, log_decay_from: torch.Tensor, strict: bool) -> torch.Tensor:
    """exp(log_decay_to[t] - log_decay_from[s]) per key channel for s < t (strict) or s <= t, else 0.
    Shapes (..., C, K) -> (..., C, C, K); the exponents kept are all <= 0."""
    chunk = log_decay_to.shape[-2]
    difference = log_decay_to[..., :, None, :] - log_decay_from[..., None, :, :]
    keep = torch.ones(chunk, chunk, dtype=torch.bool, device=difference.device).tril(diagonal=-1 if strict else 0)
    return difference.masked_fill(~keep[:, :, None], float("-inf")).exp()


def rwkv7_chunked(
    r: torch.Tensor,
    w: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    scale: float = 1.0,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    *,
    chunk_size: int = 64,
    validate: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The same recurrence, a chunk of `chunk_size` tokens at a time (see the module docstring).
    Exact: the last chunk may be shorter, and any chunk size gives the recurrent form's result."""
    if validate:
        check_rwkv7_inputs(r, w, k, v, a, b, initial_state)
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise UserError(f"rwkv7: chunk_size must be a positive integer, got {chunk_size!r}")
    work, out_dtype = working_dtype(r.dtype, w.dtype, k.dtype, v.dtype, a.dtype, b.dtype), v.dtype
    batch, seq_len, heads, head_dim_k = r.shape
    head_dim_v = v.shape[-1]
    r, w, k, v, a, b = _heads_first((r, w, k, v, a, b), work)
    if initial_state is None:
        state = torch.zeros(batch, heads, head_dim_k, head_dim_v, dtype=work, device=r.device)
    else:
        state = initial_state.to(work)
    outputs = []
    for start in range(0, seq_len, chunk_size):
        end = min(start + chunk_size, seq_len)
        r_c, w_c, k_c, v_c, a_c, b_c = (t[:, :, start:end] for t in (r, w, k, v, a, b))
        length = end - start
        log_decay = w_c.cumsum(dim=-2)  # log Γ_t, inclusive of t
        log_decay_before = log_decay - w_c  # log Γ_{t-1}

        # Intra-chunk coefficients. "Removal" rows (a_t) see writes strictly before t through Γ_{t-1};
        # readout rows (r_t) see writes up to and including t through Γ_t.
        ratio_strict = _decay_ratios(log_decay_before, log_decay, strict=True)
        ratio_inclusive = _decay_ratios(log_decay, log_decay, strict=False)
        a_to_b = torch.einsum("bhtk,bhtsk,bhsk->bhts", a_c, ratio_strict, b_c)
        a_to_k = torch.einsum("bhtk,bhtsk,bhsk->bhts", a_c, ratio_strict, k_c)
        r_to_b = torch.einsum("bhtk,bhtsk,bhsk->bhts", r_c, ratio_inclusive, b_c)
        r_to_k = torch.einsum("bhtk,bhtsk,bhsk->bhts", r_c, ratio_inclusive, k_c)

        # Removed values U: (I - A_ab) U = (a ⊙ Γ_{t-1}) S_0 + A_ak V, unit lower triangular.
        identity = torch.eye(length, dtype=work, device=r.device)
        right_side = (a_c * log_decay_before.exp()) @ state + a_to_k @ v_c
        removed = torch.linalg.solve_triangular(identity - a_to_b, right_side, upper=False, unitriangular=True)

        o_c = (r_c * log_decay.exp()) @ state + r_to_b @ removed + r_to_k @ v_c
        outputs.append(scale * o_c)

        # State after the chunk: S_0 decayed through the whole chunk plus every write decayed to its end.
        to_end = (log_decay[:, :, -1:, :] - log_decay).exp()  # Γ_C / Γ_s, exponents <= 0
        state = (
            log_decay[:, :, -1, :, None].exp() * state
            + (b_c * to_end).transpose(-1, -2) @ removed
            + (k_c * to_end).transpose(-1, -2) @ v_c
        )
    if outputs:
        o = torch.cat(outputs, dim=2).transpose(1, 2)
    else:
        o = torch.zeros(batch, 0, heads, head_dim_v, dtype=work, device=r.device)
    return o.to(out_dtype), (state if output_final_state else None)


def rwkv7(
    r: torch.Tensor,
    w: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    scale: float = 1.0,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    *,
    chunk_size: int = 64,
    validate: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """RWKV-7 with fla's `chunk_rwkv7` signature and semantics: returns (o, final_state or None).
    o has v's dtype and shape (batch, seq_len, heads, head_dim_v); the state is float32 (float64 for
    float64 inputs), shape (batch, heads, head_dim_k, head_dim_v). This is the chunked form."""
    return rwkv7_chunked(
        r, w, k, v, a, b, scale, initial_state, output_final_state, chunk_size=chunk_size, validate=validate
    )
