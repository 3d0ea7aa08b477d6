"""Run-to-run compare: the statistics against closed forms and brute force, the verdicts on crafted samples."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.report.compare import (
    compare_results,
    compare_samples,
    geometric_mean,
    mann_whitney_u,
    median_ci,
)
from harness.results import write_rows
from tests.test_report_synthetic import throughput_rows


def brute_force_p(a: list[float], b: list[float]) -> float:
    """Two-sided permutation p-value of U: every way to split the pooled values into groups of len(a)."""
    pooled = np.array(a + b)
    m, n = len(a), len(b)

    def u_of(first: np.ndarray, second: np.ndarray) -> float:
        return float((first[:, None] > second[None, :]).sum() + 0.5 * (first[:, None] == second[None, :]).sum())

    observed = abs(u_of(np.array(a), np.array(b)) - m * n / 2)
    count = total = 0
    for chosen in itertools.combinations(range(m + n), m):
        mask = np.zeros(m + n, dtype=bool)
        mask[list(chosen)] = True
        total += 1
        count += abs(u_of(pooled[mask], pooled[~mask]) - m * n / 2) >= observed - 1e-12
    return count / total


def test_mann_whitney_closed_form_for_separated_samples() -> None:
    # All of a below all of b: U = 0, and only 2 of the C(10, 5) = 252 orderings are as extreme.
    u, p = mann_whitney_u([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])
    assert u == 0
    assert p == pytest.approx(2 / 252, rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mann_whitney_exact_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = list(rng.normal(0.0, 1.0, 5))
    b = list(rng.normal(0.8, 1.0, 6))
    _, p = mann_whitney_u(a, b)
    assert p == pytest.approx(brute_force_p(a, b), rel=1e-9)


def test_mann_whitney_normal_approximation_agrees_with_exact_and_handles_ties() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.0, 1.0, 40), rng.normal(0.5, 1.0, 45)
    _, p_exact = mann_whitney_u(a, b)  # no ties, <= 50 per side: exact distribution
    _, p_normal = mann_whitney_u(np.round(a, 12), np.append(np.round(b, 12), b[0]))  # a tie: normal approximation
    assert 1e-4 < p_exact < 0.05
    assert p_normal == pytest.approx(p_exact, rel=0.25)
    # Every value equal: no evidence either way.
    assert mann_whitney_u([1.0] * 8, [1.0] * 8)[1] == 1.0


def test_median_ci_uses_the_binomial_order_statistics() -> None:
    samples = list(range(1, 21))  # sorted values = their ranks
    # n = 20 at 99%: [x_(4), x_(17)] (2 P(B <= 3) = 0.0026 <= 0.01 < 2 P(B <= 4) = 0.0118).
    assert median_ci(samples, 0.99) == (4.0, 17.0)
    # n = 8: only the full range reaches 99% (1 - 2/256).
    assert median_ci(list(range(8)), 0.99) == (0.0, 7.0)


def test_significance_on_crafted_samples() -> None:
    rng = np.random.default_rng(4)
    base = list(10 + 0.1 * rng.standard_normal(20))
    shifted = list(11 + 0.1 * rng.standard_normal(20))
    same = list(10 + 0.1 * rng.standard_normal(20))
    assert compare_samples(base, shifted).significant
    assert compare_samples(base, shifted).method == "mann-whitney"
    assert not compare_samples(base, same).significant
    # Three reps each cannot reach p < 0.002 with Mann–Whitney (min p = 0.1): the interval check decides.
    separated = compare_samples([1.0, 1.01, 1.02], [2.0, 2.01, 2.02])
    assert (separated.significant, separated.method) == (True, "ci-overlap")
    assert not compare_samples([1.0, 1.5, 2.0], [1.9, 2.2, 2.4]).significant
    # No samples at all: the p10–p90 ranges stand in; one sample: too few to tell.
    assert compare_samples([], [], (1.0, 1.1), (1.5, 1.6)).method == "p10-p90 overlap"
    assert not compare_samples([1.0], [5.0]).significant


def _job(job_id: str, samples: list[float] | None, status: str = "ok", **extra) -> dict:
    row = {
        "job_id": job_id,
        "suite": "throughput",
        "implementation": f"impl/{job_id}",
        "mode": "fwd",
        "seq_len": 1024,
        "status": status,
        "reason": "" if status == "ok" else "boom",
        "median_ms": float(np.median(samples)) if samples else math.nan,
        "samples_ms": samples,
    }
    row.update(extra)
    return row


def test_compare_marks_every_kind_of_change() -> None:
    rng = np.random.default_rng(5)

    def noisy(center: float, spread: float = 0.01, n: int = 20) -> list[float]:
        return list(center * (1 + spread * rng.standard_normal(n)))

    a = pd.DataFrame(
        [
            _job("slower", noisy(1.0)),
            _job("faster", noisy(1.0)),
            _job("noisy", [1.0, 2.0, 3.0]),
            _job("same", noisy(1.0)),
            _job("breaks", noisy(1.0)),
            _job("fixed", None, status="error"),
            _job("gone", noisy(1.0)),
        ]
    )
    b = pd.DataFrame(
        [
            _job("slower", noisy(2.0)),
            _job("faster", noisy(0.5)),
            _job("noisy", [1.5, 2.5, 3.5]),  # x1.25 but the intervals overlap
            _job("same", noisy(1.02)),
            _job("breaks", None, status="oom"),
            _job("fixed", noisy(1.0)),
            _job("new", noisy(1.0)),
        ]
    )
    comparison = compare_results(a, b)
    verdicts = {j.key.removeprefix("job_id="): (j.mark, j.change) for j in comparison.jobs}
    assert verdicts == {
        "slower": ("+", "slower"),
        "faster": ("-", "faster"),
        "noisy": ("~", "not significant"),
        "same": ("", "unchanged"),
        "breaks": ("!", "newly failing"),
        "fixed": ("*", "fixed"),
        "gone": ("", "only in A"),
        "new": ("", "only in B"),
    }
    assert comparison.matched_by == "job_id"
    ratios = [j.ratio for j in comparison.jobs if not math.isnan(j.ratio)]
    assert comparison.geomean_ratio == pytest.approx(math.exp(np.mean(np.log(ratios))))
    assert {j.key for j in comparison.regressions(5)} == {"job_id=slower", "job_id=breaks"}
    assert {j.key for j in comparison.regressions(150)} == {"job_id=breaks"}  # x2 is not beyond +150%


def test_geometric_mean_closed_form() -> None:
    assert geometric_mean([2.0, 0.5]) == pytest.approx(1.0)
    assert geometric_mean([2.0, 8.0]) == pytest.approx(4.0)
    assert math.isnan(geometric_mean([]))


def test_compare_falls_back_to_the_config_when_job_ids_differ() -> None:
    samples = [1.0 + 0.001 * i for i in range(10)]
    a = pd.DataFrame([_job("old-id", samples, d_model=64), _job("old-other", samples, d_model=128)])
    b = pd.DataFrame([_job("new-id", [2 * s for s in samples], d_model=64)])
    b["implementation"] = "impl/old-id"
    comparison = compare_results(a, b)
    assert comparison.matched_by == "config"  # no job id in common: paired by implementation, sizes, config
    assert sorted(j.change for j in comparison.jobs) == ["only in A", "slower"]
    assert compare_results(a, b, match_by="job_id").counts == {"only in A": 2, "only in B": 1}


def test_compare_command_exit_status(tmp_path) -> None:
    write_rows(throughput_rows("run-a", scale=1.0, seed=1), tmp_path / "a", "run-a")
    write_rows(throughput_rows("run-b", scale=1.25, seed=2), tmp_path / "b", "run-b")
    write_rows(throughput_rows("run-c", scale=1.0, seed=3), tmp_path / "c", "run-c")
    runner = CliRunner()
    slower = runner.invoke(cli, ["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--fail-on-regression", "10"])
    assert slower.exit_code == 1, slower.output
    assert "23 slower" in slower.output
    assert "regressed beyond 10%" in slower.output
    tolerated = runner.invoke(cli, ["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--fail-on-regression", "30"])
    assert tolerated.exit_code == 0, tolerated.output
    same = runner.invoke(cli, ["compare", str(tmp_path / "a"), str(tmp_path / "c"), "--fail-on-regression", "1"])
    assert same.exit_code == 0, same.output
    assert "23 unchanged" in same.output
    assert "Geometric mean of B/A median time over those: 1.00" in same.output
    bad = runner.invoke(cli, ["compare", str(tmp_path / "a"), str(tmp_path / "missing")])
    assert bad.exit_code == 2
    assert "no such results file or directory" in bad.output


def _cpu(rows: list[dict]) -> list[dict]:
    """The same jobs as measured on a CPU: other job ids (the device is a param), no GPU name."""
    return [{**r, "device": "cpu", "gpu_name": None, "job_id": "cpu-" + r["job_id"]} for r in rows]


def test_compare_refuses_a_run_against_itself(tmp_path) -> None:
    write_rows(throughput_rows("run-a", seed=1), tmp_path / "results" / "baselines", "run-a")
    write_rows(throughput_rows("run-b", seed=2), tmp_path / "results", "run-b")
    runner = CliRunner()
    cases = {
        (tmp_path / "results" / "baselines", tmp_path / "results"): "25 job(s) (run run-a)",  # the baseline's rows
        (tmp_path, tmp_path): "50 job(s) (run run-a, run-b)",
    }
    for (a, b), shared in cases.items():
        outcome = runner.invoke(cli, ["compare", str(a), str(b), "--fail-on-regression", "5"])
        assert outcome.exit_code == 2, outcome.output
        assert f"A and B share the rows of {shared}: that compares a run with itself" in outcome.output
        assert len(outcome.output.strip().splitlines()) == 1


def test_compare_with_nothing_matched_or_nothing_timed_fails(tmp_path) -> None:
    write_rows(throughput_rows("run-a", seed=1), tmp_path / "a", "run-a")
    other = [{**r, "job_id": "x" + r["job_id"], "implementation": "other/impl"} for r in throughput_rows("run-b")]
    write_rows(other, tmp_path / "b", "run-b")
    for run in ("run-c", "run-d"):
        failing = [{**r, "status": "error", "reason": "boom"} for r in throughput_rows(run)]
        write_rows(failing, tmp_path / run.removeprefix("run-"), run)
    runner = CliRunner()
    nothing = runner.invoke(cli, ["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--fail-on-regression", "5"])
    assert nothing.exit_code == 2, nothing.output
    assert "no job of B matches a job of A" in nothing.output
    untimed = runner.invoke(cli, ["compare", str(tmp_path / "c"), str(tmp_path / "d"), "--fail-on-regression", "5"])
    assert untimed.exit_code == 2, untimed.output
    assert "--fail-on-regression 5 has nothing to judge" in untimed.output
    assert "No regression" not in untimed.output


def test_compare_names_different_devices_and_pairs_them_only_on_request(tmp_path) -> None:
    write_rows(throughput_rows("run-a", seed=1), tmp_path / "gpu", "run-a")
    write_rows(_cpu(throughput_rows("run-b", scale=1.0, seed=2)), tmp_path / "cpu", "run-b")
    runner = CliRunner()
    refused = runner.invoke(cli, ["compare", str(tmp_path / "gpu"), str(tmp_path / "cpu"), "--fail-on-regression", "5"])
    assert refused.exit_code == 2, refused.output
    assert "A ran on NVIDIA H100 80GB HBM3, B on cpu: their times do not compare" in refused.output
    paired = runner.invoke(cli, ["compare", str(tmp_path / "gpu"), str(tmp_path / "cpu"), "--across-devices"])
    assert paired.exit_code == 0, paired.output
    assert "note: A ran on NVIDIA H100 80GB HBM3, B on cpu" in paired.output
    assert "23 unchanged" in paired.output and "matched by config" in paired.output


def test_a_noisy_row_is_never_called_significant() -> None:
    samples = [1.0 + 0.001 * i for i in range(20)]
    a = pd.DataFrame([_job("busy", samples), _job("quiet", samples)])
    b = pd.DataFrame(
        [
            _job("busy", [250 * s for s in samples], noisy=True, noise_reason="load 5.1 on 2 CPUs"),
            _job("quiet", [250 * s for s in samples], noisy=False),
        ]
    )
    comparison = compare_results(a, b)
    verdicts = {j.key.removeprefix("job_id="): j for j in comparison.jobs}
    assert (verdicts["busy"].mark, verdicts["busy"].change, verdicts["busy"].significant) == ("?", "noisy", False)
    assert "B noisy: load 5.1 on 2 CPUs" in verdicts["busy"].method
    assert verdicts["quiet"].change == "slower"
    assert {j.key for j in comparison.regressions(5)} == {"job_id=quiet"}
