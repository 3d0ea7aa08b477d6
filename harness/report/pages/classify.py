"""The classification page: accuracy against training time per mixer, ROC curves, confusion matrices, the
published numbers beside ours with a verdict, the learning curves."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from harness.report import plots
from harness.report.data import has_values, key_text, numeric, ok_rows
from harness.report.references import recall_references
from harness.report.reproduction import VERDICT_TOLERANCE_POINTS, verdict
from harness.report.tables import render_table, section, shown_columns

if TYPE_CHECKING:
    from harness.report.site import Site

SUITE = "classify"
LEADING = ["accuracy", "roc_auc", "wall_s", "tokens_per_s", "params", "steps", "steps_per_s"]
REPRODUCTION_COLUMNS = ["source", "task", "model", "implementation", "seq_len", "published", "ours", "bar"]
REPRODUCTION_COLUMNS += ["verdict", "gap_points", "train_s", "steps"]


def _rows(rows: pd.DataFrame) -> pd.DataFrame:
    good = ok_rows(rows)
    if good.empty or "accuracy" not in good.columns:
        return pd.DataFrame()
    good = good[numeric(good, "accuracy").notna()]
    return good.assign(
        _panel=good.get("encoding", pd.Series("", index=good.index)).map(key_text)
        + " L "
        + numeric(good, "seq_len").map(lambda v: plots.length_text(v) if not math.isnan(v) else "?"),
        _implementation=good["implementation"].map(key_text),
    )


def _panels(rows: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    return [(panel, group) for panel, group in sorted(rows.groupby("_panel"), key=lambda item: str(item[0]))]


def _references_for(references: pd.DataFrame, group: pd.DataFrame) -> pd.DataFrame:
    """The published points of the panel's task and length."""
    if references.empty or "task" not in group.columns:
        return references.iloc[0:0]
    tasks = set(group["task"].map(key_text))
    lengths = set(numeric(group, "seq_len").dropna())
    here = references[references["task"].map(key_text).isin(tasks)]
    return here[numeric(here, "seq_len").isin(lengths) | numeric(here, "seq_len").isna()]


def accuracy_vs_time(rows: pd.DataFrame, references: pd.DataFrame, palette: plots.Palette) -> list[plots.Plot]:
    """Test accuracy against training wall time, a point per run, coloured by family (shade: implementation);
    published accuracies as dotted lines (their training time is not comparable, so no x)."""
    if rows.empty or not has_values(rows, "wall_s"):
        return []
    panels = _panels(rows)
    if not panels:
        return []
    figure, axes = plots.panel_grid(len(panels), columns=min(len(panels), 3), width=5.0, height=3.6)
    legend: dict[str, object] = {}
    for axis, (panel, group) in zip(axes, panels, strict=False):
        for name, runs in sorted(group.groupby("_implementation"), key=lambda item: str(item[0])):
            (line,) = axis.plot(
                numeric(runs, "wall_s"), numeric(runs, "accuracy"), "o", ms=6, color=palette(name), label=name
            )
            legend.setdefault(name, line)
        for _, point in _references_for(references, group).iterrows():
            axis.axhline(float(point["accuracy"]), color="grey", linestyle=":", linewidth=1)
            axis.annotate(
                f"{plots.plain(point['model'])} (published)",
                (0.01, float(point["accuracy"])),
                xycoords=("axes fraction", "data"),
                fontsize=7,
                va="bottom",
            )
            legend.setdefault("published", Line2D([], [], color="grey", linestyle=":"))
        axis.axhline(0.5, color="black", linewidth=0.6, alpha=0.4)
        axis.set_xscale("log")
        axis.set_ylim(0.4, 1.0)
        axis.set_xlabel("training wall time (s)")
        axis.set_ylabel("test accuracy")
        axis.set_title(plots.plain(panel), fontsize=10)
    plots.figure_legend(figure, list(legend.values()), list(legend))
    table = rows[["_panel", "_implementation", "wall_s", "accuracy", "roc_auc"]].rename(
        columns={"_panel": "panel", "_implementation": "implementation"}
    )
    return [
        plots.Plot(
            slug="classify_accuracy_time",
            title="Test accuracy against training time",
            caption="One point per run (its best evaluation, or its last with select = last); colour: family, "
            "shade: implementation. The thin line at 0.5 is chance; dotted lines are published accuracies.",
            png=plots.render(figure),
            series=plots.series_count(figure),
            table=table.sort_values(["panel", "implementation"]),
        )
    ]


