"""The S4 and S4D layers: forward (FFT convolution) == a loop of step (recurrence) == prefill + step in
float64, causality, precision policy, bad configurations, and the analytic models against the tensors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from harness import registry
from harness.config import MixerConfig
from harness.errors import ConfigError
from harness.interface import run_recurrent
from harness.numerics import rms_ratio
from implementations.s4.reference import S4, S4D, SSMLayer, s4d_init
from implementations.s4.specs import s4_flops, ssm_state_bytes

F64 = torch.float64
VARIANTS = [
    pytest.param(S4, {}, id="s4"),
    pytest.param(S4D, {}, id="s4d-lin-zoh"),
    pytest.param(S4D, {"init": "inv"}, id="s4d-inv-zoh"),
    pytest.param(S4D, {"init": "legs", "discretization": "bilinear"}, id="s4d-legs-bilinear"),
    pytest.param(S4D, {"discretization": "bilinear", "alpha": 1.0}, id="s4d-lin-backward-euler"),
    pytest.param(S4, {"output": "glu"}, id="s4-glu"),
    pytest.param(S4D, {"output": "glu"}, id="s4d-lin-glu"),
]


def build(cls: type[SSMLayer], options: dict, d_model: int = 12, d_state: int = 8, seed: int = 0) -> SSMLayer:
    torch.manual_seed(seed)
    # dt up to 0.5 so that the kernels carry real structure over a short test sequence.
    config = MixerConfig(d_model=d_model, d_state=d_state).with_options(dt_max=0.5, **options)
    return cls(config).to(F64).eval()


@pytest.mark.parametrize(("cls", "options"), VARIANTS)
@pytest.mark.parametrize("seq_len", [1, 16, 37])
def test_forward_equals_a_loop_of_step(cls: type[SSMLayer], options: dict, seq_len: int) -> None:
    mixer = build(cls, options)
    x = torch.randn(2, seq_len, 12, dtype=F64)
    with torch.no_grad():
        assert rms_ratio(run_recurrent(mixer, x), mixer(x)) < 1e-13


@pytest.mark.parametrize(("cls", "options"), VARIANTS)
def test_prefill_then_step_continues_the_sequence(cls: type[SSMLayer], options: dict) -> None:
    mixer = build(cls, options)
    x = torch.randn(2, 30, 12, dtype=F64)
    with torch.no_grad():
        expected = mixer(x)
        y_prompt, state = mixer.prefill(x[:, :17])
        torch.testing.assert_close(y_prompt, expected[:, :17], rtol=0, atol=1e-13)
        # The parallel state equals the state a loop of step reaches.
        looped = mixer.init_state(2, "cpu", F64)
        for t in range(17):
            _, looped = mixer.step(x[:, t], looped)
        torch.testing.assert_close(state, looped, rtol=0, atol=1e-13 * looped.abs().max().item())
        rest = []
        for t in range(17, 30):
            y_t, state = mixer.step(x[:, t], state)
            rest.append(y_t)
    torch.testing.assert_close(torch.stack(rest, dim=1), expected[:, 17:], rtol=0, atol=1e-12)


@pytest.mark.parametrize(("cls", "options"), VARIANTS[:2])
def test_the_future_never_reaches_the_past(cls: type[SSMLayer], options: dict) -> None:
    mixer = build(cls, options)
    x = torch.randn(1, 40, 12, dtype=F64)
    changed = x.clone()
    changed[:, 25:] += 10 * torch.randn_like(changed[:, 25:])
    with torch.no_grad():
        y, y_changed = mixer(x), mixer(changed)
    # The FFT mixes every position's rounding error into every other: 1e-13 of the largest input.
    torch.testing.assert_close(y_changed[:, :25], y[:, :25], rtol=0, atol=1e-13 * changed.abs().max().item())
    assert (y_changed[:, 25:] - y[:, 25:]).abs().max() > 1e-3


@pytest.mark.parametrize(("cls", "options"), VARIANTS[:2])
def test_core_call_is_the_convolution_inside_forward(cls: type[SSMLayer], options: dict) -> None:
    mixer = build(cls, options)
    x = torch.randn(2, 21, 12, dtype=F64)
    with torch.no_grad():
        y_ssm = mixer.core_call(x).run()  # (batch, H, L)
        u = x.transpose(1, 2)
        y = mixer.out_proj(F.gelu(y_ssm + mixer.D[:, None] * u).transpose(1, 2))
        torch.testing.assert_close(y, mixer(x), rtol=0, atol=1e-14)


def test_low_precision_keeps_the_ssm_in_float32() -> None:
    reference = build(S4, {})
    mixer = S4(reference.config)
    mixer.load_state_dict(reference.state_dict())
    mixer = mixer.to(torch.bfloat16)
    assert mixer.out_proj.weight.dtype == torch.bfloat16
    for name, param in mixer.named_parameters(recurse=False):
        assert param.dtype == torch.float32, name
        # Rounded once from float64 to float32, never through bfloat16.
        torch.testing.assert_close(param, getattr(reference, name).float(), rtol=0, atol=0)
    x = torch.randn(2, 32, 12, dtype=F64)
    with torch.no_grad():
        y = mixer(x.to(torch.bfloat16))
        assert y.dtype == torch.bfloat16
        assert rms_ratio(y, reference(x)) < 2e-2  # bfloat16 activations and projection only
        assert mixer.init_state(2, "cpu", torch.bfloat16).dtype == torch.complex64


def test_s4d_initialisations() -> None:
    N = 8
    A_lin, B_lin = s4d_init("lin", N)
    torch.testing.assert_close(
        A_lin, torch.complex(torch.full((4,), -0.5, dtype=F64), torch.pi * torch.arange(4.0, dtype=F64))
    )
    A_inv, _ = s4d_init("inv", N)
    n = torch.arange(4, dtype=F64)
    torch.testing.assert_close(A_inv.imag, N / torch.pi * (N / (2 * n + 1) - 1))
    assert torch.equal(B_lin, torch.ones(4, dtype=torch.complex128))
    # S4D-Inv's frequencies are a closed-form approximation of HiPPO-LegS's diagonal part (S4D-LegS):
    # measured largest relative difference 0.22 at N = 16 and 64.
    for size in (16, 64):
        legs = s4d_init("legs", size)[0].imag.flip(0)  # descending, like S4D-Inv's
        inv = s4d_init("inv", size)[0].imag
        assert ((legs - inv).abs() / legs).max() < 0.25
    with pytest.raises(ConfigError, match=r"^init: unknown S4D initialisation 'fourier'"):
        s4d_init("fourier", N)


@pytest.mark.parametrize(
    ("cls", "options", "d_state", "field"),
    [
        (S4, {}, 7, "d_state"),
        (S4D, {}, 1, "d_state"),
        (S4, {"dt_min": 0.0}, 8, "dt_min"),
        (S4D, {"dt_min": 0.1, "dt_max": 0.01}, 8, "dt_max"),
        (S4D, {"alpha": 1.5, "discretization": "bilinear"}, 8, "alpha"),
        (S4D, {"alpha": 0.0}, 8, "alpha"),  # alpha without the bilinear transform would be ignored
        (S4D, {"discretization": "euler"}, 8, "discretization"),
        (S4D, {"init": "random"}, 8, "init"),
        (S4, {"init": "lin"}, 8, "options"),  # S4 has no S4D options: a typo must not pass silently
    ],
)
def test_bad_configurations_are_one_line_errors(cls: type[SSMLayer], options: dict, d_state: int, field: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{field}: ") as error:
        cls(MixerConfig(d_model=4, d_state=d_state).with_options(**options))
    assert "\n" not in str(error.value)


def test_empty_sequence_is_a_one_line_error() -> None:
    mixer = build(S4, {})
    with pytest.raises(ConfigError, match=r"^seq_len: the sequence length must be >= 1, got 0"):
        mixer(torch.zeros(1, 0, 12, dtype=F64))


def test_analytic_models_match_the_tensors() -> None:
    config = MixerConfig(d_model=12, d_state=8)
    mixer = S4(config)
    for dtype, complex_dtype in ((torch.float32, torch.complex64), (F64, torch.complex128)):
        state = torch.zeros(3, 12, 4, dtype=complex_dtype)  # what init_state allocates
        assert ssm_state_bytes(config, 3, 10, dtype) == state.numel() * state.element_size()
        assert ssm_state_bytes(config, 3, 10_000, dtype) == ssm_state_bytes(config, 3, 10, dtype)  # constant in L
    assert mixer.init_state(3, "cpu", torch.float32).shape == (3, 12, 4)
    for name in ("s4/reference", "s4/s4d_reference"):
        impl = registry.get(name)
        for seq_len in (64, 4096):
            fwd = impl.flops(config, 2, seq_len, "fwd")
            assert impl.flops(config, 2, seq_len, "fwd_bwd") == pytest.approx(3 * fwd)
            assert impl.flops(config, 2, seq_len, "prefill") > fwd
            assert 0 < impl.flops(config, 2, seq_len, "fwd", core=True) < fwd
            assert impl.min_bytes(config, 2, seq_len, "decode", torch.bfloat16) < impl.min_bytes(
                config, 2, seq_len, "fwd", torch.bfloat16
            )
    # Projection FLOPs dominate at d_model >> d_state: 2 B L H^2 of the output projection.
    wide = MixerConfig(d_model=1024, d_state=16)
    assert s4_flops(wide, 1, 2048, "fwd") == pytest.approx(2 * 2048 * 1024**2, rel=0.5)


def test_registry_pairs_each_gpu_path_with_its_reference() -> None:
    assert registry.get("s4/cufft").reference == "s4/reference"
    assert registry.get("s4/s4d_cufft").reference == "s4/s4d_reference"
    assert registry.get("s4/cufft").availability("cpu").reason == "runs on cuda only, not cpu"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(("cls", "options"), VARIANTS[:2])
def test_cuda_matches_cpu_float64(cls: type[SSMLayer], options: dict) -> None:
    mixer = build(cls, options)
    x = torch.randn(2, 256, 12, dtype=F64)
    with torch.no_grad():
        expected = mixer(x)
        gpu = mixer.to("cuda", torch.float32)
        assert rms_ratio(gpu(x.to("cuda", torch.float32)), expected) < 1e-4


@pytest.mark.parametrize("cls", [S4, S4D])
def test_the_glu_output_with_a_closed_gate_is_half_the_gelu_output(cls: type[SSMLayer]) -> None:
    """output = "glu": GLU(W' GELU(.) + b') with W' = [W; 0], b' = [b; 0] is (W GELU(.) + b) sigmoid(0), half
    the default output from the same SSM: the gate and its wiring against a closed form."""
    gelu, glu = build(cls, {}), build(cls, {"output": "glu"})
    assert glu.out_proj.weight.shape == (24, 12)
    with torch.no_grad():
        state = {k: v for k, v in gelu.state_dict().items() if not k.startswith("out_proj.")}
        glu.load_state_dict(state, strict=False)
        glu.out_proj.weight.copy_(torch.cat([gelu.out_proj.weight, torch.zeros_like(gelu.out_proj.weight)]))
        glu.out_proj.bias.copy_(torch.cat([gelu.out_proj.bias, torch.zeros_like(gelu.out_proj.bias)]))
        x = torch.randn(2, 20, 12, dtype=F64)
        torch.testing.assert_close(glu(x), 0.5 * gelu(x), rtol=0, atol=1e-14)
    with pytest.raises(ConfigError, match="output: must be one of gelu, glu, got 'relu'"):
        build(cls, {"output": "relu"})


def test_the_glu_output_in_the_cost_model() -> None:
    """Per token the GLU adds a second H x H projection (2 H^2 FLOPs), its bias (H) and the gate (2 H)."""
    config = MixerConfig(d_model=12, d_state=8)
    extra = s4_flops(config.with_options(output="glu"), 3, 40, "fwd") - s4_flops(config, 3, 40, "fwd")
    assert extra == pytest.approx(3 * 40 * (2 * 12 * 12 + 12 + 2 * 12))
