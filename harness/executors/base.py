"""What every executor shares: the events a run yields, the loop that runs a chunk of jobs on one
isolated worker, the task that does it on another machine (a Ray task, a Slurm job), and GPU discovery.

An executor takes chunks (the jobs of one implementation, in order) and yields, as jobs finish,
`JobDone(job, outcome, placement)`; the runner turns outcomes into rows and alone writes Parquet.
Whatever runs a job, it runs it the same way: `run_job` in an isolated `harness.worker.Worker`
(a raise, an abort, a hang or an OOM in a kernel stays a status, never takes the executor down).

Nothing here imports torch, ray or submitit: the parent must not initialise CUDA, and the optional
executors import their library only when chosen.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import UserError
from harness.provenance import nvidia_smi_query
from harness.worker import Outcome, Worker, one_line

if TYPE_CHECKING:
    from harness.job import Job

# Device provenance starts torch and CUDA and measures the device ceilings (an 8192³ matmul, a 1 GiB copy).
PROVENANCE_TIMEOUT_S = 300.0
PROVENANCE_TARGET = "harness.provenance:device_provenance"
# Host columns a remote task reports about the machine it ran on (on a cluster, not the driver's).
HOST_COLUMNS = ("gpu_name", "gpu_count", "gpu_memory_bytes", "driver_version", "cuda_version", "host_fingerprint")


@dataclass
class RunContext:
    """What an executor needs to know about the run before it starts any job."""

    suite: str
    run_dir: Path  # <results>-logs/<suite>/<run_id> (results.log_dir): worker logs go here
    device: str  # the jobs' device: cpu, cuda, cuda:i
    worker_env: dict[str, str] = field(default_factory=dict)  # extra environment for every worker
    isolate_families: bool = False  # a fresh worker process for each new family (default on CUDA)


@dataclass
class JobStarted:
    job: Job


@dataclass
class JobDone:
    job: Job
    outcome: Outcome
    placement: dict[str, Any]  # executor, gpu_index, and on remote executors the host columns
    started_at: str  # UTC ISO time the job started: the rows' timestamp


Event = JobStarted | JobDone


class Executor(ABC):
    """Runs chunks of jobs somewhere and reports each job's outcome. Single use: open, describe, run, close."""

    name: str = ""

    @abstractmethod
    def open(self, context: RunContext) -> None:
        """Get ready (start a Ray instance, set up a Slurm executor); one-line UserError if it cannot."""

    @abstractmethod
    def describe(self, measure_ceilings: bool) -> Outcome:
        """Device provenance (and ceilings) measured where the jobs will run: once per run."""

    @abstractmethod
    def run(self, chunks: Sequence[Sequence[Job]]) -> Iterator[Event]:
        """Run every chunk; yield events as jobs start (where known) and finish. Closing the generator
        (Ctrl-C, an exception in the consumer) stops the jobs still running."""

    def close(self) -> None:  # noqa: B027 (optional hook: most executors hold nothing past a run)
        """Release what `open` took."""

    def log_pattern(self, run_dir: Path) -> Path:
        """Where the workers' logs (tracebacks, kernel libraries' output) of this run are."""
        return run_dir / "worker-*.log"


# ---------------------------------------------------------------------------------------------
# one job on one worker: the same for every executor


def log_line(log_path: Path | None, text: str) -> None:
    if log_path is None:
        print(text, flush=True)
        return
    with open(log_path, "a") as handle:
        handle.write(text if text.endswith("\n") else text + "\n")


def run_job(worker: Worker, job: Job, log_path: Path | None) -> Outcome:
    """The job's outcome: `unavailable` without starting anything if it cannot run here, else the worker's
    result; the worker is killed after any failure but `unavailable` (a CUDA error or an OOM can leave it
    in a bad state)."""
    from harness.results import utc_now

    reason = job.unavailable_reason()
    if reason is not None:
        return Outcome("unavailable", one_line(reason))
    log_line(log_path, f"=== {utc_now()} job {job.job_id} {job.label}")
    outcome = worker.call(job.target, dict(job.params), job.timeouts_s)
    if outcome.status != "ok":
        log_line(log_path, f"--- {outcome.status}: {outcome.reason}\n{outcome.value or ''}")
    # `unavailable` is a clean refusal (the adapter or library said it cannot do this): the process is
    # sound, and a restart would cost the next job a torch import and a reload of every compiled kernel.
    if outcome.status not in ("ok", "unavailable"):
        worker.kill()
    return outcome


def family_of(job: Job) -> str:
    from harness import registry
    from harness.errors import UserError
    from harness.job import HYBRID_FAMILY

    try:
        return registry.get(job.implementation).family
    except UserError:
        return HYBRID_FAMILY if job.params.get("layer_pattern") else job.implementation


def crash_outcome(reason: str) -> Outcome:
    return Outcome("crash", one_line(reason))


# ---------------------------------------------------------------------------------------------
# a chunk on another machine (a Ray task, a Slurm job): the same loop, inside the remote process


