"""Mamba-2 (SSD) against independent truths: the three SSD forms agree in float64, SSD equals Mamba-1's
selective scan with a scalar A per head, the decay mask is 1-semiseparable, the simple-GLA mapping
(fla's parameterization) reproduces SSD, the block's step equals its forward, and bad input gets
one-line errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from harness.config import MixerConfig
from harness.errors import ConfigError
from harness.interface import run_recurrent
from implementations.mamba import selective_scan
from implementations.mamba2 import Mamba2Reference, segment_sum, simple_gla_recurrent, ssd, ssd_via_simple_gla
from implementations.mamba2.reference import GatedRMSNorm
from implementations.mamba2.specs import mamba2_core_flops, mamba2_flops, reference_state_bytes

F64 = torch.float64
TIGHT = {"rtol": 1e-11, "atol": 1e-12}
FORMS = ("recurrent", "quadratic", "chunked")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These tensors are tiny: OpenMP threads only add synchronisation, and on a busy 2-core machine a
    small float64 matmul took ~40 ms with 2 threads against 0.03 ms with 1."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def ssd_inputs(batch=2, length=37, heads=4, headdim=3, groups=2, n=5, seed=0, D_per_channel=False):
    g = torch.Generator().manual_seed(seed)
    return {
        "x": torch.randn(batch, length, heads, headdim, generator=g, dtype=F64),
        "dt": torch.randn(batch, length, heads, generator=g, dtype=F64),
        "A": -torch.rand(heads, generator=g, dtype=F64) * 4,
        "B": torch.randn(batch, length, groups, n, generator=g, dtype=F64),
        "C": torch.randn(batch, length, groups, n, generator=g, dtype=F64),
        "D": torch.randn(heads, headdim, generator=g, dtype=F64)
        if D_per_channel
        else torch.randn(heads, generator=g, dtype=F64),
        "z": torch.randn(batch, length, heads, headdim, generator=g, dtype=F64),
        "dt_bias": torch.randn(heads, generator=g, dtype=F64),
        "initial_states": torch.randn(batch, heads, headdim, n, generator=g, dtype=F64),
    }


# -- SSD ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [1, 8, 37, 64])  # 8 leaves a partial last chunk; 64 > L
@pytest.mark.parametrize("D_per_channel", [False, True])
def test_three_forms_agree_in_float64(chunk_size: int, D_per_channel: bool) -> None:
    inputs = ssd_inputs(D_per_channel=D_per_channel)
    results = {
        form: ssd(**inputs, chunk_size=chunk_size, dt_softplus=True, return_final_states=True, form=form)
        for form in FORMS
    }
    y_ref, h_ref = results["recurrent"]
    for form in ("quadratic", "chunked"):
        torch.testing.assert_close(results[form][0], y_ref, **TIGHT)
        torch.testing.assert_close(results[form][1], h_ref, **TIGHT)


def test_ssd_is_a_selective_scan_with_a_scalar_decay_per_head() -> None:
    # Mamba-1's scan with A[h·P + p, n] = A_h, Δ repeated over the head's channels, B and C per group:
    # the SSM of SSD is that special case (Dao & Gu, 2024, Section 3).
    inputs = ssd_inputs(groups=2)
    x, dt, A, B, C, D = (inputs[k] for k in ("x", "dt", "A", "B", "C", "D"))
    batch, length, heads, headdim = x.shape
    n = B.shape[-1]
    dt = F.softplus(dt)
    y_scan = selective_scan(
        x.reshape(batch, length, heads * headdim).transpose(1, 2),
        dt.repeat_interleave(headdim, dim=2).transpose(1, 2),
        A.repeat_interleave(headdim)[:, None].expand(heads * headdim, n),
        B.permute(0, 2, 3, 1),
        C.permute(0, 2, 3, 1),
        D=D.repeat_interleave(headdim),
    )
    y_ssd = ssd(x, dt, A, B, C, chunk_size=8, D=D)
    torch.testing.assert_close(y_ssd, y_scan.transpose(1, 2).reshape(x.shape), **TIGHT)


def test_segment_sum_and_the_decay_mask_is_one_semiseparable() -> None:
    length = 7
    torch.testing.assert_close(
        segment_sum(torch.ones(length, dtype=F64)),
        (torch.arange(length)[:, None] - torch.arange(length)[None, :])
        .to(F64)
        .masked_fill(~torch.ones(length, length, dtype=torch.bool).tril(), float("-inf")),
    )
    mask = torch.exp(segment_sum(-torch.rand(12, dtype=F64)))
    assert torch.all(mask.triu(1) == 0)
    for cut in range(1, 12):  # every block below the diagonal has rank 1
        block = mask[cut:, :cut]
        singular_values = torch.linalg.svdvals(block)
        assert singular_values[1:].max() <= 1e-12 * singular_values[0] if len(singular_values) > 1 else True


def test_padding_with_zero_dt_leaves_the_state_unchanged() -> None:
    inputs = ssd_inputs(length=5)
    dt = F.softplus(inputs["dt"])
    kwargs = {k: inputs[k] for k in ("x", "A", "B", "C", "initial_states")}
    _, final = ssd(dt=dt, chunk_size=4, return_final_states=True, form="recurrent", **kwargs)
    padded = {k: F.pad(v, (0, 0, 0, 0, 0, 3)) if k in ("x", "B", "C") else v for k, v in kwargs.items()}
    _, final_padded = ssd(dt=F.pad(dt, (0, 0, 0, 3)), chunk_size=4, return_final_states=True, **padded)
    torch.testing.assert_close(final_padded, final, **TIGHT)


def test_simple_gla_reference_is_causal_linear_attention_without_decay() -> None:
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 6, 2, d, generator=g, dtype=F64) for d in (4, 4, 3))
    o, _ = simple_gla_recurrent(q, k, v, torch.zeros(1, 6, 2, dtype=F64))
    scores = torch.einsum("bthk,bshk->bhts", q, k) * 4**-0.5  # fla's default scale K^-1/2
    expected = torch.einsum("bhts,bshv->bthv", scores.tril(), v)
    torch.testing.assert_close(o, expected, **TIGHT)


def test_simple_gla_mapping_reproduces_ssd() -> None:
    # q = C, k = B, v = dt·x, g = dt·A, scale = 1, states transposed, D skip and gate outside.
    inputs = ssd_inputs()
    kwargs = {"chunk_size": 8, "dt_softplus": True, "return_final_states": True}
    y, h = ssd(**inputs, **kwargs)
    y_gla, h_gla = ssd_via_simple_gla(**inputs, **kwargs, simple_gla=simple_gla_recurrent)
    torch.testing.assert_close(y_gla, y, **TIGHT)
    torch.testing.assert_close(h_gla, h, **TIGHT)


def test_negative_or_nan_dt_is_a_one_line_error_and_zero_is_allowed() -> None:
    inputs = {k: v for k, v in ssd_inputs().items() if k not in ("dt_bias", "z", "initial_states")}
    with pytest.raises(ConfigError) as caught:
        ssd(**inputs, chunk_size=8)  # raw dt from randn has negative entries
    assert str(caught.value).startswith("dt:") and "\n" not in str(caught.value)
    with pytest.raises(ConfigError, match="dt"):
        ssd(**inputs | {"dt": torch.full_like(inputs["dt"], float("nan"))}, chunk_size=8)
    ssd(**inputs | {"dt": torch.zeros_like(inputs["dt"])}, chunk_size=8)  # dt = 0: the state is kept
    ssd(**inputs, chunk_size=8, dt_softplus=True)  # raw projections go through softplus


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"x": torch.zeros(2, 37, 12, dtype=F64)}, "x"),
        ({"dt": torch.zeros(2, 36, 4, dtype=F64)}, "dt"),
        ({"A": torch.zeros(4, 3, dtype=F64)}, "A"),
        ({"B": torch.zeros(2, 37, 3, 5, dtype=F64), "C": torch.zeros(2, 37, 3, 5, dtype=F64)}, "B"),
        ({"C": torch.zeros(2, 37, 2, 6, dtype=F64)}, "C"),
        ({"D": torch.zeros(3, dtype=F64)}, "D"),
        ({"z": torch.zeros(2, 37, 4, 4, dtype=F64)}, "z"),
        ({"dt_bias": torch.zeros(5, dtype=F64)}, "dt_bias"),
        ({"initial_states": torch.zeros(2, 4, 3, 4, dtype=F64)}, "initial_states"),
    ],
)
def test_bad_shapes_are_one_line_errors_naming_the_argument(change: dict, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ssd(**ssd_inputs() | change, chunk_size=8, dt_softplus=True)
    assert str(caught.value).startswith(f"{field}:") and "\n" not in str(caught.value)


@pytest.mark.parametrize("chunk_size", [0, True, 2.5])
def test_bad_chunk_size_is_an_error(chunk_size: object) -> None:
    with pytest.raises(ConfigError, match="chunk_size"):
        ssd(**ssd_inputs(), chunk_size=chunk_size, dt_softplus=True)


# -- the block ------------------------------------------------------------------------------------

CONFIG = MixerConfig(d_model=32, n_heads=2, d_state=8, chunk_size=8)
GROUPED = MixerConfig(d_model=32, n_heads=4, n_groups=2, d_state=8, chunk_size=4)


def _block(config: MixerConfig = CONFIG, seed: int = 0) -> Mamba2Reference:
    torch.manual_seed(seed)
    return Mamba2Reference(config).double().eval()


@pytest.mark.parametrize("config", [CONFIG, GROUPED])
def test_block_step_equals_forward(config: MixerConfig) -> None:
    block = _block(config)
    x = torch.randn(2, 19, config.d_model, dtype=F64)
    with torch.no_grad():
        torch.testing.assert_close(run_recurrent(block, x), block(x), **TIGHT)


@pytest.mark.parametrize("prompt_len", [2, 11])
def test_block_prefill_then_step_equals_forward(prompt_len: int) -> None:
    block = _block(GROUPED)
    x = torch.randn(2, 15, GROUPED.d_model, dtype=F64)
    with torch.no_grad():
        y_prompt, state = block.prefill(x[:, :prompt_len])
        rest = []
        for t in range(prompt_len, x.shape[1]):
            y_t, state = block.step(x[:, t], state)
            rest.append(y_t)
        torch.testing.assert_close(torch.cat([y_prompt, torch.stack(rest, 1)], 1), block(x), **TIGHT)
    assert state.ssm.shape == (2, 4, 16, 8)  # heads, headdim = d_inner / heads, d_state


@pytest.mark.parametrize("form", ["quadratic", "recurrent"])
def test_ssd_option_gives_the_same_block(form: str) -> None:
    chunked, other = _block(), _block(CONFIG.with_options(ssd=form))
    other.load_state_dict(chunked.state_dict())
    x = torch.randn(2, 13, CONFIG.d_model, dtype=F64)
    with torch.no_grad():
        torch.testing.assert_close(other(x), chunked(x), **TIGHT)


def test_core_call_computes_the_forward_core() -> None:
    block = _block()
    x = torch.randn(2, 13, CONFIG.d_model, dtype=F64)
    with torch.no_grad():
        call = block.core_call(x)
        y = call.run()  # (batch, L, heads, headdim)
        z = block.in_proj(x)[..., : block.d_inner]
        torch.testing.assert_close(block._output(y, z), block(x), **TIGHT)


def test_gated_rms_norm_normalises_each_group() -> None:
    norm = GatedRMSNorm(12, group_size=4, eps=0.0).double()
    y, z = torch.randn(3, 12, dtype=F64), torch.full((3, 12), 40.0, dtype=F64)  # silu(40) = 40 to 1e-16
    out = norm(y, z).view(3, 3, 4)
    torch.testing.assert_close(out.pow(2).mean(-1), torch.ones(3, 3, dtype=F64), **TIGHT)
    groups = y.view(3, 3, 4)
    torch.testing.assert_close(out, groups / groups.pow(2).mean(-1, keepdim=True).sqrt(), **TIGHT)


def test_parameter_names_are_mamba_ssm_mamba2s() -> None:
    assert set(_block().state_dict()) == {
        "in_proj.weight",
        "conv1d.weight",
        "conv1d.bias",
        "dt_bias",
        "A_log",
        "D",
        "norm.weight",
        "out_proj.weight",
    }


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (MixerConfig(d_model=32, n_heads=3, head_dim=8), "n_heads"),  # 3 does not divide d_inner = 64
        (MixerConfig(d_model=32, n_heads=4, head_dim=8), "head_dim"),  # 4·8 != 64
        (MixerConfig(d_model=32, n_heads=4, n_groups=3), "n_groups"),
        (MixerConfig(d_model=32, n_heads=4).with_options(ssd="fast"), "options"),
    ],
)
def test_impossible_head_layouts_are_config_errors(config: MixerConfig, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Mamba2Reference(config)
    assert caught.value.field == field


def test_cost_models() -> None:
    # the state: conv window ((E + 2GN)·(K-1), bf16) + SSM state (H·P·N, float32), constant in L
    assert reference_state_bytes(GROUPED, 1, 10, torch.bfloat16) == (64 + 32) * 3 * 2 + 4 * 16 * 8 * 4
    assert reference_state_bytes(GROUPED, 1, 10, torch.bfloat16) == reference_state_bytes(
        GROUPED, 1, 1 << 20, torch.bfloat16
    )
    assert mamba2_flops(CONFIG, 2, 4096, "fwd") == pytest.approx(2 * mamba2_flops(CONFIG, 2, 2048, "fwd"))
    assert mamba2_flops(CONFIG, 2, 16, "decode") == mamba2_flops(CONFIG, 2, 1 << 20, "decode")
    assert 0 < mamba2_core_flops(CONFIG, 2, 64, "fwd") < mamba2_flops(CONFIG, 2, 64, "fwd")


def _fake_fla(monkeypatch, hopper: bool, triton_34: bool, triton_371: bool) -> None:
    """Stand-ins for the fla modules the adapter reads (fla itself needs Triton on a GPU): its flags, and
    chunk_simple_gla as the pure-PyTorch definition."""
    import sys
    import types

    from implementations.mamba2.simple_gla import simple_gla_recurrent

    flags = types.ModuleType("fla.ops.common.chunk_o")
    flags.IS_NVIDIA_HOPPER, flags.TRITON_ABOVE_3_4_0, flags.TRITON_ABOVE_3_7_1 = hopper, triton_34, triton_371
    ops = types.ModuleType("fla.ops.simple_gla")
    ops.chunk_simple_gla = simple_gla_recurrent
    for name in ("fla", "fla.ops", "fla.ops.common"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "fla.ops.common.chunk_o", flags)
    monkeypatch.setitem(sys.modules, "fla.ops.simple_gla", ops)


def test_fla_backward_refusal_follows_flas_own_condition(monkeypatch):
    from implementations.mamba2.fla_adapters import fla_backward_refusal

    _fake_fla(monkeypatch, hopper=True, triton_34=True, triton_371=False)
    assert "#640" in fla_backward_refusal()
    _fake_fla(monkeypatch, hopper=True, triton_34=True, triton_371=True)
    assert fla_backward_refusal() is None
    _fake_fla(monkeypatch, hopper=False, triton_34=True, triton_371=False)
    assert fla_backward_refusal() is None


def test_fla_adapter_training_step_is_unavailable_where_fla_refuses_backward(monkeypatch):
    """Forward without autograd runs (and equals the reference's); a training step is `unavailable` before
    any work, instead of an error from fla's backward."""
    from harness.worker import Unavailable
    from implementations.mamba2.fla_adapters import Mamba2FlaSimpleGla

    _fake_fla(monkeypatch, hopper=True, triton_34=True, triton_371=False)
    config = MixerConfig(d_model=32, n_heads=4, d_state=8, chunk_size=8)
    torch.manual_seed(0)
    reference = Mamba2Reference(config).double()
    adapter = Mamba2FlaSimpleGla(config).double()
    adapter.load_reference_weights(reference)
    x = torch.randn(2, 16, 32, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(adapter(x), reference(x), rtol=1e-10, atol=1e-10)
    with pytest.raises(Unavailable, match="#640"):
        adapter(x.requires_grad_())
