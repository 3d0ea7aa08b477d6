"""Result rows in a Parquet dataset: one schema, versioned, written atomically, checked on read.

Layout: `<results_dir>/<suite>/<run_id>/<part>.parquet`, one file per batch of jobs. A file is written
to a hidden temporary name in the same directory and renamed into place (`os.replace` is atomic on
POSIX), so a reader never sees a partial file: a writer killed mid-write leaves only a `.tmp-*` file,
which readers ignore.

Every file carries the schema version in its Parquet metadata (`seqbench.schema_version`) and the
type of each column. Known columns (the agreed names: common, provenance and each registered suite's,
harness.suite) have fixed Arrow types; any other column a suite adds (family options `opt_*`,
suite-specific extras) is allowed, its inferred type is recorded in the metadata
(`seqbench.extra_columns`), and it is kept on read.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from harness.errors import UserError

SCHEMA_VERSION = 1
SCHEMA_KEY = b"seqbench.schema_version"
EXTRA_COLUMNS_KEY = b"seqbench.extra_columns"
TEMP_PREFIX = ".tmp-"

STATUSES = ("ok", "oom", "error", "crash", "timeout", "unavailable")

STRING, INT, FLOAT, BOOL = pa.string(), pa.int64(), pa.float64(), pa.bool_()
FLOAT_LIST = pa.list_(pa.float64())

# Identity of a row: present (non-null) on every row.
IDENTITY_COLUMNS: dict[str, pa.DataType] = {
    "schema_version": INT,
    "run_id": STRING,
    "job_id": STRING,
    "timestamp": STRING,  # UTC, ISO 8601
    "suite": STRING,
    "implementation": STRING,
    "status": STRING,  # one of STATUSES
}

# What was run: present on every row (null where a suite has no such thing, e.g. seq_len of a profile summary).
JOB_COLUMNS: dict[str, pa.DataType] = {
    "family": STRING,
    "backend": STRING,
    "level": STRING,  # layer | op
    "mode": STRING,  # fwd | fwd_bwd | prefill | decode | train
    "device": STRING,
    "dtype": STRING,
    "batch": INT,
    "seq_len": INT,
    # MixerConfig, flattened (options become opt_<name>, typed as extra columns)
    "d_model": INT,
    "n_heads": INT,
    "head_dim": INT,
    "d_state": INT,
    "expand": INT,
    "chunk_size": INT,
    "d_conv": INT,
    "n_groups": INT,
    "rope": BOOL,
    "rope_base": FLOAT,
    "reason": STRING,  # one line; empty when ok
    "command": STRING,  # the CLI line that reproduces the run
}

PROVENANCE_COLUMNS: dict[str, pa.DataType] = {
    "gpu_name": STRING,
    "gpu_count": INT,
    "gpu_memory_bytes": INT,
    "driver_version": STRING,
    "cuda_version": STRING,
    "torch_version": STRING,
    "triton_version": STRING,
    "package_versions": STRING,  # JSON object: kernel package -> version
    "seqbench_commit": STRING,
    "seqbench_dirty": BOOL,
    "host_fingerprint": STRING,
    "peak_matmul_tflops": FLOAT,  # device ceilings, measured once per run
    "peak_copy_gbps": FLOAT,
    # Where the row's job ran (added with the executors; files written before lack them and read as null):
    "executor": STRING,  # local | ray | submitit
    "gpu_index": INT,  # physical GPU index (nvidia-smi's) the job ran on; null on CPU
}

COMMON_COLUMNS: dict[str, pa.DataType] = {**IDENTITY_COLUMNS, **JOB_COLUMNS, **PROVENANCE_COLUMNS}


def known_columns() -> dict[str, pa.DataType]:
    """Every column with a fixed type: the common ones and every registered suite's (harness.suite)."""
    from harness import suite

    return {**suite.column_types(), **COMMON_COLUMNS}


