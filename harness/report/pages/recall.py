"""The recall page: accuracy against model width and length, with the published points beside it."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from harness.report import hybrid, plots, recall_state, reproduction, training_speed
from harness.report.analysis import CELL, best_per_cell, best_recall, hybrid_grid, mad_scores
from harness.report.data import has_values, key_text, numeric, ok_rows, series_labels
from harness.report.references import recall_references
from harness.report.tables import render_table, section, shown_columns

if TYPE_CHECKING:
    from harness.report.site import Site


def body(site: Site, rows: pd.DataFrame, palette: plots.Palette) -> str:
    references = site.references if site.references is not None else recall_references()
    figures = recall_accuracy(rows, references, palette) + recall_extrapolation(rows, references, palette)
    figures += recall_state.state_size_plots(rows, palette)
    content = reproduction_section(site, rows, references, palette)
    content += "".join(site.figure("recall", p) for p in figures)
    content += hybrid_section(site, rows, palette)
    best = best_per_cell(rows)
    if not best.empty:
        columns = shown_columns(best, [*CELL, "setting", "accuracy", "lr", "seed", "steps", "wall_s"])
        content += section(
            "Best accuracy per cell",
            render_table(best, columns, "best"),
            "The best run of each cell over learning rates and seeds, as Zoology and MAD report it: the table "
            "`seqbench run recall` prints. The curves above draw the mean over seeds at the best lr.",
        )
    scores = mad_scores(rows)
    if not scores.empty:
        content += section(
            "MAD scores",
            render_table(scores, list(scores.columns), "mad"),
            "Per MAD task, the mean over its settings of the best accuracy; `all`: the mean over the tasks.",
        )
    content += speed_section(site, rows, palette)
    if not references.empty:
        content += section(
            "Published reference points",
            render_table(references, list(references.columns), "references"),
            "Numbers from the papers, with their sources, drawn as stars in the plots above.",
        )
    return content


def speed_section(site: Site, rows: pd.DataFrame, palette: plots.Palette) -> str:
    """Steps per second of each training against its step's arithmetic floor (harness/report/training_speed)."""
    table = training_speed.speed_table(rows)
    if table.empty:
        return ""
    content = "".join(site.figure("recall", p) for p in training_speed.speed_plot(table, palette))
    return content + section(
        "Training speed",
        render_table(table, shown_columns(table, training_speed.SPEED_COLUMNS), "speed"),
        "steps_per_s after the first (compiling) step; step_ms its inverse; step_floor_ms the step's analytic "
        "FLOPs at the measured matmul rate; times_floor = step_ms / step_floor_ms; speedup_vs_eager against "
        "the eager row of the same implementation, dtype and cell; step_mode_note says why a graph was not used.",
    )


def reproduction_section(site: Site, rows: pd.DataFrame, references: pd.DataFrame, palette: plots.Palette) -> str:
    """The papers' tables as we reproduced them (a verdict per row), then the learning curves behind them."""
    table = reproduction.reproduction_table(rows, references)
    content = ""
    for index, (title, grid) in enumerate(reproduction.reproduction_grids(table)):
        content += section(
            title,
            render_table(grid, list(grid.columns), f"grid-{index}"),
            "As the paper prints it: a row per model (as we ran it), a column per test length; each cell is "
            "our accuracy with the published one in brackets, in %. The verdicts are in the table below.",
        )
    if not table.empty:
        content += section(
            "Published results reproduced",
            render_table(table, reproduction.TABLE_COLUMNS, "reproduction"),
            "Each published number beside our best run of the same task, family, training and test length "
            "(accuracy in %), one row per implementation and preset cell (setting: the recipe, which the "
            "preset's comments compare with the paper's). The verdict holds ours against the reproduction "
            "bar where there is one, else against the published number (within "
            f"{reproduction.VERDICT_TOLERANCE_POINTS:g} points); gap_points is the margin (negative: short).",
        )
    curves = reproduction.learning_curves(rows, palette)
    content += "".join(site.figure("recall", p) for p in curves)
    if curves:
        points = reproduction.curve_points(rows)
        columns = ["task", "seq_len", "implementation", "setting", "step", "wall_s", "train_seq_len", "lr"]
        columns += ["train_loss", "test_loss", "test_accuracy"]
        content += section("Learning-curve points", render_table(points, columns, "curves"), "One row per evaluation.")
    return content


