"""Recall training end to end on the CPU: attention learns a tiny MQAR; S4, a time-invariant
convolution, cannot select the data tokens of a tiny selective copy that attention copies; rows reach
Parquet through the runner; presets expand to stable jobs; bad input is a one-line error.

Sizes are the smallest at which the published contrasts show within seconds on 2 cores (measured:
attention reaches 95% on the MQAR below in 300-600 steps over seeds; S4 sits near 45-65% after 400
steps of selective copying, where attention needs about 525 steps for 95%)."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from harness import registry
from harness.cli import cli
from suites.recall import references
from suites.recall.presets import build_jobs, load_preset, pick_implementation
from suites.recall.train import cosine_with_warmup, run_job

TINY_MQAR = {"vocab_size": 32, "seq_len": 16, "n_pairs": 4}
TINY_COPY = {"vocab_size": 30, "seq_len": 32, "n_data": 4}


@pytest.fixture(autouse=True)
def _memory_only_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQBENCH_CACHE_DIR", "off")


def _train(task: str, task_params: dict, implementation: str, max_steps: int, **train: object) -> list[dict]:
    family = registry.get(implementation).family
    return run_job(
        task=task,
        task_params=task_params,
        implementation=implementation,
        config={"d_model": 64, "n_heads": 1 if family == "attention" else 4},
        n_layers=2,
        model={},
        lr=3e-3,
        weight_decay=0.1,
        seed=0,
        batch=64,
        train={"n_train": 0, "n_test": 500, "max_steps": max_steps, "eval_every": 25, **train},
        device="cpu",
    )


def test_attention_solves_a_tiny_mqar() -> None:
    rows = _train("mqar", TINY_MQAR, "attention/reference", max_steps=800, target_accuracy=0.95)
    (row,) = rows
    assert row["accuracy"] >= 0.95, row
    assert row["stop_reason"] == "target accuracy reached" and row["steps"] < 800
    assert row["eval_seq_len"] == row["seq_len"] == 16 and row["position"] == "learned"
    assert row["params"] > 0 and row["wall_s"] > 0 and math.isfinite(row["loss"])


def test_s4_cannot_select_what_attention_copies() -> None:
    if not any(impl.family == "s4" for impl in registry.implementations()):
        pytest.skip("the S4 family is not registered in this checkout")
    s4 = _train("selective-copying", TINY_COPY, "s4/reference", max_steps=400, eval_every=400)[0]
    attention = _train("selective-copying", TINY_COPY, "attention/reference", max_steps=800, target_accuracy=0.95)[0]
    assert attention["accuracy"] >= 0.95, attention
    # S4 learns something (chance is 1/28) but stays far from attention within the same budget.
    assert 0.1 < s4["accuracy"] < 0.8, s4


def test_extrapolation_rows_and_state_size() -> None:
    rows = _train(
        "selective-copying-seed", {}, "attention/reference", max_steps=3, eval_every=3, n_test=32, target_accuracy=2.0
    )
    assert [r["eval_seq_len"] for r in rows] == [64, 128]  # the seeds' variant is tested at L 128 too
    assert all(r["status"] == "ok" and 0.0 <= r["accuracy"] <= 1.0 for r in rows)
    assert '"n_data": [5, 10]' in rows[1]["eval_params"]
    # attention's state is its KV cache: 2 layers x 2 (K, V) x L x d_model floats, growing with L
    assert rows[0]["state_bytes_analytic"] == 2 * 2 * 64 * 64 * 4
    assert rows[1]["state_bytes_analytic"] == 2 * rows[0]["state_bytes_analytic"]


def test_cosine_schedule_with_warmup() -> None:
    assert cosine_with_warmup(0, 100, 10, 0.0) == pytest.approx(0.1)
    assert cosine_with_warmup(9, 100, 10, 0.0) == pytest.approx(1.0)
    assert cosine_with_warmup(55, 100, 10, 0.0) == pytest.approx(0.5)  # halfway through the cosine
    assert cosine_with_warmup(100, 100, 10, 0.2) == pytest.approx(0.2)


def test_rows_are_written_through_the_runner(tmp_path) -> None:
    from harness.results import read_results
    from harness.runner import run_jobs

    preset = load_preset("recall-cpu")
    jobs = build_jobs(preset, device="cpu", tasks=("mqar",), overrides={"train": {"max_steps": 4, "n_test": 16}})
    summary = run_jobs(jobs, tmp_path, command="pytest", device="cpu", measure_ceilings=False)
    assert summary.counts() == {"ok": 1}
    frame = read_results(tmp_path)
    assert len(frame) == 1
    row = frame.iloc[0]
    assert row["suite"] == "recall" and row["status"] == "ok" and row["job_id"] == jobs[0].job_id
    assert row["task"] == "mqar" and row["implementation"] == "attention/reference" and row["family"] == "attention"
    assert row["seq_len"] == row["eval_seq_len"] == 16 and row["vocab_size"] == 32 and row["n_layers"] == 2
    assert row["d_model"] == 64 and row["lr"] == pytest.approx(3e-3) and row["seed"] == 0 and row["steps"] == 4
    assert row["mode"] == "train" and row["dtype"] == "float32"
    for column in ("accuracy", "loss", "wall_s", "params", "state_bytes_analytic"):
        assert math.isfinite(float(row[column])), column


def test_preset_jobs_have_stable_ids_and_expand_the_grid() -> None:
    preset = load_preset("zoology-fig2")
    first = build_jobs(preset, device="cpu", mixers=("attention/reference",))
    again = build_jobs(preset, device="cpu", mixers=("attention/reference",))
    assert [j.job_id for j in first] == [j.job_id for j in again]
    assert len(first) == 4 * 4 * 4  # (L, pairs) cells x d_model x lr
    assert len({j.job_id for j in first}) == len(first)
    assert {(j.params["seq_len"], j.params["task_params"]["n_pairs"], j.params["batch"]) for j in first} == {
        (64, 4, 512),
        (128, 8, 512),
        (256, 16, 256),
        (512, 64, 128),
    }
    assert {j.params["config"]["n_heads"] for j in first} == {1}  # Zoology's attention has one head
    mad = build_jobs(load_preset("mad"), device="cpu", mixers=("attention/reference",))
    assert len(mad) == (11 + 11 + 14 + 13 + 11 + 6) * 3 * 2  # settings x lr x weight decay


def test_family_entries_pick_the_reference_on_cpu() -> None:
    assert pick_implementation("attention", "cpu").name == "attention/reference"
    if any(impl.family == "xlstm" for impl in registry.implementations()):
        assert "mlstm" in pick_implementation("xlstm:mlstm", "cpu").name


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--task", "mqr"], "unknown recall task 'mqr'; did you mean mqar?"),
        (["--name", "attention/nope"], "unknown implementation 'attention/nope'"),
        (["--family", "nope"], "no implementation of family 'nope'"),
        (["--task", "mqar", "--task-param", "vocab_size=16"], "vocab_size: MQAR needs vocab_size > seq_len"),
        (["--task", "mqar", "--task-param", "n_pairs=5"], "n_pairs: 5 pairs need seq_len >= 4*n_pairs = 20"),
        (["--preset", "nope"], "unknown recall preset 'nope'"),
    ],
)
def test_bad_input_is_a_one_line_error(arguments: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["run", "recall", "--dry-run", *arguments])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.output


def test_step_mode_and_compile_from_the_command_line() -> None:
    """--step-mode and --compile replace the preset's training settings; a cell that names its own keeps it."""
    result = CliRunner().invoke(cli, ["run", "recall", "--dry-run", "--step-mode", "eager", "--compile"])
    assert result.exit_code == 0, result.output
    trains = [json.loads(line)["train"] for line in result.output.splitlines() if line.startswith("{")]
    assert trains and all(t["step_mode"] == "eager" and t["compile"] is True for t in trains)
    speed = CliRunner().invoke(cli, ["run", "recall", "--preset", "train-speed", "--device", "cpu", "--dry-run",
                                     "--step-mode", "auto", "--family", "attention"])  # fmt: skip
    modes = {json.loads(line)["setting"]: json.loads(line)["train"]["step_mode"] for line in speed.output.splitlines()}
    assert modes == {"eager": "eager", "graph": "graph", "graph-compiled": "graph"}
    bad = CliRunner().invoke(cli, ["run", "recall", "--dry-run", "--step-mode", "compiled"])
    assert bad.exit_code == 2 and "'compiled' is not one of" in bad.output


