"""Published recall tables reproduced: our number beside the paper's, a verdict per row, learning curves.

A published point (harness.report.references, normalised) is matched with our rows of the same task,
family, training length and test length. Where the paper compares variants of one family (MHA-Abs and
MHA-RoPE are both attention), a preset cell named after the variant (`setting` = "MHA-RoPE") is matched
with that point only, and so is a cell named after a variant and a suffix ("MHA-Abs-scaled": MHA-Abs with
a change of ours). Each (implementation, setting) is one row of the table: its best training over
learning rates, seeds and runs (the papers report the best run), chosen by accuracy at the training
length, and every test length read from that one training (never the best of several per length), and a
verdict:

- against the reproduction bar where the point carries one (`at_least` / `at_most`, in percent: "Mamba
  at least 97% at L 4096", "S4 at most 30%"), reproduced or not, by how many points;
- else reproduced when within VERDICT_TOLERANCE_POINTS of the published number, otherwise the difference.

A test beyond the training length (extrapolation) judges a model that learned the task: where the same
run stayed below LEARNED_PERCENT at its training length, the row says so instead of a verdict (a model at
chance everywhere is "below 60% at 2^10" without showing anything about length).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from harness.report.data import key_text, numeric, ok_rows
from harness.report.plots import (
    MAX_SERIES,
    Palette,
    Plot,
    figure_legend,
    length_text,
    new_figure,
    palette_for,
    plain,
    render,
    series_count,
    slugify,
)

VERDICT_TOLERANCE_POINTS = 5.0  # percentage points: a published number within this is reproduced
LEARNED_PERCENT = 90.0  # accuracy at the training length below which a length test shows nothing
MAX_SERIES_PER_AXIS = MAX_SERIES
LINESTYLES = ("-", "--", ":", "-.")
SETTING_MARKERS = ("", "o", "s", "^")

# The measurement and its verdict first (a reader scans ours against published), where it comes from last.
TABLE_COLUMNS = [
    "model",
    "implementation",
    "setting",
    "eval_seq_len",
    "ours",
    "published",
    "verdict",
    "bar",
    "gap_points",
    "train_s",
    "steps",
    "tested_step",  # the step whose weights were tested (the training's select): below steps, an earlier model
    "seq_len",
    "task",
    "source",
]


def _bar_text(at_least: float, at_most: float) -> str:
    if not math.isnan(at_least):
        return f">= {at_least:g}"
    if not math.isnan(at_most):
        return f"<= {at_most:g}"
    return f"within {VERDICT_TOLERANCE_POINTS:g} of published"


def verdict(ours_percent: float, published_percent: float, at_least: float, at_most: float) -> tuple[str, float]:
    """(verdict, gap in percentage points): the gap is how far ours is from the bar (negative: short of it)
    or, without a bar, ours minus the published number."""
    if math.isnan(ours_percent):
        return "not measured", math.nan
    if not math.isnan(at_least):
        gap = ours_percent - at_least
        return ("reproduced" if gap >= 0 else f"not reproduced: {-gap:.1f} points below the bar"), gap
    if not math.isnan(at_most):
        gap = at_most - ours_percent
        return ("reproduced" if gap >= 0 else f"not reproduced: {-gap:.1f} points above the bar"), gap
    gap = ours_percent - published_percent
    if abs(gap) <= VERDICT_TOLERANCE_POINTS:
        return "reproduced", gap
    return f"differs: {gap:+.1f} points", gap


def _family_of(rows: pd.DataFrame) -> pd.Series:
    if "family" in rows.columns:
        return rows["family"].map(key_text)
    return rows["implementation"].map(lambda name: key_text(name).split("/")[0])


def variant_of(setting: str, variants: set[str]) -> str:
    """The published variant a preset cell stands for: its own name, or the longest variant it starts with
    followed by "-" ("MHA-Abs-scaled" -> "MHA-Abs"); "" when it names none."""
    if setting in variants:
        return setting
    prefixes = [variant for variant in variants if variant and setting.startswith(variant + "-")]
    return max(prefixes, key=len, default="")


def training_key(rows: pd.DataFrame) -> pd.Series:
    """Which training a row belongs to: its run and job (a training's tests at several lengths share both)."""
    run = rows["run_id"].map(key_text) if "run_id" in rows.columns else ""
    job = rows["job_id"].map(key_text) if "job_id" in rows.columns else pd.Series(rows.index.astype(str), rows.index)
    return run + "/" + job


def best_training(rows: pd.DataFrame) -> str:
    """The training key (training_key) with the best accuracy at its training length; ties go to the one
    trained longer (more steps). `rows` hold one (implementation, setting, task, training length)."""
    at_training_length = rows[rows["_eval"] == rows["_seq_len"]]
    pool = at_training_length if not at_training_length.empty else rows
    ranked = pool.assign(_acc=numeric(pool, "accuracy"), _steps=numeric(pool, "steps").fillna(0))
    return str(ranked.sort_values(["_acc", "_steps"], ascending=False)["_training"].iloc[0])


def reproduction_table(rows: pd.DataFrame, references: pd.DataFrame | None) -> pd.DataFrame:
    """One row per (published point, implementation, setting) that we measured; columns TABLE_COLUMNS."""
    rows = ok_rows(rows)
    needed = {"task", "seq_len", "accuracy", "implementation"}
    if references is None or references.empty or rows.empty or not needed <= set(rows.columns):
        return pd.DataFrame(columns=TABLE_COLUMNS)
    points = references[references["family"].notna() & references["accuracy"].notna()]
    rows = rows.assign(
        _task=rows["task"].map(key_text),
        _family=_family_of(rows),
        _seq_len=numeric(rows, "seq_len"),
        _eval=numeric(rows, "eval_seq_len").fillna(numeric(rows, "seq_len")),
        _setting=rows["setting"].map(key_text) if "setting" in rows.columns else "",
    )
    rows = rows.assign(_training=training_key(rows))
    out = []
    for _, point in points.iterrows():
        eval_len = point["eval_seq_len"] if not pd.isna(point["eval_seq_len"]) else point["seq_len"]
        candidates = rows[
            (rows["_task"] == key_text(point["task"]))
            & (rows["_family"] == key_text(point["family"]))
            & (rows["_seq_len"] == point["seq_len"])
            & (rows["_eval"] == eval_len)
        ]
        variants = set(points.loc[points["family"] == point["family"], "model"].map(key_text))
        stands_for = pd.Series([variant_of(setting, variants) for setting in candidates["_setting"]], candidates.index)
        named = candidates[stands_for == key_text(point["model"])]
        if not named.empty:
            candidates = named
        else:  # a cell named after another published variant of this family is not this point's
            candidates = candidates[stands_for == ""]
        for (implementation, setting), group in candidates.groupby(["implementation", "_setting"], dropna=False):
            trainings = rows[
                (rows["implementation"] == implementation)
                & (rows["_setting"] == setting)
                & (rows["_task"] == key_text(point["task"]))
                & (rows["_seq_len"] == point["seq_len"])
            ]
            chosen = group[group["_training"] == best_training(trainings)]
            if chosen.empty:  # the best training has no test at this length (it ran out of memory there)
                continue
            best = chosen.iloc[0]
            at_least = float(point.get("at_least", math.nan))
            at_most = float(point.get("at_most", math.nan))
            ours = 100.0 * float(best["accuracy"])
            published = 100.0 * float(point["accuracy"])
            text, gap = verdict(ours, published, at_least, at_most)
            if eval_len != point["seq_len"]:
                trained = trainings[
                    (trainings["_training"] == best["_training"]) & (trainings["_eval"] == point["seq_len"])
                ]
                learned = 100.0 * float(numeric(trained, "accuracy").max()) if not trained.empty else math.nan
                if not learned >= LEARNED_PERCENT:
                    text = f"not comparable: {learned:.1f}% at the training length (did not learn the task)"
            out.append(
                {
                    "source": key_text(point["source"]).split(":")[0],
                    "task": key_text(point["task"]),
                    "model": key_text(point["model"]),
                    "implementation": key_text(implementation),
                    "setting": key_text(setting),
                    "seq_len": int(point["seq_len"]),
                    "eval_seq_len": int(eval_len),
                    "published": round(published, 2),
                    "ours": round(ours, 2),
                    "bar": _bar_text(at_least, at_most),
                    "verdict": text,
                    "gap_points": round(gap, 2),
                    "train_s": round(float(best.get("wall_s", math.nan)), 1),
                    "steps": best.get("steps", math.nan),
                    "tested_step": best.get("best_step", math.nan),
                }
            )
    table = pd.DataFrame(out, columns=TABLE_COLUMNS)
    return table.sort_values(["source", "task", "model", "eval_seq_len", "implementation", "setting"]).reset_index(
        drop=True
    )


def curve_points(rows: pd.DataFrame) -> pd.DataFrame:
    """The learning curves of rows at their training length, one row per evaluation: task, seq_len,
    implementation, setting, step, wall_s, train_seq_len, lr, train_loss, test_loss, test_accuracy. One
    training per (task, length, implementation, setting): the one the reproduction table reads (the best
    at its training length, ties to more steps), so that two runs of a cell never merge into one line."""
    rows = ok_rows(rows)
    if rows.empty or "curve" not in rows.columns:
        return pd.DataFrame()
    at_training_length = numeric(rows, "eval_seq_len").isna() | (
        numeric(rows, "eval_seq_len") == numeric(rows, "seq_len")
    )
    rows = rows[at_training_length]
    keys = [c for c in ("task", "seq_len", "implementation", "setting") if c in rows.columns]
    ranked = rows.assign(
        _cell=rows[keys].apply(lambda row: "|".join(key_text(v) for v in row), axis=1),
        _acc=numeric(rows, "accuracy"),
        _steps=numeric(rows, "steps").fillna(0),
    ).sort_values(["_acc", "_steps"], ascending=False, na_position="last")
    records = []
    for _, row in ranked.drop_duplicates("_cell").iterrows():
        text = row.get("curve")
        if not isinstance(text, str) or not text:
            continue
        for point in json.loads(text):
            records.append(
                {
                    "task": key_text(row["task"]),
                    "seq_len": int(row["seq_len"]),
                    "implementation": key_text(row["implementation"]),
                    "setting": key_text(row.get("setting", "")),
                    "lr": point.get("lr"),
                    **{k: v for k, v in point.items() if k != "lr"},
                }
            )
    return pd.DataFrame(records)


def reproduction_grids(table: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The reproduction table laid out as the papers print theirs: per (source, task) one grid, a row per
    model as we ran it, a column per test length, each cell `ours (published)` in %."""
    if table.empty:
        return []
    grids = []
    for (source, task), rows in table.groupby(["source", "task"], sort=True):
        rows = rows.assign(
            _row=rows["model"].map(key_text) + " · " + rows["implementation"].map(key_text) + " · " + rows["setting"],
            _cell=[f"{o:.1f} ({p:g})" for o, p in zip(rows["ours"], rows["published"], strict=True)],
        )
        grid = rows.pivot_table(index="_row", columns="eval_seq_len", values="_cell", aggfunc="first")
        grid.columns = [f"L {length_text(float(c))}" for c in grid.columns]
        grids.append((f"{source}: {task}", grid.reset_index().rename(columns={"_row": "model · ours · setting"})))
    return grids


def setting_style(index: int) -> tuple[str, str]:
    """(line style, marker) of the index-th setting: the four line styles, then each again with a marker
    (a figure compares up to 16 recipes before two look alike)."""
    return LINESTYLES[index % len(LINESTYLES)], SETTING_MARKERS[(index // len(LINESTYLES)) % len(SETTING_MARKERS)]


def learning_curves(rows: pd.DataFrame, palette: Palette | None = None) -> list[Plot]:
    """Test accuracy against optimizer step, one figure per task, one panel per training length, a line per
    (implementation, setting); a panel with more than MAX_SERIES_PER_AXIS lines is split by family."""
    points = curve_points(rows)
    if points.empty:
        return []
    palette = palette or palette_for(rows)
    plots = []
    for task, task_points in points.groupby("task"):
        panels = []
        for seq_len, length_points in sorted(task_points.groupby("seq_len"), key=lambda item: item[0]):
            series = sorted(length_points.groupby(["implementation", "setting"]).groups)
            families = sorted({name.split("/")[0] for name, _ in series})
            if len(series) <= MAX_SERIES_PER_AXIS:
                panels.append((f"L {seq_len}", length_points))
            else:
                for family in families:
                    mask = length_points["implementation"].str.startswith(family + "/")
                    panels.append((f"L {seq_len} · {family}", length_points[mask]))
        columns = min(len(panels), 3)
        n_rows = math.ceil(len(panels) / columns)
        figure = new_figure(max(6.0, 4.2 * columns), 3.3 * n_rows + 1.0)
        axes = np.atleast_1d(figure.subplots(n_rows, columns, squeeze=False)).ravel()
        legend: dict[str, object] = {}
        # One style per setting across the figure, so a legend entry means the same line in every panel.
        settings = sorted(task_points["setting"].unique())
        for axis, (title, panel) in zip(axes, panels, strict=False):
            for (implementation, setting), group in sorted(panel.groupby(["implementation", "setting"])):
                label = f"{implementation} · {setting}" if setting and setting != "baseline" else implementation
                linestyle, marker = setting_style(settings.index(setting))
                group = group.sort_values("step")
                (line,) = axis.plot(
                    group["step"],
                    group["test_accuracy"],
                    linestyle=linestyle,
                    marker=marker,
                    markevery=max(1, len(group) // 8),
                    markersize=4,
                    color=palette(implementation),
                    lw=1.4,
                    label=plain(label),
                )
                legend.setdefault(plain(label), line)
            axis.set_title(plain(title), fontsize=10)
            axis.set_xlabel("optimizer step")
            axis.set_ylabel("test accuracy")
            axis.set_ylim(-0.02, 1.05)
            axis.grid(alpha=0.3)
        for axis in axes[len(panels) :]:
            axis.set_visible(False)
        figure.suptitle(f"{plain(task)}: learning curves")
        figure_legend(figure, list(legend.values()), list(legend), columns=2)
        plots.append(
            Plot(
                slug=slugify("curves", task),
                title=f"Learning curves: {task}",
                caption="Test accuracy at the training length after each evaluation, one training per "
                "implementation and preset cell (the one the table above reads); line style and marker = the "
                "cell (recipe). The numbers are in the learning-curve table below.",
                png=render(figure),
                series=series_count(figure),
            )
        )
    return plots
