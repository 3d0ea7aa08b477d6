"""`seqbench run recall`: train every cell of a recall preset, one runner job per cell.

    seqbench run recall                                   # recall-cpu: tiny MQAR and selective copying
    seqbench run recall --preset zoology-fig2 --family attention --family mamba
    seqbench run recall --preset mad --task mad-compression --lr 5e-4
    seqbench run recall --preset recall-cpu --task mqar --name attention/reference --dry-run

--name takes implementation names; --family a family (or family:word, e.g. xlstm:mlstm) and picks its
fast implementation on a GPU, its reference elsewhere. Either replaces the preset's mixers.
--seq-len keeps the cells of those training lengths. After the run, the best accuracy per cell (over
learning rates and seeds, as Zoology and MAD report) is printed, with MAD scores for MAD tasks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from harness.errors import UserError
from harness.execute import execute
from harness.results import BOOL, FLOAT, INT, STRING
from harness.run_options import RunOptions, resolve_suite_device, suite_options
from harness.suite import Suite, SuitePlan, register
from suites import PRESETS_DIR

SUITE = "recall"


def _overrides(
    d_models: tuple[int, ...],
    lrs: tuple[float, ...],
    seeds: tuple[int, ...],
    weight_decays: tuple[float, ...],
    batches: tuple[int, ...],
    epochs: int | None,
    max_steps: int | None,
    dtypes: tuple[str, ...],
    step_mode: str | None = None,
    compile_loss: bool | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, values in (("d_model", d_models), ("lr", lrs), ("seed", seeds), ("weight_decay", weight_decays)):
        if values:
            out[key] = list(values)
    if len(batches) > 1:
        raise UserError("--batch: give one batch size for recall training")
    if batches:
        out["batch"] = batches[0]
    if len(dtypes) > 1:
        raise UserError("--dtype: give one training dtype (bfloat16 = bf16 autocast, float32)")
    if dtypes:
        from harness.interface import dtype_name, parse_dtype

        out["dtype"] = dtype_name(parse_dtype(dtypes[0]))
    train: dict[str, Any] = {}
    if epochs is not None:
        train["epochs"] = epochs
    if max_steps is not None:
        train["max_steps"] = max_steps
    if step_mode is not None:
        train["step_mode"] = step_mode
    if compile_loss is not None:
        train["compile"] = compile_loss
    if train:
        out["train"] = train
    return out


def _parse_task_params(items: tuple[str, ...]) -> dict[str, Any]:
    """NAME=VALUE pairs; VALUE is read as JSON (numbers, true/false, lists), else taken as a string."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise UserError(f"--task-param takes NAME=VALUE, got {item!r}")
        try:
            out[name] = json.loads(text)
        except json.JSONDecodeError:
            out[name] = text
    return out


def _print_best(rows: list[dict[str, Any]]) -> None:
    import pandas as pd
    from rich.console import Console
    from rich.table import Table

    from harness.report.analysis import best_per_cell, mad_scores

    frame = pd.DataFrame(rows)
    if frame.empty or "accuracy" not in frame.columns:
        return
    best = best_per_cell(frame)
    if best.empty:
        return
    show_setting = "setting" in best.columns and (best["setting"].fillna("baseline") != "baseline").any()
    table = Table(title="recall: best accuracy per cell (over learning rates and seeds)")
    columns = [
        "task",
        *(["setting"] if show_setting else []),
        "implementation",
        "d",
        "L",
        "eval L",
        "acc",
        "lr",
        "steps",
        "s",
    ]
    for column in columns:
        table.add_column(column, justify="left" if column in ("task", "setting", "implementation") else "right")
    for _, row in best.iterrows():
        table.add_row(
            str(row["task"]),
            *([str(row["setting"])] if show_setting else []),
            str(row["implementation"]),
            str(row["d_model"]),
            str(row["seq_len"]),
            str(row["eval_seq_len"]),
            f"{100 * row['accuracy']:.1f}%",
            f"{row['lr']:.0e}",
            str(row["steps"]),
            f"{row['wall_s']:.0f}",
        )
    console = Console(width=max(Console().width, 120))
    console.print(table)
    scores = mad_scores(frame)
    if not scores.empty:
        for _, row in scores.iterrows():
            console.print(
                f"MAD score {row['implementation']} {row['task']}: "
                f"{100 * row['mad_score']:.1f} ({row['settings']} settings)"
            )


