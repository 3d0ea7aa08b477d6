"""The cross-GPU page: the same jobs timed on two GPUs, each job's speedup beside the two machines'
measured copy-bandwidth and matmul-rate ratios, and which of them it follows (harness.report.hardware).

Not a suite's page: the report adds it when the timed rows come from two or more GPUs (`pairs`)."""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING

import pandas as pd
from matplotlib.ticker import FuncFormatter

from harness.errors import UserError
from harness.report import plots
from harness.report.hardware import LABELS, TOLERANCE_FLOOR, CrossGpu, cross_gpu, split_by_device
from harness.report.tables import render_table, section

if TYPE_CHECKING:
    from harness.report.site import Site

FILE_NAME = "cross_gpu.html"
TITLE = "Cross-GPU"
LABEL_COLORS = {
    "memory-bound": "#1f77b4",
    "compute-bound": "#d62728",
    "either": "#9467bd",
    "mixed": "#2ca02c",
    "neither": "#7f7f7f",
    "no ceilings": "#bcbd22",
}

RATIO_FORMAT = FuncFormatter(lambda value, _: f"x{value:.3g}")

ONE_GPU = "These results hold timed rows of one GPU only: nothing to set side by side."
RULE_TEXT = (
    "Speedup is A's median time over B's (above 1: B is faster); the ratios are B's measured ceiling over "
    "A's. A job is memory-bound when its speedup is within the tolerance of the copy-bandwidth ratio (and "
    "not of the matmul ratio), compute-bound when within it of the matmul-rate ratio, 'either' when within "
    "it of both (the ratios are too close to tell), 'mixed' when strictly between the two ratios and near "
    "neither, and 'neither' outside both (host or launch bound, a different kernel choice, or another "
    "cause). Within the tolerance: |log(speedup / ratio)| <= log(1 + tol), tol = max("
    f"{TOLERANCE_FLOOR:.0%}, the two rows' p10-p90 half-ranges over their medians, added). The {TOLERANCE_FLOOR:.0%} "
    "floor is above what one machine's repeated measurements vary by: the H100 baseline's five runs measured "
    "ceilings 1.7% (matmul) and 0.8% (copy) apart, and its median throughput row has a p10-p90 half-range of 1.1%."
)


def pairs(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame, str, pd.DataFrame]]:
    """(device A, its rows, device B, its rows): the first GPU by name against each other one."""
    by_device = split_by_device(frame)
    names = list(by_device)
    return [(names[0], by_device[names[0]], other, by_device[other]) for other in names[1:]]


def speedup_plot(result: CrossGpu, slug: str) -> plots.Plot:
    """Speedup per job against seq_len, a panel per mode; the two ratios as horizontal lines. Colours
    are the labels (at most six series per axis)."""
    table = result.table.assign(_x=pd.to_numeric(result.table["seq_len"], errors="coerce"))
    modes = sorted(set(table["mode"]), key=lambda m: plots.MODE_ORDER.index(m) if m in plots.MODE_ORDER else 99)
    figure = plots.new_figure(4.2 * len(modes) + 1, 4.2)
    axes = figure.subplots(1, len(modes), squeeze=False, sharey=True)[0]
    ratios = result.ratios
    for axis, mode in zip(axes, modes, strict=True):
        panel = table[table["mode"] == mode]
        for label in LABELS:
            points = panel[panel["bound"] == label]
            if not points.empty:
                axis.scatter(points["_x"], points["speedup"], color=LABEL_COLORS[label], label=label, s=22)
        if not ratios.missing():
            axis.axhline(ratios.copy_ratio, color=LABEL_COLORS["memory-bound"], linestyle="--", lw=1)
            axis.axhline(ratios.matmul_ratio, color=LABEL_COLORS["compute-bound"], linestyle=":", lw=1)
        axis.axhline(1, color="black", lw=0.6)
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.yaxis.set_major_formatter(RATIO_FORMAT)
        axis.yaxis.set_minor_formatter(RATIO_FORMAT)
        axis.set_title(plots.plain(mode))
        axis.set_xlabel("seq_len (tokens)")
        axis.grid(True, alpha=0.3)
    axes[0].set_ylabel("speedup: A time / B time (log)")
    handles, labels = axes[0].get_legend_handles_labels()
    for axis in axes[1:]:
        for handle, label in zip(*axis.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    if handles:
        plots.figure_legend(figure, handles, labels, columns=6)
    caption = (
        "Each point one job timed on both GPUs, coloured by its label. Dashed: the copy-bandwidth ratio; "
        "dotted: the matmul-rate ratio; black: no change."
    )
    return plots.Plot(
        slug=slug,
        title=f"Speedup of {ratios.b.device} over {ratios.a.device}, per job",
        caption=caption,
        png=plots.render(figure),
        series=plots.series_count(figure),
        table=result.table,
    )


def pair_section(site: Site, device_a: str, rows_a: pd.DataFrame, device_b: str, rows_b: pd.DataFrame) -> str:
    """One pair of GPUs: the ratios, the counts per label, the plot and every job's numbers."""
    heading = f"{device_a} (A) against {device_b} (B)"
    try:
        result = cross_gpu(rows_a, rows_b)
    except UserError as exc:
        return section(heading, f'<p class="empty">{html.escape(str(exc))}</p>')
    lines = [result.ratios.text()]
    missing = result.ratios.missing()
    if missing:
        lines.append(missing)
    counts = result.counts()
    lines.append(", ".join(f"{n} {label}" for label, n in counts.items()) + f" of {len(result.table)} jobs.")
    body = "".join(f"<p>{html.escape(line)}</p>" for line in lines)
    body += site.figure("cross_gpu", speedup_plot(result, plots.slugify("speedup", device_a, device_b)))
    shown = result.table.assign(
        **{c: result.table[c].map(_ratio) for c in ("time_b_over_a", "speedup", "copy_ratio", "matmul_ratio")},
        tolerance=result.table["tolerance"].map(lambda t: f"{t:.0%}"),
    )
    table_id = plots.slugify("cross-gpu", device_a, device_b)
    body += render_table(shown, list(shown.columns), table_id, caption="Every job timed on both; a_ms, b_ms: median.")
    return section(heading, body)


def _ratio(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.3f}"


def body(site: Site, frame: pd.DataFrame) -> str:
    found = pairs(frame)
    intro = f'<p class="caption">{html.escape(RULE_TEXT)}</p>'
    if not found:
        return (
            intro + '<p class="empty">These results hold timed rows of one GPU only: nothing to set side by side.</p>'
        )
    return intro + "".join(pair_section(site, *pair) for pair in found)
