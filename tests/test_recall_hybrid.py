"""Hybrid models: a layer pattern across families ("hybrid:mamba,attention", suites/mixers.py) in the recall
model. Each layer is its family's implementation with its family's config, in pattern order; the cost models
sum over the layers; a pattern that does not divide n_layers and an unknown family are one-line errors; the
job ids are stable; a tiny CPU training writes `layer_pattern`, and the report draws the hybrid beside
attention and its SSM."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from harness import registry
from harness.errors import UserError
from harness.job import Job
from suites.mixers import model_layers, parse_pattern, pick_mixer
from suites.recall.model import RecallModel, resolve_position
from suites.recall.presets import build_jobs, load_preset

# A preset of its own (not recall-cpu, which may change): its job ids are pinned below.
PRESET = {
    "name": "hybrid-test",
    "device": "cpu",
    "mixers": ["attention/reference", "hybrid:mamba,attention"],
    "d_model": 32,
    "lr": 3e-3,
    "weight_decay": 0.1,
    "seed": 0,
    "batch": 16,
    "timeout_s": 600,
    "model": {"n_layers": 4},
    "train": {"n_train": 0, "n_test": 16, "max_steps": 3, "eval_every": 3},
    "config": {"d_state": 8, "families": {"attention": {"n_heads": 2}, "mamba": {"expand": 1}}},
    "grid": [{"task": "mqar", "task_params": {"vocab_size": 32, "seq_len": 16, "n_pairs": 2}}],
}


@pytest.fixture(autouse=True)
def _memory_only_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQBENCH_CACHE_DIR", "off")


def _jobs(preset: dict | None = None, **kwargs: object) -> list[Job]:
    return build_jobs(preset or PRESET, device="cpu", **kwargs)


def test_a_pattern_resolves_each_element_as_a_single_entry_and_names_the_job() -> None:
    assert parse_pattern("hybrid:mamba, mamba ,attention") == ["mamba", "mamba", "attention"]
    assert parse_pattern("mamba") is None
    choice = pick_mixer("hybrid:mamba,attention/reference", "cpu")
    assert [impl.name for impl in choice.period] == ["mamba/reference", "attention/reference"]
    assert choice.name == "hybrid/mamba/reference+attention/reference" and choice.family == "hybrid"
    single = pick_mixer("mamba", "cpu")
    assert single.name == "mamba/reference" and single.family == "mamba" and not single.hybrid


def test_the_model_has_the_pattern_s_layer_types_in_order_each_with_its_family_s_config() -> None:
    job = next(j for j in _jobs() if j.implementation.startswith("hybrid/"))
    assert job.implementation == "hybrid/mamba/reference+attention/reference"
    assert job.params["layer_pattern"] == ["mamba/reference", "attention/reference"] * 2
    layers = _layers(job)
    assert layers.families == ("mamba", "attention", "mamba", "attention")
    assert [c.n_heads for c in layers.configs] == [4, 2, 4, 2]  # [config.families.attention] for attention only
    assert [c.expand for c in layers.configs] == [1, 2, 1, 2]  # [config.families.mamba] for mamba only
    assert {c.d_state for c in layers.configs} == {8}  # the shared [config]
    settings = resolve_position(load_settings(job), layers.families, layers.rope)
    assert settings.position == "none"  # a recurrent layer in the pattern: no positions (as Jamba)
    torch.manual_seed(0)
    net = RecallModel(32, 32, layers.makers(), settings)
    expected = [type(registry.get(n).create(c)) for n, c in zip(layers.names, layers.configs, strict=True)]
    assert [type(block.mixer) for block in net.blocks] == expected
    assert expected[0] is not expected[1]
    assert net.blocks[1].mixer.config.n_heads == 2 and net.blocks[0].mixer.config.expand == 1


def _layers(job: Job):
    names = ("implementation", "config", "n_layers", "layer_pattern", "layer_configs")
    return model_layers(**{name: job.params[name] for name in names})


def load_settings(job: Job):
    from suites.recall.model import ModelSettings

    return ModelSettings.from_dict({**job.params["model"], "n_layers": job.params["n_layers"]})


def test_attention_alone_keeps_learned_positions() -> None:
    settings = load_settings(_jobs()[0])
    assert resolve_position(settings, ("attention", "attention"), rope=False).position == "learned"
    assert resolve_position(settings, "attention", rope=True).position == "none"
    assert resolve_position(settings, ("attention", "mamba"), rope=False).position == "none"


def test_a_pattern_that_does_not_divide_n_layers_is_refused_in_one_line() -> None:
    preset = {**PRESET, "mixers": ["hybrid:mamba,mamba,attention"]}
    with pytest.raises(UserError) as error:
        _jobs(preset)
    message = str(error.value)
    assert "does not divide n_layers 4" in message and "3 layers" in message and "\n" not in message


@pytest.mark.parametrize(
    ("entry", "named"),
    [("hybrid:mamba,nosuchfamily", "'nosuchfamily'"), ("hybrid:mamba,,attention", "hybrid:mamba,,attention")],
)
def test_a_bad_pattern_is_a_one_line_error_naming_it(entry: str, named: str) -> None:
    with pytest.raises(UserError) as error:
        _jobs({**PRESET, "mixers": [entry]})
    assert named in str(error.value) and "\n" not in str(error.value)


def test_job_ids_are_stable_and_single_mixer_jobs_are_unchanged() -> None:
    first, again = _jobs(), _jobs()
    assert [j.job_id for j in first] == [j.job_id for j in again]
    # pinned: a change to how a hybrid (or a single mixer) is put into its job's params changes these. The
    # first was the id the code before hybrids gave attention/reference's job of this preset, until the
    # settings gained `compile` and `position_scale`, then `next_token_loss` (every recall job's params hold
    # every setting: each new one moves every id).
    assert [j.job_id for j in first] == ["7b74f53aabc89206", "0753c4579cecd567"]
    assert "layer_pattern" not in first[0].params  # single mixers: the params (and ids) they always had
    assert first[1].columns()["family"] == "hybrid" and first[1].columns()["backend"] == "reference"
    assert first[1].unavailable_reason() is None
    on_gpu = Job("recall", first[1].implementation, first[1].target, {**first[1].params, "device": "cuda"})
    assert on_gpu.unavailable_reason().startswith("mamba/reference") or torch.cuda.is_available()


def test_the_zoology_hybrid_preset_measures_the_hybrids_beside_attention_and_the_ssms() -> None:
    jobs = build_jobs(load_preset("zoology-hybrid"), device="cpu")
    by_name = {}
    for job in jobs:
        by_name.setdefault(job.implementation, set()).add((job.params["n_layers"], job.params["config"]["d_model"]))
    assert by_name["hybrid/mamba/reference+attention/reference"] == {(2, 64), (2, 128)}
    assert by_name["hybrid/mamba2/reference+mamba2/reference+mamba2/reference+attention/reference"] == {(4, 64)}
    assert {"attention/reference", "mamba/reference", "mamba2/reference"} <= set(by_name)
    assert {job.params["seq_len"] for job in jobs} == {64, 128, 256, 512}
    # its single-mixer jobs are zoology-fig2's own (the same recipe, so the same ids)
    fig2 = {job.job_id for job in build_jobs(load_preset("zoology-fig2"), device="cpu")}
    single = [job for job in jobs if not job.implementation.startswith("hybrid/")]
    assert single and all(job.job_id in fig2 for job in single)
    assert all(job.params["model"]["init"] == "zoology" for job in jobs)


def test_a_tiny_hybrid_trains_writes_layer_pattern_and_sums_its_layers_cost_models(tmp_path) -> None:
    from harness.report import build_report
    from harness.results import read_results
    from harness.runner import run_jobs

    jobs = _jobs()
    summary = run_jobs(jobs, tmp_path / "results", command="pytest", device="cpu", measure_ceilings=False)
    assert summary.counts() == {"ok": 2}
    frame = read_results(tmp_path / "results")
    hybrid = frame[frame["implementation"] == "hybrid/mamba/reference+attention/reference"].iloc[0]
    single = frame[frame["implementation"] == "attention/reference"].iloc[0]
    assert json.loads(hybrid["layer_pattern"]) == ["mamba/reference", "attention/reference"] * 2
    assert json.loads(single["layer_pattern"]) == ["attention/reference"] * 4
    assert hybrid["family"] == "hybrid" and hybrid["position"] == "none" and single["position"] == "learned"
    # closed form: two Mamba layers and two attention layers, each its own cost model, fwd+bwd; the tied head
    # (no MLP) at the W target positions per sequence, 3x its forward (2 FLOPs per multiply-add)
    job = jobs[1]
    mamba, attention = registry.get("mamba/reference"), registry.get("attention/reference")
    configs = _layers(job).configs
    batch, seq_len, d_model, vocab = 16, 16, 32, 32
    mixers = 2 * mamba.flops(configs[0], batch, seq_len, "fwd_bwd") + 2 * attention.flops(
        configs[1], batch, seq_len, "fwd_bwd"
    )
    head = 3 * 2.0 * batch * _target_width(job) * d_model * vocab
    assert hybrid["step_flops"] == pytest.approx(mixers + head)
    state = 2 * mamba.state_bytes(configs[0], 1, seq_len, torch.float32) + 2 * attention.state_bytes(
        configs[1], 1, seq_len, torch.float32
    )
    assert hybrid["state_bytes_analytic"] == pytest.approx(state)
    # the report's recall page draws the hybrid beside attention and its SSM
    index = build_report(frame, tmp_path / "report")
    text = (index.parent / "recall.html").read_text()
    assert "Hybrid models" in text and "hybrid/mamba/reference+attention/reference" in text


def _target_width(job: Job) -> int:
    """The width of the fresh batches' target positions: MQAR asks every query, n_pairs per sequence."""
    return job.params["task_params"]["n_pairs"]


