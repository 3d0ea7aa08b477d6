"""Result rows in a Parquet dataset: one schema, versioned, written atomically, checked on read.

Layout: `<results_dir>/<suite>/<run_id>/<part>.parquet`, one file per batch of jobs, and nothing else
that a Parquet reader would trip on: worker logs and profiler traces go to the sibling folder
`<results_dir>-logs/` (`sidecar_dir`), the writers' lock is an empty hidden file. A file is written
to a hidden temporary name in the same directory and renamed into place (`os.replace` is atomic on
POSIX), so a reader never sees a partial file: a writer killed mid-write leaves only a `.tmp-*.partial`
file, which no reader globbing `*.parquet` picks up, and the next run removes.

Every file has the same columns with the same types (`dataset_columns()`: every known column of every
suite, null where a row has no such thing), so `pandas.read_parquet(results_dir)`, pyarrow datasets,
polars and duckdb read a whole folder with no options and a glob never drops a measurement. Any other
column a suite adds (family options `opt_*`, new extras) goes into the JSON object `extra_json`, with
its type recorded in the metadata (`seqbench.extra_columns`); `read_results` unpacks it into columns.
The schema version is in the metadata (`seqbench.schema_version`); version 1 files (each with its own
column set, extras as columns) still read.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from harness.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)  # 1: a column set per file, extras as their own columns
SCHEMA_KEY = b"seqbench.schema_version"
EXTRA_COLUMNS_KEY = b"seqbench.extra_columns"
TEMP_PREFIX = ".tmp-"
TEMP_SUFFIX = ".partial"  # not `.parquet`: globs and dataset readers never see a half-written file
LOCK_NAME = ".seqbench.lock"  # empty: polars and duckdb globs skip it, pyarrow skips dot files
SIDECAR_SUFFIX = "-logs"
EXTRA_JSON = "extra_json"

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
    "job_wall_s": FLOAT,  # the job's wall time in its worker (the runner adds it)
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
    "peak_matmul_dtype": STRING,
    # Where the row's job ran (added with the executors; files written before lack them and read as null):
    "executor": STRING,  # local | ray | submitit
    "gpu_index": INT,  # physical GPU index (nvidia-smi's) the job ran on; null on CPU
}

COMMON_COLUMNS: dict[str, pa.DataType] = {**IDENTITY_COLUMNS, **JOB_COLUMNS, **PROVENANCE_COLUMNS}


def known_columns() -> dict[str, pa.DataType]:
    """Every column with a fixed type: the common ones and every registered suite's (harness.suite)."""
    from harness import suite

    return {**suite.column_types(), **COMMON_COLUMNS}


def dataset_columns() -> dict[str, pa.DataType]:
    """The columns of every part file: every known column, then `extra_json` for the rest."""
    return {**known_columns(), EXTRA_JSON: STRING}


def sidecar_dir(results_dir: str | Path) -> Path:
    """`<results_dir>-logs`, beside the results folder: logs and traces, kept out of the Parquet dataset."""
    path = Path(results_dir)
    return path.parent / f"{path.resolve().name}{SIDECAR_SUFFIX}"


def log_dir(results_dir: str | Path, suite: str, run_id: str) -> Path:
    """Where the workers' logs of a run go: `<results_dir>-logs/<suite>/<run_id>/`."""
    return sidecar_dir(results_dir) / suite / run_id


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
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"column {name!r} does not fit type {arrow_type}: {exc}") from exc


def _json_value(value: Any) -> Any:
    """A value as JSON can hold it (numpy scalars and arrays come from the suites)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def rows_to_table(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Rows (dicts) -> an Arrow table of `dataset_columns()`, the version in its metadata.

    Every row must carry the identity columns; the other known columns are null where absent. Unknown
    columns go into `extra_json` (one JSON object per row), their inferred types into the metadata."""
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
    extra_names: list[str] = []
    for row in rows:
        extra_names += [n for n in row if n not in known and n != EXTRA_JSON and n not in extra_names]
    extra_types = {}
    for name in extra_names:
        try:
            array = pa.array([_json_value(row.get(name)) for row in rows])
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            raise ValueError(f"extra column {name!r} has values of mixed types or out of range: {exc}") from exc
        extra_types[name] = "string" if pa.types.is_null(array.type) else str(array.type)
    arrays = [_column_array(name, [row.get(name) for row in rows], t) for name, t in known.items()]
    packed = []
    for row in rows:
        extras = {name: _json_value(row[name]) for name in extra_names if name in row}
        packed.append(json.dumps(extras, default=str) if extras else None)
    arrays.append(pa.array(packed, type=STRING))
    metadata = {SCHEMA_KEY: str(SCHEMA_VERSION).encode(), EXTRA_COLUMNS_KEY: json.dumps(extra_types).encode()}
    fields = [pa.field(name, t) for name, t in {**known, EXTRA_JSON: STRING}.items()]
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
    temporary = directory / f"{TEMP_PREFIX}{part}-{uuid.uuid4().hex[:6]}{TEMP_SUFFIX}"
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


