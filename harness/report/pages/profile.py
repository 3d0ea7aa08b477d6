"""The profile page: top kernels per job, the core's roofline position, one row per profiled job."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.patches import Patch

from harness.report import plots
from harness.report.data import config_key_columns, has_values, key_text, numeric, ok_rows, series_labels
from harness.report.tables import render_table, section, shown_columns

if TYPE_CHECKING:
    from harness.report.site import Site


def body(site: Site, rows: pd.DataFrame, palette: plots.Palette) -> str:
    content = "".join(site.figure("profile", p) for p in top_kernels(rows, palette))
    content += "".join(site.figure("profile", p) for p in plots.roofline(rows, palette))
    jobs = profile_jobs(rows)
    if not jobs.empty:
        summary = jobs.sort_values("_time_ms", ascending=False).groupby("_job_key", sort=False).first().reset_index()
        summary = summary.rename(columns={"_kernel": "top_kernel", "part": "top_kernel_part"})
        columns = ["implementation", "mode", "dtype", "batch", "seq_len", "top_kernel", "top_kernel_part"]
        columns += ["step_device_time_us", "step_wall_time_us", "launches", "host_gap_us", "trace_path", "command"]
        content += section(
            "Profiled jobs",
            render_table(summary, shown_columns(summary, columns), "jobs", link_base=site.out_dir),
            "One row per job: its largest kernel, the step's device and wall time, launches, the host gap (wall "
            "time not covered by kernels: launch overhead), and its trace. Traces are Chrome trace JSON "
            "(*.pt.trace.json): open them in Perfetto (ui.perfetto.dev) or chrome://tracing, or with "
            "tensorboard --logdir and torch-tb-profiler.",
        )
    return content


def _profile_job_label(row: pd.Series, label: str) -> str:
    parts = [label]
    if not pd.isna(row.get("seq_len", np.nan)):
        parts.append(f"L={key_text(row.get('seq_len'))}")
    if not pd.isna(row.get("batch", np.nan)):
        parts.append(f"B={key_text(row.get('batch'))}")
    return " ".join(parts)


def profile_jobs(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per profiled job: its kernels summed into time per step, sorted, with the job's metrics."""
    rows = ok_rows(frame)
    if not (has_values(rows, "kernel_short") or has_values(rows, "kernel_name")):
        return pd.DataFrame()
    rows = rows.assign(
        _kernel=rows.get("kernel_short", pd.Series(np.nan, index=rows.index)).fillna(
            rows.get("kernel_name", pd.Series("?", index=rows.index))
        ),
        _label=series_labels(rows),
        _part=rows["part"].fillna("other") if "part" in rows.columns else "other",
    )
    share = numeric(rows, "share")
    step_us = numeric(rows, "step_device_time_us")
    own_us = numeric(rows, "self_device_time_us").fillna(numeric(rows, "device_time_us"))
    rows = rows.assign(_time_ms=(share * step_us).where(share.notna() & step_us.notna(), own_us) / 1000)
    # A job's kernels share its job_id; the run id keeps a job profiled in two runs as two bars.
    if has_values(rows, "job_id"):
        key_columns = [c for c in ("run_id", "job_id") if c in rows.columns]
    else:
        kernel_columns = {"kernel_name", "kernel_short", "part", "calls", "share"}
        kernel_columns |= {c for c in rows.columns if "time_us" in c}
        key_columns = [c for c in config_key_columns(rows) if c not in kernel_columns]
        key_columns += ["run_id"] if "run_id" in rows.columns else []
    keys = rows[key_columns].map(key_text).agg(" | ".join, axis=1)
    return rows.assign(_job_key=keys)


def top_kernels(frame: pd.DataFrame, palette: plots.Palette | None = None, top_n: int = 6) -> list[plots.Plot]:
    """Per mode: one bar per profiled job, stacked from its top kernels (coloured by mixer part)."""
    rows = profile_jobs(frame)
    if rows.empty:
        return []
    found = []
    for mode in plots.modes_in(rows) or [""]:
        mode_rows = rows[rows["mode"] == mode] if mode else rows
        bars = []
        for _, job in mode_rows.groupby("_job_key", sort=False):
            # A kernel launched from two parts of the mixer is two rows (and two segments).
            kernels = job.groupby(["_kernel", "_part"], sort=False)["_time_ms"].sum().sort_values(ascending=False)
            top, rest = kernels.iloc[:top_n], kernels.iloc[top_n:]
            segments = [(str(kernel), str(part), float(time_ms)) for (kernel, part), time_ms in top.items()]
            if not rest.empty:
                segments.append((f"{len(rest)} more", "rest", float(rest.sum())))
            first = job.iloc[0]
            bars.append((_profile_job_label(first, str(first["_label"])), segments))
        numbers = pd.DataFrame(
            [
                {"job": label, "kernel": name, "part": part, "time_ms": time_ms}
                for label, segments in sorted(bars)
                for name, part, time_ms in segments
            ]
        )
        bars.sort(key=lambda bar: bar[0])
        height = 1.2 + 0.42 * len(bars)
        figure = plots.new_figure(12, max(2.8, height))
        time_axis, share_axis = figure.subplots(1, 2, sharey=True)
        parts_seen: dict[str, None] = {}
        for y, (_, segments) in enumerate(bars):
            total = sum(t for _, _, t in segments) or 1.0
            left_time = left_share = 0.0
            for name, part, time_ms in segments:
                color = plots.PART_COLORS.get(part, plots.PART_COLORS["other"])
                parts_seen.setdefault(part if part in plots.PART_COLORS else "other")
                time_axis.barh(y, time_ms, left=left_time, color=color, edgecolor="white", height=0.7)
                share = time_ms / total
                share_axis.barh(y, share, left=left_share, color=color, edgecolor="white", height=0.7)
                if share > 0.07:
                    share_axis.text(
                        left_share + share / 2,
                        y,
                        plots.plain(name)[: max(4, int(share * 70))],
                        ha="center",
                        va="center",
                        fontsize=7,
                        clip_on=True,
                    )
                left_time += time_ms
                left_share += share
        time_axis.set_yticks(range(len(bars)), [plots.plain(label) for label, _ in bars], fontsize=8)
        time_axis.invert_yaxis()
        time_axis.set_xlabel("device time per step (ms)")
        share_axis.set_xlabel("share of the step's device time")
        share_axis.set_xlim(0, 1)
        for axis in (time_axis, share_axis):
            axis.grid(True, axis="x", alpha=0.3)
        handles = [Patch(color=plots.PART_COLORS[p]) for p in parts_seen]
        plots.figure_legend(figure, handles, list(parts_seen), columns=len(handles) or 1)
        figure.suptitle(f"Top {top_n} kernels per job" + (f", mode {plots.plain(mode)}" if mode else ""))
        found.append(
            plots.Plot(
                slug=plots.slugify("top_kernels", mode),
                title=f"Top kernels ({mode})" if mode else "Top kernels",
                caption="Each bar is one profiled job, stacked from its largest kernels (colour: the part of the "
                "mixer the kernel ran in; grey: the remaining kernels). Left: time per step; right: shares, "
                "labelled with the kernel's short name. The table below links each job's trace.",
                png=plots.render(figure),
                table=numbers,
                facets=(("mode", mode),) if mode else (),
            )
        )
    return found