def hybrid_section(site: Site, rows: pd.DataFrame, palette: plots.Palette) -> str:
    """Hybrid models (e.g. zoology-hybrid): attention, the recurrent families the hybrids are made of, and the
    hybrids side by side (harness/report/hybrid.py); nothing without hybrid rows."""
    grid = hybrid_grid(rows)
    if grid.empty:
        return ""
    content = "".join(site.figure("recall", p) for p in hybrid.hybrid_plots(grid, palette))
    return content + section("Hybrid models", render_table(grid, list(grid.columns), "hybrid"), hybrid.GRID_NOTE)


def _short_source(source: object) -> str:
    """'Mamba (Gu & Dao 2023, arXiv 2312.00752), Table 1: selective copying, ...' -> the part before ':'."""
    return plots.plain(key_text(source).split(":")[0])


def _references_for(references: pd.DataFrame | None, task: str, extrapolation: bool) -> pd.DataFrame:
    """The task's published points, either those at their training length or those tested beyond it."""
    if references is None or references.empty or "task" not in references.columns:
        return pd.DataFrame(columns=["task", "model", "accuracy", "seq_len", "eval_seq_len", "source"])
    points = references[references["task"].map(key_text) == task]
    beyond = numeric(points, "eval_seq_len").notna() & (numeric(points, "eval_seq_len") != numeric(points, "seq_len"))
    return points[beyond] if extrapolation else points[~beyond]


def recall_accuracy(
    frame: pd.DataFrame, references: pd.DataFrame | None = None, palette: plots.Palette | None = None
) -> list[plots.Plot]:
    """Zoology-style: accuracy against d_model, one figure per task, one panel per seq_len, published points
    beside ours (in a panel of their own where the paper used a length we did not run)."""
    palette = palette or plots.palette_for(frame)
    best = best_recall(frame)
    if best.empty:
        return []
    extrapolated_tasks = set()
    if has_values(frame, "eval_seq_len") and "task" in frame.columns:
        extrapolated_tasks = set(frame.loc[numeric(frame, "eval_seq_len").notna(), "task"].map(key_text))
    found = []
    for task in sorted(best["_task"].unique()):
        task_rows = best[best["_task"] == task]
        if task_rows["_d_model"].nunique() < 2 and task in extrapolated_tasks:
            continue  # one width only: nothing to see against d_model; the extrapolation plot shows this task
        task_references = _references_for(references, task, extrapolation=False)
        ours = sorted(task_rows["_seq_len"].dropna().unique()) or [math.nan]
        published_only = sorted(set(numeric(task_references, "seq_len").dropna()) - set(ours))
        panels = [(length, False) for length in ours] + [(length, True) for length in published_only]
        columns = min(len(panels), 4)
        figure = plots.new_figure(max(6.0, 3.6 * columns + 1), 3.4 * math.ceil(len(panels) / columns) + 0.8)
        axes = np.atleast_1d(figure.subplots(math.ceil(len(panels) / columns), columns, squeeze=False)).ravel()
        legend: dict[str, object] = {}
        styles = plots.SeriesStyles(palette, task_rows)
        for axis, (seq_len, only_published) in zip(axes, panels, strict=False):
            panel = task_rows[task_rows["_seq_len"] == seq_len] if not math.isnan(seq_len) else task_rows
            for label, group in sorted(panel.groupby("_label"), key=lambda item: str(item[0])):
                group = group.sort_values("_d_model")
                style = styles(key_text(group["implementation"].iloc[0]), label)
                (line,) = axis.plot(group["_d_model"], group["accuracy"], ms=5, label=plots.plain(label), **style)
                legend.setdefault(plots.plain(label), line)
            _draw_references(axis, task_references, seq_len, legend)
            plots.log2_axis(axis)
            axis.set_ylim(-0.02, 1.05)
            axis.set_xlabel("d_model")
            axis.set_ylabel("accuracy")
            title = "" if math.isnan(seq_len) else f"seq_len {plots.length_text(seq_len)}"
            axis.set_title(title + (" (published only)" if only_published else ""), fontsize=10)
        for axis in axes[len(panels) :]:
            axis.set_visible(False)
        figure.suptitle(f"{plots.plain(task)}: accuracy vs model width")
        plots.figure_legend(figure, list(legend.values()), list(legend), columns=1 if len(legend) > 6 else 2)
        found.append(
            plots.Plot(
                slug=plots.slugify("recall", task),
                title=f"Recall accuracy vs d_model: {task}",
                caption="Mean over seeds, best over learning rates per cell (as Zoology and MAD report). Stars are "
                "published accuracies, labelled with the model and (in the legend) their source; a dotted "
                "horizontal line is a published accuracy whose width was not given; a dotted vertical line is a "
                "published claim without a number (see the table below).",
                png=plots.render(figure),
                series=plots.series_count(figure),
                table=task_rows.rename(columns={"_seq_len": "seq_len", "_d_model": "d_model", "_label": "series"})[
                    ["seq_len", "series", "d_model", "accuracy"]
                ].sort_values(["seq_len", "series", "d_model"]),
            )
        )
    return found


