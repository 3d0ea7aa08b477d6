"""Training one recall cell: (task, mixer, d_model, seq_len, lr, seed) -> result rows.

`run_job(**params)` is what the runner calls in its worker (`suites.recall.train:run_job`). It trains
with AdamW and a cosine schedule after a linear warm-up, under bf16 autocast on a GPU (fp32 weights),
one step at a time through `suites.training.TrainStep` (replayed from a CUDA graph on a GPU),
evaluates on held-out examples every `eval_every` steps, stops early once the test accuracy reaches
`target_accuracy` (Zoology stops at 0.99), and reports the best test accuracy seen (Zoology and MAD
pick the best checkpoint). Then it tests the best weights at the longer lengths the job asks for.

Seeds: `seed` seeds Python, NumPy and torch (initialisation, batch order); `data_seed` (default: seed)
seeds the examples, so one data set can serve several initialisations.
"""

from __future__ import annotations

import json
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.config import MixerConfig, Settings
from harness.errors import ConfigError
from harness.interface import parse_dtype
from suites.mixers import ModelLayers, model_layers
from suites.recall.data import IGNORE, Examples, default_cache_dir
from suites.recall.model import ModelSettings, RecallModel, count_parameters, resolve_position
from suites.recall.tasks import Task, get_task
from suites.training import (
    DECAY_POLICIES,
    SCHEDULE_UNITS,
    STEP_MODES,
    autocast,
    default_dtype,
    epoch_order,
    job_columns,
    make_training_loop,
    matmul_tflops,
    resolve_device,
    seed_everything,
    target_positions,
)
from suites.training import cosine_with_warmup as cosine_with_warmup  # re-exported: tests import it from here
from suites.training import lr_schedule as shared_lr_schedule

SUITE = "recall"
TARGET = f"{__name__}:run_job"  # the runner's name for the worker's entry point below
SPLIT_SEED_TAG = {"train": 1, "test": 2, "extrapolate": 3}
PREFETCH_BATCHES = 8  # fresh batches generated ahead of the step that needs them
STAGE_KEYS = ("steps", "until_accuracy")  # a curriculum stage's own keys; the others are task parameters
SELECTS = ("accuracy", "loss", "last")  # TrainSettings.select: which evaluation's weights a row reports


