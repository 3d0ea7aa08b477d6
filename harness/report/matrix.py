"""The overview's comparison matrix: one row per family, the columns the literature compares mixers on.

Every number comes from the rows present; a column whose suite did not run (or ran without the length
the column asks for) is empty, and the overview shows "—" there. Per family the row names one
implementation, its *headline*: the fastest fast (non-reference) implementation at the layer forward of
the longest length every family was measured at. Each cell takes the headline's own number where it has
one, and otherwise the family's best fast implementation for that column (named in the cell), so a
family is never left blank only because its fastest kernel was not run in one suite.

No HTML here: frames in, records out (site.py renders them), so the CLI could print the same matrix.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from harness.report.analysis import fit_scaling_exponent
from harness.report.data import key_text, numeric, ok_rows

DECODE_CONTEXT = 16384  # the context of the decode and training-memory columns (16K)
EXPONENT_LENGTHS = 4  # the longest lengths the exponent is fitted over, as the throughput page's claim table


@dataclass(frozen=True)
class Cell:
    value: float
    implementation: str
    suite: str
    filter_text: str  # what the suite page's row filter is given to show the rows behind the cell
    detail: str = ""  # the length or batch the number is at, when the column header does not say


@dataclass(frozen=True)
class Column:
    key: str
    title: str  # header text, units included
    higher_is_better: bool
    kind: str  # how a value is shown: "exponent" | "rate" | "ms" | "bytes" | "accuracy"


@dataclass
class Matrix:
    columns: list[Column]
    families: list[str]
    headline: dict[str, str]  # family -> its named implementation
    others: dict[str, list[str]]  # family -> its other fast implementations present
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)  # (family, column key) -> cell

    def best(self, column: Column) -> set[str]:
        """The families holding the column's best value (ties: all of them)."""
        values = {f: self.cells[(f, column.key)].value for f in self.families if (f, column.key) in self.cells}
        if not values:
            return set()
        target = max(values.values()) if column.higher_is_better else min(values.values())
        return {f for f, v in values.items() if math.isclose(v, target, rel_tol=1e-9)}


