"""The published anchors: the `anchors` preset measures every one of them, and the report's tables compute
ratios, exponents, crossovers and speedups correctly from rows with known closed-form times."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pandas as pd
import pytest

from harness.interface import Availability, Implementation
from harness.report import anchors
from harness.report.site import build_report
from suites import load_preset
from suites.throughput import build_jobs
from tests.test_suites import options


def _anchor_jobs() -> list:
    """The anchors preset's jobs as on a GPU machine where every implementation is available."""
    available = Availability(True, "")
    with mock.patch.object(Implementation, "availability", lambda self, device="cpu", dtype=None: available):
        return build_jobs(load_preset("throughput", "anchors"), options(device="cuda"), "cuda")


def _job_row(job) -> dict:
    params = job.params
    return {
        "suite": "throughput",
        "implementation": params["implementation"],
        "level": params["level"],
        "mode": params["mode"],
        "batch": params["batch"],
        "seq_len": params["seq_len"],
        **{k: v for k, v in params["config"].items() if k != "options"},
        "status": "ok",
        "median_ms": 1.0,
        "achieved_tflops": 100.0,
        "timestamp": "2026-11-22T00:00:00+00:00",
    }


def test_anchors_preset_measures_every_published_anchor():
    rows = pd.DataFrame([_job_row(job) for job in _anchor_jobs()])
    table = anchors.anchor_table(rows)
    assert len(table) == len(anchors.published_anchors())
    assert table["measured"].notna().all()


def test_sweep_config_overrides_give_distinct_jobs():
    jobs = [j for j in _anchor_jobs() if j.implementation == "attention/sdpa_flash" and j.params["level"] == "op"]
    heads = {j.params["config"]["n_heads"] for j in jobs}
    assert heads == {32, 16}  # head dim 64 and 128 over d_model 2048
    assert len({j.job_id for j in jobs}) == len(jobs)
    assert {(j.params["batch"], j.params["seq_len"]) for j in jobs} == {(8, 2048), (4, 4096), (2, 8192), (1, 16384)}


def test_mode_option_narrows_sweep_modes():
    available = Availability(True, "")
    with mock.patch.object(Implementation, "availability", lambda self, device="cpu", dtype=None: available):
        jobs = build_jobs(load_preset("throughput", "anchors"), options(device="cuda", modes=("fwd",)), "cuda")
    assert {j.params["mode"] for j in jobs} == {"fwd"}


def test_anchor_ratio_and_verdict():
    anchor = anchors.published_anchors()[0]  # FA2 fwd+bwd d64 16K: 284 TFLOP/s
    row = {
        "suite": "throughput",
        "implementation": anchor.implementation,
        "level": anchor.level,
        "mode": anchor.mode,
        "batch": anchor.tokens // anchor.seq_len,
        "seq_len": anchor.seq_len,
        **anchor.shape,
        "status": "ok",
        "achieved_tflops": 284 * 0.7,
        "median_ms": 1.0,
    }
    failed = {**row, "mode": "fwd", "n_heads": 16, "status": "crash", "reason": "SIGABRT", "achieved_tflops": None}
    failed["implementation"] = "attention/sdpa_cudnn"
    table = anchors.anchor_table(pd.DataFrame([row, failed]))
    first = table.set_index("anchor").loc[anchor.what]
    assert first["ratio"] == pytest.approx(0.7)
    assert first["verdict"] == "differs by 30%"
    cudnn = table[table["implementation"] == "attention/sdpa_cudnn"].iloc[0]
    assert np.isnan(cudnn["measured"]) and "crash: SIGABRT" in cudnn["verdict"]


def _anchor_row(anchor: anchors.Anchor, median_ms: float) -> dict:
    return {
        "suite": "throughput",
        "implementation": anchor.implementation,
        "level": anchor.level,
        "mode": anchor.mode,
        "batch": anchor.tokens // anchor.seq_len,
        "seq_len": anchor.seq_len,
        **anchor.shape,
        "status": "ok",
        "median_ms": median_ms,
        "run_id": "r1",
        "dtype": "bfloat16",
        "timestamp": "2026-11-22T00:00:00+00:00",
    }


def test_anomaly_notes_sit_beside_the_tfla_numbers_they_explain():
    noted = {a.implementation for a in anchors.published_anchors() if a.note}
    assert noted == {"xlstm/mlstm_kernels_xl_chunk_siging", "mamba2/mamba_ssm_ssd"}
    for anchor in anchors.published_anchors():
        if anchor.note:
            assert anchor.source == anchors.TFLA and "docs/anomalies.md" in anchor.note


