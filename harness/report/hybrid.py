"""The recall page's hybrid models section, drawn: per task, a panel per d_model with accuracy against the
training length for attention, the recurrent families a hybrid is made of, and the hybrids (rows from
harness.report.analysis.hybrid_grid). Colours are the palette's: a hue per family (attention blue, Mamba
orange, Mamba-2 green, ...), the hybrids their own (cyan, plots.FAMILY_COLORS["hybrid"]), shaded per pattern;
hybrids dashed with diamonds."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.report import plots

GRID_NOTE = (
    "Accuracy in % per training length (the best over learning rates and seeds), one row per mixer: attention, "
    "the recurrent families in the hybrids, and the hybrids (kind), at each width a hybrid ran. A hybrid closes "
    "the recall gap where its row reaches attention's."
)


def hybrid_plots(grid: pd.DataFrame, palette: plots.Palette) -> list[plots.Plot]:
    """One plot per task of the grid."""
    found = []
    lengths = [c for c in grid.columns if c.startswith("L ")]
    for task, task_grid in grid.groupby("task", sort=True):
        widths = sorted(task_grid["d_model"].unique())
        figure = plots.new_figure(max(6.0, 4.2 * len(widths) + 1), 4.2)
        axes = np.atleast_1d(figure.subplots(1, len(widths), squeeze=False)).ravel()
        legend: dict[str, object] = {}
        for axis, d_model in zip(axes, widths, strict=True):
            for _, line in task_grid[task_grid["d_model"] == d_model].iterrows():
                values = [(int(c.split()[1]), line[c] / 100) for c in lengths if not pd.isna(line[c])]
                if not values:
                    continue
                label = plots.plain(f"{line['implementation']} ({int(line['n_layers'])} layers)")
                hybrid = line["kind"] == "hybrid"
                (handle,) = axis.plot(
                    [x for x, _ in values],
                    [y for _, y in values],
                    color=palette(line["implementation"]),
                    linestyle="--" if hybrid else "-",
                    marker="D" if hybrid else "o",
                    ms=5,
                    label=label,
                )
                legend.setdefault(label, handle)
            plots.log2_axis(axis)
            axis.set_ylim(-0.02, 1.05)
            axis.set_xlabel("seq_len")
            axis.set_ylabel("accuracy")
            axis.set_title(f"d_model {int(d_model)}", fontsize=10)
        figure.suptitle(f"{plots.plain(task)}: attention, recurrent layers and hybrids")
        plots.figure_legend(figure, list(legend.values()), list(legend), columns=1)
        found.append(
            plots.Plot(
                slug=plots.slugify("recall_hybrid", task),
                title=f"Hybrid models: {task}",
                caption="Best accuracy over learning rates and seeds per cell. Solid: attention (blue) and the "
                "recurrent families the hybrids are made of (their family's hue); dashed with diamonds: the "
                "hybrids (a layer pattern across families, cyan shades, named hybrid/<layer>+<layer>...).",
                png=plots.render(figure),
                series=plots.series_count(figure),
            ),
        )
    return found
