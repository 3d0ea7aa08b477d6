"""What the training suites (recall, classification) share: seeds, the optimizer and its schedule, the
targets as fixed-shape tensors, and the training step itself, eager or replayed from a CUDA graph.

Why a CUDA graph: the recall models are small (d_model 64, 2 layers), so an eager step is a few hundred
kernel launches of a few microseconds each, and the step is bound by the host (Python, the launches), tens
of times above its arithmetic floor. Captured once, the whole step (forward, loss, backward, gradient
clipping, fused AdamW) is one graph launch. That needs fixed shapes and no host synchronisation inside the
step, hence targets as (batch, width) position and label tensors (`target_positions`) instead of a boolean
mask, the learning rate as a device tensor the host fills, and the loss read only at evaluations.

An implementation whose step cannot be captured (a kernel that synchronises or allocates on the host) falls
back to eager; `TrainStep.mode` and `TrainStep.note` say which ran and why, and the rows carry both.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from harness import ceilings
from harness.errors import ConfigError

IGNORE = -100  # label of positions without a target (PyTorch's cross-entropy ignore_index)
STEP_MODES = ("auto", "eager", "graph")  # auto: graph on a GPU, eager on the CPU
DECAY_POLICIES = ("all", "matrices")
# Eager steps at each new batch shape before it is captured: the first compiles and autotunes Triton kernels
# and builds cuFFT plans and cuBLAS workspaces, which must not happen inside a capture; three, as torch's
# CUDA-graph notes advise for whole-network capture.
WARMUP_STEPS = 3


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def default_dtype(device: str) -> str:
    """bf16 autocast (fp32 weights) on a GPU, as Zoology and MAD train; fp32 on the CPU."""
    return "bfloat16" if resolve_device(device).type == "cuda" else "float32"


def autocast(device: torch.device, dtype: torch.dtype | None, cache_enabled: bool = True):
    """Autocast to `dtype` (None: off). A CUDA graph needs cache_enabled=False: autocast's cache of cast
    weights would be freed after the capture while the graph still reads it."""
    if dtype is None:
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=dtype, cache_enabled=cache_enabled)


def cosine_with_warmup(step: int, total: int, warmup: int, min_frac: float) -> float:
    """lr multiplier: linear from 1/warmup to 1 over `warmup` steps, then cosine from 1 to min_frac."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return min_frac + (1.0 - min_frac) * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


# "time": the cosine runs over the steps or the time limit, whichever ends first (TrainingLoop places
# the schedule at the larger of the step and the elapsed fraction of the time limit times the steps), so a
# training cut by its time limit still anneals; the position then depends on the machine's speed.
SCHEDULE_UNITS = ("step", "epoch", "time")


