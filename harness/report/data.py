"""Column groups and small frame helpers shared by the report's plots, tables and compare.

The column names are the agreed result schema (see harness/results.py). A report must cope with any
subset of them: a frame from one suite lacks the others' columns, and an old run may lack new ones, so
every helper here asks `frame.get(...)`-style questions instead of assuming a column exists.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from harness import suite as suite_registry

# What identifies a job besides its configuration.
JOB_COLUMNS = (
    "suite",
    "family",
    "implementation",
    "backend",
    "level",
    "mode",
    "device",
    "dtype",
    "batch",
    "seq_len",
)
CONFIG_COLUMNS = (
    "d_model",
    "n_heads",
    "head_dim",
    "d_state",
    "expand",
    "chunk_size",
    "d_conv",
    "n_groups",
    "rope",
    "rope_base",
)
# Recall rows are also told apart by their task and training settings; profile rows by their kernel.
RECALL_KEY_COLUMNS = ("task", "vocab_size", "n_layers", "lr", "seed", "eval_seq_len")
PROFILE_KEY_COLUMNS = ("kernel_name",)

PROVENANCE_COLUMNS = (
    "gpu_name",
    "gpu_count",
    "gpu_memory_bytes",
    "driver_version",
    "cuda_version",
    "torch_version",
    "triton_version",
    "package_versions",
    "seqbench_commit",
    "seqbench_dirty",
    "host_fingerprint",
    "peak_matmul_tflops",
    "peak_copy_gbps",
    "executor",
)

FAILED_STATUSES = ("oom", "error", "crash", "timeout", "unavailable")


def option_columns(frame: pd.DataFrame) -> list[str]:
    return sorted(c for c in frame.columns if c.startswith("opt_"))


def with_columns(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """A copy of `frame` holding every column in `columns` (missing ones filled with NaN)."""
    frame = frame.copy()
    for column in columns:
        if column not in frame.columns:
            frame[column] = np.nan
    return frame


def ok_rows(frame: pd.DataFrame) -> pd.DataFrame:
    if "status" not in frame.columns:
        return frame
    return frame[frame["status"] == "ok"]


def failed_rows(frame: pd.DataFrame) -> pd.DataFrame:
    if "status" not in frame.columns:
        return frame.iloc[0:0]
    return frame[frame["status"].notna() & (frame["status"] != "ok")]


def has_values(frame: pd.DataFrame, column: str) -> bool:
    """True when `column` exists and holds at least one non-missing value."""
    return column in frame.columns and bool(frame[column].notna().any())


def numeric(frame: pd.DataFrame, column: str) -> pd.Series:
    """The column as floats (missing or non-numeric -> NaN), whatever dtype it was stored with."""
    if column not in frame.columns:
        return pd.Series(np.nan, index=frame.index, dtype=float)
    return pd.to_numeric(frame[column], errors="coerce").astype(float)


def suites_present(frame: pd.DataFrame) -> list[str]:
    """Suites in the results, the registered ones in report order (harness.suite), then any others
    alphabetically."""
    if "suite" not in frame.columns or frame.empty:
        return []
    return suite_registry.names_in_order({str(s) for s in frame["suite"].dropna().unique()})


def is_missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return value is pd.NA or value is pd.NaT


def has_cell_value(value: object) -> bool:
    """A cell holds something worth showing: not missing, not empty text, not an empty list."""
    if isinstance(value, list | tuple | np.ndarray):
        return len(value) > 0
    return not is_missing(value) and value != ""


def key_text(value: object) -> str:
    """A value as matching text: equal configs give equal text whatever dtype the column was read as."""
    if is_missing(value):
        return ""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    return str(value)


def config_key_columns(frame: pd.DataFrame) -> list[str]:
    """The columns that identify a job by its definition (not by when or where it ran)."""
    candidates = [*JOB_COLUMNS, *CONFIG_COLUMNS, *RECALL_KEY_COLUMNS, *PROFILE_KEY_COLUMNS, *option_columns(frame)]
    return [c for c in candidates if c in frame.columns]


def latest_per_key(frame: pd.DataFrame, key_columns: Sequence[str]) -> pd.DataFrame:
    """One row per key: the most recent (by timestamp) when a job was run more than once."""
    if frame.empty or not key_columns:
        return frame
    ordered = frame.sort_values("timestamp", kind="stable") if "timestamp" in frame.columns else frame
    keys = ordered[list(key_columns)].map(key_text)
    return ordered[~keys.duplicated(keep="last")]


# Fields that may tell two series of one implementation apart in a plot; only those that vary are named.
SERIES_FIELDS = (
    "level",
    "device",
    "dtype",
    "d_model",
    "n_heads",
    "head_dim",
    "d_state",
    "expand",
    "chunk_size",
    "n_groups",
)


def series_labels(frame: pd.DataFrame, extra_fields: Sequence[str] = ()) -> pd.Series:
    """A legend label per row: the implementation, plus each field that varies within one implementation's
    rows (two series of it). A field that differs only between implementations (each family's own head
    count or state size in a preset) says nothing the implementation's name does not: the tables show it."""
    has_implementation = "implementation" in frame.columns
    implementation = frame["implementation"].map(key_text) if has_implementation else ""
    labels = pd.Series(implementation, index=frame.index, dtype=object)
    fields = [*SERIES_FIELDS, *option_columns(frame), *extra_fields]
    for name in fields:
        if name not in frame.columns:
            continue
        texts = frame[name].map(key_text)
        varies = (texts.groupby(implementation).nunique() > 1).any() if has_implementation else texts.nunique() > 1
        if varies:
            short = name.removeprefix("opt_")
            shown = texts if name in ("level", "device", "dtype", "setting") else short + "=" + texts
            labels = labels + " · " + shown
    return labels


def samples_list(value: object) -> list[float]:
    """Per-rep times from a `samples_ms` cell (list, numpy array, JSON text or missing) as finite floats."""
    if value is None:
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    if isinstance(value, float | int):
        return [] if math.isnan(value) else [float(value)]
    try:
        values = [float(v) for v in value]  # type: ignore[union-attr]
    except TypeError:
        return []
    return [v for v in values if math.isfinite(v)]


def package_versions_text(value: object) -> str:
    """`{"fla": "0.6.0"}` (JSON text or dict) as `fla 0.6.0`; anything else as its text."""
    if is_missing(value):
        return ""
    parsed = value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
    if isinstance(parsed, dict):
        return ", ".join(f"{name} {version}" for name, version in sorted(parsed.items()))
    return str(value)


CHECK_FAILED_COLUMNS = ["implementation", "dtype", "device", "test", "rms_ratio", "tolerance", "reason", "command"]


def failed_checks(frame: pd.DataFrame) -> pd.DataFrame:
    """Correctness checks that ran and did not pass (their status is ok: the job ran; `passed` says the verdict)."""
    if "passed" not in frame.columns or "suite" not in frame.columns:
        return frame.iloc[0:0]
    checks = frame[frame["suite"] == "check"]
    return checks[checks["passed"].map(lambda v: v is False or v is np.False_)]
