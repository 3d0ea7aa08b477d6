"""The Ray executor: each chunk (the jobs of one implementation) is a Ray task asking for one GPU (or one
CPU on a CPU-only cluster), on an existing cluster (`address`) or on a Ray instance started here.

The task runs the chunk in the same isolated worker as the local executor (`base.run_task`), so a kernel
that aborts or hangs becomes a crash or timeout row, not a lost task. A task that is lost anyway (its
node died, the Ray worker was killed) becomes a crash row for each of its jobs, with Ray's error in one
line. Outcomes come back to the driver, which alone writes Parquet; the progress display advances as
tasks complete.

Ray is imported here only, when `--executor ray` is chosen (`pip install 'seqbench[ray]'`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
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
    visible_gpus,
)
from harness.worker import Outcome

if TYPE_CHECKING:
    from harness.job import Job

WAIT_S = 1.0  # how long one ray.wait blocks: Ctrl-C is noticed within it


class RayExecutor(Executor):
    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        """address: an existing cluster (`ray://host:10001`, `host:6379`, `auto`); None starts a local
        instance with `workers` GPUs (default: all visible) or, on CPU, `workers` CPUs (default: all)."""
        if workers is not None and workers <= 0:
            raise UserError(f"--workers must be a positive integer, got {workers}")
        self.address, self.workers = address, workers
        self.context: RunContext | None = None
        self._started = False
        self._remote: Any = None
        self._ray: Any = import_optional("ray", "ray", "ray")  # a missing Ray is an error before any job

    def open(self, context: RunContext) -> None:
        ray = self._ray
        cuda = context.device.startswith("cuda")
        if context.device not in ("cpu", "cuda", "cuda:0"):
            raise UserError(
                f"--executor ray gives each task one GPU of its own: use --device cuda, not {context.device}"
            )
        if not ray.is_initialized():
            quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
            if self.address:
                ray.init(address=self.address, **quiet)
            elif cuda:
                gpus = len(visible_gpus())
                if gpus == 0:
                    raise UserError("--executor ray on cuda: no GPU visible to start a local Ray instance with")
                ray.init(num_gpus=min(self.workers or gpus, gpus), **quiet)
            else:
                ray.init(num_cpus=self.workers or os.cpu_count() or 1, num_gpus=0, **quiet)
            self._started = True
        resources = {"num_gpus": 1} if cuda else {"num_cpus": 1}
        # No retries: a task that died once (a node lost mid-chunk) is reported, not silently rerun.
        self._remote = ray.remote(max_retries=0, **resources)(run_task)
        self.context = context

    def _task(self, jobs: Sequence[Job], log_file: str, describe: bool, measure_ceilings: bool = False) -> RemoteTask:
        assert self.context is not None
        return RemoteTask(
            executor=self.name,
            jobs=list(jobs),
            device=self.context.device,
            env=forwarded_environment(self.context.worker_env),
            log_path=str(self.context.run_dir / log_file),
            describe=describe,
            measure_ceilings=measure_ceilings,
        )

    def describe(self, measure_ceilings: bool) -> Outcome:
        """One task on the resources a job gets measures the run's provenance and ceilings."""
        ref = self._remote.remote(self._task([], "worker-provenance.log", True, measure_ceilings))
        try:
            result = self._ray.get(ref)
        except Exception as exc:  # a RayError: the probe was lost
            return crash_outcome(f"ray task failed: {first_line(exc)}")
        assert result.provenance is not None
        return result.provenance

    def run(self, chunks: Sequence[Sequence[Job]]) -> Iterator[Event]:
        ray = self._ray
        pending = {
            self._remote.remote(self._task(chunk, log_name(chunk[0].implementation), True)): chunk for chunk in chunks
        }
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=WAIT_S)
                for ref in ready:
                    chunk = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except Exception as exc:  # lost: the worker or node died under the task
                        yield from lost_chunk_events(
                            chunk, self.name, crash_outcome(f"ray task lost: {first_line(exc)}")
                        )
                        continue
                    yield from events_from_result(chunk, result)
        finally:
            for ref in pending:  # interrupted: stop what is still queued or running
                ray.cancel(ref, force=True)

    def close(self) -> None:
        if self._started and self._ray is not None:
            self._ray.shutdown()
            self._started = False
