"""The memory page: peak memory versus sequence length, decoding state bytes, the OOM frontier."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.transforms import blended_transform_factory

from harness.report import plots
from harness.report.data import has_values, numeric, ok_rows, with_columns
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


MARK_TEXT = {
    "OOM frontier (longest length that fit)": "A dotted vertical line is an implementation's measured OOM "
    "frontier (the longest length that fit).",
    "out of memory (at the top, at its seq_len)": "An X at the top marks a job that ran out of memory at that length.",
    "device memory": "The dashed black line is the device's memory.",
}


def peak_memory(frame: pd.DataFrame, palette: plots.Palette | None = None) -> list[plots.Plot]:
    """Per mode: peak memory above baseline against seq_len, a panel per family, with OOM jobs, frontiers
    and the device's memory marked."""
    palette = palette or plots.palette_for(frame)
    if "mode" not in frame.columns or "seq_len" not in frame.columns:
        return []
    measured = ok_rows(frame)
    measured = measured[numeric(measured, "peak_memory_bytes") > 0]
    out_of_memory = frame[frame["status"] == "oom"] if "status" in frame.columns else frame.iloc[0:0]
    frontiers = frame[numeric(frame, "oom_frontier_seq_len") > 0]
    capacity = numeric(frame, "gpu_memory_bytes").max()
    found = []
    for mode in plots.modes_in(measured):
        rows = measured[measured["mode"] == mode]
        rows = rows.assign(
            _label=plots.labels_with_batch_if_swept(rows),
            _x=numeric(rows, "seq_len"),
            _y=numeric(rows, "peak_memory_bytes"),
        )
        marks: dict[str, object] = {}

        def extra(axis, title: str, panel: pd.DataFrame, mode: str = mode, marks: dict = marks) -> None:
            family = title.split(" ")[0]
            for _, row in frontiers[(frontiers["mode"] == mode)].iterrows():
                if plots.family_of(str(row.get("implementation"))) == family:
                    axis.axvline(float(row["oom_frontier_seq_len"]), color=palette(row.get("implementation")), ls=":")
                    marks.setdefault("OOM frontier (longest length that fit)", Line2D([], [], color="black", ls=":"))
            on_top = blended_transform_factory(axis.transData, axis.transAxes)
            for _, row in out_of_memory[out_of_memory["mode"] == mode].iterrows():
                if plots.family_of(str(row.get("implementation"))) != family:
                    continue
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
                marks.setdefault(
                    "out of memory (at the top, at its seq_len)",
                    Line2D([], [], marker="X", ms=9, linestyle="", color="white", markeredgecolor="black"),
                )
            if capacity > 0 and numeric(panel, "peak_memory_bytes").max() > capacity / 100:
                axis.axhline(capacity, color="black", linestyle="--", linewidth=1)
                marks.setdefault("device memory", Line2D([], [], color="black", linestyle="--"))

        figure = plots.line_panels(
            rows,
            palette,
            x_label="seq_len (tokens)",
            y_label="peak memory above baseline",
            y_units="bytes",
            suptitle=f"mode {mode}: peak memory vs length",
            draw_extra=extra,
        )
        columns = ["implementation", "seq_len", "batch", "peak_memory_bytes"]
        found.append(
            plots.Plot(
                slug=plots.slugify("peak_memory", mode),
                title=f"Peak memory vs seq_len (mode {mode})",
                caption="Log-log, a panel per family on shared axes. "
                + " ".join(MARK_TEXT[name] for name in marks)
                + " (The marks are named here, not in the legends, which name only the panel's lines.)",
                png=plots.render(figure),
                series=plots.series_count(figure),
                table=rows[columns].sort_values(["implementation", "seq_len"]),
                facets=(("mode", mode),),
            )
        )
    return found


def state_bytes(frame: pd.DataFrame, palette: plots.Palette | None = None) -> list[plots.Plot]:
    """Decoding state (recurrent state or KV cache) against context length, a panel per family: the
    analytic size dashed, the measured one as points."""
    palette = palette or plots.palette_for(frame)
    analytic, measured = numeric(frame, "state_bytes_analytic"), numeric(frame, "state_bytes_measured")
    rows = frame[(analytic > 0) | (measured > 0)]
    if "mode" in rows.columns and (rows["mode"] == "decode").any():
        rows = rows[rows["mode"] == "decode"]
    if rows.empty or not has_values(rows, "seq_len"):
        return []
    rows = rows.assign(_label=plots.labels_with_batch_if_swept(rows), _x=numeric(rows, "seq_len"))
    rows = rows.assign(
        _y=numeric(rows, "state_bytes_measured").where(lambda s: s > 0, numeric(rows, "state_bytes_analytic"))
    )

    def analytic_lines(axis, title: str, panel: pd.DataFrame) -> None:
        for _, group in panel.groupby("_label"):
            group = group.sort_values("_x").drop_duplicates("_x", keep="last")
            if numeric(group, "state_bytes_analytic").notna().any():
                color = palette(plots.implementation_of(group))
                axis.plot(group["_x"], numeric(group, "state_bytes_analytic"), linestyle="--", color=color, lw=1)

    figure = plots.line_panels(
        rows,
        palette,
        x_label="context length (tokens)",
        y_label="decoding state (measured; dashed: analytic)",
        y_units="bytes",
        suptitle="Decoding state vs context: a KV cache grows, a recurrent state does not",
        draw_extra=analytic_lines,
    )
    columns = ["implementation", "seq_len", "batch", "state_bytes_measured", "state_bytes_used", "state_bytes_analytic"]
    rows = with_columns(rows, columns)  # results written before state_bytes_used existed lack it
    return [
        plots.Plot(
            slug="state_bytes",
            title="Decode state bytes vs context",
            caption="A panel per family on shared axes. Solid with points: measured (the analytic size where "
            "nothing was measured); dashed: the analytic state size. A horizontal line is a constant-size "
            "recurrent state; a line of slope 1 is a KV cache. Measured counts whole allocations (a KV cache's "
            "spare capacity too: its buffer doubles as it grows); the table's state_bytes_used is the part in "
            "use, which is what the analytic size models.",
            png=plots.render(figure),
            series=plots.series_count(figure),
            table=rows[columns].sort_values(["implementation", "seq_len"]),
            facets=(("mode", "decode"),),
        )
    ]
