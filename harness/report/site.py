"""The static report site: an overview page, one page per suite, and a compare page when asked.

Everything the pages need lies next to them (PNG plots under `img/`, the CSV of each suite under `data/`,
CSS and script inline), so the site works from file:// with no server and no network. A Content Security
Policy allows only this directory's images and the one inline script (by its hash): even a bug in the
escaping could not make the browser run a script from the results.
"""

from __future__ import annotations

import base64
import hashlib
import html
import importlib
import json
import math
import os
import shutil
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from harness import __version__
from harness import suite as suite_registry
from harness.errors import UserError
from harness.report import plots
from harness.report.compare import Comparison, compare_results, summary_lines
from harness.report.data import (
    CHECK_FAILED_COLUMNS,
    JOB_COLUMNS,
    PROVENANCE_COLUMNS,
    failed_checks,
    failed_rows,
    key_text,
    numeric,
    option_columns,
    package_versions_text,
    samples_list,
    suites_present,
    with_columns,
)
from harness.report.matrix import Column, Matrix, build_matrix, crossover_table, not_run_groups
from harness.report.plots import Plot
from harness.report.references import normalise as normalise_references
from harness.report.tables import (
    TABLE_SCRIPT,
    filter_link,
    fold_constant_columns,
    format_bytes,
    render_table,
    section,
    shown_columns,
)

