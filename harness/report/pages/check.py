"""The correctness check page: how many checks passed, and the ones that did not."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from harness.report import plots
from harness.report.data import CHECK_FAILED_COLUMNS, failed_checks
from harness.report.tables import render_table, section, shown_columns

if TYPE_CHECKING:
    from harness.report.site import Site


def body(site: Site, rows: pd.DataFrame, palette: plots.Palette) -> str:
    failed = failed_checks(rows)
    ran = int(rows["passed"].notna().sum()) if "passed" in rows.columns else 0
    summary = f"<p>{ran - len(failed)} of {ran} checks passed.</p>"
    if failed.empty:
        return summary
    return summary + section(
        "Failed checks",
        render_table(failed, shown_columns(failed, CHECK_FAILED_COLUMNS), "check-failed"),
        "Output differs from the family reference by more than the dtype's tolerance (RMS ratio).",
    )
