"""A tiny suite: the whole of what adding one takes, this module and its presets (tests/presets/echo/).

A real suite lives in `suites/` and calls `register(RECORD)` at import; results, the report, bench and
compare then know it with no edit of their own. tests/test_suite_contract.py registers this one for the
duration of a test instead, so that it does not appear in every other test's results.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from harness.execute import suite_command
from harness.job import Job
from harness.results import INT
from harness.run_options import RunOptions, resolve_suite_device
from harness.suite import Suite, SuitePlan
from suites import check_keys, select_implementations

if TYPE_CHECKING:
    from harness.report.plots import Palette
    from harness.report.site import Site

SUITE = "echo"
TARGET = "tests.example_suite:measure"
PRESET_KEYS = {"name", "description", "device", "seq_lens"}


def measure(implementation: str, device: str, seq_len: int) -> dict[str, Any]:
    """Runs in a worker: the row of one job (here: no measurement, a number derived from the job)."""
    return {"echo_tokens": seq_len, "median_ms": seq_len / 16}


def plan(options: RunOptions) -> SuitePlan:
    device, preset = resolve_suite_device(SUITE, options)
    check_keys(f"echo preset {preset['name']!r}", preset, PRESET_KEYS)
    jobs = [
        Job(SUITE, impl.name, TARGET, {"implementation": impl.name, "device": device, "seq_len": seq_len})
        for impl in select_implementations(preset, options.names, options.families)
        for seq_len in options.seq_lens or preset["seq_lens"]
    ]
    return SuitePlan(SUITE, device, jobs)


command = suite_command(SUITE, plan, "Echo each job's length back as a row.")


def body(site: Site, rows: pd.DataFrame, palette: Palette) -> str:
    """Its report page (the record's `page` names this module)."""
    return f"<p>echoed {int(rows['echo_tokens'].sum())} tokens</p>"


RECORD = Suite(
    name=SUITE,
    title="Echo",
    columns={"echo_tokens": INT},
    report_order=60,
    plan=plan,
    command=command,
    targets=(TARGET,),
    page=__name__,
    bench_order=50,
    presets_dir=Path(__file__).parent / "presets" / SUITE,
    timed=True,
)
