"""The classification suite end to end on CPU: the pooled model, a run that learns a separable set, the
command (rows, errors, dry run), the presets, and the report page."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from harness import registry
from harness.cli import cli
from harness.config import MixerConfig
from harness.errors import UserError
from suites.backbone import ModelSettings
from suites.classify.data import PAD
from suites.classify.model import ClassifyModel, masked_mean
from suites.classify.presets import build_jobs, check_preset, load_preset
from suites.classify.train import run_job
from tests.imdb_fixture import make_separable_imdb


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQBENCH_CACHE_DIR", str(tmp_path / "cache"))


def test_masked_mean_leaves_the_padding_out() -> None:
    hidden = torch.tensor([[[1.0], [3.0], [100.0]], [[2.0], [4.0], [6.0]]])
    tokens = torch.tensor([[5, 7, PAD], [5, 7, 9]])
    assert masked_mean(hidden, tokens).flatten().tolist() == [2.0, 4.0]


@pytest.mark.parametrize("implementation", ["attention/reference", "lstm/reference", "s4/reference"])
def test_a_causal_model_predicts_the_same_whatever_the_padding(implementation: str) -> None:
    impl = registry.get(implementation)
    config = MixerConfig(d_model=16, n_heads=2, d_state=8)
    torch.manual_seed(0)
    settings = ModelSettings(n_layers=2, position="none")
    net = ClassifyModel(40, 16, lambda: impl.create(config), settings, max_seq_len=32).eval()
    review = torch.randint(1, 40, (1, 10))
    short = torch.cat([review, torch.zeros(1, 6, dtype=torch.long)], dim=1)
    long = torch.cat([review, torch.zeros(1, 22, dtype=torch.long)], dim=1)
    with torch.no_grad():
        assert torch.allclose(net(short), net(long), atol=1e-5)


def _job(preset: str, **data: object) -> dict:
    job = build_jobs(load_preset(preset), device="cpu", mixers=("attention/reference",))[0]
    params = dict(job.params)
    params["data"] = {**params["data"], **data}
    return params


def test_a_tiny_model_learns_reviews_told_apart_by_one_word(tmp_path: Path) -> None:
    # 256 short reviews: with fewer, or longer ones, a model memorises the filler words instead
    root = make_separable_imdb(tmp_path / "imdb", n_train=256, n_test=64)
    params = _job("cpu", encoding="words", seq_len=16, n_train=0, n_test=0, min_count=1)
    params.update(batch=16, lr=1e-2, train={**params["train"], "epochs": 6, "eval_every": 12})
    [row] = run_job(**params, data_dir=str(root))
    assert row["accuracy"] >= 0.9, row  # chance is 0.5
    assert row["roc_auc"] >= 0.9
    assert row["tp"] + row["fn"] == 32 and row["tn"] + row["fp"] == 32  # the test set's classes
    assert row["tp"] + row["tn"] == round(row["accuracy"] * 64)
    assert row["steps"] == 6 * (256 // 16)
    roc = json.loads(row["roc"])
    assert roc[0] == [0.0, 0.0] and roc[-1] == [1.0, 1.0]
    curve = json.loads(row["curve"])
    assert [point["step"] for point in curve] == [*range(12, 96, 12), 96]
    assert max(point["test_accuracy"] for point in curve) == row["accuracy"]  # select = best
    # after the first (compiling) step: steps - 1 in wall_s - first_step_s, 16 reviews of 16 tokens each
    steps_per_s = (row["steps"] - 1) / (row["wall_s"] - row["first_step_s"])
    assert row["steps_per_s"] == pytest.approx(steps_per_s)
    assert row["tokens_per_s"] == pytest.approx(steps_per_s * 16 * 16)


def test_the_byte_level_run_writes_its_row_with_the_data_key(tmp_path: Path) -> None:
    root = make_separable_imdb(tmp_path / "imdb", n_train=32, n_test=16)
    params = _job("cpu", seq_len=64)
    params.update(train={**params["train"], "epochs": 1})
    [row] = run_job(**params, data_dir=str(root))
    assert row["encoding"] == "bytes" and row["task"] == "imdb-bytes" and row["vocab_size"] == 257
    assert row["n_train"] == 32 and row["n_test"] == 16 and len(row["data_key"]) == 24
    assert 0.0 <= row["accuracy"] <= 1.0


def test_a_hybrid_classifier_trains_and_writes_its_layer_pattern(tmp_path: Path) -> None:
    from suites.mixers import model_layers

    root = make_separable_imdb(tmp_path / "imdb", n_train=32, n_test=16)
    preset = {**load_preset("cpu"), "model": {"n_layers": 2}, "data": {"encoding": "bytes", "seq_len": 32}}
    [job] = build_jobs(preset, device="cpu", mixers=("hybrid:lstm,attention",))
    assert job.implementation == "hybrid/lstm/reference+attention/reference"
    assert job.params["layer_pattern"] == ["lstm/reference", "attention/reference"]
    params = dict(job.params)
    params.update(train={**params["train"], "epochs": 1})
    [row] = run_job(**params, data_dir=str(root))
    assert json.loads(row["layer_pattern"]) == ["lstm/reference", "attention/reference"]
    assert row["position"] == "none" and 0.0 <= row["accuracy"] <= 1.0
    layers = model_layers(
        job.implementation, job.params["config"], 2, job.params["layer_pattern"], job.params["layer_configs"]
    )
    lstm, attention = registry.get("lstm/reference"), registry.get("attention/reference")
    batch = job.params["batch"]
    mixers = lstm.flops(layers.configs[0], batch, 32, "fwd_bwd") + attention.flops(
        layers.configs[1], batch, 32, "fwd_bwd"
    )
    head = 3 * 2.0 * batch * layers.configs[0].d_model * 2  # no MLP in the cpu preset: the head alone
    assert row["step_flops"] == pytest.approx(mixers + head)
    with pytest.raises(UserError, match="does not divide n_layers 2"):
        build_jobs(preset, device="cpu", mixers=("hybrid:lstm,lstm,attention",))


def test_the_presets_build_their_jobs_and_ids_do_not_depend_on_the_data_folder() -> None:
    jobs = build_jobs(load_preset("lra-text"), device="cpu")
    families = {registry.get(job.implementation).family for job in jobs}
    assert families == {"s4", "attention", "mamba", "mamba2", "rwkv", "xlstm", "lstm"}
    assert {job.params["seq_len"] for job in jobs} == {4096, 1024}
    assert {job.params["lr"] for job in jobs if job.implementation.startswith("s4/")} == {1e-2}
    # S4's recipe: its SSM parameters at 1e-3 (the S4 option), the rest at 1e-2
    assert {job.params["config"]["options"].get("ssm_lr") for job in jobs if job.implementation.startswith("s4/")} == {
        1e-3
    }
    assert all("data_dir" not in job.params for job in jobs)
    words = build_jobs(load_preset("imdb-s4-mamba"), device="cpu")
    assert {job.params["encoding"] for job in words} == {"words"}
    # every preset's mixers can be built at its config (on the CPU: the references)
    for job in jobs + words:
        registry.get(job.implementation).create(MixerConfig.from_dict(job.params["config"]))


def test_a_family_may_train_in_its_own_dtype() -> None:
    """dtype_by_family (lra-text's LSTM: cuDNN's LSTM takes no bf16 here) replaces the preset's dtype for
    that family's jobs alone; unknown families and dtypes are one-line errors."""
    preset = {**load_preset("cpu"), "mixers": ["lstm", "attention"], "dtype": "float32"}
    jobs = build_jobs({**preset, "dtype_by_family": {"lstm": "float64"}}, device="cpu")
    dtypes = {registry.get(job.implementation).family: job.params["dtype"] for job in jobs}
    assert dtypes == {"lstm": "float64", "attention": "float32"}
    assert build_jobs(preset, device="cpu")[0].job_id != jobs[0].job_id  # the dtype is part of the job
    with pytest.raises(UserError, match="unknown family 'lstn'"):
        check_preset({**preset, "dtype_by_family": {"lstn": "float32"}})
    with pytest.raises(UserError, match=r"dtype_by_family\.lstm: unknown dtype 'float17'"):
        check_preset({**preset, "dtype_by_family": {"lstm": "float17"}})


