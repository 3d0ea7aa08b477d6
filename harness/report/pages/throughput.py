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
    # What a reader came for first (time against length, decode), then the papers' anchors, then the roofline.
    figures = throughput_scaling(rows, palette) + decode_latency(rows, palette)
    content = _noise_note(rows) + "".join(site.figure("throughput", p) for p in figures)
    content += _anchors_body(site, rows, palette)
    content += "".join(site.figure("throughput", p) for p in plots.roofline(rows, palette))
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
        # The sources are few and long: numbered in the table, spelled out once in the note.
        sources = list(dict.fromkeys(table["source"]))
        table = table.assign(source=table["source"].map(lambda s: f"[{sources.index(s) + 1}]"))
        columns = ["implementation", "measured", "published", "unit", "ratio", "verdict", "note"]
        columns += ["anchor", "shape", "source"]
        listed = " ".join(f"[{i}] {s}." for i, s in enumerate(sources, start=1))
        content += section(
            "Published anchors",
            render_table(table, columns, "anchors"),
            f"Each published number beside the same job measured here (ratio = measured / published). Beyond "
            f"{anchors.TOLERANCE:.0%} the verdict says by how much; shapes are ours where the paper's differ, and "
            f"the note says where our job is not the paper's and why (docs/anomalies.md). "
            f"Sources: {listed}",
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


def _levels_in(rows: pd.DataFrame) -> list[str]:
    present = sorted({key_text(v) for v in rows["level"]}) if "level" in rows.columns else [""]
    return [v for v in ("layer", "op") if v in present] + [v for v in present if v not in ("layer", "op")]


def _exponent_text(group: pd.DataFrame) -> str:
    slope = fit_scaling_exponent(group["_x"].to_numpy(), group["_ms_per_sequence"].to_numpy())
    return "" if slope is None else f"  ∝L^{slope:.2f}"


def throughput_scaling(frame: pd.DataFrame, palette: plots.Palette | None = None) -> list[plots.Plot]:
    """Per mode and level (never two levels on one axis): time per sequence against seq_len, log-log, a
    panel per family, each line labelled with its fitted exponent. The anchors preset's rows are left to
    the anchor plot and tables: their shapes are the papers'."""
    palette = palette or plots.palette_for(frame)
    rows = ok_rows(frame)
    if not has_values(rows, "median_ms") or not has_values(rows, "seq_len"):
        return []
    rows = rows[rows["median_ms"].notna() & (rows.get("mode") != "decode")]
    rows = rows[~anchors.is_anchor_row(rows)]
    found = []
    for mode in plots.modes_in(rows):
        for level in _levels_in(rows[rows["mode"] == mode]):
            subset = rows[(rows["mode"] == mode) & (rows["level"].map(key_text) == level)]
            subset = subset.assign(_label=series_labels(subset.drop(columns=["level"])))
            if subset.empty:
                continue
            subset = pd.concat([plots.one_row_per_length(group) for _, group in subset.groupby("_label")])
            per_sequence = numeric(subset, "median_ms") / subset["_batch"]
            subset = subset.assign(
                _x=subset["_seq_len"],
                _y=per_sequence,
                _ms_per_sequence=per_sequence,
                tokens_per_second=plots.tokens_per_second_series(subset),
            )
            where = f"mode {mode}, {level} level" if level else f"mode {mode}"
            figure = plots.line_panels(
                subset,
                palette,
                x_label="seq_len (tokens)",
                y_label="median time per sequence (ms / batch)",
                suptitle=f"{where}: time per sequence vs length",
                annotate=_exponent_text,
            )
            table = subset.assign(ms_per_sequence=per_sequence)
            columns = ["implementation", "seq_len", "batch", "median_ms", "ms_per_sequence", "tokens_per_second"]
            found.append(
                plots.Plot(
                    slug=plots.slugify("throughput", mode, level),
                    title=f"Time per sequence vs seq_len ({where})",
                    caption=(
                        "Log-log, a panel per family on shared axes. Each line's legend entry gives the exponent "
                        "of a power-law fit to its three longest lengths (attention tends to 2, scans and "
                        "recurrences to 1). Where a length was measured at several batch sizes, the largest "
                        "batch is shown."
                    ),
                    png=plots.render(figure),
                    series=plots.series_count(figure),
                    table=table[columns].sort_values(["implementation", "seq_len"]),
                    facets=(("mode", mode), ("level", level)) if level else (("mode", mode),),
                )
            )
    return found


def decode_latency(frame: pd.DataFrame, palette: plots.Palette | None = None) -> list[plots.Plot]:
    """One decoding step's latency against the context length it decodes at, a panel per family."""
    palette = palette or plots.palette_for(frame)
    rows = ok_rows(frame)
    if "mode" not in rows.columns:
        return []
    rows = rows[(rows["mode"] == "decode") & numeric(rows, "median_ms").notna() & numeric(rows, "seq_len").notna()]
    if rows.empty:
        return []
    rows = rows.assign(
        _label=plots.labels_with_batch_if_swept(rows),
        _x=numeric(rows, "seq_len"),
        _y=numeric(rows, "median_ms"),
        tokens_per_second=plots.tokens_per_second_series(rows, per_step=True),
    )
    figure = plots.line_panels(
        rows,
        palette,
        x_label="context length (tokens already in the state)",
        y_label="median latency per step (ms)",
        suptitle="Decode latency vs context",
    )
    columns = ["implementation", "seq_len", "batch", "median_ms", "tokens_per_second"]
    return [
        plots.Plot(
            slug="decode_latency",
            title="Decode latency vs context",
            caption="One `step` at each context length, a panel per family on shared axes: attention reads a KV "
            "cache that grows with the context; recurrent mixers carry a fixed-size state, so their latency "
            "stays flat. Where a sweep changes the batch with the context, each point has its own batch (see "
            "the numbers).",
            png=plots.render(figure),
            series=plots.series_count(figure),
            table=rows[columns].sort_values(["implementation", "seq_len"]),
            facets=(("mode", "decode"),),
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
        text = plots.plain(implementation) + (f"  (∝ L^{exponent:.2f})" if exponent is not None else "")
        style = styles(implementation, implementation)
        (line,) = axis.plot(group["_seq_len"], group["_ms"], ms=4, label=text, **style)
        handles.append(line)
        labels.append(text)
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
            series=plots.series_count(figure),
            table=rows.assign(seq_len=rows["_seq_len"], median_ms=rows["_ms"])[
                ["implementation", "seq_len", "median_ms"]
            ].sort_values(["implementation", "seq_len"]),
        )
    ]
