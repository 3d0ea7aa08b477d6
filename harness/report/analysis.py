"""What the numbers say, computed once: scaling exponents, best accuracy per recall cell, MAD scores.

The report's pages and the CLI's tables both read these, so a terminal and a page never disagree.
No plotting here (matplotlib stays in the page modules) and no suite imports: rows in, frames out.

Recall, the way the papers report it:
- Zoology: per (task, implementation, d_model, seq_len) cell, the best accuracy over the learning rates
  (and seeds) swept: `best_per_cell`, the table `seqbench run recall` prints and the recall page shows.
- MAD: per task setting (baseline or one difficulty variation), the best test accuracy over the
  lr x weight-decay sweep; a task's MAD score is the mean over its settings; the overall score is the
  mean over the six tasks: `mad_scores`.
- The recall page's curves draw `best_recall`: the mean over seeds at the best learning rate, per plotted
  series, so that one lucky seed does not make a curve.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from harness.report.data import has_values, key_text, numeric, ok_rows, series_labels


def fit_scaling_exponent(
    seq_len: Sequence[float], time: Sequence[float], longest: int = 3, fewest: int = 3
) -> float | None:
    """Slope of log(time) against log(seq_len) over the `longest` largest lengths (least squares).

    Only the long-L end is fitted: at short L fixed costs (launches, projections) flatten every curve, and
    the exponent a reader cares about is the asymptotic one (attention -> 2, scans -> 1). None with fewer
    than `fewest` lengths: a line through two noisy points is not a scaling law.
    """
    points = sorted((float(x), float(y)) for x, y in zip(seq_len, time, strict=True) if x > 0 and y > 0)
    by_length = dict(points)  # one point per length (the last one wins)
    lengths = sorted(by_length)[-longest:]
    if len(lengths) < max(2, fewest):
        return None
    x = np.log(lengths)
    y = np.log([by_length[length] for length in lengths])
    slope, _ = np.polyfit(x, y, 1)
    return float(slope)


def best_recall(frame: pd.DataFrame) -> pd.DataFrame:
    """Accuracy per (task, seq_len, series, d_model): mean over seeds, then best over learning rates.

    That is how Zoology and MAD report a cell. Rows evaluated at another length than they were trained at
    (`eval_seq_len`) are extrapolation results and are left out here.
    """
    rows = ok_rows(frame)
    if not (has_values(rows, "accuracy") and has_values(rows, "d_model")):
        return pd.DataFrame()
    if "eval_seq_len" in rows.columns:
        trained_length = numeric(rows, "eval_seq_len").isna() | (
            numeric(rows, "eval_seq_len") == numeric(rows, "seq_len")
        )
        rows = rows[trained_length]
    rows = rows.assign(
        _label=series_labels(rows.drop(columns=["d_model"])),
        _task=rows.get("task", pd.Series("", index=rows.index)).map(key_text),
        _seq_len=numeric(rows, "seq_len"),
        _d_model=numeric(rows, "d_model"),
        _lr=numeric(rows, "lr").fillna(0.0),
        _accuracy=numeric(rows, "accuracy"),
    )
    per_lr = rows.groupby(["_task", "_seq_len", "_label", "_d_model", "_lr"], dropna=False).agg(
        accuracy=("_accuracy", "mean"), implementation=("implementation", "first")
    )
    best = per_lr.groupby(level=["_task", "_seq_len", "_label", "_d_model"], dropna=False).agg(
        accuracy=("accuracy", "max"), implementation=("implementation", "first")
    )
    return best.reset_index()


CELL = ["task", "implementation", "d_model", "seq_len", "eval_seq_len"]


def recall_ok_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Recall rows that ran and have an accuracy."""
    if "accuracy" not in rows.columns or "status" not in rows.columns:
        return rows.iloc[0:0]
    return rows[(rows["status"] == "ok") & rows["accuracy"].notna()]


def best_per_cell(rows: pd.DataFrame, cell: list[str] | None = None) -> pd.DataFrame:
    """The row with the best accuracy of each cell (default: task, implementation, d_model, seq_len,
    eval_seq_len, and the setting where there is one), keeping its lr, seed and the other columns."""
    cell = [c for c in (cell or CELL) if c in rows.columns]
    if "setting" in rows.columns and "setting" not in cell:
        cell.append("setting")
    good = recall_ok_rows(rows)
    if good.empty or not cell:
        return good
    best = good.loc[good.groupby(cell, dropna=False)["accuracy"].idxmax()]
    return best.sort_values(cell).reset_index(drop=True)


def mad_scores(rows: pd.DataFrame) -> pd.DataFrame:
    """MAD scores per (implementation, task), plus an `all` row per implementation (the mean over
    tasks). Only rows of MAD tasks at their training length count."""
    empty = pd.DataFrame(columns=["implementation", "task", "mad_score", "settings"])
    mad = recall_ok_rows(rows)
    if mad.empty or not {"task", "setting", "seq_len", "eval_seq_len"} <= set(mad.columns):
        return empty
    mad = mad[mad["task"].astype(str).str.startswith("mad-") & (mad["eval_seq_len"] == mad["seq_len"])]
    if mad.empty:
        return empty
    best = mad.groupby(["implementation", "task", "setting"], dropna=False)["accuracy"].max().reset_index()
    per_task = (
        best.groupby(["implementation", "task"])["accuracy"].agg(mad_score="mean", settings="count").reset_index()
    )
    overall = per_task.groupby("implementation")["mad_score"].agg(mad_score="mean", settings="count").reset_index()
    overall["task"] = "all"
    return pd.concat([per_task, overall[per_task.columns]], ignore_index=True)