CSS = """
:root { --fg: #1d1d1f; --muted: #666; --line: #ddd; --accent: #2a5db0; --bad: #b3261e; --good: #1e7d34; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); margin: 0; }
header { background: #f5f5f7; border-bottom: 1px solid var(--line); padding: 10px 24px 8px; }
nav a { margin-right: 16px; color: var(--accent); text-decoration: none; font-weight: 500; }
nav a.current { color: var(--fg); border-bottom: 2px solid var(--accent); }
h1 { font-size: 22px; margin: 10px 0 2px; }
h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
main { padding: 0 24px 40px; max-width: 1500px; }
.meta, .caption, .empty, footer { color: var(--muted); }
footer { padding: 12px 24px; border-top: 1px solid var(--line); font-size: 12px; }
figure { margin: 16px 0 24px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); max-width: 900px; }
div.picker { position: sticky; top: 0; z-index: 2; background: #fff; padding: 8px 0; margin-top: 12px;
  border-bottom: 1px solid var(--line); }
div.picker label { margin-right: 14px; } div.picker select { font: inherit; }
details.numbers { margin: 6px 0; } details.numbers summary { cursor: pointer; color: var(--accent); }
.table-tools { margin: 6px 0; }
input.filter { width: 320px; padding: 4px 8px; border: 1px solid #bbb; border-radius: 4px; }
.count { color: var(--muted); margin-left: 8px; }
.table-wrap { overflow-x: auto; max-height: 640px; overflow-y: auto; border: 1px solid var(--line); }
table.rows { border-collapse: collapse; font-size: 12.5px; }
table.rows caption { text-align: left; color: var(--muted); padding: 4px; }
table.rows th { position: sticky; top: 0; background: #eef1f6; cursor: pointer; white-space: nowrap;
  text-align: left; padding: 4px 8px; border-bottom: 1px solid #bbb; user-select: none; }
table.rows th[aria-sort="ascending"]::after { content: " \\25B2"; }
table.rows th[aria-sort="descending"]::after { content: " \\25BC"; }
table.rows td { padding: 3px 8px; border-bottom: 1px solid #eee; white-space: nowrap; vertical-align: top; }
table.rows td.long { white-space: normal; min-width: 160px; max-width: 300px; }
table.rows td.wide { white-space: pre-wrap; word-break: break-word; min-width: 420px; max-width: 640px; }
table.rows tr:hover td { background: #fafbfd; }
tr.row-oom td, tr.row-error td, tr.row-crash td, tr.row-timeout td { background: #fdf0ef; }
tr.row-failed_check td { background: #fdf0ef; }
tr.row-unavailable td { color: var(--muted); }
tr.row-slower td:first-child, tr.row-newly_failing td:first-child { color: var(--bad); font-weight: bold; }
tr.row-faster td:first-child, tr.row-fixed td:first-child { color: var(--good); font-weight: bold; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; }
ul.cards { display: flex; flex-wrap: wrap; gap: 12px; list-style: none; padding: 0; }
ul.cards li { border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px; min-width: 160px; }
ul.cards b { font-size: 18px; display: block; }
table.matrix { border-collapse: collapse; font-size: 13px; }
table.matrix th, table.matrix td { border: 1px solid var(--line); padding: 5px 9px; vertical-align: top; }
table.matrix thead th { background: #eef1f6; max-width: 150px; font-weight: 600; text-align: left; }
table.matrix tbody th { text-align: left; font-weight: 600; white-space: nowrap; }
table.matrix td { text-align: right; white-space: nowrap; }
table.matrix td.best { background: #e8f5ea; font-weight: 600; }
table.matrix td.none { color: var(--muted); text-align: center; }
table.matrix .note, a.others { font-size: 11px; color: var(--muted); font-weight: normal; }
"""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<title>{title}</title>
<link rel="icon" href="data:,">
<style>{css}</style>
</head>
<body>
<header>
<nav>{nav}</nav>
<h1>{heading}</h1>
<p class="meta">{meta}</p>
</header>
<main>
{body}
</main>
<footer>Generated by seqbench {version} at {generated}. Open the pages from disk; nothing is fetched.</footer>
<script>{script}</script>
</body>
</html>
"""

LEAD_COLUMNS = ["status", "implementation"]  # then the measurement, then what tells the rows apart
JOB_PREFIX = ["backend", "level", "mode", "device", "dtype", "batch", "seq_len"]
CONFIG_SHOWN = ["d_model", "n_heads", "head_dim", "d_state", "expand", "chunk_size", "d_conv", "n_groups", "rope"]
TAIL_COLUMNS = ["run_id", "timestamp", "job_id", "reason", "command"]
FAILED_COLUMNS = ["suite", "status", "implementation", "mode", "dtype", "batch", "seq_len", "d_model", "task"]
FAILED_COLUMNS += ["reason", "run_id", "command"]


def _suite_columns(frame: pd.DataFrame, suite: str) -> list[str]:
    """The columns of a suite's full table, in reading order: the implementation and the measurement
    first, then the job and config columns; columns with no value at all are left out."""
    spec = suite_registry.get(suite)
    if spec is not None:
        preferred = LEAD_COLUMNS + spec.table_columns() + JOB_PREFIX + CONFIG_SHOWN + option_columns(frame)
    else:  # a suite this report does not know: everything but the provenance (shown once per run)
        preferred = LEAD_COLUMNS + JOB_PREFIX + [c for c in frame.columns if c not in PROVENANCE_COLUMNS]
    preferred += TAIL_COLUMNS
    return shown_columns(frame, preferred, keep_always=("status", "implementation"))


class Site:
    """Writes pages into `out_dir`; keeps the navigation and the image names unique across pages."""

    def __init__(self, out_dir: Path, title: str, pages: Sequence[tuple[str, str]], meta: str) -> None:
        self.out_dir = out_dir
        self.title = title
        self.pages = pages  # (file name, nav label)
        self.meta = meta
        self.references: pd.DataFrame | None = None  # published recall points; None: ask the recall suite
        self.generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        self.facets: list[tuple[str, str]] = []  # what the current page's figures show (for its pickers)
        (out_dir / "img").mkdir(parents=True, exist_ok=True)
        (out_dir / "data").mkdir(parents=True, exist_ok=True)

    def figure(self, page: str, plot: Plot) -> str:
        """The plot, its caption, and the numbers it draws in a table under it (folded: open to read)."""
        name = f"{page}-{plot.slug}.png"
        (self.out_dir / "img" / name).write_bytes(plot.png)
        numbers = ""
        if plot.table is not None and not plot.table.empty:
            columns, constant = fold_constant_columns(plot.table, list(plot.table.columns), keep=("implementation",))
            table = render_table(plot.table, columns, f"{page}-{plot.slug}-numbers", caption=constant)
            numbers = (
                f"<details class=numbers><summary>The numbers ({len(plot.table)} points)</summary>{table}</details>"
            )
        self.facets.extend(plot.facets)
        facets = "".join(f' data-facet-{html.escape(k)}="{html.escape(v)}"' for k, v in plot.facets)
        return (
            f'<figure data-series="{plot.series}"{facets}><h3>{html.escape(plot.title)}</h3>'
            f'<img src="img/{html.escape(name)}" alt="{html.escape(plot.title)}">'
            f"<figcaption>{html.escape(plot.caption)}</figcaption>{numbers}</figure>"
        )

    def write(self, file_name: str, heading: str, body: str) -> Path:
        nav = " ".join(
            f'<a href="{html.escape(name)}"{" class=current" if name == file_name else ""}>{html.escape(label)}</a>'
            for name, label in self.pages
        )
        # `file:` beside 'self': Firefox gives each file:// page an opaque origin that 'self' does not match.
        script_hash = base64.b64encode(hashlib.sha256(TABLE_SCRIPT.encode()).digest()).decode()
        csp = (
            "default-src 'none'; img-src 'self' file: data:; style-src 'unsafe-inline'; "
            f"script-src 'sha256-{script_hash}'; base-uri 'none'; form-action 'none'"
        )
        page = PAGE.format(
            csp=csp,
            title=html.escape(f"{heading} · {self.title}"),
            css=CSS,
            nav=nav,
            heading=html.escape(heading),
            meta=self.meta,
            body=body,
            version=html.escape(__version__),
            generated=html.escape(self.generated),
            script=TABLE_SCRIPT,
        )
        path = self.out_dir / file_name
        path.write_text(page, encoding="utf-8")
        return path


PROVENANCE_ORDER = [
    "run_id",
    "suites",
    "rows",
    "failed",
    "executor",
    "gpu_indices",
    "gpu_name",
    "gpu_count",
    "gpu_memory_bytes",
    "peak_matmul_tflops",
    "peak_copy_gbps",
    "seqbench_commit",
    "seqbench_dirty",
    "torch_version",
    "triton_version",
    "cuda_version",
    "driver_version",
    "package_versions",
    "host_fingerprint",
    "first",
    "last",
]


def provenance_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per run: where and with what it ran, its device ceilings, its size and span."""
    if "run_id" not in frame.columns or frame.empty:
        return pd.DataFrame()
    records = []
    for run_id, run in frame.groupby("run_id", sort=True, dropna=False):
        record = {"run_id": key_text(run_id)}
        for column in PROVENANCE_COLUMNS:
            if column in run.columns:
                values = run[column].dropna()
                record[column] = values.iloc[0] if not values.empty else None
        if record.get("package_versions") is not None:
            record["package_versions"] = package_versions_text(record["package_versions"])
        if "gpu_index" in run.columns:  # which GPUs the run's jobs were pinned to (several executors/slots)
            indices = sorted({int(i) for i in pd.to_numeric(run["gpu_index"], errors="coerce").dropna()})
            record["gpu_indices"] = ", ".join(map(str, indices)) or None
        record["suites"] = ", ".join(suites_present(run))
        record["rows"] = len(run)
        record["failed"] = len(failed_rows(run))
        if "timestamp" in run.columns:
            stamps = run["timestamp"].dropna().astype(str)
            record["first"] = stamps.min() if not stamps.empty else None
            record["last"] = stamps.max() if not stamps.empty else None
        records.append(record)
    return pd.DataFrame.from_records(records)


