"""The training suites' shared step (suites/training.py): fixed-shape targets, the eager step against a
hand-written AdamW step, and the graph mode's refusals on the CPU (the capture itself runs on the GPU)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from harness.errors import ConfigError
from suites.training import (
    IGNORE,
    TrainingLoop,
    TrainStep,
    make_adamw,
    matmul_tflops,
    parameter_groups,
    resolve_step_mode,
    target_positions,
)


def test_target_positions_keep_order_and_pad_with_ignore() -> None:
    targets = torch.tensor([[IGNORE, 5, IGNORE, 7], [3, IGNORE, IGNORE, IGNORE]])
    positions, labels = target_positions(targets)
    assert positions.tolist() == [[1, 3], [0, 0]]
    assert labels.tolist() == [[5, 7], [3, IGNORE]]
    wider_positions, wider_labels = target_positions(targets, width=3)
    assert wider_labels.tolist() == [[5, 7, IGNORE], [3, IGNORE, IGNORE]]
    assert wider_positions.shape == (2, 3)


def test_positions_give_the_masked_loss() -> None:
    """Cross-entropy over (positions, labels) with padding ignored equals the loss over the boolean mask."""
    torch.manual_seed(0)
    logits_all = torch.randn(3, 6, 5, dtype=torch.float64)
    targets = torch.full((3, 6), IGNORE)
    targets[0, 2], targets[0, 5], targets[1, 1], targets[2, 0], targets[2, 3], targets[2, 4] = 1, 2, 3, 4, 0, 1
    mask = targets != IGNORE
    masked = nn.functional.cross_entropy(logits_all[mask], targets[mask])
    positions, labels = target_positions(targets)
    picked = logits_all.gather(1, positions[..., None].expand(-1, -1, 5)).reshape(-1, 5)
    fixed = nn.functional.cross_entropy(picked, labels.reshape(-1), ignore_index=IGNORE)
    torch.testing.assert_close(fixed, masked, rtol=1e-12, atol=0)


def test_eager_step_is_one_adamw_step_with_clipping() -> None:
    """One TrainStep against the closed form of AdamW's first step: p -= lr * (g/|g| ... ) with clipping."""
    weight = nn.Parameter(torch.tensor([3.0, -4.0], dtype=torch.float64))
    optimizer = torch.optim.AdamW([weight], lr=0.1, weight_decay=0.0, eps=0.0)
    step = TrainStep(
        lambda x: (weight * x).sum(),
        [weight],
        optimizer,
        grad_clip=0.5,
        autocast_dtype=None,
        device=torch.device("cpu"),
        step_mode="eager",
    )
    loss = step(torch.tensor([3.0, -4.0], dtype=torch.float64))
    assert float(loss) == pytest.approx(25.0)
    # gradient (3, -4), norm 5, clipped to norm 0.5; Adam's first step moves each weight by lr * sign(g)
    torch.testing.assert_close(weight.grad, torch.tensor([0.3, -0.4], dtype=torch.float64))
    torch.testing.assert_close(weight.detach(), torch.tensor([2.9, -3.9], dtype=torch.float64))
    step.set_lr(0.01)
    assert optimizer.param_groups[0]["lr"] == 0.01
    assert step.mode == "eager" and step.note == ""


def test_step_modes_on_the_cpu() -> None:
    assert resolve_step_mode("auto", torch.device("cpu")) == "eager"
    assert resolve_step_mode("auto", torch.device("cuda")) == "graph"
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        resolve_step_mode("graph", torch.device("cpu"))
    with pytest.raises(ConfigError, match="must be one of"):
        resolve_step_mode("compiled", torch.device("cpu"))


def test_decay_policy_groups_and_cpu_optimizer() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
    groups = parameter_groups(model, 0.1, "matrices")
    assert [len(g["params"]) for g in groups] == [1, 3]  # the weight matrix; its bias and the norm's two
    optimizer = make_adamw(groups, 1e-3, torch.device("cpu"), "eager")
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.0]
    with pytest.raises(ConfigError, match="decay"):
        parameter_groups(model, 0.1, "some")


def test_a_parameter_with_its_own_lr_moves_by_it_and_follows_the_schedule() -> None:
    # Adam's first step moves every parameter by lr * g / (|g| + eps) = lr in size (bias-corrected moments
    # of one gradient): a closed form for which learning rate each parameter got.
    from harness.config import MixerConfig
    from implementations.s4.reference import S4D

    torch.manual_seed(0)
    layer = S4D(MixerConfig(d_model=4, d_state=4, options=(("ssm_lr", 1e-3),)))
    assert layer.log_dt._lr == 1e-3 and not hasattr(layer.D, "_lr")  # dt, A, B marked; D and C are not
    groups = parameter_groups(layer, 0.0, "matrices")
    assert [g.get("own_lr") for g in groups] == [None, None, 1e-3]
    assert {id(p) for p in groups[2]["params"]} == {id(p) for p in (layer.log_dt, layer.A_log_neg_real,
                                                                     layer.A_imag, layer.B)}  # fmt: skip
    optimizer = make_adamw(groups, 1e-2, torch.device("cpu"), "eager")
    before = {name: p.detach().clone() for name, p in layer.named_parameters()}
    layer(torch.randn(2, 16, 4, dtype=torch.float32)).square().sum().backward()
    optimizer.step()
    moved = {name: (p.detach() - before[name]).abs().max().item() for name, p in layer.named_parameters()}
    assert math.isclose(moved["log_dt"], 1e-3, rel_tol=1e-3) and math.isclose(moved["D"], 1e-2, rel_tol=1e-3)
    assert math.isclose(moved["out_proj.weight"], 1e-2, rel_tol=1e-3)

    step = TrainStep(lambda: torch.zeros(()), list(layer.parameters()), optimizer, grad_clip=0.0,
                     autocast_dtype=None, device=torch.device("cpu"), step_mode="eager")  # fmt: skip
    step.set_lr(5e-3)  # the schedule at half its peak: every group at half its own
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([5e-3, 5e-3, 5e-4])
    with pytest.raises(ConfigError, match="ssm_lr"):
        S4D(MixerConfig(d_model=4, d_state=4, options=(("ssm_lr", 0),)))


