"""The report's plots: matplotlib figures rendered to PNG bytes (Agg, no pyplot, no global state).

Each function takes result rows and returns `Plot`s (possibly none, when the rows hold nothing to draw),
so a page shows exactly the plots its data supports. Colours follow the implementation, the same in every
plot of a report (`Palette`).
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import EngFormatter, FuncFormatter, LogLocator, NullFormatter
from matplotlib.transforms import blended_transform_factory

from harness.report.analysis import fit_scaling_exponent
from harness.report.compare import Comparison
from harness.report.data import config_key_columns, has_values, key_text, numeric, ok_rows, series_labels

DPI = 100
MODE_ORDER = ("fwd", "fwd_bwd", "prefill", "train", "decode")
LINESTYLES = ("-", "--", ":", "-.")
SERIES_MARKERS = ("o", "s", "^", "D")
MODE_MARKERS = {"fwd": "o", "fwd_bwd": "s", "prefill": "^", "train": "D", "decode": "v"}
PART_COLORS = {
    "projection": "#4C72B0",
    "convolution": "#DD8452",
    "core": "#C44E52",
    "norm": "#8172B3",
    "gating": "#55A868",
    "other": "#937860",
    "rest": "#CCCCCC",
}


@dataclass(frozen=True)
class Plot:
    slug: str  # file name stem: [a-z0-9_-] only
    title: str
    caption: str
    png: bytes


class Palette:
    """One colour per implementation, stable across every plot of a report."""

    def __init__(self, implementations: Sequence[str]) -> None:
        from matplotlib import colormaps

        names = sorted({str(i) for i in implementations})
        # tab10 while it suffices; then tab20, and past 20 (a GPU run holds 30) tab20b and tab20c as well,
        # so no two implementations of a report share a colour up to 60.
        maps = ["tab10"] if len(names) <= 10 else ["tab20"] if len(names) <= 20 else ["tab20", "tab20b", "tab20c"]
        colors = [color for name in maps for color in colormaps[name].colors]
        self._colors = {name: colors[i % len(colors)] for i, name in enumerate(names)}

    def __call__(self, implementation: str) -> tuple[float, ...]:
        return self._colors.get(str(implementation), (0.3, 0.3, 0.3))


def palette_for(frame: pd.DataFrame) -> Palette:
    names = frame["implementation"].dropna().astype(str).unique() if "implementation" in frame.columns else []
    return Palette(list(names))


def plain(text: object) -> str:
    """Text from results, safe for matplotlib: a `$` would otherwise start mathtext and may fail to parse."""
    return str(text).replace("$", r"\$")


def slugify(*parts: object) -> str:
    text = "-".join(str(p) for p in parts if str(p))
    return re.sub(r"[^a-z0-9_-]+", "_", text.lower()).strip("_-")[:80] or "plot"


def _new_figure(width: float, height: float) -> Figure:
    # Constrained layout makes room for titles and the legend below the axes in one pass.
    return Figure(figsize=(width, height), layout="constrained")


def _height_with_legend(axes_height: float, entries: int, columns: int = 2) -> float:
    """Figure height in inches: the axes keep `axes_height` however long the legend below them grows."""
    return axes_height + 0.2 * math.ceil(entries / columns)


def _render(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _length_text(value: float, _position: object = None) -> str:
    """Tick text for a token count: 512, 2K, 64K, 1M (plain text: mathtext is slow to lay out)."""
    for unit, size in (("M", 2**20), ("K", 2**10)):
        if value >= size:
            return f"{value / size:g}{unit}"
    return f"{value:g}"


def _number_text(value: float, _position: object = None) -> str:
    return f"{value:.0f}" if 1000 <= abs(value) < 1e7 else f"{value:.3g}"


def _bytes_text(value: float, _position: object = None) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(value) >= size:
            return f"{value / size:.3g} {unit}"
    return f"{value:.3g} B"


def _log_y(axis, units: str = "plain") -> None:
    """Log y axis with plain tick text (`units`: plain | eng | bytes); call after plotting.

    Over a narrow range the default locator would leave one labelled tick or none, so ticks go at
    1-2-5 steps when the data spans under three decades."""
    axis.set_yscale("log")
    low, high = axis.get_ylim()
    decades = math.log10(high / low) if low > 0 and high > low else 10.0
    if units == "bytes":
        axis.yaxis.set_major_locator(LogLocator(base=2, numticks=8))
    elif decades < 3:
        axis.yaxis.set_major_locator(
            LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades > 0.8 else (1.0, 2.0, 3.0, 5.0, 7.0))
        )
    formatter = {"plain": FuncFormatter(_number_text), "eng": EngFormatter(sep=""), "bytes": FuncFormatter(_bytes_text)}
    axis.yaxis.set_major_formatter(formatter[units])
    axis.yaxis.set_minor_formatter(NullFormatter())


def _modes(frame: pd.DataFrame) -> list[str]:
    present = [str(m) for m in frame["mode"].dropna().unique()] if "mode" in frame.columns else []
    return [m for m in MODE_ORDER if m in present] + sorted(set(present) - set(MODE_ORDER))


class SeriesStyles:
    """Colour from the implementation; line style and marker tell apart series of one implementation
    (op vs layer level, two dtypes, ...), in sorted order so a series keeps its style across panels."""

    def __init__(self, palette: Palette, frame: pd.DataFrame) -> None:
        self.palette = palette
        self.rank: dict[str, int] = {}
        per_implementation: dict[str, int] = {}
        pairs = sorted({(key_text(i), str(s)) for i, s in zip(frame["implementation"], frame["_label"], strict=True)})
        for implementation, label in pairs:
            self.rank[label] = per_implementation.get(implementation, 0)
            per_implementation[implementation] = self.rank[label] + 1

    def __call__(self, implementation: str, label: str) -> dict[str, object]:
        rank = self.rank.get(str(label), 0)
        return {
            "color": self.palette(implementation),
            "linestyle": LINESTYLES[rank % len(LINESTYLES)],
            "marker": SERIES_MARKERS[rank % len(SERIES_MARKERS)],
        }


def _implementation_of(group: pd.DataFrame) -> str:
    return key_text(group["implementation"].iloc[0]) if "implementation" in group.columns else ""


def _log2_axis(axis) -> None:
    axis.set_xscale("log", base=2)
    axis.xaxis.set_major_formatter(FuncFormatter(_length_text))
    axis.grid(True, which="major", alpha=0.3)


# Width of a legend entry at fontsize 8: the handle and its padding, and per character of the label.
LEGEND_HANDLE_IN = 0.6
LEGEND_CHAR_IN = 0.065


def _figure_legend(figure: Figure, handles: list, labels: list[str], columns: int = 2) -> None:
    """The legend below the axes, in at most `columns` columns: fewer where the labels are too long for
    the figure's width (a baseline mixing presets labels its series with their configs), the figure
    then growing taller (and, for a label longer than the figure, wider) so the axes keep their size."""
    if not handles:
        return
    entry_in = LEGEND_HANDLE_IN + LEGEND_CHAR_IN * max(len(label) for label in labels)
    fitted = max(1, min(columns, int(figure.get_figwidth() // entry_in)))
    if fitted < columns:
        extra_rows = math.ceil(len(labels) / fitted) - math.ceil(len(labels) / columns)
        figure.set_figheight(figure.get_figheight() + 0.2 * extra_rows)
    figure.set_figwidth(max(figure.get_figwidth(), entry_in * fitted))
    figure.legend(handles, labels, loc="outside lower center", ncol=fitted, fontsize=8, frameon=False)


# --------------------------------------------------------------------------------------- throughput


def _one_row_per_length(group: pd.DataFrame) -> pd.DataFrame:
    """Where one series was measured at a length with several batch sizes, keep the largest batch."""
    group = group.assign(_batch=numeric(group, "batch").fillna(1.0), _seq_len=numeric(group, "seq_len"))
    group = group.sort_values(["_seq_len", "_batch"]).drop_duplicates("_seq_len", keep="last")
    return group


def _labels_with_batch_if_swept(rows: pd.DataFrame) -> pd.Series:
    """Series labels that name the batch only where batch is a sweep dimension of its own (several batch
    sizes at one length). In a constant-tokens sweep batch falls as L grows: naming it would cut every
    line into single points."""
    labels = series_labels(rows)
    batch = numeric(rows, "batch")
    per_point = pd.DataFrame({"label": labels, "seq_len": numeric(rows, "seq_len"), "batch": batch})
    if (per_point.groupby(["label", "seq_len"])["batch"].nunique() > 1).any():
        return series_labels(rows, extra_fields=("batch",))
    return labels


def _tokens_per_second(group: pd.DataFrame, per_step: bool = False) -> pd.Series:
    measured = numeric(group, "tokens_per_second")
    seconds = numeric(group, "median_ms") / 1000
    batch = numeric(group, "batch").fillna(1.0)
    tokens = batch if per_step else batch * numeric(group, "seq_len")
    return measured.where(measured.notna(), tokens / seconds)


def throughput_scaling(frame: pd.DataFrame, palette: Palette | None = None) -> list[Plot]:
    """Per mode: time per sequence and tokens/s against seq_len, log-log, with fitted exponents."""
    palette = palette or palette_for(frame)
    rows = ok_rows(frame)
    if not has_values(rows, "median_ms") or not has_values(rows, "seq_len"):
        return []
    rows = rows[rows["median_ms"].notna() & (rows.get("mode") != "decode")]
    plots = []
    for mode in _modes(rows):
        subset = rows[rows["mode"] == mode]
        subset = subset.assign(_label=series_labels(subset))
        styles = SeriesStyles(palette, subset)
        figure = _new_figure(11, _height_with_legend(3.8, subset["_label"].nunique()))
        time_axis, rate_axis = figure.subplots(1, 2)
        handles, labels = [], []
        for label, group in sorted(subset.groupby("_label"), key=lambda item: str(item[0])):
            group = _one_row_per_length(group)
            if group.empty:
                continue
            style = styles(_implementation_of(group), label)
            seq_len = group["_seq_len"].to_numpy()
            per_sequence_ms = (numeric(group, "median_ms") / group["_batch"]).to_numpy()
            slope = fit_scaling_exponent(seq_len, per_sequence_ms)
            (line,) = time_axis.plot(seq_len, per_sequence_ms, ms=4, **style)
            rate_axis.plot(seq_len, _tokens_per_second(group).to_numpy(), ms=4, **style)
            fitted = "" if slope is None else f"   time ∝ L^{slope:.2f}"
            handles.append(line)
            labels.append(plain(label) + fitted)
        for axis in (time_axis, rate_axis):
            _log2_axis(axis)
            _log_y(axis, "eng" if axis is rate_axis else "plain")
            axis.set_xlabel("seq_len (tokens)")
        time_axis.set_ylabel("median time per sequence (ms)")
        time_axis.set_title("time per sequence (median ms / batch)", fontsize=10)
        rate_axis.set_ylabel("tokens / s")
        rate_axis.set_title("throughput", fontsize=10)
        _figure_legend(figure, handles, labels)
        figure.suptitle(f"mode {plain(mode)}: scaling with sequence length")
        plots.append(
            Plot(
                slug=slugify("throughput", mode),
                title=f"Throughput vs seq_len ({mode})",
                caption=(
                    "Log-log. The legend gives the exponent of a power-law fit to the three longest lengths "
                    "of each line (attention tends to 2, scans and recurrences to 1). Where a length was "
                    "measured at several batch sizes, the largest batch is shown."
                ),
                png=_render(figure),
            )
        )
    return plots


def roofline(frame: pd.DataFrame, palette: Palette | None = None) -> list[Plot]:
    """Achieved TFLOP/s against arithmetic intensity, under the measured matmul and copy ceilings."""
    palette = palette or palette_for(frame)
    rows = ok_rows(frame)
    flops, min_bytes, tflops = numeric(rows, "flops"), numeric(rows, "min_bytes"), numeric(rows, "achieved_tflops")
    keep = (flops > 0) & (min_bytes > 0) & (tflops > 0)
    rows = rows[keep]
    if rows.empty:
        return []
    intensity = (flops[keep] / min_bytes[keep]).to_numpy()
    achieved = tflops[keep].to_numpy()
    implementations = sorted(rows["implementation"].astype(str).unique())
    modes = _modes(rows)
    # Legend: one entry per implementation and per mode (marker), and the ceiling line.
    figure = _new_figure(8, _height_with_legend(3.8, len(implementations) + len(modes) + 1))
    axis = figure.subplots()
    for implementation in implementations:
        for mode in modes:
            mask = ((rows["implementation"].astype(str) == implementation) & (rows["mode"] == mode)).to_numpy()
            if mask.any():
                axis.scatter(
                    intensity[mask],
                    achieved[mask],
                    color=palette(implementation),
                    marker=MODE_MARKERS.get(mode, "o"),
                    s=30,
                    edgecolors="black",
                    linewidths=0.4,
                    zorder=3,
                )
    x_low, x_high = float(intensity.min()) / 4, float(intensity.max()) * 4
    ceilings = rows.assign(_tflops=numeric(rows, "peak_matmul_tflops"), _gbps=numeric(rows, "peak_copy_gbps")).dropna(
        subset=["_tflops", "_gbps"]
    )
    ceiling_handles, ceiling_labels = [], []
    if not ceilings.empty:
        names = ceilings.get("gpu_name", pd.Series(np.nan, index=ceilings.index))
        names = names.astype(object).where(names.notna(), ceilings.get("device", "this device"))
        ceilings = ceilings.assign(_device_name=names.fillna("this device").map(key_text))
        for index, (name, group) in enumerate(list(ceilings.groupby("_device_name"))[:3]):
            peak_tflops, peak_gbps = float(group["_tflops"].median()), float(group["_gbps"].median())
            ridge = peak_tflops * 1000 / peak_gbps  # FLOP per byte where the two ceilings meet
            x = np.geomspace(min(x_low, ridge / 8), max(x_high, ridge * 8), 200)
            (line,) = axis.plot(
                x,
                np.minimum(peak_tflops, x * peak_gbps / 1000),
                color="black",
                linewidth=1.2,
                linestyle=LINESTYLES[index],
            )
            ceiling_handles.append(line)
            ceiling_labels.append(
                f"{plain(name)}: {peak_tflops:.3g} TFLOP/s, {peak_gbps:.3g} GB/s (ridge {ridge:.3g} FLOP/B)"
            )
        caption = "Ceilings are this run's measured bf16 matmul rate and copy bandwidth."
    else:
        caption = "No device ceilings were measured for these rows (e.g. a CPU run): points only."
    axis.set_xscale("log")
    axis.xaxis.set_major_formatter(FuncFormatter(_number_text))
    _log_y(axis)
    axis.grid(True, which="major", alpha=0.3)
    axis.set_xlabel("arithmetic intensity (analytic FLOPs / minimum bytes)")
    axis.set_ylabel("achieved TFLOP/s")
    axis.set_title("Roofline")
    implementation_handles = [
        Line2D([], [], marker="o", linestyle="", color=palette(name), markeredgecolor="black")
        for name in implementations
    ]
    mode_handles = [
        Line2D([], [], marker=MODE_MARKERS.get(m, "o"), linestyle="", color="white", markeredgecolor="black")
        for m in modes
    ]
    _figure_legend(
        figure,
        ceiling_handles + implementation_handles + mode_handles,
        ceiling_labels + [plain(n) for n in implementations] + [f"mode {plain(m)}" for m in modes],
    )
    return [
        Plot(
            slug="roofline",
            title="Roofline",
            caption=caption + " Colour: implementation; marker: mode. FLOPs and bytes come from the analytic models.",
            png=_render(figure),
        )
    ]


def decode_latency(frame: pd.DataFrame, palette: Palette | None = None) -> list[Plot]:
    """One decoding step's latency and tokens/s against the context length it decodes at."""
    palette = palette or palette_for(frame)
    rows = ok_rows(frame)
    if "mode" not in rows.columns:
        return []
    rows = rows[(rows["mode"] == "decode") & numeric(rows, "median_ms").notna() & numeric(rows, "seq_len").notna()]
    if rows.empty:
        return []
    rows = rows.assign(_label=_labels_with_batch_if_swept(rows))
    styles = SeriesStyles(palette, rows)
    figure = _new_figure(11, _height_with_legend(3.8, rows["_label"].nunique()))
    latency_axis, rate_axis = figure.subplots(1, 2)
    handles, labels = [], []
    for label, group in sorted(rows.groupby("_label"), key=lambda item: str(item[0])):
        group = group.assign(_seq_len=numeric(group, "seq_len")).sort_values("_seq_len")
        style = styles(_implementation_of(group), label)
        context = group["_seq_len"].to_numpy()
        (line,) = latency_axis.plot(context, numeric(group, "median_ms").to_numpy(), ms=4, **style)
        rate_axis.plot(context, _tokens_per_second(group, per_step=True).to_numpy(), ms=4, **style)
        handles.append(line)
        labels.append(plain(label))
    for axis in (latency_axis, rate_axis):
        _log2_axis(axis)
        _log_y(axis, "eng" if axis is rate_axis else "plain")
        axis.set_xlabel("context length (tokens already in the state)")
    latency_axis.set_ylabel("median latency per step (ms)")
    latency_axis.set_title("decode latency", fontsize=10)
    rate_axis.set_ylabel("tokens / s (batch / step time)")
    rate_axis.set_title("decode throughput", fontsize=10)
    _figure_legend(figure, handles, labels)
    return [
        Plot(
            slug="decode_latency",
            title="Decode latency and tokens/s vs context",
            caption="One `step` at each context length: attention reads a KV cache that grows with the context; "
            "recurrent mixers carry a fixed-size state, so their latency stays flat. Where a sweep changes the "
            "batch with the context, each point has its own batch (see the table).",
            png=_render(figure),
        )
    ]