def test_published_reference_points_carry_their_sources() -> None:
    table1 = {p.model: p.accuracy for p in references.reference_points("selective-copying")}
    assert table1["S4 (no gate)"] == 18.3 and table1["Mamba (Mamba block with S6)"] == 99.8
    seed = references.reference_points("selective-copying-seed")[0]
    assert seed.accuracy == 96.31 and seed.eval_seq_len == 128
    assert all(p.source for p in references.REFERENCE_POINTS)


def test_best_per_cell_and_mad_score_follow_the_papers_definitions() -> None:
    import pandas as pd

    from suites.recall.analysis import best_per_cell, mad_scores

    def row(task: str, setting: str, lr: float, accuracy: float, status: str = "ok") -> dict:
        return {"task": task, "setting": setting, "implementation": "m", "d_model": 128, "seq_len": 128,
                "eval_seq_len": 128, "lr": lr, "accuracy": accuracy, "status": status}  # fmt: skip

    rows = pd.DataFrame(
        [
            row("mad-compression", "baseline", 1e-4, 0.5),
            row("mad-compression", "baseline", 1e-3, 0.7),  # best over lr: 0.7
            row("mad-compression", "baseline", 5e-4, 0.9, status="oom"),  # failed rows never count
            row("mad-compression", "vocab_size=32", 1e-4, 0.3),
            row("mad-memorization", "baseline", 1e-4, 1.0),
        ]
    )
    best = best_per_cell(rows)
    assert sorted(best["accuracy"]) == [0.3, 0.7, 1.0]
    assert best.loc[best["setting"] == "baseline"].query("task == 'mad-compression'")["lr"].item() == 1e-3
    scores = mad_scores(rows).set_index("task")["mad_score"]
    assert scores["mad-compression"] == pytest.approx((0.7 + 0.3) / 2)  # mean over settings of the best
    assert scores["mad-memorization"] == pytest.approx(1.0)
    assert scores["all"] == pytest.approx((0.5 + 1.0) / 2)  # mean over tasks


