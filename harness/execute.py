"""Running suites' plans: one pass over the jobs of one or several suites, then each suite's summary."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from harness import suite as suite_registry
from harness.errors import UserError
from harness.run_options import RunOptions, suite_options
from harness.suite import SuitePlan


def check_named_available(options: RunOptions, device: str, dtypes: list[str]) -> None:
    """An implementation named with --name that cannot run here is an error, not a row."""
    from harness import registry
    from harness.interface import parse_dtype

    if not options.names:
        return
    for impl in registry.select(options.names):
        for dtype in dtypes:
            availability = impl.availability(device, parse_dtype(dtype))
            if not availability:
                raise UserError(f"{impl.name} cannot run {dtype} on {device}: {availability.reason}")


def command_line() -> str:
    """The command that reproduces this run."""
    return shlex.join(["seqbench", *sys.argv[1:]])


def execute(plan: SuitePlan, options: RunOptions) -> Any:
    """Run one suite's plan (`execute_plans`); its RunSummary."""
    return execute_plans([plan], options)[0]


def execute_plans(plans: list[SuitePlan], options: RunOptions, eta_from: Sequence[Path] = ()) -> list[Any]:
    """Run the plans' jobs in one pass with a progress bar (harness.runner.run_suites: an implementation's
    jobs of every suite on one worker), print each suite's summary table, then the plans' `after`.
    A plan without jobs is an error when it is the only one, else skipped with a note. Exits 130 if
    interrupted. The progress estimates each suite's time left from the jobs' earlier times in the results
    folder and in `eta_from` (harness.progress)."""
    from rich.console import Console

    from harness import results
    from harness.runner import print_summary, run_suites

    console = Console(stderr=True)
    devices = {plan.device for plan in plans}
    if len(devices) > 1:
        raise UserError(f"the suites run on different devices ({', '.join(sorted(devices))}): give --device")
    for plan in plans:
        dtypes = sorted({job.params["dtype"] for job in plan.jobs if "dtype" in job.params})
        check_named_available(options, plan.device, dtypes)
    empty = [plan.suite for plan in plans if not plan.jobs]
    plans = [plan for plan in plans if plan.jobs]
    if not plans:
        raise UserError(f"no {' or '.join(empty)} jobs: the filters and the preset select nothing")
    for suite in empty:
        console.print(f"{suite}: no jobs (the filters and the preset select nothing)", highlight=False)
    device = plans[0].device
    _check_slots_per_gpu(options, plans, device)
    if (options.results / results.LOCK_NAME).is_file():  # another run may hold it: refused before any output
        with results.writer_lock(options.results):
            pass
    executor = options.make_executor()
    run_id = None
    if options.resume:
        run_id = max(filter(None, (results.latest_run_id(options.results, p.suite) for p in plans)), default=None)
    run_id = run_id or results.new_run_id()
    worker_env: dict[str, str] = {}
    for plan in plans:
        worker_env |= plan.worker_env(options.results, run_id) if plan.worker_env else {}
    jobs = [job for plan in plans for job in plan.jobs]
    names = " + ".join(plan.suite for plan in plans)
    console.print(f"{names}: {len(jobs)} job(s) on {device} ({options.executor}) -> {options.results}", highlight=False)
    summaries = run_suites(
        jobs,
        options.results,
        run_id=run_id,
        redo=options.redo,
        resume=options.resume,
        command=command_line(),
        device=device,
        progress=True if sys.stderr.isatty() else "lines",
        executor=executor,
        worker_env=worker_env,
        previous_job_s=_previous_job_seconds([options.results, *eta_from], console),
        # Training rows use no device ceiling; measured while other trainings share the card (several
        # recall runs at once on one GPU), the ceilings would be wrong anyway.
        measure_ceilings=any(plan.suite != "recall" for plan in plans),
    )
    for summary in summaries:
        print_summary(summary)
    _print_measured(summaries)
    for plan, summary in zip(plans, summaries, strict=True):
        if plan.after is not None and not summary.interrupted:
            plan.after(summary)
    if any(summary.interrupted for summary in summaries):
        raise SystemExit(130)
    return summaries


def _previous_job_seconds(paths: list[Path], console: Any) -> dict[str, tuple[str, float]]:
    """Earlier job times for the estimates; a folder that cannot be read costs the estimate, not the run."""
    from harness.progress import previous_job_seconds

    try:
        return previous_job_seconds(paths)
    except UserError as exc:
        console.print(f"note: no earlier job times for the estimates: {exc}", markup=False, highlight=False)
        return {}


def _check_slots_per_gpu(options: RunOptions, plans: list[SuitePlan], device: str) -> None:
    """Several jobs per GPU only for suites whose jobs may share one (harness.suite.Suite.shares_gpu)."""
    if options.slots_per_gpu is None or options.slots_per_gpu == 1:
        return
    if not device.startswith("cuda"):
        raise UserError("--slots-per-gpu needs a GPU (on the CPU, --workers sets how many jobs run at once)")
    for plan in plans:
        spec = suite_registry.get(plan.suite)
        if spec is None or not spec.shares_gpu:
            raise UserError(f"--slots-per-gpu: {plan.suite}'s jobs must not share a GPU (their numbers are timings)")


def _print_measured(summaries: list[Any]) -> None:
    """The numbers this run measured, as `seqbench show` prints them."""
    import pandas as pd

    from harness.commands.options import make_console
    from harness.commands.show import print_measurements

    rows = [row for summary in summaries for row in summary.rows]
    if rows:
        print_measurements(pd.DataFrame(rows), make_console())


def suite_command(name: str, plan: Callable[[RunOptions], SuitePlan], help: str) -> click.Command:
    """The usual `seqbench run NAME`: the shared options (@suite_options), then the plan's jobs run.
    A suite with options of its own (recall) writes its click command itself."""

    @click.command(name, help=help)
    @suite_options
    def command(options: RunOptions) -> None:
        execute(plan(options), options)

    return command
