"""Saved recall models (suites/recall/checkpoint.py) and their retest (suites/recall/retest.py): a retest
of an unchanged checkpoint reproduces the rows training wrote (same weights, same test sets, same
device and dtype); weights move between implementations by name; the decay horizons of a Mamba layer
whose dt is constant are the closed form 1 / (dt |A|); bad checkpoints are one-line errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from harness.cli import cli
from harness.errors import UserError
from implementations.mamba.reference import inverse_softplus
from suites.recall.checkpoint import (
    CHECKPOINT_DIR_ENV,
    Checkpoint,
    job_checkpoint_path,
    load_checkpoint,
    match_state_dict,
)
from suites.recall.retest import decay_horizons, rebuild, retest
from suites.recall.tasks import get_task
from suites.recall.train import SUITE, TARGET, build_model, run_job

INDUCTION = {"vocab_size": 16, "seq_len": 32}


@pytest.fixture(autouse=True)
def _memory_only_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQBENCH_CACHE_DIR", "off")


def _job(implementation: str = "mamba/reference") -> dict:
    return {
        "task": "induction-heads",
        "task_params": INDUCTION,
        "implementation": implementation,
        "config": {"d_model": 32},
        "n_layers": 2,
        "model": {},
        "lr": 3e-3,
        "weight_decay": 0.0,
        "seed": 0,
        "batch": 16,
        "train": {"n_train": 0, "n_test": 64, "max_steps": 20, "eval_every": 10},
        "extrapolate": [{"seq_len": 64}],
        "device": "cpu",
        "progress": False,
    }


def test_a_retest_of_a_saved_model_reproduces_its_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CHECKPOINT_DIR_ENV, str(tmp_path))
    job = _job()
    rows = run_job(**job)
    path = job_checkpoint_path(SUITE, TARGET, job)
    assert path is not None and path.parent == tmp_path and path.is_file()
    checkpoint = load_checkpoint(path)
    assert checkpoint.job["implementation"] == "mamba/reference" and checkpoint.step == rows[0]["best_step"]
    assert checkpoint.accuracy == rows[0]["accuracy"]
    again = retest(checkpoint, [32, 64])
    # The same float32 weights, examples and device: the accuracy is a count of the same argmaxes; the
    # loss a sum whose order follows the batch size (16 then, 2048 now), so float32 rounding apart.
    for row, retested in zip(rows, again, strict=True):
        assert retested["seq_len"] == row["eval_seq_len"] and retested["n_test"] == row["n_test"]
        assert retested["accuracy"] == row["accuracy"]
        assert retested["loss"] == pytest.approx(row["loss"], rel=1e-5)
    # without longer tests too, the saved weights are the best evaluation's, whose accuracy the row reports
    job = {**_job(), "extrapolate": [], "seed": 1}
    (row,) = run_job(**job)
    saved = load_checkpoint(job_checkpoint_path(SUITE, TARGET, job))
    assert saved.step == row["best_step"] and next(retest(saved, [32]))["accuracy"] == row["accuracy"]
    # a length training did not test gets its own examples, from the same data seed
    (new,) = retest(checkpoint, [48])
    assert new["seq_len"] == 48 and 0.0 <= new["accuracy"] <= 1.0 and math.isfinite(new["loss"])


def test_without_the_environment_variable_nothing_is_saved(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CHECKPOINT_DIR_ENV, raising=False)
    assert job_checkpoint_path(SUITE, TARGET, _job()) is None


def test_weights_move_between_implementations_by_name() -> None:
    weight, bias = torch.randn(3, 2), torch.randn(3)
    saved = {"blocks.0.mixer.mamba.in_proj.weight": weight, "blocks.0.mixer.mamba.in_proj.bias": bias}
    target = {"blocks.0.mixer.in_proj.weight": torch.zeros(3, 2), "blocks.0.mixer.in_proj.bias": torch.zeros(3)}
    renamed = match_state_dict(saved, target)
    assert renamed["blocks.0.mixer.in_proj.weight"] is weight and renamed["blocks.0.mixer.in_proj.bias"] is bias
    ambiguous = {"a.x.w": torch.zeros(2), "a.y.w": torch.zeros(2)}
    with pytest.raises(UserError, match=r"2 saved weights \(a\.x\.w, a\.y\.w\) for a\.w"):
        match_state_dict(ambiguous, {"a.w": torch.zeros(2)})
    with pytest.raises(UserError, match=r"no saved weight for a\.w"):
        match_state_dict({"a.w": torch.zeros(3)}, {"a.w": torch.zeros(2)})  # a shape that differs is no match


def test_decay_horizons_of_a_constant_dt_are_the_closed_form() -> None:
    spec = get_task("induction-heads")
    params = spec.params(**INDUCTION)
    net, _, _ = build_model(spec, params, "mamba/reference", {"d_model": 32, "d_state": 8}, 2, {}, None, None, 32)
    dt = 0.01
    net = net.double()  # the bias set in float64: in float32 softplus(bias) is dt to ~5e-7 only
    with torch.no_grad():
        for block in net.blocks:
            block.mixer.dt_proj.weight.zero_()  # dt no longer depends on the token: dt = softplus(bias)
            block.mixer.dt_proj.bias.fill_(float(inverse_softplus(torch.tensor(dt, dtype=torch.float64))))
    tokens = spec.examples("test", params, 4, 0, None).inputs
    layers = decay_horizons(net, tokens)
    # A[d, n] = -(n + 1) at initialisation: the longest horizon is state n = 0's, 1 / (dt * 1)
    assert [layer["layer"] for layer in layers] == [0, 1]
    for layer in layers:
        assert layer["max_horizon_tokens"] == pytest.approx(1 / dt, rel=1e-9)
        assert layer["median_channel_horizon_tokens"] == pytest.approx(1 / dt, rel=1e-9)
        assert layer["kept_over_length"] == pytest.approx(math.exp(-32 * dt), rel=1e-9)


def test_bad_checkpoints_are_one_line_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UserError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "notes.pt").write_text("not a checkpoint")
    with pytest.raises(UserError, match="not a recall checkpoint"):
        load_checkpoint(tmp_path / "notes.pt")
    torch.save({"format": 99}, tmp_path / "future.pt")
    with pytest.raises(UserError, match="not a recall checkpoint of format 1"):
        load_checkpoint(tmp_path / "future.pt")
    monkeypatch.setenv(CHECKPOINT_DIR_ENV, str(tmp_path / "saved"))
    job = {**_job(), "train": {**_job()["train"], "max_steps": 2}, "extrapolate": []}
    run_job(**job)
    checkpoint = load_checkpoint(job_checkpoint_path(SUITE, TARGET, job))
    with pytest.raises(UserError, match="is not of mamba/reference's family"):
        rebuild(checkpoint, "attention/reference")
    with pytest.raises(UserError, match="no selective SSM layer"):
        attention = {**job, "implementation": "attention/reference", "config": {"d_model": 32, "n_heads": 1}}
        run_job(**attention)
        saved = load_checkpoint(job_checkpoint_path(SUITE, TARGET, attention))
        decay_horizons(rebuild(saved), torch.zeros(1, 8, dtype=torch.long))
    assert saved.job["model"] == {} and saved.max_seq_len == 32  # attention alone: learned positions ("auto")
    with pytest.raises(UserError, match="learned positions stop at 32 tokens"):
        next(retest(saved, [64]))


def test_save_models_from_the_command_line(tmp_path: Path) -> None:
    results = tmp_path / "results"
    arguments = ["run", "recall", "--preset", "recall-cpu", "--task", "mqar", "--max-steps", "3", "--device", "cpu"]
    result = CliRunner().invoke(cli, [*arguments, "--save-models", "--results", str(results)])
    assert result.exit_code == 0, result.output
    saved = sorted((tmp_path / "results-logs" / "checkpoints").glob("*/*.pt"))
    assert len(saved) == 1 and load_checkpoint(saved[0]).job["task"] == "mqar"
    from harness.results import read_results

    assert saved[0].stem == read_results(results)["job_id"].iloc[0]  # named by the job whose rows they are


def test_the_retest_script_records_a_row_per_length_and_layer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location(
        "retest_recall", Path(__file__).parents[1] / "scripts/retest_recall.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setenv(CHECKPOINT_DIR_ENV, str(tmp_path))
    job = {**_job(), "train": {**_job()["train"], "max_steps": 2}}
    run_job(**job)
    path = job_checkpoint_path(SUITE, TARGET, job)
    out = tmp_path / "retest.jsonl"
    arguments = ["--seq-len", "32", "--seq-len", "64", "--horizons", "--distance", "16", "--distance", "40"]
    arguments += ["--distance-examples", "24"]
    result = CliRunner().invoke(script.main, [str(path), *arguments, "--json", str(out)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    # per length: its accuracy row, one horizon row per Mamba layer (2), one row per distance that fits
    assert [(r.get("kind", "accuracy"), r["seq_len"], r.get("distance")) for r in lines] == [
        ("accuracy", 32, None), ("horizon", 32, None), ("horizon", 32, None), ("distance", 32, 16),
        ("accuracy", 64, None), ("horizon", 64, None), ("horizon", 64, None), ("distance", 64, 16),
        ("distance", 64, 40),
    ]  # fmt: skip
    assert all(r["n_test"] == 24 for r in lines if r.get("kind") == "distance")
    missing = CliRunner().invoke(script.main, [str(tmp_path / "none.pt"), "--seq-len", "32"])
    assert (
        missing.exit_code == 1
        and missing.output.strip().startswith("Error: ")
        and "no such checkpoint" in missing.output
    )


def test_examples_at_a_fixed_distance_put_the_answer_that_far_back() -> None:
    from harness.errors import ConfigError
    from suites.recall.data import IGNORE, TRIGGER_TOKEN, induction_heads_at_distance

    examples = induction_heads_at_distance(50, 3, vocab_size=16, seq_len=40, distance=25)
    inputs, targets = examples.inputs, examples.targets
    assert (inputs[:, 40 - 1 - 25] == TRIGGER_TOKEN).all() and (inputs[:, -1] == TRIGGER_TOKEN).all()
    assert ((inputs == TRIGGER_TOKEN).sum(dim=1) == 2).all()  # nowhere else: one answer
    assert (targets[:, -1] == inputs[:, 40 - 25]).all() and (targets[:, :-1] == IGNORE).all()
    for distance in (1, 40, 2.5):  # the answer would be the last token, before the start, not a position
        with pytest.raises(ConfigError, match="distance"):
            induction_heads_at_distance(4, 0, vocab_size=16, seq_len=40, distance=distance)
    mqar = {**_job(), "task": "mqar", "task_params": {"vocab_size": 64, "seq_len": 32, "n_pairs": 4}}
    mqar["train"] = {**mqar["train"], "max_steps": 1, "eval_every": 1}
    with pytest.raises(UserError, match="induction heads"):
        next(retest(Checkpoint(job=mqar, max_seq_len=32, state_dict={}, step=0, accuracy=0.0), [32], distances=[4]))
