"""Report generation on a small synthetic result set: every plot, failed jobs, escaping, provenance, links."""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.report import build_report
from harness.report.analysis import fit_scaling_exponent
from harness.report.data import series_labels
from harness.report.plots import Palette
from harness.report.references import COLUMNS as REFERENCE_COLUMNS
from harness.report.references import normalise as normalise_references
from harness.report.references import recall_references
from harness.results import write_rows
from tests.test_report_synthetic import HOSTILE, REFERENCES, all_rows, throughput_rows

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EXPECTED_PLOTS = {
    "throughput-throughput-fwd-layer.png",
    "throughput-throughput-fwd_bwd-layer.png",
    "throughput-roofline.png",
    "throughput-decode_latency.png",
    "memory-peak_memory-fwd.png",
    "memory-peak_memory-fwd_bwd.png",
    "memory-state_bytes.png",
    "profile-top_kernels-fwd_bwd.png",
    "recall-recall-mqar.png",
    "recall-recall_extrapolation.png",
    "compare-compare_ratios.png",
}


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    return all_rows(tmp_path_factory.mktemp("traces"))


@pytest.fixture(scope="module")
def site(rows: list[dict], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    baseline = pd.DataFrame(throughput_rows("run-0", scale=0.8, seed=1))
    index = build_report(pd.DataFrame(rows), out, baseline=baseline, references=pd.DataFrame(REFERENCES))
    assert index == out / "index.html"
    return out


def _page(site: Path, name: str) -> str:
    return (site / f"{name}.html").read_text(encoding="utf-8")


def test_fit_scaling_exponent_closed_forms() -> None:
    lengths = np.array([512, 1024, 2048, 4096, 8192, 16384])
    assert fit_scaling_exponent(lengths, 3e-6 * lengths**2) == pytest.approx(2.0, abs=1e-9)
    assert fit_scaling_exponent(lengths, 0.01 * lengths) == pytest.approx(1.0, abs=1e-9)
    # A fixed cost flattens the short end; the fit on the three longest lengths still sees ~2.
    with_overhead = 0.5 + 1e-6 * lengths**2
    assert fit_scaling_exponent(lengths, with_overhead) == pytest.approx(2.0, abs=0.05)
    assert fit_scaling_exponent(lengths, with_overhead, longest=len(lengths)) < 1.8  # why only the long end
    assert fit_scaling_exponent(lengths[:1], lengths[:1]) is None


def test_every_page_and_plot_is_written(site: Path) -> None:
    pages = {p.name for p in site.glob("*.html")}
    assert pages == {
        "index.html",
        "throughput.html",
        "memory.html",
        "profile.html",
        "recall.html",
        "check.html",
        "compare.html",
    }
    plots = {p.name for p in (site / "img").glob("*.png")}
    assert plots == EXPECTED_PLOTS
    for name in plots:
        data = (site / "img" / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000, name
    for page in pages:
        text = (site / page).read_text(encoding="utf-8")
        for image in re.findall(r'<img src="([^"]+)"', text):
            assert (site / image).is_file(), f"{page} shows a missing image {image}"


def test_markup_from_results_renders_as_text(site: Path) -> None:
    escaped = html.escape(HOSTILE)
    for page in site.glob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert HOSTILE not in text, page.name
        assert text.count("<script") == 1, f"{page.name}: only the report's own script may be present"
    assert escaped in _page(site, "throughput")  # the crash reason and the opt_variant value, shown as text
    assert escaped in _page(site, "index")  # a package version in the provenance table
    assert "Based &lt;i&gt;" in _page(site, "recall")  # a reference model name


def test_failed_jobs_listed_with_status_reason_and_command(site: Path, rows: list[dict]) -> None:
    index = _page(site, "index")
    failed = [r for r in rows if r["status"] != "ok"]
    section = index.split("<h2>Failed jobs</h2>")[1].split("<h2>")[0]
    assert section.count("<tr") == len(failed) + 1  # + the header row
    for row in failed:
        assert html.escape(row["reason"]) in section
        assert html.escape(row["command"]) in section
    assert 'class="row-oom"' in section and 'class="row-crash"' in section and 'class="row-unavailable"' in section


def test_failed_correctness_checks_are_flagged(site: Path) -> None:
    check = _page(site, "check")
    assert "1 of 2 checks passed." in check
    assert check.count('<tr class="row-failed_check">') == 1  # highlighted among every row
    index = _page(site, "index")
    section = index.split("<h2>Failed correctness checks</h2>")[1].split("<h2>")[0]
    assert "mamba2/mamba_ssm" in section and "attention/sdpa_cudnn" not in section
    assert html.escape(f"rms ratio 0.31 > 0.02 {HOSTILE}") in section


def test_provenance_and_reproducing_commands(site: Path, rows: list[dict]) -> None:
    index = _page(site, "index")
    for text in ("NVIDIA H100 80GB HBM3", "abc1234", "2.11.0+cu130", "3.6.0", "716", "3020", "fla 0.6.0"):
        assert html.escape(text) in index, text
    assert "seqbench run throughput --implementation mamba2/mamba_ssm --mode fwd --seq-len 8192" in index


def test_every_row_is_in_its_suite_table(site: Path, rows: list[dict]) -> None:
    for suite in ("throughput", "memory", "profile", "recall", "check"):
        page = _page(site, suite)
        table = page.split(f'<table class="rows" id="{suite}-rows">')[1].split("</table>")[0]
        assert table.count("<tr") == sum(r["suite"] == suite for r in rows) + 1
        assert "data-type=" in table  # headers carry the sort type
    # Numbers sort by their raw value, shown formatted: 64 GiB of peak memory sorts as bytes.
    assert f'data-v="{float(64 * 2**30)!r}">64 GiB' in _page(site, "memory")


def test_site_is_self_contained(site: Path) -> None:
    for page in site.glob("*.html"):
        text = page.read_text(encoding="utf-8")
        links = re.findall(r'(?:src|href)="([^"]*)"', text)
        assert links, page.name
        for link in links:
            assert not re.match(r"^[a-z]+://", link) or link.startswith("file:"), f"{page.name} links out: {link}"
        assert "default-src 'none'" in text  # CSP: nothing may be fetched from elsewhere
    assert (site / "data" / "throughput.csv").is_file()


def test_profile_page_links_each_trace(site: Path, rows: list[dict]) -> None:
    page = _page(site, "profile")
    links = set(re.findall(r'<a href="([^"]+\.pt\.trace\.json)"', page))
    traces = {r["trace_path"] for r in rows if r["suite"] == "profile"}
    assert len(links) == len(traces) == 2
    assert {str((site / unquote(link)).resolve()) for link in links} == {str(Path(t).resolve()) for t in traces}


def test_compare_page_summarises_the_change(site: Path) -> None:
    page = _page(site, "compare")
    assert "Geometric mean of B/A median time over those: 1.250 (+25.0%)." in page
    assert "A (baseline): run-0. B: run-a." in page
    assert page.count('class="row-slower"') == 23


def test_reference_loader_tolerates_absence_and_reads_percent() -> None:
    empty = recall_references("no-such-suite")
    assert empty.empty and list(empty.columns) == list(REFERENCE_COLUMNS)
    frame = normalise_references([{"task": "selective_copying", "model": "Mamba", "accuracy": 99.8, "d_model": 64}])
    assert frame.loc[0, "accuracy"] == pytest.approx(0.998)


def test_recall_suite_reference_points_are_read() -> None:
    """The recall suite's own points (percent in the papers) arrive as fractions, claims kept without a number."""
    pytest.importorskip("suites.recall.references")
    points = recall_references()
    s4 = points[(points["task"] == "selective-copying") & (points["model"] == "S4 (no gate)")]
    assert s4["accuracy"].tolist() == [pytest.approx(0.183)]  # Mamba paper, Table 1
    assert (points["accuracy"].dropna().between(0, 1)).all()
    claims = points[points["accuracy"].isna()]
    assert not claims.empty and (claims["claim"] != "").all()


def test_cpu_run_without_ceilings_and_with_few_columns(tmp_path: Path) -> None:
    """A CPU run has no GPU provenance and NaN ceilings: the report still builds and says so."""
    lengths = [64, 128, 256]
    frame = pd.DataFrame(
        {
            "suite": "throughput",
            "implementation": "attention/reference",
            "mode": "fwd",
            "status": "ok",
            "batch": 2,
            "seq_len": lengths,
            "median_ms": [0.1 * (length / 64) ** 2 for length in lengths],
            "flops": [1e6 * length for length in lengths],
            "min_bytes": [1e4 * length for length in lengths],
            "achieved_tflops": [0.01, 0.02, 0.03],
            "peak_matmul_tflops": float("nan"),
        }
    )
    index = build_report(frame, tmp_path)
    assert "No device ceilings were measured" in (tmp_path / "throughput.html").read_text()
    assert index.read_text().count("<script") == 1


def test_report_command_reads_parquet_and_prints_the_index(tmp_path: Path) -> None:
    """Through Parquet, as from a CPU run: no GPU provenance, so nullable ints are NA on read."""
    rows = throughput_rows("run-a")[:6]
    for row in rows:
        row.update(gpu_name=None, gpu_count=None, gpu_memory_bytes=None, peak_copy_gbps=None, device="cpu")
    write_rows(rows, tmp_path / "results", "run-a")
    result = CliRunner().invoke(cli, ["report", str(tmp_path / "results"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str((tmp_path / "out" / "index.html").resolve())
    assert (tmp_path / "out" / "throughput.html").is_file()
    (tmp_path / "empty").mkdir()
    empty = CliRunner().invoke(cli, ["report", str(tmp_path / "empty"), "-o", str(tmp_path / "out2")])
    assert empty.exit_code == 2
    assert "no result rows" in empty.output


def test_unknown_suite_name_cannot_escape_the_site(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"suite": ["../../evil<b>"], "implementation": ["x/y"], "status": ["ok"], "reason": [""], "custom": [1.5]}
    )
    build_report(frame, tmp_path / "site")
    pages = sorted(p.name for p in (tmp_path / "site").glob("*.html"))
    assert pages == ["evil_b.html", "index.html"]
    assert not list(tmp_path.glob("*.html"))
    page = (tmp_path / "site" / "evil_b.html").read_text()
    assert "../../evil&lt;b&gt;" in page and "custom" in page  # a suite the report does not know: every column


def test_provenance_names_the_executor_and_the_gpus_each_run_used():
    from harness.report.site import provenance_table

    rows = throughput_rows("r-local")
    rows = [dict(row, executor="local", gpu_index=i % 2) for i, row in enumerate(rows)]
    rows += [dict(row, run_id="r-single", executor="local", gpu_index=0) for row in throughput_rows("r-single")]
    table = provenance_table(pd.DataFrame(rows)).set_index("run_id")
    assert table.loc["r-local", "gpu_indices"] == "0, 1"
    assert table.loc["r-single", "gpu_indices"] == "0"
    assert table.loc["r-local", "executor"] == "local"


def test_series_labels_name_only_what_tells_one_implementations_series_apart() -> None:
    # Each family's own head count (a preset's per-family config) is implied by the name; two dtypes
    # of one implementation are two series and must be told apart.
    frame = pd.DataFrame(
        {
            "implementation": ["attention/sdpa_flash", "mamba2/mamba_ssm", "mamba2/mamba_ssm"],
            "n_heads": [16, 32, 32],
            "dtype": ["bfloat16", "bfloat16", "float32"],
        }
    )
    assert series_labels(frame).tolist() == [
        "attention/sdpa_flash · bfloat16",
        "mamba2/mamba_ssm · bfloat16",
        "mamba2/mamba_ssm · float32",
    ]


@pytest.mark.parametrize("count", [3, 15, 30])
def test_every_implementation_of_a_report_has_its_own_colour(count: int) -> None:
    names = [f"family{i % 6}/impl{i}" for i in range(count)]
    palette = Palette(names)
    assert len({palette(name) for name in names}) == count
    assert palette(names[0]) == Palette(list(reversed(names)))(names[0])  # stable whatever the order


def test_a_legend_of_long_labels_takes_fewer_columns_and_the_figure_grows_to_hold_it() -> None:
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    from harness.report.plots import figure_legend

    short = Figure(figsize=(11, 4))
    figure_legend(short, [Line2D([], [])] * 20, [f"impl{i}" for i in range(20)])
    assert short.legends[0]._ncols == 2 and short.get_figheight() == 4

    long = Figure(figsize=(11, 4))
    labels = [f"family/impl{i} · layer · d_model=1024 · n_heads=16 · head_dim=64 · chunk_size=64" for i in range(20)]
    figure_legend(long, [Line2D([], [])] * 20, labels)
    assert long.legends[0]._ncols == 1
    assert long.get_figheight() == pytest.approx(4 + 0.2 * 10)  # 20 rows where 2 columns had 10

    wider_than_figure = Figure(figsize=(4, 4))
    figure_legend(wider_than_figure, [Line2D([], [])], ["x" * 100])
    assert wider_than_figure.get_figwidth() >= 100 * 0.065