# ------------------------------------------------------------------------------------------- memory


def peak_memory(frame: pd.DataFrame, palette: Palette | None = None) -> list[Plot]:
    """Peak memory above baseline against seq_len, one panel per mode, with OOM jobs and frontiers marked."""
    palette = palette or palette_for(frame)
    if "mode" not in frame.columns or "seq_len" not in frame.columns:
        return []
    measured = ok_rows(frame)
    measured = measured[numeric(measured, "peak_memory_bytes") > 0]
    out_of_memory = frame[frame["status"] == "oom"] if "status" in frame.columns else frame.iloc[0:0]
    frontiers = frame[numeric(frame, "oom_frontier_seq_len") > 0]
    modes = _modes(measured)
    if measured.empty or not modes:
        return []
    rows_of_panels, columns = math.ceil(len(modes) / 3), min(len(modes), 3)
    legend_columns = max(2, columns)
    # One entry per series, plus the frontier, out-of-memory and device-memory keys.
    entries = _labels_with_batch_if_swept(measured).nunique() + 3
    figure = _new_figure(5.2 * columns, _height_with_legend(4.4 * rows_of_panels, entries, legend_columns))
    axes = np.atleast_1d(figure.subplots(rows_of_panels, columns, squeeze=False)).ravel()
    legend: dict[str, object] = {}
    capacity = numeric(frame, "gpu_memory_bytes").max()
    for axis, mode in zip(axes, modes, strict=False):
        mode_rows = measured[measured["mode"] == mode]
        mode_rows = mode_rows.assign(_label=_labels_with_batch_if_swept(mode_rows))
        styles = SeriesStyles(palette, mode_rows)
        for label, group in sorted(mode_rows.groupby("_label"), key=lambda item: str(item[0])):
            group = group.assign(_seq_len=numeric(group, "seq_len")).sort_values("_seq_len")
            style = styles(_implementation_of(group), label)
            (line,) = axis.plot(group["_seq_len"], numeric(group, "peak_memory_bytes"), ms=4, **style)
            legend.setdefault(plain(label), line)
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
        _log2_axis(axis)
        _log_y(axis, "bytes")
        axis.set_xlabel("seq_len (tokens)")
        axis.set_ylabel("peak memory above baseline")
        axis.set_title(f"mode {plain(mode)}", fontsize=10)
    for axis in axes[len(modes) :]:
        axis.set_visible(False)
    _figure_legend(figure, list(legend.values()), list(legend), columns=legend_columns)
    return [
        Plot(
            slug="peak_memory",
            title="Peak memory vs seq_len",
            caption="Log-log. An X marks a job that ran out of memory at that length; a dotted vertical line "
            "is an implementation's measured OOM frontier (the longest length that fit).",
            png=_render(figure),
        )
    ]


