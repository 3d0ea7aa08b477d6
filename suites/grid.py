"""The job grid that throughput, memory and profile share: implementation x dtype, then each suite's own
points (level x mode x batch x seq_len), with the two rules every one of them follows:

- the reference length cap: on CUDA a preset's `reference_max_seq_len` keeps the pure-PyTorch references
  (slow, and checked by `seqbench check` anyway) off the long lengths, unless they were named (--name);
- the first-job rule: an implementation that cannot run here (package, device, dtype) gets only its first
  job, whose `unavailable` row says why, not one row per point.

A preset's `dtypes_by_family` gives a family its own dtypes in place of `dtypes` (the quick presets time
cuDNN's LSTM, which takes no bf16 here, in float16); --dtype replaces both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from harness import registry
from harness.errors import UserError
from harness.interface import Implementation, dtype_name, parse_dtype
from harness.job import Job
from harness.run_options import RunOptions
from suites import config_params, family_config, select_implementations

# What every preset of a grid suite may hold: the keys read here and by the harness (device, timeouts).
GRID_PRESET_KEYS = frozenset(
    {
        "backends",
        "config",
        "description",
        "device",
        "dtypes",
        "dtypes_by_family",
        "modes",
        "name",
        "reference_max_seq_len",
        "references",
        "timeouts",
    }
)


@dataclass(frozen=True)
class Cell:
    """One implementation at one dtype: what a suite's points are built for."""

    impl: Implementation
    dtype: str
    config: dict[str, Any]  # the family's config as job params
    max_seq_len: int | None  # the reference length cap where it applies to this implementation, else None

    def fits(self, seq_len: int) -> bool:
        return self.max_seq_len is None or seq_len <= self.max_seq_len


def checked(values: Iterable[str], known: Sequence[str], what: str) -> list[str]:
    """`values` as a list; one that is not `known` is a one-line error naming `what` (e.g. "memory mode")."""
    values = list(values)
    for value in values:
        if value not in known:
            raise UserError(f"unknown {what} {value!r}; use one of {', '.join(known)}")
    return values


def preset_dtypes(preset: dict[str, Any], options: RunOptions, family: str | None = None) -> list[str]:
    """--dtype, else the family's own dtypes (dtypes_by_family), else the preset's (default float32), by
    their canonical names."""
    own = preset.get("dtypes_by_family", {}).get(family) if family else None
    return [dtype_name(parse_dtype(d)) for d in (options.dtypes or own or preset.get("dtypes", ["float32"]))]


def job_grid(
    preset: dict[str, Any], options: RunOptions, device: str, jobs_of: Callable[[Cell], Iterable[Job]]
) -> list[Job]:
    """Every selected implementation x dtype, in order, with the jobs `jobs_of` plans for each cell."""
    reference_max = preset.get("reference_max_seq_len") if device.startswith("cuda") else None
    unknown = sorted(set(preset.get("dtypes_by_family", {})) - set(registry.families()))
    if unknown:
        raise UserError(f"{preset.get('name')} preset: dtypes_by_family names unknown family {unknown[0]!r}")
    jobs: list[Job] = []
    for impl in select_implementations(preset, options.names, options.families):
        config = config_params(family_config(preset, impl.family))
        limit = reference_max if (impl.is_reference and reference_max and not options.names) else None
        for dtype in preset_dtypes(preset, options, impl.family):
            cell_jobs = list(jobs_of(Cell(impl, dtype, config, limit)))
            if cell_jobs and not impl.availability(device, parse_dtype(dtype)):
                cell_jobs = cell_jobs[:1]  # one `unavailable` row says why, not one per point
            jobs += cell_jobs
    return jobs