def test_mamba2_config_round_trips_through_job_params() -> None:
    # Regression (seen on the H100): job params carried head_dim = d_model // n_heads, which Mamba-2
    # (head_dim = d_inner // n_heads) rejected when the worker rebuilt the config.
    from harness.config import MixerConfig

    preset = load_preset("recall-cpu")
    jobs = build_jobs(preset, device="cpu", tasks=("mqar",), mixers=("mamba2/reference",))
    assert jobs
    for job in jobs:
        registry.get("mamba2/reference").create(MixerConfig.from_dict(job.params["config"]))


def test_decay_matrices_leaves_the_dynamics_alone() -> None:
    """decay = "matrices": weight matrices and embeddings decay; biases, norms and the parameters a mixer
    marks `_no_weight_decay` (Mamba's A_log and D, its dt bias as a bias) do not; "all" decays all."""
    import torch

    from harness.config import MixerConfig
    from suites.recall.model import ModelSettings, RecallModel
    from suites.training import parameter_groups

    impl = registry.get("mamba/reference")
    net = RecallModel(16, 32, lambda: impl.create(MixerConfig(d_model=32)), ModelSettings(n_layers=1, position="none"))
    names = {id(p): n for n, p in net.named_parameters()}
    decayed, kept = parameter_groups(net, 0.1, "matrices")
    assert decayed["weight_decay"] == 0.1 and kept["weight_decay"] == 0.0
    decayed_names = {names[id(p)] for p in decayed["params"]}
    kept_names = {names[id(p)] for p in kept["params"]}
    assert {"blocks.0.mixer.A_log", "blocks.0.mixer.D", "blocks.0.mixer.dt_proj.bias"} <= kept_names
    assert {"blocks.0.mixer.in_proj.weight", "embedding.weight"} <= decayed_names
    assert not decayed_names & kept_names and "head.weight" not in decayed_names | kept_names  # tied: once
    (everything,) = parameter_groups(net, 0.1, "all")
    assert len(everything["params"]) == len(decayed["params"]) + len(kept["params"])
    # Why it matters: AdamW's decay alone moves a parameter by -lr * wd * p per step.
    bias = torch.tensor(-6.9)  # softplus^-1(0.001): a memory of ~1000 tokens
    after = bias * (1 - 2e-3 * 0.1) ** 6000
    assert 0.1 < torch.nn.functional.softplus(after) < 0.15  # dt ~0.12: a memory of under 10 tokens