def test_the_hybrid_grid_sets_attention_the_ssm_and_the_hybrid_side_by_side() -> None:
    from harness.report import hybrid, plots
    from harness.report.analysis import hybrid_grid

    rows = []
    for name, accuracies in (
        ("attention/sdpa_flash", (1.0, 0.99)),
        ("mamba/mamba_ssm", (0.9, 0.4)),
        ("rwkv/rwkv7_fla_layer", (0.8, 0.3)),  # not in any hybrid: left out
        ("hybrid/mamba/mamba_ssm+attention/sdpa_flash", (1.0, 0.97)),
    ):
        for (seq_len, pairs), accuracy in zip(((64, 4), (512, 64)), accuracies, strict=True):
            for lr, shift in ((1e-3, 0.0), (1e-2, -0.1)):  # the best over learning rates
                rows.append(
                    {
                        "suite": "recall",
                        "status": "ok",
                        "task": "mqar",
                        "implementation": name,
                        "n_layers": 2,
                        "d_model": 64,
                        "seq_len": seq_len,
                        "eval_seq_len": seq_len,
                        "lr": lr,
                        "accuracy": accuracy + shift,
                        "task_params": json.dumps({"n_pairs": pairs}),
                    }
                )
    grid = hybrid_grid(pd.DataFrame(rows))
    hybrid_name = "hybrid/mamba/mamba_ssm+attention/sdpa_flash"
    assert list(grid["implementation"]) == ["attention/sdpa_flash", "mamba/mamba_ssm", hybrid_name]
    assert list(grid["kind"]) == ["attention", "recurrent", "hybrid"]
    assert list(grid["L 64 (4 pairs)"]) == [100.0, 90.0, 100.0]
    assert list(grid["L 512 (64 pairs)"]) == [99.0, 40.0, 97.0]
    palette = plots.Palette(list(grid["implementation"]))
    assert palette(grid["implementation"].iloc[2]) == plots._shade(plots.FAMILY_COLORS["hybrid"], 0.0)
    [plot] = hybrid.hybrid_plots(grid, palette)
    assert plot.series == 3
    assert hybrid_grid(pd.DataFrame(rows[:4])).empty  # no hybrid rows: no section
    # the overview's matrix: the hybrid is a row (family hybrid) like any mixer, its MQAR accuracy beside theirs
    from harness.report.matrix import build_matrix

    frame = pd.DataFrame(rows).assign(mode="train", level="layer", backend="cuda")
    frame["family"] = frame["implementation"].str.split("/").str[0]
    matrix = build_matrix(frame)
    assert "hybrid" in matrix.families and matrix.cells[("hybrid", "mqar")].value == pytest.approx(0.97)
