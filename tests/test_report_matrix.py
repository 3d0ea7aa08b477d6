"""The overview's comparison matrix, the crossover summary, what did not run, and the plots' series limit."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from harness.report import build_report
from harness.report.matrix import build_matrix, crossover_table, not_run_groups
from harness.report.plots import MAX_SERIES, Palette, balanced_chunks
from harness.report.tables import fold_constant_columns, header_text
from tests.test_report_synthetic import REFERENCES, all_rows


def _throughput(implementation: str, backend: str, mode: str, seq_len: int, median_ms: float, batch: int = 1) -> dict:
    return {
        "suite": "throughput",
        "status": "ok",
        "family": implementation.split("/")[0],
        "implementation": implementation,
        "backend": backend,
        "level": "layer",
        "mode": mode,
        "batch": batch,
        "seq_len": seq_len,
        "median_ms": median_ms,
        "job_id": f"{implementation}-{mode}-{seq_len}-{batch}",
    }


def _scaling_rows() -> pd.DataFrame:
    """Attention quadratic, a scan linear and slower at short L; a reference far slower than both."""
    rows = []
    for seq_len in (1024, 2048, 4096, 8192, 16384):
        rows.append(_throughput("attention/sdpa_flash", "flash", "fwd", seq_len, 1e-6 * seq_len**2))
        rows.append(_throughput("attention/sdpa_math", "torch-math", "fwd", seq_len, 3e-6 * seq_len**2))
        rows.append(_throughput("mamba/mamba_ssm", "cuda", "fwd", seq_len, 0.005 * seq_len))
        rows.append(_throughput("mamba/reference", "reference", "fwd", seq_len, 1.0 * seq_len))
        rows.append(_throughput("mamba/mamba_ssm", "cuda", "fwd_bwd", seq_len, 0.015 * seq_len))
        rows.append(_throughput("attention/sdpa_flash", "flash", "fwd_bwd", seq_len, 3e-6 * seq_len**2))
    return pd.DataFrame(rows)


def test_a_family_is_named_by_its_fastest_fast_implementation_and_the_best_is_marked() -> None:
    matrix = build_matrix(_scaling_rows())
    assert matrix.families == ["attention", "mamba"]
    assert matrix.headline == {"attention": "attention/sdpa_flash", "mamba": "mamba/mamba_ssm"}
    assert "mamba/reference" not in matrix.others["mamba"]  # references are not timed against kernels
    forward = next(c for c in matrix.columns if c.key == "fwd")
    assert "16K" in forward.title  # the longest length both families ran
    assert matrix.best(forward) == {"mamba"}  # at 16K the scan is faster
    exponent = next(c for c in matrix.columns if c.key == "exponent")
    assert matrix.cells[("attention", "exponent")].value == pytest.approx(2.0, abs=1e-6)
    assert matrix.cells[("mamba", "exponent")].value == pytest.approx(1.0, abs=1e-6)
    assert matrix.best(exponent) == {"mamba"}
    # The suites that did not run leave their columns there, empty.
    assert {c.key for c in matrix.columns} >= {"decode_ms", "train_memory", "mqar", "copying", "induction"}
    assert ("mamba", "train_memory") not in matrix.cells


def test_the_crossover_is_the_shortest_length_from_which_the_layer_stays_faster() -> None:
    frame = _scaling_rows()
    table = crossover_table(frame, build_matrix(frame)).set_index("family")
    # 1e-6 L^2 < 0.005 L from L > 5000: faster from 8K; training 3e-6 L^2 < 0.015 L likewise from 8K.
    assert table.loc["mamba", "forward: faster from L"] == "8K"
    assert table.loc["mamba", "training step: faster from L"] == "8K"


def test_what_did_not_run_keeps_unavailable_apart_and_groups_by_reason() -> None:
    failed = pd.DataFrame(
        [
            {"suite": "throughput", "status": "oom", "implementation": "a/x", "reason": "out of memory"},
            {"suite": "memory", "status": "oom", "implementation": "a/y", "reason": "out of memory"},
            {"suite": "throughput", "status": "unavailable", "implementation": "b/z", "reason": "not installed"},
        ]
    )
    real, unavailable = not_run_groups(failed)
    assert real.to_dict("records") == [
        {
            "status": "oom",
            "jobs": 2,
            "implementations": "a/x, a/y",
            "suites": "memory, throughput",
            "reason": "out of memory",
        }
    ]
    assert unavailable["implementations"].tolist() == ["b/z"]


def test_constant_columns_fold_into_a_caption_and_headers_name_units() -> None:
    frame = pd.DataFrame({"implementation": ["a", "b"], "dtype": ["bf16", "bf16"], "median_ms": [1.0, 2.0]})
    columns, caption = fold_constant_columns(frame, ["implementation", "dtype", "median_ms"])
    assert columns == ["implementation", "median_ms"]
    assert caption == "Same in every row: dtype bf16"
    assert header_text("median_ms") == "median (ms)"
    assert header_text("peak_memory_bytes") == "peak_memory (bytes)"


def test_a_family_keeps_its_hue_and_its_implementations_their_shades() -> None:
    names = ["attention/a", "attention/b", "mamba/a"]
    palette = Palette(names)
    first, second = palette("attention/a"), palette("attention/b")
    assert first != second
    # Shades of one hue: the same ordering of channels (blue strongest for attention's blue).
    assert max(range(3), key=lambda i: first[i]) == max(range(3), key=lambda i: second[i]) == 2
    assert balanced_chunks([str(i) for i in range(11)]) == [[str(i) for i in range(6)], [str(i) for i in range(6, 11)]]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("matrix-site")
    build_report(pd.DataFrame(all_rows(tmp_path_factory.mktemp("traces"))), out, references=pd.DataFrame(REFERENCES))
    return out


def test_the_overview_leads_with_the_matrix_and_apart_the_unavailable(site: Path) -> None:
    index = (site / "index.html").read_text(encoding="utf-8")
    assert index.index('id="matrix"') < index.index("What did not run") < index.index("Runs and their provenance")
    assert "—" in index  # a column whose suite did not give a number
    assert index.index('id="not-run"') < index.index("Unavailable here, by design") < index.index('id="unavailable"')
    links = re.findall(r'<td[^>]*>(?:★ )?<a href="([^"]+)"', index)
    assert links and all(re.fullmatch(r"[a-z0-9_-]+\.html#filter=\S+", link) for link in links)


def test_no_plot_carries_more_than_the_series_limit_and_every_plot_has_its_numbers(site: Path) -> None:
    for page in site.glob("*.html"):
        text = page.read_text(encoding="utf-8")
        for figure in re.findall(r"<figure data-series=\"(\d+)\">(.*?)</figure>", text, flags=re.S):
            assert int(figure[0]) <= MAX_SERIES, page.name
        counts = [int(n) for n in re.findall(r'<figure data-series="(\d+)"', text)]
        if page.name in ("throughput.html", "memory.html"):
            assert counts and max(counts) > 0
            assert text.count("<figure") == text.count("class=numbers")


def test_a_paper_table_becomes_a_grid_of_ours_beside_the_published() -> None:
    from harness.report.reproduction import reproduction_grids

    table = pd.DataFrame(
        {
            "source": ["Mamba, Table 2"] * 2,
            "task": ["induction-heads"] * 2,
            "model": ["Mamba"] * 2,
            "implementation": ["mamba/mamba_ssm"] * 2,
            "setting": ["baseline"] * 2,
            "eval_seq_len": [256, 2048],
            "ours": [99.94, 89.7],
            "published": [100.0, 100.0],
        }
    )
    [(title, grid)] = reproduction_grids(table)
    assert title == "Mamba, Table 2: induction-heads"
    assert grid.columns.tolist() == ["model · ours · setting", "L 256", "L 2K"]
    assert grid.iloc[0].tolist() == ["Mamba · mamba/mamba_ssm · baseline", "99.9 (100)", "89.7 (100)"]


def test_the_pickers_offer_only_what_varies_on_the_page() -> None:
    from harness.report.site import picker_html

    rows = pd.DataFrame({"status": ["ok", "ok"], "mode": ["fwd", "decode"], "dtype": ["bf16", "bf16"]})
    picker = picker_html(rows, [("level", "layer"), ("level", "op")])
    assert 'data-facet="mode"' in picker and 'data-facet="level"' in picker
    assert 'data-facet="dtype"' not in picker  # one dtype on the page: nothing to pick
    assert picker.index('value="fwd"') < picker.index('value="decode"')  # modes in their usual order


def test_the_shape_is_a_pick_too() -> None:
    """Batch and sequence length vary on a throughput page: both are offered, lengths in numeric order, and
    their option values are the cells' own text (what the script compares a row with)."""
    from harness.report.site import picker_html

    rows = pd.DataFrame({"status": ["ok"] * 3, "batch": [1, 1, 4], "seq_len": [16384, 1024, 2048]})
    picker = picker_html(rows, [])
    assert 'data-facet="batch"' in picker and 'data-facet="seq_len"' in picker
    assert picker.index('value="1024"') < picker.index('value="2048"') < picker.index('value="16384"')