def test_fresh_batches_follow_the_curriculum_and_do_not_depend_on_threads() -> None:
    import torch

    from suites.recall.tasks import get_task
    from suites.recall.train import FreshBatches, curriculum_params, split_seed

    spec = get_task("selective-copying")
    params = spec.params(vocab_size=16, seq_len=64, n_data=4)
    stages = curriculum_params(spec, params, ({"steps": 2, "seq_len": 16}, {"steps": 1, "seq_len": 32}))
    assert [(first, p["seq_len"]) for first, p in stages] == [(0, 16), (2, 32), (3, 64)]
    stream = FreshBatches(spec, stages, 4, 7, 5, torch.device("cpu"))
    try:
        got = [stream.next() for _ in range(5)]
    finally:
        stream.close()
    assert [inputs.shape[1] for inputs, _, _ in got] == [16, 16, 32, 64, 64]
    expected = spec.examples_uncached("train", params, 4, split_seed(7, "train", 4))
    inputs, positions, labels = got[4]
    assert torch.equal(inputs, expected.inputs)
    # the labels are the targets at their positions, in order (4 data tokens to copy per example)
    assert torch.equal(labels, expected.targets[expected.targets != -100].reshape(4, 4))
    assert torch.equal(expected.targets.gather(1, positions), labels)


def test_ending_a_stage_early_shifts_the_later_stages_and_keeps_batches_reproducible() -> None:
    """end_stage(s): batch s starts the next stage, the stages after start earlier by as much, and every
    batch is still the one its step and stage give (the batches made ahead of s are made again)."""
    import torch

    from suites.recall.tasks import get_task
    from suites.recall.train import FreshBatches, curriculum_params, split_seed

    spec = get_task("selective-copying")
    params = spec.params(vocab_size=16, seq_len=64, n_data=4)
    stages = curriculum_params(spec, params, ({"steps": 50, "seq_len": 16}, {"steps": 50, "seq_len": 32}))
    stream = FreshBatches(spec, stages, 4, 7, 120, torch.device("cpu"))
    try:
        shapes = [stream.next()[0].shape[1] for _ in range(3)]
        stream.end_stage(3)  # the L 16 stage met its target after 3 steps
        assert [first for first, _ in stream.stages] == [0, 3, 53]
        shapes += [stream.next()[0].shape[1] for _ in range(2)]
        inputs = stream.next()[0]  # batch 5, in the L 32 stage now
        stream.end_stage(6)
        assert [first for first, _ in stream.stages] == [0, 3, 6]
        after = stream.next()[0]
    finally:
        stream.close()
    assert shapes == [16, 16, 16, 32, 32] and inputs.shape[1] == 32 and after.shape[1] == 64
    stage_32 = spec.params(**{**params, "seq_len": 32})
    assert torch.equal(inputs, spec.examples_uncached("train", stage_32, 4, split_seed(7, "train", 5)).inputs)
    assert torch.equal(after, spec.examples_uncached("train", params, 4, split_seed(7, "train", 6)).inputs)
    assert stream.stage_at(2) == 0 and stream.stage_at(3) == 1 and stream.stage_at(6) == 2