def lr_schedule(
    total_steps: int, warmup_frac: float, min_lr_frac: float, unit: str = "step", steps_per_epoch: int = 1
) -> Callable[[int], float]:
    """step -> lr multiplier: cosine_with_warmup over the steps, or (unit "epoch") over the epochs, constant
    within each, as Zoology's CosineAnnealingLR(T_max=epochs) stepped after every epoch. Unit "time" is
    the step schedule: TrainingLoop(schedule_over_time=True) moves its position by the clock as well."""
    if unit not in SCHEDULE_UNITS:
        raise ConfigError("schedule_unit", f"must be one of {', '.join(SCHEDULE_UNITS)}, got {unit!r}")
    warmup = int(warmup_frac * total_steps)
    if unit in ("step", "time"):
        return lambda step: cosine_with_warmup(step, total_steps, warmup, min_lr_frac)
    epochs = math.ceil(total_steps / steps_per_epoch)
    warmup_epochs = int(warmup_frac * epochs)
    return lambda step: cosine_with_warmup(step // steps_per_epoch, epochs, warmup_epochs, min_lr_frac)


def epoch_order(n: int, generator: torch.Generator, shuffle: bool, device: torch.device) -> torch.Tensor:
    """The order of a fixed training set's n examples for one epoch, on the device: a fresh permutation
    (shuffle) or the set's own order. Pinned first on a GPU, so the copy does not wait for the GPU to drain."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    return (order.pin_memory() if device.type == "cuda" else order).to(device, non_blocking=True)


def parameter_groups(model: nn.Module, weight_decay: float, decay: str) -> list[dict[str, Any]]:
    """AdamW's parameter groups under a decay policy (a tied head counts once). "all": every parameter,
    as Zoology's and MAD's optimisers do; "matrices": weight matrices and embeddings only, as nanoGPT and
    mamba_ssm's training do; biases, norms and what a mixer marks `_no_weight_decay` are left alone.
    A parameter a mixer gives its own learning rate (`_lr`, S4's option ssm_lr, as the S4 repository
    registers its SSM parameters) goes to a group of its own with `own_lr` (make_adamw scales it)."""
    if decay not in DECAY_POLICIES:
        raise ConfigError("decay", f"must be one of {', '.join(DECAY_POLICIES)}, got {decay!r}")
    unique = list({id(p): p for p in model.parameters() if p.requires_grad}.values())
    if decay == "all":
        by_decay = [(unique, weight_decay)]
    else:
        decayed = [p for p in unique if p.ndim >= 2 and not getattr(p, "_no_weight_decay", False)]
        kept = {id(p) for p in decayed}
        by_decay = [(decayed, weight_decay), ([p for p in unique if id(p) not in kept], 0.0)]
    # the plain groups first, in that order (callers unpack them), then one per (decay, own lr)
    groups = [{"params": [p for p in params if _own_lr(p) is None], "weight_decay": wd} for params, wd in by_decay]
    for params, wd in by_decay:
        for own_lr in sorted({_own_lr(p) for p in params} - {None}):
            marked = [p for p in params if _own_lr(p) == own_lr]
            groups.append({"params": marked, "weight_decay": wd, "own_lr": own_lr})
    return groups


def _own_lr(parameter: nn.Parameter) -> float | None:
    own = getattr(parameter, "_lr", None)
    return None if own is None else float(own)


def resolve_step_mode(mode: str, device: torch.device) -> str:
    if mode not in STEP_MODES:
        raise ConfigError("step_mode", f"must be one of {', '.join(STEP_MODES)}, got {mode!r}")
    if mode == "auto":
        return "graph" if device.type == "cuda" else "eager"
    if mode == "graph" and device.type != "cuda":
        raise ConfigError("step_mode", f"graph capture needs a CUDA device, got {device.type}")
    return mode


def make_adamw(groups: list[dict[str, Any]], lr: float, device: torch.device, step_mode: str) -> torch.optim.AdamW:
    """Fused AdamW on a GPU. For a CUDA graph it is also capturable (its step counter lives on the device)
    and its learning rate is a device tensor, filled by the host before each replay (a Python float
    would be baked into the graph). A group with its own lr (parameter_groups' `own_lr`) keeps the ratio
    own_lr / lr as `lr_scale`: the schedule moves every group by one factor (TrainStep.set_lr), as the S4
    repository's schedulers scale each group's initial lr."""
    scales = [group["own_lr"] / lr if "own_lr" in group else 1.0 for group in groups]
    groups = [{**group, "lr_scale": scale, "lr": lr * scale} for group, scale in zip(groups, scales, strict=True)]
    if device.type != "cuda":
        return torch.optim.AdamW(groups, lr=lr)
    if step_mode == "graph":
        groups = [{**group, "lr": torch.tensor(group["lr"], dtype=torch.float32, device=device)} for group in groups]
        return torch.optim.AdamW(groups, lr=lr, fused=True, capturable=True)
    return torch.optim.AdamW(groups, lr=lr, fused=True)


def target_positions(targets: torch.Tensor, width: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L) labels with IGNORE where there is no target -> ((B, W) positions, (B, W) labels): each row's
    target positions in order, padded to W = max(width, the most targets in a row) with position 0 and
    label IGNORE. The step then has fixed shapes, and the head runs at W positions per row only."""
    present = targets != IGNORE
    width = max(width, int(present.sum(dim=1).max()) if targets.numel() else 0, 1)
    # A stable sort of "no target" flags puts each row's target positions first, in their order.
    order = torch.sort((~present).to(torch.int8), dim=1, stable=True).indices[:, :width]
    labels = targets.gather(1, order)
    labels = torch.where(present.gather(1, order), labels, torch.full_like(labels, IGNORE))
    positions = torch.where(labels != IGNORE, order, torch.zeros_like(order))
    return positions, labels


Batch = tuple[torch.Tensor, ...]
LossFn = Callable[..., torch.Tensor]  # (*batch) -> scalar loss


class TrainStep:
    """One optimizer step on a batch: loss_fn(*batch) under autocast, backward, gradient clipping, AdamW.

    step_mode "eager" runs it as written. "graph" runs the first WARMUP_STEPS steps of every batch shape
    eagerly, captures the next one in a CUDA graph and replays it for the steps after, copying each batch
    into the graph's input buffers; a new shape (a curriculum stage) is warmed up and captured afresh. The
    numerics are the eager step's: the same kernels, replayed. If the capture fails, every later step runs
    eagerly and `note` says why.

    compile=True runs loss_fn through torch.compile (inductor) first: it fuses the norms' and elementwise
    kernels of forward and backward, so a graph replays fewer, larger kernels (a small model's step is bound
    by the latency of hundreds of tiny ones). Kernels inductor cannot trace (mamba_ssm's CUDA extension, a
    library's Triton kernels) stay as they are, between fused regions. If compiling fails, the step runs
    uncompiled from then on, `compiled` turns False and `note` says why.
    """

    def __init__(
        self,
        loss_fn: LossFn,
        parameters: list[nn.Parameter],
        optimizer: torch.optim.Optimizer,
        *,
        grad_clip: float,
        autocast_dtype: torch.dtype | None,
        device: torch.device,
        step_mode: str,
        compile: bool = False,
    ) -> None:
        self.parameters, self.optimizer = parameters, optimizer
        self.grad_clip, self.autocast_dtype, self.device = grad_clip, autocast_dtype, device
        self.mode = resolve_step_mode(step_mode, device)
        self.uncompiled_loss_fn = loss_fn
        self.compiled = compile
        self.loss_fn = torch.compile(loss_fn, dynamic=False) if compile else loss_fn
        self.note = ""
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_batch: Batch = ()
        self.static_loss: torch.Tensor | None = None
        self.shape: tuple[tuple[int, ...], ...] = ()
        self.steps_at_shape = 0
        self.captured_steps = 0  # steps replayed from a graph

    def set_lr(self, value: float) -> None:
        for group in self.optimizer.param_groups:
            group_lr = value * group.get("lr_scale", 1.0)  # a group with its own peak lr (make_adamw)
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(group_lr)  # a launch, no synchronisation
            else:
                group["lr"] = group_lr

    def _forward_backward_update(self, batch: Batch) -> torch.Tensor:
        with autocast(self.device, self.autocast_dtype, cache_enabled=self.mode != "graph"):
            loss = self.loss_fn(*batch)
        loss.backward()
        if self.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.parameters, self.grad_clip)
        self.optimizer.step()
        return loss.detach()

    def _eager(self, batch: Batch) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        if not self.compiled:
            return self._forward_backward_update(batch)
        try:  # compiling happens here, at the first step of each shape (forward, then backward)
            return self._forward_backward_update(batch)
        except Exception as exc:  # a compile failure: go on uncompiled, and say so
            self.compiled, self.loss_fn = False, self.uncompiled_loss_fn
            self.note = f"compile failed, uncompiled: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            self.optimizer.zero_grad(set_to_none=True)
            return self._forward_backward_update(batch)

    def _capture(self, batch: Batch) -> None:
        self.static_batch = tuple(t.clone() for t in batch)
        graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)  # the captured backward allocates the gradients it writes
        # thread_local: the batch-prefetch thread may pin host memory meanwhile, which a global capture forbids
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            self.static_loss = self._forward_backward_update(self.static_batch)
        self.graph = graph

    def __call__(self, *batch: torch.Tensor) -> torch.Tensor:
        """Run one step on `batch`; returns the loss (a device tensor: reading it would synchronise)."""
        if self.mode == "eager":
            return self._eager(batch)
        shape = tuple(tuple(t.shape) for t in batch)
        if shape != self.shape:
            self.shape, self.steps_at_shape, self.graph = shape, 0, None
        self.steps_at_shape += 1
        if self.graph is None and self.steps_at_shape <= WARMUP_STEPS:
            # Warm-up steps run on a side stream, as torch's whole-network capture example does.
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                loss = self._eager(batch)
            torch.cuda.current_stream().wait_stream(side)
            return loss
        if self.graph is None:
            try:
                self._capture(batch)
            except Exception as exc:  # any capture failure falls back to eager, and says so
                self.mode, self.graph = "eager", None
                self.note = f"capture failed, eager: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                _release_generator_from_capture(self.device)
                torch.cuda.synchronize()
                return self._eager(batch)
        for static, new in zip(self.static_batch, batch, strict=True):
            static.copy_(new, non_blocking=True)
        assert self.graph is not None and self.static_loss is not None
        self.graph.replay()
        self.captured_steps += 1
        return self.static_loss