def remove_stale_temporaries(results_dir: str | Path) -> list[Path]:
    """Delete the temporary files of writers that were killed mid-write. Call only with the folder's lock
    held (`writer_lock`): then no writer is alive to own them."""
    removed = []
    for path in Path(results_dir).rglob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"):
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


@contextlib.contextmanager
def writer_lock(results_dir: str | Path) -> Iterator[None]:
    """Hold the results folder's lock: one writer at a time, so no job runs twice and no run times
    another. A folder already locked is a one-line UserError (the lock dies with its process)."""
    import fcntl

    path = Path(results_dir) / LOCK_NAME
    handle = open(path, "a")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(
                f"another seqbench run is writing to {results_dir} (it holds {path}); "
                "wait for it to finish, or give another --results folder"
            ) from None
        yield
    finally:
        handle.close()  # releases the lock


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


class UnreadableFile(UserError):
    """A file named `.parquet` that no Parquet reader can open (truncated by a full disk, a killed copy)."""

    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(f"{path} is not a readable Parquet file ({detail})")
        self.path, self.detail = path, detail


def check_file_schema(path: Path) -> pa.Schema:
    """The file's Arrow schema, after checking it is a seqbench file of a version this seqbench reads,
    with the agreed column types. Anything else is a one-line UserError naming the file."""
    try:
        schema = pq.read_schema(path)
    except Exception as exc:
        raise UnreadableFile(path, f"{type(exc).__name__}: {exc}") from exc
    metadata = schema.metadata or {}
    if SCHEMA_KEY not in metadata:
        raise UserError(f"{path} is not a seqbench results file (no {SCHEMA_KEY.decode()} in its metadata)")
    version = metadata[SCHEMA_KEY].decode()
    if version not in map(str, READABLE_VERSIONS):
        readable = ", ".join(map(str, READABLE_VERSIONS))
        raise UserError(f"{path} has seqbench results schema version {version}; this seqbench reads version {readable}")
    for name in IDENTITY_COLUMNS:
        if name not in schema.names:
            raise UserError(f"{path} lacks the required column {name!r}")
    written_as_extra = _extra_names(schema)
    columns = dataset_columns()
    for field in schema:
        expected = columns.get(field.name)
        if expected is not None and field.type != expected and field.name not in written_as_extra:
            raise UserError(f"{path}: column {field.name!r} has type {field.type}, expected {expected}")
    return schema


def _extra_names(schema: pa.Schema) -> set[str]:
    """The columns a file's writer did not know (version 1 wrote them as columns, typed by inference)."""
    try:
        return set(json.loads((schema.metadata or {}).get(EXTRA_COLUMNS_KEY, b"{}")))
    except ValueError:
        return set()


def _conform(table: pa.Table, path: Path) -> pa.Table:
    """A version-1 extra that is a known column now (an all-null one was inferred as string) takes the
    known type."""
    columns = dataset_columns()
    for name in _extra_names(table.schema) & set(table.column_names):
        expected = columns.get(name)
        if expected is not None and table.schema.field(name).type != expected:
            try:
                column = table.column(name).cast(expected)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise UserError(f"{path}: column {name!r} does not convert to {expected}: {exc}") from exc
            table = table.set_column(table.schema.get_field_index(name), name, column)
    return table


def _warn_unreadable(error: UnreadableFile) -> None:
    # Skipped, not fatal: one damaged file must not lock the user out of every other row of the folder.
    print(
        f"warning: skipped {error.path}: not a readable Parquet file ({error.detail}); delete or move it",
        file=sys.stderr,
    )