def state_bytes(frame: pd.DataFrame, palette: Palette | None = None) -> list[Plot]:
    """Decoding state (recurrent state or KV cache) against context length: analytic and measured."""
    palette = palette or palette_for(frame)
    analytic, measured = numeric(frame, "state_bytes_analytic"), numeric(frame, "state_bytes_measured")
    rows = frame[(analytic > 0) | (measured > 0)]
    if "mode" in rows.columns and (rows["mode"] == "decode").any():
        rows = rows[rows["mode"] == "decode"]
    if rows.empty or not has_values(rows, "seq_len"):
        return []
    rows = rows.assign(_label=_labels_with_batch_if_swept(rows))
    # Legend: one entry per series, and the analytic and measured keys.
    figure = _new_figure(8, _height_with_legend(3.8, rows["_label"].nunique() + 2))
    axis = figure.subplots()
    handles, labels = [], []
    for label, group in sorted(rows.groupby("_label"), key=lambda item: str(item[0])):
        group = group.assign(_seq_len=numeric(group, "seq_len")).sort_values("_seq_len")
        group = group.drop_duplicates("_seq_len", keep="last")
        color = palette(_implementation_of(group))
        group_analytic = numeric(group, "state_bytes_analytic")
        group_measured = numeric(group, "state_bytes_measured")
        if group_analytic.notna().any():
            axis.plot(group["_seq_len"], group_analytic, linestyle="--", color=color)
        if group_measured.notna().any():
            axis.plot(group["_seq_len"], group_measured, marker="o", ms=5, linestyle="", color=color)
        handles.append(Line2D([], [], color=color, marker="o", linestyle="-"))
        labels.append(plain(label))
    handles += [Line2D([], [], color="grey", linestyle="--"), Line2D([], [], color="grey", marker="o", linestyle="")]
    labels += ["analytic", "measured"]
    _log2_axis(axis)
    _log_y(axis, "bytes")
    axis.set_xlabel("context length (tokens)")
    axis.set_ylabel("decoding state")
    axis.set_title("Decoding state vs context: KV cache grows, a recurrent state does not")
    _figure_legend(figure, handles, labels)
    return [
        Plot(
            slug="state_bytes",
            title="Decode state bytes vs context",
            caption="Dashed: the analytic state size; dots: measured. A horizontal line is a constant-size "
            "recurrent state; a line of slope 1 is a KV cache.",
            png=_render(figure),
        )
    ]


