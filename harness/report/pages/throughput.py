"""The throughput page: published anchors and recomputed claims, scaling, roofline, decode latency, compile time."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

import pandas as pd

from harness.report import anchors, plots
from harness.report.analysis import fit_scaling_exponent
from harness.report.data import has_values, key_text, numeric, ok_rows, series_labels
from harness.report.tables import render_table, section

if TYPE_CHECKING:
    from harness.report.site import Site


def body(site: Site, rows: pd.DataFrame, palette: plots.Palette) -> str:
    figures = throughput_scaling(rows, palette) + plots.roofline(rows, palette)
    figures += decode_latency(rows, palette)
    content = _noise_note(rows) + _anchors_body(site, rows, palette)
    content += "".join(site.figure("throughput", p) for p in figures)
    return content + _compile_time_section(rows)


def _noise_note(rows: pd.DataFrame) -> str:
    """A warning above the plots when rows are flagged noisy (harness.noise): their times are suspect."""
    if "noisy" not in rows.columns:
        return ""
    noisy = rows[rows["noisy"].fillna(False).astype(bool)]
    if noisy.empty:
        return ""
    reasons = sorted({key_text(r) for r in noisy.get("noise_reason", pd.Series(dtype=object)) if key_text(r)})
    shown = "; ".join(reasons[:3]) + (" …" if len(reasons) > 3 else "")
    return (
        f'<p class="noisy-note"><b>{len(noisy)} of {len(rows)} row(s) flagged noisy</b> (column <code>noisy</code>):'
        f" {html.escape(shown)}. Their times may not repeat; compare never calls their changes significant.</p>"
    )


def _anchors_body(site: Site, rows: pd.DataFrame, palette: plots.Palette) -> str:
    """Published anchors beside our numbers, and the seeds' claims recomputed (the `anchors` preset)."""
    content = ""
    table = anchors.anchor_table(rows)
    if not table.empty:
        content += section(
            "Published anchors",
            render_table(table, list(table.columns), "anchors"),
            f"Each published number beside the same job measured here (ratio = measured / published). Beyond "
            f"{anchors.TOLERANCE:.0%} the verdict says by how much; shapes are ours where the paper's differ.",
        )
    speedup = anchors.ssd_speedup_table(rows)
    if not speedup.empty:
        content += section(
            "Claim: Mamba-2's SSD is 2-8x faster than Mamba's scan",
            render_table(speedup, list(speedup.columns), "ssd-speedup"),
            "Op level, B·L = 65,536, d_inner 4096 (Mamba-2: 64 heads × 64, state 128; Mamba: state 16).",
        )
    content += "".join(site.figure("throughput", p) for p in scaling_anchor(rows, palette))
    exponents = anchors.exponent_table(rows)
    if not exponents.empty:
        content += section(
            "Claim: attention's cost grows as L^2, the SSMs' as L",
            render_table(exponents, list(exponents.columns), "exponents"),
            "Layer forward at batch 1; least-squares slope of log(time) on log(L) over the four longest L.",
        )
    ratios = anchors.ratio_table(rows)
    if not ratios.empty:
        content += section(
            "Claim: SSM layers overtake attention beyond ~2K tokens",
            render_table(ratios, list(ratios.columns), "ratios"),
            "Attention layer time / SSM layer time (above 1: the SSM layer is faster), batch 1, layer "
            "forward; 'faster from L' is the shortest length from which the SSM layer is faster at every L.",
        )
    return content


def _compile_time_section(rows: pd.DataFrame) -> str:
    """Warm-up (compile + autotune) seconds per implementation: what a cold cache costs."""
    if "compile_s" not in rows.columns or numeric(rows, "compile_s").fillna(0).sum() <= 0:
        return ""
    table = (
        rows.assign(_compile=numeric(rows, "compile_s"))
        .groupby("implementation", as_index=False)
        .agg(jobs=("_compile", "size"), compile_s_total=("_compile", "sum"), compile_s_max=("_compile", "max"))
        .sort_values("compile_s_total", ascending=False)
    )
    return section(
        "Compile and autotune time",
        render_table(table, list(table.columns), "compile-time"),
        "Warm-up seconds per implementation (compile_s: until two warm-up timings agree), never part of the "
        "timed statistics. Large on a cold Triton cache, small once the cache is warm.",
    )


