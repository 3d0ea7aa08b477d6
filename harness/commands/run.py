"""`seqbench run SUITE`: run a suite's preset, write its rows under --results.

The subcommands are discovered, not listed: every suite registered with harness.suite (each module or
subpackage of `suites` registers one at import) that has a `command` is one, so a new suite never
edits this file. A suite command takes the shared options (`@suite_options`, harness.run_options: it
receives one `options: RunOptions`), plans its jobs and runs them (`execute`, harness.execute);
`suite_command` builds the usual one. A suite whose record has `plan` can run with others in one pass
(`seqbench bench`):

    def plan(options: RunOptions) -> SuitePlan:
        device, preset = resolve_suite_device("throughput", options)
        return SuitePlan("throughput", device, build_jobs(preset, options, device))

    command = suite_command("throughput", plan, "Time every implementation's ...")

    register(Suite("throughput", "Throughput", columns={...}, plan=plan, command=command, ...))

Where the jobs run is `--executor local|ray|submitit` (harness.executors; docs/executors.md): local
(default) runs one worker per visible GPU, ray a task per chunk on a Ray cluster, submitit a Slurm job array.

Bad input (unknown preset, L <= 0, batch <= 0, unwritable or foreign results directory, an executor
that is not installed) is a one-line error before any job starts.
"""

from __future__ import annotations

from collections.abc import Callable

import click

from harness import suite as suite_registry
from harness.errors import UserError

# The suites' machinery lived here; these names stay importable from here for scripts written against it.
from harness.execute import check_named_available, command_line, execute, execute_plans, suite_command  # noqa: F401
from harness.run_options import RunOptions, resolve_suite_device, suite_options  # noqa: F401
from harness.suite import SuitePlan

# ---------------------------------------------------------------------------------------------
# discovery


def _broken_suite(name: str, error: Exception) -> click.Command:
    message = f"suite {name} failed to load: {type(error).__name__}: {error}".splitlines()[0]

    @click.command(name, help=f"(broken) {message}", context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def broken(args: tuple[str, ...]) -> None:
        raise UserError(message)

    return broken


def discover_suites() -> dict[str, click.Command]:
    """name -> command of every registered suite that has one, and a command that says why for every suite
    module that failed to import."""
    found: dict[str, click.Command] = {
        name: _broken_suite(name, error) for name, error in suite_registry.broken().items()
    }
    for suite in suite_registry.suites():
        if suite.command is not None:
            found[suite.command.name or suite.name] = suite.command
    return found


def suite_planners() -> dict[str, Callable[..., SuitePlan]]:
    """name -> `plan(options)` of every suite that has one: the suites `seqbench bench` runs together."""
    return {suite.name: suite.plan for suite in suite_registry.suites() if suite.plan is not None}


class SuiteGroup(click.Group):
    """Subcommands found at use, not at import (the registry imports the suites on first use)."""

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
    from harness.presets import preset_names

    spec = suite_registry.get(suite)
    names = preset_names(spec.presets_dir) if spec is not None else []
    for param in command.params:
        if isinstance(param, click.Option) and param.name == "preset" and names:
            default = "cpu without a GPU, quick with one" if {"cpu", "quick"} <= set(names) else "see above"
            param.help = f"Preset: {', '.join(names)} (default: {default})."


@click.group("run", cls=SuiteGroup)
def command() -> None:
    """Run a benchmark suite (throughput, memory, ...) and write its rows as Parquet under --results."""