# ------------------------------------------------------------------------------------------ profile


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


def top_kernels(frame: pd.DataFrame, palette: Palette | None = None, top_n: int = 6) -> list[Plot]:
    """Per mode: one bar per profiled job, stacked from its top kernels (coloured by mixer part)."""
    rows = profile_jobs(frame)
    if rows.empty:
        return []
    plots = []
    for mode in _modes(rows) or [""]:
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
        bars.sort(key=lambda bar: bar[0])
        height = 1.2 + 0.42 * len(bars)
        figure = _new_figure(12, max(2.8, height))
        time_axis, share_axis = figure.subplots(1, 2, sharey=True)
        parts_seen: dict[str, None] = {}
        for y, (_, segments) in enumerate(bars):
            total = sum(t for _, _, t in segments) or 1.0
            left_time = left_share = 0.0
            for name, part, time_ms in segments:
                color = PART_COLORS.get(part, PART_COLORS["other"])
                parts_seen.setdefault(part if part in PART_COLORS else "other")
                time_axis.barh(y, time_ms, left=left_time, color=color, edgecolor="white", height=0.7)
                share = time_ms / total
                share_axis.barh(y, share, left=left_share, color=color, edgecolor="white", height=0.7)
                if share > 0.07:
                    share_axis.text(
                        left_share + share / 2,
                        y,
                        plain(name)[: max(4, int(share * 70))],
                        ha="center",
                        va="center",
                        fontsize=7,
                        clip_on=True,
                    )
                left_time += time_ms
                left_share += share
        time_axis.set_yticks(range(len(bars)), [plain(label) for label, _ in bars], fontsize=8)
        time_axis.invert_yaxis()
        time_axis.set_xlabel("device time per step (ms)")
        share_axis.set_xlabel("share of the step's device time")
        share_axis.set_xlim(0, 1)
        for axis in (time_axis, share_axis):
            axis.grid(True, axis="x", alpha=0.3)
        handles = [Patch(color=PART_COLORS[p]) for p in parts_seen]
        _figure_legend(figure, handles, list(parts_seen), columns=len(handles) or 1)
        figure.suptitle(f"Top {top_n} kernels per job" + (f", mode {plain(mode)}" if mode else ""))
        plots.append(
            Plot(
                slug=slugify("top_kernels", mode),
                title=f"Top kernels ({mode})" if mode else "Top kernels",
                caption="Each bar is one profiled job, stacked from its largest kernels (colour: the part of the "
                "mixer the kernel ran in; grey: the remaining kernels). Left: time per step; right: shares, "
                "labelled with the kernel's short name. The table below links each job's trace.",
                png=_render(figure),
            )
        )
    return plots


