"""How fast the training suites train, against the arithmetic floor of their step.

Every training row carries steps_per_s (after the first, compiling step), step_mode (eager, or replayed from
a CUDA graph) and step_floor_ms: the step's analytic FLOPs at the matmul rate measured in the same worker
(suites/training.py). A step far above its floor is bound by something else than arithmetic: the host
(launches, Python) when eager, the latency of many small kernels, or a kernel that is not a matmul (a
scan) when replayed from a graph.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.report.plots import Palette, Plot, new_figure, plain, render, series_count, slugify

SPEED_COLUMNS = [
    "implementation",
    "dtype",
    "step_mode",
    "steps_per_s",
    "step_ms",
    "step_floor_ms",
    "times_floor",
    "speedup_vs_eager",
    "task",
    "seq_len",
    "batch",
    "d_model",
    "setting",
    "first_step_s",
    "step_mode_note",
]


def speed_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per ok training row that measured its speed (at the training length), with step_ms =
    1000 / steps_per_s, times_floor = step_ms / step_floor_ms, and speedup_vs_eager: steps_per_s over that
    of the eager row of the same implementation, dtype and cell (task, seq_len, batch, d_model)."""
    needed = {"steps_per_s", "step_floor_ms", "step_mode"}
    if rows.empty or not needed <= set(rows.columns):
        return pd.DataFrame(columns=SPEED_COLUMNS)
    frame = rows[(rows["status"] == "ok") & rows["step_mode"].notna() & (rows["step_mode"] != "")]
    if "eval_seq_len" in frame.columns:
        frame = frame[frame["eval_seq_len"].isna() | (frame["eval_seq_len"] == frame["seq_len"])]
    frame = frame.copy()
    if frame.empty:
        return pd.DataFrame(columns=SPEED_COLUMNS)
    for column in SPEED_COLUMNS:
        if column not in frame.columns:
            frame[column] = np.nan
    frame["step_ms"] = 1e3 / frame["steps_per_s"].astype(float)
    frame["times_floor"] = frame["step_ms"] / frame["step_floor_ms"].astype(float)
    cell = ["implementation", "dtype", "task", "seq_len", "batch", "d_model"]
    eager = frame[frame["step_mode"] == "eager"].groupby(cell, dropna=False)["steps_per_s"].max()
    frame["speedup_vs_eager"] = [
        row.steps_per_s / eager.get(tuple(getattr(row, c) for c in cell), np.nan) for row in frame.itertuples()
    ]
    return frame[SPEED_COLUMNS].sort_values(["implementation", "dtype", "step_mode"]).reset_index(drop=True)


def speed_plot(table: pd.DataFrame, palette: Palette) -> list[Plot]:
    """Milliseconds per step of each implementation (a row per implementation and dtype): eager as an
    open circle, graph filled, the arithmetic floor as a bar mark; log x."""
    if table.empty:
        return []
    labels = sorted({f"{r.implementation} · {r.dtype}" for r in table.itertuples()})
    figure = new_figure(7.5, 0.9 + 0.32 * len(labels))
    axis = figure.subplots()
    marks = {"eager": ("o", "none"), "graph": ("o", None)}
    for index, label in enumerate(labels):
        implementation, dtype = label.split(" · ")
        group = table[(table["implementation"] == implementation) & (table["dtype"] == dtype)]
        color = palette(implementation)
        for mode, (marker, face) in marks.items():
            chosen = group[group["step_mode"] == mode]
            if not chosen.empty:
                axis.plot(
                    chosen["step_ms"],
                    [index] * len(chosen),
                    marker,
                    color=color,
                    markerfacecolor=face or color,
                    label=f"_{mode}",
                )
        floor = group["step_floor_ms"].dropna()
        if not floor.empty:
            axis.plot([floor.min()], [index], "|", color="black", markersize=12, label="_floor")
    axis.set_yticks(range(len(labels)), [plain(label) for label in labels], fontsize=8)
    axis.set_xscale("log")
    axis.set_xlabel("ms per training step (log)")
    axis.grid(alpha=0.3, axis="x")
    axis.set_title("open: eager · filled: CUDA graph · |: arithmetic floor", fontsize=9)
    return [
        Plot(
            slug=slugify("training-speed"),
            title="Training step time against its floor",
            caption="Each training's milliseconds per step (after the first, compiling step), eager and replayed "
            "from a CUDA graph, beside the step's analytic FLOPs at the matmul rate measured in the same worker "
            "in the step's dtype. The gap is what is not arithmetic: launches and Python (eager), the latency of "
            "many small kernels, or kernels that are not matmuls (Mamba's scan).",
            png=render(figure),
            series=series_count(figure),
            table=table,
        )
    ]