def roc_curves(rows: pd.DataFrame, palette: plots.Palette) -> list[plots.Plot]:
    """The ROC curve of each run's reported evaluation, a panel per (encoding, length), at most 10 per axis."""
    if "roc" not in rows.columns:
        return []
    found = []
    for panel, group in _panels(rows):
        group = group[group["roc"].map(lambda text: isinstance(text, str) and text.startswith("["))]
        if group.empty:
            continue
        names = sorted(group["_implementation"].unique())
        chunks = plots.balanced_chunks(names)
        figure, axes = plots.panel_grid(len(chunks), columns=min(len(chunks), 3), width=4.4, height=4.0)
        points = []
        for axis, chunk in zip(axes, chunks, strict=False):
            for name in chunk:
                best = group[group["_implementation"] == name].sort_values("accuracy").iloc[-1]
                curve = np.array(json.loads(best["roc"]), dtype=float).reshape(-1, 2)
                axis.plot(curve[:, 0], curve[:, 1], color=palette(name), label=f"{name} (AUC {best['roc_auc']:.3f})")
                points += [{"implementation": name, "fpr": x, "tpr": y} for x, y in curve]
            axis.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
            axis.set_xlabel("false-positive rate")
            axis.set_ylabel("true-positive rate")
            axis.set_aspect("equal")
            axis.legend(fontsize=7, loc="lower right")
        figure.suptitle(f"ROC: {plots.plain(panel)}")
        found.append(
            plots.Plot(
                slug=plots.slugify("classify_roc", panel),
                title=f"ROC curves: {panel}",
                caption="Each implementation's best run: true- against false-positive rate as the threshold on "
                "the score (logit positive minus logit negative) falls; AUC by ranks (Mann-Whitney).",
                png=plots.render(figure),
                series=plots.series_count(figure),
                table=pd.DataFrame(points),
            )
        )
    return found


def confusion_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Each run's confusion matrix as counts and rates (positive = a positive review)."""
    needed = {"tp", "fp", "tn", "fn"}
    if rows.empty or not needed <= set(rows.columns):
        return pd.DataFrame()
    counts = {k: numeric(rows, k) for k in needed}
    out = pd.DataFrame(
        {
            "implementation": rows["_implementation"],
            "panel": rows["_panel"],
            "accuracy": numeric(rows, "accuracy"),
            "tp": counts["tp"],
            "fp": counts["fp"],
            "tn": counts["tn"],
            "fn": counts["fn"],
            "recall": counts["tp"] / (counts["tp"] + counts["fn"]),  # true-positive rate
            "specificity": counts["tn"] / (counts["tn"] + counts["fp"]),  # true-negative rate
            "precision": counts["tp"] / (counts["tp"] + counts["fp"]),
        }
    )
    return out.sort_values(["panel", "accuracy"], ascending=[True, False])


def reproduction_table(rows: pd.DataFrame, references: pd.DataFrame) -> pd.DataFrame:
    """Each published point beside our best run of its family, task and length, with a verdict."""
    out = []
    if rows.empty or references.empty:
        return pd.DataFrame(columns=REPRODUCTION_COLUMNS)
    families = rows.get("family", rows["_implementation"].map(lambda name: name.split("/")[0])).map(key_text)
    for _, point in references.iterrows():
        mine = rows[
            (rows["task"].map(key_text) == key_text(point["task"]))
            & (families == key_text(point["family"]))
            & (numeric(rows, "seq_len") == float(point["seq_len"]))
        ]
        published = 100 * float(point["accuracy"])
        at_least, at_most = float(point["at_least"]), float(point["at_most"])
        bar = f">= {at_least:g}" if not math.isnan(at_least) else f"within {VERDICT_TOLERANCE_POINTS:g}"
        base = {"source": point["source"], "task": point["task"], "model": point["model"]}
        base |= {"seq_len": point["seq_len"], "published": published, "bar": bar}
        if mine.empty:
            out.append({**base, "implementation": "", "verdict": "not measured"})
            continue
        for name, runs in mine.groupby("_implementation"):
            best = runs.sort_values("accuracy").iloc[-1]
            ours = 100 * float(best["accuracy"])
            text, gap = verdict(ours, published, at_least, at_most)
            out.append(
                {
                    **base,
                    "implementation": name,
                    "ours": ours,
                    "verdict": text,
                    "gap_points": gap,
                    "train_s": best.get("wall_s"),
                    "steps": best.get("steps"),
                }
            )
    return pd.DataFrame(out).reindex(columns=REPRODUCTION_COLUMNS)