def check_results_dir(results_dir: str | Path) -> None:
    """Before a run: every Parquet file already in `results_dir` must be of this schema (unreadable
    files are skipped with a warning)."""
    results_dir = Path(results_dir)
    if results_dir.is_dir():
        for path in result_files(results_dir):
            try:
                check_file_schema(path)
            except UnreadableFile as exc:
                _warn_unreadable(exc)


def _unpack_extras(table: pa.Table) -> pa.Table:
    """`extra_json` back into one column per extra (types inferred from the values, as written)."""
    if EXTRA_JSON not in table.column_names:
        return table
    objects = [json.loads(text) if text else {} for text in table.column(EXTRA_JSON).to_pylist()]
    table = table.drop_columns([EXTRA_JSON])
    names: list[str] = []
    for extras in objects:
        names += [n for n in extras if n not in names and n not in table.column_names]
    for name in names:
        array = pa.array([extras.get(name) for extras in objects])
        table = table.append_column(name, array.cast(STRING) if pa.types.is_null(array.type) else array)
    return table


def read_table(paths: str | Path | Iterable[str | Path], columns: Sequence[str] | None = None) -> pa.Table:
    """Every checked file under `paths`, concatenated (columns missing from a file become null), extras
    unpacked. An unreadable file found in a folder is skipped with a warning on stderr; one named
    explicitly is an error."""
    if isinstance(paths, str | Path):
        paths = [paths]
    paths = list(paths)
    named = {Path(p) for p in paths if Path(p).is_file()}
    tables = []
    for path in result_files(paths):
        try:
            schema = check_file_schema(path)
        except UnreadableFile as exc:
            if path in named:
                raise
            _warn_unreadable(exc)
            continue
        wanted = None
        if columns is not None:
            wanted = [c for c in columns if c in schema.names]
            if EXTRA_JSON in schema.names and any(c not in schema.names for c in columns):
                wanted.append(EXTRA_JSON)
        table = _unpack_extras(_conform(pq.read_table(path, columns=wanted), path))
        if columns is not None:
            table = table.select([c for c in columns if c in table.column_names])
        tables.append(table)
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


def read_results(paths: str | Path | Iterable[str | Path], columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Results as a pandas DataFrame, the typed read (public: also `seqbench.read_results`).

    `paths`: results folders, suite or run folders, or part files. Ints are nullable Int64, bools
    nullable boolean, `samples_ms` arrays; extras (`extra_json`) are unpacked into their own columns;
    files of schema version 1 read too. A file of another schema (or no seqbench file at all) is a
    one-line UserError; a damaged file is skipped with a warning."""
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


# ---------------------------------------------------------------------------------------------
# upgrading folders written before schema version 2


def upgrade_results_dir(results_dir: str | Path) -> tuple[int, int]:
    """Make a folder written by an older seqbench a plain Parquet dataset: every version-1 part file is
    rewritten in `dataset_columns()` (same rows, same path, atomically), every other file (worker logs,
    `traces/`) moves to the sidecar folder. Returns (files rewritten, files moved)."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise UserError(f"no such results directory: {results_dir}")
    rewritten = moved = 0
    for path in result_files(results_dir):
        schema = check_file_schema(path)
        if (schema.metadata or {}).get(SCHEMA_KEY) == str(SCHEMA_VERSION).encode():
            continue
        rows = read_table(path).to_pylist()
        for row in rows:
            row["schema_version"] = SCHEMA_VERSION
        table = rows_to_table([{k: v for k, v in row.items() if v is not None} for row in rows])
        temporary = path.with_name(f"{TEMP_PREFIX}{path.stem}{TEMP_SUFFIX}")
        pq.write_table(table, temporary, compression="zstd")
        os.replace(temporary, path)
        rewritten += 1
    sidecar = sidecar_dir(results_dir)
    for path in sorted(results_dir.rglob("*")):
        keep = path.suffix == ".parquet" or path.name.startswith(".") or path.name == LOCK_NAME
        if path.is_file() and not keep:
            target = sidecar / path.relative_to(results_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
            moved += 1
    for path in sorted(results_dir.rglob("*"), reverse=True):  # folders the moves left empty
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return rewritten, moved
