"""`seqbench check` on planted implementations: a wrong function fails, an abort becomes a crash row and
the checks after it still run."""

from __future__ import annotations

import pytest
import torch

from harness import registry
from harness.check import (
    FORWARD_TESTS,
    GRADIENT_TESTS,
    TESTS,
    CheckRow,
    compare_with_reference,
    gradient_tolerances,
    move_to_generic_point,
    pair_parameters,
    run_checks,
)
from harness.config import MixerConfig

PLANTED = "tests.planted_check_specs"


@pytest.fixture
def planted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(registry.EXTRA_SPECS_ENV, PLANTED)


def test_abort_is_isolated_and_wrong_function_fails(planted: None) -> None:
    impls = registry.select(["planted/abort", "planted/wrong", "planted/reference"])
    rows, skipped = run_checks(impls, "cpu", config=MixerConfig(d_model=16, n_heads=2), seq_len=8)
    assert not skipped
    by_name = {
        name: [r for r in rows if r.implementation == name]
        for name in ("planted/abort", "planted/wrong", "planted/reference")
    }
    assert all(len(r) == len(TESTS) for r in by_name.values())
    assert {r.status for r in by_name["planted/abort"]} == {"crash"}
    assert by_name["planted/abort"][0].reason.startswith("worker killed by SIGABRT")
    assert all(r.status == "failed" and not r.passed for r in by_name["planted/wrong"])
    assert all(0.005 < r.rms_ratio < 0.02 for r in by_name["planted/wrong"])  # 1% off, measured as ~1%
    assert all(r.passed for r in by_name["planted/reference"])  # ran after the crash, in a fresh worker


def test_several_workers_give_the_same_rows_in_the_same_order() -> None:
    """Several worker processes taking the next implementation (as on a GPU) change when the checks run,
    not what they find: the rows equal one process's, in the order of the implementations asked for."""
    impls = registry.select(["mamba/reference", "attention/sdpa_math", "attention/reference", "s4/s4d_reference"])
    small = MixerConfig(d_model=16, n_heads=2)
    one, _ = run_checks(impls, "cpu", (torch.float64,), config=small, seq_len=8, workers=1)
    several, _ = run_checks(impls, "cpu", (torch.float64,), config=small, seq_len=8, workers=3)
    assert [r.implementation for r in several][:: len(TESTS)] == [impl.name for impl in impls]
    assert [r.to_dict() for r in several] == [r.to_dict() for r in one]


def test_compare_with_reference_in_process() -> None:
    config = {**MixerConfig(d_model=16, n_heads=2).__dict__}
    rows = compare_with_reference("attention/sdpa_math", "cpu", "float32", config, batch=2, seq_len=12, seed=3)
    assert [r["test"] for r in rows] == list(TESTS)
    for row in rows:
        assert row["passed"], row
        assert row["tolerance"] == 1e-4 and row["rms_ratio"] < 1e-5


@pytest.mark.gpu
def test_fast_attention_backends_on_gpu() -> None:
    impls = [
        i for i in registry.implementations() if i.family == "attention" and i.availability("cuda", torch.bfloat16)
    ]
    rows, _ = run_checks(impls, "cuda", (torch.bfloat16,))
    failed = [r for r in rows if not r.passed]
    assert not failed, failed


def test_wrong_backward_fails_the_gradient_tests_only(planted: None) -> None:
    """A right forward with a backward scaled by 0.9 passes the three forward tests and fails both gradient
    tests with an error of ~10% (the input gradient and every parameter before the output projection)."""
    config = {**MixerConfig(d_model=16, n_heads=2).__dict__}
    rows = {r["test"]: r for r in compare_with_reference("planted/wrong_grad", "cpu", "float64", config, 2, 8, 0)}
    assert all(rows[t]["passed"] for t in FORWARD_TESTS)
    for test in GRADIENT_TESTS:
        assert rows[test]["status"] == "failed", rows[test]
        assert 0.09 < rows[test]["rms_ratio"] < 0.11  # 1 - 0.9, as planted
    # The output projection's own gradient sees the unscaled output: it pairs and passes.
    assert "out_proj.weight=" in rows["grad_params"]["detail"]


@pytest.mark.parametrize(
    ("name", "verdict"), [("planted/coarse_grad", "in float32 it passes"), ("planted/wrong_grad", "fails too")]
)
def test_a_bf16_gradient_failure_says_what_float32_finds(planted: None, name: str, verdict: str) -> None:
    """A grad_params failure in bf16 carries the float32 comparison of the same gradients: a backward that
    only rounds worse in bf16 passes there, a wrong backward fails there too. The row stays failed."""
    config = {**MixerConfig(d_model=16, n_heads=2).__dict__}
    rows = {r["test"]: r for r in compare_with_reference(name, "cpu", "bfloat16", config, 2, 8, 0)}
    assert rows["grad_params"]["status"] == "failed" and verdict in rows["grad_params"]["reason"], rows
    assert "in float32" not in rows["grad_input"]["reason"]  # only grad_params gets the confirmation


