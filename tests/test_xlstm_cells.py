"""The mLSTM and sLSTM cells against independent truths: the unstabilized definitions written out in
float64, a hand-computed sLSTM case, each other (parallel == chunkwise == recurrent), and mlstm_kernels'
native PyTorch kernels (an independent implementation of the same semantics)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from harness.errors import UserError
from implementations.xlstm import (
    MLSTMState,
    mlstm_chunkwise,
    mlstm_parallel,
    mlstm_recurrent,
    mlstm_recurrent_step,
    slstm_recurrent,
    slstm_step,
)
from implementations.xlstm.slstm import slstm_zero_state

F64 = torch.float64
GATE_KINDS = [("exponential", "sigmoid"), ("sigmoid", "sigmoid"), ("exponential", "exponential")]


def _inputs(batch=2, heads=3, seq_len=13, d_qk=8, d_v=6, dtype=F64, seed=0):
    generator = torch.Generator().manual_seed(seed)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, dtype=F64).to(dtype)

    q, k = randn(batch, heads, seq_len, d_qk), randn(batch, heads, seq_len, d_qk)
    v = randn(batch, heads, seq_len, d_v)
    i = 2.0 * randn(batch, heads, seq_len)  # input gates spread over e^-4 .. e^4
    f = randn(batch, heads, seq_len) + 2.0
    return q, k, v, i, f


def _unstabilized_mlstm(q, k, v, i, f, input_gate="exponential", forget_gate="sigmoid", state=None):
    """The definition, written out: h_t = Σ_s w_ts (q̂_t·k_s) v_s / max(|Σ_s w_ts q̂_t·k_s|, 1), with the
    true weights w_ts = Π_{r=s+1..t} f_r · i_s (no stabilizer, no eps), plus the decayed initial state."""
    log_i = i if input_gate == "exponential" else F.logsigmoid(i)
    log_f = F.logsigmoid(f) if forget_gate == "sigmoid" else f
    seq_len, d_qk = q.shape[-2], q.shape[-1]
    b = log_f.cumsum(-1)
    h = torch.zeros(*q.shape[:-1], v.shape[-1], dtype=F64)
    for t in range(seq_len):
        q_t = q[:, :, t] / math.sqrt(d_qk)
        weights = torch.exp(b[:, :, t, None] - b[:, :, : t + 1] + log_i[:, :, : t + 1])  # (B, H, t+1)
        scores = weights * (k[:, :, : t + 1] @ q_t[..., None])[..., 0]
        numerator = (scores[..., None] * v[:, :, : t + 1]).sum(dim=2)
        normalizer = scores.sum(dim=-1)
        if state is not None:
            scale = torch.exp(b[:, :, t] + state.m)  # the initial state's true memory, decayed to step t
            numerator = numerator + scale[..., None] * (q_t[..., None, :] @ state.C)[..., 0, :]
            normalizer = normalizer + scale * (q_t * state.n).sum(-1)
        h[:, :, t] = numerator / torch.clamp(normalizer.abs(), min=1.0)[..., None]
    return h


def _true_memory(state: MLSTMState) -> tuple[torch.Tensor, torch.Tensor]:
    scale = torch.exp(state.m)
    return state.C * scale[..., None, None], state.n * scale[..., None]


def _random_state(batch=2, heads=3, d_qk=8, d_v=6, seed=5) -> MLSTMState:
    generator = torch.Generator().manual_seed(seed)
    return MLSTMState(
        torch.randn(batch, heads, d_qk, d_v, generator=generator, dtype=F64),
        torch.randn(batch, heads, d_qk, generator=generator, dtype=F64).abs(),
        torch.randn(batch, heads, generator=generator, dtype=F64),
    )


def _assert_rel(actual: torch.Tensor, expected: torch.Tensor, rel: float) -> None:
    error = (actual.double() - expected.double()).abs().max().item()
    scale = expected.double().abs().max().item()
    assert error <= rel * max(scale, 1e-300), f"max error {error:.3g} vs scale {scale:.3g}"


# ---------------------------------------------------------------------------------------------
# mLSTM: the three forms and the definition


@pytest.mark.parametrize(("input_gate", "forget_gate"), GATE_KINDS)
def test_mlstm_forms_equal_the_unstabilized_definition(input_gate: str, forget_gate: str) -> None:
    q, k, v, i, f = _inputs()
    if forget_gate == "exponential":
        f = -F.softplus(f)  # log f_t <= 0: a decaying memory, so the definition stays finite
    gates = {"input_gate": input_gate, "forget_gate": forget_gate, "eps": 0.0}
    expected = _unstabilized_mlstm(q, k, v, i, f, input_gate, forget_gate)
    _assert_rel(mlstm_parallel(q, k, v, i, f, **gates), expected, 1e-12)
    _assert_rel(mlstm_chunkwise(q, k, v, i, f, chunk_size=4, **gates), expected, 1e-12)
    _assert_rel(mlstm_recurrent(q, k, v, i, f, **gates), expected, 1e-12)


@pytest.mark.parametrize("chunk_size", [1, 4, 5, 13, 64])
def test_mlstm_parallel_chunkwise_recurrent_agree_with_initial_and_final_state(chunk_size: int) -> None:
    q, k, v, i, f = _inputs()
    state = _random_state()
    h_par, s_par = mlstm_parallel(q, k, v, i, f, initial_state=state, return_final_state=True)
    h_chunk, s_chunk = mlstm_chunkwise(
        q, k, v, i, f, chunk_size=chunk_size, initial_state=state, return_final_state=True
    )
    h_rec, s_rec = mlstm_recurrent(q, k, v, i, f, initial_state=state, return_final_state=True)
    _assert_rel(h_chunk, h_par, 1e-12)
    _assert_rel(h_rec, h_par, 1e-12)
    # All forms take the same stabilizer (the recurrence's m_t), so even the stored states agree.
    for other in (s_chunk, s_rec):
        for a, b in zip(other, s_par, strict=True):
            _assert_rel(a, b, 1e-12)
    # ... and the initial state is honoured: the definition with that state gives the same h (eps = 0).
    expected = _unstabilized_mlstm(q, k, v, i, f, state=state)
    _assert_rel(mlstm_chunkwise(q, k, v, i, f, chunk_size=chunk_size, initial_state=state, eps=0.0), expected, 1e-12)


def test_mlstm_split_sequence_continues_from_the_final_state() -> None:
    q, k, v, i, f = _inputs(seq_len=20)
    whole = mlstm_chunkwise(q, k, v, i, f, chunk_size=4)
    first, state = mlstm_chunkwise(*(t[:, :, :7] for t in (q, k, v, i, f)), chunk_size=4, return_final_state=True)
    second = mlstm_parallel(*(t[:, :, 7:] for t in (q, k, v, i, f)), initial_state=state)
    _assert_rel(torch.cat([first, second], dim=2), whole, 1e-12)


def test_mlstm_stabilizer_prevents_overflow_in_float32() -> None:
    # Input gate pre-activations of 100..496: exp() overflows float32 (max ~ e^88), the stabilized forms
    # do not, and they match the float64 definition (on the same float32-rounded inputs). Tolerance: log
    # weights near 500 carry a float32 rounding of ulp(500) = 3e-5, i.e. 3e-5 relative per weight, a few
    # of them add up in each output, and the normalizer's signed sum can cancel (measured: 2.2e-4).
    q, k, v, i, f = (t.float().double() for t in _inputs(seq_len=12))
    i = torch.arange(100.0, 500.0, 36.0, dtype=F64).expand_as(i).clone()
    assert not torch.isfinite(torch.exp(i.float())).all()
    expected = _unstabilized_mlstm(q, k, v, i, f)
    args = [t.float() for t in (q, k, v, i, f)]
    for h in (mlstm_parallel(*args), mlstm_chunkwise(*args, chunk_size=5), mlstm_recurrent(*args)):
        assert h.dtype == torch.float32 and torch.isfinite(h).all()
        _assert_rel(h, expected, 1e-3)


def test_mlstm_low_precision_inputs_return_their_dtype() -> None:
    q, k, v, i, f = _inputs(dtype=torch.bfloat16)
    h, state = mlstm_chunkwise(q, k, v, i, f, chunk_size=4, return_final_state=True)
    assert h.dtype == torch.bfloat16 and state.C.dtype == torch.float32  # states kept in float32


# ---------------------------------------------------------------------------------------------
# mLSTM against mlstm_kernels' native kernels


@pytest.fixture(scope="module")
def mlstm_kernels_torch():
    return pytest.importorskip("mlstm_kernels.torch", reason="mlstm_kernels is not installed")


def test_mlstm_matches_mlstm_kernels_native_chunkwise(mlstm_kernels_torch) -> None:
    q, k, v, i, f = _inputs(seq_len=24)
    state = _random_state()
    kernel = mlstm_kernels_torch.get_mlstm_kernel("chunkwise--native_autograd")
    h_lib, (C, n, m) = kernel(
        q, k, v, i, f, c_initial=state.C, n_initial=state.n, m_initial=state.m[..., None],
        return_last_states=True, chunk_size=8,
    )  # fmt: skip
    h, final = mlstm_chunkwise(q, k, v, i, f, chunk_size=8, initial_state=state, return_final_state=True)
    _assert_rel(h, h_lib, 1e-12)
    for ours, theirs in zip(final, (C, n, m[..., 0]), strict=True):
        _assert_rel(ours, theirs, 1e-12)


def test_mlstm_matches_mlstm_kernels_native_recurrent(mlstm_kernels_torch) -> None:
    from mlstm_kernels.torch.recurrent import mlstm_recurrent_sequence__native_fw

    q, k, v, i, f = _inputs()
    h_lib = mlstm_recurrent_sequence__native_fw(q, k, v, i, f, dtype_state=F64)
    _assert_rel(mlstm_recurrent(q, k, v, i, f), h_lib, 1e-12)
    step = mlstm_kernels_torch.get_mlstm_step_kernel("native")
    state = _random_state()
    h_t, (C, n, m) = step(
        q=q[:, :, 0], k=k[:, :, 0], v=v[:, :, 0], i=i[:, :, :1], f=f[:, :, :1],
        c=state.C, n=state.n, m=state.m[..., None], dtype_state=F64,
    )  # fmt: skip
    ours, new = mlstm_recurrent_step(q[:, :, 0], k[:, :, 0], v[:, :, 0], i[:, :, 0], f[:, :, 0], state)
    _assert_rel(ours, h_t, 1e-12)
    for a, b in zip(new, (C, n, m[..., 0]), strict=True):
        _assert_rel(a, b, 1e-12)


def test_mlstm_parallel_matches_mlstm_kernels_native_parallel_at_zero_eps(mlstm_kernels_torch) -> None:
    # The library's parallel kernel leaves the initial state's term out of m_t; that changes only how eps
    # enters the denominator, so at eps = 0 the functions are identical.
    q, k, v, i, f = _inputs()
    kernel = mlstm_kernels_torch.get_mlstm_kernel("parallel--native_autograd")
    _assert_rel(mlstm_parallel(q, k, v, i, f, eps=0.0), kernel(q, k, v, i, f, eps=0.0), 1e-12)


def test_mlstm_sigmoid_input_gate_matches_mlstm_kernels_siging(mlstm_kernels_torch) -> None:
    q, k, v, i, f = _inputs()
    kernel = mlstm_kernels_torch.get_mlstm_kernel("parallel--native_siging_autograd")
    expected = kernel(q, k, v, i, f, eps=0.0)
    _assert_rel(mlstm_chunkwise(q, k, v, i, f, chunk_size=4, input_gate="sigmoid", eps=0.0), expected, 1e-12)
    # The exponential gate is a different function: far from this one.
    assert (mlstm_chunkwise(q, k, v, i, f, chunk_size=4, eps=0.0) - expected).abs().max() > 1e-3


# ---------------------------------------------------------------------------------------------
# mLSTM bad input


@pytest.mark.parametrize(
    "change",
    [
        lambda q, k, v, i, f: (q[0], k[0], v[0], i[0], f[0]),  # 3-D tensors
        lambda q, k, v, i, f: (q, k[..., :4], v, i, f),  # k not shaped like q
        lambda q, k, v, i, f: (q, k, v[:, :, :5], i, f),  # v of another length
        lambda q, k, v, i, f: (q, k, v, i[..., None], f),  # gates with a trailing dim
        lambda q, k, v, i, f: (q, k, v, i, f[:, :1]),  # gates of other heads
    ],
)
def test_mlstm_bad_shapes_are_one_line_errors(change) -> None:
    args = change(*_inputs())
    for form in (mlstm_parallel, mlstm_chunkwise, mlstm_recurrent):
        with pytest.raises(UserError) as info:
            form(*args)
        assert "\n" not in str(info.value) and "mLSTM" in str(info.value)


def test_mlstm_other_bad_input_is_a_one_line_error() -> None:
    q, k, v, i, f = _inputs()
    bad_state = MLSTMState(torch.zeros(2, 3, 8, 8, dtype=F64), torch.zeros(2, 3, 8, dtype=F64), torch.zeros(2, 3))
    cases = [
        lambda: mlstm_parallel(q, k, v, i, f, initial_state=bad_state),
        lambda: mlstm_chunkwise(q, k, v, i, f, chunk_size=0),
        lambda: mlstm_parallel(q, k, v, i, f, input_gate="relu"),
        lambda: mlstm_parallel(q, k, v, i, f, forget_gate="tanh"),
        lambda: mlstm_recurrent_step(q[:, :, 0], k[:, :, 0], v[:, :, 0], i, f[:, :, 0], _random_state()),
    ]
    for case in cases:
        with pytest.raises(UserError) as info:
            case()
        assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------------
# sLSTM


def test_slstm_hand_computed_three_steps() -> None:
    # One head of one channel, no recurrent weight. Step 1: i = 2, tanh(z) = 0.5, o = 1 -> c = 1, n = 2,
    # h = 0.5. Step 2: f = sigmoid(0) = 0.5, i = 1, tanh(z) = -0.5 -> c = 0.5 - 0.5 = 0, n = 2, h = 0.
    # Step 3: f = 1, i = 3, tanh(z) = 1, o = sigmoid(0) = 0.5 -> c = 3, n = 5, h = 0.5 · 3/5 = 0.3.
    big = 60.0  # sigmoid(60) and tanh(60) are 1 in float64
    gates = [  # (i~, f~, z~, o~) per step
        (math.log(2.0), 0.0, math.atanh(0.5), big),
        (0.0, 0.0, math.atanh(-0.5), big),
        (math.log(3.0), big, big, 0.0),
    ]
    preacts = torch.tensor(gates, dtype=F64).reshape(1, 3, 4, 1, 1)
    h, state = slstm_recurrent(preacts, torch.zeros(4, 1, 1, 1, dtype=F64))
    torch.testing.assert_close(h.flatten(), torch.tensor([0.5, 0.0, 0.3], dtype=F64), rtol=0, atol=1e-15)
    true_c, true_n = state.c * torch.exp(state.m), state.n * torch.exp(state.m)
    torch.testing.assert_close(true_c.flatten(), torch.tensor([3.0], dtype=F64), rtol=1e-14, atol=0)
    torch.testing.assert_close(true_n.flatten(), torch.tensor([5.0], dtype=F64), rtol=1e-14, atol=0)


def test_slstm_without_recurrence_is_a_weighted_average_of_the_cell_inputs() -> None:
    # R = 0: c_t / n_t = Σ_s w_ts tanh(z_s) / Σ_s w_ts with w_ts = Π_{r=s+1..t} f_r · i_s (closed form).
    generator = torch.Generator().manual_seed(1)
    batch, seq_len, heads, d_head = 2, 9, 2, 3
    preacts = torch.randn(batch, seq_len, 4, heads, d_head, generator=generator, dtype=F64) * 2
    h, _ = slstm_recurrent(preacts, torch.zeros(4, heads, d_head, d_head, dtype=F64))
    i_tilde, f_tilde, z_tilde, o_tilde = preacts.unbind(dim=2)
    b = F.logsigmoid(f_tilde).cumsum(dim=1)
    for t in range(seq_len):
        w = torch.exp(b[:, t : t + 1] - b[:, : t + 1] + i_tilde[:, : t + 1])
        expected = torch.sigmoid(o_tilde[:, t]) * (w * torch.tanh(z_tilde[:, : t + 1])).sum(1) / w.sum(1)
        _assert_rel(h[:, t], expected, 1e-12)


def test_slstm_equals_the_unstabilized_recurrence_with_block_diagonal_mixing() -> None:
    generator = torch.Generator().manual_seed(2)
    batch, seq_len, heads, d_head = 2, 8, 2, 3
    preacts = torch.randn(batch, seq_len, 4, heads, d_head, generator=generator, dtype=F64)
    R = torch.randn(4, heads, d_head, d_head, generator=generator, dtype=F64)
    h, _ = slstm_recurrent(preacts, R)
    # Written out with exp() gates directly and the full (d_model × d_model) block-diagonal matrix.
    d_model = heads * d_head
    R_full = torch.stack([torch.block_diag(*R[g]) for g in range(4)])  # (4, d_model, d_model)
    h_t = c = n = torch.zeros(batch, d_model, dtype=F64)
    for t in range(seq_len):
        raw = preacts[:, t].reshape(batch, 4, d_model) + torch.einsum("bd,gde->bge", h_t, R_full)
        i_gate, f_gate = torch.exp(raw[:, 0]), torch.sigmoid(raw[:, 1])
        c = f_gate * c + i_gate * torch.tanh(raw[:, 2])
        n = f_gate * n + i_gate
        h_t = torch.sigmoid(raw[:, 3]) * c / n
        _assert_rel(h[:, t].reshape(batch, d_model), h_t, 1e-12)
    # Block-diagonal: with one head's recurrent weights zeroed, the other head's outputs do not change.
    R_cut = R.clone()
    R_cut[:, 1] = 0
    h_cut, _ = slstm_recurrent(preacts, R_cut)
    _assert_rel(h_cut[:, :, 0], h[:, :, 0], 1e-15)
    assert (h_cut[:, 1:, 1] - h[:, 1:, 1]).abs().max() > 1e-3


def test_slstm_stabilizer_survives_huge_input_gates() -> None:
    # exp(800) overflows even float64; the stabilized cell gives h_t = sigmoid(o_t)·tanh(z_t) at a step
    # whose input gate dwarfs all history.
    preacts = torch.zeros(1, 4, 4, 1, 2, dtype=F64)
    preacts[:, :, 2] = torch.tensor([0.3, -0.7], dtype=F64)  # z~
    preacts[:, 2, 0] = 800.0  # step 2's input gate
    h, _ = slstm_recurrent(preacts, torch.zeros(4, 1, 2, 2, dtype=F64))
    assert torch.isfinite(h).all()
    expected = torch.sigmoid(torch.tensor(0.0, dtype=F64)) * torch.tanh(preacts[0, 2, 2, 0])
    _assert_rel(h[0, 2, 0], expected, 1e-14)


def test_slstm_step_keeps_low_precision_state_in_float32() -> None:
    preacts = torch.randn(2, 4, 3, 5, dtype=torch.bfloat16)
    state = slstm_zero_state(2, 3, 5, "cpu", torch.bfloat16)
    h, new = slstm_step(preacts, torch.zeros(4, 3, 5, 5, dtype=torch.bfloat16), state)
    assert new.c.dtype == torch.float32 and torch.isfinite(h).all()


def test_slstm_bad_input_is_a_one_line_error() -> None:
    with pytest.raises(UserError, match="pre-activations") as info:
        slstm_recurrent(torch.zeros(2, 5, 3, 2, 4), torch.zeros(4, 2, 4, 4))
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="recurrent weight"):
        slstm_recurrent(torch.zeros(2, 5, 4, 2, 4), torch.zeros(4, 2, 4, 3))
    with pytest.raises(UserError, match="forget gate"):
        slstm_recurrent(torch.zeros(2, 5, 4, 2, 4), torch.zeros(4, 2, 4, 4), forget_gate="relu")
