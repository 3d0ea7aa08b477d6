"""Two GPUs side by side: the bound labels against hand-computed ratios, the cross-GPU page, and
`seqbench compare` across devices labelling differences as hardware, never as regressions."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.errors import UserError
from harness.report import build_report
from harness.report.hardware import bound_label, ceilings_of, cross_gpu, tolerance
from harness.results import write_rows
from tests.test_report_synthetic import throughput_rows

H100, H200 = "NVIDIA H100 80GB HBM3", "NVIDIA H200"
COPY_A, MATMUL_A = 3020.0, 716.0  # the synthetic H100 rows' ceilings (tests/test_report_synthetic.py)

# B's time over A's per (implementation, mode): attention follows the copy bandwidth (1.4x faster), mamba2's
# forward the matmul rate (unchanged), its training step lies between (1.2x faster).
TIME_FACTORS = {
    ("attention/sdpa_cudnn", "fwd"): 1 / 1.4,
    ("attention/sdpa_cudnn", "fwd_bwd"): 1 / 1.4,
    ("mamba2/mamba_ssm", "fwd"): 1.0,
    ("mamba2/mamba_ssm", "fwd_bwd"): 1 / 1.2,
    ("attention/sdpa_cudnn", "decode"): 1 / 1.4,
    ("mamba2/mamba_ssm", "decode"): 1 / 1.4,
    ("rwkv7/fla_chunk", "fwd"): 1.0,  # a crash row: never timed
}


def on_h200(rows: list[dict], run_id: str = "run-h200", copy_gbps: float | None = COPY_A * 1.4) -> list[dict]:
    """A's rows as measured on an H200: each job's times scaled by TIME_FACTORS, the memory 1.4x faster."""
    out = []
    for row in rows:
        factor = TIME_FACTORS[(row["implementation"], row["mode"])]
        scaled = {k: row[k] * factor for k in ("median_ms", "p10_ms", "p90_ms", "mean_ms") if row.get(k) is not None}
        if row.get("samples_ms"):
            scaled["samples_ms"] = [s * factor for s in row["samples_ms"]]
        out.append(
            {
                **row,
                **scaled,
                "run_id": run_id,
                "gpu_name": H200,
                "peak_copy_gbps": copy_gbps,
                "peak_matmul_tflops": MATMUL_A,
            }
        )
    return out


def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    a = throughput_rows("run-h100", seed=1)
    return pd.DataFrame(a), pd.DataFrame(on_h200(a))


@pytest.mark.parametrize(
    ("speedup", "label"),
    [
        (1.40, "memory-bound"),
        (1.34, "memory-bound"),  # 1.4 / 1.34 = 1.045: within 5%
        (1.30, "mixed"),  # 1.4 / 1.30 = 1.077: beyond 5% of both, between them
        (1.03, "compute-bound"),
        (0.80, "neither"),  # slower on the faster machine: neither ceiling explains it
        (1.60, "neither"),
    ],
)
def test_bound_label_against_the_ratios(speedup: float, label: str) -> None:
    assert bound_label(speedup, copy_ratio=1.4, matmul_ratio=1.0, tol=0.05) == label


def test_bound_label_when_the_ratios_cannot_be_told_apart_or_are_missing() -> None:
    assert bound_label(1.01, copy_ratio=1.03, matmul_ratio=1.0, tol=0.05) == "either"
    assert bound_label(1.2, copy_ratio=math.nan, matmul_ratio=1.0, tol=0.05) == "no ceilings"


def test_tolerance_is_the_floor_or_the_rows_noise() -> None:
    assert tolerance(0.01, 0.02) == 0.05
    assert tolerance(0.04, 0.03) == pytest.approx(0.07)
    assert tolerance(math.nan, math.nan) == 0.05


def test_ceilings_are_the_median_over_runs() -> None:
    rows = pd.DataFrame(
        {
            "run_id": ["r1", "r1", "r2", "r3"],
            "device": "cuda",
            "gpu_name": H200,
            "peak_copy_gbps": [3000.0, 3000.0, 3100.0, 2900.0],
            "peak_matmul_tflops": [700.0, 700.0, 710.0, 690.0],
        }
    )
    ceilings = ceilings_of(rows, H200)
    assert (ceilings.copy_gbps, ceilings.matmul_tflops, ceilings.runs) == (3000.0, 700.0, 3)


def test_cross_gpu_labels_each_job_and_gives_the_ratios() -> None:
    a, b = frames()
    result = cross_gpu(a, b)
    assert result.ratios.copy_ratio == pytest.approx(1.4)
    assert result.ratios.matmul_ratio == pytest.approx(1.0)
    table = result.table
    for (implementation, mode), factor in TIME_FACTORS.items():
        rows = table[(table.implementation == implementation) & (table["mode"] == mode)]
        assert rows.time_b_over_a.to_numpy() == pytest.approx(factor)
        if implementation.startswith("rwkv7"):
            assert rows.empty
            continue
        expected = {1 / 1.4: "memory-bound", 1.0: "compute-bound", 1 / 1.2: "mixed"}[factor]
        assert set(rows.bound) == {expected}
    # The attention training step at 8K ran out of memory on both, rwkv7 crashed: not timed, not in the table.
    assert len(table) == 6 * 4 - 1
    assert result.counts() == {"memory-bound": 15, "compute-bound": 4, "mixed": 4}


def test_cross_gpu_bad_input_is_one_line() -> None:
    a, b = frames()
    with pytest.raises(UserError, match=f"needs two devices; A and B both ran on {H100}"):
        cross_gpu(a, a.assign(run_id="other"))
    elsewhere = b.assign(implementation="other/impl", job_id="x" + b.job_id)
    with pytest.raises(UserError, match=f"no job was timed on both {H100} and {H200}"):
        cross_gpu(a, elsewhere)
    no_ceilings = cross_gpu(a, b.assign(peak_copy_gbps=None))
    assert set(no_ceilings.table.bound) == {"no ceilings"}
    assert no_ceilings.ratios.missing().startswith(f"B ({H200}) carries no measured ceilings")


def test_report_of_two_gpus_has_a_cross_gpu_page_and_of_one_has_none(tmp_path: Path) -> None:
    a, b = frames()
    build_report(pd.concat([a, b], ignore_index=True), tmp_path / "two")
    page = (tmp_path / "two" / "cross_gpu.html").read_text()
    assert f"{H100} (A) against {H200} (B)" in page
    assert "B/A: copy bandwidth x1.40, matmul rate x1.00" in page
    assert "15 memory-bound, 4 compute-bound, 4 mixed of 23 jobs." in page
    assert "|log(speedup / ratio)| &lt;= log(1 + tol)" in page  # the rule, stated on the page
    assert 'href="cross_gpu.html"' in (tmp_path / "two" / "index.html").read_text()
    build_report(a, tmp_path / "one")
    assert not (tmp_path / "one" / "cross_gpu.html").exists()


def test_report_of_two_gpus_without_common_jobs_says_so(tmp_path: Path) -> None:
    a, b = frames()
    build_report(pd.concat([a, b.assign(implementation="other/impl")], ignore_index=True), tmp_path / "site")
    assert "no job was timed on both" in (tmp_path / "site" / "cross_gpu.html").read_text()


def test_compare_across_gpus_labels_hardware_and_does_not_fail(tmp_path: Path) -> None:
    a = throughput_rows("run-h100", seed=1)
    write_rows(a, tmp_path / "h100", "run-h100")
    write_rows(on_h200(a), tmp_path / "h200", "run-h200")
    runner = CliRunner()
    args = ["compare", str(tmp_path / "h100"), str(tmp_path / "h200"), "--fail-on-regression", "5"]
    refused = runner.invoke(cli, args)
    assert refused.exit_code == 2, refused.output
    assert "give --match-by config" in refused.output and len(refused.output.strip().splitlines()) == 1
    # B slower than A on every job (A's rows against B's): still hardware, exit 0.
    backwards = runner.invoke(cli, [*args[:1], args[2], args[1], *args[3:], "--match-by", "config"])
    assert backwards.exit_code == 0, backwards.output
    assert "slower (hardware)" in backwards.output and "No regression judged" in backwards.output
    paired = runner.invoke(cli, [*args, "--match-by", "config"])
    assert paired.exit_code == 0, paired.output
    assert (
        f"hardware: A {H100} (3020 GB/s copy, 716 TFLOP/s matmul), B {H200} (4228 GB/s copy, 716 TFLOP/s matmul); "
        "B/A: copy bandwidth x1.40, matmul rate x1.00." in paired.output
    )
    lines = paired.output.splitlines()
    attention = [line for line in lines if line.startswith("h ") and "attention/sdpa_cudnn" in line]
    assert attention and all(line.endswith("memory-bound") for line in attention)
    assert f"No regression judged: {H100} and {H200} are different GPUs." in paired.output


def test_compare_across_gpus_without_ceilings_says_so(tmp_path: Path) -> None:
    a = throughput_rows("run-h100", seed=1)
    write_rows(a, tmp_path / "h100", "run-h100")
    write_rows(on_h200(a, copy_gbps=None), tmp_path / "h200", "run-h200")
    outcome = CliRunner().invoke(
        cli, ["compare", str(tmp_path / "h100"), str(tmp_path / "h200"), "--match-by", "config"]
    )
    assert outcome.exit_code == 0, outcome.output
    assert f"note: B ({H200}) carries no measured ceilings" in outcome.output
