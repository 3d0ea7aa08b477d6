"""`seqbench run SUITE`: run a suite's preset, write its rows under --results.

The subcommands are discovered, not listed: every module or subpackage of `suites` that exposes
`command` (a click command) is a suite, so a new suite never edits this file. A suite command takes the
shared options with `@suite_options` (it then receives one `options: RunOptions`), plans its jobs and
calls `execute`; a suite that also exposes `plan` can run with others in one pass (`seqbench bench`):

    def plan(options: RunOptions) -> SuitePlan:
        device, preset = resolve_suite_device("throughput", options)
        return SuitePlan("throughput", device, build_jobs(preset, options, device))

    @click.command("throughput")
    @suite_options
    def command(options: RunOptions) -> None:
        execute(plan(options), options)

Where the jobs run is `--executor local|ray|submitit` (harness.executors; docs/executors.md): local
(default) runs one worker per visible GPU, ray a task per chunk on a Ray cluster, submitit a Slurm job array.

Bad input (unknown preset, L <= 0, batch <= 0, unwritable or foreign results directory, an executor
that is not installed) is a one-line error before any job starts.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from harness.errors import UserError

DEFAULT_PRESET = {"cpu": "cpu", "cuda": "quick"}


@dataclass(frozen=True)
class RunOptions:
    """The options every suite command takes."""

    preset: str | None
    results: Path
    redo: bool
    resume: bool
    device: str
    names: tuple[str, ...]
    families: tuple[str, ...]
    seq_lens: tuple[int, ...]
    batches: tuple[int, ...]
    dtypes: tuple[str, ...]
    modes: tuple[str, ...]
    timeout_s: float | None
    # where the jobs run (harness.executors)
    executor: str = "local"
    workers: int | None = None
    ray_address: str | None = None
    slurm_partition: str | None = None
    slurm_time_min: int | None = None
    slurm_gpus_per_task: int | None = None
    slurm_array_parallelism: int | None = None
    slurm_folder: str | None = None
    slurm_cluster: str | None = None

    def make_executor(self) -> Any:
        """The executor the options name; options of another executor are a one-line error."""
        from harness.executors import make_executor

        slurm = {
            "partition": self.slurm_partition,
            "time_min": self.slurm_time_min,
            "gpus_per_task": self.slurm_gpus_per_task,
            "array_parallelism": self.slurm_array_parallelism,
            "folder": self.slurm_folder,
            "cluster": self.slurm_cluster,
        }
        slurm = {key: value for key, value in slurm.items() if value is not None}
        if self.ray_address is not None and self.executor != "ray":
            raise UserError("--ray-address needs --executor ray")
        if slurm and self.executor != "submitit":
            given = ", ".join(f"--slurm-{key.replace('_', '-')}" for key in slurm)
            raise UserError(f"{given} need(s) --executor submitit")
        if self.executor == "local":
            return make_executor("local", workers=self.workers)
        if self.executor == "ray":
            return make_executor("ray", address=self.ray_address, workers=self.workers)
        if self.workers is not None:
            raise UserError("--workers does not apply to --executor submitit: use --slurm-array-parallelism")
        return make_executor("submitit", **slurm)

    def timeouts(self, preset: dict[str, Any]) -> dict[str, float]:
        """Per-phase job limits: the preset's [timeouts] (warmup_s, measure_s), --timeout for measure."""
        from harness.runner import DEFAULT_TIMEOUTS_S

        table = preset.get("timeouts", {})
        unknown = sorted(set(table) - {"warmup_s", "measure_s"})
        if unknown:
            raise UserError(f"[timeouts]: unknown key(s) {', '.join(unknown)}; known: measure_s, warmup_s")
        warmup = float(table.get("warmup_s", DEFAULT_TIMEOUTS_S["warmup"]))
        measure = float(self.timeout_s or table.get("measure_s", DEFAULT_TIMEOUTS_S["measure"]))
        return {"warmup": max(warmup, measure), "measure": measure}


# Beyond 2^31 - 1 tokens or sequences a size is a typo, not a benchmark: no device holds its activations.
MAX_SIZE = 2**31 - 1


def _positive(what: str) -> Callable[[click.Context, click.Parameter, tuple[int, ...]], tuple[int, ...]]:
    def check(ctx: click.Context, param: click.Parameter, values: tuple[int, ...]) -> tuple[int, ...]:
        for value in values:
            if value <= 0:
                raise UserError(f"--{param.name.replace('_', '-')} must be a positive {what}, got {value}")
            if value > MAX_SIZE:
                raise UserError(f"--{param.name.replace('_', '-')} {value} is beyond the largest size, {MAX_SIZE}")
        return values

    return check