def status_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows per suite and status, with the suite linked to its page."""
    if "status" not in frame.columns or "suite" not in frame.columns:
        return pd.DataFrame()
    table = pd.crosstab(frame["suite"], frame["status"])
    ordered = [s for s in ("ok", "oom", "error", "crash", "timeout", "unavailable") if s in table.columns]
    table = table[ordered + sorted(set(table.columns) - set(ordered))]
    table["rows"] = table.sum(axis=1)
    table = table.reindex([s for s in suites_present(frame) if s in table.index])
    return table.reset_index()


def commands_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Each distinct command line with the run it belongs to and how many rows it produced."""
    if "command" not in frame.columns:
        return pd.DataFrame()
    columns = [c for c in ("run_id", "suite", "command") if c in frame.columns]
    rows = frame[frame["command"].notna() & (frame["command"].astype(str) != "")]
    if rows.empty:
        return pd.DataFrame()
    return rows.groupby(columns, dropna=False).size().rename("rows").reset_index()


# ------------------------------------------------------------------------------------------- pages


def _matrix_value(column: Column, value: float) -> str:
    if column.kind == "exponent":
        return f"{value:.2f}"
    if column.kind == "rate":
        return f"{value / 1e6:.3g} M" if value >= 1e6 else f"{value / 1e3:.3g} K"
    if column.kind == "bytes":
        return format_bytes(value)
    if column.kind == "accuracy":
        return f"{value:.1%}"
    return f"{value:.3g}"


