"""Published recall reference points, for drawing beside our measurements.

The recall suite owns the data (suites/recall/references.py, with each number's source) and hands it over
as records through its registered record (`harness.suite.Suite.reference_points`); this module only
normalises them, and tolerates their absence: a report of throughput results must not need the recall suite.

Normalised columns: task, model, accuracy (a fraction, 0..1; NaN for a statement without a number),
d_model, seq_len (training length), eval_seq_len (test length where it differs: extrapolation), source,
claim (the statement, for points without a number), family (the seqbench family the model corresponds
to, if any), at_least / at_most (the reproduction bar in percent, if the point carries one).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Iterable
from typing import Any

import pandas as pd

COLUMNS = (
    "task",
    "model",
    "family",
    "accuracy",
    "d_model",
    "seq_len",
    "eval_seq_len",
    "source",
    "claim",
    "at_least",
    "at_most",
)
SYNONYMS = {
    "model": ("model", "mixer", "implementation", "name", "architecture"),
    "accuracy": ("accuracy", "accuracy_percent", "value", "score"),
    "seq_len": ("seq_len", "length"),
    "source": ("source", "citation", "reference", "paper"),
}


def _as_dict(record: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return dataclasses.asdict(record)
    if isinstance(record, dict):
        return dict(record)
    return dict(getattr(record, "__dict__", {}))


def normalise(records: Iterable[Any]) -> pd.DataFrame:
    """Records with any of the accepted field names -> the normalised columns; unusable records dropped.

    Papers print percentages: an accuracy above 1 is read as a percentage. A record without a number is
    kept only when it states a claim (e.g. "attention solves MQAR at d_model 64")."""
    rows = []
    for record in records:
        values = _as_dict(record)
        row = {name: values.get(name) for name in ("task", "family", "d_model", "eval_seq_len", "at_least", "at_most")}
        for column, names in SYNONYMS.items():
            row[column] = next((values[n] for n in names if values.get(n) is not None), None)
        row["claim"] = values.get("claim") or ""
        try:
            accuracy = float(row["accuracy"])
        except (TypeError, ValueError):
            accuracy = math.nan
        if row["task"] is None or (math.isnan(accuracy) and not row["claim"]):
            continue
        row["accuracy"] = accuracy / 100 if accuracy > 1 else accuracy
        rows.append(row)
    frame = pd.DataFrame.from_records(rows, columns=list(COLUMNS))
    for column in ("accuracy", "d_model", "seq_len", "eval_seq_len", "at_least", "at_most"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return frame


def recall_references(suite: str = "recall") -> pd.DataFrame:
    """The published points of a suite (default: recall), normalised; an empty frame where it has none."""
    from harness import suite as suite_registry

    spec = suite_registry.get(suite)
    if spec is None or spec.reference_points is None:
        return pd.DataFrame(columns=list(COLUMNS))
    try:
        return normalise(spec.reference_points())
    except Exception as exc:  # malformed reference data must not stop the report: warn, and draw no points
        warnings.warn(f"published {suite} reference points not loaded: {exc}", stacklevel=2)
        return pd.DataFrame(columns=list(COLUMNS))
