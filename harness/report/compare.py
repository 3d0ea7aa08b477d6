"""Run-to-run comparison: what got faster or slower beyond the noise, as asv compare does.

For every job present in both result sets (matched by `job_id`, or by the job's definition when the two
runs share no job ids) the ratio B/A of `median_ms` is tested for significance on the recorded per-rep
samples (`samples_ms`):

- with enough samples that the test *can* reach the threshold, a two-sided Mann–Whitney U test
  (exact distribution for small samples without ties, normal approximation with tie correction otherwise);
- otherwise, as asv does, a pessimistic check: the 99% confidence intervals of the two medians (from order
  statistics, distribution-free) must not overlap. Without samples, the p10–p90 range stands in for the
  interval (wider than a CI of the median, so still pessimistic).

Marks (asv's, plus one for jobs that now pass):
    +  slower: significant and B/A above `factor`
    -  faster: significant and B/A below 1/`factor`
    ~  beyond `factor` but not significant (noise)
    !  newly failing (ok in A, failed in B)
    *  fixed (failed in A, ok in B)
    ?  beyond `factor`, but A's or B's row is flagged noisy (harness.noise): never called significant
    (blank) unchanged within `factor`, both failing, or present in only one run

Jobs are paired on one kind of device only: rows of different devices (a CPU against a GPU, one GPU
model against another) pair by their definition only when asked (`across_devices`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from harness import suite as suite_registry
from harness.report.data import (
    config_key_columns,
    is_missing,
    key_text,
    latest_per_key,
    samples_list,
    with_columns,
)

DEFAULT_FACTOR = 1.10  # asv's default: smaller changes are reported as unchanged even when significant
DEFAULT_ALPHA = 0.002  # asv's p threshold for Mann–Whitney U
CI_CONFIDENCE = 0.99
EXACT_LIMIT = 50  # exact U distribution up to this many samples per side (and no ties)

MARKS = {
    "slower": "+",
    "faster": "-",
    "not significant": "~",
    "newly failing": "!",
    "fixed": "*",
    "noisy": "?",
}  # and "h" (HARDWARE_MARK): a change between two devices, the hardware's


# ----------------------------------------------------------------------------------------- statistics


def _rank_with_ties(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mid-ranks (1-based) of `values`, and the sizes of the groups of tied values."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    ranks = np.empty(len(values), dtype=float)
    tie_sizes = []
    start = 0
    while start < len(values):
        stop = start
        while stop + 1 < len(values) and sorted_values[stop + 1] == sorted_values[start]:
            stop += 1
        ranks[order[start : stop + 1]] = (start + stop) / 2 + 1
        tie_sizes.append(stop - start + 1)
        start = stop + 1
    return ranks, np.asarray(tie_sizes)


def _u_distribution_counts(m: int, n: int) -> np.ndarray:
    """How many of the C(m+n, m) orderings give each value u = 0..m*n of U (no ties).

    Recurrence on the largest of the m+n values: if it is from the first sample it beats all n values of
    the second (adds n to U), else it adds nothing: N(i, j)[u] = N(i-1, j)[u-j] + N(i, j-1)[u].
    Counts are kept as floats (C(100, 50) ~ 1e29 overflows int64; the relative error is ~1e-16).
    """
    previous = [np.ones(1) for _ in range(n + 1)]  # i = 0: a single ordering with U = 0
    for i in range(1, m + 1):
        current = [np.ones(1)]  # j = 0
        for j in range(1, n + 1):
            counts = np.zeros(i * j + 1)
            from_first = previous[j]  # sizes (i-1, j), shifted by j
            counts[j : j + len(from_first)] += from_first
            from_second = current[j - 1]  # sizes (i, j-1)
            counts[: len(from_second)] += from_second
            current.append(counts)
        previous = current
    return previous[n]


def mann_whitney_u(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """U statistic of `a` (pairs with a > b, ties counting 1/2) and the two-sided p-value."""
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    m, n = len(x), len(y)
    if m == 0 or n == 0:
        raise ValueError("Mann–Whitney U needs at least one sample on each side")
    ranks, tie_sizes = _rank_with_ties(np.concatenate([x, y]))
    u = float(ranks[:m].sum() - m * (m + 1) / 2)
    has_ties = bool((tie_sizes > 1).any())
    if not has_ties and max(m, n) <= EXACT_LIMIT:
        counts = _u_distribution_counts(m, n)
        total = counts.sum()
        k = round(u)
        p_low = counts[: k + 1].sum() / total
        p_high = counts[k:].sum() / total
        return u, float(min(1.0, 2 * min(p_low, p_high)))
    total_n = m + n
    mean = m * n / 2
    tie_term = float((tie_sizes**3 - tie_sizes).sum()) / (total_n * (total_n - 1))
    variance = m * n / 12 * ((total_n + 1) - tie_term)
    if variance <= 0:  # every value equal: no evidence of a difference
        return u, 1.0
    z = max(0.0, abs(u - mean) - 0.5) / math.sqrt(variance)  # continuity correction
    return u, float(min(1.0, math.erfc(z / math.sqrt(2))))


def median_ci(samples: Sequence[float], confidence: float = CI_CONFIDENCE) -> tuple[float, float]:
    """Distribution-free confidence interval of the median from order statistics.

    [x_(k), x_(n+1-k)] covers the median with probability 1 - 2 P(Binomial(n, 1/2) <= k-1); take the
    narrowest such interval reaching `confidence`, or the full range when even that falls short (n < 8
    at 99%).
    """
    values = np.sort(np.asarray(samples, dtype=float))
    n = len(values)
    if n == 0:
        raise ValueError("a confidence interval needs at least one sample")
    alpha = 1 - confidence
    k = 1
    tail = 0.0
    while k < (n + 1) / 2:
        tail += math.comb(n, k - 1) / 2**n  # P(B <= k-1)
        if 2 * (tail + math.comb(n, k) / 2**n) > alpha:
            break
        k += 1
    return float(values[k - 1]), float(values[n - k])


@dataclass(frozen=True)
class Difference:
    significant: bool
    p_value: float  # NaN when the test gives none (interval check)
    method: str  # mann-whitney | ci-overlap | p10-p90 overlap | too few samples


def compare_samples(
    samples_a: Sequence[float],
    samples_b: Sequence[float],
    interval_a: tuple[float, float] | None = None,
    interval_b: tuple[float, float] | None = None,
    alpha: float = DEFAULT_ALPHA,
) -> Difference:
    """Is B's time distribution different from A's? Pessimistic where the data cannot tell (asv's rule)."""
    m, n = len(samples_a), len(samples_b)
    if m and n:
        smallest_p = 2 / math.comb(m + n, m)  # the most extreme ordering, two-sided
        if smallest_p < alpha:
            _, p = mann_whitney_u(samples_a, samples_b)
            return Difference(p < alpha, p, "mann-whitney")
    if m >= 2 and n >= 2:
        interval_a, interval_b, method = median_ci(samples_a), median_ci(samples_b), "ci-overlap"
    elif interval_a is not None and interval_b is not None:
        method = "p10-p90 overlap"
    else:
        return Difference(False, math.nan, "too few samples")
    if any(math.isnan(v) for v in (*interval_a, *interval_b)):
        return Difference(False, math.nan, "too few samples")
    overlap = interval_a[1] >= interval_b[0] and interval_a[0] <= interval_b[1]
    return Difference(not overlap, math.nan, method)


def geometric_mean(values: Sequence[float]) -> float:
    finite = [v for v in values if v > 0 and math.isfinite(v)]
    if not finite:
        return math.nan
    return math.exp(sum(math.log(v) for v in finite) / len(finite))


# ------------------------------------------------------------------------------------------ matching


@dataclass(frozen=True)
class JobComparison:
    key: str
    label: dict[str, str]  # implementation, mode, seq_len, ... as text, for tables
    command: str  # B's command (A's when only in A): what reproduces the newer measurement
    status_a: str  # "" when absent from A
    status_b: str
    reason_b: str
    median_a_ms: float
    median_b_ms: float
    ratio: float  # B/A of median_ms; NaN unless both ok
    p_value: float
    method: str
    significant: bool
    change: str  # slower | faster | not significant | unchanged | newly failing | fixed | ...
    mark: str
    # Half the p10-p90 range over the median, per side (NaN where unrecorded): the row's own noise.
    spread_a: float = math.nan
    spread_b: float = math.nan


@dataclass
class Comparison:
    jobs: list[JobComparison]
    matched_by: str  # job_id | config
    factor: float
    alpha: float
    counts: dict[str, int] = field(default_factory=dict)
    devices: tuple[str, str] = ("", "")  # A's and B's devices (harness.report.compare.devices, joined)

    @property
    def hardware(self) -> bool:
        """A and B ran on different devices: their differences are the hardware's, not regressions."""
        return all(self.devices) and self.devices[0] != self.devices[1]

    @property
    def geomean_ratio(self) -> float:
        return geometric_mean([j.ratio for j in self.jobs if not math.isnan(j.ratio)])

    def regressions(self, percent: float) -> list[JobComparison]:
        """Jobs significantly slower by more than `percent`, and jobs newly failing; none across devices
        (another GPU is not a regression of the code)."""
        if self.hardware:
            return []
        limit = 1 + percent / 100
        return [
            j
            for j in self.jobs
            if j.change == "newly failing" or (j.significant and not math.isnan(j.ratio) and j.ratio > limit)
        ]

    def to_frame(self) -> pd.DataFrame:
        records = []
        for j in self.jobs:
            records.append(
                {
                    "mark": j.mark,
                    "change": j.change,
                    **j.label,
                    "status_a": j.status_a,
                    "status_b": j.status_b,
                    "median_a_ms": j.median_a_ms,
                    "median_b_ms": j.median_b_ms,
                    "ratio": j.ratio,
                    "p_value": j.p_value,
                    "test": j.method,
                    "reason_b": j.reason_b,
                    "command": j.command,
                    "key": j.key,
                }
            )
        return pd.DataFrame.from_records(records)


LABEL_COLUMNS = ("implementation", "level", "mode", "device", "dtype", "batch", "seq_len", "d_model")


def _timed_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows a timing comparison is about: the timed suites' (harness.suite; every row when there is no
    suite column)."""
    if "suite" in frame.columns:
        frame = frame[frame["suite"].isin(suite_registry.timed_suites())]
    return with_columns(frame, ("status", "reason", "median_ms", "p10_ms", "p90_ms", "samples_ms", "command"))


def _row_keys(frame: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    texts = frame[list(columns)].map(key_text)
    return texts.apply(lambda row: " | ".join(f"{c}={v}" for c, v in zip(columns, row, strict=True) if v), axis=1)


def _interval(row: pd.Series) -> tuple[float, float] | None:
    low, high = row.get("p10_ms"), row.get("p90_ms")
    if is_missing(low) or is_missing(high):
        return None
    return float(low), float(high)


def _float(value: object) -> float:
    return math.nan if is_missing(value) else float(value)  # type: ignore[arg-type]


def compare_results(
    a: pd.DataFrame,
    b: pd.DataFrame,
    factor: float = DEFAULT_FACTOR,
    alpha: float = DEFAULT_ALPHA,
    match_by: str = "auto",
    across_devices: bool = False,
) -> Comparison:
    """Compare run B against baseline A, job by job. `match_by`: auto | job_id | config; with
    `across_devices`, config matching ignores the device (a CPU run against a GPU baseline)."""
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    a, b = _timed_rows(a), _timed_rows(b)
    if match_by == "auto":
        shared_ids = set()
        if "job_id" in a.columns and "job_id" in b.columns:
            shared_ids = set(a["job_id"].dropna()) & set(b["job_id"].dropna())
        match_by = "job_id" if shared_ids else "config"
    if match_by == "job_id":
        key_columns = ["job_id"]
    elif match_by == "config":
        key_columns = sorted(set(config_key_columns(a)) | set(config_key_columns(b)))
        ignored = {"suite", "device"} if across_devices else {"suite"}
        key_columns = [c for c in key_columns if c not in ignored] or ["implementation"]
    else:
        raise ValueError(f"match_by must be auto, job_id or config, got {match_by!r}")
    a, b = with_columns(a, [*key_columns, *LABEL_COLUMNS]), with_columns(b, [*key_columns, *LABEL_COLUMNS])
    a, b = latest_per_key(a, key_columns), latest_per_key(b, key_columns)
    a_by_key = dict(zip(_row_keys(a, key_columns), (row for _, row in a.iterrows()), strict=True))
    b_by_key = dict(zip(_row_keys(b, key_columns), (row for _, row in b.iterrows()), strict=True))

    sides = (", ".join(devices(a)), ", ".join(devices(b)))
    hardware = across_devices and all(sides) and sides[0] != sides[1]
    jobs = []
    for key in list(a_by_key) + [k for k in b_by_key if k not in a_by_key]:
        row_a, row_b = a_by_key.get(key), b_by_key.get(key)
        job = _compare_job(key, row_a, row_b, factor, alpha)
        jobs.append(_as_hardware(job) if hardware else job)
    jobs.sort(key=lambda j: (j.label.get("implementation", ""), j.label.get("mode", ""), j.key))
    counts: dict[str, int] = {}
    for j in jobs:
        counts[j.change] = counts.get(j.change, 0) + 1
    return Comparison(jobs=jobs, matched_by=match_by, factor=factor, alpha=alpha, counts=counts, devices=sides)


HARDWARE_MARK = "h"


def _as_hardware(job: JobComparison) -> JobComparison:
    """Across devices a change is the hardware's: "faster (hardware)", marked h, never a regression."""
    if job.change in ("slower", "faster", "newly failing", "fixed"):
        return replace(job, change=f"{job.change} (hardware)", mark=HARDWARE_MARK)
    return job