@dataclass(frozen=True)
class TrainSettings(Settings):
    KIND = "training"

    n_train: int | None = None  # None: the task's default; 0: a fresh batch every step
    n_test: int | None = None  # None: the task's default
    epochs: int = 64  # passes over n_train examples
    max_steps: int = 0  # cap on optimizer steps (required when n_train = 0); 0: no cap
    warmup_frac: float = 0.05  # linear warm-up over this fraction of the steps
    min_lr_frac: float = 0.0  # the cosine ends at lr * min_lr_frac
    grad_clip: float = 1.0  # max global gradient norm; 0: no clipping
    target_accuracy: float = 0.99  # stop once the test accuracy reaches this (> 1: never)
    eval_every: int = 0  # steps between evaluations; 0: once per epoch (a tenth of the steps when n_train = 0)
    data_seed: int | None = None  # None: the job's seed
    # stop training after this much wall time, counted from the end of the first step (which compiles and
    # autotunes kernels; its time is reported as first_step_s); 0: no limit
    time_limit_s: float = 0.0
    eval_batch: int = 0  # 0: the training batch (longer tests: as many examples as it holds tokens)
    extrapolate_tokens: int = 2**24  # longer tests use min(n_test, this // length) examples (at least 16)
    # Which parameters AdamW decays. "all": every parameter, as Zoology's and MAD's optimisers do.
    # "matrices": weight matrices and embeddings only, as nanoGPT and mamba_ssm's training do; biases,
    # norms and what a mixer marks `_no_weight_decay` (Mamba's A_log and D, S4's dt and eigenvalues)
    # are left alone. Decay pulls a dt bias towards 0, i.e. dt towards softplus(0) = 0.69: at wd 0.1 and
    # lr 2e-3 over 6000 steps it shrinks Mamba's longest memory from ~1000 tokens to ~40.
    decay: str = "all"
    # A length curriculum (fresh batches only): stages {"steps": n, <task parameter overrides>} trained
    # first, in order; the job's own task parameters train the remaining steps. Tests (and the step's
    # learning rate) always follow the job's own parameters and the whole step count. A stage with
    # "until_accuracy": a ends early, at the first evaluation where the model scores a on a test set of
    # that stage's own parameters (n_test examples; the curve's stage_accuracy): n is then its most steps.
    curriculum: tuple[dict[str, Any], ...] = ()
    # "step": the schedule moves every optimizer step; "epoch": once per epoch (Zoology steps its cosine
    # after each epoch, T_max = epochs, so the lr is constant within an epoch; fixed training sets only);
    # "time": over the steps or the time limit, whichever ends first (suites.training.SCHEDULE_UNITS).
    schedule_unit: str = "step"
    shuffle: bool = True  # a new batch order every epoch; False: the set's own order (Zoology's loader)
    # Which evaluation's weights the row reports (and tests at longer lengths): "accuracy", the best test
    # accuracy (Zoology), ties going to the lower test loss; "loss", the lowest test loss, i.e. perplexity
    # (MAD's ModelCheckpoint); "last", the last evaluation's (a paper that reports after a fixed budget).
    # Ties matter: at 100% on the training length the first perfect evaluation would otherwise be kept,
    # and a longer training would test the same early weights at every longer length.
    select: str = "accuracy"
    average: str = "micro"  # token accuracy over positions; "macro": over classes (MAD's torchmetrics)
    # How the step runs (suites.training.TrainStep): "graph", captured in a CUDA graph and replayed (GPU
    # only); "eager"; "auto", graph on a GPU and eager on the CPU. The rows say which ran.
    step_mode: str = "auto"
    # torch.compile the loss (forward and backward, inductor) before the step is captured or run: fewer,
    # fused kernels (suites.training.TrainStep). The rows say whether it compiled.
    compile: bool = False
    # Train on the next token at every position without a target too (the targets where there are). The
    # H3/safari induction-head loader, whose setup the Mamba paper's Table 2 follows, trains so (a language
    # model's loss over the whole sequence) and tests the answer alone; tests here always score the
    # targets alone.
    next_token_loss: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "curriculum", tuple(dict(stage) for stage in self.curriculum))
        if self.select not in SELECTS:
            raise ConfigError("select", f"must be one of {', '.join(SELECTS)}, got {self.select!r}")
        if self.average not in ("micro", "macro"):
            raise ConfigError("average", f"must be micro or macro, got {self.average!r}")
        if self.schedule_unit not in SCHEDULE_UNITS:
            units = ", ".join(SCHEDULE_UNITS)
            raise ConfigError("schedule_unit", f"must be one of {units}, got {self.schedule_unit!r}")
        if self.schedule_unit == "time" and self.time_limit_s <= 0:
            raise ConfigError("schedule_unit", "a schedule over time needs a time limit (time_limit_s > 0)")
        for name in ("compile", "next_token_loss"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(name, f"must be true or false, got {getattr(self, name)!r}")
        if self.step_mode not in STEP_MODES:
            raise ConfigError("step_mode", f"must be one of {', '.join(STEP_MODES)}, got {self.step_mode!r}")
        if self.decay not in DECAY_POLICIES:
            raise ConfigError("decay", f"must be one of {', '.join(DECAY_POLICIES)}, got {self.decay!r}")
        for stage in self.curriculum:
            steps = stage.get("steps")
            if not isinstance(steps, int) or steps < 1:
                raise ConfigError("curriculum", f"each stage needs steps = a positive integer, got {stage!r}")
            until = stage.get("until_accuracy", 1.0)
            if isinstance(until, bool) or not isinstance(until, int | float) or not 0.0 < until <= 1.0:
                raise ConfigError("curriculum", f"until_accuracy must be in (0, 1], got {stage!r}")
        for name in ("epochs", "max_steps", "eval_every", "eval_batch", "extrapolate_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ConfigError(name, f"must be a non-negative integer, got {value!r}")
        for name in ("n_train", "n_test"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ConfigError(name, f"must be a non-negative integer, got {value!r}")
        if self.n_test == 0:
            raise ConfigError("n_test", "must be positive: accuracy is measured on held-out examples")
        if not 0.0 <= self.warmup_frac < 1.0:
            raise ConfigError("warmup_frac", f"must be in [0, 1), got {self.warmup_frac!r}")
        if not 0.0 <= self.min_lr_frac <= 1.0:
            raise ConfigError("min_lr_frac", f"must be in [0, 1], got {self.min_lr_frac!r}")


def replaces_best(select: str, accuracy: float, loss: float, best_accuracy: float, best_loss: float) -> bool:
    """Whether an evaluation's weights replace the kept ones (TrainSettings.select); none kept yet: a best
    accuracy below 0. A NaN loss (a diverged model) never wins on loss."""
    if select == "last" or best_accuracy < 0:
        return True
    if select == "loss":
        return loss < best_loss
    return accuracy > best_accuracy or (accuracy == best_accuracy and loss < best_loss)


def next_token_targets(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(B, L) targets with the next input token wherever a position has none (TrainSettings.next_token_loss);
    the last position keeps its own (it has no next token)."""
    filled = targets.clone()
    filled[:, :-1] = torch.where(targets[:, :-1] == IGNORE, inputs[:, 1:], targets[:, :-1])
    return filled


def split_seed(data_seed: int, split: str, index: int = 0) -> int:
    """Independent, reproducible seeds for the train and test sets (and each fresh batch)."""
    return int(np.random.SeedSequence([data_seed, SPLIT_SEED_TAG[split], index]).generate_state(1)[0])


def lr_schedule(settings: TrainSettings, total_steps: int, steps_per_epoch: int) -> Callable[[int], float]:
    """step -> lr multiplier under the settings' schedule (suites.training.lr_schedule)."""
    return shared_lr_schedule(
        total_steps, settings.warmup_frac, settings.min_lr_frac, settings.schedule_unit, steps_per_epoch
    )


def curriculum_params(
    spec: Task, params: dict[str, Any], stages: tuple[dict[str, Any], ...]
) -> list[tuple[int, dict[str, Any]]]:
    """[(first step, task parameters)] of each curriculum stage, then the job's own parameters."""
    out, first = [], 0
    for stage in stages:
        overrides = {k: v for k, v in stage.items() if k not in STAGE_KEYS}
        out.append((first, spec.params(**{**params, **overrides})))
        first += int(stage["steps"])
    out.append((first, params))
    return out


class FreshBatches:
    """A fresh training batch for every step, generated on a background thread a few steps ahead: the
    generators are NumPy on the host, and at L 4096 one batch takes about as long (~2.5 ms on 2 cores) as
    a GPU step. Batch `step` depends on (data_seed, step) only, never on timing."""

    def __init__(
        self,
        spec: Task,
        stages: list[tuple[int, dict[str, Any]]],
        batch: int,
        data_seed: int,
        total_steps: int,
        device: torch.device,
        next_token_loss: bool = False,
    ) -> None:
        self.spec, self.stages, self.batch, self.data_seed = spec, list(stages), batch, data_seed
        self.device, self.total_steps, self.next_token_loss = device, total_steps, next_token_loss
        self.width = 0
        self._start(0)

    def _start(self, first_step: int) -> None:
        self.queue: queue.Queue[tuple[torch.Tensor, ...] | None] = queue.Queue(PREFETCH_BATCHES)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._fill, args=(first_step, self.total_steps), daemon=True)
        self.thread.start()

    def stage_at(self, step: int) -> int:
        """The index of the stage that batch `step` belongs to (the last is the job's own parameters)."""
        return [index for index, (first, _) in enumerate(self.stages) if first <= step][-1]

    def params_at(self, step: int) -> dict[str, Any]:
        return self.stages[self.stage_at(step)][1]

    def end_stage(self, step: int) -> None:
        """End the stage of batch step - 1 before batch `step` (a stage's target was met): the stages after
        it start earlier by as much. The batches made ahead are dropped and made again from `step`, so batch
        s still depends on (data_seed, s) and the stage it falls in only."""
        index = self.stage_at(step - 1)
        if index + 1 >= len(self.stages):
            return
        shift = self.stages[index + 1][0] - step
        self.stages = self.stages[: index + 1] + [(first - shift, params) for first, params in self.stages[index + 1 :]]
        self.close()
        self._start(step)

    def _fill(self, first_step: int, total_steps: int) -> None:
        for step in range(first_step, total_steps):
            fresh = self.spec.examples_uncached(
                "train", self.params_at(step), self.batch, split_seed(self.data_seed, "train", step)
            )
            # Targets as fixed-width (positions, labels), the width the widest batch so far: a CUDA graph
            # replays one shape, and the width depends on the batches before only, never on timing.
            targets = next_token_targets(fresh.inputs, fresh.targets) if self.next_token_loss else fresh.targets
            positions, labels = target_positions(targets, self.width)
            self.width = positions.shape[1]
            batch = (fresh.inputs, positions, labels)
            if self.device.type == "cuda":
                batch = tuple(t.pin_memory() for t in batch)
            while not self.stop.is_set():
                try:
                    self.queue.put(batch, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if self.stop.is_set():
                return

    def next(self) -> tuple[torch.Tensor, ...]:
        """(inputs (B, L), target positions (B, W), labels (B, W)) on the device."""
        return tuple(t.to(self.device, non_blocking=True) for t in self.queue.get())

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


def macro_accuracy(true_positives: torch.Tensor, predicted: torch.Tensor, actual: torch.Tensor) -> float:
    """The mean over classes of tp / (tp + fn), over the classes that occur as a target or a prediction (a
    class only ever predicted scores 0): torchmetrics' MulticlassAccuracy(average="macro"), which MAD reports.
    Arguments are per-class counts (tp, predictions, targets)."""
    present = (predicted + actual) > 0
    recall = true_positives.double() / actual.clamp(min=1).double()
    return float(recall[present].mean()) if bool(present.any()) else float("nan")


class Evaluator:
    """Token accuracy (micro: over positions; or macro: over classes, see macro_accuracy) and loss over the
    positions with a target, in batches of bounded size."""

    def __init__(
        self, model: nn.Module, autocast_dtype: torch.dtype | None, device: torch.device, average: str = "micro"
    ) -> None:
        self.model, self.autocast_dtype, self.device, self.average = model, autocast_dtype, device, average

    @torch.no_grad()
    def __call__(self, examples: Examples, batch: int) -> tuple[float, float]:
        was_training = self.model.training
        self.model.eval()
        correct = counted = 0
        loss_sum = 0.0
        classes: list[torch.Tensor] = []  # per-class counts: true positives, predictions, targets
        try:
            for start in range(0, len(examples), batch):
                inputs = examples.inputs[start : start + batch].to(self.device, non_blocking=True)
                targets = examples.targets[start : start + batch].to(self.device, non_blocking=True)
                mask = targets != IGNORE
                with autocast(self.device, self.autocast_dtype):
                    picked = self.model(inputs, mask).float()
                wanted = targets[mask]
                guessed = picked.argmax(dim=-1)
                correct += int((guessed == wanted).sum())
                counted += int(mask.sum())
                loss_sum += float(nn.functional.cross_entropy(picked, wanted, reduction="sum"))
                if self.average == "macro":
                    size = picked.shape[-1]
                    counts = [
                        torch.bincount(wanted[guessed == wanted], minlength=size),
                        torch.bincount(guessed, minlength=size),
                        torch.bincount(wanted, minlength=size),
                    ]
                    classes = counts if not classes else [a + b for a, b in zip(classes, counts, strict=True)]
        finally:
            self.model.train(was_training)
        if counted == 0:
            return float("nan"), float("nan")
        accuracy = macro_accuracy(*classes) if self.average == "macro" else correct / counted
        return accuracy, loss_sum / counted


def build_model(
    spec: Task,
    params: dict[str, Any],
    implementation: str,
    config: dict[str, Any],
    n_layers: int,
    model: dict[str, Any],
    layer_pattern: list[str] | None,
    layer_configs: dict[str, dict[str, Any]] | None,
    max_seq_len: int,
) -> tuple[RecallModel, ModelLayers, ModelSettings]:
    """A job's model, freshly initialised (on the CPU, in float32), its layers and its resolved settings:
    what training builds and what a saved checkpoint (suites/recall/checkpoint.py) is loaded into."""
    model_settings = ModelSettings.from_dict({**model, "n_layers": n_layers})
    layers = model_layers(implementation, config, n_layers, layer_pattern, layer_configs)
    # A hybrid with any recurrent layer gets no positions on 'auto' (as Jamba): suites.backbone.resolve_position.
    model_settings = resolve_position(model_settings, layers.families, layers.rope)
    net = RecallModel(
        spec.vocab_size(params),
        MixerConfig.from_dict(config).d_model,
        layers.makers(),
        model_settings,
        head=spec.head,
        max_seq_len=max_seq_len,
    )
    return net, layers, model_settings


def run_job(**job: Any) -> list[dict[str, Any]]:
    """The worker's entry point: `job` is exactly the job's params. Trains and tests (train_and_test);
    where `seqbench run recall` names a checkpoint folder (SEQBENCH_RECALL_CHECKPOINT_DIR), the tested
    weights are saved there as <job_id>.pt (suites/recall/checkpoint.py)."""
    from suites.recall.checkpoint import job_checkpoint_path

    return train_and_test(**job, checkpoint_path=job_checkpoint_path(SUITE, TARGET, job))


def train_and_test(
    *,
    task: str,
    task_params: dict[str, Any],
    implementation: str,
    config: dict[str, Any],
    n_layers: int,
    model: dict[str, Any],
    lr: float,
    weight_decay: float,
    seed: int,
    batch: int,
    train: dict[str, Any],
    extrapolate: list[dict[str, Any]] | None = None,
    device: str = "auto",
    dtype: str | None = None,
    setting: str = "",
    progress: bool = True,  # a line per evaluation on stdout (the worker's log): how a long training goes
    layer_pattern: list[str] | None = None,  # a hybrid: every layer's implementation (suites/mixers.py)
    layer_configs: dict[str, dict[str, Any]] | None = None,  # a hybrid: each of those implementations' config
    checkpoint_path: Path | None = None,  # where to save the tested weights (None: nowhere)
    **columns: Any,  # the job's column mirrors (seq_len, vocab_size, mode): checked, not used
) -> list[dict[str, Any]]:
    """Train one cell and return its rows: one at the training length (eval_seq_len = seq_len), then
    one per longer test setting in `extrapolate` (task parameter overrides; None: the task's default
    ones; status oom where one did not fit)."""
    began = time.perf_counter()
    spec: Task = get_task(task)
    params = spec.params(**task_params)
    for name in ("seq_len", "vocab_size"):
        if name in columns and columns[name] != params[name]:
            raise ConfigError(name, f"job column says {columns[name]} but the task parameters say {params[name]}")
    settings = TrainSettings.from_dict(train)
    run_device = resolve_device(device)
    dtype = dtype or default_dtype(device)
    compute_dtype = parse_dtype(dtype)
    autocast_dtype = compute_dtype if compute_dtype in (torch.bfloat16, torch.float16) else None
    if batch < 1:
        raise ConfigError("batch", f"must be a positive integer, got {batch!r}")
    if not lr > 0:
        raise ConfigError("lr", f"must be positive, got {lr!r}")

    n_train = spec.n_train if settings.n_train is None else settings.n_train
    n_test = spec.n_test if settings.n_test is None else settings.n_test
    data_seed = seed if settings.data_seed is None else settings.data_seed
    online = n_train == 0
    if online and settings.max_steps == 0:
        raise ConfigError("max_steps", "training on a fresh batch every step (n_train = 0) needs max_steps > 0")
    if extrapolate is None:  # the task's own longer tests (e.g. the seeds' variant at L 128)
        extrapolate = list(spec.extrapolate)
    longer = [spec.params(**{**task_params, **overrides}) for overrides in extrapolate]
    stages = curriculum_params(spec, params, settings.curriculum)
    max_seq_len = max([params["seq_len"], *(p["seq_len"] for p in longer), *(p["seq_len"] for _, p in stages)])

    seed_everything(seed)
    cache_dir = default_cache_dir()
    train_set = None if online else spec.examples("train", params, n_train, split_seed(data_seed, "train"), cache_dir)
    test_set = spec.examples("test", params, n_test, split_seed(data_seed, "test"), cache_dir)
    if train_set is not None:
        train_set = train_set.to(run_device)

    net, layers, model_settings = build_model(
        spec, params, implementation, config, n_layers, model, layer_pattern, layer_configs, max_seq_len
    )
    net = net.to(run_device)
    n_params = count_parameters(net)
    if settings.curriculum and not online:
        raise ConfigError("curriculum", "a length curriculum needs fresh batches (n_train = 0)")

    steps_per_epoch = math.ceil(n_train / batch) if not online else 0
    total_steps = settings.epochs * steps_per_epoch if not online else settings.max_steps
    if settings.max_steps:
        total_steps = min(total_steps, settings.max_steps)
    total_steps = max(total_steps, 1)
    if settings.schedule_unit == "epoch" and online:
        raise ConfigError("schedule_unit", "a schedule per epoch needs a training set (n_train > 0)")

    def loss_of(inputs: torch.Tensor, positions: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = net(inputs, positions)  # the head only where there is something to predict
        return nn.functional.cross_entropy(logits.float(), labels.reshape(-1), ignore_index=IGNORE)

    eval_every = settings.eval_every or (steps_per_epoch if not online else max(1, total_steps // 10))
    loop = make_training_loop(
        loss_of,
        net,
        settings,
        lr=lr,
        weight_decay=weight_decay,
        autocast_dtype=autocast_dtype,
        device=run_device,
        schedule=lr_schedule(settings, total_steps, steps_per_epoch),
        total_steps=total_steps,
        eval_every=eval_every,
    )
    train_step = loop.train_step
    eval_batch = settings.eval_batch or batch
    evaluate = Evaluator(net, autocast_dtype, run_device, settings.average)
    order_generator = torch.Generator().manual_seed(seed)
    fresh = (
        FreshBatches(spec, stages, batch, data_seed, total_steps, run_device, settings.next_token_loss)
        if online
        else None
    )
    # A test set of each gated stage's own parameters: the stage ends when the model meets its target there.
    stage_tests = {
        index: spec.examples("test", stage_params, n_test, split_seed(data_seed, "test", index + 1), cache_dir)
        for index, ((_, stage_params), stage) in enumerate(zip(stages, settings.curriculum, strict=False))
        if "until_accuracy" in stage
    }
    train_positions = train_labels = None
    if train_set is not None:  # resident on the device, targets as fixed-width (positions, labels)
        train_targets = train_set.targets.cpu()
        if settings.next_token_loss:
            train_targets = next_token_targets(train_set.inputs.cpu(), train_targets)
        train_positions, train_labels = (t.to(run_device) for t in target_positions(train_targets))

    best = {"accuracy": -1.0, "loss": float("nan"), "step": 0, "state": None}
    # One point per evaluation: the learning curve the report draws (steps, seconds, losses, accuracy).
    curve: list[dict[str, float]] = []
    train_loss = float("nan")
    stop_reason = "steps done"
    permutation = torch.empty(0, dtype=torch.long)
    net.train()
    try:
        while loop.step < total_steps:
            if fresh is not None:
                inputs, positions, labels = fresh.next()
            else:
                position = (loop.step % steps_per_epoch) * batch
                if position == 0:
                    permutation = epoch_order(n_train, order_generator, settings.shuffle, run_device)
                index = permutation[position : position + batch]
                inputs, positions, labels = train_set.inputs[index], train_positions[index], train_labels[index]
            loop.run(inputs, positions, labels)
            if not loop.evaluation_due:
                continue
            step = loop.step
            train_loss = loop.take_train_loss()
            accuracy, test_loss = evaluate(test_set, eval_batch)
            point = {
                "step": step,
                "wall_s": round(loop.elapsed_s(), 3),
                "train_seq_len": int(fresh.params_at(step - 1)["seq_len"]) if fresh else params["seq_len"],
                "lr": loop.lr_now,
                "train_loss": train_loss,
                "test_loss": test_loss,
                "test_accuracy": accuracy,
            }
            stage = fresh.stage_at(step - 1) if fresh is not None else -1
            if stage in stage_tests:  # a gated stage: scored on its own test set, ended when it meets its target
                point["stage_accuracy"], _ = evaluate(stage_tests[stage], eval_batch)
                if point["stage_accuracy"] >= settings.curriculum[stage]["until_accuracy"]:
                    fresh.end_stage(step)
            curve.append(point)
            if progress:
                stage_text = f" stage acc {point['stage_accuracy']:.4f}" if "stage_accuracy" in point else ""
                print(
                    f"step {step}/{total_steps} {point['wall_s']:.0f} s L {point['train_seq_len']} "
                    f"train loss {train_loss:.4f} test acc {accuracy:.4f}{stage_text}",
                    flush=True,
                )
            if replaces_best(settings.select, accuracy, test_loss, best["accuracy"], best["loss"]):
                keep = longer or checkpoint_path is not None  # the best weights are tested again, or saved
                state = {k: v.detach().clone() for k, v in net.state_dict().items()} if keep else None
                best.update(accuracy=accuracy, loss=test_loss, step=step, state=state)
            if accuracy >= settings.target_accuracy:
                stop_reason = "target accuracy reached"
                break
            if loop.out_of_time:
                stop_reason = f"time limit {settings.time_limit_s:g} s"
                break
    finally:
        if fresh is not None:
            fresh.close()
    train_wall_s = loop.finish()
    step, first_step_s = loop.step, loop.first_step_s
    width = int(fresh.width if fresh is not None else train_positions.shape[1])
    # every layer's own cost model (a hybrid's differ), summed
    step_flops = layers.flops(batch, params["seq_len"], "fwd_bwd") + 3 * net.dense_flops(
        batch, params["seq_len"], width
    )
    floor_tflops = matmul_tflops(str(run_device), str(autocast_dtype or compute_dtype).removeprefix("torch."))
    state_dtype = compute_dtype
    common = {
        "task": task,
        "setting": setting,
        "task_params": json.dumps(params, sort_keys=True),
        "vocab_size": spec.vocab_size(params),
        "seq_len": params["seq_len"],
        **job_columns(
            layer_names=layers.names,
            device=run_device,
            dtype=dtype,
            batch=batch,
            lr=lr,
            weight_decay=weight_decay,
            seed=seed,
        ),
        "data_seed": int(data_seed),
        "n_train": int(n_train),
        "n_test": int(n_test),
        "steps": step,
        "best_step": best["step"],
        "wall_s": train_wall_s,
        "first_step_s": first_step_s,
        "params": n_params,
        "train_loss": train_loss,
        "target_accuracy": settings.target_accuracy,
        "target_reached": best["accuracy"] >= settings.target_accuracy,
        "stop_reason": stop_reason,
        "mlp": model_settings.mlp,
        "position": model_settings.position,
        "head": spec.head,
        "steps_per_s": loop.steps_per_s(),  # after the first, compiling step
        "step_mode": train_step.mode,
        "step_mode_note": train_step.note,
        "compiled": train_step.compiled,
        # the step's analytic FLOPs (mixers fwd+bwd, the dense layers and head 3x their forward) and the
        # time they take at the matmul rate measured on this device in the step's dtype: the floor
        "step_flops": float(step_flops),
        "matmul_tflops": floor_tflops,
        "step_floor_ms": step_flops / (floor_tflops * 1e12) * 1e3,
        "decay": settings.decay,
        "select": settings.select,
        "next_token_loss": settings.next_token_loss,
        "curriculum": json.dumps(list(settings.curriculum), sort_keys=True),
        "curve": json.dumps(curve),
    }
    rows = [
        {
            **common,
            "eval_seq_len": params["seq_len"],
            "eval_params": "",
            "accuracy": best["accuracy"],
            "loss": best["loss"],
            "state_bytes_analytic": layers.state_bytes(1, params["seq_len"], state_dtype),
            "status": "ok",
            "reason": "",
        }
    ]
    if longer and best["state"] is not None:
        net.load_state_dict(best["state"])
    if checkpoint_path is not None:  # the weights the rows were tested with: the best evaluation's
        from suites.recall.checkpoint import save_checkpoint

        job = {
            "task": task,
            "task_params": task_params,
            "implementation": implementation,
            "config": config,
            "n_layers": n_layers,
            "model": model,
            "layer_pattern": layer_pattern,
            "layer_configs": layer_configs,
            "seed": seed,
            "data_seed": int(data_seed),
            "dtype": dtype,
            "setting": setting,
            "n_test": int(n_test),
            "extrapolate": extrapolate,
            "extrapolate_tokens": settings.extrapolate_tokens,
        }
        state = best["state"] if best["state"] is not None else net.state_dict()
        save_checkpoint(checkpoint_path, job, max_seq_len, state, step=best["step"], accuracy=best["accuracy"])
    for index, longer_params in enumerate(longer):
        row = {
            **common,
            "eval_seq_len": longer_params["seq_len"],
            "eval_params": json.dumps(longer_params, sort_keys=True),
            "state_bytes_analytic": layers.state_bytes(1, longer_params["seq_len"], state_dtype),
            "status": "ok",
            "reason": "",
        }
        try:
            n_long = min(n_test, max(16, settings.extrapolate_tokens // longer_params["seq_len"]))
            examples = spec.examples(
                "test", longer_params, n_long, split_seed(data_seed, "extrapolate", index), cache_dir
            )
            row["n_test"] = n_long
            batch_here = settings.eval_batch or max(1, batch * params["seq_len"] // longer_params["seq_len"])
            row["accuracy"], row["loss"] = evaluate(examples, batch_here)
        except torch.OutOfMemoryError as exc:
            row.update(status="oom", reason=str(exc).splitlines()[0], accuracy=float("nan"), loss=float("nan"))
            if run_device.type == "cuda":
                torch.cuda.empty_cache()
        rows.append(row)
    for row in rows:
        row["job_s"] = time.perf_counter() - began
    return rows