def test_a_gated_stage_ends_when_its_own_test_set_is_solved() -> None:
    """until_accuracy: the stage is scored on a test set of its own length at each evaluation (the curve's
    stage_accuracy) and ends at the first that meets the target; a target of 1e-6 is met at once."""
    import json

    rows = _train(
        "selective-copying",
        TINY_COPY,
        "attention/reference",
        max_steps=8,
        eval_every=2,
        n_test=16,
        target_accuracy=2.0,
        curriculum=[{"steps": 100, "seq_len": 16, "until_accuracy": 1e-6}],
    )
    curve = json.loads(rows[0]["curve"])
    assert [point["train_seq_len"] for point in curve] == [16, 32, 32, 32]
    assert "stage_accuracy" in curve[0] and "stage_accuracy" not in curve[1]  # the job's own stage: no gate
    assert rows[0]["steps"] == 8  # the stage's 100 steps did not run


def test_rows_carry_the_learning_curve() -> None:
    import json

    rows = _train(
        "selective-copying",
        TINY_COPY,
        "mamba/reference",
        max_steps=6,
        eval_every=2,
        n_test=16,
        target_accuracy=2.0,
        decay="matrices",
        curriculum=[{"steps": 2, "seq_len": 16}],
    )
    (row,) = rows
    curve = json.loads(row["curve"])
    assert [point["step"] for point in curve] == [2, 4, 6]
    assert [point["train_seq_len"] for point in curve] == [16, 32, 32]
    assert all(0.0 <= p["test_accuracy"] <= 1.0 and math.isfinite(p["train_loss"]) for p in curve)
    assert row["accuracy"] == max(p["test_accuracy"] for p in curve) and row["steps_per_s"] > 0
    assert row["decay"] == "matrices" and json.loads(row["curriculum"]) == [{"steps": 2, "seq_len": 16}]
    assert row["step_mode"] == "eager" and row["step_mode_note"] == ""  # auto on the CPU
    # The floor: 2 Mamba layers fwd+bwd (the family's cost model) plus the tied head at the 4 data tokens of
    # each of the 64 examples, 3 x its forward 2 * 64 * 4 * d_model 64 * vocab 30; at the measured rate.
    mamba = registry.get("mamba/reference")
    from harness.config import MixerConfig

    mixers = 2 * mamba.flops(MixerConfig.from_dict({"d_model": 64, "n_heads": 4}), 64, 32, "fwd_bwd")
    assert row["step_flops"] == pytest.approx(mixers + 3 * 2 * 64 * 4 * 64 * 30)
    assert row["step_floor_ms"] == pytest.approx(row["step_flops"] / (row["matmul_tflops"] * 1e12) * 1e3)


def test_zoology_recipe_options() -> None:
    """Zoology's recipe, point by point (HazyResearch/zoology model.py and train.py): the identity state
    mixer adds norm(x) back into the residual stream; every linear layer N(0, 0.02) with zero biases (the
    Mamba block's dt bias too) and out_proj at 0.02 / sqrt(2 n_layers); embedding dropout; the cosine
    stepped once per epoch, matching torch's CosineAnnealingLR(T_max=epochs) stepped after each epoch."""
    import torch

    from harness.config import MixerConfig
    from suites.recall.model import Block, ModelSettings, RecallModel
    from suites.recall.train import TrainSettings, lr_schedule

    class Silent(torch.nn.Module):  # a mixer that outputs zeros: the block is then its second half alone
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros_like(x)

    block = Block(Silent(), 8, ModelSettings(mlp="identity"))
    x = torch.randn(2, 5, 8)
    assert torch.allclose(block(x), x + torch.nn.functional.layer_norm(x, (8,)), atol=1e-6)

    torch.manual_seed(0)
    impl = registry.get("mamba/reference")
    settings = ModelSettings(n_layers=2, position="none", init="zoology", embedding_dropout=0.1)
    net = RecallModel(16, 256, lambda: impl.create(MixerConfig(d_model=256)), settings)
    mixer = net.blocks[0].mixer
    assert torch.count_nonzero(mixer.dt_proj.bias) == 0  # dt = softplus(0) at the start
    assert abs(float(mixer.in_proj.weight.detach().std()) - 0.02) < 0.001
    assert abs(float(mixer.out_proj.weight.detach().std()) - 0.01) < 0.001  # 0.02 / sqrt(2 * 2)
    assert net.embedding_dropout.p == 0.1

    epochs, steps_per_epoch, lr = 5, 3, 1e-3
    train = TrainSettings(epochs=epochs, schedule_unit="epoch", warmup_frac=0.0)
    factor = lr_schedule(train, epochs * steps_per_epoch, steps_per_epoch)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    reference = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=0.0)
    for epoch in range(epochs):
        for step in range(epoch * steps_per_epoch, (epoch + 1) * steps_per_epoch):
            assert math.isclose(lr * factor(step), optimizer.param_groups[0]["lr"], rel_tol=1e-9, abs_tol=1e-15)
        optimizer.step()
        reference.step()


