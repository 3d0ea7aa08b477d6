"""Recall accuracy against the size of the state a mixer decodes from (Zoology draws MQAR this way): a
recurrent mixer's state is fixed by its width, attention's is its KV cache and grows with the length, so the
plot asks how much recall each byte of state buys."""

from __future__ import annotations

import pandas as pd

from harness.report.analysis import recall_ok_rows
from harness.report.data import key_text, numeric
from harness.report.plots import (
    Palette,
    Plot,
    figure_legend,
    panel_grid,
    plain,
    render,
    series_count,
    slugify,
)

STATE_COLUMNS = ["task", "seq_len", "implementation", "d_model", "state_bytes", "accuracy"]


def state_size_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (task, seq_len, implementation, d_model) at the training length: the accuracy (mean over seeds,
    best over learning rates, as Zoology reports a cell) and the analytic decode state in bytes (batch 1)."""
    ok = recall_ok_rows(rows)
    if ok.empty or "state_bytes_analytic" not in ok.columns or "d_model" not in ok.columns:
        return pd.DataFrame(columns=STATE_COLUMNS)
    if "eval_seq_len" in ok.columns:
        ok = ok[numeric(ok, "eval_seq_len").isna() | (numeric(ok, "eval_seq_len") == numeric(ok, "seq_len"))]
    frame = ok.assign(
        task=ok["task"].map(key_text),
        seq_len=numeric(ok, "seq_len"),
        d_model=numeric(ok, "d_model"),
        lr=numeric(ok, "lr").fillna(0.0),
        accuracy=numeric(ok, "accuracy"),
        state_bytes=numeric(ok, "state_bytes_analytic"),
    )
    frame = frame[frame["state_bytes"] > 0]
    if frame.empty:
        return pd.DataFrame(columns=STATE_COLUMNS)
    cell = ["task", "seq_len", "implementation", "d_model"]
    per_lr = frame.groupby([*cell, "lr"]).agg(accuracy=("accuracy", "mean"), state_bytes=("state_bytes", "median"))
    best = per_lr.groupby(level=cell).agg(accuracy=("accuracy", "max"), state_bytes=("state_bytes", "median"))
    return best.reset_index()[STATE_COLUMNS].sort_values(cell).reset_index(drop=True)


def state_size_plots(rows: pd.DataFrame, palette: Palette) -> list[Plot]:
    """One figure per task with at least two state sizes of one implementation: a panel per training
    length, accuracy against state bytes (log), a line per implementation through its widths."""
    table = state_size_table(rows)
    plots = []
    for task, task_table in table.groupby("task"):
        if task_table.groupby(["seq_len", "implementation"]).size().max() < 2:
            continue  # one width per mixer: no state-size curve to draw
        lengths = sorted(task_table["seq_len"].unique())
        figure, axes = panel_grid(len(lengths), columns=4, width=3.6)
        legend: dict[str, object] = {}
        for axis, seq_len in zip(axes, lengths, strict=True):
            panel = task_table[task_table["seq_len"] == seq_len]
            for implementation, group in panel.groupby("implementation"):
                group = group.sort_values("state_bytes")
                (line,) = axis.plot(
                    group["state_bytes"],
                    group["accuracy"],
                    "o-",
                    color=palette(implementation),
                    ms=4,
                    label=plain(implementation),
                )
                legend.setdefault(plain(implementation), line)
            axis.set_xscale("log")
            axis.set_ylim(-0.02, 1.05)
            axis.set_xlabel("decode state (bytes, batch 1)")
            axis.set_ylabel("accuracy")
            axis.set_title(f"seq_len {int(seq_len)}", fontsize=10)
            axis.grid(alpha=0.3)
        figure.suptitle(f"{plain(task)}: accuracy vs state size")
        figure_legend(figure, list(legend.values()), list(legend), columns=2)
        plots.append(
            Plot(
                slug=slugify("recall-state", task),
                title=f"Recall accuracy vs state size: {task}",
                caption="Each point a model width; x the analytic state a layer decodes from (a recurrent mixer's "
                "fixed state, attention's KV cache at the training length), summed over the layers; y the "
                "accuracy (mean over seeds, best over learning rates). Zoology (arXiv 2312.04927) draws MQAR "
                "this way to compare how much recall each mixer gets from its state.",
                png=render(figure),
                series=series_count(figure),
                table=task_table,
            )
        )
    return plots