@contextmanager
def environment_set(overrides: Mapping[str, str]) -> Iterator[None]:
    """os.environ with `overrides` for the duration (a Ray worker process serves many tasks)."""
    saved = {key: os.environ.get(key) for key in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def forwarded_environment(worker_env: Mapping[str, str]) -> dict[str, str]:
    """Environment a remote task sets for its own registry and its worker: seqbench's variables
    (SEQBENCH_EXTRA_SPECS, ...) and the run's worker_env. A cluster's processes did not inherit ours."""
    env = {key: value for key, value in os.environ.items() if key.startswith("SEQBENCH_")}
    return env | dict(worker_env)


@dataclass
class RemoteTask:
    executor: str
    jobs: list[Job]  # empty for the provenance probe
    device: str
    env: dict[str, str]
    log_path: str | None  # a file in the run directory, if the remote machine can write there
    describe: bool = False  # measure device provenance (host columns) before the jobs
    measure_ceilings: bool = False


@dataclass
class TaskResult:
    outcomes: list[tuple[str, Outcome, str]]  # (job_id, outcome, started_at) in job order
    placement: dict[str, Any]
    provenance: Outcome | None = None  # device_provenance's outcome when asked


def _writable_log(log_path: str | None) -> Path | None:
    if not log_path:
        return None
    path = Path(log_path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a"):
            pass
    except OSError:
        return None  # another machine without the driver's file system: output goes to the executor's log
    return path


def run_task(task: RemoteTask) -> TaskResult:
    """Run a chunk in an isolated worker inside this (remote) process and return its outcomes.
    Called by Ray and by submitit; the driver turns the outcomes into rows. With `describe`, the worker
    first reports the machine (host columns, and the ceilings if asked), unless no job can run here."""
    from harness.results import utc_now

    log_path = _writable_log(task.log_path)
    with environment_set(task.env):
        worker = Worker(env=task.env, log_path=log_path)
        placement: dict[str, Any] = {"executor": task.executor, "gpu_index": gpu_index_of(task.device)}
        provenance = None
        wants_description = task.describe and (not task.jobs or any(j.unavailable_reason() is None for j in task.jobs))
        try:
            if wants_description:
                kwargs = {"device": task.device, "measure_ceilings": task.measure_ceilings}
                provenance = worker.call(PROVENANCE_TARGET, kwargs, PROVENANCE_TIMEOUT_S)
                if provenance.status == "ok":
                    placement |= {key: provenance.value.get(key) for key in HOST_COLUMNS}
                else:
                    worker.kill()
            outcomes = []
            for job in task.jobs:
                started_at = utc_now()
                outcomes.append((job.job_id, run_job(worker, job, log_path), started_at))
        finally:
            worker.close()
    return TaskResult(outcomes, placement, provenance)


def events_from_result(chunk: Sequence[Job], result: TaskResult) -> Iterator[JobDone]:
    by_id = {job_id: (outcome, started_at) for job_id, outcome, started_at in result.outcomes}
    for job in chunk:
        outcome, started_at = by_id[job.job_id]
        yield JobDone(job, outcome, result.placement, started_at)


def lost_chunk_events(chunk: Sequence[Job], executor: str, outcome: Outcome) -> Iterator[JobDone]:
    """A task that failed or was lost as a whole: each of its jobs gets the task's failure."""
    from harness.results import utc_now

    now = utc_now()
    for job in chunk:
        yield JobDone(job, Outcome(outcome.status, outcome.reason), {"executor": executor, "gpu_index": None}, now)


def first_line(exc: BaseException, lines: int = 1) -> str:
    """`Type: the first line(s) of the message`, one line: cluster errors carry tracebacks and log tails."""
    text = [line.strip() for line in str(exc).splitlines() if line.strip().strip("-")]
    return one_line(f"{type(exc).__name__}: {' '.join(text[:lines])}")


def import_optional(module: str, executor: str, extra: str) -> Any:
    """The executor's library, or a one-line UserError saying how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise UserError(f"--executor {executor} needs {module} ({exc}): pip install 'seqbench[{extra}]'") from exc


def log_name(implementation: str) -> str:
    return "worker-" + "".join(c if c.isalnum() or c in "-_." else "_" for c in implementation) + ".log"


# ---------------------------------------------------------------------------------------------
# GPUs, counted without initialising CUDA in this process


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES entries (indices or UUIDs).

    From CUDA_VISIBLE_DEVICES when set (CUDA ignores everything from the first invalid entry on, e.g. -1),
    else from nvidia-smi; [] without a driver. Never initialises CUDA here (workers are spawned later)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        entries = []
        for entry in (e.strip() for e in env.split(",")):
            if not entry or entry.startswith("-"):
                break
            entries.append(entry)
        return entries
    return [line for line in nvidia_smi_query("index") or [] if line.isdigit()]


def physical_gpu_index(entry: str) -> int | None:
    """The nvidia-smi index of a CUDA_VISIBLE_DEVICES entry (an index already, or a GPU UUID)."""
    if entry.isdigit():
        return int(entry)
    for line in nvidia_smi_query("index,uuid") or []:
        index, _, uuid = (part.strip() for part in line.partition(","))
        if uuid == entry or uuid.startswith(entry):
            return int(index)
    return None  # e.g. a MIG device


def gpu_index_of(device: str) -> int | None:
    """The physical index of the GPU `device` (cpu, cuda, cuda:i) names in this process; None on CPU."""
    if not device.startswith("cuda"):
        return None
    local = int(device.split(":", 1)[1]) if ":" in device else 0
    gpus = visible_gpus()
    return physical_gpu_index(gpus[local]) if local < len(gpus) else None