# ------------------------------------------------------------------------------------------- recall


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


def _short_source(source: object) -> str:
    """'Mamba (Gu & Dao 2023, arXiv 2312.00752), Table 1: selective copying, ...' -> the part before ':'."""
    return plain(key_text(source).split(":")[0])


def _references_for(references: pd.DataFrame | None, task: str, extrapolation: bool) -> pd.DataFrame:
    """The task's published points, either those at their training length or those tested beyond it."""
    if references is None or references.empty or "task" not in references.columns:
        return pd.DataFrame()
    points = references[references["task"].map(key_text) == task]
    beyond = numeric(points, "eval_seq_len").notna() & (numeric(points, "eval_seq_len") != numeric(points, "seq_len"))
    return points[beyond] if extrapolation else points[~beyond]


def recall_accuracy(
    frame: pd.DataFrame, references: pd.DataFrame | None = None, palette: Palette | None = None
) -> list[Plot]:
    """Zoology-style: accuracy against d_model, one figure per task, one panel per seq_len, published points
    beside ours (in a panel of their own where the paper used a length we did not run)."""
    palette = palette or palette_for(frame)
    best = best_recall(frame)
    if best.empty:
        return []
    extrapolated_tasks = set()
    if has_values(frame, "eval_seq_len") and "task" in frame.columns:
        extrapolated_tasks = set(frame.loc[numeric(frame, "eval_seq_len").notna(), "task"].map(key_text))
    plots = []
    for task in sorted(best["_task"].unique()):
        task_rows = best[best["_task"] == task]
        if task_rows["_d_model"].nunique() < 2 and task in extrapolated_tasks:
            continue  # one width only: nothing to see against d_model; the extrapolation plot shows this task
        task_references = _references_for(references, task, extrapolation=False)
        ours = sorted(task_rows["_seq_len"].dropna().unique()) or [math.nan]
        published_only = sorted(set(numeric(task_references, "seq_len").dropna()) - set(ours))
        panels = [(length, False) for length in ours] + [(length, True) for length in published_only]
        columns = min(len(panels), 4)
        figure = _new_figure(max(6.0, 3.6 * columns + 1), 3.4 * math.ceil(len(panels) / columns) + 0.8)
        axes = np.atleast_1d(figure.subplots(math.ceil(len(panels) / columns), columns, squeeze=False)).ravel()
        legend: dict[str, object] = {}
        styles = SeriesStyles(palette, task_rows)
        for axis, (seq_len, only_published) in zip(axes, panels, strict=False):
            panel = task_rows[task_rows["_seq_len"] == seq_len] if not math.isnan(seq_len) else task_rows
            for label, group in sorted(panel.groupby("_label"), key=lambda item: str(item[0])):
                group = group.sort_values("_d_model")
                style = styles(key_text(group["implementation"].iloc[0]), label)
                (line,) = axis.plot(group["_d_model"], group["accuracy"], ms=5, **style)
                legend.setdefault(plain(label), line)
            _draw_references(axis, task_references, seq_len, legend)
            _log2_axis(axis)
            axis.set_ylim(-0.02, 1.05)
            axis.set_xlabel("d_model")
            axis.set_ylabel("accuracy")
            title = "" if math.isnan(seq_len) else f"seq_len {_length_text(seq_len)}"
            axis.set_title(title + (" (published only)" if only_published else ""), fontsize=10)
        for axis in axes[len(panels) :]:
            axis.set_visible(False)
        figure.suptitle(f"{plain(task)}: accuracy vs model width")
        _figure_legend(figure, list(legend.values()), list(legend), columns=1 if len(legend) > 6 else 2)
        plots.append(
            Plot(
                slug=slugify("recall", task),
                title=f"Recall accuracy vs d_model: {task}",
                caption="Mean over seeds, best over learning rates per cell (as Zoology and MAD report). Stars are "
                "published accuracies, labelled with the model and (in the legend) their source; a dotted "
                "horizontal line is a published accuracy whose width was not given; a dotted vertical line is a "
                "published claim without a number (see the table below).",
                png=_render(figure),
            )
        )
    return plots


