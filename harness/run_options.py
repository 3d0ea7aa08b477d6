"""The options every suite takes (`@suite_options` on a click command gives it one `RunOptions`), and
the preset and device they choose. Machinery for suites: the CLI (harness.commands) and the suites
both import it from here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from harness.errors import UserError


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
    slots_per_gpu: int | None = None  # local executor: trainings at once on each GPU (suites that share one)
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
        if self.slots_per_gpu is not None and self.executor != "local":
            raise UserError("--slots-per-gpu applies to --executor local")
        if self.ray_address is not None and self.executor != "ray":
            raise UserError("--ray-address needs --executor ray")
        if slurm and self.executor != "submitit":
            given = ", ".join(f"--slurm-{key.replace('_', '-')}" for key in slurm)
            raise UserError(f"{given} need(s) --executor submitit")
        if self.executor == "local":
            return make_executor("local", workers=self.workers, slots_per_gpu=self.slots_per_gpu)
        if self.executor == "ray":
            return make_executor("ray", address=self.ray_address, workers=self.workers)
        if self.workers is not None:
            raise UserError("--workers does not apply to --executor submitit: use --slurm-array-parallelism")
        return make_executor("submitit", **slurm)

    def timeouts(self, preset: dict[str, Any]) -> dict[str, float]:
        """Per-phase job limits: the preset's [timeouts] (warmup_s, measure_s), --timeout for measure."""
        from harness.job import DEFAULT_TIMEOUTS_S

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
            slots_per_gpu=kwargs.pop("slots_per_gpu"),
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
        click.option(
            "--slots-per-gpu",
            type=int,
            default=None,
            callback=_positive_or_none,
            help="Training suites (recall): this many jobs at once on each GPU. Timed suites keep one per GPU.",
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


def resolve_suite_device(suite: str, options: RunOptions, default: str | None = None) -> tuple[str, dict[str, Any]]:
    """(device, preset): the preset named, else `default`, else the suite's preset for the machine (its
    `presets`: cpu without a GPU, quick with one); --device overrides the preset's device; a CUDA preset
    without a visible GPU is a one-line error."""
    import torch

    from harness import suite as suite_registry
    from harness.commands.options import resolve_device
    from harness.presets import load_preset

    spec = suite_registry.get(suite)
    if spec is None:
        raise UserError(f"unknown suite {suite!r}")
    has_cuda = torch.cuda.is_available()
    name = options.preset or default
    if name is None:
        wanted = "cpu" if options.device == "auto" else options.device
        kind = "cuda" if (wanted.startswith("cuda") or (options.device == "auto" and has_cuda)) else "cpu"
        name = spec.presets[kind]
    preset = load_preset(spec.presets_dir, suite, name)
    device = preset.get("device", "cpu") if options.device == "auto" else options.device
    device = resolve_device(device)
    if device.startswith("cuda") and not has_cuda:
        if options.device != "auto":  # the user asked for the GPU: the preset is not the problem
            raise UserError(f"--device {options.device}: no CUDA device is visible to torch; use --device cpu")
        raise UserError(
            f"preset {preset['name']!r} runs on {device}, but no CUDA device is visible to torch; "
            f"use --preset {spec.presets['cpu']} (or --device cpu)"
        )
    return device, preset