def _invoke(*args: str) -> tuple[int, str]:
    outcome = CliRunner().invoke(cli, list(args))
    return outcome.exit_code, outcome.output


def test_without_data_the_command_fails_in_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SEQBENCH_IMDB", raising=False)
    code, output = _invoke("run", "classify", "--results", str(tmp_path / "r"))
    assert code == 2
    assert "--data DIR or set SEQBENCH_IMDB" in output and len(output.strip().splitlines()) == 1


def test_a_dry_run_needs_no_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEQBENCH_IMDB", raising=False)
    code, output = _invoke("run", "classify", "--dry-run")
    assert code == 0, output
    assert len(output.strip().splitlines()) == 3


@pytest.mark.slow
def test_the_command_runs_writes_typed_rows_and_the_report_shows_them(tmp_path: Path) -> None:
    import seqbench
    from harness.report import build_report

    root = make_separable_imdb(tmp_path / "imdb", n_train=32, n_test=16)
    results = tmp_path / "results"
    code, output = _invoke(
        "run", "classify", "--data", str(root), "--results", str(results), "--name", "attention/reference",
        "--seq-len", "64", "--n-train", "0", "--n-test", "0", "--epochs", "1",
    )  # fmt: skip
    assert code == 0, output
    frame = seqbench.read_results(results)
    row = frame.iloc[0]
    assert row["status"] == "ok" and row["suite"] == "classify" and row["seq_len"] == 64
    assert isinstance(frame["tp"].dtype, pd.Int64Dtype)
    assert row["tp"] + row["fp"] + row["tn"] + row["fn"] == 16
    index = build_report(frame, tmp_path / "report")
    page = index.parent / "classify.html"
    text = page.read_text()
    assert "Test accuracy against training time" in text and "Confusion matrices" in text
    assert "ROC curves" in text


