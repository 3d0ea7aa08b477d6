"""What the report's plots share: matplotlib figures rendered to PNG bytes (Agg, no pyplot, no global state).

A plot function takes result rows and returns `Plot`s (possibly none, when the rows hold nothing to draw),
so a page shows exactly the plots its data supports. Colours follow the family, with a shade per
implementation, the same in every plot of a report (`Palette`). No axis carries more than MAX_SERIES
series: many implementations become small multiples, a panel per family (`line_panels`), and each plot
carries the numbers it draws (`Plot.table`), shown beside it. Each suite's own plots live with its page
(harness/report/pages/); here are the helpers they draw with and the plots of more than one page
(roofline: throughput and profile; compare_ratios: the compare page).
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable, Sequence
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
PANEL_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")
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


MAX_SERIES = 10  # series on one axis; beyond it a reader cannot tell the lines apart


@dataclass(frozen=True)
class Plot:
    slug: str  # file name stem: [a-z0-9_-] only
    title: str
    caption: str
    png: bytes
    series: int = 0  # the most series on one of its axes (labelled artists), see series_count
    table: pd.DataFrame | None = None  # the numbers it draws, shown beside it
    facets: tuple[tuple[str, str], ...] = ()  # what it shows of the page's pickers: (("mode", "fwd"), ...)


# A colour per family, the same in every report (hues far apart); others take the remaining tab10 hues.
FAMILY_COLORS = {
    "attention": "#1f77b4",
    "mamba": "#ff7f0e",
    "mamba2": "#2ca02c",
    "rwkv": "#d62728",
    "s4": "#9467bd",
    "xlstm": "#8c564b",
    "lstm": "#e377c2",
    # a hybrid model's layer pattern across families (suites/mixers.py: "hybrid/<a>+<b>"), shaded per pattern
    "hybrid": "#17becf",
}
SPARE_COLORS = ("#bcbd22", "#7f7f7f", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173")


def family_of(implementation: str) -> str:
    """An implementation is named `family/variant`."""
    return str(implementation).split("/")[0]


def _shade(color: str, position: float) -> tuple[float, float, float]:
    """`color` darkened (position < 0) or lightened (> 0) towards black or white, position in [-1, 1]."""
    from matplotlib.colors import to_rgb

    rgb = np.array(to_rgb(color))
    target = np.ones(3) if position > 0 else np.zeros(3)
    mixed = rgb + (target - rgb) * abs(position)
    return (float(mixed[0]), float(mixed[1]), float(mixed[2]))


class Palette:
    """A hue per family and a shade of it per implementation, stable across every plot of a report: a
    family is recognisable on every page, and its implementations are told apart within its panel."""

    def __init__(self, implementations: Sequence[str]) -> None:
        names = sorted({str(i) for i in implementations})
        families = sorted({family_of(n) for n in names})
        spare = [f for f in families if f not in FAMILY_COLORS]
        hues = {**FAMILY_COLORS, **{f: SPARE_COLORS[i % len(SPARE_COLORS)] for i, f in enumerate(spare)}}
        self._colors: dict[str, tuple[float, ...]] = {}
        for family in families:
            members = [n for n in names if family_of(n) == family]
            for index, name in enumerate(members):
                # From darker to lighter: -0.45 .. +0.55, so even eleven shades stay distinct and visible.
                position = 0.0 if len(members) == 1 else -0.45 + index / (len(members) - 1)
                self._colors[name] = _shade(hues[family], position)

    def __call__(self, implementation: str) -> tuple[float, ...]:
        return self._colors.get(str(implementation), (0.3, 0.3, 0.3))

    def family(self, family: str) -> tuple[float, ...]:
        """The family's own hue (unshaded): for a line that stands for the whole family."""
        hue = FAMILY_COLORS.get(family)
        return _shade(hue, 0.0) if hue else (0.3, 0.3, 0.3)


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


def series_count(figure: Figure) -> int:
    """The most series on one axis: lines and point sets given a label (reference marks, ceilings and
    grid lines are drawn without one and do not count)."""
    counts = [
        sum(1 for artist in [*axis.lines, *axis.collections] if not str(artist.get_label()).startswith("_"))
        for axis in figure.axes
    ]
    return max(counts, default=0)


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


def balanced_chunks(items: list[str], most: int = MAX_SERIES) -> list[list[str]]:
    """`items` cut into the fewest pieces of at most `most`, as even as possible (11 -> 6 + 5)."""
    pieces = max(1, math.ceil(len(items) / most))
    size = math.ceil(len(items) / pieces) if items else 0
    return [items[i : i + size] for i in range(0, len(items), size)] if items else []