def matrix_html(matrix: Matrix, suites: list[str]) -> str:
    """The comparison matrix as a table: each cell a link to the rows behind it, the best per column marked."""
    if not matrix.families:
        return '<p class="empty">No measurement of a fast implementation in these results.</p>'
    pages = set(suites)
    head = "".join(f'<th scope="col">{html.escape(c.title)}</th>' for c in matrix.columns)
    best = {c.key: matrix.best(c) for c in matrix.columns}
    body = []
    for family in matrix.families:
        named = matrix.headline[family]
        others = matrix.others.get(family, [])
        first_page = next((s for s in suites if s != "check"), suites[0] if suites else "")
        other_link = (
            f' <a class="others" href="{filter_link(page_stem(first_page), family + "/")}" '
            f'title="{html.escape(", ".join(others))}">+{len(others)} more</a>'
            if others and first_page
            else ""
        )
        cells = [f'<th scope="row">{html.escape(family)}<br><code>{html.escape(named)}</code>{other_link}</th>']
        for column in matrix.columns:
            cell = matrix.cells.get((family, column.key))
            if cell is None:
                cells.append('<td class="none" title="not measured in these results">—</td>')
                continue
            shown = html.escape(_matrix_value(column, cell.value))
            if cell.suite in pages:
                shown = f'<a href="{filter_link(page_stem(cell.suite), cell.filter_text)}">{shown}</a>'
            notes = [cell.detail] if cell.detail else []
            if cell.implementation != named:
                notes.insert(0, cell.implementation)
            note = f'<br><span class="note">{html.escape(" · ".join(notes))}</span>' if notes else ""
            marked = family in best[column.key] and len(matrix.families) > 1
            mark = ' class="best" title="best in this column"' if marked else ""
            cells.append(f"<td{mark}>{'★ ' if marked else ''}{shown}{note}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (
        '<div class="table-wrap"><table class="matrix" id="matrix">'
        f'<thead><tr><th scope="col">family · fastest implementation</th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


MATRIX_NOTE = (
    "One row per family, named by its fastest fast (non-reference) implementation at the layer forward of "
    "the longest length every family ran. A cell is that implementation's number, or (named under it) the "
    "family's best where it has none; — : not measured in these results (its suite did not run). ★ marks "
    "the best of each column (lowest exponent, latency and bytes; highest tokens/s and accuracy). Click a "
    "number for the rows behind it. Tokens/s in millions (M) or thousands (K); d_model as in the rows."
)


def _overview(site: Site, frame: pd.DataFrame, suites: list[str], comparison: Comparison | None) -> Path:
    failed = failed_rows(frame)
    links = " ".join(f'<a href="{page_stem(s)}.html">{html.escape(_nav_label(s))}</a>' for s in suites)
    matrix = build_matrix(frame)
    body = section("Which mixer, for what", matrix_html(matrix, suites), MATRIX_NOTE)
    crossover = crossover_table(frame, matrix)
    if not crossover.empty:
        body += section(
            "Where the recurrent layers overtake attention",
            render_table(crossover, list(crossover.columns), "crossover"),
            "Each family's named layer against attention's, layer level, the same batch at each length: the "
            "shortest L from which it is faster at every longer L measured for both.",
        )
    real, unavailable = not_run_groups(failed)
    columns = ["status", "jobs", "implementations", "suites", "reason"]
    body += section(
        "What did not run",
        render_table(real, columns, "not-run", empty_text="No job failed.", row_class_column="status")
        + "<h3>Unavailable here, by design</h3>"
        + render_table(
            unavailable,
            columns,
            "unavailable",
            empty_text="Every implementation could run here.",
            row_class_column="status",
        ),
        "Failures first (out of memory, error, crash, timeout), grouped by reason; then the implementations "
        "that cannot run on this device or software (a probe said so before the job ran). Every job, with "
        "the command to retry it, is under Failed jobs below.",
    )
    if comparison is not None:
        links += ' <a href="compare.html">Compare</a>'
        body += section(
            "Comparison with the baseline", "".join(f"<p>{html.escape(s)}</p>" for s in summary_lines(comparison))
        )
    body += section(
        "Suites",
        f"<p>{links}</p>" + render_table(status_counts(frame), ["suite", *status_counts(frame).columns[1:]], "suites"),
    )
    provenance = provenance_table(frame)
    body += section(
        "Runs and their provenance",
        render_table(
            provenance, shown_columns(provenance, PROVENANCE_ORDER), "runs", empty_text="No run ids in these results."
        ),
        "GPU, driver and library versions, the seqbench commit (dirty: uncommitted changes were present), "
        "and the device ceilings measured once per run.",
    )
    body += section(
        "Failed jobs",
        render_table(
            failed,
            shown_columns(failed, FAILED_COLUMNS),
            "failed",
            empty_text="Every job ran.",
            row_class_column="status",
        ),
        "Every job that did not produce a measurement: its status, the one-line reason, and the command to retry it.",
    )
    checks = failed_checks(frame)
    if not checks.empty:
        body += section(
            "Failed correctness checks",
            render_table(checks, shown_columns(checks, CHECK_FAILED_COLUMNS), "failed-checks"),
            "These implementations ran but disagree with their family reference: treat their timings with care.",
        )
    commands = commands_table(frame)
    body += section(
        "Reproduce",
        render_table(commands, list(commands.columns), "commands", empty_text="No commands recorded."),
        "The exact command lines that produced these results; each table row also carries its own.",
    )
    return site.write("index.html", site.title, body)


def page_stem(suite: str) -> str:
    """The file name of a suite's page: the suite name reduced to [a-z0-9_-] (it comes from the results)."""
    return plots.slugify(suite)


# What a reader may narrow a page to: mode, level, dtype and the shape (width, batch, length). Plots that
# draw a whole range of a picked column (time against seq_len) stay; the tables' rows follow every pick.
PICKED = ("mode", "level", "dtype", "d_model", "batch", "seq_len")


def _pick_order(value: str) -> tuple[int, float, str]:
    known = [*plots.MODE_ORDER, "layer", "op"]
    number = float(value) if value.replace(".", "", 1).isdigit() else math.inf
    return (known.index(value) if value in known else len(known), number, value)


def picker_html(rows: pd.DataFrame, facets: Sequence[tuple[str, str]]) -> str:
    """Selects that narrow the page: the plots that say what they show and the tables' rows follow
    (the inline script does it, from file://). Only what takes several values on the page is offered."""
    ok = rows[rows["status"] == "ok"] if "status" in rows.columns else rows
    selects = []
    for name in PICKED:
        values = {v for k, v in facets if k == name}
        if name in ok.columns:
            values |= {key_text(v) for v in ok[name] if key_text(v)}
        if len(values) < 2:
            continue
        ordered = sorted(values, key=_pick_order)
        options = "".join(f'<option value="{html.escape(v)}">{html.escape(v)}</option>' for v in ordered)
        selects.append(
            f'<label>{html.escape(name)} <select class="pick" data-facet="{html.escape(name)}">'
            f'<option value="">all</option>{options}</select></label>'
        )
    return f'<div class="picker">Show: {" ".join(selects)}</div>' if selects else ""


def _nav_label(suite: str) -> str:
    spec = suite_registry.get(suite)
    return spec.title if spec is not None else suite


def _registered_stems() -> list[str]:
    return [page_stem(spec.name) for spec in suite_registry.suites()]


def _suite_page(site: Site, suite: str, rows: pd.DataFrame, palette: plots.Palette) -> Path:
    stem = page_stem(suite)
    spec = suite_registry.get(suite)
    site.facets = []
    body = importlib.import_module(spec.page).body(site, rows, palette) if spec is not None and spec.page else ""
    body = picker_html(rows, site.facets) + body
    failed = failed_rows(rows)
    if not failed.empty:
        body += section(
            "Failed jobs",
            render_table(failed, shown_columns(failed, FAILED_COLUMNS), f"{stem}-failed", row_class_column="status"),
        )
    csv_name = f"data/{stem}.csv"
    _write_csv(rows, site.out_dir / csv_name)
    # A row is marked by its status; a check that ran (ok) but failed is marked as failed too.
    row_class = rows["status"].astype(object).where(~rows.index.isin(failed_checks(rows).index), "failed_check")
    columns, constant = fold_constant_columns(rows, _suite_columns(rows, suite))
    body += section(
        "Every row",
        render_table(
            rows.assign(_row_class=row_class),
            columns,
            f"{stem}-rows",
            caption=constant,
            link_base=site.out_dir,
            row_class_column="_row_class",
        ),
        "Click a header to sort, type to filter. All columns, provenance included, as CSV:",
        link=(csv_name, csv_name),
    )
    return site.write(f"{stem}.html", spec.title if spec is not None else suite.capitalize(), body)


def _runs_text(frame: pd.DataFrame) -> str:
    runs = sorted(frame["run_id"].dropna().astype(str).unique()) if "run_id" in frame.columns else []
    return ", ".join(runs) if runs else "no run id"


def _compare_page(site: Site, comparison: Comparison, baseline: pd.DataFrame, results: pd.DataFrame) -> Path:
    sides = f"A (baseline): {_runs_text(baseline)}. B: {_runs_text(results)}."
    body = "".join(f"<p>{html.escape(line)}</p>" for line in [sides, *summary_lines(comparison)])
    body += (
        "<p class=caption>Marks: + slower, - faster, ~ beyond the threshold but not significant, "
        "! newly failing, * fixed.</p>"
    )
    body += "".join(site.figure("compare", p) for p in plots.compare_ratios(comparison))
    table = comparison.to_frame()
    if not table.empty:
        table["_row_class"] = table["change"].str.replace(" ", "_")
    columns = shown_columns(table, [c for c in table.columns if c not in ("key", "_row_class")] + ["key"])
    body += section(
        "Every matched job",
        render_table(table, columns, "compare", row_class_column="_row_class", empty_text="Nothing to compare."),
        "A is the baseline, B the newer results; ratio is B/A of median time (above 1: slower).",
    )
    return site.write("compare.html", "Compare: B against baseline A", body)


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    frame = frame.copy()
    if "samples_ms" in frame.columns:
        frame["samples_ms"] = frame["samples_ms"].map(lambda v: json.dumps(samples_list(v)))
    frame.to_csv(path, index=False)


def _meta_line(frame: pd.DataFrame, sources: Sequence[str]) -> str:
    parts = []
    if sources:
        parts.append("results: " + ", ".join(sources))
    if "run_id" in frame.columns:
        runs = sorted(frame["run_id"].dropna().astype(str).unique())
        parts.append(f"{len(runs)} run(s): " + ", ".join(runs[:4]) + (" …" if len(runs) > 4 else ""))
    if "gpu_name" in frame.columns:
        gpus = sorted(frame["gpu_name"].dropna().astype(str).unique())
        if gpus:
            parts.append("device: " + ", ".join(gpus))
    if "gpu_memory_bytes" in frame.columns:
        memory = numeric(frame, "gpu_memory_bytes").max()
        if memory > 0:
            parts.append(f"memory {format_bytes(float(memory))}")
    return html.escape(" · ".join(parts))


CROSS_GPU_PAGE = "harness.report.pages.cross_gpu"
MANIFEST = ".seqbench-report.json"  # the files a report wrote: all that a later report may replace


def _manifest(site_dir: Path) -> set[str] | None:
    """The files an earlier report wrote into `site_dir` (relative paths); None for a report written
    before the manifest existed; UserError for a non-empty folder that is no seqbench report at all."""
    if not site_dir.exists():
        return set()
    if not site_dir.is_dir():
        raise UserError(f"{site_dir} exists and is not a folder; give a folder for the report")
    manifest = site_dir / MANIFEST
    if manifest.is_file():
        return set(json.loads(manifest.read_text(encoding="utf-8"))["files"])
    index = site_dir / "index.html"
    if index.is_file() and "Generated by seqbench" in index.read_text(encoding="utf-8", errors="replace"):
        return None
    if any(site_dir.iterdir()):
        raise UserError(f"{site_dir} is not empty and holds no seqbench report; give an empty or new folder")
    return set()


def _files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def _swap_in(staging: Path, target: Path, earlier: set[str] | None) -> None:
    """Replace the site in `target` by the one in `staging`, keeping every file seqbench did not write.

    The old site moves aside whole and the new one takes its name (two renames), then the files that
    were not the old report's move into the new site; only then is the old report deleted. An
    interruption leaves either the old site or the new one in place, and foreign files are never deleted
    (at worst they wait in the hidden `.NAME.old-*` folder beside)."""
    new_files = _files_under(staging)
    if not target.exists():
        os.replace(staging, target)
        return
    old_files = _files_under(target)
    # A report from before the manifest: what the new site overwrites was ours, the rest stays.
    ours = (old_files & new_files) if earlier is None else (earlier & old_files)
    foreign = old_files - ours
    clash = sorted(foreign & new_files)
    if clash:
        raise UserError(f"{target / clash[0]} was not written by seqbench and the report would replace it; move it")
    aside = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    os.replace(target, aside)
    os.replace(staging, target)
    for name in sorted(foreign):
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        os.replace(aside / name, target / name)
    shutil.rmtree(aside)  # the old report's own files only, now


def _write_manifest(staging: Path) -> None:
    files = sorted(_files_under(staging) | {MANIFEST})
    (staging / MANIFEST).write_text(json.dumps({"generator": "seqbench", "files": files}, indent=1), encoding="utf-8")


def _with_job_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Every job column present (empty where unknown), so pages and plots can select on them freely.
    A frame without any status column (hand-made, not from results files) counts as all ok."""
    if "status" not in frame.columns:
        frame = frame.assign(status="ok")
    return with_columns(frame, [*JOB_COLUMNS, "reason", "command", "run_id", "timestamp"])


def build_report(
    results: pd.DataFrame,
    out_dir: str | Path,
    *,
    baseline: pd.DataFrame | None = None,
    title: str = "seqbench report",
    sources: Sequence[str] = (),
    references: pd.DataFrame | None = None,
) -> Path:
    """Write the site for `results` (and a compare page against `baseline`) into `out_dir`; return index.html.

    The site is built in a hidden folder beside `out_dir` and swapped in at the end (`_swap_in`): files
    in `out_dir` that no seqbench report wrote are kept, and a non-empty folder that is no report is a
    UserError before any work.

    `references`: published recall points in the normalised form of `harness.report.references`
    (default: whatever the recall suite provides)."""
    target = Path(out_dir).resolve()  # `-o .` has a name to build beside; a symlinked folder stays linked
    earlier = _manifest(target)  # a folder that is not ours: refused before any work
    target.parent.mkdir(parents=True, exist_ok=True)
    # Built beside the target and swapped in at the end: Ctrl-C part way leaves the old site whole.
    staging = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        _build_site(results, staging, baseline, title, sources, references)
        _write_manifest(staging)
        _swap_in(staging, target, earlier)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target / "index.html"  # absolute: with `-o .` the old cwd is the folder that moved aside


def _build_site(
    results: pd.DataFrame,
    out_dir: Path,
    baseline: pd.DataFrame | None,
    title: str,
    sources: Sequence[str],
    references: pd.DataFrame | None,
) -> Path:
    """Every page, plot and CSV of the report, written into `out_dir` (a fresh folder)."""
    results, baseline = _with_job_columns(results), None if baseline is None else _with_job_columns(baseline)
    out_dir.mkdir(parents=True)
    suites = suites_present(results)
    comparison = compare_results(baseline, results) if baseline is not None else None
    pages = [("index.html", "Overview")] + [(f"{page_stem(s)}.html", _nav_label(s)) for s in suites]
    if comparison is not None:
        pages.append(("compare.html", "Compare"))
    # Timed rows of two or more GPUs: the cross-GPU page (a page module named as data, as the suites' are).
    cross_gpu_page = importlib.import_module(CROSS_GPU_PAGE)
    gpu_pairs = cross_gpu_page.pairs(results)
    if gpu_pairs:
        pages.append((cross_gpu_page.FILE_NAME, cross_gpu_page.TITLE))
    site = Site(out_dir, title, pages, _meta_line(results, sources))
    site.references = None if references is None else normalise_references(references.to_dict("records"))
    palette = plots.palette_for(results if baseline is None else pd.concat([results, baseline]))
    for suite in suites:
        _suite_page(site, suite, results[results["suite"] == suite], palette)
    if comparison is not None:
        _compare_page(site, comparison, baseline, results)
    if gpu_pairs:
        site.facets = []
        heading = "Cross-GPU: the same jobs on two GPUs, against their measured ceilings"
        site.write(cross_gpu_page.FILE_NAME, heading, cross_gpu_page.body(site, results))
    return _overview(site, results, suites, comparison)