HYBRID_PREFIX = "hybrid/"  # a hybrid model's implementation: "hybrid/<a>+<b>+..." (suites/mixers.py)


def hybrid_layers(implementation: object) -> list[str]:
    """The implementations of a hybrid's layer pattern (its period), from its name; [] for any other name."""
    name = key_text(implementation)
    return name[len(HYBRID_PREFIX) :].split("+") if name.startswith(HYBRID_PREFIX) else []


def mixer_kind(implementation: object) -> str:
    """attention | hybrid | recurrent: the three sides of the hybrids' question."""
    name = key_text(implementation)
    if name.startswith(HYBRID_PREFIX):
        return "hybrid"
    return "attention" if name.split("/")[0] == "attention" else "recurrent"


def hybrid_grid(rows: pd.DataFrame) -> pd.DataFrame:
    """Recall accuracy per cell for attention, the recurrent families the hybrids are made of, and the
    hybrids, side by side: one row per (task, d_model, mixer, n_layers), one column per training length
    ("L 64 (4 pairs)" where the cells name a number of pairs), the best accuracy over learning rates and
    seeds in % (Zoology's cell). Only tasks and widths where a hybrid ran; empty without hybrid rows."""
    good = recall_ok_rows(rows)
    if good.empty or "implementation" not in good.columns or not has_values(good, "d_model"):
        return pd.DataFrame()
    if "eval_seq_len" in good.columns:
        good = good[numeric(good, "eval_seq_len").isna() | (numeric(good, "eval_seq_len") == numeric(good, "seq_len"))]
    good = good.assign(
        _task=good.get("task", pd.Series("", index=good.index)).map(key_text),
        _name=good["implementation"].map(key_text),
        _d_model=numeric(good, "d_model"),
        _seq_len=numeric(good, "seq_len"),
        _n_layers=numeric(good, "n_layers") if "n_layers" in good.columns else np.nan,
        _pairs=good.get("task_params", pd.Series("", index=good.index)).map(_pairs_of),
    )
    hybrid = good["_name"].str.startswith(HYBRID_PREFIX)
    if not hybrid.any():
        return pd.DataFrame()
    parts = []
    for _, group in good.groupby(["_task", "_d_model"], dropna=False):
        names = group.loc[group["_name"].str.startswith(HYBRID_PREFIX), "_name"].unique()
        if not len(names):
            continue
        members = {layer.split("/")[0] for name in names for layer in hybrid_layers(name)}
        families = group["_name"].str.split("/").str[0]
        keep = group["_name"].str.startswith(HYBRID_PREFIX) | families.isin(members | {"attention"})
        parts.append(group[keep])
    if not parts:
        return pd.DataFrame()
    chosen = pd.concat(parts)
    best = chosen.groupby(["_task", "_d_model", "_name", "_n_layers", "_seq_len"], dropna=False).agg(
        accuracy=("accuracy", "max"), pairs=("_pairs", "first")
    )
    best = best.reset_index()
    # one column per training length, named with its number of pairs where any row of the task has one
    pairs = best.groupby(["_task", "_seq_len"])["pairs"].transform("first")
    best["_column"] = [
        f"L {int(length)}" + (f" ({int(count)} pairs)" if not math.isnan(count) else "")
        for length, count in zip(best["_seq_len"], pairs, strict=True)
    ]
    order = best.sort_values("_seq_len").drop_duplicates("_column")["_column"].tolist()
    grid = best.pivot_table(
        index=["_task", "_d_model", "_name", "_n_layers"], columns="_column", values="accuracy", aggfunc="max"
    )
    grid = (grid.reindex(columns=order) * 100).round(1).reset_index()
    grid.columns.name = None
    grid.insert(3, "kind", grid["_name"].map(mixer_kind))
    grid = grid.rename(
        columns={"_task": "task", "_d_model": "d_model", "_name": "implementation", "_n_layers": "n_layers"}
    )
    for column in ("d_model", "n_layers"):
        grid[column] = grid[column].round().astype("Int64")
    rank = {"attention": 0, "recurrent": 1, "hybrid": 2}
    grid = grid.assign(_rank=grid["kind"].map(rank)).sort_values(
        ["task", "d_model", "_rank", "n_layers", "implementation"]
    )
    return grid.drop(columns="_rank").reset_index(drop=True)


def _pairs_of(task_params: object) -> float:
    """MQAR's number of key-value pairs from a row's task_params (JSON), NaN where it has none."""
    try:
        value = json.loads(key_text(task_params)).get("n_pairs")
    except (ValueError, AttributeError):
        return math.nan
    return float(value) if isinstance(value, int | float) else math.nan