def _draw_references(axis, references: pd.DataFrame, seq_len: float, legend: dict[str, object]) -> None:
    if references.empty:
        return
    lengths = numeric(references, "seq_len")
    here = references[lengths.isna() | (lengths == seq_len)] if not math.isnan(seq_len) else references
    for number, (_, point) in enumerate(here.iterrows()):
        accuracy, d_model = float(point["accuracy"]), float(point["d_model"])
        name, source = plain(key_text(point.get("model"))), _short_source(point.get("source"))
        if math.isnan(accuracy):  # a claim without a number: mark the width it is about
            if d_model > 0:
                axis.axvline(d_model, color="goldenrod", linestyle=":", linewidth=1.5)
                axis.annotate(name + ": claim", (d_model, 0.04), fontsize=7, rotation=90, va="bottom", ha="right")
                legend.setdefault("published claim: " + source, Line2D([], [], color="goldenrod", linestyle=":"))
        elif d_model > 0:
            axis.plot(
                [d_model], [accuracy], marker="*", ms=13, color="gold", markeredgecolor="black", linestyle="", zorder=4
            )
            offset = (7, -3) if number % 2 == 0 else (-7, -3)  # alternate sides: points often share a width
            axis.annotate(
                name,
                (d_model, accuracy),
                textcoords="offset points",
                xytext=offset,
                fontsize=6.5,
                ha="left" if number % 2 == 0 else "right",
            )
            legend.setdefault(
                "published: " + source,
                Line2D([], [], marker="*", ms=11, color="gold", markeredgecolor="black", linestyle=""),
            )
        else:
            axis.axhline(accuracy, color="grey", linestyle=":", linewidth=1)
            axis.annotate(name, (0.01, accuracy), xycoords=("axes fraction", "data"), fontsize=7, va="bottom")
            legend.setdefault("published (width not given): " + source, Line2D([], [], color="grey", linestyle=":"))


