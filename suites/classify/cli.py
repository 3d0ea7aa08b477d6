"""`seqbench run classify`: train a classifier per (mixer, seq_len, d_model, lr, seed) cell on the IMDb reviews.

    seqbench run classify --data /tmp/imdb                        # cpu: bytes, L 256, a few hundred reviews
    SEQBENCH_IMDB=/data/imdb seqbench run classify --preset lra-text --family s4
    seqbench run classify --preset imdb-s4-mamba --data DIR --dry-run

The plan reads, checks and encodes the reviews once (a bad file is a one-line error before any worker
starts) into the cache every job then loads. After the run, the rows are printed as a table.
"""

from __future__ import annotations

import json
from typing import Any

import click

from harness.errors import UserError
from harness.execute import execute
from harness.results import BOOL, FLOAT, INT, STRING
from harness.run_options import RunOptions, resolve_suite_device, suite_options
from harness.suite import Suite, SuitePlan, register
from suites import PRESETS_DIR

SUITE = "classify"


def _overrides(
    options: RunOptions,
    d_models: tuple[int, ...],
    lrs: tuple[float, ...],
    seeds: tuple[int, ...],
    epochs: int | None,
    max_steps: int | None,
    n_train: int | None,
    n_test: int | None,
    time_limit_s: float | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, values in (("d_model", d_models), ("lr", lrs), ("seed", seeds)):
        if values:
            out[key] = list(values)
    if len(options.batches) > 1:
        raise UserError("--batch: give one batch size for classify training")
    if options.batches:
        out["batch"] = options.batches[0]
    if len(options.dtypes) > 1:
        raise UserError("--dtype: give one training dtype (bfloat16 = bf16 autocast, float32)")
    if options.dtypes:
        from harness.interface import dtype_name, parse_dtype

        out["dtype"] = dtype_name(parse_dtype(options.dtypes[0]))
    if options.timeout_s is not None:
        out["timeout_s"] = options.timeout_s
    train = {k: v for k, v in (("epochs", epochs), ("max_steps", max_steps)) if v is not None}
    if time_limit_s is not None:
        train["time_limit_s"] = time_limit_s
    if train:
        out["train"] = train
    data: dict[str, Any] = {k: v for k, v in (("n_train", n_train), ("n_test", n_test)) if v is not None}
    if options.seq_lens:
        data["seq_len"] = list(options.seq_lens)
    if data:
        out["data"] = data
    return out


def _print_rows(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    done = [row for row in rows if row.get("status") == "ok" and row.get("accuracy") is not None]
    if not done:
        return
    table = Table(title="classify: test accuracy per model (best evaluation)")
    columns = ("implementation", "encoding", "L", "d", "acc", "AUC", "tp/fp/tn/fn", "steps", "s", "tok/s")
    for column in columns:
        table.add_column(column, justify="left" if column in ("implementation", "encoding") else "right")
    for row in sorted(done, key=lambda r: (str(r.get("encoding")), -float(r["accuracy"]))):
        table.add_row(
            str(row["implementation"]),
            str(row["encoding"]),
            str(row["seq_len"]),
            str(row.get("d_model", "")),
            f"{100 * row['accuracy']:.1f}%",
            f"{row['roc_auc']:.3f}",
            f"{row['tp']}/{row['fp']}/{row['tn']}/{row['fn']}",
            str(row["steps"]),
            f"{row['wall_s']:.0f}",
            f"{row['tokens_per_s']:.3g}",
        )
    Console(width=max(Console().width, 120)).print(table)


def plan(
    options: RunOptions,
    data: str | None = None,
    d_models: tuple[int, ...] = (),
    lrs: tuple[float, ...] = (),
    seeds: tuple[int, ...] = (),
    epochs: int | None = None,
    max_steps: int | None = None,
    n_train: int | None = None,
    n_test: int | None = None,
    time_limit_s: float | None = None,
    prepare_data: bool = True,
) -> SuitePlan:
    """One job per cell of the preset (default cpu), with the overrides given. With prepare_data the reviews
    are read, checked and cached here, so that bad data fails in one line before any worker starts."""
    from suites.classify.data import ENV_VAR, DataSettings, data_root, default_cache_dir, load
    from suites.classify.presets import DEFAULT_PRESET, build_jobs, check_preset

    if options.modes and set(options.modes) != {"train"}:
        raise UserError("--mode: classify jobs train (mode train); other modes belong to throughput and memory")
    for value, name in ((epochs, "--epochs"), (max_steps, "--max-steps")):
        if value is not None and value < 1:
            raise UserError(f"{name} must be a positive integer, got {value}")
    for value, name in ((n_train, "--n-train"), (n_test, "--n-test")):
        if value is not None and value < 0:
            raise UserError(f"{name} must be 0 (all) or a positive integer, got {value}")
    device, preset = resolve_suite_device(SUITE, options, default=DEFAULT_PRESET)
    check_preset(preset)
    overrides = _overrides(options, d_models, lrs, seeds, epochs, max_steps, n_train, n_test, time_limit_s)
    mixers = tuple(options.names) + tuple(options.families)
    jobs = build_jobs(preset, device=device, mixers=mixers, overrides=overrides)
    worker_env: Any = None
    if prepare_data:
        root = data_root(data)
        for settings in {json.dumps(job.params["data"], sort_keys=True) for job in jobs}:
            load(root, DataSettings(**json.loads(settings)), default_cache_dir())
        resolved = str(root.resolve())

        def worker_env(_results: Any, _run_id: str) -> dict[str, str]:
            return {ENV_VAR: resolved}  # the workers find the reviews here

    return SuitePlan(SUITE, device, jobs, worker_env=worker_env, after=lambda summary: _print_rows(summary.rows))


@click.command(SUITE)
@suite_options
@click.option(
    "--data",
    default=None,
    type=click.Path(),
    help="The IMDb reviews: a folder holding aclImdb/{train,test}/{pos,neg}/*.txt (default: $SEQBENCH_IMDB).",
)
@click.option("--d-model", "d_models", type=int, multiple=True, help="Model widths (repeatable).")
@click.option("--lr", "lrs", type=float, multiple=True, help="Learning rates (repeatable).")
@click.option("--seed", "seeds", type=int, multiple=True, help="Seeds (repeatable).")
@click.option("--epochs", type=int, default=None, help="Epochs over the training reviews.")
@click.option("--max-steps", type=int, default=None, help="Cap on optimizer steps per job.")
@click.option("--n-train", type=int, default=None, help="A balanced subsample of this many training reviews (0: all).")
@click.option("--n-test", type=int, default=None, help="A balanced subsample of this many test reviews (0: all).")
@click.option("--time-limit", "time_limit_s", type=float, default=None, help="Seconds of training per job.")
@click.option("--dry-run", is_flag=True, help="List the jobs as JSON lines; read no data, run nothing.")
def command(
    options: RunOptions,
    data: str | None,
    d_models: tuple[int, ...],
    lrs: tuple[float, ...],
    seeds: tuple[int, ...],
    epochs: int | None,
    max_steps: int | None,
    n_train: int | None,
    n_test: int | None,
    time_limit_s: float | None,
    dry_run: bool,
) -> None:
    """Sentiment classification of IMDb reviews (LRA's byte-level Text task, or words) with any mixer.

    One job per (mixer, seq_len, d_model, lr, seed). Default preset: cpu (--preset lists them
    all). The reviews come from --data or $SEQBENCH_IMDB and are never downloaded. --name and
    --family (also a hybrid's layer pattern, hybrid:mamba,attention) replace the preset's mixers; --seq-len
    its lengths; --timeout is seconds per job.
    """
    classify_plan = plan(
        options,
        data=data,
        d_models=d_models,
        lrs=lrs,
        seeds=seeds,
        epochs=epochs,
        max_steps=max_steps,
        n_train=n_train,
        n_test=n_test,
        time_limit_s=time_limit_s,
        prepare_data=not dry_run,
    )
    if dry_run:
        for job in classify_plan.jobs:
            click.echo(json.dumps({"job_id": job.job_id, "implementation": job.implementation, **job.params}))
        return
    execute(classify_plan, options)


def _reference_points() -> list[dict[str, Any]]:
    from suites.classify.references import reference_points

    return [point.to_dict() for point in reference_points()]


SUITE_RECORD = register(
    Suite(
        name=SUITE,
        title="Classification (IMDb)",
        columns={
            "task": STRING,  # imdb-bytes (LRA Text) | imdb-words
            "encoding": STRING,  # bytes | words
            "setting": STRING,
            "vocab_size": INT,
            "n_layers": INT,
            "layer_pattern": STRING,  # JSON list: every layer's implementation (a hybrid's differ; suites/mixers.py)
            "lr": FLOAT,
            "weight_decay": FLOAT,
            "seed": INT,
            "data_seed": INT,
            "n_train": INT,
            "n_test": INT,
            "data_key": STRING,  # hash of the review files (names, sizes, mtimes) and the encoding settings
            "pad_frac": FLOAT,  # share of padding in the training blocks
            "cut_frac": FLOAT,  # share of training reviews longer than seq_len (cut)
            "accuracy": FLOAT,  # test accuracy of the reported evaluation (select)
            "roc_auc": FLOAT,  # rank (Mann-Whitney) AUC of the same evaluation's scores
            "tp": INT,  # the confusion matrix, positive = a positive review
            "fp": INT,
            "tn": INT,
            "fn": INT,
            "loss": FLOAT,  # test loss of that evaluation
            "train_loss": FLOAT,
            "steps": INT,
            "best_step": INT,  # the step of the reported evaluation
            "select": STRING,  # best | last
            "stop_reason": STRING,
            "wall_s": FLOAT,  # training wall time (evaluations included), from the first step
            "first_step_s": FLOAT,
            "tokens_per_s": FLOAT,  # training positions per second after the first step, padding included
            "steps_per_s": FLOAT,  # optimizer steps per second after the first (compiling) step
            "params": INT,
            "mlp": STRING,
            "position": STRING,
            "decay": STRING,
            "step_mode": STRING,
            "step_mode_note": STRING,
            "compiled": BOOL,  # the loss ran through torch.compile (and it compiled)
            "step_flops": FLOAT,
            "matmul_tflops": FLOAT,
            "step_floor_ms": FLOAT,
            "roc": STRING,  # JSON [[fpr, tpr], ...], at most 201 points of the reported evaluation
            "curve": STRING,  # JSON list, one point per evaluation: step, wall_s, lr, losses, accuracy, AUC
            "job_s": FLOAT,
        },
        shown_columns=(
            "encoding",
            "n_layers",
            "lr",
            "seed",
            "accuracy",
            "roc_auc",
            "tp",
            "fp",
            "tn",
            "fn",
            "wall_s",
            "tokens_per_s",
            "params",
            "steps",
            "steps_per_s",
            "best_step",
            "cut_frac",
            "step_mode",
        ),
        report_order=45,
        plan=plan,
        command=command,
        targets=("suites.classify.train:run_job",),
        page="harness.report.pages.classify",
        # Not in `seqbench bench`: it needs the IMDb reviews, which a fresh machine does not have
        # (`seqbench bench --suites classify` runs it where $SEQBENCH_IMDB is set).
        bench_order=None,
        presets={"cpu": "cpu", "cuda": "lra-text"},
        presets_dir=PRESETS_DIR / SUITE,
        reference_points=_reference_points,
        shares_gpu=True,
    )
)
