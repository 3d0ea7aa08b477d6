"""The xlstm family's mixers: step == forward, prefill + step == forward, causality, the seqbench check of
every implementation runnable here (mlstm_kernels' native kernels as an op-level adapter, and the xlstm
package's layer where installed), bad configurations, the Triton-version probe, and the analytic models
against the real state tensors."""

from __future__ import annotations

import sys

import pytest
import torch

from harness import registry
from harness.check import TESTS, compare_with_reference, run_checks
from harness.config import MixerConfig
from harness.errors import ConfigError
from harness.interface import run_recurrent
from harness.numerics import rms_ratio, tolerance
from implementations.xlstm import requirements
from implementations.xlstm.mlstm_kernels_adapters import MLSTMKernelsBlock
from implementations.xlstm.reference import (
    build_mlstm_large_reference,
    build_mlstm_reference,
    build_mlstm_sig_reference,
    build_slstm_reference,
)
from implementations.xlstm.specs import IMPLEMENTATIONS

F64 = torch.float64
CONFIG = MixerConfig(d_model=32, n_heads=4, chunk_size=8)
BATCH, SEQ_LEN = 2, 19  # not a multiple of the chunk size
REFERENCE_VARIANTS = {
    "mlstm chunkwise": (build_mlstm_reference, {}),
    "mlstm parallel": (build_mlstm_reference, {"mlstm_form": "parallel"}),
    "mlstm exponential forget gate": (build_mlstm_reference, {"forget_gate": "exponential"}),
    "mlstm sigmoid input gate": (build_mlstm_sig_reference, {}),
    "slstm": (build_slstm_reference, {}),
    "slstm exponential forget gate": (build_slstm_reference, {"forget_gate": "exponential"}),
    "mlstm large": (build_mlstm_large_reference, {}),
}