def make_train_step(
    loss_fn: LossFn,
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float,
    decay: str,
    grad_clip: float,
    autocast_dtype: torch.dtype | None,
    device: torch.device,
    step_mode: str,
    compile: bool = False,
) -> TrainStep:
    """A TrainStep over `model`'s parameters with AdamW under the decay policy, the optimizer built for the
    resolved step mode (a CUDA graph needs it capturable: "auto" must be resolved before, not after)."""
    mode = resolve_step_mode(step_mode, device)
    optimizer = make_adamw(parameter_groups(model, weight_decay, decay), lr, device, mode)
    return TrainStep(
        loss_fn,
        list(model.parameters()),
        optimizer,
        grad_clip=grad_clip,
        autocast_dtype=autocast_dtype,
        device=device,
        step_mode=mode,
        compile=compile,
    )


def job_columns(
    *,
    layer_names: Sequence[str],
    device: torch.device,
    dtype: str,
    batch: int,
    lr: float,
    weight_decay: float,
    seed: int,
) -> dict[str, Any]:
    """The columns every training suite's row starts from: the model's layers and how it was trained."""
    return {
        "n_layers": len(layer_names),
        "layer_pattern": json.dumps(list(layer_names)),  # every layer's implementation, in order
        "mode": "train",
        "level": "layer",
        "device": str(device),
        "dtype": dtype,
        "batch": batch,
        "lr": float(lr),
        "weight_decay": float(weight_decay),
        "seed": int(seed),
    }