def test_gradients_of_an_independent_implementation_match_in_float64() -> None:
    """mlstm_kernels' native kernels (not our code) against the xLSTM reference: every parameter pairs by
    value and its gradient agrees to float64 rounding (the forward check's 1e-10)."""
    config = {**MixerConfig(d_model=16, n_heads=2).__dict__}
    found = compare_with_reference("xlstm/mlstm_kernels_native", "cpu", "float64", config, 2, 16, 1)
    rows = {r["test"]: r for r in found}
    for test in GRADIENT_TESTS:
        assert rows[test]["passed"] and rows[test]["rms_ratio"] < 1e-10, rows[test]
    assert len(rows["grad_params"]["detail"].split()) >= 5  # every projection and gate, not one


def test_parameters_pair_by_value_even_when_renamed_and_reshaped() -> None:
    reference = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3), torch.nn.LayerNorm(3))
    move_to_generic_point(reference, seed=0)  # the two LayerNorms start equal: the move tells them apart
    renamed = torch.nn.ParameterDict(
        {f"p{i}": torch.nn.Parameter(p.detach().reshape(-1).clone()) for i, p in enumerate(reference.parameters())}
    )
    pairs = pair_parameters(renamed, reference)
    assert [ref_name for ref_name, _, _ in pairs] == [name for name, _ in reference.named_parameters()]
    twin = torch.nn.Sequential(torch.nn.LayerNorm(3), torch.nn.LayerNorm(3))
    with pytest.raises(ValueError, match="need exactly one"):
        pair_parameters(twin, twin)  # constant-initialised twins are ambiguous without the move


def test_a_backward_the_library_lacks_is_unavailable_not_failed() -> None:
    """FlexAttention has no backward on the CPU (NotImplementedError): the gradient rows say so and do not
    count as failures, while its forward rows are judged as usual."""
    config = {**MixerConfig(d_model=16, n_heads=2).__dict__}
    rows = [CheckRow(**r) for r in compare_with_reference("attention/flex", "cpu", "float32", config, 2, 8, 0)]
    by_test = {r.test: r for r in rows}
    assert all(by_test[t].passed for t in FORWARD_TESTS)
    assert {by_test[t].status for t in GRADIENT_TESTS} == {"unavailable"}
    assert not any(r.counts_as_failure for r in rows)


def test_gradient_tolerance_is_the_rounding_floor_of_the_reference_in_that_dtype(planted: None) -> None:
    """In bf16 a gradient's tolerance is max(2e-2, twice the reference's own bf16 error on it): the
    reference computed in bf16 passes its own check, and a backward 10% off still fails."""
    config = {**MixerConfig(d_model=16, n_heads=2).__dict__}
    rows = {r["test"]: r for r in compare_with_reference("planted/reference", "cpu", "bfloat16", config, 2, 8, 0)}
    for test in GRADIENT_TESTS:
        assert rows[test]["passed"] and rows[test]["tolerance"] >= 2e-2, rows[test]
    wrong = {r["test"]: r for r in compare_with_reference("planted/wrong_grad", "cpu", "bfloat16", config, 2, 8, 0)}
    for test in GRADIENT_TESTS:
        assert wrong[test]["status"] == "failed" and wrong[test]["rms_ratio"] > wrong[test]["tolerance"], wrong[test]
    assert gradient_tolerances(2e-2, [0.0, 0.03, 0.7]) == [2e-2, 0.06, 1.4]


def test_checks_split_by_the_kernel_build() -> None:
    """`nox -s bench` checks what needs no build while `seqbench kernels build` runs, then the rest: the two
    flags split the registry into the implementations that load a built extension and the others."""
    import json

    from click.testing import CliRunner

    from harness import registry
    from harness.cli import cli

    needing = {impl.name for impl in registry.implementations() if impl.built_extensions}
    assert needing == {"mamba/mamba_ssm", "mamba/mamba_ssm_scan"}
    result = CliRunner().invoke(cli, ["check", "--device", "cpu", "--only-needing-build", "--json"])
    report = json.loads(result.output)
    assert report["rows"] == [] and {s["name"] for s in report["skipped"]} == needing  # CUDA only
    both = CliRunner().invoke(cli, ["check", "--skip-needing-build", "--only-needing-build"])
    assert both.exit_code == 2 and "exclude each other" in both.output