def new_run_id() -> str:
    """Sortable by start time: 20261122T182538Z-3f9a1c."""
    return f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:6]}"


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------
# writing


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _column_array(name: str, values: list[Any], arrow_type: pa.DataType) -> pa.Array:
    try:
        if arrow_type == INT:
            # An int column may receive NaN for "not measured": store null.
            values = [None if _is_missing(v) else int(v) for v in values]
        elif arrow_type == FLOAT:
            values = [float("nan") if v is None else float(v) for v in values]
        elif arrow_type == BOOL:
            values = [None if _is_missing(v) else bool(v) for v in values]
        elif arrow_type == STRING:
            values = [None if v is None else str(v) for v in values]
        elif arrow_type == FLOAT_LIST:
            values = [None if v is None else [float(x) for x in v] for v in values]
        return pa.array(values, type=arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
        raise ValueError(f"column {name!r} does not fit type {arrow_type}: {exc}") from exc


def rows_to_table(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Rows (dicts) -> an Arrow table with the schema's types and the version in its metadata.

    Every row must carry the identity columns; the other common columns are filled with nulls where
    absent. Unknown columns are kept with an inferred type, recorded in the metadata."""
    if not rows:
        raise ValueError("no rows to write")
    for row in rows:
        missing = [c for c in IDENTITY_COLUMNS if _is_missing(row.get(c))]
        if missing:
            raise ValueError(f"row of job {row.get('job_id')!r} lacks identity column(s) {', '.join(missing)}")
        if row["status"] not in STATUSES:
            raise ValueError(f"status {row['status']!r} is not one of {', '.join(STATUSES)}")
        if int(row["schema_version"]) != SCHEMA_VERSION:
            raise ValueError(f"row has schema_version {row['schema_version']}, this writer writes {SCHEMA_VERSION}")
    known = known_columns()
    names = list(COMMON_COLUMNS)
    for row in rows:
        names += [n for n in row if n not in names]
    arrays, fields, extra = [], [], {}
    for name in names:
        values = [row.get(name) for row in rows]
        if name in known:
            array = _column_array(name, values, known[name])
        else:
            try:
                array = pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise ValueError(f"extra column {name!r} has values of mixed types: {exc}") from exc
            if pa.types.is_null(array.type):  # all None: keep it as a string column of nulls
                array = pa.array(values, type=STRING)
            extra[name] = str(array.type)
        arrays.append(array)
        fields.append(pa.field(name, array.type))
    metadata = {SCHEMA_KEY: str(SCHEMA_VERSION).encode(), EXTRA_COLUMNS_KEY: json.dumps(extra).encode()}
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=metadata))


def write_rows(
    rows: Sequence[Mapping[str, Any]], results_dir: str | Path, run_id: str, suite: str | None = None, part: str = ""
) -> Path:
    """Write `rows` as one Parquet file `<results_dir>/<suite>/<run_id>/<part>.parquet`, atomically.

    `suite` defaults to the rows' suite (all rows of a file belong to one suite); `part` defaults to a
    fresh unique name. Returns the final path."""
    table = rows_to_table(rows)
    suites = {row["suite"] for row in rows}
    suite = suite or (suites.pop() if len(suites) == 1 else None)
    if suite is None:
        raise ValueError("rows of several suites: pass suite= explicitly")
    directory = Path(results_dir) / suite / run_id
    directory.mkdir(parents=True, exist_ok=True)
    part = part or f"part-{datetime.now(UTC).strftime('%H%M%S')}-{uuid.uuid4().hex[:8]}"
    final = directory / f"{part}.parquet"
    temporary = directory / f"{TEMP_PREFIX}{part}-{uuid.uuid4().hex[:6]}.parquet"
    try:
        with open(temporary, "wb") as handle:
            pq.write_table(table, handle, compression="zstd")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, final)  # atomic: readers see the old name set or the complete file
    finally:
        if temporary.exists():
            temporary.unlink()
    return final


# ---------------------------------------------------------------------------------------------
# reading


def result_files(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Parquet files under the given files/directories, skipping temporaries; sorted for determinism."""
    if isinstance(paths, str | Path):
        paths = [paths]
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += [p for p in path.rglob("*.parquet") if not p.name.startswith(TEMP_PREFIX)]
        elif path.exists():
            found.append(path)
        else:
            raise UserError(f"no such results file or directory: {path}")
    return sorted(set(found))


def check_file_schema(path: Path) -> pa.Schema:
    """The file's Arrow schema, after checking it is a seqbench file of this schema version with the
    agreed column types. Anything else is a one-line UserError naming the file."""
    try:
        schema = pq.read_schema(path)
    except Exception as exc:
        raise UserError(f"{path} is not a readable Parquet file ({type(exc).__name__}: {exc})") from exc
    metadata = schema.metadata or {}
    if SCHEMA_KEY not in metadata:
        raise UserError(f"{path} is not a seqbench results file (no {SCHEMA_KEY.decode()} in its metadata)")
    version = metadata[SCHEMA_KEY].decode()
    if version != str(SCHEMA_VERSION):
        raise UserError(
            f"{path} has seqbench results schema version {version}; this seqbench reads version {SCHEMA_VERSION}"
        )
    for name in IDENTITY_COLUMNS:
        if name not in schema.names:
            raise UserError(f"{path} lacks the required column {name!r}")
    known = known_columns()
    for field in schema:
        expected = known.get(field.name)
        if expected is not None and field.type != expected:
            raise UserError(f"{path}: column {field.name!r} has type {field.type}, expected {expected}")
    return schema


def check_results_dir(results_dir: str | Path) -> None:
    """Before a run: every Parquet file already in `results_dir` must be of this schema."""
    results_dir = Path(results_dir)
    if results_dir.is_dir():
        for path in result_files(results_dir):
            check_file_schema(path)


def read_table(paths: str | Path | Iterable[str | Path], columns: Sequence[str] | None = None) -> pa.Table:
    """Every checked file under `paths`, concatenated (columns missing from a file become null)."""
    files = result_files(paths)
    tables = []
    for path in files:
        schema = check_file_schema(path)
        wanted = None if columns is None else [c for c in columns if c in schema.names]
        tables.append(pq.read_table(path, columns=wanted))
    if not tables:
        return pa.table({name: pa.array([], type=t) for name, t in COMMON_COLUMNS.items()})
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise UserError(f"result files disagree on an extra column's type: {exc}") from exc


def _pandas_type(arrow_type: pa.DataType) -> Any:
    import pandas as pd

    # Nullable pandas types: an int column stays integer when some rows are null.
    if arrow_type == INT:
        return pd.Int64Dtype()
    if arrow_type == BOOL:
        return pd.BooleanDtype()
    return None


def read_results(paths: str | Path | Iterable[str | Path], columns: Sequence[str] | None = None):
    """Results as a pandas DataFrame: ints as nullable Int64, bools as boolean, `samples_ms` as arrays.
    A file of another schema (or no seqbench file at all) is a one-line UserError."""
    return read_table(paths, columns).to_pandas(types_mapper=_pandas_type)


def done_job_ids(
    results_dir: str | Path,
    suite: str,
    run_id: str | None = None,
    host_fingerprint: str | None = None,
    statuses: Sequence[str] = ("ok", "oom", "error", "crash", "timeout"),
) -> set[str]:
    """Job ids with a row in `results_dir/<suite>` (of one run if `run_id`; of one machine if
    `host_fingerprint`) whose status is in `statuses`. `unavailable` is not done by default: the
    package may be installed by now."""
    directory = Path(results_dir) / suite
    if run_id is not None:
        directory = directory / run_id
    if not directory.is_dir():
        return set()
    table = read_table(directory, columns=["job_id", "status", "host_fingerprint"])
    done = set()
    for job_id, status, host in zip(
        table.column("job_id").to_pylist(),
        table.column("status").to_pylist(),
        table.column("host_fingerprint").to_pylist()
        if "host_fingerprint" in table.column_names
        else [None] * len(table),
        strict=True,
    ):
        if status in statuses and (host_fingerprint is None or host == host_fingerprint):
            done.add(job_id)
    return done


def latest_run_id(results_dir: str | Path, suite: str) -> str | None:
    """The most recent run of `suite` in `results_dir` (run ids sort by start time)."""
    directory = Path(results_dir) / suite
    if not directory.is_dir():
        return None
    runs = sorted(p.name for p in directory.iterdir() if p.is_dir() and any(p.glob("*.parquet")))
    return runs[-1] if runs else None