def _draw_references(axis, references: pd.DataFrame, seq_len: float, legend: dict[str, object]) -> None:
    if references.empty:
        return
    lengths = numeric(references, "seq_len")
    here = references[lengths.isna() | (lengths == seq_len)] if not math.isnan(seq_len) else references
    for number, (_, point) in enumerate(here.iterrows()):
        accuracy, d_model = float(point["accuracy"]), float(point["d_model"])
        name, source = plots.plain(key_text(point.get("model"))), _short_source(point.get("source"))
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
    frame: pd.DataFrame, references: pd.DataFrame | None = None, palette: plots.Palette | None = None
) -> list[plots.Plot]:
    """Accuracy against evaluation length for models trained at one length (induction-heads style), with the
    published curves of the same task drawn dashed beside ours. A line per (implementation, setting and what
    else differs within the task), every point of it from one training: the one the reproduction table
    reads (the best at its training length), never the best of several trainings per length."""
    palette = palette or plots.palette_for(frame)
    rows = ok_rows(frame)
    if not (has_values(rows, "eval_seq_len") and has_values(rows, "accuracy")):
        return []
    rows = rows[numeric(rows, "eval_seq_len").notna()]
    rows = rows.assign(
        _task=rows.get("task", pd.Series("", index=rows.index)).map(key_text),
        _eval=numeric(rows, "eval_seq_len"),
        _seq_len=numeric(rows, "seq_len"),
        _accuracy=numeric(rows, "accuracy"),
        _training=reproduction.training_key(rows),
    )
    # labels name what differs within a task's rows (another task's widths say nothing here)
    labels = [series_labels(group, extra_fields=("seq_len", "setting")) for _, group in rows.groupby("_task")]
    rows = rows.assign(_label=pd.concat(labels))
    rows = pd.concat(
        group[group["_training"] == reproduction.best_training(group)] for _, group in rows.groupby(["_task", "_label"])
    )
    # A curve needs several test lengths: a model tested only at its training length is no extrapolation
    # (the accuracy plot shows it), and a line of one point says nothing.
    lengths = rows.groupby(["_task", "_label"])["_eval"].transform("nunique")
    rows = rows[lengths >= 2]
    if rows.empty:
        return []
    tasks = sorted(rows["_task"].unique())
    figure = plots.new_figure(6.0 * min(len(tasks), 2), 4.4 * math.ceil(len(tasks) / 2) + 0.6)
    axes = np.atleast_1d(figure.subplots(math.ceil(len(tasks) / 2), min(len(tasks), 2), squeeze=False)).ravel()
    legend: dict[str, object] = {}
    greys = ("#555555", "#8c564b", "#7f7f7f", "#bcbd22", "#17becf", "#9467bd", "#e377c2")
    for axis, task in zip(axes, tasks, strict=False):
        task_rows = rows[rows["_task"] == task]
        styles = plots.SeriesStyles(palette, task_rows)
        for label, group in sorted(task_rows.groupby("_label"), key=lambda item: str(item[0])):
            curve = group.groupby("_eval")["_accuracy"].first().sort_index()  # one training: one row a length
            style = styles(plots.implementation_of(group), label)
            (line,) = axis.plot(curve.index, curve.to_numpy(), ms=4, label=plots.plain(label), **style)
            legend.setdefault(plots.plain(label), line)
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
            legend.setdefault(f"published: {plots.plain(model)} ({_short_source(points['source'].iloc[0])})", line)
        plots.log2_axis(axis)
        axis.set_ylim(-0.02, 1.05)
        axis.set_xlabel("evaluation length (tokens)")
        axis.set_ylabel("accuracy")
        axis.set_title(plots.plain(task), fontsize=10)
    for axis in axes[len(tasks) :]:
        axis.set_visible(False)
    plots.figure_legend(figure, list(legend.values()), list(legend), columns=1 if len(legend) > 6 else 2)
    return [
        plots.Plot(
            slug="recall_extrapolation",
            title="Length extrapolation",
            caption="Accuracy of models evaluated at lengths other than the one they were trained at; dashed "
            "lines with stars are the published results for the same task.",
            png=plots.render(figure),
            series=plots.series_count(figure),
            table=rows.groupby(["_task", "_label", "_eval"])["_accuracy"]
            .first()
            .reset_index()
            .set_axis(["task", "series", "eval_seq_len", "accuracy"], axis=1),
        )
    ]