def fast_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Ok rows of fast implementations: the references are there to check against, not to be timed."""
    rows = ok_rows(frame)
    if "family" not in rows.columns or "implementation" not in rows.columns:
        return rows.iloc[0:0]
    rows = rows[rows["family"].notna() & rows["implementation"].notna()]
    backend = rows["backend"].map(key_text) if "backend" in rows.columns else pd.Series("", index=rows.index)
    is_reference = (backend == "reference") | rows["implementation"].astype(str).str.contains("reference")
    return rows[~is_reference]


def _select(rows: pd.DataFrame, suite: str, mode: str, level: str | None = "layer") -> pd.DataFrame:
    chosen = rows[(rows["suite"] == suite) & (rows["mode"] == mode)]
    if level is not None and "level" in chosen.columns:  # a row without a level (memory's decode) is a layer
        chosen = chosen[(chosen["level"] == level) | chosen["level"].isna()]
    return chosen


def _largest_batch_at(rows: pd.DataFrame, seq_len: float) -> pd.DataFrame:
    """Per implementation, the row at `seq_len` with the largest batch (the sweep's most efficient point)."""
    at = rows[numeric(rows, "seq_len") == seq_len]
    at = at.assign(_batch=numeric(at, "batch").fillna(1.0)).sort_values("_batch")
    return at.drop_duplicates("implementation", keep="last")


def longest_common_length(rows: pd.DataFrame) -> float | None:
    """The longest seq_len at which every family in `rows` has at least one row."""
    per_family = [set(numeric(group, "seq_len").dropna()) for _, group in rows.groupby("family")]
    common = set.intersection(*per_family) if per_family else set()
    return max(common) if common else None


def tokens_per_second(rows: pd.DataFrame) -> pd.Series:
    measured = numeric(rows, "tokens_per_second")
    computed = numeric(rows, "batch").fillna(1.0) * numeric(rows, "seq_len") / (numeric(rows, "median_ms") / 1000)
    return measured.where(measured.notna(), computed)


Candidates = dict[str, dict[str, Cell]]  # family -> implementation -> its cell


def _point_candidates(
    rows: pd.DataFrame, value: Callable[[pd.DataFrame], pd.Series], detail: Callable[[pd.Series], str]
) -> Candidates:
    """One cell per (family, implementation) from rows already narrowed to one point each."""
    found: Candidates = {}
    values = value(rows)
    for index, row in rows.iterrows():
        number = float(values.loc[index])
        if not math.isfinite(number):
            continue
        implementation = key_text(row["implementation"])
        found.setdefault(key_text(row["family"]), {})[implementation] = Cell(
            number, implementation, key_text(row["suite"]), key_text(row.get("job_id")) or implementation, detail(row)
        )
    return found


def _batch_detail(row: pd.Series) -> str:
    return f"B={key_text(row.get('batch'))}" if key_text(row.get("batch")) else ""


def _exponents(rows: pd.DataFrame) -> Candidates:
    """Fitted exponent of layer forward time in L, at batch 1 (where batch does not change with L)."""
    sweep = _select(rows, "throughput", "fwd")
    sweep = sweep[numeric(sweep, "batch").fillna(1.0) == 1]
    found: Candidates = {}
    for (family, implementation), group in sweep.groupby(["family", "implementation"]):
        lengths, times = numeric(group, "seq_len"), numeric(group, "median_ms")
        exponent = fit_scaling_exponent(lengths, times, longest=EXPONENT_LENGTHS)
        if exponent is None:
            continue
        fitted = sorted(set(lengths.dropna()))[-EXPONENT_LENGTHS:]
        detail = f"L {_length(fitted[0])}–{_length(fitted[-1])}"
        name = key_text(implementation)
        # The filter words: every layer fwd row of this implementation (the rows the fit reads from).
        found.setdefault(key_text(family), {})[name] = Cell(exponent, name, "throughput", f"{name} layer fwd", detail)
    return found


def _length(value: float) -> str:
    for unit, size in (("M", 2**20), ("K", 2**10)):
        if value >= size:
            return f"{value / size:g}{unit}"
    return f"{value:g}"


def _at(length: float | None) -> str:
    return f" at L={_length(length)}" if length is not None else ""


def _rate_at_common_length(rows: pd.DataFrame, mode: str) -> tuple[Candidates, float | None]:
    chosen = _select(rows, "throughput", mode)
    chosen = chosen[numeric(chosen, "median_ms") > 0]
    length = longest_common_length(chosen)
    if length is None:
        return {}, None
    return _point_candidates(_largest_batch_at(chosen, length), tokens_per_second, _batch_detail), length


def _at_context(rows: pd.DataFrame, suite: str, mode: str, value: Callable[[pd.DataFrame], pd.Series]) -> Candidates:
    chosen = _select(rows, suite, mode)
    return _point_candidates(_largest_batch_at(chosen, DECODE_CONTEXT), value, _batch_detail)


def _decode_state(rows: pd.DataFrame) -> Candidates:
    """Decoding state (recurrent state or KV cache) at 16K context: measured, else the analytic size."""
    memory = _select(rows, "memory", "decode")
    if memory.empty:  # the throughput suite's decode rows may carry the analytic size too
        memory = _select(rows, "throughput", "decode")

    def state(frame: pd.DataFrame) -> pd.Series:
        measured = numeric(frame, "state_bytes_measured")
        return measured.where(measured > 0, numeric(frame, "state_bytes_analytic")).where(lambda s: s > 0)

    at = _largest_batch_at(memory, DECODE_CONTEXT)
    return _point_candidates(at, state, _batch_detail)


def _recall(rows: pd.DataFrame, task: str, by_eval_length: bool) -> tuple[Candidates, float | None]:
    """Best accuracy at the task's longest length: the trained length, or (`by_eval_length`, a length
    test such as induction heads) the longest evaluation length."""
    chosen = rows[(rows["suite"] == "recall") & (rows.get("task", pd.Series(index=rows.index)) == task)]
    chosen = chosen[numeric(chosen, "accuracy").notna()]
    if chosen.empty:
        return {}, None
    length_column = "eval_seq_len" if by_eval_length else "seq_len"
    lengths = numeric(chosen, length_column)
    if not by_eval_length and "eval_seq_len" in chosen.columns:  # at the length it was trained at
        evaluated = numeric(chosen, "eval_seq_len")
        chosen = chosen[evaluated.isna() | (evaluated == numeric(chosen, "seq_len"))]
        lengths = numeric(chosen, length_column)
    if lengths.dropna().empty:
        return {}, None
    longest = float(lengths.max())
    at = chosen[lengths == longest]
    at = at.assign(_accuracy=numeric(at, "accuracy")).sort_values("_accuracy")
    best = at.drop_duplicates(["family", "implementation"], keep="last")

    def width(row: pd.Series) -> str:
        return f"d_model {key_text(row.get('d_model'))}" if key_text(row.get("d_model")) else ""

    return _point_candidates(best, lambda frame: numeric(frame, "accuracy"), width), longest


def build_matrix(frame: pd.DataFrame) -> Matrix:
    rows = fast_rows(frame)
    if rows.empty:
        return Matrix([], [], {}, {})
    for column in ("suite", "mode", "level", "batch", "seq_len"):
        if column not in rows.columns:
            rows = rows.assign(**{column: pd.NA})
    forward, forward_length = _rate_at_common_length(rows, "fwd")
    training, training_length = _rate_at_common_length(rows, "fwd_bwd")
    context = _length(DECODE_CONTEXT)
    # Every column is always there: a suite that did not run leaves its column empty ("—"), not missing.
    columns_and_candidates: list[tuple[Column, Candidates]] = [
        (Column("exponent", "time ∝ L^k: k (layer fwd, B=1)", False, "exponent"), _exponents(rows)),
        (Column("fwd", f"layer fwd tokens/s{_at(forward_length)}", True, "rate"), forward),
        (Column("train", f"training step tokens/s{_at(training_length)}", True, "rate"), training),
        (
            Column("decode_ms", f"decode latency at {context} context (ms/step)", False, "ms"),
            _at_context(rows, "throughput", "decode", lambda f: numeric(f, "median_ms")),
        ),
        (Column("state", f"decode state or KV cache at {context} (bytes)", False, "bytes"), _decode_state(rows)),
        (
            Column("train_memory", f"peak training memory at {context} (bytes)", False, "bytes"),
            _at_context(rows, "memory", "fwd_bwd", lambda f: numeric(f, "peak_memory_bytes").where(lambda s: s > 0)),
        ),
    ]
    for key, task, title, by_eval in (
        ("mqar", "mqar", "MQAR accuracy (Zoology)", False),
        ("copying", "selective-copying", "selective copying accuracy", False),
        ("induction", "induction-heads", "induction heads accuracy", True),
    ):
        candidates, longest = _recall(rows, task, by_eval)
        where = ", tested" if by_eval else ", trained"
        title += f"{where}{_at(longest)}" if longest is not None else ""
        columns_and_candidates.append((Column(key, title, True, "accuracy"), candidates))
    families = sorted({key_text(f) for f in rows["family"]})
    headline: dict[str, str] = {}
    for family in families:
        # The fastest at the forward column; failing that, the implementation with the most cells.
        fastest = forward.get(family, {})
        if fastest:
            headline[family] = max(fastest.values(), key=lambda cell: cell.value).implementation
            continue
        counts: dict[str, int] = {}
        for _, candidates in columns_and_candidates:
            for implementation in candidates.get(family, {}):
                counts[implementation] = counts.get(implementation, 0) + 1
        if counts:
            headline[family] = max(sorted(counts), key=lambda name: counts[name])
    families = [f for f in families if f in headline]
    others = {
        f: sorted({key_text(i) for i in rows.loc[rows["family"] == f, "implementation"]} - {headline[f]})
        for f in families
    }
    matrix = Matrix([c for c, _ in columns_and_candidates], families, headline, others)
    for column, candidates in columns_and_candidates:
        for family in families:
            mine = candidates.get(family, {})
            if not mine:
                continue
            cell = mine.get(headline[family])
            if cell is None:
                pick = max if column.higher_is_better else min
                cell = pick(mine.values(), key=lambda c: c.value)
            matrix.cells[(family, column.key)] = cell
    return matrix


def crossover_table(frame: pd.DataFrame, matrix: Matrix) -> pd.DataFrame:
    """From which L each family's headline layer beats attention's headline layer, forward and training:
    the shortest length from which it is faster at every longer length measured for both (same batch)."""
    attention = matrix.headline.get("attention")
    rows = fast_rows(frame)
    if attention is None or rows.empty:
        return pd.DataFrame()
    records = []
    for family in matrix.families:
        if family == "attention":
            continue
        implementation = matrix.headline[family]
        record: dict[str, object] = {"family": family, "layer": implementation, "against": attention}
        for mode, name in (("fwd", "forward"), ("fwd_bwd", "training step")):
            chosen = _select(rows, "throughput", mode)
            record[f"{name}: faster from L"] = _faster_from(chosen, implementation, attention)
        records.append(record)
    table = pd.DataFrame(records)
    measured = [c for c in table.columns if c.endswith("faster from L")]
    return table if not table.empty and table[measured].notna().any().any() else pd.DataFrame()


def _faster_from(rows: pd.DataFrame, implementation: str, attention: str) -> str | None:
    def times(name: str) -> dict[tuple[float, float], float]:
        mine = rows[rows["implementation"] == name]
        keys = zip(numeric(mine, "seq_len"), numeric(mine, "batch").fillna(1.0), strict=True)
        return dict(zip(keys, numeric(mine, "median_ms"), strict=True))

    ours, theirs = times(implementation), times(attention)
    # One batch per length: at a length measured at several, the largest (as the matrix reads it).
    common: dict[float, tuple[float, float]] = {}
    for length, batch in sorted(set(ours) & set(theirs)):
        common[length] = (length, batch)
    if len(common) < 2:
        return None
    lengths = sorted(common)
    faster_from = None
    for length in reversed(lengths):
        key = common[length]
        if ours[key] < theirs[key]:
            faster_from = length
        else:
            break
    if faster_from is None:
        return f"not up to {_length(lengths[-1])}"
    if faster_from == lengths[0]:
        return f"{_length(faster_from)} or shorter (shortest measured)"
    return _length(faster_from)


def not_run_groups(failed: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Failed jobs grouped by (status, reason): the real failures, and apart the `unavailable` ones (an
    implementation that cannot run on this device or software, by design)."""
    if failed.empty or "status" not in failed.columns:
        return pd.DataFrame(), pd.DataFrame()
    frame = failed.assign(
        reason=failed.get("reason", pd.Series("", index=failed.index)).map(key_text).str.split("\n").str[0],
        implementation=failed["implementation"].map(key_text),
        suite=failed.get("suite", pd.Series("", index=failed.index)).map(key_text),
    )
    grouped = (
        frame.groupby(["status", "reason"], dropna=False)
        .agg(
            jobs=("implementation", "size"),
            implementations=("implementation", lambda s: ", ".join(sorted(set(s)))),
            suites=("suite", lambda s: ", ".join(sorted(set(s)))),
        )
        .reset_index()
        .sort_values(["status", "jobs"], ascending=[True, False])
    )
    columns = ["status", "jobs", "implementations", "suites", "reason"]
    unavailable = grouped["status"] == "unavailable"
    return grouped.loc[~unavailable, columns], grouped.loc[unavailable, columns]
