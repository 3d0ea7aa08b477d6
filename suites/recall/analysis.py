"""Summaries of recall rows the way the papers report them.

- Zoology: per (task, implementation, d_model, seq_len) cell, the best accuracy over the learning
  rates (and seeds) swept.
- MAD: per task setting (baseline or one difficulty variation), the best test accuracy over the
  lr x weight-decay sweep; a task's MAD score is the mean over its settings; the overall score is
  the mean over the six tasks.
"""

from __future__ import annotations

import pandas as pd

CELL = ["task", "implementation", "d_model", "seq_len", "eval_seq_len"]


def ok_rows(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[(rows["status"] == "ok") & rows["accuracy"].notna()]


def best_per_cell(rows: pd.DataFrame, cell: list[str] | None = None) -> pd.DataFrame:
    """The row with the best accuracy of each cell (default: task, implementation, d_model, seq_len,
    eval_seq_len, and the setting where there is one), keeping its lr, seed and the other columns."""
    cell = list(cell or CELL)
    if "setting" in rows.columns and "setting" not in cell:
        cell.append("setting")
    good = ok_rows(rows)
    if good.empty:
        return good
    best = good.loc[good.groupby(cell, dropna=False)["accuracy"].idxmax()]
    return best.sort_values(cell).reset_index(drop=True)


def mad_scores(rows: pd.DataFrame) -> pd.DataFrame:
    """MAD scores per (implementation, task), plus an `all` row per implementation (the mean over
    tasks). Only rows of MAD tasks at their training length count."""
    mad = ok_rows(rows)
    mad = mad[mad["task"].str.startswith("mad-") & (mad["eval_seq_len"] == mad["seq_len"])]
    if mad.empty:
        return pd.DataFrame(columns=["implementation", "task", "mad_score", "settings"])
    best = mad.groupby(["implementation", "task", "setting"], dropna=False)["accuracy"].max().reset_index()
    per_task = (
        best.groupby(["implementation", "task"])["accuracy"].agg(mad_score="mean", settings="count").reset_index()
    )
    overall = per_task.groupby("implementation")["mad_score"].agg(mad_score="mean", settings="count").reset_index()
    overall["task"] = "all"
    return pd.concat([per_task, overall[per_task.columns]], ignore_index=True)