def family_panels(rows: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """One panel per family (in the order of FAMILY_COLORS), split where a family has more than
    MAX_SERIES series; rows carry `_label`."""
    families = sorted({family_of(i) for i in rows["implementation"].map(key_text)}, key=_family_order)
    panels = []
    for family in families:
        mine = rows[rows["implementation"].map(lambda i: family_of(key_text(i))) == family]
        chunks = balanced_chunks(sorted(mine["_label"].astype(str).unique()))
        for number, chunk in enumerate(chunks, start=1):
            title = family if len(chunks) == 1 else f"{family} ({number}/{len(chunks)})"
            panels.append((title, mine[mine["_label"].astype(str).isin(chunk)]))
    return panels


def _family_order(family: str) -> tuple[int, str]:
    order = list(FAMILY_COLORS)
    return (order.index(family) if family in order else len(order), family)


def short_label(label: str, panel: str) -> str:
    """A legend label without what the panel title already says (the family prefix)."""
    family = panel.split(" ")[0]
    return plain(str(label).removeprefix(family + "/"))


def panel_grid(count: int, columns: int = 3, width: float = 4.4, height: float = 3.3) -> tuple[Figure, list]:
    columns = max(1, min(count, columns))
    rows = math.ceil(count / columns)
    figure = new_figure(width * columns + 0.4, height * rows + 0.6)
    axes = list(np.atleast_1d(figure.subplots(rows, columns, squeeze=False, sharex=True, sharey=True)).ravel())
    for axis in axes[count:]:
        axis.set_visible(False)
    return figure, axes[:count]


def line_panels(
    rows: pd.DataFrame,
    palette: Palette,
    *,
    x_label: str,
    y_label: str,
    y_units: str = "plain",
    suptitle: str = "",
    annotate: Callable[[pd.DataFrame], str] | None = None,
    draw_extra: Callable[[object, str, pd.DataFrame], None] | None = None,
) -> Figure:
    """Small multiples: a panel per family (rows carry `_label`, `_x`, `_y`, `implementation`), a line per
    label, shared axes so panels compare; each panel's legend names only the variant (`annotate` adds a
    text per line, e.g. its fitted exponent; `draw_extra` draws on a panel, e.g. reference marks)."""
    panels = family_panels(rows)
    figure, axes = panel_grid(len(panels))
    for axis, (title, panel) in zip(axes, panels, strict=True):
        styles = SeriesStyles(palette, panel)
        for number, (label, group) in enumerate(sorted(panel.groupby("_label"), key=lambda item: str(item[0]))):
            group = group.sort_values("_x").drop_duplicates("_x", keep="last")
            text = short_label(str(label), title) + (annotate(group) if annotate else "")
            # Shades of one hue are close: a marker per line of the panel tells them apart as well.
            style = {
                **styles(implementation_of(group), str(label)),
                "marker": PANEL_MARKERS[number % len(PANEL_MARKERS)],
            }
            axis.plot(group["_x"], group["_y"], ms=4, label=text, **style)
        if draw_extra is not None:
            draw_extra(axis, title, panel)
        log2_axis(axis)
        axis.set_title(plain(title), fontsize=10, color=palette.family(title.split(" ")[0]))
        axis.legend(fontsize=7, frameon=False, loc="best")
    for axis in axes:
        log_y(axis, y_units)
        axis.tick_params(labelleft=True, labelbottom=True)
    figure.supxlabel(x_label, fontsize=10)
    figure.supylabel(y_label, fontsize=10)
    if suptitle:
        figure.suptitle(plain(suptitle))
    return figure


def roofline(frame: pd.DataFrame, palette: Palette | None = None) -> list[Plot]:
    """Achieved TFLOP/s against arithmetic intensity under the measured matmul and copy ceilings: a panel
    per family (shared axes), a colour per implementation, a marker per mode."""
    palette = palette or palette_for(frame)
    rows = ok_rows(frame)
    flops, min_bytes, tflops = numeric(rows, "flops"), numeric(rows, "min_bytes"), numeric(rows, "achieved_tflops")
    keep = (flops > 0) & (min_bytes > 0) & (tflops > 0)
    rows = rows[keep].assign(_x=(flops / min_bytes)[keep], _y=tflops[keep])
    if rows.empty:
        return []
    rows = rows.assign(_label=rows["implementation"].map(key_text))
    modes = modes_in(rows)
    x_low, x_high = float(rows["_x"].min()) / 4, float(rows["_x"].max()) * 4
    ceilings = _ceilings(rows)
    panels = family_panels(rows)
    figure, axes = panel_grid(len(panels), width=4.6, height=3.6)
    for axis, (title, panel) in zip(axes, panels, strict=True):
        for implementation, group in sorted(panel.groupby("_label"), key=lambda item: str(item[0])):
            for number, mode in enumerate(m for m in modes if (group["mode"] == m).any()):
                points = group[group["mode"] == mode]
                axis.scatter(
                    points["_x"],
                    points["_y"],
                    color=palette(str(implementation)),
                    marker=MODE_MARKERS.get(mode, "o"),
                    s=28,
                    edgecolors="black",
                    linewidths=0.4,
                    zorder=3,
                    # One legend entry per implementation: its first mode carries the label.
                    label=short_label(str(implementation), title) if number == 0 else "_",
                )
        for index, (_, peak_tflops, peak_gbps) in enumerate(ceilings):
            ridge = peak_tflops * 1000 / peak_gbps  # FLOP per byte where the two ceilings meet
            x = np.geomspace(min(x_low, ridge / 8), max(x_high, ridge * 8), 200)
            axis.plot(x, np.minimum(peak_tflops, x * peak_gbps / 1000), color="black", lw=1.0, ls=LINESTYLES[index])
        axis.set_xscale("log")
        axis.xaxis.set_major_formatter(FuncFormatter(number_text))
        axis.grid(True, which="major", alpha=0.3)
        axis.set_title(plain(title), fontsize=10, color=palette.family(title.split(" ")[0]))
        axis.legend(fontsize=7, frameon=False, loc="lower right")
    for axis in axes:
        log_y(axis)
        axis.tick_params(labelleft=True, labelbottom=True)
    figure.supxlabel("arithmetic intensity (analytic FLOPs / minimum bytes)", fontsize=10)
    figure.supylabel("achieved TFLOP/s", fontsize=10)
    figure.suptitle("Roofline")
    mode_handles = [
        Line2D([], [], marker=MODE_MARKERS.get(m, "o"), linestyle="", color="white", markeredgecolor="black")
        for m in modes
    ]
    ceiling_handles = [Line2D([], [], color="black", linestyle=LINESTYLES[i]) for i in range(len(ceilings))]
    ceiling_labels = [
        f"{plain(name)}: {t:.3g} TFLOP/s, {g:.3g} GB/s (ridge {t * 1000 / g:.3g} FLOP/B)" for name, t, g in ceilings
    ]
    figure_legend(figure, ceiling_handles + mode_handles, ceiling_labels + [f"mode {plain(m)}" for m in modes])
    if ceilings:
        caption = "Ceilings are this run's measured bf16 matmul rate and copy bandwidth."
    else:
        caption = "No device ceilings were measured for these rows (e.g. a CPU run): points only."
    table = rows.assign(intensity=rows["_x"], achieved_tflops=rows["_y"])
    table = table[
        [c for c in ("implementation", "level", "mode", "batch", "seq_len") if c in table.columns]
        + ["intensity", "achieved_tflops"]
    ]
    return [
        Plot(
            slug="roofline",
            title="Roofline",
            caption=caption + " A panel per family; colour: implementation; marker: mode. FLOPs and bytes come "
            "from the analytic models.",
            png=render(figure),
            series=series_count(figure),
            table=table.sort_values(["implementation", "mode"]),
        )
    ]


def _ceilings(rows: pd.DataFrame) -> list[tuple[str, float, float]]:
    """(device name, matmul TFLOP/s, copy GB/s) of up to three devices the rows were measured on."""
    ceilings = rows.assign(_tflops=numeric(rows, "peak_matmul_tflops"), _gbps=numeric(rows, "peak_copy_gbps")).dropna(
        subset=["_tflops", "_gbps"]
    )
    if ceilings.empty:
        return []
    names = ceilings.get("gpu_name", pd.Series(np.nan, index=ceilings.index))
    names = names.astype(object).where(names.notna(), ceilings.get("device", "this device"))
    ceilings = ceilings.assign(_device_name=names.fillna("this device").map(key_text))
    return [
        (str(name), float(group["_tflops"].median()), float(group["_gbps"].median()))
        for name, group in list(ceilings.groupby("_device_name"))[:3]
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