def _spread(row: pd.Series | None) -> float:
    """Half the p10-p90 range over the median: the row's own relative noise (NaN where unrecorded)."""
    if row is None:
        return math.nan
    low, high, median = _float(row.get("p10_ms")), _float(row.get("p90_ms")), _float(row.get("median_ms"))
    return (high - low) / (2 * median) if median > 0 else math.nan


def _compare_job(
    key: str, row_a: pd.Series | None, row_b: pd.Series | None, factor: float, alpha: float
) -> JobComparison:
    present = row_b if row_b is not None else row_a
    assert present is not None
    label = {c: key_text(present.get(c)) for c in LABEL_COLUMNS}
    status_a = "" if row_a is None else key_text(row_a.get("status")) or "ok"
    status_b = "" if row_b is None else key_text(row_b.get("status")) or "ok"
    median_a = math.nan if row_a is None else _float(row_a.get("median_ms"))
    median_b = math.nan if row_b is None else _float(row_b.get("median_ms"))
    common = {
        "key": key,
        "label": label,
        "command": key_text(present.get("command")),
        "status_a": status_a,
        "status_b": status_b,
        "reason_b": "" if row_b is None else key_text(row_b.get("reason")),
        "median_a_ms": median_a,
        "median_b_ms": median_b,
        "spread_a": _spread(row_a),
        "spread_b": _spread(row_b),
    }
    no_test = {"ratio": math.nan, "p_value": math.nan, "method": "", "significant": False}
    if row_a is None:
        return JobComparison(**common, **no_test, change="only in B", mark="")
    if row_b is None:
        return JobComparison(**common, **no_test, change="only in A", mark="")
    ok_a, ok_b = status_a == "ok", status_b == "ok"
    if ok_a and not ok_b:
        return JobComparison(**common, **no_test, change="newly failing", mark=MARKS["newly failing"])
    if ok_b and not ok_a:
        return JobComparison(**common, **no_test, change="fixed", mark=MARKS["fixed"])
    if not ok_a and not ok_b:
        return JobComparison(**common, **no_test, change="failing in both", mark="")
    if not (median_a > 0 and median_b > 0):
        return JobComparison(**common, **no_test, change="no timing", mark="")

    ratio = median_b / median_a
    noise = "; ".join(f"{side} noisy: {why}" for side, why in (("A", _noise(row_a)), ("B", _noise(row_b))) if why)
    difference = compare_samples(
        samples_list(row_a.get("samples_ms")),
        samples_list(row_b.get("samples_ms")),
        _interval(row_a),
        _interval(row_b),
        alpha,
    )
    beyond_factor = ratio > factor or ratio < 1 / factor
    if not beyond_factor:
        change = "unchanged"
    elif noise:  # a busy host or a wide spread: the samples cannot support a verdict
        change = "noisy"
        difference = Difference(False, difference.p_value, f"{difference.method}; {noise}")
    elif not difference.significant:
        change = "not significant"
    else:
        change = "slower" if ratio > 1 else "faster"
    return JobComparison(
        **common,
        ratio=ratio,
        p_value=difference.p_value,
        method=difference.method,
        significant=difference.significant,
        change=change,
        mark=MARKS.get(change, ""),
    )


