"""The runner: a sweep is a list of `Job`s; each runs in an isolated worker and leaves rows in Parquet.

    jobs = [Job("throughput", "attention/reference", "suites.throughput:measure", {...}), ...]
    summary = run_jobs(jobs, "results/", command="seqbench run throughput --preset cpu")

A job names a function by dotted path (`target`), called in the worker as `target(**params)`; it returns
a row dict or a list of them (the measurements). The runner adds to every row the job's columns (the
params that are result columns, the config flattened), the provenance of the run and the identity
columns, and writes exactly one row per job that failed: status oom | error | crash | timeout |
unavailable with a one-line reason.

Executors (harness.executors) run the jobs: chunks of consecutive jobs of one implementation share a
worker (compilation and autotuning happen once per process; in a `run_suites` pass of several suites a
family's process runs them all, so its library and kernels load once for all of them); the worker is
restarted after any failure (a CUDA error or an OOM can leave the process in a bad state) and, on CUDA,
for each new family. The
local executor runs one worker, or one per GPU; ray and submitit run each chunk as a task elsewhere.
Whichever ran it, a job gives the same rows (same job id, same columns) plus `executor` and `gpu_index`;
this process alone writes Parquet.

Skipping: a job whose id already has a row (status other than `unavailable`) from this machine in the
results directory is skipped unless `redo`; `resume` continues the latest run of the suite under its
run id. Rows are written in batches (a file per chunk, and at least every `flush_interval_s`), so an
interrupted run loses at most the batch in flight.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import results
from harness.errors import UserError
from harness.executors import Executor, LocalExecutor, RunContext
from harness.executors.base import JobStarted
from harness.job import DEFAULT_TIMEOUTS_S, Job  # noqa: F401  (Job: re-exported, its old home)
from harness.progress import Eta, PlannedJob, expected_seconds
from harness.worker import Outcome, one_line

FAILED = ("oom", "error", "crash", "timeout")


@dataclass
class RunSummary:
    suite: str
    run_id: str
    results_dir: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    skipped: int = 0  # jobs already done (not rerun)
    total: int = 0  # jobs asked for
    interrupted: bool = False
    log_path: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def run_dir(self) -> Path:
        return self.results_dir / self.suite / self.run_id

    def job_statuses(self) -> dict[str, str]:
        """job_id -> status of its job: the failure if any row failed, else ok."""
        statuses: dict[str, str] = {}
        for row in self.rows:
            if statuses.get(row["job_id"], "ok") == "ok":
                statuses[row["job_id"]] = row["status"]
        return statuses

    def counts(self) -> Counter:
        """Jobs by status."""
        return Counter(self.job_statuses().values())

    def job_wall_s(self) -> float:
        """Seconds the workers spent on this suite's jobs (each job's wall time, counted once)."""
        walls = {row["job_id"]: row.get("job_wall_s") or 0.0 for row in self.rows}
        return float(sum(walls.values()))


# ---------------------------------------------------------------------------------------------
# checks before any job starts


def prepare_results_dir(results_dir: str | Path, logs: bool = True) -> Path:
    """Create `results_dir` (and, with `logs`, its sidecar folder for the workers' logs) if needed, prove
    them writable and the results of our schema. One-line UserErrors otherwise, before any job runs."""
    results_dir = Path(results_dir)
    if results_dir.exists() and not results_dir.is_dir():
        raise UserError(f"results directory {results_dir} exists and is not a directory")
    for directory in (results_dir, results.sidecar_dir(results_dir))[: 2 if logs else 1]:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            probe = directory / f"{results.TEMP_PREFIX}probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise UserError(f"results directory {directory} is not writable ({exc.strerror or exc})") from exc
    results.check_results_dir(results_dir)
    return results_dir


# ---------------------------------------------------------------------------------------------
# rows


def _base_row(
    job: Job, run_id: str, command: str, provenance: dict[str, Any], placement: dict[str, Any], started_at: str
) -> dict[str, Any]:
    """The job's columns, the run's provenance and where the job ran (executor, GPU; a remote machine's
    host columns take precedence over the run's)."""
    return {
        "schema_version": results.SCHEMA_VERSION,
        "run_id": run_id,
        "job_id": job.job_id,
        "timestamp": started_at,
        "suite": job.suite,
        "implementation": job.implementation,
        **job.columns(),
        "status": "ok",
        "reason": "",
        "command": command,
        **provenance,
        **placement,
    }


_PROTECTED = ("schema_version", "run_id", "job_id", "suite", "implementation")


def _rows_from_outcome(job: Job, outcome: Outcome, base: dict[str, Any]) -> list[dict[str, Any]]:
    if outcome.status != "ok":
        return [{**base, "status": outcome.status, "reason": outcome.reason, "job_wall_s": outcome.elapsed_s}]
    value = outcome.value
    measured = [value] if isinstance(value, dict) else list(value or [])
    if not measured or not all(isinstance(r, dict) for r in measured):
        reason = f"{job.target} returned {type(value).__name__}, not a row dict or a list of them"
        return [{**base, "status": "error", "reason": reason, "job_wall_s": outcome.elapsed_s}]
    rows = []
    for measurement in measured:
        row = {**base, **{k: v for k, v in measurement.items() if k not in _PROTECTED}, "job_wall_s": outcome.elapsed_s}
        if row["status"] not in results.STATUSES:
            row["reason"] = f"job reported unknown status {row['status']!r}"
            row["status"] = "error"
        row["reason"] = one_line(row.get("reason") or "")
        _derive_fractions(row)
        rows.append(row)
    return rows


def _derive_fractions(row: dict[str, Any]) -> None:
    """Achieved rates as fractions of this run's measured device ceilings."""
    for achieved, peak, fraction in (
        ("achieved_tflops", "peak_matmul_tflops", "frac_peak_tflops"),
        ("achieved_gbps", "peak_copy_gbps", "frac_peak_gbps"),
    ):
        if achieved in row and fraction not in row:
            a, p = row.get(achieved), row.get(peak)
            ok = a is not None and p is not None and not math.isnan(a) and not math.isnan(p) and p > 0
            row[fraction] = a / p if ok else float("nan")


# ---------------------------------------------------------------------------------------------
# the run


class _Display:
    """A rich progress bar over jobs: the current job and the ok / failed counts so far. With
    `enabled="lines"` (output to a log, not a terminal) one line per finished job instead."""

    def __init__(self, enabled: bool | str, total: int, title: str, eta: Eta | None = None) -> None:
        self.progress = None
        self.eta = eta
        self.ok = self.failed = self.finished = 0
        self.lines, self.total, self.label = enabled == "lines", total, ""
        if not enabled or self.lines:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("[bold]{task.fields[title]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[green]{task.fields[ok]} ok[/green] [red]{task.fields[failed]} failed[/red]"),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
        )
        self.task = self.progress.add_task("", total=total, title=title, ok=0, failed=0)
        self.progress.start()

    def current(self, label: str) -> None:
        self.label = label
        if self.progress is not None:
            self.progress.update(self.task, description=label)

    def done(self, status: str, job: Job | None = None) -> None:
        if status in ("ok", "unavailable"):
            self.ok += status == "ok"
        else:
            self.failed += 1
        self.finished += 1
        left = ""
        if self.eta is not None and job is not None:
            self.eta.done(job.job_id)
            left = "  " + self.eta.line(job.suite)
        if self.progress is not None:
            self.progress.update(self.task, advance=1, ok=self.ok, failed=self.failed, description=self.label + left)
        elif self.lines:
            print(f"[{self.finished}/{self.total}] {status:<11} {self.label}{left}", file=sys.stderr, flush=True)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.update(self.task, description="")
            self.progress.stop()


def _chunks_by_implementation(jobs: Sequence[Job]) -> list[list[Job]]:
    """The jobs of each implementation and suite together (first-appearance order), duplicates dropped: a
    chunk is what one worker runs in a row, compiling and autotuning the implementation once."""
    seen: set[str] = set()
    chunks: dict[tuple[str, str], list[Job]] = {}
    for job in jobs:
        if job.job_id not in seen:
            seen.add(job.job_id)
            chunks.setdefault((job.implementation, job.suite), []).append(job)
    return list(chunks.values())


def run_jobs(
    jobs: Sequence[Job],
    results_dir: str | Path = "results",
    **options: Any,
) -> RunSummary:
    """Run `jobs` (all of one suite) and write their rows under `results_dir`: `run_suites` for one suite
    (the same keyword options). A mix of suites is a UserError here; `run_suites` takes one."""
    suites = {job.suite for job in jobs}
    if len(suites) > 1:
        raise UserError(f"one run holds one suite; got {', '.join(sorted(suites))} (run_suites takes several)")
    return run_suites(jobs, results_dir, **options)[0]


def _one_writer(function: Callable[..., list[RunSummary]]) -> Callable[..., list[RunSummary]]:
    """Run `function(jobs, results_dir, ...)` holding the results folder's lock: two runs into one folder
    at once would both run every job and time each other."""

    @functools.wraps(function)
    def locked(jobs: Sequence[Job], results_dir: str | Path = "results", **options: Any) -> list[RunSummary]:
        results_dir = prepare_results_dir(results_dir)
        with results.writer_lock(results_dir):
            results.remove_stale_temporaries(results_dir)  # the lock is ours: their writers are dead
            return function(jobs, results_dir, **options)

    return locked


@_one_writer
def run_suites(
    jobs: Sequence[Job],
    results_dir: str | Path = "results",
    *,
    run_id: str | None = None,
    redo: bool = False,
    resume: bool = False,
    command: str = "",
    device: str | None = None,
    progress: bool | str = False,
    flush_interval_s: float = 30.0,
    measure_ceilings: bool = True,
    isolate_families: bool | None = None,
    worker_env: dict[str, str] | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    executor: Executor | None = None,
    previous_job_s: Mapping[str, tuple[str, float]] | None = None,
) -> list[RunSummary]:
    """Run `jobs` with `executor` (default: local, one worker per GPU) and write their rows under
    `results_dir`; one RunSummary per suite, in the order the suites first appear.

    Jobs of several suites share one pass under one run id, with the device provenance measured once.
    With a process per family, each family's process runs its jobs suite by suite in the order the suites
    first appear (its library imported and its kernels loaded once, not once per suite). Timed suites
    go first and profile last: on an H100, an implementation's decode steps measured 0.5-3% slower when
    its throughput jobs followed another implementation's memory and profile jobs in the same process.
    Each suite's rows go to `<results_dir>/<suite>/<run_id>/`, the workers' logs to the first suite's
    log directory (`results.log_dir`). The folder is locked for the run: a second run into it at the
    same time is a UserError. Never raises for what a job does; raises
    UserError for bad input (results directory, an executor that cannot start) before any job runs.
    `previous_job_s` (job id -> (suite, seconds), harness.progress.previous_job_seconds): the progress
    shows each suite's time left and ETA from these measured times.
    Ctrl-C stops the run, writes the rows finished so far and returns with `interrupted` set."""
    results_dir = prepare_results_dir(results_dir)
    suites = list(dict.fromkeys(job.suite for job in jobs)) or ["unknown"]
    if resume and run_id is None:
        run_id = max(filter(None, (results.latest_run_id(results_dir, suite) for suite in suites)), default=None)
    run_id = run_id or results.new_run_id()
    chunks = _chunks_by_implementation(jobs)
    device = device or (chunks[0][0].params.get("device", "cpu") if chunks else "cpu")
    # On a GPU each family gets its own process (see LocalExecutor); on a CPU the references share one.
    isolate = isolate_families if isolate_families is not None else device.startswith("cuda")
    if isolate:
        chunks = _families_together(chunks)
    summaries = {suite: RunSummary(suite, run_id, results_dir) for suite in suites}
    for chunk in chunks:
        for job in chunk:
            summaries[job.suite].total += 1
    if not chunks:
        return list(summaries.values())

    for suite in suites:
        (results_dir / suite / run_id).mkdir(parents=True, exist_ok=True)
    run_dir = results.log_dir(results_dir, suites[0], run_id)  # logs stay out of the Parquet dataset
    run_dir.mkdir(parents=True, exist_ok=True)
    executor = executor or LocalExecutor()
    if getattr(executor, "one_job_per_chunk", False):
        chunks = [[job] for chunk in chunks for job in chunk]
    context = RunContext("+".join(suites), run_dir, device, dict(worker_env or {}), isolate)
    try:
        executor.open(context)
        provenance = _provenance(executor, measure_ceilings, list(summaries.values()))
        todo = chunks
        for suite, summary in summaries.items():
            summary.log_path = executor.log_pattern(run_dir)
            done: set[str] = set()
            if resume:
                done |= results.done_job_ids(results_dir, suite, run_id=run_id)
            if not redo:
                done |= results.done_job_ids(results_dir, suite, host_fingerprint=provenance.get("host_fingerprint"))
            todo = [[job for job in chunk if job.job_id not in done] for chunk in todo]
            summary.skipped = summary.total - sum(job.suite == suite for chunk in todo for job in chunk)
        todo = [chunk for chunk in todo if chunk]
        _run_chunks(executor, todo, summaries, provenance, command, progress, flush_interval_s, on_row, previous_job_s)
    finally:
        executor.close()
    return list(summaries.values())


def _families_together(chunks: list[list[Job]]) -> list[list[Job]]:
    """The chunks of one family next to each other (families in first-appearance order, chunks in their
    order within a family): a worker process per family then starts once, not again on every return."""
    from harness.executors.base import family_of

    families = [family_of(chunk[0]) for chunk in chunks]
    first_seen = {family: index for index, family in reversed(list(enumerate(families)))}
    order = sorted(range(len(chunks)), key=lambda index: first_seen[families[index]])
    return [chunks[index] for index in order]


def _run_chunks(
    executor: Executor,
    chunks: list[list[Job]],
    summaries: dict[str, RunSummary],
    provenance: dict[str, Any],
    command: str,
    progress: bool | str,
    flush_interval_s: float,
    on_row: Callable[[dict[str, Any]], None] | None,
    previous_job_s: Mapping[str, tuple[str, float]] | None = None,
) -> None:
    """Feed the executor's completions into each suite's rows: written in batches (a file when a chunk is
    complete, and at least every `flush_interval_s`), so an interrupted run loses at most the batch in flight."""
    run_id = next(iter(summaries.values())).run_id
    title = f"{' + '.join(summaries)} {run_id}"
    planned = [PlannedJob(job.job_id, job.suite) for chunk in chunks for job in chunk]
    eta = None if previous_job_s is None else Eta(planned, expected_seconds(planned, previous_job_s))
    display = _Display(progress, len(planned), title, eta)
    chunk_of = {job.job_id: index for index, chunk in enumerate(chunks) for job in chunk}
    left_in_chunk = [len(chunk) for chunk in chunks]
    pending: dict[str, list[dict[str, Any]]] = {suite: [] for suite in summaries}
    last_flush = time.monotonic()

    def flush() -> None:
        nonlocal last_flush
        for suite, rows in pending.items():
            if rows:
                summary = summaries[suite]
                summary.paths.append(_write_storable(rows, summary, suite))
                pending[suite] = []
        last_flush = time.monotonic()

    events = executor.run(chunks) if chunks else iter(())
    try:
        for event in events:
            if isinstance(event, JobStarted):
                display.current(event.job.label)
                continue
            job = event.job
            summary = summaries[job.suite]
            base = _base_row(job, summary.run_id, command, provenance, event.placement, event.started_at)
            rows = _rows_from_outcome(job, event.outcome, base)
            pending[job.suite] += rows
            summary.rows += rows
            for row in rows:  # after recording: the row is kept whatever the callback does
                if on_row is not None:
                    on_row(row)
            display.current(job.label)
            display.done(summary.job_statuses()[job.job_id], job)
            left_in_chunk[chunk_of[job.job_id]] -= 1
            if left_in_chunk[chunk_of[job.job_id]] == 0 or time.monotonic() - last_flush >= flush_interval_s:
                flush()  # one file per implementation at least
    except KeyboardInterrupt:
        for summary in summaries.values():
            summary.interrupted = True
    finally:
        if hasattr(events, "close"):
            events.close()  # stops the jobs still running (kills workers, cancels tasks)
        flush()
        display.stop()


def _write_storable(rows: list[dict[str, Any]], summary: RunSummary, suite: str) -> Path:
    """Write the batch; a row that does not fit the schema (a value too large for int64, a wrong type)
    becomes an `error` row saying why, so the batch and the job's outcome are never lost."""
    try:
        return results.write_rows(rows, summary.results_dir, summary.run_id, suite=suite)
    except ValueError:
        pass
    storable = []
    for row in rows:
        try:
            results.rows_to_table([row])
            storable.append(row)
        except ValueError as exc:
            kept = {k: row[k] for k in (*results.IDENTITY_COLUMNS, "command", "job_wall_s") if k in row}
            replacement = {**kept, "status": "error", "reason": one_line(f"row could not be stored: {exc}")}
            storable.append(replacement)
            row.update(status="error", reason=replacement["reason"])  # the summary tells the same story
    return results.write_rows(storable, summary.results_dir, summary.run_id, suite=suite)


def _provenance(executor: Executor, measure_ceilings: bool, summaries: list[RunSummary]) -> dict[str, Any]:
    """Static provenance (this process) + device provenance and ceilings (measured once, where jobs run)."""
    from harness.provenance import static_provenance

    info = static_provenance()
    outcome = executor.describe(measure_ceilings)
    if outcome.status == "ok":
        info.update(outcome.value)
    else:
        for summary in summaries:
            summary.notes.append(f"device provenance not collected ({outcome.status}: {outcome.reason})")
        info.update(peak_matmul_tflops=float("nan"), peak_copy_gbps=float("nan"))
    return info


# ---------------------------------------------------------------------------------------------
# summary


def print_summary(summary: RunSummary, console: Any = None) -> None:
    """A table of jobs by implementation and status, then the distinct failure reasons."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    statuses = summary.job_statuses()
    implementation_of = {row["job_id"]: row["implementation"] for row in summary.rows}
    per_impl: dict[str, Counter] = {}
    for job_id, status in statuses.items():
        per_impl.setdefault(implementation_of[job_id], Counter())[status] += 1
    table = Table(title=f"{summary.suite} run {summary.run_id}")
    table.add_column("implementation", no_wrap=True)
    for status in results.STATUSES:
        table.add_column(status, justify="right")
    for name, counts in per_impl.items():
        table.add_row(name, *[str(counts.get(s, 0) or "") for s in results.STATUSES])
    console.print(table)
    reasons = Counter(
        (row["implementation"], row["status"], row["reason"]) for row in summary.rows if row["status"] != "ok"
    )
    for (name, status, reason), n in sorted(reasons.items()):
        console.print(f"  {name}: {status} ×{n}: {reason}", markup=False, highlight=False)
    totals = summary.counts()
    done = ", ".join(f"{totals[s]} {s}" for s in results.STATUSES if totals.get(s))
    console.print(
        f"{len(statuses)} job(s) run ({done or 'none'}), {summary.skipped} skipped as already done"
        + (" (use --redo to rerun them)" if summary.skipped else "")
    )
    for note in summary.notes:
        console.print(f"note: {note}", markup=False, highlight=False)
    if summary.paths:
        console.print(f"results: {summary.run_dir}", markup=False, highlight=False)
    if summary.log_path is not None and any(s in FAILED for s in statuses.values()):
        console.print(f"worker log (tracebacks): {summary.log_path}", markup=False, highlight=False)
    if summary.interrupted:
        console.print(
            f"interrupted after {len(statuses)} of {summary.total - summary.skipped} job(s); continue with --resume"
        )
