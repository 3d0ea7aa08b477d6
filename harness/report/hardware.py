"""Two devices side by side: their measured ceilings, and whether a job's gain follows one of them.

Every run measures its device's copy bandwidth and matmul rate (harness.ceilings; the rows carry them
as `peak_copy_gbps` and `peak_matmul_tflops`). Between device A and device B a job's speedup (A's median
time over B's) is set beside the two ceilings' ratios (B over A):

    memory-bound    the speedup is within the tolerance of the copy-bandwidth ratio (and not of the matmul one)
    compute-bound   within the tolerance of the matmul-rate ratio (and not of the copy one)
    either          within the tolerance of both: the two ratios are too close to tell the cases apart
    mixed           strictly between the two ratios, near neither: part of the time follows each
    neither         outside both (below the smaller, above the larger): host or launch bound, a different
                    kernel choice on the other device, or another cause
    no ceilings     a side's rows carry no measured ceilings

"Within the tolerance" is |log(speedup / ratio)| <= log(1 + tol), tol = max(TOLERANCE_FLOOR, spread_a +
spread_b), where a side's spread is half its p10-p90 range over its median: a job whose own samples
scatter widely cannot be placed more precisely than they do. The floor, 5%, is above what repeated
measurements of one machine vary by: the committed H100 baseline's five runs measured 773-786 TFLOP/s
and 2955-2980 GB/s (1.7% and 0.8% apart), and most of its throughput rows have a p10-p90 half-range under
3% (the median row 1.1%).

The cross-GPU report page and `seqbench compare` across devices both read these numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from harness.errors import UserError
from harness.report.compare import Comparison, JobComparison, compare_results, devices, row_devices
from harness.report.data import numeric

CEILING_COLUMNS = ("peak_copy_gbps", "peak_matmul_tflops")
TOLERANCE_FLOOR = 0.05

LABELS = ("memory-bound", "compute-bound", "either", "mixed", "neither", "no ceilings")


@dataclass(frozen=True)
class Ceilings:
    """One device's measured ceilings: the median over its runs (each run measured them once)."""

    device: str
    copy_gbps: float  # NaN when no row of the device carries the column
    matmul_tflops: float
    runs: int  # how many runs carried a value


def ceilings_of(frame: pd.DataFrame, device: str) -> Ceilings:
    """The ceilings of the rows of `frame` that ran on `device` (harness.report.compare.row_devices)."""
    rows = frame[row_devices(frame) == device]
    values: dict[str, float] = {}
    runs = 0
    for column in CEILING_COLUMNS:
        per_run = pd.DataFrame({"run": rows.get("run_id", pd.Series("", index=rows.index)), "v": numeric(rows, column)})
        per_run = per_run.dropna().groupby("run")["v"].first()  # one value per run: measured once per run
        values[column] = float(per_run.median()) if not per_run.empty else math.nan
        runs = max(runs, len(per_run))
    return Ceilings(device, values["peak_copy_gbps"], values["peak_matmul_tflops"], runs)


@dataclass(frozen=True)
class HardwareRatios:
    a: Ceilings
    b: Ceilings

    @property
    def copy_ratio(self) -> float:
        """B's copy bandwidth over A's: above 1, B moves memory faster."""
        return self.b.copy_gbps / self.a.copy_gbps

    @property
    def matmul_ratio(self) -> float:
        return self.b.matmul_tflops / self.a.matmul_tflops

    def missing(self) -> str:
        """Why no bound can be labelled ("" when both sides carry both ceilings)."""
        for side, ceilings in (("A", self.a), ("B", self.b)):
            if math.isnan(ceilings.copy_gbps) or math.isnan(ceilings.matmul_tflops):
                return (
                    f"{side} ({ceilings.device}) carries no measured ceilings ({', '.join(CEILING_COLUMNS)}): "
                    "time ratios only, no memory/compute label"
                )
        return ""

    def text(self) -> str:
        """One line: both devices, their ceilings, and the ratios B/A."""

        def one(side: str, c: Ceilings) -> str:
            if math.isnan(c.copy_gbps) or math.isnan(c.matmul_tflops):
                return f"{side} {c.device} (no measured ceilings)"
            return f"{side} {c.device} ({c.copy_gbps:.0f} GB/s copy, {c.matmul_tflops:.0f} TFLOP/s matmul)"

        line = f"{one('A', self.a)}, {one('B', self.b)}"
        if not self.missing():
            line += f"; B/A: copy bandwidth x{self.copy_ratio:.2f}, matmul rate x{self.matmul_ratio:.2f}"
        return line


def hardware_ratios(frame_a: pd.DataFrame, frame_b: pd.DataFrame, device_a: str, device_b: str) -> HardwareRatios:
    return HardwareRatios(ceilings_of(frame_a, device_a), ceilings_of(frame_b, device_b))


