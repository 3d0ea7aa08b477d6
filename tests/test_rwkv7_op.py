"""The RWKV-7 op against independent truths: a dense closed form built from explicit transition matrices
(in the paper's orientation), the gated-linear-attention closed form when the rank-one term is off,
the delta rule's "replace the value stored at a key" property, and recurrent == chunked in float64."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from harness.errors import UserError
from implementations.rwkv import rwkv7, rwkv7_chunked, rwkv7_recurrent

F64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These tensors are tiny: one intra-op thread is fastest, and avoids stalls on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_inputs(
    batch: int, seq_len: int, heads: int, head_dim_k: int, head_dim_v: int, seed: int = 0, dtype: torch.dtype = F64
) -> tuple[torch.Tensor, ...]:
    """Inputs shaped like the RWKV-7 block's: log decay in (-e^-0.5·2, 0), a = -κ̂, b = κ̂ ⊙ ICLR."""
    generator = torch.Generator().manual_seed(seed)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, dtype=F64)

    shape = (batch, seq_len, heads, head_dim_k)
    r, k = randn(*shape), randn(*shape)
    v = randn(batch, seq_len, heads, head_dim_v)
    w = -1.2 * torch.sigmoid(randn(*shape))
    removal_key = F.normalize(randn(*shape), dim=-1)
    iclr = torch.sigmoid(randn(*shape))
    a, b = -removal_key, removal_key * iclr
    return tuple(t.to(dtype) for t in (r, w, k, v, a, b))