def plan(
    options: RunOptions,
    tasks: tuple[str, ...] = (),
    d_models: tuple[int, ...] = (),
    lrs: tuple[float, ...] = (),
    seeds: tuple[int, ...] = (),
    weight_decays: tuple[float, ...] = (),
    epochs: int | None = None,
    max_steps: int | None = None,
    task_params: tuple[str, ...] = (),
    settings: tuple[str, ...] = (),
    step_mode: str | None = None,
    compile_loss: bool | None = None,
    save_models: bool = False,
) -> SuitePlan:
    """One job per cell of the preset the options name (default recall-cpu), with the overrides given."""
    from suites.recall.presets import DEFAULT_PRESET, build_jobs, check_preset

    if options.modes and set(options.modes) != {"train"}:
        raise UserError("--mode: recall jobs train (mode train); other modes belong to throughput and memory")
    for value, name in ((epochs, "--epochs"), (max_steps, "--max-steps")):
        if value is not None and value < 1:
            raise UserError(f"{name} must be a positive integer, got {value}")
    for d_model in d_models:
        if d_model < 1:
            raise UserError(f"--d-model must be a positive integer, got {d_model}")
    for lr in lrs:
        if not lr > 0:
            raise UserError(f"--lr must be positive, got {lr:g}")
    # `seqbench run recall` defaults to recall-cpu on any machine; bench picks by device (the record's presets).
    device, preset = resolve_suite_device(SUITE, options, default=DEFAULT_PRESET)
    check_preset(preset)
    overrides = _overrides(
        d_models, lrs, seeds, weight_decays, options.batches, epochs, max_steps, options.dtypes, step_mode, compile_loss
    )
    if options.timeout_s is not None:
        overrides["timeout_s"] = options.timeout_s
    mixers = tuple(options.names) + tuple(options.families)
    jobs = build_jobs(
        preset,
        device=device,
        tasks=tasks,
        mixers=mixers,
        overrides=overrides,
        task_overrides=_parse_task_params(task_params),
    )
    if options.seq_lens:
        jobs = [job for job in jobs if job.params["seq_len"] in options.seq_lens]
    if settings:
        known = sorted({job.params["setting"] for job in jobs})
        unknown = [s for s in settings if s not in known]
        if unknown:
            raise UserError(f"--setting {unknown[0]!r}: the selected cells are named {', '.join(known) or 'nothing'}")
        jobs = [job for job in jobs if job.params["setting"] in settings]
    return SuitePlan(
        SUITE,
        device,
        jobs,
        worker_env=_checkpoint_env if save_models else None,
        after=lambda summary: _print_best(summary.rows),
    )


def _checkpoint_env(results_dir: Path, run_id: str) -> dict[str, str]:
    """Where the run's trainings save their models (suites/recall/checkpoint.py)."""
    from suites.recall.checkpoint import CHECKPOINT_DIR_ENV, checkpoint_root

    return {CHECKPOINT_DIR_ENV: str(checkpoint_root(results_dir, run_id))}


@click.command(SUITE)
@suite_options
@click.option("--task", "tasks", multiple=True, help="Only these tasks of the preset (repeatable).")
@click.option(
    "--d-model", "d_models", type=int, multiple=True, help="Model widths (repeatable; replaces the preset's)."
)
@click.option("--lr", "lrs", type=float, multiple=True, help="Learning rates (repeatable; replaces the preset's).")
@click.option("--seed", "seeds", type=int, multiple=True, help="Seeds (repeatable; replaces the preset's).")
@click.option("--weight-decay", "weight_decays", type=float, multiple=True, help="Weight decays (repeatable).")
@click.option("--epochs", type=int, default=None, help="Epochs over the training set (replaces the preset's).")
@click.option("--max-steps", type=int, default=None, help="Cap on optimizer steps per job.")
@click.option(
    "--task-param",
    "task_params",
    multiple=True,
    metavar="NAME=VALUE",
    help="Set a task parameter in every selected cell (repeatable), e.g. vocab_size=256 or n_data=[3,5].",
)
@click.option(
    "--setting", "settings", multiple=True, help="Only the preset cells of this name (repeatable), e.g. paper-recipe."
)
@click.option(
    "--step-mode",
    type=click.Choice(["auto", "eager", "graph"]),
    default=None,
    help="How each training step runs: replayed from a CUDA graph, eagerly, or auto (graph on a GPU); "
    "replaces the preset's (a cell that names its own keeps it).",
)
@click.option(
    "--compile/--no-compile",
    "compile_loss",
    default=None,
    help="torch.compile the loss before the step is captured or run (replaces the preset's).",
)
@click.option(
    "--save-models",
    is_flag=True,
    help="Save each training's tested weights under RESULTS-logs/checkpoints/<run>/<job>.pt, to test them "
    "again later (scripts/retest_recall.py: other lengths, dtypes, the family's reference).",
)
@click.option("--dry-run", is_flag=True, help="List the jobs as JSON lines; run nothing.")
def command(
    options: RunOptions,
    tasks: tuple[str, ...],
    d_models: tuple[int, ...],
    lrs: tuple[float, ...],
    seeds: tuple[int, ...],
    weight_decays: tuple[float, ...],
    epochs: int | None,
    max_steps: int | None,
    task_params: tuple[str, ...],
    settings: tuple[str, ...],
    step_mode: str | None,
    compile_loss: bool | None,
    save_models: bool,
    dry_run: bool,
) -> None:
    """Synthetic recall: MQAR, selective copying, induction heads and the MAD tasks, trained on any mixer.

    One job per (task, mixer, d_model, seq_len, lr, seed) cell. Default preset: recall-cpu (--preset lists
    them all). --name (implementation) and
    --family (family, or family:word such as xlstm:mlstm; its fast GPU implementation where one runs, else its
    reference; or a hybrid's layer pattern, hybrid:mamba,attention, repeated to fill n_layers) replace the
    preset's mixers; --seq-len keeps the cells of those lengths; --timeout is seconds per training job.
    """
    recall_plan = plan(
        options,
        tasks=tasks,
        d_models=d_models,
        lrs=lrs,
        seeds=seeds,
        weight_decays=weight_decays,
        epochs=epochs,
        max_steps=max_steps,
        task_params=task_params,
        settings=settings,
        step_mode=step_mode,
        compile_loss=compile_loss,
        save_models=save_models,
    )
    if dry_run:
        for job in recall_plan.jobs:
            click.echo(json.dumps({"job_id": job.job_id, "implementation": job.implementation, **job.params}))
        return
    execute(recall_plan, options)