def tolerance(spread_a: float, spread_b: float) -> float:
    """How close a speedup must be to a ratio to follow it: the floor, or the two rows' noise if larger."""
    noise = sum(0.0 if math.isnan(s) else s for s in (spread_a, spread_b))
    return max(TOLERANCE_FLOOR, noise)


def bound_label(speedup: float, copy_ratio: float, matmul_ratio: float, tol: float) -> str:
    """Which ceiling the speedup (A time / B time) follows; the rule is in the module's docstring."""
    if any(math.isnan(v) or v <= 0 for v in (copy_ratio, matmul_ratio)):
        return "no ceilings"

    def near(ratio: float) -> bool:
        return abs(math.log(speedup / ratio)) <= math.log1p(tol)

    near_copy, near_matmul = near(copy_ratio), near(matmul_ratio)
    if near_copy and near_matmul:
        return "either"
    if near_copy:
        return "memory-bound"
    if near_matmul:
        return "compute-bound"
    if min(copy_ratio, matmul_ratio) < speedup < max(copy_ratio, matmul_ratio):
        return "mixed"
    return "neither"


def job_bound(job: JobComparison, ratios: HardwareRatios) -> str:
    """The label of one compared job ("" when it was not timed on both devices)."""
    if math.isnan(job.ratio) or job.ratio <= 0:
        return ""
    tol = tolerance(job.spread_a, job.spread_b)
    return bound_label(1 / job.ratio, ratios.copy_ratio, ratios.matmul_ratio, tol)


@dataclass(frozen=True)
class CrossGpu:
    ratios: HardwareRatios
    comparison: Comparison
    table: pd.DataFrame  # one row per job timed on both devices

    def counts(self) -> dict[str, int]:
        found = self.table["bound"].value_counts() if not self.table.empty else pd.Series(dtype=int)
        return {label: int(found[label]) for label in LABELS if label in found.index}


TABLE_COLUMNS = [
    "bound",
    "implementation",
    "level",
    "mode",
    "dtype",
    "batch",
    "seq_len",
    "d_model",
    "a_ms",
    "b_ms",
    "time_b_over_a",
    "speedup",
    "copy_ratio",
    "matmul_ratio",
    "tolerance",
]


def cross_gpu(frame_a: pd.DataFrame, frame_b: pd.DataFrame) -> CrossGpu:
    """Pair A's and B's timed jobs by configuration and label each; UserError (one line) when A and B
    are one device, or share no job timed on both."""
    device_a, device_b = _one_device(frame_a, "A"), _one_device(frame_b, "B")
    if device_a == device_b:
        raise UserError(f"a cross-GPU comparison needs two devices; A and B both ran on {device_a}")
    comparison = compare_results(frame_a, frame_b, match_by="config", across_devices=True)
    ratios = hardware_ratios(frame_a, frame_b, device_a, device_b)
    records = []
    for job in comparison.jobs:
        if math.isnan(job.ratio):
            continue
        tol = tolerance(job.spread_a, job.spread_b)
        records.append(
            {
                "bound": job_bound(job, ratios),
                **{c: job.label.get(c, "") for c in ("implementation", "level", "mode", "dtype")},
                **{c: job.label.get(c, "") for c in ("batch", "seq_len", "d_model")},
                "a_ms": job.median_a_ms,
                "b_ms": job.median_b_ms,
                "time_b_over_a": job.ratio,
                "speedup": 1 / job.ratio,
                "copy_ratio": ratios.copy_ratio,
                "matmul_ratio": ratios.matmul_ratio,
                "tolerance": tol,
            }
        )
    if not records:
        raise UserError(
            f"no job was timed on both {device_a} and {device_b} with the same configuration "
            "(implementation, mode, dtype, shape): nothing to compare across GPUs"
        )
    return CrossGpu(ratios, comparison, pd.DataFrame.from_records(records, columns=TABLE_COLUMNS))


def _one_device(frame: pd.DataFrame, side: str) -> str:
    found = devices(frame)  # of the timed rows: a check run elsewhere does not count
    if len(found) != 1:
        raise UserError(f"{side} holds rows of {len(found)} devices ({', '.join(found) or 'none'}); give one device's")
    return found[0]


def split_by_device(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The timed suites' rows of each GPU (CPU rows left out: a CPU against a GPU says nothing of
    memory or compute bounds), by device name."""
    from harness import suite as suite_registry

    timed = frame[frame["suite"].isin(suite_registry.timed_suites())] if "suite" in frame.columns else frame
    names = row_devices(timed)
    return {name: timed[names == name] for name in sorted(set(names)) if name != "cpu"}
