"""Executors: where the runner's jobs run. The runner (harness.runner.run_jobs) decides what to run and
writes every row; an executor runs chunks of jobs in isolated workers and reports outcomes.

    local     this machine: one worker, or one per GPU (harness.executors.local)
    ray       Ray tasks, one GPU each, on a cluster or a local instance (harness.executors.ray_executor)
    submitit  a Slurm job array through submitit (harness.executors.slurm)

The same jobs give the same rows (job ids, configs, measurements) whichever executor ran them; the rows
say which did (`executor`) and on which GPU (`gpu_index`).
"""

from __future__ import annotations

from harness.executors.base import Executor, RunContext
from harness.executors.local import LocalExecutor

EXECUTORS = ("local", "ray", "submitit")


def make_executor(name: str, **options: object) -> Executor:
    """The executor `name` with its options (constructor keywords); the optional ones imported lazily."""
    if name == "local":
        return LocalExecutor(**options)  # type: ignore[arg-type]
    if name == "ray":
        from harness.executors.ray_executor import RayExecutor

        return RayExecutor(**options)  # type: ignore[arg-type]
    if name == "submitit":
        from harness.executors.slurm import SubmititExecutor

        return SubmititExecutor(**options)  # type: ignore[arg-type]
    from harness.errors import UserError

    raise UserError(f"unknown executor {name!r}; known: {', '.join(EXECUTORS)}")


__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "RunContext", "make_executor"]
