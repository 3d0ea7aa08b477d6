"""The memory page: peak memory versus sequence length, decoding state bytes, the OOM frontier."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.transforms import blended_transform_factory

from harness.report import plots
from harness.report.data import has_values, numeric, ok_rows
from harness.report.tables import render_table, section, shown_columns

if TYPE_CHECKING:
    from harness.report.site import Site


def body(site: Site, rows: pd.DataFrame, palette: plots.Palette) -> str:
    figures = peak_memory(rows, palette) + state_bytes(rows, palette)
    content = "".join(site.figure("memory", p) for p in figures)
    if "oom_frontier_seq_len" in rows.columns and rows["oom_frontier_seq_len"].notna().any():
        frontier = rows[rows["oom_frontier_seq_len"].notna()]
        columns = shown_columns(
            frontier, ["implementation", "mode", "dtype", "batch", "d_model", "oom_frontier_seq_len"]
        )
        content += section("OOM frontier", render_table(frontier, columns, "frontier"), "The longest seq_len that fit.")
    return content


def peak_memory(frame: pd.DataFrame, palette: plots.Palette | None = None) -> list[plots.Plot]:
    """Peak memory above baseline against seq_len, one panel per mode, with OOM jobs and frontiers marked."""
    palette = palette or plots.palette_for(frame)
    if "mode" not in frame.columns or "seq_len" not in frame.columns:
        return []
    measured = ok_rows(frame)
    measured = measured[numeric(measured, "peak_memory_bytes") > 0]
    out_of_memory = frame[frame["status"] == "oom"] if "status" in frame.columns else frame.iloc[0:0]
    frontiers = frame[numeric(frame, "oom_frontier_seq_len") > 0]
    modes = plots.modes_in(measured)
    if measured.empty or not modes:
        return []
    rows_of_panels, columns = math.ceil(len(modes) / 3), min(len(modes), 3)
    legend_columns = max(2, columns)
    # One entry per series, plus the frontier, out-of-memory and device-memory keys.
    entries = plots.labels_with_batch_if_swept(measured).nunique() + 3
    figure = plots.new_figure(5.2 * columns, plots.height_with_legend(4.4 * rows_of_panels, entries, legend_columns))
    axes = np.atleast_1d(figure.subplots(rows_of_panels, columns, squeeze=False)).ravel()
    legend: dict[str, object] = {}
    capacity = numeric(frame, "gpu_memory_bytes").max()
    for axis, mode in zip(axes, modes, strict=False):
        mode_rows = measured[measured["mode"] == mode]
        mode_rows = mode_rows.assign(_label=plots.labels_with_batch_if_swept(mode_rows))
        styles = plots.SeriesStyles(palette, mode_rows)
        for label, group in sorted(mode_rows.groupby("_label"), key=lambda item: str(item[0])):
            group = group.assign(_seq_len=numeric(group, "seq_len")).sort_values("_seq_len")
            style = styles(plots.implementation_of(group), label)
            (line,) = axis.plot(group["_seq_len"], numeric(group, "peak_memory_bytes"), ms=4, **style)
            legend.setdefault(plots.plain(label), line)
        for _, row in frontiers[frontiers["mode"] == mode].iterrows():
            axis.axvline(float(row["oom_frontier_seq_len"]), color=palette(row.get("implementation")), linestyle=":")
            legend.setdefault("OOM frontier (longest length that fit)", Line2D([], [], color="black", linestyle=":"))
        on_top = blended_transform_factory(axis.transData, axis.transAxes)
        for _, row in out_of_memory[out_of_memory["mode"] == mode].iterrows():
            axis.plot(
                [float(row["seq_len"])],
                [0.95],
                marker="X",
                ms=10,
                color=palette(row.get("implementation")),
                markeredgecolor="black",
                transform=on_top,
                clip_on=False,
                linestyle="",
            )
            legend.setdefault(
                "out of memory (at the top, at its seq_len)",
                Line2D([], [], marker="X", ms=9, linestyle="", color="white", markeredgecolor="black"),
            )
        if capacity > 0 and numeric(mode_rows, "peak_memory_bytes").max() > capacity / 100:
            legend.setdefault("device memory", axis.axhline(capacity, color="black", linestyle="--", linewidth=1))
        plots.log2_axis(axis)
        plots.log_y(axis, "bytes")
        axis.set_xlabel("seq_len (tokens)")
        axis.set_ylabel("peak memory above baseline")
        axis.set_title(f"mode {plots.plain(mode)}", fontsize=10)
    for axis in axes[len(modes) :]:
        axis.set_visible(False)
    plots.figure_legend(figure, list(legend.values()), list(legend), columns=legend_columns)
    return [
        plots.Plot(
            slug="peak_memory",
            title="Peak memory vs seq_len",
            caption="Log-log. An X marks a job that ran out of memory at that length; a dotted vertical line "
            "is an implementation's measured OOM frontier (the longest length that fit).",
            png=plots.render(figure),
        )
    ]


def state_bytes(frame: pd.DataFrame, palette: plots.Palette | None = None) -> list[plots.Plot]:
    """Decoding state (recurrent state or KV cache) against context length: analytic and measured."""
    palette = palette or plots.palette_for(frame)
    analytic, measured = numeric(frame, "state_bytes_analytic"), numeric(frame, "state_bytes_measured")
    rows = frame[(analytic > 0) | (measured > 0)]
    if "mode" in rows.columns and (rows["mode"] == "decode").any():
        rows = rows[rows["mode"] == "decode"]
    if rows.empty or not has_values(rows, "seq_len"):
        return []
    rows = rows.assign(_label=plots.labels_with_batch_if_swept(rows))
    # Legend: one entry per series, and the analytic and measured keys.
    figure = plots.new_figure(8, plots.height_with_legend(3.8, rows["_label"].nunique() + 2))
    axis = figure.subplots()
    handles, labels = [], []
    for label, group in sorted(rows.groupby("_label"), key=lambda item: str(item[0])):
        group = group.assign(_seq_len=numeric(group, "seq_len")).sort_values("_seq_len")
        group = group.drop_duplicates("_seq_len", keep="last")
        color = palette(plots.implementation_of(group))
        group_analytic = numeric(group, "state_bytes_analytic")
        group_measured = numeric(group, "state_bytes_measured")
        if group_analytic.notna().any():
            axis.plot(group["_seq_len"], group_analytic, linestyle="--", color=color)
        if group_measured.notna().any():
            axis.plot(group["_seq_len"], group_measured, marker="o", ms=5, linestyle="", color=color)
        handles.append(Line2D([], [], color=color, marker="o", linestyle="-"))
        labels.append(plots.plain(label))
    handles += [Line2D([], [], color="grey", linestyle="--"), Line2D([], [], color="grey", marker="o", linestyle="")]
    labels += ["analytic", "measured"]
    plots.log2_axis(axis)
    plots.log_y(axis, "bytes")
    axis.set_xlabel("context length (tokens)")
    axis.set_ylabel("decoding state")
    axis.set_title("Decoding state vs context: KV cache grows, a recurrent state does not")
    plots.figure_legend(figure, handles, labels)
    return [
        plots.Plot(
            slug="state_bytes",
            title="Decode state bytes vs context",
            caption="Dashed: the analytic state size; dots: measured. A horizontal line is a constant-size "
            "recurrent state; a line of slope 1 is a KV cache.",
            png=plots.render(figure),
        )
    ]
