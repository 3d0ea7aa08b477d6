"""`seqbench check` on planted implementations: a wrong function fails, an abort becomes a crash row and
the checks after it still run."""

from __future__ import annotations

import pytest
import torch

from harness import registry
from harness.check import TESTS, compare_with_reference, run_checks
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