def _noise(row: pd.Series) -> str:
    """Why the row is flagged noisy, or "" (rows written before the flag existed are not)."""
    flag = row.get("noisy")
    if is_missing(flag) or not bool(flag):
        return ""
    return key_text(row.get("noise_reason")) or "flagged noisy"


def row_devices(frame: pd.DataFrame) -> pd.Series:
    """Each row's kind of device: `cpu`, or the GPU's name (`cuda` where unrecorded)."""
    rows = with_columns(frame, ("device", "gpu_name"))

    def device_of(device: object, gpu: object) -> str:
        kind = key_text(device).split(":")[0] or "unknown device"
        return (key_text(gpu) or kind) if kind == "cuda" else kind

    names = [device_of(d, g) for d, g in zip(rows["device"], rows["gpu_name"], strict=True)]
    return pd.Series(names, index=frame.index, dtype=object)


def devices(frame: pd.DataFrame) -> list[str]:
    """The kinds of device the timed rows ran on: `cpu`, or the GPU's name (`cuda` where unrecorded)."""
    return sorted(set(row_devices(_timed_rows(frame))))


def shared_rows(a: pd.DataFrame, b: pd.DataFrame) -> tuple[int, list[str]]:
    """How many jobs' rows (same run, same job) A and B both hold, and the runs they belong to."""
    if not {"run_id", "job_id"} <= set(a.columns) & set(b.columns):
        return 0, []
    both = set(zip(a["run_id"], a["job_id"], strict=True)) & set(zip(b["run_id"], b["job_id"], strict=True))
    return len(both), sorted({run for run, _ in both})


