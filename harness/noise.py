"""Noise flags, as pyperf warns: a timing whose spread is wide, or whose host was busy while it ran,
carries `noisy` and a one-line `noise_reason`; `compare` never calls a noisy difference significant.

Thresholds: the coefficient of variation above 10% (pyperf's "the standard deviation is x% of the
mean"), p90/p10 above 1.5, or a 1-minute load average, before or after the measurement, above the
number of CPUs this process may use (other processes then take turns with the timed code, and the
times of one job can differ by x100 from run to run while each run's own spread stays small).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

CV_LIMIT = 0.10
SPREAD_LIMIT = 1.5  # p90 / p10


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask: a container's or taskset's share, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_average() -> float:
    """The host's 1-minute load average; NaN where the platform has none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return math.nan


def _number(value: Any) -> float:
    try:
        return math.nan if value is None else float(value)
    except (TypeError, ValueError):
        return math.nan


def noise_columns(row: Mapping[str, Any], load_before: float, load_after: float, cpus: int) -> dict[str, Any]:
    """The noise columns of a timed row (its `cv`, `p10_ms`, `p90_ms`) measured with these loads."""
    reasons = []
    cv = _number(row.get("cv"))
    if cv > CV_LIMIT:
        reasons.append(f"cv {cv:.2f} above {CV_LIMIT:g}")
    p10, p90 = _number(row.get("p10_ms")), _number(row.get("p90_ms"))
    if p10 > 0 and p90 / p10 > SPREAD_LIMIT:
        reasons.append(f"p90/p10 {p90 / p10:.2f} above {SPREAD_LIMIT:g}")
    busiest = max((load for load in (load_before, load_after) if not math.isnan(load)), default=math.nan)
    if busiest > cpus:
        reasons.append(f"host busy: load average {busiest:.1f} on {cpus} CPU(s)")
    return {
        "noisy": bool(reasons),
        "noise_reason": "; ".join(reasons),
        "load_avg_before": load_before,
        "load_avg_after": load_after,
        "cpu_count": cpus,
    }