def test_mad_recipe_options() -> None:
    """MAD's reporting, as its code runs it: macro accuracy (torchmetrics' MulticlassAccuracy default),
    checked on a hand-counted case; the kept checkpoint is the lowest test loss; an output bias."""
    import torch

    from suites.recall.model import ModelSettings, RecallModel
    from suites.recall.train import macro_accuracy

    # targets 0,0,0,1,1 predicted 0,0,1,1,2: class 0 recall 2/3, class 1 recall 1/2; class 2, only predicted,
    # scores 0; class 3 never occurs and is left out (torchmetrics weighs out classes with tp + fp + fn = 0).
    wanted, guessed = torch.tensor([0, 0, 0, 1, 1]), torch.tensor([0, 0, 1, 1, 2])
    counts = [torch.bincount(t, minlength=4) for t in (wanted[guessed == wanted], guessed, wanted)]
    assert math.isclose(macro_accuracy(*counts), (2 / 3 + 1 / 2 + 0.0) / 3)
    net = RecallModel(16, 8, lambda: torch.nn.Identity(), ModelSettings(tied=False, head_bias=True, position="none"))
    assert net.head.bias is not None and net.head.weight is not net.embedding.weight

    rows = _train(
        "mqar", TINY_MQAR, "attention/reference", max_steps=6, eval_every=2, n_test=32,
        target_accuracy=2.0, select="loss", average="macro",
    )  # fmt: skip
    import json

    curve = json.loads(rows[0]["curve"])
    best = min(curve, key=lambda point: point["test_loss"])
    assert rows[0]["best_step"] == best["step"] and rows[0]["loss"] == best["test_loss"]
    assert rows[0]["accuracy"] == best["test_accuracy"]


def test_select_keeps_the_later_of_equal_accuracies_and_last_keeps_the_last() -> None:
    from suites.recall.train import replaces_best

    nan = float("nan")
    # a training at 100% from its first perfect evaluation on: the later, better-fitted weights replace the
    # first (with ">" alone, an 18-minute training tested its weights from step 3000 at every longer length)
    assert replaces_best("accuracy", 1.0, 0.001, 1.0, 0.003)
    assert not replaces_best("accuracy", 1.0, 0.004, 1.0, 0.003)
    assert not replaces_best("accuracy", 0.9, 0.0001, 1.0, 0.003)  # accuracy first, then loss
    assert not replaces_best("loss", 1.0, nan, 0.5, 0.7)  # a diverged evaluation never wins on loss
    assert replaces_best("loss", 0.0, nan, -1.0, nan)  # but the first one is kept: there is no other
    assert replaces_best("last", 0.1, 9.0, 1.0, 0.001)

    rows = _train("mqar", TINY_MQAR, "attention/reference", max_steps=6, eval_every=2, n_test=32,
                  target_accuracy=2.0, select="last")  # fmt: skip
    curve = json.loads(rows[0]["curve"])
    assert rows[0]["best_step"] == curve[-1]["step"] == 6
    assert rows[0]["accuracy"] == curve[-1]["test_accuracy"] and rows[0]["loss"] == curve[-1]["test_loss"]


