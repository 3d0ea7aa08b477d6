"""The RWKV-7 time-mixing block: step == forward == prefill + step (float64), value residual, causality,
the core call, the fla weight mapping, availability of the fla adapters, cost models and bad configs."""

from __future__ import annotations

import pytest
import torch

from harness import registry
from harness.config import MixerConfig
from harness.errors import ConfigError
from harness.interface import run_recurrent
from harness.numerics import rms_ratio
from implementations.rwkv import RWKV7TimeMix, rwkv7_recurrent
from implementations.rwkv.fla_adapters import FlaChunkRWKV7, FlaFusedRecurrentRWKV7, FlaRWKV7Layer, fla_layer_state_dict
from implementations.rwkv.reference import LOG_DECAY_LOWER_BOUND, default_low_rank_dims
from implementations.rwkv.specs import (
    rwkv7_chunked_core_flops,
    rwkv7_recurrent_core_flops,
    rwkv7_state_bytes,
)

F64 = torch.float64
RESIDUAL = MixerConfig(d_model=32, n_heads=2, chunk_size=8, options=(("value_residual", True),))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These tensors are tiny: one intra-op thread is fastest, and avoids stalls on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build(config: MixerConfig, seed: int = 0) -> RWKV7TimeMix:
    torch.manual_seed(seed)
    return RWKV7TimeMix(config).to(F64).eval()


def steps(mixer: RWKV7TimeMix, x: torch.Tensor, state, v_first: torch.Tensor | None = None) -> torch.Tensor:
    ys = []
    for t in range(x.shape[1]):
        y_t, state = mixer.step(x[:, t], state, None if v_first is None else v_first[:, t])
        ys.append(y_t)
    return torch.stack(ys, dim=1)


@pytest.mark.parametrize("value_residual", [False, True])
def test_step_and_prefill_equal_forward(value_residual: bool) -> None:
    config = MixerConfig(d_model=32, n_heads=2, chunk_size=8, options=(("value_residual", value_residual),))
    mixer = build(config)
    x = torch.randn(2, 29, 32, dtype=F64)
    with torch.no_grad():
        y = mixer(x)
        assert rms_ratio(run_recurrent(mixer, x), y) < 1e-12
        y_prefix, state = mixer.prefill(x[:, :13])  # ends mid-chunk
        y_rest = steps(mixer, x[:, 13:], state)
    assert rms_ratio(torch.cat([y_prefix, y_rest], dim=1), y) < 1e-12


def test_value_residual_mixes_with_the_first_layers_values() -> None:
    mixer = build(RESIDUAL)
    x = torch.randn(2, 20, 32, dtype=F64)
    v_first = torch.randn(2, 20, 32, dtype=F64)
    with torch.no_grad():
        y_own = mixer(x)
        y_mixed = mixer(x, v_first=v_first)
        assert rms_ratio(y_mixed, y_own) > 1e-2  # v_first matters
        state = mixer.init_state(2, "cpu", F64)
        assert rms_ratio(steps(mixer, x, state, v_first), y_mixed) < 1e-12
        # Without v_first a later layer mixes with its own values: the function of a first layer.
        first_layer = build(MixerConfig(d_model=32, n_heads=2, chunk_size=8))
        first_layer.load_state_dict({k: v for k, v in mixer.state_dict().items() if not k.startswith("value_lora")})
        assert rms_ratio(first_layer(x), y_own) < 1e-14


def test_causal_across_chunk_boundaries() -> None:
    mixer = build(MixerConfig(d_model=32, n_heads=2, chunk_size=4))
    x = torch.randn(1, 20, 32, dtype=F64)
    changed = x.clone()
    changed[:, 9:] += torch.randn(1, 11, 32, dtype=F64)
    with torch.no_grad():
        y, y_changed = mixer(x), mixer(changed)
    torch.testing.assert_close(y_changed[:, :9], y[:, :9], rtol=1e-13, atol=1e-13)
    assert not torch.allclose(y_changed[:, 9:], y[:, 9:])


def test_decay_stays_in_the_bound_fla_is_told() -> None:
    mixer = build(MixerConfig(d_model=32, n_heads=2))
    with torch.no_grad():
        inputs = mixer.time_mix_inputs(10 * torch.randn(2, 50, 32, dtype=F64), torch.zeros(2, 32, dtype=F64))
    assert (inputs.w <= 0).all() and (inputs.w >= LOG_DECAY_LOWER_BOUND).all()
    assert inputs.w.std() > 1e-2  # the decay depends on the data


