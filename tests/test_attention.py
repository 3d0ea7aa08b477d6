"""The attention family against independent truths: closed forms, RoPE's relative-position property,
and parallel == recurrent for every CPU implementation."""

from __future__ import annotations

import pytest
import torch

from harness import registry
from harness.config import MixerConfig
from harness.interface import run_recurrent
from harness.numerics import rms_ratio
from implementations.attention.reference import (
    AttentionReference,
    apply_rope,
    attend_to_cache,
    causal_attention,
    rope_angles,
)
from implementations.attention.specs import attention_flops, kv_cache_bytes

F64 = torch.float64


def test_zero_queries_average_the_past_values() -> None:
    # q = 0 makes every score equal, so the softmax is uniform over the past: y_t = mean(v_0..v_t).
    v = torch.randn(2, 3, 10, 4, dtype=F64)
    q = torch.zeros_like(v)
    k = torch.randn_like(v)
    expected = v.cumsum(dim=2) / torch.arange(1, 11, dtype=F64)[:, None]
    torch.testing.assert_close(causal_attention(q, k, v), expected, rtol=1e-12, atol=1e-12)


def test_first_position_returns_its_own_value() -> None:
    q, k, v = (torch.randn(1, 2, 5, 8, dtype=F64) for _ in range(3))
    torch.testing.assert_close(causal_attention(q, k, v)[:, :, 0], v[:, :, 0])


def test_decode_core_equals_last_row_of_causal_attention() -> None:
    q, k, v = (torch.randn(2, 2, 7, 8, dtype=F64) for _ in range(3))
    last = attend_to_cache(q[:, :, -1:], k, v)
    torch.testing.assert_close(last[:, :, 0], causal_attention(q, k, v)[:, :, -1], rtol=1e-12, atol=1e-12)


def test_rope_scores_depend_only_on_relative_position() -> None:
    head_dim = 16
    q, k = torch.randn(head_dim, dtype=F64), torch.randn(head_dim, dtype=F64)

    def score(m: int, n: int) -> float:
        angles_m = rope_angles(torch.tensor([m]), head_dim, 10000.0, F64)
        angles_n = rope_angles(torch.tensor([n]), head_dim, 10000.0, F64)
        return float(
            apply_rope(q.view(1, 1, 1, -1), angles_m).flatten() @ apply_rope(k.view(1, 1, 1, -1), angles_n).flatten()
        )

    assert score(5, 2) == pytest.approx(score(103, 100), rel=1e-10)
    assert score(0, 0) == pytest.approx(float(q @ k), rel=1e-12)  # position 0 is the identity rotation
    assert score(5, 2) != pytest.approx(score(5, 3), rel=1e-3)


def test_rope_preserves_norms() -> None:
    x = torch.randn(1, 2, 9, 8, dtype=F64)
    rotated = apply_rope(x, rope_angles(torch.arange(9), 8, 10000.0, F64))
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1))


@pytest.mark.parametrize("rope", [False, True])
@pytest.mark.parametrize(
    "name", [i.name for i in registry.implementations() if i.family == "attention" and i.availability("cpu")]
)
def test_parallel_equals_recurrent(name: str, rope: bool) -> None:
    impl = registry.get(name)
    dtype = F64 if F64 in impl.dtypes else torch.float32
    config = MixerConfig(d_model=32, n_heads=4, rope=rope)
    torch.manual_seed(0)
    mixer = impl.create(config).to(dtype).eval()
    x = torch.randn(2, 24, 32, dtype=dtype)
    with torch.no_grad():
        parallel, recurrent = mixer(x), run_recurrent(mixer, x)
    assert rms_ratio(recurrent, parallel) < (1e-12 if dtype == F64 else 1e-5)


def test_kv_cache_grows_and_step_from_same_state_is_repeatable() -> None:
    torch.manual_seed(0)
    mixer = AttentionReference(MixerConfig(d_model=16, n_heads=2)).double().eval()
    x = torch.randn(1, 40, 16, dtype=F64)
    with torch.no_grad():
        _, state = mixer.prefill(x[:, :20])
        assert state.length == 20 and state.capacity >= 21
        first, _ = mixer.step(x[:, 20], state)
        again, _ = mixer.step(x[:, 20], state)  # same slot written twice: same answer
        torch.testing.assert_close(first, again)
        state = mixer.init_state(1, "cpu", F64)
        for t in range(40):  # grows past the initial capacity of 16 and 32
            _, state = mixer.step(x[:, t], state)
        assert state.length == 40 and state.capacity >= 40


def test_analytic_models_match_the_flash_attention_convention() -> None:
    cfg = MixerConfig(d_model=2048, n_heads=16, head_dim=128)
    batch, seq_len = 2, 4096
    inner = 16 * 128
    core_fwd = 4 * batch * seq_len**2 * inner / 2
    projections = 2 * batch * seq_len * cfg.d_model * 4 * inner
    assert attention_flops(cfg, batch, seq_len, "fwd") == pytest.approx(core_fwd + projections)
    assert attention_flops(cfg, batch, seq_len, "fwd_bwd") == pytest.approx(3.5 * core_fwd + 3 * projections)
    assert kv_cache_bytes(cfg, batch, seq_len, torch.bfloat16) == 2 * batch * seq_len * inner * 2


@pytest.mark.skipif(not registry.get("attention/flex").availability("cpu"), reason="FlexAttention unavailable")
@pytest.mark.parametrize("seq_len", [24, 40, 130])
def test_flex_is_right_at_lengths_that_end_inside_a_block(seq_len: int) -> None:
    # Regression: torch 2.13's compiled CPU flex kernel returned garbage or NaN at such lengths unpadded.
    from implementations.attention.flex_adapters import FlexAttention

    mixer = FlexAttention(MixerConfig(d_model=32, n_heads=4))
    for _ in range(3):
        q, k, v = (torch.randn(2, 4, seq_len, 8) for _ in range(3))
        assert rms_ratio(mixer.attention_core(q, k, v), causal_attention(q, k, v)) < 1e-5


def test_sdpa_decode_over_a_single_key_returns_its_value() -> None:
    # cuDNN's SDPA rejects a key/value length of 1 (seen on an H100, torch 2.11): the adapters answer
    # that case exactly themselves, since a softmax over one key is 1.
    from implementations.attention.sdpa_adapters import SDPAAttention

    mixer = SDPAAttention(MixerConfig(d_model=16, n_heads=2), "math")
    q, k, v = (torch.randn(2, 2, 1, 8, dtype=F64) for _ in range(3))
    torch.testing.assert_close(mixer.decode_core(q, k, v), v, rtol=0, atol=0)
    torch.testing.assert_close(mixer.decode_core(q, k, v), attend_to_cache(q, k, v), rtol=1e-15, atol=1e-15)
