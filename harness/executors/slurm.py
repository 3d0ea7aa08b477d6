"""The submitit executor: chunks (the jobs of one implementation) submitted to Slurm as one job array
(`executor.map_array`), each array task on one GPU, at most `array_parallelism` at a time; results are
collected as array tasks finish.

Each array task runs its chunk in the same isolated worker as the local executor (`base.run_task`), so a
kernel that aborts becomes a crash row; an array task that fails as a whole (preempted, node failure,
out of its Slurm time) becomes a row for each of its jobs: timeout when Slurm says TIMEOUT, else crash,
with submitit's error in one line. The driver (a login node is fine: it needs no GPU) alone writes
Parquet. Logs and pickles go to `folder` (submitit's `%j` is the job id).

`cluster="local"` runs the array as subprocesses of this machine (submitit's LocalExecutor: what the
tests use; it starts every array task at once), `"debug"` in this process. submitit is imported here only
(`pip install 'seqbench[slurm]'`). Other sbatch settings (account, QoS, ...) come from the SBATCH_*
environment variables sbatch reads.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import UserError
from harness.executors.base import (
    Event,
    Executor,
    RemoteTask,
    RunContext,
    crash_outcome,
    events_from_result,
    first_line,
    forwarded_environment,
    import_optional,
    log_name,
    lost_chunk_events,
    run_task,
)
from harness.worker import Outcome

if TYPE_CHECKING:
    from harness.job import Job

DEFAULT_FOLDER = "submitit_logs/%j"
DEFAULT_TIME_MIN = 120
# submitit asks Slurm (sacct) at most about once a minute per job folder; polling faster only reads files.
POLL_S = {"slurm": 10.0, "local": 0.5, "debug": 0.1}


class SubmititExecutor(Executor):
    name = "submitit"

    def __init__(
        self,
        folder: str | Path = DEFAULT_FOLDER,
        partition: str | None = None,
        time_min: int = DEFAULT_TIME_MIN,
        gpus_per_task: int | None = None,
        array_parallelism: int | None = None,
        cluster: str | None = None,
    ) -> None:
        """time_min: Slurm time limit of each array task (one chunk: all jobs of one implementation);
        gpus_per_task: default 1 on cuda, 0 on cpu; cluster: slurm, local or debug (default: detected)."""
        for name, value in (("time-min", time_min), ("array-parallelism", array_parallelism)):
            if value is not None and value <= 0:
                raise UserError(f"--slurm-{name} must be a positive integer, got {value}")
        if gpus_per_task is not None and gpus_per_task < 0:
            raise UserError(f"--slurm-gpus-per-task must be 0 or more, got {gpus_per_task}")
        self.folder, self.partition, self.time_min = str(folder), partition, time_min
        self.gpus_per_task, self.array_parallelism, self.cluster = gpus_per_task, array_parallelism, cluster
        self.context: RunContext | None = None
        self._executor: Any = None
        self._submitit: Any = import_optional("submitit", "submitit", "slurm")  # missing: an error before any job

    def open(self, context: RunContext) -> None:
        submitit = self._submitit
        if context.device not in ("cpu", "cuda", "cuda:0"):
            raise UserError(
                f"--executor submitit gives each task its own GPU(s): use --device cuda, not {context.device}"
            )
        try:
            executor = submitit.AutoExecutor(folder=self.folder, cluster=self.cluster)
        except (RuntimeError, ValueError) as exc:  # no Slurm here, or an unknown cluster name
            raise UserError(f"--executor submitit: {first_line(exc)} (--slurm-cluster local runs here)") from exc
        gpus = self.gpus_per_task if self.gpus_per_task is not None else int(context.device.startswith("cuda"))
        parameters: dict[str, Any] = {"name": f"seqbench-{context.suite}", "timeout_min": self.time_min, "nodes": 1}
        parameters["tasks_per_node"] = 1
        if executor.cluster == "slurm":
            parameters |= {"slurm_partition": self.partition, "slurm_array_parallelism": self.array_parallelism}
            if gpus:
                parameters["slurm_gpus_per_task"] = gpus
        else:
            parameters["gpus_per_node"] = gpus
        executor.update_parameters(**parameters)
        self._executor, self.context = executor, context

    @property
    def _poll_s(self) -> float:
        return POLL_S.get(self._executor.cluster, 1.0)

    def _task(self, jobs: Sequence[Job], log_file: str, measure_ceilings: bool = False) -> RemoteTask:
        assert self.context is not None
        return RemoteTask(
            executor=self.name,
            jobs=list(jobs),
            device=self.context.device,
            env=forwarded_environment(self.context.worker_env),
            log_path=str(self.context.run_dir / log_file),
            describe=True,
            measure_ceilings=measure_ceilings,
        )

    def describe(self, measure_ceilings: bool) -> Outcome:
        """One job on the resources an array task gets measures the run's provenance and ceilings (before
        the array: which jobs are already done depends on the machine)."""
        job = self._executor.submit(run_task, self._task([], "worker-provenance.log", measure_ceilings))
        try:
            while not job.done():
                time.sleep(self._poll_s)
            result = job.result()
        except KeyboardInterrupt:
            job.cancel(check=False)
            raise
        except Exception as exc:
            return self._lost(exc)
        assert result.provenance is not None
        return result.provenance

    def run(self, chunks: Sequence[Sequence[Job]]) -> Iterator[Event]:
        tasks = [self._task(chunk, log_name(chunk[0].implementation)) for chunk in chunks]
        array = self._executor.map_array(run_task, tasks)  # one sbatch: a job array of len(chunks) tasks
        pending = dict(zip(array, chunks, strict=True))
        try:
            while pending:
                finished = [job for job in pending if job.done()]
                if not finished:
                    time.sleep(self._poll_s)
                    continue
                for job in finished:
                    chunk = pending.pop(job)
                    try:
                        result = job.result()
                    except Exception as exc:  # the array task failed or was lost as a whole
                        yield from lost_chunk_events(chunk, self.name, self._lost(exc))
                        continue
                    yield from events_from_result(chunk, result)
        finally:
            for job in pending:  # interrupted: cancel the array tasks still queued or running
                job.cancel(check=False)

    @staticmethod
    def _lost(exc: BaseException) -> Outcome:
        # submitit's first two lines: which job, and its state ("has not produced any output (state: FAILED)").
        outcome = crash_outcome(f"slurm task lost: {first_line(exc, lines=2)}")
        if "TIMEOUT" in str(exc):  # Slurm killed it at --slurm-time-min
            outcome.status = "timeout"
        return outcome