def test_matmul_rate_is_measured_and_positive() -> None:
    rate = matmul_tflops("cpu", "float32")
    assert 1e-4 < rate < 100  # a CPU core does between 0.1 GFLOP/s and 100 TFLOP/s of fp32


def _linear_step(compile: bool, seed: int = 0) -> tuple[TrainStep, nn.Linear]:
    torch.manual_seed(seed)
    model = nn.Linear(8, 3)
    optimizer = make_adamw(parameter_groups(model, 0.0, "all"), 1e-2, torch.device("cpu"), "eager")

    def loss_of(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(nn.functional.gelu(model(x)), y)

    step = TrainStep(
        loss_of,
        list(model.parameters()),
        optimizer,
        grad_clip=1.0,
        autocast_dtype=None,
        device=torch.device("cpu"),
        step_mode="eager",
        compile=compile,
    )
    return step, model


def test_compiled_step_matches_the_uncompiled_one() -> None:
    """torch.compile (inductor, here its CPU code) fuses kernels but computes the same step: after three
    steps the weights agree to fp32 rounding (fused kernels sum in another order: 1e-5 relative)."""
    x = torch.randn(16, 8, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 3, (16,), generator=torch.Generator().manual_seed(2))
    plain, plain_model = _linear_step(compile=False)
    fused, fused_model = _linear_step(compile=True)
    for _ in range(3):
        plain(x, y)
        fused(x, y)
    assert fused.compiled and fused.note == ""
    torch.testing.assert_close(fused_model.weight, plain_model.weight, rtol=1e-5, atol=1e-6)


def test_a_failed_compile_runs_uncompiled_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuses(*_: object, **__: object):
        def compiled(*_: object) -> torch.Tensor:
            raise RuntimeError("backend refused\nsecond line")

        return compiled

    monkeypatch.setattr(torch, "compile", refuses)
    step, model = _linear_step(compile=True)
    before = model.weight.detach().clone()
    step(torch.randn(4, 8), torch.tensor([0, 1, 2, 0]))
    assert not step.compiled
    assert step.note == "compile failed, uncompiled: RuntimeError: backend refused"
    assert not torch.equal(model.weight, before)  # the step itself still ran


def test_training_loop_bookkeeping() -> None:
    """The shared loop: the scheduled lr reaches the optimizer, the loss is averaged between evaluations,
    evaluations fall every eval_every steps and at the last, and steps/s leaves the first step out."""
    step, _ = _linear_step(compile=False)
    loop = TrainingLoop(
        step,
        lr=0.1,
        schedule=lambda s: 1.0 / (s + 1),
        total_steps=5,
        eval_every=2,
        time_limit_s=0.0,
        device=torch.device("cpu"),
    )
    x, y = torch.randn(4, 8), torch.tensor([0, 1, 2, 0])
    due = []
    lrs = []
    while loop.step < loop.total_steps:
        lrs.append(loop.lr_now)
        loop.run(x, y)
        assert step.optimizer.param_groups[0]["lr"] == pytest.approx(lrs[-1])
        due.append(loop.evaluation_due)
        if loop.evaluation_due:
            assert math.isfinite(loop.take_train_loss())
    assert lrs == pytest.approx([0.1, 0.05, 0.1 / 3, 0.025, 0.02])
    assert due == [False, True, False, True, True]
    assert loop.take_train_loss() == 0.0  # nothing summed since the last read
    wall = loop.finish()
    assert wall >= loop.first_step_s > 0
    assert loop.steps_per_s() == pytest.approx(4 / (wall - loop.first_step_s))
    assert not loop.out_of_time


def test_schedule_over_time_moves_with_the_clock_and_ends_at_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Schedule unit "time": the schedule stands at the larger of the step and the elapsed fraction of the
    time limit times total_steps, so a run cut by its limit reaches the cosine's end; never past the end."""
    step, _ = _linear_step(compile=False)
    clock = [100.0]
    monkeypatch.setattr("suites.training.time.perf_counter", lambda: clock[0])
    loop = TrainingLoop(
        step,
        lr=1.0,
        schedule=lambda position: float(position),
        total_steps=1000,
        eval_every=10,
        time_limit_s=10.0,
        device=torch.device("cpu"),
        schedule_over_time=True,
    )
    x, y = torch.randn(4, 8), torch.tensor([0, 1, 2, 0])
    assert loop.schedule_position() == 0
    clock[0] += 2.0  # the first step (compiling) takes 2 s: not counted against the limit
    loop.run(x, y)
    assert loop.first_step_s == pytest.approx(2.0)
    assert loop.schedule_position() == 1  # no time since the first step: the step leads
    clock[0] += 2.5  # a quarter of the limit
    assert loop.schedule_position() == 250
    assert loop.lr_now == pytest.approx(250.0)
    clock[0] += 20.0  # far past the limit: the schedule's end, not beyond
    assert loop.schedule_position() == 1000
    loop.run(x, y)
    assert loop.out_of_time
    with pytest.raises(ConfigError, match="needs a time limit"):
        TrainingLoop(
            step,
            lr=1.0,
            schedule=float,
            total_steps=10,
            eval_every=1,
            time_limit_s=0.0,
            device=torch.device("cpu"),
            schedule_over_time=True,
        )