def learning_curves(rows: pd.DataFrame, palette: plots.Palette) -> list[plots.Plot]:
    """Test accuracy against training wall time from each run's curve JSON, a panel per (encoding, length)."""
    if "curve" not in rows.columns:
        return []
    panels = []
    for panel, group in _panels(rows):
        series = []
        for _, row in group.iterrows():
            try:
                points = json.loads(row["curve"]) if isinstance(row["curve"], str) else []
            except json.JSONDecodeError:
                points = []
            if len(points) >= 2:
                series.append((row["_implementation"], points))
        if series:
            panels.append((panel, series))
    if not panels:
        return []
    figure, axes = plots.panel_grid(len(panels), columns=min(len(panels), 3), width=5.0, height=3.6)
    table = []
    legend: dict[str, object] = {}
    for axis, (panel, series) in zip(axes, panels, strict=False):
        for name, points in series[: plots.MAX_SERIES]:
            x = [p["wall_s"] for p in points]
            y = [p["test_accuracy"] for p in points]
            (line,) = axis.plot(x, y, marker=".", color=palette(name), label=name)
            legend.setdefault(name, line)
            table += [{"panel": panel, "implementation": name, **p} for p in points]
        axis.axhline(0.5, color="black", linewidth=0.6, alpha=0.4)
        axis.set_xlabel("training wall time (s)")
        axis.set_ylabel("test accuracy")
        axis.set_title(plots.plain(panel), fontsize=10)
    plots.figure_legend(figure, list(legend.values()), list(legend))
    return [
        plots.Plot(
            slug="classify_curves",
            title="Learning curves",
            caption="Test accuracy at each evaluation against the training wall time (evaluations included).",
            png=plots.render(figure),
            series=plots.series_count(figure),
            table=pd.DataFrame(table),
        )
    ]


def body(site: Site, rows: pd.DataFrame, palette: plots.Palette) -> str:
    references = recall_references(SUITE)
    good = _rows(rows)
    if good.empty:
        return "<p>No finished classification runs.</p>"
    content = "".join(site.figure(SUITE, p) for p in accuracy_vs_time(good, references, palette))
    table = reproduction_table(good, references)
    if not table.empty:
        content += section(
            "Published results beside ours",
            render_table(table, REPRODUCTION_COLUMNS, "classify-reproduction"),
            "Each published test accuracy (%) beside our best run of the same family, task and length. The "
            "verdict holds ours against the bar where there is one (issue 25: S4 at least 85% on LRA Text), "
            f"else against the published number within {VERDICT_TOLERANCE_POINTS:g} points. The published "
            "models are not ours: their recipes and what differs are in the lra-text preset's comments.",
        )
    content += "".join(site.figure(SUITE, p) for p in roc_curves(good, palette))
    matrices = confusion_table(good)
    if not matrices.empty:
        content += section(
            "Confusion matrices",
            render_table(matrices, list(matrices.columns), "classify-confusion"),
            "Per run, on the test reviews: tp positive reviews called positive, fp negative ones called "
            "positive, tn and fn likewise; recall = tp / (tp + fn), specificity = tn / (tn + fp).",
        )
    content += "".join(site.figure(SUITE, p) for p in learning_curves(good, palette))
    leading = shown_columns(good, ["implementation", "encoding", "seq_len", "d_model", "n_layers", *LEADING])
    content += section(
        "Runs",
        render_table(good.sort_values("accuracy", ascending=False), leading, "classify-runs"),
        "One row per training run, the measurement first; every column is in the table of every row below.",
    )
    return content