def recall_extrapolation(
    frame: pd.DataFrame, references: pd.DataFrame | None = None, palette: Palette | None = None
) -> list[Plot]:
    """Accuracy against evaluation length for models trained at one length (induction-heads style), with the
    published curves of the same task drawn dashed beside ours."""
    palette = palette or palette_for(frame)
    rows = ok_rows(frame)
    if not (has_values(rows, "eval_seq_len") and has_values(rows, "accuracy")):
        return []
    rows = rows[numeric(rows, "eval_seq_len").notna()]
    rows = rows.assign(
        _label=series_labels(rows, extra_fields=("seq_len",)),
        _task=rows.get("task", pd.Series("", index=rows.index)).map(key_text),
        _eval=numeric(rows, "eval_seq_len"),
        _accuracy=numeric(rows, "accuracy"),
    )
    tasks = sorted(rows["_task"].unique())
    figure = _new_figure(6.0 * min(len(tasks), 2), 4.4 * math.ceil(len(tasks) / 2) + 0.6)
    axes = np.atleast_1d(figure.subplots(math.ceil(len(tasks) / 2), min(len(tasks), 2), squeeze=False)).ravel()
    legend: dict[str, object] = {}
    greys = ("#555555", "#8c564b", "#7f7f7f", "#bcbd22", "#17becf", "#9467bd", "#e377c2")
    for axis, task in zip(axes, tasks, strict=False):
        task_rows = rows[rows["_task"] == task]
        styles = SeriesStyles(palette, task_rows)
        for label, group in sorted(task_rows.groupby("_label"), key=lambda item: str(item[0])):
            curve = group.groupby("_eval")["_accuracy"].max().sort_index()
            (line,) = axis.plot(curve.index, curve.to_numpy(), ms=4, **styles(_implementation_of(group), label))
            legend.setdefault(plain(label), line)
        published = _references_for(references, task, extrapolation=True)
        for index, (model, points) in enumerate(published.groupby("model", sort=True)):
            points = points.dropna(subset=["accuracy"]).sort_values("eval_seq_len")
            (line,) = axis.plot(
                points["eval_seq_len"],
                points["accuracy"],
                linestyle="--",
                marker="*",
                ms=7,
                color=greys[index % len(greys)],
                linewidth=1,
            )
            legend.setdefault(f"published: {plain(model)} ({_short_source(points['source'].iloc[0])})", line)
        _log2_axis(axis)
        axis.set_ylim(-0.02, 1.05)
        axis.set_xlabel("evaluation length (tokens)")
        axis.set_ylabel("accuracy")
        axis.set_title(plain(task), fontsize=10)
    for axis in axes[len(tasks) :]:
        axis.set_visible(False)
    _figure_legend(figure, list(legend.values()), list(legend), columns=1 if len(legend) > 6 else 2)
    return [
        Plot(
            slug="recall_extrapolation",
            title="Length extrapolation",
            caption="Accuracy of models evaluated at lengths other than the one they were trained at; dashed "
            "lines with stars are the published results for the same task.",
            png=_render(figure),
        )
    ]


