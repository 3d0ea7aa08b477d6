"""Summaries of recall rows the way the papers report them: best accuracy per cell (Zoology), MAD scores.

They live in harness/report/analysis.py, shared by the recall CLI's table and the report's recall page so
the two always agree; these names stay importable from here.
"""

from harness.report.analysis import CELL, best_per_cell, mad_scores
from harness.report.analysis import recall_ok_rows as ok_rows

__all__ = ["CELL", "best_per_cell", "mad_scores", "ok_rows"]