def _positive_or_none(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None and value <= 0:
        raise UserError(f"--{param.name.replace('_', '-')} must be a positive integer, got {value}")
    return value


def suite_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Add the shared options to a suite command; it receives them as `options: RunOptions`."""

    @functools.wraps(function)
    def wrapper(**kwargs: Any) -> Any:
        timeout = kwargs.pop("timeout")
        if timeout is not None and timeout <= 0:
            raise UserError(f"--timeout must be positive, got {timeout:g}")
        options = RunOptions(
            preset=kwargs.pop("preset"),
            results=Path(kwargs.pop("results")),
            redo=kwargs.pop("redo"),
            resume=kwargs.pop("resume"),
            device=kwargs.pop("device"),
            names=kwargs.pop("names"),
            families=kwargs.pop("families"),
            seq_lens=kwargs.pop("seq_len"),
            batches=kwargs.pop("batch"),
            dtypes=kwargs.pop("dtypes"),
            modes=kwargs.pop("modes"),
            timeout_s=timeout,
            executor=kwargs.pop("executor"),
            workers=kwargs.pop("workers"),
            ray_address=kwargs.pop("ray_address"),
            slurm_partition=kwargs.pop("slurm_partition"),
            slurm_time_min=kwargs.pop("slurm_time_min"),
            slurm_gpus_per_task=kwargs.pop("slurm_gpus_per_task"),
            slurm_array_parallelism=kwargs.pop("slurm_array_parallelism"),
            slurm_folder=kwargs.pop("slurm_folder"),
            slurm_cluster=kwargs.pop("slurm_cluster"),
        )
        return function(options=options, **kwargs)

    decorators = [
        click.option("--preset", default=None, help="Preset name (default: cpu without a GPU, quick with one)."),
        click.option("--results", default="results", show_default=True, type=click.Path(), help="Results directory."),
        click.option("--redo", is_flag=True, help="Rerun jobs that already have rows in the results directory."),
        click.option("--resume", is_flag=True, help="Continue the last (interrupted) run of this suite, same run id."),
        click.option("--device", default="auto", show_default=True, help="auto (the preset's), cpu or cuda[:i]."),
        click.option("--name", "names", multiple=True, help="Only these implementations (repeatable)."),
        click.option("--family", "families", multiple=True, help="Only these families (repeatable)."),
        click.option(
            "--seq-len", type=int, multiple=True, callback=_positive("integer"), help="Sequence lengths (repeatable)."
        ),
        click.option(
            "--batch", type=int, multiple=True, callback=_positive("integer"), help="Batch sizes (repeatable)."
        ),
        click.option("--dtype", "dtypes", multiple=True, help="dtypes (repeatable): float32, bfloat16, ..."),
        click.option("--mode", "modes", multiple=True, help="Modes (repeatable): fwd, fwd_bwd, prefill, decode, ..."),
        click.option("--timeout", type=float, default=None, help="Seconds per job for the measurement phase."),
        click.option(
            "--executor",
            type=click.Choice(["local", "ray", "submitit"]),
            default="local",
            show_default=True,
            help="Where jobs run: this machine (one worker per GPU), Ray tasks, or a Slurm job array.",
        ),
        click.option(
            "--workers",
            type=int,
            default=None,
            callback=_positive_or_none,
            help="Worker slots (local: default one per visible GPU, or 1 on CPU; ray: size of a local instance).",
        ),
        click.option("--ray-address", default=None, help="Ray cluster to connect to (default: start a local one)."),
        click.option("--slurm-partition", default=None, help="Slurm partition of the job array."),
        click.option(
            "--slurm-time-min",
            type=int,
            default=None,
            callback=_positive_or_none,
            help="Slurm time limit per array task (one implementation's jobs), minutes [default: 120].",
        ),
        click.option("--slurm-gpus-per-task", type=int, default=None, help="GPUs per array task [default: 1 on cuda]."),
        click.option(
            "--slurm-array-parallelism",
            type=int,
            default=None,
            callback=_positive_or_none,
            help="Array tasks running at once (default: Slurm's).",
        ),
        click.option(
            "--slurm-folder",
            default=None,
            help="submitit logs and pickles; %j is the job id [default: submitit_logs/%j].",
        ),
        click.option(
            "--slurm-cluster",
            type=click.Choice(["slurm", "local", "debug"]),
            default=None,
            help="submitit cluster (default: detected; local runs the array as processes of this machine).",
        ),
    ]
    for decorator in reversed(decorators):
        wrapper = decorator(wrapper)
    return wrapper


def resolve_suite_device(suite: str, options: RunOptions) -> tuple[str, dict[str, Any]]:
    """(device, preset): the preset named or the default for the machine; --device overrides the preset's
    device; a CUDA preset without a visible GPU is a one-line error."""
    import torch

    from harness.commands.options import resolve_device
    from suites import load_preset

    has_cuda = torch.cuda.is_available()
    if options.preset is None:
        wanted = "cpu" if options.device == "auto" else options.device
        kind = "cuda" if (wanted.startswith("cuda") or (options.device == "auto" and has_cuda)) else "cpu"
        preset = load_preset(suite, DEFAULT_PRESET[kind])
    else:
        preset = load_preset(suite, options.preset)
    device = preset.get("device", "cpu") if options.device == "auto" else resolve_device(options.device)
    if device.startswith("cuda") and not has_cuda:
        if options.device != "auto":  # the user asked for the GPU: the preset is not the problem
            raise UserError(f"--device {options.device}: no CUDA device is visible to torch; use --device cpu")
        raise UserError(
            f"preset {preset['name']!r} runs on {device}, but no CUDA device is visible to torch; "
            "use --preset cpu (or --device cpu)"
        )
    return device, preset


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


@dataclass
class SuitePlan:
    """What one suite runs: its jobs on a device, the variables its workers need, what to print after."""

    suite: str
    device: str
    jobs: list[Any]
    # (results directory, run id) -> variables for every worker of the run (profile: where traces go)
    worker_env: Callable[[Path, str], dict[str, str]] | None = None
    after: Callable[[Any], None] | None = None  # called with the suite's RunSummary once the run ends


def execute(plan: SuitePlan, options: RunOptions) -> Any:
    """Run one suite's plan (`execute_plans`); its RunSummary."""
    return execute_plans([plan], options)[0]


def execute_plans(plans: list[SuitePlan], options: RunOptions) -> list[Any]:
    """Run the plans' jobs in one pass with a progress bar (harness.runner.run_suites: an implementation's
    jobs of every suite on one worker), print each suite's summary table, then the plans' `after`.
    A plan without jobs is an error when it is the only one, else skipped with a note. Exits 130 if
    interrupted."""
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


def _print_measured(summaries: list[Any]) -> None:
    """The numbers this run measured, as `seqbench show` prints them."""
    import pandas as pd

    from harness.commands.options import make_console
    from harness.commands.show import print_measurements

    rows = [row for summary in summaries for row in summary.rows]
    if rows:
        print_measurements(pd.DataFrame(rows), make_console())


# ---------------------------------------------------------------------------------------------
# discovery


def _broken_suite(name: str, error: Exception) -> click.Command:
    message = f"suite {name} failed to load: {type(error).__name__}: {error}".splitlines()[0]

    @click.command(name, help=f"(broken) {message}", context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def broken(args: tuple[str, ...]) -> None:
        raise UserError(message)

    return broken


@functools.cache
def _suite_modules() -> dict[str, Any]:
    """name -> the module (or subpackage) of every suite under `suites`, or the error that broke its import."""
    import suites

    found: dict[str, Any] = {}
    for info in sorted(pkgutil.iter_modules(suites.__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.name == "presets":
            continue
        try:
            found[info.name] = importlib.import_module(f"suites.{info.name}")
        except Exception as exc:  # one broken suite must not take the others down
            found[info.name] = exc
    return found


def discover_suites() -> dict[str, click.Command]:
    """name -> command of every suite module or subpackage of `suites` that exposes `command`."""
    found: dict[str, click.Command] = {}
    for name, module in _suite_modules().items():
        if isinstance(module, Exception):
            found[name] = _broken_suite(name, module)
            continue
        command = getattr(module, "command", None)
        if isinstance(command, click.Command):
            found[command.name or name] = command
    return found


def suite_planners() -> dict[str, Callable[..., SuitePlan]]:
    """name -> `plan(options)` of every suite that exposes one: the suites `seqbench bench` runs together."""
    return {
        name: module.plan
        for name, module in _suite_modules().items()
        if not isinstance(module, Exception) and callable(getattr(module, "plan", None))
    }


class SuiteGroup(click.Group):
    """Subcommands found at use, not at import (suites import this module for its helpers)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(discover_suites())

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = discover_suites().get(name)
        if command is not None:
            _describe_presets(command, name)
        return command


def _describe_presets(command: click.Command, suite: str) -> None:
    """`--preset`'s help names the presets the suite has, and the default only where it is the shared
    one (cpu / quick); a suite with its own default (recall) names it in its description."""
    from suites import preset_names

    names = preset_names(suite)
    for param in command.params:
        if isinstance(param, click.Option) and param.name == "preset" and names:
            default = "cpu without a GPU, quick with one" if {"cpu", "quick"} <= set(names) else "see above"
            param.help = f"Preset: {', '.join(names)} (default: {default})."


@click.group("run", cls=SuiteGroup)
def command() -> None:
    """Run a benchmark suite (throughput, memory, ...) and write its rows as Parquet under --results."""