class LoopSettings(Protocol):
    """What make_training_loop reads of a suite's training settings (recall's and classify's have it all)."""

    decay: str
    grad_clip: float
    step_mode: str
    compile: bool
    time_limit_s: float
    schedule_unit: str


def make_training_loop(
    loss_fn: LossFn,
    model: nn.Module,
    settings: LoopSettings,
    *,
    lr: float,
    weight_decay: float,
    autocast_dtype: torch.dtype | None,
    device: torch.device,
    schedule: Callable[[int], float],
    total_steps: int,
    eval_every: int,
) -> TrainingLoop:
    """The step (make_train_step) and the loop around it, as a suite's training settings ask."""
    train_step = make_train_step(
        loss_fn,
        model,
        lr=lr,
        weight_decay=weight_decay,
        decay=settings.decay,
        grad_clip=settings.grad_clip,
        autocast_dtype=autocast_dtype,
        device=device,
        step_mode=settings.step_mode,
        compile=settings.compile,
    )
    return TrainingLoop(
        train_step,
        lr=lr,
        schedule=schedule,
        total_steps=total_steps,
        eval_every=eval_every,
        time_limit_s=settings.time_limit_s,
        device=device,
        schedule_over_time=settings.schedule_unit == "time",
    )


class TrainingLoop:
    """The bookkeeping every training loop shares around a TrainStep: the learning rate from its schedule,
    the loss summed on the device and read only at evaluations (a read waits for the GPU), the first step's
    time (it compiles and autotunes), the time limit counted after it, and when to evaluate.

        loop = TrainingLoop(step, lr=..., schedule=..., total_steps=..., eval_every=..., time_limit_s=..., device=...)
        while loop.step < loop.total_steps:
            loop.run(*batch)
            if loop.evaluation_due:
                train_loss = loop.take_train_loss()  # ... evaluate, keep the best, maybe stop
                if loop.out_of_time: break
        loop.finish()
    """

    def __init__(
        self,
        train_step: TrainStep,
        *,
        lr: float,
        schedule: Callable[[int], float],
        total_steps: int,
        eval_every: int,
        time_limit_s: float,
        device: torch.device,
        schedule_over_time: bool = False,
    ) -> None:
        if schedule_over_time and time_limit_s <= 0:
            raise ConfigError("schedule_unit", "a schedule over time needs a time limit (time_limit_s > 0)")
        self.train_step, self.lr, self.schedule, self.device = train_step, lr, schedule, device
        self.total_steps, self.eval_every, self.time_limit_s = total_steps, eval_every, time_limit_s
        self.schedule_over_time = schedule_over_time
        self.step = 0
        self.first_step_s = 0.0
        self.wall_s = 0.0
        self.out_of_time = False
        self._lr_now = float("nan")
        self._loss_sum = torch.zeros((), device=device)
        self._losses = 0
        self.began = time.perf_counter()

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def run(self, *batch: torch.Tensor) -> None:
        """One step on `batch` at the scheduled learning rate."""
        wanted = self.lr_now
        if wanted != self._lr_now:  # fill the lr only when it changes: a launch each time on a GPU
            self._lr_now = wanted
            self.train_step.set_lr(wanted)
        self._loss_sum += self.train_step(*batch)
        self._losses += 1
        self.step += 1
        if self.step == 1:
            self._synchronize()
            self.first_step_s = time.perf_counter() - self.began
        self.out_of_time = self.time_limit_s > 0 and self.elapsed_s() - self.first_step_s > self.time_limit_s

    @property
    def evaluation_due(self) -> bool:
        return self.step % self.eval_every == 0 or self.step == self.total_steps or self.out_of_time

    @property
    def lr_now(self) -> float:
        """The learning rate of the next step (what LambdaLR's get_last_lr gives after a step)."""
        return self.lr * self.schedule(self.schedule_position())

    def schedule_position(self) -> int:
        """Where the schedule stands: the step, or (schedule_over_time) the elapsed fraction of the time
        limit in steps when that is further, so the cosine ends at the time limit if it comes first. The
        clock is read without waiting for the GPU: it runs ahead by the few steps in flight."""
        if not self.schedule_over_time or self.step == 0:
            return self.step
        fraction = (self.elapsed_s() - self.first_step_s) / self.time_limit_s
        return max(self.step, min(int(fraction * self.total_steps), self.total_steps))

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.began

    def take_train_loss(self) -> float:
        """The mean training loss since the last call (a read: it waits for the GPU)."""
        loss = float(self._loss_sum) / max(self._losses, 1)
        self._loss_sum.zero_()
        self._losses = 0
        return loss

    def finish(self) -> float:
        """Wait for the GPU; the training's wall time."""
        self._synchronize()
        self.wall_s = self.elapsed_s()
        return self.wall_s

    def steps_per_s(self) -> float:
        """Steps per second after the first step (it compiles: minutes with cold caches), from finish()."""
        after_first_s = self.wall_s - self.first_step_s
        return (self.step - 1) / after_first_s if self.step > 1 and after_first_s > 0 else float("nan")


def _release_generator_from_capture(device: torch.device) -> None:
    """A capture that fails part way leaves the device's random generator in capture mode (seen on an H200
    with S4, 2026-12-02: every later dropout raised "Offset increment outside graph capture"). Hand it a
    copy of its state, which is not capturing: same seed and offset, so the eager steps go on as before."""
    generator = torch.cuda.default_generators[device.index if device.index is not None else torch.cuda.current_device()]
    generator.graphsafe_set_state(generator.clone_state())


@cache
def matmul_tflops(device: str, dtype_name: str) -> float:
    """The measured dense matmul rate (TFLOP/s) in the training's compute dtype, measured once per worker
    process (4096³ on a GPU, 512³ on the CPU: a fraction of a second). A training step's arithmetic floor
    is its analytic FLOPs at this rate."""
    n, reps = (4096, 10) if device.startswith("cuda") else (512, 3)
    return ceilings.matmul_tflops(device, getattr(torch, dtype_name), n, reps)
