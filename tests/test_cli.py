"""The CLI: machine-readable listing, and bad input as one line (exit 2), never a traceback."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from harness.check import TESTS
from harness.cli import cli


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_list_json_parses() -> None:
    code, out, _ = run("list", "--json", "--device", "cpu")
    assert code == 0
    records = json.loads(out)
    names = {r["name"] for r in records}
    assert {"attention/reference", "attention/sdpa_flash"} <= names
    for r in records:
        assert {"family", "name", "backend", "available", "reason"} <= set(r)
        assert r["available"] == (r["reason"] == "")
    flash = next(r for r in records if r["name"] == "attention/sdpa_flash")
    assert flash["available"] is False and flash["reason"] == "runs on cuda only, not cpu"


def test_list_table() -> None:
    code, out, _ = run("list", "--device", "cpu", "--family", "attention")
    assert code == 0 and "attention/sdpa_cudnn" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("check", "--name", "attention/referenc"),
            "Error: unknown implementation 'attention/referenc'; did you mean attention/reference",
        ),
        (
            ("check", "--name", "attention/flex", "--dtype", "float64", "--device", "cpu"),
            "Error: attention/flex cannot run float64 on cpu: float64 not supported",
        ),
        (("check", "--dtype", "float8"), "Error: unknown dtype 'float8'"),
        (("check", "--n-heads", "3", "--device", "cpu"), "Error: n_heads: d_model=64 is not divisible by n_heads=3"),
        (("check", "--seq-len", "0"), "Error: --seq-len must be at least 2"),
        (("list", "--device", "tpu"), "Error: unknown device 'tpu'"),
        (("list", "--family", "atention"), "Error: unknown family 'atention'; did you mean attention?"),
        (("check", "--d-model", "0"), "Error: --d-model must be positive, got 0"),  # not the default 64
        (("check", "--n-heads", "0"), "Error: --n-heads must be positive, got 0"),
        (
            ("run", "throughput", "--seq-len", "100000000000000000000", "--batch", "1"),
            "Error: --seq-len 100000000000000000000 is beyond the largest size, 2147483647",
        ),
        (
            ("run", "throughput", "--preset", "cpu", "--device", "cuda"),
            "Error: --device cuda: no CUDA device is visible to torch; use --device cpu",
        ),
    ],
)
def test_bad_input_is_one_line(args: tuple[str, ...], message: str) -> None:
    code, _, err = run(*args)
    assert code == 2
    assert err.startswith(message), err
    assert err.strip().count("\n") == 0 and "Traceback" not in err


def test_check_passes_on_reference(tmp_path) -> None:
    code, out, _ = run("check", "--device", "cpu", "--name", "attention/sdpa_math", "--seq-len", "8", "--json")
    assert code == 0
    rows = json.loads(out)["rows"]
    # the three forward forms and, since the gradient check, grad_input and grad_params
    assert [r["test"] for r in rows] == list(TESTS) and all(r["passed"] for r in rows)


def test_family_with_dtype_checks_only_that_family() -> None:
    # Regression: --family with --dtype used to validate the dtype against every implementation.
    code, out, err = run(
        "check", "--device", "cpu", "--family", "attention", "--dtype", "float32", "--seq-len", "8", "--json"
    )
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert {r["implementation"] for r in rows} == {"attention/reference", "attention/sdpa_math", "attention/flex"}


def test_check_writes_result_rows(tmp_path) -> None:
    from harness import results

    code, _, err = run(
        "check", "--device", "cpu", "--name", "attention/reference", "--seq-len", "8", "--results", str(tmp_path)
    )
    assert code == 0, err
    frame = results.read_results(tmp_path)
    assert len(frame) == len(TESTS) and set(frame["suite"]) == {"check"}
    assert frame["passed"].all() and (frame["rms_ratio"] < 1e-10).all()
    assert set(frame["test"]) == set(TESTS)  # the forward forms and the gradients
    assert frame.loc[frame["test"] == "grad_params", "detail"].str.contains("qkv_proj.weight=").all()


def test_check_refuses_a_results_target_it_cannot_write_before_any_check(tmp_path) -> None:
    target = tmp_path / "results.parquet"
    target.write_text("a file, not a folder")
    code, _, err = run("check", "--device", "cpu", "--name", "attention/reference", "--results", str(target))
    assert code == 2, err
    assert err == f"Error: results directory {target} exists and is not a directory\n"
    assert "checking" not in err  # refused before the first check ran


def test_run_recall_help_names_every_preset_and_no_wrong_default() -> None:
    code, out, _ = run("run", "recall", "--help")
    assert code == 0
    help_text = " ".join(out.split())
    assert "Default preset: recall-cpu" in help_text and "recall-quick" in help_text
    assert "quick with one" not in help_text