@pytest.mark.parametrize(
    ("train", "field"),
    [
        ({"decay": "some"}, "decay"),
        ({"curriculum": [{"seq_len": 64}]}, "curriculum"),  # a stage without its step count
        ({"curriculum": [{"steps": 5, "until_accuracy": 1.5}]}, "until_accuracy"),
        ({"schedule_unit": "minute"}, "schedule_unit"),
        ({"schedule_unit": "time"}, "needs a time limit"),
        ({"select": "best"}, "select"),  # classify's name; recall's are accuracy, loss, last
        ({"average": "weighted"}, "average"),
        ({"step_mode": "compiled"}, "step_mode"),
        ({"compile": "yes"}, "compile"),  # a string, not true/false
        ({"next_token_loss": 1}, "next_token_loss"),
        ({"no_such_setting": 1}, "no_such_setting"),
    ],
)
def test_bad_training_settings_name_their_field(train: dict, field: str) -> None:
    from harness.errors import ConfigError
    from suites.recall.train import TrainSettings

    with pytest.raises(ConfigError, match=field):
        TrainSettings.from_dict(train)


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ({"n_train": 32, "curriculum": [{"steps": 2, "seq_len": 16}]}, "needs fresh batches"),
        ({"schedule_unit": "epoch"}, "needs a training set"),  # _train's default: a fresh batch every step
    ],
)
def test_settings_that_need_another_kind_of_training_are_refused(train: dict, message: str) -> None:
    from harness.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        _train("selective-copying", TINY_COPY, "attention/reference", max_steps=2, **train)


def test_a_family_may_train_in_its_own_dtype() -> None:
    """dtype_by_family (recall-quick's LSTM) at the top level or in a [[grid]]: that family's jobs alone."""
    preset = load_preset("recall-cpu")
    grid = {**preset["grid"][0], "mixers": ["lstm", "attention"], "dtype_by_family": {"lstm": "float64"}}
    jobs = build_jobs({**preset, "grid": [grid]}, device="cpu")
    assert {registry.get(j.implementation).family: j.params["dtype"] for j in jobs} == {
        "lstm": "float64",
        "attention": "float32",
    }
    from harness.errors import UserError
    from suites.recall.presets import check_preset

    with pytest.raises(UserError, match=r"dtype_by_family\.lstm: unknown dtype 'bf17'"):
        check_preset({**preset, "dtype_by_family": {"lstm": "bf17"}})
    assert load_preset("recall-quick")["dtype_by_family"] == {"lstm": "float32"}


def test_an_unknown_setting_is_a_one_line_error() -> None:
    result = CliRunner().invoke(
        cli, ["run", "recall", "--preset", "mamba-table1", "--device", "cpu", "--setting", "nope"]
    )
    assert result.exit_code == 2
    assert result.output == (
        "Error: --setting 'nope': the selected cells are named curriculum, curriculum-gated, "
        "curriculum-gated-fp32, no-curriculum, paper-recipe\n"
    )


def test_next_token_loss_trains_every_position_and_tests_the_answer_alone() -> None:
    import torch

    from suites.recall.data import IGNORE
    from suites.recall.train import next_token_targets

    inputs = torch.tensor([[3, 0, 5, 7, 0], [4, 4, 0, 9, 0]])
    targets = torch.full_like(inputs, IGNORE)
    targets[:, -1] = torch.tensor([5, 9])  # induction heads: the token after the first trigger 0
    filled = next_token_targets(inputs, targets)
    assert filled.tolist() == [[0, 5, 7, 0, 5], [4, 0, 9, 0, 9]]  # shifted inputs, the answer kept last
    assert (targets[:, :-1] == IGNORE).all()  # the input is not changed

    params = {"vocab_size": 16, "seq_len": 32}
    rows = _train("induction-heads", params, "mamba/reference", max_steps=2, n_test=16, next_token_loss=True,
                  eval_every=2, target_accuracy=2.0)  # fmt: skip
    assert rows[0]["next_token_loss"] is True and rows[0]["select"] == "accuracy"
    # tests score the answer alone: n_test answers, so accuracy is a multiple of 1/16
    assert math.isclose(rows[0]["accuracy"] * 16, round(rows[0]["accuracy"] * 16))
    # the training loss covers 32 positions, 31 of them random tokens: near log(16) at initialisation
    assert abs(rows[0]["train_loss"] - math.log(16)) < 0.5