# ------------------------------------------------------------------------------------------ compare


def compare_ratios(comparison: Comparison, most: int = 30) -> list[Plot]:
    """B/A median time per job, sorted, coloured by the verdict; at most `most` slowest and fastest shown."""
    timed = [j for j in comparison.jobs if not math.isnan(j.ratio)]
    if not timed:
        return []
    timed.sort(key=lambda j: j.ratio)
    shown = timed if len(timed) <= 2 * most else timed[:most] + timed[-most:]
    colors = {"slower": "#C44E52", "faster": "#55A868", "not significant": "#DDAA33"}
    figure = _new_figure(10, 1.2 + 0.28 * len(shown))
    axis = figure.subplots()
    labels = []
    for y, job in enumerate(shown):
        # On a log axis a bar from 1 to the ratio: right of 1 is slower, left is faster.
        axis.barh(y, job.ratio - 1, left=1, color=colors.get(job.change, "#AAAAAA"), height=0.7)
        labels.append(
            plain(" ".join(v for v in (job.label.get(c, "") for c in ("implementation", "mode", "seq_len")) if v))
        )
    axis.set_yticks(range(len(shown)), labels, fontsize=7)
    axis.invert_yaxis()
    axis.set_xscale("log")
    for x in (1 / comparison.factor, comparison.factor):
        axis.axvline(x, color="grey", linestyle=":", linewidth=1)
    axis.axvline(1, color="black", linewidth=1)
    low = min(shown[0].ratio, 1 / comparison.factor) / 1.05
    high = max(shown[-1].ratio, comparison.factor) * 1.05
    axis.set_xlim(low, high)
    candidates = (0.01, 0.1, 0.25, 0.5, 0.67, 0.8, 0.9, 1, 1.1, 1.25, 1.5, 2, 4, 10, 100)
    ticks = [t for t in candidates if low <= t <= high]
    axis.set_xticks(ticks, [f"x{t:g}" for t in ticks])
    axis.xaxis.set_minor_formatter(NullFormatter())
    axis.set_xlabel("B / A median time (log scale; right = slower)")
    axis.grid(True, axis="x", alpha=0.3)
    handles = [Patch(color=c) for c in colors.values()] + [Patch(color="#AAAAAA")]
    _figure_legend(figure, handles, [*colors, "unchanged"], columns=4)
    caption = f"Dotted lines: x{comparison.factor:g} either way, the smallest change reported."
    if len(shown) < len(timed):
        caption += f" Showing the {most} fastest and {most} slowest changes of {len(timed)} jobs."
    return [Plot(slug="compare_ratios", title="B/A per job", caption=caption, png=_render(figure))]


# ------------------------------------------------------------------------------------------ anchors


def scaling_anchor(frame: pd.DataFrame, palette: Palette | None = None) -> list[Plot]:
    """The headline: one sequence (B = 1), layer forward time against L, log-log, attention against the
    recurrent layers, each labelled with its fitted exponent (the anchors preset's scaling sweep)."""
    from harness.report.anchors import scaling_rows

    palette = palette or palette_for(frame)
    rows = scaling_rows(frame)
    if rows.empty or rows["_seq_len"].nunique() < 3:
        return []
    styles = SeriesStyles(palette, rows.assign(_label=rows["implementation"]))
    figure = _new_figure(8, _height_with_legend(4.6, rows["implementation"].nunique()))
    axis = figure.subplots()
    handles, labels = [], []
    for implementation, group in sorted(rows.groupby("implementation"), key=lambda item: str(item[0])):
        exponent = fit_scaling_exponent(group["_seq_len"], group["_ms"], longest=4)
        (line,) = axis.plot(group["_seq_len"], group["_ms"], ms=4, **styles(implementation, implementation))
        handles.append(line)
        labels.append(plain(implementation) + (f"  (∝ L^{exponent:.2f})" if exponent is not None else ""))
    _log2_axis(axis)
    _log_y(axis)
    axis.set_xlabel("sequence length L (batch 1)")
    axis.set_ylabel("layer forward, median ms")
    axis.set_title("time per sequence vs length: attention against recurrent layers", fontsize=10)
    _figure_legend(figure, handles, labels)
    return [
        Plot(
            slug="scaling_anchor",
            title="Layer forward time vs sequence length (B = 1)",
            caption="The anchors preset's scaling sweep. Exponents are fitted over the four longest lengths: "
            "attention's cost grows about as L², the recurrent layers' about as L.",
            png=_render(figure),
        )
    ]
