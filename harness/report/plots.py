"""What the report's plots share: matplotlib figures rendered to PNG bytes (Agg, no pyplot, no global state).

A plot function takes result rows and returns `Plot`s (possibly none, when the rows hold nothing to draw),
so a page shows exactly the plots its data supports. Colours follow the implementation, the same in every
plot of a report (`Palette`). Each suite's own plots live with its page (harness/report/pages/); here are
the helpers they draw with and the plots of more than one page (roofline: throughput and profile;
compare_ratios: the compare page).
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

from harness.report.compare import Comparison
from harness.report.data import key_text, numeric, ok_rows, series_labels

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


def new_figure(width: float, height: float) -> Figure:
    # Constrained layout makes room for titles and the legend below the axes in one pass.
    return Figure(figsize=(width, height), layout="constrained")


def height_with_legend(axes_height: float, entries: int, columns: int = 2) -> float:
    """Figure height in inches: the axes keep `axes_height` however long the legend below them grows."""
    return axes_height + 0.2 * math.ceil(entries / columns)


def render(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def length_text(value: float, _position: object = None) -> str:
    """Tick text for a token count: 512, 2K, 64K, 1M (plain text: mathtext is slow to lay out)."""
    for unit, size in (("M", 2**20), ("K", 2**10)):
        if value >= size:
            return f"{value / size:g}{unit}"
    return f"{value:g}"


def number_text(value: float, _position: object = None) -> str:
    return f"{value:.0f}" if 1000 <= abs(value) < 1e7 else f"{value:.3g}"


def bytes_text(value: float, _position: object = None) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(value) >= size:
            return f"{value / size:.3g} {unit}"
    return f"{value:.3g} B"


def log_y(axis, units: str = "plain") -> None:
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
    formatter = {"plain": FuncFormatter(number_text), "eng": EngFormatter(sep=""), "bytes": FuncFormatter(bytes_text)}
    axis.yaxis.set_major_formatter(formatter[units])
    axis.yaxis.set_minor_formatter(NullFormatter())


def modes_in(frame: pd.DataFrame) -> list[str]:
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


def implementation_of(group: pd.DataFrame) -> str:
    return key_text(group["implementation"].iloc[0]) if "implementation" in group.columns else ""


def log2_axis(axis) -> None:
    axis.set_xscale("log", base=2)
    axis.xaxis.set_major_formatter(FuncFormatter(length_text))
    axis.grid(True, which="major", alpha=0.3)


# Width of a legend entry at fontsize 8: the handle and its padding, and per character of the label.
LEGEND_HANDLE_IN = 0.6
LEGEND_CHAR_IN = 0.065


def figure_legend(figure: Figure, handles: list, labels: list[str], columns: int = 2) -> None:
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


# ------------------------------------------------------------------- series helpers, and plots of several pages


def one_row_per_length(group: pd.DataFrame) -> pd.DataFrame:
    """Where one series was measured at a length with several batch sizes, keep the largest batch."""
    group = group.assign(_batch=numeric(group, "batch").fillna(1.0), _seq_len=numeric(group, "seq_len"))
    group = group.sort_values(["_seq_len", "_batch"]).drop_duplicates("_seq_len", keep="last")
    return group


def labels_with_batch_if_swept(rows: pd.DataFrame) -> pd.Series:
    """Series labels that name the batch only where batch is a sweep dimension of its own (several batch
    sizes at one length). In a constant-tokens sweep batch falls as L grows: naming it would cut every
    line into single points."""
    labels = series_labels(rows)
    batch = numeric(rows, "batch")
    per_point = pd.DataFrame({"label": labels, "seq_len": numeric(rows, "seq_len"), "batch": batch})
    if (per_point.groupby(["label", "seq_len"])["batch"].nunique() > 1).any():
        return series_labels(rows, extra_fields=("batch",))
    return labels


def tokens_per_second_series(group: pd.DataFrame, per_step: bool = False) -> pd.Series:
    measured = numeric(group, "tokens_per_second")
    seconds = numeric(group, "median_ms") / 1000
    batch = numeric(group, "batch").fillna(1.0)
    tokens = batch if per_step else batch * numeric(group, "seq_len")
    return measured.where(measured.notna(), tokens / seconds)


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
    modes = modes_in(rows)
    # Legend: one entry per implementation and per mode (marker), and the ceiling line.
    figure = new_figure(8, height_with_legend(3.8, len(implementations) + len(modes) + 1))
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
    axis.xaxis.set_major_formatter(FuncFormatter(number_text))
    log_y(axis)
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
    figure_legend(
        figure,
        ceiling_handles + implementation_handles + mode_handles,
        ceiling_labels + [plain(n) for n in implementations] + [f"mode {plain(m)}" for m in modes],
    )
    return [
        Plot(
            slug="roofline",
            title="Roofline",
            caption=caption + " Colour: implementation; marker: mode. FLOPs and bytes come from the analytic models.",
            png=render(figure),
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
    figure = new_figure(10, 1.2 + 0.28 * len(shown))
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
    figure_legend(figure, handles, [*colors, "unchanged"], columns=4)
    caption = f"Dotted lines: x{comparison.factor:g} either way, the smallest change reported."
    if len(shown) < len(timed):
        caption += f" Showing the {most} fastest and {most} slowest changes of {len(timed)} jobs."
    return [Plot(slug="compare_ratios", title="B/A per job", caption=caption, png=render(figure))]