def dense_closed_form(
    r: torch.Tensor,
    w: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    scale: float,
    initial_state: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's orientation, state S' (head_dim_v × head_dim_k), transitions built as matrices:
    S'_t = S'_0 P_1 ⋯ P_t + Σ_s v_s k_sᵀ P_{s+1} ⋯ P_t with P_t = diag(exp(w_t)) + a_t b_tᵀ; o_t = scale·S'_t r_t.
    No running state: every output is a fresh sum of explicit matrix products."""
    batch, seq_len, heads, head_dim_k = r.shape
    o = torch.zeros(batch, seq_len, heads, v.shape[-1], dtype=F64)
    final = torch.zeros(batch, heads, v.shape[-1], head_dim_k, dtype=F64)
    eye = torch.eye(head_dim_k, dtype=F64)
    for n in range(batch):
        for h in range(heads):
            transitions = [torch.diag(w[n, t, h].exp()) + torch.outer(a[n, t, h], b[n, t, h]) for t in range(seq_len)]

            def product(first: int, last: int, transitions: list[torch.Tensor] = transitions) -> torch.Tensor:
                result = eye  # P_first ⋯ P_last, the identity if empty
                for t in range(first, last + 1):
                    result = result @ transitions[t]
                return result

            for t in range(seq_len + 1):
                state = initial_state[n, h].T @ product(0, t - 1)
                for s in range(t):
                    state = state + torch.outer(v[n, s, h], k[n, s, h]) @ product(s + 1, t - 1)
                if t > 0:
                    o[n, t - 1, h] = scale * state @ r[n, t - 1, h]
                if t == seq_len:
                    final[n, h] = state
    return o, final.transpose(-1, -2)  # back to fla's (head_dim_k, head_dim_v) orientation


def test_recurrent_and_chunked_equal_the_dense_closed_form() -> None:
    r, w, k, v, a, b = random_inputs(batch=2, seq_len=6, heads=2, head_dim_k=3, head_dim_v=4, seed=1)
    initial = torch.randn(2, 2, 3, 4, dtype=F64, generator=torch.Generator().manual_seed(2))
    expected_o, expected_state = dense_closed_form(r, w, k, v, a, b, 0.7, initial)
    for form in (rwkv7_recurrent, rwkv7):
        o, state = form(r, w, k, v, a, b, 0.7, initial, True)
        torch.testing.assert_close(o, expected_o, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(state, expected_state, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("chunk_size", [1, 4, 16, 64])
def test_chunked_equals_recurrent_with_initial_and_final_state(chunk_size: int) -> None:
    # 37 tokens: ragged last chunk for every chunk size; head_dim_k != head_dim_v.
    r, w, k, v, a, b = random_inputs(batch=2, seq_len=37, heads=3, head_dim_k=8, head_dim_v=6, seed=3)
    initial = torch.randn(2, 3, 8, 6, dtype=F64, generator=torch.Generator().manual_seed(4))
    o_rec, state_rec = rwkv7_recurrent(r, w, k, v, a, b, 0.5, initial, True)
    o_chunk, state_chunk = rwkv7_chunked(r, w, k, v, a, b, 0.5, initial, True, chunk_size=chunk_size)
    torch.testing.assert_close(o_chunk, o_rec, rtol=1e-11, atol=1e-11)
    torch.testing.assert_close(state_chunk, state_rec, rtol=1e-11, atol=1e-11)


def test_strong_decay_does_not_overflow_the_chunked_form() -> None:
    # w = -30 per token: a 64-token chunk spans e^-1920, far beyond float64's range if Γ were formed
    # directly. The chunked form only ever exponentiates differences <= 0.
    r, w, k, v, a, b = random_inputs(batch=1, seq_len=70, heads=1, head_dim_k=4, head_dim_v=4, seed=5)
    w = torch.full_like(w, -30.0)
    o_rec, _ = rwkv7_recurrent(r, w, k, v, a, b)
    o_chunk, _ = rwkv7_chunked(r, w, k, v, a, b, chunk_size=64)
    assert torch.isfinite(o_chunk).all()
    torch.testing.assert_close(o_chunk, o_rec, rtol=1e-11, atol=1e-11)


def test_without_rank_one_term_it_is_gated_linear_attention() -> None:
    # a = b = 0: o_t = Σ_{s<=t} (r_t ⊙ exp(G_t - G_s))·k_s v_s, with G the cumulative log decay.
    r, w, k, v, _, _ = random_inputs(batch=1, seq_len=9, heads=2, head_dim_k=5, head_dim_v=3, seed=6)
    zero = torch.zeros_like(r)
    log_decay = w.cumsum(dim=1)  # (B, L, H, K)
    scores = torch.einsum("bthk,btshk->bhts", r, (log_decay[:, :, None] - log_decay[:, None]).exp() * k[:, None])
    scores = scores.masked_fill(~torch.ones(9, 9, dtype=torch.bool).tril(), 0.0)
    expected = torch.einsum("bhts,bshv->bthv", scores, v)
    torch.testing.assert_close(rwkv7(r, w, k, v, zero, zero)[0], expected, rtol=1e-12, atol=1e-12)


def test_delta_rule_replaces_the_value_stored_at_a_key() -> None:
    # No decay, a = -κ̂, b = κ̂ (ICLR 1), k = κ̂: S ← (I - κ̂κ̂ᵀ) S + κ̂ vᵀ. Writing v1 then v2 at the same
    # key and reading with r = κ̂ returns v2 exactly, and what was stored at an orthogonal key survives.
    key = torch.tensor([0.6, 0.8, 0.0], dtype=F64)
    other = torch.tensor([0.0, 0.0, 1.0], dtype=F64)
    v1, v2, v_other = (torch.tensor(x, dtype=F64) for x in ([1.0, -2.0], [3.0, 0.5], [7.0, 7.0]))
    keys = torch.stack([other, key, key])
    values = torch.stack([v_other, v1, v2])

    def seq(x: torch.Tensor) -> torch.Tensor:
        return x[None, :, None, :]  # (1, L, 1, d)

    for form in (rwkv7_recurrent, rwkv7):
        _, state = form(
            seq(keys), seq(torch.zeros(3, 3, dtype=F64)), seq(keys), seq(values), seq(-keys), seq(keys),
            output_final_state=True,
        )  # fmt: skip
        torch.testing.assert_close(key @ state[0, 0], v2, rtol=1e-13, atol=1e-13)
        torch.testing.assert_close(other @ state[0, 0], v_other, rtol=1e-13, atol=1e-13)


def test_low_precision_inputs_accumulate_in_float32() -> None:
    r, w, k, v, a, b = random_inputs(batch=1, seq_len=40, heads=2, head_dim_k=8, head_dim_v=8, seed=7)
    expected, _ = rwkv7_recurrent(r, w, k, v, a, b)
    o, state = rwkv7(*(t.to(torch.bfloat16) for t in (r, w, k, v, a, b)), output_final_state=True)
    assert o.dtype == torch.bfloat16 and state is not None and state.dtype == torch.float32
    # bf16 inputs (unit roundoff 3.9e-3) through a stable recurrence: a few units of relative error.
    error = (o.double() - expected).norm() / expected.norm()
    assert error < 2e-2


def test_empty_sequence_returns_the_initial_state() -> None:
    r, w, k, v, a, b = random_inputs(batch=1, seq_len=0, heads=1, head_dim_k=2, head_dim_v=3)
    initial = torch.ones(1, 1, 2, 3, dtype=F64)
    for form in (rwkv7_recurrent, rwkv7):
        o, state = form(r, w, k, v, a, b, 1.0, initial, True)
        assert o.shape == (1, 0, 1, 3)
        torch.testing.assert_close(state, initial)


# ---- bad input: one line each ------------------------------------------------------------------------


def _one_line(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("form", [rwkv7_recurrent, rwkv7])
def test_decay_passed_as_linear_is_rejected(form) -> None:
    r, w, k, v, a, b = random_inputs(batch=1, seq_len=4, heads=1, head_dim_k=2, head_dim_v=2)
    with pytest.raises(UserError) as excinfo:
        form(r, w.exp(), k, v, a, b)  # the decay itself, in (0, 1), not its log
    assert "log decay" in _one_line(excinfo) and "<= 0" in str(excinfo.value)


def test_mismatched_shapes_are_rejected() -> None:
    r, w, k, v, a, b = random_inputs(batch=1, seq_len=4, heads=2, head_dim_k=3, head_dim_v=3)
    with pytest.raises(UserError) as excinfo:
        rwkv7(r, w, k[..., :2], v, a, b)
    assert "k has shape" in _one_line(excinfo)
    with pytest.raises(UserError) as excinfo:
        rwkv7(r, w, k, v[:, :3], a, b)
    assert "v has shape" in _one_line(excinfo)
    with pytest.raises(UserError) as excinfo:
        rwkv7(r[0], w[0], k[0], v[0], a[0], b[0])
    assert "4-D" in _one_line(excinfo)
    with pytest.raises(UserError) as excinfo:
        rwkv7(r, w, k, v, a, b, initial_state=torch.zeros(1, 2, 3, 4, dtype=F64))
    assert "initial_state" in _one_line(excinfo)
    with pytest.raises(UserError) as excinfo:
        rwkv7(r, w, k, v, a, b, chunk_size=0)
    assert "chunk_size" in _one_line(excinfo)