def _reference_points() -> list[dict[str, Any]]:
    from suites.recall.references import reference_points

    return [point.to_dict() for point in reference_points()]


SUITE_RECORD = register(
    Suite(
        name=SUITE,
        title="Recall",
        columns={
            "task": STRING,
            "vocab_size": INT,
            "n_layers": INT,
            "layer_pattern": STRING,  # JSON list: every layer's implementation (a hybrid's differ; suites/mixers.py)
            "lr": FLOAT,
            "seed": INT,
            "accuracy": FLOAT,
            "loss": FLOAT,
            "steps": INT,
            "wall_s": FLOAT,
            "params": INT,
            "state_bytes_analytic": FLOAT,
            "eval_seq_len": INT,
            "best_step": INT,
            "data_seed": INT,
            "eval_params": STRING,
            "first_step_s": FLOAT,
            "head": STRING,
            "job_s": FLOAT,
            "mlp": STRING,
            "n_test": INT,
            "n_train": INT,
            "position": STRING,
            "stop_reason": STRING,
            "target_accuracy": FLOAT,
            "target_reached": BOOL,
            "task_params": STRING,
            "train_loss": FLOAT,
            "weight_decay": FLOAT,
            "setting": STRING,  # the preset cell's name (a recipe or variant), "baseline" when it has none
            "steps_per_s": FLOAT,  # optimizer steps per second of training wall time after the first (compiling) step
            "decay": STRING,  # which parameters AdamW decayed: all | matrices
            "select": STRING,  # whose weights the row tested: accuracy (best, ties to lower loss) | loss | last
            "next_token_loss": BOOL,  # trained on the next token at positions without a target too
            "curriculum": STRING,  # JSON list of the length-curriculum stages trained first ([] without)
            # JSON list, one point per evaluation: step, wall_s, train_seq_len, lr, losses, accuracy, and a gated
            # curriculum stage's stage_accuracy (its own test set)
            "curve": STRING,
            "step_mode": STRING,  # how the steps ran: graph (replayed from a CUDA graph) | eager
            "step_mode_note": STRING,  # why eager where a graph was asked, or uncompiled where compile was
            "compiled": BOOL,  # the loss ran through torch.compile (TrainSettings.compile, and it compiled)
            "step_flops": FLOAT,  # analytic FLOPs of one training step (mixers fwd+bwd, dense layers, head)
            "matmul_tflops": FLOAT,  # the matmul rate measured in the worker, in the step's compute dtype
            "step_floor_ms": FLOAT,  # step_flops at matmul_tflops: the step's arithmetic floor
        },
        shown_columns=(
            "task",
            "vocab_size",
            "n_layers",
            "lr",
            "seed",
            "setting",
            "eval_seq_len",
            "accuracy",
            "loss",
            "steps",
            "wall_s",
            "params",
            "state_bytes_analytic",
            "steps_per_s",
            "step_floor_ms",
            "step_mode",
            "decay",
        ),
        report_order=40,
        plan=plan,
        command=command,
        targets=("suites.recall.train:run_job",),
        page="harness.report.pages.recall",
        bench_order=30,
        presets={"cpu": "recall-cpu", "cuda": "recall-quick"},
        presets_dir=PRESETS_DIR / SUITE,
        reference_points=_reference_points,
        shares_gpu=True,
    )
)