def throughput_scaling(frame: pd.DataFrame, palette: plots.Palette | None = None) -> list[plots.Plot]:
    """Per mode: time per sequence and tokens/s against seq_len, log-log, with fitted exponents."""
    palette = palette or plots.palette_for(frame)
    rows = ok_rows(frame)
    if not has_values(rows, "median_ms") or not has_values(rows, "seq_len"):
        return []
    rows = rows[rows["median_ms"].notna() & (rows.get("mode") != "decode")]
    found = []
    for mode in plots.modes_in(rows):
        subset = rows[rows["mode"] == mode]
        subset = subset.assign(_label=series_labels(subset))
        styles = plots.SeriesStyles(palette, subset)
        figure = plots.new_figure(11, plots.height_with_legend(3.8, subset["_label"].nunique()))
        time_axis, rate_axis = figure.subplots(1, 2)
        handles, labels = [], []
        for label, group in sorted(subset.groupby("_label"), key=lambda item: str(item[0])):
            group = plots.one_row_per_length(group)
            if group.empty:
                continue
            style = styles(plots.implementation_of(group), label)
            seq_len = group["_seq_len"].to_numpy()
            per_sequence_ms = (numeric(group, "median_ms") / group["_batch"]).to_numpy()
            slope = fit_scaling_exponent(seq_len, per_sequence_ms)
            (line,) = time_axis.plot(seq_len, per_sequence_ms, ms=4, **style)
            rate_axis.plot(seq_len, plots.tokens_per_second_series(group).to_numpy(), ms=4, **style)
            fitted = "" if slope is None else f"   time ∝ L^{slope:.2f}"
            handles.append(line)
            labels.append(plots.plain(label) + fitted)
        for axis in (time_axis, rate_axis):
            plots.log2_axis(axis)
            plots.log_y(axis, "eng" if axis is rate_axis else "plain")
            axis.set_xlabel("seq_len (tokens)")
        time_axis.set_ylabel("median time per sequence (ms)")
        time_axis.set_title("time per sequence (median ms / batch)", fontsize=10)
        rate_axis.set_ylabel("tokens / s")
        rate_axis.set_title("throughput", fontsize=10)
        plots.figure_legend(figure, handles, labels)
        figure.suptitle(f"mode {plots.plain(mode)}: scaling with sequence length")
        found.append(
            plots.Plot(
                slug=plots.slugify("throughput", mode),
                title=f"Throughput vs seq_len ({mode})",
                caption=(
                    "Log-log. The legend gives the exponent of a power-law fit to the three longest lengths "
                    "of each line (attention tends to 2, scans and recurrences to 1). Where a length was "
                    "measured at several batch sizes, the largest batch is shown."
                ),
                png=plots.render(figure),
            )
        )
    return found


def decode_latency(frame: pd.DataFrame, palette: plots.Palette | None = None) -> list[plots.Plot]:
    """One decoding step's latency and tokens/s against the context length it decodes at."""
    palette = palette or plots.palette_for(frame)
    rows = ok_rows(frame)
    if "mode" not in rows.columns:
        return []
    rows = rows[(rows["mode"] == "decode") & numeric(rows, "median_ms").notna() & numeric(rows, "seq_len").notna()]
    if rows.empty:
        return []
    rows = rows.assign(_label=plots.labels_with_batch_if_swept(rows))
    styles = plots.SeriesStyles(palette, rows)
    figure = plots.new_figure(11, plots.height_with_legend(3.8, rows["_label"].nunique()))
    latency_axis, rate_axis = figure.subplots(1, 2)
    handles, labels = [], []
    for label, group in sorted(rows.groupby("_label"), key=lambda item: str(item[0])):
        group = group.assign(_seq_len=numeric(group, "seq_len")).sort_values("_seq_len")
        style = styles(plots.implementation_of(group), label)
        context = group["_seq_len"].to_numpy()
        (line,) = latency_axis.plot(context, numeric(group, "median_ms").to_numpy(), ms=4, **style)
        rate_axis.plot(context, plots.tokens_per_second_series(group, per_step=True).to_numpy(), ms=4, **style)
        handles.append(line)
        labels.append(plots.plain(label))
    for axis in (latency_axis, rate_axis):
        plots.log2_axis(axis)
        plots.log_y(axis, "eng" if axis is rate_axis else "plain")
        axis.set_xlabel("context length (tokens already in the state)")
    latency_axis.set_ylabel("median latency per step (ms)")
    latency_axis.set_title("decode latency", fontsize=10)
    rate_axis.set_ylabel("tokens / s (batch / step time)")
    rate_axis.set_title("decode throughput", fontsize=10)
    plots.figure_legend(figure, handles, labels)
    return [
        plots.Plot(
            slug="decode_latency",
            title="Decode latency and tokens/s vs context",
            caption="One `step` at each context length: attention reads a KV cache that grows with the context; "
            "recurrent mixers carry a fixed-size state, so their latency stays flat. Where a sweep changes the "
            "batch with the context, each point has its own batch (see the table).",
            png=plots.render(figure),
        )
    ]


def scaling_anchor(frame: pd.DataFrame, palette: plots.Palette | None = None) -> list[plots.Plot]:
    """The headline: one sequence (B = 1), layer forward time against L, log-log, attention against the
    recurrent layers, each labelled with its fitted exponent (the anchors preset's scaling sweep)."""
    from harness.report.anchors import scaling_rows

    palette = palette or plots.palette_for(frame)
    rows = scaling_rows(frame)
    if rows.empty or rows["_seq_len"].nunique() < 3:
        return []
    styles = plots.SeriesStyles(palette, rows.assign(_label=rows["implementation"]))
    figure = plots.new_figure(8, plots.height_with_legend(4.6, rows["implementation"].nunique()))
    axis = figure.subplots()
    handles, labels = [], []
    for implementation, group in sorted(rows.groupby("implementation"), key=lambda item: str(item[0])):
        exponent = fit_scaling_exponent(group["_seq_len"], group["_ms"], longest=4)
        (line,) = axis.plot(group["_seq_len"], group["_ms"], ms=4, **styles(implementation, implementation))
        handles.append(line)
        labels.append(plots.plain(implementation) + (f"  (∝ L^{exponent:.2f})" if exponent is not None else ""))
    plots.log2_axis(axis)
    plots.log_y(axis)
    axis.set_xlabel("sequence length L (batch 1)")
    axis.set_ylabel("layer forward, median ms")
    axis.set_title("time per sequence vs length: attention against recurrent layers", fontsize=10)
    plots.figure_legend(figure, handles, labels)
    return [
        plots.Plot(
            slug="scaling_anchor",
            title="Layer forward time vs sequence length (B = 1)",
            caption="The anchors preset's scaling sweep. Exponents are fitted over the four longest lengths: "
            "attention's cost grows about as L², the recurrent layers' about as L.",
            png=plots.render(figure),
        )
    ]