def test_anomaly_note_reaches_the_rendered_anchor_table(tmp_path):
    siging = next(a for a in anchors.published_anchors() if a.implementation.endswith("xl_chunk_siging"))
    plain = next(a for a in anchors.published_anchors() if a.implementation == "mamba/mamba_ssm_scan")
    frame = pd.DataFrame([_anchor_row(siging, 1.76 * siging.published), _anchor_row(plain, plain.published)])
    table = anchors.anchor_table(frame).set_index("implementation")
    assert table.loc[siging.implementation, "note"] == siging.note
    assert table.loc[plain.implementation, "note"] == ""
    index = build_report(frame, tmp_path)
    page = (index.parent / "throughput.html").read_text()
    anchor_table = page[page.index('id="anchors"') :]
    anchor_table = anchor_table[: anchor_table.index("</table>")]
    assert 'data-column="note"' in anchor_table
    assert "q/k 256 × v 256 per head" in anchor_table and "docs/anomalies.md" in anchor_table


def _scaling_frame() -> pd.DataFrame:
    """Closed forms: attention 1e-6·L² ms, Mamba 0.004·L ms: equal at L = 4000, so Mamba is faster from 4096."""
    rows = []
    for seq_len in (1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072):
        for implementation, ms in (("attention/sdpa_flash", 1e-6 * seq_len**2), ("mamba/mamba_ssm", 0.004 * seq_len)):
            rows.append(
                {
                    "suite": "throughput",
                    "implementation": implementation,
                    "family": implementation.split("/")[0],
                    "level": "layer",
                    "mode": "fwd",
                    "batch": 1,
                    "seq_len": seq_len,
                    "median_ms": ms,
                    "status": "ok",
                }
            )
    return pd.DataFrame(rows)


def test_exponents_and_crossover_from_closed_forms():
    frame = _scaling_frame()
    exponents = anchors.exponent_table(frame).set_index("implementation")
    assert exponents.loc["attention/sdpa_flash", "exponent"] == pytest.approx(2.0, abs=1e-9)
    assert exponents.loc["mamba/mamba_ssm", "exponent"] == pytest.approx(1.0, abs=1e-9)
    ratios = anchors.ratio_table(frame).iloc[0]
    assert ratios["ratio at 2048"] == pytest.approx(1e-6 * 2048**2 / (0.004 * 2048))
    assert ratios["ratio at 131072"] == pytest.approx(1e-6 * 131072 / 0.004)
    assert ratios["faster from L"] == 4096


def test_ssd_speedup_claim():
    rows = []
    for implementation, ms in (("mamba/mamba_ssm_scan", 30.0), ("mamba2/mamba_ssm_ssd", 10.0)):
        rows.append(
            {
                "suite": "throughput",
                "implementation": implementation,
                "level": "op",
                "mode": "fwd_bwd",
                "batch": 8,
                "seq_len": 8192,
                "d_model": 2048,
                "median_ms": ms,
                "status": "ok",
            }
        )
    table = anchors.ssd_speedup_table(pd.DataFrame(rows))
    assert table.iloc[0]["SSD speedup"] == pytest.approx(3.0)
    assert table.iloc[0]["verdict"] == "within the claimed 2-8x"


def test_report_shows_anchor_sections(tmp_path):
    frame = _scaling_frame().assign(run_id="r1", timestamp="2026-11-22T00:00:00+00:00", dtype="bfloat16")
    index = build_report(frame, tmp_path)
    page = (index.parent / "throughput.html").read_text()
    assert "grows as L^2" in page and "overtake attention" in page
    assert (tmp_path / "img" / "throughput-scaling_anchor.png").is_file()


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        ({"shape": "fixed_batch", "batch": 1, "seq_lens": [64], "config": {"n_heads": 7}}, "a sweep's config"),
        ({"shape": "fixed_batch", "batch": 1, "seq_lens": [64], "config": {"heads": 2}}, "a sweep's config"),
        ({"shape": "fixed_batch", "batch": 1, "seq_lens": [64], "implementation": ["x"]}, "unknown key"),
    ],
)
def test_bad_sweep_overrides_are_one_line_errors(sweep, message):
    from harness.errors import UserError

    preset = {"name": "bad", "device": "cpu", "config": {"d_model": 64, "n_heads": 4}, "sweeps": [sweep]}
    with pytest.raises(UserError, match=message):
        build_jobs(preset, options(device="cpu", names=("attention/reference",)), "cpu")