def test_core_call_runs_the_core_of_forward() -> None:
    mixer = build(MixerConfig(d_model=32, n_heads=2, chunk_size=8))
    x = torch.randn(2, 19, 32, dtype=F64)
    with torch.no_grad():
        call = mixer.core_call(x)
        o, _ = call.run()
        inputs = mixer.time_mix_inputs(x, torch.zeros(2, 32, dtype=F64))
        expected, _ = rwkv7_recurrent(*inputs.op_args())
        torch.testing.assert_close(o, expected, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(mixer.time_mix_output(o, inputs), mixer(x), rtol=1e-12, atol=1e-12)


def test_default_low_rank_dims_match_the_published_rwkv7_small_model() -> None:
    # RWKV-7 0.1B (d_model 768, head_dim 64): decay 64, ICLR 64, value 32, gate 128.
    assert default_low_rank_dims(768, 64) == {
        "decay_low_rank_dim": 64,
        "a_low_rank_dim": 64,
        "v_low_rank_dim": 32,
        "gate_low_rank_dim": 128,
    }


def test_state_is_constant_in_context_and_counted() -> None:
    config = MixerConfig(d_model=1024, n_heads=16)
    short = rwkv7_state_bytes(config, 4, 2048, torch.bfloat16)
    assert short == rwkv7_state_bytes(config, 4, 32768, torch.bfloat16)
    assert short == 4 * (16 * 64 * 64 * 4 + 1024 * 2)  # float32 state + the bf16 previous token
    state = build(MixerConfig(d_model=32, n_heads=2)).init_state(3, "cpu", torch.bfloat16)
    assert state.wkv.dtype == torch.float32 and state.shifted.dtype == torch.bfloat16
    measured = state.wkv.numel() * 4 + state.shifted.numel() * 2
    assert measured == rwkv7_state_bytes(MixerConfig(d_model=32, n_heads=2), 3, 100, torch.bfloat16)


def test_core_flops_models() -> None:
    config = MixerConfig(d_model=1024, n_heads=16, chunk_size=64)
    # Recurrent: 9 flops per state entry per token; decode is one token whatever the context.
    assert rwkv7_recurrent_core_flops(config, 2, 100, "fwd") == 2 * 100 * 9 * 1024 * 64
    assert rwkv7_recurrent_core_flops(config, 2, 100, "fwd_bwd") == 3 * 2 * 100 * 9 * 1024 * 64
    assert rwkv7_chunked_core_flops(config, 2, 10**6, "decode") == 2 * 9 * 1024 * 64
    # Chunked: linear in seq_len (constant work per token), more per token than the recurrence.
    ratio = rwkv7_chunked_core_flops(config, 1, 8192, "fwd") / rwkv7_chunked_core_flops(config, 1, 2048, "fwd")
    assert ratio == pytest.approx(4.0)
    assert rwkv7_chunked_core_flops(config, 1, 2048, "fwd") > rwkv7_recurrent_core_flops(config, 1, 2048, "fwd")


# ---- fla adapters: what can be checked without fla or a GPU -------------------------------------------

FLA_PARAMETERS = {
    **{f"x_{c}": (1, 1, 32) for c in "rwkvag"},
    "k_k": (32,),
    "k_a": (32,),
    "r_k": (2, 16),
    **{f"{p}_proj.weight": (32, 32) for p in "rkvo"},
    **{f"{n}_lora.lora.0.weight": (32, 32) for n in "wavg"},
    **{f"{n}_lora.lora.2.weight": (32, 32) for n in "wavg"},
    **{f"{n}_lora.lora.2.bias": (32,) for n in "wav"},
    "g_norm.weight": (32,),
    "g_norm.bias": (32,),
}


def test_every_parameter_maps_onto_fla_rwkv7_attention() -> None:
    # fla 0.6.0 RWKV7Attention (layer_idx 1: with v_lora; gate LoRA without bias), d_model 32, 2 heads.
    mapped = fla_layer_state_dict(build(RESIDUAL).state_dict())
    assert {name: tuple(t.shape) for name, t in mapped.items()} == FLA_PARAMETERS


@pytest.mark.parametrize("name", ["rwkv/rwkv7_fla_chunk", "rwkv/rwkv7_fla_fused_recurrent", "rwkv/rwkv7_fla_layer"])
def test_fla_adapters_are_cuda_only_and_say_when_fla_is_missing(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    impl = registry.get(name)
    assert impl.availability("cpu").reason == "runs on cuda only, not cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    reason = impl.availability("cuda", torch.bfloat16).reason
    import importlib.util

    if importlib.util.find_spec("fla") is None:
        assert reason == "needs package flash-linear-attention (pip install flash-linear-attention)"
    assert impl.availability("cuda", torch.float64).reason.startswith("float64 not supported")


def test_bad_configs_are_one_line_errors() -> None:
    cases = [
        (lambda: RWKV7TimeMix(MixerConfig(d_model=32, n_heads=2, rope=True)), "rope"),
        (lambda: RWKV7TimeMix(MixerConfig(d_model=32, n_heads=2, options=(("rank", 4),))), "options"),
        (lambda: RWKV7TimeMix(MixerConfig(d_model=32, n_heads=2, options=(("value_residual", 1),))), "options"),
        (lambda: RWKV7TimeMix(MixerConfig(d_model=32, n_heads=2, options=(("gate_low_rank_dim", 0),))), "options"),
        (lambda: FlaChunkRWKV7(MixerConfig(d_model=512, n_heads=1)), "head_dim"),
        (lambda: FlaFusedRecurrentRWKV7(MixerConfig(d_model=512, n_heads=1)), "head_dim"),
        (lambda: FlaChunkRWKV7(MixerConfig(d_model=64, n_heads=1, chunk_size=128)), "chunk_size"),
        (lambda: FlaRWKV7Layer(MixerConfig(d_model=64, n_heads=2, head_dim=16)), "head_dim"),
        (lambda: FlaRWKV7Layer(MixerConfig(d_model=64, n_heads=1, chunk_size=32)), "chunk_size"),
    ]
    for make, field in cases:
        with pytest.raises(ConfigError) as excinfo:
            make()
        assert excinfo.value.field == field and "\n" not in str(excinfo.value)