def _build(builder, options, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return builder(CONFIG.with_options(**options)).to(F64).eval()


def _x(seq_len: int = SEQ_LEN, seed: int = 1) -> torch.Tensor:
    return torch.randn(BATCH, seq_len, CONFIG.d_model, generator=torch.Generator().manual_seed(seed), dtype=F64)


@pytest.mark.parametrize("variant", REFERENCE_VARIANTS)
def test_step_and_prefill_equal_forward(variant: str) -> None:
    mixer = _build(*REFERENCE_VARIANTS[variant])
    x = _x()
    with torch.no_grad():
        expected = mixer(x)
        assert rms_ratio(run_recurrent(mixer, x), expected) < tolerance(F64)
        for split in (5, 8):  # inside the first chunk, and on a chunk boundary
            y_first, state = mixer.prefill(x[:, :split])
            rest = []
            for t in range(split, SEQ_LEN):
                y_t, state = mixer.step(x[:, t], state)
                rest.append(y_t)
            assert rms_ratio(torch.cat([y_first, torch.stack(rest, dim=1)], dim=1), expected) < tolerance(F64)


@pytest.mark.parametrize("variant", REFERENCE_VARIANTS)
def test_references_are_causal(variant: str) -> None:
    mixer = _build(*REFERENCE_VARIANTS[variant])
    x = _x()
    changed = x.clone()
    changed[:, 11:] += 3 * torch.randn_like(changed[:, 11:])
    with torch.no_grad():
        y, y_changed = mixer(x), mixer(changed)
    torch.testing.assert_close(y_changed[:, :11], y[:, :11], rtol=1e-12, atol=1e-12)
    assert (y_changed[:, 11:] - y[:, 11:]).abs().max() > 1e-3


def test_parallel_and_chunkwise_blocks_compute_the_same_function() -> None:
    chunkwise = _build(build_mlstm_reference, {})
    parallel = _build(build_mlstm_reference, {"mlstm_form": "parallel"})
    parallel.load_reference_weights(chunkwise)
    x = _x()
    with torch.no_grad():
        assert rms_ratio(parallel(x), chunkwise(x)) < tolerance(F64)


def test_sigmoid_input_gate_is_a_different_function() -> None:
    exponential, sigmoid = _build(build_mlstm_reference, {}), _build(build_mlstm_sig_reference, {})
    sigmoid.load_reference_weights(exponential)
    with torch.no_grad():
        assert rms_ratio(sigmoid(_x()), exponential(_x())) > 1e-2


def test_core_call_computes_the_core_of_forward() -> None:
    # The native-kernel adapter's core op and the reference's core op compute the same h from the same x.
    reference = _build(build_mlstm_reference, {})
    native = registry.get("xlstm/mlstm_kernels_native")
    if not native.availability("cpu"):
        pytest.skip(native.availability("cpu").reason)
    adapter = native.create(CONFIG).to(F64).eval()
    adapter.load_reference_weights(reference)
    x = _x(seq_len=16)
    with torch.no_grad():
        h_ref, h_lib = reference.core_call(x).run(), adapter.core_call(x).run()
    assert h_ref.shape == (BATCH, CONFIG.n_heads, 16, CONFIG.d_inner // CONFIG.n_heads)
    assert rms_ratio(h_lib, h_ref) < tolerance(F64)
    slstm = _build(build_slstm_reference, {})
    with torch.no_grad():
        h, _ = slstm.core_call(x).run()
        assert rms_ratio(slstm.norm(h), slstm(x)) < tolerance(F64)


# ---------------------------------------------------------------------------------------------
# seqbench check, in this process (fast) for the CPU implementations


# The adapters (the references are checked against themselves by the tests above).
CPU_ADAPTERS = [impl.name for impl in IMPLEMENTATIONS if not impl.is_reference and impl.availability("cpu")]


@pytest.mark.parametrize("name", CPU_ADAPTERS)
def test_seqbench_check_passes_on_cpu(name: str) -> None:
    config = {**MixerConfig(d_model=32, n_heads=4, chunk_size=8).__dict__}
    rows = compare_with_reference(name, "cpu", "float64", config, batch=2, seq_len=20, seed=0)
    assert [row["test"] for row in rows] == list(TESTS)  # forward forms, then the gradients
    failed = [(row["test"], row["reason"]) for row in rows if not row["passed"]]
    assert not failed, failed


def test_native_kernel_adapter_in_float32_against_the_float64_reference() -> None:
    native = registry.get("xlstm/mlstm_kernels_native")
    if not native.availability("cpu"):
        pytest.skip(native.availability("cpu").reason)
    reference = _build(build_mlstm_reference, {})
    adapter = native.create(CONFIG).float().eval()
    adapter.load_reference_weights(reference)
    x = _x()
    with torch.no_grad():
        expected = reference(x)
        assert rms_ratio(adapter(x.float()), expected) < tolerance(torch.float32)
        assert rms_ratio(run_recurrent(adapter, x.float()), expected) < tolerance(torch.float32)


@pytest.mark.gpu
def test_seqbench_check_passes_on_gpu() -> None:
    impls = [impl for impl in IMPLEMENTATIONS if impl.availability("cuda")]
    rows, _ = run_checks(impls, device="cuda")
    failed = [(row.implementation, row.test, row.reason) for row in rows if not row.passed]
    assert not failed, failed


# ---------------------------------------------------------------------------------------------
# bad configurations: one-line errors naming the field


@pytest.mark.parametrize(
    ("build", "config"),
    [
        (build_mlstm_reference, MixerConfig(d_model=32, n_heads=4, head_dim=8)),  # heads split expand·d_model
        (build_mlstm_reference, MixerConfig(d_model=30, n_heads=3, expand=1).with_options(qkv_blocksize=4)),
        (build_mlstm_reference, CONFIG.with_options(mlstm_form="quadratic")),
        (build_mlstm_reference, CONFIG.with_options(input_gate="relu")),
        (build_mlstm_reference, CONFIG.with_options(eps=-1.0)),
        (build_mlstm_reference, CONFIG.with_options(chunk=64)),  # unknown option
        (build_mlstm_sig_reference, CONFIG.with_options(input_gate="exponential")),
        (build_slstm_reference, MixerConfig(d_model=32, n_heads=4, head_dim=16)),
        (build_slstm_reference, CONFIG.with_options(forget_gate="relu")),
        (build_mlstm_large_reference, MixerConfig(d_model=36, n_heads=4)),  # q/k width 18: not divisible by 4
        (build_mlstm_large_reference, CONFIG.with_options(input_gate="sigmoid")),
    ],
)
def test_bad_configurations_are_one_line_config_errors(build, config: MixerConfig) -> None:
    with pytest.raises(ConfigError) as info:
        build(config)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("kernel", "config", "field"),
    [
        ("chunkwise--triton_limit_chunk", MixerConfig(d_model=16, n_heads=4), "head_dim"),  # d_head 8 < 16
        ("chunkwise--triton_limit_chunk", MixerConfig(d_model=48, n_heads=1), "head_dim"),  # 96: not 2^k, not 64·k
        ("chunkwise--triton_limit_chunk", MixerConfig(d_model=64, n_heads=2, chunk_size=128), "chunk_size"),
        ("chunkwise--triton_xl_chunk", MixerConfig(d_model=64, n_heads=2, chunk_size=32), "chunk_size"),
        (
            "chunkwise--triton_xl_chunk",
            MixerConfig(d_model=64, n_heads=2).with_options(forget_gate="exponential"),
            "options",
        ),
        ("chunkwise--triton_xl_chunk_siging", MixerConfig(d_model=64, n_heads=2), "options"),  # exponential input gate
        (
            "chunkwise--native_autograd",
            MixerConfig(d_model=64, n_heads=2).with_options(input_gate="sigmoid"),
            "options",
        ),
    ],
)
def test_kernel_adapters_reject_what_the_kernels_cannot_take(kernel: str, config: MixerConfig, field: str) -> None:
    # Raised while building, before mlstm_kernels or triton is imported: runs on any machine.
    with pytest.raises(ConfigError) as info:
        MLSTMKernelsBlock(config, kernel, None)
    assert info.value.field == field and "\n" not in str(info.value)


def test_triton_head_dims_that_the_kernels_take_are_accepted() -> None:
    for d_model, n_heads in ((64, 8), (64, 2), (96, 1)):  # d_head 16, 64, 192 = 3·64
        MLSTMKernelsBlock(MixerConfig(d_model=d_model, n_heads=n_heads), "chunkwise--triton_limit_chunk", "triton")


# ---------------------------------------------------------------------------------------------
# the Triton-version probe


def test_xl_chunk_probe_names_the_abort_and_the_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(requirements.FORCE_UNSAFE_ENV, raising=False)
    monkeypatch.setattr(requirements, "triton_version", lambda: "3.6.0")
    reason = requirements.xl_chunk("cuda", torch.bfloat16)
    assert reason and "SIGABRT" in reason and "3.6.0" in reason and requirements.FORCE_UNSAFE_ENV in reason
    assert "\n" not in reason
    monkeypatch.setenv(requirements.FORCE_UNSAFE_ENV, "1")
    assert requirements.xl_chunk("cuda", torch.bfloat16) is None
    monkeypatch.delenv(requirements.FORCE_UNSAFE_ENV)
    for version in ("3.5.1", "3.7.0", None, "not-a-version"):
        monkeypatch.setattr(requirements, "triton_version", lambda version=version: version)
        assert requirements.xl_chunk("cuda", torch.bfloat16) is None, version


def test_triton_version_is_read_without_importing_triton() -> None:
    imported_before = "triton" in sys.modules
    requirements.triton_version()
    assert ("triton" in sys.modules) == imported_before
    assert registry.get("xlstm/mlstm_kernels_xl_chunk").requirement == "implementations.xlstm.requirements:xl_chunk"


def test_every_kernel_adapter_is_listed_with_a_reason_when_it_cannot_run() -> None:
    names = {impl.name for impl in registry.select(families_=["xlstm"])}
    for name in ("mlstm_kernels_limit_chunk", "mlstm_kernels_xl_chunk", "mlstm_kernels_xl_chunk_siging"):
        assert f"xlstm/{name}" in names
    for impl in IMPLEMENTATIONS:
        availability = impl.availability("cuda", torch.bfloat16)
        assert availability.ok or (availability.reason and "\n" not in availability.reason)


# ---------------------------------------------------------------------------------------------
# analytic models


def _state_bytes(state) -> int:
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    return sum(_state_bytes(part) for part in state)


@pytest.mark.parametrize("name", ["xlstm/mlstm_reference", "xlstm/slstm_reference", "xlstm/mlstm_large_reference"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_state_bytes_model_counts_the_real_state_and_is_constant_in_length(name: str, dtype: torch.dtype) -> None:
    impl = registry.get(name)
    mixer = impl.create(CONFIG)
    measured = _state_bytes(mixer.init_state(3, "cpu", dtype))
    assert impl.state_bytes(CONFIG, 3, 10, dtype) == measured
    assert impl.state_bytes(CONFIG, 3, 100_000, dtype) == measured


def test_flop_models_scale_as_the_algorithms_do() -> None:
    impl = registry.get("xlstm/mlstm_reference")
    fwd_1k, fwd_2k = (impl.flops(CONFIG, 1, n, "fwd") for n in (1024, 2048))
    assert fwd_2k == pytest.approx(2 * fwd_1k)  # chunkwise: linear in L
    assert impl.flops(CONFIG, 1, 1024, "fwd_bwd") == pytest.approx(3 * fwd_1k)
    assert impl.flops(CONFIG, 1, 1024, "decode") == impl.flops(CONFIG, 1, 4096, "decode")  # constant state
    assert 0 < impl.flops(CONFIG, 1, 1024, "fwd", core=True) < fwd_1k
    # Core bytes: q, k, v, h (d_head each), i, f per step and head.
    d_head = CONFIG.d_inner // CONFIG.n_heads
    expected = 1 * CONFIG.n_heads * 1024 * (4 * d_head + 2) * 2
    assert impl.min_bytes(CONFIG, 1, 1024, "fwd", torch.bfloat16, core=True) == expected
