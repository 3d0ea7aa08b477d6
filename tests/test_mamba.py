"""Mamba (S6) against independent truths: closed forms of the recurrence, a materialised quadratic
formula, the sequential loop vs the parallel scan in float64, step == forward for the block, and
one-line errors for bad input."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from harness.config import MixerConfig
from harness.errors import ConfigError
from harness.interface import run_recurrent
from implementations.mamba import MambaReference, linear_recurrence_scan, selective_scan
from implementations.mamba.specs import mamba_core_flops, mamba_flops, reference_state_bytes
from implementations.mamba_ssm_import import SELECTIVE_SCAN_MISSING, selective_scan_probe, selective_scan_stub

F64 = torch.float64
TIGHT = {"rtol": 1e-11, "atol": 1e-12}  # float64: a few hundred roundings of O(1) terms


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These tensors are tiny: OpenMP threads only add synchronisation, and on a busy 2-core machine a
    small float64 matmul took ~40 ms with 2 threads against 0.03 ms with 1."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def scan_inputs(batch: int = 2, d: int = 6, n: int = 4, length: int = 70, groups: int | None = None, seed: int = 0):
    """Random selective-scan inputs in float64; B, C grouped when `groups` is given."""
    g = torch.Generator().manual_seed(seed)
    shape_bc = (batch, n, length) if groups is None else (batch, groups, n, length)
    return {
        "u": torch.randn(batch, d, length, generator=g, dtype=F64),
        "delta": torch.randn(batch, d, length, generator=g, dtype=F64),
        "A": -torch.rand(d, n, generator=g, dtype=F64) * 3,
        "B": torch.randn(*shape_bc, generator=g, dtype=F64),
        "C": torch.randn(*shape_bc, generator=g, dtype=F64),
        "D": torch.randn(d, generator=g, dtype=F64),
        "z": torch.randn(batch, d, length, generator=g, dtype=F64),
        "delta_bias": torch.randn(d, generator=g, dtype=F64),
    }


# -- the selective scan ---------------------------------------------------------------------------


@pytest.mark.parametrize("groups", [None, 1, 3])
def test_sequential_and_parallel_forms_agree_in_float64(groups: int | None) -> None:
    # L = 70 spans two chunks of the parallel form, the second one partial.
    inputs = scan_inputs(groups=groups)
    y_seq, h_seq = selective_scan(**inputs, delta_softplus=True, return_last_state=True, form="sequential")
    y_par, h_par = selective_scan(**inputs, delta_softplus=True, return_last_state=True, form="parallel")
    torch.testing.assert_close(y_par, y_seq, **TIGHT)
    torch.testing.assert_close(h_par, h_seq, **TIGHT)


def test_scan_equals_the_materialised_quadratic_formula() -> None:
    # y_t = Σ_{s<=t} Σ_n C_t[n] exp(Σ_{r=s+1..t} Δ_r A[n]) Δ_s B_s[n] u_s + D u_t, then the gate.
    inputs = scan_inputs(batch=1, d=3, n=2, length=9)
    u, A, B, C, D, z = (inputs[k] for k in ("u", "A", "B", "C", "D", "z"))
    delta = F.softplus(inputs["delta"] + inputs["delta_bias"][:, None])
    expected = torch.zeros_like(u)
    for t in range(u.shape[-1]):
        for s in range(t + 1):
            decay = torch.exp(delta[0, :, s + 1 : t + 1].sum(-1)[:, None] * A)  # (d, n)
            expected[0, :, t] += (C[0, :, t] * decay * delta[0, :, s, None] * B[0, :, s]).sum(-1) * u[0, :, s]
    expected = (expected + D[:, None] * u) * F.silu(z)
    torch.testing.assert_close(selective_scan(**inputs, delta_softplus=True), expected, **TIGHT)


def test_constant_input_has_the_geometric_series_closed_form() -> None:
    # n = 1, Δ, A, B = C = u = 1 constant: h_t = Δ (1 - e^{AΔ(t+1)}) / (1 - e^{AΔ}).
    length, step, a = 50, 0.3, -0.7
    ones = torch.ones(1, 1, length, dtype=F64)
    y = selective_scan(ones, step * ones, torch.tensor([[a]], dtype=F64), ones[:, :1], ones[:, :1])
    t = torch.arange(length, dtype=F64)
    expected = step * (1 - math.e ** (a * step * (t + 1))) / (1 - math.exp(a * step))
    torch.testing.assert_close(y[0, 0], expected, **TIGHT)


def test_linear_recurrence_scan_matches_the_loop() -> None:
    g = torch.Generator().manual_seed(3)
    a, b = torch.rand(4, 37, generator=g, dtype=F64), torch.randn(4, 37, generator=g, dtype=F64)
    decay_prefix, h = linear_recurrence_scan(a, b, dim=-1)
    state = torch.zeros(4, dtype=F64)
    for t in range(37):
        state = a[:, t] * state + b[:, t]
        torch.testing.assert_close(h[:, t], state, **TIGHT)
    torch.testing.assert_close(decay_prefix, a.cumprod(-1), **TIGHT)


def test_low_precision_inputs_keep_a_float32_state_and_the_input_dtype() -> None:
    inputs = {
        k: v.to(torch.bfloat16) if k in ("u", "delta", "B", "C", "z") else v.float() for k, v in scan_inputs().items()
    }
    y, h = selective_scan(**inputs, delta_softplus=True, return_last_state=True)
    assert y.dtype == torch.bfloat16 and h.dtype == torch.float32
    reference = selective_scan(**{k: v.double() for k, v in inputs.items()}, delta_softplus=True)
    relative = (y.double() - reference).norm() / reference.norm()
    assert relative < 1e-2  # bf16 output rounding (2^-9) plus bf16 inputs; the state itself is float32


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"delta": torch.zeros(2, 6, 69, dtype=F64)}, "delta"),
        ({"B": torch.zeros(2, 4, 69, dtype=F64)}, "B"),
        ({"C": torch.zeros(2, 5, 70, dtype=F64)}, "C"),
        ({"A": torch.zeros(5, 4, dtype=F64)}, "A"),
        ({"A": torch.zeros(6, 4, dtype=torch.complex128)}, "A"),
        ({"B": torch.zeros(2, 4, 4, 70, dtype=F64), "C": torch.zeros(2, 4, 4, 70, dtype=F64)}, "B"),
        ({"B": torch.zeros(2, 2, 4, 70, dtype=F64), "C": torch.zeros(2, 3, 4, 70, dtype=F64)}, "C"),
        ({"D": torch.zeros(5, dtype=F64)}, "D"),
        ({"z": torch.zeros(2, 6, 71, dtype=F64)}, "z"),
        ({"u": torch.zeros(2, 6, dtype=F64)}, "u"),
    ],
)
def test_bad_shapes_are_one_line_errors_naming_the_argument(change: dict, field: str) -> None:
    inputs = scan_inputs() | change
    with pytest.raises(ConfigError) as caught:
        selective_scan(**inputs)
    message = str(caught.value)
    assert message.startswith(f"{field}:") and "\n" not in message


def test_unknown_form_is_an_error() -> None:
    with pytest.raises(ConfigError, match="form"):
        selective_scan(**scan_inputs(), form="blelloch")


# -- the block ------------------------------------------------------------------------------------

CONFIG = MixerConfig(d_model=32, n_heads=2, d_state=8)


def _block(config: MixerConfig = CONFIG, seed: int = 0) -> MambaReference:
    torch.manual_seed(seed)
    return MambaReference(config).double().eval()


@pytest.mark.parametrize("config", [CONFIG, MixerConfig(d_model=16, n_heads=2, d_state=4, d_conv=1, expand=1)])
def test_block_step_equals_forward(config: MixerConfig) -> None:
    block = _block(config)
    x = torch.randn(2, 21, config.d_model, dtype=F64)
    with torch.no_grad():
        torch.testing.assert_close(run_recurrent(block, x), block(x), **TIGHT)


@pytest.mark.parametrize("prompt_len", [1, 2, 9])  # shorter and longer than the conv window (3 past inputs)
def test_block_prefill_then_step_equals_forward(prompt_len: int) -> None:
    block = _block()
    x = torch.randn(2, 14, CONFIG.d_model, dtype=F64)
    with torch.no_grad():
        y_prompt, state = block.prefill(x[:, :prompt_len])
        rest = []
        for t in range(prompt_len, x.shape[1]):
            y_t, state = block.step(x[:, t], state)
            rest.append(y_t)
        torch.testing.assert_close(torch.cat([y_prompt, torch.stack(rest, 1)], 1), block(x), **TIGHT)
    assert state.conv.shape == (2, CONFIG.d_inner, CONFIG.d_conv - 1)
    assert state.ssm.shape == (2, CONFIG.d_inner, CONFIG.d_state)


def test_sequential_scan_option_gives_the_same_block() -> None:
    parallel, sequential = _block(), _block(CONFIG.with_options(scan="sequential"))
    sequential.load_state_dict(parallel.state_dict())
    x = torch.randn(2, 11, CONFIG.d_model, dtype=F64)
    with torch.no_grad():
        torch.testing.assert_close(sequential(x), parallel(x), **TIGHT)


def test_core_call_computes_the_forward_core() -> None:
    block = _block()
    x = torch.randn(2, 11, CONFIG.d_model, dtype=F64)
    with torch.no_grad():
        y = block.core_call(x).run()  # (batch, d_inner, L): the gated scan output
        torch.testing.assert_close(block.out_proj(y.transpose(1, 2)), block(x), **TIGHT)


def test_initialisation_follows_the_paper() -> None:
    block = MambaReference(CONFIG.with_options(dt_min=0.002, dt_max=0.05))
    dt = F.softplus(block.dt_proj.bias.detach())
    assert dt.min() >= 0.002 * (1 - 1e-5) and dt.max() <= 0.05 * (1 + 1e-5)
    A = -torch.exp(block.A_log.detach())
    torch.testing.assert_close(A, -torch.arange(1, 9, dtype=torch.float32).repeat(CONFIG.d_inner, 1))
    assert block.dt_rank == math.ceil(32 / 16) and torch.all(block.D == 1)
    # parameter names are mamba_ssm.Mamba's, so the layer adapter loads this state dict as is
    assert set(block.state_dict()) == {
        "in_proj.weight",
        "conv1d.weight",
        "conv1d.bias",
        "x_proj.weight",
        "dt_proj.weight",
        "dt_proj.bias",
        "A_log",
        "D",
        "out_proj.weight",
    }


def test_bad_options_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="does not know option"):
        MambaReference(CONFIG.with_options(dt_rnak=4))
    with pytest.raises(ConfigError, match="dt_min"):
        MambaReference(CONFIG.with_options(dt_min=0.5, dt_max=0.1))
    with pytest.raises(ConfigError, match="scan"):
        MambaReference(CONFIG.with_options(scan="fast"))


# -- cost models and kernel availability ------------------------------------------------------------


def test_state_is_constant_in_context_length_and_costs_scale_linearly() -> None:
    assert reference_state_bytes(CONFIG, 2, 16, torch.bfloat16) == reference_state_bytes(
        CONFIG, 2, 1 << 20, torch.bfloat16
    )
    # conv window (E·(K-1) bf16) + SSM state (E·N float32), per sequence
    assert reference_state_bytes(CONFIG, 1, 1, torch.bfloat16) == 64 * 3 * 2 + 64 * 8 * 4
    assert mamba_flops(CONFIG, 2, 2048, "fwd") == pytest.approx(2 * mamba_flops(CONFIG, 2, 1024, "fwd"))
    assert mamba_flops(CONFIG, 2, 16, "decode") == mamba_flops(CONFIG, 2, 1 << 20, "decode")
    assert 0 < mamba_core_flops(CONFIG, 2, 64, "fwd") < mamba_flops(CONFIG, 2, 64, "fwd")


def test_missing_extension_is_reported_and_the_stub_fails_only_when_used(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # an empty cache
    monkeypatch.setattr("implementations.mamba_ssm_import.extension_installed", lambda name: False)
    assert selective_scan_probe() == SELECTIVE_SCAN_MISSING
    stub = selective_scan_stub()
    with pytest.raises(AttributeError, match="seqbench kernels build"):
        stub.fwd  # noqa: B018
