"""HTML tables: every row, sortable by a click on a header, filterable through a text box.

All text from results goes through `html.escape` here and nowhere else builds cells, so a config, a
reason or a version string containing markup renders as text. Each cell carries its raw value in
`data-v` so that numbers sort as numbers while showing in a readable format.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd

from harness.report.data import has_cell_value, is_missing, key_text, package_versions_text, samples_list

PERCENT_COLUMNS = {"frac_peak_tflops", "frac_peak_gbps", "share"}
CODE_COLUMNS = {"command", "kernel_name", "job_id", "run_id", "seqbench_commit", "host_fingerprint", "key"}
FILTER_FROM_ROWS = 10
WIDE_COLUMNS = {"reason", "reason_b", "command", "kernel_name", "package_versions"}

# The inline script of every page: sorting and filtering, nothing else. Plain ES2017, no library.
TABLE_SCRIPT = r"""
(function () {
  "use strict";
  function cellValue(row, index) {
    var cell = row.cells[index];
    if (!cell) return "";
    var v = cell.getAttribute("data-v");
    return v === null ? cell.textContent.trim() : v;
  }
  function sortBy(table, th, index) {
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(th.parentNode.cells, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var numeric = th.getAttribute("data-type") === "num";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a, index), y = cellValue(b, index);
      if (x === y) return 0;
      if (x === "") return 1;   /* missing values last, whatever the direction */
      if (y === "") return -1;
      var order = numeric ? parseFloat(x) - parseFloat(y) : x.localeCompare(y, undefined, {numeric: true});
      return ascending ? order : -order;
    });
    var fragment = document.createDocumentFragment();
    rows.forEach(function (row) { fragment.appendChild(row); });
    body.appendChild(fragment);
  }
  function columnIndex(table, name) {
    var cells = table.tHead.rows[0].cells;
    for (var i = 0; i < cells.length; i++) if (cells[i].getAttribute("data-column") === name) return i;
    return -1;
  }
  function picksOf() {  /* the page's pickers: facet -> chosen value ("" = all) */
    var picks = {};
    document.querySelectorAll("select.pick").forEach(function (s) {
      if (s.value) picks[s.getAttribute("data-facet")] = s.value;
    });
    return picks;
  }
  function filterRows(table, text, counter) {
    var terms = text.toLowerCase().split(/\s+/).filter(Boolean);
    var picks = picksOf(), columns = {};
    Object.keys(picks).forEach(function (k) { columns[k] = columnIndex(table, k); });
    var shown = 0, rows = table.tBodies[0].rows;
    for (var i = 0; i < rows.length; i++) {
      var content = rows[i].textContent.toLowerCase();
      var keep = terms.every(function (t) { return content.indexOf(t) !== -1; });
      keep = keep && Object.keys(picks).every(function (k) {
        var cell = columns[k] < 0 ? null : rows[i].cells[columns[k]];
        return !cell || cell.textContent.trim() === picks[k];  /* a table without the column ignores it */
      });
      rows[i].hidden = !keep;
      if (keep) shown++;
    }
    if (counter) counter.textContent = shown + " of " + rows.length + " rows";
  }
  function applyPicks() {
    var picks = picksOf();
    document.querySelectorAll("figure").forEach(function (figure) {
      figure.hidden = !Object.keys(picks).every(function (k) {
        var v = figure.getAttribute("data-facet-" + k);
        return v === null || v === picks[k];
      });
    });
    document.querySelectorAll("table.rows").forEach(function (table) {
      var input = document.querySelector('input.filter[data-table="' + table.id + '"]');
      filterRows(table, input ? input.value : "", document.getElementById(table.id + "-count"));
    });
  }
  document.querySelectorAll("select.pick").forEach(function (s) { s.addEventListener("change", applyPicks); });
  document.querySelectorAll("table.rows").forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      th.addEventListener("click", function () { sortBy(table, th, index); });
      th.title = "click to sort";
    });
  });
  document.querySelectorAll("input.filter").forEach(function (input) {
    var table = document.getElementById(input.getAttribute("data-table"));
    var counter = document.getElementById(input.getAttribute("data-table") + "-count");
    if (!table) return;
    input.addEventListener("input", function () { filterRows(table, input.value, counter); });
  });
  /* A link such as throughput.html#filter=WORDS (from the overview's matrix) opens the page's table of
     every row filtered to the rows behind a number. */
  var wanted = /^#filter=(.*)$/.exec(window.location.hash);
  var rowsFilter = document.querySelector('input.filter[data-table$="-rows"]');
  if (wanted && rowsFilter) {
    rowsFilter.value = decodeURIComponent(wanted[1]);
    rowsFilter.dispatchEvent(new Event("input"));
    rowsFilter.scrollIntoView({block: "start"});
  }
})();
"""


def format_bytes(value: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(value) >= size:
            return f"{value / size:.3g} {unit}"
    return f"{value:.0f} B"


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool | np.bool_)


def format_cell(column: str, value: object, link_base: Path | None = None) -> tuple[str, str]:
    """(inner HTML, sort value) of one cell. Every piece of text is escaped."""
    if column == "samples_ms":
        samples = samples_list(value)
        return (f"{len(samples)} samples" if samples else ""), str(len(samples))
    if is_missing(value):
        return "", ""
    if column == "package_versions":
        text = package_versions_text(value)
        return html.escape(text), text
    if column == "trace_path" and str(value):
        return _trace_link(str(value), link_base), str(value)
    if isinstance(value, bool | np.bool_):
        return ("yes" if value else "no"), str(int(bool(value)))
    if _is_number(value):
        number = float(value)  # type: ignore[arg-type]
        if math.isnan(number):
            return "", ""
        if column in PERCENT_COLUMNS:
            shown = f"{number:.1%}"
        elif column.endswith("_bytes"):
            shown = format_bytes(number)
        elif column == "p_value":
            shown = f"{number:.2g}"
        elif number.is_integer() and abs(number) < 1e15:
            shown = str(int(number))
        elif 1e4 <= abs(number) < 1e15:
            shown = f"{number:,.0f}"  # 1,621,734 reads better than 1.622e+06
        else:
            shown = f"{number:.4g}"
        return html.escape(shown), repr(number)
    text = key_text(value)
    escaped = html.escape(text)
    if column in CODE_COLUMNS:
        escaped = f"<code>{escaped}</code>"
    return escaped, text


def _trace_link(path: str, link_base: Path | None) -> str:
    """A link to a profiler trace, relative to the page when the trace is on this machine."""
    target = Path(path)
    shown = html.escape(target.name or path)
    if link_base is not None and target.exists():
        href = os.path.relpath(target.resolve(), link_base.resolve())
        return f'<a href="{html.escape(quote(Path(href).as_posix()))}" title="{html.escape(path)}">{shown}</a>'
    return f'<span title="{html.escape(path)} (not found when the report was written)">{shown}</span>'


def _is_numeric_column(series: pd.Series, column: str) -> bool:
    if column == "samples_ms":
        return True
    if pd.api.types.is_bool_dtype(series):
        return False
    if pd.api.types.is_numeric_dtype(series):
        return True
    values = series.dropna()
    return not values.empty and all(_is_number(v) for v in values)


# Header text: the unit spelled out where the column name abbreviates it (the name stays in data-column).
UNIT_SUFFIXES = (("_ms", "ms"), ("_us", "µs"), ("_s", "s"), ("_bytes", "bytes"), ("_gbps", "GB/s"))
HEADERS = {
    "tokens_per_second": "tokens/s",
    "achieved_tflops": "achieved TFLOP/s",
    "frac_peak_tflops": "of peak TFLOP/s (%)",
    "frac_peak_gbps": "of peak GB/s (%)",
    "seq_len": "seq_len (tokens)",
    "eval_seq_len": "eval_seq_len (tokens)",
    "accuracy": "accuracy (0-1)",
    "peak_matmul_tflops": "peak matmul TFLOP/s",
}
LONG_TEXT = 40  # characters: a text column with longer values wraps instead of widening the table


def header_text(column: str) -> str:
    """`median_ms` -> `median (ms)`: a header names its unit (`share` and `frac_*` cells show %)."""
    if column in HEADERS:
        return HEADERS[column]
    for suffix, unit in UNIT_SUFFIXES:
        if column.endswith(suffix) and len(column) > len(suffix):
            return f"{column.removesuffix(suffix)} ({unit})"
    return column


def fold_constant_columns(
    frame: pd.DataFrame, columns: Sequence[str], keep: Sequence[str] = ("status", "implementation")
) -> tuple[list[str], str]:
    """The columns that vary between rows, and a caption naming those that do not (`dtype bfloat16 ·
    d_model 1024`): a column with one value on the page says nothing row by row. Long text (commands,
    reasons) stays a column, where it can wrap."""
    if len(frame) < 2:
        return list(columns), ""
    varying, constant = [], []
    for column in columns:
        values = frame[column].map(key_text) if column in frame.columns else pd.Series([], dtype=object)
        if column in keep or column in WIDE_COLUMNS or values.nunique(dropna=False) > 1:
            varying.append(column)
        else:
            inner, _ = format_cell(column, frame[column].iloc[0])
            constant.append(f"{header_text(column)} {html.unescape(inner)}")
    return varying, ("Same in every row: " + " · ".join(constant)) if constant else ""


def shown_columns(frame: pd.DataFrame, preferred: Sequence[str], keep_always: Sequence[str] = ()) -> list[str]:
    """The preferred columns that the frame has and that hold at least one value (plus `keep_always`)."""
    columns = []
    for column in preferred:
        if column not in frame.columns or column in columns:
            continue
        if column in keep_always or frame[column].map(has_cell_value).any():
            columns.append(column)
    return columns


def render_table(
    frame: pd.DataFrame,
    columns: Sequence[str],
    table_id: str,
    *,
    caption: str = "",
    empty_text: str = "No rows.",
    link_base: Path | None = None,
    row_class_column: str | None = None,
) -> str:
    """A sortable, filterable table of `frame[columns]`, every row. `table_id` must be unique on its page."""
    if frame.empty:
        return f'<p class="empty">{html.escape(empty_text)}</p>'
    columns = [c for c in columns if c in frame.columns]
    safe_id = html.escape(table_id)
    head = []
    css_of = {}
    for column in columns:
        kind = "num" if _is_numeric_column(frame[column], column) else "text"
        shown = html.escape(header_text(column))
        head.append(f'<th data-type="{kind}" data-column="{html.escape(column)}" scope="col">{shown}</th>')
        longest = 0 if kind == "num" else int(frame[column].map(lambda v: len(key_text(v))).max() or 0)
        css_of[column] = ' class="wide"' if column in WIDE_COLUMNS else ' class="long"' if longest > LONG_TEXT else ""
    body = []
    for _, row in frame.iterrows():
        cells = []
        for column in columns:
            inner, sort_value = format_cell(column, row[column], link_base)
            css = css_of[column]
            cells.append(f'<td{css} data-v="{html.escape(sort_value)}">{inner}</td>')
        row_class = ""
        if row_class_column and row_class_column in row.index and not is_missing(row[row_class_column]):
            row_class = f' class="{html.escape("row-" + _css_token(key_text(row[row_class_column])))}"'
        body.append(f"<tr{row_class}>{''.join(cells)}</tr>")
    caption_html = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    count = len(frame)
    tools = ""
    if count > FILTER_FROM_ROWS:  # a filter box over a handful of rows is only noise
        tools = (
            f'<div class="table-tools"><input class="filter" type="search" data-table="{safe_id}" '
            f'placeholder="filter rows (all words must match)" aria-label="filter rows of {safe_id}">'
            f' <span class="count" id="{safe_id}-count">{count} of {count} rows</span></div>'
        )
    return (
        f'{tools}<div class="table-wrap"><table class="rows" id="{safe_id}">{caption_html}'
        f"<thead><tr>{''.join(head)}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def filter_link(page_stem: str, words: str) -> str:
    """An escaped href to a suite page whose table of every row opens filtered to `words`."""
    return html.escape(f"{page_stem}.html#filter={quote(words)}")


def _css_token(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text)[:40]


def section(title: str, content: str, note: str = "", link: tuple[str, str] | None = None) -> str:
    """A titled section; `note` is text (escaped), `link` an optional (href, text) of our own appended to it."""
    link_html = f' <a href="{html.escape(link[0])}">{html.escape(link[1])}</a>' if link else ""
    note_html = f'<p class="caption">{html.escape(note)}{link_html}</p>' if note or link else ""
    return f"<h2>{html.escape(title)}</h2>{note_html}{content}"
