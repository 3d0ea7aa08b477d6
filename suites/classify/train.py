"""Training one classifier: (mixer, encoding, seq_len, d_model, lr, seed) on the IMDb reviews -> one row.

`run_job(**params)` is what the runner calls in its worker (`suites.classify.train:run_job`). The training set
lives on the device as fixed-shape (batch, seq_len) token blocks; each step goes through
`suites.training.TrainStep` (replayed from a CUDA graph on a GPU), with AdamW and a cosine schedule after a
linear warm-up (suites.training.lr_schedule), under bf16 autocast on a GPU. The training loss is summed on the
device and read only at evaluations. Every `eval_every` steps the whole test set is scored: accuracy, ROC AUC,
the confusion matrix and the ROC curve. The row reports the evaluation with the best test accuracy
(`select = "best"`, as S4's LRA runs do: they use the test set as the validation set, so the published
numbers are best-of-run too) or the last one (`select = "last"`). A time limit stops training, counted from
the end of the first step (which compiles kernels; its time is first_step_s).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.config import MixerConfig, Settings
from harness.errors import ConfigError
from harness.interface import parse_dtype
from suites.backbone import ModelSettings, count_parameters, resolve_position
from suites.classify import metrics
from suites.classify.data import PAD, DataSettings, EncodedSplit, data_root, default_cache_dir, fingerprint, load
from suites.classify.model import ClassifyModel
from suites.mixers import model_layers
from suites.training import (
    DECAY_POLICIES,
    STEP_MODES,
    autocast,
    default_dtype,
    epoch_order,
    job_columns,
    lr_schedule,
    make_training_loop,
    matmul_tflops,
    resolve_device,
    seed_everything,
)

SELECT = ("best", "last")
SCHEDULE_UNITS_HERE = ("step", "time")  # no "epoch": an epoch of reviews is thousands of steps


@dataclass(frozen=True)
class TrainSettings(Settings):
    KIND = "training"

    epochs: int = 1  # passes over the training reviews
    max_steps: int = 0  # cap on optimizer steps; 0: no cap
    warmup_frac: float = 0.1  # linear warm-up over this fraction of the steps
    min_lr_frac: float = 0.0  # the cosine ends at lr * min_lr_frac
    # "step": the cosine runs over the steps; "time": over the steps or the time limit, whichever ends
    # first, so a training cut by its time limit still anneals (suites.training.SCHEDULE_UNITS).
    schedule_unit: str = "step"
    grad_clip: float = 1.0  # max global gradient norm; 0: no clipping
    eval_every: int = 0  # steps between evaluations of the whole test set; 0: once per epoch
    eval_batch: int = 0  # reviews per evaluation batch; 0: the training batch
    time_limit_s: float = 0.0  # stop after this much training wall time (after the first step); 0: none
    decay: str = "matrices"  # which parameters AdamW decays (suites.training.parameter_groups)
    step_mode: str = "auto"  # auto | eager | graph (suites.training.TrainStep)
    compile: bool = False  # torch.compile the loss before the step is captured or run (TrainStep)
    select: str = "best"  # which evaluation the row reports: best test accuracy, or the last

    def __post_init__(self) -> None:
        for name in ("epochs", "max_steps", "eval_every", "eval_batch"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ConfigError(name, f"must be a non-negative integer, got {value!r}")
        if self.epochs < 1:
            raise ConfigError("epochs", f"must be at least 1, got {self.epochs}")
        if not 0.0 <= self.warmup_frac < 1.0:
            raise ConfigError("warmup_frac", f"must be in [0, 1), got {self.warmup_frac!r}")
        if not 0.0 <= self.min_lr_frac <= 1.0:
            raise ConfigError("min_lr_frac", f"must be in [0, 1], got {self.min_lr_frac!r}")
        if self.time_limit_s < 0 or self.grad_clip < 0:
            raise ConfigError("time_limit_s", "time_limit_s and grad_clip must be non-negative")
        if not isinstance(self.compile, bool):
            raise ConfigError("compile", f"must be true or false, got {self.compile!r}")
        if self.schedule_unit == "time" and self.time_limit_s <= 0:
            raise ConfigError("schedule_unit", "a schedule over time needs a time limit (time_limit_s > 0)")
        for name, allowed in (
            ("decay", DECAY_POLICIES),
            ("step_mode", STEP_MODES),
            ("select", SELECT),
            ("schedule_unit", SCHEDULE_UNITS_HERE),
        ):
            if getattr(self, name) not in allowed:
                raise ConfigError(name, f"must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")


@torch.no_grad()
def evaluate(
    net: nn.Module, split: EncodedSplit, batch: int, device: torch.device, autocast_dtype: torch.dtype | None
) -> dict[str, Any]:
    """Every review of the split scored: accuracy, mean loss, ROC AUC, confusion counts, ROC points. The score
    is logit(positive) - logit(negative), so predicting positive at score > 0 is the argmax."""
    was_training = net.training
    net.eval()
    scores, losses = [], []
    try:
        for start in range(0, len(split), batch):
            tokens = split.tokens[start : start + batch].to(device, non_blocking=True)
            labels = split.labels[start : start + batch].to(device, non_blocking=True)
            with autocast(device, autocast_dtype):
                logits = net(tokens).float()
            losses.append(nn.functional.cross_entropy(logits, labels, reduction="sum"))
            scores.append(logits[:, 1] - logits[:, 0])
    finally:
        net.train(was_training)
    score = torch.cat(scores).cpu().numpy().astype(np.float64)
    labels = split.labels.numpy()
    counts = metrics.confusion(labels, score > 0)
    return {
        "accuracy": counts.accuracy,
        "loss": float(torch.stack(losses).sum()) / len(split),
        "roc_auc": metrics.roc_auc(labels, score),
        "confusion": counts,
        "roc": metrics.thin(metrics.roc_curve(labels, score)),
    }


def run_job(
    *,
    implementation: str,
    config: dict[str, Any],
    n_layers: int,
    model: dict[str, Any],
    data: dict[str, Any],
    lr: float,
    weight_decay: float,
    seed: int,
    batch: int,
    train: dict[str, Any],
    device: str = "auto",
    dtype: str | None = None,
    setting: str = "",
    progress: bool = True,  # a line per evaluation on stdout (the worker's log): how a long training goes
    data_dir: str | None = None,  # the reviews' folder; None: $SEQBENCH_IMDB, which the plan sets for its workers
    layer_pattern: list[str] | None = None,  # a hybrid: every layer's implementation (suites/mixers.py)
    layer_configs: dict[str, dict[str, Any]] | None = None,  # a hybrid: each of those implementations' config
    **columns: Any,  # the job's column mirrors (seq_len, encoding, mode): not used
) -> list[dict[str, Any]]:
    began = time.perf_counter()
    settings = TrainSettings.from_dict(train)
    data_settings = DataSettings(**data)
    mixer_config = MixerConfig.from_dict(config)
    layers = model_layers(implementation, config, n_layers, layer_pattern, layer_configs)
    # A hybrid with any recurrent layer gets no positions on 'auto' (as Jamba): suites.backbone.resolve_position.
    model_settings = resolve_position(
        ModelSettings.from_dict({**model, "n_layers": n_layers}), layers.families, layers.rope
    )
    run_device = resolve_device(device)
    dtype = dtype or default_dtype(device)
    compute_dtype = parse_dtype(dtype)
    autocast_dtype = compute_dtype if compute_dtype in (torch.bfloat16, torch.float16) else None
    if not lr > 0:
        raise ConfigError("lr", f"must be positive, got {lr!r}")

    root = data_root(data_dir)
    reviews = load(root, data_settings, default_cache_dir())
    n_train, n_test, seq_len = len(reviews.train), len(reviews.test), data_settings.seq_len
    if not 1 <= batch <= n_train:
        raise ConfigError("batch", f"must be between 1 and the {n_train} training reviews, got {batch!r}")
    seed_everything(seed)
    net = ClassifyModel(reviews.vocab_size, mixer_config.d_model, layers.makers(), model_settings, seq_len).to(
        run_device
    )
    train_tokens = reviews.train.tokens.to(run_device)  # resident: one index per step, no host copies
    train_labels = reviews.train.labels.to(run_device)

    # Whole batches only: a CUDA graph replays one shape, so the last partial batch of an epoch is left out
    # (a different random part of the set each epoch).
    steps_per_epoch = n_train // batch
    total_steps = settings.epochs * steps_per_epoch
    if settings.max_steps:
        total_steps = min(total_steps, settings.max_steps)

    def loss_of(tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(net(tokens).float(), labels)

    loop = make_training_loop(
        loss_of,
        net,
        settings,
        lr=lr,
        weight_decay=weight_decay,
        autocast_dtype=autocast_dtype,
        device=run_device,
        schedule=lr_schedule(total_steps, settings.warmup_frac, settings.min_lr_frac),
        total_steps=total_steps,
        eval_every=settings.eval_every or steps_per_epoch,
    )
    train_step = loop.train_step
    eval_batch = settings.eval_batch or batch
    order_generator = torch.Generator().manual_seed(seed)

    chosen: dict[str, Any] | None = None
    chosen_step = 0
    curve: list[dict[str, float]] = []  # one point per evaluation: the learning curve the report draws
    train_loss = float("nan")
    stop_reason = "steps done"
    permutation = torch.empty(0, dtype=torch.long)
    net.train()
    while loop.step < total_steps:
        position = (loop.step % steps_per_epoch) * batch
        if position == 0:
            permutation = epoch_order(n_train, order_generator, True, run_device)
        index = permutation[position : position + batch]
        loop.run(train_tokens[index], train_labels[index])
        if not loop.evaluation_due:
            continue
        step = loop.step
        train_loss = loop.take_train_loss()
        result = evaluate(net, reviews.test, eval_batch, run_device, autocast_dtype)
        curve.append(
            {
                "step": step,
                "wall_s": round(loop.elapsed_s(), 3),
                "lr": loop.lr_now,
                "train_loss": train_loss,
                "test_loss": result["loss"],
                "test_accuracy": result["accuracy"],
                "test_roc_auc": result["roc_auc"],
            }
        )
        if progress:
            print(
                f"step {step}/{total_steps} {loop.elapsed_s():.0f} s train loss {train_loss:.4f} "
                f"test acc {result['accuracy']:.4f}",
                flush=True,
            )
        if settings.select == "last" or chosen is None or result["accuracy"] > chosen["accuracy"]:
            chosen, chosen_step = result, step
        if loop.out_of_time:
            stop_reason = f"time limit {settings.time_limit_s:g} s"
            break
    train_wall_s = loop.finish()
    step, first_step_s = loop.step, loop.first_step_s
    assert chosen is not None  # total_steps >= 1: the last step always evaluates

    # every layer's own cost model (a hybrid's differ), summed
    step_flops = layers.flops(batch, seq_len, "fwd_bwd") + 3 * net.dense_flops(batch, seq_len)
    floor_tflops = matmul_tflops(str(run_device), str(autocast_dtype or compute_dtype).removeprefix("torch."))
    counts: metrics.Confusion = chosen["confusion"]
    tokens = reviews.train.tokens
    return [
        {
            "task": f"imdb-{data_settings.encoding}",
            "encoding": data_settings.encoding,
            "setting": setting,
            "seq_len": seq_len,
            "vocab_size": reviews.vocab_size,
            **job_columns(
                layer_names=layers.names,
                device=run_device,
                dtype=dtype,
                batch=batch,
                lr=lr,
                weight_decay=weight_decay,
                seed=seed,
            ),
            "data_seed": data_settings.data_seed,
            "n_train": n_train,
            "n_test": n_test,
            "data_key": fingerprint(root, data_settings),  # which files and settings (the cache's key)
            # the share of padding in the training blocks, and of reviews cut at seq_len
            "pad_frac": float((tokens == PAD).float().mean()),
            "cut_frac": float((reviews.train.lengths > seq_len).float().mean()),
            "accuracy": chosen["accuracy"],
            "roc_auc": chosen["roc_auc"],
            "tp": counts.tp,
            "fp": counts.fp,
            "tn": counts.tn,
            "fn": counts.fn,
            "loss": chosen["loss"],
            "train_loss": train_loss,
            "steps": step,
            "best_step": chosen_step,
            "select": settings.select,
            "stop_reason": stop_reason,
            "wall_s": train_wall_s,
            "first_step_s": first_step_s,
            # positions the mixers computed per second of training, padding included
            # after the first, compiling step (suites.training.TrainingLoop.steps_per_s)
            "tokens_per_s": loop.steps_per_s() * batch * seq_len,
            "steps_per_s": loop.steps_per_s(),
            "params": count_parameters(net),
            "mlp": model_settings.mlp,
            "position": model_settings.position,
            "decay": settings.decay,
            "step_mode": train_step.mode,
            "step_mode_note": train_step.note,
            "compiled": train_step.compiled,
            "step_flops": float(step_flops),
            "matmul_tflops": floor_tflops,
            "step_floor_ms": step_flops / (floor_tflops * 1e12) * 1e3,
            "roc": json.dumps([[round(x, 5), round(y, 5)] for x, y in chosen["roc"]]),
            "curve": json.dumps(curve),
            "job_s": time.perf_counter() - began,
            "status": "ok",
            "reason": "",
        }
    ]
