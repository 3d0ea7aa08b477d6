"""`seqbench bench`: several suites' presets in one pass, the measuring part of `nox -s bench`.

    seqbench bench                                    # throughput, memory, recall, profile: quick on a GPU
    seqbench bench --suites throughput,memory --family mamba2

Run one after another (`seqbench run throughput`, then `seqbench run memory`, ...), every suite starts a
worker process per family, and each of them imports the family's kernel library and loads its compiled
kernels again: on an H100 with warm caches, the first job of an implementation in a suite took 5-14 s
where the next took under 1 s, ~300 s of a 13-minute bench. In one pass (harness.runner.run_suites) a
family's worker process runs its jobs of every suite, suite by suite, so that happens once. Each suite
keeps its own rows (RESULTS/<suite>/<run_id>/, one run id for the pass), summary table and printout; the
time each suite's jobs took is printed at the end.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import click

from harness import suite as suite_registry
from harness.commands.run import suite_planners
from harness.errors import UserError
from harness.execute import execute_plans
from harness.run_options import RunOptions, suite_options
from harness.suite import SuitePlan


def _default_suites() -> tuple[str, ...]:
    # In each family's process the suites run in their records' bench order: the timed ones first,
    # profile (torch.profiler) last.
    return tuple(suite.name for suite in suite_registry.bench_suites())


def _plans(suites: list[str], options: RunOptions, recall_preset: str | None) -> list[SuitePlan]:
    planners = suite_planners()
    unknown = [suite for suite in suites if suite not in planners]
    if unknown:
        raise UserError(f"--suites: unknown {', '.join(unknown)}; known: {', '.join(sorted(planners))}")
    own = {suite for suite in suites if _record(suite).own_presets}
    plans = [planners[suite](options) for suite in suites if suite not in own]
    if own:
        # A suite with presets of its own (recall) names its own cells, dtype and batch: --mode, --seq-len,
        # --batch and --dtype are about the other suites. Its preset follows their device unless named.
        from harness.commands.options import resolve_device

        kind = (plans[0].device if plans else resolve_device(options.device)).split(":")[0]
        for suite in suites:
            if suite not in own:
                continue
            named = recall_preset if suite == "recall" else None
            suite_options_ = dataclasses.replace(
                options, preset=named or _record(suite).presets[kind], modes=(), seq_lens=(), batches=(), dtypes=()
            )
            plans.insert(suites.index(suite), planners[suite](suite_options_))
    return plans


def _record(name: str) -> suite_registry.Suite:
    record = suite_registry.get(name)
    assert record is not None  # a planner exists only for a registered suite
    return record


@click.command("bench")
@suite_options
@click.option(
    "--suites",
    default=None,
    help="The suites to run in the pass, comma-separated, in order [default: every registered suite with a "
    "bench order, in that order; today throughput,memory,recall,profile].",
)
@click.option(
    "--recall-preset",
    default=None,
    help="The recall suite's preset (default: recall-quick on a GPU, recall-cpu without); --preset names the others'.",
)
@click.option(
    "--times-json",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the pass's wall time and each suite's job time (seconds) to this JSON file.",
)
@click.option(
    "--eta-from",
    "eta_from",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Results whose jobs' times (same job ids) estimate the time left per suite (repeatable; the results "
    "folder itself is always read; e.g. a committed baseline).",
)
def command(
    options: RunOptions,
    suites: str | None,
    recall_preset: str | None,
    times_json: str | None,
    eta_from: tuple[Path, ...],
) -> None:
    """Run several suites in one pass: a family's worker process runs its jobs of every suite, so its
    kernel library is imported and its kernels loaded once. --preset (default: quick on a GPU, cpu
    without) names the throughput, memory and profile presets; the filters apply to every suite."""
    chosen = [
        suite.strip()
        for suite in (",".join(_default_suites()) if suites is None else suites).split(",")
        if suite.strip()
    ]
    if not chosen:
        raise UserError("--suites names no suite")
    began = time.monotonic()
    summaries = execute_plans(_plans(chosen, options, recall_preset), options, eta_from=eta_from)
    wall_s = time.monotonic() - began
    per_suite = {summary.suite: round(summary.job_wall_s(), 1) for summary in summaries}
    text = ", ".join(f"{suite} {seconds:.0f} s" for suite, seconds in per_suite.items())
    click.echo(f"time per suite (its jobs' wall time): {text}; the pass: {wall_s:.0f} s")
    if times_json is not None:
        Path(times_json).write_text(json.dumps({"pass_s": round(wall_s, 1), "suites_s": per_suite}))
