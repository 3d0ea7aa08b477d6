"""Published recall reference points, for drawing beside our measurements.

The recall suite owns the data (suites/recall/, with each number's source); this loader only finds and
normalises it, and tolerates its absence: a report of throughput results must not need the recall suite.
It accepts a Python module `suites.recall.references` exposing a list of records (dicts or dataclasses) or
a function returning one, or a data file `suites/recall/references.{json,toml,csv}`.

Normalised columns: task, model, accuracy (a fraction, 0..1; NaN for a statement without a number),
d_model, seq_len (training length), eval_seq_len (test length where it differs: extrapolation), source,
claim (the statement, for points without a number), family (the seqbench family the model corresponds
to, if any), at_least / at_most (the reproduction bar in percent, if the point carries one).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import tomllib
import warnings
from collections.abc import Iterable
from pathlib import Path
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
MODULE = "suites.recall.references"
ATTRIBUTES = ("REFERENCE_POINTS", "PUBLISHED", "REFERENCES", "reference_points", "published_points", "load")
SYNONYMS = {
    "model": ("model", "mixer", "implementation", "name", "architecture"),
    "accuracy": ("accuracy", "accuracy_percent", "value", "score"),
    "seq_len": ("seq_len", "length"),
    "source": ("source", "citation", "reference", "paper"),
}


def _records_from_module() -> list[Any]:
    try:
        module = importlib.import_module(MODULE)
    except ImportError:
        return []
    for name in ATTRIBUTES:
        value = getattr(module, name, None)
        if callable(value):
            value = value()
        if value is not None:
            return list(value.to_dict("records") if isinstance(value, pd.DataFrame) else value)
    return []


def _records_from_files(directory: Path) -> list[Any]:
    for path in (directory / "references.json", directory / "references.toml", directory / "references.csv"):
        if not path.is_file():
            continue
        if path.suffix == ".csv":
            return pd.read_csv(path).to_dict("records")
        data = json.loads(path.read_text()) if path.suffix == ".json" else tomllib.loads(path.read_text())
        if isinstance(data, dict):  # {"points": [...]} or {"reference": [...]}
            lists = [v for v in data.values() if isinstance(v, list)]
            data = lists[0] if lists else []
        return list(data)
    return []


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


def recall_references(directory: Path | None = None) -> pd.DataFrame:
    """The published points, normalised; an empty frame when the recall suite provides none.

    With `directory`, only the data files there are read; without, the recall suite's module first, then
    the data files in its package directory."""
    try:
        if directory is not None:
            records = _records_from_files(directory)
        else:
            records = _records_from_module()
            if not records:
                try:
                    import suites.recall
                except ImportError:  # no recall suite installed: no points
                    return pd.DataFrame(columns=list(COLUMNS))
                records = _records_from_files(Path(next(iter(suites.recall.__path__))))
        return normalise(records)
    except Exception as exc:  # malformed reference data must not stop the report: warn, and draw no points
        warnings.warn(f"published recall reference points not loaded: {exc}", stacklevel=2)
        return pd.DataFrame(columns=list(COLUMNS))