def test_the_report_sets_the_published_numbers_beside_ours_with_a_verdict() -> None:
    from harness.report.pages import classify as page
    from harness.report.references import recall_references

    rows = pd.DataFrame(
        {
            "status": ["ok", "ok"],
            "implementation": ["s4/cufft", "attention/sdpa_flash"],
            "family": ["s4", "attention"],
            "task": ["imdb-bytes", "imdb-bytes"],
            "encoding": ["bytes", "bytes"],
            "seq_len": [4096, 4096],
            "accuracy": [0.871, 0.62],
            "wall_s": [1100.0, 900.0],
            "steps": [30000, 25000],
        }
    )
    table = page.reproduction_table(page._rows(rows), recall_references("classify"))
    verdicts = dict(zip(table["model"] + " / " + table["implementation"], table["verdict"], strict=True))
    assert verdicts["S4 / s4/cufft"] == "reproduced"  # 87.1 against the bar of 85
    assert verdicts["Transformer / attention/sdpa_flash"] == "reproduced"  # 62.0 within 5 points of 64.27
    assert verdicts["S4 (first version) / s4/cufft"].startswith("differs: +11.1")


@pytest.mark.parametrize(
    ("train", "field"),
    [
        ({"step_mode": "compiled"}, "step_mode"),
        ({"compile": 1}, "compile"),
        ({"no_such": 1}, "no_such"),
        ({"schedule_unit": "epoch"}, "schedule_unit"),
        ({"schedule_unit": "time"}, "needs a time limit"),  # time_limit_s defaults to 0: no limit
    ],
)
def test_bad_classify_training_settings_name_their_field(train: dict, field: str) -> None:
    from harness.errors import ConfigError
    from suites.classify.train import TrainSettings

    with pytest.raises(ConfigError, match=field):
        TrainSettings.from_dict(train)