def summary_lines(comparison: Comparison) -> list[str]:
    """A few plain sentences: geometric mean, counts per change, how jobs were matched."""
    geomean = comparison.geomean_ratio
    both_ok = sum(1 for j in comparison.jobs if not math.isnan(j.ratio))
    lines = [
        f"{len(comparison.jobs)} jobs, matched by {comparison.matched_by}; {both_ok} timed in both runs.",
        (
            f"Geometric mean of B/A median time over those: {geomean:.3f} ({(geomean - 1) * 100:+.1f}%)."
            if not math.isnan(geomean)
            else "No job was timed in both runs."
        ),
    ]
    order = ["slower", "faster", "not significant", "noisy", "unchanged", "newly failing", "fixed", "failing in both"]
    order += [f"{change} (hardware)" for change in ("slower", "faster", "newly failing", "fixed")]
    order += sorted(set(comparison.counts) - set(order))
    counted = ", ".join(f"{comparison.counts[c]} {c}" for c in order if comparison.counts.get(c))
    if counted:
        lines.append(counted + ".")
    lines.append(
        f"Changes smaller than x{comparison.factor:g} count as unchanged; significance: Mann-Whitney U at "
        f"p < {comparison.alpha:g} with enough samples, else non-overlapping {CI_CONFIDENCE:.0%} intervals."
    )
    return lines
